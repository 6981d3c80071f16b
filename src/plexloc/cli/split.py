"""``plexloc split MOVIE --config CONFIG --out DIR``: a split-view movie cut into one TIFF per channel
(``plexloc split MOVIE --flip x --out DIR``: one channel's own movie mirrored, :func:`mirror_movie`).

A split-view (dual-view) camera images every channel side by side on one chip; the configuration's ``split_view``
section says where each channel's box lies and how it is mirrored. ``plexloc fit`` and ``plexloc process`` cut such a
movie themselves for a joint fit, which needs the channel transforms. Measuring those transforms (``plexloc register``)
needs each channel fitted alone, in its own coordinates: this command writes what that takes, streamed chunk by chunk
(the movie is never held whole), every file under a temporary name and renamed into place only when all are complete:

- ``DIR/MOVIE_ch0.tif``, ``DIR/MOVIE_ch1.tif``, ...: each channel's box, cropped and flipped exactly as the fit cuts it
  (:func:`plexloc.io.splitview.split_frames`), in the movie's pixel type;
- ``DIR/MOVIE_ch0.yaml``, ...: each channel's single-channel configuration (its PSF and camera, identity transform,
  :func:`plexloc.post.channels.channel_config`) for ``plexloc fit --method mle``, where CONFIG has the channels;

and prints the ``plexloc fit`` and ``plexloc register`` commands to run next. The ROI offset those commands need is
the movie's camera ROI (``--roi-offset``, else the movie's Micro-Manager metadata, else the configuration's
``roi_offset_px``): the boxes are crops in the transforms' own coordinates (:class:`~plexloc.config.models.
SplitViewConfig`, as ``simulate``, ``calibrate --split-view`` and the fit read them), so a box's corner adds nothing to
it, and the same offset serves every channel.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from plexloc.cli._common import nonnegative_int, positive_int

#: the bytes of raw frames read at a time where --chunk is not given (the cut copies them once more)
CHUNK_BYTES = 16 * 2**20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="cut a split-view movie into one TIFF per channel (for fitting each channel alone and plexloc register)",
        description="Cut a split-view movie (every channel side by side on one camera frame) into one TIFF per "
        "channel by the configuration's split_view boxes and flips, as plexloc fit cuts it: DIR/MOVIE_ch0.tif, "
        "DIR/MOVIE_ch1.tif, ... (streamed in chunks; every file put in place only when all are complete), and, where "
        "CONFIG has the channels, each channel's single-channel configuration DIR/MOVIE_chN.yaml for plexloc fit "
        "--method mle. Prints the movie's camera ROI offset and the plexloc fit and plexloc register commands that "
        "turn the channels into the channel transform T.json.",
    )
    p.add_argument("movie", type=Path, help="the split-view movie: a TIFF stack or a folder of TIFFs")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--config", type=Path,
                     help="configuration with a split_view section (boxes [x, y, width, height] per channel, flips); "
                     "with its channels, each channel's configuration is written too")
    how.add_argument("--flip", choices=("x", "y", "xy"), default=None,
                     help="instead of --config: mirror the whole movie (one channel's own movie) left-right (x), "
                     "up-down (y) or both, into DIR/MOVIE_flipF.tif, for a channel recorded as a mirror image of "
                     "channel 0's; with --camera, the camera's per-pixel maps too")
    p.add_argument("--camera", type=Path, default=None, metavar="YAML",
                   help="with --flip: the movie's camera YAML (or its single-channel configuration); an sCMOS camera's "
                   "per-pixel maps are mirrored as the movie into DIR/MOVIE_flipF_FIELD.npy, with DIR/MOVIE_flipF_"
                   "camera.yaml naming them, for plexloc fit --camera (full-chip maps cut at the movie's ROI first: "
                   "--roi-offset, else its metadata)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created where missing)")
    p.add_argument("--roi-offset", type=nonnegative_int, nargs=2, default=None, metavar=("X", "Y"),
                   help="chip pixel (x, y) of the movie frame's corner (its camera ROI), for the printed register "
                   "command; default: the movie's Micro-Manager metadata, else the configuration's roi_offset_px")
    p.add_argument("--chunk", type=positive_int, default=None, metavar="FRAMES",
                   help="frames read at a time (default: about 16 MB of frames)")
    p.set_defaults(func=run)


def channel_names(movie: str | Path, n_channels: int) -> list[str]:
    """``MOVIE_ch0``, ``MOVIE_ch1``, ...: the movie file's name without its movie suffixes (``cell1.ome.tif`` ->
    ``cell1``; a dot elsewhere stays: ``run.2.tif`` -> ``run.2``), a folder's own name, one per channel
    (:func:`plexloc.workflow.acquisition_name`)."""
    from plexloc.workflow import acquisition_name

    stem = acquisition_name([movie])
    return [f"{stem}_ch{c}" for c in range(n_channels)]


def split_movie(movie, split, paths: list[Path], *, chunk_frames: int | None = None,
                source: str | None = None) -> tuple[int, tuple[int, int]]:
    """Cut ``movie`` by ``split`` (:class:`~plexloc.config.models.SplitViewConfig`) into ``paths`` (one TIFF per box),
    chunk by chunk, in the movie's pixel type. Each file is written under a temporary name; all are renamed into place
    only after every chunk was written (an error or Ctrl-C leaves no output and no earlier file replaced).

    ``movie``: its path (opened here, page by page: :func:`open_split_source`), or a reader opened so already (used,
    not closed: ``plexloc split`` opens the movie once for its metadata, boxes and frames).

    Returns the number of frames and the channels' frame shape ``(rows, columns)``.

    Raises:
        InputError: a box outside the movie's frame, or two that overlap (:func:`plexloc.io.splitview.check_boxes`,
            naming ``source``: the movie and the configuration), or an unreadable movie.
    """
    import contextlib

    from plexloc.io.splitview import check_boxes, split_frames
    from plexloc.io.tiff import MovieReader, MovieWriter

    if len(paths) != len(split.boxes):
        raise ValueError(f"{len(paths)} output paths for {len(split.boxes)} split_view boxes")
    given = isinstance(movie, MovieReader)
    with contextlib.nullcontext(movie) if given else open_split_source(movie) as reader:
        check_boxes(split, reader.frame_shape, source=source or reader.path)
        h, w = reader.frame_shape
        chunk = chunk_frames or max(1, CHUNK_BYTES // (h * w * reader.dtype.itemsize))
        writers = []
        try:
            for path in paths:
                writers.append(MovieWriter(path, dtype=reader.dtype))
            for _, frames in reader.iter_chunks(chunk):
                parts = split_frames(frames, split)
                for c, writer in enumerate(writers):
                    writer.write(parts[:, c])
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        for writer in writers:
            writer.close()
        return reader.n_frames, (int(split.boxes[0][3]), int(split.boxes[0][2]))


def open_split_source(movie: str | Path):
    """The movie opened for cutting (:class:`~plexloc.io.tiff.MovieReader`, its errors naming the file). Not
    memory-mapped: each frame is read once, and a mapping's pages read stay resident. A 524 MB movie (2,000 frames of
    256 x 512 px): peak memory 1,049 MB mapped in 64 MB chunks, 365 MB read page by page in 16 MB chunks, 308 MB for a
    10-frame movie (the interpreter and its libraries)."""
    from plexloc.io.tiff import MovieReader

    return MovieReader(movie, memmap=False)


def _roi_offset(reader, given, config) -> tuple[tuple[int, int], str]:
    """The camera ROI offset of the movie ``reader`` (opened) and its source: ``--roi-offset`` > the movie's metadata >
    the configuration's ``roi_offset_px`` (where it sets one) > (0, 0)."""
    from plexloc.infer.fit import resolve_roi_offset

    if given is not None:
        return (int(given[0]), int(given[1])), "--roi-offset"
    if reader.roi_offset is not None:
        return resolve_roi_offset([reader], None)
    if config is not None and any(config.roi_offset_px):
        return tuple(int(v) for v in config.roi_offset_px), "the configuration's roi_offset_px"
    return (0, 0), (f"default (0, 0): no ROI position in the metadata of {reader.path} nor roi_offset_px in the "
                    "configuration")


def _cut_maps(config, split, frame_shape: tuple[int, int], roi: tuple[int, int], out: Path, names: list[str],
              source: str) -> list[dict]:
    """Each channel's sCMOS per-pixel maps cut to its box, flipped as its view: ``{field: (path, array)}`` per channel
    (empty where its camera has no map files). A map of the box's shape is the channel's already and is kept; one of
    the movie frame's shape is cut at the box; a larger one (the full chip) at the box's chip position, the camera ROI
    ``roi`` plus the box's corner. Without this, the fit of a cut channel would read a joined frame's or the chip's
    maps at the ROI's corner: channel 1's pixels converted with channel 0's offsets and gains. The maps are read as
    the fit reads them (float32, checked: :func:`plexloc.camera.models._load_map`).

    Raises:
        InputError: a map smaller than the movie frame but not of the box's shape, or a box whose chip position
            leaves a full-chip map (naming the channel, the field, the map file and the positions).
    """
    from plexloc.io.splitview import flips

    result = []
    for c, (ch, box, flip) in enumerate(zip(config.channels, split.boxes, flips(split))):
        result.append(_cut_camera_maps(ch.camera, box, flip, frame_shape, roi, out, names[c],
                                       field_of=f"channels[{c}].camera", whose=f"channel {c}'s box", source=source))
    return result


def _cut_camera_maps(cam, box, flip: str, frame_shape: tuple[int, int], roi: tuple[int, int] | None, out: Path,
                     name: str, *, field_of: str, whose: str, source: str, keep_own: bool = True) -> dict:
    """One camera's sCMOS per-pixel maps cut to ``box`` and flipped by ``flip`` (:func:`_cut_maps`): ``{field: (path,
    array)}``, the paths ``out / f"{name}_{field}.npy"``; empty for a camera without map files. ``roi``: the movie
    frame's chip position, for a full-chip map (None where unknown: such a map is refused, saying to give it).
    ``field_of`` and ``whose`` name the camera and the box in the messages. ``keep_own``: a map of the box's shape is
    taken as cut already (a split view's channel map); False where the box is the whole frame (:func:`mirror_movie`):
    a frame-sized map is then the movie's, and is flipped."""
    import numpy as np

    from plexloc.camera.models import _load_map
    from plexloc.config.models import SCMOSConfig
    from plexloc.errors import InputError
    from plexloc.io.splitview import cut_box

    x, y, bw, bh = (int(v) for v in box)
    maps = {}
    for field in ("e_per_adu", "baseline", "read_sigma", "read_variance"):
        value = getattr(cam, field, None) if isinstance(cam, SCMOSConfig) else None
        if not isinstance(value, (str, Path)):
            continue
        arr = _load_map(value, field=field).numpy()
        if keep_own and arr.shape == (bh, bw):
            continue  # already the channel's own (cut and flipped as the joint fit reads it)
        if arr.shape == tuple(frame_shape):
            origin, where = (0, 0), "the movie frame's"
        elif arr.shape[0] >= frame_shape[0] and arr.shape[1] >= frame_shape[1]:
            if roi is None:
                raise InputError(f"{field_of}.{field} map {value} is {arr.shape[0]} x {arr.shape[1]} (rows x columns), "
                                 f"larger than the movie frame ({frame_shape[0]} x {frame_shape[1]}), and the movie's "
                                 "metadata do not record where its frame lies on the chip: give --roi-offset X Y (the "
                                 "chip column and row of the frame's corner)", source=source)
            origin, where = roi, f"the chip's (camera ROI at x {roi[0]}, y {roi[1]} plus the box)"
        else:
            raise InputError(f"{field_of}.{field} map {value} is {arr.shape[0]} x {arr.shape[1]} (rows x "
                             f"columns): neither {whose} ({bh} x {bw}), nor the movie frame "
                             f"({frame_shape[0]} x {frame_shape[1]}), nor a full chip holding it", source=source)
        x0, y0 = origin[0] + x, origin[1] + y
        if y0 + bh > arr.shape[0] or x0 + bw > arr.shape[1]:
            raise InputError(f"{field_of}.{field} map {value} is {arr.shape[0]} x {arr.shape[1]} (rows x "
                             f"columns) but {whose} sits at {where} x {x0}, y {y0} and reaches row "
                             f"{y0 + bh}, column {x0 + bw}: check the ROI position (--roi-offset X Y)", source=source)
        part = cut_box(arr, (x, y, bw, bh), flip, origin=origin)  # as split_frames cuts the channel's frames
        maps[field] = (out / f"{name}_{field}.npy", np.ascontiguousarray(part))
    return maps


def _write_map(path: Path, arr) -> None:
    import numpy as np

    from plexloc.io._atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _full_config(path: Path, data):
    """The configuration of ``path`` (its YAML ``data``, read once) where the file describes channels (a lab
    configuration); None for a file that holds a split_view section alone (as ``plexloc fit --split-view`` takes it)."""
    from plexloc.config import load_config

    if not (isinstance(data, dict) and any(k in data for k in ("channels", "psf", "camera"))):
        return None
    return load_config(path, data=data)


def mirror_movie(args: argparse.Namespace) -> int:
    """``plexloc split MOVIE --flip F --out DIR``: the whole movie mirrored into ``DIR/MOVIE_flipF.tif`` (the one box
    of the whole frame, flipped as a split view's box is: :func:`split_movie`). Channel movies recorded apart have no
    flip option in a configuration; the alignment check's advice to mirror one had no plexloc command before."""
    from plexloc.cli._common import check_outputs
    from plexloc.config.models import SplitViewConfig
    from plexloc.errors import InputError
    from plexloc.workflow import acquisition_name

    camera_file = getattr(args, "camera", None)
    if args.roi_offset is not None and camera_file is None:
        raise InputError("--roi-offset is for a split view (--config), or with --flip for cutting a camera's full-chip "
                         "maps (--camera); --flip mirrors one channel's own movie, whose ROI offset plexloc fit reads "
                         "as for any movie")
    if not args.movie.exists():
        raise InputError("file or folder not found", source=args.movie)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder; a file of that name exists", source=out)
    name = f"{acquisition_name([args.movie])}_flip{args.flip}"
    tif = out / f"{name}.tif"
    check_outputs(tif)
    movie_files = {args.movie.resolve()} if args.movie.is_file() else {p.resolve() for p in args.movie.glob("*")}
    if tif.resolve() in movie_files:
        raise InputError(f"the output {tif} is the movie itself (or one of its files); choose another --out",
                         source=args.movie)
    cam, maps, cam_out = None, {}, out / f"{name}_camera.yaml"
    with open_split_source(args.movie) as reader:
        h, w = reader.frame_shape
        roi = reader.roi_offset.px if reader.roi_offset is not None else None
        if camera_file is not None:  # the maps checked and mirrored (in memory) before the movie is read
            from plexloc.config.io import load_camera_config

            cam = load_camera_config(camera_file)
            cut_roi = tuple(int(v) for v in args.roi_offset) if args.roi_offset is not None else roi
            maps = _cut_camera_maps(cam, (0, 0, w, h), args.flip, (h, w), cut_roi, out, name, field_of="camera",
                                    whose="the movie frame", source=str(camera_file), keep_own=False)
            if maps:
                check_outputs(cam_out, *(path for path, _ in maps.values()))
        out.mkdir(parents=True, exist_ok=True)
        n_frames, _ = split_movie(reader, SplitViewConfig(boxes=[(0, 0, w, h)], flip=[args.flip]), [tif],
                                  chunk_frames=args.chunk, source=str(args.movie))
    words = {"x": "left-right", "y": "up-down", "xy": "left-right and up-down"}[args.flip]
    print(f"{args.movie} mirrored {words} -> {tif} ({n_frames} frames of {w} x {h} px)")
    if maps:
        import yaml

        from plexloc.io._atomic import atomic_path

        for field, (map_path, arr) in maps.items():
            _write_map(map_path, arr)
            print(f"camera {field} map of {camera_file} mirrored {words} -> {map_path}")
        # named relative to the camera file (a camera file's map paths are read relative to it)
        mirrored = cam.model_copy(update={f: Path(p.name) for f, (p, _) in maps.items()})
        # only the fields the camera file gave (the defaults stay defaults, and the fit's note on them stays)
        fields = mirrored.model_dump(mode="json", exclude_unset=True)
        text = (f"# the camera of {camera_file} with its per-pixel maps mirrored {words} for {tif}; written by "
                f"plexloc split --flip {args.flip}\n" + yaml.safe_dump({"camera": fields}, sort_keys=False))
        with atomic_path(cam_out) as tmp:
            Path(tmp).write_text(text)
        print(f"wrote {cam_out}: fit {tif} in place of the movie with the same configuration and --camera {cam_out} "
              "(its maps are the mirrored ones)")
    elif camera_file is not None:
        print(f"{camera_file} has no per-pixel map files: fit {tif} in place of the movie with the same configuration "
              "and camera")
    else:
        print(f"fit {tif} in place of the movie with the same configuration; an sCMOS camera with per-pixel map files "
              f"needs them mirrored too: run this again with --camera CAMERA.yaml (or the channel's configuration), "
              f"which writes the mirrored maps and {cam_out} for plexloc fit --camera")
    if roi is not None:  # the written TIFF carries no Micro-Manager metadata
        print(f"note: {args.movie}'s metadata places it at chip pixel x {roi[0]}, y {roi[1]}; {tif} does not record "
              f"that: give plexloc fit --roi-offset {roi[0]} {roi[1]} where the fit needs it", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from plexloc.cli._common import check_outputs
    from plexloc.cli.fit import load_split_view, read_split_view_yaml
    from plexloc.config import save_config
    from plexloc.errors import InputError
    from plexloc.io.splitview import check_boxes, flips
    from plexloc.post.channels import channel_config

    if args.flip is not None:
        return mirror_movie(args)
    if getattr(args, "camera", None) is not None:
        raise InputError(f"--camera {args.camera} is for --flip; with --config, the configuration's channels' cameras "
                         "are the ones whose maps are cut (give the camera there)")
    data = read_split_view_yaml(args.config, option="--config")  # read once: its split_view and its channels
    split = load_split_view(args.config, option="--config", data=data)
    config = _full_config(args.config, data)
    n = len(split.boxes)
    # (a configuration's validation refuses boxes of another number than its channels)
    if not args.movie.exists():
        raise InputError("file or folder not found", source=args.movie)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder; a file of that name exists", source=out)
    names = channel_names(args.movie, n)
    tifs = [out / f"{name}.tif" for name in names]
    yamls = [out / f"{name}.yaml" for name in names] if config is not None else []
    check_outputs(*tifs, *yamls)
    movie_files = {args.movie.resolve()} if args.movie.is_file() else {p.resolve() for p in args.movie.glob("*")}
    same = [p for p in tifs if p.resolve() in movie_files]
    if same:
        raise InputError(f"the output {same[0]} is the movie itself (or one of its files); choose another --out",
                         source=args.movie)
    source = f"{args.movie} (split_view of {args.config})"
    with open_split_source(args.movie) as reader:  # opened once: its metadata, its frame for the boxes, its frames
        roi, roi_source = _roi_offset(reader, args.roi_offset, config)
        check_boxes(split, reader.frame_shape, source=source)
        maps = [{} for _ in range(n)]
        if config is not None:  # checked (and cut, in memory) before the movie is read
            maps = _cut_maps(config, split, reader.frame_shape, roi, out, names, source=str(args.config))
            check_outputs(*(path for m in maps for path, _ in m.values()))
        ones = []  # each channel's configuration, made before the movie is cut: an error here leaves no output
        for c in range(len(yamls)):
            one = channel_config(config, c)
            if maps[c]:
                # beside the configuration, named relative to it (a configuration's paths are read relative to
                # its file)
                camera = one.channels[0].camera.model_copy(update={f: Path(p.name) for f, (p, _) in maps[c].items()})
                one = one.model_copy(update={"channels": [one.channels[0].model_copy(update={"camera": camera})]})
            ones.append(one)
        out.mkdir(parents=True, exist_ok=True)
        n_frames, (h, w) = split_movie(reader, split, tifs, chunk_frames=args.chunk, source=source)
    for c, (box, flip, tif) in enumerate(zip(split.boxes, flips(split), tifs)):
        print(f"channel {c}: box [{', '.join(str(v) for v in box)}] ([x, y, width, height]), flip {flip} -> {tif} "
              f"({n_frames} frames of {w} x {h} px)")
    for c, (path, one) in enumerate(zip(yamls, ones)):
        for field, (map_path, arr) in maps[c].items():
            _write_map(map_path, arr)
            print(f"channel {c}'s camera {field} map cut to its box -> {map_path}")
        save_config(one, path,
                    comment=f"channel {c} of {args.config} alone, for plexloc fit --method mle of {tifs[c]} "
                    "(identity transform, z from its own focal plane); written by plexloc split")
    if yamls:
        print(f"wrote {', '.join(str(p) for p in yamls)} (each channel's configuration alone, for plexloc fit)")
    print(f"camera ROI offset x {roi[0]}, y {roi[1]} px ({roi_source}): every channel's coordinates start there (a "
          "split-view box is a crop in the transforms' own coordinates and adds nothing to it)")
    q = shlex.quote
    tables = [out / f"{name}.csv" for name in names]
    print("next, fit each channel alone and measure the transforms (reference: channel 0):")
    for c in range(n):
        cfg = q(str(yamls[c])) if yamls else f"CONFIG_OF_CHANNEL_{c}"
        print(f"  plexloc fit {q(str(tifs[c]))} --method mle --config {cfg} --out {q(str(tables[c]))}")
    px = config.px_size_xy_nm if config is not None else None
    results = {c: out / ("T.json" if n == 2 else f"T_ch{c}.json") for c in range(1, n)}
    for c, t in results.items():
        size = f"{px[0]:g}" if px is not None else "NM"
        print(f"  plexloc register {q(str(tables[0]))} {q(str(tables[c]))} --out {q(str(t))} --camera-px-size {size} "
              f"--roi-offset {roi[0]} {roi[1]}")
    if config is None:
        print(f"note: {args.config} holds no channels (PSF, camera, pixel size): give each channel's configuration to "
              "plexloc fit and the camera pixel size (nm) to plexloc register", file=sys.stderr)
    elif abs(px[0] - px[1]) > 1e-9 * max(px) and roi[1] and results:
        print(f"note: the pixels are {px[0]:g} x {px[1]:g} nm (x x y) but plexloc register takes one --camera-px-size: "
              f"its --roi-offset places the ROI at y {roi[1] * px[0]:g} nm instead of {roi[1] * px[1]:g}",
              file=sys.stderr)
    if results:  # the configuration reads a transform's file relative to itself: named absolute here
        links = ", ".join(f"channels[{c}].transform: {{file: {t.resolve()}}}" for c, t in results.items())
        print(f"then in the configuration: {links}")
    return 0
