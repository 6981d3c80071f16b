"""Memory of the network fit (session 48): the network runs on passes of a bounded number of output pixels, the
temporal blocks are tensors of their own held one at a time, and the fit reads small chunks; the localizations are
those of the whole block at once."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import plexloc.infer.predict as predict
from plexloc.config.models import IdealCameraConfig
from plexloc.infer import Predictor, fit_movie
from plexloc.infer.predict import iter_frame_blocks
from plexloc.io.tiff import ArrayMovie
from plexloc.nets import Localizer, LocalizerSpec


def _model(seed: int = 0, features: int = 4, depth: int = 1) -> Localizer:
    torch.manual_seed(seed)
    spec = LocalizerSpec(features=features, depth=depth, union_features=features, union_depth=depth,
                         input_offset=[50.0], input_scale=[20.0])
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # plenty of detections to compare
    return net.eval()


def _same(a, b) -> None:
    """The same localizations: samples and pixels exactly, values to float32 rounding (oneDNN's float32 convolutions
    round differently for other batch sizes: positions 0.002 nm apart at 16,000 nm, one or two units of the last
    place; in bfloat16 the tables were identical)."""
    assert len(a) == len(b) > 50
    for f in ("sample", "pixel_row", "pixel_col"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    for f in ("x_nm", "y_nm", "z_nm", "photons", "prob", "sigma", "bg"):
        assert torch.allclose(getattr(a, f), getattr(b, f), rtol=1e-6, atol=1e-5), f


class _Recorder:
    """The frames and pixels of every call of a Predictor's frame U-Nets and union U-Net."""

    def __init__(self, p: Predictor):
        self.frame_calls: list[int] = []
        self.union_calls: list[int] = []
        ff, uf = p._frame_features, p._union_forward

        def frame_features(x, aux):
            self.frame_calls.append(int(x.shape[0]) * int(x.shape[-2]) * int(x.shape[-1]))
            return ff(x, aux)

        def union_forward(w, aux):
            self.union_calls.append(int(w.shape[0]) * int(w.shape[-2]) * int(w.shape[-1]))
            return uf(w, aux)

        p._frame_features, p._union_forward = frame_features, union_forward


def test_the_cpu_network_runs_a_block_in_passes_of_bounded_pixels_with_the_same_localizations():
    # before session 48 a block's 16 frames (18 with their window) went through the network at once: 450 MB of
    # activations for 256 x 256 frames, 600 MB for a large frame's 336-px tiles (the 1000 x 1000 fit peaked at 1.7 GB)
    net = _model()
    block = torch.rand(18, 1, 160, 160, generator=torch.Generator().manual_seed(1)) * 100 + 20
    p = Predictor(net, precision="float32")  # the CPU's default passes
    assert p.pass_pixels == predict.CPU_PASS_PIXELS
    rec = _Recorder(p)
    got = p.localize_frames(block)
    # 18 x 160 x 160 = 460,800 px at once before; now at most CPU_PASS_PIXELS per pass (the first pass's window adds 2
    # frames to the frame U-Nets), and each frame through the frame U-Nets once
    assert max(rec.union_calls) <= predict.CPU_PASS_PIXELS
    assert max(rec.frame_calls) <= predict.CPU_PASS_PIXELS + 2 * 160 * 160
    assert len(rec.union_calls) == 2 and sum(rec.frame_calls) == 18 * 160 * 160
    whole = Predictor(net, precision="float32", pass_pixels=0).localize_frames(block)
    _same(got, whole)
    # the localizations are the same (samples, pixels, every value) whatever the pass: 1 frame, 5, 7 and the tiles
    for pixels in (1, 5 * 160 * 160, 7 * 160 * 160):
        _same(Predictor(net, precision="float32", pass_pixels=pixels).localize_frames(block), whole)
    tiled = Predictor(net, precision="float32", tile_px=64, pass_pixels=0).localize_frames(block)
    q = Predictor(net, precision="float32", tile_px=64, pass_pixels=3 * 64 * 64)
    rec = _Recorder(q)
    _same(q.localize_frames(block), tiled)
    assert max(rec.union_calls) <= 3 * 64 * 64 + 3 * 64 * 64  # a tile with margins is less than twice its core
    with pytest.raises(ValueError, match="pass_pixels"):
        Predictor(net, pass_pixels=-1)


def test_windows_are_localized_in_passes_too():
    net = _model(seed=2)
    block = torch.rand(12, 1, 48, 48, generator=torch.Generator().manual_seed(3)) * 100 + 20
    windows = predict.sliding_windows(block, 3)
    whole = Predictor(net, precision="float32", pass_pixels=0).localize(windows)
    p = Predictor(net, precision="float32", pass_pixels=3 * 3 * 48 * 48)  # 3 windows of 3 frames a pass
    calls = []
    fwd = p._forward
    p._forward = lambda x, aux: (calls.append(int(x.shape[0])), fwd(x, aux))[1]
    _same(p.localize(windows), whole)
    assert calls == [3, 3, 3, 1]


def _old_blocks(chunks, window, batch_frames):
    """iter_frame_blocks before session 48 (a growing buffer, blocks its views): the frames it gives."""
    h = window // 2
    buf, nxt = None, 0
    for chunk in chunks:
        if chunk.shape[0] == 0:
            continue
        if buf is None:
            buf = torch.cat([chunk[:1].expand(h, *chunk.shape[1:]), chunk]) if h else chunk
        else:
            buf = torch.cat([buf, chunk])
        while buf.shape[0] - 2 * h >= batch_frames:
            yield nxt, buf[: batch_frames + 2 * h]
            buf, nxt = buf[batch_frames:], nxt + batch_frames
    if buf is None:
        return
    if h:
        buf = torch.cat([buf, buf[-1:].expand(h, *buf.shape[1:])])
    while buf.shape[0] - 2 * h > 0:
        n = min(batch_frames, buf.shape[0] - 2 * h)
        yield nxt, buf[: n + 2 * h]
        buf, nxt = buf[n:], nxt + n


@pytest.mark.parametrize("window", [1, 3, 5])
def test_blocks_hold_their_own_frames_only_and_the_same_frames_as_before(window):
    for n in (0, 1, 2, 5, 16, 17, 18, 19, 40):
        movie = torch.arange(n * 4, dtype=torch.float32).reshape(n, 1, 2, 2)
        for batch in (1, 3, 16):
            for chunk in (1, 4, 7, 50):
                chunks = [movie[i : i + chunk] for i in range(0, n, chunk)]
                got = [(f, b.clone()) for f, b in iter_frame_blocks(iter(chunks), window=window, batch_frames=batch)]
                ref = [(f, b.clone()) for f, b in _old_blocks(iter(chunks), window, batch)]
                assert [f for f, _ in got] == [f for f, _ in ref]
                assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, ref))
    # a block pins no more memory than a block's frames, and the generator keeps none of it once the next is asked
    # for: before, each block was a view on a buffer of up to batch + 2h + chunk - 1 frames, which the next block's
    # concatenation copied while the caller still held it (a 2048 x 2048 movie's 18-frame blocks: 59 frames, 1 GB)
    import weakref

    movie = torch.rand(45, 1, 8, 8)
    blocks = iter_frame_blocks(iter([movie[i : i + 5] for i in range(0, 45, 5)]), window=window, batch_frames=16)
    first, block = next(blocks)
    while True:
        assert block.untyped_storage().nbytes() <= (16 + 2 * (window // 2)) * 64 * 4, (first, tuple(block.shape))
        held = weakref.ref(block)
        del block
        first, block = next(blocks, (None, None))
        assert held() is None  # gone before the next block was filled
        if block is None:
            break


def test_the_fit_reads_chunks_of_a_block_and_keeps_the_cameras_first_frames(monkeypatch):
    # the fit read 256-frame chunks (up to 64 MB of float32 each, three in flight) to feed 16-frame blocks; and the
    # camera check's first frames came from the first chunk alone (a chunk of one large frame: no noise check)
    from plexloc.infer import fit as infer_fit

    net = _model(seed=4)
    frames = np.random.default_rng(0).poisson(40.0, size=(30, 64, 64)).astype(np.uint16)
    reads: list[tuple[int, int]] = []

    class CountedReads(ArrayMovie):
        def _read(self, start, stop):
            reads.append((start, stop))
            return super()._read(start, stop)

    whole = fit_movie(frames, net, camera=IdealCameraConfig(), batch_frames=5)
    stats: dict = {}
    table = fit_movie([CountedReads(frames)], net, camera=IdealCameraConfig(), batch_frames=5, stats=stats)
    # chunks of a quarter of CHUNK_PIXELS at most (16 MB of float32), not capped at a block: 64 x 64 frames 16 at a
    # time cost the demo's fit 30 % of its speed (the 30 frames here: one chunk)
    assert reads and max(b - a for a, b in reads) * 64 * 64 <= infer_fit.CHUNK_PIXELS // 4
    assert len(table) == len(whole) > 0
    np.testing.assert_array_equal(table["x_nm"], whole["x_nm"])
    # one frame a chunk (frames of over a quarter of CHUNK_PIXELS): the camera check still sees the first frames,
    # those it saw in the first chunk of 4 frames before
    ref_stats: dict = {}
    fit_movie(frames, net, camera=IdealCameraConfig(), batch_frames=5, chunk_frames=4, stats=ref_stats)
    monkeypatch.setattr(infer_fit, "CHUNK_PIXELS", 4 * 64 * 64, raising=False)
    reads.clear()
    one = fit_movie([CountedReads(frames)], net, camera=IdealCameraConfig(), batch_frames=5, stats=(s1 := {}))
    assert max(b - a for a, b in reads if a > 0) == 1
    np.testing.assert_array_equal(one["x_nm"], whole["x_nm"])
    r0, r1 = ref_stats["camera"].channels[0].noise_ratio, s1["camera"].channels[0].noise_ratio
    assert r0 is not None and np.isfinite(r0) and r1 == pytest.approx(r0, rel=1e-6)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, /proc/self/statm")
def test_the_fit_hands_the_heaps_free_memory_back_once_per_block(monkeypatch):
    # glibc keeps freed memory in its heaps: the holes added about 250 MB to a 1000 x 1000 fit's peak RSS
    from plexloc.infer import _memory
    from plexloc.infer import fit as infer_fit

    if not _memory.release_free_heap():
        pytest.skip("no glibc malloc_trim here")
    big = np.ones(8 * 2**20 // 8)  # a freed mapped block raises glibc's mmap threshold: 1 MB blocks then use the heap
    del big
    held = [np.ones(2**20 // 8) for _ in range(120)]
    keep = held[-1]  # the top of the heap stays in use: the 119 holes below it are not returned by free()
    del held
    before = _rss_mb()
    assert _memory.release_free_heap()
    assert before - _rss_mb() > 60, (before, _rss_mb())
    del keep
    calls = []
    monkeypatch.setattr(infer_fit, "release_free_heap", lambda: calls.append(1) or True)
    frames = np.random.default_rng(0).poisson(40.0, size=(23, 32, 32)).astype(np.uint16)
    fit_movie(frames, _model(seed=5), camera=IdealCameraConfig(), batch_frames=5)
    assert len(calls) == 1  # before the first block only: 23 small frames are far from TRIM_PIXELS
    calls.clear()
    monkeypatch.setattr(infer_fit, "TRIM_PIXELS", 7 * 32 * 32)  # a block with its window: 5 + 2 frames
    fit_movie(frames, _model(seed=5), camera=IdealCameraConfig(), batch_frames=5)
    assert len(calls) == 5  # once per block of 5, 5, 5, 5 and 3 frames
