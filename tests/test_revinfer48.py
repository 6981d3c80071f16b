"""Review of the network fit's bounded memory (session 48, helper revinfer): the passes keep the frame U-Nets'
channels-last layout, and the C heap's release is a no-op where the system has no glibc."""

from __future__ import annotations

import ctypes

import pytest
import torch

import plexloc.infer.predict as predict
from plexloc.infer import Predictor
from plexloc.infer import _memory
from test_infer import _random_model  # a tiny random Localizer with plenty of detections


@pytest.mark.parametrize("window", [3, 5])
def test_every_pass_gives_the_union_unet_channels_last_features(window):
    # the first pass's features were channels-last (F innermost), but joining the kept frames' features to the next
    # pass's with torch.cat made them contiguous: every pass after the first took union_forward's NCHW path (one
    # more copy; 2.5 % of a 48-feature block's CPU time) instead of the layout the fit chose
    net = _random_model(window=window)
    block = torch.rand(14, 1, 48, 48, generator=torch.Generator().manual_seed(1)) * 100 + 20
    p = Predictor(net, precision="float32", channels_last=True, pass_pixels=3 * 48 * 48)
    strides = []
    uf = p._union_forward

    def union_forward(w, aux):
        strides.append(w.stride(3))
        return uf(w, aux)

    p._union_forward = union_forward
    got = p.localize_frames(block)
    assert len(strides) == 4  # 14 - (window - 1) frames predicted, 3 a pass
    assert strides == [1] * len(strides)
    whole = Predictor(net, precision="float32", channels_last=True, pass_pixels=0).localize_frames(block)
    assert len(got.x_nm) == len(whole.x_nm) > 50
    for f in ("sample", "pixel_row", "pixel_col"):
        assert torch.equal(getattr(got, f), getattr(whole, f)), f
    for f in ("x_nm", "y_nm", "photons", "prob"):
        assert torch.allclose(getattr(got, f), getattr(whole, f), rtol=1e-6, atol=1e-5), f


def test_cat_frames_joins_frames_in_the_layout_of_the_new_ones():
    a = torch.rand(2, 1, 4, 5, 6).permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # F innermost
    b = torch.rand(3, 1, 4, 5, 6).permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    out = predict._cat_frames(a, b)
    assert torch.equal(out, torch.cat([a, b])) and out.stride(2) == 1 and out.shape == (5, 1, 4, 5, 6)
    c, d = torch.rand(2, 3, 4), torch.rand(1, 3, 4)  # contiguous ones stay contiguous
    assert torch.equal(predict._cat_frames(c, d), torch.cat([c, d])) and predict._cat_frames(c, d).is_contiguous()


@pytest.fixture
def fresh_trim():
    _memory._malloc_trim.cache_clear()
    yield
    _memory._malloc_trim.cache_clear()


@pytest.mark.parametrize("platform", ["darwin", "win32", "cygwin"])
def test_the_heap_release_is_a_no_op_off_linux(monkeypatch, fresh_trim, platform):
    monkeypatch.setattr(_memory.sys, "platform", platform)
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: pytest.fail("no C library is loaded off Linux"))
    assert _memory.release_free_heap() is False


@pytest.mark.parametrize("libc", ["no malloc_trim", "no library"])
def test_the_heap_release_is_a_no_op_with_another_c_library(monkeypatch, fresh_trim, libc):
    # musl (Alpine) has no malloc_trim; a system whose C library is not found by name raises OSError
    class Musl:
        pass

    def load(name, *a, **k):
        if libc == "no library":
            raise OSError(f"{name}: cannot open shared object file")
        return Musl()

    monkeypatch.setattr(_memory.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", load)
    assert _memory.release_free_heap() is False
    assert _memory.release_free_heap() is False  # looked up once
