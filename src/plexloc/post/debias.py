"""De-biasing of sub-pixel positions (DECODE-Plex Methods 4.2.2).

Under hard conditions a network pulls positions towards (or away from) special points of the pixel; the
histogram of ``x_nm mod px`` is then not flat. :func:`debias` flattens it in z slabs (``slab_nm``, default
50 nm; the bias depends on z) and per axis:

1. In a slab, the sub-pixel offsets ``u = (x mod px) / px`` are mapped by their empirical CDF onto the
   uniform distribution (``u -> (rank + 1/2) / n``, a monotone map): the shift of localization i is
   ``d_i = (F(u_i) - u_i) px``.
2. The shift is distributed according to the lateral uncertainty: ``s_i = d_i * w_i / <w>`` with the weight
   ``w_i = sigma_i ** p`` and ``<w>`` the mean weight of the localizations of similar offset (a window over the
   ranks), so that the mean shift of every part of the histogram is kept while well-localized emitters move less
   and uncertain ones more. The shift is not capped at sigma. Steps 1 and 2 repeat (``iterations``) on the moved
   positions until the histogram is flat (each pass re-maps what is left of the bias).

   The power ``p`` is measured from the table (``sigma_power=None``, the default), per axis: each slab is split at
   its median sigma, and the bias of the upper half (the mean ``|d|`` of its own map) over the lower half's, ``B``,
   is set against their mean sigma's ratio ``S``: ``p = log B / log S``, within [0, 1]. ``p = 1`` (DECODE-Plex's
   shift in proportion to sigma) assumes the bias grows as sigma does; where it does not, the uncertain rows were
   moved too far and the de-biased table was worse than the input while its histogram came out flat (bench/z3d50.py,
   3D astigmatic, 0.1 emitters per um^2, positions pulled to the pixel centres as hard in every row: lateral RMSE
   18.75 nm, de-biased with ``p = 1`` 20.25 nm, with the measured ``p`` (0) 14.49 nm; pulled harder in proportion to
   sigma: 20.18 nm, ``p = 1`` 17.25 nm, the measured ``p`` (0.41-0.44) 14.98 nm, the plain map 15.58 nm).
   ``sigma_power=1.0`` gives the fixed proportion, ``0.0`` the plain map.

   Where each molecule is localized many times, the measured ``p`` leans to 0: a bright molecule's repeats fall on
   nearly one sub-pixel spot, so the lower sigma half's histogram is lumpier, and its counting noise reads as bias
   (bench/evaluate51.py, 2D, 5,000 rows, 10 localizations per molecule on average, 6 seeds: a pull scaled by sigma read
   p 0.65 where the same pull without repeats read 0.92, 0.27 against 0.68 at a third of the pull). It costs little:
   the lateral RMSE stayed within 0.04 nm on average of the better of ``p = 0`` and ``p = 1``. Two noise-corrected
   estimators (each half's bias less its level at periods other than the pixel's) came closer to 1 there, but further
   from 0 where the pull does not grow with sigma, and did worse on average (0.040 and 0.033 nm against 0.023): not
   adopted. Repeats matter more to the map itself: it flattens the molecules' own counting noise, and a weak pull
   (positions moved at most 1.6 nm towards the pixel centre) came out worse de-biased (8.59 -> 8.92 nm; 8.68 -> 8.97
   nm with the pull scaled by sigma; at the better power); ``plexloc debias``'s note
   (:func:`plexloc.evaluate.gridding.gridding_check`) called 10 of those 12 tables within counting noise.
3. :class:`DebiasReport` gives the distribution of ``|total shift| / sigma`` per axis: large values mean the
   predicted sigma are too small for the bias that was removed.

The lateral uncertainty is the predicted ``sigma_x_nm``/``sigma_y_nm``, else an MLE table's ``crlb_x_nm``/``crlb_y_nm``
(:func:`plexloc.table.uncertainty_columns`, as filter, render and NeNA read it; the report's ``sigma_columns``).
Without either every localization gets the plain mapped shift; so does a row whose sigma
is not finite or <= 0 (it is left out of the local mean sigma; before session 51 a sigma of 0 weighed 0 and a table of
sigma 0 in every row came out unchanged). A row whose position on an axis is not finite keeps it
and takes no rank in that axis's map (the others' target is uniform over the finite ones). Rows with a non-finite
``z_nm`` are de-biased with the slab that holds z = 0 (the slabs start at the smallest finite z). Slabs with fewer
than ``min_count`` localizations are left as they are (counted in the report).

Example:
    >>> rng = np.random.default_rng(0)
    >>> u = rng.uniform(size=4000)
    >>> x = (rng.integers(0, 50, 4000) + 0.5 + 0.5 * (u - 0.5)) * 100.0  # pulled to pixel centres
    >>> t = LocTable({"frame": np.zeros(4000, int), "x_nm": x, "y_nm": x[::-1].copy(), "z_nm": np.zeros(4000),
    ...               "photons": np.ones(4000)})
    >>> out, rep = debias(t, 100.0)
    >>> from plexloc.evaluate.metrics import gridding_deviation
    >>> gridding_deviation(out["x_nm"], 100.0) < 0.1 < gridding_deviation(t["x_nm"], 100.0)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable, uncertainty_columns

__all__ = ["DebiasReport", "debias"]

_QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class DebiasReport:
    n: int
    n_slabs: int
    n_skipped: int  # localizations in slabs too small to de-bias
    shift_over_sigma: dict[str, dict[str, float]] = field(default_factory=dict)  # axis -> {"median", "q90", ...}
    mean_abs_shift_nm: dict[str, float] = field(default_factory=dict)
    n_slabs_skipped: int = 0  # slabs of fewer than min_count localizations, left as they were
    min_count: int = 0
    slab_nm: float = 0.0
    #: the columns that weighted the shifts and divide them in ``shift_over_sigma``: the predicted sigma
    #: (``sigma_x_nm, sigma_y_nm``), else an MLE table's ``crlb_x_nm, crlb_y_nm``; empty where the table has neither
    sigma_columns: list[str] = field(default_factory=list)
    #: axis -> the power p of the weights sigma ** p (measured, or as given); empty without sigma columns
    sigma_power: dict[str, float] = field(default_factory=dict)
    #: axis -> {"bias": B, "sigma": S}: the upper sigma half's bias and mean sigma over the lower half's (where measured)
    sigma_halves: dict[str, dict[str, float]] = field(default_factory=dict)
    #: axis -> rows whose sigma (or CRLB) is <= 0: they took the plain mapped shift, as rows of NaN sigma do
    n_sigma_nonpositive: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def format_table(self) -> str:
        lines = [f"de-biased {self.n - self.n_skipped} of {self.n} localizations in {self.n_slabs} z slabs"
                 + (f" of {self.slab_nm:g} nm" if self.slab_nm else "")]
        if self.n_skipped:  # "de-biased 0 of 176" said nothing of why the table came out unchanged
            lines.append(f"left as they were: {self.n_skipped} localizations in {self.n_slabs_skipped} slab(s) of fewer "
                         f"than {self.min_count} (a slab's histogram needs that many rows; --slab NM makes thicker "
                         "slabs, --min-count N lowers the bar)"
                         + ("; the table is unchanged" if self.n_skipped == self.n else ""))
        crlb = bool(self.sigma_columns) and self.sigma_columns[0].startswith("crlb_")
        for ax, q in self.shift_over_sigma.items():
            lines.append(f"{ax}: mean |shift| {self.mean_abs_shift_nm[ax]:.2f} nm; |shift|/{'crlb' if crlb else 'sigma'} "
                         + ", ".join(f"{k} {v:.2f}" for k, v in q.items()))
        for ax, p in self.sigma_power.items():
            h = self.sigma_halves.get(ax)
            lines.append(f"{ax}: shifts weighted by {'crlb' if crlb else 'sigma'}^{p:.2f}" + (
                f" (measured: the upper half of the {'crlb' if crlb else 'sigma'} values was {h['bias']:.2f}x as biased "
                f"as the lower half, its values {h['sigma']:.2f}x as large"
                + ("; the bias does not grow with them: the plain map" if p == 0 else "") + ")" if h else ""))
        for ax, k in self.n_sigma_nonpositive.items():
            col = self.sigma_columns[0 if ax == "x" else -1] if self.sigma_columns else f"sigma_{ax}_nm"
            lines.append(f"{ax}: {k} of {self.n} rows have {col} <= 0 (an exact position claimed): where de-biased, they "
                         "took the plain mapped shift, unweighted" + (
                             "; every row: the column holds no uncertainty" if k == self.n else ""))
        if crlb and self.shift_over_sigma:
            lines.append(f"the shifts are weighted by {', '.join(self.sigma_columns)} (the Cramér-Rao bound at the fit: the "
                         "table has no predicted sigma)")
        return "\n".join(lines)


def _map_shift(u: np.ndarray) -> np.ndarray:
    """``F(u) - u`` (fractions of a pixel), ``F`` the empirical CDF map of sub-pixel offsets ``u`` onto uniform."""
    order = np.argsort(u, kind="stable")
    d = np.empty(len(u))
    d[order] = (np.arange(len(u)) + 0.5) / len(u) - u[order]
    return d


def _sigma_halves(pos: np.ndarray, sigma: np.ndarray, slabs: list[np.ndarray], px: float) -> dict[str, float] | None:
    """``{"bias": B, "sigma": S}``: the mean ``|F(u) - u|`` of the rows above their slab's median sigma (each half
    mapped on its own) over that of the rows below, and the ratio of their mean sigma, pooled over ``slabs``; None
    where no slab has rows on both sides of its median."""
    acc = np.zeros(6)  # sum |d| upper, rows upper, sum sigma upper, and the same of the lower half
    for idx in slabs:
        idx = idx[np.isfinite(pos[idx]) & np.isfinite(sigma[idx])]
        if len(idx) < 4:
            continue
        s = sigma[idx]
        upper = s > np.median(s)
        if upper.all() or not upper.any():
            continue
        u = np.mod(pos[idx], px) / px
        for k, half in enumerate((upper, ~upper)):
            acc[3 * k: 3 * k + 3] += (np.abs(_map_shift(u[half])).sum(), half.sum(), s[half].sum())
    if acc[1] == 0 or acc[4] == 0 or acc[3] == 0 or acc[5] <= 0:
        return None
    return {"bias": float((acc[0] / acc[1]) / (acc[3] / acc[4])), "sigma": float((acc[2] / acc[1]) / (acc[5] / acc[4]))}


def _power(halves: dict[str, float] | None) -> float:
    """``log B / log S`` within [0, 1] (module docstring, step 2); 1 where the sigma do not differ (any power is the
    same there) or nothing was measured."""
    if halves is None or not halves["sigma"] > 1.0 + 1e-9:
        return 1.0
    if not halves["bias"] > 0:
        return 0.0
    return float(np.clip(np.log(halves["bias"]) / np.log(halves["sigma"]), 0.0, 1.0))


def _slab_shift(pos: np.ndarray, sigma: np.ndarray | None, px: float, window: int) -> np.ndarray:
    """One pass of the sigma-weighted CDF shift (nm) for the positions of one slab and axis."""
    u = np.mod(pos, px) / px
    order = np.argsort(u, kind="stable")
    n = len(u)
    d = _map_shift(u) * px
    if sigma is None:
        return d
    ok = np.isfinite(sigma)
    s_sorted = np.where(ok, sigma, 0.0)[order]
    # mean finite sigma over a window of neighbouring ranks (cumulative sums; the window shrinks at the ends)
    c = np.concatenate([[0.0], np.cumsum(s_sorted)])
    m = np.concatenate([[0], np.cumsum(ok[order])])
    lo = np.clip(np.arange(n) - window // 2, 0, n)
    hi = np.clip(np.arange(n) + window // 2 + 1, 0, n)
    local = np.empty(n)
    local[order] = (c[hi] - c[lo]) / np.maximum(m[hi] - m[lo], 1)
    return np.where(ok, d * np.where(ok, sigma, 0.0) / np.maximum(local, 1e-12), d)


def debias(
    table: LocTable,
    px_size_nm: float,
    slab_nm: float = 50.0,
    *,
    min_count: int = 200,
    iterations: int = 4,
    window_fraction: float = 0.05,
    sigma_power: float | None = None,
) -> tuple[LocTable, DebiasReport]:
    """Flatten the sub-pixel histograms of x and y in z slabs; see the module docstring.

    Args:
        px_size_nm: camera pixel size (nm) of the grid the bias refers to (the reference channel's).
        slab_nm: thickness of the z slabs (nm).
        min_count: slabs with fewer localizations are not changed.
        iterations: passes of map and sigma-weighted shift.
        window_fraction: width of the rank window for the local mean sigma, as a fraction of the slab.
        sigma_power: the shifts are weighted by ``sigma ** sigma_power`` (>= 0; 1: in proportion to sigma, 0: the
            plain map); ``None`` (default): measured per axis from the table (module docstring, step 2).

    Returns:
        ``(table, report)``: the table with moved ``x_nm, y_nm`` (all other columns kept) and the diagnostic.
    """
    if not (np.isfinite(px_size_nm) and px_size_nm > 0):
        raise InputError(f"px_size_nm must be a number > 0 nm, got {px_size_nm!r}")
    if not (np.isfinite(slab_nm) and slab_nm > 0):
        raise InputError(f"slab_nm must be a number > 0 nm, got {slab_nm!r}")
    if sigma_power is not None and not (np.isfinite(sigma_power) and sigma_power >= 0):
        raise InputError(f"sigma_power must be a number >= 0 (1: shifts in proportion to sigma, 0: the plain map) or "
                         f"None (measured), got {sigma_power!r}")
    n = len(table)
    pos = {"x": np.array(table["x_nm"], float), "y": np.array(table["y_nm"], float)}
    # the predicted sigma, else an MLE table's CRLB (plexloc.table.uncertainty_columns, the rule of filter, render and
    # NeNA): an MLE table got the plain shift, its best fits moved as far as its worst, and no |shift|/sigma
    cols = uncertainty_columns(table, "xy")
    sig = {ax: (np.asarray(table[c], float) if cols else None) for ax, c in zip(pos, cols or (None, None))}
    # a sigma <= 0 (an exact position claimed) is no uncertainty to weigh by: such a row takes the plain mapped shift,
    # as a NaN sigma does; weighted by 0 ** p = 0 it stayed put, and a table of sigma 0 everywhere was not moved at all
    sig_zero = {ax: int(np.sum(v <= 0)) for ax, v in sig.items() if v is not None}
    sig = {ax: (None if v is None or not np.any(v > 0) else np.where(v > 0, v, np.nan)) for ax, v in sig.items()}
    z = np.asarray(table["z_nm"], float)
    finite_z = np.isfinite(z)
    # the slabs start at the smallest finite z: with the rows of NaN z counted as 0 there, one such row moved every
    # slab's edges (z 125..625 nm: slabs from 0 instead of 125) and changed the de-biasing of all the others
    z0 = float(z[finite_z].min()) if finite_z.any() else 0.0
    z = np.where(finite_z, z, 0.0)
    slab = np.floor((z - z0) / slab_nm).astype(np.int64)
    total = {ax: np.zeros(n) for ax in pos}
    skipped = skipped_slabs = 0
    moved = np.zeros(n, bool)  # rows of the slabs that were de-biased (the report's shift / sigma is theirs)
    slabs = np.unique(slab)
    kept = []  # the rows of each slab with enough of them to de-bias
    for s in slabs:
        idx = np.flatnonzero(slab == s)
        if len(idx) < min_count:
            skipped += len(idx)
            skipped_slabs += 1
        else:
            kept.append(idx)
    halves = {ax: None if sig[ax] is None or sigma_power is not None else _sigma_halves(pos[ax], sig[ax], kept, px_size_nm)
              for ax in pos}
    power = {ax: (float(sigma_power) if sigma_power is not None else _power(halves[ax])) for ax in pos if sig[ax] is not None}
    weight = {ax: None if sig[ax] is None else (sig[ax] if power[ax] == 1.0 else np.power(sig[ax], power[ax]))
              for ax in pos}
    for idx in kept:
        moved[idx] = True
        window = max(int(window_fraction * len(idx)), 1)
        for ax in pos:
            rows = idx[np.isfinite(pos[ax][idx])]  # a NaN position would take a rank and squeeze the others' targets
            if len(rows) == 0:
                continue
            sg = None if weight[ax] is None else weight[ax][rows]
            for _ in range(iterations):
                shift = _slab_shift(pos[ax][rows], sg, px_size_nm, window)
                pos[ax][rows] += shift
                total[ax][rows] += shift
    report = DebiasReport(n=n, n_slabs=len(slabs), n_skipped=skipped, n_slabs_skipped=skipped_slabs,
                          min_count=int(min_count), slab_nm=float(slab_nm), sigma_columns=list(cols or ()),
                          sigma_power=power if kept else {}, sigma_halves={ax: h for ax, h in halves.items() if h},
                          n_sigma_nonpositive={ax: v for ax, v in sig_zero.items() if v})
    for ax in pos:
        if not moved.any():
            continue
        report.mean_abs_shift_nm[ax] = float(np.mean(np.abs(total[ax][moved])))
        if sig[ax] is not None:
            r = np.abs(total[ax][moved]) / sig[ax][moved]
            r = r[np.isfinite(r)]  # rows without a finite sigma (or position) have no shift / sigma
            if len(r) == 0:
                continue
            report.shift_over_sigma[ax] = {"mean": float(np.mean(r)),
                                           **{f"q{int(q * 100)}": float(np.quantile(r, q)) for q in _QUANTILES}}
    return table.with_columns(x_nm=pos["x"], y_nm=pos["y"]), report
