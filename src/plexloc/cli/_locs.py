"""Reading and writing localization tables in the post-processing commands (any format, by file name)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from plexloc.cli._common import positive_float

FORMATS_HELP = (".csv (plexloc), .h5 (plexloc, or DECODE when reading), .thunderstorm.csv, .hdf5 (Picasso), "
                ".smlm (ShareLoc), _sml.mat (SMAP, read only)")


def add_table_args(p: argparse.ArgumentParser, *, out: bool = True, out_help: str = "output table",
                   out_type: Callable[[str], Path] | None = None) -> None:
    """LOCS, --out (a table named as LOCS; or ``out_type``'s file, e.g. a suffix check), --camera-px-size and
    --frame-origin."""
    p.add_argument("locs", type=Path, help=f"localization table: {FORMATS_HELP}")
    if out:
        p.add_argument("--out", type=out_type or Path, required=True,
                       help=out_help if out_type else f"{out_help} (format by name, as LOCS)")
    writes_table = out and out_type is None  # render, frc, report read a table but write none
    p.add_argument("--camera-px-size", type=positive_float, default=None, metavar="NM",
                   help="camera pixel size in nm: needed to read ThunderSTORM pixel columns, Picasso files without a "
                        "sidecar, DECODE files without px_size" + (", and to write Picasso .hdf5" if writes_table else ""))
    p.add_argument("--frame-origin", type=int, choices=[0, 1], default=None,
                   help="first frame number as written in LOCS (frames read as frame - 1 with 1); default: the "
                        "format's own (0 for plexloc, Picasso, DECODE; 1 for ThunderSTORM, SMAP and an SMLM Challenge "
                        ".csv; a .smlm file not written by plexloc: 1 when its smallest frame is >= 1, else 0, with a "
                        "warning that it guessed)")


def read(args: argparse.Namespace):
    from plexloc.io.formats import format_of, read_locs

    options = {}
    if args.camera_px_size is not None and format_of(args.locs) in ("thunderstorm", "picasso", "h5"):
        if format_of(args.locs) != "h5" or _is_decode(args.locs):
            options["px_size_nm"] = args.camera_px_size
    if getattr(args, "frame_origin", None) is not None:
        options["frame_origin"] = args.frame_origin
    return read_locs(args.locs, **options)


def _is_decode(path: Path) -> bool:
    from plexloc.io.foreign import is_decode_h5

    return is_decode_h5(path)


def write(table, path: Path, args: argparse.Namespace) -> None:
    from plexloc.io.formats import write_locs

    write_locs(table, path, px_size_nm=args.camera_px_size)
