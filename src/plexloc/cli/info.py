"""``plexloc info MOVIE [--camera CAMERA.yaml | --config CONFIG.yaml] [--channel N] [--json OUT.json]``: what plexloc
reads from a movie (files, format, metadata with their sources, the first frames' ADU statistics) before a long fit,
and, with a camera, its settings beside the metadata and the camera check's verdict (:mod:`plexloc.io.movie_info`).
A configuration of several channels, each with its own movie, is compared by the camera of the channel ``--channel``
names (default 0, said in a note); a split-view configuration by every channel's camera, each in its own box."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import check_outputs, nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show what plexloc reads from a movie: format, metadata (pixel size, ROI, camera), ADU statistics",
        description="Show what plexloc reads from a movie before a fit: its files, frames, frame size, pixel type, "
        "size on disk, whether it streams memory-mapped, its TIFF format (pages, series, OME / ImageJ / Micro-Manager); "
        "what its metadata record, each with the tag or key it came from (pixel size, camera ROI offset as fit uses "
        "it, exposure, frame interval, camera, EM gain, readout, binning, bit depth, temperature; 'not recorded' where "
        "absent); and the first frames' ADU statistics (percentiles, pixels at a 12/14/16-bit full scale or the pixel "
        "type's maximum, the dimmest pixels' level). With --camera or --config: the camera's settings beside the "
        "metadata (a warning where they differ), the pixel size of the configuration against the metadata, and the "
        "camera check that fit runs on the first frames (a configuration of several channels, each with its own movie: "
        "the camera of channel --channel N, default 0; a split_view configuration: each channel's box with its own "
        "camera). Reads only the first frames: quick for any size of movie.",
    )
    p.add_argument("movie", type=Path, help="TIFF stack or folder of TIFFs")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--camera", type=Path, default=None, help="camera YAML (as fit's --camera) to compare")
    given.add_argument("--config", type=Path, default=None,
                       help="configuration (as fit --method mle's): its cameras and pixel size are compared")
    p.add_argument("--channel", type=nonnegative_int, default=None, metavar="N",
                   help="with a configuration of several channels, each with its own movie: the channel whose camera "
                   "took MOVIE (default 0); a split_view configuration checks every channel's box with its own camera")
    p.add_argument("--frames", type=positive_int, default=None, metavar="N",
                   help="measure the ADU statistics on at most N first frames (default 64; fewer for large frames: at "
                   "most 8.4 million pixels, two frames at least; with one frame the baseline is not checked)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write everything as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.errors import InputError
    from plexloc.io.movie_info import HEAD_FRAMES, compare_camera, format_movie_info, read_movie_info

    check_outputs(args.json)  # an unwritable --json fails before the movie is read
    cameras, px, split, roi, source = None, None, None, None, None
    if args.camera is not None:
        from plexloc.config.io import load_camera_configs, read_camera_yaml

        raw = read_camera_yaml(args.camera)  # read once: its cameras and whether it has a split view
        cameras, source = load_camera_configs(args.camera, data=raw), args.camera
        if len(cameras) > 1 and isinstance(raw, dict) and raw.get("split_view") is not None:
            raise InputError("a split-view configuration: give it as --config, so that each channel's box is checked "
                             "with its own camera (with --camera the whole frame would be taken as channel 0's)",
                             source=args.camera)
    elif args.config is not None:
        from plexloc.config import load_config

        config = load_config(args.config)
        cameras, source = [ch.camera for ch in config.channels], args.config
        px, split = config.px_size_xy_nm, config.split_view
        # the configuration's ROI only where it gives one: the default (0, 0) cut full-chip maps at the chip's corner
        # where `fit --method mle` refuses them, asking for the ROI
        roi = tuple(config.roi_offset_px) if "roi_offset_px" in config.model_fields_set else None
    channel = 0
    if args.channel is not None:
        if cameras is None:
            raise InputError(f"--channel {args.channel} picks the camera of one channel of a configuration: give "
                             "--config CONFIG (or --camera CAMERA.yaml) with it")
        if split is not None:
            raise InputError(f"--channel {args.channel}: the configuration has a split_view section, so the movie "
                             "holds every channel and each channel's box is checked with its own camera; leave out "
                             "--channel", source=source)
        if args.channel >= len(cameras):
            raise InputError(f"--channel {args.channel}: the file has {len(cameras)} channel(s), numbered from 0 to "
                             f"{len(cameras) - 1}", source=source)
        channel = args.channel
    info = read_movie_info(args.movie, head_frames=args.frames or HEAD_FRAMES)
    comparison = None
    if cameras is not None:
        comparison = compare_camera(info, cameras, camera_file=source, px_size_nm=px, split=split, roi_offset_px=roi,
                                    channel=channel)
    print(format_movie_info(info, comparison))
    if args.json is not None:
        from plexloc.cli._common import write_json

        data = info.to_dict()
        if comparison is not None:
            data["camera"] = {"file": str(source), **comparison.to_dict()}
        write_json(data, args.json)
        print(f"wrote {args.json}")
    return 0
