"""``plexloc detect MOVIE --config CONFIG --out LOCS.csv``: the baseline localizer (local maxima + centroid)."""

from __future__ import annotations

import argparse
from pathlib import Path


from plexloc.cli._common import positive_float, positive_int, progress, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="baseline localizer: local maxima + centroid (no fitting)",
        description="Detect spots (difference of Gaussians, local maxima above a threshold in photons) and "
        "localize each by its background-subtracted centroid. A baseline, not a fitter: use it to check "
        "a pipeline. Frames are converted to photons with the camera of channel 0 of CONFIG; the first frames' "
        "noise and saturation are checked against it (a warning where they do not fit).",
    )
    p.add_argument("movie", type=Path, help="TIFF stack or folder of TIFFs")
    p.add_argument("--config", type=Path, required=True, help="configuration with the camera and pixel size")
    p.add_argument("--out", type=Path, required=True, help="output table (.csv or .h5)")
    p.add_argument("--threshold", type=positive_float, default=None,
                   help="peak threshold in photons, > 0 (default from the PSF)")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    p.add_argument("--chunk", type=positive_int, default=512, help="frames processed at a time (default 512)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from plexloc.camera import camera_from_config
    from plexloc.camera.check import check_camera, head_frames
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
    config = load_config(args.config)
    device = resolve_device(args.device)
    channel = config.channels[0]
    camera = camera_from_config(channel.camera).to(device)
    px = config.px_size_xy_nm
    psf = psf_from_config(channel.psf, px_size_nm=px)
    sigma_px = float(getattr(psf, "sigma_nm", (130.0, 130.0))[0]) / px[0]
    threshold = args.threshold if args.threshold is not None else 20.0 * (1.3 / sigma_px) ** 2
    tables = []
    with open_movie(args.movie) as movie:
        n_chunks = -(-len(movie) // args.chunk)
        for start, frames in progress(movie.iter_chunks(args.chunk), total=n_chunks, desc="detect", unit="chunk"):
            photons = camera.to_photons(torch.as_tensor(frames, dtype=torch.float32, device=device))
            if start == 0:  # the first frames against the camera: noise and saturation, warned about
                check_camera([photons[: head_frames(photons.shape)]], [camera], dtype=movie.dtype, source=args.movie)
            tables.append(
                localize_centroid(photons, px_size_nm=px, threshold_photons=threshold, sigma_px=sigma_px, frame_offset=start)
            )
    table = LocTable.concat(tables) if tables else LocTable.empty(["bg"])
    write_locs(table, args.out)  # the format the name says (plexloc .csv/.h5, .thunderstorm.csv, .smlm)
    print(f"wrote {args.out} ({format_of(args.out)}, {len(table)} localizations)")
    return 0
