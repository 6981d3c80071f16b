"""``plexloc debias LOCS --out OUT --px-size NM [--slab NM]``: flatten the sub-pixel position histograms."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import nonnegative_float, positive_float, positive_int
from plexloc.cli._locs import add_table_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "debias",
        help="remove the pull of positions towards points of the pixel (sub-pixel histogram equalisation)",
        description="In z slabs, map the sub-pixel offsets of x and y by their empirical CDF onto a uniform "
        "distribution, each localization's shift weighted by its lateral sigma (sigma_x_nm, sigma_y_nm; an MLE table without them: its "
        "crlb_x_nm, crlb_y_nm) to a power measured from the table (how much more biased the rows of large sigma are; "
        "--sigma-power to set it). Prints the "
        "distribution of |shift|/sigma: large values mean under-reported uncertainties.",
    )
    add_table_args(p, out_help="de-biased table")
    # --camera-px-size (from add_table_args) is the name the other commands use; --px-size is kept for old scripts
    p.add_argument("--px-size", type=positive_float, default=None, metavar="NM",
                   help="camera pixel size in nm, the grid whose sub-pixel offsets are flattened (required unless "
                        "--camera-px-size gives it; both: they must agree)")
    p.add_argument("--slab", type=positive_float, default=50.0, metavar="NM", help="z slab thickness in nm (default 50)")
    p.add_argument("--min-count", type=positive_int, default=200, metavar="N",
                   help="slabs with fewer rows stay as they are (default 200)")
    p.add_argument("--sigma-power", type=nonnegative_float, default=None, metavar="P",
                   help="weigh each shift by sigma^P: 1 moves the rows in proportion to their sigma (DECODE-Plex), 0 "
                        "gives every row its mapped shift; default: measured per axis (the bias of each slab's upper "
                        "sigma half against its lower half's), printed")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="the diagnostic as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, write_json
    from plexloc.io._atomic import atomic_path
    from plexloc.post.debias import debias

    from plexloc.errors import InputError

    # --px-size was required even where --camera-px-size, the same camera pixel, was given
    if args.px_size is None and args.camera_px_size is None:
        raise InputError("debias needs the camera pixel size: --camera-px-size NM (or --px-size NM)")
    if args.px_size is not None and args.camera_px_size is not None and args.px_size != args.camera_px_size:
        raise InputError(f"--px-size {args.px_size:g} and --camera-px-size {args.camera_px_size:g} disagree: both are "
                         "the camera pixel size; give one")
    px_size = args.px_size if args.px_size is not None else args.camera_px_size
    check_outputs(args.json, table=args.out, px_size_nm=args.camera_px_size)
    table = _locs.read(args)
    out, report = debias(table, px_size, args.slab, min_count=args.min_count, sigma_power=args.sigma_power)
    # the JSON goes to a temporary file that takes its name only once the table is written: an unwritable --json
    # left a new table behind (exit status 2)
    with ExitStack() as stack:
        json_tmp = stack.enter_context(atomic_path(args.json)) if args.json is not None else None
        if json_tmp is not None:
            write_json(report.to_dict(), json_tmp)
        _locs.write(out, args.out, args)
    print(report.format_table())
    if report.n_skipped < report.n:  # a table left unchanged was not flattened: nothing to add
        _noise_note(table, px_size)
    print(f"wrote {args.out}")
    return 0


def _noise_note(table, px_size: float) -> None:
    """Say where the sub-pixel histograms were within counting noise before de-biasing: it then flattens noise (the
    demo fit's 19.0 / 20.4 %, against up to 27 % at periods other than the pixel's: de-biased, its RMSE rose 14.17 ->
    14.30 nm)."""
    import sys

    from plexloc.evaluate.gridding import gridding_check

    if len(table) < 10:
        return
    check = gridding_check(table["x_nm"], table["y_nm"], px_size)
    devs, noise = (check.dev_x, check.dev_y), check.noise
    if not check.gridded:
        print(f"plexloc debias: note: before de-biasing, the sub-pixel histograms of x and y deviated from uniform by "
              f"{100 * devs[0]:.1f} / {100 * devs[1]:.1f} %, within counting noise (the same histograms at periods "
              f"other than the pixel's reach up to {100 * noise:.0f} %): there was no measurable gridding, and "
              "de-biasing only flattened noise; keep the input table", file=sys.stderr)
