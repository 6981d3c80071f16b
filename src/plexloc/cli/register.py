"""``plexloc register LOCS_ch0 LOCS_ch1 --out T.json``: a channel transform from single-channel fits."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import nonnegative_int, path_with_suffix, positive_float
from plexloc.cli._locs import FORMATS_HELP

#: a residual rms below this (nm) means the two tables hold one channel's positions: two channels' fits of the same
#: molecules differ by their localization precision (5.8 nm rms for 20,000-photon beads)
SAME_POSITIONS_NM = 0.01


#: fewest pairs for the note that the transform is more than a shift (fewer are warned as too few to trust: an affine
#: fits 3 pairs exactly)
NOTE_MIN_PAIRS = 10

#: the fitted linear part's largest entry off the identity above which the note is given: 0.06 degrees or 0.1 % of
#: scale, 50 nm at 50 um. The fitted part, not a significant one: a configuration applies the fitted transform, so
#: a linear part of noise alone (a true shift, 100 pairs with 30 nm noise) put every position 71 nm off (median, 30
#: seeds) at an ROI 36 um from the chip's corner (review of session 51)
NOTE_LINEAR_OFF = 1e-3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "register",
        help="refine the affine transform reference -> channel from localizations of the same movie",
        description="Match localizations of the same frames (global shift from the same-frame displacement "
        "histogram, then mutual nearest neighbours within shrinking radii) and fit an affine transform with "
        "outlier rejection. T.json holds the 3x3 matrix (reference -> channel, r_c = T r_0, nm) and the "
        "residuals in nm. Each table is in its own channel's coordinates.",
    )
    p.add_argument("reference", type=Path, help=f"channel-0 localizations: {FORMATS_HELP}")
    p.add_argument("channel", type=Path, help="localizations of the other channel, fitted alone")
    p.add_argument("--out", type=path_with_suffix(".json"), required=True,
                   help="JSON file (.json) with the transform and residuals")
    p.add_argument("--max-shift", type=positive_float, default=3000.0, metavar="NM",
                   help="largest offset between the channels searched (default 3000 nm)")
    p.add_argument("--camera-px-size", type=positive_float, default=None, metavar="NM",
                   help="camera pixel size in nm: for table formats in pixels (ThunderSTORM, Picasso, DECODE) and "
                   "for --roi-offset")
    p.add_argument("--roi-offset", type=nonnegative_int, nargs=2, default=None, metavar=("X", "Y"),
                   help="chip pixel (x, y) at the corner of the fitted movie (its camera ROI; needs --camera-px-size): "
                   "the transform is then written in camera-chip coordinates, as a configuration's channel transform "
                   "is read; without it, in the tables' own coordinates")
    p.set_defaults(func=run)


def _roi_note(result) -> str | None:
    """The note that the transform (in the tables' own coordinates) is more than a shift, so that a configuration,
    which reads it in camera-chip coordinates, needs ``--roi-offset``; ``None`` where its linear part is within
    :data:`NOTE_LINEAR_OFF` of the identity or fewer than :data:`NOTE_MIN_PAIRS` pairs were used (3 pairs fit an
    affine exactly; such transforms are warned as untrustworthy anyway). Read in chip coordinates without the ROI
    offset ``O``, every position is off by ``(L - I) O``, whether ``L`` is a measured rotation or the noise of the fit:
    the note gives that error per 10 um of ROI offset."""
    import numpy as np

    d = result.transform[:2, :2] - np.eye(2)
    if result.n_used < NOTE_MIN_PAIRS or not np.abs(d).max() > NOTE_LINEAR_OFF:
        return None
    per_10um = 1e4 * float(np.linalg.norm(d, 2))
    return ("the transform is in the tables' own coordinates; a configuration reads transforms in camera-chip "
            "coordinates, which differ where the movie's camera ROI did not start at the chip's corner and the "
            f"transform is more than a shift (its fitted rotation and scale, measured or only the pairs' noise, move a "
            f"position by up to {per_10um:.0f} nm for each 10 um the ROI lies from the chip's corner): give --roi-offset "
            "X Y")


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from plexloc.calibrate.fileformat import chip_transform
    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, write_json
    from plexloc.errors import InputError
    from plexloc.post.registration import register_channels

    if args.roi_offset is not None and args.camera_px_size is None:
        raise InputError("--roi-offset needs --camera-px-size (the chip pixel's size in nm)")
    check_outputs(args.out)
    tables = [_locs.read(argparse.Namespace(locs=path, camera_px_size=args.camera_px_size))
              for path in (args.reference, args.channel)]  # read first: a file not found is named as such
    if args.reference.resolve() == args.channel.resolve():  # an identity with residual 0 nm, "187 of 189 used"
        raise InputError(f"{args.reference} is given as both the reference and the channel: give channel 0's table "
                         "and the other channel's, each fitted alone")
    result = register_channels(*tables, max_shift_nm=args.max_shift, names=(str(args.reference), str(args.channel)))
    out = result.to_dict()
    T = result.transform
    if args.roi_offset is not None:  # positions in the tables are from the movie's corner; configurations use the chip's
        px = args.camera_px_size
        T = chip_transform(T, (args.roi_offset[0] * px, args.roi_offset[1] * px))
        out.update(transform=T.tolist(), transform_in_table_coordinates=result.transform.tolist(),
                   roi_offset_px=list(args.roi_offset), coordinates="camera chip (nm)")
    else:
        out["coordinates"] = "the tables' own (nm from the fitted movie's corner)"
        note = _roi_note(result)
        if note is not None:
            print(f"plexloc register: note: {note}", file=sys.stderr)
    write_json(out, args.out)
    print("T (reference -> channel, nm" + (", camera chip" if args.roi_offset is not None else "") + "):")
    for row in T:
        print("  " + "  ".join(f"{v:12.6f}" for v in row))
    r = result.residual_nm
    print(f"{result.n_used} of {result.n_pairs} matched pairs used; residual rms {r['rms']:.1f} nm, "
          f"median {r['median']:.1f} nm, 90% {r['q90']:.1f} nm; the transform's own uncertainty "
          + (f"{result.uncertainty_nm:.1f} nm (standard error at the field's corners)" if np.isfinite(result.uncertainty_nm)
             else "not known (fewer than 4 pairs used)") + f"; wrote {args.out}")
    if result.warning:
        print(f"plexloc register: warning: {result.warning}", file=sys.stderr)
    if result.n_used > 3 and r["rms"] < SAME_POSITIONS_NM:  # 3 pairs: an affine fits them exactly, residual 0
        print(f"plexloc register: warning: {args.reference} and {args.channel} hold the same positions (residual rms "
              f"{r['rms']:.2g} nm; two channels' fits differ by their localization precision): the same channel's "
              "table was likely given twice; give each channel's own fit", file=sys.stderr)
    return 0

