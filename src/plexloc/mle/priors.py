"""Training priors from a pre-fit of the data (the DecodePlex pre-fit): photon, background and
channel-ratio ranges.

How the ranges are derived:

1. A subset of the movie (up to ``max_frames`` frames, in a few contiguous blocks spread over the
   movie) is localized by maximum likelihood with free photons per channel.
2. **Photons.** Blinking splits an emitter's photons over the frames its on-time overlaps, so a
   per-frame photon count is the flux times the fraction of the frame it was on. Fits whose
   log-likelihood ratio says they are not one clean spot (p < 1e-3) are left out. Localizations are
   linked into tracks across consecutive frames (mutual nearest neighbours within
   ``link_radius_nm``, bridging one missed frame). In a track of three or more frames the interior frames were on the whole
   frame; an end frame counts as whole too when its photons are at least 80 % of the interior
   median (a dim emitter's partial first and last frames often fall below the detection limit, so
   its track *ends* on whole frames). Every track with at least three whole frames gives one flux
   sample, the median of its whole frames. The inclusion rule (an on-time of three whole frames)
   does not depend on the flux, so the samples are an unbiased draw of the flux distribution above
   the detection limit; photons are divided by the channels' summed throughput (the simulator's
   linked photon model).
3. **Background.** The median fitted background of the localizations of each frame (each channel's
   own, pooled over channels) is that frame's level, which the simulator draws uniformly from ``background.range``.
4. Both distributions are taken as uniform ``U(lo, hi)`` and fitted robustly from two percentiles
   ``q_a, q_b`` (10th and 90th): ``w = (q_b - q_a) / (b - a)``,
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


def uniform_range(values: np.ndarray, *, low: float = 0.1, high: float = 0.9) -> tuple[float, float]:
    """The range ``(lo, hi)`` of a uniform distribution with the same ``low``/``high`` quantiles as ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 10:
        raise InputError(f"too few values ({v.size}) to estimate a range; fit more frames")
    ql, qh = np.quantile(v, [low, high])
    w = (qh - ql) / (high - low)
    return (max(0.0, float(ql - low * w)), float(qh + (1 - high) * w))


def link_tracks(locs: LocTable, *, radius_nm: float, max_gap: int = 1) -> np.ndarray:
    """Track id of every localization: each one in frame f is joined to its mutual nearest neighbour
    in frame f + 1 within ``radius_nm``; localizations left without a successor are then joined the
    same way to ones left without a predecessor up to ``max_gap`` frames later (a dim emitter missed
    in one frame keeps its track)."""
    from scipy.spatial import cKDTree

    n = len(locs)
    nxt = np.full(n, -1, dtype=np.int64)
    has_prev = np.zeros(n, bool)
    order = np.argsort(locs["frame"], kind="stable")
    fr = locs["frame"][order]
    xy = np.stack([locs["x_nm"][order], locs["y_nm"][order]], 1)
    frames, starts = np.unique(fr, return_index=True)
    stops = np.append(starts[1:], len(fr))
    by_frame = {int(f): (a, b) for f, a, b in zip(frames, starts, stops)}
    for step in range(1, max_gap + 2):
        for f, (a, b) in by_frame.items():
            if f + step not in by_frame:
                continue
            c, d = by_frame[f + step]
            src = np.flatnonzero(nxt[order[a:b]] < 0)  # not yet linked forward
            dst = np.flatnonzero(~has_prev[order[c:d]])  # not yet linked backward
            if src.size == 0 or dst.size == 0:
                continue
            dist, j = cKDTree(xy[c + dst]).query(xy[a + src], distance_upper_bound=radius_nm)
            _, i = cKDTree(xy[a + src]).query(xy[c + dst], distance_upper_bound=radius_nm)
            for k in np.flatnonzero(np.isfinite(dist)):
                if i[j[k]] == k:  # mutual nearest neighbours
                    nxt[order[a + src[k]]] = order[c + dst[j[k]]]
                    has_prev[order[c + dst[j[k]]]] = True
    track = np.full(n, -1, dtype=np.int64)
    for t, head in enumerate(np.flatnonzero(~has_prev)):
        k = head
        while k >= 0:
            track[k] = t
            k = nxt[k]
    return track


def track_flux(locs: LocTable, track: np.ndarray, *, min_whole: int = 3, end_fraction: float = 0.8) -> np.ndarray:
    """One flux sample per track with at least ``min_whole`` whole frames (see the module docstring)."""
    order = np.lexsort((locs["frame"], track))
    tr, ph = track[order], locs["photons"][order]
    ids, starts = np.unique(tr, return_index=True)
    stops = np.append(starts[1:], len(tr))
    out = []
    for a, b in zip(starts, stops):
        if b - a < 3:
            continue
        p = ph[a:b]
        inner = np.median(p[1:-1])
        whole = np.ones(b - a, bool)
        whole[0] = p[0] >= end_fraction * inner
        whole[-1] = p[-1] >= end_fraction * inner
        if whole.sum() >= min_whole:
            out.append(np.median(p[whole]))
    return np.asarray(out, dtype=np.float64)


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
    roi_offset_px: tuple[int, int] | None = None,
) -> tuple[SimulationConfig, dict]:
    """Pre-fit part of a movie and return a training configuration with the fitted ranges.

    ``movie``: a TIFF stack or folder of TIFFs; one per channel (a list) for several channels, or one split-view
    movie where the configuration has a ``split_view`` section (each channel's box cut out and flipped by
    :func:`plexloc.io.splitview.split_frames`, as :func:`plexloc.mle.pipeline.fit_movie` does). Channel movies of
    different frame counts or frame shapes are refused with an :class:`~plexloc.errors.InputError` naming each file
    (a shorter second channel had crashed in ``torch.stack``).

    ``roi_offset_px``: the chip pixel (x, y) of the frames' corner, where the movie's metadata do not record its camera
    ROI (:func:`plexloc.mle.pipeline.movie_fitter`: default the metadata's, else the configuration's
    ``roi_offset_px``): the channel transforms act there, and full-chip sCMOS maps are cut there.

    Returns ``(config, summary)``: the input configuration with ``emitters.photons_range``,
    ``background.range`` (and, for linked multi-channel configs, the channels' ``throughput``)
    replaced; ``summary`` holds the numbers behind them (counts, percentiles, fractions).

    The first frames are checked against the cameras (:func:`plexloc.mle.pipeline.first_frames_check`): noise that the
    camera settings do not predict, or clipped pixels, give a :class:`~plexloc.camera.check.CameraWarning`, and an
    error for too few localizations or tracks says what the check found (with e_per_adu and em_gain swapped it
    blamed the frames alone; with the baseline 100 ADU low it wrote a background range of [34.9, 117.7] for a true
    [20, 100] silently).
    """
    from plexloc.mle.pipeline import ChannelMovies, first_frames_check, later_raw_frames, movie_fitter

    if max_frames < 3:
        raise InputError(f"max_frames must be >= 3, got {max_frames}")
    tables = []
    check = None
    with ChannelMovies(movie, config) as movies:
        # placed on the chip as the fit places it: the transforms, and full-chip sCMOS maps cut at the ROI
        fitter = movie_fitter(movies, config, device=device, camera=camera, photon_model="free",
                              roi_offset_px=roi_offset_px)
        n = movies.n
        use = min(n, max_frames)
        nb = max(1, min(blocks, use // 50 or 1))
        size = use // nb
        starts = [int(round(s)) for s in np.linspace(0, n - size, nb)] if nb > 1 else [0]
        chunks = [(s + o, min(s + o + 256, s + size)) for s in starts for o in range(0, size, 256)]
        if progress:
            from plexloc.progress import progress as bar

            chunks = bar(chunks, total=len(chunks), desc="pre-fit", unit="chunk")
        for a, b in chunks:
            # a gap of one frame between blocks keeps tracks from being linked across them
            frames = movies.frames(a, b)
            photons = None
            if check is None:  # the first frames against the cameras (a wrong camera makes wrong ranges)
                photons = fitter.to_photons(frames)  # once, for the check and the fit
                # the clipping level looked for in frames spread over the movie too, as fit_movie does (the first
                # frames alone before session 51: a movie clipped only later got the pixel type's maximum)
                check = first_frames_check(fitter, frames, dtype=movies.readers[0].dtype, source=movies.sources,
                                           photons=photons, later=later_raw_frames(movies))
            tables.append(fitter.fit_frames(frames, frame_offset=a, photons=photons))
    locs = LocTable.concat(tables) if tables else LocTable.empty()
    finding = f"; {check.finding}" if check is not None else ""
    if len(locs) < 10:
        raise InputError(f"the pre-fit found only {len(locs)} localizations in {use} frames; check the camera and "
                         f"PSF{finding}", source=movies.paths[0])
    px = config.px_size_xy_nm[0]
    radius = link_radius_nm if link_radius_nm is not None else 1.0 * px
    if "llr" in locs.columns and len(locs):
        from scipy.stats import chi2

        # each fit's window: pixels minus the fitted parameters (x, y, [z], photons and a background per channel)
        dof = locs["roi_px"] ** 2 * config.n_channels - (2 + fitter.is_3d + 2 * config.n_channels)
        locs = locs[chi2.sf(locs["llr"], dof) >= 1e-3]
    track = link_tracks(locs, radius_nm=radius)
    throughputs = np.array([c.throughput for c in config.channels])
    pm = config.photon_model
    # the emitter flux that the simulator splits over the channels, as each photon model does
    per_channel = None
    if pm.kind == "independent" and config.n_channels > 1:  # every channel its own uniform draw: pooled samples
        per_channel = [track_flux(locs.with_columns(photons=locs[f"photons_ch{c}"]), track)
                       for c in range(config.n_channels)]
        flux = np.concatenate(per_channel)
    elif pm.kind == "ratiometric":  # total = flux x the colour's ratio sum (the colours' mean where they differ)
        flux = track_flux(locs, track) / float(np.mean(np.sum(pm.ratios, axis=1)))
    else:  # linked: total = flux x the throughputs' sum
        flux = track_flux(locs, track) / throughputs.sum()
    if flux.size < 10:
        raise InputError(
            f"only {flux.size} tracks with three whole frames; fit more frames (max_frames, --frames) "
            f"or check that emitters stay on for several frames{finding}", source=movies.paths[0]
        )
    photons_range = uniform_range(flux)
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
        "flux_samples": int(flux.size),
        "photons_percentiles": dict(zip(("p10", "p50", "p90"), np.quantile(flux, [0.1, 0.5, 0.9]).tolist())),
        "bg_percentiles": dict(zip(("p10", "p50", "p90"), np.quantile(per_frame, [0.1, 0.5, 0.9]).tolist())),
        "photons_range": list(photons_range),
        "background_range": list(bg_range),
        "camera_notes": check.notes if check is not None else [],  # the noise not measured: the camera unchecked
    }
    emitters = config.emitters.model_copy(update={"photons_range": photons_range})
    background = config.background.model_copy(update={"range": bg_range})
    update = {"emitters": emitters, "background": background}
    if per_channel is not None and pm.channel_photons_range is not None:  # each channel's own range
        ranges = [list(uniform_range(f)) for f in per_channel]
        update["photon_model"] = pm.model_copy(update={"channel_photons_range": ranges})
        summary["channel_photons_range"] = ranges
    if config.n_channels > 1:
        full = locs
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
