"""``plexloc filter LOCS --out OUT [--min-prob P] [--max-sigma NM] ...``: keep the good localizations."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._locs import add_table_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "filter",
        help="filter localizations by probability, uncertainty, photons, z",
        description="Keep the localizations that pass every given criterion and report, per criterion, how many "
        "fail it and how many it removes (in the order listed). A criterion on a column the table lacks is an error.",
    )
    add_table_args(p, out_help="filtered table")
    p.add_argument("--min-prob", type=float, default=None, metavar="P", help="prob >= P")
    p.add_argument("--max-sigma", type=float, default=None, metavar="NM", help="max(sigma_x_nm, sigma_y_nm) <= NM")
    p.add_argument("--max-sigma-z", type=float, default=None, metavar="NM", help="sigma_z_nm <= NM")
    p.add_argument("--min-photons", type=float, default=None, metavar="N")
    p.add_argument("--max-photons", type=float, default=None, metavar="N")
    p.add_argument("--z-range", type=float, nargs=2, default=None, metavar=("Z0", "Z1"), help="Z0 <= z_nm <= Z1")
    p.add_argument("--max-bg", type=float, default=None, metavar="B", help="bg <= B")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the counts as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.cli._common import write_json
    from plexloc.post.filter import filter_localizations

    table = _locs.read(args)
    kept, report = filter_localizations(
        table, min_prob=args.min_prob, max_sigma_nm=args.max_sigma, max_sigma_z_nm=args.max_sigma_z,
        min_photons=args.min_photons, max_photons=args.max_photons,
        z_range_nm=tuple(args.z_range) if args.z_range else None, max_bg=args.max_bg,
    )
    _locs.write(kept, args.out, args)
    print(report.format_table())
    if args.json is not None:
        write_json({**report.to_dict(), "locs": str(args.locs), "out": str(args.out)}, args.json)
    return 0
