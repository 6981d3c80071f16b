"""``plexloc evaluate TRUTH PRED [--dim 2|3] [--json OUT] [--px-size NM] [--max-lat NM] [--max-ax NM]
[--truth-frame-origin 0|1] [--pred-frame-origin 0|1] [--frames FIRST LAST]
[--voxel-ji SX SY SZ [--voxel-origin X Y Z] [--voxel-shape NX NY NZ]] [--zscore-slab NM]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import finite_float, nonnegative_int, positive_float, positive_int
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
        "and rejection when both tables have a 'color' column; the gridding artefact with --px-size; where PRED has "
        "sigma_*_nm (else an MLE table's crlb_*_nm) columns, the z-scores (error / sigma) of all matched pairs with "
        "the column each axis read and the pairs it counted (a NaN sigma is left out and counted; --json 'zscores'). "
        "Tables in any format plexloc reads, by file name (as plexloc convert), with frame, x, y, z and photons, "
        "or the SMLM Challenge's CSV (a .csv in its column order: index, frame, x, y, z in nm, intensity; with its "
        "header Ground-truth,frame,xnano,ynano,znano,intensity or none; frames from 1). A warning says where the two "
        "tables look numbered a frame apart, where one has rows in frames beyond the other's (more than the fit's own "
        "recall and false positives explain), or where PRED looks in other coordinates than TRUTH (offset, x and y "
        "exchanged, x or y mirrored, z of the other sign); --json lists those warnings under 'warnings'.",
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
    p.add_argument("--zscore-slab", type=positive_float, default=100.0, metavar="NM",
                   help="in 3D, where the predictions have sigma_x/y/z_nm (an MLE table: crlb_*_nm): the matched "
                        "errors over their predicted sigma (z-scores) per slab of the true z of this thickness "
                        "(default 100 nm), printed and in --json's zscore_slabs; a robust spread of 1 means the "
                        "predicted uncertainty is right there")
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
    # the frame numbers as written: plexloc's tables number from 0, other tools' from 1 (matched a frame apart without
    # a word: JI 40 % for a fit worth 65 %)
    for which, name in (("truth", "TRUTH"), ("pred", "PRED")):
        p.add_argument(f"--{which}-frame-origin", type=int, choices=(0, 1), default=None,
                       help=f"the first frame number of {name} as written: 1 for a table numbered from 1 (read as "
                       "frame - 1); default: the format's own (0 for plexloc, Picasso, DECODE; 1 for ThunderSTORM, "
                       "SMAP and the SMLM Challenge's CSV; a .smlm file's own or, not said, guessed)")
    p.add_argument("--frames", type=nonnegative_int, nargs=2, default=None, metavar=("FIRST", "LAST"),
                   help="score frames FIRST..LAST only (0-based, inclusive; both tables), e.g. the frames a fit saw")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from plexloc.cli._common import check_outputs, write_json
    from plexloc.evaluate.checks import evaluation_checks, pick_dim
    from plexloc.evaluate.metrics import evaluate

    if args.max_ax is not None and args.dim == 2:
        from plexloc.errors import InputError

        raise InputError(f"--max-ax {args.max_ax:g} applies to 3D matching only, and --dim 2 ignores z; drop --max-ax "
                         "or score in 3D (--dim 3)")
    check_outputs(args.json)

    # any table format by name, as the post-processing commands read them (read_table knew plexloc .csv/.h5 only), and
    # the SMLM Challenge's CSV
    (truth, truth_origin), (pred, pred_origin) = (
        _read(path, origin, args.px_size, which) for path, origin, which in (
            (args.truth, args.truth_frame_origin, "truth"), (args.pred, args.pred_frame_origin, "pred")))
    scored = None  # with --frames: each table as read and its rows in those frames
    read = truth, pred
    if args.frames is not None:
        (truth, pred), scored = _in_frames(truth, pred, args.frames)
    dim = args.dim
    if dim is None:  # as the library picks (a 2D truth scored in 3D reports an eff_3d that means nothing; a 2D table
        # against a 3D truth an axial RMSE of the truth's own z spread): said
        dim, why = pick_dim(truth, pred)
        print(f"scored in {dim}D ({why}; --dim to choose)")
        if dim == 2 and args.max_ax is not None:
            print(f"warning: --max-ax {args.max_ax:g} is not used: scored in 2D ({why}); --dim 3 to "
                  "match z within it", file=sys.stderr)
    if dim == 3 and scored is not None:  # a z unknown in a scored row named by the row and line of the file as read
        # (the matching names them in the frames kept: 'row 5', 'line 7' for the file's row 25, line 27)
        from plexloc.evaluate.matching import _check_finite

        for name, (table, rows) in zip(("ground-truth", "predicted"), scored):
            _check_finite(table, ("x_nm", "y_nm", "z_nm"), name, 3, scored=rows)
    # the library's evaluation; its checks (plexloc.evaluate.checks) are printed below with the fixes worded as this
    # command's options
    metrics = evaluate(truth, pred, dim=dim, max_lat_nm=args.max_lat,
                       max_ax_nm=MAX_AX_NM if args.max_ax is None else args.max_ax, px_size_nm=args.px_size,
                       checks=False)
    matching = metrics.matching
    print(metrics.format_table())
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
    zsum = _zscore_summary(pred, matching, dim, args.pred)
    zslabs = _zscore_slabs(truth, pred, matching, dim, args.zscore_slab, args.pred)
    findings = evaluation_checks(truth, pred, matching, truth_name=str(args.truth), pred_name=str(args.pred),
                                 px_size_nm=args.px_size, advice=_advice(read, truth_origin, pred_origin),
                                 truth_path=args.truth)
    for finding in findings:
        print(f"{'note' if finding.note else 'warning'}: {finding.message}", file=sys.stderr)
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
        data = {**metrics.to_dict(), **voxel, "truth_file": str(args.truth), "pred_file": str(args.pred),
                # the checks' warnings (as Metrics.warnings of the library's evaluate): a script reads them here
                "warnings": [f.message for f in findings if not f.note]}
        if zsum is not None:
            data["zscores"] = zsum
        if zslabs is not None:
            data["zscore_slabs"] = zslabs
        if args.frames is not None:
            data["frames"] = list(args.frames)
        write_json(data, args.json)
    return 0


def _zscore_summary(pred, matching, dim: int, pred_path: Path) -> dict | None:
    """The z-scores (error / predicted sigma) of all matched pairs, per axis, printed with the column each read and the
    pairs it counts (:func:`plexloc.evaluate.uncertainty.zscore_summary`; before session 51 a 2D table's predicted
    uncertainty was not judged at all, and the library's error_scores read NaN for an MLE table's crlb_*); None
    without sigma (or crlb) columns or pairs."""
    import sys

    import numpy as np

    from plexloc.errors import InputError
    from plexloc.evaluate.uncertainty import zscore_summary

    if matching.n_tp < 2:
        return None
    try:
        summ = zscore_summary(pred, matching, dim=dim)
    except InputError as e:  # a sigma <= 0: the scores above stand; say why this part is missing
        print(f"note: no z-scores: {e}", file=sys.stderr)
        return None
    if not any(v["column"] for v in summ.values()):
        return None

    def cell(ax: str, v: dict) -> str:
        if v["column"] is None:
            # a column that is there without a finite value (an MLE table whose every z was held on its bound) was
            # called missing
            empty = [c for c in (f"sigma_{ax}_nm", f"crlb_{ax}_nm") if c in pred]
            if empty:
                return f"{ax} - ({' and '.join(empty)} without a finite value in any row)"
            return f"{ax} - (no sigma_{ax}_nm or crlb_{ax}_nm)"
        r, s = v["zscore_rsd"], v["zscore_std"]
        f = (lambda a: "-" if not np.isfinite(a) else f"{a:.2f}")
        return f"{ax} {f(r)} ({f(s)}; {v['column']}, {v['n']} pairs)"

    print(f"z-scores (error / predicted sigma of {pred_path.name}, all matched pairs; robust spread, standard deviation "
          "in brackets; 1: the predicted uncertainty is right): " + "  ".join(cell(ax, v) for ax, v in summ.items()))
    for ax, v in summ.items():
        if v["column"] and v["n_left_out"]:
            bound = (" (an MLE fit's z held on its bound, at_bound & 2: no estimate of z; plexloc filter --converged "
                     "drops them)" if v["column"] == "crlb_z_nm" else "")
            print(f"  ({ax}: {v['n_left_out']} of {matching.n_tp} matched pairs without a finite {v['column']} left "
                  f"out of its z-scores{bound})")
    return summ


def _zscore_slabs(truth, pred, matching, dim: int, slab_nm: float, pred_path: Path) -> list[dict] | None:
    """Issue 10's calibration of the predicted uncertainty per z slab, printed: the z-scores (error / predicted sigma)
    of the matched pairs per ``slab_nm`` of the true z (:func:`plexloc.evaluate.uncertainty.zscore_slabs`; it existed
    and nothing reported it); None in 2D, without sigma (or an MLE table's crlb) columns, or without pairs."""
    import sys

    import numpy as np

    from plexloc.errors import InputError
    from plexloc.evaluate.uncertainty import zscore_slabs
    from plexloc.table import uncertainty_columns

    cols = [c for ax in ("xy", "z") for c in (uncertainty_columns(pred, ax) or ())]
    if dim != 3 or not cols or matching.n_tp < 2:
        return None
    zt = np.asarray(truth["z_nm"], float)[matching.tp_truth]
    zt = zt[np.isfinite(zt)]
    if len(zt) == 0:
        return None
    lo = np.floor(zt.min() / slab_nm) * slab_nm
    n = max(int(np.ceil((zt.max() - lo) / slab_nm)), 1)
    if zt.max() > lo + n * slab_nm:  # (rounding) the last slab holds its top edge, and must reach the top
        n += 1
    if n > 1000:
        print(f"note: no z-scores per z slab: the matched truth spans z {zt.min():g}..{zt.max():g} nm, {n} slabs of "
              f"--zscore-slab {slab_nm:g} nm; give a thicker slab", file=sys.stderr)
        return None
    try:
        slabs = zscore_slabs(pred, matching, truth, lo + slab_nm * np.arange(n + 1))
    except InputError as e:  # a sigma <= 0: the scores above stand; say why this part is missing
        print(f"note: no z-scores per z slab: {e}", file=sys.stderr)
        return None
    print(f"z-scores per {slab_nm:g}-nm slab of the true z (error / {', '.join(cols)} of {pred_path.name}; robust "
          "spread, standard deviation in brackets; 1: the predicted uncertainty is right):")

    def cell(row: dict, ax: str) -> str:
        r, s = row[f"zscore_rsd_{ax}"], row[f"zscore_std_{ax}"]
        # (over fewer pairs than the slab's n where rows have no sigma: an MLE fit's crlb_z_nm is NaN where it held z
        # on its bound, and the spread left those pairs, the worst, out without a word)
        fewer = f"; {row[f'n_{ax}']} pairs" if 0 < row[f"n_{ax}"] < row["n"] else ""
        return f"{ax} {'-' if not np.isfinite(r) else f'{r:.2f}'} ({'-' if not np.isfinite(s) else f'{s:.2f}'}{fewer})"

    for row in slabs:
        print(f"  z {row['z_lo']:+7.0f}..{row['z_hi']:+7.0f} nm: n {row['n']:6d}  "
              + "  ".join(cell(row, ax) for ax in "xyz"))
    xy, z = uncertainty_columns(pred, "xy"), uncertainty_columns(pred, "z")
    for ax, col in (("x", xy and xy[0]), ("y", xy and xy[-1]), ("z", z and z[-1])):
        left = sum(row["n"] - row[f"n_{ax}"] for row in slabs)
        if col and left:
            bound = (" (an MLE fit's z held on its bound, at_bound & 2: no estimate of z; plexloc filter --converged "
                     "drops them)" if col == "crlb_z_nm" else "")
            print(f"  ({ax}: {left} matched pairs without a finite {col} left out{bound}; their errors count in the "
                  f"RMSE above)")
    return slabs


def _advice(read, truth_origin: int | None, pred_origin: int | None):
    """The checks' fixes worded as this command's options (plexloc.evaluate.checks.Advice). ``read``: the two tables
    as read (before --frames), ``truth_origin``, ``pred_origin``: the first frame numbers they were read with."""
    import numpy as np

    from plexloc.evaluate.checks import Advice

    def frame_shift(lower: bool) -> str:
        # the options that move the predictions' frames so: a table read from 0 read from 1 moves its frames one lower
        # (where it has no frame 0: refused), and the reverse. An option in force already was advised
        # (--pred-frame-origin 0 for a plexloc table), and --truth-frame-origin 1 for a truth with a frame 0 (refused
        # when given)
        def from_one(table, origin) -> bool:
            return origin in (0, None) and bool(len(table)) and int(np.min(table["frame"])) >= 1

        fixes = ([("pred", 1, from_one(read[1], pred_origin)), ("truth", 0, truth_origin == 1)] if lower else
                 [("pred", 0, pred_origin == 1), ("truth", 1, from_one(read[0], truth_origin))])
        fix = " or ".join(f"--{which}-frame-origin {o} ({which.upper()} numbered from {o})"
                          for which, o, ok in fixes if ok)
        return (f"score again with {fix}" if fix else
                "the frame-origin options read each table from 0 or 1 and cannot move them further: renumber the "
                f"frames of one table (PRED's frames {'- 1' if lower else '+ 1'})")

    return Advice(frame_shift=frame_shift, frames=lambda first, last: f"--frames {first} {last}", dim2="--dim 2",
                  order="plexloc evaluate TRUTH PRED")


def _read(path: Path, origin: int | None, px_size: float | None, which: str):
    """``path`` read as ``plexloc evaluate`` reads a table (the post-processing commands' :func:`plexloc.cli._locs.read`:
    any format by name, the SMLM Challenge's CSV said in a note), and the first frame number it was read with
    (``origin`` where given: the first frame number as written, the frames read as ``frame - origin``; ``None`` for
    a .smlm file whose reader guessed it)."""
    import sys

    from plexloc.cli import _locs
    from plexloc.evaluate.challenge import challenge_layout
    from plexloc.io.formats import FORMAT_FRAME_ORIGIN, FrameOriginError, format_of

    fmt = format_of(path)
    try:
        table = _locs.read(argparse.Namespace(locs=path, camera_px_size=px_size, frame_origin=origin))
    except FrameOriginError as err:  # named by this command's option
        raise FrameOriginError(err.value, err.row, err.origin, err.own, source=err.source,
                               option=f"--{which}-frame-origin {origin}") from None
    if fmt == "csv" and path.is_file() and challenge_layout(path) is not None:
        first = 1 if origin is None else origin
        print(f"note: read {path} as an SMLM Challenge table (index, frame, x, y, z in nm, intensity in photons; "
              f"frames numbered from {first}" + (", read as frame - 1" if first else "") + ")", file=sys.stderr)
        return table, first
    if fmt == "smlm" or origin is not None:
        return table, origin
    return table, FORMAT_FRAME_ORIGIN.get(fmt, 0)


def _in_frames(truth, pred, frames):
    """--frames FIRST LAST: the rows of both tables in those frames, said; and each table as read with the mask of
    those rows. Frames that hold no truth row are refused (every prediction a false positive: JI 0 with exit 0)."""
    import sys

    from plexloc.evaluate.frames import restrict_frames

    (t, p), masks = restrict_frames(truth, pred, frames, option="--frames")  # an error named by the truth's file
    first, last = frames
    print(f"note: scored frames {first}..{last} only (--frames): {len(t)} of {len(truth)} truth rows, {len(p)} of "
          f"{len(pred)} predicted rows", file=sys.stderr)
    return (t, p), ((truth, masks[0]), (pred, masks[1]))
