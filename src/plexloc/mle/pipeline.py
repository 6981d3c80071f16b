"""Movies in, localizations out: camera normalisation, detection, fitting windows, MLE fits.

:func:`fit_movie` streams a TIFF movie (or one movie per channel) chunk by chunk: every chunk is
converted to photons with each channel's camera, spots are detected on the sum of the channels'
difference-of-Gaussians images (each warped into the reference channel's frame by its transform),
an ``R x R`` window is cut around every spot in every channel (shifted to stay inside the frame), and
all windows of the chunk are fitted in one batch (:func:`plexloc.mle.fit.fit_rois`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from plexloc._call import as_device, keyword_defaults
from plexloc.camera import CameraCheck, CameraWarning, camera_from_config
from plexloc.config.models import CameraConfig, SimulationConfig
from plexloc.errors import InputError
from plexloc.io.tiff import frames_per_chunk
from plexloc.mle.detection import Candidates, _blur, dog_filter, dog_noise_gain_map, local_maxima
from plexloc.mle.fit import AT_BOUND_BITS, FitChannel, FitResult, fit_rois, noise_terms
from plexloc.mle.models import roi_model_for
from plexloc.simulation.geometry import transform_at_roi
from plexloc.simulation.simulator import Channel, psf_z_range
from plexloc.table import LocTable

#: default signal-to-noise of a detection: peak of the filtered image over its noise (camera model)
DEFAULT_SNR = 6.0
#: the rows kept with ``p_spot`` above this are reported (``flagged["not_significant"]``): a fit that background alone
#: matches in more than 1 % of windows (:func:`plexloc.mle.fit.spot_pvalue`); kept, ``plexloc filter --max-p-spot``
#: drops them
SPOT_P_REPORT = 0.01


def not_significant_line(n: int, *, refined: bool = False, filtered: bool = False) -> str:
    """What ``plexloc fit`` and ``plexloc process`` say of ``n`` rows with ``p_spot`` above :data:`SPOT_P_REPORT`:
    an MLE fit's rows, or (``refined``) a network table's refined rows, whose test holds the neighbours' light and
    whose filter also removes the rows without a kept refit (NaN); ``filtered``: counted before the fit's filters."""
    rows = ("refined " if refined else "") + ("row" if n == 1 else "rows")
    light = ", with the neighbours' light," if refined else ""
    return (f"{n} {rows}{' (before the filters)' if filtered else ''} {'has' if n == 1 else 'have'} p_spot above "
            f"{SPOT_P_REPORT:g} (kept): background alone{light} gives a "
            "spot_llr this large in more than 1 % of windows; plexloc filter --max-p-spot 0.01 removes them"
            + (" and every row without a kept refit" if refined else ""))


# What ``plexloc fit`` prints and ``plexloc process`` notes (summary.json, report.html, its log) of a fit's stats, in
# one wording: each had its own copy, and process's said less (no "(before the filters)" where filters were given, no
# clipping level) ----------------------------------------------------------------------------------------------------

#: why the MLE fitter left a fit out of its table (the keys of its stats' ``dropped``)
DROPPED_REASONS = {"outside_window": "whose position left the fitting window (a neighbour pulled the fit, or no spot)",
                   "not_finite": "not finite", "goodness_of_fit": "failed the goodness-of-fit test (min_llr_pvalue)"}
#: the bounds of the fit that a row not converged is on (the keys of the stats' ``flagged`` other than the counts)
BOUND_NAMES = {"xy": "position at the window's limit", "z": "z on its bound", "photons": "photons at their bound",
               "width": "PSF width on its bound"}


def dropped_fits_line(dropped: Mapping[str, int] | None, fits: int | None) -> str | None:
    """The fits the MLE fitter left out of its table (``stats["dropped"]``, by reason, of ``stats["fits"]``), or None
    where none was: no row leaves silently."""
    dropped = {k: int(v) for k, v in (dropped or {}).items() if v}
    if not dropped:
        return None
    return (f"{sum(dropped.values())} of {fits if fits is not None else '?'} fits left out: "
            + "; ".join(f"{n} {DROPPED_REASONS.get(k, k)}" for k, n in dropped.items()))


def not_converged_line(flagged: Mapping[str, int] | None, *, filtered: bool = False, rows: int | None = None,
                       z_range_nm: Sequence[float] | None = None) -> str | None:
    """The rows kept with ``converged`` 0 (``stats["flagged"]["not_converged"]``) and the bounds they are on (column
    ``at_bound``), or None where none; ``filtered``: counted before the fit's filters. ``rows``: the rows the counts
    are of (``stats["rows_fitted"]``): the rows held on the z bound are then given as their share, with its two causes
    (``z_range_nm``: the fit's z bounds, ``stats["z_range_nm"]``) and what to do (on examples/3d_astigmatic.yaml with
    emitters over +-600 nm, 17-23 % of the rows at 0.1-1 /um^2, beyond the range or overlapping a neighbour:
    bench/mle3d50.py)."""
    flagged = flagged or {}
    n = int(flagged.get("not_converged") or 0)
    if not n:
        return None
    parts = []
    for k, v in BOUND_NAMES.items():
        if not flagged.get(k):
            continue
        part = f"{flagged[k]} {v}"
        if k == "z" and rows:
            where = (f" [{z_range_nm[0]:g}, {z_range_nm[1]:g}] nm" if z_range_nm is not None else "")
            part += (f" ({100.0 * flagged[k] / rows:.1f} % of the {rows} rows: emitters beyond the fit's z range{where}, "
                     "or spots overlapping a neighbour, fitted as one wide spot; their crlb_z_nm is NaN)")
        parts.append(part)
    why = "; ".join(parts)
    thick = ("; a sample thicker than the z range: widen emitters.z_range_nm in the configuration"
             if flagged.get("z") and rows else "")
    return (f"{n} row{'s' if n != 1 else ''}{' (before the filters)' if filtered else ''} did not converge "
            "(converged 0, kept)" + (f", on a bound of the fit (column at_bound): {why}" if why else "")
            + "; plexloc filter --converged removes them" + thick)


def saturated_line(n: int | None, clip_levels: Sequence = (), *, table: str | os.PathLike,
                   filtered: bool = False) -> str | None:
    """The rows fitted from clipped light (``stats["saturated_rows"]``: column ``saturated_px`` > 0), at which
    level (``stats["clip_levels"]``: each channel's ``(ADU, where from)``), and how to drop them from ``table``; None
    where none. Network and MLE fits alike."""
    if not n:
        return None
    said = {"setting": " (the camera's saturation_adu)", "found": " (found in the movie)",
            "pile-up": " (where the movie's pixels pile up)"}
    # a ClipLevel: found only with frames spread over the movie (session-51 review: said as if the first frames held it)
    later = {"found": " (found in frames later in the movie, not in the first ones)",
             "pile-up": " (where the pixels of frames later in the movie pile up, not those of the first ones)"}
    levels = sorted({f"{lv:.0f} ADU" + (later if getattr(e, "later", False) else said).get(how, "")
                     for e in clip_levels or [] for lv, how in [e] if lv is not None})
    return (f"{n} {'row' if n == 1 else 'rows'}{' (before the filters)' if filtered else ''} "
            f"{'touches' if n == 1 else 'touch'} pixels clipped at {' / '.join(levels) or 'the clipping level'} "
            "(column saturated_px > 0): fitted from clipped light, their photons are low (the more so the more pixels "
            f"clipped) and their uncertainties too small; plexloc filter {table} --out OUT --no-saturated drops them")


def check_notes(stats: Mapping) -> list[str]:
    """What the checks before the fit noted without a warning: a PSF shape check's note (all spots at one z, ...) where
    it had enough spots, and why the camera check could not measure the noise (the gain and e-/ADU went unchecked)."""
    notes = [shape.note for shape in stats.get("psf_shape") or [] if shape.note and shape.enough]
    if stats.get("camera") is not None:
        notes += list(stats["camera"].notes)
    return notes


class ZRangeWarning(UserWarning):
    """The configuration's emitter z range reaches beyond a spline PSF's calibrated z range."""


#: smallest fitting window of a crowded spot under the default window rule (Picasso's box size)
DEFAULT_MIN_ROI_PX = 7


def dog_noise_gain(sigma_px: float) -> float:
    """Variance of the difference-of-Gaussians image per unit pixel variance (white noise): the sum of
    the squared 2D DoG kernel, ``(Σg1²)² + (Σg2²)² - 2 (Σg1 g2)²`` for the separable 1D kernels."""
    import math as _m

    def kernel(s: float, half: int) -> np.ndarray:
        x = np.arange(-half, half + 1, dtype=np.float64)
        k = np.exp(-0.5 * (x / s) ** 2)
        return k / k.sum()

    half = max(1, _m.ceil(3 * 2.5 * sigma_px))
    g1, g2 = kernel(sigma_px, half), kernel(2.5 * sigma_px, half)
    return float((g1 @ g1) ** 2 + (g2 @ g2) ** 2 - 2 * (g1 @ g2) ** 2)


def psf_sigma_px(psf, z_nm: float = 0.0) -> float:
    """A PSF's lateral width in pixels (for the detection filter and the window size)."""
    # probe tensors on the PSF's device (a spline's coefficients may be on CUDA)
    dev = next(iter(psf.buffers()), torch.empty(0)).device if isinstance(psf, torch.nn.Module) else torch.device("cpu")
    if hasattr(psf, "sigma_px"):
        sx, sy = psf.sigma_px(torch.tensor([float(z_nm)], device=dev))
        return float(max(sx.max(), sy.max()))
    # a sampled PSF: second moment of its in-focus patch
    with torch.no_grad():
        px = psf.px_size_nm
        x = torch.tensor([(psf.roi_px[1] // 2 + 0.5) * px[0]], device=dev)
        y = torch.tensor([(psf.roi_px[0] // 2 + 0.5) * px[1]], device=dev)
        patch, r0, c0 = psf.patches(x, y, torch.tensor([float(z_nm)], device=dev), torch.ones(1, device=dev))
        p = patch[0].clamp_min(0).double()
        h, w = p.shape
        cols = torch.arange(w, dtype=torch.float64, device=dev) + 0.5 + float(c0[0])
        total = p.sum()
        mx = (p.sum(0) * cols).sum() / total
        var = (p.sum(0) * (cols - mx) ** 2).sum() / total
    return float(var.sqrt())


def spline_window_cap_px(psfs: Sequence) -> int | None:
    """Largest odd fitting window that a sampled (spline) PSF models in full, wherever the emitter sits in
    its pixel: the spline's lateral extent minus one pixel (the patch moves with the sub-pixel position),
    rounded down to odd; the smallest over ``psfs``. ``None`` when no PSF is a spline."""
    from plexloc.psf.spline import SplinePSF

    caps = []
    for psf in psfs:
        if isinstance(psf, SplinePSF):
            n = min(psf.roi_px) - 1
            caps.append(n if n % 2 else n - 1)
    return min(caps) if caps else None


#: target rate of false detections on noise alone: spots per 64 x 64 pixels (4,096 px) per frame. The threshold is
#: never below :data:`DEFAULT_SNR` times the filtered noise sd (the Gaussian rule); where the camera's noise has
#: heavier tails than a Gaussian (an EMCCD at a few photons/px) it is raised to meet this rate
FALSE_ALARM_RATE = 1e-3
#: noise-only frames (64 x 64) drawn per calibration of the threshold (:func:`false_alarm_snr`); a first quarter of
#: them decides alone where it finds the Gaussian rule enough
FALSE_ALARM_FRAMES = 512
_TAIL_RATE = 0.125  # the tail is fitted to the largest noise maxima down to this rate per frame (64 of 512 frames)
_LEVEL_STEPS_PER_OCTAVE = 2  # background levels are calibrated on a grid 2^(1/2) apart and interpolated between
_LEVEL_FLOOR = 0.01  # photons/px; lower levels are calibrated at this one
_SNR_CACHE: dict[tuple, float] = {}


def _camera_key(camera) -> tuple | None:
    """A hashable fingerprint of a camera's noise parameters (scalars only); ``None`` for per-pixel maps."""
    if getattr(camera, "map_shape", None) is not None:
        return None
    items = [(k, float(v)) for k, v in vars(camera).items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_")]
    for name, buf in camera.named_buffers():
        if buf.numel() != 1:
            return None
        items.append((name, float(buf)))
    return (type(camera).__name__, tuple(sorted(items)))


def _tail_snr(z: np.ndarray, n_frames: int) -> float:
    """Exponential tail (peaks over a threshold) fitted to the largest standardised noise maxima ``z`` of ``n_frames``
    64 x 64 frames, down to :data:`_TAIL_RATE` per frame, extrapolated to :data:`FALSE_ALARM_RATE`."""
    k = max(8, round(_TAIL_RATE * n_frames))
    top = np.sort(z)[::-1]
    if len(top) <= k:  # fewer maxima above 3 sd than a Gaussian field has: a light tail
        return DEFAULT_SNR
    u = float(top[k])
    return u + float(np.mean(top[:k] - u)) * math.log((k / n_frames) / FALSE_ALARM_RATE)


def _calibrated_snr(camera, q: int, sigma_px: float, dev: torch.device) -> float:
    key_cam = _camera_key(camera)
    key = None if key_cam is None else (key_cam, q, round(float(sigma_px), 3), str(dev))
    if key is not None and key in _SNR_CACHE:
        return _SNR_CACHE[key]
    lvl = 2.0 ** (q / _LEVEL_STEPS_PER_OCTAVE)
    shape, batch = (64, 64), FALSE_ALARM_FRAMES // 4
    gen = torch.Generator(device=dev).manual_seed(20260 + q)
    sd = float(camera.noise_variance_photons(torch.tensor([lvl], device=dev)).reshape(-1)[0]) ** 0.5
    scale = torch.as_tensor(np.sqrt(dog_noise_gain_map(shape, sigma_px)) * sd, dtype=torch.float32, device=dev)
    z: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, FALSE_ALARM_FRAMES, batch):
            raw = camera(torch.full((batch, *shape), lvl, device=dev), generator=gen)
            dog = dog_filter(camera.to_photons(raw), sigma_px=sigma_px)
            cand = local_maxima(dog, 3.0 * scale, min_distance_px=2)
            z.append(cand.height / scale[cand.row, cand.col].cpu().numpy())
            snr = _tail_snr(np.concatenate(z), i + batch)
            if i == 0 and snr < DEFAULT_SNR:  # the Gaussian rule is enough: no need of the rest
                break
    snr = max(DEFAULT_SNR, snr)
    if key is not None:
        if len(_SNR_CACHE) > 4096:
            _SNR_CACHE.clear()
        _SNR_CACHE[key] = snr
    return snr


def false_alarm_snr(camera, level: float, sigma_px: float, *, device: str | torch.device = "cpu") -> float:
    """The signal-to-noise (threshold on the DoG image over its noise sd under the camera's noise model,
    :func:`detection_noise_variance`) at which noise alone makes :data:`FALSE_ALARM_RATE` spots per 64 x 64 pixels,
    under the camera's actual noise distribution at a background of ``level`` photons/px; at least
    :data:`DEFAULT_SNR` (the Gaussian rule).

    The camera model itself draws :data:`FALSE_ALARM_FRAMES` noise-only 64 x 64 frames (seeded: the same answer
    every time on a device), converted to photons, DoG-filtered and scaled by each pixel's filtered noise sd
    (:func:`~plexloc.mle.detection.dog_noise_gain_map`); the local maxima (as the detector finds them, 2 px apart)
    above 3 sd make the tail. The rate sought is rarer than 512 frames can show, so the largest maxima (0.125 per
    frame) are fitted by an exponential tail (peaks over a threshold) and it is extrapolated: exact for a single
    EM-amplified electron, and on the safe side (a higher threshold) for tails that fall off faster, as a Gaussian's
    or a sum of electrons' do. Checked against 4,000 frames on the SMLM Challenge EMCCD (1.3 px filter): it needs
    9.8, 8.6, 7.2, 6.4, 5.7 sd at 0.5, 1, 2, 5, 20 photons/px; an sCMOS (3 e- read noise) 5.0-5.3 sd at any level.
    If the first 128 frames put it below :data:`DEFAULT_SNR`, the rest are not drawn.

    Calibrated on a grid of levels 2^(1/2) apart (linear in log level between the two grid points around
    ``level``), cached per camera parameters, grid point, filter width and device: 0.1-0.4 s per new grid point on
    one CPU thread, a quarter of that where the Gaussian rule holds."""
    dev = torch.device(device)
    x = _LEVEL_STEPS_PER_OCTAVE * math.log2(max(float(level), _LEVEL_FLOOR))
    lo = math.floor(x + 1e-9)
    if x - lo < 1e-6:
        return _calibrated_snr(camera, lo, sigma_px, dev)
    a, b = _calibrated_snr(camera, lo, sigma_px, dev), _calibrated_snr(camera, lo + 1, sigma_px, dev)
    return a + (b - a) * (x - lo)


def detection_noise_variance(photons: Tensor, camera, sigma_px: float) -> Tensor:
    """Per-pixel noise variance of each frame at its background level, (T, H, W), in photons², as the detection
    threshold (:func:`noise_threshold`, :data:`DEFAULT_SNR` times the DoG image's sd) needs it: the camera model's
    variance, made Gaussian-equivalent for the threshold where that is not enough.

    - The level is the median of 4x4-pixel box means: robust to the spots, and near the mean where single pixels
      are skewed (an EMCCD frame of 1 photon/px has a pixel median of 0.33: the noise was underestimated and a
      6-sigma threshold acted as 3.6 sigma, 4.6 false spots per frame).
    - Heavy tails: a threshold at 6 sd of a Gaussian was not rare enough for an EMCCD at low light (Poisson
      electrons, each amplified by a gamma-distributed gain: 0.69 false spots per 64 x 64 frame at 0.5 photons/px,
      0.089 at 2, 0.020 at 5; 2,000 frames each). The variance is scaled by ``(s / DEFAULT_SNR)²``, ``s`` from :func:`false_alarm_snr` (at least
      :data:`DEFAULT_SNR`): the threshold is where the camera's own noise makes :data:`FALSE_ALARM_RATE` false spots
      (measured: 0.0005, 0.001, 0.0005, 0 per frame at 0.5, 1, 2, 5 photons/px). Ordinary backgrounds keep the Gaussian rule (EMCCD from
      about 10 photons/px, sCMOS at any level).
    - Frame edges: the DoG filter replicates the border, so its noise is larger there (1.54 times the variance in
      the first row and column, :func:`~plexloc.mle.detection.dog_noise_gain_map`); the variance carries that factor
      (most false spots of a Gaussian camera were on the edge).
    - A camera with per-pixel maps (sCMOS): each pixel's neighbours' variances weighted as the detection filter
      weights them (a noisy pixel raises the threshold around it instead of making spots; with the maps' median, a
      patch of 40 e- read noise gave 2,300 false rows in 1,000 frames), with the edge factor and the Gaussian rule
      (no tail calibration: its read noise and Poisson counts are close to Gaussian, see :func:`false_alarm_snr`).
    - Several channels' DoG images are summed by :meth:`MLEFitter.detect`, and so are these variances: a sum of
      heavy-tailed noise is closer to a Gaussian than each term, so the summed threshold errs on the high side.
    """
    t, h, w = photons.shape
    k = 4 if min(h, w) >= 8 else 1
    boxes = torch.nn.functional.avg_pool2d(photons[:, None], k) if k > 1 else photons[:, None]
    level = boxes.reshape(t, -1).median(dim=1).values.clamp_min(0)
    # contiguous: an ideal camera returns the expanded view itself, and torch (2.13, CPU) gives NaN for the
    # median of a stride-0 view (no detection threshold, not one spot found)
    var = camera.noise_variance_photons(level[:, None, None].expand_as(photons).contiguous())
    m = 4 * math.ceil(7.5 * sigma_px) + 3  # a frame whose centre no edge reaches: the inner value
    edge = dog_noise_gain_map((h, w), sigma_px) / dog_noise_gain_map((m, m), sigma_px)[m // 2, m // 2]
    edge = torch.as_tensor(edge, dtype=torch.float32, device=photons.device)
    if var.ndim == 3 and getattr(camera, "map_shape", None) is not None:
        return _blur(var.to(torch.float32), sigma_px / math.sqrt(2.0)) * edge  # the DoG's main lobe, squared
    var = var.reshape(t, -1).median(dim=1).values if var.ndim == 3 else var.reshape(t)
    tail = torch.tensor([false_alarm_snr(camera, v, sigma_px, device=photons.device) / DEFAULT_SNR
                         for v in level.cpu().tolist()], dtype=torch.float32, device=photons.device)
    return (var.to(torch.float32) * tail**2)[:, None, None] * edge


def noise_threshold(variance: Tensor, sigma_px: float) -> Tensor:
    """The detection threshold on the DoG image for a noise ``variance`` of the frames (:func:`detection_noise_variance`,
    photons²; it carries the edge factor and the camera's heavy tails): :data:`DEFAULT_SNR` times the filtered
    image's noise."""
    return DEFAULT_SNR * torch.sqrt(variance * dog_noise_gain(sigma_px))


def _check_config(config) -> None:
    """A dict or a file name where a validated configuration belongs: a TypeError saying what to pass (it was an
    AttributeError from deep inside)."""
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a validated SimulationConfig (plexloc.config.load_config(path), or "
                        f"validate_config(dict, SimulationConfig)), got {type(config).__name__}")


class MLEFitter:
    """Detection and maximum-likelihood fitting for one microscope configuration.

    Args:
        config: the validated simulation configuration (channels: PSF, camera, transform, z offset,
            throughput; pixel size; emitter z range used for the z bounds and starts).
        device: where the fits run.
        camera: a camera configuration replacing every channel's camera (or one per channel).
        roi_px: fitting window size (odd) of an isolated spot; default covers +-3.5 sigma of the widest PSF in
            the z range. A window given here is used for every spot unless ``min_roi_px`` is given too.
        min_roi_px: smallest window of a crowded spot (odd, >= 5). A spot with another detection of its frame
            nearby gets the largest window, between this and ``roi_px``, that keeps that detection at least
            ``crowded_gap_px`` (1.5 sigma of the widest PSF, rounded up) beyond its half-width
            (:meth:`window_sizes`). Default ``DEFAULT_MIN_ROI_PX`` with the default ``roi_px``; with a given
            ``roi_px``, none (one window for all). On examples/3d_astigmatic.yaml (bench/RESULTS.md, 2026-12-04)
            E_3D rose at every density (60.9 -> 64.7 at 0.1/um^2, 9.8 -> 27.0 at 1/um^2) while the isolated-spot
            bar's axial RMSE/CRLB went 1.035 -> 1.038; a wider gap (2 sigma) gained ~2 points more at density
            but took that ratio to 1.059.
        threshold_photons: detection threshold on the (summed) difference-of-Gaussians image, photons
            per pixel; default from the camera's noise model at each frame's background level
            (:func:`detection_noise_variance`, :func:`noise_threshold`): ``DEFAULT_SNR`` times that image's noise,
            or higher where the camera's noise is far from Gaussian (an EMCCD at a few photons per pixel), so that
            background alone makes about ``FALSE_ALARM_RATE`` false spots per 64x64 frame; raised along the frame
            edges, where the filter's noise is larger.
        free_sigma: fit the width of a 2D Gaussian PSF.
        photon_model: ``linked`` (one photon count split by throughput) or ``free`` (one per channel);
            default ``linked`` for the config's linked photon model, else ``free``.
        z_starts_nm: start values of z for 3D fits (default three across the z range).
        z_margin_nm: the z bounds of 3D fits are the configured emitter z range widened by this on both
            sides (default 0: the maximum-likelihood estimate within the range the sample is said to
            span; a single-plane range gets 500 nm). Wider bounds let dim spots' fits wander into the
            wrong branch of the astigmatic likelihood where no emitter is (measured: axial RMSE / CRLB
            1.06 with 250 nm against 1.03 with 0 on examples/3d_astigmatic.yaml, bench/RESULTS.md).
        min_llr_pvalue: drop fits whose log-likelihood ratio has a chi-square p-value below this.
        roi_offset_px: chip pixel (x, y) of the frames' corner; the channel transforms are in chip coordinates
            (conventions.md), so a channel maps ROI positions by ``T_c(r + o) - o``. Default: the configuration's
            ``roi_offset_px``.
    """

    def __init__(
        self,
        config: SimulationConfig,
        *,
        device: str | torch.device = "cpu",
        camera: CameraConfig | Sequence[CameraConfig] | None = None,
        roi_px: int | None = None,
        min_roi_px: int | None = None,
        threshold_photons: float | None = None,
        free_sigma: bool = False,
        photon_model: str | None = None,
        z_starts_nm: Sequence[float] | None = None,
        z_margin_nm: float = 0.0,
        min_llr_pvalue: float | None = None,
        max_iter: int = 30,
        batch_size: int | None = None,
        roi_offset_px: tuple[int, int] | None = None,
    ):
        _check_config(config)
        self.config = config
        self.device = as_device(device)
        px = config.px_size_xy_nm
        z_lo, z_hi = config.emitters.z_range_nm
        z_extent = max(abs(z_lo), abs(z_hi), 1.0) + max(abs(c.z_offset_nm) for c in config.channels)
        cams = list(camera) if isinstance(camera, Sequence) else [camera] * config.n_channels
        if len(cams) != config.n_channels:
            raise InputError(f"{len(cams)} camera overrides for {config.n_channels} channels")
        self.channels: list[Channel] = []
        for c, ch_cfg in enumerate(config.channels):
            ch = Channel.from_config(ch_cfg, px_size_nm=px, z_extent_nm=z_extent)
            if cams[c] is not None:
                ch.camera = camera_from_config(cams[c])
            ch.transform = transform_at_roi(ch.transform, roi_offset_px if roi_offset_px is not None else config.roi_offset_px, px)
            self.channels.append(ch.to(self.device))
        self.frame_shape = (int(config.frame_size[0]), int(config.frame_size[1]))
        self.is_3d = any(ch.psf.is_3d for ch in self.channels)
        for c, ch in enumerate(self.channels):  # the simulator refuses such a range; a fit is bounded to the spline's
            lo, hi, cal = psf_z_range(ch, config.channels[c])
            if z_lo < lo - 0.5 or z_hi > hi + 0.5:
                warnings.warn(
                    f"emitters.z_range_nm [{z_lo:g}, {z_hi:g}] nm reaches beyond channel {c}'s spline PSF, calibrated "
                    f"over z [{lo:.0f}, {hi:.0f}] nm ({cal or ''}): the fits are "
                    "bounded to the calibrated range, and an emitter beyond it is held on its edge (at_bound 2, "
                    "converged 0); narrow emitters.z_range_nm to the calibrated range, or calibrate over a wider one",
                    ZRangeWarning, stacklevel=2)
        if photon_model is None:
            photon_model = "linked" if config.photon_model.kind == "linked" else "free"
        if photon_model not in ("linked", "free"):
            raise InputError(f"photon_model must be 'linked' or 'free', got {photon_model!r}")
        self.linked = photon_model == "linked" or config.n_channels == 1
        # z bounds: the emitters' range (widened by z_margin_nm; a single plane by 500 nm), starts across it
        if z_margin_nm < 0:
            raise InputError(f"z_margin_nm must be >= 0, got {z_margin_nm}")
        margin = max(float(z_margin_nm), 500.0) if z_hi - z_lo < 1.0 else float(z_margin_nm)
        self.z_range_nm = (z_lo - margin, z_hi + margin)
        if z_starts_nm is None and self.is_3d:
            span = z_hi - z_lo
            z_starts_nm = [z_lo + span * (i + 0.5) / 3 for i in range(3)] if span > 0 else [z_lo]
        self.z_starts_nm = z_starts_nm
        # detection filter width and the window size
        zs = [z_lo, 0.0, z_hi] if self.is_3d else [0.0]
        sig_focus = min(psf_sigma_px(ch.psf, z_nm=0.0 - ch.z_offset_nm) for ch in self.channels)
        sig_max = max(psf_sigma_px(ch.psf, z_nm=z - ch.z_offset_nm) for ch in self.channels for z in zs)
        self.sigma_px = sig_focus
        cap = spline_window_cap_px([ch.psf for ch in self.channels])
        roi_px_default = roi_px is None
        if roi_px is None:
            roi_px = 2 * math.ceil(3.5 * sig_max) + 1
            if cap is not None:
                roi_px = min(roi_px, cap)
        elif cap is not None and roi_px > cap:
            raise InputError(
                f"fitting window {roi_px} px exceeds the spline PSF's lateral extent: at most {cap} px (pixels the "
                "spline does not model would be fitted as background only and bias z)"
            )
        self.roi_px = int(roi_px)
        if self.roi_px < 5:
            raise InputError(f"fitting window must be at least 5 pixels, got {self.roi_px}")
        if min_roi_px is None and roi_px_default:
            min_roi_px = DEFAULT_MIN_ROI_PX
        if min_roi_px is not None and (min_roi_px < 5 or min_roi_px % 2 == 0):
            raise InputError(f"min_roi_px must be odd and at least 5, got {min_roi_px}")
        self.min_roi_px = None if min_roi_px is None else min(int(min_roi_px), self.roi_px)
        self.crowded_gap_px = math.ceil(1.5 * sig_max)
        # the window is checked against each movie's frames in fit_frames, not against config.frame_size:
        # a training configuration's small ROI says nothing of the movies it fits
        self.threshold_photons = threshold_photons
        self.min_llr_pvalue = min_llr_pvalue
        #: fits made, and fits left out of the tables and why (:meth:`_table`): a position outside its window (the fit
        #: ran to a neighbour or off the spot), not finite, or a goodness of fit under ``min_llr_pvalue``
        self.fits = 0
        self.dropped: dict[str, int] = {"outside_window": 0, "not_finite": 0, "goodness_of_fit": 0}
        #: rows of the tables (kept) that did not converge, those on each bound (:data:`~plexloc.mle.fit.AT_BOUND_BITS`),
        #: and those whose spot is not significant against background alone (``p_spot`` > :data:`SPOT_P_REPORT`)
        self.flagged: dict[str, int] = {"not_converged": 0, **{name: 0 for name in AT_BOUND_BITS}, "not_significant": 0}
        #: rows of the tables (kept) whose fitting window holds a pixel at the camera's clipping level (saturated_px)
        self.saturated_rows = 0
        #: each channel's clipping level and where it came from (:func:`plexloc.camera.check.clip_level`), set by
        #: :func:`fit_movie` from the first frames (and frames spread over the movie, :func:`later_raw_frames`); None:
        #: :meth:`clip_thresholds` takes the camera's ``saturation_adu``, else the frames' integer pixel type's maximum
        self.clip_levels: list[tuple[float | None, str]] | None = None
        self._clip_cache: tuple | None = None  # (levels, cameras, frame shape) -> their thresholds (clip_thresholds)
        self.max_iter = max_iter
        self.batch_size = batch_size
        fr = [ch.throughput for ch in self.channels]
        total = sum(fr)
        self.fit_channels = [
            FitChannel(
                model=roi_model_for(ch.psf, free_sigma=free_sigma),
                transform=None if c == 0 and _is_identity(ch.transform) else ch.transform.double(),
                z_offset_nm=ch.z_offset_nm,
                fraction=fr[c] / total,
            )
            for c, ch in enumerate(self.channels)
        ]

    def cut_camera_maps(self, movies: "ChannelMovies", given: tuple[int, int] | None = None,
                        given_by: str = "--roi-offset") -> list[tuple]:
        """Full-chip sCMOS maps (as ``plexloc calibrate-camera`` writes them) with a camera ROI's movie: each channel's
        maps cut to its frames at the ROI's chip position (``given``, named ``given_by``, else the movie's
        Micro-Manager metadata), as
        :func:`plexloc.camera.models.cut_maps_to_movie` does for a network fit (a fit refused "frame shape (150, 120)
        does not match the sCMOS maps' shape (200, 180)"). Returns ``(channel, map shape, (x, y), source)`` per cut
        (a split-view movie's channels are cut from its boxes: not handled here, refused by the shape check)."""
        from plexloc.camera.models import cut_maps_to_movie

        out = []
        if movies.split is not None:
            return out
        for c, ch in enumerate(self.channels):
            shape, frame_shape = ch.camera.map_shape if hasattr(ch.camera, "map_shape") else None, movies.readers[c].frame_shape
            if shape is None or tuple(shape) == tuple(frame_shape):
                continue
            cut = cut_maps_to_movie(ch.camera, movies.readers, given, tuple(frame_shape), channel=c,
                                    source=movies.paths[c], given_by=given_by)
            if cut is not None:
                ch.camera, at, where = cut[0].to(self.device), cut[1], cut[2]
                out.append((c, tuple(shape), at, where))
        return out

    # --- stages -------------------------------------------------------------------------------
    def clip_thresholds(self, frames: Sequence[np.ndarray | Tensor] | None = None) -> list[Tensor | None]:
        """Each channel's clipping level in photons (:func:`~plexloc.camera.check.clip_threshold_photons`, on the
        fitter's device; None where there is none): the levels :func:`fit_movie` found (:attr:`clip_levels`), else the
        camera's ``saturation_adu``, else the maximum of the raw ``frames``' integer pixel type."""
        from plexloc.camera.check import clip_level, clip_threshold_photons

        # the levels fit_movie found are fixed for the movie: their thresholds once, not for every batch (a camera
        # with per-pixel maps is copied to the CPU and back for them)
        key = (tuple(self.clip_levels), tuple(id(ch.camera) for ch in self.channels), self.frame_shape) \
            if self.clip_levels is not None else None
        if key is not None and self._clip_cache is not None and self._clip_cache[0] == key:
            return self._clip_cache[1]
        out = []
        for c, ch in enumerate(self.channels):
            if self.clip_levels is not None:
                level = self.clip_levels[c][0]
            else:
                f = frames[c] if frames is not None else None
                dtype = (np.float32 if f is None else f.dtype if isinstance(f, np.ndarray)
                         else torch.empty(0, dtype=f.dtype).numpy().dtype if isinstance(f, Tensor) else np.asarray(f).dtype)
                level = clip_level(None, ch.camera, dtype)[0]
            out.append(clip_threshold_photons(ch.camera, level, self.frame_shape, device=self.device))
        if key is not None:
            self._clip_cache = (key, out)
        return out

    def to_photons(self, frames: Sequence[np.ndarray | Tensor]) -> Tensor:
        """Raw frames (one (T, H, W) array per channel) -> photons (C, T, H, W) on the fitter's device."""
        out = []
        for ch, f in zip(self.channels, frames):
            t = torch.as_tensor(np.asarray(f) if not isinstance(f, Tensor) else f).to(self.device, torch.float32)
            out.append(ch.camera.to_photons(t))
        return torch.stack(out)

    def detect(self, photons: Tensor) -> Candidates:
        """Spots in reference-channel pixels: local maxima of the summed, warped DoG images above ``threshold_photons``
        or, by default, :func:`noise_threshold` of the summed :func:`detection_noise_variance` (the camera's noise at
        each frame's level, its heavy tails and the filter's edges)."""
        C, T, H, W = photons.shape
        total = None
        variance = torch.zeros(T, 1, 1, device=photons.device)
        for c, ch in enumerate(self.channels):
            dog = dog_filter(photons[c], sigma_px=self.sigma_px)
            warp = c > 0 or not _is_identity(ch.transform)
            if warp:
                dog = self._warp_to_reference(dog, ch.transform)
            total = dog if total is None else total + dog
            if self.threshold_photons is None:
                var = detection_noise_variance(photons[c], ch.camera, self.sigma_px)
                variance = variance + (self._warp_to_reference(var, ch.transform) if warp and var.shape[-1] > 1 else var)
        if self.threshold_photons is not None:
            thr = self.threshold_photons
        else:
            thr = noise_threshold(variance, self.sigma_px)
        return local_maxima(total, thr, min_distance_px=max(2, round(1.5 * self.sigma_px)))

    def _warp_to_reference(self, img: Tensor, transform: Tensor) -> Tensor:
        T, H, W = img.shape
        px = self.config.px_size_xy_nm
        ys = (torch.arange(H, device=img.device, dtype=torch.float64) + 0.5) * px[1]
        xs = (torch.arange(W, device=img.device, dtype=torch.float64) + 0.5) * px[0]
        Y, X = torch.meshgrid(ys, xs, indexing="ij")
        t = transform.to(img.device, torch.float64)
        w = t[2, 0] * X + t[2, 1] * Y + t[2, 2]
        xc = (t[0, 0] * X + t[0, 1] * Y + t[0, 2]) / w
        yc = (t[1, 0] * X + t[1, 1] * Y + t[1, 2]) / w
        grid = torch.stack([2 * xc / (px[0] * W) - 1, 2 * yc / (px[1] * H) - 1], dim=-1).to(img.dtype)
        out = nnf.grid_sample(img[:, None], grid[None].expand(T, H, W, 2), mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[:, 0]

    def window_sizes(self, cand: Candidates) -> np.ndarray:
        """Each candidate's window (odd, px): ``roi_px``, or for a spot whose nearest other detection in its
        frame is ``d`` pixels away (the larger of the row and column distances, reference channel) the
        half-width ``d - crowded_gap_px``, never below ``min_roi_px``: the neighbour's light within about
        1.5 sigma of it stays out of the window."""
        R, n = self.roi_px, len(cand)
        if self.min_roi_px is None or self.min_roi_px >= R or n < 2:
            return np.full(n, R, dtype=np.int64)
        from scipy.spatial import cKDTree

        # frames far apart along a third axis: the nearest neighbour is always in the same frame (or none)
        pts = np.stack([np.asarray(cand.frame, np.float64) * (4.0 * (max(self.frame_shape) + R)),
                        np.asarray(cand.row, np.float64), np.asarray(cand.col, np.float64)], axis=1)
        d = cKDTree(pts).query(pts, k=2, p=np.inf)[0][:, 1]
        half = np.clip(d - self.crowded_gap_px, self.min_roi_px // 2, R // 2)
        return (2 * half.astype(np.int64) + 1).astype(np.int64)

    def windows(self, photons: Tensor, cand: Candidates, roi_px: int | None = None
                ) -> tuple[list[Tensor], Tensor, Tensor, list[Tensor], list[Tensor]]:
        """Fitting windows (``roi_px``, default the fitter's) of every candidate in every channel.

        Returns ``rois`` (one (N, R, R) per channel), ``origins`` (N, C, 2) (row, col), the start pixel
        (N, 2) (row, col) of each spot in channel 0's window, and the effective-count terms ``k``,
        ``offset`` per channel (scalars, or (N, R, R) for per-pixel sCMOS maps).
        """
        C, T, H, W = photons.shape
        R = self.roi_px if roi_px is None else int(roi_px)
        dev = photons.device
        f = torch.as_tensor(cand.frame, device=dev, dtype=torch.int64)
        r = torch.as_tensor(cand.row, device=dev, dtype=torch.int64)
        c = torch.as_tensor(cand.col, device=dev, dtype=torch.int64)
        px = self.config.px_size_xy_nm
        X = (c.double() + 0.5) * px[0]
        Y = (r.double() + 0.5) * px[1]
        off = torch.arange(R, device=dev)
        rois, origins, ks, offs = [], [], [], []
        for ci, ch in enumerate(self.channels):
            if ci == 0 and _is_identity(ch.transform):
                rc, cc = r, c
            else:
                t = ch.transform.to(dev, torch.float64)
                w = t[2, 0] * X + t[2, 1] * Y + t[2, 2]
                cc = torch.floor((t[0, 0] * X + t[0, 1] * Y + t[0, 2]) / w / px[0]).to(torch.int64)
                rc = torch.floor((t[1, 0] * X + t[1, 1] * Y + t[1, 2]) / w / px[1]).to(torch.int64)
            row0 = (rc - R // 2).clamp(0, H - R)
            col0 = (cc - R // 2).clamp(0, W - R)
            rows = row0[:, None, None] + off[None, :, None]
            cols = col0[:, None, None] + off[None, None, :]
            rois.append(photons[ci][f[:, None, None], rows, cols])
            origins.append(torch.stack([row0, col0], dim=1))
            k, o = noise_terms(ch.camera.noise_variance_photons, photons[ci, 0])
            ks.append(k if k.ndim == 0 else k[rows, cols])
            offs.append(o if o.ndim == 0 else o[rows, cols])
        origins_t = torch.stack(origins, dim=1)
        start = torch.stack([r - origins_t[:, 0, 0], c - origins_t[:, 0, 1]], dim=1)
        return rois, origins_t, start, ks, offs

    def fit_frames(self, frames: Sequence[np.ndarray | Tensor] | np.ndarray | Tensor, *, frame_offset: int = 0,
                   photons: Tensor | None = None) -> LocTable:
        """Detect and fit one chunk of raw frames (ADU), held in memory: one ``(T, H, W)`` array or tensor per channel
        (a list), or one array ``(C, T, H, W)``; a single-channel fitter also takes one ``(T, H, W)`` array. Frame
        numbers in the table start at ``frame_offset``. A whole movie, in chunks, with the camera, PSF and alignment
        checks of the first frames: :func:`fit_movie` (which takes such arrays too). ``photons``: the frames already
        converted (:meth:`to_photons`; the first chunk's, which the camera check read), not converted again."""
        frames = self._channel_frames(frames)
        if len(frames) != len(self.channels):
            raise InputError(f"{len(frames)} movies for {len(self.channels)} channels (give one (T, H, W) array per "
                             "channel, or one (C, T, H, W) array)")
        photons = self.to_photons(frames) if photons is None else photons
        self.frame_shape = tuple(photons.shape[-2:])
        if self.roi_px > min(self.frame_shape):
            raise InputError(f"fitting window {self.roi_px} px is larger than the frame {self.frame_shape}")
        cand = self.detect(photons)
        return self.fit_candidates(photons, cand, frame_offset=frame_offset, clip=self.clip_thresholds(frames))

    def _channel_frames(self, frames) -> Sequence[np.ndarray | Tensor]:
        """``frames`` as one ``(T, H, W)`` array per channel: a single channel's ``(T, H, W)`` array, a ``(C, T, H, W)``
        array, or a list of ``(T, H, W)`` arrays (each checked)."""
        if isinstance(frames, (np.ndarray, Tensor)):
            if frames.ndim == 3 and len(self.channels) == 1:
                return [frames]
            if frames.ndim == 4:
                return list(frames)
            raise InputError(f"frames of shape {tuple(frames.shape)}: give (C, T, H, W) for {len(self.channels)} "
                             f"channel(s){' or (T, H, W)' if len(self.channels) == 1 else ''}")
        if not isinstance(frames, Sequence) or isinstance(frames, str):
            raise TypeError(f"frames must be a numpy array or torch tensor, or a list of one (T, H, W) per channel; "
                            f"got {type(frames).__name__}")
        for c, f in enumerate(frames):
            if np.ndim(f) != 3:
                raise InputError(f"channel {c}'s frames have shape {tuple(np.shape(f))}; each channel's must be (T, H, W)")
        return frames

    def fit_candidates(self, photons: Tensor, cand: Candidates, *, frame_offset: int = 0,
                       clip: Sequence[Tensor | None] | None = None) -> LocTable:
        """Fit given candidates (reference-channel pixels) of photon frames (C, T, H, W); one batch per
        window size (:meth:`window_sizes`), rows in the candidates' order. ``clip``: each channel's clipping level in
        photons (:meth:`clip_thresholds`; default: the cameras' ``saturation_adu`` only): the column
        ``saturated_px`` counts the pixels of each fitting window (all channels) at or above it."""
        if clip is None:
            clip = self.clip_thresholds()
        sizes = self.window_sizes(cand)
        tables, order = [], []
        for R in np.unique(sizes) if len(cand) else [self.roi_px]:
            idx = np.flatnonzero(sizes == R) if len(cand) else np.zeros(0, np.int64)
            sub = cand if len(idx) == len(cand) else Candidates(*(np.asarray(a)[idx] for a in
                                                                   (cand.frame, cand.row, cand.col, cand.height)))
            rois, origins, start, ks, offs = self.windows(photons, sub, int(R))
            saturated = _clipped_in_windows(rois, origins, clip)
            res = fit_rois(
                rois,
                self.fit_channels,
                origins=origins,
                k=ks,
                offset=offs,
                linked=self.linked,
                z_starts_nm=self.z_starts_nm,
                z_range_nm=self.z_range_nm if self.is_3d else None,
                start_pixel=start,
                max_iter=self.max_iter,
                batch_size=self.batch_size,
            )
            table, keep = self._table(res, np.asarray(sub.frame) + frame_offset, origins.cpu(), int(R),
                                      saturated=saturated)
            tables.append(table)
            order.append(idx[keep])
        if len(tables) == 1:
            return tables[0]
        return LocTable.concat(tables)[np.argsort(np.concatenate(order), kind="stable")]

    def _table(self, res: FitResult, frame: np.ndarray, origins: Tensor, R: int,
               saturated: np.ndarray | None = None) -> tuple[LocTable, np.ndarray]:
        px = self.config.px_size_xy_nm
        saturated = np.zeros(len(res), np.int64) if saturated is None else np.asarray(saturated, np.int64)
        lx = res.x_nm.numpy() / px[0] - origins[:, 0, 1].numpy()
        ly = res.y_nm.numpy() / px[1] - origins[:, 0, 0].numpy()
        finite = np.isfinite(res.x_nm.numpy()) & np.isfinite(res.y_nm.numpy())
        inside = (lx > 0) & (lx < R) & (ly > 0) & (ly < R)
        keep = finite & inside
        self.fits += len(res)
        self.dropped["not_finite"] += int((~finite).sum())
        self.dropped["outside_window"] += int((finite & ~inside).sum())
        dof = res.n_pixels - res.n_params
        if self.min_llr_pvalue is not None and len(res):
            from scipy.stats import chi2

            good = chi2.sf(res.llr.numpy(), dof) >= self.min_llr_pvalue
            self.dropped["goodness_of_fit"] += int((keep & ~good).sum())
            keep &= good
        self.flagged["not_converged"] += int((keep & ~res.converged.numpy()).sum())
        for name, bit in AT_BOUND_BITS.items():
            self.flagged[name] += int((keep & ((res.at_bound.numpy() & bit) != 0)).sum())
        self.saturated_rows += int((keep & (saturated > 0)).sum())
        self.flagged["not_significant"] += int((keep & (res.p_spot.numpy() > SPOT_P_REPORT)).sum())
        cols = {
            "frame": frame,
            "x_nm": res.x_nm.numpy(),
            "y_nm": res.y_nm.numpy(),
            "z_nm": res.z_nm.numpy(),
            "photons": res.photons.numpy(),
            "bg": res.bg_ch[:, 0].numpy(),
            "crlb_x_nm": res.crlb["x_nm"].numpy(),
            "crlb_y_nm": res.crlb["y_nm"].numpy(),
            "crlb_z_nm": res.crlb["z_nm"].numpy(),
            "crlb_photons": res.crlb["photons"].numpy(),
            "crlb_bg": res.crlb["bg"].numpy(),
            "iterations": res.iterations.numpy().astype(np.float64),
            "converged": res.converged.numpy().astype(np.float64),
            "at_bound": res.at_bound.numpy().astype(np.int64),  # a sum of bits: t["at_bound"] & 2 works
            "loglik": res.loglik.numpy(),
            "llr": res.llr.numpy(),
            "spot_llr": res.spot_llr.numpy(),
            "p_spot": res.p_spot.numpy(),
            "roi_px": np.full(len(res), float(R)),
            "saturated_px": saturated,
        }
        if res.sigma_scale is not None:
            s0 = self.channels[0].psf.sigma_nm
            cols["psf_sigma_x_nm"] = res.sigma_scale.numpy() * s0[0]
            cols["psf_sigma_y_nm"] = res.sigma_scale.numpy() * s0[1]
        if len(self.channels) > 1:
            for c in range(len(self.channels)):
                cols[f"photons_ch{c}"] = res.photons_ch[:, c].numpy()  # already each channel's share of photons
                cols[f"bg_ch{c}"] = res.bg_ch[:, c].numpy()
        return LocTable({k: np.asarray(v)[keep] for k, v in cols.items()}), keep


def _clipped_in_windows(rois: Sequence[Tensor], origins: Tensor, clip: Sequence[Tensor | None]) -> np.ndarray:
    """Pixels at the clipping level in each candidate's windows, summed over the channels (:func:`count_clipped`):
    ``(N,)`` int64 on the CPU. ``origins`` (N, C, 2): each window's corner (row, col) in its channel."""
    from plexloc.camera.check import count_clipped

    n = rois[0].shape[0] if rois else 0
    total = torch.zeros(n, dtype=torch.int64, device=rois[0].device if rois else "cpu")
    for c, (roi, thr) in enumerate(zip(rois, clip)):
        if thr is None or not n:
            continue
        rows = cols = None
        if thr.ndim == 2:  # per-pixel maps: the threshold at each window's pixels
            off = torch.arange(roi.shape[-1], device=roi.device)
            o = origins[:, c].to(roi.device)
            rows = o[:, 0, None, None] + off[None, :, None]
            cols = o[:, 1, None, None] + off[None, None, :]
        total += count_clipped(roi, thr.to(roi.device), rows, cols)
    return total.cpu().numpy()


def _is_identity(t: Tensor) -> bool:
    return bool(torch.equal(t.detach().cpu().double(), torch.eye(3, dtype=torch.float64)))


def fit_movie(
    movie: str | os.PathLike | np.ndarray | Tensor | Sequence[str | os.PathLike | np.ndarray | Tensor],
    config: SimulationConfig,
    *,
    device: str | torch.device = "cpu",
    camera: CameraConfig | Sequence[CameraConfig] | None = None,
    batch_frames: int = 256,
    threshold_photons: float | None = None,
    progress: bool = False,
    refine_mle: bool = False,
    **options,
) -> LocTable:
    """Localize a movie by maximum likelihood (single- or multi-channel), streamed chunk by chunk.

    Args:
        movie: a TIFF stack or folder of TIFFs, or one per channel (a list) for multi-channel configs, or one
            split-view movie where the configuration has a ``split_view`` section (each channel's camera maps then
            cover its box, cut out and flipped as its image is); or raw frames (ADU) held in memory: a numpy array or
            torch tensor ``(T, H, W)``, ``(C, T, H, W)`` (one movie per channel, as ``MovieSimulation.frames``) or a
            list of one per channel (:func:`plexloc.io.tiff.channel_movies`; no metadata: give ``roi_offset_px``).
        config: the validated configuration (PSF, camera, pixel size, channels with transforms).
        device: where detection and fitting run (``cpu``, ``cuda``).
        camera: camera configuration replacing the config's (one for all channels, or one per channel).
        batch_frames: frames read, detected and fitted at a time; at most
            :data:`~plexloc.io.tiff.CHUNK_PIXELS` pixels (all channels), as the network fit reads them: fewer of
            large frames (16 of 1000 x 1000).
        threshold_photons: detection threshold (photons per pixel of the DoG image; default: noise based).
        progress: show a progress bar (frames, and their rate).
        refine_mle: refit each row with the other rows of its frame in the model
            (:func:`plexloc.mle.refine.refine_frames`, as ``plexloc fit --refine-mle`` refines a network's rows): the
            single-emitter fit reads a neighbour's light as its own. On dense 3D movies (examples/3d_astigmatic.yaml,
            0.5 and 1 emitters/um^2, bench/mle51.py) it took the axial RMSE from 100 / 126 to 90 / 119 nm and the
            lateral from 44.0 / 61.2 to 42.4 / 60.0 nm; it cannot split two spots fitted as one (no row is added). The
            refined rows get column ``refined`` 1, and their fit's columns (``converged``, ``at_bound``, CRLBs, ``bg``,
            ``p_spot``, ``loglik``, ``iterations`` and, with a free PSF width, ``psf_sigma_x_nm``/``psf_sigma_y_nm``)
            are the refit's; ``stats["refined_rows"]`` counts them.
        options: passed to :class:`MLEFitter` (``roi_px``, ``min_roi_px``, ``free_sigma``, ``photon_model``,
            ``z_starts_nm``, ``z_margin_nm``, ``min_llr_pvalue``, ``max_iter``, ``batch_size``, ``roi_offset_px``:
            for several channels, the chip pixel (x, y) at the frames' corner; default the camera ROI in the
            movie's Micro-Manager metadata, else the configuration's ``roi_offset_px``).

    The first frames are checked against the cameras (:func:`plexloc.camera.check.check_camera`): a noise that
    the camera settings do not predict (a wrong gain, e-/ADU or baseline) or pixels clipped at the pixel type's
    maximum give a :class:`~plexloc.camera.check.CameraWarning`. Several channels' first frames are checked against
    the configured geometry before any fit (:mod:`plexloc.calibrate.alignment`): a split-view flip forgotten, boxes or
    movies swapped, or a transform off by 1.5 px or more give a
    :class:`~plexloc.calibrate.alignment.ChannelAlignmentWarning`.

    Returns:
        A :class:`~plexloc.table.LocTable` with ``frame, x_nm, y_nm, z_nm, photons, bg, crlb_x_nm,
        crlb_y_nm, crlb_z_nm, crlb_photons, crlb_bg, iterations, converged, at_bound, loglik, llr, spot_llr, p_spot, roi_px,
        saturated_px`` (and ``photons_chN, bg_chN``
        for several channels, ``psf_sigma_x_nm, psf_sigma_y_nm`` with a free PSF width), sorted by frame.
    """
    parts = list(_fit_parts(movie, config, device=device, camera=camera, batch_frames=batch_frames,
                            threshold_photons=threshold_photons, progress=progress, refine_mle=refine_mle, **options))
    return LocTable.concat(parts)


def fit_movie_to_file(
    movie: str | os.PathLike | np.ndarray | Tensor | Sequence[str | os.PathLike | np.ndarray | Tensor],
    config: SimulationConfig,
    out: str | os.PathLike,
    *,
    float_format: str | None = None,
    filters: dict | None = None,
    stats: dict | None = None,
    **kwargs,
) -> int:
    """:func:`fit_movie` written to the table file ``out`` batch by batch (the table is never held whole); the file
    appears once the movie is done (:class:`~plexloc.io.tables.TableWriter`). ``filters``: keyword arguments of
    :func:`plexloc.post.filter.filter_localizations` applied to each batch (e.g. ``min_photons``); their counts go
    to ``stats["filtered"]``. Returns the rows written."""
    from plexloc.io.tables import DEFAULT_FLOAT_FORMAT, TableWriter

    given = {k: v for k, v in (filters or {}).items() if v is not None}
    if given:
        from plexloc.post.filter import filter_localizations
    kwargs = {**keyword_defaults(fit_movie), **kwargs}
    with TableWriter(out, float_format=float_format or DEFAULT_FLOAT_FORMAT, background=True) as writer:
        for part in _fit_parts(movie, config, stats=stats, **kwargs):
            if given:
                part, report = filter_localizations(part, **given)
                if stats is not None:
                    stats["filtered"] = stats["filtered"].add(report) if "filtered" in stats else report
            writer.append(part)
    return writer.rows


def check_movie_count(movie, config: SimulationConfig, *, source: str | os.PathLike | None = None) -> None:
    """One movie per channel of ``config``, or one split-view movie where it has a ``split_view`` section: an
    :class:`InputError` naming the movies (and ``source``, the configuration's file, where the caller knows it)."""
    from plexloc.io.tiff import channel_movies

    paths = channel_movies(movie)
    split = len(paths) == 1 and config.n_channels > 1 and config.split_view is not None
    if not split and len(paths) != config.n_channels:
        raise InputError(f"the configuration has {config.n_channels} channel(s) but {len(paths)} movie(s) were "
                         f"given: {', '.join(str(p) for p in paths)} (one movie per channel, or one split-view "
                         "movie with a split_view section in the configuration)", source=source)


class ChannelMovies:
    """The movies of a configuration's channels, opened and checked: one TIFF per channel (the same frame count and
    shape, both files named otherwise), or one split-view movie cut by the configuration's ``split_view`` boxes and
    flips. A context manager; :meth:`frames` gives one raw ``(T, H, W)`` array per channel."""

    def __init__(self, movie, config: SimulationConfig):
        from plexloc.io.splitview import check_boxes
        from plexloc.io.tiff import channel_movies, open_channel_movie

        self.paths = channel_movies(movie)  # paths, or frames held in memory (ArrayMovie)
        paths = self.paths
        self.split = config.split_view if (len(paths) == 1 and config.n_channels > 1) else None
        check_movie_count(paths, config)
        if self.split is not None and len(self.split.boxes) != config.n_channels:
            raise InputError(f"split_view has {len(self.split.boxes)} boxes for {config.n_channels} channels",
                             source=paths[0])
        self.readers = [open_channel_movie(p) for p in paths]
        try:
            self.n = len(self.readers[0])
            for p, rd in zip(paths, self.readers):
                if len(rd) != self.n or rd.frame_shape != self.readers[0].frame_shape:
                    raise InputError(f"channel movies differ: {p} has {len(rd)} frames of {rd.frame_shape}, "
                                     f"{paths[0]} {self.n} of {self.readers[0].frame_shape}", source=p)
            if self.split is not None:
                check_boxes(self.split, self.readers[0].frame_shape, source=paths[0])
        except BaseException:
            self.close()
            raise

    @property
    def sources(self) -> list[str] | str:
        """The files that camera findings name: one per channel, or the split-view movie."""
        return [str(p) for p in self.paths] if self.split is None else str(self.paths[0])

    def frames(self, a: int, b: int) -> list:
        """Raw frames ``a:b`` of every channel (split-view boxes cut and flipped before any camera conversion)."""
        if self.split is not None:
            from plexloc.io.splitview import split_frames

            raw = split_frames(np.asarray(self.readers[0][a:b], dtype=np.float32), self.split)
            return [raw[:, c] for c in range(raw.shape[1])]
        return [rd[a:b] for rd in self.readers]

    def close(self) -> None:
        for rd in self.readers:
            rd.close()

    def __enter__(self) -> ChannelMovies:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fit_parts(movie, config: SimulationConfig, *, device, camera, batch_frames: int, threshold_photons,
               progress: bool, stats: dict | None = None, refine_mle: bool = False,
               **options) -> Iterator[LocTable]:
    """Each batch's table, sorted by frame, in frame order; one empty table (its columns) for a movie without any.
    The arguments are :func:`fit_movie`'s (its signature holds the defaults). ``stats`` (where given) receives
    ``roi_offset_px``, ``roi_offset_source`` and ``alignment`` (the
    :class:`~plexloc.calibrate.alignment.AlignmentReport` of the first frames against the channel geometry, whose
    findings are also :class:`~plexloc.calibrate.alignment.ChannelAlignmentWarning` s) for several channels, and
    ``psf_shape`` (one :class:`~plexloc.psf.check.PSFShapeReport` per channel: the first frames' spot widths against
    the PSFs) and ``camera``: the
    :class:`~plexloc.camera.check.CameraCheck` of the first frames (noise and saturation against the cameras), whose
    findings are also :class:`~plexloc.camera.check.CameraWarning` s (a wrong camera gave 9,355 rows for 2,985 and a
    median bg of 2,576 photons/px, silently); after the last table, ``fits`` (fits made), ``dropped`` (those left
    out, by reason: ``outside_window``, ``not_finite``, ``goodness_of_fit``; :meth:`MLEFitter._table`), ``flagged``
    (rows kept with ``converged`` 0, and rows on each bound of ``at_bound``) and ``saturated_rows`` (rows kept whose
    fitting window holds a pixel at the clipping level: ``saturated_px`` > 0; each channel's level and where it came
    from in ``clip_levels``, :func:`plexloc.camera.check.clip_level`), ``frames``, ``seconds`` and ``frames_per_s``
    (the frames' loop: reading, detection, fits and writing, as the network fit's; not the checks of the first frames)
    and ``chunk_frames`` (frames a chunk: ``batch_frames``, fewer of large frames)."""
    from plexloc.io.pixel_size import warn_pixel_size
    from plexloc.simulation.simulator import check_spline_channels

    _check_config(config)
    if batch_frames < 1:
        raise InputError(f"batch_frames must be >= 1, got {batch_frames}")
    check_spline_channels(config)  # a spline channel left on calibration channel 0, or a transform not the file's
    found, empty = False, None
    with ChannelMovies(movie, config) as movies:
        readers, n = movies.readers, movies.n
        warn_pixel_size(readers[0], config.px_size_xy_nm, what="the configuration says")
        fitter = movie_fitter(movies, config, stats=stats, device=device, camera=camera,
                              threshold_photons=threshold_photons, **options)
        if config.n_channels > 1:  # the first frames against the configured channel geometry, before any fit
            alignment = alignment_check(fitter, movies)
            if stats is not None:
                stats["alignment"] = alignment
        shapes = psf_shape_check(fitter, movies)  # the spots against the PSFs (a 2D PSF on an astigmatic movie, ...)
        if stats is not None:
            stats["psf_shape"] = shapes
        # at most CHUNK_PIXELS pixels (all channels) a chunk, as the network fit reads them: 256 frames of 1000 x 1000
        # were 256 MB of float32 photons per channel, and the detection's images several times that (3.3 GB peak RSS)
        per_frame = int(np.prod(readers[0].frame_shape)) * (1 if movies.split is not None else len(readers))
        step = frames_per_chunk(per_frame, batch_frames)
        # frames, not chunks, with their rate, as the network fit counts them; the checks before the loop (and the
        # camera check of its first frames) are a fixed cost outside frames_per_s
        bar = None
        if progress:
            from plexloc.progress import progress as make_bar

            bar = make_bar(None, total=n, desc="fit", unit="frame")
        n_rows, check_s, t0, refined_rows = 0, 0.0, time.perf_counter(), 0
        try:
            for s in range(0, n, step):
                frames = movies.frames(s, min(s + step, n))
                photons = None
                if s == 0:  # the first frames against the cameras: noise and saturation (plexloc.camera.check)
                    t_check = time.perf_counter()
                    photons = fitter.to_photons(frames)  # once, for the check and the fit
                    check = first_frames_check(fitter, frames, dtype=readers[0].dtype, source=movies.sources,
                                               photons=photons, later=later_raw_frames(movies))
                    check_s = time.perf_counter() - t_check
                    if stats is not None:
                        stats["camera"] = check
                        stats["clip_levels"] = list(fitter.clip_levels)
                if refine_mle:
                    photons = fitter.to_photons(frames) if photons is None else photons
                part = fitter.fit_frames(frames, frame_offset=s, photons=photons).sort_by_frame()
                if refine_mle and len(part):  # each row refitted with its frame's other rows in the model
                    from plexloc.mle.refine import refine_frames

                    before = _flag_counts(part)
                    part = refine_frames(fitter, photons, part, frame_offset=s)
                    for k, v in _flag_counts(part).items():  # the flags of the refits (converged, at_bound, p_spot)
                        fitter.flagged[k] += v - before[k]
                    refined_rows += int(np.count_nonzero(np.asarray(part["refined"]) > 0))
                photons = None
                n_rows += len(part)
                if bar is not None:
                    bar.update(len(frames[0]))
                    bar.set_postfix(locs=n_rows, refresh=False)
                if len(part):
                    found = True
                    yield part
                elif empty is None:
                    empty = part
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - t0 - check_s
        if stats is not None:  # what the fits left out, and why (before the table is written: a generator's end)
            stats.update(fits=fitter.fits, dropped=dict(fitter.dropped), flagged=dict(fitter.flagged),
                         rows_fitted=fitter.fits - sum(fitter.dropped.values()),  # the rows flagged counts are of
                         z_range_nm=list(fitter.z_range_nm) if fitter.is_3d else None,
                         saturated_rows=fitter.saturated_rows, frames=n, seconds=elapsed,
                         frames_per_s=n / elapsed if elapsed > 0 else float("nan"), chunk_frames=step,
                         **({"refined_rows": refined_rows} if refine_mle else {}))
    if not found:
        table = empty if empty is not None else fitter._table(_empty_result(fitter), np.zeros(0, dtype=np.int64),
                                                              torch.zeros(0, config.n_channels, 2), fitter.roi_px)[0]
        if refine_mle and "refined" not in table:  # the columns of a refined table (a chunk without rows is not refined)
            table = table.with_columns(refined=np.zeros(0))
        yield table


def _flag_counts(table: LocTable) -> dict[str, int]:
    """The rows of an MLE table counted as :meth:`MLEFitter._table` counts them in ``MLEFitter.flagged``: not
    converged, on each bound of ``at_bound``, and not significant (``p_spot`` above :data:`SPOT_P_REPORT`)."""
    at = np.asarray(table["at_bound"]).astype(np.int64)
    out = {"not_converged": int(np.count_nonzero(np.asarray(table["converged"]) == 0))}
    out.update({name: int(np.count_nonzero(at & bit)) for name, bit in AT_BOUND_BITS.items()})
    out["not_significant"] = int(np.count_nonzero(np.asarray(table["p_spot"]) > SPOT_P_REPORT))
    return out


def movie_fitter(movies: ChannelMovies, config: SimulationConfig, *, stats: dict | None = None, **options) -> MLEFitter:
    """The :class:`MLEFitter` (``options``: its arguments) of these movies, placed on the chip: for several channels
    the transforms at the frames' chip position (``roi_offset_px`` given, else the camera ROI in the movie's metadata,
    else the configuration's ``roi_offset_px``), and full-chip sCMOS maps cut there (:meth:`MLEFitter.cut_camera_maps`:
    ``roi_offset_px`` given, else the metadata's, else the configuration's where it sets one). ``stats`` (where given)
    receives ``roi_offset_px`` and ``roi_offset_source`` (several channels) and ``camera_maps_cut``. The fit and
    ``plexloc estimate-priors`` alike (the pre-fit had cut the maps only at a metadata ROI: a movie simulated at the
    configuration's roi_offset_px was refused "frame shape (64, 64) does not match the sCMOS maps' shape (128, 128)"
    where the fit took it)."""
    paths, readers = movies.paths, movies.readers
    given_roi = options.get("roi_offset_px")  # the caller's (--roi-offset), before the metadata's fills it in
    if config.n_channels > 1:  # the transforms act in chip coordinates: where on the chip are these frames?
        if given_roi is not None:
            where = "roi_offset_px given"
        elif (roi := readers[0].roi_offset) is not None:
            options["roi_offset_px"], where = roi.px, f"{roi.source} in {paths[0]}"
        elif "roi_offset_px" in config.model_fields_set:
            where = f"the configuration's roi_offset_px (no ROI position in the metadata of {paths[0]})"
        else:  # as the network's fit and plexloc split say it
            where = (f"default (0, 0): no ROI position in the metadata of {paths[0]} nor roi_offset_px in the "
                     "configuration")
        if stats is not None:
            stats.update(roi_offset_px=tuple(options.get("roi_offset_px") or config.roi_offset_px),
                         roi_offset_source=where)
    fitter = MLEFitter(config, **options)
    given_by = "--roi-offset"
    if given_roi is None and readers[0].roi_offset is None and "roi_offset_px" in config.model_fields_set:
        # as the transforms and plexloc info take it: the configuration's ROI where the metadata have none
        given_roi, given_by = config.roi_offset_px, "the configuration's roi_offset_px"
    cut = fitter.cut_camera_maps(movies, given_roi, given_by)
    if stats is not None and cut:
        stats["camera_maps_cut"] = cut
    return fitter


def alignment_check(fitter: MLEFitter, movies: ChannelMovies, *, warn: bool = True):
    """:func:`plexloc.calibrate.alignment.check_movie_alignment` on the movies' first frames, converted to photons
    with the fitter's cameras and checked against its channel transforms (already at the movie's ROI offset); a
    :class:`~plexloc.calibrate.alignment.ChannelAlignmentWarning` where the geometry looks wrong and ``warn``."""
    from plexloc.calibrate.alignment import check_movie_alignment

    split = movies.split
    shape = (split.boxes[0][3], split.boxes[0][2]) if split is not None else tuple(movies.readers[0].frame_shape)
    transforms = [ch.transform.detach().cpu().double().numpy() for ch in fitter.channels]
    return check_movie_alignment(lambda a, b: list(fitter.to_photons(movies.frames(a, b))), movies.n, shape,
                                 transforms, fitter.config.px_size_xy_nm, split=split, sources=movies.sources,
                                 warn=warn)


def psf_shape_check(fitter: MLEFitter, movies: ChannelMovies, *, warn: bool = True):
    """:func:`plexloc.psf.check.check_movie_psf_shapes` of the movies' first frames (in photons through the fitter's
    cameras) against the fitter's PSFs over the configuration's z range: one
    :class:`~plexloc.psf.check.PSFShapeReport` per channel; a :class:`~plexloc.psf.check.PSFShapeWarning` where the
    spots do not have the PSF's shape and ``warn``."""
    from plexloc.io.pixel_size import recorded_pixel_size
    from plexloc.psf.check import check_movie_psf_shapes

    return check_movie_psf_shapes(lambda a, b: list(fitter.to_photons(movies.frames(a, b))), movies.n, fitter.config,
                                  channels=fitter.channels, source=movies.sources,
                                  movie_px_size_nm=recorded_pixel_size(movies.readers[0]),
                                  movie_dtype=movies.readers[0].dtype if getattr(movies.readers[0], "counts_dtype_known", True)
                                  else None, warn=warn)


class ClipLevel(tuple):
    """A channel's ``(level ADU, where from)`` that :func:`frame_clip_levels` found only with the frames spread over
    the rest of the movie, not in the first ones: equal to, and unpacked as, the plain pair (``stats["clip_levels"]``);
    :func:`saturated_line` says the level came from later frames (before the session-51 review the fit's summary line
    named the level as if the first frames held it, and ``plexloc info``, which shows the first frames, showed none)."""

    __slots__ = ()
    later = True


def _clip_level_with_later(head, more, camera, dtype) -> tuple[float | None, str]:
    """:func:`~plexloc.camera.check.clip_level` of the first raw frames ``head`` together with ``more`` (frames spread
    over the rest of the movie; None or empty: ``head`` alone), a :class:`ClipLevel` where the first frames alone give
    another level."""
    from plexloc.camera.check import clip_level

    if more is None or not len(more):
        return clip_level(head, camera, dtype)
    arr = head.detach().cpu().numpy() if isinstance(head, Tensor) else np.asarray(head)
    level = clip_level(np.concatenate([arr, more]), camera, dtype)
    if level[1] in ("found", "pile-up") and clip_level(arr, camera, dtype) != level:
        return ClipLevel(level)
    return level


def frame_clip_levels(fitter: MLEFitter, frames: Sequence[np.ndarray | Tensor], *, dtype,
                      later: Sequence[np.ndarray] | None = None) -> list[tuple[float | None, str]]:
    """Each channel's :func:`~plexloc.camera.check.clip_level` from the first raw frames of a chunk (as many as the
    camera check reads): the camera's ``saturation_adu``, else a level found in them
    (:func:`~plexloc.camera.check.find_clip_adu`: a full scale 2^k - 1, or another value their pixels pile up at, as
    a full well clips a 16-bit movie at 1000 ADU), else ``dtype``'s maximum. ``later``: each channel's frames spread
    over the rest of the movie (:func:`later_raw_frames`), looked at with the first ones: a camera that clips only
    later is found before the fit."""
    from plexloc.camera.check import head_frames

    k = head_frames(np.shape(frames[0]))
    out = []
    for c, (f, ch) in enumerate(zip(frames, fitter.channels)):
        # a tensor as it is (find_clip_adu reads it through the CPU): np.asarray of a CUDA tensor raises
        head = f[:k] if isinstance(f, Tensor) else np.asarray(f[:k])
        out.append(_clip_level_with_later(head, later[c] if later is not None else None, ch.camera, dtype))
    return out


def later_raw_frames(movies: ChannelMovies) -> list[np.ndarray] | None:
    """Each channel's raw frames spread over the movie after the first ones the camera check reads
    (:func:`~plexloc.camera.check.later_frames`), for :func:`frame_clip_levels`; None where there are none."""
    from plexloc.camera.check import head_frames, later_frames

    shape = movies.frames(0, 1)[0].shape[-2:] if movies.n else (0, 0)
    more = later_frames(movies.n, min(head_frames(shape), movies.n))
    if not more:
        return None
    parts = [movies.frames(i, i + 1) for i in more]
    return [np.concatenate([np.asarray(p[c]) for p in parts]) for c in range(len(parts[0]))]


def first_frames_check(fitter: MLEFitter, frames: Sequence[np.ndarray | Tensor], *, dtype,
                       source: str | os.PathLike | Sequence[str] = "", photons: Tensor | None = None,
                       later: Sequence[np.ndarray] | None = None) -> CameraCheck:
    """The first raw frames of a movie against the fitter's cameras (:func:`camera_check`, its findings warned as
    :class:`~plexloc.camera.check.CameraWarning` s), and the levels its rows are flagged as saturated at set on the
    fitter (:attr:`MLEFitter.clip_levels`): each channel's :func:`frame_clip_levels`, except a camera
    ``saturation_adu`` that the frames' values exceed (:func:`exceeded_clip_levels`, told once, here). ``photons``: the
    frames converted (:meth:`MLEFitter.to_photons`), where the caller fits them next: converted once, not twice.
    ``later``: frames spread over the rest of the movie (:func:`later_raw_frames`), where the level is looked for too."""
    levels = frame_clip_levels(fitter, frames, dtype=dtype, later=later)
    check = camera_check(fitter, frames, dtype=dtype, source=source, levels=levels, warn=False, photons=photons)
    fitter.clip_levels, told = exceeded_clip_levels(fitter, frames, check, levels, dtype=dtype, later=later)
    check.above_level_told = check.above_level_told or bool(told)  # said once, below, not by the check too
    check.warn(stacklevel=3)
    for line in told:
        warnings.warn(line, CameraWarning, stacklevel=3)
    return check


def exceeded_clip_levels(fitter: MLEFitter, frames: Sequence[np.ndarray | Tensor], check: CameraCheck,
                         levels: Sequence[tuple[float | None, str]], *, dtype,
                         later: Sequence[np.ndarray] | None = None
                         ) -> tuple[list[tuple[float | None, str]], list[str]]:
    """The clipping levels the rows are flagged at (``saturated_px``), and what to tell of them: ``levels`` (each
    channel's :func:`~plexloc.camera.check.clip_level`), except where the camera's ``saturation_adu`` is below values
    of the first raw ``frames`` (``check``'s ``above_level``, :func:`camera_check` of them at ``levels``): no camera
    clips below its own values, so that channel's level is found as if no ``saturation_adu`` were set (a level the
    values pile up at, else ``dtype``'s maximum), with one sentence per such channel naming the setting,
    the movie's largest value and the level taken instead (a ``saturation_adu`` of 1,500 ADU over a movie reaching
    5,055 had flagged 263 of 392 rows, every bright one, as fitted from clipped light). ``later``: each channel's raw
    frames spread over the rest of the movie (:func:`later_raw_frames`), where that level is looked for too, as
    :func:`frame_clip_levels` looks for a level there (before session 51 the first frames alone: a camera configured
    below the movie's values that clips only later got the pixel type's maximum, no row flagged)."""
    from plexloc.camera.check import head_frames

    k = head_frames(np.shape(frames[0]))
    out, told = list(levels), []
    for c, ((level, how), ch) in enumerate(zip(levels, check.channels)):
        if how != "setting" or not ch.above_level:
            continue
        f = frames[c][:k]
        head = f if isinstance(f, Tensor) else np.asarray(f)
        top = float(head.max())  # of the first frames, which the sentence names
        # no setting: found in the frames, else the pixel type's maximum
        out[c] = _clip_level_with_later(head, later[c] if later is not None else None, None, dtype)
        new, src = out[c]
        flagged = ("so no row is flagged as saturated (a float movie has no maximum)" if new is None else
                   f"so rows are flagged as saturated (column saturated_px) at {new:.0f} ADU instead, "
                   + ("where the movie's values pile up" if src in ("found", "pile-up") else "the pixel type's maximum"))
        told.append(f"{check._where(c)}{ch.above_level} pixel values of the first {check.frames} frames lie above the "
                    f"camera's saturation_adu, {level:.0f} ADU ({ch.camera_field}saturation_adu"
                    + (f" in {ch.camera_file}" if ch.camera_file else "") + f"), up to {top:.0f} ADU: the camera does "
                    f"not clip there, {flagged}; set saturation_adu to the level the camera's values pile up at "
                    "(plexloc info shows any), or leave it out")
    return out, told


def camera_check(fitter: MLEFitter, frames: Sequence[np.ndarray | Tensor], *, dtype, source: str | os.PathLike | Sequence[str] = "",
                 warn: bool = True, levels: Sequence[tuple[float | None, str]] | None = None,
                 photons: Tensor | None = None) -> CameraCheck:
    """:func:`plexloc.camera.check.check_camera` on the first frames of a chunk (one raw ``(T, H, W)`` array per
    channel, as :meth:`MLEFitter.fit_frames` takes them), converted with the fitter's cameras; each finding a
    :class:`~plexloc.camera.check.CameraWarning` where ``warn``. ``levels``: each channel's clipping level; default
    :func:`~plexloc.camera.check.clip_level` of these raw frames (the camera's ``saturation_adu``, else a level found
    in them, else the pixel type's maximum), as a fit finds them. ``photons``: ``frames`` already converted
    ((C, T, H, W), :meth:`MLEFitter.to_photons`), their first frames taken as they are."""
    from plexloc.camera.check import check_camera, head_frames

    k = head_frames(np.shape(frames[0]))
    if levels is None:
        levels = frame_clip_levels(fitter, frames, dtype=dtype)
    photons = fitter.to_photons([f[:k] for f in frames]) if photons is None else photons[:, :k]
    return check_camera(list(photons), [ch.camera for ch in fitter.channels], dtype=dtype,
                        source=source if isinstance(source, (list, tuple)) else str(source), warn=warn, levels=levels)


def _empty_result(fitter: MLEFitter) -> FitResult:
    rois = [torch.zeros(0, fitter.roi_px, fitter.roi_px, device=fitter.device) for _ in fitter.channels]
    return fit_rois(
        rois,
        fitter.fit_channels,
        origins=torch.zeros(0, len(fitter.channels), 2, dtype=torch.int64),
        linked=fitter.linked,
    )
