"""Sub-voxel 3D registration of bead stacks and their average.

:func:`register` finds the shift ``s = (dz, dy, dx)`` (voxels) that makes ``shift(moving, s)`` match a
reference: first the integer peak of the zero-padded FFT cross-correlation, then Gauss-Newton on the
sum of squared differences over the interior voxels with ``scipy.ndimage.shift`` (cubic-spline
interpolation in z, Fourier shift in x and y, see :func:`_move`) and a free intensity scale. ``shift(moving, s)``
moves the content of ``moving`` by ``+s``: a bead at voxel ``p`` of ``moving`` sits at ``p + s`` after it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["average_aligned", "register", "shift_volume"]


#: slices of edge padding before the z spline filter (as scipy.ndimage does for mode "nearest")
_Z_PAD = 12


class _Mover:
    """``volume`` moved by any shift (:func:`_move`), its fixed work done once: the z spline coefficients (padded
    with the edge slices and filtered along z alone, as ``ndimage.shift(order=3, mode="nearest")`` filters them; its
    filtering along y and x, evaluated at the unshifted pixels, gives the data back) and their zero-padded 2D
    spectra. A move is then a 4-tap sum of spectra along z, a phase ramp and one inverse FFT, where ``ndimage.shift``
    filtered and interpolated the whole volume along all three axes at every Gauss-Newton step (20 of 25 s of a
    20-bead, 101-slice calibration)."""

    def __init__(self, volume: np.ndarray):
        self.volume = np.asarray(volume, dtype=np.float64)
        nz, ny, nx = self.volume.shape
        padded = np.pad(self.volume, ((_Z_PAD, _Z_PAD), (0, 0), (0, 0)), mode="edge")
        self.coeffs = ndimage.spline_filter1d(padded, 3, axis=0, output=np.float64, mode="nearest")
        self._spec = None  # the coefficients' zero-padded 2D spectra, made at the first lateral move
        self.shape = (nz, ny, nx)

    def _z_taps(self, dz: float) -> tuple[int, np.ndarray] | None:
        """First coefficient slice and the cubic B-spline weights of a z shift ``dz``; None beyond the padding."""
        base = int(np.floor(_Z_PAD - dz))
        f = (_Z_PAD - dz) - base  # output slice k reads coefficients base + k - 1 .. base + k + 2
        if base - 1 < 0 or base + 2 + self.shape[0] > self.coeffs.shape[0]:
            return None
        d = np.abs(np.array([f + 1.0, f, 1.0 - f, 2.0 - f]))
        w = np.where(d < 1.0, 2.0 / 3.0 - d**2 + d**3 / 2.0, np.where(d < 2.0, (2.0 - d) ** 3 / 6.0, 0.0))
        return base - 1, w

    def __call__(self, shift) -> np.ndarray:
        dz, dy, dx = (float(v) for v in shift)
        nz, ny, nx = self.shape
        taps = self._z_taps(dz) if dz else None
        if dz and taps is None:  # further than the padding: scipy's own (same result, slower)
            return _move_plain(self.volume, shift)
        if not (dy or dx):
            if not dz:
                return self.volume.copy()
            b, w = taps
            return sum(w[t] * self.coeffs[b + t : b + t + nz] for t in range(4))
        if self._spec is None:
            pad = np.zeros((self.coeffs.shape[0], 2 * ny, 2 * nx))
            pad[:, :ny, :nx] = self.coeffs
            self._spec = np.fft.fft2(pad)
        if dz:
            b, w = taps
            spec = sum(w[t] * self._spec[b + t : b + t + nz] for t in range(4))
        else:  # the coefficients at the knots: the data's spectra
            spec = np.fft.fft2(np.pad(self.volume, ((0, 0), (0, ny), (0, nx))))
        spec = ndimage.fourier_shift(spec, (0.0, dy, dx))
        return np.real(np.fft.ifft2(spec))[:, :ny, :nx]


def _move_plain(volume: np.ndarray, shift) -> np.ndarray:
    """:func:`_move` by scipy's shift along z (a shift beyond :class:`_Mover`'s padding)."""
    out = ndimage.shift(volume, (shift[0], 0.0, 0.0), order=3, mode="nearest") if shift[0] else np.array(volume, float)
    if shift[1] or shift[2]:
        ny, nx = out.shape[1:]
        pad = np.zeros((out.shape[0], 2 * ny, 2 * nx))
        pad[:, :ny, :nx] = out
        spec = ndimage.fourier_shift(np.fft.fft2(pad), (0.0, shift[1], shift[2]))
        out = np.real(np.fft.ifft2(spec))[:, :ny, :nx]
    return out


def _move(volume: np.ndarray, shift) -> np.ndarray:
    """Move by ``shift``: z by cubic-spline interpolation (axially the stacks are finely sampled), x and y by
    a Fourier shift of the zero-padded slices (a pixel-integrated optical PSF sampled at or below its Nyquist
    pitch is band-limited, where spline interpolation would blur the in-focus slices more than the others).
    One volume moved many times: :class:`_Mover`."""
    return _Mover(volume)(shift)


def shift_volume(volume: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(shifted, valid)``: ``volume`` moved by ``shift`` (see :func:`_move`) and the mask of voxels whose
    source lay inside the volume."""
    out = _move(volume, shift)
    valid = ndimage.shift(np.ones(volume.shape), shift, order=1, mode="constant", cval=0.0) > 0.999
    return out, valid


def _integer_shift(ref: np.ndarray, mov: np.ndarray, axes_free: np.ndarray) -> np.ndarray:
    shape = [2 * n for n in ref.shape]
    cc = np.fft.irfftn(np.fft.rfftn(ref, shape, axes=range(len(shape))) * np.conj(np.fft.rfftn(mov, shape, axes=range(len(shape)))), shape, axes=range(len(shape)))
    for ax in np.flatnonzero(~axes_free):  # a fixed axis: only the zero shift
        sl = [slice(None)] * 3
        sl[ax] = slice(1, None)
        cc[tuple(sl)] = -np.inf
    peak = np.array(np.unravel_index(np.argmax(cc), cc.shape), dtype=np.float64)
    return np.where(peak > np.array(shape) / 2, peak - np.array(shape), peak)


def register(
    ref: np.ndarray,
    moving: np.ndarray,
    *,
    start: np.ndarray | None = None,
    fixed: tuple[bool, bool, bool] = (False, False, False),
    margin: tuple[int, int, int] = (2, 1, 1),
    max_iter: int = 30,
    tol: float = 1e-4,
) -> tuple[np.ndarray, float]:
    """Shift (voxels, ``(dz, dy, dx)``) that aligns ``moving`` onto ``ref`` and the relative residual.

    Args:
        start: start shift (default: the cross-correlation peak).
        fixed: axes whose shift stays at ``start`` (e.g. z of a second channel, taken from channel 0).
        margin: voxels at each face left out of the comparison.

    Returns:
        ``(shift, residual)``, residual = ``||a * shift(moving) - ref|| / ||ref||`` over the interior.
    """
    ref = np.asarray(ref, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    free = ~np.asarray(fixed)
    s = np.zeros(3) if start is None else np.asarray(start, dtype=np.float64).copy()
    if start is None:
        s = _integer_shift(ref, mov, free)
    inner = tuple(slice(m, n - m) for m, n in zip(margin, ref.shape))
    r_in = ref[inner].ravel()
    scale = 1.0
    move = _Mover(mov)  # the z coefficients and spectra once, not at every step
    for _ in range(max_iter):
        moved = move(s)
        grads = np.gradient(moved)
        m_in = moved[inner].ravel()
        # model: scale * moved(s); d moved / d s_a = -gradient_a
        cols = [-scale * grads[a][inner].ravel() for a in range(3) if free[a]] + [m_in]
        J = np.stack(cols, axis=1)
        resid = r_in - scale * m_in
        step, *_ = np.linalg.lstsq(J, resid, rcond=None)
        ds = np.zeros(3)
        ds[free] = np.clip(step[:-1], -0.5, 0.5)
        s = s + ds
        scale = scale + step[-1]
        if np.max(np.abs(ds)) < tol:
            break
    moved = move(s)[inner].ravel()
    scale = float(moved @ r_in / max(moved @ moved, 1e-30))
    residual = float(np.linalg.norm(scale * moved - r_in) / max(np.linalg.norm(r_in), 1e-30))
    return s, residual


def average_aligned(stacks: np.ndarray, shifts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of the stacks moved by their shifts, counting only voxels each stack covers."""
    total = np.zeros(stacks.shape[1:])
    count = np.zeros(stacks.shape[1:])
    w = np.ones(len(stacks)) if weights is None else np.asarray(weights, dtype=np.float64)
    for st, sh, wi in zip(stacks, shifts, w):
        moved, valid = shift_volume(st, sh)
        total += wi * np.where(valid, moved, 0.0)
        count += wi * valid
    # a voxel no stack covers (large z shifts at the stack ends) takes the edge value of the stacks
    out = np.where(count > 0, total / np.maximum(count, 1e-30), np.nan)
    if np.isnan(out).any():
        idx = ndimage.distance_transform_edt(np.isnan(out), return_distances=False, return_indices=True)
        out = out[tuple(idx)]
    return out
