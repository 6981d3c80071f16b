"""``plexloc simulate CONFIG --frames N --out DIR [--seed S] [--density D] [--blinks-per-molecule B]``."""

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
        "to DIR/config.yaml. A warning names a camera whose frames clip at the uint16 maximum (65535 ADU) in more "
        "than 0.01 % of the pixels.",
    )
    add_config_argument(p, "simulation configuration (YAML)")
    # --frames < 1 and --density < 0 are InputErrors of run() (exit code 2 returned, not raised)
    p.add_argument("--frames", type=int, required=True, help="number of frames, >= 1")
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
    p.add_argument("--chunk", type=positive_int, default=256, help="frames rendered at a time (memory bound; default 256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_config(args)
    import numpy as np
    import torch

    from plexloc.camera.check import check_camera
    from plexloc.config import load_config, save_config
    from plexloc.errors import InputError
    from plexloc.io.tables import write_table
    from plexloc.io.tiff import MovieWriter
    from plexloc.simulation import Simulator

    if args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    if args.density is not None and args.density < 0:
        raise InputError(f"--density must be >= 0, got {args.density}")
    if args.margin_px is not None and args.margin_px < 0:
        raise InputError(f"--margin-px must be >= 0, got {args.margin_px}")
    config = load_config(args.config)
    if args.frame_size is not None:
        from plexloc.config import validate_config

        data = config.model_dump()
        data["frame_size"] = list(args.frame_size)
        config = validate_config(data, type(config), source="--frame-size")
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
    device = resolve_device(args.device)
    sim = Simulator(config).to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    emitters, chunks = sim.iter_movie(args.frames, generator=gen, density_per_um2=args.density, chunk_frames=args.chunk,
                                      margin_px=args.margin_px)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = config.split_view
    if split is not None and tuple(split.boxes[0][2:]) != (config.frame_size[1], config.frame_size[0]):
        raise InputError(f"split_view boxes are {split.boxes[0][2]} (width) x {split.boxes[0][3]} (height) but "
                         f"frame_size is {config.frame_size[1]} (width) x {config.frame_size[0]} (height)", source=args.config)
    if sim.n_channels == 1 or split is not None:
        names = ["movie.tif"]
    else:
        names = [f"movie_ch{c}.tif" for c in range(sim.n_channels)]
    writers = [MovieWriter(out / n, dtype=np.uint16) for n in names]
    bg_frames = []
    cameras = sim.movie_cameras()  # full-chip sCMOS maps: their cut at roi_offset_px
    check = None  # pixels clipped at the uint16 maximum, over the whole movie (plexloc.camera.check)
    try:
        n_chunks = -(-args.frames // args.chunk)
        for _, raw, bg in progress(chunks, total=n_chunks, desc="simulate", unit="chunk"):
            part = check_camera(list(raw), cameras, dtype=np.uint16, adu=True, noise=False, warn=False,
                                source=f"{', '.join(str(out / n) for n in names)} (simulated with {args.config})")
            check = part if check is None else check.add(part)
            if split is not None:  # one camera frame holding every channel's box
                from plexloc.io.splitview import join_frames

                shape = (max(b[1] + b[3] for b in split.boxes), max(b[0] + b[2] for b in split.boxes))
                writers[0].write(join_frames(raw.cpu().numpy().transpose(1, 0, 2, 3), split, shape))
            else:
                for c, w in enumerate(writers):
                    w.write(raw[c].cpu().numpy())
            bg_frames.append(bg.mean(dim=(2, 3), keepdim=True).cpu())  # every channel's (truth bg_chN)
    except BaseException:
        for w in writers:
            w.abort()
        raise
    for w in writers:
        w.close()
    if check is not None:
        check.warn()
    bg_mean = torch.cat(bg_frames, dim=1) if bg_frames else None
    truth = sim.truth_table(emitters.to("cpu"), bg_mean)
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
    save_config(config, out / "config.yaml")
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
    print(f"wrote {', '.join(str(out / n) for n in names)} ({args.frames} frames) and {out / 'truth.csv'} "
          f"({len(truth)} localizations"
          + ("" if n_ids is None else f" of {n_ids} emitters" if blinks == 1 else
             f" of {n_ids} molecules, blinks_per_molecule {blinks:g}")
          + ")"
          + ("" if drift is None else f"; stage drift per frame in {drift_path} (last frame: x {drift[-1, 0]:.1f}, "
             f"y {drift[-1, 1]:.1f}, z {drift[-1, 2]:.1f} nm; truth.csv holds the positions without it)"))
    return 0
