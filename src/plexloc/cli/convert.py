"""``plexloc convert IN OUT`` (or ``IN --out OUT``, as the other commands): change a localization table's format
(chosen by the file names)."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import check_outputs, positive_float, positive_int, resolve_positional_or_option
from plexloc.cli._locs import FORMATS_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert localization tables between formats",
        description=f"Read IN and write OUT; formats by file name: {FORMATS_HELP}. Units, origins and frame "
        "numbering are converted at the file boundary (ThunderSTORM frames from 1, Picasso pixels with the "
        "centre of pixel 0 at 0, DECODE pixels likewise with its x along the image rows, SMAP frames from 1). Every "
        "row is kept. OUT is given positionally or as --out OUT, as the other commands take it.",
    )
    p.add_argument("locs", type=Path, metavar="IN", help="input table")
    # OUT positionally (as it always was) or --out OUT (as every other command): resolve_out() picks the one given
    p.add_argument("out", type=Path, metavar="OUT", nargs="?", default=None, help="output table; or --out OUT")
    p.add_argument("--out", dest="out_option", type=Path, default=None, metavar="OUT",
                   help="the output table as an option (the same as the positional OUT)")
    p.add_argument("--camera-px-size", type=positive_float, default=None, metavar="NM",
                   help="camera pixel size in nm (to write Picasso .hdf5; to read pixel-unit files without one)")
    p.add_argument("--frame-origin", type=int, choices=[0, 1], default=None,
                   help="first frame number of a .smlm file not written by plexloc (default: 1 when its smallest frame "
                        "is >= 1, as ThunderSTORM writes them, else 0; a warning says when it guessed)")
    p.add_argument("--frame-shape", type=positive_int, nargs=2, default=None, metavar=("H", "W"),
                   help="camera frame in pixels, for Picasso's sidecar (default: from the extent)")
    p.set_defaults(func=run)


def resolve_out(args: argparse.Namespace) -> Path:
    """``args.out`` set to the output given positionally or as ``--out`` (one of them, or the same one twice): an
    :class:`InputError` otherwise, as :func:`plexloc.cli._common.resolve_config` does for a configuration."""
    return resolve_positional_or_option(args, "out", what="outputs", kind="a table file, format by its name")


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.io.formats import format_of, write_locs

    resolve_out(args)
    format_of(args.out)  # fail on a bad output name before reading
    check_outputs(table=args.out, px_size_nm=args.camera_px_size)
    table = _locs.read(args)
    write_locs(table, args.out, px_size_nm=args.camera_px_size,
               frame_shape=tuple(args.frame_shape) if args.frame_shape else None)
    print(f"wrote {args.out} ({format_of(args.out)}, {len(table)} localizations, columns: {', '.join(table.columns)})")
    return 0
