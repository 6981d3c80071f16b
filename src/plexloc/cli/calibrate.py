"""``plexloc calibrate BEADS.tif [BEADS_ch1.tif ...] --z-step NM --pixel-size NM --out PSF.h5``: spline PSF
(and channel transforms) from bead z-stacks."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

from plexloc.cli._common import check_outputs, int_at_least, nonnegative_int, positive_float, write_json


def _roi_px(text: str) -> int:
    """--roi-px: an odd window of at least 7 pixels (plexloc.calibrate needs both)."""
    value = int_at_least(7)(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be an odd integer >= 7, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="bead z-stacks -> spline PSF calibration (PSF.h5), channel transforms, PSF.json report",
        description="Detect beads in each channel's z-stack, reject unusable ones (with reasons), register and "
        "average them, spline the PSF, define z = 0 at the reference channel's focus and, for several channels, "
        "estimate the affine transforms and throughput ratios. Writes PSF.h5, PSF.json (beads used, "
        "leave-one-bead-out z/xy bias and RMSE, transforms) and figures next to it. See plexloc.calibrate.",
    )
    p.add_argument("stacks", type=Path, nargs="+", help="bead z-stack TIFF, one per channel (channel 0 first)")
    p.add_argument("--z-step", type=positive_float, required=True,
                   help="stage step between slices, nm (> 0); slice k is at z = (k - k0) * step, so the slices must step "
                   "the bead away from the objective (conventions: z > 0 away from the objective): reverse a stack "
                   "taken the other way")
    # --camera-px-size: the name every other command gives the camera pixel (--pixel-size there is a rendered image's)
    p.add_argument("--pixel-size", "--camera-px-size", dest="pixel_size", type=positive_float, required=True,
                   metavar="NM", help="camera pixel size in the sample, nm (> 0); --camera-px-size is the same option")
    p.add_argument("--camera", type=Path, default=None, help="camera YAML (kind: emccd|scmos|ideal, ...)")
    p.add_argument("--config", type=Path, default=None, help="simulation config whose channels' cameras are used")
    p.add_argument("--out", type=Path, required=True, help="output calibration (.h5)")
    p.add_argument("--roi-px", type=_roi_px, default=15, help="window per bead in pixels (odd, >= 7; default 15)")
    p.add_argument("--saturation-adu", type=positive_float, default=None,
                   help="raw value (ADU) from which a bead pixel counts as saturated and the bead is rejected (default: "
                   "the camera's saturation_adu where --camera/--config sets it, else a flat top found in the stack, "
                   "else the maximum of an integer stack's type, e.g. 65535; none for float stacks)")
    p.add_argument("--no-validate", action="store_true", help="skip the leave-one-bead-out fits")
    p.add_argument("--exclude-bead", type=nonnegative_int, nargs=2, action="append", default=[], metavar=("ROW", "COL"),
                   help="leave out the bead of channel 0 at this pixel (within 2 px; once per bead), e.g. one that a "
                   "warning names as possibly two beads; PSF.json lists it as rejected, reason excluded")
    p.add_argument("--roi-offset", type=nonnegative_int, nargs=2, default=None, metavar=("X", "Y"),
                   help="chip pixel (x, y) at the bead stacks' corner (the camera ROI of the bead acquisition): the "
                   "channel transforms are written in chip coordinates, as plexloc fit uses them; default: the ROI "
                   "recorded in the stacks' Micro-Manager metadata, else 0 0")
    p.add_argument(
        "--split-view",
        type=Path,
        default=None,
        metavar="CONFIG",
        help="one split-view stack: cut into channels by this config's split_view boxes (and flips)",
    )
    p.add_argument(
        "--model",
        choices=("spline", "astigmatic"),
        default="spline",
        help="spline (default, PSF.h5) or astigmatic: the Gaussian defocus curves of one channel, written as a "
        "config YAML (--out PSF.yaml; psf: kind astigmatic) with PSF.json and PSF_sigma.png beside it",
    )
    p.add_argument("--z-smoothing", type=_z_smoothing, default=None, metavar="auto|off|LAMBDA",
                   help="smoothing of the averaged bead along z before the spline (penalised least squares of every "
                   "pixel's z profile, weighted by the noise measured from the beads' spread): auto (default) chooses "
                   "its strength from that noise (Stein's unbiased risk estimate); off keeps the plain average (the "
                   "spline interpolates its noise: dim or few beads give a z bias); a number >= 0 sets the penalty "
                   "(times the median weight; 0 = off). PSF.json records the strength used (z_smoothing)")
    p.set_defaults(func=run)


def _z_smoothing(text: str) -> float | None:
    """--z-smoothing: auto (None), off (0) or a penalty >= 0."""
    t = text.strip().lower()
    if t == "auto":
        return None
    if t in ("off", "none", "no"):
        return 0.0
    try:
        v = float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto, off or a number >= 0, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be auto, off or a finite number >= 0, got {text!r}")
    return v


def _camera_source(args) -> str:
    """Where the cameras that converted the stacks to photons came from (for the report)."""
    if args.config is not None:
        return f"the channels' cameras of {args.config}"
    if args.camera is not None:
        return str(args.camera)
    return "none given: ideal (the stacks taken as photons: no baseline, 1 photon per count)"


def _cameras(args, n: int) -> list:
    from plexloc.camera.models import camera_from_config
    from plexloc.config import load_config
    from plexloc.errors import InputError

    if args.config is not None:
        cfg = load_config(args.config)
        if cfg.n_channels != n:
            raise InputError(f"the config has {cfg.n_channels} channel(s) but {n} stack(s) were given", source=args.config)
        return [camera_from_config(ch.camera) for ch in cfg.channels]
    if args.camera is not None:
        from plexloc.config import load_camera_config

        cam = load_camera_config(args.camera)
        return [camera_from_config(cam) for _ in range(n)]
    import sys

    from plexloc.camera.models import IdealCamera

    print("plexloc calibrate: no --camera or --config: the stacks are taken as photons already (an ideal camera: no "
          "baseline, 1 photon per count); give the camera for raw camera counts", file=sys.stderr)
    return [IdealCamera() for _ in range(n)]


def _read_stacks(args) -> tuple[list, list[str], list[str], tuple[tuple[int, int], str]]:
    """Each stack file opened once: the raw stacks, one per channel (from one file per channel, or cut from one
    split-view stack), their names, the warnings of --z-step and --pixel-size against the files' metadata
    (:func:`_metadata_scales`) and the chip pixel at the stacks' corner with its source (:func:`_roi_offset`; several
    channels only). Each file was opened two or three times before (its frames, its metadata, its ROI)."""
    from plexloc.config import load_config
    from plexloc.errors import InputError
    from plexloc.io.splitview import split_frames

    split = None
    if args.split_view is not None:
        if len(args.stacks) != 1:
            raise InputError(f"--split-view takes one stack holding every channel, got {len(args.stacks)}")
        split = load_config(args.split_view).split_view
        if split is None:
            raise InputError("--split-view: the configuration has no split_view section (boxes per channel)",
                             source=args.split_view)
    with contextlib.ExitStack() as opened:
        readers = {p: opened.enter_context(_open_stack(p)) for p in dict.fromkeys(args.stacks)}
        frames = {p: r[:] for p, r in readers.items()}
        if split is None:
            raws, sources = [frames[p] for p in args.stacks], [str(p) for p in args.stacks]
        else:
            raw = frames[args.stacks[0]]
            H, W = raw.shape[-2:]
            for c, (x, y, w, h) in enumerate(split.boxes):
                if x + w > W or y + h > H:
                    raise InputError(
                        f"split_view box {c} [{x}, {y}, {w}, {h}] (x, y, width, height) reaches outside the {W}x{H} (w x h) "
                        "stack",
                        source=args.stacks[0],
                    )
            parts = split_frames(raw, split)
            raws = [parts[:, c] for c in range(parts.shape[1])]
            sources = [f"{args.stacks[0]} box {c}" for c in range(parts.shape[1])]
        meta_warnings = _metadata_scales(args, n_slices=len(raws[0]), readers=readers)
        # the ROI matters for transforms only: one channel's stacks are not asked (stale metadata could stop them)
        roi = _roi_offset(args, readers) if len(raws) > 1 else ((0, 0), "not used (one channel)")
    return raws, sources, meta_warnings, roi


#: the words of the reader's refusal of a file with two axes of images (a movie's advice: make them one stack)
_TWO_AXES = "cannot tell which to fit as frames"


def _open_stack(path):
    """The bead stack opened (:func:`plexloc.io.tiff.open_movie`); a file of two axes of images (channels and slices,
    time points and slices, without ImageJ's labels: tifffile's axes 'QQYX') is refused with the advice for a bead
    stack: the reader's advice is a movie's, to make them one stack, which made 2 x 33 slices of two channels one
    66-slice 'z-stack' (bench/beads49.py)."""
    from plexloc.errors import InputError
    from plexloc.io.tiff import open_movie

    try:
        return open_movie(path)
    except InputError as err:
        if _TWO_AXES not in str(err):
            raise
        head = err.reason.split(" If they are one movie's frames")[0].replace(
            "a movie has one axis of frames besides rows and columns, so plexloc cannot tell which to fit as frames.",
            "plexloc cannot tell which axis holds the slices.")
        raise InputError(
            f"{head} A bead z-stack has one axis of slices besides rows and columns: save each channel's z-stack as "
            "its own TIFF (a file of channels x slices or slices x channels: one file per channel, given to plexloc "
            "calibrate channel 0 first), and of a time series of z-stacks (time x slices) one z-stack, its slices in "
            "order of z, away from the objective", source=path) from None


def _roi_offset(args, readers: dict) -> tuple[tuple[int, int], str]:
    """The chip pixel at the stacks' corner and where it came from (as ``plexloc fit`` finds a movie's); ``readers``:
    the stacks, already open, by path (:func:`_read_stacks`)."""
    from plexloc.infer.fit import resolve_roi_offset

    if args.roi_offset is not None:
        return (int(args.roi_offset[0]), int(args.roi_offset[1])), "--roi-offset"
    return resolve_roi_offset([readers[p] for p in args.stacks], None)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from plexloc.calibrate import calibrate_spline, save_calibration
    from plexloc.calibrate.validate import leave_one_bead_out
    from plexloc.errors import InputError

    if args.model == "astigmatic":
        if args.out.suffix.lower() not in (".yaml", ".yml"):
            raise InputError(f"--out of an astigmatic calibration must end in .yaml, got {args.out.name!r}")
        if len(args.stacks) != 1 or args.split_view is not None:
            raise InputError(f"the astigmatic calibration takes one bead stack (one channel), got {len(args.stacks)}")
    elif args.out.suffix.lower() not in (".h5", ".hdf5"):
        raise InputError(f"--out must end in .h5, got {args.out.name!r}")
    if args.camera is not None and args.config is not None:  # --camera was ignored without a word
        raise InputError(f"give the camera once: --camera {args.camera} or --config {args.config} (whose channels' "
                         "cameras are used), not both")
    check_outputs(args.out, args.out.with_suffix(".json"))  # before the beads are fitted, not after
    _report_of_another(args.out)
    raws, sources, meta_warnings, (roi_offset, roi_source) = _read_stacks(args)
    cams = _cameras(args, len(raws))
    stacks = [cam.to_photons(torch.as_tensor(r.astype(np.float32))).numpy() for cam, r in zip(cams, raws)]
    _baseline_above_offset(stacks, cams, sources)
    sat = args.saturation_adu
    set_levels = [float(c.saturation_adu) for c in cams if getattr(c, "saturation_adu", None) is not None]
    if sat is None and set_levels:  # the camera's own clipping level (its saturation_adu), as plexloc fit takes it
        sat = min(set_levels)
        print(f"plexloc calibrate: note: saturated beads are looked for at {sat:g} ADU, the camera's saturation_adu",
              file=sys.stderr)
    clipped = None
    if sat is None:  # a flat top below the type's maximum: the camera (12-bit: 4095) or a conversion clipped there
        from plexloc.calibrate.beads import flat_top

        tops = [(c, flat_top(r)) for c, r in enumerate(raws)]
        tops = [(c, t) for c, t in tops if t is not None]
        if tops:
            c, (level, n_px) = min(tops, key=lambda ct: ct[1][0])
            clipped = level
            print(f"plexloc calibrate: warning: {n_px} pixels of {sources[c]} share its highest value, {level:g} ADU: a "
                  "flat top where the camera clipped; beads that reach it are rejected as saturated (give "
                  "--saturation-adu to set the level yourself)", file=sys.stderr)
    if clipped is not None:
        sat = clipped
    elif sat is None and np.issubdtype(raws[0].dtype, np.integer):
        sat = float(np.iinfo(raws[0].dtype).max)
        print(f"plexloc calibrate: note: saturated beads are looked for at {sat:g} ADU, the {raws[0].dtype} maximum; a "
              "camera that saturates lower (e.g. 12-bit: 4095) needs --saturation-adu", file=sys.stderr)
    elif sat is None:
        print("plexloc calibrate: note: float stacks have no saturation level; give --saturation-adu to have "
              "saturated beads rejected", file=sys.stderr)
    if args.model == "astigmatic":
        return _run_astigmatic(args, stacks, raws, cams, sat, meta_warnings)
    result = calibrate_spline(
        stacks,
        z_step_nm=args.z_step,
        px_size_nm=args.pixel_size,
        roi_px=args.roi_px,
        raw_stacks=raws,
        saturation_adu=sat,
        sources=sources,
        z_smooth=args.z_smoothing,
        exclude_px=args.exclude_bead,
    )
    cal = result.calibration
    cal.command = " ".join(shlex.quote(a) for a in ["plexloc", *sys.argv[1:]])
    # the transforms were measured in the stacks' own pixels; the file holds them in chip coordinates (the
    # validation below works in the stacks' and keeps ``result``)
    chip = cal.on_chip(roi_offset)
    report: dict = {
        "calibration": str(args.out),
        "camera": _camera_source(args),
        "n_beads_used": result.summary["n_beads_used"],
        "beads_rejected": result.summary["rejected"],
        "z0_definition": cal.z0_definition,
        "z_convention": "slice k of a stack is at z = (k - k0) * z_step_nm; z > 0 away from the objective",
        "z_step_nm": cal.dz_nm,
        "px_size_nm": list(cal.px_size_nm),
        "focus_offset_nm": [ch.focus_offset_nm for ch in cal.channels],
        "roi_offset_px": list(roi_offset),
        "roi_offset_source": roi_source,
        "z_smoothing": result.summary.get("z_smoothing", []),
        **_checks(result.summary, sources),
    }
    if meta_warnings:
        report["warnings"] = meta_warnings + report.get("warnings", [])
    if cal.n_channels > 1:
        print(f"plexloc calibrate: note: transforms in camera-chip coordinates, the stacks' corner at chip pixel "
              f"{list(roi_offset)} ({roi_source})", file=sys.stderr)
        report["transforms"] = [np.asarray(ch.transform_nm).tolist() for ch in chip.channels]
        report["transform_coordinates"] = (f"camera chip, nm (measured on stacks whose corner is chip pixel "
                                           f"{list(roi_offset)}, {roi_source}); the channels' transform in a configuration")
        report["throughput_ratio"] = [ch.throughput_ratio for ch in cal.channels]
        report["transform_residual_nm"] = {
            "rms": [float(np.sqrt(np.mean(r**2))) for r in result.transform_residual_nm],
            "max": [float(np.max(r)) for r in result.transform_residual_nm],
        }
        _report_transform_residual(report["transform_residual_nm"], args)
        _unplaced_roi(report, roi_source, cal.px_size_nm)
    loo = None
    if not args.no_validate:
        loo = leave_one_bead_out(result, cameras=cams)
        report.update({k: loo[k] for k in ("z_bias_nm", "z_rmse_nm", "xy_bias_nm", "xy_rmse_nm", "z_limit_nm", "n_fits",
                                           "note") if k in loo})
        if loo.get("note"):
            print(f"plexloc calibrate: note: {loo['note']}", file=sys.stderr)
    _few_beads(report["n_beads_used"], report, loo)
    from plexloc.calibrate.figures import write_figures

    # PSF.h5 last, once the leave-one-bead-out fits, PSF.json and the figures are done: an interruption (Ctrl-C) or
    # an error on the way used to leave PSF.h5 without its PSF.json; the files are written aside first (_staged)
    with _staged(args.out) as out:
        figs = write_figures(result, out, loo=loo)
        write_json(report, out.with_suffix(".json"))
        save_calibration(chip, out)
    figs = [args.out.with_name(f.name) for f in figs]
    if cal.z0_definition.startswith("astigmatism"):  # said of the astigmatic model only: a spline is mirrored alike
        from plexloc.calibrate.spline import astigmatic_foci_nm

        _foci_note(*astigmatic_foci_nm(cal.channels[0], cal.dz_nm))
    print(
        f"wrote {args.out}: {cal.n_channels} channel(s), beads used {_beads_line(report)}"
        + (f", leave-one-out z bias {loo['z_bias_nm']:.1f} nm, z RMSE {loo['z_rmse_nm']:.1f} nm" if loo and loo.get("z_rmse_nm") is not None else "")
        + f"; figures {', '.join(p.name for p in figs)}"
    )
    return 0


def _baseline_above_offset(stacks, cams, sources) -> None:
    """Warn where half of a stack's pixels sit below its camera's baseline by more than noise allows, naming the
    baseline that would fit (:func:`plexloc.psf.check.baseline_excess`, the PSF-shape check's rule): a baseline above
    the camera's offset. The beads' background is subtracted per bead, so the calibration holds, but the same camera
    file gives a fit's photons too few."""
    import torch

    from plexloc.psf.check import baseline_field, baseline_excess

    for c, (ph, cam) in enumerate(zip(stacks, cams)):
        found = baseline_excess(torch.as_tensor(ph), cam)
        if found is None:
            continue
        below, photons, fits = found
        print(f"plexloc calibrate: warning: half of the pixels of stack {c} ({sources[c]}) sit {below:.3g} ADU below "
              f"the camera's baseline ({photons:.3g} photons/px after conversion): {fits}: the camera's baseline lies "
              f"above its offset; set it{baseline_field(cam)} to the offset measured on dark frames (plexloc "
              "calibrate-camera): fits with "
              "this camera file would give too few photons", file=sys.stderr)


#: relative difference from which --z-step or --pixel-size and the stacks' metadata are said to disagree
SCALE_TOLERANCE = 0.03


def _recorded_z_step(tf, n_slices: int) -> tuple[float, str] | None:
    """The z step (nm) that a stack's metadata record, and where (ImageJ, Micro-Manager, OME-XML PhysicalSizeZ:
    :func:`plexloc.io.pixel_size.read_z_step`); None where none is recorded."""
    from plexloc.io.pixel_size import read_z_step

    return read_z_step(tf, n_slices)


def _metadata_scales(args, *, n_slices: int, readers: dict | None = None) -> list[str]:
    """--z-step and --pixel-size against what the stacks' metadata record (ImageJ, Micro-Manager, OME; see
    :func:`plexloc.io.pixel_size.read_pixel_size`): a warning (stderr, and PSF.json's warnings) for each that differs
    by more than ``SCALE_TOLERANCE``. A z step given 2x off (100 for the 50 nm an ImageJ stack records) wrote a
    calibration whose every z was twice the true one, and another pixel size one whose positions and widths were off,
    without a word: a step or pixel more than ~10x off is refused by the PSF's shape, one 2x off is a plausible PSF.
    ``readers``: the stacks already open (by path, :func:`_read_stacks`), else each is opened here."""
    from plexloc.io.pixel_size import pixel_size_mismatch, recorded_pixel_size
    from plexloc.io.tiff import open_movie

    texts = []
    for path in dict.fromkeys(args.stacks):
        with (contextlib.nullcontext(readers[path]) if readers is not None else open_movie(path)) as reader:
            found = recorded_pixel_size(reader)
            z = _recorded_z_step(reader.tiff_file, n_slices)
        px = float(args.pixel_size)
        text = pixel_size_mismatch(found, (px, px), what="--pixel-size is", path=path, tolerance=SCALE_TOLERANCE,
                                   advice="the calibration's lateral scale (bead positions, PSF widths, transforms) "
                                   "follows --pixel-size; check it (the camera pixel divided by the total "
                                   "magnification), or the metadata if they are wrong")
        if text is not None:
            texts.append(text)
        if z is not None and abs(z[0] / float(args.z_step) - 1.0) > SCALE_TOLERANCE:
            texts.append(f"{path}: its metadata give a z step of {z[0]:g} nm ({z[1]}) but --z-step is "
                         f"{args.z_step:g} nm: "
                         f"every z of the calibration follows --z-step ({args.z_step / z[0]:.2g}x the recorded step); "
                         f"give --z-step {z[0]:g} if the metadata are right")
    for text in texts:
        print(f"plexloc calibrate: warning: {text}", file=sys.stderr)
    return texts


def _foci_note(zx_nm: float, zy_nm: float) -> None:
    """Where the calibration puts the foci of x and y (an astigmatic PSF): a stack taken toward the objective is
    calibrated mirrored in z, which only the lab's knowledge of its cylindrical lens can tell."""
    print(f"plexloc calibrate: note: x is in focus at z = {zx_nm:+.0f} nm, y at z = {zy_nm:+.0f} nm (z > 0 away from "
          "the objective, slice k at (k - k0) * --z-step): if your cylindrical lens focuses them the other way round, "
          "the stack was taken toward the objective: reverse its slices", file=sys.stderr)


def _report_of_another(out: Path) -> None:
    """Refuse an ``--out`` whose report, ``out.with_suffix('.json')``, is that of another calibration file beside it
    that is still there: ``--out PSF.yaml`` (astigmatic) after ``--out PSF.h5`` (spline), as the README names them,
    replaced PSF.h5's PSF.json (its beads, its leave-one-bead-out numbers) with the astigmatic one's without a word."""
    import json

    from plexloc.errors import InputError

    report = out.with_suffix(".json")
    try:
        with open(report, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):  # none there, or not a report of ours: check_outputs has judged the path
        return
    name = data.get("calibration") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        return
    other = out.with_name(Path(name).name)
    if other.name != out.name and other.exists():
        kind = "astigmatic" if out.suffix.lower() in (".yaml", ".yml") else "spline"
        raise InputError(f"{report.name} beside it is the report of the calibration {other.name}, which is still "
                         f"there, and this run would replace it with its own: give --out another name, e.g. "
                         f"{out.with_name(f'{out.stem}_{kind}{out.suffix}')} (its report: {out.stem}_{kind}.json)",
                         source=out)


def _beads_line(report: dict) -> str:
    """The beads used per channel, in words: '15 of 16 found (1 saturated)'; the summary line printed the
    dictionaries themselves, ``[15] ({'found': 16, 'saturated': 1})``."""
    parts = []
    for c, (n, counts) in enumerate(zip(report["n_beads_used"], report["beads_rejected"])):
        why = ", ".join(f"{v} {k}" for k, v in counts.items() if k != "found")
        parts.append(("" if len(report["n_beads_used"]) == 1 else f"channel {c}: ")
                     + f"{n} of {counts.get('found', n)} found" + (f" ({why})" if why else ""))
    return "; ".join(parts)


#: fewer beads than this in a channel is warned of: the average keeps one bead's noise and flaws (a 2-bead
#: calibration's leave-one-bead-out z RMSE was 116 nm against 17 nm for 16 of the same beads)
MIN_BEADS_WARN = 5


def _few_beads(n_used: list[int], report: dict, loo: dict | None) -> None:
    """Warn (stderr and PSF.json's warnings) where a channel's PSF was averaged from fewer than MIN_BEADS_WARN beads."""
    few = [(c, n) for c, n in enumerate(n_used) if n < MIN_BEADS_WARN]
    if not few:
        return
    rmse = loo.get("z_rmse_nm") if loo else None
    text = (", ".join(f"channel {c}: {n} bead(s)" for c, n in few) + f" used, fewer than {MIN_BEADS_WARN}: the averaged "
            "PSF keeps the noise and flaws of so few beads"
            + (f" (leave-one-bead-out z RMSE {rmse:.0f} nm)" if rmse is not None else " (and with one bead it cannot be "
               "validated)") + "; take a stack with 10 or more beads in the field, well apart")
    print(f"plexloc calibrate: warning: {text}", file=sys.stderr)
    report.setdefault("warnings", []).append(text)


@contextlib.contextmanager
def _staged(out: Path):
    """Yield a path of ``out``'s name in a staging folder beside it, for the block to write ``out`` and its files
    (PSF.json, figures) there; once the block is done they are moved beside ``out``, ``out`` itself last. If the block
    fails (an error, Ctrl-C) nothing of this run is left and the files of an earlier calibration there stay as they
    were: removing this run's files instead left an earlier PSF.h5 whose PSF.json and figures this run had replaced,
    then removed."""
    import os
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        yield stage / out.name
        for f in sorted(stage.iterdir()):
            if f.name != out.name:
                os.replace(f, out.with_name(f.name))
        os.replace(stage / out.name, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


#: rms residual (nm) of a channel's affine fit to the bead positions above which the channels are likely mismatched
TRANSFORM_RESIDUAL_WARN_NM = 15.0


#: a transform whose linear part moves its translation by this much (nm) per 100 px of camera-ROI offset makes the
#: stacks' position on the chip matter (register's note uses 1e-3 of |L - I|: 10 nm per 100 px of 100 nm)
ROI_SENSITIVITY_WARN_NM = 10.0


def _unplaced_roi(report: dict, roi_source: str, px_size_nm) -> None:
    """Warn (stderr and PSF.json's warnings) where a transform is more than a shift (a rotation or scale) and the
    stacks' position on the camera chip was not given nor found: the translation written in chip coordinates is then
    off by ``(L - I) o`` for a bead ROI at chip pixel ``o``. A 1 degree rotation measured at chip pixel (120, 80)
    wrote (178, 28) nm instead of (318, -182) nm, 2.5 px, under a note that the ROI was taken as (0, 0)."""
    import numpy as np

    if not roi_source.startswith("default"):
        return
    px = float(np.max(np.asarray(px_size_nm, dtype=np.float64)))
    worst = []
    for c, t in enumerate(report["transforms"][1:], start=1):
        t = np.asarray(t, dtype=np.float64)
        lin = t[:2, :2] / t[2, 2] - np.eye(2)
        per100 = float(np.linalg.norm(lin, 2)) * 100.0 * px  # nm of translation per 100 px of ROI offset, worst direction
        if per100 >= ROI_SENSITIVITY_WARN_NM:
            worst.append(f"{per100:.0f} nm (channel {c})")
    if not worst:
        return
    text = (f"the transforms are more than a shift (a rotation or scale), so their translation in camera-chip "
            f"coordinates depends on where the bead stacks' camera ROI sat on the chip, and {roi_source.split(':', 1)[-1].strip()}"
            f": they were written for stacks whose corner is chip pixel (0, 0). For every 100 px that the ROI started "
            f"away from the chip's corner, the translation is off by up to {', '.join(worst)}; where the bead acquisition used a camera ROI, "
            "calibrate again with --roi-offset X Y (the chip pixel of the stacks' corner)")
    print(f"plexloc calibrate: warning: {text}", file=sys.stderr)
    report.setdefault("warnings", []).append(text)


def _report_transform_residual(residual: dict[str, list[float]], args: argparse.Namespace) -> None:
    """Print each channel's transform residual (rms, max over beads, nm) and warn where the rms is above
    ``TRANSFORM_RESIDUAL_WARN_NM``: the affine did not explain the beads' positions, so the channels' images do not
    show the same beads in the same arrangement (a --split-view box or flip wrong, or the stacks in the wrong
    order). A wrong split (the flip forgotten: 33 nm rms against 0.6 nm with it) wrote its transform without a
    word; the residual was only in the report JSON."""
    for c, (rms, worst) in enumerate(zip(residual["rms"], residual["max"]), start=1):
        print(f"plexloc calibrate: channel {c} transform residual: rms {rms:.1f} nm, max {worst:.1f} nm",
              file=sys.stderr)
        if rms > TRANSFORM_RESIDUAL_WARN_NM:
            where = (f"the --split-view boxes or flip in {args.split_view}" if args.split_view is not None
                     else "the order of the stacks (" + ", ".join(str(s) for s in args.stacks) + ")")
            print(f"plexloc calibrate: warning: channel {c}'s transform leaves an rms residual of {rms:.1f} nm (max "
                  f"{worst:.1f} nm) over the beads, above {TRANSFORM_RESIDUAL_WARN_NM:g} nm (a right registration "
                  f"leaves about 1 nm): the channels do not show the beads in the same arrangement; check {where} "
                  "(a mirrored channel needs its flip, each box its own channel, the stacks channel 0 first)",
                  file=sys.stderr)


def _checks(summary: dict, sources: list[str] | None = None) -> dict:
    """Print the calibration's warnings (measured: widths, SNR, drift, z coverage, scale, a double-bead shape check that
    did not run) and the rejected beads; return their PSF.json entries (``pair_shape_check``: whether that check ran,
    on how many beads, and why not)."""
    for text in summary.get("warnings", []):
        print(f"plexloc calibrate: warning: {text}", file=sys.stderr)
    pair_note = summary.get("pair_shape_check", {}).get("note")
    if pair_note:  # the beads were taken as checked for missed double beads where they were not
        print(f"plexloc calibrate: note: {pair_note}", file=sys.stderr)
    for c, beads in enumerate(summary.get("rejected_beads", [])):
        # the channel's stack named (a file, or a split-view box): "channel 1" alone left the user to count the files
        where = f"channel {c} ({sources[c]})" if sources is not None and c < len(sources) else f"channel {c}"
        for b in beads[:20]:
            print(f"plexloc calibrate: {where}: bead at pixel (row, col) ({b['row']}, {b['col']}) rejected: "
                  f"{b['reason']}{': ' + b['detail'] if 'detail' in b else ''}", file=sys.stderr)
        if len(beads) > 20:
            print(f"plexloc calibrate: {where}: ... {len(beads) - 20} more rejected beads in the report",
                  file=sys.stderr)
    return {k: summary[k] for k in ("warnings", "z_range_nm", "rejected_beads", "used_beads", "pair_shape_check")
            if k in summary}


def _run_astigmatic(args, stacks, raws, cams, sat, meta_warnings=()) -> int:
    import yaml

    from plexloc.calibrate.astigmatic import astigmatic_builder, calibrate_astigmatic, config_dict
    from plexloc.calibrate.figures import write_sigma_figure
    from plexloc.calibrate.validate import leave_one_bead_out
    from plexloc.io._atomic import atomic_path

    result = calibrate_astigmatic(
        stacks[0],
        z_step_nm=args.z_step,
        px_size_nm=args.pixel_size,
        roi_px=args.roi_px,
        raw_stacks=raws,
        saturation_adu=sat,
        sources=[str(args.stacks[0])],
        z_smooth=args.z_smoothing,
        exclude_px=args.exclude_bead,
    )
    spline = result.spline
    cal = spline.calibration
    data = config_dict(result.psf, px_size_nm=cal.px_size_nm)
    if args.config is not None:  # the user's configuration with the calibrated PSF
        from plexloc.config.io import _resolve_relative_paths, load_yaml

        # its relative paths (sCMOS maps, ...) made absolute: the new file lives in another folder
        base = _resolve_relative_paths(load_yaml(args.config.read_text()), args.config.parent.resolve())
        base.update(data)
        data = base
    elif args.camera is not None:
        from plexloc.config import load_camera_config

        data["camera"] = load_camera_config(args.camera).model_dump(mode="json")
    else:
        data["camera"] = {"kind": "ideal"}
    command = " ".join(shlex.quote(a) for a in ["plexloc", *sys.argv[1:]])
    report: dict = {
        "calibration": str(args.out),
        "camera": _camera_source(args),
        "model": "astigmatic",
        "psf": data["psf"],
        "curve_fit_rms_nm": list(result.residual_nm),
        "n_slices_fitted": len(result.z_nm),
        "n_beads_used": spline.summary["n_beads_used"],
        "beads_rejected": spline.summary["rejected"],
        "z0_definition": cal.z0_definition,
        "z_convention": "slice k of a stack is at z = (k - k0) * z_step_nm; z > 0 away from the objective",
        "z_step_nm": cal.dz_nm,
        "px_size_nm": list(cal.px_size_nm),
        **_checks(spline.summary, [str(args.stacks[0])]),
    }
    if meta_warnings:
        report["warnings"] = list(meta_warnings) + report.get("warnings", [])
    loo = None
    if not args.no_validate:
        loo = leave_one_bead_out(spline, cameras=cams, build_psf=astigmatic_builder())
        report.update({k: loo[k] for k in ("z_bias_nm", "z_rmse_nm", "xy_bias_nm", "xy_rmse_nm", "z_limit_nm", "n_fits",
                                           "note") if k in loo})
        if loo.get("note"):
            print(f"plexloc calibrate: note: {loo['note']}", file=sys.stderr)
    _few_beads(report["n_beads_used"], report, loo)
    with _staged(args.out) as out:  # PSF.yaml last (see run)
        fig = write_sigma_figure(result, out)
        write_json(report, out.with_suffix(".json"))
        with atomic_path(out) as tmp:
            tmp.write_text(f"# astigmatic PSF calibrated by: {command}\n" + yaml.safe_dump(data, sort_keys=False))
    fig = args.out.with_name(fig.name)
    _foci_note(*result.psf.c_nm)
    print(
        f"wrote {args.out}: astigmatic, beads used {_beads_line(report)}, curve fit rms "
        f"{result.residual_nm[0]:.1f}/{result.residual_nm[1]:.1f} nm"
        + (f", leave-one-out z bias {loo['z_bias_nm']:.1f} nm, z RMSE {loo['z_rmse_nm']:.1f} nm" if loo and loo.get("z_rmse_nm") is not None else "")
        + f"; figure {fig.name}"
    )
    return 0
