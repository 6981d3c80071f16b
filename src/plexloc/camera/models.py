"""Camera models: expected photons in, raw ADU out, and back.

Each camera is an ``nn.Module`` whose parameters are buffers (they follow ``.to(device)``):

- ``forward(photons, generator=...)``: expected photons per pixel (before quantum efficiency, the
  conventions' basis) -> noisy raw frame in ADU (float tensor of integer values, clipped to uint16).
- ``to_photons(adu)``: the inverse normalisation a network or fitter input needs: subtracts the
  baseline and undoes gain and quantum efficiency, so that its expectation equals the photons in.
- ``expected_adu(photons)``: the mean raw frame.
- ``noise_variance_photons(photons)``: per-pixel variance of ``to_photons(forward(photons))`` in the
  photon domain, the denominator of the Poisson-approximated Fisher information used for the CRLB
  (EMCCD: excess-noise factor ``2 - 1/em_gain``, :func:`excess_noise_factor`; sCMOS: read-noise variance added,
  Huang et al. 2013).
- ``saturation_adu``: the raw value the camera clips at where it is below the file's integer maximum (a 12-bit
  camera's 4095), else None; ``forward`` clips there, and the fits flag the localizations whose spot reaches it
  (:mod:`plexloc.camera.check`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plexloc.camera import functional as F
from plexloc.config.models import (CAMERA_UNITS, AdditiveNoiseCameraConfig, CameraConfig, EMCCDConfig,
                                   IdealCameraConfig, SCMOSConfig)
from plexloc.errors import InputError


class Camera(nn.Module):
    """Base class; see the module docstring for the contract."""

    kind: str = "camera"
    #: raw value (ADU) the camera clips at; None: the file's integer maximum (:func:`plexloc.camera.check.clip_level`)
    saturation_adu: float | None = None

    def forward(self, photons: Tensor | np.ndarray, *,
                generator: torch.Generator | None = None) -> Tensor:  # pragma: no cover
        """Noisy raw frames (ADU, a float tensor of integer values clipped to the camera's range) from expected photons
        per pixel (before quantum efficiency), any shape ``(..., H, W)``: a tensor (its dtype and device kept) or a
        numpy array (a tensor on the camera's device). Random numbers come from ``generator`` (None: torch's global
        generator)."""
        raise NotImplementedError

    def _tensor(self, x: Tensor | np.ndarray, name: str) -> Tensor:
        """``x`` as a tensor: a tensor as it is; a numpy array (or a number) converted, on the device of the camera's
        maps (the CPU for cameras without), as float32 where it holds integers (float64 kept); anything else a
        TypeError naming ``name``."""
        if isinstance(x, Tensor):
            return x
        if isinstance(x, (np.ndarray, np.number, int, float)) and not isinstance(x, bool):
            arr = np.asarray(x)
            if arr.dtype.kind not in "iuf":
                raise TypeError(f"{name} must be numeric, got a numpy array of {arr.dtype}")
            device = next((b.device for b in self.buffers()), torch.device("cpu"))
            return torch.as_tensor(arr if arr.dtype.kind == "f" else arr.astype(np.float32), device=device)
        raise TypeError(f"{name} must be a torch tensor or a numpy array, got {type(x).__name__}")

    def to_photons(self, adu: Tensor | np.ndarray) -> Tensor:
        """Photons (float32, a new tensor: never the input) from raw frames in ADU of any dtype (a tensor, or a numpy
        array converted as :meth:`forward` converts it), any shape ``(..., H, W)``."""
        return self.to_photons_(self._tensor(adu, "adu").to(torch.float32, copy=True))

    def to_photons_(self, x: Tensor) -> Tensor:  # pragma: no cover
        """:meth:`to_photons` in place on a float32 tensor of ADU (no temporaries: a movie's chunks are large)."""
        raise NotImplementedError

    def expected_adu(self, photons: Tensor | np.ndarray) -> Tensor:  # pragma: no cover
        """The mean raw frame (ADU) of expected photons per pixel (as :meth:`forward` takes them), without noise or
        rounding."""
        raise NotImplementedError

    def noise_variance_photons(self, photons: Tensor | np.ndarray) -> Tensor:  # pragma: no cover
        """Per-pixel variance (photons²) of ``to_photons(forward(photons))`` at expected photons ``photons`` (as
        :meth:`forward` takes them): the noise model of the CRLB's Fisher information."""
        raise NotImplementedError


class IdealCamera(Camera):
    """Shot noise only; frames are in photons."""

    kind = "ideal"

    def __init__(self, *, saturation_adu: float | None = None):
        super().__init__()
        self.saturation_adu = None if saturation_adu is None else float(saturation_adu)

    def forward(self, photons: Tensor | np.ndarray, *, generator: torch.Generator | None = None) -> Tensor:
        out = F.poisson(self._tensor(photons, "photons"), generator=generator)
        return out if self.saturation_adu is None else out.clamp_max_(self.saturation_adu)

    def to_photons_(self, x: Tensor) -> Tensor:
        return x

    def expected_adu(self, photons: Tensor | np.ndarray) -> Tensor:
        return self._tensor(photons, "photons")

    def noise_variance_photons(self, photons: Tensor | np.ndarray) -> Tensor:
        return self._tensor(photons, "photons")


#: EM gains from which an EMCCD's excess-noise factor F^2 is taken as 2: 2 - 1/G is within 0.5 % of it (the simulator
#: then draws Gamma(n, G) as it always did, and pinned simulations at the usual gains of 100-300 keep their values)
EXACT_EXCESS_GAIN = 100.0


def excess_noise_factor(em_gain: float) -> float:
    """An EM register's excess-noise factor F^2 (the variance of its output over G^2 times its Poisson input's):
    ``2 - 1/G`` (the many-stage limit; Robbins & Hadwen 2003, IEEE Trans. Electron Devices 50, 1227), 1 at
    G = 1 (no multiplication: the conventional amplifier) and 1.9 at G = 10; taken as 2 from ``EXACT_EXCESS_GAIN``."""
    g = float(em_gain)
    return 2.0 if g >= EXACT_EXCESS_GAIN else 2.0 - 1.0 / max(g, 1.0)


class EMCCD(Camera):
    """Poisson(qe * photons + spurious_charge) -> Gamma(n, em_gain) -> + N(0, read_sigma) -> / e_per_adu + baseline,
    rounded and clipped to uint16. ``read_sigma`` is in electrons after the gain register. Below
    :data:`EXACT_EXCESS_GAIN` the register's spread about its mean is shrunk to the excess-noise factor of the gain
    (:func:`excess_noise_factor`, ``2 - 1/em_gain``; Gamma(n, G) alone has 2 at any gain)."""

    kind = "emccd"

    def __init__(
        self,
        *,
        qe: float = 0.9,
        spurious_charge: float = 0.002,
        em_gain: float = 300.0,
        e_per_adu: float = 45.0,
        baseline: float = 100.0,
        read_sigma: float = 74.4,
        saturation_adu: float | None = None,
    ):
        super().__init__()
        _check_numbers("EMCCD", qe=qe, spurious_charge=spurious_charge, em_gain=em_gain, e_per_adu=e_per_adu,
                       baseline=baseline, read_sigma=read_sigma)
        self.qe, self.spurious_charge, self.em_gain = float(qe), float(spurious_charge), float(em_gain)
        self.e_per_adu, self.baseline, self.read_sigma = float(e_per_adu), float(baseline), float(read_sigma)
        self.saturation_adu = None if saturation_adu is None else float(saturation_adu)

    def forward(self, photons: Tensor | np.ndarray, *, generator: torch.Generator | None = None) -> Tensor:
        photons = self._tensor(photons, "photons")
        electrons = F.poisson(self.qe * photons + self.spurious_charge, generator=generator)
        amplified = F.standard_gamma(electrons, generator=generator) * self.em_gain
        if self.em_gain < EXACT_EXCESS_GAIN:
            # the register's spread shrunk to the excess-noise factor of this gain, F^2 = 2 - 1/G (mean kept, the same
            # random numbers): Gamma(n, G) alone has F^2 = 2 at any gain, an output spread at gain 1 where none is
            spread = (1.0 - 1.0 / self.em_gain) ** 0.5
            amplified = amplified.mul_(spread).add_(electrons * (self.em_gain * (1.0 - spread)))
        noise = torch.randn(amplified.shape, generator=generator, device=amplified.device, dtype=amplified.dtype)
        return F.quantise_adu((amplified + self.read_sigma * noise) / self.e_per_adu + self.baseline,
                              max_adu=_max_adu(self))

    def expected_adu(self, photons: Tensor | np.ndarray) -> Tensor:
        photons = self._tensor(photons, "photons")
        return (self.qe * photons + self.spurious_charge) * self.em_gain / self.e_per_adu + self.baseline

    def to_photons_(self, x: Tensor) -> Tensor:  # ((adu - baseline) * e_per_adu / em_gain - spurious_charge) / qe
        return x.sub_(self.baseline).mul_(self.e_per_adu).div_(self.em_gain).sub_(self.spurious_charge).div_(self.qe)

    def noise_variance_photons(self, photons: Tensor | np.ndarray) -> Tensor:
        electrons = self.qe * self._tensor(photons, "photons") + self.spurious_charge
        read = (self.read_sigma / self.em_gain) ** 2 + (self.e_per_adu / self.em_gain) ** 2 / 12.0
        return (excess_noise_factor(self.em_gain) * electrons + read) / self.qe**2

    def extra_repr(self) -> str:
        return (
            f"qe={self.qe}, spurious_charge={self.spurious_charge}, em_gain={self.em_gain}, "
            f"e_per_adu={self.e_per_adu}, baseline={self.baseline}, read_sigma={self.read_sigma}"
            + (f", saturation_adu={self.saturation_adu}" if self.saturation_adu is not None else "")
        )


class SCMOS(Camera):
    """Poisson(qe * photons + spurious_charge) -> + N(0, read_sigma) -> / e_per_adu + baseline, rounded, uint16.

    ``e_per_adu``, ``baseline`` (ADU) and ``read_sigma`` (e-) may be scalars or per-pixel maps of the frame
    shape (H, W); maps broadcast over leading batch dimensions.

    Maps larger than the frames (measured on the full chip, ``plexloc calibrate-camera``) are cut per frame where
    ``map_offset_px`` is given: (N, 2) chip pixel (x, y) of each frame's corner, one per entry of the frames' first
    dimension (N, ...); a frame's remaining leading dimensions (a sample's temporal window) share its cut
    (:meth:`cut_maps`). Training draws a random cut per sample (:class:`plexloc.simulation.BatchGenerator`).
    """

    kind = "scmos"

    def __init__(
        self,
        *,
        qe: float = 0.8,
        spurious_charge: float = 0.0,
        e_per_adu: float | Tensor = 0.5,
        baseline: float | Tensor = 100.0,
        read_sigma: float | Tensor = 1.5,
        saturation_adu: float | None = None,
    ):
        super().__init__()
        _check_numbers("sCMOS", qe=qe, spurious_charge=spurious_charge)
        self.qe, self.spurious_charge = float(qe), float(spurious_charge)
        self.saturation_adu = None if saturation_adu is None else float(saturation_adu)
        self.register_buffer("e_per_adu", torch.as_tensor(e_per_adu, dtype=torch.float32))
        self.register_buffer("baseline", torch.as_tensor(baseline, dtype=torch.float32))
        self.register_buffer("read_sigma", torch.as_tensor(read_sigma, dtype=torch.float32))
        shapes = {tuple(t.shape) for t in (self.e_per_adu, self.baseline, self.read_sigma) if t.ndim}
        if len(shapes) > 1:
            raise InputError(f"sCMOS maps must all have the same shape, got {sorted(shapes)}")
        if any(t.ndim not in (0, 2) for t in (self.e_per_adu, self.baseline, self.read_sigma)):
            raise InputError("sCMOS maps must be scalars or 2-D (H, W)")
        for name in ("e_per_adu", "baseline", "read_sigma"):
            t = getattr(self, name)
            if not bool(torch.isfinite(t).all()):
                raise InputError(f"sCMOS {name} ({CAMERA_UNITS[name]}) must be finite everywhere; it holds "
                                 f"{int((~torch.isfinite(t)).sum())} NaN or infinite value(s)")
        if bool((self.e_per_adu <= 0).any()) or bool((self.read_sigma < 0).any()) or bool((self.baseline < 0).any()):
            raise InputError(f"sCMOS e_per_adu must be > 0, baseline and read_sigma >= 0 everywhere; got e_per_adu "
                             f"down to {float(self.e_per_adu.min()):g} e-/ADU, baseline down to "
                             f"{float(self.baseline.min()):g} ADU, read_sigma down to "
                             f"{float(self.read_sigma.min()):g} e-")
        if self.saturation_adu is not None and not self.saturation_adu > float(self.baseline.max()):
            raise InputError(f"sCMOS saturation_adu ({self.saturation_adu:g} ADU) must be above the baseline "
                             f"everywhere; the baseline reaches {float(self.baseline.max()):g} ADU")

    @property
    def map_shape(self) -> tuple[int, int] | None:
        for t in (self.e_per_adu, self.baseline, self.read_sigma):
            if t.ndim == 2:
                return (int(t.shape[0]), int(t.shape[1]))
        return None

    def _check_shape(self, x: Tensor) -> None:
        shape = self.map_shape
        if shape is not None and tuple(x.shape[-2:]) != shape:
            files = getattr(self, "map_files", {})
            named = f" ({', '.join(f'{k}: {v}' for k, v in files.items())})" if files else ""
            raise InputError(f"frame shape {tuple(x.shape[-2:])} does not match the sCMOS maps' shape {shape}{named}: "
                             "maps cover the camera region they were measured on; crop them to the movie's region "
                             "(or measure them there: plexloc calibrate-camera)")

    def cut_maps(self, map_offset_px: Tensor, frame_shape: tuple[int, int], *,
                 offsets_inside: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(e_per_adu, baseline, read_sigma) under N frames of ``frame_shape`` (H, W) whose corners sit at
        ``map_offset_px`` (N, 2) integer chip pixels (x, y): each an (N, H, W) cut where it is a map, the scalar where
        it is one. One gather for all N frames (rows ``y0 + i``, columns ``x0 + j``), no loop over them.

        The offsets must keep every frame inside the maps: checked on every device (one host-device synchronisation;
        unchecked, a negative offset would wrap round to the maps' far edge unseen, and one past the far edge is a
        device-side assert on CUDA that ends the process), an :class:`InputError` naming them. ``offsets_inside``:
        the caller drew them inside (:meth:`plexloc.simulation.BatchGenerator.sample_map_offsets`, checked once
        when the generator is built; a movie's ``roi_offset_px``, checked once per movie), so the check is skipped:
        no synchronisation in a training step."""
        shape = self.map_shape
        if shape is None:
            return self.e_per_adu, self.baseline, self.read_sigma
        h, w = int(frame_shape[0]), int(frame_shape[1])
        if map_offset_px.ndim != 2 or map_offset_px.shape[1] != 2:
            raise ValueError(f"map_offset_px must be (N, 2) chip pixels (x, y), got shape {tuple(map_offset_px.shape)}")
        off = map_offset_px.to(device=self.baseline.device, dtype=torch.int64)
        if not offsets_inside and off.numel():
            lo, hi = off.min(0).values, off.max(0).values  # (x, y) each
            if bool((lo < 0).any() | (hi[0] + w > shape[1]) | (hi[1] + h > shape[0])):  # one synchronisation
                raise InputError(f"sCMOS map cut: frames of {h}x{w} px at chip offsets (x, y) from {lo.tolist()} to "
                                 f"{hi.tolist()} reach outside the {shape[0]}x{shape[1]} maps")
        rows = (off[:, 1:2] + torch.arange(h, device=off.device))[:, :, None]  # (N, H, 1)
        cols = (off[:, 0:1] + torch.arange(w, device=off.device))[:, None, :]  # (N, 1, W)
        return tuple(t[rows, cols] if t.ndim == 2 else t for t in (self.e_per_adu, self.baseline, self.read_sigma))

    def _maps(self, x: Tensor, map_offset_px: Tensor | None, offsets_inside: bool = False
              ) -> tuple[Tensor, Tensor, Tensor]:
        """The maps that apply to frames ``x`` (N, ..., H, W): the camera's own (checked against the frames' shape)
        without ``map_offset_px``, else each frame's cut, shaped to broadcast over the frames' middle dimensions."""
        if map_offset_px is None:
            self._check_shape(x)
            return self.e_per_adu, self.baseline, self.read_sigma
        if map_offset_px.shape[0] != x.shape[0] or x.ndim < 3:
            raise ValueError(f"map_offset_px has {map_offset_px.shape[0]} offsets for frames of shape {tuple(x.shape)} "
                             "(one per entry of the first dimension)")
        middle = (1,) * (x.ndim - 3)
        return tuple(t.reshape(t.shape[0], *middle, *t.shape[1:]) if t.ndim == 3 else t
                     for t in self.cut_maps(map_offset_px, tuple(x.shape[-2:]), offsets_inside=offsets_inside))

    def forward(self, photons: Tensor | np.ndarray, *, generator: torch.Generator | None = None,
                map_offset_px: Tensor | None = None, offsets_inside: bool = False) -> Tensor:
        """Raw frames (ADU) from expected photons; ``map_offset_px``: (N, 2) each frame's cut of maps larger than the
        frames, ``offsets_inside`` as in :meth:`cut_maps`."""
        photons = self._tensor(photons, "photons")
        e_per_adu, baseline, read_sigma = self._maps(photons, map_offset_px, offsets_inside)
        electrons = F.poisson(self.qe * photons + self.spurious_charge, generator=generator)
        noise = torch.randn(electrons.shape, generator=generator, device=electrons.device, dtype=electrons.dtype)
        return F.quantise_adu((electrons + read_sigma * noise) / e_per_adu + baseline, max_adu=_max_adu(self))

    def expected_adu(self, photons: Tensor | np.ndarray, *, map_offset_px: Tensor | None = None) -> Tensor:
        photons = self._tensor(photons, "photons")
        e_per_adu, baseline, _ = self._maps(photons, map_offset_px)
        return (self.qe * photons + self.spurious_charge) / e_per_adu + baseline

    def to_photons(self, adu: Tensor | np.ndarray, *, map_offset_px: Tensor | None = None,
                   offsets_inside: bool = False) -> Tensor:
        """Photons (float32, a new tensor) from ADU of any dtype; ``map_offset_px`` and ``offsets_inside`` as in
        :meth:`forward`."""
        return self.to_photons_(self._tensor(adu, "adu").to(torch.float32, copy=True), map_offset_px=map_offset_px,
                                offsets_inside=offsets_inside)

    def to_photons_(self, x: Tensor, *, map_offset_px: Tensor | None = None, offsets_inside: bool = False) -> Tensor:
        # ((adu - baseline) * e_per_adu - spurious_charge) / qe
        e_per_adu, baseline, _ = self._maps(x, map_offset_px, offsets_inside)
        return x.sub_(baseline).mul_(e_per_adu).sub_(self.spurious_charge).div_(self.qe)

    def noise_variance_photons(self, photons: Tensor | np.ndarray, *, map_offset_px: Tensor | None = None) -> Tensor:
        photons = self._tensor(photons, "photons")
        if map_offset_px is None:
            e_per_adu, read_sigma = self.e_per_adu, self.read_sigma
        else:
            e_per_adu, _, read_sigma = self._maps(photons, map_offset_px)
        electrons = self.qe * photons + self.spurious_charge
        read = read_sigma**2 + e_per_adu**2 / 12.0
        return (electrons + read) / self.qe**2


class AdditiveNoiseCamera(Camera):
    """``photons + Poisson(noise_rate) + N(0, read_sigma²) + baseline``, rounded and clipped to uint16: noise
    that does not depend on the signal (no shot noise on it). Not a physical camera; seed 002's observation
    model, for like-for-like benchmarks on its setting (see :class:`~plexloc.config.AdditiveNoiseCameraConfig`).
    Its variance ``noise_rate + read_sigma² + 1/12`` is the same at every signal level, which the CRLB's
    Fisher information takes as it is; the MLE's Poisson likelihood cannot express it (see
    :func:`plexloc.mle.fit.noise_terms`)."""

    kind = "additive"

    def __init__(self, *, noise_rate: float = 10.0, read_sigma: float = 3.0, baseline: float = 100.0,
                 saturation_adu: float | None = None):
        super().__init__()
        self.saturation_adu = None if saturation_adu is None else float(saturation_adu)
        _check_numbers("additive camera:", noise_rate=noise_rate, read_sigma=read_sigma, baseline=baseline)
        self.noise_rate, self.read_sigma, self.baseline = float(noise_rate), float(read_sigma), float(baseline)

    def forward(self, photons: Tensor | np.ndarray, *, generator: torch.Generator | None = None) -> Tensor:
        photons = self._tensor(photons, "photons")
        noise = F.poisson(torch.full_like(photons, self.noise_rate), generator=generator)
        read = torch.randn(photons.shape, generator=generator, device=photons.device, dtype=photons.dtype)
        return F.quantise_adu(photons + noise + self.read_sigma * read + self.baseline, max_adu=_max_adu(self))

    def expected_adu(self, photons: Tensor | np.ndarray) -> Tensor:
        return self._tensor(photons, "photons") + self.noise_rate + self.baseline

    def to_photons_(self, x: Tensor) -> Tensor:
        return x.sub_(self.baseline).sub_(self.noise_rate)

    def noise_variance_photons(self, photons: Tensor | np.ndarray) -> Tensor:
        return torch.full_like(self._tensor(photons, "photons"), self.noise_rate + self.read_sigma**2 + 1.0 / 12.0)

    def extra_repr(self) -> str:
        return f"noise_rate={self.noise_rate}, read_sigma={self.read_sigma}, baseline={self.baseline}"


def _number_range(name: str) -> tuple[float, bool, float | None]:
    """A camera number's allowed range as its configuration model (:mod:`plexloc.config.models`) declares it, the one
    source of the limits: (lowest, whether the lowest is allowed, highest or None)."""
    for model in (EMCCDConfig, AdditiveNoiseCameraConfig):
        if name in model.model_fields:
            lo, lo_ok, hi = -np.inf, True, None
            for m in model.model_fields[name].metadata:
                if getattr(m, "gt", None) is not None:
                    lo, lo_ok = float(m.gt), False
                if getattr(m, "ge", None) is not None:
                    lo, lo_ok = float(m.ge), True
                if getattr(m, "le", None) is not None:
                    hi = float(m.le)
            return lo, lo_ok, hi
    raise KeyError(name)


def _check_numbers(kind: str, **values: float) -> None:
    """An :class:`InputError` naming the camera, the field, its unit and the value where a number is not a finite number
    in its range (a camera built in code: its configuration checks the same; em_gain 0 or qe 0 made every photon
    count infinite)."""
    for name, value in values.items():
        lo, lo_ok, hi = _number_range(name)
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = None
        if isinstance(value, bool) or v is None or not np.isfinite(v) or v < lo or (v == lo and not lo_ok) \
                or (hi is not None and v > hi):
            need = (f"in ({lo:g}, {hi:g}]" if hi is not None else f"{'>=' if lo_ok else '>'} {lo:g}")
            raise InputError(f"{kind} {name} ({CAMERA_UNITS[name]}) must be a number {need}, got {value!r}")


def _max_adu(camera: Camera) -> float:
    """Where a simulated camera's raw frames clip: its ``saturation_adu``, else the uint16 maximum."""
    return 65535.0 if camera.saturation_adu is None else min(float(camera.saturation_adu), 65535.0)


def _load_map(value: float | Path | str, *, field: str) -> float | Tensor:
    if isinstance(value, (int, float)):
        return float(value)
    path = Path(value)
    if not path.exists():
        raise InputError(f"sCMOS map for '{field}' not found", source=path)
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            raise InputError(f"sCMOS map for '{field}' must be .npy or .tif, got '{path.suffix}'", source=path)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is bad input
        raise InputError(f"cannot read sCMOS map for '{field}': {err}", source=path) from None
    arr = np.squeeze(arr)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"sCMOS map for '{field}' must be a 2-D numeric array, got shape {arr.shape}", source=path)
    if not np.all(np.isfinite(arr)):
        r, c = (int(v) for v in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(f"sCMOS map for '{field}' has {float(arr[r, c])!r} at row {r}, column {c}", source=path)
    bad = arr <= 0 if field == "e_per_adu" else arr < 0
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        need = "> 0" if field == "e_per_adu" else ">= 0"
        raise InputError(f"sCMOS map for '{field}' must be {need} everywhere; it has {float(arr[r, c])!r} at row {r}, "
                         f"column {c} ({int(bad.sum())} such pixel(s))", source=path)
    return torch.as_tensor(arr, dtype=torch.float32)


def _sqrt(value: float | Tensor) -> float | Tensor:
    return value**0.5 if isinstance(value, float) else value.sqrt()


def camera_from_config(config: CameraConfig | Mapping[str, Any]) -> Camera:
    """Build a camera from its typed configuration, or a dict of its fields as in a YAML file's ``camera:`` section
    (``{"kind": "emccd", "em_gain": 100}``, validated as the file's would be: an :class:`InputError` naming a field
    out of range). A configuration the loaders read from a file keeps the file and its fields' path there
    (``config_source``, :func:`plexloc.camera.check.camera_source`), which the camera check's warnings name."""
    if isinstance(config, Mapping):
        from plexloc.config.io import validate_section

        config = validate_section(config, CameraConfig, "camera")
    cam = _camera_from_config(config)
    cam.config_source = getattr(config, "_source", None)
    return cam


def model_camera(config: CameraConfig, model: str | os.PathLike) -> Camera:
    """The camera of a model's training configuration, for a fit given no camera: built as
    :func:`camera_from_config` builds it and tagged with the model as the user named it (a run folder or model file)
    and the camera's fields there (``model_source``; the fields None where they name files, sCMOS maps), which the
    camera check's warnings name with the fix, the movie's camera given with ``--camera``
    (:func:`plexloc.camera.check.camera_model`): the run folder holds nothing the fit reads for it."""
    cam = camera_from_config(config)
    fields = config.model_dump(mode="json", exclude_none=True)
    numbers = all(k == "kind" or (isinstance(v, (int, float)) and not isinstance(v, bool)) for k, v in fields.items())
    cam.model_source = (str(model), fields if numbers else None)
    return cam


def _camera_from_config(config: CameraConfig) -> Camera:
    if isinstance(config, EMCCDConfig):
        return EMCCD(**config.model_dump(exclude={"kind"}))
    if isinstance(config, SCMOSConfig):
        cam = SCMOS(
            qe=config.qe,
            spurious_charge=config.spurious_charge,
            e_per_adu=_load_map(config.e_per_adu, field="e_per_adu"),
            baseline=_load_map(config.baseline, field="baseline"),
            read_sigma=(_load_map(config.read_sigma, field="read_sigma") if config.read_variance is None
                        else _sqrt(_load_map(config.read_variance, field="read_variance"))),
            saturation_adu=config.saturation_adu,
        )
        cam.map_files = {f: str(v) for f in ("e_per_adu", "baseline", "read_sigma", "read_variance")
                         if isinstance(v := getattr(config, f), (str, Path))}
        # the field that gives the read noise (plexloc calibrate-camera writes read_variance): the camera check advises
        # that field, in its unit, not a read_sigma the file does not hold
        cam.read_noise_field = "read_sigma" if config.read_variance is None else "read_variance"
        return cam
    if isinstance(config, IdealCameraConfig):
        return IdealCamera(saturation_adu=config.saturation_adu)
    if isinstance(config, AdditiveNoiseCameraConfig):
        return AdditiveNoiseCamera(**config.model_dump(exclude={"kind"}))
    raise InputError(f"unknown camera kind {getattr(config, 'kind', config)!r}")  # pragma: no cover


CAMERAS: dict[str, type[Camera]] = {"emccd": EMCCD, "scmos": SCMOS, "ideal": IdealCamera, "additive": AdditiveNoiseCamera}

__all__ = ["CAMERAS", "EMCCD", "SCMOS", "AdditiveNoiseCamera", "Camera", "IdealCamera", "camera_from_config", "cut_maps_to_movie",
           "model_camera"]


def cut_maps_to_movie(cam: Camera, readers: Sequence[Any], given: tuple[int, int] | None, frame_shape: tuple[int, int],
                      *, channel: int, source: str | os.PathLike | None, given_by: str = "--roi-offset"
                      ) -> tuple[Camera, tuple[int, int], str] | None:
    """An sCMOS camera whose per-pixel maps are larger than the movie's frames (maps measured on the full chip, a
    movie recorded in a camera ROI): the camera with the maps cut to the frames at the ROI's chip position
    (``--roi-offset``, else the movie's Micro-Manager metadata), that position and its source; None where the
    maps are not larger. Without a known position, or where the frames at that position do not lie inside the
    maps, an :class:`InputError` that says what to give: the maps of another region cannot be guessed (a
    corner-aligned cut would convert every pixel with another pixel's offset and gain). ``readers``: the channels'
    movie readers (:class:`plexloc.io.tiff.MovieReader`: the first one's ``roi_offset``, from its metadata).
    ``given_by``: where ``given`` came from, as the messages name it."""
    shape = cam.map_shape
    h, w = frame_shape
    if isinstance(cam, SCMOS) and shape is not None and (shape[0] < h or shape[1] < w):
        # said here, where the movie is known (the conversion's own check named the maps only)
        files = getattr(cam, "map_files", {})
        named = f" ({', '.join(f'{k}: {v}' for k, v in files.items())})" if files else ""
        raise InputError(f"channel {channel}'s camera maps are {tuple(shape)} (rows, columns){named}, smaller than the "
                         f"movie's frames {tuple(frame_shape)}: maps cover the camera region they were measured on; "
                         "measure them on a region that holds the movie's (plexloc calibrate-camera)", source=source)
    if not isinstance(cam, SCMOS) or shape is None or shape[0] < h or shape[1] < w:
        return None
    if given is not None:
        (x0, y0), where = (int(given[0]), int(given[1])), given_by
    else:
        roi = readers[0].roi_offset
        if roi is None:
            raise InputError(
                f"channel {channel}'s camera maps are {tuple(shape)} (rows, columns), larger than the movie's frames "
                f"{tuple(frame_shape)}, and the movie's metadata do not record the camera ROI's position on the chip: "
                "give it with --roi-offset X Y (the chip column and row of the frames' corner) to cut the maps there, "
                "or crop the maps to the movie's region" + _found_roi(cam, readers, channel, frame_shape),
                source=source)
        (x0, y0), where = roi.px, roi.source
    if y0 + h > shape[0] or x0 + w > shape[1]:
        raise InputError(
            f"channel {channel}'s camera maps are {tuple(shape)} (rows, columns) but the movie's {tuple(frame_shape)} "
            f"frames at the ROI's chip position x {x0}, y {y0} ({where}) reach row {y0 + h}, column {x0 + w}: outside "
            "the maps; check the ROI position (--roi-offset X Y) or the maps", source=source)

    def part(t):
        return t[y0:y0 + h, x0:x0 + w].clone() if t.ndim == 2 else t.clone()

    out = SCMOS(qe=cam.qe, spurious_charge=cam.spurious_charge, e_per_adu=part(cam.e_per_adu),
                baseline=part(cam.baseline), read_sigma=part(cam.read_sigma), saturation_adu=cam.saturation_adu)
    out.map_files = dict(getattr(cam, "map_files", {}))
    out.config_source = getattr(cam, "config_source", None)
    out.model_source = getattr(cam, "model_source", None)
    out.read_noise_field = getattr(cam, "read_noise_field", "read_sigma")
    # the chip's offset map and where it was cut: the camera check compares the cut with the movie's own pixel offsets
    # and, where they differ, finds the corner (and binning) that fits (plexloc.camera.mapfit)
    out.chip_baseline = cam.baseline if cam.baseline.ndim == 2 else None
    out.map_cut = (x0, y0, where)
    return out, (x0, y0), where


def _found_roi(cam: SCMOS, readers: Sequence[Any], channel: int, frame_shape: tuple[int, int]) -> str:
    """Where the movie's own pixel offsets (the median of its first frames) fit the camera's offset map
    (:func:`plexloc.camera.mapfit.search_map`), as the end of the error that asks for ``--roi-offset``: "" where the
    map has no per-pixel offsets, the movie cannot be read here, or no region fits clearly."""
    from plexloc.camera.check import head_frames
    from plexloc.camera.mapfit import (central, decisive, expected_correlation, find, highpass, map_noise_var,
                                       movie_offsets)

    if cam.baseline.ndim != 2 or not readers:
        return ""
    reader = readers[channel] if channel < len(readers) else readers[0]
    if tuple(getattr(reader, "frame_shape", ())) != tuple(frame_shape):  # (a split view's box: not searched)
        return ""
    k = min(head_frames(frame_shape), len(reader))
    if k < 2:
        return ""
    win, (cx, cy) = central(frame_shape)  # (at most MAX_SIDE pixels per side: the search's time)
    a = movie_offsets(np.median(np.asarray(reader[0:k], dtype=np.float64)[(slice(None), *win)], axis=0))
    full = cam.baseline.double().numpy()
    noise = map_noise_var(cam.read_sigma.double().numpy(), cam.e_per_adu.double().numpy())
    if not decisive(expected_correlation(a, highpass(full), noise), a.size):  # (a right map would stand out)
        return ""
    found = find(a, full, (cx, cy), noise_var=noise)
    if found is None:
        return ""
    x, y, b, r = found
    if b == 1:
        return (f"; the movie's pixel offsets fit the maps at chip x {x}, y {y} (correlation {r:.2f} over the first "
                f"{k} frames): --roi-offset {x} {y}")
    return (f"; the movie's pixel offsets fit the maps' {b}x{b} binned sums at binned x {x}, y {y} (correlation "
            f"{r:.2f}): the movie was recorded with {b}x{b} binning and the maps without; measure them at the movie's "
            "binning (plexloc calibrate-camera)")
