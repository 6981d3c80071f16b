"""``plexloc detect MOVIE --config CONFIG --out LOCS.csv``: the baseline localizer (local maxima + centroid)."""

from __future__ import annotations

import argparse
from pathlib import Path


from plexloc.cli._common import check_outputs, positive_float, positive_int, progress, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="baseline localizer: local maxima + centroid (no fitting)",
        description="Detect spots (difference of Gaussians, local maxima above a threshold in photons) and "
        "localize each by its background-subtracted centroid. A baseline, not a fitter: use it to check "
        "a pipeline. Frames are converted to photons with the camera of channel 0 of CONFIG; the first frames' "
        "noise and saturation are checked against it (a warning where they do not fit). Where CONFIG has a "
        "split_view section, only channel 0's box is used (cut out and flipped as fit does), and the positions are "
        "in that box's coordinates.",
    )
    p.add_argument("movie", type=Path, help="TIFF stack or folder of TIFFs")
    p.add_argument("--config", type=Path, required=True, help="configuration with the camera and pixel size")
    p.add_argument("--out", type=Path, required=True, help="output table (.csv or .h5)")
    p.add_argument("--threshold", type=positive_float, default=None,
                   help="peak threshold in photons, > 0 (default: from the PSF, raised to 6 times the filtered "
                   "image's noise where the camera's noise at the frame's background is higher)")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    p.add_argument("--chunk", type=positive_int, default=512, help="frames processed at a time (default 512)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Detect and centroid-localize the movie in photons of channel 0's camera. detect is a single-channel baseline:
    with a ``split_view`` configuration it works in channel 0's box, cut out and flipped as
    :func:`plexloc.io.splitview.split_frames` does, positions in that box's coordinates (it said nothing and
    localized over the whole multi-channel frame: x up to twice the box's width, and a false camera alarm from the
    two halves' different noise), and says so on stderr."""
    import sys

    import numpy as np
    import torch

    from plexloc.camera import camera_from_config
    from plexloc.camera.check import check_camera, clip_level, head_frames
    from plexloc.config import load_config
    from plexloc.errors import InputError
    from plexloc.io.formats import format_of, write_locs
    from plexloc.io.tiff import open_movie
    from plexloc.mle.detection import localize_centroid
    from plexloc.psf import psf_from_config
    from plexloc.table import LocTable

    if format_of(args.out) == "picasso":  # before any work
        raise InputError("centroid rows carry no precision, which a Picasso file needs: write .csv, .h5, "
                         ".thunderstorm.csv or .smlm", source=args.out)
    check_outputs(table=args.out)  # an unwritable --out fails now, not after the whole movie
    config = load_config(args.config)
    device = resolve_device(args.device)
    channel = config.channels[0]
    camera = camera_from_config(channel.camera).to(device)
    px = config.px_size_xy_nm
    psf = psf_from_config(channel.psf, px_size_nm=px)
    sigma_px = float(getattr(psf, "sigma_nm", (130.0, 130.0))[0]) / px[0]
    threshold = args.threshold if args.threshold is not None else 20.0 * (1.3 / sigma_px) ** 2
    split = config.split_view
    tables = []
    with open_movie(args.movie) as movie:
        where = ""
        if split is not None:
            from plexloc.io.splitview import check_boxes, cut_box, flips

            check_boxes(split, movie.frame_shape, source=args.movie)
            flip = flips(split)[0]
            box = list(split.boxes[0])
            where = f" in channel 0's split_view box [x, y, width, height] = {box}" + (f", flip {flip}" if flip != "none" else "")
            print(f"plexloc detect: {args.config} has a split_view section: detecting{where} of {args.movie} only "
                  "(a single-channel baseline), positions in that box's coordinates", file=sys.stderr)
        n_chunks = -(-len(movie) // args.chunk)
        for start, frames in progress(movie.iter_chunks(args.chunk), total=n_chunks, desc="detect", unit="chunk"):
            if split is not None:  # channel 0's box, cut out and flipped as for the fits
                frames = np.ascontiguousarray(cut_box(np.asarray(frames), box, flip), dtype=np.float32)
            photons = camera.to_photons(torch.as_tensor(frames, dtype=torch.float32, device=device))
            if start == 0:  # the first frames against the camera: noise and saturation, warned about
                k = head_frames(photons.shape)  # the clipping level: the camera's, else one found in the raw frames
                level = clip_level(np.asarray(frames[:k]), camera, movie.dtype)
                check = check_camera([photons[:k]], [camera], dtype=movie.dtype, source=args.movie, levels=[level])
                for note in check.notes:  # the noise not measured (too crowded, too dim): the camera unchecked
                    print(f"plexloc detect: note: {note}", file=sys.stderr)
            thr = threshold
            if args.threshold is None:  # never below the fitter's noise-based threshold (6 sigma of the DoG image)
                from plexloc.mle.pipeline import detection_noise_variance, noise_threshold

                # (T, 1, 1), or (T, H, W) with per-pixel sCMOS maps: a noisy patch raises the threshold around it only
                thr = noise_threshold(detection_noise_variance(photons, camera, sigma_px), sigma_px).clamp_min(threshold)
            tables.append(
                localize_centroid(photons, px_size_nm=px, threshold_photons=thr, sigma_px=sigma_px, frame_offset=start)
            )
    table = LocTable.concat(tables) if tables else LocTable.empty(["bg"])
    write_locs(table, args.out)  # the format the name says (plexloc .csv/.h5, .thunderstorm.csv, .smlm)
    print(f"wrote {args.out} ({format_of(args.out)}, {len(table)} localizations{where})")
    return 0
