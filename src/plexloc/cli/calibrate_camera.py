"""``plexloc calibrate-camera --dark DARK.tif (--flat F.tif ... | --movie MOVIE.tif) --kind scmos|emccd --out
camera.yaml``: measure the camera settings that convert a movie to photons."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plexloc.cli._common import (check_outputs, float_at_least, int_at_least, nonnegative_float, open_probability,
                                 path_with_suffix)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate-camera",
        help="dark frames + flat fields (or the movie) -> measured camera YAML (offset, read noise, gain)",
        description="Measure the camera: the offset and read noise of every pixel from dark frames (shutter closed, "
        "the experiment's exposure and gain), and the gain from the photon transfer of flat fields (one TIFF per "
        "light level) or of an SMLM movie's background. Writes the camera YAML that 'plexloc fit --camera' and "
        "training configurations take (sCMOS: per-pixel offset and read-noise maps, and a gain map where the flats "
        "measure it to 2 %, as OUT_<field>.npy next to it; an earlier run's OUT_<field>.npy that this run does not "
        "write is removed), a photon-transfer figure (OUT with .png) and the numbers (--json). The quantum efficiency "
        "is not measured (photon transfer counts electrons): give it with --qe. See plexloc.camera.calibration.",
    )
    p.add_argument("--dark", type=Path, required=True, help="dark frames: a TIFF stack or a folder of TIFFs (>= 20 frames)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--flat", type=Path, nargs="+", default=[], metavar="TIFF",
                     help="flat-field stacks, one per light level (two or more levels check the line)")
    src.add_argument("--movie", type=Path, default=None,
                     help="an SMLM movie of the same camera settings: the gain from its background (within 0.5 %% on "
                     "sparse simulated movies, uniform or uneven light, sCMOS or EMCCD; reads low where emitters "
                     "crowd, 11-16 %% at 2 per um^2, and says so)")
    p.add_argument("--kind", choices=("scmos", "emccd"), required=True, help="camera type")
    p.add_argument("--em-gain", type=float_at_least(1.0), default=None,
                   help="EMCCD: the EM gain setting (photon transfer measures only em_gain / e_per_adu)")
    p.add_argument("--qe", type=open_probability, default=None, help="quantum efficiency (default: the kind's default)")
    p.add_argument("--spurious-charge", type=nonnegative_float, default=None,
                   help="clock-induced charge, e-/pixel/frame (default: the kind's default)")
    p.add_argument("--gain-map", choices=("auto", "yes", "no"), default="auto",
                   help="sCMOS with flats: a per-pixel gain map (auto: where the flats measure each pixel's gain to 2 %%)")
    p.add_argument("--max-frames", type=int_at_least(3), default=None,
                   help="read at most this many frames of each stack (default: all; --movie: 300)")
    p.add_argument("--out", type=path_with_suffix(".yaml", ".yml"), required=True, help="camera YAML to write")
    p.add_argument("--figure", type=path_with_suffix(".png"), default=None, help="figure (default OUT with .png)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the measured numbers as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from plexloc.camera.calibration import (
        calibrate_camera,
        chunk_frames_for,
        movie_stats,
        movie_transfer,
    )
    from plexloc.errors import InputError
    from plexloc.io.tiff import open_movie

    if args.kind == "emccd" and args.em_gain is None:
        raise InputError("--kind emccd needs --em-gain (the camera's EM gain setting): photon transfer measures only "
                         "em_gain / e_per_adu")
    if args.kind == "scmos" and args.em_gain is not None:  # was ignored without a word
        raise InputError(f"--em-gain {args.em_gain:g} does not apply to --kind scmos (an sCMOS has no EM gain); for an "
                         "EMCCD give --kind emccd")
    check_outputs(args.out, args.figure or args.out.with_suffix(".png"), args.json)
    dark = movie_stats(args.dark, max_frames=args.max_frames)
    flats = [movie_stats(f, max_frames=args.max_frames) for f in args.flat]
    movie = None
    if args.movie is not None:
        with open_movie(args.movie) as mv:
            if tuple(mv.frame_shape) != dark.shape:
                raise InputError(f"frames of {tuple(mv.frame_shape)} pixels, the dark frames {dark.shape}: record them on "
                                 "the same region of the chip", source=args.movie)
            movie = movie_transfer((c for _, c in mv.iter_chunks(chunk_frames_for(mv.frame_shape))), dark.mean,
                                   dark.read_variance,
                                   max_frames=args.max_frames or 300, source=str(args.movie))
    cal = calibrate_camera(dark, kind=args.kind, flats=flats, movie=movie, em_gain=args.em_gain, qe=args.qe,
                           spurious_charge=args.spurious_charge, gain_map=args.gain_map)
    warned = _scmos_plausible(cal, dark=args.dark, flats=flats) if args.kind == "scmos" else []
    for text in cal.warnings:  # kept with the notes in the YAML and the JSON
        print(f"plexloc calibrate-camera: warning: {text}", file=sys.stderr)
    warned += cal.warnings
    # the YAML, its maps, the figure and the JSON appear together or not at all; an earlier run's maps that this YAML
    # does not name (a gain map, the sCMOS maps before an EMCCD) go with them
    stale = cal.stale_maps(args.out)
    written = cal.save(args.out, figure=args.figure or args.out.with_suffix(".png"), report=args.json)
    print(f"wrote {', '.join(str(p) for p in written)}")
    if stale:
        print(f"removed {', '.join(str(p) for p in stale)}: an earlier run's map(s), which this camera YAML does not name")
    shown = {k: (f"{v:.5g}" if isinstance(v, float) else ("per-pixel map" if k in cal.maps else v))
             for k, v in cal.config.items()}
    print("camera: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    print(f"dark frames: offset {np.median(cal.offset_adu):.5g} ADU, read noise {np.median(cal.read_sigma_adu):.4g} ADU "
          f"(medians over {cal.offset_adu.size} pixels, {cal.dark_frames} frames)")
    for note in cal.notes:
        if note not in warned:  # (printed as warnings on stderr)
            print(f"note: {note}")
    return 0


#: below this read noise (median, e- rms) no sCMOS or qCMOS reads: the stacks are most likely an EMCCD's, measured as
#: an sCMOS (its excess noise halves the e-/ADU such a reading gives, and its gain puts the read noise far below an
#: electron: 0.12 e- for the SMLM Challenge's 74.4 e- at gain 300). A qCMOS reads 0.25-0.5 e- (Hamamatsu ORCA-Quest:
#: 0.27 e- rms in ultra-quiet scan, 0.43 e- in standard scan): the warning at 0.3 fired on it
SCMOS_MIN_READ_E = 0.15
#: an ordinary sCMOS reads 0.7-3 e- rms (Photometrics Kinetix 0.7-1.0); between SCMOS_MIN_READ_E and this, a note (a
#: qCMOS, or an EMCCD at a moderate EM gain), not a warning
QCMOS_MAX_READ_E = 0.7


def _scmos_plausible(cal, dark: Path | str = "", flats=()) -> list[str]:
    """An EMCCD's frames measured as an sCMOS: e_per_adu 0.075 for a true 45 / 300 = 0.15 and a read noise of 0.12 e-,
    written without a word. A read noise (median, e-) below SCMOS_MIN_READ_E is a warning (stderr, and with the notes in
    the YAML and the JSON); one below QCMOS_MAX_READ_E a note (normal for a qCMOS: no warning); one above
    SCMOS_MAX_READ_E a warning naming the ``dark`` stack (light reached it), or, where one of ``flats``
    (:func:`~plexloc.camera.calibration.movie_stats`) clipped, naming that flat: its clipped variance made e_per_adu,
    and the read noise in e- with it, far too high (a flat 60 % at 1000 ADU: e_per_adu 41.9 for 0.46, 140 e- rms,
    and the warning asked whether light reached the dark frames; session 51); returns the warnings."""
    import numpy as np

    import sys

    from plexloc.camera.calibration import SCMOS_MAX_READ_E

    gain = cal.maps["e_per_adu"] if "e_per_adu" in cal.maps else cal.config.get("e_per_adu")
    if gain is None:
        return []
    read_e = float(np.median(cal.read_sigma_adu) * np.median(gain))
    measured = f"the read noise measured is {read_e:.2g} e- rms (e_per_adu {float(np.median(gain)):.3g})"
    clipped = [f for f in flats if getattr(f, "clip_adu", None) is not None]
    if read_e > SCMOS_MAX_READ_E and clipped:
        names = ", ".join(f"{f.source or 'a flat'} at {f.clip_adu:.0f} ADU" for f in clipped)
        text = (f"{measured}, above any sCMOS's (0.7-3 e-): flats clipped where the camera clips ({names}) measured "
                "it; their clipped variance reads as a far higher e_per_adu, and the read noise in e- with it (the "
                f"dark frames read {float(np.median(cal.read_sigma_adu)):.3g} ADU). Record the flats dimmer, below "
                f"{min(f.clip_adu for f in clipped):.0f} ADU, and calibrate again: this e_per_adu is wrong")
        cal.notes.append(text)
        print(f"plexloc calibrate-camera: warning: {text}", file=sys.stderr)
        return [text]
    if read_e > SCMOS_MAX_READ_E:
        text = (f"{measured}, above any sCMOS's (0.7-3 e-), and the dark frames' offset "
                f"{float(np.median(cal.offset_adu)):.5g} ADU (--dark {dark or '?'}): did light reach the dark frames "
                "(a light leak, the shutter open, a flat given as --dark)? Their "
                "shot noise reads as read noise and their light as offset, which the camera YAML then takes from every "
                "pixel (photons and background low); record them with the sensor covered, at the flats' settings")
        cal.notes.append(text)
        print(f"plexloc calibrate-camera: warning: {text}", file=sys.stderr)
        return [text]
    if read_e < SCMOS_MIN_READ_E:
        text = (f"{measured}, below any sCMOS's (0.7-3 e-) or qCMOS's (0.25-0.5 e-): are these an EMCCD's frames? "
                "Then run --kind emccd --em-gain G (its excess noise makes an sCMOS reading of its gain half the true "
                "value)")
        cal.notes.append(text)
        print(f"plexloc calibrate-camera: warning: {text}", file=sys.stderr)
        return [text]
    if read_e < QCMOS_MAX_READ_E:  # printed with the notes (stdout), kept in the YAML and the JSON
        cal.notes.append(f"{measured}, below an ordinary sCMOS's 0.7-3 e-: normal for a qCMOS (ORCA-Quest: 0.27 e- "
                         "rms in ultra-quiet scan, 0.43 e- in standard scan). An EMCCD's frames read this low too at a "
                         "moderate EM gain: for one, run --kind emccd --em-gain G instead")
    return []
