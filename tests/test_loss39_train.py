"""The count term's variance floor (:data:`plexloc.train.loss.COUNT_VAR_FLOOR`): a sample whose probabilities are all
~0 while it holds emitters cost 0.5 n^2 / 1e-6 (4.5e6 for 3 emitters) before 2026-12-06."""

from __future__ import annotations

import math

import pytest
import torch

from plexloc.nets import LocalizerSpec
from plexloc.nets.localizer import Prediction
from plexloc.train.loss import COUNT_VAR_FLOOR, decode_loss

LOG_2PI = math.log(2 * math.pi)
SPEC = LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, photon_scale=5000.0, bg_scale=100.0)


def _pred(prob: torch.Tensor) -> Prediction:
    b, _, h, w = prob.shape
    return Prediction(prob=prob, photons=torch.full((b, 1, h, w), 1000.0), offset=torch.zeros(b, 3, h, w),
                      sigma=torch.ones(b, 4, h, w), bg=torch.full((b, 1, h, w), 10.0))


def _targets(n: list[int], k: int = 3) -> dict:
    mask = torch.zeros(len(n), k, dtype=torch.bool)
    for i, m in enumerate(n):
        mask[i, :m] = True
    xyz = torch.tensor([[250.0, 350.0, 0.0], [650.0, 150.0, 0.0], [1150.0, 1250.0, 0.0]])[:k]
    return dict(target_xyz_nm=xyz.expand(len(n), k, 3).clone(), target_photons=torch.full((len(n), k, 1), 1000.0),
                target_mask=mask, bg=torch.full((len(n), 1, 16, 16), 10.0))


def test_ordinary_predictions_keep_their_count_loss():
    """Random probabilities (every sample's variance far above the floor): the count term is the Gaussian NLL of the
    Poisson-binomial as before, to 1e-6 relative."""
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(6, 1, 16, 16, generator=g) * 0.05  # sum p ~ 6, variance ~ 6: a freshly initialised network
    n = [0, 1, 2, 3, 1, 0]
    parts = decode_loss(_pred(prob), SPEC, **_targets(n))
    p = prob.reshape(6, -1).double()
    mean, var = p.sum(1), (p * (1 - p)).sum(1)
    assert float(var.min()) > 100 * COUNT_VAR_FLOOR
    want = (0.5 * (torch.tensor(n, dtype=torch.float64) - mean) ** 2 / var + 0.5 * torch.log(var) + 0.5 * LOG_2PI).mean()
    assert float(parts.count) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("logit", [-30.0, -math.inf, 30.0])
def test_a_sure_empty_prediction_with_three_emitters_costs_a_bounded_loss_with_finite_gradients(logit):
    """Every p = sigmoid(-30) (or exactly 0, or every p ~ 1 with 3 emitters in 256 pixels): the count term is
    0.5 (3 - sum p)^2 / 0.01 + 0.5 log(0.01) + 0.5 log(2 pi) = 448.6 for p ~ 0 (it was 4.5e6 at the old floor
    1e-6), and the gradients are finite."""
    logits = torch.full((1, 1, 16, 16), logit, requires_grad=True)
    parts = decode_loss(_pred(torch.sigmoid(logits)), SPEC, **_targets([3]))
    parts.total.backward()
    assert bool(torch.isfinite(parts.total)) and bool(torch.isfinite(logits.grad).all())
    if logit < 0:
        assert float(parts.count) == pytest.approx(0.5 * 9 / 0.01 + 0.5 * math.log(0.01) + 0.5 * LOG_2PI, rel=1e-5)
        assert float(parts.count) < 450.0
    else:  # sum p = 256 for 3 emitters: a huge miss, bounded by 50 (n - sum p)^2
        assert float(parts.count) <= 50.0 * 253**2
    # a prediction given as probabilities (no logits): exactly 0 everywhere, gradient with respect to p finite too
    prob = torch.zeros(1, 1, 16, 16, requires_grad=True)
    parts = decode_loss(_pred(prob), SPEC, **_targets([3]))
    parts.total.backward()
    assert float(parts.count) < 450.0 and bool(torch.isfinite(prob.grad).all())
    assert float(prob.grad.abs().max()) < 1e3
