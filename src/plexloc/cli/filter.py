"""``plexloc filter LOCS --out OUT [--min-prob P] [--max-sigma NM] ...``: keep the good localizations."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import finite_float, nonnegative_float, positive_float, probability
from plexloc.cli._locs import add_table_args


def frame_list(text: str) -> list[int]:
    """``19-21,40`` -> [19, 20, 21, 40]: frame numbers and inclusive ranges, comma-separated."""
    frames: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected frame numbers and ranges such as 19-21,40, got {part!r}") from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"a frame range must be FIRST-LAST with 0 <= FIRST <= LAST, got {part!r}")
        frames.extend(range(a, b + 1))
    return frames


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "filter",
        help="filter localizations by probability, uncertainty, photons, z, convergence, clipped pixels, spot significance",
        description="Keep the localizations that pass every given criterion and report, per criterion, how many "
        "fail it and how many it removes (in the order listed). A criterion on a column the table lacks is an error.",
    )
    add_table_args(p, out_help="filtered table")
    p.add_argument("--min-prob", type=probability, default=None, metavar="P", help="prob >= P (0 <= P <= 1)")
    p.add_argument("--max-sigma", type=positive_float, default=None, metavar="NM",
                   help="max(sigma_x_nm, sigma_y_nm) <= NM (an MLE table without them: its crlb_x_nm, crlb_y_nm)")
    p.add_argument("--max-sigma-z", type=positive_float, default=None, metavar="NM",
                   help="sigma_z_nm <= NM (an MLE table: crlb_z_nm)")
    p.add_argument("--min-photons", type=nonnegative_float, default=None, metavar="N", help="photons >= N (N >= 0)")
    p.add_argument("--max-photons", type=positive_float, default=None, metavar="N",
                   help="photons <= N (N > 0, and >= --min-photons)")
    p.add_argument("--z-range", type=finite_float, nargs=2, default=None, metavar=("Z0", "Z1"),
                   help="Z0 <= z_nm <= Z1 (Z0 <= Z1)")
    # --max-bg: any finite B (tests/test_render_report.py passes -1 to reach the missing-column error)
    p.add_argument("--max-bg", type=finite_float, default=None, metavar="B", help="bg <= B")
    p.add_argument("--exclude-frames", type=frame_list, default=None, metavar="F",
                   help="drop the rows of these frames: numbers and ranges, e.g. 19-21,40 (a dropped or saturated frame "
                        "and its neighbours, as plexloc fit names them)")
    p.add_argument("--converged", action="store_true",
                   help="keep the MLE fits that converged (converged == 1: stopped neither at the iteration limit nor "
                        "on a bound of the fit, column at_bound)")
    p.add_argument("--no-saturated", action="store_true",
                   help="drop the rows whose spot holds a pixel at the camera's clipping level (saturated_px > 0: fitted "
                        "from clipped light, photons too low; plexloc fit says how many)")
    p.add_argument("--max-p-spot", type=probability, default=None, metavar="P",
                   help="keep the MLE fits whose spot is significant against background alone: p_spot <= P (0 <= P <= 1; "
                        "e.g. 0.01: background alone gives such a spot_llr in 1 %% of windows). A table without p_spot "
                        "(a network's, an older MLE table) is refused")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the counts as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, write_json
    from plexloc.errors import InputError
    from plexloc.post.filter import filter_localizations

    if args.min_photons is not None and args.max_photons is not None and args.min_photons > args.max_photons:
        raise InputError(f"--min-photons {args.min_photons:g} is above --max-photons {args.max_photons:g}: "
                         "no localization could pass")
    if args.z_range is not None and not args.z_range[0] <= args.z_range[1]:
        raise InputError(f"--z-range Z0 Z1 needs Z0 <= Z1, got {args.z_range[0]:g} {args.z_range[1]:g}")
    check_outputs(args.json, table=args.out, px_size_nm=args.camera_px_size)
    table = _locs.read(args)
    kept, report = filter_localizations(
        table, min_prob=args.min_prob, max_sigma_nm=args.max_sigma, max_sigma_z_nm=args.max_sigma_z,
        min_photons=args.min_photons, max_photons=args.max_photons,
        z_range_nm=tuple(args.z_range) if args.z_range else None, max_bg=args.max_bg,
        exclude_frames=args.exclude_frames, converged=True if args.converged else None,
        saturated=False if args.no_saturated else None, max_p_spot=args.max_p_spot,
    )
    _locs.write(kept, args.out, args)
    print(report.format_table())
    if args.json is not None:
        write_json({**report.to_dict(), "locs": str(args.locs), "out": str(args.out)}, args.json)
    return 0
