"""``plexloc drift LOCS --out OUT [--engine rcc|comet|fiducials]``: estimate and subtract the stage drift."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from plexloc.cli._common import float_at_least, int_at_least, open_probability, path_with_suffix, positive_float
from plexloc.cli._locs import add_table_args
from plexloc.post.drift import RCC_MIN_ROWS_PER_WINDOW
from plexloc.workflow import MAX_DRIFT_NM


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="drift correction (redundant cross-correlation, COMET, or fiducial markers)",
        description="Estimate the drift over the movie from the localizations and subtract it. Engine 'rcc' "
        "(default, built in: redundant cross-correlation) or 'comet' (the optional package comet-smlm, pip install "
        "'plexloc[drift]'; without it the command falls back to 'rcc' and says so). On 168 simulated 2D tables of "
        "1,000-200,000 localizations RCC was the more accurate (1.2-1.8x smaller error) and 5-300x faster; COMET did "
        "better on sparse 3D tables (under about 300 localizations per time window; bench/drift_engines39.py). Engine "
        "'fiducials': from fiducial markers in the sample (beads, gold particles: bright spots localized in most "
        "frames), found in the table or given (--fiducial X,Y, once per marker), frame by frame; their own rows are "
        "removed from the output (--keep-fiducials keeps them). The corrected table gets the columns drift_x_nm, "
        "drift_y_nm, drift_z_nm (what was subtracted); OUT.drift.png shows the drift curve and "
        "--json the numbers.",
    )
    add_table_args(p, out_help="drift-corrected table")
    p.add_argument("--engine", choices=("comet", "fiducials", "rcc"), default="rcc",
                   help="rcc (default): redundant cross-correlation of the windows' rendered images; comet: COMET, "
                   "maximal overlap of pairs of nearby localizations between time windows (optional package "
                   "comet-smlm; falls back to rcc when it is not installed). Both find x and y; z (a 3D "
                   "table) is found after them, for both, from the z differences of pairs of localizations within "
                   "50 nm of each other laterally in different windows. Both say how far the drift is known "
                   "(--split-half) and warn when subtracting it would likely not help. fiducials: from fiducial "
                   "markers (beads, gold particles), per frame: each marker's displacement from its own reference, "
                   "weighted by its scatter, markers that moved on their own left out, smoothed over --smooth frames; "
                   "x, y and z (z where the markers have one). Its uncertainty is the markers' scatter over the "
                   "square root of their number, checked by their agreement")
    p.add_argument("--segments", type=int_at_least(2), default=10,
                   help=f"number of time windows, >= 2 (default 10); RCC needs at least {RCC_MIN_ROWS_PER_WINDOW} "
                   "localizations a window (fewer: the drift is called unreliable, with the number of windows that "
                   "has them)")
    p.add_argument("--max-drift", type=positive_float, default=MAX_DRIFT_NM, metavar="NM",
                   help=f"largest drift searched for (COMET pair radius, RCC window; default {MAX_DRIFT_NM:g})")
    p.add_argument("--max-pairs", type=int_at_least(0), default=None, metavar="N",
                   help="COMET: most pairs of localizations within --max-drift compared (default 20000000; 0: all). "
                   "The pairs grow as the square of the table (a 40 um field of lines: 16 million at 1e5 "
                   "localizations, 271 million at 1e6), and with them COMET's memory (about 24 bytes a pair) and time; "
                   "above the cap every window is sub-sampled at random, and the command says so")
    p.add_argument("--split-half", choices=("yes", "no"), default="yes",
                   help="yes (default): say how far the drift is known, the uncertainty printed: its expected error, the "
                   "RMS over the frames of estimated minus true drift, x and y together, after removing the constant "
                   "offset, with the error of the curve between windows. RCC: from the whole table, each pair of "
                   "windows' cross-correlation peak with the molecules' on-events as the independent units, checked "
                   "against the redundant pairs' residuals (0.84-1.09x the actual error on average per table size, "
                   "1,000-10,000 localizations, simulated tables; about 2x the RCC time); z's likewise, from the "
                   "pairs of localizations near each other in different windows (1.00-1.15x on average, 3D tables of "
                   "500-20,000 localizations; two halves of the table with 2 windows). COMET: the engine run on two halves of the table as well (0.76-1.42x the actual error "
                   "on simulated tables, 1.03-1.12x on average per case), about 1.5-2.5x its time. A drift is called "
                   "unreliable (and plexloc process does not subtract it) when its uncertainty is above 10 nm and "
                   "above the curve's RMS / sqrt(2), or above 30 nm; an unreliable z curve alone: process subtracts x "
                   "and y, not z. no: faster, the same drift, no uncertainty "
                   "(RCC warns only when its pairs of windows disagree, which sees a fraction of the error)")
    add_fiducial_options(p, "--engine")
    p.add_argument("--render-px", type=positive_float, default=20.0, metavar="NM", help="RCC image pixel (default 20)")
    p.add_argument("--backend", default=None, help="COMET backend: cuda, torch or cpu (default: fastest available)")
    p.add_argument("--device", default="auto", help="torch device of the RCC FFTs: auto (default: cuda where there is "
                   "one, else cpu), cpu or cuda[:N]; COMET picks its own with --backend")
    p.add_argument("--figure", type=path_with_suffix(".png"), default=None,
                   help="drift curve, .png (default OUT with suffix .drift.png)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the drift curve as JSON here")
    p.set_defaults(func=run)


def _position(text: str) -> tuple[float, ...]:
    """argparse type of --fiducial: X,Y (nm)."""
    from plexloc.errors import InputError
    from plexloc.post.fiducials import parse_position

    try:
        return parse_position(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(err.reason) from None


def _listed_position(text: str) -> tuple[float, ...]:
    """argparse type of --fiducials: X,Y (nm); a word that is none (the table or a movie it took) says why."""
    try:
        return _position(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"{err}; --fiducials takes every word after it up to the next option: give each marker as --fiducial "
            "X,Y (one position each, anywhere on the command line), or the table or movie(s) before --fiducials"
        ) from None


def _fiducial_options(engine_flag: str) -> list[tuple[str, str, dict]]:
    """The options of the fiducials engine, each ``(flag, the fiducial_settings keyword it sets, add_argument's
    other arguments)``: the one list that :func:`add_fiducial_options` adds, :func:`fiducial_kwargs` reads and
    :func:`check_fiducial_options` names (``engine_flag``: --engine for plexloc drift, --drift-engine for plexloc
    process)."""
    on = f"{engine_flag} fiducials: "
    return [
        ("--fiducial", "positions_nm", dict(
            type=_position, action="append", default=None, metavar="X,Y",
            help=on + "a marker's position, X,Y in nm (the table's x_nm, y_nm, anywhere along its track; "
            "--fiducial=X,Y where X is negative), instead of finding the markers; give it once per marker "
            "(--fiducial 2050,2000 --fiducial 8050,3000), anywhere on the command line. Each is followed through "
            "the movie")),
        ("--fiducials", "positions_nm", dict(
            type=_listed_position, nargs="+", default=None, metavar="X,Y",
            help=on + "the markers' positions as --fiducial gives them, several after one option: it takes every "
            "word after it up to the next option, so the table or movie(s) go before it (or after -- that ends the "
            "positions, every option before that); --fiducial X,Y per marker goes anywhere")),
        ("--fiducial-min-frames", "min_share", dict(
            type=open_probability, default=None, metavar="SHARE",
            help=on + "a marker is localized in at least this share of the frames from its first to its last that "
            "the table has rows in (a bead that bleaches counts for the frames it lasts; every other frame "
            "localized: those), over at least a quarter of the movie (default 0.5)")),
        ("--fiducial-min-brightness", "min_brightness", dict(
            type=float_at_least(0.0), default=None, metavar="RATIO",
            help=on + "a marker's median photons are at least this times the other rows' median (default 2; 0: "
            "any brightness), so that a dense spot of the sample is not taken for one")),
        ("--fiducial-radius", "radius_nm", dict(
            type=positive_float, default=None, metavar="NM",
            help=on + "a marker's localizations lie within this of its position, and its rows are removed within "
            "it (default 150)")),
        ("--smooth", "smooth_frames", dict(
            type=int_at_least(1), default=None, metavar="FRAMES",
            help=on + "the per-frame drift is a weighted moving mean over this many frames (default 5; 1: none, "
            "the drift of every frame on its own; a vibration faster than it is flattened, which the uncertainty "
            "counts and a warning tells: bench/fiducials45.py --fast)")),
        ("--keep-fiducials", "keep_fiducials", dict(
            action="store_true",
            help=on + "keep the markers' own rows in the output (by default they are removed: they would "
            "outshine the sample)")),
    ]


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def add_fiducial_options(p: argparse.ArgumentParser, engine_flag: str) -> None:
    """The options of the fiducials engine (plexloc drift's, and plexloc process's with ``engine_flag``
    --drift-engine); :func:`fiducial_kwargs` reads them."""
    for flag, _, kwargs in _fiducial_options(engine_flag):
        p.add_argument(flag, **kwargs)


def check_fiducial_options(args: argparse.Namespace, engine: str, engine_flag: str, *, no_drift: bool = False
                           ) -> None:
    """InputError where a fiducials option is given for another engine, or with ``no_drift`` (``plexloc process
    --no-drift``): it would be ignored."""
    from plexloc.errors import InputError

    given = [flag for flag, _, _ in _fiducial_options(engine_flag)
             if getattr(args, _dest(flag)) is not None and getattr(args, _dest(flag)) is not False]  # 0 is given
    if given and no_drift:
        raise InputError(f"{', '.join(given)}: option(s) of the drift correction, which --no-drift turns off; drop "
                         "one or the other")
    if given and engine != "fiducials":
        raise InputError(f"{', '.join(given)}: option(s) of {engine_flag} fiducials only, the engine is {engine}; "
                         f"add {engine_flag} fiducials")


def fiducial_kwargs(args: argparse.Namespace) -> dict:
    """The options of :func:`add_fiducial_options` as :func:`plexloc.post.fiducials.fiducial_settings`'s keyword
    arguments (None: its default; the positions of --fiducial and --fiducials together, in that order)."""
    out: dict = {}
    for flag, keyword, _ in _fiducial_options(""):
        value = getattr(args, _dest(flag))
        if keyword == "positions_nm" and out.get(keyword) is not None:
            value = out[keyword] + list(value or [])
        out[keyword] = value
    return out


def _check_lines(info: dict) -> list[str]:
    """The lines of plexloc drift's printout for RCC's 2-window checks (session 51), which reached the --json only:
    the 3-window check (``peak_check``: a sparse table's strong peak, ``strong_peak``, or a peak between chance's and
    the rule's) and the bend below the warning's gate counted in the uncertainty (``bend_below_gate_nm``)."""
    from plexloc.post.drift import RCC_MIN_PEAK_Z, RCC_STRONG_CHECK_ROWS, drift_unreliable

    lines = []
    check = info.get("peak_check")
    if check:
        why = (f"with fewer than {RCC_STRONG_CHECK_ROWS} localizations a window, even a strong cross-correlation peak "
               "can be chance" if check.get("strong_peak") else
               f"the cross-correlation peak stands {info.get('peak_z_min', float('nan')):.1f} standard deviations, "
               f"under the {RCC_MIN_PEAK_Z:g} that needs no check")
        lines.append(f"drift: checked on 3 time windows ({why}): the pairs' shifts "
                     + (f"add up to within {check['closure_nm']:.1f} nm ({check['allowed_nm']:.3g} allowed): passed"
                        if check.get("passed") else
                        f"miss adding up by {check['closure_nm']:.1f} nm ({check['allowed_nm']:.3g} allowed): "
                        "failed, see the warning above"))
    bend = info.get("bend_below_gate_nm")
    if bend is not None and bend >= 0.05:
        # the bend counted can itself make the uncertainty too large for the drift (a wobble whose straight line is
        # short): rcc_drift then warns, and "too weak a sign to warn about" would be false (review, session 51)
        too_large = bool(info.get("unreliable")) and drift_unreliable(info.get("uncertainty_nm", float("nan")),
                                                                      info.get("curve_rms_nm", float("nan")))
        lines.append(f"drift: blocks of the 2 time windows show the drift bends: the straight line between the windows "
                     f"is about {bend:.1f} nm rms off a curve ("
                     + (f"below the gate of a bend warning against the blocks' noise, but counted in the uncertainty, "
                        f"now +-{info['uncertainty_nm']:.0f} nm for a curve of {info['curve_rms_nm']:.0f} nm rms: too "
                        "large, this drift estimate is not reliable, see the warning above"
                        if too_large else
                        "against the blocks' noise, too weak a sign to warn about; counted in the uncertainty")
                     + "). More windows (--segments) follow a bend")
    return lines


def run(args: argparse.Namespace) -> int:
    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, progress, resolve_device, write_json
    from plexloc.post.drift import apply_drift, comet_available, estimate_drift
    from plexloc.io._atomic import atomic_path
    from plexloc.render.figures import drift_figure

    figure = args.figure or Path(str(args.out) + ".drift.png")
    # every output before the estimate (COMET can take minutes): --json used to fail after the table was written
    check_outputs(figure, args.json, table=args.out, px_size_nm=args.camera_px_size)
    check_fiducial_options(args, args.engine, "--engine")
    table = _locs.read(args)
    engine = args.engine
    if engine == "comet" and not comet_available():
        print("plexloc drift: COMET is not installed (pip install 'plexloc[drift]' brings comet-smlm); "
              "using the RCC engine instead", file=sys.stderr)
        engine = "rcc"
    if engine == "comet":
        from plexloc.post.drift import COMET_MAX_PAIRS

        max_pairs = COMET_MAX_PAIRS if args.max_pairs is None else (args.max_pairs or None)
        bar = progress(None, desc="comet", unit="evaluation")

        def comet_progress(stage: str, info: dict) -> None:
            if stage == "evaluation":
                bar.update(1)
                bar.set_postfix_str(f"pass {info.get('pass', 1)}/3, run {info.get('run', '?')}, "
                                    f"sigma {info.get('sigma_nm', float('nan')):.1f} nm", refresh=False)
            elif stage in ("pairs_start", "pairs_done"):
                bar.set_postfix_str(f"pass {info.get('pass', 1)}/3, {stage.replace('_', ' ')}"
                                    + (f": {info['n_pairs']:,} pairs" if "n_pairs" in info else ""), refresh=False)

        try:
            result = estimate_drift(table, engine="comet", n_segments=args.segments, max_drift_nm=args.max_drift,
                                    backend=args.backend, max_pairs=max_pairs, split_half=args.split_half == "yes",
                                    progress=comet_progress)
        finally:
            bar.close()
        if "pairs_estimated" in result.info:
            print(f"plexloc drift: COMET would have compared about {result.info['pairs_estimated']:.3g} pairs of "
                  f"localizations within {args.max_drift:g} nm; each time window was sub-sampled at random to at most "
                  f"{result.info['max_locs_per_segment']:,} localizations (about {max_pairs:.3g} pairs; --max-pairs "
                  "raises the cap, 0 compares all, at about 24 bytes a pair)", file=sys.stderr)
    elif engine == "fiducials":
        from plexloc.post.fiducials import fiducial_settings

        result = estimate_drift(table, engine="fiducials", **fiducial_settings(**fiducial_kwargs(args)))
    else:
        n_pairs = args.segments * (args.segments - 1) // 2 * (2 if args.split_half == "yes" else 1)  # peaks, errors
        bar = progress(range(n_pairs), total=n_pairs, desc="rcc pairs", unit="pair")
        result = estimate_drift(table, engine="rcc", n_segments=args.segments, render_px_nm=args.render_px,
                                max_drift_nm=args.max_drift, device=str(resolve_device(args.device)),
                                split_half=args.split_half == "yes", progress=lambda done, total: bar.update(1))
        bar.close()
    corrected = apply_drift(table, result)
    # both or neither: the figure's temporary file is renamed only once the table is written, and a figure path
    # that cannot be written fails before the table is
    with atomic_path(figure) as tmp:
        tmp.write_bytes(drift_figure(result.frames, result.drift_nm, segment_frames=result.segment_frames,
                                     segment_drift_nm=result.segment_drift_nm, title=f"drift ({result.engine})",
                                     unmeasured_frames=result.info.get("unmeasured_frames")))
        _locs.write(corrected, args.out, args)
    if args.json is not None:
        write_json({**result.to_dict(), "frames": result.frames.tolist(), "drift_nm": result.drift_nm.tolist(),
                    "locs": str(args.locs), "out": str(args.out)}, args.json)
    span = result.drift_nm.max(axis=0) - result.drift_nm.min(axis=0)
    known = ""
    if "uncertainty_nm" in result.info:  # both engines: the same quantity
        # RCC falls back on two halves where no redundant pair of windows checks its peaks (2 windows)
        how = ("two halves of the table" if result.engine == "comet"
               or result.info.get("uncertainty_from") == "split-half" else
               f"the {result.info.get('n_fiducials')} fiducial(s)' scatter and agreement, smoothed over "
               f"{result.info.get('smooth_frames')} frames" if result.engine == "fiducials"
               else "the windows' cross-correlation peaks")
        unc = result.info["uncertainty_nm"]
        known = ((f"; known to +-{unc:.1f} nm" if math.isfinite(unc) else "; how far it is known is not known")
                 + f" rms over the frames, x and y together (from {how}"
                 + (")" if result.engine == "fiducials" else " and the curve between windows)"))
    if "z_uncertainty_nm" in result.info or result.info.get("z_unreliable"):
        z_unc = result.info.get("z_uncertainty_nm", float("nan"))
        z_how = {"pairs": " (from the pairs of localizations near each other in different windows)",
                 "fiducials": " (from the fiducials)",
                 "split-half": " (from two halves of the table)"}.get(result.info.get("z_uncertainty_from"), "")
        known += ((f"; z known to +-{z_unc:.1f} nm{z_how}" if math.isfinite(z_unc) else "; z not known")
                  + (" (NOT RELIABLE, see the warning above)" if result.info.get("z_unreliable") else ""))
        if result.info.get("z_significant") is False:  # the z curve was noise: none subtracted
            est = result.info.get("z_estimated_rms_nm")
            known += ("; no z drift beyond that noise (p = {:.2g}): z left uncorrected".format(
                result.info.get("z_p_value", float("nan")))
                + (f", the curve found was {est:.1f} nm rms" if est is not None else ""))
    z_span = f", z {span[2]:.1f} nm" if span[2] > 0 or "z_uncertainty_nm" in result.info else ""  # none for 2D
    print(f"drift ({result.engine}, {result.elapsed_s:.1f} s): range x {span[0]:.1f} nm, y {span[1]:.1f} nm"
          f"{z_span} over frames {int(result.frames[0])}..{int(result.frames[-1])}" + known
          + ("; NOT RELIABLE (see the warning above)" if result.info.get("unreliable") else ""))
    for line in _check_lines(result.info):
        print(line)
    step = result.info.get("step")
    if step:  # RCC: a stage jump between two windows' centres, kept sharp instead of smoothed over them
        # the blocks cannot tell a jump from drift faster than they follow: a stage settling with a time constant of
        # 50-150 frames of 5,000 was 'a stage jump of 30 nm at frame 207' (it moved 110 nm in frames 0-150; session
        # 49 review)
        bf = step["block_frames"]
        block = (bf[-1] - bf[0]) / max(len(bf) - 1, 1)
        print(f"drift: the drift jumps by {step['size_nm'][0]:.1f}, {step['size_nm'][1]:.1f} nm (x, y) at about frame "
              f"{step['frame']} (from {len(step['block_frames'])} blocks of about {block:.0f} frames of time windows "
              f"{step['between_windows'][0]} and {step['between_windows'][1]}, each correlated with the rest of the "
              "table): a stage jump, or drift faster than such blocks follow (a stage settling in its first minutes); "
              "the curve jumps there instead of running smoothly between the windows")
    if result.engine == "fiducials":
        fids = result.info["fiducials"]
        removed = len(table) - len(corrected)
        print(f"fiducials: {result.info['n_fiducials']} used of {len(fids)} found (" + "; ".join(
            f"({f['x_nm']:.0f}, {f['y_nm']:.0f}) nm, frames {f['first_frame']}..{f['last_frame']}, "
            f"{100 * f['share']:.0f} %, {f['precision_nm'][0]:.1f} nm" + ("" if f["used"] else ", LEFT OUT")
            for f in fids[:10]) + ("; ..." if len(fids) > 10 else "") + "); "
            + (f"their {removed} rows removed (--keep-fiducials keeps them)" if not args.keep_fiducials
               else f"their {result.info['fiducial_rows']} rows kept (--keep-fiducials)"))
    print(f"wrote {args.out} ({len(corrected)} localizations) and {figure}")
    return 0
