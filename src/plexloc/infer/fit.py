"""Fit a movie with a trained localizer: TIFF (streamed) in, localization table out."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from plexloc.camera import Camera, camera_from_config
from plexloc.config.models import CameraConfig
from plexloc.errors import InputError
from plexloc.infer.domain import NOISE_FRAMES
from plexloc.infer.extract import Extracted
from plexloc.infer.predict import Predictor, iter_frame_blocks
from plexloc.config.models import SplitViewConfig
from plexloc.io.prefetch import prefetch
from plexloc.io.splitview import check_boxes, split_frames
from plexloc.io.tiff import MovieReader, open_movie
from plexloc.nets.io import load_model
from plexloc.nets.localizer import Localizer
from plexloc.table import LocTable


def to_table(ex: Extracted, frames: np.ndarray, model: Localizer) -> LocTable:
    """Localization table (conventions.md columns) from extracted localizations; ``frames[sample]`` is the frame."""
    spec = model.spec
    sample = ex.sample.cpu().numpy()
    f = lambda t: t.detach().float().cpu().numpy().astype(np.float64)  # noqa: E731
    phot = f(ex.photons)
    sig = f(ex.sigma)
    bg = f(ex.bg)
    cols: dict[str, np.ndarray] = {
        "frame": frames[sample].astype(np.int64),
        "x_nm": f(ex.x_nm),
        "y_nm": f(ex.y_nm),
        "z_nm": f(ex.z_nm),
        "photons": phot.sum(axis=1),
        "prob": f(ex.prob),
        "bg": bg[:, 0],
        "sigma_x_nm": sig[:, 0],
        "sigma_y_nm": sig[:, 1],
    }
    if spec.is_3d:
        cols["sigma_z_nm"] = sig[:, 2]
    if spec.n_photons == 1:
        cols["sigma_photons"] = sig[:, 3]
    else:  # independent photons per channel: the total's sigma from the per-channel sigmas
        cols["sigma_photons"] = np.sqrt((sig[:, 3:] ** 2).sum(axis=1))
        for c in range(spec.n_photons):
            cols[f"photons_ch{c}"] = phot[:, c]
            cols[f"sigma_photons_ch{c}"] = sig[:, 3 + c]
    if spec.n_channels > 1:
        for c in range(spec.n_channels):
            cols[f"bg_ch{c}"] = bg[:, c]
    return LocTable(cols)


class RoiOffsetWarning(UserWarning):
    """The channel movies' metadata place their ROIs at different chip positions."""


def resolve_roi_offset(
    readers: Sequence[MovieReader], given: tuple[int, int] | None, *, split: SplitViewConfig | None = None
) -> tuple[tuple[int, int], str]:
    """The chip pixel ``(x, y)`` of the reference channel image's corner, and where it came from.

    Precedence: ``given`` (``--roi-offset``) > the reference movie's metadata (:attr:`MovieReader.roi_offset`,
    Micro-Manager) > ``(0, 0)``. The metadata are not read when an offset is given (bad metadata then do
    not matter). For one movie per channel the model assumes one ROI position for all channels; where
    another channel's metadata place its ROI elsewhere, a :class:`RoiOffsetWarning` says so.

    A split-view movie's channel boxes are pixel-preserving crops applied before the transforms, whose
    coordinates are those of the cropped images (:class:`~plexloc.config.models.SplitViewConfig`, as
    ``plexloc calibrate --split-view`` and ``plexloc simulate`` use them): the boxes move every channel into
    the same frame, so they add nothing to the offset, which is the camera ROI's (metadata) or ``(0, 0)``.
    """
    if given is not None:
        return (int(given[0]), int(given[1])), "--roi-offset"
    roi = readers[0].roi_offset
    if roi is None:
        what = "split-view boxes are crops in the transforms' coordinates, " if split is not None else ""
        return (0, 0), f"default (0, 0): {what}no ROI position in the metadata of {readers[0].path}"
    for r in readers[1:]:
        other = r.roi_offset
        if other is not None and other.px != roi.px:
            warnings.warn(
                f"{r.path}: its metadata place the ROI at {other.px} but the reference channel's "
                f"({readers[0].path}) at {roi.px}; the model uses one ROI position for every channel (the "
                f"reference's); give --roi-offset X Y if that is wrong", RoiOffsetWarning, stacklevel=3)
    return roi.px, f"{roi.source} in {readers[0].path}"


def _photon_chunks(
    readers: Sequence[MovieReader], cameras: Sequence[Camera], chunk_frames: int, split: SplitViewConfig | None = None
) -> Iterator[torch.Tensor]:
    """(t, C, H, W) float32 photon chunks from one reader per channel, or one split-view reader."""
    iters = [r.iter_chunks(chunk_frames) for r in readers]
    for parts in zip(*iters):
        if split is not None:
            raw = split_frames(np.asarray(parts[0][1], dtype=np.float32), split)
            arrs = [torch.from_numpy(raw[:, c]) for c in range(raw.shape[1])]
            yield torch.stack([cam.to_photons(a) for cam, a in zip(cameras, arrs)], dim=1)
        elif len(parts) == 1:  # one float32 copy of the chunk, converted in place (no temporaries)
            yield cameras[0].to_photons_(torch.from_numpy(np.array(parts[0][1], dtype=np.float32))).unsqueeze(1)
        else:
            out = torch.empty((parts[0][1].shape[0], len(parts), *parts[0][1].shape[1:]), dtype=torch.float32)
            for c, ((_, a), cam) in enumerate(zip(parts, cameras)):
                out[:, c].numpy()[...] = a  # numpy casts (any integer or float dtype)
                cam.to_photons_(out[:, c])
            yield out


def fit_movie(
    movie: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike | Localizer,
    *,
    camera: CameraConfig | Sequence[CameraConfig] | None = None,
    device: torch.device | str = "cpu",
    batch_frames: int = 16,
    chunk_frames: int = 256,
    threshold: float = 0.5,
    tile_px: int = 256,
    filters: dict | None = None,
    progress: Callable | None = None,
    config: dict | None = None,
    stats: dict | None = None,
    roi_offset_px: tuple[int, int] | None = None,
    split_view: SplitViewConfig | None = None,
    calibrate_sigma: bool = True,
    refine_mle: bool = False,
    compile: bool = False,
) -> LocTable:
    """Localize every frame of a movie.

    Args:
        movie: a TIFF stack or a folder of TIFFs (one per channel for several channels), streamed.
        model: a run folder / model file, or a loaded :class:`Localizer` (then ``config`` is its training config dict).
        camera: camera configuration(s) of the movie; default: the training configuration's cameras.
        device: where the network runs. batch_frames: frames per forward pass. chunk_frames: frames read at once.
        threshold: integrated detection probability for a localization.
        tile_px: frames larger than this are tiled.
        filters: keyword arguments of :func:`plexloc.post.filter.filter_localizations` (e.g. ``min_prob``,
            ``max_sigma_nm``, ``min_photons``); the counts removed go to ``stats["filtered"]``.
        progress: ``progress(iterable, total=..., desc=..., unit=...)`` wrapper (e.g. tqdm), or None.
        stats: a dict that receives ``frames``, ``seconds`` and ``frames_per_s``; ``domain``, the
            :class:`~plexloc.infer.domain.DomainReport` of the photons and background against the model's training
            ranges (where the model carries its configuration); and, for a multi-channel model, ``roi_offset_px``,
            ``roi_offset_source`` and ``duplicates``.
        roi_offset_px: chip pixel (x, y) at the reference channel image's corner (for a multi-channel model's
            transformation indicator; the transforms are the training configuration's); ``None``: from the
            movie's metadata where they record it, else (0, 0) (:func:`resolve_roi_offset`).
        calibrate_sigma: multiply ``sigma_x/y/z_nm`` by the factors the trainer measured on its validation set
            (:func:`sigma_factors`) and subtract the constant position offset it measured there
            (:func:`position_offsets`); ``stats["sigma_calibration"]`` and ``stats["offset_calibration"]`` say which
            were applied. False: the network's raw output.
        refine_mle: refine every localization by maximum likelihood in its frame with the other localizations
            nearby in the model (:func:`plexloc.mle.refine.refine_frames`; the training configuration's PSFs,
            cameras and transforms). Worth it where the network's errors are well above the Cramér-Rao bound
            (its validation ``RMSE/CRLB``), e.g. emitters on for single frames; where the network beats the
            single-frame bound by seeing several frames, it would lose that. Refined rows have ``refined`` 1 and
            the CRLB as their sigma; the sigma calibration and offsets apply to the others only.
        compile: the network through ``torch.compile`` (:class:`~plexloc.infer.predict.Predictor`); the first
            batches compile (tens of seconds), then each runs faster on a GPU. Same localizations.

    Returns:
        The localization table, rows ordered by frame.
    """
    device = torch.device(device)
    if isinstance(model, Localizer):
        net, cfg, meta = model.to(device).eval(), (config or {}), {}
    else:
        net, cfg, meta = load_model(model, device=device)
    spec = net.spec
    paths = [movie] if isinstance(movie, (str, os.PathLike)) else list(movie)
    if split_view is None and cfg.get("split_view"):
        split_view = SplitViewConfig.model_validate(cfg["split_view"])
    split = split_view if (len(paths) == 1 and spec.n_channels > 1) else None
    if split is None and len(paths) != spec.n_channels:
        raise InputError(
            f"the model has {spec.n_channels} channel(s) but {len(paths)} movie(s) were given "
            "(give one movie per channel, or one split-view movie with a split_view configuration)",
            source=paths[0],
        )
    if split is not None and len(split.boxes) != spec.n_channels:
        raise InputError(f"split_view has {len(split.boxes)} boxes for a {spec.n_channels}-channel model", source=paths[0])
    if camera is None:
        if not cfg or "channels" not in cfg:
            raise InputError("no camera given and the model carries no training configuration", source=str(model))
        from plexloc.config.models import ChannelConfig

        cams = [camera_from_config(ChannelConfig.model_validate(ch).camera) for ch in cfg["channels"]]
    else:
        cams = [camera_from_config(c) for c in ([camera] if not isinstance(camera, (list, tuple)) else camera)]
    if len(cams) != spec.n_channels:
        raise InputError(f"{len(cams)} camera(s) given for a {spec.n_channels}-channel model")

    readers = [open_movie(p) for p in paths]
    source = None
    try:
        n = len(readers[0])
        if split is not None:
            check_boxes(split, readers[0].frame_shape, source=paths[0])
        for r, p in zip(readers[1:], paths[1:]):
            if len(r) != n or r.frame_shape != readers[0].frame_shape:
                raise InputError(
                    f"channel movies differ: {len(r)} frames of {r.frame_shape} vs {n} of {readers[0].frame_shape}", source=p
                )
        for cam in cams:
            shape = getattr(cam, "map_shape", None)
            frame_shape = tuple(split.boxes[0][3:1:-1]) if split is not None else tuple(readers[0].frame_shape)
            if shape is not None and tuple(shape) != frame_shape:
                raise InputError(f"camera maps are {tuple(shape)} but the movie's frames are {readers[0].frame_shape}", source=paths[0])
        transforms = None
        roi_offset, roi_source = (0, 0), "not used (single channel)"
        if spec.n_aux:
            if not cfg or "channels" not in cfg:
                raise InputError("a multi-channel model needs its training configuration (channel transforms)")
            transforms = [torch.tensor(ch["transform"], dtype=torch.float64) for ch in cfg["channels"]]
            roi_offset, roi_source = resolve_roi_offset(readers, roi_offset_px, split=split)
        predictor = Predictor(net, threshold=threshold, tile_px=tile_px, transforms=transforms, compile=compile)
        refiner = _refiner(cfg, camera, device, roi_offset, source=str(model)) if refine_mle else None
        if refiner is not None:
            from plexloc.mle.refine import refine_frames

            frame_shape = tuple(split.boxes[0][3:1:-1]) if split is not None else tuple(readers[0].frame_shape)
            if refiner.roi_px > min(frame_shape):
                raise InputError(f"refine_mle: the MLE's fitting window ({refiner.roi_px} px) is larger than the "
                                 f"frames {frame_shape}", source=paths[0])
        # chunks go to the device before the temporal windows are formed: each frame crosses once, not once
        # per window it belongs to, and the windows are views on the device
        head: list[torch.Tensor] = []  # the movie's first frames, kept on the CPU for the camera noise check

        def keep_first(c: torch.Tensor) -> torch.Tensor:
            if not head:  # whole frames (camera maps are per pixel), as many as 64 x 256 x 256 pixels allow (>= 2)
                n_keep = min(max(NOISE_FRAMES * 256 * 256 // max(c.shape[-2] * c.shape[-1], 1), 2), NOISE_FRAMES)
                head.append(c[:n_keep].clone())
            return c.to(device)

        # the next chunks are read and converted to photons by a background thread while this one is fitted
        source = prefetch(_photon_chunks(readers, cams, chunk_frames, split))
        chunks = (keep_first(c) for c in source)
        # each frame through the frame U-Nets once, not once per window it belongs to
        batches = iter_frame_blocks(chunks, window=spec.window, batch_frames=batch_frames)
        bar = progress(None, total=n, desc="fit", unit="frame") if progress else None
        tables = []
        t0 = time.perf_counter()
        for first, block in batches:
            n_block = block.shape[0] - 2 * (spec.window // 2)
            ex = predictor.localize_frames(block, roi_offset)
            tab = to_table(ex, np.arange(first, first + n_block), net)
            if refiner is not None:
                h = spec.window // 2
                frames_ph = block[h : h + n_block].to(refiner.device).transpose(0, 1)  # (C, n, H, W)
                tab = refine_frames(refiner, frames_ph, tab, frame_offset=first)
            tables.append(tab)
            if bar is not None:
                bar.update(n_block)
                bar.set_postfix(locs=sum(len(t) for t in tables), refresh=False)
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
    finally:
        if source is not None:  # the reading thread stops before its files close
            source.close()
        for r in readers:
            r.close()
    table = LocTable.concat(tables) if tables else to_table(_empty(spec, device), np.zeros(0, dtype=np.int64), net)
    if refine_mle and not tables:  # the same columns as a refined table
        table = table.with_columns(**{k: np.zeros(0) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "llr", "roi_px", "refined")})
    # the network's own rows (not the refined ones) get the calibration measured on its validation set
    net_rows = np.asarray(table["refined"]) == 0 if "refined" in table else np.ones(len(table), bool)
    factors = sigma_factors(meta) if calibrate_sigma else {}
    if factors:  # before the filters, so that max_sigma_nm sees the calibrated sigmas
        table = table.with_columns(**{f"sigma_{ax}_nm": np.where(net_rows, np.asarray(table[f"sigma_{ax}_nm"]) * f,
                                                                 np.asarray(table[f"sigma_{ax}_nm"]))
                                      for ax, f in factors.items() if f"sigma_{ax}_nm" in table})
    offsets = position_offsets(meta) if calibrate_sigma else {}
    if offsets and len(table):
        table = table.with_columns(**{f"{ax}_nm": np.asarray(table[f"{ax}_nm"]) - np.where(net_rows, o, 0.0)
                                      for ax, o in offsets.items()})
    report = None
    if filters and any(v is not None for v in filters.values()):
        from plexloc.post.filter import filter_localizations

        table, report = filter_localizations(table, **filters)
    if stats is not None:
        stats.update(frames=n, seconds=elapsed, frames_per_s=n / elapsed if elapsed > 0 else float("nan"),
                     sigma_calibration=factors, offset_calibration=offsets)
        if spec.n_aux:
            stats.update(roi_offset_px=roi_offset, roi_offset_source=roi_source)
        if spec.n_channels > 1 and len(table):  # a wrong transform: one localization per channel per molecule
            from plexloc.post.duplicates import channel_duplicates

            stats["duplicates"] = channel_duplicates(table, warn=False)
        if cfg and "channels" in cfg:  # photons and background against the training ranges (bad camera settings)
            from plexloc.config import TrainConfig, validate_config
            from plexloc.infer.domain import check_training_domain, noise_ratio

            noise = [noise_ratio(head[0][:, c], cams[c]) for c in range(spec.n_channels)] if head else None
            stats["domain"] = check_training_domain(table, validate_config(cfg, TrainConfig, source=str(model)),
                                                    noise=noise, warn=False)
        if report is not None:
            stats["filtered"] = report
    return table


def _refiner(cfg: dict, camera, device, roi_offset: tuple[int, int], *, source: str):
    """The MLE fitter of ``fit_movie(refine_mle=True)``: the model's training configuration, the movie's cameras."""
    if not cfg or "channels" not in cfg:
        raise InputError("refine_mle needs the model's training configuration (PSFs, cameras)", source=source)
    from plexloc.config import TrainConfig, validate_config
    from plexloc.mle import MLEFitter

    sim = validate_config(cfg, TrainConfig, source=source).simulation()
    return MLEFitter(sim, device=device, camera=camera, roi_offset_px=roi_offset)


def _validation_values(meta: dict, prefix: str, keep) -> dict[str, float]:
    """``{axis: value}`` of the keys ``{prefix}x/y/z`` in a model file's validation meta, where ``keep(value)``."""
    val = (meta or {}).get("validation") or {}
    out = {}
    for ax in ("x", "y", "z"):
        v = val.get(f"{prefix}{ax}")
        if v is not None and np.isfinite(v) and keep(v):
            out[ax] = float(v)
    return out


def sigma_factors(meta: dict) -> dict[str, float]:
    """``{axis: factor}`` from a model file's meta: the robust z-score spread of the isolated emitters of the
    validation set at the saved step (``sigma_cal_x/y/z``, :func:`plexloc.evaluate.uncertainty.sigma_calibration`).

    A network's sigma heads learn the spread of their own pixel's error, and training stops before they settle;
    the factors correct both on simulated data the network never trained on. Axes without a finite positive
    factor (models saved before 2026-12-03, z of 2D models) are left out."""
    return _validation_values(meta, "sigma_cal_", lambda v: v > 0)


def position_offsets(meta: dict) -> dict[str, float]:
    """``{axis: nm}`` to subtract from the positions: the validation set's median error of the matched emitters
    where it was significant (``offset_cal_x/y/z``, :func:`plexloc.evaluate.uncertainty.offset_calibration`); zero
    and missing offsets are left out."""
    return _validation_values(meta, "offset_cal_", lambda v: v != 0.0)


def _empty(spec, device) -> Extracted:
    z = torch.zeros(0, device=device)
    zi = torch.zeros(0, dtype=torch.int64, device=device)
    return Extracted(
        sample=zi, pixel_row=zi, pixel_col=zi, x_nm=z, y_nm=z, z_nm=z,
        photons=torch.zeros(0, spec.n_photons, device=device), prob=z,
        sigma=torch.zeros(0, 3 + spec.n_photons, device=device), bg=torch.zeros(0, spec.n_channels, device=device),
    )
