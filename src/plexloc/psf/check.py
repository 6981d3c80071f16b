"""Does the movie's PSF match the model's? A spot-shape check that needs no model on the movie's side.

A network (or an MLE fit) answers for any input: a 3D astigmatic movie fitted with a 2D model, a movie taken
at another magnification (pixel size) or with another objective's PSF calibration all give a table without a
word. :func:`check_psf_shape` measures the spots' shape and compares it with the model's own PSF:

1. **movie**: on the first frames (in photons), bright isolated spots are found with the project's detection
   (:func:`plexloc.mle.detection.dog_filter`, :func:`~plexloc.mle.detection.local_maxima`): peaks of the
   difference-of-Gaussians image above ``bright_snr`` times its robust noise, with no other peak above
   ``isolation_snr`` within ``isolation_px`` and at least ``isolation_px`` from the frame's edge (a neighbour
   outside the frame is not seen). Each spot's ``R x R`` window is fitted with an axis-aligned
   elliptical Gaussian (pixel-integrated) plus a constant background by Poisson maximum likelihood
   (:func:`fit_elliptical_gaussian`): widths ``sigma_x, sigma_y``, photons, background and the widths' Cramér-Rao
   bounds.
2. **model**: the same estimator on the same window size and pixel grid, on the model's own PSF rendered over its
   z range (the emitters' ``z_range_nm`` less the channel's ``z_offset_nm``): noiseless renders give the
   estimator's curve ``(sigma_x(z), sigma_y(z))`` (pixel integration, window truncation and a non-Gaussian
   spline's shape are on both sides), and noisy ones, at the photons and background of the movie's spots and
   through the channel's camera, measure the estimator's scatter around it (``alpha``: its spread in units of
   the Poisson Cramér-Rao bound, about 1.4 for an EMCCD's excess noise).
3. **distance**: each movie spot's distance to the nearest point of the curve, per axis in units of
   ``sqrt((alpha * crlb)^2 + (floor * sigma)^2)`` (``floor``: a relative tolerance, so that very bright spots are
   not held to a precision no real calibration has). A spot further than ``far_distance`` is *far*. The share of
   far spots among the model's own simulated spots is the false-alarm baseline (about 1 %).

More than ``max_far_fraction`` of the spots far, and at least ``min_excess`` more than among the model's own spots
in frames as crowded as the movie's, is a :class:`PSFShapeWarning` that says what was measured and the likely cause: elongated spots against a round (2D) model (a 3D astigmatic movie?), spots uniformly wider or
narrower than the model (its best width scale: a wrong ``px_size_nm`` or PSF), else the widths against the model's
range. A float or 8-bit movie (``movie_dtype``) fitted through a camera that converts counts is named first as frames
that are not the camera's raw counts (already photons or background-subtracted, rescaled or clipped to 8 bits): the
camera conversion applied to them cuts the spots' tails (or flattens their peaks), which reads as another width, and
the pixel size comes second (:func:`not_raw_counts`). With fewer than ``min_spots`` spots nothing is warned about
(the report says so). A 3D model whose movie spots all sit at one z (a 2D movie, or a thin sample) is a legitimate case: the report notes it, without a warning.

Widths are reported in nm at the model's pixel size (what the model believes a pixel is).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from plexloc.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from plexloc.camera.models import Camera
    from plexloc.psf.base import PSF

__all__ = [
    "EllipticalFit",
    "PSFShapeReport",
    "PSFShapeWarning",
    "baseline_above_offset",
    "baseline_excess",
    "baseline_field",
    "check_psf_shape",
    "check_movie_psf_shapes",
    "check_psf_shapes",
    "fit_elliptical_gaussian",
    "frame_peaks",
    "moment_widths",
    "not_raw_counts",
    "spot_tilt",
]

#: frames of the movie the check looks at, at most (it stops earlier once it has ``MAX_SPOTS`` spots)
MAX_FRAMES = 200
#: frames a fitter reads for the check (:func:`check_movie_psf_shapes`): 50 sufficed at 0.1 emitters/um^2
MOVIE_FRAMES = 100
#: side of the central window of a large frame that :func:`check_movie_psf_shapes` looks at (memory, run time)
MOVIE_WINDOW_PX = 512
#: whole-frame pixels :func:`check_movie_psf_shapes` reads at once, per channel (2048 x 2048 frames: 4 at a time)
CHUNK_PIXELS = 2**24
#: spots measured on the movie, at most (run time)
MAX_SPOTS = 300
#: below this many measured spots the check reports and never warns
MIN_SPOTS = 30
#: a spot is far from the model's curve beyond this normalised distance (2 axes)
FAR_DISTANCE = 3.0
#: relative width tolerance added to the measurement scatter
WIDTH_FLOOR = 0.08
#: warn where more than this share of the spots is far (correct models reached 0.44-0.52 at 2 emitters/um^2, where
#: most isolated-looking spots are two emitters; bench/psf_shape_check.py) ...
MAX_FAR_FRACTION = 0.6
#: ... and this share more than among the model's own spots (in frames as crowded as the movie's). Correct models
#: exceeded their crowded baseline by at most 0.43 (2 emitters/um^2, where the simulated crowding falls short of the
#: movie's); the least of the wrong cases (a 2D model on an astigmatic movie at 0.1/um^2) by 0.60
MIN_EXCESS = 0.5
#: peaks expected within the isolation radius of a spot above which the crowded model baseline is simulated
CROWDING_MIN = 0.05

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class PSFShapeWarning(UserWarning):
    """The movie's spots do not have the shape of the model's PSF (another PSF, z model or pixel size)."""


# --------------------------------------------------------------------------------------------------------------
# the estimator: an elliptical Gaussian plus constant background, Poisson maximum likelihood, batched
# --------------------------------------------------------------------------------------------------------------
@dataclass
class EllipticalFit:
    """Fitted parameters of N windows (all ``(N,)`` numpy arrays, pixels of the window; centre of window pixel
    ``(i, j)`` at ``(j + 0.5, i + 0.5)``); ``crlb_sx, crlb_sy``: the widths' Poisson Cramér-Rao bounds (px);
    ``ok``: finite, converged, widths inside their bounds."""

    x: np.ndarray
    y: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    photons: np.ndarray
    bg: np.ndarray
    crlb_sx: np.ndarray
    crlb_sy: np.ndarray
    ok: np.ndarray

    def select(self, keep: np.ndarray) -> EllipticalFit:
        return EllipticalFit(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def _axis(pos: Tensor, sigma: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Integrated 1D Gaussian over ``n`` pixels ``(N, n)`` and its derivatives by position and width."""
    t = torch.arange(n + 1, device=pos.device, dtype=pos.dtype)[None, :] - pos[:, None]  # pixel edges - position
    s = sigma[:, None]
    e = 0.5 * torch.diff(torch.erf(t / (_SQRT2 * s)), dim=1)
    g = torch.exp(-0.5 * (t / s) ** 2) * (_INV_SQRT_2PI / s)
    de_du = g[:, :-1] - g[:, 1:]
    tg = t * g
    de_ds = -(tg[:, 1:] - tg[:, :-1]) / s
    return e, de_du, de_ds


def _model(theta: Tensor, R: int, jacobian: bool) -> tuple[Tensor, Tensor | None]:
    """Expected photons ``(N, R*R)`` of parameters ``(x, y, sx, sy, photons, bg)`` and the Jacobian ``(N, R*R, 6)``."""
    x, y, sx, sy, n, b = theta.unbind(1)
    ex, dex, dsx = _axis(x, sx, R)
    ey, dey, dsy = _axis(y, sy, R)
    unit = ey[:, :, None] * ex[:, None, :]
    mu = (n[:, None, None] * unit + b[:, None, None]).reshape(-1, R * R)
    if not jacobian:
        return mu, None
    nn_ = n[:, None, None]
    J = torch.stack(
        [
            nn_ * ey[:, :, None] * dex[:, None, :],
            nn_ * dey[:, :, None] * ex[:, None, :],
            nn_ * ey[:, :, None] * dsx[:, None, :],
            nn_ * dsy[:, :, None] * ex[:, None, :],
            unit,
            torch.ones_like(unit),
        ],
        dim=-1,
    ).reshape(-1, R * R, 6)
    return mu, J


def fit_elliptical_gaussian(
    windows: Tensor | np.ndarray, *, sigma0_px: float = 1.3, iterations: int = 40, min_sigma_px: float = 0.35
) -> EllipticalFit:
    """Fit ``(N, R, R)`` windows (photons) with an axis-aligned, pixel-integrated elliptical Gaussian plus a
    constant background, by Poisson maximum likelihood (batched Levenberg-Marquardt in float64).

    Starts: the window's centre pixel, widths ``sigma0_px``, background the median of the window's border pixels.
    Bounds: the position within 1 px of the window's edge, widths in ``[min_sigma_px, R / 2]``, photons >= 1,
    background >= 0. Negative pixels (read noise) count as 0 in the likelihood."""
    d = torch.as_tensor(np.asarray(windows) if not isinstance(windows, Tensor) else windows).to("cpu", torch.float64)
    if d.ndim != 3 or d.shape[1] != d.shape[2]:
        raise InputError(f"windows must be (N, R, R), got {tuple(d.shape)}")
    N, R = d.shape[0], d.shape[1]
    if N == 0:
        z = np.zeros(0)
        return EllipticalFit(z, z, z, z, z, z, z, z, np.zeros(0, bool))
    data = d.reshape(N, R * R).clamp_min(0.0)
    border = torch.cat([d[:, 0], d[:, -1], d[:, 1:-1, 0], d[:, 1:-1, -1]], dim=1)
    b0 = border.median(dim=1).values.clamp_min(0.1)
    n0 = (data.sum(1) - b0 * R * R).clamp_min(10.0)
    c = torch.full((N,), R // 2 + 0.5, dtype=torch.float64)
    s0 = torch.full((N,), float(sigma0_px), dtype=torch.float64).clamp(min_sigma_px, R / 2)
    theta = torch.stack([c, c, s0, s0, n0, b0], dim=1)
    lo = torch.tensor([1.0, 1.0, min_sigma_px, min_sigma_px, 1.0, 0.0], dtype=torch.float64)
    hi = torch.tensor([R - 1.0, R - 1.0, R / 2, R / 2, float("inf"), float("inf")], dtype=torch.float64)
    lam = torch.full((N,), 1e-3, dtype=torch.float64)
    eye = torch.eye(6, dtype=torch.float64)

    def loglik(mu: Tensor) -> Tensor:
        mu = mu.clamp_min(1e-6)
        return (data * torch.log(mu) - mu).sum(1)

    def fisher(J: Tensor, w: Tensor) -> Tensor:
        return torch.bmm((J * w[:, :, None]).transpose(1, 2), J)

    active = torch.arange(N)  # spots still moving
    mu, J = _model(theta, R, True)
    ll = loglik(mu)
    step = torch.full((N,), float("inf"), dtype=torch.float64)
    for _ in range(iterations):
        if not len(active):
            break
        th, m_, J_, d_ = theta[active], mu[active], J[active], data[active]
        w = 1.0 / m_.clamp_min(1e-6)
        grad = torch.bmm(J_.transpose(1, 2), (d_ * w - 1.0)[:, :, None])[..., 0]
        H = fisher(J_, w)
        diag = torch.diagonal(H, dim1=1, dim2=2).clamp_min(1e-12)
        A = H + (lam[active][:, None] * diag)[:, :, None] * eye
        delta = torch.linalg.solve(A, grad[:, :, None])[..., 0]
        delta = torch.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
        trial = torch.maximum(torch.minimum(th + delta, hi), lo)
        mu_t, J_t = _model(trial, R, True)
        ll_t = (d_ * torch.log(mu_t.clamp_min(1e-6)) - mu_t.clamp_min(1e-6)).sum(1)
        better = ll_t >= ll[active]
        moved = (trial - th).abs()[:, :4].amax(1)
        step[active] = torch.where(better, moved, step[active])
        b = active[better]
        theta[b], mu[b], J[b], ll[b] = trial[better], mu_t[better], J_t[better], ll_t[better]
        lam[active] = torch.where(better, lam[active] / 3.0, lam[active] * 4.0).clamp(1e-7, 1e7)
        # done: a small accepted step, or a damping so large that nothing moves any more
        done = (better & (moved < 1e-5)) | (lam[active] >= 1e7)
        active = active[~done]
    w = 1.0 / mu.clamp_min(1e-6)
    H = fisher(J, w)
    cov = torch.linalg.pinv(H)
    crlb = torch.sqrt(torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0.0))
    t = theta.numpy()
    cr = crlb.numpy()
    finite = np.isfinite(t).all(1) & np.isfinite(cr[:, 2:4]).all(1)
    inside = (t[:, 2] > min_sigma_px * 1.01) & (t[:, 3] > min_sigma_px * 1.01) & (t[:, 2] < R / 2 * 0.99) & (t[:, 3] < R / 2 * 0.99)
    ok = finite & inside & (step.numpy() < 1e-2)  # inf: never took a step
    return EllipticalFit(t[:, 0], t[:, 1], t[:, 2], t[:, 3], t[:, 4], t[:, 5], cr[:, 2], cr[:, 3], ok)


def spot_tilt(windows: Tensor | np.ndarray, fit: EllipticalFit) -> tuple[np.ndarray, np.ndarray]:
    """How much each fitted spot's light is tilted against the pixel axes: the correlation ``rho`` of an elliptical
    Gaussian with covariance ``[[sx^2, rho sx sy], [rho sx sy, sy^2]]``, estimated by one Newton step of the Poisson
    likelihood from :func:`fit_elliptical_gaussian`'s axis-aligned fit ``fit`` of the same ``(N, R, R)`` windows
    (``rho = 0`` there), and its Cramér-Rao bound. At ``rho = 0`` the pixel-integrated derivative by ``rho`` separates
    into the two axes' integrals of ``t phi(t)``, so it needs no new model. An astigmatic PSF's spot is ellipse-shaped
    along the pixel axes at every z; two emitters 2-3 px apart that read as one spot are tilted along the line
    between them (at 45 degrees, rho about 0.3 for two in-focus spots 2.5 px apart). Returns ``(rho, crlb_rho)``,
    NaN where the fit is not finite."""
    d = torch.as_tensor(np.asarray(windows) if not isinstance(windows, Tensor) else windows).to("cpu", torch.float64)
    n = len(fit.sx)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    R = d.shape[-1]
    data = d.reshape(n, R * R).clamp_min(0.0)
    theta = torch.as_tensor(np.stack([fit.x, fit.y, fit.sx, fit.sy, fit.photons, fit.bg], axis=1), dtype=torch.float64)
    theta = torch.nan_to_num(theta, nan=1.0)
    mu, J = _model(theta, R, True)
    x, y, sx, sy, ph, _ = theta.unbind(1)
    _, dex, _ = _axis(x, sx, R)
    _, dey, _ = _axis(y, sy, R)
    d_rho = (ph[:, None, None] * (sy[:, None] * dey)[:, :, None] * (sx[:, None] * dex)[:, None, :]).reshape(n, R * R)
    J7 = torch.cat([J, d_rho[:, :, None]], dim=2)
    w = 1.0 / mu.clamp_min(1e-6)
    info = torch.bmm((J7 * w[:, :, None]).transpose(1, 2), J7)
    score = torch.bmm(J7.transpose(1, 2), (data * w - 1.0)[:, :, None])[..., 0]
    cov = torch.linalg.pinv(info)
    step = torch.bmm(cov, score[:, :, None])[..., 0]
    rho = step[:, 6].numpy()
    crlb = torch.sqrt(cov[:, 6, 6].clamp_min(0.0)).numpy()
    bad = ~(np.isfinite(rho) & np.isfinite(crlb)) | ~np.isfinite(np.asarray(fit.sx))
    return np.where(bad, np.nan, rho), np.where(bad, np.nan, crlb)


# --------------------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PSFShapeReport:
    """What :func:`check_psf_shape` measured on one channel.

    Widths are in nm at the model's pixel size (``px_size_nm``). Movie-side arrays have one entry per measured
    spot; model-side ones one per point of the model's curve (``model_z_nm``)."""

    channel: int | None
    px_size_nm: tuple[float, float]
    psf_kind: str
    frames: int  # frames looked at
    window_px: int
    candidates: int  # peaks above the bright threshold (before isolation and the fit)
    n_spots: int  # spots measured (isolated, fitted)
    spot_pixel: np.ndarray = field(repr=False)  # (n_spots, 3) frame, row, column of each spot's centre pixel
    sigma_x_nm: np.ndarray = field(repr=False)
    sigma_y_nm: np.ndarray = field(repr=False)
    photons: np.ndarray = field(repr=False)
    bg: np.ndarray = field(repr=False)
    distance: np.ndarray = field(repr=False)  # normalised distance to the model's curve
    z_nm: np.ndarray = field(repr=False)  # the z of the curve's nearest point (the channel's PSF z)
    model_z_nm: np.ndarray = field(repr=False)
    model_sigma_x_nm: np.ndarray = field(repr=False)
    model_sigma_y_nm: np.ndarray = field(repr=False)
    alpha: tuple[float, float] = (1.0, 1.0)  # the estimator's scatter over its Poisson CRLB, per axis
    #: the PSF's own tilt (:func:`spot_tilt`'s rho) along the curve (one per ``model_z_nm``; empty: not measured, 0)
    model_tilt: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    alpha_tilt: float = 1.0  # the tilt estimate's scatter over its Cramer-Rao bound (model's own noisy spots)
    model_far_fraction: float = math.nan  # the model's own isolated noisy spots far from its curve
    crowded_far_fraction: float = math.nan  # ... its spots in frames as crowded as the movie's (the baseline)
    peak_density_per_um2: float = math.nan  # detected peaks per um^2 per frame of the movie (model's pixel size)
    crowded_density_per_um2: float = 0.0  # emitter density of the model's crowded frames (0: not simulated)
    far_fraction: float = math.nan
    width_scale: float = math.nan  # movie widths / model widths that makes the most spots fit
    width_scale_far_fraction: float = math.nan
    #: the estimator's photons over the true photons on the model's own noiseless spots (window truncation, a
    #: non-Gaussian PSF's tails), median over the model's z range
    photon_scale: float = 1.0
    #: each spot's photons divided by that ratio at its z (the curve's nearest point): the emitter's photons
    photons_corrected: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    #: the frame pixel (row, column) of the checked window's corner: ``spot_pixel`` rows and columns are relative to it
    #: (:func:`check_movie_psf_shapes` looks at a central window of a large frame)
    origin_px: tuple[int, int] = (0, 0)
    warning: str | None = None
    note: str | None = None

    @property
    def enough(self) -> bool:
        """Whether enough spots were measured to judge (else the report says so and nothing is warned about)."""
        return self.note is None or "too few spots" not in self.note

    @property
    def baseline_far_fraction(self) -> float:
        """The far share the model's own spots show: in frames as crowded as the movie's where simulated."""
        v = self.crowded_far_fraction
        return v if np.isfinite(v) else (self.model_far_fraction if np.isfinite(self.model_far_fraction) else 0.0)

    @property
    def median_sigma_nm(self) -> tuple[float, float]:
        if not self.n_spots:
            return (math.nan, math.nan)
        return float(np.median(self.sigma_x_nm)), float(np.median(self.sigma_y_nm))

    @property
    def ellipticity_range(self) -> tuple[float, float]:
        """5th and 95th percentiles of the movie spots' ``sigma_x / sigma_y``."""
        if not self.n_spots:
            return (math.nan, math.nan)
        q = np.quantile(self.sigma_x_nm / self.sigma_y_nm, [0.05, 0.95])
        return float(q[0]), float(q[1])

    @property
    def model_ellipticity_range(self) -> tuple[float, float]:
        e = self.model_sigma_x_nm / self.model_sigma_y_nm
        return float(e.min()), float(e.max())

    @property
    def model_sigma_range_nm(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((min, max) of sigma_x, (min, max) of sigma_y) along the model's curve."""
        return ((float(self.model_sigma_x_nm.min()), float(self.model_sigma_x_nm.max())),
                (float(self.model_sigma_y_nm.min()), float(self.model_sigma_y_nm.max())))

    def as_dict(self) -> dict:
        """Scalars of the report (for JSON)."""
        mx, my = self.median_sigma_nm
        e = self.ellipticity_range
        (xl, xh), (yl, yh) = self.model_sigma_range_nm
        return {
            "channel": self.channel, "psf": self.psf_kind, "px_size_nm": list(self.px_size_nm), "frames": self.frames,
            "window_px": self.window_px, "candidates": self.candidates, "spots": self.n_spots,
            "median_sigma_x_nm": mx, "median_sigma_y_nm": my, "ellipticity_q05": e[0], "ellipticity_q95": e[1],
            "model_sigma_x_nm": [xl, xh], "model_sigma_y_nm": [yl, yh],
            "model_ellipticity": list(self.model_ellipticity_range), "alpha": list(self.alpha),
            "model_far_fraction": self.model_far_fraction, "crowded_far_fraction": self.crowded_far_fraction,
            "peak_density_per_um2": self.peak_density_per_um2, "crowded_density_per_um2": self.crowded_density_per_um2,
            "far_fraction": self.far_fraction,
            "width_scale": self.width_scale, "width_scale_far_fraction": self.width_scale_far_fraction,
            "z_iqr_nm": self.z_iqr_nm, "warning": self.warning, "note": self.note,
        }

    @property
    def z_iqr_nm(self) -> float:
        """Interquartile range of the spots' nearest-curve z (0 for a 2D model)."""
        if not self.n_spots:
            return math.nan
        q = np.quantile(self.z_nm, [0.25, 0.75])
        return float(q[1] - q[0])

    def format_table(self) -> str:
        """A few lines for a log: the movie's spots against the model's PSF."""
        mx, my = self.median_sigma_nm
        e = self.ellipticity_range
        (xl, xh), (yl, yh) = self.model_sigma_range_nm
        el, eh = self.model_ellipticity_range
        chan = f"channel {self.channel}: " if self.channel is not None else ""
        verdict = "MISMATCH" if self.warning else ("too few spots" if not self.enough else "ok")
        return (
            f"PSF shape: {chan}{self.n_spots} spots of {self.frames} frames | median sigma_x {mx:.0f} nm, sigma_y "
            f"{my:.0f} nm, sigma_x/sigma_y {e[0]:.2f}-{e[1]:.2f} | model ({self.psf_kind}) sigma_x {xl:.0f}-{xh:.0f}, "
            f"sigma_y {yl:.0f}-{yh:.0f} nm, sigma_x/sigma_y {el:.2f}-{eh:.2f} | far {100 * self.far_fraction:.0f} % "
            f"(model's own {100 * self.baseline_far_fraction:.0f} %) | {verdict}"
        )


# --------------------------------------------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------------------------------------------
def _model_z_grid(psf, z_range_nm: tuple[float, float], z_offset_nm: float, n: int) -> np.ndarray:
    """The z values (the channel's PSF z) the model's curve is sampled at: one for a 2D PSF."""
    if not getattr(psf, "is_3d", True):
        return np.zeros(1)
    lo, hi = float(z_range_nm[0]) - z_offset_nm, float(z_range_nm[1]) - z_offset_nm
    plo, phi = psf.z_range_nm
    lo, hi = max(lo, plo), min(hi, phi)
    if hi < lo:
        raise InputError(f"z_range_nm {list(z_range_nm)} (z offset {z_offset_nm:g} nm) lies outside the PSF's z range "
                         f"[{plo:.0f}, {phi:.0f}] nm")
    if hi - lo < 1e-6:
        return np.array([lo])
    return np.linspace(lo, hi, n)


def _render_windows(psf, z_nm: np.ndarray, fx: np.ndarray, fy: np.ndarray, R: int, photons: np.ndarray,
                    bg: np.ndarray) -> Tensor:
    """Expected photons ``(N, R, R)``: each emitter ``(R // 2 + fx, R // 2 + fy)`` px from its window's corner."""
    px, py = psf.px_size_nm
    dev = next(iter(psf.buffers()), torch.empty(0)).device
    n = len(z_nm)
    t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float32), device=dev)  # noqa: E731
    with torch.no_grad():
        img = psf.render(t((R // 2 + fx) * px), t((R // 2 + fy) * py), t(z_nm), t(photons),
                         torch.arange(n, device=dev), n_frames=n, frame_shape=(R, R))
    return img.detach().cpu().to(torch.float64) + torch.as_tensor(bg, dtype=torch.float64)[:, None, None]


def _noisy(expected: Tensor, camera, generator: torch.Generator) -> Tensor:
    """``expected`` photons through the camera and back to photons (Poisson without a camera, or for a camera with
    per-pixel maps, which windows cannot take)."""
    x = expected.to(torch.float32)
    if camera is None or getattr(camera, "map_shape", None) is not None:
        return torch.poisson(x, generator=generator).to(torch.float64)
    cam = camera
    if any(b.device.type != "cpu" for b in getattr(cam, "buffers", lambda: [])()):
        import copy

        cam = copy.deepcopy(cam).cpu()
    with torch.no_grad():
        return cam.to_photons(cam(x, generator=generator)).to(torch.float64)


def _distances(sx: np.ndarray, sy: np.ndarray, cx: np.ndarray, cy: np.ndarray, curve_x: np.ndarray,
               curve_y: np.ndarray, alpha: tuple[float, float], floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Each spot's normalised distance to the nearest curve point and that point's index."""
    if len(sx) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    vx = (alpha[0] * cx[:, None]) ** 2 + (floor * curve_x[None, :]) ** 2
    vy = (alpha[1] * cy[:, None]) ** 2 + (floor * curve_y[None, :]) ** 2
    d2 = (sx[:, None] - curve_x[None, :]) ** 2 / vx + (sy[:, None] - curve_y[None, :]) ** 2 / vy
    k = np.argmin(d2, axis=1)
    return np.sqrt(d2[np.arange(len(sx)), k]), k


def frame_peaks(frames: Tensor, *, sigma_det_px: float, snr: float):
    """The peaks of ``(T, H, W)`` photon frames (any device) as the check's detection finds them: local maxima (2 px
    apart at least) of the difference-of-Gaussians image (:func:`plexloc.mle.detection.dog_filter`, ``sigma_det_px``)
    above ``snr`` times each frame's robust noise of that image (1.4826 median absolute deviation). Returns the
    :class:`~plexloc.mle.detection.Candidates` (numpy frame, row, column, height) and the ``(T,)`` noise (a CPU
    tensor)."""
    from plexloc.mle.detection import dog_filter, local_maxima

    dog = dog_filter(frames.to(torch.float32), sigma_px=sigma_det_px)
    flat = dog.reshape(dog.shape[0], -1)
    med = flat.median(dim=1).values
    noise = 1.4826 * (flat - med[:, None]).abs().median(dim=1).values.clamp_min(1e-6)
    return local_maxima(dog, snr * noise, min_distance_px=2), noise.cpu()


def _find_spots(frames: Tensor, *, R: int, sigma_det_px: float, bright_snr: float, isolation_snr: float,
                isolation_px: float, max_spots: int, chunk: int = 25) -> _Spots:
    """Bright isolated spots of ``(T, H, W)`` photon frames (:class:`_Spots`), frame chunk by chunk until
    ``max_spots`` are found."""
    from scipy.spatial import cKDTree

    T, H, W = frames.shape
    h = R // 2
    out: list[np.ndarray] = []
    where: list[np.ndarray] = []
    heights: list[np.ndarray] = []
    spot_heights: list[np.ndarray] = []
    n_bright, n_peaks, n_found, used = 0, 0, 0, 0
    for a in range(0, T, chunk):
        x = frames[a:a + chunk].to(torch.float32)
        used = a + x.shape[0]
        cand, noise = frame_peaks(x, sigma_det_px=sigma_det_px, snr=isolation_snr)
        n_peaks += len(cand)
        if len(cand) == 0:
            continue
        heights.append(cand.height)
        bright = cand.height > bright_snr * noise.numpy()[cand.frame]
        # the whole window in the frame, and as far from the edge as a neighbour must be: a neighbour just outside
        # the frame is no peak here, and an edge spot with one would pass for isolated
        e = max(h, math.ceil(isolation_px))
        inside = (cand.row >= e) & (cand.row < H - e) & (cand.col >= e) & (cand.col < W - e)
        n_bright += int(bright.sum())
        # nearest other peak of the same frame (frames kept apart by a large offset)
        pts = np.stack([cand.frame * 10.0 * (H + W), cand.row, cand.col], axis=1).astype(np.float64)
        dist, _ = cKDTree(pts).query(pts, k=2)
        isolated = dist[:, 1] > isolation_px
        sel = np.nonzero(bright & inside & isolated)[0]
        if not len(sel):
            continue
        sel = sel[: max_spots - n_found]
        off = np.arange(-h, h + 1)
        xn = x.numpy()
        win = xn[cand.frame[sel][:, None, None], cand.row[sel][:, None, None] + off[None, :, None],
                 cand.col[sel][:, None, None] + off[None, None, :]]
        out.append(win)
        where.append(np.stack([cand.frame[sel] + a, cand.row[sel], cand.col[sel]], axis=1))
        spot_heights.append(cand.height[sel])
        n_found += len(sel)
        if n_found >= max_spots:
            break
    win = np.concatenate(out) if out else np.zeros((0, R, R), np.float32)
    pos = np.concatenate(where) if where else np.zeros((0, 3), np.int64)
    cat = lambda v: np.concatenate(v) if v else np.zeros(0)  # noqa: E731
    return _Spots(win, pos, n_bright, n_peaks, used, used * H * W, cat(heights), cat(spot_heights))


@dataclass
class _Spots:
    """Windows ``(n, R, R)`` of bright isolated spots, their ``(n, 3)`` (frame, row, column) centre pixels; the bright
    peaks, all peaks (above the isolation threshold), frames and pixels looked at."""

    windows: np.ndarray
    pixel: np.ndarray
    n_bright: int
    n_peaks: int
    frames: int
    pixels: int
    heights: np.ndarray  # every peak's height in the filtered image
    spot_heights: np.ndarray  # the spots'


def check_psf_shape(
    frames_photons: Tensor | np.ndarray,
    psf: PSF,
    *,
    z_range_nm: Sequence[float] = (0.0, 0.0),
    z_offset_nm: float = 0.0,
    camera: Camera | None = None,
    channel: int | None = None,
    source: str = "",
    movie_px_size_nm: Sequence[float] | None = None,
    movie_dtype: np.dtype | str | None = None,
    max_frames: int = MAX_FRAMES,
    max_spots: int = MAX_SPOTS,
    min_spots: int = MIN_SPOTS,
    far_distance: float = FAR_DISTANCE,
    width_floor: float = WIDTH_FLOOR,
    max_far_fraction: float = MAX_FAR_FRACTION,
    min_excess: float = MIN_EXCESS,
    crowding_min: float = CROWDING_MIN,
    bright_snr: float = 8.0,
    isolation_snr: float = 4.0,
    n_model_z: int = 41,
    n_model_noisy: int = 400,
    seed: int = 0,
    warn: bool = True,
    baseline_alone: bool = True,
) -> PSFShapeReport:
    """Compare the spot shape of one channel's first frames with the model's PSF (see the module docstring).

    Args:
        frames_photons: ``(T, H, W)`` frames of one channel in photons (the camera's ``to_photons``); the first
            ``max_frames`` are looked at, fewer once ``max_spots`` spots are found.
        psf: the channel's :class:`~plexloc.psf.PSF` (its ``px_size_nm`` is the model's pixel size).
        z_range_nm: the emitters' z range of the model's configuration (``emitters.z_range_nm``).
        z_offset_nm: the channel's focal offset (``channels[c].z_offset_nm``): its PSF sees ``z - z_offset_nm``.
        camera: the channel's camera (:class:`~plexloc.camera.Camera`): the model's noisy spots go through it, so
            that their scatter is the movie's (an EMCCD doubles the variance); ``None``: Poisson noise.
        channel, source: named in the messages.
        movie_px_size_nm: the pixel size the movie's metadata record (x, y), named in a width message.
        movie_dtype: the movie file's pixel type: a float or 8-bit movie is named, in a width message, as frames
            that are not the camera's raw counts before the pixel size is (:func:`not_raw_counts`).
        max_spots, min_spots: spots measured at most; below ``min_spots`` nothing is warned about.
        far_distance, width_floor, max_far_fraction: a spot is far beyond ``far_distance`` (the width scatter plus
            ``width_floor`` times the width, per axis); warn above ``max_far_fraction`` far.
        bright_snr, isolation_snr: spots measured: peaks of the difference-of-Gaussians image above ``bright_snr``
            times its robust noise, with no other peak above ``isolation_snr`` times the noise nearby.
        n_model_z, n_model_noisy: z samples of the model's noiseless curve; noisy model spots for its scatter.
        seed: of the model's noisy spots.
        warn: issue the finding as a :class:`PSFShapeWarning`.
        baseline_alone: tell a camera baseline far above the movie's offset (:func:`baseline_excess`) where it is the
            only finding (the spots fit once lifted to the baseline that fits, or too few spots to judge); False where
            the caller's camera check tells it (a fit: :func:`check_movie_psf_shapes`), so that it is said once.

    Returns:
        The :class:`PSFShapeReport` (``warning``: the message, also issued where ``warn``; ``note``: too few spots,
        or spots that sit at one z of a 3D model).

    Runs on one torch thread (restored after): its tensors are small batches, and two threads on a busy 2-core machine
    made the check 20x slower (8 s against 0.4 s for 200 frames of 256 x 256).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _check_psf_shape(frames_photons, psf, **{k: v for k, v in locals().items()
                                                        if k not in ("frames_photons", "psf", "threads")})
    finally:
        torch.set_num_threads(threads)


def _check_psf_shape(frames_photons, psf, *, z_range_nm, z_offset_nm, camera, channel, source, movie_px_size_nm,
                     movie_dtype, max_frames, max_spots, min_spots, far_distance, width_floor, max_far_fraction,
                     min_excess, crowding_min, bright_snr, isolation_snr, n_model_z, n_model_noisy, seed, warn,
                     baseline_alone: bool = True, recheck_baseline: bool = True) -> PSFShapeReport:
    options = {k: v for k, v in locals().items() if k not in ("frames_photons", "psf")}  # for the re-check below
    x = torch.as_tensor(np.asarray(frames_photons) if not isinstance(frames_photons, Tensor) else frames_photons)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError(f"frames_photons must be (T, H, W) frames of one channel, got shape {tuple(x.shape)}")
    if len(z_range_nm) != 2 or z_range_nm[0] > z_range_nm[1]:
        raise InputError(f"z_range_nm must be [lo, hi] with lo <= hi, got {list(z_range_nm)}")
    x = x[:max_frames].detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):  # NaN / inf pixels (float movies): 0, neither spot nor background
        x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    px = tuple(float(p) for p in psf.px_size_nm)
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)

    # --- the model's noiseless curve: window size from its widest point ---
    zs = _model_z_grid(psf, (float(z_range_nm[0]), float(z_range_nm[1])), float(z_offset_nm), n_model_z)
    phases = np.array([0.0, 0.25, 0.5, 0.75])
    probe_R = 41
    zz = np.repeat(zs, len(phases))
    fx = np.tile(phases, len(zs)) + 0.125
    fy = np.tile(phases[::-1], len(zs)) + 0.125
    widths = _moment_widths(_render_windows(psf, zz, fx, fy, probe_R, np.ones(len(zz)), np.zeros(len(zz))))
    s_mid = float(np.nanmedian(widths))
    # a window of +-2.5 typical widths (the widest spots of a 3D model are cut, on both sides alike): small enough that
    # spots are isolated in dense movies
    R = int(min(max(2 * math.ceil(2.5 * s_mid) + 1, 7), 13))
    iso = R / 2 + 1.0
    det = dict(R=R, sigma_det_px=float(np.clip(s_mid, 0.8, 2.5)), bright_snr=bright_snr, isolation_snr=isolation_snr,
               isolation_px=iso)
    spots = _find_spots(x, max_spots=max_spots, **det)
    fit = fit_elliptical_gaussian(spots.windows, sigma0_px=s_mid)
    fit_ok = fit.ok
    pos = spots.pixel[fit_ok]
    fit = fit.select(fit_ok)
    n_spots = len(fit.sx)
    photons = fit.photons if n_spots else np.array([1000.0])
    bgs = fit.bg if n_spots else np.array([10.0])

    # the same estimator on the model's noiseless windows, at the movie spots' median photons and background
    med_n, med_b = float(np.median(photons)), float(np.median(bgs))
    clean_win = _render_windows(psf, zz, fx, fy, R, np.full(len(zz), med_n), np.full(len(zz), med_b))
    clean = fit_elliptical_gaussian(clean_win, sigma0_px=s_mid)
    # the estimator's photons over the true ones, per z (a defocused spot loses more light outside the window)
    ph_z = np.nanmedian(clean.photons.reshape(len(zs), len(phases)), axis=1) / med_n
    ph_z = np.where(np.isfinite(ph_z) & (ph_z > 0), ph_z, 1.0)
    photon_scale = float(np.median(ph_z))
    cx_z = np.nanmedian(clean.sx.reshape(len(zs), len(phases)), axis=1)
    cy_z = np.nanmedian(clean.sy.reshape(len(zs), len(phases)), axis=1)
    zf = np.linspace(zs[0], zs[-1], 201) if len(zs) > 1 else zs
    curve_x = np.interp(zf, zs, cx_z) if len(zs) > 1 else cx_z
    curve_y = np.interp(zf, zs, cy_z) if len(zs) > 1 else cy_z
    # the PSF's own tilt against the pixel axes (0 for an astigmatic Gaussian; a calibrated PSF may have some)
    tilt_z = np.nanmedian(spot_tilt(clean_win, clean)[0].reshape(len(zs), len(phases)), axis=1)
    tilt_z = np.where(np.isfinite(tilt_z), tilt_z, 0.0)
    curve_tilt = np.interp(zf, zs, tilt_z) if len(zs) > 1 else tilt_z

    # its scatter: isolated noisy model spots at the movie spots' photons and background, through the camera
    m = int(n_model_noisy)
    pick = rng.integers(0, len(photons), m)
    zn = rng.uniform(zs[0], zs[-1], m) if len(zs) > 1 else np.full(m, zs[0])
    expected = _render_windows(psf, zn, rng.uniform(0, 1, m), rng.uniform(0, 1, m), R, photons[pick], bgs[pick])
    noisy_win = _noisy(expected, camera, gen)
    noisy = fit_elliptical_gaussian(noisy_win, sigma0_px=s_mid)
    okn = noisy.ok
    tx = np.interp(zn, zs, cx_z) if len(zs) > 1 else np.full(m, cx_z[0])
    ty = np.interp(zn, zs, cy_z) if len(zs) > 1 else np.full(m, cy_z[0])
    alpha = tuple(
        max(1.0, _robust_sd((s[okn] - t[okn]) / c[okn])) if okn.sum() >= 10 else 1.0
        for s, t, c in ((noisy.sx, tx, noisy.crlb_sx), (noisy.sy, ty, noisy.crlb_sy))
    )

    # the tilt's scatter in units of its Cramer-Rao bound (an EMCCD's excess noise: about 1.4)
    rho_n, crlb_rho_n = spot_tilt(noisy_win[okn], noisy.select(okn))
    t_ref = np.interp(zn[okn], zs, tilt_z) if len(zs) > 1 else np.full(int(okn.sum()), tilt_z[0])
    alpha_tilt = max(1.0, _robust_sd((rho_n - t_ref) / crlb_rho_n)) if okn.sum() >= 10 else 1.0
    if not np.isfinite(alpha_tilt):
        alpha_tilt = 1.0

    def far_of(f: EllipticalFit, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        return _distances(f.sx / scale, f.sy / scale, f.crlb_sx / scale, f.crlb_sy / scale, curve_x, curve_y, alpha,
                          width_floor)

    dn, _ = far_of(noisy.select(okn))
    model_far = float(np.mean(dn > far_distance)) if len(dn) else math.nan

    # the movie's spots against the curve
    d, k = far_of(fit)
    far = float(np.mean(d > far_distance)) if n_spots else math.nan
    scale, scale_far = math.nan, math.nan
    if n_spots:
        best = None
        for sc in np.exp(np.linspace(math.log(0.4), math.log(2.5), 47)):
            f = float(np.mean(far_of(fit, float(sc))[0] > far_distance))
            key = (round(f, 6), abs(math.log(sc)))
            if best is None or key < best[0]:
                best = (key, float(sc), f)
        scale, scale_far = best[1], best[2]

    # crowding: isolated-looking spots of a dense movie are often two emitters, wider than one; the model's PSF in
    # frames with as many peaks per pixel, through the same detection, fit and distance, gives the far share that
    # crowding alone explains
    peak_density = spots.n_peaks / max(spots.pixels, 1)
    crowded_far, crowd_density = model_far, 0.0
    if n_spots >= min_spots and peak_density * math.pi * iso**2 > crowding_min:
        yield_px = n_spots / max(spots.pixels, 1)
        crowded, crowd_density = _crowded_model(
            psf, camera, zs=zs, photons=photons, movie=x[: spots.frames], bg=med_b, peak_density=peak_density,
            yield_px=yield_px, target_spots=min(n_spots, 200), det=det, gen=gen, rng=rng, sigma0_px=s_mid)
        crowded = crowded.select(crowded.ok)
        if len(crowded.sx) >= min_spots:
            crowded_far = float(np.mean(far_of(crowded)[0] > far_distance))
    report = PSFShapeReport(
        channel=channel, px_size_nm=px, psf_kind=str(getattr(psf, "kind", type(psf).__name__)), frames=spots.frames,
        window_px=R, candidates=spots.n_bright, n_spots=n_spots, spot_pixel=pos, sigma_x_nm=fit.sx * px[0],
        sigma_y_nm=fit.sy * px[1], photons=fit.photons, bg=fit.bg, distance=d, z_nm=zf[k] if n_spots else np.zeros(0),
        model_z_nm=zf, model_sigma_x_nm=curve_x * px[0], model_sigma_y_nm=curve_y * px[1],
        alpha=(float(alpha[0]), float(alpha[1])), model_tilt=curve_tilt, alpha_tilt=float(alpha_tilt),
        model_far_fraction=model_far, far_fraction=far,
        width_scale=scale, width_scale_far_fraction=scale_far, photon_scale=photon_scale,
        photons_corrected=(fit.photons / (np.interp(zf[k], zs, ph_z) if len(zs) > 1 else ph_z[0])) if n_spots
        else np.zeros(0), peak_density_per_um2=peak_density * 1e6 / (px[0] * px[1]),
        crowded_far_fraction=crowded_far, crowded_density_per_um2=crowd_density * 1e6 / (px[0] * px[1]),
    )
    used = spots.frames
    where = (f"{source}: " if source else "") + (f"channel {channel}: " if channel is not None else "")
    # a camera baseline far above the movie's offset (measured once: the cause's words and the re-check's lift)
    excess = baseline_excess(x, camera) if recheck_baseline else None
    raw_cause = not_raw_counts(movie_dtype, camera)
    baseline_cause = _baseline_words(excess, camera)
    if n_spots < min_spots:
        report.note = (f"too few spots to check the PSF's shape: {n_spots} bright isolated spots in {used} frames "
                       f"(at least {min_spots} needed)")
        if baseline_cause and not raw_cause and baseline_alone:  # a camera finding that needs no spots
            report.warning = f"{where}{_baseline_alone(baseline_cause)}"
    else:
        report.warning = _finding(report, where, max_far_fraction, min_excess, movie_px_size_nm, raw_cause,
                                  baseline_cause)
        if baseline_cause and not raw_cause:
            # is the baseline the only cause? The same check on the frames lifted to the baseline that fits (the dim
            # pixels' median at 0 in session 48, 3 noise sd above 0 since: :func:`_lift`): silent for the 6 warned
            # movies whose baseline alone was 600-2000 ADU too high, still
            # off for the 11 that had 70 nm pixels configured for 100 as well (the pixels then guessed 104-108 nm, not
            # 113-163) and the 1 with 140 nm (106 nm guessed; bench/bead_pairs48.py). Run wherever the baseline is off,
            # warned or not: a baseline alone 600-2000 ADU too high was silent in 6 of 12 movies, and 140 nm pixels
            # configured for 100 (spots 1.4x wider) with a baseline 600-1000 ADU too high (spots cut narrower) read
            # 0.82-1.17x the model's width and were silent in 8 of 8 (bench/beads49.py)
            lifted = _check_psf_shape(x + _lift(x, excess), psf, **{**options, "warn": False, "recheck_baseline": False})
            told = _with_baseline(report, lifted, where, max_far_fraction, min_excess, movie_px_size_nm, baseline_cause)
            if report.warning or lifted.warning or baseline_alone or _px_in_question(lifted):
                report.warning = told  # (the baseline alone, where the caller's camera check tells it: not twice)
        if report.warning is None and len(zs) > 1 and report.z_iqr_nm < 0.15 * (zs[-1] - zs[0]):
            zm = float(np.median(report.z_nm))
            report.note = (f"{where}the spots' widths place them all near z = {zm:.0f} nm (interquartile range "
                           f"{report.z_iqr_nm:.0f} nm of the model's {zs[0]:.0f} to {zs[-1]:.0f} nm): a thin sample, "
                           "or a 2D movie fitted with a 3D model?")
    if warn and report.warning:
        warnings.warn(report.warning, PSFShapeWarning, stacklevel=3)
    return report


def _lift(frames: Tensor, excess: tuple[float, float, str]) -> float:
    """Photons to add to ``frames`` read with a baseline far above the offset (:func:`baseline_excess`) for the re-check:
    the dim pixels' median (``excess[1]``, < 0) to 3 times the frames' noise above zero, so that the width fit, which
    takes no light below zero, cuts nothing (the background is a free constant of the fit). Lifted to 0 only, the
    spots still read 0.89-0.92x the model's width with the right pixel size (bench/beads49.py)."""
    head = frames[:NOISE_LIFT_FRAMES]
    noise = _robust_sd((head[1:] - head[:-1]).flatten().numpy().astype(np.float64)) / math.sqrt(2.0) if len(head) > 1 else 0.0
    return float(-excess[1] + 3.0 * (noise if np.isfinite(noise) else 0.0))


#: frames whose differences measure the noise of :func:`_lift`
NOISE_LIFT_FRAMES = 64


def _frame_stats(frames: Tensor) -> tuple[float, float]:
    """Median over frames of each frame's mean and of its 20th percentile (photons per pixel)."""
    f = frames.reshape(frames.shape[0], -1).to(torch.float32)
    return float(f.mean(1).median()), float(f.quantile(0.2, dim=1).median())


def _crowded_model(psf, camera, *, zs: np.ndarray, photons: np.ndarray, movie: Tensor, bg: float, peak_density: float,
                   yield_px: float, target_spots: int, det: dict, gen: torch.Generator, rng: np.random.Generator,
                   sigma0_px: float, size: int = 64, max_frames: int = 400) -> tuple[EllipticalFit, float]:
    """The model's PSF in ``size`` x ``size`` frames as crowded as the ``movie``'s, measured as the movie was: the fits
    of its bright isolated spots, and the emitter density (per pixel).

    Emitters: z uniform over ``zs``, photons drawn from ``photons`` (the movie's spots'), through ``camera``. Their
    density and the background are set so that a frame's mean and 20th percentile (medians over the frames) are the
    movie's (three short runs from ``bg``); where spots overlap, the peaks undercount the emitters, and the signal
    counts them all. At least ``peak_density`` (the movie's peaks per pixel)."""
    margin = det["R"]
    p_mean = max(float(np.mean(photons)), 1e-9)
    mean_movie, q20_movie = _frame_stats(movie)

    def frames(density: float, background: float, n: int) -> Tensor:
        side = size + 2 * margin
        counts = rng.poisson(density * side * side, n)
        total = int(counts.sum())
        xy = (rng.uniform(0, side, (total, 2)) - margin) * np.asarray(psf.px_size_nm)
        z = rng.uniform(zs[0], zs[-1], total) if len(zs) > 1 else np.full(total, zs[0])
        dev = next(iter(psf.buffers()), torch.empty(0)).device
        t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float32), device=dev)  # noqa: E731
        with torch.no_grad():
            img = psf.render(t(xy[:, 0]), t(xy[:, 1]), t(z), t(rng.choice(photons, total)),
                             torch.as_tensor(np.repeat(np.arange(n), counts), device=dev), n_frames=n,
                             frame_shape=(size, size))
        return _noisy(img.detach().cpu().to(torch.float64) + background, camera, gen).to(torch.float32)

    background = bg
    density = max(peak_density, (mean_movie - background) / p_mean)
    for _ in range(3):
        _, q20 = _frame_stats(frames(density, background, 16))
        background = max(background + (q20_movie - q20), 0.0)
        density = max(peak_density, (mean_movie - background) / p_mean)
    n = int(np.clip(math.ceil(1.5 * target_spots / max(yield_px * size * size, 1e-9)), 20, max_frames))
    spots = _find_spots(frames(density, background, n), max_spots=target_spots, **det)
    return fit_elliptical_gaussian(spots.windows, sigma0_px=sigma0_px), density


def not_raw_counts(dtype, camera=None) -> str | None:
    """Why a movie of pixel type ``dtype`` read through ``camera`` may not be raw camera counts, for a width message;
    None for integer types of 16 bits and more, without a type, and for a camera that takes photons as they are
    (``ideal``: a float photon movie is its input).

    A float movie has been through another tool (converted to photons, background-subtracted, drift-corrected), an
    8-bit one rescaled or clipped from the camera's counts: the camera conversion (baseline, gain) applied to such
    frames pushes most of each spot's tail below zero (a float photon movie with the EMCCD's 100 ADU baseline read
    the spots 0.79x the model's width, an 8-bit export with ImageJ's auto contrast 0.60x), or flattens clipped peaks."""
    if dtype is None or getattr(camera, "kind", None) == "ideal":
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    if dt.kind == "f":
        return (f"the movie's pixels are {dt.name} numbers, not a camera's raw counts: frames already converted to "
                "photons, background-subtracted or otherwise processed by another tool go through the camera "
                "conversion (baseline, gain) a second time, which cuts off the spots' tails and changes their width. "
                "That is the likelier cause: fit the raw camera movie, or give the camera that describes these "
                "values (--camera)")
    if dt.kind in "iu" and dt.itemsize == 1:
        return (f"the movie's pixels are {dt.name}: a camera's counts rescaled or clipped to 8 bits (an 8-bit export) "
                "no longer follow the camera settings (baseline, gain), which cuts off the spots' tails or flattens "
                "their peaks and changes their width. That is the likelier cause: fit the raw (16-bit) camera movie")
    return None


#: the words of a width message that call its first cause the likelier one (:func:`_finding` replaces them where the
#: baseline is not the only cause)
BASELINE_LIKELIER = "That is the likelier cause"


def baseline_excess(frames_photons: Tensor, camera) -> tuple[float, float, str] | None:
    """A camera baseline set far above the movie's offset, measured by :func:`plexloc.camera.check.dim_offset`: half
    of the pixels' medians over the frames lie below the baseline by more than their noise allows (a right baseline
    leaves them at or above it, the background being >= 0). ``(adu, photons, fits)``: how far those pixels sit below
    the baseline (ADU, > 0), their photons (< 0), and what would fit (``'a baseline of at most about 120 ADU would fit
    (now 400)'``, or for a baseline map that it lies above the offset). None without a camera baseline or where the
    pixels sit at or above it. The one rule of the PSF-shape check (:func:`baseline_above_offset`) and of ``plexloc
    calibrate``'s warning on bead stacks."""
    if camera is None:
        return None
    from plexloc.camera.check import dim_offset

    adu, photons, margin = dim_offset(frames_photons, camera)
    if not (np.isfinite(adu) and adu < -margin):
        return None
    base = getattr(camera, "baseline", None)
    base = float(base) if base is not None and np.ndim(base) == 0 else None
    fits = (f"a baseline of at most about {base + adu:.4g} ADU would fit (now {base:g})" if base is not None
            else "the baseline map lies above this camera's offset")
    return -adu, photons, fits


def baseline_above_offset(frames_photons: Tensor, camera) -> str | None:
    """Why the spots may read narrower than they are, for a width message: the camera's baseline set far above the
    movie's offset (:func:`baseline_excess`); None where it is not.

    The fit takes no light below zero, so a baseline far too high cuts the spots' tails: an EMCCD movie (100 ADU
    offset) fitted with a baseline of 700-2100 ADU read its spots 0.47-0.82x the model's width and was told "the
    movie's pixels would be about 122-213 nm" (the pixels were right, 100 nm); the same rule names none of the right
    cameras nor the wrong pixel sizes alone (tests/test_beadwalk48.py, bench/bead_pairs48.py)."""
    return _baseline_words(baseline_excess(frames_photons, camera), camera)


def _baseline_words(found: tuple[float, float, str] | None, camera=None) -> str | None:
    """:func:`baseline_above_offset`'s sentence for what :func:`baseline_excess` found (None: none); the field to set
    named as the camera's file writes it where ``camera`` was read from one (``camera.baseline in config.yaml``)."""
    if found is None:
        return None
    below, photons, fits = found
    return (f"half of the pixels sit {below:.3g} ADU below the camera's baseline ({photons:.3g} photons/px); {fits}. "
            f"{_CUT_TAILS}{BASELINE_LIKELIER}: set the camera's baseline{baseline_field(camera)} to its offset "
            "(measured on dark frames: plexloc calibrate-camera)")


def baseline_field(camera) -> str:
    """`` (camera.baseline in config.yaml)``: the field of a camera read from a file, as that file writes it; ``''``
    for a camera built in Python."""
    from plexloc.camera.check import camera_source

    src = camera_source(camera) if camera is not None else None
    return f" ({src[1]}baseline in {src[0]})" if src else ""


#: the sentence of :func:`_baseline_words` about the spots' widths (:func:`_baseline_alone` leaves it out)
_CUT_TAILS = ("A baseline above the camera's offset makes the dim pixels negative, and the width fit, which takes no "
              "light below zero, cuts off the spots' tails, so they read narrower. ")


def _baseline_alone(baseline_cause: str, widths: str = "") -> str:
    """The message of a baseline far above the offset where it is the only finding: what was measured, what fits and
    the field to set (:func:`_baseline_words`), ``widths`` (what the spots read) and what it does to a fit."""
    text = baseline_cause.replace(_CUT_TAILS, "").replace(f"{BASELINE_LIKELIER}: set", "Set")
    return (f"the camera's baseline lies above the movie's offset: {text}. {widths}Fitted with this camera, the dim "
            "pixels read as negative photons: the background comes out too low and the spots' tails are cut")


def _px_in_question(lifted: PSFShapeReport) -> bool:
    """Whether the spots lifted to the baseline that fits read uniformly wider or narrower than the model's (more than
    1.15x), where the shape check passed them (:func:`_with_baseline` names the pixel size then)."""
    k2 = lifted.width_scale
    return bool(np.isfinite(k2) and abs(math.log(k2)) > math.log(1.15))


def _with_baseline(r: PSFShapeReport, lifted: PSFShapeReport, where: str, max_far: float, min_excess: float,
                   movie_px: Sequence[float] | None, baseline_cause: str) -> str:
    """The message where the camera's baseline lies far above the movie's offset, from the check as read (``r``, its
    ``warning`` already :func:`_finding`'s) and on the frames lifted to the baseline that fits (``lifted``): the two
    effects apart. Where the lifted spots still do not fit, their own finding (the pixel size guessed from their
    widths, which the baseline did not cut) follows the baseline's; where they fit, the baseline alone is told, even
    where the spots as read passed (a baseline 600-2000 ADU too high alone was silent in 6 of 12 movies)."""
    k, k2 = r.width_scale, lifted.width_scale
    if lifted.warning:
        if r.warning and BASELINE_LIKELIER in r.warning:  # the spots read narrower: both named (session 48)
            return _finding(r, where, max_far, min_excess, movie_px, None, baseline_cause, lifted)
        also = _finding(lifted, "", max_far, min_excess, movie_px)
        if r.warning:  # another finding first (wider spots, elongated ones): the baseline after it
            return f"{r.warning}. Also: {_baseline_alone(baseline_cause)}"
        # the spots as read passed: the baseline cut them narrower and something else made them wider (or the other way)
        return (f"{where}{_baseline_alone(baseline_cause)}. As read, the spots' widths are {k:.2f}x the model's and "
                f"pass the check, but with the baseline that fits they read {k2:.2f}x: two errors cancel. With the "
                f"baseline that fits, {also[0].lower()}{also[1:]}")
    pxs = ", ".join(f"{p:g}" for p in dict.fromkeys(r.px_size_nm))
    if _px_in_question(lifted):
        # the lifted spots passed, but uniformly wider or narrower: a 3D model's range of widths takes spots 1.5x wider
        # (140 nm pixels configured for 100, astigmatic: 1.49x, silent)
        guess = ", ".join(f"{p / k2:.0f}" for p in dict.fromkeys(r.px_size_nm))
        widths = (f"With the baseline that fits, the spots read {k2:.2f}x the model's {r.psf_kind} PSF's width ({k:.2f}x "
                  f"as read), which its range of widths takes: check also px_size_nm, {pxs} nm: with this PSF the "
                  f"movie's pixels would be about {guess} nm. ")
    else:
        widths = (f"With the baseline that fits, the spots' widths are {k2:.2f}x the model's {r.psf_kind} PSF and fit it "
                  f"({k:.2f}x as read): the pixel size ({pxs} nm) and the PSF are not in question. ")
    if r.warning and BASELINE_LIKELIER in r.warning:
        # the baseline named first, and the widths on the lifted frames in place of "If the baseline is right, check
        # px_size_nm ... about 161 nm", which the lifted spots contradicted ("the pixel size (100 nm) ... not in
        # question") in the same warning (6 of 12 movies with the baseline alone 600-2000 ADU too high)
        return _finding(r, where, max_far, min_excess, movie_px, None, baseline_cause, instead=widths.strip())
    if r.warning:
        return f"{r.warning}. Also: {_baseline_alone(baseline_cause)}"
    return f"{where}{_baseline_alone(baseline_cause, widths)}"


def _finding(r: PSFShapeReport, where: str, max_far: float, min_excess: float,
             movie_px: Sequence[float] | None, raw_cause: str | None = None,
             baseline_cause: str | None = None, lifted: PSFShapeReport | None = None,
             instead: str | None = None) -> str | None:
    """The warning's message, or None where the spots fit. ``raw_cause`` (:func:`not_raw_counts`): said before the
    pixel size and the PSF in a width message; else ``baseline_cause`` (:func:`baseline_above_offset`) where the spots
    read narrower than the model's. ``lifted``: the same check on the frames lifted to the baseline that fits, where it
    still warns: the baseline is not the only cause, and the pixel size is guessed from the lifted spots' widths (a
    baseline 600 ADU too high with 70 nm pixels configured for 100 was called the likelier cause, the pixel size only
    'if the baseline is right'). ``instead``: said after ``baseline_cause`` in place of what to check (the spots'
    widths on the lifted frames, where they fit the model or name the pixel size themselves)."""
    if not (r.far_fraction > max_far and r.far_fraction - r.baseline_far_fraction >= min_excess):
        return None
    mx, my = r.median_sigma_nm
    e_lo, e_hi = r.ellipticity_range
    m_lo, m_hi = r.model_ellipticity_range
    (xl, xh), (yl, yh) = r.model_sigma_range_nm
    head = (f"{where}{100 * r.far_fraction:.0f} % of {r.n_spots} bright isolated spots have widths far from the model's "
            f"{r.psf_kind} PSF (median sigma_x {mx:.0f} nm, sigma_y {my:.0f} nm at {r.px_size_nm[0]:g} nm pixels; "
            f"the model's sigma_x {xl:.0f}-{xh:.0f} nm, sigma_y {yl:.0f}-{yh:.0f} nm): ")
    round_model = max(abs(math.log(m_lo)), abs(math.log(m_hi))) < math.log(1.15)
    scale_fits = (r.width_scale_far_fraction <= max_far and r.width_scale_far_fraction <= 0.5 * r.far_fraction
                  and abs(math.log(r.width_scale)) > math.log(1.15))
    # a baseline far too high cuts the spots' tails into noise-shaped ones: their elongation is no finding then (a 2D
    # movie with 70 nm pixels configured for 100 and a baseline 2000 ADU too high was asked 'Is this a 3D movie?')
    if round_model and (e_lo < 1 / 1.3 or e_hi > 1.3) and not scale_fits and not baseline_cause:
        return head + (f"the spots are elongated: sigma_x/sigma_y spans {e_lo:.2f}-{e_hi:.2f} (5-95 %), the model's PSF "
                       f"is round ({m_lo:.2f}-{m_hi:.2f}). Is this a 3D (astigmatic) movie? Fit it with a 3D model "
                       "(astigmatic or spline PSF calibrated on this microscope)")
    # a float or 8-bit movie: the likelier cause first, then the pixel size and the PSF; else a baseline far above the
    # camera's offset where the spots read narrower (it cuts their tails; it cannot widen them)
    narrower = not (scale_fits and r.width_scale > 1)
    if raw_cause:
        first, check = f"{raw_cause[0].upper()}{raw_cause[1:]}. ", "If the frames are the camera's raw counts, check"
    elif baseline_cause and narrower and lifted is not None:
        k2 = lifted.width_scale
        also = (f"With the baseline that fits, the spots still read {k2:.2f}x the model's width, so it is not the only "
                "cause")
        first, check = f"{baseline_cause[0].upper()}{baseline_cause[1:].replace(BASELINE_LIKELIER, also)}. ", "Check also"
    elif baseline_cause and narrower:
        first, check = f"{baseline_cause[0].upper()}{baseline_cause[1:]}. ", "If the baseline is right, check"
    else:
        first, check = "", "Check"
    if instead and first and not raw_cause:
        said = (f"the spots are {r.width_scale:.2f}x {'wider' if r.width_scale > 1 else 'narrower'} than the model's PSF "
                f"({100 * r.width_scale_far_fraction:.0f} % far once scaled). " if scale_fits else
                f"sigma_x/sigma_y spans {e_lo:.2f}-{e_hi:.2f} (5-95 %) against the model's {m_lo:.2f}-{m_hi:.2f}. ")
        return f"{head}{said}{first}{instead}"
    if scale_fits:
        k = r.width_scale
        what = "wider" if k > 1 else "narrower"
        # the pixel size from the widths the baseline did not cut, where it is not the only cause
        k_px = lifted.width_scale if lifted is not None and first and np.isfinite(lifted.width_scale) else k
        px_guess = ", ".join(f"{p / k_px:.0f}" for p in dict.fromkeys(r.px_size_nm))
        meta = ""
        if movie_px is not None:
            meta = f" (the movie's metadata say {', '.join(f'{float(p):g}' for p in dict.fromkeys(movie_px))} nm)"
        return head + (f"the spots are {k:.2f}x {what} than the model's PSF ({100 * r.width_scale_far_fraction:.0f} % far "
                       f"once scaled). {first}{check} px_size_nm, {', '.join(f'{p:g}' for p in dict.fromkeys(r.px_size_nm))} nm"
                       f"{meta}: with this PSF the movie's pixels would be about {px_guess} nm; else the PSF (its "
                       "width, the objective it was calibrated on) does not match the microscope")
    return head + (f"sigma_x/sigma_y spans {e_lo:.2f}-{e_hi:.2f} (5-95 %) against the model's {m_lo:.2f}-{m_hi:.2f}. "
                   f"{first}{check} that the PSF calibration (astigmatism, objective, z range) and px_size_nm belong "
                   "to this microscope and movie")


def moment_widths(volume: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Second-moment widths (px) along x and y, ``(sx, sy)``, of each image of ``(N, R, R)`` images (a numpy array or a
    tensor; a PSF volume's slices), negative values taken as 0: the spread of each image's light about its centroid.
    The one implementation of the PSF check's model widths and of the bead calibration's focus and astigmatism
    (:func:`plexloc.calibrate.spline.find_focus`)."""
    v = volume.detach().cpu().numpy() if isinstance(volume, Tensor) else np.asarray(volume)
    w = np.clip(v.astype(np.float64), 0.0, None)
    ny, nx = w.shape[-2:]
    tot = w.sum(axis=(-2, -1)) + 1e-30
    px, py = w.sum(axis=-2), w.sum(axis=-1)  # profiles along x (over rows) and along y (over columns)
    xx, yy = np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64)
    mx, my = (px * xx).sum(-1) / tot, (py * yy).sum(-1) / tot
    sx = np.sqrt((px * (xx - mx[..., None]) ** 2).sum(-1) / tot)
    sy = np.sqrt((py * (yy - my[..., None]) ** 2).sum(-1) / tot)
    return sx, sy


def _moment_widths(img: Tensor) -> np.ndarray:
    """Second-moment widths (px) of noiseless ``(N, R, R)`` images (``max(sx, sy)`` per image)."""
    return np.maximum(*moment_widths(img))


def _robust_sd(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def check_psf_shapes(
    frames_photons: Sequence[Tensor | np.ndarray],
    config: Any,
    *,
    channels: Sequence | None = None,
    cameras: Sequence | None = None,
    source: str | Sequence[str] = "",
    movie_px_size_nm: Sequence[float] | None = None,
    warn: bool = True,
    **options,
) -> list[PSFShapeReport]:
    """:func:`check_psf_shape` for every channel of a configuration (a :class:`~plexloc.config.SimulationConfig`
    or :class:`~plexloc.config.TrainConfig`): one ``(T, H, W)`` photon stack per channel.

    ``channels``: the fitter's :class:`~plexloc.simulation.Channel` s (PSF, camera, z offset) where it has them;
    default built from ``config``. ``cameras``: replace the channels' cameras (e.g. a camera given on the command
    line). ``source``: the movie named in the messages, or one name per channel (a file per channel).
    ``movie_px_size_nm``: what the movie's metadata record, ``(x, y)`` nm or a
    :class:`~plexloc.io.pixel_size.PixelSize` (:func:`plexloc.io.pixel_size.recorded_pixel_size`), or None.
    ``options``: passed on (``max_frames``, ``max_spots``, ...)."""
    if hasattr(movie_px_size_nm, "x_nm"):  # a PixelSize read off the movie
        movie_px_size_nm = (movie_px_size_nm.x_nm, movie_px_size_nm.y_nm)
    if channels is None:
        from plexloc.simulation.simulator import Channel

        z_lo, z_hi = config.emitters.z_range_nm
        extent = max(abs(z_lo), abs(z_hi), 1.0) + max(abs(c.z_offset_nm) for c in config.channels)
        channels = [Channel.from_config(c, px_size_nm=config.px_size_xy_nm, z_extent_nm=extent) for c in config.channels]
    if len(frames_photons) != len(channels):
        raise InputError(f"{len(frames_photons)} frame stack(s) for {len(channels)} channel(s): give one per channel")
    if cameras is not None and len(cameras) != len(channels):
        raise InputError(f"{len(cameras)} camera(s) for {len(channels)} channel(s): give one per channel")
    many = len(channels) > 1
    sources = [str(source)] * len(channels) if isinstance(source, (str, os.PathLike)) else [str(x) for x in source]
    if len(sources) != len(channels):
        raise InputError(f"{len(sources)} source name(s) for {len(channels)} channel(s): give one, or one per channel")
    return [
        check_psf_shape(f, ch.psf, z_range_nm=tuple(config.emitters.z_range_nm), z_offset_nm=ch.z_offset_nm,
                        camera=ch.camera if cameras is None else cameras[c], channel=c if many else None,
                        source=sources[c],
                        movie_px_size_nm=movie_px_size_nm, warn=warn, **options)
        for c, (f, ch) in enumerate(zip(frames_photons, channels))
    ]


def _central_copy(frames, window_px: int) -> Tensor:
    """The central ``window_px`` window of ``(t, H, W)`` frames, copied to the CPU (a view would keep the whole
    frames alive)."""
    f = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, Tensor) else frames
    h, w = f.shape[-2:]
    r0, c0 = max(0, (h - window_px) // 2), max(0, (w - window_px) // 2)
    return f[:, r0 : r0 + window_px, c0 : c0 + window_px].detach().to("cpu", copy=True)


def check_movie_psf_shapes(
    photons_of: Callable[[int, int], Sequence[Tensor | np.ndarray]],
    n_frames: int,
    config,
    *,
    chunk_frames: int = 25,
    max_frames: int = MOVIE_FRAMES,
    window_px: int = MOVIE_WINDOW_PX,
    **options,
) -> list[PSFShapeReport]:
    """:func:`check_psf_shapes` on a movie's first ``max_frames`` frames, read ``chunk_frames`` at a time with
    ``photons_of(a, b)`` (frames ``a:b`` of every channel in photons, ``(t, H, W)`` each) and cut to a central window
    of at most ``window_px`` pixels a side, so that a large movie's frames are never held whole. ``options``: those
    of :func:`check_psf_shapes` (``channels``, ``cameras``, ``source``, ``movie_px_size_nm``, ``warn``, ...)."""
    # a fit's camera check tells a baseline far above the offset (plexloc.camera.check.dim_offset, the same rule): the
    # shape check names it where it changes the spots' widths, not a second time alone
    options.setdefault("baseline_alone", False)
    n = max(0, min(int(n_frames), int(max_frames)))
    parts: list[list[Tensor]] = []
    from plexloc.io.tiff import frames_per_chunk

    a, step = 0, 1  # the first frame alone: its size sets the chunk (at most CHUNK_PIXELS whole-frame pixels)
    while a < n:
        chunk = photons_of(a, min(a + step, n))
        h, w = np.shape(chunk[0])[-2:]
        step = frames_per_chunk(h * w, chunk_frames, budget=CHUNK_PIXELS)
        a += max(1, np.shape(chunk[0])[0])
        parts.append([_central_copy(f, window_px) for f in chunk])
        del chunk  # no view of it is kept: the next chunk replaces it
    if not parts:
        raise InputError("the movie has no frames for the PSF shape check", source=options.get("source") or None)
    stacks = [torch.cat([p[c] for p in parts]) for c in range(len(parts[0]))]
    reports = check_psf_shapes(stacks, config, **options)
    for r in reports:
        r.origin_px = (max(0, (h - window_px) // 2), max(0, (w - window_px) // 2))
    return reports
