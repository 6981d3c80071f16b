"""Localization precision measured from the data: NeNA (nearest neighbour in the adjacent frame analysis).

A molecule that is on in consecutive frames is localized in each of them; if every localization is off by a
Gaussian error of standard deviation σ per axis, the distance between the two localizations of one molecule in
frames f and f + 1 has the Rayleigh density of scale ``√2 σ``::

    p(d) = d / (2 σ²) exp(-d² / (4 σ²))

(Endesfelder et al. 2014). For every localization the nearest localization of the next frame within ``r_max_nm``
is taken; neighbours that belong to other molecules, near the molecule by chance, are spread over the disk of
radius ``r_max_nm`` and add a density ``2 d / r_max²``. The two are fitted together by maximum likelihood (σ and the
share of chance neighbours), so a crowded table still gives the σ of its repeated localizations.

What it measures: the experimental precision of the localizations that repeat in consecutive frames, including
what a predicted σ or the Cramér-Rao bound leave out (residual drift within a frame pair, PSF model errors). It
assumes the errors of two frames are independent, as they are for a fitter that sees one frame at a time: on the demo
movie the MLE's table reads 7.3 nm where the robust spread of its errors against the truth is 6.8 nm. A network with a
temporal window predicts frame t from frames t - 1 .. t + 1, so the localizations of consecutive frames share input
and their errors are correlated: the demo network's table reads 5.1 nm where its errors spread 7.7 nm.
:func:`nena_caveat` says so for such tables (they carry the network's ``prob`` column; not for a table whose rows were
nearly all refitted frame by frame by ``plexloc fit --refine-mle``). It needs a table before
merging (``plexloc merge`` combines exactly these repeats): a merged table, or one whose molecules are never on in two
consecutive frames, has no value (``nan``) and ``info["no_value"]`` says why.

Against the predicted σ. Real tables' precision varies from row to row (σ ∝ 1/√photons, and photons spread over an
order of magnitude), and then the one σ of the fit is neither the median nor the rms of the rows' σ: the distances
are a mixture of Rayleigh densities, whose wide tail the fit partly gives to the chance neighbours. On tables whose
rows were drawn with σ = 10 nm · sqrt(1000 / photons) (bench/nena41.py) it read 12.2 nm for log-normal photons of
ln-spread 1.2 (median σ 10.0, mean 12.0, rms 14.3 nm) and 15.4 nm for exponential photons (median 12.0, mean 14.6,
rms 16.7 nm), so NeNA against the median σ says nothing about whether the σ are right. Where the table has per-row
predicted σ (``sigma_x_nm, sigma_y_nm``, else ``crlb_x_nm, crlb_y_nm``), two figures make the comparison:

- ``expected_sigma_nm``: what NeNA would read if those σ were right. The difference of a pair (i, j) of the fit, a
  repeat, has the variances ``σx_i² + σx_j²`` in x and ``σy_i² + σy_j²`` in y, so its distance has the Rayleigh
  density of scale ``a_ij = sqrt((σx_i² + σy_i² + σx_j² + σy_j²) / 2)`` (``√2 σ`` for one σ) where the two axes
  agree, and the Hoyt density of the same mean square where they do not (σy = 1.5 σx: the Rayleigh read 2.3 % off);
  their mixture, with the chance neighbours' share, is the predicted density of the distances
  (:func:`nena_predicted_density`), and the same single-σ fit applied to it (by maximum likelihood on the density
  itself, with no sampling noise) is the expected NeNA. NeNA / expected is the data's verdict on the σ.
- ``scale_k`` (± ``scale_k_se``): the factor by which the predicted σ must be multiplied to explain the distances,
  fitted by maximum likelihood from the pairs (``d_ij`` of the Rayleigh or Hoyt density of scale ``k a_ij``, plus the
  chance neighbours, their share profiled out): 1 means calibrated, 1.5 that the σ are 1.5x too small. It weights
  every pair by its own σ, so it does not depend on how the σ spread.

On the tables above NeNA and the expected value agree within 1 % (and 3 standard errors), k within 0.006 of 1 (of
1.5 where the σ are 1.5x too small), also with 11 % chance neighbours; on the lab walk's 2D MLE table (18,766 rows,
bench/RESULTS.md) NeNA reads 7.1 nm, 6.8 nm expected from the CRLB, k = 1.04 ± 0.005, where the errors against the
truth spread 1.07 (x) and 1.09 (y) times the CRLB (robust spread). Both carry the network caveat: correlated errors
of consecutive frames make NeNA and k read low.

Example:
    >>> import numpy as np
    >>> from plexloc.post.synthetic import blinking_table, structure_points
    >>> rng = np.random.default_rng(0)
    >>> t = blinking_table(structure_points("uniform", 2000, fov_nm=20000.0, rng=rng), n_frames=2000, rng=rng,
    ...                    precision_nm=12.0, mean_on_frames=3.0)
    >>> round(nena(t).sigma_nm)
    12

    Photons exponential (mean 300, at least 100) and σ = 150 nm / √photons, as the table's ``sigma_x_nm``: NeNA
    reads above the median σ, as the σ predict, and their scale is 1 (to its standard error, 0.005):

    >>> t = blinking_table(structure_points("uniform", 2000, fov_nm=20000.0, rng=rng), n_frames=2000, rng=rng,
    ...                    mean_photons=300.0, psf_sigma_nm=150.0, mean_on_frames=3.0)
    >>> r = nena(t)
    >>> round(r.sigma_nm, 1), round(r.expected_sigma_nm, 1), round(float(np.median(t["sigma_x_nm"])), 1)
    (11.3, 11.2, 10.5)
    >>> round(r.scale_k, 1)
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["NeNAResult", "nena", "nena_against_predicted_text", "nena_caveat", "nena_density", "nena_predicted_density",
           "predicted_sigma_columns"]

#: fewer pairs than this give no value (the fit of σ and the chance share needs a few hundred)
MIN_PAIRS = 100


#: log-spaced bins of the pairs' predicted Rayleigh scales (relative width 1 %) for the predicted density
_SCALE_BIN = 0.01


@dataclass
class NeNAResult:
    """``sigma_nm``: the precision per axis (nm); ``sigma_se_nm`` its standard error; ``chance_share``: the fitted
    share of neighbours from other molecules; ``distances_nm``: the nearest-neighbour distances used;
    ``r_max_nm``: the search radius; ``info``: counts, and ``no_value`` where there is no value.

    Against the table's predicted σ (module docstring; ``nan`` where the table has none, ``info["no_expected"]``
    says why): ``expected_sigma_nm``, the NeNA that the predicted σ give; ``scale_k`` and ``scale_k_se``, the
    fitted factor of the predicted σ (1: calibrated); ``predicted_from``, the two columns; ``predicted_scales_nm``
    and ``predicted_weights``, the pairs' scales (binned) and their shares, ``predicted_ellipticity`` their
    ellipticity where σx and σy differ (None: the Rayleigh), and ``predicted_chance_share``, for
    :meth:`predicted_density`."""

    sigma_nm: float
    sigma_se_nm: float
    chance_share: float
    distances_nm: np.ndarray
    r_max_nm: float
    info: dict = field(default_factory=dict)
    expected_sigma_nm: float = math.nan
    scale_k: float = math.nan
    scale_k_se: float = math.nan
    predicted_from: tuple[str, str] | None = None
    predicted_scales_nm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    predicted_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    predicted_chance_share: float = math.nan
    predicted_ellipticity: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"sigma_nm": self.sigma_nm, "sigma_se_nm": self.sigma_se_nm, "chance_share": self.chance_share,
                "n_pairs": int(len(self.distances_nm)), "r_max_nm": self.r_max_nm,
                "expected_sigma_nm": self.expected_sigma_nm, "scale_k": self.scale_k, "scale_k_se": self.scale_k_se,
                "predicted_from": ", ".join(self.predicted_from) if self.predicted_from else None, **self.info}

    def predicted_density(self, d_nm: np.ndarray, *, k: float = 1.0) -> np.ndarray:
        """The density of the distances if the predicted σ times ``k`` were right (k = 1: as predicted; ``scale_k``:
        the fit), :func:`nena_predicted_density`; ``nan`` where there is none."""
        if not len(self.predicted_scales_nm):
            return np.full(np.shape(d_nm), math.nan)
        return nena_predicted_density(d_nm, k * self.predicted_scales_nm, self.predicted_weights,
                                      self.predicted_chance_share, self.r_max_nm,
                                      ellipticity=self.predicted_ellipticity)


def nena_density(d_nm: np.ndarray, sigma_nm: float, chance_share: float, r_max_nm: float) -> np.ndarray:
    """The fitted density of the nearest-neighbour distances on ``[0, r_max_nm]``: the Rayleigh density of scale
    ``√2 σ`` (truncated to the disk) for the molecule's own repeat and ``2 d / r_max²`` for chance neighbours."""
    d = np.asarray(d_nm, float)
    # the disk's share by expm1, and s2 kept above 0: where the fit tried a σ far above the radius (no repeats to
    # find), 1 - exp(-tiny) was 0 and the division warned (a RuntimeWarning printed by plexloc report)
    s2 = max(2.0 * sigma_nm**2, 1e-200)
    own = d / s2 * np.exp(-d**2 / (2.0 * s2)) / -math.expm1(-r_max_nm**2 / (2.0 * s2))
    return (1.0 - chance_share) * own + chance_share * 2.0 * d / r_max_nm**2


#: a table refined by ``plexloc fit --refine-mle`` gets no caveat where at most this share of its rows is the
#: network's own (``refined`` 0): its refits see one frame each (session 43, a 3-minute demo_2d model on a 200-frame
#: movie, 4.4 % of rows not refined: NeNA 7.5 nm against a robust error spread of 7.9 nm; the same network unrefined
#: 4.0 against 10.6, the MLE 7.8 against 8.0)
NENA_REFINED_MAX_NETWORK_SHARE = 0.1


def nena_caveat(table: LocTable) -> str | None:
    """A note for tables whose consecutive frames' errors are correlated (a network's output: the ``prob`` column of
    its detection probability), for which NeNA reads below the precision; None otherwise. A table refined by
    ``--refine-mle`` (column ``refined``) is judged by its rows the refinement did not keep (``refined`` 0): none
    where they are at most :data:`NENA_REFINED_MAX_NETWORK_SHARE` of the rows (its refits see one frame at a time)."""
    if "prob" not in table:
        return None
    share = None
    if "refined" in table and len(table):
        share = float(np.mean(np.asarray(table["refined"]) == 0))
        if share <= NENA_REFINED_MAX_NETWORK_SHARE:
            return None
    return ("a network with a temporal window predicts each frame from its neighbours too, so the errors of consecutive "
            "frames are correlated and NeNA (and the scale k of the predicted σ) read below the true precision (the "
            "demo network: 5.1 nm against a 7.7 nm spread of its errors)"
            + (f"; {100 * share:.0f} % of this table's rows are the network's own (refined 0: no refit kept by "
               "--refine-mle)" if share is not None else "")
            + "; it is exact for fitters that see one frame at a time (plexloc fit --method mle)")


def _own_density(d: np.ndarray, a2: np.ndarray, e: np.ndarray | None, r2: float) -> np.ndarray:
    """The density of ``|Δ|`` for a pair whose difference is ``Δ ~ N(0, diag(a²(1 + e), a²(1 - e)))``, truncated to
    the disk of radius² ``r2``: the Hoyt density ``d / (a² √(1 - e²)) exp(-d² / (2 a² (1 + |e|))) I0e(d² |e| /
    (2 a² (1 - e²)))``, the Rayleigh of scale ``a`` for ``e = 0`` (``e`` None: 0 everywhere). The disk's share is
    exact for e = 0 and that of the wider axis' Rayleigh otherwise (it matters only where the scale nears the
    radius)."""
    if e is None:
        return d / a2 * np.exp(-d**2 / (2.0 * a2)) / -np.expm1(-r2 / (2.0 * a2))
    from scipy.special import i0e

    ae = np.minimum(np.abs(e), 0.999)
    c = 1.0 - ae**2
    wide = a2 * (1.0 + ae)
    return (d / (a2 * np.sqrt(c)) * np.exp(-d**2 / (2.0 * wide)) * i0e(d**2 * ae / (2.0 * a2 * c))
            / -np.expm1(-r2 / (2.0 * wide)))


def nena_predicted_density(d_nm: np.ndarray, scales_nm: np.ndarray, weights: np.ndarray, chance_share: float,
                           r_max_nm: float, *, ellipticity: np.ndarray | None = None) -> np.ndarray:
    """The density of the distances on ``[0, r_max_nm]`` for pairs whose scales are ``scales_nm`` (in the shares
    ``weights``, summing to 1), each truncated to the disk, plus ``chance_share`` of chance neighbours. A pair's
    scale ``a`` and ellipticity ``e`` (None: 0, the Rayleigh) make its difference's variances ``a²(1 + e)`` in x and
    ``a²(1 - e)`` in y (module docstring)."""
    d = np.asarray(d_nm, float)
    a2 = np.asarray(scales_nm, float) ** 2
    e = None if ellipticity is None or not np.any(ellipticity) else np.asarray(ellipticity, float)
    w = np.asarray(weights, float)
    flat = d.reshape(-1)
    own = np.empty(flat.shape)
    block = max(1, 2_000_000 // max(len(a2), 1))  # (grid x bins in blocks of 16 MB)
    for lo in range(0, flat.size, block):
        own[lo:lo + block] = _own_density(flat[lo:lo + block, None], a2, e, r_max_nm**2) @ w
    return ((1.0 - chance_share) * own + chance_share * 2.0 * flat / r_max_nm**2).reshape(d.shape)


def nena_against_predicted_text(res: NeNAResult) -> str | None:
    """The report's words for ``res`` against the table's predicted σ: "11.9 nm expected from the predicted σ
    (sigma_x_nm, sigma_y_nm); measured / predicted σ: k = 1.00 ± 0.0036 (1: calibrated)"; the reason where there
    are predicted σ but no expected value; None where the table has none."""
    if res.predicted_from is None:
        return None
    cols = ", ".join(res.predicted_from)
    se = res.scale_k_se
    k = (f"measured / predicted σ: k = {res.scale_k:.2f} ± {f'{se:.2g}' if 0 < se < 0.01 else f'{se:.2f}'} "
         "(1: calibrated)") if math.isfinite(res.scale_k) else ""
    if not math.isfinite(res.expected_sigma_nm):
        return (f"no NeNA expected from the predicted σ ({cols}): {res.info.get('no_expected', 'no value')}"
                + (f"; {k}" if k else ""))
    return f"{res.expected_sigma_nm:.1f} nm expected from the predicted σ ({cols}); {k}"


def predicted_sigma_columns(table: LocTable) -> tuple[str, str] | None:
    """The per-row predicted σ that NeNA compares with: ``sigma_x_nm, sigma_y_nm`` (a network's), else ``crlb_x_nm,
    crlb_y_nm`` (the MLE's), where both columns are present and some rows finite; None otherwise (the rule of
    :func:`plexloc.table.uncertainty_columns`, which filtering and rendering follow too)."""
    from plexloc.table import uncertainty_columns

    cols = uncertainty_columns(table, "xy")
    return None if cols is None else (cols[0], cols[1])


def _pairs(table: LocTable, r_max_nm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance from every localization to the nearest localization of the next frame, where within ``r_max_nm``,
    with the rows of the two (``i`` of the localization, ``j`` of its neighbour).

    One KD-tree over ``(x, y, frame * L)``, queried at ``(x, y, (frame + 1) * L)`` with ``L`` beyond any in-frame
    distance and the search radius (as :func:`plexloc.evaluate.uncertainty.neighbour_distance_nm` does for the same
    frame): only the next frame's localizations are within reach."""
    from scipy.spatial import cKDTree

    xy = np.c_[np.asarray(table["x_nm"], float), np.asarray(table["y_nm"], float)]
    xy -= xy.min(axis=0)
    frame = np.asarray(table["frame"], float)
    L = 4.0 * (float(xy.max()) + r_max_nm) + 1.0
    d, j = cKDTree(np.c_[xy, frame * L]).query(np.c_[xy, (frame + 1.0) * L], k=1, distance_upper_bound=r_max_nm)
    i = np.flatnonzero(np.isfinite(d))
    return d[i], i, j[i]


def _ml_fit(nll, start: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimize ``nll`` over ``(log value, logit share)`` from ``start``; the fit and the standard error of the value
    ``exp(x[0])`` from the curvature of ``nll`` (numerical, the share profiled in the Hessian's inverse)."""
    from scipy.optimize import minimize

    fit = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
    h = 1e-3
    f = {}  # the stencil's values (9 distinct points of the 16 terms: every evaluation costs a pass over the pairs)

    def at(a: int, b: int) -> float:
        if (a, b) not in f:
            f[(a, b)] = nll(fit.x + h * np.array([a, b], float))
        return f[(a, b)]

    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2, dtype=int)[i], np.eye(2, dtype=int)[j]
            hess[i, j] = (at(*(e_i + e_j)) - at(*(e_i - e_j)) - at(*(e_j - e_i)) + at(*(-e_i - e_j))) / (4 * h * h)
    try:
        var_log = float(np.linalg.inv(hess)[0, 0])
        se = math.exp(fit.x[0]) * math.sqrt(var_log) if var_log > 0 else math.nan
    except np.linalg.LinAlgError:
        se = math.nan
    return fit.x, se


def _share(p: float) -> float:
    return 1.0 / (1.0 + math.exp(-p))


def _against_predicted(table: LocTable, d: np.ndarray, i: np.ndarray, j: np.ndarray, r_max_nm: float,
                       res: NeNAResult) -> None:
    """``res``'s figures against the predicted σ (module docstring), or ``res.info["no_expected"]`` saying why not."""
    from scipy.optimize import minimize

    cols = predicted_sigma_columns(table)
    if cols is None:
        res.info["no_expected"] = ("the table has no predicted σ (sigma_x_nm, sigma_y_nm or crlb_x_nm, crlb_y_nm) "
                                   "to compare with")
        return
    res.predicted_from = cols
    vx = np.asarray(table[cols[0]], float) ** 2
    vy = np.asarray(table[cols[1]], float) ** 2
    sx, sy = vx[i] + vx[j], vy[i] + vy[j]  # the variances of the pair's difference in x and y
    a2 = (sx + sy) / 2.0  # its scale² (the Rayleigh's for sx = sy)
    ok = np.isfinite(a2) & (a2 > 0)
    res.info["n_pairs_predicted"] = int(ok.sum())
    if ok.sum() < MIN_PAIRS:
        res.info["no_expected"] = (f"only {int(ok.sum())} pairs have a finite, positive predicted σ ({cols[0]}, "
                                   f"{cols[1]}) on both rows (at least {MIN_PAIRS} needed)")
        return
    dd, a2 = d[ok], a2[ok]
    e = (sx[ok] - sy[ok]) / (sx[ok] + sy[ok])  # the ellipticity: the Hoyt density where σx and σy differ
    # (the Rayleigh of the mean variance read 2.3 % above NeNA for σ_y = 1.5 σ_x; bench/nena41.py)
    e = np.where(np.abs(e) > 0.02, e, 0.0)  # (σx and σy within 2 %: the Rayleigh, its density off by e² < 4e-4)
    e_fit = e if np.any(e) else None
    r2 = r_max_nm**2

    # k: d_ij ~ Rayleigh (Hoyt) of the pair's predicted scale times k, truncated to the disk, plus chance neighbours:
    # log own = pre - u / k² + log i0e(v / k²) - log(1 - exp(-t / k²)) with what does not depend on k computed once
    ae = None if e_fit is None else np.minimum(np.abs(e_fit), 0.999)
    wide = a2 if ae is None else a2 * (1.0 + ae)  # the wider axis' variance of the difference
    pre = np.log(dd) - np.log(a2) - (0.0 if ae is None else 0.5 * np.log1p(-ae**2))
    u, t = dd**2 / (2.0 * wide), r2 / (2.0 * wide)
    # the Bessel factor only where it is not 1 (i0e, the dearest part, left out of a table with σx = σy)
    hoyt = np.zeros(0, np.int64) if ae is None else np.flatnonzero(ae > 0)
    v = np.zeros(0) if ae is None else (dd**2 * ae / (2.0 * a2 * (1.0 - ae**2)))[hoyt]
    chance = 2.0 * dd / r2

    def own_at(log_k: float) -> np.ndarray:
        from scipy.special import i0e

        ik2 = math.exp(-2.0 * log_k)
        own = np.exp(pre - u * ik2) * (ik2 / -np.expm1(-t * ik2))
        own[hoyt] *= i0e(v * ik2)
        return own

    last = [0.01]  # the share of the previous k: the next one starts there

    def profile(log_k: float) -> tuple[float, float]:
        """The negative log-likelihood at k, maximized over the chance share c, and that share. The log-likelihood is
        concave in c: its slope's root by Newton's method kept inside the bracket that the slope's signs give
        (bisection where a step leaves it), from the previous k's share (2-4 steps), on the pair densities
        computed once per k."""
        own = own_at(log_k)
        diff = chance - own
        lo, hi = 0.0, 0.999
        c = min(max(last[0], 1e-6), 0.9)
        for _ in range(200):
            q = diff / (own + c * diff)  # (c > 0 always: a pair's own density can be 0)
            g, h = float(np.sum(q)), float(np.sum(q * q))  # the slope in c and minus its derivative
            if h == 0:
                break  # (every pair's own density that of a chance neighbour: any c)
            lo, hi = (c, hi) if g > 0 else (lo, c)
            c_new = c + g / h
            if not lo < c_new < hi:
                c_new = (lo + hi) / 2.0
            if abs(c_new - c) < 1e-10 or hi - lo < 1e-10:
                c = c_new
                break
            c = c_new
        c = 0.0 if hi < 1e-9 else c  # no chance neighbours
        last[0] = c
        return -float(np.sum(np.log(own + c * diff + 1e-300))), c

    # k by maximum likelihood, the share profiled out: about 20 passes over the pairs where the fit of both by
    # Nelder-Mead took 90 (i0e, the Hoyt density's Bessel factor, costs 40 ms on 600,000 pairs); its standard error
    # from the profile's curvature (that of the full likelihood's inverse Hessian)
    from scipy.optimize import minimize_scalar

    log_k = float(minimize_scalar(lambda x: profile(x)[0], bracket=(-0.1, 0.1), tol=1e-6).x)
    h = 1e-3
    f0, share = profile(log_k)
    curv = (profile(log_k + h)[0] - 2.0 * f0 + profile(log_k - h)[0]) / (h * h)
    k = math.exp(log_k)
    k_se = k / math.sqrt(curv) if curv > 0 else math.nan
    typical = k * math.sqrt(float(np.median(a2)) / 2.0)  # the median pair's σ per localization, times k
    if not (math.isfinite(typical) and typical < r_max_nm / 4):
        res.info["no_expected"] = (f"the predicted σ times their fitted scale ({typical:.0f} nm for the median pair) is "
                                   f"not small against the search radius ({r_max_nm:g} nm)")
        return
    # the predicted density (k = 1, the chance share of the k fit): the pairs' scales in log bins of 1 % (and their
    # |ellipticity| in bins of 0.05, the density being even in e)
    a = np.sqrt(a2)
    b = np.round(np.log(a) / _SCALE_BIN).astype(np.int64)
    if e_fit is not None:
        b = b * 64 + np.round(np.abs(e) / 0.05).astype(np.int64)
    _, inv, counts = np.unique(b, return_inverse=True, return_counts=True)
    scales = np.sqrt(np.bincount(inv, a2) / counts)  # the bin's rms scale (its mean d² is that of its pairs)
    res.predicted_ellipticity = None if e_fit is None else np.bincount(inv, np.abs(e)) / counts
    weights = counts / counts.sum()
    res.scale_k, res.scale_k_se = k, k_se
    res.predicted_scales_nm, res.predicted_weights, res.predicted_chance_share = scales, weights, share
    # the single-σ fit of nena() applied to that density: maximum likelihood on the density itself (the expected
    # log-likelihood on a midpoint grid fine enough for the smallest scales)
    a_small = float(np.quantile(a, 0.001))
    n_grid = int(np.clip(math.ceil(10.0 * r_max_nm / max(a_small, 1e-3)), 2000, 20000))
    g = (np.arange(n_grid) + 0.5) * (r_max_nm / n_grid)
    wg = nena_predicted_density(g, scales, weights, share, r_max_nm,
                                ellipticity=res.predicted_ellipticity) * (r_max_nm / n_grid)

    def cross(p: np.ndarray) -> float:
        return -float(wg @ np.log(nena_density(g, math.exp(p[0]), _share(p[1]), r_max_nm) + 1e-300))

    fit = minimize(cross, np.array([math.log(res.sigma_nm), math.log(max(res.chance_share, 1e-3)
                                                                     / (1 - min(res.chance_share, 0.999)))]),
                   method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 2000})
    expected = math.exp(fit.x[0])
    if expected > r_max_nm / 4:
        res.info["no_expected"] = (f"the precision the predicted σ give ({expected:.0f} nm) is not small against the "
                                   f"search radius ({r_max_nm:g} nm)")
        return
    res.expected_sigma_nm = expected


def nena(table: LocTable, *, r_max_nm: float = 150.0) -> NeNAResult:
    """NeNA precision of ``table`` (module docstring): nearest neighbours in the next frame within ``r_max_nm``,
    fitted by maximum likelihood; where the table has predicted σ, the NeNA they give and their fitted scale k."""
    if not (math.isfinite(r_max_nm) and r_max_nm > 0):
        raise InputError(f"r_max_nm must be a positive distance in nm, got {r_max_nm!r}")
    table.check_finite(("x_nm", "y_nm"))
    info: dict = {"n_localizations": len(table)}
    d, i, j = _pairs(table, r_max_nm) if len(table) > 1 else (np.zeros(0), np.zeros(0, int), np.zeros(0, int))
    info["n_pairs"] = int(len(d))
    nan = NeNAResult(math.nan, math.nan, math.nan, d, r_max_nm, info)
    if "n_merged" in table or "frame_last" in table:
        info["no_value"] = ("the table is merged (plexloc merge joined the localizations of consecutive frames that "
                            "NeNA compares): use the table before merging")
        return nan
    if len(d) < MIN_PAIRS:
        info["no_value"] = (f"only {len(d)} localizations have a neighbour in the next frame within {r_max_nm:g} nm "
                            f"(at least {MIN_PAIRS} needed): molecules are rarely on in two consecutive frames")
        return nan
    d = np.maximum(d, 1e-6)

    def nll(p: np.ndarray) -> float:
        return -float(np.sum(np.log(nena_density(d, math.exp(p[0]), _share(p[1]), r_max_nm) + 1e-300)))

    start = np.array([math.log(max(np.median(d) / 1.67, 0.5)), -2.0])  # the Rayleigh median of scale √2 σ is 1.67 σ
    x, se = _ml_fit(nll, start)
    sigma, share = math.exp(x[0]), _share(x[1])
    if sigma > r_max_nm / 4:
        info["no_value"] = (f"the fitted precision ({sigma:.0f} nm) is not small against the search radius "
                            f"({r_max_nm:g} nm): the repeats cannot be told from chance neighbours")
        return nan
    res = NeNAResult(sigma, se, share, d, r_max_nm, info)
    _against_predicted(table, d, i, j, r_max_nm, res)
    return res
