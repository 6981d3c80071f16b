"""``plexloc simulate CONFIG --frames N --out DIR [--seed S] [--density D] [--blinks-per-molecule B]``; with
``--beads N --z-step NM --z-range LO HI`` instead of ``--frames``, a bead z-stack for ``plexloc calibrate``."""

from __future__ import annotations

import argparse
from pathlib import Path


from plexloc.cli._common import (
    add_config_argument, finite_float, nonnegative_int, positive_int, progress, resolve_config, resolve_device,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a movie and its ground truth",
        description="Simulate a movie (DIR/movie.tif, or DIR/movie_ch0.tif ... for several channels) and its "
        "ground truth (DIR/truth.csv, columns per conventions.md: one row per emitter and frame it is on, id naming "
        "the molecule, the same over all of its blinks with --blinks-per-molecule); the validated configuration is copied "
        "to DIR/config.yaml with the options that change it (--density, --frame-size, --drift-nm, "
        "--blinks-per-molecule) in it, its first line naming the options that make the same movie again from it. A "
        "note on stderr names the emitter and background fields the configuration leaves to plexloc's defaults. A warning names a camera whose frames clip at the uint16 maximum (65535 ADU) in more "
        "than 0.01 % of the pixels. With --beads N (and --z-step, --z-range instead of --frames): a bead z-stack for "
        "plexloc calibrate instead (DIR/beads.tif, or beads_ch0.tif ... per channel, DIR/beads_truth.csv and "
        "DIR/config.yaml).",
    )
    add_config_argument(p, "simulation configuration (YAML)")
    # --frames < 1 and --density < 0 are InputErrors of run() (exit code 2 returned, not raised)
    p.add_argument("--frames", type=int, default=None, help="number of frames, >= 1 (a movie: required without --beads)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed, >= 0 (default 0)")
    p.add_argument("--density", type=finite_float, default=None,
                   help="active emitters per um^2 per frame, >= 0 (overrides the config)")
    p.add_argument("--frame-size", type=positive_int, nargs=2, metavar=("H", "W"), default=None,
                   help="frame height and width in pixels (overrides the config)")
    p.add_argument("--margin-px", type=finite_float, default=None,
                   help="emitters are simulated this far (px) outside the field too, lighting its edges as in a real "
                        "movie; truth.csv keeps those inside (default: half the PSF patch, plus the channels' shifts; "
                        "0: the sample ends at the field's edge)")
    p.add_argument("--drift-nm", type=finite_float, nargs=3, metavar=("DX", "DY", "DZ"), default=None,
                   help="stage drift at the last frame (nm), linear in time from 0 at frame 0 (overrides the config's "
                        "emitters.drift.linear_nm; its wobble_nm adds a smooth random wobble). The frames show the "
                        "drifting sample, truth.csv keeps its own positions (a perfect fit after a perfect drift "
                        "correction), and DIR/truth_drift.csv holds the drift of every frame (frame, x_nm, y_nm, z_nm)")
    p.add_argument("--blinks-per-molecule", type=finite_float, default=None, metavar="B",
                   help="mean number of on-events (blinks) of one molecule over the movie, >= 1 (overrides the config's "
                        "emitters.blinks_per_molecule; default 1: every on-event is a molecule of its own). The "
                        "on-events keep the density (active emitters per um^2 per frame) and on-times, and are grouped "
                        "into molecules at positions of their own, a geometric number of events each (mean B); "
                        "truth.csv's id is then the molecule, the same in all of its blinks, which drift correction, "
                        "FRC and merging need. Needs emitters.blinking: true")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    p.add_argument("--chunk", type=positive_int, default=256,
                   help="frames rendered at a time (memory bound; default 256); the movie is the same for any value "
                        "(the camera noise is drawn in blocks of the movie: at most 256 frames or 16.8 million pixels)")
    b = p.add_argument_group(
        "bead z-stack (--beads)",
        "--beads N makes a bead z-stack instead of a movie, for plexloc calibrate: N beads at random positions, "
        "windows of --roi-px pixels apart and inside the frame, every slice with all beads at the slice's z (z > 0 "
        "away from the objective, slices in increasing z as plexloc calibrate reads them), a uniform background, the "
        "configuration's PSF (or --bead-psf pupil) and camera (ADU, uint16, clipped where it saturates); several "
        "channels see each bead through their transform, z offset and throughput. Writes DIR/beads.tif (beads_ch0.tif, "
        "... per channel; one split-view frame with split_view) and DIR/beads_truth.csv (one row per bead and slice: "
        "frame = slice, x_nm, y_nm, z_nm, photons, bg, id = bead) and DIR/config.yaml (the validated configuration, as for "
        "a movie; plexloc split and calibrate --split-view take it), and prints the plexloc calibrate command for it",
    )
    # N < 1, a step <= 0, an empty range, too many beads: InputErrors of run() naming the option and value
    b.add_argument("--beads", type=int, default=None, metavar="N", help="number of beads, >= 1")
    b.add_argument("--z-step", type=finite_float, default=None, metavar="NM", help="z step between slices, nm (> 0)")
    b.add_argument("--z-range", type=finite_float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="z of the first and last slice, nm (LO <= HI; slices at LO, LO + step, ... up to HI)")
    b.add_argument("--photons", type=finite_float, default=20000.0,
                   help="photons of each bead per slice, all channels (> 0; default 20000)")
    b.add_argument("--bg", type=finite_float, default=20.0,
                   help="background photons per pixel per slice (>= 0; default 20)")
    b.add_argument("--roi-px", type=int, default=15,
                   help="plexloc calibrate's window (odd, >= 7; default 15, calibrate's): beads are placed at least "
                        "this plus 1 px apart in x or y, and half of it plus 1 px from the border")
    b.add_argument("--bead-psf", choices=("config", "pupil"), default="config",
                   help="config (default): each channel's configured PSF; pupil: a scalar Fourier-optics astigmatic "
                        "PSF (NA 1.45, 680 nm, 0.12 waves of astigmatism; plexloc.calibrate.synthetic."
                        "PupilAstigmaticBeads), a shape the configuration's model does not describe")
    p.set_defaults(func=run)


#: the options of a movie, which a bead stack (--beads) does not take (their argparse defaults)
_MOVIE_ONLY = {"frames": None, "density": None, "margin_px": None, "drift_nm": None, "blinks_per_molecule": None,
               "chunk": 256}
#: the options of a bead stack, which a movie does not take (their argparse defaults)
_BEADS_ONLY = {"z_step": None, "z_range": None, "photons": 20000.0, "bg": 20.0, "roi_px": 15, "bead_psf": "config"}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")



def _config(args: argparse.Namespace, *, note_defaults: bool = False):
    """The configuration of ``args.config``, with ``--frame-size`` where given; ``note_defaults`` (a movie): the note of
    :func:`_note_defaults`, from the file as read (a configuration rebuilt from its dump counts every field as given)."""
    from plexloc.config import load_config, validate_config

    from plexloc.simulation.simulator import check_camera_maps

    config = load_config(args.config)
    if note_defaults:
        _note_defaults(config, args.config, args.out, given=() if args.density is None else ("density_per_um2",))
    if args.frame_size is not None:
        data = config.model_dump()
        data["frame_size"] = list(args.frame_size)
        config = validate_config(data, type(config), source="--frame-size")
    # sCMOS maps that cannot cover the frame: refused naming the file and what set the frame (the simulator's own
    # check named neither, and asked for frame_size where --frame-size had set it)
    check_camera_maps(config, source=args.config, frame_field="frame_size" if args.frame_size is None else "--frame-size")
    return config


def _split_view(config, source):
    """The configuration's split view (None without one), its boxes checked against ``frame_size``."""
    from plexloc.errors import InputError

    split = config.split_view
    if split is not None and tuple(split.boxes[0][2:]) != (config.frame_size[1], config.frame_size[0]):
        raise InputError(f"split_view boxes are {split.boxes[0][2]} (width) x {split.boxes[0][3]} (height) but "
                         f"frame_size is {config.frame_size[1]} (width) x {config.frame_size[0]} (height)", source=source)
    return split


def _joined(frames, split, camera=None):
    """(T, C, H, W) channel frames (numpy) as one camera frame per time point holding every channel's box (flipped);
    pixels between the boxes read ``camera``'s baseline (its median for a map), rounded as the ADU are."""
    from plexloc.io.splitview import join_frames

    shape = (max(b[1] + b[3] for b in split.boxes), max(b[0] + b[2] for b in split.boxes))
    base = getattr(camera, "baseline", 0.0)
    fill = float(base.double().median()) if hasattr(base, "double") else float(base)
    return join_frames(frames, split, shape, fill=round(fill))

def _note_defaults(config, source, out, *, given=()) -> None:
    """A note on stderr naming the emitter and background fields that ``source`` leaves out (a section left out
    entirely included) with the defaults used (:meth:`~plexloc.config.SimulationConfig.defaulted_fields`): the
    density, photons, on-time and background that make the movie were taken from plexloc's defaults without a word
    (``emitters`` left out: 1 emitter/µm², 1000-10000 photons). ``config`` as read from the file (its fields set);
    ``given``: emitter fields given on the command line."""
    import sys

    shown = lambda v: f"[{v[0]:g}, {v[1]:g}]" if isinstance(v, tuple) else f"{v:g}"  # noqa: E731
    parts = [f"{name} {shown(value)}" for name, value in config.defaulted_fields(given=given).items()]
    if parts:
        print(f"plexloc simulate: note: {source} does not give {', '.join(parts)}: plexloc's default(s) used; "
              f"write them in the configuration to simulate your own sample ({Path(out) / 'config.yaml'} holds every value "
              "used)",
              file=sys.stderr)


def _count(n: int, word: str) -> str:
    """``1 frame``, ``2 frames`` (the summary said "1 localizations of 1 emitters")."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _reproduce_comment(args: argparse.Namespace, device) -> str:
    """The first line of DIR/config.yaml: the options that, with this file, make the same movie again (the seed, the
    frames, the margin; the device, whose random numbers differ between CPU and CUDA)."""
    margin = "" if args.margin_px is None else f" --margin-px {args.margin_px:g}"
    return (f"made by: plexloc simulate config.yaml --frames {args.frames} --seed {args.seed}{margin} --device {device} "
            "(this file; any --chunk): the same options make the same movie and truth.csv again")


def run(args: argparse.Namespace) -> int:
    resolve_config(args)
    import numpy as np
    import torch

    from plexloc.camera.check import check_camera
    from plexloc.config import save_config
    from plexloc.errors import InputError
    from plexloc.io.tables import write_table
    from plexloc.io.tiff import MovieWriter
    from plexloc.simulation import Simulator

    if args.beads is not None:
        return _run_beads(args)
    given = [_option(k) for k, v in _BEADS_ONLY.items() if getattr(args, k) != v]
    if given:
        raise InputError(f"{', '.join(given)} make(s) a bead z-stack: give --beads N with it (or leave it out for a movie)")
    if args.frames is None:
        raise InputError("--frames N is required (a movie of N frames), or --beads N for a bead z-stack")
    if args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    if args.density is not None and args.density < 0:
        raise InputError(f"--density must be >= 0, got {args.density}")
    if args.margin_px is not None and args.margin_px < 0:
        raise InputError(f"--margin-px must be >= 0, got {args.margin_px}")
    config = _config(args, note_defaults=True)
    if args.drift_nm is not None:
        from plexloc.config import validate_config

        data = config.model_dump()
        data["emitters"]["drift"]["linear_nm"] = list(args.drift_nm)
        config = validate_config(data, type(config), source="--drift-nm")
    if args.blinks_per_molecule is not None:
        from plexloc.config import validate_config

        data = config.model_dump()
        data["emitters"]["blinks_per_molecule"] = args.blinks_per_molecule
        config = validate_config(data, type(config), source="--blinks-per-molecule")
    if args.density is not None:  # into the configuration DIR/config.yaml saves (it kept the file's density before)
        from plexloc.config import validate_config

        data = config.model_dump()
        data["emitters"]["density_per_um2"] = args.density
        config = validate_config(data, type(config), source="--density")
    device = resolve_device(args.device)
    sim = Simulator(config).to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    emitters, chunks = sim.iter_movie(args.frames, generator=gen, chunk_frames=args.chunk, margin_px=args.margin_px)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = _split_view(config, args.config)
    if sim.n_channels == 1 or split is not None:
        names = ["movie.tif"]
    else:
        names = [f"movie_ch{c}.tif" for c in range(sim.n_channels)]
    bg_frames, bg_rows = [], []
    cameras = sim.movie_cameras()  # full-chip sCMOS maps: their cut at roi_offset_px
    check = None  # pixels clipped at the uint16 maximum, over the whole movie (plexloc.camera.check)
    writers: list[MovieWriter] = []
    try:  # the writers made inside: a SIGTERM or Ctrl-C right after one made its temporary file leaves none behind
        for n in names:
            writers.append(MovieWriter(out / n, dtype=np.uint16))
        n_chunks = -(-args.frames // args.chunk)
        for start, raw, bg in progress(chunks, total=n_chunks, desc="simulate", unit="chunk"):
            part = check_camera(list(raw), cameras, dtype=np.uint16, adu=True, noise=False, warn=False,
                                source=f"{', '.join(str(out / n) for n in names)} (simulated with {args.config})")
            check = part if check is None else check.add(part)
            if split is not None:  # one camera frame holding every channel's box
                writers[0].write(_joined(raw.cpu().numpy().transpose(1, 0, 2, 3), split, cameras[0]))
            else:
                for c, w in enumerate(writers):
                    w.write(raw[c].cpu().numpy())
            bg_frames.append(bg.mean(dim=(2, 3), keepdim=True).cpu())  # every channel's (truth bg_chN)
            # the background under each emitter of the chunk, in every channel (truth bg, bg_chN): the frame's mean
            # before, up to background.variation off where the field varies
            a, b = (int(v) for v in torch.searchsorted(emitters.frame_ix, torch.tensor([start, start + raw.shape[1]],
                                                                                        device=emitters.frame_ix.device)))
            bg_rows.append(sim.local_background(emitters.select(slice(a, b)), bg, start=start,
                                                n_frames=args.frames).cpu())  # where the stage drift put them
    except BaseException:
        for w in writers:
            w.abort()
        raise
    for w in writers:
        w.close()
    if check is not None:
        check.warn()
    bg_mean = torch.cat(bg_frames, dim=1) if bg_frames else None
    truth = sim.truth_table(emitters.to("cpu"), bg_mean, bg_rows=torch.cat(bg_rows) if bg_rows else None)
    write_table(truth, out / "truth.csv")
    from plexloc.simulation.emitters import movie_drift_nm

    drift = movie_drift_nm(config.emitters.drift, args.frames)
    drift_path = out / "truth_drift.csv"
    if drift is not None:  # frame, x_nm, y_nm, z_nm: not a localization table (no photons)
        from plexloc.io._atomic import atomic_path

        with atomic_path(drift_path) as tmp:
            np.savetxt(tmp, np.column_stack([np.arange(args.frames), drift]), delimiter=",",
                       fmt=["%d", "%.4f", "%.4f", "%.4f"], header="frame,x_nm,y_nm,z_nm", comments="")
    elif drift_path.exists():  # an earlier run's drift would be taken for this movie's
        drift_path.unlink()
    save_config(config, out / "config.yaml", comment=_reproduce_comment(args, device))
    n_ids = len(set(truth["id"].tolist())) if "id" in truth.columns else None  # truth.csv: one row per emitter and frame
    blinks = config.emitters.blinks_per_molecule
    cut = sim.map_crops()
    if cut:  # full-chip maps: say where the movie lies on them, which a fit with the same camera file needs
        x0, y0 = (int(v) for v in config.roi_offset_px)
        # each channel's maps (the first one's shape only, before: a second camera's may differ)
        shapes = ", ".join(("" if sim.n_channels == 1 else f"channel {c}: ") + f"{h}x{w} px"
                           for c, (h, w) in sorted(cut.items()))
        print(f"sCMOS maps ({shapes}) cut at roi_offset_px x {x0}, y {y0}: the movie is that camera "
              f"ROI's; fit it with --camera naming the same camera file and --roi-offset {x0} {y0}")
    print(f"wrote {', '.join(str(out / n) for n in names)} ({_count(args.frames, 'frame')}) and {out / 'truth.csv'} "
          f"({_count(len(truth), 'localization')}"
          + ("" if n_ids is None else f" of {_count(n_ids, 'emitter')}" if blinks == 1 else
             f" of {_count(n_ids, 'molecule')}, blinks_per_molecule {blinks:g}")
          + ")"
          + ("" if drift is None else f"; stage drift per frame in {drift_path} (last frame: x {drift[-1, 0]:.1f}, "
             f"y {drift[-1, 1]:.1f}, z {drift[-1, 2]:.1f} nm; truth.csv holds the positions without it)"))
    return 0


def _run_beads(args: argparse.Namespace) -> int:
    """``--beads N``: a bead z-stack (plexloc.calibrate.synthetic.simulate_bead_stacks) and its truth."""
    import shlex
    import sys

    import numpy as np

    from plexloc.calibrate.synthetic import bead_capacity, channel_margins_px, simulate_bead_stacks
    from plexloc.errors import InputError
    from plexloc.io.tables import write_table
    from plexloc.io.tiff import write_movie

    given = [_option(k) for k, v in _MOVIE_ONLY.items() if getattr(args, k) != v]
    if given:
        raise InputError(f"{', '.join(given)}: option(s) of a movie, not of a bead z-stack (--beads)")
    if args.beads < 1:
        raise InputError(f"--beads must be >= 1, got {args.beads}")
    if args.z_step is None or args.z_range is None:
        raise InputError("--beads needs --z-step NM and --z-range LO HI (the slices' z, nm)")
    if not args.z_step > 0:
        raise InputError(f"--z-step must be > 0 nm, got {args.z_step:g}")
    lo, hi = args.z_range
    if hi < lo:
        raise InputError(f"--z-range {lo:g} {hi:g} is empty: LO must be <= HI (slices from LO up to HI nm)")
    z = np.arange(0, int(np.floor((hi - lo) / args.z_step + 1e-9)) + 1) * args.z_step + lo
    if len(z) < 4:
        raise InputError(f"--z-range {lo:g} {hi:g} with --z-step {args.z_step:g} gives {len(z)} slice(s): plexloc "
                         "calibrate needs at least 4 (a spline along z)")
    if not args.photons > 0:
        raise InputError(f"--photons must be > 0, got {args.photons:g}")
    if not args.bg >= 0:
        raise InputError(f"--bg must be >= 0, got {args.bg:g}")
    if args.roi_px < 7 or args.roi_px % 2 == 0:
        raise InputError(f"--roi-px must be an odd integer >= 7 (plexloc calibrate's window), got {args.roi_px}")
    config = _config(args)
    split = _split_view(config, args.config)
    H, W = (int(v) for v in config.frame_size)
    margins = channel_margins_px(config)
    cap = bead_capacity((H, W), args.roi_px, margins)
    if args.beads > cap:
        shifted = ("" if not any(margins) else " of every channel, whose transforms shift the beads by up to "
                   + ", ".join(f"{v:.1f}" for v in margins) + " px left, right, top, bottom")
        raise InputError(f"--beads {args.beads}: at most {cap} beads fit in the {H}x{W} px frame (rows x columns; "
                         f"windows of --roi-px {args.roi_px} px, {args.roi_px + 1} px apart and inside the frame"
                         f"{shifted}): give fewer beads or a larger --frame-size H W")
    px = config.px_size_xy_nm
    if px[0] != px[1]:
        raise InputError(f"px_size_nm is {list(px)}: plexloc calibrate takes one --pixel-size (square pixels)",
                         source=args.config)
    try:
        stacks = simulate_bead_stacks(config, n_beads=args.beads, z_nm=z, photons=args.photons, bg=args.bg,
                                      roi_px=args.roi_px, psf=args.bead_psf, seed=args.seed,
                                      device=resolve_device(args.device))
    except InputError as err:
        if str(err).startswith("the bead stack's z"):
            raise InputError(f"--z-range {lo:g} {hi:g}: {err}") from None
        raise
    out = Path(args.out)
    C = len(stacks.raw)
    names = ["beads.tif"] if C == 1 or split is not None else [f"beads_ch{c}.tif" for c in range(C)]
    if split is not None:  # one camera frame holding every channel's box, as the movie's
        frames = [_joined(np.stack(stacks.raw, axis=1), split, stacks.cameras[0])]
    else:
        frames = stacks.raw
    for name, f in zip(names, frames):  # each written aside and renamed into place (write_movie)
        write_movie(out / name, f, dtype=np.uint16)
    truth_path = out / "beads_truth.csv"
    write_table(stacks.truth, truth_path)
    # the configuration the stack was made with, as a movie's run writes it: plexloc split and calibrate --split-view
    # of DIR/beads.tif take DIR/config.yaml (it was not written: "configuration file not found")
    from plexloc.config import save_config

    cfg_path = out / "config.yaml"
    save_config(config, cfg_path)
    for c, hit in enumerate(stacks.saturated):
        if len(hit):
            print(f"plexloc simulate: warning: {len(hit)} of {args.beads} beads reach the camera's clipping level in "
                  + ("" if C == 1 else f"channel {c}, ")
                  + f"some slice: plexloc calibrate rejects them as saturated; give fewer --photons (now {args.photons:g})",
                  file=sys.stderr)
    cmd = ["plexloc", "calibrate", *[str(out / n) for n in names], "--z-step", f"{args.z_step:g}", "--pixel-size",
           f"{px[0]:g}", "--config", str(cfg_path)]
    if split is not None:  # calibrate cuts the one stack into the channels by the same boxes
        cmd += ["--split-view", str(cfg_path)]
    if args.roi_px != 15:
        cmd += ["--roi-px", str(args.roi_px)]
    if C > 1 and any(config.roi_offset_px):
        cmd += ["--roi-offset", *(str(int(v)) for v in config.roi_offset_px)]
    cmd += ["--out", str(out / "PSF.h5")]
    print(f"wrote {', '.join(str(out / n) for n in names)} ({len(z)} slices, z {z[0]:g} to {z[-1]:g} nm in steps of "
          f"{args.z_step:g} nm; {args.beads} beads of {args.photons:g} photons, background {args.bg:g} photons/px, "
          f"{'the configuration' if args.bead_psf == 'config' else 'the pupil model'}'s PSF), {truth_path} "
          f"and {cfg_path} (the configuration it was made with); calibrate it with: {' '.join(shlex.quote(a) for a in cmd)}")
    if split is not None:  # the transforms measured channel by channel instead (README: plexloc split, register)
        print(f"or cut it into one stack per channel: plexloc split {shlex.quote(str(out / names[0]))} --config "
              f"{shlex.quote(str(cfg_path))} --out {shlex.quote(str(out / 'split'))}")
    return 0
