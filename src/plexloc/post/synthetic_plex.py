"""Localization tables with known truth for validating colour assignment and de-biasing.

:func:`ratiometric_table`: the ground truth of a ratiometric multi-colour simulation (positions, ``color``,
per-channel photons, no rendering) and a copy with per-channel photon noise of an EMCCD-like model,
``s_i^2 = excess_noise (n_i + psf_area_px * bg)``, with ``sigma_photons_ch{i}`` = ``s_i`` when asked.

:func:`pulled_table`: uniform truth, Gaussian errors, then every position pulled towards its pixel centre by
a z-dependent monotone map ``u -> sign(u) |2u|^(1+a) / 2`` of the offset ``u`` from the centre (pixels),
the kind of gridding a network shows under hard conditions.

:func:`doubled_table`: a correct multi-channel output (molecules uniform at a density per um^2 per frame,
localization noise) in which a share of the molecules appears a second time in the same frame at a fixed
offset, as a channel transform that is off by that offset produces (validation of
:func:`plexloc.post.duplicates.channel_duplicates`).
"""

from __future__ import annotations

import numpy as np

from plexloc.table import LocTable

__all__ = ["doubled_table", "pulled_table", "ratiometric_table"]


def ratiometric_table(
    config: dict,
    ratios,
    photons: float,
    *,
    bg: float = 50.0,
    frames: int = 200,
    seed: int = 0,
    with_sigma: bool = True,
    excess_noise: float = 2.0,
    psf_area_px: float = 4.0 * np.pi,
) -> tuple[LocTable, LocTable]:
    """``(truth, noisy)`` for a ratiometric config (a dict as read from YAML) with ``ratios`` and every
    emitter at ``photons`` per full frame (partial on-frames give fewer)."""
    import torch

    from plexloc.config import SimulationConfig
    from plexloc.simulation import Simulator

    cfg = {**config, "photon_model": {**config["photon_model"], "ratios": ratios},
           "emitters": {**config["emitters"], "photons_range": [photons * 0.999, photons]}}
    sim = Simulator(SimulationConfig.model_validate(cfg))
    truth = sim.truth_table(sim.sample_emitters(n_sequences=1, n_frames=frames,
                                                generator=torch.Generator().manual_seed(seed)))
    rng = np.random.default_rng(seed + 1)
    cols = {"bg": np.full(len(truth), float(bg))}
    for i in range(sim.n_channels):
        n = truth[f"photons_ch{i}"]
        s = np.sqrt(excess_noise * (n + psf_area_px * bg))
        cols[f"photons_ch{i}"] = n + rng.normal(size=len(n)) * s
        if with_sigma:
            cols[f"sigma_photons_ch{i}"] = s
    return truth, truth.without_columns("color").with_columns(**cols)


def pulled_table(
    n: int = 10000, *, px_size_nm: float = 100.0, field_nm: float = 5000.0, strength: float = 1.0,
    sigma_range_nm: tuple[float, float] = (5.0, 30.0), z_range_nm: tuple[float, float] = (-300.0, 300.0),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, LocTable]:
    """``(truth_xy (n, 2), noisy_xy (n, 2) before the pull, table)``; the pull exponent ``a`` grows
    linearly with z from ``strength / 2`` to ``3 strength / 2``."""
    rng = np.random.default_rng(seed)
    txy = rng.uniform(0, field_nm, (n, 2))
    z = rng.uniform(*z_range_nm, n)
    sig = rng.uniform(*sigma_range_nm, n)
    a = strength * (0.5 + (z - z_range_nm[0]) / (z_range_nm[1] - z_range_nm[0]))
    nxy = txy + rng.normal(size=(n, 2)) * sig[:, None]
    c = (np.floor(nxy / px_size_nm) + 0.5) * px_size_nm
    u = (nxy - c) / px_size_nm
    pulled = c + px_size_nm * np.sign(u) * np.abs(2 * u) ** (1 + a[:, None]) / 2
    t = LocTable({"frame": np.zeros(n, np.int64), "x_nm": pulled[:, 0], "y_nm": pulled[:, 1], "z_nm": z,
                  "photons": np.full(n, 1000.0), "sigma_x_nm": sig, "sigma_y_nm": sig})
    return txy, nxy, t


def doubled_table(
    density_per_um2: float, *, n: int = 10000, field_nm: float = 6400.0, offset_nm=(300.0, 0.0),
    share: float = 0.0, noise_nm: float = 20.0, seed: int = 0, copy_noise_nm: float | None = None,
    rng: np.random.Generator | None = None,
) -> LocTable:
    """About ``n`` molecules uniform over a square field at ``density_per_um2`` per frame (as many frames as
    that takes), each localized with Gaussian noise ``noise_nm``; a fraction ``share`` of them is reported a
    second time in the same frame, displaced by ``offset_nm`` (with its own noise: ``noise_nm``, or
    ``copy_noise_nm`` where given, e.g. a copy from a channel of poorer precision). ``rng`` (else one seeded with
    ``seed``) draws everything."""
    rng = np.random.default_rng(seed) if rng is None else rng
    per_frame = density_per_um2 * (field_nm * 1e-3) ** 2
    frames = max(int(np.ceil(n / per_frame)), 1)
    m = int(rng.poisson(per_frame * frames))
    frame = np.sort(rng.integers(0, frames, m))
    xy = rng.uniform(0.0, field_nm, (m, 2))
    dup = rng.uniform(size=m) < share
    if copy_noise_nm is None:
        pos = np.concatenate([xy, xy[dup] + np.asarray(offset_nm, float)])
        pos += rng.normal(size=pos.shape) * noise_nm
    else:
        pos = np.concatenate([xy + rng.normal(size=xy.shape) * noise_nm,
                              xy[dup] + np.asarray(offset_nm, float) + rng.normal(size=(int(dup.sum()), 2)) * copy_noise_nm])
    k = len(pos)
    return LocTable({"frame": np.concatenate([frame, frame[dup]]), "x_nm": pos[:, 0], "y_nm": pos[:, 1],
                     "z_nm": np.zeros(k), "photons": np.full(k, 5000.0)})
