"""A model-free check of a multi-channel movie's geometry: split-view flips and boxes, channel order, transforms.

Molecules blink at the same time in every channel (the same emitter split over biplane / multi-plane channels; each
dye's photons shared between the channels of a ratiometric dual-colour setup). So once channel c is mapped into the
reference channel's coordinates with its configured transform (``r_c = T_c r_0``, nm, camera-chip coordinates,
conventions.md), its frames correlate in time with channel 0's at zero shift, and with nothing elsewhere.

:func:`check_channel_alignment` takes a movie's first frames (one ``(T, H, W)`` array per channel, as the fitters
cut and flip them), removes each pixel's temporal mean (the static background) and each frame's mean (flicker),
maps channel c into the reference frame (bilinear, as the MLE detection does), and sums over frames the spatial
cross-correlation with channel 0 (FFT, both images lightly blurred: the planes' defocus differs). Where the peak of
that map sits says how far the configured transform is off; its height, against the heights that the geometries a
user gets wrong give (channel c mirrored left-right, up-down or both: a split-view ``flip`` forgotten or added; two
channels' order swapped: split-view boxes or the channel movies in the wrong order), says whether the configured
geometry is the right one. The noise of the map is measured far from its centre, so that a movie with too little
signal says so in the report instead of warning. Where a transform moves a channel by less than a pixel or so, two
channels in each other's place correlate about as well as the right order, but the peaks are measured to a few
hundredths of a pixel: a configured peak 0.3-1.5 px off zero with the swapped geometry's (or the reversed
transform's) at least 3x closer is said (``SUBPIXEL_MIN_PX``, ``SUBPIXEL_RATIO``); a peak 1.5 px or more off is
said anyway, and the swapped geometry's own peak that close to zero names the swap as its cause.
"""

from __future__ import annotations

import math
import os
import shlex
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from plexloc.config.models import SplitViewConfig
from plexloc.errors import InputError
from plexloc.simulation.geometry import transform_at_roi

__all__ = [
    "AlignmentReport",
    "ChannelAlignmentWarning",
    "Geometry",
    "PairCorrelation",
    "analysed",
    "check_channel_alignment",
    "check_movie_alignment",
]

#: frames of the movie's start the check looks at (fewer where frames are large: ``PIXEL_BUDGET``)
#: whole-frame pixels :func:`check_movie_alignment` reads at once, per channel (memory)
CHUNK_PIXELS = 2**24
MAX_FRAMES = 200
#: pixels per channel analysed at most (frames x rows x columns): 200 frames of 256 x 256
PIXEL_BUDGET = 200 * 256 * 256
#: larger frames are analysed in a centred window of at most this many pixels a side
MAX_SIDE_PX = 512
#: fewest frames the check decides on
MIN_FRAMES = 10
#: largest shift (pixels, each axis) searched for the correlation peak
MAX_SHIFT_PX = 8
#: Gaussian blur of both images (pixels): tolerates the planes' different defocus
BLUR_PX = 1.0
#: a correlation counts as signal from this many noise standard deviations up
MIN_SNR = 6.0
#: an alternative geometry must correlate this many times better than the configured one to be named
BETTER_RATIO = 2.0
#: a configured geometry whose peak sits this far from zero shift (pixels) is called misaligned
MAX_OFFSET_PX = 1.5
#: shifts within this radius (pixels, each axis) of zero count as "at zero" (sub-pixel residuals of a good transform)
ZERO_RADIUS_PX = 1

_FLIP_WORDS = {"x": "mirrored left-right", "y": "mirrored up-down", "xy": "mirrored left-right and up-down"}


class ChannelAlignmentWarning(UserWarning):
    """The channels of a multi-channel movie do not line up as the configuration says (split-view flip or boxes,
    channel order, or the channel transform)."""


@dataclass(frozen=True)
class PairCorrelation:
    """One channel against the reference under one geometry: the frame-summed, normalised cross-correlation map.

    ``peak``: its largest value within ``MAX_SHIFT_PX``; ``shift_px``: where (x, y, reference pixels, sub-pixel;
    channel c's mapped image sits that far from the reference's, so its transform should map ``r + shift``);
    ``at_zero``: its largest value within ``ZERO_RADIUS_PX`` of zero shift; ``noise``: the map's standard
    deviation far from its centre (its median there is subtracted from ``peak`` and ``at_zero``).
    """

    channel: int
    peak: float
    at_zero: float
    shift_px: tuple[float, float]
    noise: float

    @property
    def snr(self) -> float:
        """``peak`` over ``noise``."""
        return self.peak / self.noise if self.noise > 0 else 0.0


@dataclass(frozen=True)
class Geometry:
    """A way of lining the channels up: the configured one, or an alternative a user gets wrong.

    ``name``: ``configured``, ``flip1x`` (channel 1 mirrored left-right relative to the configuration; ``y``,
    ``xy``), ``swap0-1`` (channels 0 and 1 in each other's place); ``description``: the same in words; ``fix``: what to
    change in the user's terms (empty for the configured geometry); ``pairs``: the channels it changes, each against
    the reference (every channel >= 1 where the reference changes)."""

    name: str
    description: str
    fix: str
    pairs: tuple[PairCorrelation, ...]

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(p.channel for p in self.pairs)


@dataclass
class AlignmentReport:
    """What :func:`check_channel_alignment` measured and found.

    ``status``: ``ok`` (the configured geometry correlates, at zero shift, better than every alternative),
    ``wrong geometry`` (an alternative correlates much better: ``findings`` name the fix), ``misaligned`` (the
    configured geometry's peak is ``MAX_OFFSET_PX`` or more from zero, or ``SUBPIXEL_MIN_PX`` or more where two
    channels in each other's place or the transform reversed line up at least ``SUBPIXEL_RATIO`` times closer), ``undecided`` (too little signal or too few
    frames: ``notes`` say which; no warning). ``configured``: every channel >= 1 against the reference;
    ``alternatives``: the other geometries tried; ``frames``/``frame_shape``: what was analysed (a centred window of
    large frames); ``seconds``: the check's run time.
    """

    status: str
    frames: int
    frame_shape: tuple[int, int]
    px_size_nm: tuple[float, float]
    configured: Geometry | None
    alternatives: tuple[Geometry, ...] = ()
    findings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    offsets_px: dict[int, tuple[float, float]] = field(default_factory=dict)
    #: channel pairs whose transforms place them alike (:func:`_indistinct_pairs`): their order cannot be checked
    indistinct: tuple[tuple[int, int], ...] = ()

    def warn(self, stacklevel: int = 2) -> None:
        """Each finding as a :class:`ChannelAlignmentWarning`."""
        for text in self.findings:
            warnings.warn(text, ChannelAlignmentWarning, stacklevel=stacklevel + 1)

    def summary(self) -> str:
        """One line: the status and each channel's correlation and peak position under the configured geometry."""
        if self.configured is None:
            return f"channel alignment {self.status}: " + "; ".join(self.notes)
        per = ", ".join(
            f"ch{p.channel} {p.peak:.3f} ({p.snr:.0f} sigma) at ({p.shift_px[0]:+.1f}, {p.shift_px[1]:+.1f}) px"
            for p in self.configured.pairs)
        # (a swap of channels placed alike is no alternative: it differs only in which planes are compared)
        shown = [g for g in self.alternatives if not (g.name.startswith("swap") and _swap_pair(g.name) in self.indistinct)]
        best = max(shown, key=lambda g: sum(p.at_zero for p in g.pairs) / len(g.pairs), default=None)
        # in words (plexloc fit prints this line): it showed the internal name ("best alternative swap1-2/flips")
        alt = "" if best is None else (f"; best alternative: {_geometry_words(best, self.alternatives)}, "
                                       f"correlation {sum(p.at_zero for p in best.pairs) / len(best.pairs):.3f} at zero "
                                       "shift")
        order = ""
        if self.indistinct:
            order = (f"; the order of {_indistinct_words(self.indistinct)} is not checked: their transforms place them "
                     "alike, so any order lines up the same (taken as given)")
        return (f"channel alignment {self.status} ({self.frames} frames of {self.frame_shape[1]}x{self.frame_shape[0]} "
                f"px): configured geometry correlation {per}{alt}{order}")

    def as_dict(self) -> dict:
        """JSON-ready: status, frames, findings, notes and every geometry's per-channel numbers."""

        def geo(g: Geometry) -> dict:
            return {"name": g.name, "description": g.description, "fix": g.fix,
                    "pairs": [{"channel": p.channel, "peak": p.peak, "at_zero": p.at_zero, "snr": p.snr,
                               "shift_px": list(p.shift_px), "noise": p.noise} for p in g.pairs]}

        return {"status": self.status, "frames": self.frames, "frame_shape": list(self.frame_shape),
                "configured": None if self.configured is None else geo(self.configured),
                "alternatives": [geo(g) for g in self.alternatives], "findings": list(self.findings),
                "notes": list(self.notes), "seconds": self.seconds,
                "offsets_px": {str(c): list(v) for c, v in self.offsets_px.items()},
                "indistinct": [list(p) for p in self.indistinct]}


# --- geometry helpers -------------------------------------------------------------------------------------------
def _compose(a: str, b: str) -> str:
    """Two flips one after the other (each ``none``, ``x``, ``y``, ``xy``): mirrors commute and undo themselves."""
    s = set(a.replace("none", "")) ^ set(b.replace("none", ""))
    return "".join(sorted(s)) or "none"


def _flip(img: Tensor, flip: str) -> Tensor:
    dims = [d for a, d in (("y", -2), ("x", -1)) if a in flip]
    return img.flip(dims) if dims else img


def _transform_at(transform, offset_px: tuple[float, float], px: tuple[float, float]) -> Tensor:
    """:func:`~plexloc.simulation.geometry.transform_at_roi` in float64, a wrong shape an :class:`InputError`."""
    t = torch.as_tensor(np.asarray(transform, dtype=np.float64))
    try:
        return transform_at_roi(t, offset_px, px)
    except ValueError as e:
        raise InputError(str(e)) from None


#: a transform whose displacement varies by less than this (pixels) over the analysed frames acts as a translation
NEAR_TRANSLATION_PX = 0.35


class _Warp:
    """Sampling a channel image at ``T(r)`` for each reference pixel centre ``r``: a (sub-pixel, circular) shift of
    the spectrum where ``T`` is a translation over the frames to within ``NEAR_TRANSLATION_PX``, else a bilinear
    ``grid`` for grid_sample ((1, H, W, 2))."""

    def __init__(self, transform: Tensor, shape: tuple[int, int], px: tuple[float, float], device):
        h, w = shape
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) * px[0]
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) * px[1]
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        t = transform
        den = t[2, 0] * x + t[2, 1] * y + t[2, 2]
        xc = (t[0, 0] * x + t[0, 1] * y + t[0, 2]) / den
        yc = (t[1, 0] * x + t[1, 1] * y + t[1, 2]) / den
        dx, dy = (xc - x) / px[0], (yc - y) / px[1]
        self.shift = (float(dx[h // 2, w // 2]), float(dy[h // 2, w // 2]))
        spread = float(torch.hypot(dx - self.shift[0], dy - self.shift[1]).max())
        self.grid = None
        if spread > NEAR_TRANSLATION_PX:
            grid = torch.stack([2 * xc / (px[0] * w) - 1, 2 * yc / (px[1] * h) - 1], dim=-1)
            self.grid = grid.to(device=device, dtype=torch.float32)[None]

    def shift_spectrum(self, spec: Tensor, ky: Tensor, kx: Tensor) -> Tensor:
        """The spectrum of ``img(r + shift)`` from that of ``img`` (rfft2 layout)."""
        dx, dy = self.shift
        if dx == 0.0 and dy == 0.0:
            return spec
        return spec * torch.exp(2j * math.pi * (ky * dy + kx * dx)).to(spec.dtype)


def _power(spec: Tensor) -> Tensor:
    """|spectrum|^2 summed over frames."""
    return torch.view_as_real(spec).square().sum(dim=(0, -1))


def _negate_rows(s: Tensor) -> Tensor:
    """Row k -> row (-k) mod H of a spectrum (..., H, W // 2 + 1)."""
    return torch.roll(s.flip(-2), 1, dims=-2)


@dataclass(frozen=True)
class _Sym:
    """A spectrum (rfft2 layout) as ``phase * conj^c(negate_rows^n(B))`` of a base spectrum ``B`` (``base``: a
    channel index, or a warped key). A mirror of real frames is the spectrum at the negated frequency (for the
    half-spectrum's axis: the conjugate at the negated row) times a phase (the mirror also moves the image by its
    size less one pixel); ``img(r + d)`` is the spectrum times ``exp(2 pi i k.d)``."""

    base: object
    c: int
    n: int
    phase: Tensor | None

    def times(self, phase: Tensor) -> _Sym:
        return _Sym(self.base, self.c, self.n, phase if self.phase is None else self.phase * phase)

    def flipped(self, flip: str, shape: tuple[int, int], ky: Tensor, kx: Tensor) -> _Sym:
        h, w = shape
        out = self
        if "y" in flip:  # N(K) * e^{-2 pi i ky (h - 1)}
            ph = None if out.phase is None else _negate_rows(out.phase)
            ramp = torch.exp(-2j * math.pi * ky * (h - 1)).to(torch.complex64)
            out = _Sym(out.base, out.c, 1 - out.n, ph).times(ramp)
        if "x" in flip:  # conj(N(K)) * e^{-2 pi i kx (w - 1)}
            ph = None if out.phase is None else _negate_rows(out.phase).conj()
            ramp = torch.exp(-2j * math.pi * kx * (w - 1)).to(torch.complex64)
            out = _Sym(out.base, 1 - out.c, 1 - out.n, ph).times(ramp)
        return out

    def shifted(self, shift: tuple[float, float], ky: Tensor, kx: Tensor) -> _Sym:
        dx, dy = shift
        if dx == 0.0 and dy == 0.0:
            return self
        return self.times(torch.exp(2j * math.pi * (ky * dy + kx * dx)).to(torch.complex64))


def _flip_spectrum(spec: Tensor, flip: str, shape: tuple[int, int], ky: Tensor, kx: Tensor) -> Tensor:
    """rfft2 of the mirrored frames from the rfft2 ``spec`` (..., H, W // 2 + 1) of real frames (:class:`_Sym`)."""
    h, w = shape
    if "y" in flip:
        spec = _negate_rows(spec) * torch.exp(-2j * math.pi * ky * (h - 1)).to(spec.dtype)
    if "x" in flip:
        spec = _negate_rows(spec).conj() * torch.exp(-2j * math.pi * kx * (w - 1)).to(spec.dtype)
    return spec


def _prepare(frames: Tensor) -> Tensor:
    """(T, H, W) photons -> each pixel less its temporal mean (static background: what is left is the frames'
    covariance), each frame less its mean (flicker)."""
    out = frames - frames.mean(dim=0)
    return out.sub_(out.mean(dim=(-2, -1), keepdim=True))


def _peak(rho: Tensor, max_shift: int, noise_band: tuple[int, int]) -> tuple[float, float, tuple[float, float], float]:
    """Peak value (less the far-field median), zero-shift value (max within ``ZERO_RADIUS_PX``), sub-pixel peak
    position (x, y) and far-field noise of a correlation map ``rho`` (fftshift-ed, zero shift at its centre)."""
    hp, wp = rho.shape
    cy, cx = hp // 2, wp // 2
    dy = torch.arange(hp).view(-1, 1) - cy
    dx = torch.arange(wp).view(1, -1) - cx
    cheb = torch.maximum(dy.abs(), dx.abs())
    far = rho[(cheb > noise_band[0]) & (cheb <= noise_band[1])].double()
    med = float(far.median())
    noise = float(1.4826 * (far - med).abs().median())
    win = rho[cy - max_shift : cy + max_shift + 1, cx - max_shift : cx + max_shift + 1].double() - med
    k = int(torch.argmax(win))
    iy, ix = divmod(k, win.shape[1])
    peak = float(win[iy, ix])

    def vertex(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))

    sx = vertex(float(win[iy, ix - 1]), peak, float(win[iy, ix + 1])) if 0 < ix < win.shape[1] - 1 else 0.0
    sy = vertex(float(win[iy - 1, ix]), peak, float(win[iy + 1, ix])) if 0 < iy < win.shape[0] - 1 else 0.0
    z = ZERO_RADIUS_PX
    zero = float(win[max_shift - z : max_shift + z + 1, max_shift - z : max_shift + z + 1].max())
    return peak, zero, (ix - max_shift + sx, iy - max_shift + sy), noise


# --- the check ----------------------------------------------------------------------------------------------------
def analysed(n_frames: int, frame_shape: tuple[int, int], *, max_frames: int = MAX_FRAMES
             ) -> tuple[int, tuple[int, int, int, int]]:
    """How many of a movie's first frames the check looks at, and the window of them (row, column, height, width):
    the whole frame up to ``MAX_SIDE_PX`` a side, else a centred window (its margins even on each axis, so that the
    window of a mirrored frame is the mirrored window); as many frames as ``PIXEL_BUDGET`` allows (``MIN_FRAMES``
    at least), at most ``max_frames``."""
    H, W = int(frame_shape[0]), int(frame_shape[1])
    h = H if H <= MAX_SIDE_PX else MAX_SIDE_PX - (H - MAX_SIDE_PX) % 2
    w = W if W <= MAX_SIDE_PX else MAX_SIDE_PX - (W - MAX_SIDE_PX) % 2
    n = int(min(n_frames, max_frames, max(PIXEL_BUDGET // (h * w), MIN_FRAMES)))
    return n, ((H - h) // 2, (W - w) // 2, h, w)


def check_movie_alignment(
    frames_of: Callable[[int, int], Sequence[np.ndarray | Tensor]],
    n_frames: int,
    frame_shape: tuple[int, int],
    transforms: Sequence,
    px_size_nm: float | tuple[float, float],
    *,
    roi_offset_px: tuple[int, int] = (0, 0),
    chunk_frames: int = 32,
    **options,
) -> AlignmentReport:
    """:func:`check_channel_alignment` on a movie's first frames, read ``chunk_frames`` at a time with
    ``frames_of(a, b)`` (frames ``a:b`` of every channel, ``(t, H, W)`` each, photons) and cut to the window the check
    looks at (:func:`analysed`), so that a large movie's frames are never held whole. ``options``: those of
    :func:`check_channel_alignment` (``split``, ``sources``, ``warn``, ...)."""
    n, (r0, c0, h, w) = analysed(n_frames, frame_shape, max_frames=options.get("max_frames", MAX_FRAMES))
    # whole frames read at once at most CHUNK_PIXELS per channel (2048 x 2048 frames: 4 at a time), and each window
    # copied as it is cut: a view would keep its chunk's whole frames alive until the end
    from plexloc.io.tiff import frames_per_chunk

    step = frames_per_chunk(int(frame_shape[0]) * int(frame_shape[1]), chunk_frames, budget=CHUNK_PIXELS)

    def cut(f):
        win = f[:, r0 : r0 + h, c0 : c0 + w]
        return win.detach().to("cpu", copy=True) if isinstance(win, Tensor) else np.array(win, copy=True)

    parts: list[list] = []
    for a in range(0, n, step):
        parts.append([cut(f) for f in frames_of(a, min(a + step, n))])
    if not parts:
        parts = [[cut(f) for f in frames_of(0, 0)]]
    chans = [torch.cat([torch.as_tensor(np.asarray(p[c]) if not isinstance(p[c], Tensor) else p[c]) for p in parts])
             for c in range(len(parts[0]))]
    offset = (int(roi_offset_px[0]) + c0, int(roi_offset_px[1]) + r0)
    return check_channel_alignment(chans, transforms, px_size_nm, roi_offset_px=offset, **options)


def check_channel_alignment(
    frames: Sequence[np.ndarray | Tensor],
    transforms: Sequence,
    px_size_nm: float | tuple[float, float],
    *,
    roi_offset_px: tuple[int, int] = (0, 0),
    split: SplitViewConfig | None = None,
    sources: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    max_frames: int = MAX_FRAMES,
    max_shift_px: int = MAX_SHIFT_PX,
    blur_px: float = BLUR_PX,
    min_snr: float = MIN_SNR,
    warn: bool = True,
) -> AlignmentReport:
    """Check a multi-channel movie's first frames against its configured channel geometry (module docstring).

    Args:
        frames: one ``(T, H, W)`` array per channel, as the fit sees them (split-view boxes cut and flipped as
            configured), preferably in photons (any per-channel offset and scale is removed; sCMOS maps are not).
        transforms: one 3x3 transform per channel (nm, reference -> channel, camera-chip coordinates).
        px_size_nm: the pixel size (one value, or x and y).
        roi_offset_px: chip pixel (x, y) at the frames' corner (the transforms act in chip coordinates); (0, 0)
            where ``transforms`` already act on the frames' own coordinates.
        split: the configuration's ``split_view`` section where the channels were cut from one movie (the findings
            then name its ``flip`` and ``boxes``); None for one movie per channel.
        sources: the movie (split view) or the channel movies, for the findings' words.
        max_frames: the first frames looked at (fewer for frames larger than 256 x 256: ``PIXEL_BUDGET``).
        max_shift_px: largest shift searched for the peak (pixels, each axis).
        blur_px: Gaussian blur of both images (pixels).
        min_snr: a correlation counts as signal from this many noise standard deviations up.
        warn: emit the findings as :class:`ChannelAlignmentWarning` s.

    Returns:
        An :class:`AlignmentReport`.

    Raises:
        InputError: fewer than two channels, channels of different shapes, or not one transform per channel.
    """
    t0 = time.perf_counter()
    C = len(frames)
    if C < 2:
        raise InputError(f"the channel alignment check needs at least two channels, got {C}")
    if len(transforms) != C:
        raise InputError(f"{len(transforms)} transform(s) for {C} channels")
    shapes = {tuple(np.shape(f)) for f in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise InputError(f"the channels' frames must all be (T, H, W) of one shape, got {sorted(shapes)}")
    if split is not None and len(split.boxes) != C:
        raise InputError(f"split_view has {len(split.boxes)} boxes for {C} channels")
    px = (float(px_size_nm), float(px_size_nm)) if np.isscalar(px_size_nm) else tuple(float(p) for p in px_size_nm)
    T, H, W = next(iter(shapes))
    n, (r0, c0, h, w) = analysed(T, (H, W), max_frames=max_frames)
    max_shift = int(max(1, min(max_shift_px, min(h, w) // 4)))
    noise_band = (max_shift + 3, min(h, w) // 2 - 1)  # circular correlation: shifts up to half the frame
    base = dict(frames=n, frame_shape=(h, w), px_size_nm=px)
    if n < MIN_FRAMES or noise_band[1] - noise_band[0] < 3:
        note = (f"{n} frame(s): too few to decide (at least {MIN_FRAMES})" if n < MIN_FRAMES
                else f"frames of {w}x{h} px: too small to decide")
        return AlignmentReport(status="undecided", configured=None, notes=(note,), seconds=time.perf_counter() - t0,
                               **base)

    first = frames[0]
    device = first.device if isinstance(first, Tensor) else torch.device("cpu")
    with torch.no_grad():
        def as_tensor(f) -> Tensor:
            t = f[:n] if isinstance(f, Tensor) else torch.from_numpy(np.ascontiguousarray(f[:n]))
            return t.to(device=device, dtype=torch.float32)[:, r0 : r0 + h, c0 : c0 + w]

        prepared = [_prepare(as_tensor(f)) for f in frames]
        offset = (float(roi_offset_px[0]) + c0, float(roi_offset_px[1]) + r0)
        warps = [_Warp(_transform_at(t, offset, px), (h, w), px, device) for t in transforms]
        reversed_ = _reversed_shifts(transforms, offset, px, (h, w))
        flips = list(split.flip or ["none"] * C) if split is not None else ["none"] * C

        # the geometries: each slot c (the channel the fit takes it for) gets a key (slot, source channel, extra
        # mirror of the source's image): the configured one has (c, c, "none") everywhere
        configured = [(c, c, "none") for c in range(C)]
        geometries: list[tuple[str, list[tuple[int, int, str]]]] = [("configured", configured)]
        for c in range(1, C):
            for f in ("x", "y", "xy"):
                g = list(configured)
                g[c] = (c, c, f)
                geometries.append((f"flip{c}{f}", g))
        for i in range(C):
            for j in range(i + 1, C):
                # the image a swapped configuration gives slot i: source j's box with slot i's flip (split view)
                rel = _compose(flips[i], flips[j]) if split is not None else "none"
                g = list(configured)
                g[i], g[j] = (i, j, rel), (j, i, rel)
                geometries.append((f"swap{i}-{j}", g))
                if rel != "none":  # each box with its own flip: the same camera halves mirrored, only the order wrong
                    g = list(configured)
                    g[i], g[j] = (i, j, "none"), (j, i, "none")
                    geometries.append((f"swap{i}-{j}{_WITH_FLIPS}", g))
        # the pairs each geometry needs: (reference key, channel key); slots whose images did not change are shared
        pairs: dict[tuple, None] = {}
        for _, g in geometries:
            for c in range(1, C):
                pairs[(g[0], g[c])] = None
        keys = {k for p in pairs for k in p}
        hw = (h, w)
        ky = torch.fft.fftfreq(h, device=device).view(-1, 1)  # cycles per pixel, signed
        kx = torch.fft.rfftfreq(w, device=device).view(1, -1)
        # every key's spectrum as phase * conj^c(negate_rows^n(base spectrum)): a mirror or a translation acts on
        # the spectrum per frequency, so the frame sums are taken of base spectra only (the plain channels', and the
        # bilinearly warped images' where a transform is no translation) and mirrored and shifted afterwards
        sym = {k: (_Sym(k, 0, 0, None) if warps[k[0]].grid is not None else
                   _Sym(k[1], 0, 0, None).flipped(k[2], hw, ky, kx).shifted(warps[k[0]].shift, ky, kx)) for k in keys}
        terms = {}  # (base p, base q, m, conj p): sum over frames of conj^(conj p)(B_p) * negate_rows^m(B_q)
        for ref, other in pairs:
            sr, so = sym[ref], sym[other]
            # conj(K_ref) K_other = conj(phi_r) phi_o N^nr[C^a(B_p) C^b(N^m B_q)], a = 1 - c_r, b = c_o
            a_, b_ = 1 - sr.c, so.c
            terms[(sr.base, so.base, (sr.n + so.n) % 2, a_ != b_)] = None
        bases = {t[0] for t in terms} | {t[1] for t in terms}
        sums = {t: torch.zeros(h, w // 2 + 1, dtype=torch.complex64, device=device) for t in terms}
        power = {bid: torch.zeros(h, w // 2 + 1, dtype=torch.float32, device=device) for bid in bases}
        block = max(1, (16 * 256 * 256) // (h * w))
        for a in range(0, n, block):
            spectra, negated = {}, {}
            for bid in bases:
                if isinstance(bid, int):
                    spectra[bid] = torch.fft.rfft2(prepared[bid][a : a + block])
                else:  # a warped key: its source mirrored, then sampled at T(r)
                    slot, source, flip = bid
                    img = _flip(prepared[source][a : a + block], flip)
                    img = nnf.grid_sample(img[:, None], warps[slot].grid.expand(img.shape[0], -1, -1, -1),
                                          mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
                    spectra[bid] = torch.fft.rfft2(img)
                power[bid] += _power(spectra[bid])
            for t in terms:
                p_, q_, m, conj_p = t
                bp, bq = spectra[p_], spectra[q_]
                if m and q_ not in negated:
                    negated[q_] = _negate_rows(bq)
                sums[t] += ((bp.conj() if conj_p else bp) * (negated[q_] if m else bq)).sum(0)
        blur2 = torch.exp(-4 * math.pi ** 2 * blur_px ** 2 * (kx ** 2 + ky ** 2))  # both images blurred
        # mirrors and translations keep the blurred power (the blur is symmetric)
        energy = {bid: float(torch.fft.irfft2(pw * blur2, s=hw)[0, 0]) for bid, pw in power.items()}
        cross = {}
        for ref, other in pairs:
            sr, so = sym[ref], sym[other]
            a_, b_ = 1 - sr.c, so.c
            x = sums[(sr.base, so.base, (sr.n + so.n) % 2, a_ != b_)]
            x = x.conj() if b_ == 1 else x  # C^a(B_p) C^b(N^m B_q): (a, b) = (1, 1) or (0, 1) conjugate the sum
            x = _negate_rows(x) if sr.n else x
            phase = (sr.phase.conj() if sr.phase is not None else 1.0) * (so.phase if so.phase is not None else 1.0)
            cross[(ref, other)] = x * phase if not isinstance(phase, float) else x

        def energy_of(k: tuple[int, int, str]) -> float:
            return energy[sym[k].base]

        results: dict[tuple, PairCorrelation] = {}
        for (ref, other), x in cross.items():
            cc = torch.fft.irfft2(x * blur2, s=hw)
            norm = math.sqrt(max(energy_of(ref), 0.0) * max(energy_of(other), 0.0))
            rho = torch.fft.fftshift(cc / norm if norm > 0 else torch.zeros_like(cc)).cpu()
            peak, zero, shift, noise = _peak(rho, max_shift, noise_band)
            results[(ref, other)] = PairCorrelation(channel=other[0], peak=peak, at_zero=zero, shift_px=shift,
                                                    noise=noise)
    words = _Words(split, sources, C, reversed_)
    built = []
    for name, g in geometries:
        # the channels a geometry changes (all where the reference changes, or for the configured geometry)
        changed = [c for c in range(1, C) if name == "configured" or g[0] != configured[0] or g[c] != configured[c]]
        desc, fix = words.describe(name, g, flips)
        built.append(Geometry(name=name, description=desc, fix=fix,
                              pairs=tuple(results[(g[0], g[c])] for c in changed)))
    built = _swap_fixes(built, split, flips, min_snr)
    report = _decide(built[0], built[1:], px, min_snr, max_shift, base, reversed_,
                     flipped=any(f != "none" for f in flips),
                     indistinct=_indistinct_pairs(transforms, offset, px, (h, w), flips if split is not None else None))
    report.seconds = time.perf_counter() - t0
    if warn:
        report.warn(stacklevel=2)
    return report


#: a measured offset this close (pixels) to what a reversed transform gives is called one
REVERSED_TOLERANCE_PX = 1.0
#: below MAX_OFFSET_PX: a configured geometry whose peak sits at least this far from zero (pixels) ...
SUBPIXEL_MIN_PX = 0.3
#: ... and this many times farther than the peak of two channels in each other's place (or than where its transform
#: reversed puts it) is said to be that. A dual-colour split view whose transform is a 47 nm shift
#: (dual_color_splitview.yaml) with its boxes swapped peaked at 0.94 px (0.49 px with channel 1's box mirrored), the
#: swapped geometry's peak 0.01-0.04 px from zero; "ok" before (the swap correlated 1.02x better, not 2x)
SUBPIXEL_RATIO = 3.0


@dataclass(frozen=True)
class _Reversed:
    """Channel c's configured transform given the other way round (channel -> reference, the reverse of
    conventions.md's ``r_c = T_c r_0``): ``shift_px`` is where the configured geometry's correlation peak would sit
    (x, y, pixels, at the analysed window's centre), ``inverse`` the transform that would line up (camera chip, nm)."""

    channel: int
    shift_px: tuple[float, float]
    inverse: list[list[float]]

    def words(self) -> str:
        rows = ", ".join("[" + ", ".join(f"{v:.6g}" for v in row) + "]" for row in self.inverse)
        return (f"channels.{self.channel}.transform given in the reverse direction (channel {self.channel} -> "
                f"reference; plexloc's transforms map reference -> channel, r_{self.channel} = T_{self.channel} r_0, "
                f"conventions.md, as plexloc calibrate and plexloc register write them): its inverse [{rows}] "
                "would line up")


def _reversed_shifts(transforms, offset_px: tuple[float, float], px: tuple[float, float], shape: tuple[int, int]
                     ) -> dict[int, _Reversed]:
    """For every channel c >= 1, what the check measures where the truth is the inverse of the configured transform
    (:class:`_Reversed`): the configured warp samples channel c at ``T(r)`` and finds the molecule of ``r_0`` at
    ``T^-1(T^-1 r_0)`` (chip transforms are inverted in chip coordinates, so the inverse is the configuration's own
    field inverted)."""
    h, w = shape
    centre = torch.tensor([w / 2 * px[0], h / 2 * px[1], 1.0], dtype=torch.float64)
    out = {}
    for c in range(1, len(transforms)):
        chip = torch.as_tensor(np.asarray(transforms[c], dtype=np.float64))
        try:
            inv_chip = torch.linalg.inv(chip)
            inv = torch.linalg.inv(_transform_at(chip, offset_px, px))
        except (RuntimeError, InputError):  # singular: no reverse to name
            continue
        p = inv @ (inv @ centre)
        p = p / p[2]
        shift = (float((p[0] - centre[0]) / px[0]), float((p[1] - centre[1]) / px[1]))
        inv_chip = inv_chip / inv_chip[2, 2]
        out[c] = _Reversed(channel=c, shift_px=shift, inverse=inv_chip.tolist())
    return out


class _Words:
    """The user's terms for a geometry: the split view's ``flip`` and ``boxes``, or the order of the channel movies."""

    def __init__(self, split: SplitViewConfig | None, sources, n_channels: int,
                 reversed_: dict[int, _Reversed] | None = None):
        self.split = split
        self.reversed = reversed_ or {}
        if sources is None:
            self.sources = None
        elif isinstance(sources, (str, os.PathLike)):
            self.sources = [str(sources)]
        else:
            self.sources = [str(s) for s in sources]
        self.n = n_channels

    def movie(self, c: int) -> str:
        if self.sources is None or self.split is not None or c >= len(self.sources):
            return f"channel {c}'s movie"
        return f"channel {c}'s movie ({self.sources[c]})"

    def describe(self, name: str, g, flips: list[str]) -> tuple[str, str]:
        if name == "configured":
            return "the configured geometry", ""
        if name.startswith("flip"):
            rest = name[4:]
            c = int(rest.rstrip("xy"))
            f = rest[len(str(c)):]
            desc = f"channel {c} {_FLIP_WORDS[f]} relative to the configuration"
            if self.split is not None:
                new = list(flips)
                new[c] = _compose(flips[c], f)
                fix = (f"set the split_view section's flip of channel {c} from '{flips[c]}' to '{new[c]}' "
                       f"(flip: [{', '.join(new)}])")
            else:
                # (a configuration has no flip for a channel's own movie; the advice named no command that mirrors)
                movie = self.sources[c] if self.sources is not None and c < len(self.sources) else "MOVIE"
                fix = (f"{self.movie(c)} is {_FLIP_WORDS[f]} relative to channel 0's: mirror that movie "
                       f"({'left-right' if f == 'x' else 'up-down' if f == 'y' else 'both ways'}) with plexloc split "
                       f"{shlex.quote(str(movie))} --flip {f} --out DIR and fit the mirrored movie it writes in its "
                       "place")
            return desc, fix
        i, j = _swap_pair(name)
        desc = f"channels {i} and {j} in each other's place"
        if self.split is not None:
            boxes = [list(b) for b in self.split.boxes]
            boxes[i], boxes[j] = boxes[j], boxes[i]
            fix = (f"swap the split_view section's boxes of channels {i} and {j} (boxes: "
                   f"{[list(b) for b in boxes]}; each box keeps its channel's flip)")
        else:
            order = list(self.sources) if self.sources is not None and len(self.sources) == self.n else None
            if order is not None:
                order[i], order[j] = order[j], order[i]
                fix = (f"the channel movies are in the wrong order: give them to plexloc fit as {' '.join(order)} "
                       f"(channels {i} and {j} swapped)")
            else:
                fix = f"give the channel movies in the other order (channels {i} and {j} swapped)"
        rev = self.reversed.get(j)
        if (self.n == 2 and (i, j) == (0, 1) and rev is not None and math.hypot(*rev.shift_px) >= MAX_OFFSET_PX
                and g[0][2] == "none"):
            # two channels in each other's place line up exactly as channel 1's transform inverted does (its image
            # sampled at T^-1 r): the geometry cannot tell them apart, and the inverse is the likelier mistake where
            # the order was checked (a figure caption of DECODE-Plex states the reverse direction)
            fix += f"; or, where the order is right, {rev.words()}"
        return desc, fix


#: two channels whose transforms put every point of the analysed frames within this many pixels of each other (and
#: whose images are mirrored alike) cannot be told apart by geometry: swapped, they line up exactly as configured
INDISTINCT_PX = 0.1


def _indistinct_pairs(transforms, offset_px: tuple[float, float], px: tuple[float, float], shape: tuple[int, int],
                      flips: list[str] | None) -> dict[tuple[int, int], float]:
    """``{(i, j): largest distance in pixels}`` of the channel pairs whose transforms place the analysed frames'
    corners and centre within :data:`INDISTINCT_PX` of each other (and, in a split view, with the same ``flip``):
    such channels line up the same in either order (a quad-plane setup's identity transforms)."""
    h, w = shape
    pts = torch.tensor([[x * w * px[0], y * h * px[1], 1.0] for x in (0.0, 0.5, 1.0) for y in (0.0, 0.5, 1.0)],
                       dtype=torch.float64).T
    placed = []
    for t in transforms:
        try:
            q = _transform_at(t, offset_px, px) @ pts
        except InputError:
            placed.append(None)
            continue
        placed.append(torch.stack([q[0] / q[2] / px[0], q[1] / q[2] / px[1]]))
    out = {}
    for i in range(len(placed)):
        for j in range(i + 1, len(placed)):
            if placed[i] is None or placed[j] is None or (flips is not None and flips[i] != flips[j]):
                continue
            d = float(torch.hypot(*(placed[i] - placed[j])).max())
            if d < INDISTINCT_PX:
                out[(i, j)] = d
    return out


def _decide(cfg: Geometry, alts: list[Geometry], px: tuple[float, float], min_snr: float, max_shift: int,
            base: dict, reversed_: dict[int, _Reversed] | None = None, flipped: bool = False,
            indistinct: dict[tuple[int, int], float] | None = None) -> AlignmentReport:
    """The report of the geometries' correlations: alternatives that line up better (:func:`_better_geometries`), the
    configured geometry's channels that sit off zero (:func:`_channel_finding`) and the swaps that geometry cannot
    tell (:func:`_undecided_swaps`).

    ``indistinct`` (:func:`_indistinct_pairs`): channel pairs whose swap moves nothing. Their swapped geometries are
    neither reported as better nor named as lining up as well: they differ from the configured one only in which
    channels are correlated with channel 0, and a quad-plane movie's planes correlate more where their focus is nearer
    (its channels 0 and 1 swapped named "swap1-2" as the undecided swap, and a swap may have correlated better).
    One note says plainly that their order cannot be checked here."""
    indistinct = indistinct or {}
    alts_all = alts
    alts = [g for g in alts if not (g.name.startswith("swap") and _swap_pair(g.name) in indistinct)]
    by_channel = {p.channel: p for p in cfg.pairs}
    notes: list[str] = []
    signal = [p for g in [cfg, *alts] for p in g.pairs if p.snr >= min_snr]
    if not signal:
        best = max((p.snr for g in [cfg, *alts] for p in g.pairs), default=0.0)
        notes.append(f"too little signal to decide: no geometry's correlation reaches {min_snr:g} noise standard "
                     f"deviations (best {best:.1f}); the first {base['frames']} frames may hold too few blinking "
                     "molecules")
        return AlignmentReport(status="undecided", configured=cfg, alternatives=tuple(alts_all), notes=tuple(notes),
                               **base)
    fired = _better_geometries(alts, by_channel, min_snr)
    findings, covered = _geometry_findings(fired, base)
    offsets: dict[int, tuple[float, float]] = {}
    said: set[int] = set()  # channels found not to line up (no swap left "undecided" for them)
    per_channel: list[tuple[int, str, Geometry | None]] = []  # (channel, sentence, the swap it names)
    for p in cfg.pairs:
        offsets[p.channel] = p.shift_px
        if p.snr < min_snr:
            notes.append(f"channel {p.channel}: its correlation with channel 0 under the configured geometry is "
                         f"{p.snr:.1f} noise standard deviations (below {min_snr:g}): its alignment is not measured")
            continue
        if p.channel in covered:
            continue
        found = _channel_finding(p, alts, by_channel, px, min_snr, max_shift, base, reversed_, flipped)
        if found is not None:
            per_channel.append((p.channel, *found))
    # a swap of channel 0 with channel c moves every channel's reference: the other channels' offsets are the swap's
    # too, not sentences of their own (a 3-channel split view with channels 0 and 1 listed the other way round)
    by_swap = {c for _, _, swap in per_channel if swap is not None for c in swap.channels}
    for c, finding, swap in per_channel:
        if swap is None and c in by_swap:
            continue
        said.update(swap.channels if swap is not None else (c,))
        findings.append(finding)
    undecided_swaps = _undecided_swaps(alts, fired, said, by_channel, min_snr)
    if undecided_swaps:
        notes.append(f"channel order not decided by geometry: the configured order lines up no better than "
                     f"{_undecided_words(undecided_swaps, alts)}; the transforms move the channels too little for a "
                     "swap to show")
    if indistinct:
        notes.append(f"channel order not decided by geometry, and it cannot be: the transforms place "
                     f"{_indistinct_words(indistinct)} within {max(indistinct.values()):.2f} px of one another"
                     + (" and the split view mirrors them alike" if flipped else "")
                     + ", so they line up the same in any order and a swap among them does not show here; their "
                     "order is taken as given. Check it another way: each channel's focal plane from a bead stack "
                     "(plexloc calibrate), or, for ratiometric dyes, plexloc color --config on the fitted table")
    status = ("wrong geometry" if fired else "misaligned" if findings else
              "ok" if all(p.snr >= min_snr for p in cfg.pairs) else "undecided")
    return AlignmentReport(status=status, configured=cfg, alternatives=tuple(alts_all), findings=tuple(findings),
                           notes=tuple(notes), offsets_px=offsets, indistinct=tuple(sorted(indistinct)), **base)


def _indistinct_words(pairs) -> str:
    """``channels 0, 1, 2, 3`` where every pair among them is placed alike, else the pairs (``channels 0 and 1, 1 and
    2, 2 and 3``): transforms 0.08 px apart channel by channel put channels 0 and 3 0.24 px apart, and their swap is
    still checked (and told at 0.2 px), so "channels 0, 1, 2, 3 within 0.08 px" was not so."""
    pairs = sorted(tuple(p) for p in pairs)
    chans = sorted({c for p in pairs for c in p})
    if len(pairs) == len(chans) * (len(chans) - 1) // 2:
        return f"channels {', '.join(map(str, chans))}"
    return "channels " + ", ".join(f"{i} and {j}" for i, j in pairs)


def _geometry_words(g: Geometry, alts) -> str:
    """An alternative geometry in words: its description, and for a split view's swap of two channels whose flips
    differ, whether the boxes move with their flips or alone (:func:`_swap_fixes`)."""
    if not g.name.startswith("swap"):
        return g.description
    i, j = _swap_pair(g.name)
    if g.name.endswith(_WITH_FLIPS):
        return f"{g.description} (split_view boxes swapped together with their flips)"
    if any(a.name == f"swap{i}-{j}{_WITH_FLIPS}" for a in alts):
        return f"{g.description} (split_view boxes swapped, each flip kept in its place in the flip list)"
    return g.description


def _undecided_words(names: list[str], alts: list[Geometry]) -> str:
    """The swaps ``names`` (geometry names) in words: ``channels 0 and 1 in each other's place (their split_view boxes
    swapped together with their flips, or the boxes alone), or channels 0 and 2 ...``. The note showed the internal
    names, with a verb for one ("swap0-1, swap0-1/flips lines up as well as ...")."""
    with_flips = {_swap_pair(g.name) for g in alts if g.name.endswith(_WITH_FLIPS)}  # pairs whose flips differ
    kinds: dict[tuple[int, int], set[bool]] = {}
    for name in names:
        kinds.setdefault(_swap_pair(name), set()).add(name.endswith(_WITH_FLIPS))
    words = []
    for (i, j), k in kinds.items():
        how = ""
        if (i, j) in with_flips:
            how = (" (their split_view boxes swapped together with their flips, or the boxes alone)" if len(k) == 2
                   else " (their split_view boxes swapped together with their flips)" if True in k
                   else " (their split_view boxes swapped, each flip kept in its place in the flip list)")
        words.append(f"channels {i} and {j} in each other's place{how}")
    return ", or ".join(words)


def _swap_pair(name: str) -> tuple[int, int]:
    """``(i, j)`` of a swap geometry's name ``swap{i}-{j}`` (or ``swap{i}-{j}/flips``)."""
    i, j = (int(v) for v in name[4:].split("/")[0].split("-"))
    return i, j


#: the name's suffix of a split view's swap that moves each box's flip with it (:func:`_swap_fixes`)
_WITH_FLIPS = "/flips"


def _overlap_words(at_zero: float) -> str:
    """A geometry's mean correlation at zero shift (``PairCorrelation.at_zero``) in a user's words: it read "1.003 at
    zero", which said neither what was measured nor what a good value is."""
    return (f"the channels' frames then correlate {at_zero:.2f} where they should overlap (1: the same image, "
            "0: no likeness)")


def _swap_fixes(built: list[Geometry], split: SplitViewConfig | None, flips: list[str],
                min_snr: float) -> list[Geometry]:
    """Where a split view's two swapped channels have different flips, two configurations put them in each other's
    place: the boxes swapped with their flips (``swap{i}-{j}/flips``: the camera halves mirrored as configured, only
    the order wrong) and the boxes alone (``swap{i}-{j}``: the flips kept by channel, so the other half is mirrored).
    Both are measured, and each one's fix names the one that lines up better by ``min_snr`` noise standard deviations,
    else both, the one that keeps each half's mirroring first. The two often line up alike (the channels stay
    mirrored relative to each other: 0.567 and 0.536 at zero for a split view with channel 1's half mirrored, its
    boxes and flips listed the other way round). Before, only the boxes alone were tried and named: following that fix
    mirrored channel 0, every position came out mirrored (JI 3.9 % where the right configuration gave 65.9 %) and the
    check then said ok; and where the transform is small the listed-the-other-way-round layout was told as a transform
    given in the reverse direction only."""
    by_name = {g.name: g for g in built}
    out = []
    for g in built:
        base = g.name[: -len(_WITH_FLIPS)] if g.name.endswith(_WITH_FLIPS) else g.name
        alone_g, moved_g = by_name.get(base), by_name.get(base + _WITH_FLIPS)
        if split is None or moved_g is None or alone_g is None:
            out.append(g)
            continue
        i, j = _swap_pair(g.name)
        boxes = [list(b) for b in split.boxes]
        boxes[i], boxes[j] = boxes[j], boxes[i]
        moved = list(flips)
        moved[i], moved[j] = moved[j], moved[i]
        at_alone = sum(p.at_zero for p in alone_g.pairs) / len(alone_g.pairs)
        at_moved = sum(p.at_zero for p in moved_g.pairs) / len(moved_g.pairs)
        noise = max(math.sqrt(sum(p.noise ** 2 for p in alone_g.pairs) / len(alone_g.pairs)), 1e-12)
        head = f"swap the split_view section's boxes of channels {i} and {j}"
        # "box", not "half": a quad view has four (a quad's fix said "each half of the camera")
        together = f"flip: [{', '.join(moved)}]: each box keeps its own mirroring; {_overlap_words(at_moved)}"
        kept = (f"flip: [{', '.join(flips)}] as it is: each box then takes the other's mirroring; "
                f"{_overlap_words(at_alone)}")
        if at_alone - at_moved >= min_snr * noise:  # the boxes alone line up clearly better
            fix = f"{head} alone (boxes: {boxes}, {kept})"
        elif at_moved - at_alone >= min_snr * noise:
            fix = f"{head} together with their flips (boxes: {boxes}, {together})"
        else:
            fix = (f"{head} together with their flips (boxes: {boxes}, {together}); or, where channel {i}'s box is "
                   f"the one the splitter mirrors, the boxes alone ({kept})")
        rev = g.fix.find("; or, where the order is right, ")  # the reversed transform lines up alike: kept
        out.append(Geometry(name=g.name, description=g.description, fix=fix + (g.fix[rev:] if rev >= 0 else ""),
                            pairs=g.pairs))
    return out


def _better_geometries(alts: list[Geometry], by_channel: dict[int, PairCorrelation],
                       min_snr: float) -> list[tuple[float, Geometry, float, float]]:
    """The alternatives that correlate ``BETTER_RATIO`` times better than the configured geometry (at zero shift or at
    the peak) and by ``min_snr`` noise standard deviations: ``(excess in noise units, geometry, its mean correlation,
    the configured one's)`` each."""
    fired: list[tuple[float, Geometry, float, float]] = []
    for g in alts:
        noise = math.sqrt(sum(by_channel[p.channel].noise ** 2 for p in g.pairs)) or float("inf")
        for attr in ("at_zero", "peak"):
            alt = sum(getattr(p, attr) for p in g.pairs)
            ref = sum(getattr(by_channel[p.channel], attr) for p in g.pairs)
            if alt / noise >= min_snr and alt >= BETTER_RATIO * max(ref, 0.0) and (alt - ref) / noise >= min_snr:
                fired.append(((alt - ref) / noise, g, alt / len(g.pairs), ref / len(g.pairs)))
                break
    return fired


def _geometry_findings(fired: list[tuple[float, Geometry, float, float]], base: dict) -> tuple[list[str], set[int]]:
    """``(findings, channels covered)``: one sentence per better geometry, the best first, skipping those whose
    channels a better one explained already."""
    findings: list[str] = []
    covered: set[int] = set()
    for _, g, alt, ref in sorted(fired, key=lambda f: -f[0]):
        if covered.intersection(g.channels):
            continue  # a better explanation of these channels was named already
        covered.update(g.channels)
        shift = [p.shift_px for p in g.pairs]
        off = max(shift, key=lambda s: math.hypot(*s))
        extra = (f"; even so its peak sits at ({off[0]:+.1f}, {off[1]:+.1f}) px from zero: check the transform too"
                 if math.hypot(*off) >= MAX_OFFSET_PX else "")
        findings.append(
            f"channel geometry: {g.description} correlates {alt / max(ref, 1e-12):.1f}x better with channel 0 "
            f"than the configured geometry ({alt:.3f} against {ref:.3f}, normalised cross-correlation of the first "
            f"{base['frames']} frames, blinking molecules; channel(s) {', '.join(map(str, g.channels))}): likely "
            f"cause and fix: {g.fix}{extra}")
    return findings, covered


def _channel_finding(p: PairCorrelation, alts: list[Geometry], by_channel: dict[int, PairCorrelation],
                     px: tuple[float, float], min_snr: float, max_shift: int, base: dict,
                     reversed_: dict[int, _Reversed] | None, flipped: bool) -> tuple[str, Geometry | None] | None:
    """The sentence for a channel whose configured correlation peaks off zero (swapped with channel 0, its
    transform reversed, or its transform off) and the swap geometry it names (None: no swap), ``None`` where it lines
    up. A swap with channel 0 is considered for any number of channels (it was for two only: a 3-channel split view
    with channels 0 and 1 listed the other way round was told only that channel 1's transform was reversed); every
    channel's correlation under the swapped geometry must then peak near zero."""
    dx, dy = p.shift_px
    rev = (reversed_ or {}).get(p.channel)
    off = math.hypot(dx, dy)
    # too small a move for the swapped geometry to correlate twice as well, but peaks are measured to a few
    # hundredths of a pixel: the configured peak sits off zero, where the two channels in each other's place (their
    # own peak at zero) or the transform reversed put it
    reverse = (rev is not None and SUBPIXEL_RATIO * math.hypot(dx - rev.shift_px[0], dy - rev.shift_px[1]) <= off)
    # two channels in each other's place: the swapped geometry's own peak near zero and, without mirrors, the
    # configured one where the reversed transform puts it (the two are one geometry then); a transform merely
    # wrong can line the swapped geometry up by chance (a 2-degree rotation given for a movie without one: swapped
    # 0.10 px from zero, configured 0.86 px but nowhere near the reversed transform's place). A split view whose two
    # channels have different flips has two swaps (:func:`_swap_fixes`): the boxes alone (a mirror between the two
    # readings) and the boxes with their flips (none, as without a split view); the one whose peak sits nearer zero
    swap, swapped = None, False

    def worst(g: Geometry) -> float:  # the swapped geometry's peak farthest from zero, over its channels
        return max(math.hypot(*q.shift_px) for q in g.pairs)

    for name, mirrored in ((f"swap0-{p.channel}", flipped), (f"swap0-{p.channel}{_WITH_FLIPS}", False)):
        g = next((a for a in alts if a.name == name), None)
        ok = (g is not None and min(q.snr for q in g.pairs) >= min_snr and (reverse if not mirrored else True)
              and (SUBPIXEL_RATIO * (2.0 if mirrored else 1.0)) * worst(g) <= off)
        if g is not None and (swap is None or (ok and (not swapped or worst(g) < worst(swap)))):
            swap, swapped = g, ok
    # past MAX_OFFSET_PX the channel is said anyway: the swapped geometry's own peak at zero names the cause (a
    # swapped split view of a 2-degree rotation peaked 1.6 px off and was told to re-run plexloc calibrate)
    if (SUBPIXEL_MIN_PX <= off < MAX_OFFSET_PX and (swapped or reverse)) or (off >= MAX_OFFSET_PX and swapped):
        if swapped and reverse:
            what = f"channels 0 and {p.channel} in each other's place (or its transform given the wrong way round) put it"
            # the swap's own fix may name the reversed transform already (:meth:`_Words.describe`, :func:`_swap_fixes`):
            # it was said twice, word for word
            clause = f"; or, where the order is right, {rev.words()}"
            causes = swap.fix if clause in swap.fix else swap.fix + clause
        elif swapped:
            what, causes = f"channels 0 and {p.channel} in each other's place put it", swap.fix
        else:
            what, causes = "its transform given the wrong way round puts it", rev.words()
        at = next((q for q in swap.pairs if q.channel == p.channel), swap.pairs[0]) if swapped else None
        return ((
            f"channel {p.channel} does not line up with channel 0 where its transform puts it but where {what}: "
            f"the blinking molecules' cross-correlation peaks at dx = {dx:+.2f} px, dy = {dy:+.2f} px from zero "
            f"(first {base['frames']} frames)"
            + (f", with the channels in each other's place at ({at.shift_px[0]:+.2f}, "
               f"{at.shift_px[1]:+.2f}) px" if swapped else "")
            + f": likely cause and fix: {causes}"
            + (". For ratiometric dual-colour data the dyes' photon ratios tell the channel order: plexloc color "
               "--config CONFIG on the fitted table warns where the channels look swapped" if swapped else "")),
            swap if swapped else None)
    if off < MAX_OFFSET_PX:
        return None
    edge = max(abs(dx), abs(dy)) >= max_shift - 0.5
    if rev is not None and math.hypot(dx - rev.shift_px[0], dy - rev.shift_px[1]) < REVERSED_TOLERANCE_PX:
        return (
            f"channel {p.channel} does not line up with channel 0 where its transform puts it: the blinking "
            f"molecules' cross-correlation peaks at dx = {dx:+.1f} px, dy = {dy:+.1f} px from zero (first "
            f"{base['frames']} frames), where a transform given the wrong way round puts it ({rev.shift_px[0]:+.1f}, "
            f"{rev.shift_px[1]:+.1f} px): likely cause and fix: {rev.words()}"), None
    return (
        f"channel {p.channel} does not line up with channel 0 where its transform puts it: the blinking "
        f"molecules' cross-correlation peaks at dx = {dx:+.1f} px ({dx * px[0]:+.0f} nm), dy = {dy:+.1f} px "
        f"({dy * px[1]:+.0f} nm) from zero (first {base['frames']} frames"
        + (f"; at the edge of the +-{max_shift} px searched: the offset may be larger" if edge else "")
        + f"); the transform of channel {p.channel} is off by about that much (it should map r + "
        f"({dx * px[0]:+.0f}, {dy * px[1]:+.0f}) nm): re-run plexloc calibrate on beads (or plexloc register "
        "on single-channel fits of this movie) and use its transform; check the ROI offset on the chip too "
        "(roi_offset_px, --roi-offset) where the transform has a rotation or scale"), None


def _undecided_swaps(alts: list[Geometry], fired: list[tuple[float, Geometry, float, float]], said: set[int],
                     by_channel: dict[int, PairCorrelation], min_snr: float) -> list[str]:
    """The swaps that line up as well as the configured order (none of their channels said or fired)."""
    return [g.name for g in alts if g.name.startswith("swap") and not any(g is f[1] for f in fired)
            and not said.intersection(g.channels)
            and all(abs(p.at_zero - by_channel[p.channel].at_zero) < min_snr * by_channel[p.channel].noise
                    for p in g.pairs)]
