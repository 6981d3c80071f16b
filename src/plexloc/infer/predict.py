"""Running a localizer over frames of any size and movies of any length.

- Temporal windows: frame t is predicted from frames t-h .. t+h (h = window // 2); the first and last
  frames repeat the movie's edge frame, so every frame gets a prediction.
- Tiling: frames wider or taller than ``tile_px`` are cut into cores of ``tile_px`` pixels, each
  predicted with ``margin_px`` of context on every side that the frame has; localizations are
  extracted on each tile and kept only where their pixel lies in the tile's core. Every pixel belongs
  to exactly one core, so there are neither seams nor duplicates. :func:`tile_margin_px` is the network's
  receptive field plus the extraction's neighbourhood, with which a tiled frame gives the whole frame's
  localizations exactly (up to float rounding) whatever the weights: a fixed 24 px was less than a depth-2
  network's reach (52 px; depth 1: 22, depth 3: 116), and a randomly initialised depth-2 network found 6,953
  localizations on 150x130 frames in 32-px tiles where the whole frames gave 6,952. A trained network's outputs
  depend little on its reach's outer part, and the full margin is costly (a 256-px core with 55 px on each side
  is twice its pixels; 116 px, 3.7 times), so the default is that margin capped at :data:`MAX_DEFAULT_MARGIN_PX`.
  Measured on a trained 3D network (16 features, depths 2 and 2; 10 frames of 512x512, 9,641 localizations, one
  CPU thread): margins of 24 / 32 / 40 / 55 px gave the whole frame's localizations at the same pixels, positions
  at most 0.36 / 0.023 / 0.012 / 0.012 nm apart (0.012 nm: float rounding), in 9.7 / 12.1 / 13.1 / 14.2 s (the
  whole frames 10.9 s); the 4-minute demo network agreed to 0.008 nm at every margin.
  Depth 3 (DECODE-Plex's; reach 116 px, exact margin 119) needs no more: ``bench/tile_margin.py``, 3D
  astigmatic networks of 16 features at depths 3 and 3 trained on 64-px ROIs, 10 frames of 600x600 at 1 emitter per
  um^2 in 256-px tiles, one CPU thread. One channel (8 CPU minutes, JI 73 %): margins of 24 / 32 / 40 / 48 / 56 / 119
  px gave the whole frame's 24,207 localizations at the same pixels; photons 2.2e-3 / 3.4e-4 / 6.7e-5 / 5e-6 / 7e-7 /
  0 apart (relative), each maximum pixel's own position (merge radius 0) 0.42 / 0.044 / 0.012 / 0.012 / 0.012 /
  0.012 nm; 24 px took 31 s, 40 px 41 s, 56 px 52 s, 80 px 65 s, 119 px 86 s (the whole frames 32 s). Biplane (the
  union U-Net over 2 channels; 15 minutes, JI 63 %): the whole frame's 21,496 localizations at every margin from 24
  px; at 24 / 32 / 40 / 119 px photons 2.4e-4 / 1.0e-5 / 8e-7 / 0 apart, own positions 0.14 / 0.016 / 0.016 / 0.016
  nm; 40 px took 63 s, 119 px 130 s (whole frames 47 s). The depth-2 reference (4 minutes, JI 51 %): 17,645
  localizations, photons at float rounding (3e-7) from 32 px; 24 / 40 / 55 px took 28 / 36 / 46 s (whole 28 s).
  These networks leave the outer 60-80 px of a depth-3 reach unused; one trained on larger ROIs or far longer may
  not (re-measure it with the bench).
  Float rounding alone moves single positions by several nm, margin or none: a neighbour pixel that predicts a
  position 0.49999 px from its maximum's sits on the extraction's merge radius (0.5 px) and joins the weighted mean
  in one tile shape and not in another. 1 to 3 of the 17,645-24,207 localizations moved 9-21 nm at every margin
  above (merge radius 0.5 px), the exact one included for the depth-2 and the biplane network.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Iterator
from contextlib import nullcontext

import numpy as np
import torch
from torch import Tensor

from plexloc.infer.extract import BG_WINDOW_PX, Extracted, extract
from plexloc.nets.localizer import Localizer, LocalizerSpec
from plexloc.simulation.geometry import transform_indicator


def iter_frame_blocks(
    chunks: Iterable[Tensor], *, window: int, batch_frames: int
) -> Iterator[tuple[int, Tensor]]:
    """Consecutive blocks of frames, each holding the temporal windows of up to ``batch_frames`` frames.

    Args:
        chunks: consecutive chunks (t, C, H, W) of the movie (any chunk sizes).
        window: frames per window (odd); h = window // 2.
        batch_frames: frames predicted per block (the last block may hold fewer).

    Yields:
        ``(first_frame, block)`` with block (n + 2h, C, H, W): the frames first_frame - h .. first_frame + n - 1 + h,
        where frames before the first and after the last repeat the movie's edge frame. The windows of the
        block's n frames are :func:`sliding_windows` of it; consecutive blocks overlap by 2h frames.

    Each block is a tensor of its own, filled frame by frame from the chunks, which are not kept (the next
    block's first 2h frames are copied out of this one). A caller that drops its block before asking for the next
    holds one block at a time: before session 48 the blocks were concatenations of a growing buffer, and the
    caller's block, the buffer and its next concatenation held up to three times the block (a 2048 x 2048
    movie's 18-frame blocks in chunks of 4 frames: 59 frames of float32, 1 GB).
    """
    h = window // 2
    size = int(batch_frames) + 2 * h
    block: Tensor | None = None  # the block being filled, and how many of its frames are
    fill = 0
    tail: Tensor | None = None  # the last 2h frames of the block before it
    first = 0  # the first frame predicted from the block being filled

    def feed(x: Tensor) -> Iterator[tuple[int, Tensor]]:
        nonlocal block, fill, tail, first
        i = 0
        while i < x.shape[0]:
            if block is None:
                block = torch.empty((size, *x.shape[1:]), dtype=x.dtype, device=x.device)
                fill = 0
                if tail is not None:
                    block[: 2 * h] = tail
                    fill, tail = 2 * h, None
            k = min(size - fill, x.shape[0] - i)
            block[fill : fill + k] = x[i : i + k]
            fill, i = fill + k, i + k
            if fill == size:
                full, block = block, None
                tail = full[size - 2 * h :].clone() if h else None
                yield first, full
                del full  # the caller's block is not held here while the next is filled
                first += int(batch_frames)

    last: Tensor | None = None
    for chunk in chunks:
        if chunk.shape[0] == 0:
            continue
        if last is None and h:
            yield from feed(chunk[:1].expand(h, *chunk.shape[1:]))
        last = chunk[-1:].clone()
        yield from feed(chunk)
        del chunk
    if last is None:
        return
    if h:
        yield from feed(last.expand(h, *last.shape[1:]))
    if block is not None and fill > 2 * h:  # the movie's last frames: a shorter block
        yield first, block[:fill]


def sliding_windows(block: Tensor, window: int) -> Tensor:
    """The temporal windows of a block (n + window - 1, ...): (n, window, ...), views on the block."""
    return block.unfold(0, window, 1).movedim(-1, 1)


def iter_windows(
    chunks: Iterable[Tensor], *, window: int, batch_frames: int
) -> Iterator[tuple[int, Tensor]]:
    """Temporal windows from a stream of frame chunks: :func:`iter_frame_blocks` as windows.

    Yields:
        ``(first_frame, windows)`` with windows (B, window, C, H, W) for frames first_frame .. first_frame+B-1.
    """
    for first, block in iter_frame_blocks(chunks, window=window, batch_frames=batch_frames):
        yield first, sliding_windows(block, window)


def tiles(size: int, tile: int, margin: int, align: int = 1) -> list[tuple[int, int, int, int]]:
    """Along one axis: (core_start, core_stop, in_start, in_stop) covering ``range(size)`` exactly once.

    ``align``: inputs start at multiples of it (the network's pooling cell, ``2**depth``), so that every tile pools
    the frame on the same grid as the whole frame would be (the margin grows by up to ``align - 1`` pixels)."""
    if isinstance(tile, bool) or int(tile) != tile or tile < 1:
        raise ValueError(f"tile size must be a whole number of pixels >= 1, got {tile!r}")
    if isinstance(margin, bool) or int(margin) != margin or margin < 0:
        # a negative margin cut each tile's input inside its own core: the pixels outside lost their localizations
        raise ValueError(f"tile margin must be a whole number of pixels >= 0, got {margin!r}")
    if size <= tile:
        return [(0, size, 0, size)]
    out = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        out.append((start, stop, max((start - margin) // align * align, 0), min(stop + margin, size)))
    return out


def _dilate(x: np.ndarray, r: int) -> np.ndarray:
    out = x.copy()
    for s in range(1, r + 1):
        out[s:] |= x[:-s]
        out[:-s] |= x[s:]
    return out


def _unet_support(x: np.ndarray, depth: int, up_kernel: int, out_kernel: int) -> np.ndarray:
    """The pixels of a line that a :class:`~plexloc.nets.unet.UNet`'s output depends on, from those of its input
    (boolean, 1-D, the same operations: 3x3 convolutions, ceil-mode pooling, nearest up-sampling cut to the skip)."""
    skips = []
    for i in range(depth + 1):
        if i:
            x = np.append(x, False) if len(x) % 2 else x
            x = x[0::2] | x[1::2]
        x = _dilate(_dilate(x, 1), 1)
        skips.append(x)
    skips.pop()
    for _ in range(depth):
        skip = skips.pop()
        up = _dilate(np.repeat(x, 2)[: len(skip)], up_kernel // 2)
        x = _dilate(_dilate(skip | up, 1), 1)
    return _dilate(x, out_kernel // 2)


@functools.lru_cache(maxsize=None)
def _reach(depth: int, union_depth: int, up_kernel: int, out_kernel: int) -> int:
    align = 2 ** max(depth, union_depth)
    n = 64 * align + 64  # the reach of each U-Net is under 16 * align
    start = n // 2 // align * align
    best = 0
    for q in range(start, start + align):  # every position on the pooling grid
        x = np.zeros(n, bool)
        x[q] = True
        y = _dilate(_unet_support(_unet_support(x, depth, up_kernel, out_kernel), union_depth, up_kernel, out_kernel), 1)
        idx = np.flatnonzero(y)
        if idx[0] == 0 or idx[-1] == n - 1:
            raise RuntimeError(f"receptive field of depths {depth}, {union_depth}: the line of {n} px is too short")
        best = max(best, q - int(idx[0]), int(idx[-1]) - q)
    return best


def receptive_radius(spec: LocalizerSpec) -> int:
    """How far (pixels) a pixel of the network's output reaches into its input: the frame U-Nets, the union U-Net
    and the heads' 3x3 convolution, on the pooling grid of a whole frame (52 px for depths 2 and 2, 22 for 1 and 1)."""
    return _reach(int(spec.depth), int(spec.union_depth), int(spec.up_kernel), int(spec.out_kernel))


#: the default tile margin's cap (px): trained networks' tiles (depths 2 and 3) give the whole frame's positions to
#: float rounding from here on (module docstring); give ``margin_px=tile_margin_px(spec)`` for the exact margin
#: whatever the weights
MAX_DEFAULT_MARGIN_PX = 40


def tile_margin_px(spec: LocalizerSpec) -> int:
    """The context a tile needs around its core for its localizations to be the whole frame's: the network's
    :func:`receptive_radius` plus the extraction's reach around a maximum (its 3x3 neighbourhood and the
    ``BG_WINDOW_PX`` background window)."""
    return receptive_radius(spec) + max(1, BG_WINDOW_PX // 2)


#: output pixels (frames x channels x tile pixels) per network pass on the CPU (:class:`Predictor`'s ``pass_pixels``): the
#: activations of a pass of 4 frames of 256 x 256 (or 2 tiles of 336 x 336, a 256-px core with its margins) took
#: about 110 MB (bfloat16, 16 features, depths 2 and 2), where the 16 frames of a block took 450 MB and its 336-px
#: tiles 600 MB, with the same frames/s (bench/RESULTS.md, session 48)
CPU_PASS_PIXELS = 2**18

#: the network's arithmetic (:class:`Predictor`'s ``precision``)
PRECISIONS = ("auto", "float32", "bfloat16")


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 convolutions in hardware: oneDNN (mkldnn) built in and usable, and the
    AVX512-BF16 instructions (which AMX CPUs have too). oneDNN also runs bfloat16 on plain AVX-512 by emulation,
    slower than float32, so its own query alone (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is not enough.
    False wherever one of the queries is missing from this torch build."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported() and torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_channels_last_supported() -> bool:
    """Whether channels-last convolutions on the CPU go through oneDNN (mkldnn), which is where they are faster than
    the contiguous (NCHW) ones (``bench/diag/cpu_inference.py``); without it they would take a slower path."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    except AttributeError:
        return False


def _cat_frames(a: Tensor, b: Tensor) -> Tensor:
    """``torch.cat([a, b])`` along the frames (dim 0) in the memory layout of ``b``: the frame U-Nets' channels-last
    features (N, C, F, H, W) with F innermost, which ``torch.cat`` would make contiguous, so that the union U-Net's
    input took its NCHW path after a pass's kept features were joined to the new ones."""
    order = sorted(range(b.dim()), key=b.stride, reverse=True)  # b's dimensions from outermost to innermost
    if order == list(range(b.dim())):
        return torch.cat([a, b])
    return torch.cat([a.permute(order), b.permute(order)], dim=order.index(0)).permute(
        [order.index(d) for d in range(b.dim())])


def _cat_extracted(parts: list[Extracted]) -> Extracted:
    return Extracted(*(torch.cat([getattr(p, f) for p in parts]) for f in Extracted.__dataclass_fields__))


class Predictor:
    """Batched, tiled prediction and extraction with a trained :class:`Localizer`.

    Args:
        model: the localizer (its device is used).
        threshold: integrated detection probability for extraction.
        tile_px: core size of tiles (frames up to this size are predicted whole).
        margin_px: context around each tile core; default (None) :func:`tile_margin_px` capped at
            :data:`MAX_DEFAULT_MARGIN_PX` (trained networks: the whole frame's localizations to float rounding);
            :func:`tile_margin_px` itself guarantees it for any weights. Less is faster, and pixels near the seams
            then differ from the whole frame's.
        amp: bfloat16 autocast under ``precision="auto"`` where the device runs it (False: float32 there too).
        precision: the network's arithmetic. ``"auto"``: bfloat16 autocast on CUDA and on a CPU with bfloat16
            instructions (``amp``; as training validates the model since 2026-12-06), float32 on other CPUs.
            ``"float32"``: float32 everywhere. ``"bfloat16"``: bfloat16 autocast on CUDA, and on a CPU that has
            bfloat16 instructions (:func:`cpu_bf16_supported`; elsewhere float32, with a warning). On the CPU
            (``bench/diag/cpu_inference.py``, Zen 4 with AVX512-BF16, one thread, channels-last) it gave 1.65 to
            1.9 times the frames/s of float32 (16 and 48 features, 64 and 256 px frames) and moves the results
            slightly: the trained 16-feature 2D model on ``bench/accuracy.py``'s 64-px movies at 0.1, 1 and 2 per
            um^2 scored as in float32 to within 0.04 points (JI, E_lat), 0.01 nm (RMSE_lat) and 0.002 (z-score sd);
            of its ~18,000 localizations per density 9 to 17 were in one table only, the others' positions 0.12 nm
            apart in the median (99th percentile 0.4-0.7 nm; 4 to 7 per density more than 5 nm, at most 44 nm).
            The one in use is ``self.precision``.
        channels_last: the convolutions' weights, and so their outputs, in the channels-last (NHWC) format
            (:meth:`Localizer.channels_last_`, in place on ``model``; False: back to NCHW). ``None``: channels-last
            on the CPU where oneDNN runs it (:func:`cpu_channels_last_supported`): there 1.14 to 1.48 times the
            frames/s of NCHW (16 and 48 features, 64 and 256 px frames, one thread) with the same localizations (the trained 2D model on ``bench/accuracy.py``'s 64-px movies at
            0.1, 1 and 2 per um^2: the same 54,148 rows, positions at most 0.07 nm apart, photons 1e-6 relative, one
            row's integrated probability 0.05); on CUDA the model as it is. The one in use is ``self.channels_last``.
        transforms: the channels' transforms (3x3, reference -> channel, chip coordinates, nm) for the
            transformation indicator of a multi-channel model; every tile gets the indicator of its own
            absolute position on the chip.
        spread_radius_px: the extraction's neighbourhood spread in the sigmas (:func:`~plexloc.infer.extract.extract`;
            None: its default, 0: none, as for models whose sigma calibration was measured without it).
        compile: run the network through ``torch.compile`` (fused element-wise operations; the first batch
            of each shape compiles, which takes tens of seconds: for long movies on a GPU).
        pass_pixels: output pixels (frames x channels x tile pixels) per network pass: a block's frames go through
            the network in passes of at most this many (at least one frame), which bounds the activations whatever the batch and
            the tile. None: :data:`CPU_PASS_PIXELS` on the CPU, and on CUDA the whole block at once (its memory is
            the GPU's; the batch is ``batch_frames``); 0: the whole block at once. The localizations are the same
            (each frame's and window's computations are its own). The one in use is ``self.pass_pixels`` (None:
            the whole block).
    """

    def __init__(
        self,
        model: Localizer,
        *,
        threshold: float = 0.5,
        tile_px: int = 256,
        margin_px: int | None = None,
        amp: bool = True,
        transforms: list[Tensor] | None = None,
        compile: bool = False,
        spread_radius_px: float | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
        pass_pixels: int | None = None,
    ):
        if model.spec.n_aux and (transforms is None or 2 * len(transforms) != model.spec.n_aux):
            raise ValueError(f"the model needs the transforms of its {model.spec.n_aux // 2} channels")
        threshold = float(threshold)
        if not 0.0 < threshold <= 1.0:  # NaN too; above 1 or NaN found nothing, 0 or below every weak maximum
            raise ValueError(f"Predictor threshold (the integrated detection probability) must lie in (0, 1], got "
                             f"{threshold!r}: 0.5 is the usual value (the model's training.detection_threshold)")
        if isinstance(tile_px, bool) or int(tile_px) != tile_px or tile_px < 1:
            raise ValueError(f"Predictor tile_px must be a whole number of pixels >= 1, got {tile_px!r}: 256 is the "
                             "default")
        if margin_px is not None and (isinstance(margin_px, bool) or int(margin_px) != margin_px or margin_px < 0):
            raise ValueError(f"Predictor margin_px must be a whole number of pixels >= 0, got {margin_px!r}: None "
                             "takes the default (tile_margin_px(spec), capped at MAX_DEFAULT_MARGIN_PX); a negative "
                             "margin cut the tiles inside their cores and lost the localizations there")
        self.model = model.eval()
        self.threshold = threshold
        self.spread_radius_px = spread_radius_px
        self.tile_px = int(tile_px)
        self.margin_px = (min(tile_margin_px(model.spec), MAX_DEFAULT_MARGIN_PX) if margin_px is None
                          else int(margin_px))
        self.device = next(model.parameters()).device
        # on the model's device once (transform_indicator would copy them to it for every tile)
        self.transforms = None if transforms is None else [
            torch.as_tensor(t, dtype=torch.float64, device=self.device) for t in transforms
        ]
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        cuda = self.device.type == "cuda"
        if precision == "bfloat16" and not cuda and not cpu_bf16_supported():
            warnings.warn("precision bfloat16: this CPU has no bfloat16 instructions (or torch no oneDNN), where "
                          "bfloat16 is slower than float32: fitting in float32", UserWarning, stacklevel=2)
            precision = "float32"
        if precision == "auto":
            # bfloat16 wherever the device runs it natively: what training validates and calibrates the model with
            # (training.amp, on CUDA and on such CPUs since 2026-12-06)
            precision = "bfloat16" if amp and (cuda or cpu_bf16_supported()) else "float32"
        #: the network's arithmetic in use: "float32" or "bfloat16" (autocast on the model's device)
        self.precision = precision
        self.amp = precision == "bfloat16" and cuda  # as before: bfloat16 autocast on CUDA
        if channels_last is None and not cuda:
            channels_last = cpu_channels_last_supported()
        if channels_last is not None and channels_last != model.is_channels_last:
            model.channels_last_() if channels_last else model.channels_last_(False)
        #: whether the convolutions run channels-last
        self.channels_last = model.is_channels_last
        # the network's three entry points, compiled or not (compiled ones keep the module's weights: no copy)
        wrap = (lambda f: torch.compile(f, dynamic=False)) if compile else (lambda f: f)
        self._forward, self._frame_features, self._union_forward = (
            wrap(model), wrap(model.frame_features), wrap(model.union_forward))
        if pass_pixels is None:
            pass_pixels = 0 if cuda else CPU_PASS_PIXELS
        if int(pass_pixels) < 0:
            raise ValueError(f"pass_pixels must be >= 0, got {pass_pixels!r}")
        #: output pixels per network pass (None: a block's frames at once)
        self.pass_pixels = int(pass_pixels) or None
        if self.device.type == "cuda":  # a movie's batches share their shapes: cuDNN times its algorithms once per shape
            torch.backends.cudnn.benchmark = True

    @torch.no_grad()
    def localize(self, windows: Tensor, roi_offset_px: tuple[int, int] = (0, 0)) -> Extracted:
        """Localizations of a batch of windows (B, T, C, H, W) in photons; ``sample`` indexes the batch.

        ``roi_offset_px``: chip pixel (x, y) at the frames' corner (multi-channel models)."""
        windows = windows.to(self.device, torch.float32, non_blocking=True)
        t = windows.shape[1]

        def pieces(x: Tensor, aux: Tensor | None) -> Iterator[tuple[int, Tensor]]:
            k = self._pass_frames(x, per_item=t)
            for j in range(0, max(x.shape[0], 1), k):  # an empty batch: one empty pass, as before
                yield j, self._forward(x[j : j + k], aux)

        return self._tiled(windows, roi_offset_px, pieces)

    @torch.no_grad()
    def localize_frames(self, block: Tensor, roi_offset_px: tuple[int, int] = (0, 0)) -> Extracted:
        """Localizations of the frames of a block (n + 2h, C, H, W) from :func:`iter_frame_blocks`, the same as
        :meth:`localize` of its :func:`sliding_windows` (``sample`` 0 .. n-1), but each frame goes through the
        frame U-Nets once instead of once per window it belongs to (a third of their work for windows of 3).

        A tile's frames go through the network :attr:`pass_pixels` output pixels at a time: the frame U-Nets on the
        pass's new frames (its window's first 2h frames' features are the previous pass's last, kept), then the
        union U-Net, the heads and the extraction on its windows, so that the network's activations and maps never
        hold more than one pass (before session 48 a 1000 x 1000 movie's 16-frame blocks of 336-px tiles took 600
        MB of activations on the CPU)."""
        block = block.to(self.device, torch.float32, non_blocking=True)
        t = self.model.spec.window

        def pieces(x: Tensor, aux: Tensor | None) -> Iterator[tuple[int, Tensor]]:
            n = x.shape[0] - (t - 1)  # the frames predicted
            k = self._pass_frames(x)
            kept = None  # the features of the last t - 1 frames of the previous pass
            for j in range(0, max(n, 1), k):
                stop = min(j + k, n)
                new = x[j + (t - 1 if kept is not None else 0) : stop + t - 1]
                feats = self._frame_features(new, aux)
                if kept is not None:
                    feats = _cat_frames(kept, feats)
                kept = feats[feats.shape[0] - (t - 1) :].clone() if t > 1 else feats[:0]
                raw = self._union_forward(sliding_windows(feats, t), aux)
                del feats
                yield j, raw

        return self._tiled(block, roi_offset_px, pieces)

    def _pass_frames(self, x: Tensor, per_item: int = 1) -> int:
        """Frames (windows of ``per_item`` frames) of the tile ``x`` (..., C, h, w) per network pass: as many as
        :attr:`pass_pixels` output pixels of every channel allow (at least one); all of them where it is None. The
        channels count: each has its own frame U-Net, whose features the pass keeps for the union U-Net (a 2-channel
        model's pass of 4 frames of 256 x 256 took 1.04 GB of peak memory above the block's start where a 1-channel
        model's took 0.66 GB, and 0.68 GB at 2 frames a pass, bench/io49.json)."""
        if self.pass_pixels is None:
            return max(int(x.shape[0]), 1)
        channels = int(x.shape[-3]) if x.dim() >= 3 else 1
        return max(1, int(self.pass_pixels) // (per_item * channels * int(x.shape[-2]) * int(x.shape[-1])))

    def _tiled(self, x_all: Tensor, roi_offset_px: tuple[int, int], pieces_fn) -> Extracted:
        """Tile the frames of ``x_all`` (..., H, W), run ``pieces_fn(x_tile, aux)`` on each tile (aux (1, n_aux, h, w)
        or None; it yields ``(first_sample, raw)`` network passes in sample order), decode and extract each pass,
        keeping localizations in the tile's core; in the order of the whole frame's (by sample, then pixel row, then
        column: tile by tile, a batch's rows went back to its first frame at every tile)."""
        spec = self.model.spec
        h, w = x_all.shape[-2:]
        parts = []
        align = 2 ** max(spec.depth, spec.union_depth)
        row_tiles = tiles(h, self.tile_px, self.margin_px, align)
        col_tiles = tiles(w, self.tile_px, self.margin_px, align)
        for r0, r1, ri0, ri1 in row_tiles:
            for c0, c1, ci0, ci1 in col_tiles:
                x = x_all[..., ri0:ri1, ci0:ci1]  # any size: the U-Nets take the tile's edges as edges
                aux = None
                if spec.n_aux:
                    off = torch.tensor([[roi_offset_px[0] + ci0, roi_offset_px[1] + ri0]], device=self.device)
                    aux = transform_indicator(self.transforms, off, tuple(x.shape[-2:]), spec.px_size_nm)
                ctx = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bfloat16"
                       else nullcontext())
                passes = pieces_fn(x, aux)
                while True:
                    with ctx:  # the network under autocast; its decoding and the extraction in float32
                        item = next(passes, None)
                    if item is None:
                        break
                    j, raw = item
                    del item
                    pred = self.model.decode(raw)
                    del raw
                    ex = extract(pred, self.model.spec, threshold=self.threshold, origin_px=(ri0, ci0),
                                 spread_radius_px=self.spread_radius_px)
                    del pred
                    if j:
                        ex.sample = ex.sample + j
                    keep = (ex.pixel_row >= r0) & (ex.pixel_row < r1) & (ex.pixel_col >= c0) & (ex.pixel_col < c1)
                    parts.append(_select(ex, keep))
        out = _cat_extracted(parts)
        if len(row_tiles) * len(col_tiles) > 1:  # the whole frame's order (frame, row, column), not tile by tile
            key = (out.sample * h + out.pixel_row) * w + out.pixel_col
            out = _select(out, torch.argsort(key))
        return out


def _select(ex: Extracted, keep: Tensor) -> Extracted:
    if keep.dtype == torch.bool:  # a mask into indices once: indexing by a mask synchronises once per field (10)
        keep = torch.nonzero(keep).squeeze(1)
    return Extracted(*(getattr(ex, f)[keep] for f in Extracted.__dataclass_fields__))
