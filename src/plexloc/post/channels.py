"""Each channel localized alone, then merged by the channel transforms: the naive alternative to a joint fit.

This is how multi-channel data were analysed before joint fitting (and what ``plexloc register`` takes as
input): every channel is fitted as a single-channel movie in its own coordinates, the localizations of
channel ``c`` are mapped back to the reference channel by ``T_c^-1`` (chip coordinates,
``r_0 = T_c^-1 (r_c + o) - o`` for an ROI whose corner sits at ``o`` on the chip) and z by adding the
channel's focal offset, and localizations of the same frame are grouped by mutual nearest neighbours
within a radius. A group's position is the inverse-variance mean of its members (weights
``1 / sigma^2`` from ``sigma_*`` or ``crlb_*`` columns); its uncertainty ``1 / sqrt(sum w)``.

Per-channel photons go to ``photons_chN`` (0 where the channel did not see the molecule, as for a dim
channel of a ratiometric dye), backgrounds to ``bg_chN`` (the channel's median where it did not), and
``n_channels_seen`` counts the members. ``photons`` is the total the channels seen tell:

- ``linked``: the sum of their photons divided by the sum of their throughputs, so a molecule seen in one
  channel only gets that channel's photons / its throughput fraction (biplane, 0.5 each: twice its photons);
  ``sigma_photons`` (where every table has ``sigma_photons`` or ``crlb_photons``) is scaled alike,
  ``sqrt(sum s_c^2) / sum throughputs``.
- ``ratiometric``: the sum of their photons. A channel's share of the photons depends on the dye, unknown
  here: a row seen in fewer channels than there are (``n_channels_seen``) holds only those channels' photons
  (0.72 of the truth on a 20/80 - 60/40 dual-colour movie) until
  :func:`plexloc.post.color.assign_colors` knows its dye and divides it by that dye's fraction in the
  channels seen. ``sigma_photons``: ``sqrt(sum s_c^2)``.
- ``independent``: the sum of their photons, with no total to recover for a channel not seen: a row with
  ``n_channels_seen`` below the channels holds the photons of those seen only.

The result takes :func:`plexloc.post.color.assign_colors` for ratiometric data (its shot-noise uncertainties,
as the single-channel fits give no per-channel photon sigma of the other channel). There a channel's 0 photons
with ``n_channels_seen`` below the channels mean "fewer than it detects" (censored), not a measurement of 0, and
``bg_chN`` (the channel's median where it did not see the molecule) gives that detection limit.

Example:
    >>> from plexloc.config import SimulationConfig
    >>> cfg = SimulationConfig.model_validate({"channels": [
    ...     {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}},
    ...     {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "transform": [[1, 0, 50], [0, 1, 0], [0, 0, 1]]}]})
    >>> a = LocTable({"frame": [0], "x_nm": [1000.0], "y_nm": [500.0], "z_nm": [0.0], "photons": [900.0],
    ...               "crlb_x_nm": [10.0], "crlb_y_nm": [10.0]})
    >>> b = LocTable({"frame": [0], "x_nm": [1070.0], "y_nm": [500.0], "z_nm": [0.0], "photons": [100.0],
    ...               "crlb_x_nm": [30.0], "crlb_y_nm": [30.0]})
    >>> out = combine_channels([a, b], cfg)
    >>> round(float(out["x_nm"][0]), 1), int(out["n_channels_seen"][0]), float(out["photons_ch1"][0])
    (1002.0, 2, 100.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plexloc.config import SimulationConfig
from plexloc.errors import InputError
from plexloc.post.pairs import mutual_nearest
from plexloc.table import LocTable

__all__ = ["channel_config", "combine_channels"]

_IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def channel_config(config: SimulationConfig, channel: int) -> SimulationConfig:
    """Channel ``channel`` of a multi-channel configuration as a single-channel configuration in that
    channel's own coordinates: identity transform, z relative to its own focal plane (the emitter z range
    shifted by ``-z_offset_nm``), its own background, and the emitter photons it receives (scaled by its
    throughput, or by the range of the dyes' fractions for ratiometric data)."""
    if not 0 <= channel < config.n_channels:
        raise InputError(f"channel {channel} does not exist: the configuration has {config.n_channels} channel(s)")
    base = config.simulation() if hasattr(config, "simulation") else config  # a TrainConfig's simulation part
    d = base.model_dump()
    ch = d["channels"][channel]
    z_off = float(ch["z_offset_nm"])
    lo, hi = d["emitters"]["z_range_nm"]
    d["emitters"]["z_range_nm"] = (lo - z_off, hi - z_off)
    pm = config.photon_model
    if pm.kind == "linked":
        scale = (ch["throughput"], ch["throughput"])
    elif pm.kind == "ratiometric":
        f = [row[channel] for row in pm.ratios]
        scale = (min(f), max(f))
    else:
        scale = (1.0, 1.0)
    p_lo, p_hi = d["emitters"]["photons_range"]
    d["emitters"]["photons_range"] = (p_lo * scale[0], p_hi * scale[1])
    if ch.get("background") is not None:
        d["background"] = ch["background"]
    d["channels"] = [{**ch, "transform": _IDENTITY, "z_offset_nm": 0.0, "throughput": 1.0, "background": None}]
    d["photon_model"] = {"kind": "linked"}
    d["split_view"] = None
    return SimulationConfig.model_validate(d)


def _sigma(table: LocTable, axis: str) -> np.ndarray:
    for name in (f"sigma_{axis}_nm", f"crlb_{axis}_nm"):
        if name in table:
            s = np.asarray(table[name], float)
            return np.where(np.isfinite(s) & (s > 0), s, np.inf)
    raise InputError(f"combining channels needs sigma_{axis}_nm or crlb_{axis}_nm; the table has {table.columns}")


def _photon_sigma(table: LocTable) -> np.ndarray:
    """The rows' photon sigma: ``sigma_photons``, else ``crlb_photons``."""
    return np.asarray(table["sigma_photons"] if "sigma_photons" in table else table["crlb_photons"], float)


def combine_channels(
    tables: Sequence[LocTable],
    config: SimulationConfig,
    *,
    radius_nm: float | None = None,
    roi_offset_px: tuple[float, float] | None = None,
) -> LocTable:
    """Merge single-channel localization tables (one per channel, each in its channel's coordinates) into
    one table in reference coordinates.

    Args:
        tables: ``tables[c]`` from fitting channel ``c`` alone (columns ``frame, x_nm, y_nm, photons`` and
            ``sigma_*``/``crlb_*`` for x and y; ``sigma_z_nm``/``crlb_z_nm`` and ``bg`` when present).
        config: the multi-channel configuration (transforms, focal offsets, throughputs, photon model).
        radius_nm: grouping radius; default two pixels.
        roi_offset_px: (x, y) chip position of the frames' corner; default ``config.roi_offset_px``.

    Returns:
        A :class:`LocTable` sorted by frame with ``frame, x_nm, y_nm, z_nm, photons, sigma_x_nm,
        sigma_y_nm, photons_chN, bg_chN, n_channels_seen`` (and ``sigma_z_nm`` where every table has a z sigma,
        ``sigma_photons`` where every table has a photon sigma); ``photons`` as the module docstring says per
        photon model.
    """
    n_ch = config.n_channels
    if len(tables) != n_ch:
        raise InputError(f"the configuration has {n_ch} channel(s) but {len(tables)} table(s) were given")
    for c, t in enumerate(tables):  # scipy's KD-tree raised a bare ValueError on a NaN position
        t.check_finite(("x_nm", "y_nm", "frame"), name=f"channel {c}'s table")
    px = config.px_size_xy_nm
    radius = float(radius_nm) if radius_nm is not None else 2.0 * max(px)
    off = np.asarray(roi_offset_px if roi_offset_px is not None else config.roi_offset_px, float) * np.asarray(px)
    has_sz = all(("sigma_z_nm" in t) or ("crlb_z_nm" in t) for t in tables)
    has_sp = all(("sigma_photons" in t) or ("crlb_photons" in t) for t in tables)

    # every channel's localizations in reference coordinates, with their weights
    parts = []
    for c, (t, ch) in enumerate(zip(tables, config.channels)):
        xy = np.column_stack([np.asarray(t["x_nm"], float), np.asarray(t["y_nm"], float)]) if len(t) else np.zeros((0, 2))
        T_inv = np.linalg.inv(np.asarray(ch.transform, float))
        h = np.column_stack([xy + off, np.ones(len(xy))]) @ T_inv.T
        xy0 = h[:, :2] / h[:, 2:3] - off
        p = {"frame": np.asarray(t["frame"], np.int64), "xy": xy0, "photons": np.asarray(t["photons"], float),
             "wx": _sigma(t, "x") ** -2.0 if len(t) else np.zeros(0), "wy": _sigma(t, "y") ** -2.0 if len(t) else np.zeros(0),
             "bg": np.asarray(t["bg"], float) if "bg" in t else np.full(len(t), np.nan)}
        p["z"] = np.asarray(t["z_nm"], float) + ch.z_offset_nm
        p["wz"] = _sigma(t, "z") ** -2.0 if has_sz and len(t) else np.zeros(len(t))
        p["sp"] = _photon_sigma(t) if has_sp else np.full(len(t), np.nan)
        parts.append(p)

    # groups: member index per channel (-1: not seen), grown channel by channel against the groups' means
    members = np.full((len(parts[0]["frame"]), n_ch), -1, np.int64)
    members[:, 0] = np.arange(len(parts[0]["frame"]))
    frame = parts[0]["frame"].copy()
    for c in range(1, n_ch):
        centre = _weighted(parts, members, "xy")
        i, j = mutual_nearest(centre, frame, parts[c]["xy"], parts[c]["frame"], radius)
        members[i, c] = j
        new = np.setdiff1d(np.arange(len(parts[c]["frame"])), j)
        add = np.full((len(new), n_ch), -1, np.int64)
        add[:, c] = new
        members = np.vstack([members, add])
        frame = np.concatenate([frame, parts[c]["frame"][new]])

    xy, wxy = _weighted(parts, members, "xy", with_weights=True)
    cols: dict[str, np.ndarray] = {"frame": frame, "x_nm": xy[:, 0], "y_nm": xy[:, 1]}
    z, wz = _weighted(parts, members, "z", with_weights=True)
    cols["z_nm"] = z[:, 0]
    seen = members >= 0
    phot = np.zeros((len(frame), n_ch))
    var = np.zeros((len(frame), n_ch))  # photon variance of the members
    bg = np.zeros((len(frame), n_ch))
    for c, p in enumerate(parts):
        phot[seen[:, c], c] = p["photons"][members[seen[:, c], c]]
        var[seen[:, c], c] = p["sp"][members[seen[:, c], c]] ** 2
        fill = float(np.nanmedian(p["bg"])) if np.isfinite(p["bg"]).any() else 0.0
        bg[:, c] = fill
        bg[seen[:, c], c] = np.nan_to_num(p["bg"][members[seen[:, c], c]], nan=fill)
    total = phot.sum(axis=1)
    sigma_total = np.sqrt(var.sum(axis=1))
    if config.photon_model.kind == "linked":  # the channels seen received this fraction of the photons
        thr = np.array([ch.throughput for ch in config.channels])
        fraction = np.maximum((seen * thr).sum(axis=1), 1e-12)
        total, sigma_total = total / fraction, sigma_total / fraction
    cols["photons"] = total
    if has_sp:
        cols["sigma_photons"] = sigma_total
    cols["sigma_x_nm"] = wxy[:, 0] ** -0.5
    cols["sigma_y_nm"] = wxy[:, 1] ** -0.5
    if has_sz:
        # NaN where no member has a z sigma (an MLE row with z held on its bound has crlb_z_nm NaN)
        cols["sigma_z_nm"] = np.where(wz[:, 0] > 0, wz[:, 0], np.nan) ** -0.5
    for c in range(n_ch):
        cols[f"photons_ch{c}"] = phot[:, c]
        cols[f"bg_ch{c}"] = bg[:, c]
    cols["n_channels_seen"] = seen.sum(axis=1).astype(np.int64)
    return LocTable(cols).sort_by_frame()


def _weighted(parts: list[dict], members: np.ndarray, key: str, *, with_weights: bool = False):
    """Inverse-variance mean of ``key`` (``xy`` or ``z``) over each group's members."""
    dim = 2 if key == "xy" else 1
    wkeys = ("wx", "wy") if key == "xy" else ("wz",)
    num = np.zeros((len(members), dim))
    den = np.zeros((len(members), dim))
    for c, p in enumerate(parts):
        ok = members[:, c] >= 0
        if not ok.any():
            continue
        idx = members[ok, c]
        v = p[key][idx].reshape(len(idx), dim)
        w = np.column_stack([p[k][idx] for k in wkeys])
        w = np.where(np.isfinite(w), w, 0.0)
        num[ok] += w * v
        den[ok] += w
    # a member without a usable sigma counts with weight 1 where it is alone
    mean = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if np.isnan(mean).any():
        plain = np.zeros_like(num)
        cnt = np.zeros_like(num)
        for c, p in enumerate(parts):
            ok = members[:, c] >= 0
            idx = members[ok, c]
            plain[ok] += p[key][idx].reshape(len(idx), dim)
            cnt[ok] += 1
        mean = np.where(np.isnan(mean), plain / np.maximum(cnt, 1), mean)
    return (mean, den) if with_weights else mean
