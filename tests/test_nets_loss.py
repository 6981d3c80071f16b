"""The localizer network and the DECODE loss: shapes, output ranges, closed-form loss values."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from plexloc.nets import Localizer, LocalizerSpec, UNet
from plexloc.nets.localizer import Prediction
from plexloc.train.loss import decode_loss

LOG_2PI = math.log(2 * math.pi)


def small_spec(**kw) -> LocalizerSpec:
    base = dict(features=4, depth=1, union_features=4, union_depth=1, photon_scale=5000.0, bg_scale=100.0)
    base.update(kw)
    return LocalizerSpec(**base)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_unet_keeps_size_and_mixes_context(depth):
    net = UNet(2, 5, features=4, depth=depth)
    x = torch.zeros(1, 2, 16, 24)
    assert net(x).shape == (1, 5, 16, 24)
    # a change at one pixel reaches pixels several stages of context away (a U-Net, not a 3x3 stack)
    x2 = x.clone()
    x2[0, 0, 8, 12] = 10.0
    diff = (net(x2) - net(x)).abs()[0].sum(0)
    assert diff[8, 12 + 2 * depth + 2] > 0


@pytest.mark.parametrize("up_kernel,out_kernel", [(1, 1), (1, 3), (3, 1)])
def test_unet_kernel_options_cut_the_work_and_keep_the_context(up_kernel, out_kernel):
    from torch.utils.flop_counter import FlopCounterMode

    def flops(net, x):
        fc = FlopCounterMode(display=False)
        with fc, torch.no_grad():
            out = net(x)
        return fc.get_total_flops(), out

    x = torch.zeros(1, 1, 16, 24)
    full, _ = flops(UNet(1, 8, features=8, depth=2), x)
    net = UNet(1, 8, features=8, depth=2, up_kernel=up_kernel, out_kernel=out_kernel)
    lite, out = flops(net, x)
    assert out.shape == (1, 8, 16, 24)
    # the counts follow from the layer shapes: a 1x1 kernel is 9x cheaper than a 3x3 one on the same maps
    px = 16 * 24
    saved = 0
    if up_kernel == 1:  # up-convolutions 32->16 at a quarter of the pixels, 16->8 at all of them
        saved += 8 * 2 * px * (32 * 16 / 4 + 16 * 8)
    if out_kernel == 1:
        saved += 8 * 2 * px * 8 * 8
    assert full - lite == pytest.approx(saved)
    x2 = x.clone()
    x2[0, 0, 8, 12] = 10.0  # still a U-Net: the change reaches pixels beyond a few 3x3 convolutions
    assert (net(x2) - net(x)).abs()[0].sum(0)[8, 12 + 5] > 0


def test_unet_kernel_options_are_checked_and_travel_with_the_spec():
    with pytest.raises(ValueError, match="up_kernel must be 1 or 3, got 2"):
        UNet(1, 4, features=4, depth=1, up_kernel=2)
    spec = small_spec(up_kernel=1, out_kernel=1)
    again = LocalizerSpec.from_dict(spec.to_dict())
    assert (again.up_kernel, again.out_kernel) == (1, 1)
    net = Localizer(again)
    assert net.union.out[0].kernel_size == (1, 1) and net.frame_nets[0].up_conv[0].kernel_size == (1, 1)
    # a spec saved before the options existed builds the original 3x3 net (and loads its weights)
    old = {k: v for k, v in spec.to_dict().items() if k not in ("up_kernel", "out_kernel")}
    net3 = Localizer(LocalizerSpec.from_dict(old))
    assert net3.union.out[0].kernel_size == (3, 3)
    net3.load_state_dict(Localizer(small_spec()).state_dict())


def test_localizer_output_ranges_and_channels():
    spec = small_spec(n_channels=2, n_photons=2, is_3d=True, z_center_nm=-50.0, z_scale_nm=600.0,
                      input_offset=[0.0, 0.0], input_scale=[1.0, 1.0])
    net = Localizer(spec)
    x = torch.rand(3, 3, 2, 8, 8) * 100
    raw = net(x)
    assert raw.shape == (3, 1 + 2 + 3 + 5 + 2, 8, 8)
    pred = net.decode(raw * 50)  # saturate the non-linearities on purpose
    assert pred.prob.min() >= 0 and pred.prob.max() <= 1
    assert pred.offset[:, :2].abs().max() <= 1.0
    assert pred.offset[:, 2].min() >= -650.0 - 1e-3 and pred.offset[:, 2].max() <= 550.0 + 1e-3
    assert pred.photons.max() <= 5000.0 and pred.bg.max() <= 100.0 and pred.bg.shape[1] == 2
    assert pred.sigma.min() > 0
    with pytest.raises(ValueError, match="expected input"):
        net(torch.rand(3, 3, 1, 8, 8))


def test_unet_takes_any_frame_size_and_is_unchanged_on_multiples():
    """Multiples of 2**depth (training): the same numbers as the U-Net that required them (floor pooling, no cut).
    Other sizes run unpadded: the pooling grid starts at the frame's corner, so columns far from the right edge
    equal those of the frame one column narrower (the last column only changes what is near it)."""
    torch.manual_seed(0)
    net = UNet(1, 3, features=4, depth=2).eval()

    def old_forward(x):  # the U-Net as it was (inputs padded to a multiple of 4)
        skips = []
        for i, block in enumerate(net.down):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        skips.pop()
        for conv, block in zip(net.up_conv, net.up):
            x = block(torch.cat([skips.pop(), F.elu(conv(F.interpolate(x, scale_factor=2.0, mode="nearest")))], 1))
        return net.out(x)

    x = torch.rand(2, 1, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(net(x), old_forward(x), rtol=0, atol=0)
        wide = torch.rand(1, 1, 30, 201)
        a, b = net(wide), net(wide[..., :200])
    assert a.shape == (1, 3, 30, 201) and b.shape == (1, 3, 30, 200)
    torch.testing.assert_close(a[..., :120], b[..., :120], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[..., 190:200], b[..., 190:200])


def _pred(b: int, h: int, w: int, *, p: float = 1e-6) -> Prediction:
    return Prediction(
        prob=torch.full((b, 1, h, w), p),
        photons=torch.full((b, 1, h, w), 1000.0),
        offset=torch.zeros(b, 3, h, w),
        sigma=torch.ones(b, 4, h, w),
        bg=torch.full((b, 1, h, w), 10.0),
    )


def test_count_loss_matches_gaussian_closed_form():
    spec = small_spec()
    pred = _pred(1, 4, 4, p=0.25)  # sum p = 4, var = 16 * 0.25 * 0.75 = 3
    no_targets = dict(target_xyz_nm=torch.zeros(1, 0, 3), target_photons=torch.zeros(1, 0, 1),
                      target_mask=torch.zeros(1, 0, dtype=torch.bool), bg=torch.full((1, 1, 4, 4), 10.0))
    parts = decode_loss(pred, spec, **no_targets)
    expected = 0.5 * (0 - 4) ** 2 / 3 + 0.5 * math.log(3) + 0.5 * LOG_2PI
    assert float(parts.count) == pytest.approx(expected, rel=1e-5)
    assert float(parts.loc) == 0.0 and float(parts.bg) == 0.0
    # padded target slots that are all empty (a batch whose samples have no targets): the same loss, no NaN from 0/0
    padded = dict(no_targets, target_xyz_nm=torch.zeros(1, 3, 3), target_photons=torch.zeros(1, 3, 1),
                  target_mask=torch.zeros(1, 3, dtype=torch.bool))
    again = decode_loss(pred, spec, **padded)
    assert float(again.loc) == 0.0 and float(again.total) == pytest.approx(float(parts.total), rel=1e-6)


def test_background_loss_is_normalised_per_channel_by_its_spread():
    from dataclasses import replace

    no_targets = dict(target_xyz_nm=torch.zeros(2, 0, 3), target_photons=torch.zeros(2, 0, 1),
                      target_mask=torch.zeros(2, 0, dtype=torch.bool))
    pred = _pred(2, 4, 4)  # bg 10 everywhere
    truth = torch.full((2, 1, 4, 4), 10.0)
    truth[1] = 30.0  # errors 0 and 20 photons/px
    old = decode_loss(pred, replace(small_spec(), bg_scale=150.0), bg=truth, **no_targets)
    assert float(old.bg) == pytest.approx(0.5 * (20 / 150) ** 2, rel=1e-5)  # without a spread: the output scale
    new = decode_loss(pred, replace(small_spec(), bg_scale=150.0, bg_loss_scale=[20.0]), bg=truth, **no_targets)
    assert float(new.bg) == pytest.approx(0.5, rel=1e-5)


def test_mixture_loss_is_the_gaussian_nll_of_a_certain_detection():
    spec = small_spec(px_size_nm=(100.0, 100.0))
    pred = _pred(1, 6, 6)
    pred.prob[0, 0, 2, 3] = 1.0  # all weight on pixel (row 2, col 3): centre at x = 3.5 px, y = 2.5 px
    pred.offset[0, 0, 2, 3] = 0.2
    pred.offset[0, 1, 2, 3] = -0.1
    pred.sigma[0, :, 2, 3] = torch.tensor([0.1, 0.2, 1.0, 250.0])  # x, y (px), z (nm, unused in 2D), photons
    pred.photons[0, 0, 2, 3] = 1000.0
    target = torch.tensor([[[370.0, 250.0, 0.0]]])  # offsets from the predicted mean: 0.0 and +0.1 px
    parts = decode_loss(pred, spec, target_xyz_nm=target, target_photons=torch.tensor([[[1250.0]]]),
                        target_mask=torch.ones(1, 1, dtype=torch.bool), bg=torch.full((1, 1, 6, 6), 10.0))
    # d = (0, 0.1 px, 250 photons) / (0.1, 0.2, 250) = (0, 0.5, 1.0); log-sigmas in loss units (photons / 5000)
    expected = 0.5 * (0.5**2 + 1.0**2) + math.log(0.1) + math.log(0.2) + math.log(250.0 / 5000.0) + 1.5 * LOG_2PI
    assert float(parts.loc) == pytest.approx(expected, abs=1e-3)


def test_loss_gradient_pulls_offsets_towards_the_emitter():
    spec = small_spec()
    pred = _pred(1, 5, 5)
    pred.prob[0, 0, 2, 2] = 0.9
    off = torch.zeros(1, 3, 5, 5, requires_grad=True)
    pred.offset = off
    parts = decode_loss(pred, spec, target_xyz_nm=torch.tensor([[[280.0, 250.0, 0.0]]]),
                        target_photons=torch.tensor([[[1000.0]]]), target_mask=torch.ones(1, 1, dtype=torch.bool),
                        bg=torch.full((1, 1, 5, 5), 10.0))
    parts.total.backward()
    assert off.grad[0, 0, 2, 2] < 0  # increasing x offset lowers the loss (target at +0.3 px)
    assert off.grad[0, 1, 2, 2].abs() < 1e-6  # y already right
