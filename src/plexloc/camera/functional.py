"""Pure tensor kernels for camera noise, with randomness only through an explicit generator."""

from __future__ import annotations

import torch
from torch import Tensor


def standard_gamma(shape_param: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Gamma(shape, 1) samples for ``shape_param >= 0`` (0 gives 0), drawn with ``generator``.

    Marsaglia & Tsang (2000) rejection sampling, vectorised; shapes below 1 use the boosting identity
    ``Gamma(a) = Gamma(a + 1) * U^(1/a)``. torch's own gamma sampler takes no generator, which would
    make the simulator depend on the global RNG.
    """
    a = shape_param if shape_param.dtype in (torch.float32, torch.float64) else shape_param.to(torch.float32)
    positive = a > 0
    small = positive & (a < 1)
    # work on every element (no compaction of the big tensor): zeros get a dummy shape of 1
    a_eff = torch.where(small, a + 1, torch.where(positive, a, torch.ones_like(a)))
    d = a_eff - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)

    def propose(dd: Tensor, cc: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.randn(dd.shape, generator=generator, device=dd.device, dtype=dd.dtype)
        v = (1.0 + cc * x) ** 3
        u = torch.rand(dd.shape, generator=generator, device=dd.device, dtype=dd.dtype)
        ok = (v > 0) & (torch.log(u) < 0.5 * x * x + dd - dd * v + dd * torch.log(v.clamp_min(1e-30)))
        return dd * v, ok

    result, ok = propose(d, c)  # accepts > 95 % at once
    todo = torch.nonzero(~ok).flatten()
    for _ in range(64):  # the few rejected ones: 64 more rounds leave nothing in practice
        if todo.numel() == 0:
            break
        flat_d, flat_c = d.reshape(-1)[todo], c.reshape(-1)[todo]
        value, ok_t = propose(flat_d, flat_c)
        result.view(-1)[todo[ok_t]] = value[ok_t]
        todo = todo[~ok_t]
    if todo.numel():  # pragma: no cover - practically unreachable
        result.view(-1)[todo] = d.reshape(-1)[todo]
    if bool(small.any()):
        u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        result = torch.where(small, result * u ** (1.0 / a_eff.sub(1).clamp_min(1e-12)), result)
    return torch.where(positive, result, torch.zeros_like(result))


def poisson(rate: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Poisson samples of ``rate`` (clamped at 0). A rate that is NaN or infinite is an
    :class:`~plexloc.errors.InputError` saying how many (torch's own error, "expected rate to be non-negative", was
    about a NaN that the clamp keeps); checked only where torch refuses the rates (on the CPU), so no
    synchronisation is added."""
    try:
        return torch.poisson(rate.clamp_min(0), generator=generator)
    except RuntimeError as err:
        if "Poisson rate" not in str(err):
            raise
        from plexloc.errors import InputError

        bad = ~torch.isfinite(rate)
        if not bool(bad.any()):
            raise
        raise InputError(f"the expected photons (camera input) must be finite: {int(bad.sum())} of {rate.numel()} "
                         f"value(s) are NaN or infinite ({int(torch.isnan(rate).sum())} NaN)") from None


def quantise_adu(adu: Tensor, *, max_adu: float = 65535.0) -> Tensor:
    """Round to integer ADU and clip to the range of an unsigned 16-bit camera."""
    return torch.round(adu).clamp_(0.0, max_adu)
