"""``plexloc merge LOCS --out OUT [--radius NM] [--gap FRAMES]``: one localization per on-event."""

from __future__ import annotations

import argparse

from plexloc.cli._common import check_outputs, nonnegative_int, positive_float
from plexloc.cli._locs import add_table_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="merge localizations of a molecule that stays on over consecutive frames",
        description="Link localizations in consecutive frames (up to --gap missing frames) within --radius nm "
        "and replace each chain by one localization: inverse-variance weighted position (by sigma_x_nm/sigma_y_nm, "
        "or an MLE table's crlb_x_nm/crlb_y_nm; photon-weighted without either), uncertainties and CRLBs reduced "
        "accordingly, photons summed; "
        "columns n_merged and frame_last are added.",
    )
    add_table_args(p, out_help="merged table")
    p.add_argument("--radius", type=positive_float, default=50.0, metavar="NM", help="link radius in nm (default 50)")
    p.add_argument("--gap", type=nonnegative_int, default=1, metavar="FRAMES", help="missing frames bridged (default 1)")
    p.add_argument("--weights", choices=("auto", "inverse_variance", "photons"), default="auto",
                   help="how positions are averaged: inverse_variance (1/sigma^2, needs sigma_x_nm and sigma_y_nm, or "
                   "crlb_x_nm and crlb_y_nm; "
                   "the merged sigma shrinks as 1/sqrt(sum 1/sigma^2)), photons (photon-weighted; sigma columns "
                   "become the weighted mean's, sqrt(sum w^2 sigma^2) / sum w), auto (default: inverse_variance when "
                   "the table has the sigma columns, or else CRLBs all > 0, else photons)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.post.merge import merge_localizations

    check_outputs(table=args.out, px_size_nm=args.camera_px_size)
    table = _locs.read(args)
    merged = merge_localizations(table, radius_nm=args.radius, gap=args.gap, weights=args.weights)
    _locs.write(merged, args.out, args)
    fewer = 100 * (1 - len(merged) / len(table)) if len(table) else 0.0  # (an empty table: 0 %, not 100 %)
    print(f"merged {len(table)} localizations into {len(merged)} ({fewer:.1f} % fewer); wrote {args.out}")
    return 0
