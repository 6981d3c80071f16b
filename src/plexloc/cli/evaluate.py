"""``plexloc evaluate TRUTH PRED [--dim 2|3] [--json OUT] [--px-size NM] [--max-lat NM] [--max-ax NM]
[--voxel-ji SX SY SZ [--voxel-origin X Y Z] [--voxel-shape NX NY NZ]]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import finite_float, positive_float, positive_int
from plexloc.cli._locs import FORMATS_HELP

#: --max-ax when not given (nm): the SMLM Challenge's axial match threshold
MAX_AX_NM = 500.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score localizations against ground truth (SMLM Challenge 2016 metrics)",
        description="Match predicted localizations to ground truth frame by frame (minimum-cost assignment "
        "within --max-lat nm laterally and, in 3D, --max-ax nm axially) and report Jaccard index, recall, "
        "precision, RMSEs, efficiencies and biases (SMLM Challenge 2016, Sage et al. 2019); colour accuracy "
        "and rejection when both tables have a 'color' column; the gridding artefact with --px-size. "
        "Tables in any format plexloc reads, by file name (as plexloc convert), with frame, x, y, z and photons.",
    )
    p.add_argument("truth", type=Path, help=f"ground-truth table: {FORMATS_HELP}")
    p.add_argument("pred", type=Path, help="predicted localizations (any of those formats)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=None,
                   help="2 ignores z; 3 matches and scores z too (default: 3 where the truth's z varies and the "
                   "predictions have a z, else 2; a table without z reads as z NaN or as 0 in every row)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the scores as JSON here")
    # --px-size <= 0: the library's InputError (exit code 2 returned); NaN and inf are refused here
    p.add_argument(
        "--px-size", "--camera-px-size", type=finite_float, default=None, metavar="NM",
        help="camera pixel size in nm (> 0), for the gridding artefact; also reads tables in pixels (ThunderSTORM "
             "pixel columns, Picasso files without a sidecar, DECODE files without px_size)"
    )
    p.add_argument("--max-lat", type=positive_float, default=250.0, metavar="NM", help="lateral match threshold (default 250)")
    # default None: given with --dim 2 it is refused (2D matching has no axial limit; it was ignored without a word)
    p.add_argument("--max-ax", type=positive_float, default=None, metavar="NM",
                   help=f"axial match threshold, 3D only (default {MAX_AX_NM:g}; refused with --dim 2)")
    p.add_argument("--voxel-ji", type=positive_float, nargs=3, default=None, metavar=("SX", "SY", "SZ"),
                   help="also the voxel-level Jaccard index (Aritake et al., seed 002) with voxels of SX x SY x SZ nm "
                   "(their quad-plane grid: 192 192 400)")
    p.add_argument("--voxel-origin", type=finite_float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                   help="corner of the voxel grid in nm (default 0 0 -SZ/2: axial voxel k centred on z = k SZ)")
    p.add_argument("--voxel-shape", type=positive_int, nargs=3, default=None, metavar=("NX", "NY", "NZ"),
                   help="voxels of the target space (e.g. 64 64 4); points outside are left out (default: unbounded)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from plexloc.evaluate.metrics import _check_px, evaluate_matching, match
    from plexloc.cli._common import check_outputs, write_json
    from plexloc.cli import _locs

    if args.max_ax is not None and args.dim == 2:
        from plexloc.errors import InputError

        raise InputError(f"--max-ax {args.max_ax:g} applies to 3D matching only, and --dim 2 ignores z; drop --max-ax "
                         "or score in 3D (--dim 3)")
    check_outputs(args.json)

    # any table format by name, as the post-processing commands read them (read_table knew plexloc .csv/.h5 only)
    truth, pred = (_locs.read(argparse.Namespace(locs=path, camera_px_size=args.px_size, frame_origin=None))
                   for path in (args.truth, args.pred))
    _warn_if_swapped(truth, pred, args.truth, args.pred)
    dim = args.dim
    no_pred_z = _no_z(pred)
    if dim is None:  # a 2D truth (z 0 everywhere) scored in 3D reports an efficiency eff_3d that means nothing
        z = np.asarray(truth["z_nm"], float) if "z_nm" in truth else np.zeros(0)
        z = z[np.isfinite(z)]
        truth_z = bool(z.size and float(np.ptp(z)) > 0)
        # a 2D table against a 3D truth: its z is NaN (an error below) or, read from a format without z (ThunderSTORM,
        # Picasso, SMAP), 0 in every row, scored as z = 0 (an axial RMSE of the truth's own z spread, and the emitters
        # beyond 500 nm of the focus missed): scored in 2D, and said
        dim = 3 if truth_z and no_pred_z is None else 2
        why = ("the truth's z varies" if dim == 3 else "the truth has no z" if not truth_z
               else f"the truth's z varies, but the predictions have none: {no_pred_z}")
        print(f"scored in {dim}D ({why}; --dim to choose)")
        if dim == 2 and args.max_ax is not None:
            print(f"warning: --max-ax {args.max_ax:g} is not used: scored in 2D ({why}); --dim 3 to "
                  "match z within it", file=sys.stderr)
    elif dim == 3 and no_pred_z is not None and not np.isnan(np.asarray(pred["z_nm"], float)).any():
        print(f"warning: {args.pred}: the predictions have no z ({no_pred_z}), so the axial scores measure the truth's "
              "own z spread; --dim 2 scores them laterally", file=sys.stderr)
    # metrics.evaluate's steps (the pixel size refused before the matching): the matching is wanted again for the
    # gridding's noise level below
    _check_px(args.px_size)
    matching = match(truth, pred, dim=dim, max_lat_nm=args.max_lat,
                     max_ax_nm=MAX_AX_NM if args.max_ax is None else args.max_ax)
    metrics = evaluate_matching(truth, pred, matching, dim=dim, px_size_nm=args.px_size)
    print(metrics.format_table())
    if ("color" in truth) != ("color" in pred):  # the colour scores need both (they were left out without a word)
        has, lacks = (args.truth, args.pred) if "color" in truth else (args.pred, args.truth)
        print(f"note: no colour scores: {has} has a 'color' column but {lacks} has none (plexloc color assigns one)",
              file=sys.stderr)
    from plexloc.evaluate.metrics import color_label_mismatch

    permuted = color_label_mismatch(truth, pred, matching)  # 1 % colour accuracy for colours numbered the other way
    if permuted is not None:
        print(f"warning: {args.pred} against {args.truth}: {permuted}", file=sys.stderr)
    if metrics.gridding_dev_x is not None and len(pred):
        # the bare deviation read as gridding where it was counting noise (the demo fit: 0.19 / 0.20, its truth table
        # 0.15 / 0.14); the same histograms at periods other than the pixel's give the noise level, over the same
        # rows: the matched predictions, as gridding_dev_x/y (over all of them, fewer matched than predicted read as
        # gridding: 600 of 4,000 uniform positions matched, 3 of 4 seeds 'above counting noise')
        from plexloc.evaluate.gridding import gridding_check

        tp = matching.tp_pred
        check = gridding_check(pred["x_nm"][tp], pred["y_nm"][tp], float(args.px_size))
        print(f"gridding: {check.verdict.split(':')[0]} (the matched predictions' sub-pixel histograms at 20 periods "
              f"other than the pixel's deviate up to {check.noise:.2f})")

    from plexloc.evaluate.metrics import scale_mismatch

    for line in scale_mismatch(truth, pred):  # pixels or um read as nm: the scores alone do not say so
        print(f"warning: {args.pred} against {args.truth}: {line}", file=sys.stderr)
    from plexloc.evaluate.metrics import merged_rows_note

    merged = merged_rows_note(pred)  # a merged table scored per frame: JI and photons mean nothing, without a word
    if merged is not None:
        print(f"warning: {args.pred}: {merged}", file=sys.stderr)
    _warn_if_drift_uncorrected(truth, pred, matching, args.truth, args.pred)
    voxel = {}
    if args.voxel_ji is not None:
        from plexloc.evaluate.voxel import voxel_jaccard

        vj = voxel_jaccard(truth, pred, voxel_nm=args.voxel_ji, origin_nm=args.voxel_origin, shape=args.voxel_shape)
        voxel = vj.to_dict()
        print(f"voxel_jaccard  {vj.jaccard:.2f} %  (tp {vj.tp}, fp {vj.fp}, fn {vj.fn} voxels of "
              f"{' x '.join(f'{v:g}' for v in vj.voxel_nm)} nm)")
        if vj.shape is not None and (vj.truth_outside or vj.pred_outside):  # left out of the score, and said only
            # in --json's voxel_*_outside: README's 64 x 64 x 4 box dropped 29 % of a -500..500 nm sample's truth
            box = ", ".join(f"{a} {o:g}..{o + n * v:g}"
                            for a, o, n, v in zip("xyz", vj.origin_nm, vj.shape, vj.voxel_nm))
            print(f"warning: the voxel Jaccard index leaves out {vj.truth_outside} of {len(truth)} truth rows and "
                  f"{vj.pred_outside} of {len(pred)} predicted rows, outside its box ({box} nm: --voxel-shape "
                  f"{' '.join(str(n) for n in vj.shape)} from " + ("--voxel-origin" if args.voxel_origin is not None
                                                                   else "the default origin")
                  + "); move or grow the box (--voxel-origin, --voxel-shape) to score them", file=sys.stderr)
    elif args.voxel_origin is not None or args.voxel_shape is not None:
        from plexloc.errors import InputError

        raise InputError("--voxel-origin and --voxel-shape need --voxel-ji SX SY SZ")
    if args.json is not None:
        data = {**metrics.to_dict(), **voxel, "truth_file": str(args.truth), "pred_file": str(args.pred)}
        write_json(data, args.json)
    return 0


def _no_z(table) -> str | None:
    """Why ``table`` holds no z (a 2D table), else ``None``: ``z_nm`` NaN in every row, or one value in every row of two
    or more (a format without z reads as 0). A table without rows has a z for this purpose (nothing to say)."""
    import numpy as np

    if not len(table):
        return None
    z = np.asarray(table["z_nm"], float)
    if np.isnan(z).all():
        return "z_nm NaN in every row"
    if len(z) >= 2 and np.isfinite(z).all() and float(np.ptp(z)) == 0:
        return f"z_nm {float(z[0]):g} in every row"
    return None


#: columns only a fit writes (a network's probability and uncertainties, an MLE fit's bounds): a truth table has none
_FIT_COLUMNS = ("prob", "sigma_x_nm", "crlb_x_nm")


def _warn_if_swapped(truth, pred, truth_path, pred_path) -> None:
    """The arguments in the wrong order (`evaluate locs.csv truth.csv`) scored silently with truth and prediction
    exchanged: recall read as precision, and the truth's count the fit's. A first table with a fit's columns and a
    second without is said."""
    import sys

    fit_cols = [c for c in _FIT_COLUMNS if c in truth]
    if fit_cols and not any(c in pred for c in _FIT_COLUMNS):
        print(f"warning: the ground truth {truth_path} has columns only a fit writes ({', '.join(fit_cols)}) and the "
              f"predictions {pred_path} have none: were the two swapped? The order is plexloc evaluate TRUTH PRED",
              file=sys.stderr)


def _warn_if_drift_uncorrected(truth, pred, matching, truth_path: Path, pred_path: Path) -> None:
    """A simulated movie's truth.csv holds the sample's own positions, its truth_drift.csv beside it the stage drift
    the frames show: a table scored without its drift correction had the drift in its RMSE and biases (46 nm where the
    corrected table read 20) and nothing said so. Where the matched errors follow that drift, it is said."""
    import sys

    import numpy as np

    from plexloc.evaluate.metrics import drift_in_errors

    path = Path(truth_path).parent / "truth_drift.csv"
    if not path.is_file():
        return
    try:
        data = np.genfromtxt(path, delimiter=",", names=True)
        frames = np.asarray(data["frame"], np.int64).ravel()
        drift = np.column_stack([np.asarray(data[c], float).ravel() for c in ("x_nm", "y_nm", "z_nm")])
    except (OSError, ValueError) as err:  # not the drift file plexloc simulate writes: said, and not used
        print(f"warning: {path} beside the truth is not a drift table (frame, x_nm, y_nm, z_nm): {err}; the scores "
              "are not checked for an uncorrected drift", file=sys.stderr)
        return
    slope = drift_in_errors(truth, pred, matching, frames, drift)
    if slope is None or slope < 0.5:
        return
    axes = 2 if matching.dim == 2 else 3
    span = np.ptp(drift[:, :axes], axis=0)
    print(f"warning: the errors of {pred_path} follow the stage drift of {path} ({slope:.2f} of it; the drift spans "
          + ", ".join(f"{v:.0f} nm in {a}" for a, v in zip("xyz", span))
          + f"): {truth_path} holds the sample's own, drift-free positions, so the RMSE and biases above include the "
          "drift; score the drift-corrected table (plexloc drift, or plexloc process's locs_dc.csv)", file=sys.stderr)
