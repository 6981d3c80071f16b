"""``plexloc evaluate TRUTH PRED [--dim 2|3] [--json OUT] [--px-size NM] [--max-lat NM] [--max-ax NM]
[--truth-frame-origin 0|1] [--pred-frame-origin 0|1] [--frames FIRST LAST]
[--voxel-ji SX SY SZ [--voxel-origin X Y Z] [--voxel-shape NX NY NZ]]``."""

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
        "and rejection when both tables have a 'color' column; the gridding artefact with --px-size. "
        "Tables in any format plexloc reads, by file name (as plexloc convert), with frame, x, y, z and photons, "
        "or the SMLM Challenge's CSV (a .csv in its column order: index, frame, x, y, z in nm, intensity; with its "
        "header Ground-truth,frame,xnano,ynano,znano,intensity or none; frames from 1). A warning says where the two "
        "tables look numbered a frame apart, where one has rows in frames beyond the other's (more than the fit's own "
        "recall and false positives explain), or where PRED looks in other coordinates than TRUTH (offset, x and y "
        "exchanged, x or y mirrored, z of the other sign).",
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

    import numpy as np

    from plexloc.evaluate.metrics import _check_px, evaluate_matching, match
    from plexloc.cli._common import check_outputs, write_json

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
        (truth, pred), scored = _in_frames(truth, pred, args.frames, args.truth)
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
    if dim == 3 and scored is not None:  # a z unknown in a scored row named by the row and line of the file as read
        # (the matching names them in the frames kept: 'row 5', 'line 7' for the file's row 25, line 27)
        from plexloc.evaluate.matching import _check_finite

        for name, (table, rows) in zip(("ground-truth", "predicted"), scored):
            _check_finite(table, ("x_nm", "y_nm", "z_nm"), name, 3, scored=rows)
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

    scaled = scale_mismatch(truth, pred)
    for line in scaled:  # pixels or um read as nm: the scores alone do not say so
        print(f"warning: {args.pred} against {args.truth}: {line}", file=sys.stderr)
    from plexloc.evaluate.metrics import merged_rows_note

    merged = merged_rows_note(pred)  # a merged table scored per frame: JI and photons mean nothing, without a word
    if merged is not None:
        print(f"warning: {args.pred}: {merged}", file=sys.stderr)
    _warn_if_drift_uncorrected(truth, pred, matching, args.truth, args.pred)
    _warn_frames(truth, pred, matching, args, truth_origin, pred_origin, read, scaled=bool(scaled))
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
        if args.frames is not None:
            data["frames"] = list(args.frames)
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


#: the first frame number each format writes (its reader subtracts it); .smlm files say theirs or it is guessed
_FORMAT_ORIGIN = {"thunderstorm": 1, "smap": 1}


def _read(path: Path, origin: int | None, px_size: float | None, which: str):
    """``path`` read as ``plexloc evaluate`` reads a table, and the first frame number it was read with: any format
    by name (the post-processing commands' :func:`plexloc.cli._locs.read`), or the SMLM Challenge's CSV (a .csv in the
    challenge's column order); ``origin``, where given, the first frame number as written (the frames read as
    ``frame - origin``)."""
    import sys

    import numpy as np

    from plexloc.cli import _locs
    from plexloc.errors import InputError
    from plexloc.evaluate.challenge import challenge_layout, read_challenge_csv
    from plexloc.io.formats import format_of

    fmt = format_of(path)
    if fmt == "csv" and path.is_file() and challenge_layout(path) is not None:
        first = 1 if origin is None else origin
        table = read_challenge_csv(path, frame_origin=first)
        print(f"note: read {path} as an SMLM Challenge table (index, frame, x, y, z in nm, intensity in photons; "
              f"frames numbered from {first}" + (", read as frame - 1" if first else "") + ")", file=sys.stderr)
        return table, first
    if fmt == "smlm":  # the reader takes the origin itself (its own, or guessed and said)
        return _locs.read(argparse.Namespace(locs=path, camera_px_size=px_size, frame_origin=origin)), origin
    table = _locs.read(argparse.Namespace(locs=path, camera_px_size=px_size, frame_origin=None))
    own = _FORMAT_ORIGIN.get(fmt, 0)
    if origin is None or origin == own:
        return table, own
    frames = np.asarray(table["frame"], np.int64) + own - origin
    if frames.size and frames.min() < 0:
        row = int(np.argmin(frames))
        raise InputError(f"column 'frame' holds {int(table['frame'][row]) + own} (row {row}, counted from 0), below "
                         f"the first frame number {origin} that --{which}-frame-origin {origin} gives it: the table "
                         f"numbers its frames from {own}, as its format does; leave the option out", source=path)
    return table.with_columns(frame=frames), origin


def _in_frames(truth, pred, frames, truth_path):
    """--frames FIRST LAST: the rows of both tables in those frames, said; and each table as read with the mask of
    those rows. Frames that hold no truth row are refused (every prediction a false positive: JI 0 with exit 0)."""
    import sys

    import numpy as np

    from plexloc.errors import InputError
    from plexloc.evaluate.frames import frames_mask

    first, last = frames
    if first > last:
        raise InputError(f"--frames {first} {last}: FIRST must not be above LAST")
    masks = [frames_mask(table, first, last) for table in (truth, pred)]
    t, p = truth[masks[0]], pred[masks[1]]
    if len(truth) and not len(t):
        f = np.asarray(truth["frame"], np.int64)
        raise InputError(f"--frames {first} {last}: the truth has no rows in those frames (it spans frames "
                         f"{int(f.min())}..{int(f.max())}, numbered from 0 as read); give frames within them",
                         source=truth_path)
    print(f"note: scored frames {first}..{last} only (--frames): {len(t)} of {len(truth)} truth rows, {len(p)} of "
          f"{len(pred)} predicted rows", file=sys.stderr)
    return (t, p), ((truth, masks[0]), (pred, masks[1]))


def _warn_frames(truth, pred, matching, args, truth_origin, pred_origin, read, *, scaled: bool = False) -> None:
    """Tables numbered a frame apart, or a truth with frames the predictions never reach (or the reverse): the pairs
    are made within a frame only, so each cost JI without a word (module plexloc.evaluate.frames). Said, with the
    numbers and the option that fixes it. ``read``: the two tables as read (before --frames); ``scaled``: a scale
    mismatch was said (pixels or um read as nm), which other coordinates do not explain."""
    import sys

    import numpy as np

    from plexloc.evaluate.frames import frame_coverage, frame_shift, in_frames
    from plexloc.evaluate.metrics import evaluate_matching, match

    max_ax = matching.max_ax_nm
    shift = frame_shift(truth, pred, dim=matching.dim, max_lat_nm=matching.max_lat_nm, max_ax_nm=max_ax)
    if shift is not None:
        lower = shift.shift < 0  # PRED's frames one lower match better
        # the options that move them so: a table read from 0 read from 1 moves its frames one lower (where it has no
        # frame 0: refused), and the reverse. An option in force already was advised (--pred-frame-origin 0 for a
        # plexloc table), and --truth-frame-origin 1 for a truth with a frame 0 (refused when given)
        def from_one(table, origin) -> bool:
            return origin in (0, None) and bool(len(table)) and int(np.min(table["frame"])) >= 1

        fixes = ([("pred", 1, from_one(read[1], pred_origin)), ("truth", 0, truth_origin == 1)] if lower else
                 [("pred", 0, pred_origin == 1), ("truth", 1, from_one(read[0], truth_origin))])
        fix = " or ".join(f"--{which}-frame-origin {o} ({which.upper()} numbered from {o})"
                          for which, o, ok in fixes if ok)
        fix = (f"score again with {fix}" if fix else
               "the frame-origin options read each table from 0 or 1 and cannot move them further: renumber the "
               f"frames of one table (PRED's frames {'- 1' if lower else '+ 1'})")
        of = (f", over the first {shift.n_truth} of {len(truth)} truth rows" if shift.n_truth < len(truth) else "")
        print(f"warning: {args.pred} against {args.truth}: the two tables look numbered a frame apart: with the "
              f"predictions' frames read one {'lower' if lower else 'higher'}, {shift.tp_shifted} pairs match instead "
              f"of {shift.tp} (JI {shift.jaccard_shifted:.2f} % instead of {shift.jaccard:.2f} %{of}); the scores "
              f"above match frames as numbered: {fix}", file=sys.stderr)
        return  # the frame spans of tables numbered apart say nothing more
    if not scaled:  # a table in pixels read as nm also matched more moved by some 'offset' (x -4499 nm): a second,
        # contrary advice
        _warn_coordinates(truth, pred, matching, args)
    cover = frame_coverage(truth, pred)
    if cover is None:
        return
    (t0, t1), (p0, p1) = cover.truth_frames, cover.pred_frames
    many_truth = cover.truth_outside >= max(10, 0.05 * cover.n_truth)
    many_pred = cover.pred_outside >= max(10, 0.05 * cover.n_pred)
    if not (many_truth or many_pred):
        return
    # the frames both tables span, scored alone: the fit's recall and false positives there tell rows beyond them
    # that a fit of all frames leaves so (a sparse truth, a poor fit: the first and last rows all missed; a truth whose
    # last frames hold no emitters, and the fit's false positives in them) from frames the fit never saw or a truth of
    # another movie (1 of 4 fits at 8 % recall of a sparse truth, and 3 of 3 truths ending before the movie with a fit
    # of false positives in every frame, were warned without this)
    first, last = max(t0, p0), min(t1, p1)
    m = None
    if first <= last:
        t, p = in_frames(truth, first, last), in_frames(pred, first, last)
        m = evaluate_matching(t, p, match(t, p, dim=matching.dim, max_lat_nm=matching.max_lat_nm, max_ax_nm=max_ax),
                              dim=matching.dim)
    if many_truth:
        # at the fit's recall in the frames it has, the rows beyond them would have given this many pairs
        found = None if m is None or not m.n_truth else m.tp / m.n_truth * cover.truth_outside
        if found is None or found >= _MIN_EXPECTED:
            inside = "" if found is None else (
                f" (at its recall over frames {first}..{last}, {m.recall:.2f} %, it would have found about "
                f"{found:.0f} of them); over frames {first}..{last} alone JI {m.jaccard:.2f} %: score them with "
                f"--frames {first} {last}")
            print(f"warning: {args.truth} has {cover.truth_outside} of {cover.n_truth} rows in frames beyond the "
                  f"predictions' {p0}..{p1} (the truth spans {t0}..{t1}): they count as missed (fn), as if the fit saw "
                  f"those frames and found nothing{inside}", file=sys.stderr)
    if many_pred:
        # the fit's false positives per frame in the truth's frames, over the frames beyond them that it has rows in
        beyond = max(0, t0 - p0) + max(0, p1 - t1)
        expected = None if m is None else m.fp / (last - first + 1) * beyond
        if expected is None or cover.pred_outside > 1.5 * expected + 3.0 * np.sqrt(expected):
            rate = "" if expected is None else (
                f", where its false positives in the truth's frames would make about {expected:.0f}")
            print(f"warning: {args.pred} has {cover.pred_outside} of {cover.n_pred} rows in frames beyond the truth's "
                  f"{t0}..{t1} (the predictions span {p0}..{p1}{rate}): they count as false positives; is "
                  f"{args.truth} the truth of the movie that was fitted, and numbered as its frames?", file=sys.stderr)


#: rows beyond the other table's frames are said where a fit of them at its recall elsewhere would have found this many
#: (none found by chance: about e^-10)
_MIN_EXPECTED = 10.0


def _warn_coordinates(truth, pred, matching, args) -> None:
    """PRED in other coordinates than TRUTH (an offset: a region of interest's corner or another origin; x and y
    exchanged; x or y mirrored, counted from the image's other edge; z of the other sign) matched almost nothing
    without a word (module plexloc.evaluate.alignment)."""
    import sys

    from plexloc.evaluate.alignment import coordinate_mismatch

    found = coordinate_mismatch(truth, pred, dim=matching.dim, max_lat_nm=matching.max_lat_nm,
                                max_ax_nm=matching.max_ax_nm)
    if found is None:
        return

    def change(*moves: tuple[int, str]) -> str:
        """'subtract 1600 nm from the predictions' x_nm and 800 nm from their y_nm' ('add ... to' where negative)"""
        words, verb = [], None
        for v, col in ((v, col) for v, col in moves if v):
            said = "subtract" if v > 0 else "add"
            words.append(("" if said == verb else said + " ") + f"{abs(v)} nm {'from' if v > 0 else 'to'} "
                         + ("their" if words else "the predictions'") + f" {col}")
            verb = said
        return " and ".join(words)

    def pixels(*values: int) -> str:
        return "" if args.px_size is None else f" ({', '.join(f'{v / args.px_size:+.2f}' for v in values)} pixels)"

    dx, dy = (None, None) if found.offset_nm is None else (int(round(v)) for v in found.offset_nm)  # (no '-0 nm')
    near = args.max_lat / 2  # an offset within it is a bias (bias_x, bias_y), not said
    if found.kind == "offset":
        what = f"the predictions' positions look offset from the truth's by x {dx:+d} nm, y {dy:+d} nm{pixels(dx, dy)}"
        how = "moved back by it"
        fix = (f"is one table measured from a region of interest's corner, or from another origin? Give both in the "
               f"same coordinates ({change((dx, 'x_nm'), (dy, 'y_nm'))})")
    elif found.kind == "swap":
        what = "the predictions' x and y look exchanged" + (
            "" if dx is None else f" and offset (x {dx:+d} nm, y {dy:+d} nm{pixels(dx, dy)} once exchanged)")
        how = "with x_nm and y_nm swapped" + ("" if dx is None else " and moved back")
        fix = ("exchange the predictions' x_nm and y_nm columns (x runs along the image columns, conventions.md)"
               + ("" if dx is None else f", then {change((dx, 'x_nm'), (dy, 'y_nm'))}"))
    elif found.kind.startswith("mirror"):
        axis, other = ("x", "y") if found.kind == "mirror_x" else ("y", "x")
        c, o = (-dx, dy) if axis == "x" else (-dy, dx)  # truth's axis = c - the predictions'
        what = (f"the predictions' {axis} looks mirrored: the truth's {axis} is about {c} nm{pixels(c)} minus theirs"
                + (f", and {other} offset by {o:+d} nm" if abs(o) > near else ""))
        how = f"with {axis}_nm mirrored"
        fix = (f"replace the predictions' {axis}_nm by {c} - {axis}_nm (conventions.md: x and y count from the outer "
               f"corner of pixel (0, 0); another tool may count {axis} from the image's other edge)"
               + (f", then {change((o, f'{other}_nm'))}" if abs(o) > near else ""))
    else:
        what = "the predictions' z looks of the opposite sign"
        how = "with z_nm negated"
        fix = ("negate the predictions' z_nm (z > 0 is away from the objective, conventions.md; another tool may count "
               "it towards the objective)")
    of = f", over the first {found.n_truth} of {len(truth)} truth rows" if found.n_truth < len(truth) else ""
    print(f"warning: {args.pred} against {args.truth}: {what}: {how}, {found.tp_changed} pairs match instead of "
          f"{found.tp} (JI {found.jaccard_changed:.2f} % instead of {found.jaccard:.2f} %{of}); {fix}", file=sys.stderr)
