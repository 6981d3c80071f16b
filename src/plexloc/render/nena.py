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
what a predicted σ or the Cramér-Rao bound leave out (residual drift within a frame pair, PSF model errors); the
median predicted σ or CRLB should be close to it where the fit is right. It assumes the errors of two frames are
independent, as they are for a fitter that sees one frame at a time: on the demo movie the MLE's table reads 7.3 nm
where the robust spread of its errors against the truth is 6.8 nm. A network with a temporal window predicts frame
t from frames t - 1 .. t + 1, so the localizations of consecutive frames share input and their errors are
correlated: the demo network's table reads 5.1 nm where its errors spread 7.7 nm. :func:`nena_caveat` says so for
such tables (they carry the network's ``prob`` column). It needs a table before merging
(``plexloc merge`` combines exactly these repeats): a merged table, or one whose molecules are never on in two
consecutive frames, has no value (``nan``) and ``info["no_value"]`` says why.

Example:
    >>> import numpy as np
    >>> from plexloc.post.synthetic import blinking_table, structure_points
    >>> rng = np.random.default_rng(0)
    >>> t = blinking_table(structure_points("uniform", 2000, fov_nm=20000.0, rng=rng), n_frames=2000, rng=rng,
    ...                    precision_nm=12.0, mean_on_frames=3.0)
    >>> round(nena(t).sigma_nm)
    12
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["NeNAResult", "nena", "nena_caveat", "nena_density"]

#: fewer pairs than this give no value (the fit of σ and the chance share needs a few hundred)
MIN_PAIRS = 100


@dataclass
class NeNAResult:
    """``sigma_nm``: the precision per axis (nm); ``sigma_se_nm`` its standard error; ``chance_share``: the fitted
    share of neighbours from other molecules; ``distances_nm``: the nearest-neighbour distances used;
    ``r_max_nm``: the search radius; ``info``: counts, and ``no_value`` where there is no value."""

    sigma_nm: float
    sigma_se_nm: float
    chance_share: float
    distances_nm: np.ndarray
    r_max_nm: float
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"sigma_nm": self.sigma_nm, "sigma_se_nm": self.sigma_se_nm, "chance_share": self.chance_share,
                "n_pairs": int(len(self.distances_nm)), "r_max_nm": self.r_max_nm, **self.info}


def nena_density(d_nm: np.ndarray, sigma_nm: float, chance_share: float, r_max_nm: float) -> np.ndarray:
    """The fitted density of the nearest-neighbour distances on ``[0, r_max_nm]``: the Rayleigh density of scale
    ``√2 σ`` (truncated to the disk) for the molecule's own repeat and ``2 d / r_max²`` for chance neighbours."""
    d = np.asarray(d_nm, float)
    s2 = 2.0 * sigma_nm**2
    own = d / s2 * np.exp(-d**2 / (2.0 * s2)) / (1.0 - math.exp(-r_max_nm**2 / (2.0 * s2)))
    return (1.0 - chance_share) * own + chance_share * 2.0 * d / r_max_nm**2


def nena_caveat(table: LocTable) -> str | None:
    """A note for tables whose consecutive frames' errors are correlated (a network's output: the ``prob`` column of
    its detection probability), for which NeNA reads below the precision; None otherwise."""
    if "prob" not in table:
        return None
    return ("a network with a temporal window predicts each frame from its neighbours too, so the errors of consecutive "
            "frames are correlated and NeNA reads below the true precision (the demo network: 5.1 nm against a 7.7 nm "
            "spread of its errors); it is exact for fitters that see one frame at a time (plexloc fit --method mle)")


def _pairs(table: LocTable, r_max_nm: float) -> np.ndarray:
    """Distance from every localization to the nearest localization of the next frame, where within ``r_max_nm``.

    One KD-tree over ``(x, y, frame * L)``, queried at ``(x, y, (frame + 1) * L)`` with ``L`` beyond any in-frame
    distance and the search radius (as :func:`plexloc.evaluate.uncertainty.neighbour_distance_nm` does for the same
    frame): only the next frame's localizations are within reach."""
    from scipy.spatial import cKDTree

    xy = np.c_[np.asarray(table["x_nm"], float), np.asarray(table["y_nm"], float)]
    xy -= xy.min(axis=0)
    frame = np.asarray(table["frame"], float)
    L = 4.0 * (float(xy.max()) + r_max_nm) + 1.0
    d, _ = cKDTree(np.c_[xy, frame * L]).query(np.c_[xy, (frame + 1.0) * L], k=1, distance_upper_bound=r_max_nm)
    return d[np.isfinite(d)]


def nena(table: LocTable, *, r_max_nm: float = 150.0) -> NeNAResult:
    """NeNA precision of ``table`` (module docstring): nearest neighbours in the next frame within ``r_max_nm``,
    fitted by maximum likelihood."""
    from scipy.optimize import minimize

    if not (math.isfinite(r_max_nm) and r_max_nm > 0):
        raise InputError(f"r_max_nm must be a positive distance in nm, got {r_max_nm!r}")
    table.check_finite(("x_nm", "y_nm"))
    info: dict = {"n_localizations": len(table)}
    d = _pairs(table, r_max_nm) if len(table) > 1 else np.zeros(0)
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
        sigma, share = math.exp(p[0]), 1.0 / (1.0 + math.exp(-p[1]))
        return -float(np.sum(np.log(nena_density(d, sigma, share, r_max_nm) + 1e-300)))

    start = np.array([math.log(max(np.median(d) / 1.67, 0.5)), -2.0])  # the Rayleigh median of scale √2 σ is 1.67 σ
    fit = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
    sigma, share = math.exp(fit.x[0]), 1.0 / (1.0 + math.exp(-fit.x[1]))
    # standard error from the curvature of the likelihood in log sigma (numerical, the share profiled in the Hessian)
    h = 1e-3
    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (nll(fit.x + e_i + e_j) - nll(fit.x + e_i - e_j) - nll(fit.x - e_i + e_j)
                          + nll(fit.x - e_i - e_j)) / (4 * h * h)
    try:
        var_log_sigma = float(np.linalg.inv(hess)[0, 0])
        se = sigma * math.sqrt(var_log_sigma) if var_log_sigma > 0 else math.nan
    except np.linalg.LinAlgError:
        se = math.nan
    if sigma > r_max_nm / 4:
        info["no_value"] = (f"the fitted precision ({sigma:.0f} nm) is not small against the search radius "
                            f"({r_max_nm:g} nm): the repeats cannot be told from chance neighbours")
        return nan
    return NeNAResult(sigma, se, share, d, r_max_nm, info)
