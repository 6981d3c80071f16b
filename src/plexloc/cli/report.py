"""``plexloc report LOCS --out report.html``: one self-contained page judging a localization table."""

from __future__ import annotations

import argparse

from plexloc.cli._common import check_outputs, path_with_suffix, positive_float
from plexloc.cli._locs import add_table_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="self-contained HTML report: image, histograms, gridding, drift, FRC, NeNA, summary",
        description="Write one HTML page (figures inline as base64 PNG) with the rendered image, histograms of "
        "photons, background, sigma and z, the localizations per frame, the subpixel histogram (gridding check; "
        "needs --camera-px-size), the drift curve (columns written by plexloc drift), the FRC curve, the precision "
        "from the data (NeNA) and a summary table (with an MLE fit's converged rows and the report's own settings). "
        "Sections whose columns are missing say 'not available'.",
    )
    add_table_args(p, out_help="HTML file (.html)", out_type=path_with_suffix(".html"))
    p.add_argument("--pixel-size", type=positive_float, default=None, metavar="NM", help="pixel of the rendered image")
    p.add_argument("--title", default=None, help="title of the page (default: 'plexloc report: ' and the file name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.render.report import build_report, write_report

    check_outputs(args.out)
    table = _locs.read(args)
    report = build_report(table, title=args.title, px_size_nm=args.pixel_size, camera_px_size_nm=args.camera_px_size)
    write_report(report, args.out)
    na = f"; not available: {', '.join(report.missing)}" if report.missing else ""
    print(f"wrote {args.out} ({report.n_figures} figures{na})")
    return 0
