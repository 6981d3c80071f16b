"""``plexloc frc LOCS [--json OUT] [--pixel-size NM] [--extent X0 X1 Y0 Y1] [--figure PNG]``: Fourier ring correlation
resolution."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from plexloc.cli._common import nonnegative_int, path_with_suffix, positive_float
from plexloc.cli._locs import add_table_args
from plexloc.cli.render import add_extent_option, check_extent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "frc",
        help="resolution by Fourier ring correlation of two random halves",
        description="Split the localizations at random into two halves, render both (histogram, --pixel-size nm; a "
        "field wider than 4096 pixels in square tiles whose ring sums are pooled), "
        "correlate their Fourier transforms ring by ring and report the resolution at the 1/7 threshold of the "
        "smoothed curve. Repeated localizations of one molecule count as signal: merge first for a resolution "
        "that does not credit blinking (a table without the n_merged/frame_last columns of plexloc merge whose "
        "localizations repeat in the next frame gets a caveat next to the value). The resolution is lateral: x and y "
        "only; a 3D table's z range is projected into the halves (said next to the value; plexloc filter --z-range "
        "Z0 Z1 first for one slice).",
    )
    add_table_args(p, out=False)
    p.add_argument("--pixel-size", type=positive_float, default=5.0, metavar="NM", help="pixel of the halves (default 5)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the random split, >= 0 (default 0)")
    add_extent_option(p)
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the curve and resolution as JSON")
    p.add_argument("--figure", type=path_with_suffix(".png"), default=None, metavar="PNG",
                   help="write the FRC curve figure (.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, write_json
    from plexloc.render.frc import MIN_LOCALIZATIONS, frc, unmerged_caveat

    from plexloc.errors import InputError

    check_extent(args.extent)
    check_outputs(args.json, args.figure)  # the --figure used to fail after --json was written
    table = _locs.read(args)
    if args.extent is not None:  # the region's localizations (the halves' count and the caveat are of them)
        x, y = table["x_nm"], table["y_nm"]
        table.check_finite(("x_nm", "y_nm"))
        region = table[(x >= args.extent[0]) & (x < args.extent[1]) & (y >= args.extent[2]) & (y < args.extent[3])]
        if len(region) < MIN_LOCALIZATIONS:  # (it said 'the table has 0' of a table of thousands)
            raise InputError(f"--extent {' '.join(f'{v:g}' for v in args.extent)} holds {len(region)} of the table's "
                             f"{len(table)} localizations; FRC needs at least {MIN_LOCALIZATIONS}: give a larger "
                             "region (x0 x1 y0 y1 in nm, the table's x_nm, y_nm)", source=table.source)
        table = region
    res = frc(table, px_size_nm=args.pixel_size, seed=args.seed,
              extent_nm=tuple(args.extent) if args.extent is not None else None)
    value = f"{res.resolution_nm:.1f} nm" if np.isfinite(res.resolution_nm) else "none (no crossing of 1/7)"
    tiles = f", {res.info['tiles']} tiles of {res.info['image_px']} pixels pooled" if "tiles" in res.info else ""
    print(f"FRC resolution: {value} (threshold 1/7, {len(table)} localizations, {res.px_size_nm:g} nm pixels{tiles})")
    if "no_crossing" in res.info:
        print(f"plexloc frc: {args.locs}: no FRC resolution: {res.info['no_crossing']}", file=sys.stderr)
    for key in ("px_grown", "pixel_limited"):  # the pixel that limits or replaced --pixel-size
        if key in res.info:
            print(f"plexloc frc: {args.locs}: note: {res.info[key]}", file=sys.stderr)
    z_span = _z_span(table)
    if z_span is not None:  # a 3D user read the value as the 3D resolution: nothing said it was the x-y projection's
        print(f"lateral (x, y): the localizations' z from {z_span[0]:.0f} to {z_span[1]:.0f} nm is projected; "
              "plexloc filter --z-range Z0 Z1 first gives the resolution of one slice")
    caveat = unmerged_caveat(table)
    if caveat is not None:
        print(f"caveat: {caveat}")
    if args.json is not None:
        write_json({**res.to_dict(), "locs": str(args.locs), "axes": "xy",
                    "z_range_nm": list(z_span) if z_span is not None else None}, args.json)
    if args.figure is not None:
        from plexloc.render.figures import frc_figure, save_png

        save_png(frc_figure(res.q_per_nm, res.frc, res.frc_smooth, res.resolution_nm, res.threshold), args.figure)
    return 0


def _z_span(table) -> tuple[float, float] | None:
    """The finite z range (nm), smallest to largest, of a table whose z varies; None for a 2D table (z NaN or one
    value in every row)."""
    z = np.asarray(table["z_nm"], dtype=np.float64)
    z = z[np.isfinite(z)]
    if len(z) < 2 or float(z.min()) == float(z.max()):
        return None
    return float(z.min()), float(z.max())
