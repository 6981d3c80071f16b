"""Cramér-Rao lower bound of any PSF model under any camera, from the Fisher information.

The expected image of one emitter in channel c is ``mu_c = PSF_c(T_c r, z - dz_c, photons_c) + bg``
(photons per pixel). Under the Poisson approximation of the camera noise the Fisher information is

    I_ij = sum_c sum_pixels (d mu / d theta_i)(d mu / d theta_j) / var_c(mu)

with ``var`` the camera's per-pixel variance in the photon domain (:meth:`Camera.noise_variance_photons`:
the EMCCD excess-noise factor 2 - 1/em_gain, 2 from em_gain 100, the sCMOS read-noise variance). Derivatives come from forward-mode
automatic differentiation of the PSF, so every model in the registry gets its bound for free.
Parameters: ``x, y, [z,] photons, bg`` (z only for 3D PSFs); the bound of each is the square root of
the diagonal of ``I^-1``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from plexloc.camera import SCMOS, Camera
from plexloc.psf import PSF


def _scalar_camera(camera: Camera) -> Camera:
    """sCMOS with per-pixel maps -> an equivalent camera with the maps' medians (for single-emitter bounds)."""
    if isinstance(camera, SCMOS) and camera.map_shape is not None:
        return SCMOS(
            qe=camera.qe,
            spurious_charge=camera.spurious_charge,
            e_per_adu=float(camera.e_per_adu.median()),
            baseline=float(camera.baseline.median()),
            read_sigma=float(camera.read_sigma.median()),
        )
    return camera


def fisher_information(
    channels: Sequence[tuple[PSF, Camera]],
    *,
    x_nm: Tensor,
    y_nm: Tensor,
    z_nm: Tensor,
    photons: Tensor,
    bg: Tensor | float,
    transforms: Sequence[Tensor | None] | None = None,
    z_offsets_nm: Sequence[float] | None = None,
    photon_fractions: Sequence[float] | Tensor | None = None,
    bg_ratios: Tensor | None = None,
    photons_per_channel: bool = False,
    bg_per_channel: bool = False,
) -> tuple[Tensor, list[str]]:
    """Fisher information ``(N, P, P)`` of N single emitters and the parameter names.

    Positions are in reference-channel nm (any frame coordinates: the patch follows the emitter).
    ``photons`` is the total; channel c receives ``photon_fractions[c]`` of it (default 1 for one
    channel, i.e. the linked photon model), or ``photon_fractions[:, c]`` for per-emitter fractions ``(N, C)``
    (e.g. each molecule's dye). ``bg`` is photons per pixel in channel 0 and, without ``bg_ratios``, in every
    channel; ``bg_ratios`` ``(N, C)``: channel c's background is ``bg * bg_ratios[:, c]`` (one background
    parameter, scaled per channel).

    ``photons_per_channel``: each channel's photons are a parameter of their own (``photons_ch0, ...``; the
    ``independent`` photon model, whose network and MLE estimate one count per channel), each at the value
    ``photons * photon_fractions[c]``; otherwise one ``photons`` parameter shared by the fractions (linked,
    ratiometric). ``bg_per_channel``: one background parameter per channel (``bg_ch0, ...``, as the MLE fits
    them), each at its value above. More free parameters never lower a bound: the positions' bound with
    per-channel photons is at least the shared one's.
    """
    from plexloc.simulation.geometry import apply_transform

    n_ch = len(channels)
    transforms = list(transforms) if transforms is not None else [None] * n_ch
    z_offsets = list(z_offsets_nm) if z_offsets_nm is not None else [0.0] * n_ch
    if photon_fractions is None:
        fractions = [1.0] * n_ch
    elif isinstance(photon_fractions, Tensor) and photon_fractions.ndim == 2:
        fractions = [photon_fractions[:, c].to(torch.float64).reshape(-1) for c in range(n_ch)]
    else:
        fractions = list(photon_fractions)
    bg_scale = ([bg_ratios[:, c].to(torch.float64).reshape(-1) for c in range(n_ch)] if bg_ratios is not None
                else [1.0] * n_ch)
    is_3d = any(psf.is_3d for psf, _ in channels)
    per_ph = photons_per_channel and n_ch > 1
    per_bg = bg_per_channel and n_ch > 1
    names = (["x", "y"] + (["z"] if is_3d else [])
             + ([f"photons_ch{c}" for c in range(n_ch)] if per_ph else ["photons"])
             + ([f"bg_ch{c}" for c in range(n_ch)] if per_bg else ["bg"]))
    n_pos = 3 if is_3d else 2
    dtype = torch.float64
    theta = torch.stack(
        [
            torch.as_tensor(v, dtype=dtype).expand_as(torch.as_tensor(x_nm, dtype=dtype)).reshape(-1)
            for v in (x_nm, y_nm, z_nm, photons, torch.as_tensor(bg, dtype=dtype).expand_as(torch.as_tensor(x_nm, dtype=dtype)))
        ],
        dim=1,
    )  # (N, 5): x, y, z, photons, bg
    n = theta.shape[0]
    param_cols = [0, 1] + ([2] if is_3d else []) + [3, 4]
    info = torch.zeros(n, len(names), len(names), dtype=dtype)

    for c, ((psf, camera), t, dz, frac, bs) in enumerate(zip(channels, transforms, z_offsets, fractions, bg_scale)):
        psf = copy.deepcopy(psf).double()  # never touch the caller's module
        cam = _scalar_camera(camera)
        device = next(iter(psf.buffers()), torch.empty(0)).device
        frac = frac.to(device) if isinstance(frac, Tensor) else frac
        bs = bs.to(device) if isinstance(bs, Tensor) else bs
        theta_d = theta.to(device)
        # a channel's own photon count (background) as its parameter: its value in theta, and the model takes it whole
        if per_ph:
            theta_d = theta_d.clone()
            theta_d[:, 3] = theta_d[:, 3] * frac
            frac = 1.0
        if per_bg:
            theta_d = theta_d.clone()
            theta_d[:, 4] = theta_d[:, 4] * bs
            bs = 1.0
        bs = bs[:, None, None] if isinstance(bs, Tensor) else bs

        def model(th: Tensor, psf=psf, t=t, dz=dz, frac=frac, bs=bs) -> Tensor:
            x, y = (th[:, 0], th[:, 1]) if t is None else apply_transform(t.double(), th[:, 0], th[:, 1])
            patch, _, _ = psf.patches(x, y, th[:, 2] - dz, th[:, 3] * frac)
            return patch + th[:, 4, None, None] * bs

        cam = copy.deepcopy(cam).to(device)
        mu = model(theta_d)
        grads = []
        for col in param_cols:
            tangent = torch.zeros_like(theta_d)
            tangent[:, col] = 1.0
            with warnings.catch_warnings(), fwad.dual_level():
                # torch's first forward-AD use scripts internal decompositions and warns about torch.jit
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
                d = fwad.unpack_dual(model(fwad.make_dual(theta_d, tangent))).tangent
            grads.append(d.reshape(n, -1))
        g = torch.stack(grads, dim=1)  # (N, P, pixels)
        mu_flat = mu.reshape(n, -1)
        var = cam.noise_variance_photons(mu).reshape(n, -1)
        # pixels with (numerically) no expected signal carry no information: a spline's tails can be
        # exactly 0 or ring slightly negative while its derivative is not 0
        used = (mu_flat > 1e-9 * mu_flat.amax(dim=1, keepdim=True)) & (var > 0)
        weight = torch.where(used, 1.0 / torch.where(used, var, torch.ones_like(var)), torch.zeros_like(var))
        block = torch.einsum("npk,nqk->npq", g * weight[:, None, :], g).cpu()
        # this channel's rows of theta (positions, its photons, its background) in the full parameter vector
        at = list(range(n_pos)) + [n_pos + (c if per_ph else 0)] + [n_pos + (n_ch if per_ph else 1) + (c if per_bg else 0)]
        idx = torch.tensor(at)
        info[:, idx[:, None], idx[None, :]] += block
    return info, names


def _covariance(info: Tensor) -> Tensor:
    """``info^-1`` of a batch ``(N, P, P)``; a parameter without information (a zero diagonal entry, e.g. the
    position of an emitter with no photons) gets an ``inf`` variance and no covariance, and the others the inverse
    of the rest of the matrix (one such row no longer fails the whole batch with a singular-matrix error); a
    singular row is ``inf`` throughout its diagonal."""
    d = torch.diagonal(info, dim1=1, dim2=2)
    none = ~(d > 0)  # also NaN
    scale = torch.where(none, torch.ones_like(d), d).sqrt()
    keep = (~none).to(info.dtype)
    # the informative block, scaled to a unit diagonal, and the identity on the rows without information
    hn = info / scale[:, :, None] / scale[:, None, :] * keep[:, :, None] * keep[:, None, :] + torch.diag_embed(none.to(info.dtype))
    inv, status = torch.linalg.inv_ex(hn)
    cov = inv / scale[:, :, None] / scale[:, None, :] * keep[:, :, None] * keep[:, None, :]
    var = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0).masked_fill(none, float("inf"))
    var = var.masked_fill((status != 0)[:, None], float("inf"))
    return cov - torch.diag_embed(torch.diagonal(cov, dim1=1, dim2=2)) + torch.diag_embed(var)


def _inverse_diagonal(info: Tensor) -> Tensor:
    """Diagonal of ``info^-1`` of a batch ``(N, P, P)`` (:func:`_covariance`)."""
    return torch.diagonal(_covariance(info), dim1=1, dim2=2)


def _channels(psf, camera) -> list[tuple[PSF, Camera]]:
    """``(psf, camera)`` pairs of :func:`crlb`; a configuration or ``None`` where a model belongs is a TypeError
    saying what to give (an AttributeError from deep inside before)."""
    hint = ("the PSF and camera models: Simulator(config).channels[c].psf and .camera, or plexloc.psf.psf_from_config "
            "and plexloc.camera.camera_from_config of the configuration's")
    if isinstance(psf, PSF):
        if camera is None:
            raise TypeError(f"crlb(psf, camera, ...) needs the camera (the noise model); give {hint}")
        channels = [(psf, camera)]
    elif isinstance(psf, Sequence) and psf and all(isinstance(p, Sequence) and len(p) == 2 for p in psf):
        channels = [tuple(p) for p in psf]
    else:
        raise TypeError(f"psf must be a PSF model or a list of (psf, camera) pairs, got {type(psf).__name__}; give {hint}")
    for c, (p, cam) in enumerate(channels):
        if not isinstance(p, PSF) or not isinstance(cam, Camera):
            raise TypeError(f"channel {c}: got a {type(p).__name__} and a {type(cam).__name__} where a PSF and a "
                            f"Camera belong; give {hint}")
    return channels


def crlb(
    psf: PSF | Sequence[tuple[PSF, Camera]],
    camera: Camera | None = None,
    *,
    x_nm: Tensor | float | None = None,
    y_nm: Tensor | float | None = None,
    z_nm: Tensor | float = 0.0,
    photons: Tensor | float,
    bg: Tensor | float,
    **channel_options,
) -> dict[str, Tensor]:
    """CRLB (1 sigma) of each parameter for single emitters.

    Args:
        psf: a PSF (with ``camera``) or a sequence of (psf, camera) pairs for a multi-channel bound
            (see :func:`fisher_information` for ``transforms``, ``z_offsets_nm``, ``photon_fractions``).
        camera: the camera of a single ``psf`` (its noise model; a camera with per-pixel maps gives the bound of
            their medians).
        x_nm, y_nm: emitter positions, nm (default: the centre of a pixel far from any border).
        z_nm, photons, bg: z (nm), photons per emitter, background photons per pixel: scalars, sequences, numpy
            arrays or tensors broadcast together.

    Returns:
        ``crlb_x_nm, crlb_y_nm, crlb_z_nm`` (NaN for a 2D PSF), ``crlb_photons``, ``crlb_bg`` as float64 tensors;
        with ``photons_per_channel`` also ``crlb_photons_chN`` (``crlb_photons`` is then the bound of their sum,
        the emitter's total), with ``bg_per_channel`` ``crlb_bg_chN`` instead of ``crlb_bg``.

    Example:
        >>> from plexloc.psf import GaussianPSF
        >>> from plexloc.camera import IdealCamera
        >>> b = crlb(GaussianPSF(sigma_nm=150.0), IdealCamera(), photons=1000.0, bg=0.0)
        >>> 4.0 < float(b["crlb_x_nm"]) < 6.0
        True
    """
    channels = _channels(psf, camera)
    ref = channels[0][0]
    shape = torch.broadcast_shapes(*(torch.as_tensor(v).shape for v in (z_nm, photons, bg) if v is not None))
    if x_nm is None:
        x_nm = torch.full(shape, (ref.roi_px[1] + 0.5) * ref.px_size_nm[0], dtype=torch.float64)
    if y_nm is None:
        y_nm = torch.full(shape, (ref.roi_px[0] + 0.5) * ref.px_size_nm[1], dtype=torch.float64)
    shape = torch.broadcast_shapes(shape, torch.as_tensor(x_nm).shape, torch.as_tensor(y_nm).shape)
    vals = [torch.as_tensor(v, dtype=torch.float64).expand(shape).reshape(-1) for v in (x_nm, y_nm, z_nm, photons, bg)]
    info, names = fisher_information(
        channels, x_nm=vals[0], y_nm=vals[1], z_nm=vals[2], photons=vals[3], bg=vals[4], **channel_options
    )
    cov = _covariance(info)
    std = torch.diagonal(cov, dim1=1, dim2=2).sqrt()
    out = {f"crlb_{n}" + ("_nm" if n in "xyz" else ""): std[:, i].reshape(shape) for i, n in enumerate(names)}
    per = [i for i, n in enumerate(names) if n.startswith("photons_ch")]
    if per:  # the total's variance: the sum of the per-channel block (inf where one of them has no information)
        block = cov[:, per][:, :, per]
        total = block.sum(dim=(1, 2)).clamp_min(0)
        total = total.masked_fill(~torch.isfinite(torch.diagonal(block, dim1=1, dim2=2)).all(dim=1), float("inf"))
        out["crlb_photons"] = total.sqrt().reshape(shape)
    out.setdefault("crlb_z_nm", torch.full(shape, float("nan"), dtype=torch.float64))
    return out
