"""Training priors from a pre-fit of the data (the DecodePlex pre-fit): photon, background and
channel-ratio ranges.

How the ranges are derived:

1. A subset of the movie (up to ``max_frames`` frames, in a few contiguous blocks spread over the
   movie) is localized by maximum likelihood with free photons per channel.
2. **Photons.** Blinking splits an emitter's photons over the frames its on-time overlaps, so a
   per-frame photon count is the flux times the fraction of the frame it was on. Localizations are
   linked across consecutive frames (nearest neighbour within ``link_radius_nm``); in a track of
   three or more frames the interior frames were on the whole frame, so their photons estimate the
   *flux* that the simulator's ``emitters.photons_range`` draws (uniformly). Total photons are divided
   by the channels' summed throughput (the simulator's linked photon model). Dim emitters' tracks
   break more often (their partial first/last frames fall below the detection limit), which thins
   the low end of the interior-frame distribution; so the flux range is fitted from the 50th and 90th
   percentiles, where that selection is mild, rather than from the 10th.
3. **Background.** The median fitted background of the localizations of each frame (each channel's
   own, pooled over channels) is that frame's level, which the simulator draws uniformly from ``background.range``.
4. Both distributions are taken as uniform ``U(lo, hi)`` and fitted robustly from two percentiles
   ``q_a, q_b`` (background: 10th and 90th; flux: 50th and 90th): ``w = (q_b - q_a) / (b - a)``,
   ``lo = q_a - a w``, ``hi = q_b + (1 - b) w`` (the tails, where missed dim emitters and outliers
   live, do not enter). ``lo`` is clipped at 0.
5. **Channel ratios** (several channels): the median fraction of each channel's photons; for the
   ``linked`` photon model it becomes the channels' ``throughput`` (keeping their sum, which is not
   identifiable from the data); all per-channel percentiles go into the summary.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from plexloc.config.models import CameraConfig, SimulationConfig
from plexloc.errors import InputError
from plexloc.table import LocTable


def weighted_quantile(values: np.ndarray, q, weights: np.ndarray | None = None) -> np.ndarray:
    """Quantiles of ``values`` with sample ``weights`` (the midpoint rule on the weighted CDF)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(v)
    v, w = v[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(q, cdf, v)


def uniform_range(
    values: np.ndarray, *, weights: np.ndarray | None = None, low: float = 0.1, high: float = 0.9
) -> tuple[float, float]:
    """The range ``(lo, hi)`` of a uniform distribution with the same ``low``/``high`` quantiles as
    ``values`` (optionally weighted)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    v = v[ok]
    if v.size < 10:
        raise InputError(f"too few values ({v.size}) to estimate a range; fit more frames")
    ql, qh = weighted_quantile(v, [low, high], None if weights is None else np.asarray(weights)[ok])
    w = (qh - ql) / (high - low)
    return (max(0.0, float(ql - low * w)), float(qh + (1 - high) * w))


def link_interior(locs: LocTable, *, radius_nm: float) -> np.ndarray:
    """Boolean mask of localizations that are interior frames of tracks of >= 3 consecutive frames.

    Linking: each localization in frame f is joined to the nearest one in frame f + 1 within
    ``radius_nm`` (mutual nearest neighbours, so no localization is linked twice).
    """
    from scipy.spatial import cKDTree

    n = len(locs)
    prev_link = np.zeros(n, bool)  # has a partner in the frame before
    next_link = np.zeros(n, bool)
    if n == 0:
        return prev_link
    order = np.argsort(locs["frame"], kind="stable")
    fr = locs["frame"][order]
    xy = np.stack([locs["x_nm"][order], locs["y_nm"][order]], 1)
    frames, starts = np.unique(fr, return_index=True)
    stops = np.append(starts[1:], len(fr))
    by_frame = {int(f): (a, b) for f, a, b in zip(frames, starts, stops)}
    for f, (a, b) in by_frame.items():
        nxt = by_frame.get(f + 1)
        if nxt is None:
            continue
        c, d = nxt
        ta, tb = cKDTree(xy[a:b]), cKDTree(xy[c:d])
        dist_ab, j = tb.query(xy[a:b], distance_upper_bound=radius_nm)
        dist_ba, i = ta.query(xy[c:d], distance_upper_bound=radius_nm)
        for k in np.flatnonzero(np.isfinite(dist_ab)):
            if i[j[k]] == k:  # mutual nearest neighbours
                next_link[order[a + k]] = True
                prev_link[order[c + j[k]]] = True
    return prev_link & next_link


def estimate_priors(
    movie: str | os.PathLike | Sequence[str | os.PathLike],
    config: SimulationConfig,
    *,
    max_frames: int = 2000,
    blocks: int = 4,
    device: str | torch.device = "cpu",
    camera: CameraConfig | Sequence[CameraConfig] | None = None,
    link_radius_nm: float | None = None,
    progress: bool = False,
) -> tuple[SimulationConfig, dict]:
    """Pre-fit part of a movie and return a training configuration with the fitted ranges.

    Returns ``(config, summary)``: the input configuration with ``emitters.photons_range``,
    ``background.range`` (and, for linked multi-channel configs, the channels' ``throughput``)
    replaced; ``summary`` holds the numbers behind them (counts, percentiles, fractions).
    """
    from plexloc.io.tiff import open_movie
    from plexloc.mle.pipeline import MLEFitter

    paths = [movie] if isinstance(movie, (str, os.PathLike)) else list(movie)
    if len(paths) != config.n_channels:
        raise InputError(f"the configuration has {config.n_channels} channel(s) but {len(paths)} movie(s) were given")
    if max_frames < 3:
        raise InputError(f"max_frames must be >= 3, got {max_frames}")
    fitter = MLEFitter(config, device=device, camera=camera, photon_model="free")
    readers = [open_movie(p) for p in paths]
    tables = []
    try:
        n = len(readers[0])
        use = min(n, max_frames)
        nb = max(1, min(blocks, use // 50 or 1))
        size = use // nb
        starts = [int(round(s)) for s in np.linspace(0, n - size, nb)] if nb > 1 else [0]
        chunks = [(s + o, min(s + o + 256, s + size)) for s in starts for o in range(0, size, 256)]
        if progress:
            from plexloc.cli._common import progress as bar

            chunks = bar(chunks, total=len(chunks), desc="pre-fit", unit="chunk")
        for a, b in chunks:
            # a gap of one frame between blocks keeps tracks from being linked across them
            t = fitter.fit_frames([rd[a:b] for rd in readers], frame_offset=a)
            tables.append(t)
    finally:
        for rd in readers:
            rd.close()
    locs = LocTable.concat(tables) if tables else LocTable.empty()
    if len(locs) < 10:
        raise InputError(f"the pre-fit found only {len(locs)} localizations in {use} frames; check the camera and PSF")
    px = config.px_size_xy_nm[0]
    radius = link_radius_nm if link_radius_nm is not None else 1.0 * px
    interior = link_interior(locs, radius_nm=radius)
    throughputs = np.array([c.throughput for c in config.channels])
    flux = locs["photons"][interior] / throughputs.sum()
    if flux.size < 10:
        raise InputError(
            f"only {flux.size} localizations are interior frames of tracks; fit more frames (max_frames) "
            "or check that emitters stay on for more than one frame"
        )
    photons_range = uniform_range(flux, low=0.5, high=0.9)
    # background: per-frame median of the fitted background, every channel's levels pooled (the
    # simulator draws each channel's level on its own)
    frames, inv = np.unique(locs["frame"], return_inverse=True)
    cols = [f"bg_ch{c}" for c in range(config.n_channels)] if config.n_channels > 1 else ["bg"]
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(frames) + 1))
    per_frame = np.concatenate(
        [[np.median(locs[col][order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])] for col in cols]
    )
    bg_range = uniform_range(per_frame)
    summary = {
        "frames_fitted": int(use),
        "localizations": int(len(locs)),
        "interior_localizations": int(flux.size),
        "photons_percentiles": dict(zip(("p10", "p50", "p90"), np.quantile(flux, [0.1, 0.5, 0.9]).tolist())),
        "bg_percentiles": dict(zip(("p10", "p50", "p90"), np.quantile(per_frame, [0.1, 0.5, 0.9]).tolist())),
        "photons_range": list(photons_range),
        "background_range": list(bg_range),
    }
    emitters = config.emitters.model_copy(update={"photons_range": photons_range})
    background = config.background.model_copy(update={"range": bg_range})
    update = {"emitters": emitters, "background": background}
    if config.n_channels > 1:
        full = locs[interior]
        total = np.maximum(full["photons"], 1e-9)
        fractions = np.stack([full[f"photons_ch{c}"] / total for c in range(config.n_channels)], 1)
        summary["channel_fraction_percentiles"] = {
            f"ch{c}": dict(zip(("p10", "p50", "p90"), np.quantile(fractions[:, c], [0.1, 0.5, 0.9]).tolist()))
            for c in range(config.n_channels)
        }
        if config.photon_model.kind == "linked":
            med = np.median(fractions, axis=0)
            new_t = med / med.sum() * throughputs.sum()
            if np.all(new_t > 0) and np.all(new_t <= 1):
                update["channels"] = [
                    ch.model_copy(update={"throughput": float(t)}) for ch, t in zip(config.channels, new_t)
                ]
                summary["throughput"] = new_t.tolist()
    return config.model_copy(update=update), summary
