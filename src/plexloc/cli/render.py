"""``plexloc render LOCS --out IMAGE.(png|tif) [--pixel-size NM] [--color-by z|color]``."""

from __future__ import annotations

import argparse
import sys

from plexloc.cli._common import check_outputs, colormap_name, finite_float, path_with_suffix, positive_float
from plexloc.cli._locs import add_table_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="super-resolution image (histogram or Gaussian), PNG or 16-bit TIFF",
        description="Render the localizations: 'histogram' (counts per pixel) or 'gaussian' (each localization a "
        "Gaussian of its own sigma_x_nm/sigma_y_nm, a maximum-likelihood fit's crlb_x_nm/crlb_y_nm, or --sigma for all). --color-by z tints by depth "
        "(colormap), --color-by color by colour channel. .tif/.tiff: 16-bit data, calibrated in nm and localizations per pixel "
        "(no scale bar unless --scale-bar); .png: 8-bit, with a scale bar (its length is printed); a coloured .png gets "
        "its key beside it, OUT_legend.png (the z colour scale in nm, or the colour channels, and the scale bar's length); "
        "a grey .png removes an earlier render's OUT_legend.png.",
    )
    add_table_args(p, out=False)
    p.add_argument("--out", type=path_with_suffix(".png", ".tif", ".tiff"), required=True,
                   help="image file, .png, .tif or .tiff")
    p.add_argument("--pixel-size", type=positive_float, default=10.0, metavar="NM", help="image pixel in nm (default 10)")
    p.add_argument("--method", choices=("histogram", "gaussian"), default=None,
                   help="default: gaussian when every row has a finite sigma_x_nm/sigma_y_nm (a maximum-likelihood "
                   "fit's table: crlb_x_nm/crlb_y_nm), or with --sigma; else histogram (with a note)")
    p.add_argument("--sigma", type=positive_float, default=None, metavar="NM",
                   help="one Gaussian sigma for all localizations (> 0)")
    p.add_argument("--color-by", choices=("z", "color"), default=None,
                   help="z: tint by depth (colormap --cmap over --z-range); color: one hue per colour channel (the color "
                   "column of plexloc color; rejected rows grey); default: a grey image")
    p.add_argument("--cmap", type=colormap_name, default=None,
                   help="matplotlib colormap name for --color-by z (default turbo)")
    p.add_argument("--z-range", type=finite_float, nargs=2, default=None, metavar=("Z0", "Z1"),
                   help="z in nm at the colormap's start and end, Z0 < Z1 (--color-by z; default: the 1 %% and 99 %% "
                   "quantiles of z)")
    add_extent_option(p)
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--no-scale-bar", action="store_true", help="no scale bar in a PNG (drawn by default)")
    bar.add_argument("--scale-bar", action="store_true",
                     help="draw the scale bar into a TIFF too (by default a TIFF's pixels stay data: its calibration "
                          "lets Fiji draw one, Analyze > Tools > Scale Bar)")
    p.set_defaults(func=run)


def add_extent_option(p: argparse.ArgumentParser) -> None:
    """``--extent X0 X1 Y0 Y1``, a region in nm (plexloc render's and plexloc frc's); :func:`check_extent` checks it."""
    p.add_argument("--extent", type=finite_float, nargs=4, default=None, metavar=("X0", "X1", "Y0", "Y1"),
                   help="region in nm (default: all localizations)")


def check_extent(extent) -> None:
    """InputError naming ``--extent`` and its values unless X0 < X1 and Y0 < Y1 (None: none given)."""
    from plexloc.errors import InputError

    if extent is not None and not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise InputError("--extent X0 X1 Y0 Y1 needs X0 < X1 and Y0 < Y1, got " + " ".join(f"{v:g}" for v in extent))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from plexloc.cli import _locs
    from plexloc.errors import InputError
    from plexloc.render.image import (default_method, render, render_color, rows_without_sigma, save_image,
                                      sigma_xy_columns)

    if args.z_range is not None and not args.z_range[0] < args.z_range[1]:
        raise InputError(f"--z-range Z0 Z1 needs Z0 < Z1, got {args.z_range[0]:g} {args.z_range[1]:g}")
    check_extent(args.extent)
    # options that do not apply were ignored without a word
    if args.color_by != "z":
        for flag, value in (("--cmap", args.cmap), ("--z-range", args.z_range)):
            if value is not None:
                raise InputError(f"{flag} applies to --color-by z only (got --color-by {args.color_by or 'none'})")
    if args.sigma is not None and args.method == "histogram":
        raise InputError(f"--sigma {args.sigma:g} applies to --method gaussian only (got --method histogram)")
    legend_path = (args.out.with_name(args.out.stem + "_legend.png")
                   if args.color_by and args.out.suffix.lower() == ".png" else None)
    check_outputs(args.out, legend_path)
    table = _locs.read(args)
    if args.color_by == "z" and len(table) and not np.isfinite(table["z_nm"]).any():
        # every row grey under a made-up 0-1 nm colour scale before
        raise InputError("--color-by z: z_nm is NaN in every row (a 2D table has no z); leave --color-by out",
                         source=table.source)
    if args.color_by == "z" and args.z_range is None and len(table):
        zf = np.asarray(table["z_nm"], dtype=np.float64)
        zf = zf[np.isfinite(zf)]
        if len(zf) == 1:  # one row with a z: it was drawn under a made-up 'z from 50 nm to 51 nm' key
            raise InputError(f"--color-by z: z_nm is finite in one row only ({float(zf[0]):g} nm, of {len(table)} "
                             "rows): nothing to colour; leave --color-by out, or give --z-range Z0 Z1 for a scale",
                             source=table.source)
        if len(zf) > 1 and float(zf.min()) == float(zf.max()):
            # a 2D fit's z 0 in every row was drawn in one colour under a made-up "z from 0 to 1 nm" scale
            raise InputError(f"--color-by z: z_nm is {float(zf[0]):g} nm in every row with a z (a 2D table: nothing to "
                             "colour); leave --color-by out, or give --z-range Z0 Z1 for a scale", source=table.source)
    method = args.method or ("gaussian" if args.sigma is not None else default_method(table))
    sigmas = sigma_xy_columns(table)
    if args.method is None and args.sigma is None and method == "histogram" and sigmas is not None:
        # the default: a table with sigma columns some of whose rows have none (NaN) was an error that named no way
        # out; the histogram takes every row, as plexloc report does
        bad = rows_without_sigma(table)
        print(f"plexloc render: note: {int(bad.sum())} of {len(table)} localizations have no finite "
              f"{'/'.join(dict.fromkeys(sigmas))} (first row {int(np.flatnonzero(bad)[0])}): rendered as a histogram "
              "(--method gaussian --sigma NM gives every localization one width)", file=sys.stderr)
    options = {"sigma_nm": args.sigma, "min_sigma_nm": args.pixel_size / 2} if method == "gaussian" else {}
    extent = tuple(args.extent) if args.extent else None
    if args.color_by:
        r = render_color(table, color_by=args.color_by, px_size_nm=args.pixel_size, extent_nm=extent, method=method,
                         cmap=args.cmap or "turbo", z_range_nm=tuple(args.z_range) if args.z_range else None, **options)
    else:
        r = render(table, method=method, px_size_nm=args.pixel_size, extent_nm=extent, **options)
    info = save_image(r, args.out, scale_bar=False if args.no_scale_bar else (True if args.scale_bar else None))
    if args.color_by == "z" and "at_bound" in table and len(table):
        # an MLE fit's rows held on its z bound: their z is the bound, no estimate, drawn in the end colours (14 % of a
        # 3D astigmatic fit at 1 /um^2 read as molecules at the ends of the z range, without a word)
        from plexloc.mle.fit import AT_BOUND_BITS

        on_z = (np.asarray(table["at_bound"]).astype(np.int64) & AT_BOUND_BITS["z"]) != 0
        held = int(np.sum(on_z))
        if held:
            if "n_merged" in table:  # only the merged rows all of whose rows were held sit at the ends
                from plexloc.render.report import held_at_ends

                said = ("hold a localization whose z the fit held on its bound (at_bound & 2; a merged row's z is its "
                        f"rows' mean): {held_at_ends(table, on_z)} of them at the ends,")
            else:
                said = "have z held on the fit's z bound (at_bound & 2: the bound, not an estimate of z),"
            print(f"plexloc render: note: {held} of {len(table)} localizations ({100 * held / len(table):.1f} %) "
                  f"{said} drawn in the colours of the z range's ends; plexloc filter --converged removes them",
                  file=sys.stderr)
    key = None
    if legend_path is not None:
        # a picture's colours need their key: the z scale in nm (or the channels' hues) and the scale bar's length, which
        # were only printed here; the PNG's pixels stay the image
        from plexloc.render.figures import legend_figure, save_png

        png = legend_figure(r, scale_bar_nm=info["scale_bar_nm"])
        if png is not None:
            key = legend_path
            save_png(png, key)
    stale = args.out.with_name(args.out.stem + "_legend.png")
    if key is None and args.out.suffix.lower() == ".png" and stale.is_file():
        # an earlier coloured render's key to this PNG described the image just overwritten: its colours are gone.
        # Only a PNG's (OUT.tif's name is also OUT.png's key, which still describes OUT.png), only that exact file,
        # after the image is written
        try:
            stale.unlink()
            print(f"plexloc render: note: removed {stale}, the key of an earlier coloured render of {args.out} (this "
                  "image has no colours to key)", file=sys.stderr)
        except OSError as e:
            print(f"plexloc render: warning: {stale} is the key of an earlier coloured render of {args.out} and no "
                  f"longer describes it, but could not be removed ({e.strerror or e}); delete it", file=sys.stderr)
    print(f"wrote {args.out}: {r.image.shape[1]} x {r.image.shape[0]} px of {args.pixel_size:g} nm, {method}"
          + (f", scale bar {info['scale_bar_nm']:g} nm" if info["scale_bar_nm"] else
             ", no scale bar (too few pixels for one)" if not args.no_scale_bar and (
                 args.scale_bar or args.out.suffix.lower() == ".png") else "")
          + (f"; {r.legend}" if r.legend else "") + (f"; {r.n_outside} localizations outside" if r.n_outside else "")
          + (f"; 16-bit, grey level 1 = {info['tiff_value_per_level']:.4g} {info['value_unit']} (linear, brightest "
             "pixel 65535)" if "tiff_value_per_level" in info else "") + (f"; legend {key}" if key else ""))
    return 0
