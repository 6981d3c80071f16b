"""CPU inference: channels-last by default where oneDNN runs it (the same table as NCHW), ELUs in place without
gradients, the bfloat16 option with its capability probe and fallback, and their plumbing into fit_movie and the CLI."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import plexloc.infer.predict as predict
import plexloc.nets.unet as unet
from plexloc.infer import Predictor, fit_movie
from plexloc.io.tiff import write_movie
from plexloc.nets import Localizer, LocalizerSpec
from plexloc.nets.io import load_model, save_model
from plexloc.nets.unet import InferenceELU


def _model(seed: int = 0, features: int = 8) -> Localizer:
    torch.manual_seed(seed)
    spec = LocalizerSpec(features=features, depth=2, union_features=features, union_depth=2, input_offset=[50.0],
                         input_scale=[20.0])
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # plenty of detections to compare
    return net.eval()


def _block(seed: int = 0, n: int = 6, size: int = 40) -> torch.Tensor:
    return torch.rand(n + 2, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 100 + 20


def _conv_weights(net: Localizer) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1]


def _assert_same_rows(a, b, *, pos_nm: float, rel: float) -> None:
    assert len(a) == len(b) > 20
    for f in ("sample", "pixel_row", "pixel_col"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    for f in ("x_nm", "y_nm"):
        assert float((getattr(a, f) - getattr(b, f)).abs().max()) <= pos_nm, f
    for f in ("photons", "prob", "sigma", "bg"):
        assert torch.allclose(getattr(a, f), getattr(b, f), rtol=rel, atol=1e-5), f


def test_inference_elu_overwrites_its_input_only_without_gradients():
    x = torch.randn(2, 3, 5, 5)
    expected = torch.nn.functional.elu(x)
    elu = InferenceELU()
    with torch.no_grad():
        y = x.clone()
        out = elu(y)
    assert torch.equal(out, expected) and out.data_ptr() == y.data_ptr()  # in place: the same storage
    x.requires_grad_(True)
    out = elu(x)
    assert out.data_ptr() != x.data_ptr() and torch.equal(out, expected)
    out.sum().backward()  # training's autograd is unchanged
    assert torch.allclose(x.grad, torch.where(x > 0, 1.0, torch.exp(x.detach())))


def test_elu_in_place_gives_the_same_outputs_and_the_state_dict_keys_are_kept():
    net = _model(1)
    block = _block(1)
    assert not any(isinstance(m, torch.nn.ELU) and not isinstance(m, InferenceELU) for m in net.modules())
    with torch.no_grad():
        in_place = net.union_forward(predict.sliding_windows(net.frame_features(block), 3))
        unet.ELU_IN_PLACE_IN_INFERENCE = False
        try:
            out_of_place = net.union_forward(predict.sliding_windows(net.frame_features(block), 3))
        finally:
            unet.ELU_IN_PLACE_IN_INFERENCE = True
    assert torch.equal(in_place, out_of_place)
    keys = list(net.state_dict())  # weights and biases of the convolutions, and the two input buffers: no ELU keys
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert len(keys) == 2 * n_conv + 2 and "union.down.0.0.weight" in keys and "head_prob.2.bias" in keys


def test_cpu_default_is_channels_last_with_the_nchw_table():
    """The default Predictor on the CPU runs the convolutions channels-last (where oneDNN does) and finds the
    localizations of the code before it (float32, NCHW, ELUs out of place) at the same pixels, positions within
    0.01 nm (the trained 2D model: 0.008 nm, bench/diag/cpu_inference.py)."""
    net = _model(2)
    block = _block(2)
    unet.ELU_IN_PLACE_IN_INFERENCE = False
    try:
        before = Predictor(copy.deepcopy(net), channels_last=False, precision="float32").localize_frames(block)
    finally:
        unet.ELU_IN_PLACE_IN_INFERENCE = True
    fast = Predictor(net, precision="float32")  # the layout's effect alone ("auto" may be bfloat16 here)
    assert fast.channels_last == predict.cpu_channels_last_supported() is True  # x86 torch builds carry oneDNN
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(net))
    _assert_same_rows(before, fast.localize_frames(block), pos_nm=0.01, rel=1e-4)


def test_channels_last_falls_back_to_nchw_where_the_probe_says_no(monkeypatch):
    monkeypatch.setattr(predict, "cpu_channels_last_supported", lambda: False)
    net = _model(3)
    p = Predictor(net)
    assert p.channels_last is False and all(w.is_contiguous() for w in _conv_weights(net))
    net.channels_last_()
    assert Predictor(net, channels_last=False).channels_last is False  # explicit: back to NCHW
    assert all(w.is_contiguous() for w in _conv_weights(net))


def test_channels_last_union_input_is_gathered_as_the_nchw_one():
    net = _model(4).channels_last_()
    block = _block(4)
    with torch.no_grad():
        feats = net.frame_features(block)
        assert feats.stride(2) == 1  # (N, C, F, H, W) channels-last: the NHWC gathering in union_forward
        windows = predict.sliding_windows(feats, 3)
        a = net.union_forward(windows)
        b = net.union_forward(predict.sliding_windows(feats.contiguous(), 3))
    assert torch.equal(a, b)


def _union_input_dtypes(p: Predictor, block: torch.Tensor) -> set:
    seen = set()
    hook = p.model.union.down[0][0].register_forward_pre_hook(lambda m, args: seen.add(args[0].dtype))
    try:
        p.localize_frames(block)
    finally:
        hook.remove()
    return seen


def test_bfloat16_option_runs_autocast_where_the_cpu_supports_it(monkeypatch):
    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: True)
    net = _model(5)
    block = _block(5)
    ref = Predictor(copy.deepcopy(net), precision="float32")
    p = Predictor(net, precision="bfloat16")
    assert p.precision == "bfloat16" and ref.precision == "float32"
    assert _union_input_dtypes(p, block) == {torch.bfloat16} and _union_input_dtypes(ref, block) == {torch.float32}
    a, b = ref.localize_frames(block), p.localize_frames(block)
    assert abs(len(a) - len(b)) <= 0.05 * len(a) and len(a) > 20  # close, not the same: an option, not the default
    # "auto": bfloat16 where the CPU has it (as training validates the model), unless amp is off
    assert Predictor(copy.deepcopy(net)).precision == "bfloat16"
    assert Predictor(copy.deepcopy(net), amp=False).precision == "float32"
    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: False)
    assert Predictor(copy.deepcopy(net)).precision == "float32"


def test_bfloat16_falls_back_to_float32_with_a_warning_where_the_probe_says_no(monkeypatch):
    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="bfloat16"):
        p = Predictor(_model(6), precision="bfloat16")
    assert p.precision == "float32" and _union_input_dtypes(p, _block(6)) == {torch.float32}
    with pytest.raises(ValueError, match="precision"):
        Predictor(_model(6), precision="float16")


def test_bf16_probe_is_false_where_a_query_is_missing(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert predict.cpu_bf16_supported() is False
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert predict.cpu_channels_last_supported() is False


def test_fit_movie_and_cli_pass_the_precision_on(tmp_path, monkeypatch):
    from plexloc.cli.main import build_parser
    from plexloc.config.models import IdealCameraConfig

    write_movie(tmp_path / "m.tif", np.random.default_rng(7).poisson(40.0, size=(5, 24, 24)).astype(np.uint16))
    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="bfloat16"):  # the Predictor was asked for bfloat16
        table = fit_movie(tmp_path / "m.tif", _model(7), camera=IdealCameraConfig(), precision="bfloat16")
    assert len(table) > 0
    args = build_parser().parse_args(["fit", "m.tif", "--model", "run", "--out", "l.csv", "--precision", "bfloat16"])
    assert args.precision == "bfloat16"
    assert build_parser().parse_args(["fit", "m.tif", "--model", "run", "--out", "l.csv"]).precision == "auto"


def test_a_channels_last_model_saves_and_loads_with_the_same_outputs(tmp_path):
    net = _model(8)
    block = _block(8)
    with torch.no_grad():
        ref = net.union_forward(predict.sliding_windows(net.frame_features(block), 3))
    Predictor(net, channels_last=True)
    save_model(tmp_path / "m.pt", net, {}, meta={})
    loaded, _, _ = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        out = loaded.union_forward(predict.sliding_windows(loaded.frame_features(block), 3))
    assert torch.allclose(out, ref, atol=1e-4)


def test_fit_movie_follows_the_models_training_amp(tmp_path, monkeypatch):
    """precision "auto" fits a model trained with training.amp false (calibrated in float32) in float32, and one with
    amp true in bfloat16 where the CPU has it."""
    import importlib

    from plexloc.config.models import IdealCameraConfig
    from plexloc.nets.io import save_model

    fit_module = importlib.import_module("plexloc.infer.fit")

    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: True)
    chosen: list[str] = []
    real = fit_module.Predictor

    def spy(*args, **kwargs):
        p = real(*args, **kwargs)
        chosen.append(p.precision)
        return p

    monkeypatch.setattr(fit_module, "Predictor", spy)
    write_movie(tmp_path / "m.tif", (np.random.default_rng(0).random((4, 16, 16)) * 50 + 120).astype(np.uint16))
    cam = IdealCameraConfig()
    for amp, want in ((False, "float32"), (True, "bfloat16")):
        save_model(tmp_path / "model.pt", _model(7), {"training": {"amp": amp}}, meta={})
        fit_module.fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam)
        assert chosen[-1] == want


def test_fit_and_train_say_which_arithmetic_and_layout_they_used(tmp_path, capsys, monkeypatch):
    """``fit_movie``'s stats report the precision and layout the Predictor chose (the command lines print them:
    tests/test_train.py::test_cli_train_then_fit)."""
    import importlib

    from plexloc.config.models import IdealCameraConfig
    from plexloc.nets.io import save_model

    fit_module = importlib.import_module("plexloc.infer.fit")
    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: False)
    write_movie(tmp_path / "m.tif", (np.random.default_rng(0).random((4, 16, 16)) * 50 + 120).astype(np.uint16))
    save_model(tmp_path / "model.pt", _model(8), {"training": {"amp": True}}, meta={})
    stats: dict = {}
    fit_module.fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=IdealCameraConfig(), stats=stats,
                         channels_last=True)
    assert stats["precision"] == "float32" and stats["channels_last"] is True
    fit_module.fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=IdealCameraConfig(), stats=stats,
                         precision="float32", channels_last=False)
    assert stats["channels_last"] is False
