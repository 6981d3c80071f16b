"""Colour assignment of ratiometric multi-colour localizations (DECODE-Plex eq. 3).

Each dye k sends a fixed fraction ``r_k[i]`` of its photons to channel i (``ratios``, rows dyes, columns
channels, conventions.md ``ratiometric``). For a localization with per-channel photons ``n_i`` and their
1-sigma uncertainties ``s_i`` the likelihood of colour k is Gaussian,

    N_k = max(sum_i r_ki n_i / s_i^2 / sum_i r_ki^2 / s_i^2, 0)      (weighted least squares of the total, >= 0)
    chi2_k = sum_i (n_i - N_k r_ki)^2 / s_i^2,   L_k = exp(-chi2_k / 2),

and ``p_k = L_k / sum_j L_j`` (eq. 3). ``color`` is ``argmax p_k``, ``-1`` where ``max p_k < threshold``;
``color_prob`` is ``max p_k``. The ``s_i`` are taken from ``sigma_photons_ch{i}`` when the table has them
(the network predicts them). Otherwise they come from shot noise and background under each colour's own
expectation, ``s_ki^2 = excess_noise * (N_k r_ki + psf_area_px * b_i)`` with ``b_i`` from ``bg_ch{i}`` (else
``bg``, else 0) and ``psf_area_px = 4 pi (sigma_psf / px)^2`` (default for a PSF of about one pixel, 12.6); use
``excess_noise=2`` for EMCCD data (the excess-noise factor squared of its gain register;
:func:`camera_excess_noise` gives it from the cameras). ``N_k`` and ``s_ki`` are solved together (a few
reweighted least-squares steps), and since the variances differ between colours the likelihood keeps its normalisation,
``chi2_k = sum_i (n_i - N_k r_ki)^2 / s_ki^2 + log s_ki^2``. The variance of each channel's observed photons
(``max(n_i, 0)``, :func:`photon_matrix`) used instead mistakes a channel that received few photons by chance for a
precise one: AF647/CF680 (0.173 / 0.019 of their photons in channel 0) at 100 photons without background gave
0.87 % wrong colours against 0.27 % this way and 0.18 % for the exact Poisson likelihood with the true photons
(200,000 simulated rows; with 50 photons/px background the two agree to 0.03 points at 300-5,000 photons).

The uncertainties, predicted or modelled, may be off by a common factor: a network's predicted sigmas too small, an
MLE fit's per-channel photons scattered several times more than shot noise. The rows' best chi-squares then follow
``f chi2(C - 1)`` instead of ``chi2(C - 1)``, and eq. 3 taken as given is over-confident by that factor. The table's
own scale ``f`` (:func:`chi2_noise_factor`: a median of the chi-squares truncated against outliers; at least 1, and 1
below 20 rows) divides eq. 3's chi-squares, as it does the misfit and mixed tests' (``noise_scale``, default on;
``ColorReport.noise_factor``). Uncertainties that look too large (``f`` < 1, ``ColorReport.noise_estimate``) are not
scaled down: that only rejects more rows; they are said where the reading is below half of what uncertainties right
for these rows read (``ColorReport.noise_calibrated``, :func:`_calibrated_noise_estimate`). On network-like tables (AF647/CF680, about 1,000 photons, the photons 1.5x the
shot noise) with predicted sigmas half / 0.3 of the true errors, the rows given a colour at ``color_prob`` >= 0.9 were
93.8 / 91.8 % right unscaled, 353 / 1,055 of 20,000 wrong at ``color_prob`` >= 0.999; scaled, 97.5 % and 14, as with
sigmas too large (``bench/colour49.py``). The scale is estimated from the best colour's chi-square, which is biased low
where the dyes overlap (0.77 for calibrated sigmas in that example): there eq. 3 stays a little over-confident.

A channel-by-channel merge (:func:`plexloc.post.channels.combine_channels`, ``n_channels_seen``) writes 0 photons
for a channel that did not see the molecule. That is not a measurement of 0 photons but of fewer than the channel
detects (censored): such rows are coloured from the channels that saw them and, for each channel that missed them,
the probability that it would have missed each colour's photons there (:func:`censored_color_loglik`,
:func:`miss_probability`; the detection limit ``DETECTION_SNR`` times the background noise under a spot, from
``bg_chN``, or ``detection_limits``). Taken as 0 photons, every such row went with ``color_prob`` 1 to the dye that
puts the fewest photons in the channel that missed it, right or wrong: one-channel rows of the AF647/CF680 example
fitted channel by channel (MLE, 200 frames) were 93.0 / 85.7 / 48.1 % right at 5,000 / 2,500 / 1,000 photons with
none rejected; now 96.9 / 97.1 / 100 % of those given a colour, with 38 / 69 / 99 % rejected (rows that both dyes
would have left unseen in channel 0). Those rows are also left out of the ratio estimate.

Such a row holds only the photons of the channels seen, as their share depends on the dye: with the dye
known (``color`` >= 0), :func:`assign_colors` divides them (and ``sigma_photons``) by its fraction in the channels
seen. On a 20/80 - 60/40 dual-colour movie fitted channel by channel (300 frames, 84 one-channel rows of 669
matched) their photons read 0.72 of the truth before, 1.01 after (median).

Eq. 3 compares the dyes with one another only: two emitters of different dyes fitted as one (a photon fraction
between the dyes') still take the nearer dye with ``color_prob`` near 1 (split-view MLE tables of
``dual_color_splitview`` at 0.5 / 1 / 2 emitters/um^2: 71 of 71, 135 of 136, 408 of 410 such rows at >= 0.99).
``mixed_prior`` (:func:`mixed_probability`) adds the hypothesis of two dyes at a uniform mixing fraction: with 0.01 it
rejected 60 / 117 / 282 of them and 19 / 19 / 5 of 2,061 / 1,336 / 1,041 isolated single-dye rows, where the
chi-square misfit test (``misfit_alpha`` 1e-3, :func:`misfit_rows`) rejected 58 / 110 / 243 and 54 / 38 / 12.

Where the ratios are not known, :func:`estimate_ratios` fits a Gaussian mixture (EM) to the observed
fractions ``n_i / sum n``, each row with its own measurement variance (from the same ``s_i``), and
:func:`ratio_figure` draws their histogram with the ``r_k`` marked.

Example:
    >>> t = LocTable({"frame": [0, 0], "x_nm": [0.0, 1.0], "y_nm": [0.0, 0.0], "z_nm": [0.0, 0.0],
    ...               "photons": [5000.0, 5000.0], "photons_ch0": [1000.0, 3100.0],
    ...               "photons_ch1": [4000.0, 1900.0]})
    >>> out, _ = assign_colors(t, [[0.2, 0.8], [0.6, 0.4]])
    >>> out["color"].tolist()
    [0, 1]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["ColorReport", "ColorSeparationWarning", "RatioFit", "RatioMismatchWarning", "assign_colors",
           "camera_excess_noise", "censored_color_loglik", "channel_detection_limits", "chi2_noise_factor",
           "color_probabilities_expected", "estimate_ratios", "misfit_rows", "mixed_probability", "photon_fractions",
           "photon_matrix", "ratio_figure", "ratio_mismatch", "seen_channels", "separation_problem"]

_CH = re.compile(r"^photons_ch(\d+)$")
DEFAULT_PSF_AREA_PX = 4.0 * np.pi  # 4 pi sigma^2 for a PSF of sigma = 1 pixel


@dataclass
class ColorReport:
    n: int
    counts: dict[int, int] = field(default_factory=dict)  # colour -> rows (-1: rejected)
    ratios: list[list[float]] = field(default_factory=list)
    sigma_source: str = ""
    threshold: float = 0.9
    n_not_finite: int = 0  # rows rejected: a photon count, its sigma (>= 0) or a background used is not a finite number
    not_finite: str = ""  # which column, row and value came first among them
    n_misfit: int = 0  # rows above the threshold rejected because they fit none of the ratios (misfit_alpha)
    misfit_alpha: float | None = None
    noise_factor: float | None = None  # the table's chi2 scale (chi2_noise_factor); None where no row is seen everywhere
    noise_scaled: bool = True  # eq. 3's chi-squares divided by noise_factor (assign_colors' noise_scale)
    noise_estimate: float | None = None  # the scale as measured, before the floor of 1 (below 1: uncertainties too large)
    #: what uncertainties right for these rows would read (_calibrated_noise_estimate), where noise_estimate < 0.5
    noise_calibrated: float | None = None
    n_partial: int = 0  # rows that some channels missed (n_channels_seen), coloured from the channels that saw them
    n_partial_rejected: int = 0  # of those, rows without a colour
    detection_limits: list[float] | None = None  # median photons per channel below which a channel misses a spot
    n_mixed: int = 0  # rows eq. 3 gave a colour that the two-dye hypothesis (mixed_prior) left below the threshold
    mixed_prior: float | None = None

    def to_dict(self) -> dict:
        return {"n": self.n, "counts": {str(k): v for k, v in self.counts.items()}, "ratios": self.ratios,
                "sigma_source": self.sigma_source, "threshold": self.threshold, "n_not_finite": self.n_not_finite,
                "not_finite": self.not_finite, "n_misfit": self.n_misfit, "misfit_alpha": self.misfit_alpha,
                "noise_factor": self.noise_factor, "noise_scaled": self.noise_scaled,
                "noise_estimate": self.noise_estimate, "noise_calibrated": self.noise_calibrated,
                "n_partial": self.n_partial,
                "n_partial_rejected": self.n_partial_rejected, "detection_limits": self.detection_limits,
                "n_mixed": self.n_mixed, "mixed_prior": self.mixed_prior}

    def format_table(self) -> str:
        lines = [f"{'colour':>8} {'rows':>10} {'%':>7}"]
        for k, v in sorted(self.counts.items()):
            lines.append(f"{('rejected' if k < 0 else k):>8} {v:>10} {100.0 * v / max(self.n, 1):>7.2f}")
        if self.noise_factor is not None and self.noise_factor != 1.0:
            lines.append(f"noise scale {self.noise_factor:.2f}: the photons scatter about their colour's ratio with "
                         f"{self.noise_factor:.2f}x the variance that {self.sigma_source.split(' (')[0]} give"
                         + ("; eq. 3's chi-squares are divided by it" if self.noise_scaled
                            else " (eq. 3 not scaled: --no-noise-scale)"))
        # (the best colour's chi-square reads low where the dyes overlap: calibrated sigmas read 0.38 for three dyes
        # in two channels; said only below half of what uncertainties right for these rows read)
        if (self.noise_estimate is not None and self.noise_calibrated is not None
                and self.noise_estimate < 0.5 * self.noise_calibrated):
            lines.append(f"noise scale measured {self.noise_estimate:.2f} (uncertainties right for these rows would "
                         f"read {self.noise_calibrated:.2f}): the photons scatter about their colour's ratio with "
                         f"{self.noise_estimate / self.noise_calibrated:.2f}x the variance that "
                         f"{self.sigma_source.split(' (')[0]} give, which look too large (not scaled down): rows are "
                         "rejected that the data would colour")
        if self.misfit_alpha is not None:
            lines.append("rejected because their photons fit none of the ratios "
                         f"(chi-square p < {self.misfit_alpha:g}, "
                         f"noise scale {self.noise_factor if self.noise_factor is not None else 1.0:.2f}): "
                         f"{self.n_misfit} ({100.0 * self.n_misfit / max(self.n, 1):.2f} %)")
        if self.mixed_prior is not None:
            lines.append("rejected because their photon fractions fit two dyes' emitters fitted as one better "
                         f"(prior {self.mixed_prior:g}, "
                         f"noise scale {self.noise_factor if self.noise_factor is not None else 1.0:.2f}): "
                         f"{self.n_mixed} ({100.0 * self.n_mixed / max(self.n, 1):.2f} %)")
        if self.n_partial:
            limits = ", ".join(f"{v:.0f}" for v in self.detection_limits or [])
            lines.append(f"seen in only some channels: {self.n_partial} rows "
                         f"({100.0 * self.n_partial / max(self.n, 1):.2f} %), coloured from those channels and the "
                         f"others' detection limits ({limits} photons); {self.n_partial_rejected} of them rejected")
        return "\n".join(lines)


def camera_excess_noise(cameras) -> float | None:
    """The ``excess_noise`` of data from ``cameras`` (camera configurations, one per channel): where every one is an
    EMCCD, the excess-noise factor squared of its gain register (:func:`plexloc.camera.models.excess_noise_factor`:
    2 from em_gain 100, 2 - 1/G below; 2 at any gain before session 49), the largest where their gains differ; 1
    where none is; ``None`` where they are mixed (one number cannot describe both)."""
    from plexloc.camera.models import excess_noise_factor

    emccd = [getattr(c, "kind", None) == "emccd" for c in cameras]
    if emccd and all(emccd):
        return max(excess_noise_factor(float(getattr(c, "em_gain", 300.0) or 300.0)) for c in cameras)
    return None if any(emccd) else 1.0


def photon_matrix(
    table: LocTable, *, excess_noise: float = 1.0, psf_area_px: float = DEFAULT_PSF_AREA_PX
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(n, s, source)``: per-channel photons (L, C), their 1-sigma uncertainties and where these came from."""
    chans = sorted((int(m.group(1)) for c in table.columns if (m := _CH.match(c))))
    if len(chans) < 2 or chans != list(range(len(chans))):
        raise InputError(f"colour assignment needs columns photons_ch0, photons_ch1, ... ; the table has {table.columns}")
    n = np.stack([np.asarray(table[f"photons_ch{c}"], float) for c in chans], axis=1)
    if all(f"sigma_photons_ch{c}" in table for c in chans):
        s = np.stack([np.asarray(table[f"sigma_photons_ch{c}"], float) for c in chans], axis=1)
        source = "sigma_photons_ch*"
    else:
        s = np.sqrt(excess_noise * (np.maximum(n, 0.0) + _background_variance(table, len(chans), psf_area_px)))
        source = f"shot noise + background (excess_noise={excess_noise}, psf_area_px={psf_area_px:.3g})"
    s = np.maximum(s, 1.0)  # never below one photon: keeps chi2 finite for n = 0
    return n, s, source


def _check_ratios(ratios, n_channels: int) -> np.ndarray:
    """The (K, C) ratios with rows normalised to sum 1.

    A row summing above 1 (+1e-6) is refused, naming it, as the configuration's ``photon_model.ratios`` is: a dye
    cannot send more than all its photons to the channels (rows of 1.1 and 1.3 were silently normalised). A row
    summing below 1 (photons lost outside the channels) is normalised.
    """
    try:
        r = np.asarray(ratios, dtype=np.float64)
    except ValueError:  # rows of different lengths: numpy's own error was a traceback
        raise InputError(f"ratios must be (colours >= 2) x {n_channels} channels; the rows have different lengths: "
                         f"{[list(row) for row in ratios]}") from None
    if r.ndim != 2 or r.shape[1] != n_channels or r.shape[0] < 2:
        raise InputError(f"ratios must be (colours >= 2) x {n_channels} channels, got shape {r.shape}: {r.tolist()}")
    if (r < 0).any() or not np.isfinite(r).all() or (r.sum(axis=1) <= 0).any():
        raise InputError(f"ratios must be finite, >= 0 with a positive sum per colour, got {r.tolist()}")
    for k, row in enumerate(r):
        if row.sum() > 1.0 + 1e-6:
            # (rows of percentages, 80 20, were refused without saying what was meant)
            hint = (f" (percentages? give fractions: {' '.join(f'{v / 100.0:g}' for v in row)})"
                    if abs(row.sum() - 100.0) <= 1.0 else "")
            raise InputError(f"ratios[{k}] {row.tolist()} sums to {row.sum():.6g}: a colour's fractions of photons "
                             f"per channel sum to at most 1{hint}")
    return r / r.sum(axis=1, keepdims=True)


class RatioMismatchWarning(UserWarning):
    """Given colour ratios that the data's own photon fractions do not show (e.g. the channels swapped)."""


class ColorSeparationWarning(UserWarning):
    """The colours cannot be told apart in this table: estimated ratios that coincide, or most rows rejected."""


#: estimated ratios of two colours closer than this (largest per-channel difference) are one cluster split in two
MIN_RATIO_SEPARATION = 0.05
#: a share of rejected rows above this is said
MAX_REJECTED_SHARE = 0.5


def separation_problem(fit: RatioFit, *, min_separation: float = MIN_RATIO_SEPARATION) -> str | None:
    """A message where two of the estimated ratios (:func:`estimate_ratios`) lie within ``min_separation`` of each
    other in every channel, else ``None``: the photon fractions form one cluster there, which the mixture split in two,
    and every row between them gets a colour probability near ``1 / K`` (rejected). A network trained for 200 steps
    gave 0.5001 / 0.4999 for both colours of a 0.8 / 0.3 dual-colour movie, and all 176 rows came out rejected without
    a word."""
    r = np.asarray(fit.ratios, dtype=np.float64)
    worst = None
    for k in range(len(r)):
        for j in range(k + 1, len(r)):
            d = float(np.abs(r[k] - r[j]).max())
            if d < min_separation and (worst is None or d < worst[0]):
                worst = (d, k, j)
    if worst is None:
        return None
    d, k, j = worst
    shown = "; ".join(f"colour {i}: " + " ".join(f"{v:.3f}" for v in r[i]) for i in (k, j))
    return (f"the estimated ratios of colours {k} and {j} are {d:.3f} apart at most ({shown}; fraction per channel): "
            f"the photon fractions show one cluster there, not {len(r)} colours, so the rows near it cannot be given a "
            "colour. Likely causes: a network not trained enough to tell the channels' photons apart (its "
            "color_accuracy and channel_use in log.csv), data that are not ratiometric (one dye), or --colors larger "
            "than the dyes in the sample; --ratios R.. gives known ratios instead")


#: a given ratio farther than this (largest per-channel difference) from every estimated one has no cluster near it
RATIO_TOLERANCE = 0.1


def ratio_mismatch(ratios, fit: RatioFit, *, tolerance: float = RATIO_TOLERANCE) -> str | None:
    """A message where the given ``ratios`` (K, C) disagree with the clusters of the data's photon fractions
    (``fit``, :func:`estimate_ratios`), else ``None``.

    Each given row's distance to the data is the largest per-channel difference to its nearest estimated ratio.
    It disagrees when some row is farther than ``tolerance`` from every cluster, or when a reordering of the
    channels brings every row at least twice as close (and the given order is more than ``tolerance / 2`` off):
    ratios given with the channels swapped, ``[[0.2, 0.8], [0.7, 0.3]]`` for data clustering at channel-0 fractions
    0.79 and 0.30, are each within 0.1 of a cluster and assigned the colours the wrong way round (0.92 % accuracy).
    """
    from itertools import permutations

    r = _check_ratios(ratios, fit.ratios.shape[1])
    est = np.asarray(fit.ratios, dtype=np.float64)

    def worst(rows: np.ndarray) -> tuple[float, np.ndarray]:
        d = np.abs(rows[:, None, :] - est[None, :, :]).max(axis=2).min(axis=1)  # (K,) to the nearest cluster
        return float(d.max()), d

    given, d = worst(r)
    shown = "; ".join(" ".join(f"{v:.3f}" for v in row) for row in est)
    data = f"the data's own photon fractions cluster at {shown} (estimated ratios, channels 0..{est.shape[1] - 1})"
    reordered = [perm for perm in permutations(range(r.shape[1])) if list(perm) != sorted(perm)]
    best = min(((worst(r[:, list(perm)])[0], perm) for perm in reordered), default=None)
    if best is not None and given > tolerance / 2 and best[0] < given / 2:
        return (f"ratios {r.round(4).tolist()} are up to {given:.3f} from the nearest cluster: {data}; with the "
                f"channels reordered as "
                f"{list(best[1])} they would be within {best[0]:.3f}: the channel order of the ratios may be swapped, or "
                "the table's channels were (split-view boxes or channel movies given in the wrong order to the fit: "
                "fit again with them in the right order; swapped ratios would only number the colours right, on photons "
                "fitted with each channel's PSF and camera on the other's half)")
    if given > tolerance:
        k = int(np.argmax(d))
        return (f"ratios[{k}] {r[k].round(4).tolist()} is {d[k]:.3f} from every cluster (more than {tolerance}): "
                f"{data}; check the ratios and their channel order (they may be swapped)")
    return None


def _background_columns(table: LocTable, n_channels: int) -> list[str | None]:
    """Per channel, the column its background per pixel comes from: ``bg_ch{i}``, else ``bg``, else None (0)."""
    return [f"bg_ch{c}" if f"bg_ch{c}" in table else ("bg" if "bg" in table else None) for c in range(n_channels)]


def _background_variance(table: LocTable, n_channels: int, psf_area_px: float) -> np.ndarray:
    """(L, C) photons of background under each localization per channel: ``psf_area_px * b_i`` (times the frames of
    a merged row)."""
    bg = np.zeros((len(table), n_channels))
    for c, col in enumerate(_background_columns(table, n_channels)):
        if col is not None:
            bg[:, c] = np.asarray(table[col], float)
    # a merged row (plexloc merge) sums its frames' photons but averages their background per frame: the
    # background under it is n_merged frames' worth
    frames = np.asarray(table["n_merged"], float)[:, None] if "n_merged" in table else 1.0
    return psf_area_px * frames * np.maximum(bg, 0.0)


def _expected_fit(n: np.ndarray, bg_var: np.ndarray, ratios: np.ndarray, *, excess_noise: float = 1.0,
                  iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(chi2, logvar)`` (L, K) of each row under each ratio row with the colour's own expected shot-noise variance
    (module docstring): ``sum_i (n_i - N_k r_ki)^2 / s_ki^2`` and ``sum_i log s_ki^2`` at the weighted least-squares
    total ``N_k``."""
    r = ratios[None, :, :]  # (1, K, C)
    x = n[:, None, :]  # (L, 1, C)
    total = np.repeat(np.maximum(n.sum(axis=1), 0.0)[:, None], ratios.shape[0], axis=1)  # (L, K)

    def variance(t: np.ndarray) -> np.ndarray:  # never below one photon: keeps chi2 finite
        return np.maximum(excess_noise * (t[:, :, None] * r + bg_var[:, None, :]), 1.0)

    for _ in range(int(iterations)):  # weighted least squares of N_k with the weights of the last N_k, never negative
        w = 1.0 / variance(total)
        total = np.maximum(np.sum(w * x * r, axis=2) / np.sum(w * r**2, axis=2), 0.0)
    var = variance(total)
    return np.sum((x - total[:, :, None] * r) ** 2 / var, axis=2), np.sum(np.log(var), axis=2)


def _sigma_fit(n: np.ndarray, s: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """(L, K) ``chi2`` of each row under each ratio row with the given 1-sigma ``s`` (L, C), at the weighted
    least-squares total (never negative)."""
    w = 1.0 / s**2  # (L, C)
    num = np.einsum("lc,kc->lk", w * n, ratios)
    den = np.einsum("lc,kc->lk", w, ratios**2)
    # (L, K) weighted least squares N_k, never negative: a row of negative photons fits no dye better than
    # another (it took a colour with p = 1.0 from a fit of -47 photons)
    total = np.maximum(num / den, 0.0)
    return np.sum(w[:, None, :] * (n[:, None, :] - total[:, :, None] * ratios[None, :, :]) ** 2, axis=2)


def color_probabilities_expected(n: np.ndarray, bg_var: np.ndarray, ratios: np.ndarray, *, excess_noise: float = 1.0,
                                 iterations: int = 4, return_chi2: bool = False):
    """(L, K) probabilities ``p_k`` of eq. 3 with each colour's own expected shot-noise variance (module docstring):
    ``n`` (L, C) photons, ``bg_var`` (L, C) background photons under each localization, ``ratios`` (K, C).
    ``return_chi2``: ``(p, chi2)`` with each colour's ``sum_i (n_i - N_k r_ki)^2 / s_ki^2`` (L, K)."""
    chi2, logvar = _expected_fit(n, bg_var, ratios, excess_noise=excess_noise, iterations=iterations)
    p = _row_probabilities(-0.5 * (chi2 + logvar))
    return (p, chi2) if return_chi2 else p


def _row_probabilities(logl: np.ndarray) -> np.ndarray:
    """(L, K) each row's log-likelihoods (equal priors) as probabilities, summing to 1 per row."""
    p = np.exp(logl - logl.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


#: points of the mixing fraction q (uniform over (0, 1)) over which :func:`mixed_probability` averages at least ...
MIXED_GRID = 40
#: ... and at most this many times as many: rows whose q is pinned down closer than 1 / MIXED_GRID get a finer grid
MIXED_GRID_MAX_FACTOR = 32


def mixed_probability(n: np.ndarray, ratios: np.ndarray, prior: float, *, s: np.ndarray | None = None,
                      bg_var: np.ndarray | None = None, excess_noise: float = 1.0, noise_factor: float = 1.0,
                      grid: int = MIXED_GRID, chunk: int = 50000) -> np.ndarray:
    """(L,) posterior probability that each row is two emitters of different dyes fitted as one.

    Hypotheses: one dye k (prior ``(1 - prior) / K`` each, its likelihood ``L_k`` at the fitted total, as eq. 3's),
    or two dyes j, k fitted as one (prior ``prior`` shared by the pairs): photons ``N (q r_j + (1 - q) r_k)`` with
    the mixing fraction ``q`` uniform over (0, 1), the likelihood averaged over a midpoint grid of ``grid`` points or,
    for rows whose ``q`` the photons pin down more closely than that (bright rows, small noise), as many more (up to
    ``MIXED_GRID_MAX_FACTOR`` times) as keep the spacing under the row's ``q`` uncertainty: a marginal likelihood, so a
    row at one dye's ratio fits the pair at ``q`` near 1 as well as the dye, but only over a sliver of ``q``, and a
    precise single-dye row keeps a small ``mixed`` probability, an imprecise one a larger one. (40 points alone were
    off by up to 0.24 in this probability for rows of 50,000 photons at the noise of the model; 0.002 at 10,000.)
    The chi-squares are divided by ``noise_factor`` (the table's own noise scale, :func:`chi2_noise_factor`): the
    photon noise without ``sigma_photons_ch*`` is 4-18x too small for an MLE fit's per-channel photons (more where
    the field is crowded), and unscaled every single-dye row a little off its ratio towards another dye counted as
    mixed (7-15 % of the isolated rows rejected).

    ``s`` (L, C): the rows' 1-sigma photons (``sigma_photons_ch*``); else the expected shot noise from ``bg_var``
    and ``excess_noise``. Unlike :func:`misfit_rows` (a chi-square beyond a quantile, either side of a ratio), only a
    fraction between two dyes' counts, so a row beyond its dye's ratio (noise) is not taken for a mixture."""
    K = ratios.shape[0]
    pairs = [(j, k) for j in range(K) for k in range(j + 1, K)]
    log_single = np.log((1.0 - prior) / K)
    # the q uncertainty of each row, from below (the smallest channel variance, the pair farthest apart): the grid
    # spacing is kept under it (a coarser midpoint sum misses or overweights a peak narrower than its spacing)
    var = s**2 if s is not None else excess_noise * (np.maximum(n, 0.0) + bg_var)
    spread = max(float(np.linalg.norm(ratios[j] - ratios[k])) for j, k in pairs)
    sigma_q = np.sqrt(noise_factor * np.min(var, axis=1)) / (np.maximum(n.sum(axis=1), 1.0) * spread)
    with np.errstate(divide="ignore"):
        need = np.ceil(np.log2(np.maximum(1.0 / (int(grid) * np.maximum(sigma_q, 1e-12)), 1.0)))
    level = np.clip(np.nan_to_num(need, nan=0.0), 0, np.log2(MIXED_GRID_MAX_FACTOR)).astype(int)
    out = np.empty(len(n))
    for m in np.unique(level):
        G = int(grid) * 2 ** int(m)
        q = (np.arange(G) + 0.5) / G
        mixes = np.concatenate([q[:, None] * ratios[j] + (1.0 - q[:, None]) * ratios[k] for j, k in pairs])  # (P G, C)
        rows = np.concatenate([ratios, mixes])
        log_pair = np.log(prior / len(pairs)) - np.log(G)
        idx = np.flatnonzero(level == m)
        step = max(int(chunk) * int(grid) // G, 1)  # the same memory per chunk at any grid
        for a in range(0, len(idx), step):
            sel = idx[a:a + step]
            if s is not None:
                logl = -0.5 * _sigma_fit(n[sel], s[sel], rows) / noise_factor
            else:
                chi2, logvar = _expected_fit(n[sel], bg_var[sel], rows, excess_noise=excess_noise)
                logl = -0.5 * (chi2 / noise_factor + logvar)
            single = logl[:, :K] + log_single
            mixed = logl[:, K:] + log_pair
            top = np.maximum(single.max(axis=1), mixed.max(axis=1))[:, None]
            ps, pm = np.exp(single - top).sum(axis=1), np.exp(mixed - top).sum(axis=1)
            out[sel] = pm / (ps + pm)
    return out


def color_probabilities(n: np.ndarray, s: np.ndarray, ratios: np.ndarray, *, return_chi2: bool = False):
    """(L, K) probabilities ``p_k`` of eq. 3 (equal priors); ``return_chi2``: ``(p, chi2)``, chi2 (L, K)."""
    chi2 = _sigma_fit(n, s, ratios)
    p = _row_probabilities(-0.5 * chi2)
    return (p, chi2) if return_chi2 else p


#: a channel's detection limit where ``detection_limits`` are not given: this many times the background noise under a
#: spot, ``sqrt(excess_noise * psf_area_px * bg)``. The MLE fitter, each channel of the dual-colour examples fitted
#: alone (backgrounds 20 and 135 photons/px, excess_noise 2), missed half the spots of 210-300 and 510-700 photons:
#: 10-12 of these noise units
DETECTION_SNR = 10.0
#: the spread of the detection limit in log photons (defocus, neighbours, the frame's share of a blink), added in
#: quadrature to the photon noise (:func:`miss_probability`). Chosen on seven dual-colour movies fitted channel by
#: channel (20/80 - 60/40 and AF647/CF680 at 1,000-5,000 photons): 0.8 rejected 1.5-3x more one-channel rows for
#: the same accuracy, 0.5 gave more wrong colours. It under-predicts a channel's misses of bright spots (10 % at 3-4
#: times its limit measured)
DETECTION_SPREAD = 0.6
#: the probability that a channel misses a molecule bright enough to be seen there in any case (overlaps, the
#: field's edge, a grouping that failed); it caps how sure a colour can be from a missed channel
MISS_RATE = 0.001


def seen_channels(table: LocTable, n: np.ndarray) -> np.ndarray | None:
    """(L, C) which channels saw each row of a channel-by-channel merge
    (:func:`plexloc.post.channels.combine_channels`: ``n_channels_seen``, and ``photons_chN`` 0 where channel N
    did not see the molecule); ``None`` for any other table (a joint fit's or a network's rows have every
    channel). A row with ``n_channels_seen`` equal to the channels is seen in all of them."""
    if "n_channels_seen" not in table:
        return None
    seen = (n != 0) | ~np.isfinite(n)
    seen[np.asarray(table["n_channels_seen"], float) >= n.shape[1]] = True
    return seen


def channel_detection_limits(bg_var: np.ndarray, *, excess_noise: float = 1.0, limits=None) -> np.ndarray:
    """(L, C) photons below which each channel does not detect a spot (:data:`DETECTION_SNR` times the background
    noise under it, ``bg_var`` (L, C) from :func:`_background_variance`), or the ``limits`` given, one per channel."""
    if limits is None:
        return DETECTION_SNR * np.sqrt(excess_noise * np.maximum(bg_var, 0.0))
    d = np.asarray(limits, dtype=np.float64)
    if d.ndim != 1 or len(d) != bg_var.shape[1] or not np.isfinite(d).all() or (d < 0).any():
        raise InputError(f"detection_limits must be one number of photons >= 0 per channel ({bg_var.shape[1]}), got "
                         f"{np.asarray(limits).tolist()}")
    return np.broadcast_to(d, bg_var.shape).copy()


def miss_probability(mu: np.ndarray, limit: np.ndarray, bg_var: np.ndarray, *, excess_noise: float = 1.0,
                     miss_rate: float = MISS_RATE) -> np.ndarray:
    """The probability that a channel misses a spot of ``mu`` expected photons: ``miss_rate + (1 - miss_rate)
    Phi(ln(limit / mu) / w)``, ``w**2 = DETECTION_SPREAD**2 + excess_noise * (mu + bg_var) / mu**2`` (the spread of
    the limit and the photon noise, both relative); 1 at ``mu`` 0, ``miss_rate`` where ``limit`` is 0."""
    from scipy.special import ndtr

    mu = np.maximum(mu, 1e-9)
    w = np.sqrt(DETECTION_SPREAD**2 + excess_noise * (mu + bg_var) / mu**2)
    with np.errstate(divide="ignore"):
        z = np.log(np.maximum(limit, 0.0) / mu) / w
    return miss_rate + (1.0 - miss_rate) * ndtr(z)


def censored_color_loglik(n: np.ndarray, seen: np.ndarray, ratios: np.ndarray, bg_var: np.ndarray,
                          limits: np.ndarray, *, s: np.ndarray | None = None, excess_noise: float = 1.0,
                          miss_rate: float = MISS_RATE, iterations: int = 4, grid: int = 41, chunk: int = 20000):
    """``(logl, chi2)`` (L, K) of each colour for rows that some channels missed (``seen`` (L, C) False).

    A channel that missed the molecule did not measure 0 photons: it received fewer than it detects (censored). For
    a total ``N``, colour k's likelihood is that of the channels seen (Gaussian, variance ``s**2`` where given, else
    ``excess_noise * (N r_ki + bg_var)`` with its normalisation) times, for each channel j missed, the probability
    that it would have missed ``N r_kj`` expected photons (:func:`miss_probability`, a log-normal limit ``D_j`` =
    ``limits``: ``miss_rate + (1 - miss_rate) Phi(ln(D_j / (N r_kj)) / w)``, ``w**2 = DETECTION_SPREAD**2 +
    excess_noise * (N r_kj + bg_var) / (N r_kj)**2``). ``N`` is a
    nuisance parameter: ``logl`` is its maximum over ``N`` (profile likelihood, as for rows seen everywhere), searched
    on ``grid`` points within 5 sigma of the weighted least-squares total of the channels seen. ``chi2``: that of the
    channels seen at the best ``N``."""
    L, C = n.shape
    K = ratios.shape[0]
    logl, chi2 = np.empty((L, K)), np.empty((L, K))
    t = np.linspace(-5.0, 5.0, int(grid))
    r = ratios[None, :, :]  # (1, K, C)
    for a in range(0, L, int(chunk)):
        b = min(a + int(chunk), L)
        x, m, bv, d = n[a:b, None, :], seen[a:b, None, :], bg_var[a:b, None, :], limits[a:b, None, :]
        xs = np.where(m, x, 0.0)

        def variance(total):  # (l, K, C) for totals (l, K)
            if s is not None:
                return np.broadcast_to(s[a:b, None, :] ** 2, total.shape + (C,))
            return np.maximum(excess_noise * (total[..., None] * r + bv), 1.0)

        total = np.repeat(np.maximum(xs.sum(axis=2), 0.0), K, axis=1)  # (l, K)
        for _ in range(int(iterations)):  # weighted least squares of N over the channels seen, never negative
            w = m / variance(total)
            den = np.sum(w * r**2, axis=2)
            total = np.maximum(np.sum(w * xs * r, axis=2) / np.where(den > 0, den, 1.0), 0.0)
        w = m / variance(total)
        sd = 1.0 / np.sqrt(np.maximum(np.sum(w * r**2, axis=2), 1e-300))  # (l, K) sigma of N
        sd = np.minimum(sd, np.maximum(total, 1.0))
        cand = np.maximum(total[..., None] + sd[..., None] * t, 0.0)  # (l, K, G)
        mu = cand[..., None] * r[:, :, None, :]  # (l, K, G, C) expected photons
        if s is not None:
            var = np.broadcast_to(s[a:b, None, None, :] ** 2, mu.shape)
        else:
            var = np.maximum(excess_noise * (mu + bv[:, :, None, :]), 1.0)
        ms = m[:, :, None, :]
        resid = np.where(ms, (x[:, :, None, :] - mu) ** 2 / var, 0.0)
        norm = np.where(ms, np.log(var), 0.0) if s is None else 0.0
        p_miss = miss_probability(mu, d[:, :, None, :], bv[:, :, None, :], excess_noise=excess_noise,
                                  miss_rate=miss_rate)
        ll = np.sum(-0.5 * (resid + norm) + np.where(ms, 0.0, np.log(p_miss)), axis=3)  # (l, K, G)
        g = np.argmax(ll, axis=2)
        logl[a:b] = np.take_along_axis(ll, g[..., None], axis=2)[..., 0]
        chi2[a:b] = np.take_along_axis(resid.sum(axis=3), g[..., None], axis=2)[..., 0]
    return logl, chi2


def assign_colors(
    table: LocTable,
    ratios,
    threshold: float = 0.9,
    *,
    excess_noise: float = 1.0,
    psf_area_px: float = DEFAULT_PSF_AREA_PX,
    misfit_alpha: float | None = None,
    detection_limits=None,
    miss_rate: float = MISS_RATE,
    mixed_prior: float | None = None,
    noise_scale: bool = True,
) -> tuple[LocTable, ColorReport]:
    """Table with ``color`` and ``color_prob`` (eq. 3), and a report of the counts per colour.

    Args:
        ratios: (K, C) fraction of each dye's photons per channel (rows are normalised to sum 1).
        threshold: ``color = -1`` where the largest probability is below it.
        excess_noise, psf_area_px: only for tables without ``sigma_photons_ch*`` (see the module docstring).
        misfit_alpha: also ``color = -1`` where the row's photons fit none of the ratios (:func:`misfit_rows`) at
            this false-rejection level; ``None`` (default): eq. 3 alone.
        detection_limits, miss_rate: for the rows of a channel-by-channel merge that some channels missed
            (:func:`censored_color_loglik`): photons per channel below which a channel misses a spot (default
            :data:`DETECTION_SNR` times the background noise under it, from ``bg_chN``), and the probability that it
            misses a brighter one.
        mixed_prior: also weigh the hypothesis that a row is two emitters of different dyes fitted as one
            (:func:`mixed_probability`, this prior probability, e.g. 0.01): ``color_prob`` becomes eq. 3's times
            ``1 - P(mixed)``, so such rows fall below ``threshold``; ``None`` (default): eq. 3 alone. Rows that a
            channel missed are not tested.
        noise_scale: divide eq. 3's chi-squares by the table's own noise scale (:func:`chi2_noise_factor`: the rows'
            best chi-squares against the chi-square distribution, at least 1; 1 for tables of fewer than
            :data:`MIN_NOISE_ROWS` rows), as the misfit and mixed tests do (default). Uncertainties too small make eq. 3
            over-confident: predicted sigmas half the true errors put 6-10 % wrong colours among the rows at
            ``color_prob`` >= 0.9 (2-3 % scaled). ``False``: eq. 3 with the uncertainties as given (the report's
            ``noise_factor`` is still measured).

    A row of :func:`plexloc.post.channels.combine_channels` seen in fewer channels than the table has
    (``n_channels_seen``, ``photons_chN`` 0 where missed) is coloured from the channels that saw it and the
    probability that each channel missed would have missed that colour's photons there
    (:func:`censored_color_loglik`), not from 0 photons: a 60/40 dye missed in channel 0 took the 20/80 dye with
    ``color_prob`` 1 (the only dye that puts few photons in channel 0), and a row that every colour would have
    shown in the channel that missed it fits all colours alike (rejected). These rows are left out of the misfit
    test.

    Rows with a photon count (or a ``sigma_photons_ch*``) that is not a finite number (>= 0 for a sigma), or a
    background (``bg_chN``, else ``bg``) that is not one where it is used (the photon noise without
    ``sigma_photons_ch*``; the detection limits of rows a channel missed, without ``detection_limits``), get
    ``color = -1`` and ``color_prob`` NaN; the report counts them (``n_not_finite``) and names the first.
    """
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    n, s, source = photon_matrix(table, excess_noise=excess_noise, psf_area_px=psf_area_px)
    r = _check_ratios(ratios, n.shape[1])
    ok, first = _finite_rows(table, n)
    best, prob = np.full(len(table), -1, np.int64), np.full(len(table), np.nan)
    misfit = np.zeros(len(table), bool)
    mixed = np.zeros(len(table), bool)  # rows eq. 3 gave a colour that the two-dye hypothesis took below threshold
    eq3 = prob  # eq. 3's color_prob (a copy where mixed_prior changes prob)
    noise_factor = noise_estimate = noise_calibrated = None
    if mixed_prior is not None and not 0.0 < mixed_prior < 1.0:
        raise InputError(f"mixed_prior must be in (0, 1), got {mixed_prior}")
    if misfit_alpha is not None and not 0.0 < misfit_alpha < 1.0:
        raise InputError(f"misfit_alpha must be in (0, 1), got {misfit_alpha}")
    if not 0.0 <= miss_rate < 1.0:
        raise InputError(f"miss_rate must be in [0, 1), got {miss_rate}")
    bg_var = _background_variance(table, n.shape[1], psf_area_px)
    limits = channel_detection_limits(bg_var, excess_noise=excess_noise, limits=detection_limits)
    seen = seen_channels(table, n)
    partial = ok & ~seen.all(axis=1) if seen is not None else np.zeros(len(table), bool)
    # a background that is not a finite number where it is used (the photon noise without sigma_photons_ch*, the
    # detection limits of rows a channel missed): color_prob NaN and color -1 before, counted nowhere and not said
    uses_bg = np.full(len(table), source != "sigma_photons_ch*") | (partial & (detection_limits is None))
    ok, first = _finite_background(table, n.shape[1], uses_bg, ok, first)
    partial &= ok
    full = ok & ~partial
    if source != "sigma_photons_ch*":
        source = (f"shot noise of each colour's expected photons + background (excess_noise={excess_noise}, "
                  f"psf_area_px={psf_area_px:.3g})")
    if full.any():
        if source == "sigma_photons_ch*":
            chi2, logvar = _sigma_fit(n[full], s[full], r), 0.0
        else:
            chi2, logvar = _expected_fit(n[full], bg_var[full], r, excess_noise=excess_noise)
        rows = np.arange(len(chi2))
        dof = n.shape[1] - 1
        # the table's own noise scale, from the best colours' chi-squares as the uncertainties give them; eq. 3 with
        # the uncertainties scaled by it (unscaled, predicted sigmas half the true errors gave color_prob >= 0.9 to
        # rows 92-94 % right, and 0.999 to wrong ones; bench/colour49.py). Predicted sigmas may also be too large
        # (said, not scaled down: that only rejects more rows, and the estimate is biased low where the dyes overlap)
        unscaled = np.argmax(-0.5 * (chi2 + logvar), axis=1)
        noise_estimate = chi2_noise_factor(chi2[rows, unscaled], dof, floor=0.0)
        noise_factor = max(noise_estimate, 1.0)
        if noise_estimate < 0.5:  # too large, or only read low where the dyes overlap: what right ones would read
            noise_calibrated = _calibrated_noise_estimate(n[full], s[full] if source == "sigma_photons_ch*" else None,
                                                          bg_var[full], r, unscaled, excess_noise=excess_noise)
        eq3_scale = noise_factor if noise_scale else 1.0
        p = _row_probabilities(-0.5 * (chi2 / eq3_scale + logvar))
        best[full] = np.argmax(p, axis=1)
        prob[full] = p[rows, best[full]]
        best_chi2 = chi2[rows, best[full]]
        if misfit_alpha is not None:
            bad, _ = misfit_rows(best_chi2, dof, misfit_alpha, factor=noise_factor)
            misfit[full] = bad
        if mixed_prior is not None:
            eq3 = prob.copy()
            p_mixed = mixed_probability(n[full], r, mixed_prior, s=s[full] if source == "sigma_photons_ch*" else None,
                                        bg_var=bg_var[full], excess_noise=excess_noise, noise_factor=noise_factor)
            mixed[full] = (prob[full] >= threshold) & (prob[full] * (1.0 - p_mixed) < threshold)
            prob[full] *= 1.0 - p_mixed
    if partial.any():
        logl, _ = censored_color_loglik(n[partial], seen[partial], r, bg_var[partial], limits[partial],
                                        s=s[partial] if source == "sigma_photons_ch*" else None,
                                        excess_noise=excess_noise, miss_rate=miss_rate)
        p = np.exp(logl - logl.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        best[partial] = np.argmax(p, axis=1)
        prob[partial] = p[np.arange(len(p)), best[partial]]
    color = np.where(ok & (prob >= threshold) & ~misfit, best, -1).astype(np.int64)
    counts = {k: int(np.count_nonzero(color == k)) for k in range(-1, r.shape[0])}
    report = ColorReport(n=len(table), counts=counts, ratios=r.tolist(), sigma_source=source, threshold=threshold,
                         n_not_finite=int(np.count_nonzero(~ok)), not_finite=first,
                         n_misfit=int(np.count_nonzero(misfit & (eq3 >= threshold))), misfit_alpha=misfit_alpha,
                         noise_factor=noise_factor, noise_scaled=bool(noise_scale), noise_estimate=noise_estimate,
                         noise_calibrated=noise_calibrated,
                         n_partial=int(np.count_nonzero(partial)),
                         n_partial_rejected=int(np.count_nonzero(partial & (color < 0))),
                         n_mixed=int(np.count_nonzero(mixed & ~misfit)), mixed_prior=mixed_prior,
                         detection_limits=[float(np.median(limits[partial, c])) for c in range(n.shape[1])]
                         if partial.any() else None)
    return table.with_columns(color=color, color_prob=prob, **_partial_totals(table, n, r, color)), report


def _partial_totals(table: LocTable, n: np.ndarray, r: np.ndarray, color: np.ndarray) -> dict[str, np.ndarray]:
    """``photons`` (and ``sigma_photons``) of the rows of a channel-by-channel merge
    (:func:`plexloc.post.channels.combine_channels`: ``n_channels_seen``) seen in fewer channels than the table has,
    now that their dye is known: the photons of the channels seen (``photons_chN`` not 0) divided by the dye's
    fraction ``r`` (normalised) in those channels, as the rows seen in every channel hold the sum of all. A row without
    a colour (-1) holds the photons of the channels seen. ``{}`` for any other table (a joint fit's or a network's
    total has every channel).

    ``sigma_photons`` is scaled as ``photons`` changes from the table's value, so that a table coloured again (another
    ``--threshold``, other ratios) keeps both consistent: it was multiplied by ``1 / fraction`` on every run (62.5,
    78.1, 97.7 ... for a 20/80 dye's row of sigma 50 seen in channel 1 alone), and a row rejected on the second run kept
    the first run's total instead of the photons of the channels seen."""
    if "n_channels_seen" not in table or not len(table):
        return {}
    part = (np.asarray(table["n_channels_seen"]) < n.shape[1]) & np.isfinite(n).all(axis=1)
    if not part.any():
        return {}
    seen = n[part] != 0
    given = color[part] >= 0
    fraction = np.ones(int(part.sum()))
    fraction[given] = (seen[given] * r[color[part][given]]).sum(axis=1)
    use = fraction > 0
    idx = np.flatnonzero(part)[use]
    before = np.array(table["photons"], float)
    out = {"photons": before.copy()}
    out["photons"][idx] = np.where(seen[use], n[part][use], 0.0).sum(axis=1) / fraction[use]
    if "sigma_photons" in table:
        old, new = before[idx], out["photons"][idx]
        scale = np.where(np.isfinite(old) & (old > 0), new / np.where(old > 0, old, 1.0), 1.0 / fraction[use])
        out["sigma_photons"] = np.array(table["sigma_photons"], float)
        out["sigma_photons"][idx] *= scale
    return out


def misfit_rows(chi2: np.ndarray, dof: int, alpha: float, *, factor: float | None = None) -> tuple[np.ndarray, float]:
    """``(misfit, factor)``: rows whose best colour's ``chi2`` (``dof`` = channels - 1 degrees of freedom) lies
    beyond the chi-square quantile ``1 - alpha`` once divided by ``factor``, the table's own noise scale
    (:func:`chi2_noise_factor`, where not given).

    Eq. 3 compares the colours with one another only: a row that fits none of them still takes the less bad one
    with ``p`` near 1. Two emitters of different dyes fitted as one (twice the photons, a fraction between the
    dyes') do that: on a simulated dual-colour split-view movie fitted by MLE all 22 wrong colours among 2,068
    matched rows had ``color_prob`` >= 0.999, and at ``alpha`` 1e-3 this test rejected 21 of them with 144 rows in
    all. The scale comes from the data because the uncertainties without ``sigma_photons_ch*`` (shot noise and
    background alone) are 7-9x too small for an MLE fit's per-channel photons, which would reject a third of the
    rows; most rows are single emitters of one dye, so the (truncated) median is theirs."""
    from scipy.stats import chi2 as chi2_dist

    c = np.asarray(chi2, dtype=np.float64)
    factor = chi2_noise_factor(c, dof) if factor is None else float(factor)
    return ~np.isfinite(c) | (c / factor > chi2_dist.isf(alpha, dof)), factor


#: tables with fewer rows (seen in every channel, finite) than this keep noise scale 1: a median of a few chi-squares
#: says little
MIN_NOISE_ROWS = 20
#: the noise scale's truncation: chi-squares beyond this quantile of the scaled distribution are left out of its
#: estimate (two dyes' emitters fitted as one, far from every ratio), and the median of the rest is compared with the
#: median of the chi-square distribution truncated there
NOISE_TRUNCATION = 1e-3


def chi2_noise_factor(chi2: np.ndarray, dof: int, *, floor: float = 1.0, iterations: int = 20) -> float:
    """The table's own noise scale ``f`` of the best colours' ``chi2`` (``dof`` degrees of freedom): rows of one dye
    have ``chi2 ~ f chi2(dof)``. Estimated from the rows below the truncation ``f * chi2.isf(NOISE_TRUNCATION, dof)``
    (their median over the truncated chi-square's median; a fixed point from the plain median, a few iterations), at
    least ``floor`` (1 where no chi-square is finite, or fewer than :data:`MIN_NOISE_ROWS`).

    The plain median counted the rows of two dyes' emitters fitted as one as noise: on network-like tables with
    calibrated ``sigma_photons_ch*`` (true scale 0.95) it gave 1.2 / 2.2 with 10 / 30 % such rows, the truncated
    estimate 1.04 / 1.39 (AF647/CF680 ratios, 10,000 rows; ``bench/colour49.py``)."""
    from scipy.stats import chi2 as chi2_dist

    c = np.asarray(chi2, dtype=np.float64)
    c = c[np.isfinite(c)]
    if len(c) < MIN_NOISE_ROWS:
        return 1.0
    limit = chi2_dist.isf(NOISE_TRUNCATION, dof)
    kept_median = chi2_dist.ppf(0.5 * chi2_dist.cdf(limit, dof), dof)
    f = max(float(np.median(c)) / chi2_dist.median(dof), 1e-12)
    for _ in range(int(iterations)):
        below = c[c <= limit * f]
        if not len(below):
            break
        new = max(float(np.median(below)) / kept_median, 1e-12)
        if abs(new - f) <= 1e-6 * f:
            f = new
            break
        f = new
    return float(max(f, floor))


def _calibrated_noise_estimate(n: np.ndarray, s: np.ndarray | None, bg_var: np.ndarray, ratios: np.ndarray,
                               best: np.ndarray, *, excess_noise: float = 1.0, seed: int = 0) -> float:
    """What :func:`chi2_noise_factor` (unfloored) reads on these rows where their uncertainties are right: each row
    drawn again at its best colour's ratio (its total photons) with its own ``s`` (else the shot-noise model's
    variance) and coloured as :func:`assign_colors` does. The best colour's chi-square is biased low where the dyes
    overlap (calibrated sigmas read 0.38 for AF647 / an intermediate dye / CF680 in two channels, 0.40 for AF647/CF680
    at 200 photons), so a reading below 1 says the uncertainties are too large only against this one."""
    rng = np.random.default_rng(seed)
    mu = np.maximum(n.sum(axis=1), 0.0)[:, None] * ratios[best]
    dof = n.shape[1] - 1
    if s is not None:
        chi2 = _sigma_fit(mu + s * rng.standard_normal(mu.shape), s, ratios)
        pick = np.argmin(chi2, axis=1)
    else:
        var = np.maximum(excess_noise * (mu + bg_var), 1.0)
        chi2, logvar = _expected_fit(mu + np.sqrt(var) * rng.standard_normal(mu.shape), bg_var, ratios,
                                     excess_noise=excess_noise)
        pick = np.argmax(-0.5 * (chi2 + logvar), axis=1)
    return chi2_noise_factor(chi2[np.arange(len(chi2)), pick], dof, floor=0.0)


def _finite_rows(table: LocTable, n: np.ndarray) -> tuple[np.ndarray, str]:
    """``(ok, first)``: rows whose per-channel photons are finite and whose ``sigma_photons_ch*`` (where the table
    has them all) are finite and >= 0, and a description of the first bad value (column, row, value), ``""`` if
    none. A NaN count took colour -1 with ``color_prob`` NaN without a word, an infinite one raised numpy's
    RuntimeWarning (an error where warnings are errors); a negative sigma was clipped to 1 photon, the most certain
    measurement of all."""
    cols = [f"photons_ch{c}" for c in range(n.shape[1])]
    if all(f"sigma_{c}" in table for c in cols):
        cols += [f"sigma_{c}" for c in cols]
    ok = np.ones(len(table), bool)
    first = (len(table), "", 0.0)
    for col in cols:
        v = np.asarray(table[col], float)
        bad = ~np.isfinite(v) | ((v < 0) if col.startswith("sigma_") else False)
        if bad.any():
            ok &= ~bad
            row = int(np.argmax(bad))
            if row < first[0]:
                first = (row, col, float(v[row]))
    if ok.all():
        return ok, ""
    return ok, f"column {first[1]} is {first[2]} at row {first[0]}"


def _finite_background(table: LocTable, n_channels: int, uses: np.ndarray, ok: np.ndarray,
                       first: str) -> tuple[np.ndarray, str]:
    """``(ok, first)`` of :func:`_finite_rows` with the rows left out whose background column
    (:func:`_background_columns`) is not a finite number where ``uses``; ``first`` names the first such value where
    no earlier column was named."""
    ok = ok.copy()
    for col in dict.fromkeys(c for c in _background_columns(table, n_channels) if c is not None):
        v = np.asarray(table[col], float)
        bad = uses & ~np.isfinite(v)
        if bad.any():
            if not first:
                row = int(np.argmax(bad))
                first = f"column {col} is {float(v[row])} at row {row}"
            ok &= ~bad
    return ok, first


@dataclass
class RatioFit:
    """Gaussian mixture of the observed fractions ``n_i / sum n`` (channels 0..C-2; the last is 1 - sum)."""

    ratios: np.ndarray  # (K, C), rows sum to 1
    weights: np.ndarray  # (K,)
    spreads: np.ndarray  # (K, C-1) standard deviations of the fractions (intrinsic and mean measurement, combined)
    fractions: np.ndarray  # (L, C-1) the fractions that were fitted
    iterations: int
    converged: bool
    intrinsic: np.ndarray | None = None  # (K, C-1) each colour's intrinsic spread tau_k of the fractions
    variances: np.ndarray | None = None  # (L, C-1) each fitted row's measurement variance v_i of its fractions

    def density(self, x: np.ndarray, channel: int = 0, *, max_rows: int = 4000) -> np.ndarray:
        """The fitted mixture's density of the fraction in ``channel`` at ``x``: ``mean_i sum_k w_k N(x; mu_k,
        tau_k^2 + v_i)`` over the fitted rows (at most ``max_rows`` of them, evenly spaced in the table), the model
        that EM fitted. Without ``intrinsic``/``variances`` one Gaussian of ``spreads`` per colour.

        The single Gaussians of ``spreads`` (the mean measurement variance) are broader and lower than the
        mixture of rows measured well and badly: on a dual-colour MLE table they drew peaks at half the
        histogram's height, as if the fit had missed the data."""
        x = np.asarray(x, dtype=float)
        mu = np.asarray(self.ratios, float)[:, channel]
        w = np.asarray(self.weights, float)
        if self.intrinsic is None or self.variances is None or not len(self.variances):
            s = np.asarray(self.spreads, float)[:, channel]
            return sum(wk * np.exp(-0.5 * ((x - m) / sk) ** 2) / (sk * np.sqrt(2 * np.pi))
                       for wk, m, sk in zip(w, mu, s))
        v = np.asarray(self.variances, float)[:, channel]
        if len(v) > max_rows:
            v = v[np.linspace(0, len(v) - 1, max_rows).round().astype(int)]
        tau2 = np.asarray(self.intrinsic, float)[:, channel] ** 2
        var = tau2[:, None] + v[None, :]  # (K, L)
        dens = np.zeros_like(x)
        for k in range(len(mu)):
            z = (x[:, None] - mu[k]) ** 2 / var[k][None, :]
            dens += w[k] * np.mean(np.exp(-0.5 * z) / np.sqrt(2 * np.pi * var[k][None, :]), axis=1)
        return dens


def photon_fractions(
    table: LocTable,
    *,
    min_photons: float = 0.0,
    excess_noise: float = 1.0,
    psf_area_px: float = DEFAULT_PSF_AREA_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """``(f, v)``: each usable row's fractions of its photons in channels 0..C-2 (L, C-1) and their measurement
    variances (:func:`estimate_ratios` fits these; its docstring says which rows are used)."""
    n, s, _ = photon_matrix(table, excess_noise=excess_noise, psf_area_px=psf_area_px)
    tot = n.sum(axis=1)
    keep = (tot > max(min_photons, 0.0)) & np.isfinite(tot) & np.isfinite(s).all(axis=1)
    seen = seen_channels(table, n)
    if seen is not None:  # a row that a channel missed has no fraction there (0 is not its share of the photons)
        keep &= seen.all(axis=1)
    n, s, tot = n[keep], s[keep], tot[keep]
    f_all = n / tot[:, None]
    eye = np.eye(n.shape[1])
    v = np.einsum("lj,lcj->lc", s**2, (eye[None] - f_all[:, :, None]) ** 2) / tot[:, None] ** 2
    return f_all[:, :-1], v[:, :-1]


def estimate_ratios(
    table: LocTable,
    n_colors: int = 2,
    *,
    min_photons: float = 0.0,
    max_iter: int = 500,
    tol: float = 1e-8,
    excess_noise: float = 1.0,
    psf_area_px: float = DEFAULT_PSF_AREA_PX,
) -> RatioFit:
    """Fit a ``n_colors``-component diagonal Gaussian mixture (EM) to the photon fractions per channel.

    Row i's fraction ``f_ic = n_ic / T_i`` (``T_i = sum_c n_ic``) has the measurement variance
    ``v_ic = sum_j s_ij^2 (delta_cj - f_ic)^2 / T_i^2`` (first-order propagation of the ``s`` of
    :func:`photon_matrix`, so ``excess_noise`` and ``psf_area_px`` as there), and colour k's component is
    ``N(mu_k, tau_k^2 + v_i)`` with an intrinsic spread ``tau_k`` fitted by EM. Dim rows, whose fractions
    scatter widely, thus weigh little: a single variance per component let the rare dye's component absorb the
    tails of the common one (a dye at 5 % of 1000 rows came out at 0.08-0.11 instead of 0.019).

    Rows whose summed photons are below ``min_photons`` or not positive, or with a non-finite photon count or
    uncertainty, are left out, and so are the rows of a channel-by-channel merge that some channel missed
    (``n_channels_seen``, :func:`seen_channels`): their 0 photons there made clusters at fractions 0 and 1 (the
    20/80 - 60/40 dual-colour example fitted channel by channel at 1,000 photons gave 1.0 and 0.109 in channel 0). A negative count in one channel is kept (a noisy measurement of a dim channel:
    dropping those rows truncated the dim dye's fractions, 0.0206 instead of 0.0195 for a true 0.019).

    EM runs from two starts, quantiles of the fraction in channel 0 and farthest points (in units of ``sqrt(v)``)
    among the better-measured half of the rows, and keeps the higher likelihood; colours come out ordered by
    descending fraction in channel 0.
    """
    f, v = photon_fractions(table, min_photons=min_photons, excess_noise=excess_noise, psf_area_px=psf_area_px)
    if len(f) < 5 * n_colors:
        raise InputError(f"estimating {n_colors} colour ratios needs >= {5 * n_colors} localizations with photons"
                         + (" in every channel" if "n_channels_seen" in table else "") + f", got {len(f)}")
    q = (np.arange(n_colors)[::-1] + 0.5) / n_colors
    order = np.argsort(f[:, 0])
    starts = [np.stack([f[order[int(qi * (len(f) - 1))]] for qi in q])]
    # farthest points among the better-measured half: a start that also finds rare dyes (quantiles all fall into
    # a dye that makes 90 % of the rows, and two components then split it)
    precise = f[v.sum(axis=1) <= np.median(v.sum(axis=1))]
    vp = v[v.sum(axis=1) <= np.median(v.sum(axis=1))]
    far = [np.median(precise, axis=0)]
    for _ in range(1, n_colors):
        dist = np.min([np.sum((precise - c) ** 2 / vp, axis=1) for c in far], axis=0)
        far.append(precise[int(np.argmax(dist))])
    starts.append(np.stack(far))
    best = None
    for mu0 in starts:
        fit = _mixture_em(f, v, mu0, max_iter, tol)
        if best is None or fit[-1] > best[-1]:
            best = fit
    mu, w, spreads, tau, it, converged, _ = best
    desc = np.argsort(-mu[:, 0], kind="stable")  # colours ordered by descending fraction in channel 0
    mu, w, spreads, tau = mu[desc], w[desc], spreads[desc], tau[desc]
    ratios = np.column_stack([mu, 1.0 - mu.sum(axis=1)])
    return RatioFit(ratios=ratios, weights=w, spreads=spreads, fractions=f, iterations=it, converged=converged,
                    intrinsic=tau, variances=v)


def _mixture_em(f: np.ndarray, v: np.ndarray, mu: np.ndarray, max_iter: int, tol: float):
    """EM of the mixture of :func:`estimate_ratios` from the means ``mu`` (K, C-1): ``(mu, weights, spreads,
    intrinsic spreads, iterations, converged, log-likelihood)``."""
    n_colors = len(mu)
    tau2 = np.tile(np.var(f, axis=0) / n_colors**2 + 1e-8, (n_colors, 1))
    w = np.full(n_colors, 1.0 / n_colors)
    prev = -np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        var = tau2[None] + v[:, None, :]  # (L, K, C-1)
        logp = (-0.5 * np.sum((f[:, None, :] - mu[None]) ** 2 / var + np.log(2 * np.pi * var), axis=2)
                + np.log(w)[None])
        m = logp.max(axis=1, keepdims=True)
        ll = float(np.sum(m[:, 0] + np.log(np.exp(logp - m).sum(axis=1))))
        resp = np.exp(logp - m)
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0) + 1e-12
        w = nk / nk.sum()
        prec = resp[:, :, None] / var  # (L, K, C-1)
        mu = np.einsum("lkc,lc->kc", prec, f) / prec.sum(axis=0)
        # intrinsic variance: fixed point of the likelihood equation, sum r (d^2 - tau^2 - v) / var^2 = 0
        p2 = prec / var
        d2 = (f[:, None, :] - mu[None]) ** 2
        tau2 = np.maximum(np.sum(p2 * (d2 - v[:, None, :]), axis=0) / p2.sum(axis=0), 1e-10)
        if abs(ll - prev) <= tol * max(abs(ll), 1.0):
            converged = True
            break
        prev = ll
    spreads = np.sqrt(tau2 + (resp.T @ v) / nk[:, None])
    return mu, w, spreads, np.sqrt(tau2), it, converged, ll


def ratio_figure(fit: RatioFit | None, path, *, ratios=None, bins: int = 100, fractions=None) -> None:
    """Histogram of the fraction of photons in channel 0 with the mixture and the ``r_k`` marked (PNG).

    ``fit`` ``None``: the ``fractions`` (:func:`photon_fractions`) with the given ``ratios`` alone, for a table
    with too few rows to fit the mixture (``plexloc color --ratios ... --figure`` failed on it, writing nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plexloc.io._atomic import atomic_path

    if fit is None and (fractions is None or ratios is None):
        raise ValueError("ratio_figure needs a fit, or the fractions and the given ratios")
    f0 = np.asarray(fit.fractions if fit is not None else fractions, dtype=float)
    f0 = f0[:, 0] if f0.ndim == 2 else f0.ravel()
    n_colors = len(fit.ratios) if fit is not None else len(ratios)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.set_title(f"photon fraction in channel 0 of {len(f0)} localizations, {n_colors} colours", fontsize=10)
    ax.set_xlabel("fraction of photons in channel 0")
    ax.set_ylabel("density (per unit fraction)")
    if not len(f0):  # (a histogram of nothing, density=True: a division by zero and blank axes)
        ax.text(0.5, 0.5, "no localizations with photons to show", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
        return
    # density over all the fractions (the fit's own normalisation), so that bars and curve share a scale; fractions
    # outside [0, 1] (a negative count in one channel) are counted in a note instead of left out without a word
    inside = (f0 >= 0.0) & (f0 <= 1.0)
    heights, edges = np.histogram(f0[inside], bins=bins, range=(0, 1))
    ax.bar(edges[:-1], heights / (len(f0) * np.diff(edges)), width=np.diff(edges), align="edge", color="0.7",
           label=f"{len(f0)} localizations")
    beyond = int(np.count_nonzero(~inside))
    notes = []  # a second line of the title: clear of the bars and the legend
    if fit is not None:
        x = np.linspace(0, 1, 500)
        ax.plot(x, fit.density(x), "k-", lw=1, label="mixture fit")
    else:
        notes.append(f"too few localizations to fit the {n_colors} colours' mixture")
    if beyond:
        notes.append(f"{beyond} of {len(f0)} fractions beyond the axes (below 0 or above 1)")
    if notes:
        ax.set_title(ax.get_title() + "\n" + "; ".join(notes), fontsize=9)
    for k, r in enumerate(fit.ratios if fit is not None else []):
        ax.axvline(r[0], color=f"C{k}", ls="--", label=f"r_{k} = {r[0]:.3f} (fitted)")
    if ratios is not None:
        for k, r in enumerate(np.asarray(ratios, float)):
            ax.axvline(r[0] / r.sum(), color=f"C{k}", ls=":", label=f"r_{k} = {r[0] / r.sum():.3f} (given)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
