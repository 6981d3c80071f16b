"""Bead z-stacks rendered with an independent, physically different PSF model, for tests and benchmarks.

The optical model is the vectorial PSF of Aguet et al. 2009 (Gibson-Lanni stratified medium) from the
``psfmodels`` package (a test-only dependency, in the ``dev`` extra). Each bead's image is computed on a
fine grid (``oversample`` samples per pixel), moved by its sub-sample offset with a Fourier shift (the
optical PSF is band-limited and heavily oversampled, so the shift is exact), and summed over each
camera pixel. Several channels are planes of a multi-plane (biplane) microscope: channel c sees the
bead at defocus ``z - plane_offset_nm[c]`` and at the lateral position ``T_c r_0`` (nm). Noise comes
from a :class:`plexloc.camera.Camera` (e.g. EMCCD).

Conventions: z > 0 away from the objective; ``psfmodels``' focal position ``zv`` relative to the
coverslip is ``depth - z`` for an emitter at ``depth`` seen at defocus ``z``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

__all__ = ["BEAD_MODELS", "BEAD_STACK_PSFS", "BeadStacks", "PupilAstigmaticBeads", "VectorialBeads", "VectorialVolume",
           "bead_capacity", "bead_field", "bead_positions", "render_bead_stacks", "render_movie", "simulate_bead_stacks",
           "true_windows", "vectorial_focus_nm"]


@dataclasses.dataclass
class VectorialBeads:
    """Optical parameters of the vectorial model (lengths in nm)."""

    na: float = 1.45
    wavelength_nm: float = 680.0
    n_immersion: float = 1.515
    n_sample: float = 1.33
    depth_nm: float = 200.0
    px_size_nm: float = 100.0
    oversample: int = 5

    def _params(self) -> dict:
        return {"NA": self.na, "ni": self.n_immersion, "ni0": self.n_immersion, "ns": self.n_sample}

    def fine_stack(self, z_nm: np.ndarray, n_fine: int) -> np.ndarray:
        """``(len(z), n_fine, n_fine)`` intensity on the fine grid, emitter at the central sample; normalised so
        that the in-focus (z = 0) image sums to 1."""
        try:
            import psfmodels
        except ImportError as err:  # pragma: no cover - dev dependency
            raise ImportError("the vectorial bead model needs 'psfmodels' (pip install psfmodels)") from err
        d_um = self.px_size_nm / self.oversample / 1000.0
        zs = np.atleast_1d(np.asarray(z_nm, dtype=np.float64))
        zv = np.concatenate([(self.depth_nm - zs) / 1000.0, [self.depth_nm / 1000.0]])
        if len(zv) % 2 == 0:
            zv = np.concatenate([zv, zv[-1:]])
        vol = psfmodels.vectorial_psf(
            zv, nx=n_fine, dxy=d_um, pz=self.depth_nm / 1000.0, wvl=self.wavelength_nm / 1000.0,
            params=self._params(), normalize=False,
        )
        vol = np.asarray(vol, dtype=np.float64)
        return vol[: len(zs)] / vol[len(zs)].sum()


def _fine_size(roi_px: int, oversample: int) -> int:
    return 2 * roi_px * oversample + 11


def _bead_windows(model: VectorialBeads, z_nm: np.ndarray, x_nm: float, y_nm: float, roi_px: int, fine=None):
    """Pixel-integrated images ``(n_z, roi, roi)`` of one emitter at frame position (x_nm, y_nm) and the
    frame pixel (row0, col0) of the window's top-left pixel. ``fine``: the fine stack at ``z_nm`` if already
    computed (``model.fine_stack(z_nm, _fine_size(roi_px, model.oversample))``)."""
    ovs, px = model.oversample, model.px_size_nm
    half = roi_px // 2
    n_fine = _fine_size(roi_px, ovs)
    cf = (n_fine - 1) // 2
    col0 = int(np.floor(x_nm / px)) - half
    row0 = int(np.floor(y_nm / px)) - half
    d = px / ovs
    mu_x = (x_nm - col0 * px) / d - 0.5
    mu_y = (y_nm - row0 * px) / d - 0.5
    mix, miy = int(np.floor(mu_x)), int(np.floor(mu_y))
    fx, fy = mu_x - mix, mu_y - miy
    fine = model.fine_stack(z_nm, n_fine) if fine is None else fine
    spec = np.fft.fftn(fine, axes=(1, 2))
    moved = np.real(np.fft.ifftn(ndimage.fourier_shift(spec, (0.0, fy, fx)), axes=(1, 2)))
    n = roi_px * ovs
    crop = moved[:, cf - miy : cf - miy + n, cf - mix : cf - mix + n]
    binned = crop.reshape(len(crop), roi_px, ovs, roi_px, ovs).sum(axis=(2, 4))
    return binned, row0, col0


class VectorialVolume:
    """The vectorial PSF sampled once on a fine grid (``model.oversample`` samples per pixel laterally,
    ``dz_nm`` axially over ``z_range_nm``), for rendering many emitters: each emitter's fine image is the
    linear interpolation between its two nearest z samples, moved to its sub-sample position by a Fourier
    shift and summed over camera pixels (as :func:`render_bead_stacks` does per bead)."""

    def __init__(self, model: VectorialBeads, *, z_range_nm: tuple[float, float], dz_nm: float = 10.0, roi_px: int = 13):
        self.model, self.roi_px, self.dz_nm = model, int(roi_px), float(dz_nm)
        self.z = np.arange(z_range_nm[0], z_range_nm[1] + dz_nm / 2, dz_nm)
        self.fine = model.fine_stack(self.z, _fine_size(self.roi_px, model.oversample))

    def window(self, z_nm: float, x_nm: float, y_nm: float) -> tuple[np.ndarray, int, int]:
        """``(image (roi, roi), row0, col0)`` of one emitter (sums to ~1 at focus over an infinite frame)."""
        t = (float(z_nm) - self.z[0]) / self.dz_nm
        if not 0 <= t <= len(self.z) - 1:
            raise ValueError(f"z = {z_nm} nm outside the sampled range [{self.z[0]}, {self.z[-1]}] nm")
        k = min(int(np.floor(t)), len(self.z) - 2)
        f = t - k
        fine = ((1 - f) * self.fine[k] + f * self.fine[k + 1])[None]
        win, r0, c0 = _bead_windows(self.model, np.array([z_nm]), x_nm, y_nm, self.roi_px, fine=fine)
        return win[0], r0, c0


def render_movie(
    volume: VectorialVolume,
    *,
    frame: np.ndarray,
    xy_nm: np.ndarray,
    z_nm: np.ndarray,
    photons: np.ndarray,
    n_frames: int,
    frame_shape: tuple[int, int],
    bg: float,
    cameras: Sequence,
    z_focus_nm: float = 0.0,
    transforms: Sequence[np.ndarray] | None = None,
    plane_offset_nm: Sequence[float] | None = None,
    throughput: Sequence[float] | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """Raw camera movies (ADU, ``(n_frames, H, W)`` per channel) of emitters (``frame``, reference ``xy_nm``
    (n, 2), ``z_nm`` relative to the reference focal plane, ``photons``) with the vectorial PSF; channel c
    sees ``T_c r_0`` at defocus ``z + z_focus_nm - plane_offset_nm[c]`` (``z_focus_nm``: the vectorial model's
    own focus, :func:`vectorial_focus_nm`, so that z = 0 is the calibration's z = 0)."""
    C = len(cameras)
    transforms = [np.eye(3)] * C if transforms is None else [np.asarray(t, float) for t in transforms]
    plane_offset_nm = [0.0] * C if plane_offset_nm is None else list(plane_offset_nm)
    throughput = [1.0] * C if throughput is None else list(throughput)
    H, W = frame_shape
    R = volume.roi_px
    gen = torch.Generator().manual_seed(int(seed))
    xy = np.asarray(xy_nm, np.float64)
    out = []
    for c in range(C):
        hom = np.column_stack([xy, np.ones(len(xy))]) @ transforms[c].T
        pos = hom[:, :2] / hom[:, 2:3]
        img = np.full((n_frames + 0, H + 2 * R, W + 2 * R), float(bg))  # padded: emitters near the border
        for f, (x, y), z, n in zip(frame, pos, z_nm, photons):
            win, r0, c0 = volume.window(z + z_focus_nm - plane_offset_nm[c], x, y)
            img[int(f), r0 + R : r0 + 2 * R, c0 + R : c0 + 2 * R] += n * throughput[c] * win
        ideal = torch.as_tensor(img[:, R : R + H, R : R + W], dtype=torch.float32)
        out.append(cameras[c](ideal, generator=gen).numpy())
    return out


def render_bead_stacks(
    model: VectorialBeads,
    *,
    xy_nm: np.ndarray,
    z_stage_nm: np.ndarray,
    bead_dz_nm: np.ndarray | None = None,
    frame_shape: tuple[int, int],
    photons: float | np.ndarray,
    bg: float,
    cameras: Sequence,
    transforms: Sequence[np.ndarray] | None = None,
    plane_offset_nm: Sequence[float] | None = None,
    throughput: Sequence[float] | None = None,
    roi_px: int = 21,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Raw camera stacks (ADU, ``(n_z, H, W)`` per channel) of beads at reference positions ``xy_nm`` (n, 2),
    defocus ``z_stage + bead_dz`` (reference focal plane; channel c adds ``-plane_offset_nm[c]``).

    Returns ``(raw_stacks, positions)``: ``positions[c]`` (n, 2) are the beads' (x, y) in channel c's frame.
    """
    C = len(cameras)
    transforms = [np.eye(3)] * C if transforms is None else [np.asarray(t, float) for t in transforms]
    plane_offset_nm = [0.0] * C if plane_offset_nm is None else list(plane_offset_nm)
    throughput = [1.0] * C if throughput is None else list(throughput)
    xy = np.asarray(xy_nm, dtype=np.float64)
    dz = np.zeros(len(xy)) if bead_dz_nm is None else np.asarray(bead_dz_nm, dtype=np.float64)
    phot = np.broadcast_to(np.asarray(photons, dtype=np.float64), (len(xy),))
    zs = np.asarray(z_stage_nm, dtype=np.float64)
    H, W = frame_shape
    gen = torch.Generator().manual_seed(int(seed))
    raws, positions = [], []
    for c in range(C):
        T = transforms[c]
        hom = np.column_stack([xy, np.ones(len(xy))]) @ T.T
        pos = hom[:, :2] / hom[:, 2:3]
        positions.append(pos)
        frame = np.full((len(zs), H, W), float(bg))
        for i, (x, y) in enumerate(pos):
            win, r0, c0 = _bead_windows(model, zs + dz[i] - plane_offset_nm[c], x, y, roi_px)
            rs, cs = max(r0, 0), max(c0, 0)
            re, ce = min(r0 + roi_px, H), min(c0 + roi_px, W)
            if re > rs and ce > cs:
                frame[:, rs:re, cs:ce] += phot[i] * throughput[c] * win[:, rs - r0 : re - r0, cs - c0 : ce - c0]
        raw = cameras[c](torch.as_tensor(frame, dtype=torch.float32), generator=gen)
        raws.append(raw.numpy())
    return raws, positions


def vectorial_focus_nm(model: VectorialBeads, *, search_nm: float = 400.0, step_nm: float = 5.0) -> float:
    """Defocus z (nm) at which the central pixel of an emitter centred on a pixel is brightest (noise-free):
    the reference against which the calibration's z = 0 (maximum of the central pixel) is checked."""
    z = np.arange(-search_nm, search_nm + step_nm / 2, step_nm)
    win, _, _ = _bead_windows(model, z, 10.5 * model.px_size_nm, 10.5 * model.px_size_nm, 9)
    curve = win[:, 4, 4]
    k = int(np.argmax(curve))
    sel = np.arange(max(0, k - 8), min(len(z), k + 9))
    a, b, _ = np.polyfit(z[sel] - z[k], curve[sel], 2)
    return float(z[k] - b / (2 * a))


def biplane_accuracy(
    *,
    n_beads: int = 16,
    n_test_beads: int = 16,
    photons: float = 2e5,
    test_photons: float = 1e5,
    bg: float = 50.0,
    z_step_nm: float = 50.0,
    z_half_range_nm: float = 1000.0,
    z_test_nm: float = 600.0,
    plane_offset_nm: float = 500.0,
    roi_px: int = 15,
    seed: int = 0,
    model: VectorialBeads | None = None,
) -> dict:
    """Calibrate a biplane (two channels, EMCCD) from vectorial beads, then fit held-out vectorial beads every
    100 nm over +-``z_test_nm`` with the calibrated splines; errors against the truth.

    z truth: the defocus of the test bead minus the vectorial model's own focus (:func:`vectorial_focus_nm`,
    the same definition as the calibration's z = 0). Channel 1 is an affine image of channel 0 (0.3 % scale,
    0.23 deg rotation, (35, -20) nm shift).
    """
    from plexloc.calibrate.spline import calibrate_spline
    from plexloc.calibrate.validate import fit_beads_at
    from plexloc.camera.models import EMCCD

    m = model or VectorialBeads()
    cam = EMCCD()
    zf = vectorial_focus_nm(m)
    T1 = np.array([[1.003, 0.004, 35.0], [-0.004, 1.003, -20.0], [0.0, 0.0, 1.0]])
    spacing = 1700.0
    side = int(np.ceil(np.sqrt(max(n_beads, n_test_beads))))
    size = int(np.ceil((1000.0 + spacing * side) / m.px_size_nm)) + 2

    def beads(n, s):
        rng = np.random.default_rng(s)
        g = np.array([(1000.0 + spacing * i, 1000.0 + spacing * j) for i in range(side) for j in range(side)])[:n]
        return g + rng.uniform(-50, 50, (n, 2)), rng

    def photon_stacks(raws):
        return [cam.to_photons(torch.as_tensor(r)).numpy() for r in raws]

    xy, rng = beads(n_beads, seed)
    bdz = rng.uniform(-30, 30, n_beads)
    common = dict(frame_shape=(size, size), bg=bg, cameras=[cam, cam], transforms=[np.eye(3), T1],
                  plane_offset_nm=[0.0, plane_offset_nm], throughput=[0.5, 0.5], roi_px=roi_px)
    zs = np.arange(-z_half_range_nm, z_half_range_nm + z_step_nm / 2, z_step_nm)
    raws, _ = render_bead_stacks(m, xy_nm=xy, z_stage_nm=zs, bead_dz_nm=bdz + zf, photons=photons, seed=seed, **common)
    res = calibrate_spline(photon_stacks(raws), z_step_nm=z_step_nm, px_size_nm=m.px_size_nm, roi_px=roi_px)
    cal = res.calibration
    xy_t, _ = beads(n_test_beads, seed + 1000)
    zt = np.arange(-z_test_nm, z_test_nm + 1.0, 100.0)
    raws, pos = render_bead_stacks(
        m, xy_nm=xy_t, z_stage_nm=zt, bead_dz_nm=np.full(n_test_beads, zf), photons=test_photons, seed=seed + 1, **common
    )
    fit = fit_beads_at(cal, photon_stacks(raws), pos, cameras=[cam, cam])
    tz = np.tile(zt, n_test_beads)
    ez = fit.z_nm.numpy() - tz
    ex = fit.x_nm.numpy() - np.repeat(pos[0][:, 0], len(zt))
    ey = fit.y_nm.numpy() - np.repeat(pos[0][:, 1], len(zt))
    hom = np.column_stack([pos[0], np.ones(n_test_beads)]) @ cal.channels[1].transform_nm.T
    t_res = np.linalg.norm(hom[:, :2] / hom[:, 2:3] - pos[1], axis=1)
    return {
        "n_beads_used": res.summary["n_beads_used"],
        "z_bias_nm": float(ez.mean()),
        "z_rmse_nm": float(np.sqrt(np.mean(ez**2))),
        "x_bias_nm": float(ex.mean()),
        "y_bias_nm": float(ey.mean()),
        "xy_rmse_nm": float(np.sqrt(np.mean(ex**2 + ey**2))),
        "transform_residual_max_nm": float(t_res.max()),
        "transform_residual_rms_nm": float(np.sqrt(np.mean(t_res**2))),
        "z_bias_per_z_nm": {f"{z:.0f}": float(ez[tz == z].mean()) for z in zt},
        "z_sd_per_z_nm": {f"{z:.0f}": float(ez[tz == z].std()) for z in zt},
        "throughput_ratio": cal.channels[1].throughput_ratio,
        "focus_offset_nm": cal.channels[1].focus_offset_nm,
        "vectorial_focus_nm": zf,
    }


@dataclasses.dataclass
class PupilAstigmaticBeads:
    """A scalar Fourier-optics PSF with astigmatism, for astigmatic calibrations (psfmodels has no aberrations).

    The pupil (radius NA / lambda, defocus phase ``2 pi z sqrt((n / lambda)^2 - k^2)``, astigmatism
    ``2 pi astig_waves rho^2 cos(2 theta)``) is Fourier-transformed on a ``pad``-point grid of
    ``px_size_nm / oversample`` samples; the intensity is ``|.|^2``. Same interface as :class:`VectorialBeads`
    (``fine_stack``), so :func:`render_bead_stacks` renders it. Physically different from the Gaussian model:
    Airy rings, a non-Gaussian defocus, no fitted parameters.
    """

    na: float = 1.45
    wavelength_nm: float = 680.0
    n_immersion: float = 1.515
    astig_waves: float = 0.12
    px_size_nm: float = 100.0
    oversample: int = 5
    pad: int = 512

    def fine_stack(self, z_nm: np.ndarray, n_fine: int) -> np.ndarray:
        d = self.px_size_nm / self.oversample
        k = np.fft.fftfreq(self.pad, d)
        kx, ky = np.meshgrid(k, k)
        kr2 = kx**2 + ky**2
        kmax = self.na / self.wavelength_nm
        inside = kr2 <= kmax**2
        rho2 = kr2 / kmax**2
        cos2 = np.where(kr2 > 0, (kx**2 - ky**2) / np.maximum(kr2, 1e-30), 0.0)
        kz = np.sqrt(np.clip((self.n_immersion / self.wavelength_nm) ** 2 - kr2, 0, None))
        astig = 2 * np.pi * self.astig_waves * rho2 * cos2
        zs = np.concatenate([np.atleast_1d(np.asarray(z_nm, np.float64)), [0.0]])
        c = self.pad // 2 - (n_fine - 1) // 2  # fftshift puts the emitter at pad // 2
        out = []
        for z in zs:
            field = np.fft.fftshift(np.fft.ifft2(inside * np.exp(1j * (astig + 2 * np.pi * z * kz))))
            img = np.abs(field) ** 2
            out.append(img[c : c + n_fine, c : c + n_fine])
        vol = np.asarray(out)
        return vol[:-1] / vol[-1].sum()


#: the two bead models of :func:`bead_field` / :func:`true_windows`: plexloc's astigmatic Gaussian (default
#: parameters) and :class:`PupilAstigmaticBeads` (default parameters), 100 nm pixels
BEAD_MODELS = ("gauss", "pupil")
_FINE_CACHE: dict = {}


def _pupil_fine(z_nm: np.ndarray, roi_px: int) -> tuple[PupilAstigmaticBeads, np.ndarray]:
    m = PupilAstigmaticBeads()
    key = (tuple(np.round(np.asarray(z_nm, float), 6)), roi_px)
    if key not in _FINE_CACHE:
        _FINE_CACHE[key] = m.fine_stack(np.asarray(z_nm, float), _fine_size(roi_px, m.oversample))
    return m, _FINE_CACHE[key]


def bead_field(model: str, emitters, z_nm: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """Noise-free expected photons ``(len(z_nm), H, W)`` of point emitters ``[(x_nm, y_nm, photons), ...]`` all at
    defocus ``z_nm`` (a bead z-stack; 100 nm pixels, no background). ``model``: ``'gauss'`` (plexloc's
    :class:`~plexloc.psf.AstigmaticPSF`, default parameters, 15 px patches) or ``'pupil'`` (:class:`PupilAstigmaticBeads`,
    21 px windows)."""
    z = np.asarray(z_nm, np.float64)
    em = np.asarray(emitters, np.float64).reshape(-1, 3)
    H, W = frame_shape
    if model == "gauss":
        from plexloc.psf import AstigmaticPSF

        psf = AstigmaticPSF(px_size_nm=(100.0, 100.0), roi_px=15)
        n = len(em)
        frames = psf.render(
            torch.tensor(np.tile(em[:, 0], len(z)), dtype=torch.float32),
            torch.tensor(np.tile(em[:, 1], len(z)), dtype=torch.float32),
            torch.tensor(np.repeat(z, n), dtype=torch.float32),
            torch.tensor(np.tile(em[:, 2], len(z)), dtype=torch.float32),
            torch.arange(len(z)).repeat_interleave(n),
            n_frames=len(z),
            frame_shape=(H, W),
        )
        return frames.numpy().astype(np.float64)
    if model != "pupil":
        raise ValueError(f"model must be one of {BEAD_MODELS}, got {model!r}")
    R = 21
    m, fine = _pupil_fine(z, R)
    return _windows_field(m, fine, em, z, (H, W), R)


def _windows_field(model, fine: np.ndarray, emitters: np.ndarray, z_nm: np.ndarray, frame_shape: tuple[int, int],
                   roi_px: int) -> np.ndarray:
    """Expected photons ``(len(z_nm), H, W)`` of emitters ``(n, 3)`` rows ``(x_nm, y_nm, photons)``, all at defocus
    ``z_nm``, each a ``roi_px`` window of ``model`` (``fine``: its fine stack at ``z_nm``); no background."""
    H, W = frame_shape
    R = int(roi_px)
    out = np.zeros((len(z_nm), H, W))
    for x, y, ph in emitters:
        win, r0, c0 = _bead_windows(model, z_nm, x, y, R, fine=fine)
        rs, cs, re, ce = max(r0, 0), max(c0, 0), min(r0 + R, H), min(c0 + R, W)
        if re > rs and ce > cs:
            out[:, rs:re, cs:ce] += ph * win[:, rs - r0 : re - r0, cs - c0 : ce - c0]
    return out


def true_windows(model: str, x_nm: np.ndarray, y_nm: np.ndarray, z_nm: np.ndarray, roi_px: int) -> tuple[np.ndarray, np.ndarray]:
    """One emitter per window with the model of :func:`bead_field` (the truth a calibration is scored against):
    ``(windows (N, roi, roi), origins (N, 2))``, windows in photons per emitted photon, origins the frame pixel
    (row, col) of each window's top-left pixel."""
    x, y, z = (np.asarray(v, np.float64) for v in (x_nm, y_nm, z_nm))
    if model == "gauss":
        from plexloc.psf import AstigmaticPSF

        psf = AstigmaticPSF(px_size_nm=(100.0, 100.0), roi_px=roi_px)
        t = [torch.as_tensor(v, dtype=torch.float64) for v in (x, y, z, np.ones_like(x))]
        p, r0, c0 = psf.patches(*t)
        return p.numpy().astype(np.float64), np.column_stack([r0.numpy(), c0.numpy()])
    if model != "pupil":
        raise ValueError(f"model must be one of {BEAD_MODELS}, got {model!r}")
    zu, inv = np.unique(z, return_inverse=True)
    m, fine = _pupil_fine(zu, roi_px)
    wins, orgs = [], []
    for xi, yi, k in zip(x, y, inv):
        w, r0, c0 = _bead_windows(m, zu[k : k + 1], xi, yi, roi_px, fine=fine[k : k + 1])
        wins.append(w[0])
        orgs.append((r0, c0))
    return np.asarray(wins), np.asarray(orgs, dtype=np.int64)


# ------------------------------------------------------------------ bead z-stacks of a configuration (plexloc simulate --beads)
#: the PSFs :func:`simulate_bead_stacks` renders beads with: the configuration's own (``psf`` of each channel) or
#: :class:`PupilAstigmaticBeads` (default parameters, the configuration's pixel size: Airy rings, no fitted parameters)
BEAD_STACK_PSFS = ("config", "pupil")


@dataclasses.dataclass
class BeadStacks:
    """A simulated bead z-stack: ``raw`` one ``(n_z, H, W)`` stack per channel (ADU, integer values as float32,
    clipped where the channel's camera clips), ``truth`` its table (conventions.md: one row per bead and slice,
    ``frame`` the slice, ``x_nm, y_nm`` the bead in reference-channel coordinates, ``z_nm`` the slice's z,
    ``photons`` the bead's photons over all channels, ``bg`` photons per pixel, ``id`` the bead), ``xy_nm`` (n, 2) the
    beads, ``z_nm`` the slices' z (nm), ``cameras`` the channels' cameras and ``saturated`` per channel the beads
    (indices) whose window reaches the camera's clipping level in some slice (``plexloc calibrate`` rejects them)."""

    raw: list[np.ndarray]
    truth: object
    xy_nm: np.ndarray
    z_nm: np.ndarray
    cameras: list
    saturated: list[np.ndarray]


#: (left, right, top, bottom) pixels of no margin beyond the window's
NO_MARGINS = (0.0, 0.0, 0.0, 0.0)


def _bead_span_px(size_px: int, roi_px: int, lo_extra: float = 0.0, hi_extra: float = 0.0) -> tuple[float, float]:
    """The interval (px) in which bead centres are put along an axis of ``size_px`` pixels: half a window plus one
    pixel from each edge, so that ``plexloc calibrate``'s window around the bead's pixel stays inside the frame, and
    ``lo_extra`` / ``hi_extra`` more (:func:`channel_margins_px`: the other channels' shifts)."""
    half = int(roi_px) // 2
    return float(half + 1) + float(lo_extra), float(size_px - half - 1) - float(hi_extra)


def channel_margins_px(config) -> tuple[float, float, float, float]:
    """How far (pixels) the channels' images of the reference frame reach beyond it, per side (left, right, top,
    bottom): channel c sees a bead at ``r`` at ``T_c r`` (its transform at the configuration's ``roi_offset_px``), so a
    bead whose window fits channel 0's frame falls at the border of a shifted channel (a biplane's 320 nm shift put 2
    of 9 beads' windows outside channel 1, and ``plexloc calibrate`` rejected them). The displacement of an affine or
    mildly projective map over the frame is largest at its corners."""
    from plexloc.simulation.geometry import transform_at_roi

    px = config.px_size_xy_nm
    H, W = (int(v) for v in config.frame_size)
    corners = np.array([[0.0, 0.0], [W * px[0], 0.0], [0.0, H * px[1]], [W * px[0], H * px[1]]])
    left = right = top = bottom = 0.0
    for ch in config.channels[1:]:
        t = transform_at_roi(ch.transform, config.roi_offset_px, px).numpy()
        hom = np.column_stack([corners, np.ones(4)]) @ t.T
        moved = hom[:, :2] / hom[:, 2:3]
        dx, dy = (moved[:, 0] - corners[:, 0]) / px[0], (moved[:, 1] - corners[:, 1]) / px[1]
        # a bead at r lands at r + d in channel c: it must keep its window there, so the reference span shrinks by
        # d's reach on each side (a channel shifted right loses the beads near the reference's right edge)
        left, right = max(left, float(-dx.min())), max(right, float(dx.max()))
        top, bottom = max(top, float(-dy.min())), max(bottom, float(dy.max()))
    return left, right, top, bottom


def bead_capacity(frame_shape: tuple[int, int], roi_px: int, margins_px: tuple[float, float, float, float] = NO_MARGINS
                  ) -> int:
    """The most beads :func:`bead_positions` places in a frame of ``frame_shape`` (H, W) pixels: a square grid of
    ``roi_px + 1`` pixels over the area that keeps every bead's ``roi_px`` window inside the frame (0 where none fits),
    ``margins_px`` (left, right, top, bottom; :func:`channel_margins_px`) further in."""
    d = int(roi_px) + 1
    counts = []
    left, right, top, bottom = margins_px
    for size, (a, b) in zip(frame_shape, ((top, bottom), (left, right))):
        lo, hi = _bead_span_px(int(size), roi_px, a, b)
        counts.append(int(np.floor((hi - lo) / d)) + 1 if hi >= lo else 0)
    return counts[0] * counts[1]


def _grid_positions(n: int, xspan: tuple[float, float], yspan: tuple[float, float], d: float,
                    rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` positions (x, y) in ``xspan`` x ``yspan`` (each ``(lo, hi)``), every two at least ``d`` apart in x or
    in y: a random ``n`` of the cells of a grid of ``kx`` x ``ky`` cells, each bead uniform in its cell's slack. The
    cells of an axis ``[lo, hi]`` start at ``lo + i p``, ``p = (hi - lo + d) / k``, and a bead lies up to ``p - d``
    beyond its cell's start: beads of neighbouring cells are ``d`` or more apart, and those of the first and last cells
    inside ``[lo, hi]`` without sitting on it (the grid before put its end cells on the bounds and clipped half of their
    jitter onto them: of 9 beads in a 64 x 64 px frame, 67 % sat on the bound, for 17 of 20 seeds). Of the grids that
    hold ``n`` (at most :func:`bead_capacity`'s cells per axis), the one of the largest slack ``p - d`` on its tighter
    axis: only a field packed so that no grid has any (``n`` of a side's ``(hi - lo) / d + 1`` squared) puts beads on
    the bound."""
    spans = (xspan, yspan)
    k_max = [int(np.floor((hi - lo) / d)) + 1 for lo, hi in spans]
    best = None
    for kx in range(1, k_max[0] + 1):
        ky = -(-n // kx)
        if ky > k_max[1]:
            continue
        slack = [(hi - lo + d) / k - d for (lo, hi), k in zip(spans, (kx, ky))]
        key = (min(slack), sum(slack))
        if best is None or key > best[0]:
            best = (key, kx, ky)
    _, kx, ky = best
    cells = rng.choice(kx * ky, size=n, replace=False)
    out = []
    for (lo, hi), k, i in zip(spans, (kx, ky), (cells % kx, cells // kx)):
        p = (hi - lo + d) / k
        out.append(lo + i * p + rng.uniform(0.0, p - d, n))
    return np.column_stack(out)


def bead_positions(n_beads: int, frame_shape: tuple[int, int], *, px_size_nm: tuple[float, float], roi_px: int,
                   seed: int = 0, margins_px: tuple[float, float, float, float] = NO_MARGINS) -> np.ndarray:
    """``(n_beads, 2)`` random bead positions (x_nm, y_nm), each at least ``roi_px + 1`` pixels from every other in x
    or in y (windows of ``roi_px`` around them do not overlap: ``plexloc calibrate`` rejects beads closer than its
    window) and half a window plus a pixel from the border, ``margins_px`` (left, right, top, bottom) further in (the
    other channels' shifts, :func:`channel_margins_px`). Random sequential addition; where that jams before
    ``n_beads`` (a field packed near :func:`bead_capacity`: 9 beads of a 64 x 64 px frame, whose capacity is 16, for 17
    of 20 seeds), a random choice of the cells of a grid, each bead anywhere in its cell's slack (:func:`_grid_positions`;
    none on the bound where the grid leaves any slack).

    Raises:
        InputError: ``n_beads`` < 1, or more than :func:`bead_capacity` of the frame.
    """
    from plexloc.errors import InputError

    n = int(n_beads)
    H, W = (int(v) for v in frame_shape)
    cap = bead_capacity((H, W), roi_px, margins_px)
    if n < 1:
        raise InputError(f"n_beads must be >= 1, got {n_beads}")
    if n > cap:
        extra = ("" if not any(margins_px) else " of every channel (the channels' transforms shift it by up to "
                 + ", ".join(f"{v:.1f}" for v in margins_px) + " px left, right, top, bottom)")
        raise InputError(f"n_beads {n}: at most {cap} beads fit in a {H}x{W} px frame (rows x columns) with windows of "
                         f"{roi_px} px, {roi_px + 1} px apart and inside the frame{extra}")
    rng = np.random.default_rng(int(seed))
    d = float(roi_px) + 1.0
    left, right, top, bottom = margins_px
    (ylo, yhi), (xlo, xhi) = _bead_span_px(H, roi_px, top, bottom), _bead_span_px(W, roi_px, left, right)
    pos = np.zeros((0, 2))
    tries = 0
    while len(pos) < n and tries < 200 * n + 1000:
        cand = np.column_stack([rng.uniform(xlo, xhi, 256), rng.uniform(ylo, yhi, 256)])
        for p in cand:
            tries += 1
            if not len(pos) or np.all(np.max(np.abs(pos - p), axis=1) >= d):
                pos = np.vstack([pos, p])
                if len(pos) == n:
                    break
    if len(pos) < n:  # jammed: a random subset of the cells of a grid, each bead anywhere in its cell's slack
        pos = _grid_positions(n, (xlo, xhi), (ylo, yhi), d, rng)
    return pos * np.asarray(px_size_nm, dtype=np.float64)[None, :]


def _bead_z_advice(sim, z: np.ndarray, err: Exception) -> str:
    """What is wrong with a bead stack's z (``z``, nm) for the channels of ``sim`` (the configuration's own simulator),
    naming what the caller changes, the stack's z (``plexloc simulate --beads --z-range LO HI``): the simulator's error
    ``err`` names the configuration's ``emitters.z_range_nm``, which a bead stack replaces with its own z."""
    from plexloc.simulation.simulator import psf_z_range

    ranges = [psf_z_range(ch, cc) for ch, cc in zip(sim.channels, sim.config.channels)]
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    calibrated = any(r[2] for r in ranges)
    if z.min() < lo or z.max() > hi:  # beyond a channel's PSF range (a spline's: its bead stack's z range)
        return (f"it leaves the PSF's calibrated z range [{lo:.0f}, {hi:.0f}] nm (reference focal plane, the channels' z "
                f"offsets included): give the stack z inside it (plexloc simulate --beads --z-range {max(lo, z.min()):.0f} "
                f"{min(hi, z.max()):.0f} --z-step NM, or z_nm from {lo:.0f} to {hi:.0f})"
                + (", or calibrate with a bead stack over a wider z range" if calibrated else ""))
    reason = getattr(err, "reason", str(err))  # (an astigmatic width model that collapses within the stack's z)
    return (reason.replace("the emitters' z range", "the stack's z range")
            .replace("emitters.z_range_nm", "the stack's z (plexloc simulate --beads --z-range LO HI, or z_nm)"))


def simulate_bead_stacks(
    config,
    *,
    n_beads: int,
    z_nm: np.ndarray,
    photons: float,
    bg: float,
    roi_px: int = 15,
    psf: str = "config",
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> BeadStacks:
    """A bead z-stack through a configuration's channels: ``n_beads`` beads at random positions
    (:func:`bead_positions`, windows of ``roi_px`` pixels), every slice k with all beads at ``z_nm[k]`` (nm, the
    reference focal plane; channel c sees ``z - z_offset_nm``, at ``T_c r_0``, with ``throughput_c / sum`` of the
    bead's ``photons``), a uniform background ``bg`` (photons per pixel per slice, every channel) and each channel's
    camera (its noise, ADU, its clipping). ``psf``: ``'config'`` renders each channel's configured PSF
    (:class:`plexloc.simulation.Simulator`'s channels, the same physics as a movie); ``'pupil'``
    :class:`PupilAstigmaticBeads` of the configuration's pixel size (a PSF the configuration's model does not
    describe: Airy rings, non-Gaussian defocus). Randomness from ``seed`` only (positions and camera noise).

    Raises:
        InputError: a parameter out of its range (named, with its value), a 2D PSF (no z information for a
        calibration), non-square pixels with ``psf='pupil'``, z outside a channel's PSF range.
    """
    from plexloc.config import validate_config
    from plexloc.errors import InputError
    from plexloc.simulation import Simulator
    from plexloc.table import LocTable

    z = np.asarray(z_nm, dtype=np.float64).reshape(-1)
    if psf not in BEAD_STACK_PSFS:
        raise InputError(f"psf must be one of {', '.join(BEAD_STACK_PSFS)}, got {psf!r}")
    if len(z) < 1 or not np.all(np.isfinite(z)):
        raise InputError(f"z_nm must hold at least one finite z, got {z.tolist()}")
    if not (np.isfinite(photons) and photons > 0):
        raise InputError(f"photons must be a finite number > 0, got {photons}")
    if not (np.isfinite(bg) and bg >= 0):
        raise InputError(f"bg must be a finite number >= 0, got {bg}")
    if int(roi_px) != roi_px or roi_px < 7 or int(roi_px) % 2 == 0:
        raise InputError(f"roi_px must be an odd integer >= 7 (plexloc calibrate's window), got {roi_px}")
    roi_px = int(roi_px)
    data = config.model_dump()
    data["emitters"]["z_range_nm"] = [float(z.min()), float(z.max())]  # sizes the astigmatic patches for these z
    try:
        cfg = validate_config(data, type(config), source="bead stack z")
        sim = Simulator(cfg).to(device)
    except InputError as err:
        try:  # an error of the configuration itself (a calibration file without the channel it names) is not the z's
            own = Simulator(config)
        except InputError:
            raise
        raise InputError(f"the bead stack's z from {z.min():g} to {z.max():g} nm: {_bead_z_advice(own, z, err)}",
                         source=err.source) from None
    px = sim.px_size_nm
    if psf == "config":
        flat = [c for c, ch in enumerate(sim.channels) if not ch.psf.is_3d]
        if flat:
            raise InputError(f"channel {flat[0]}'s PSF ({sim.channels[flat[0]].psf.kind}) does not change with z: its "
                             "bead z-stack holds no z information to calibrate; use a 3D PSF (e.g. astigmatic) or the "
                             "pupil model")
    elif px[0] != px[1]:
        raise InputError(f"the pupil model needs square pixels, got px_size_nm {list(px)}")
    H, W = sim.frame_shape
    xy = bead_positions(n_beads, (H, W), px_size_nm=px, roi_px=roi_px, seed=seed, margins_px=channel_margins_px(cfg))
    n, nz = len(xy), len(z)
    dev = sim.device
    xyz = torch.as_tensor(np.column_stack([np.tile(xy[:, 0], nz), np.tile(xy[:, 1], nz), np.repeat(z, n)]),
                          dtype=torch.float32, device=dev)
    frame_ix = torch.arange(nz, device=dev).repeat_interleave(n)
    roi_off = sim.roi_offset_nm().expand(len(xyz), 2) if any(cfg.roi_offset_px) else None
    t = np.array([ch.throughput for ch in sim.channels], dtype=np.float64)
    share = t / t.sum()
    cameras = sim.movie_cameras()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    pupil = PupilAstigmaticBeads(px_size_nm=px[0]) if psf == "pupil" else None
    raws, saturated = [], []
    from plexloc.camera.check import clip_level

    for c, ch in enumerate(sim.channels):
        ph = photons * float(share[c])
        if pupil is None:
            expected = ch.render(xyz, torch.full((len(xyz),), ph, dtype=torch.float32, device=dev), frame_ix,
                                 n_frames=nz, frame_shape=(H, W), roi_offset_nm=roi_off)
        else:  # the channel's image of each bead (its transform), at the channel's own defocus
            xc, yc, _ = ch.positions(xyz[:n], None if roi_off is None else roi_off[:n])
            zc = z - ch.z_offset_nm
            em = np.column_stack([xc.cpu().double().numpy(), yc.cpu().double().numpy(), np.full(n, ph)])
            fine = pupil.fine_stack(zc, _fine_size(21, pupil.oversample))
            expected = torch.as_tensor(_windows_field(pupil, fine, em, zc, (H, W), 21), dtype=torch.float32, device=dev)
        raw = cameras[c](expected + float(bg), generator=gen).cpu().numpy()
        raws.append(raw)
        level = clip_level(None, cameras[c], np.uint16)[0]
        xc, yc, _ = ch.positions(xyz[:n], None if roi_off is None else roi_off[:n])
        rows = np.floor(yc.cpu().double().numpy() / px[1]).astype(int)
        cols = np.floor(xc.cpu().double().numpy() / px[0]).astype(int)
        h = roi_px // 2
        hit = [i for i, (r, q) in enumerate(zip(rows, cols))
               if r + h >= 0 and q + h >= 0  # a window wholly above or left of the frame holds none of it (a negative
               # end would slice most of the frame: another bead's clipping)
               and raw[:, max(r - h, 0) : r + h + 1, max(q - h, 0) : q + h + 1].max(initial=-np.inf) >= level]
        saturated.append(np.asarray(hit, dtype=np.int64))
    truth = LocTable({
        "frame": np.repeat(np.arange(nz), n),
        "x_nm": np.tile(xy[:, 0], nz),
        "y_nm": np.tile(xy[:, 1], nz),
        "z_nm": np.repeat(z, n),
        "photons": np.full(n * nz, float(photons)),
        "id": np.tile(np.arange(n), nz),
        "bg": np.full(n * nz, float(bg)),
        **({f"photons_ch{c}": np.full(n * nz, float(photons * share[c])) for c in range(len(share))}
           if len(share) > 1 else {}),
    })
    return BeadStacks(raw=raws, truth=truth, xy_nm=xy, z_nm=z, cameras=cameras, saturated=saturated)
