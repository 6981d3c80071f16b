"""Review of the networks (plexloc.nets): model files, architecture facts, equivalence of the inference paths.

Known answers: the DECODE-sized network's parameter count (bench/RESULTS.md), the receptive field measured by
perturbing one input column against :func:`plexloc.infer.predict.receptive_radius`, frame features computed once
against the window path (bitwise), channels-last and bfloat16 within their precision, frames of odd sizes
against the same frame of an even size (no shift), and every damaged or foreign model file refused naming it."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from plexloc.errors import InputError
from plexloc.infer.predict import receptive_radius, sliding_windows
from plexloc.nets import Localizer, LocalizerSpec
from plexloc.nets import io as nets_io
from plexloc.nets.io import load_model, read_model_file, save_model


def _tiny(**kw) -> LocalizerSpec:
    base = dict(features=4, union_features=4, depth=1, union_depth=1)
    base.update(kw)
    return LocalizerSpec(**base)


def _randomised(spec: LocalizerSpec, seed: int = 0) -> Localizer:
    """A network with weights large enough that every output depends on its inputs (fresh heads are nearly flat)."""
    torch.manual_seed(seed)
    net = Localizer(spec).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.15)
    return net


# ----------------------------------------------------------------------------------------------- model files


def test_model_file_round_trip(tmp_path):
    spec = _tiny(n_channels=2, n_photons=2, n_aux=4, input_offset=[3.0, 4.0], input_scale=[5.0, 6.0],
                 bg_loss_scale=[1.5, 2.5], is_3d=True, z_center_nm=100.0, z_scale_nm=600.0)
    net = _randomised(spec)
    config = {"emitters": {"photons_range": [500.0, 8000.0]}, "model": {"window": 3}}
    meta = {"step": 7, "validation": {"jaccard": 81.5, "rmse_ax": math.nan}}
    save_model(tmp_path / "model.pt", net, config, meta=meta, files={})
    back, cfg, got = load_model(tmp_path)  # a run folder: its model.pt
    assert back.spec == spec and cfg == config
    assert got["step"] == 7 and got["validation"]["jaccard"] == 81.5 and math.isnan(got["validation"]["rmse_ax"])
    for (k, a), (k2, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert not back.training
    x, aux = torch.rand(2, 3, 2, 16, 16) * 10, torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x, aux), back(x, aux))
    # a compiled model's weights are saved under their own names
    assert all(not k.startswith("_orig_mod.") for k in read_model_file(tmp_path / "model.pt")["state_dict"])


def test_spec_without_pixel_size_takes_the_default():
    """from_dict promises defaults for the fields an older file lacks; px_size_nm raised KeyError."""
    d = _tiny().to_dict()
    del d["px_size_nm"]
    assert LocalizerSpec.from_dict(d).px_size_nm == (100.0, 100.0)


def _damage(payload: dict, how: str) -> dict | bytes:
    p = copy.deepcopy(payload)
    if how == "features":
        p["spec"]["features"] = 8
    elif how == "window":
        p["spec"]["window"] = 5
    elif how == "missing_weight":
        del p["state_dict"]["head_prob.0.weight"]
    elif how == "unexpected_weight":
        p["state_dict"]["attention.weight"] = torch.zeros(2)
    elif how == "no_spec":
        del p["spec"]
    elif how == "no_weights":
        del p["state_dict"]
    elif how == "no_config":
        del p["config"]
    elif how == "version":
        p["version"] = "one"
    elif how == "spec_type":
        p["spec"]["features"] = "wide"
    elif how == "nan":
        p["state_dict"]["head_offset.2.bias"][0] = math.nan
    return p


@pytest.mark.parametrize("how, says", [
    ("features", r"weights do not fit .*of another shape, the first: frame_nets\.0\.down\.0\.0\.weight"),
    ("window", r"weights do not fit .*union\.down\.0\.0\.weight"),
    ("missing_weight", r"weights do not fit .*Missing key.*head_prob\.0\.weight"),
    ("unexpected_weight", r"weights do not fit .*Unexpected key.*attention\.weight"),
    ("no_spec", r"lacks its network settings"),
    ("no_weights", r"lacks its weights"),
    ("no_config", r"lacks its training configuration"),
    ("version", r"version is 'one'"),
    ("spec_type", r"settings do not make a network"),
    ("nan", r"not finite \(head_offset\.2\.bias\)"),
])
def test_a_damaged_or_foreign_model_is_refused_naming_the_file(tmp_path, how, says):
    """Each was a torch RuntimeError / KeyError / TypeError / ValueError traceback without the file's name, or (NaN
    weights) a model that loaded and found nothing."""
    save_model(tmp_path / "good.pt", _randomised(_tiny()), {"a": 1}, files={})
    bad = tmp_path / f"bad_{how}.pt"
    torch.save(_damage(read_model_file(tmp_path / "good.pt"), how), bad)
    with pytest.raises(InputError, match=rf"bad_{how}\.pt: .*{says}"):
        load_model(bad)


@pytest.mark.parametrize("cut", [0, 100, 0.5])
def test_a_truncated_model_file_is_named(tmp_path, cut):
    save_model(tmp_path / "model.pt", _randomised(_tiny()), {"a": 1}, files={})
    data = (tmp_path / "model.pt").read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    (tmp_path / "model.pt").write_bytes(data[:n])
    with pytest.raises(InputError, match=rf"model\.pt: not a readable plexloc model file \(damaged, cut short .*; {n:,} bytes\)"):
        load_model(tmp_path)


def test_saving_is_atomic(tmp_path, monkeypatch):
    """A save that fails half-way leaves the previous model whole and no temporary file."""
    first = _randomised(_tiny(), seed=1)
    save_model(tmp_path / "model.pt", first, {"a": 1}, files={})
    before = (tmp_path / "model.pt").read_bytes()

    def half_then_fail(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(before[: len(before) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nets_io.torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_model(tmp_path / "model.pt", _randomised(_tiny(), seed=2), {"a": 2}, files={})
    monkeypatch.undo()
    assert (tmp_path / "model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert load_model(tmp_path)[1] == {"a": 1}


# ------------------------------------------------------------------------------------------ architecture facts


def test_parameter_counts_of_the_decode_sized_network():
    """bench/RESULTS.md: 2.53 M parameters (3x3 up/out kernels), 2.13 M (DECODE's 1x1)."""
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(Localizer(LocalizerSpec())) == 2_533_258
    assert count(Localizer(LocalizerSpec(up_kernel=1, out_kernel=1))) == 2_127_754


@pytest.mark.parametrize("depth, union_depth, kernel", [(1, 1, 3), (2, 2, 3), (2, 1, 1)])
def test_receptive_field_is_what_the_tiling_assumes(depth, union_depth, kernel):
    """Perturb one input column of each frame of the window, at every position of the pooling grid: the farthest
    output column that changes is receptive_radius (52 px for the default depths), in both directions."""
    spec = LocalizerSpec(features=2, union_features=2, depth=depth, union_depth=union_depth, up_kernel=kernel,
                         out_kernel=kernel)
    net = _randomised(spec).double()
    w = 8 * receptive_radius(spec) // 2 * 2 + 32
    torch.manual_seed(3)
    x = torch.randn(1, 3, 1, 4, w, dtype=torch.float64)
    reach = 0
    with torch.no_grad():
        y0 = net(x)
        for q in range(w // 2, w // 2 + 2 ** max(depth, union_depth)):
            for t in range(3):
                x2 = x.clone()
                x2[0, t, 0, :, q] += 3.0
                changed = torch.nonzero((net(x2) - y0).abs().amax(dim=(0, 1, 2)) > 0).flatten()
                assert 0 < int(changed[0]) and int(changed[-1]) < w - 1
                reach = max(reach, q - int(changed[0]), int(changed[-1]) - q)
    assert reach == receptive_radius(spec)


def test_frame_features_once_equal_the_window_path_bitwise():
    """Inference sends each frame through the frame U-Nets once (localize_frames); training sends windows. Same
    outputs, bit for bit, with one channel and with two channels and their auxiliary maps; and the windows of a
    batch equal the windows one at a time (the frame nets' weights are shared over the window)."""
    for c, n_aux in ((1, 0), (2, 4)):
        spec = _tiny(n_channels=c, n_photons=c, n_aux=n_aux, depth=2, union_depth=2, input_offset=[50.0] * c,
                     input_scale=[30.0] * c)
        net = _randomised(spec)
        torch.manual_seed(4)
        block = torch.rand(7, c, 20, 28) * 200.0
        aux = torch.randn(1, n_aux, 20, 28) if n_aux else None
        with torch.no_grad():
            windows = net(sliding_windows(block, 3), aux)
            once = net.union_forward(sliding_windows(net.frame_features(block, aux), 3), aux)
            single = torch.cat([net(block[i : i + 3][None], aux) for i in range(5)])
        assert torch.equal(windows, once)
        torch.testing.assert_close(single, windows, rtol=0, atol=1e-5)


def test_channels_last_and_bf16_autocast_agree_with_float32():
    spec = _tiny(depth=2, union_depth=2, input_offset=[50.0], input_scale=[30.0])
    net = _randomised(spec)
    torch.manual_seed(5)
    x = torch.rand(2, 3, 1, 24, 32) * 200.0
    with torch.no_grad():
        ref = net(x)
        nhwc = copy.deepcopy(net).channels_last_()
        assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
                   for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d))
        torch.testing.assert_close(nhwc(x), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x)
    a, b = net.decode(ref), net.decode(low)
    assert float((a.prob - b.prob).abs().max()) < 0.01
    assert float((a.offset[:, :2] - b.offset[:, :2]).abs().max()) < 0.02  # pixels
    assert float(((a.photons - b.photons) / spec.photon_scale).abs().max()) < 0.01


@pytest.mark.parametrize("h, w", [(95, 97), (97, 95), (95, 95), (93, 96)])
def test_odd_frame_sizes_do_not_shift_the_outputs(h, w):
    """A frame whose sides are not multiples of 2**depth: the U-Nets pool from its top-left corner and cut the
    up-sampled maps at the bottom and right, so every output pixel further than the receptive field from the changed
    edges equals the 96 x 96 frame's (float64, to rounding). A shift of the frame by padding at the top or left, or
    a centring pad, would change them all (checked below with a one-row shift)."""
    spec = _tiny(depth=2, union_depth=2, input_offset=[50.0], input_scale=[30.0])
    net = _randomised(spec).double()
    torch.manual_seed(6)
    big = torch.rand(1, 3, 1, 97, 97, dtype=torch.float64) * 200.0
    r = receptive_radius(spec)
    keep_r, keep_c = min(h, 96) - r - 1, min(w, 96) - r - 1
    with torch.no_grad():
        ref = net(big[..., :96, :96])
        out = net(big[..., :h, :w])
        assert out.shape[-2:] == (h, w)
        torch.testing.assert_close(out[..., :keep_r, :keep_c], ref[..., :keep_r, :keep_c], rtol=0, atol=1e-12)
        shifted = net(big[..., 1 : h + 1, :w])
    assert not torch.allclose(shifted[..., : keep_r - 1, :keep_c], ref[..., 1:keep_r, :keep_c], rtol=0, atol=1e-6)


def test_output_head_ranges():
    """The decoded ranges the loss and the extraction rely on: offsets within (-1, 1) px of the pixel centre (an
    emitter's own pixel needs +-0.5, a pixel that shares it with a neighbour up to +-1), z within z_center +-
    z_scale, photons within (0, photon_scale), sigmas within [SIGMA_MIN, SIGMA_MAX + SIGMA_MIN] times each scale,
    background within (0, bg_scale); extreme raw values stay finite."""
    from plexloc.nets.localizer import SIGMA_MAX, SIGMA_MIN

    spec = _tiny(is_3d=True, z_center_nm=250.0, z_scale_nm=600.0, photon_scale=9600.0, bg_scale=150.0)
    net = Localizer(spec)
    raw = torch.tensor([-60.0, -3.0, 0.0, 3.0, 60.0]).view(1, 1, 1, 5).expand(1, 1 + 1 + 3 + 4 + 1, 1, 5)
    p = net.decode(raw.contiguous())
    assert float(p.offset[:, :2].abs().max()) <= 1.0 and float(p.offset[0, 0, 0, 2]) == 0.0
    assert 250.0 - 600.0 <= float(p.offset[:, 2].min()) and float(p.offset[:, 2].max()) <= 250.0 + 600.0
    assert 0.0 <= float(p.photons.min()) and float(p.photons.max()) <= 9600.0
    scales = torch.tensor([1.0, 1.0, 600.0, 9600.0]).view(1, 4, 1, 1)
    assert bool((p.sigma >= SIGMA_MIN * scales * (1 - 1e-6)).all())
    assert bool((p.sigma <= (SIGMA_MAX + SIGMA_MIN) * scales * (1 + 1e-6)).all())
    assert 0.0 <= float(p.bg.min()) and float(p.bg.max()) <= 150.0
    assert all(bool(torch.isfinite(t).all()) for t in (p.prob, p.photons, p.offset, p.sigma, p.bg))
