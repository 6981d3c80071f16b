"""Batched maximum-likelihood fits of single emitters in fitting windows, one or several channels.

Noise model (the Poisson approximation of every camera): in the photon domain (after
``camera.to_photons``) a pixel with expected photons ``mu`` has variance ``v(mu) = a mu + b``
(:meth:`~plexloc.camera.Camera.noise_variance_photons`: EMCCD ``a = 2 / qe`` from the excess-noise
factor, sCMOS ``b`` the read-noise variance / gain² of Huang et al. 2013, per pixel). With
``k = 1 / a`` the *effective counts* ``x = k d + k² b`` of data ``d`` have mean ``m = k mu + k² b`` and
variance ``m``: a Poisson variable. The fitter maximises the Poisson log-likelihood of ``x`` given ``m``
(for sCMOS this is exactly Huang et al.'s variance-to-gain² correction, for EMCCD the usual
photon-domain approximation scaled so that the likelihood ratio is chi-square distributed), and its
Fisher information ``sum (dmu/dθ)² / v`` is the CRLB of :mod:`plexloc.evaluate.crlb`.

Optimiser: Levenberg-Marquardt on the Fisher-scoring Hessian ``J diag(1/m) Jᵀ`` (always positive
semi-definite), one model evaluation per iteration for the whole batch, per-window damping, bounded
steps, and a Newton-decrement convergence test (the remaining step is below ``tol`` in units of the
statistical error). Converged windows leave the batch. 3D fits start from several z values and keep
the best likelihood; z stays within its bounds (a fit at a bound with the likelihood rising outwards
holds z there and converges in the other parameters). One channel with a separable PSF (Gaussian,
astigmatic) never forms the Jacobian: the gradient and Fisher matrix come from the PSF's 1D factors.

Bounds: x, y within 1 px beyond the window, z within its bounds, photons >= 1, background >= 1e-4, width scale
0.4-4. A fit that ends with a parameter on one of these is not the likelihood's maximum of the model: its
``at_bound`` names the bounds (:data:`AT_BOUND_BITS`), and ``converged`` is false where the bound is one of the fit
(position, z, photons, width: :data:`NOT_CONVERGED_BOUNDS`); a background at 0 or one channel's free photons at 1
(the other channels' not) is the non-negative model's own estimate and stays converged, flagged.

Detection test: every fit also gets the background-only model's maximum on the same window and effective counts (one
constant background per channel, :func:`background_only_fit`) and ``spot_llr = 2 (log L_fit - log L_background-only)``,
the generalized likelihood-ratio test of a spot (Smith et al. 2015, Mol Biol Cell; SMAP's likewise), with its
false-alarm p-value ``p_spot`` (:func:`spot_pvalue`). Its null is not a textbook chi-square (the position of an absent
spot is not identified, the photons are bounded below): the effective degrees of freedom were measured on pure-noise
windows (:data:`SPOT_NULL_DOF`; bench/spot_significance42.py: 0.3-1.5 % of pure-noise windows below p_spot 0.01 over
EMCCD and sCMOS, 2D and astigmatic 3D, 2-100 photons/px). Of pure-noise fits 85 % say converged; ``p_spot`` tells them.

Parameters (θ) per window: ``x, y`` (reference channel, in pixels of channel 0's window), ``z`` (3D),
``s`` (free PSF width scale, optional), photons (one total when ``linked``, else one per channel) and
one background per channel. A channel c sees ``(x_c, y_c) = T_c (x, y)`` (conventions.md, nm) and
``z - z_offset_c``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from plexloc.mle.models import RoiModel


@dataclass
class FitChannel:
    """One channel of a fit: its window model, transform ``T_c`` (reference -> channel, nm, 3x3),
    focal offset, and its share of the photons under the linked photon model."""

    model: RoiModel
    transform: Tensor | None = None
    z_offset_nm: float = 0.0
    fraction: float = 1.0

    @property
    def px_size_nm(self) -> tuple[float, float]:
        return self.model.px_size_nm


@dataclass
class FitResult:
    """Per-window results (float64, CPU), positions in reference-channel nm.

    ``photons_ch`` and ``bg_ch`` are ``(N, C)``; ``crlb`` maps ``x_nm, y_nm, z_nm, photons, bg`` (and
    ``bg_chN``, ``photons_chN``) to 1-sigma bounds at the fitted parameters (``z_nm``: NaN where z is held on its
    bound, ``at_bound & 2``: no estimate of z; ``extra["crlb_z_held"]`` has the bound's value there). ``converged``:
    the optimiser's test met and no parameter on a bound of :data:`NOT_CONVERGED_BOUNDS`; ``at_bound``: the bounds
    hit (:data:`AT_BOUND_BITS`); ``extra["lm_converged"]``: the optimiser's test alone (met, too, by a fit held on a
    bound).
    """

    x_nm: Tensor
    y_nm: Tensor
    z_nm: Tensor
    photons: Tensor
    photons_ch: Tensor
    bg_ch: Tensor
    sigma_scale: Tensor | None
    crlb: dict[str, Tensor]
    loglik: Tensor
    llr: Tensor
    iterations: Tensor
    converged: Tensor
    n_pixels: int = 0
    n_params: int = 0
    extra: dict[str, Tensor] = field(default_factory=dict)
    #: (N,) int64: the bounds the fit ended on, a sum of :data:`AT_BOUND_BITS` (0: none)
    at_bound: Tensor | None = None
    #: (N,) float64: the detection statistic ``2 (log L_fit - log L_background-only) >= 0`` (:func:`background_only_fit`;
    #: 0 where the fit ended below the background-only maximum: ``extra["spot_llr_raw"]`` keeps the signed value)
    spot_llr: Tensor | None = None
    #: (N,) float64: the false-alarm p-value of ``spot_llr`` (:func:`spot_pvalue`): the probability that background
    #: alone gives a ``spot_llr`` this large
    p_spot: Tensor | None = None

    def __len__(self) -> int:
        return int(self.x_nm.shape[0])


#: the bounds a fit can end on, and their bit in ``at_bound`` (the table's column): x or y 1 px beyond the window
#: (where the fitter stops them), z at its bound, the photons at their lower bound (1; with free photons per channel:
#: every channel's), the background of a channel at its lower bound (1e-4), the free width scale at 0.4 or 4, the
#: photons of some but not all channels at 1 (free photons per channel)
AT_BOUND_BITS: dict[str, int] = {"xy": 1, "z": 2, "photons": 4, "bg": 8, "width": 16, "photons_ch": 32}
#: the bounds of the fitter's own making, not the model's: a fit ending on one is not converged
NOT_CONVERGED_BOUNDS = AT_BOUND_BITS["xy"] | AT_BOUND_BITS["z"] | AT_BOUND_BITS["photons"] | AT_BOUND_BITS["width"]
_XY_MARGIN_PX = 1.0  # how far beyond the window x, y may go
_PHOTONS_MIN = 1.0
_BG_MIN = 1e-4
_WIDTH_RANGE = (0.4, 4.0)


def _inverse_fisher(H: Tensor) -> Tensor:
    """The inverse of Fisher matrices ``H (n, P, P)`` in float64, robust to a singular one (scaled to a unit diagonal,
    a 1e-12 ridge)."""
    H = H.double()
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    scale = torch.sqrt(torch.diagonal(H, dim1=1, dim2=2).clamp_min(1e-30))
    Hn = H / scale[:, :, None] / scale[:, None, :]
    return torch.linalg.solve_ex(Hn + 1e-12 * eye, eye.expand_as(Hn))[0] / scale[:, :, None] / scale[:, None, :]


def bounds_hit(theta: Tensor, problem: "_Problem", z_bounds: tuple[float, float], *, H: Tensor | None = None,
               cov: Tensor | None = None) -> Tensor:
    """``(n,)`` int64 sum of :data:`AT_BOUND_BITS` of the bounds the parameters ``theta`` (n, P) sit on.

    Position, z and width reach their bounds by clipping: on the bound itself. The photons and background approach
    their lower bounds in steps of a third and may stop short of them where the likelihood is flat (1.12 photons with
    a CRLB of 465, a refit of noise): with the Fisher matrix ``H`` at the fit they count as on the bound within 5 % of
    their standard error (CRLB) above it, where the data cannot tell them from it. ``cov``: the inverse of ``H``
    where the caller has it (:func:`_inverse_fisher`), else computed here."""
    R, i_n, i_bg = problem.roi, problem.i_n, problem.i_bg
    bits = torch.zeros(theta.shape[0], dtype=torch.int64, device=theta.device)

    def add(mask: Tensor, name: str) -> None:
        bits.add_(mask.to(torch.int64) * AT_BOUND_BITS[name])

    xy = theta[:, :2]
    add(((xy <= -_XY_MARGIN_PX + 1e-3) | (xy >= R + _XY_MARGIN_PX - 1e-3)).any(dim=1), "xy")
    p = 2
    if problem.is_3d:
        z = theta[:, 2]
        add((z <= z_bounds[0] + 1e-3) | (z >= z_bounds[1] - 1e-3), "z")
        p += 1
    if problem.free_sigma:
        s = theta[:, p]
        add((s <= _WIDTH_RANGE[0] + 1e-5) | (s >= _WIDTH_RANGE[1] - 1e-5), "width")
    low = theta[:, i_n:i_bg] <= _PHOTONS_MIN * (1.0 + 1e-4)
    low_bg = theta[:, i_bg:] <= _BG_MIN * (1.0 + 1e-3)
    if cov is None and H is not None and theta.shape[0]:
        cov = _inverse_fisher(H)
    if cov is not None and theta.shape[0]:
        sd = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0).sqrt().to(theta.dtype)
        near = lambda sl, floor: theta[:, sl] - floor <= 0.05 * sd[:, sl]  # noqa: E731
        low = low | near(slice(i_n, i_bg), _PHOTONS_MIN)
        low_bg = low_bg | near(slice(i_bg, None), _BG_MIN)
    add(low.all(dim=1), "photons")
    add(low.any(dim=1) & ~low.all(dim=1), "photons_ch")
    add(low_bg.any(dim=1), "bg")
    return bits


# The smallest slope ``a`` of ``v(mu) = a mu + b`` the effective counts use. A camera whose noise does not grow
# with the signal (``a = 0``, the additive camera) has no Poisson form; its likelihood is Gaussian with a
# constant variance, which the Poisson likelihood of ``k = 1 / A_FLOOR`` times the data approaches (the
# variance it assumes, ``A_FLOOR mu + b``, is within 25 % of ``b`` up to 25 b photons per pixel).
A_FLOOR = 0.01


def noise_terms(variance_fn, shape_like: Tensor) -> tuple[Tensor, Tensor]:
    """``(k, offset)`` of the effective-count transform from a camera's variance ``v(mu) = a mu + b``:
    ``k = 1 / a``, ``offset = k² b`` (broadcastable to ``shape_like``); ``a`` is at least :data:`A_FLOOR`."""
    zero = torch.zeros_like(shape_like)
    b = variance_fn(zero)
    a = (variance_fn(zero + 1.0) - b).clamp_min(A_FLOOR)
    k = 1.0 / a
    off = k * k * b
    # a camera without per-pixel maps gives scalars (cheaper than maps)
    if bool((k == k.reshape(-1)[0]).all()) and bool((off == off.reshape(-1)[0]).all()):
        k, off = k.reshape(-1)[0], off.reshape(-1)[0]
    return k.to(shape_like.dtype), off.to(shape_like.dtype)


class _Problem:
    """The batched model of one multi-channel fit (internal)."""

    def __init__(self, channels: Sequence[FitChannel], roi: int, *, linked: bool, origins: Tensor, device, dtype):
        self.channels = list(channels)
        self.C = len(self.channels)
        self.roi = roi
        self.linked = linked
        ref = self.channels[0].model
        self.is_3d = any(ch.model.is_3d for ch in self.channels)
        self.free_sigma = ref.free_sigma
        names = ["x", "y"] + (["z"] if self.is_3d else []) + (["s"] if self.free_sigma else [])
        self.i_n = len(names)
        names += ["photons"] if linked else [f"photons_ch{c}" for c in range(self.C)]
        self.i_bg = len(names)
        names += [f"bg_ch{c}" for c in range(self.C)]
        self.names = names
        self.P = len(names)
        self.device, self.dtype = device, dtype
        self.origins = origins  # (N, C, 2) int64 window (row0, col0) of every channel
        self._geom = None
        self._used_idx: dict = {}  # the parameter columns of each channel's Jacobian block, as index tensors
        ch0 = self.channels[0]
        # one channel in its own frame with a separable PSF: the Fisher matrix from the 1D factors (its model has
        # no photon fraction: a linked single channel seeing only part of the light takes the general path)
        self.separable = (self.C == 1 and ch0.transform is None and ch0.model.is_separable
                          and not (linked and ch0.fraction != 1.0))
        if self.separable:
            self._sep_table(device)

    def _sep_table(self, device) -> None:
        """Terms of the separable Jacobian: column p of J is the sum of its terms t, each
        ``coef_t * U[u_t] ⊗ V[v_t]`` with the row factors ``U = (rows, d_rows, dq_rows, 1)`` and
        column factors ``V = (cols, d_cols, dq_cols, 1)`` (``dq``: z or width derivative, else 0): x
        ``rows ⊗ d_cols``, y ``d_rows ⊗ cols``, z or width ``dq_rows ⊗ cols + rows ⊗ dq_cols``, photons
        ``rows ⊗ cols``, background ``1 ⊗ 1``; coefficients ``photons * k`` (x, y, z, width) or ``k``."""
        extra = self.is_3d or self.free_sigma
        Q, one = 4, 3  # slot 2 (dq) is zero without z or width: 4-row factors take faster batched products
        terms = [(0, 0, 1), (1, 1, 0)] + ([(2, 2, 0), (2, 0, 2)] if extra else []) + [(self.i_n, 0, 0), (self.i_bg, one, one)]
        T = len(terms)
        self._sep_nk = torch.tensor([t[0] < self.i_n for t in terms], device=device)
        M = torch.zeros(T, self.P, device=device, dtype=self.dtype)
        M[torch.arange(T, device=device), torch.tensor([t[0] for t in terms], device=device)] = 1.0
        self._sep_M = M
        # gradient: term t reads G[u_t, v_t] of G = U E Vᵀ (Q x Q); Fisher: terms s, t read
        # C[(u_s, u_t), (v_s, v_t)] of C = (U U) W (V V)ᵀ over the factor products that occur
        self._sep_g = torch.tensor([u * Q + v for _, u, v in terms], device=device)
        upairs = sorted({tuple(sorted((a[1], b[1]))) for a in terms for b in terms})
        vpairs = sorted({tuple(sorted((a[2], b[2]))) for a in terms for b in terms})
        # padded to >= 8 products (repeats of the first): CPU batched products of 6 rows are several times slower
        upairs += upairs[:1] * max(0, 8 - len(upairs))
        vpairs += vpairs[:1] * max(0, 8 - len(vpairs))
        iu = {pq: i for i, pq in reversed(list(enumerate(upairs)))}
        iv = {pq: i for i, pq in reversed(list(enumerate(vpairs)))}
        self._sep_up = torch.tensor(upairs, device=device).T.contiguous()
        self._sep_vp = torch.tensor(vpairs, device=device).T.contiguous()
        self._sep_f = torch.tensor(
            [iu[tuple(sorted((us, ut)))] * len(vpairs) + iv[tuple(sorted((vs, vt)))] for _, us, vs in terms for _, ut, vt in terms],
            device=device,
        )
        self._sep_fa = torch.arange(T, device=device).repeat_interleave(T)  # term s of each pair (s, t)
        self._sep_fb = torch.arange(T, device=device).repeat(T)
        # pair (s, t) -> Fisher entry (p_s, p_t): F = S (n, T²) @ Mf (T², P²)
        self._sep_Mf = torch.einsum("sp,tq->stpq", M, M).reshape(T * T, self.P * self.P)

    def _evaluate_separable(self, theta: Tensor, k: Tensor, off: Tensor) -> tuple[Tensor, _SeparableJacobian]:
        n, R = theta.shape[0], self.roi
        ch = self.channels[0]
        z = theta[:, 2] if self.is_3d else torch.zeros_like(theta[:, 0])
        s = theta[:, self.i_n - 1] if self.free_sigma else torch.ones_like(theta[:, 0])
        f = ch.model.separable(theta[:, 0], theta[:, 1], z - ch.z_offset_nm, s, R)
        nk = theta[:, self.i_n] * k
        base = (theta[:, self.i_bg] * k + off).clamp_min(1e-6)  # the PSF factors are >= 0: m >= base
        m = torch.addcmul(base[:, None, None], (nk[:, None] * f.rows)[:, :, None], f.cols[:, None, :])
        ones = torch.ones_like(f.rows)
        if self.is_3d or self.free_sigma:
            dq_rows, dq_cols = (f.dz_rows, f.dz_cols) if self.is_3d else (f.ds_rows, f.ds_cols)
        else:
            dq_rows = dq_cols = torch.zeros_like(f.rows)
        U = torch.stack([f.rows, f.d_rows, dq_rows, ones], dim=1)  # (n, 4, R)
        V = torch.stack([f.cols, f.d_cols, dq_cols, ones], dim=1)
        coef = torch.where(self._sep_nk, nk[:, None], k.to(nk.dtype))
        return m.reshape(n, R * R), _SeparableJacobian(U, V, coef, self)

    # --- geometry: reference window pixels -> channel window pixels -------------------------------
    def _channel_xy(self, c: int, x: Tensor, y: Tensor, idx: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        ch = self.channels[c]
        org = self.origins[idx]
        if c == 0 and (ch.transform is None):
            return x, y, None
        p0 = self.channels[0].px_size_nm
        pc = ch.px_size_nm
        X = (x.double() + org[:, 0, 1]) * p0[0]
        Y = (y.double() + org[:, 0, 0]) * p0[1]
        t = ch.transform.to(device=x.device, dtype=torch.float64)
        xh = t[0, 0] * X + t[0, 1] * Y + t[0, 2]
        yh = t[1, 0] * X + t[1, 1] * Y + t[1, 2]
        w = t[2, 0] * X + t[2, 1] * Y + t[2, 2]
        xc, yc = xh / w, yh / w
        # d(xc, yc)/d(X, Y), then scaled to window pixels of both channels
        jac = torch.stack(
            [
                torch.stack([(t[0, 0] - xc * t[2, 0]) / w * p0[0] / pc[0], (t[0, 1] - xc * t[2, 1]) / w * p0[1] / pc[0]], -1),
                torch.stack([(t[1, 0] - yc * t[2, 0]) / w * p0[0] / pc[1], (t[1, 1] - yc * t[2, 1]) / w * p0[1] / pc[1]], -1),
            ],
            -2,
        )  # (n, 2, 2): rows (xc, yc), columns (x, y)
        lx = (xc / pc[0] - org[:, c, 1]).to(self.dtype)
        ly = (yc / pc[1] - org[:, c, 0]).to(self.dtype)
        return lx, ly, jac.to(self.dtype)

    def expected_photons(self, theta: Tensor, idx: Tensor) -> Tensor:
        """Expected photons ``(n, C R²)`` of the parameters ``theta`` in the windows ``idx`` (the PSFs times the
        photons plus the backgrounds), without derivatives and without the effective-count transform."""
        n, R = theta.shape[0], self.roi
        x, y = theta[:, 0], theta[:, 1]
        z = theta[:, 2] if self.is_3d else torch.zeros_like(x)
        s = theta[:, self.i_n - 1] if self.free_sigma else torch.ones_like(x)
        out = []
        for c, ch in enumerate(self.channels):
            lx, ly, _ = self._channel_xy(c, x, y, idx)
            n_c = theta[:, self.i_n] * ch.fraction if self.linked else theta[:, self.i_n + c]
            psf = ch.model.value(lx, ly, z - ch.z_offset_nm, s, R)
            out.append((n_c[:, None, None] * psf + theta[:, self.i_bg + c, None, None]).reshape(n, R * R))
        return out[0] if self.C == 1 else torch.cat(out, dim=1)

    def evaluate(self, theta: Tensor, idx: Tensor, k: list[Tensor], off: list[Tensor]) -> tuple[Tensor, Tensor | _SeparableJacobian]:
        """Expected effective counts ``m (n, C R²)`` and their Jacobian ``(n, P, C R²)`` (or its
        separable factors)."""
        if self.separable and k[0].ndim == 0 and off[0].ndim == 0:
            return self._evaluate_separable(theta, k[0], off[0])
        n = theta.shape[0]
        R = self.roi
        x, y = theta[:, 0], theta[:, 1]
        z = theta[:, 2] if self.is_3d else torch.zeros_like(x)
        s = theta[:, self.i_n - 1] if self.free_sigma else torch.ones_like(x)
        ms, js, used = [], [], []
        for c, ch in enumerate(self.channels):
            lx, ly, jac = self._channel_xy(c, x, y, idx)
            ev = ch.model(lx, ly, z - ch.z_offset_nm, s, R)
            n_c = theta[:, self.i_n] * ch.fraction if self.linked else theta[:, self.i_n + c]
            nb = n_c[:, None, None]
            mu = nb * ev.psf + theta[:, self.i_bg + c, None, None]
            kc = k[c]
            m = (kc * mu + off[c]).clamp_min(1e-6)
            # a scalar k (no per-pixel maps) is folded into the per-window factors: fewer full passes
            scalar = kc.ndim == 0
            nk = nb * kc if scalar else nb
            cols = [None] * self.P
            if jac is None:
                cols[0], cols[1] = nk * ev.d_x, nk * ev.d_y
            else:
                j = jac[:, :, :, None, None]
                cols[0] = nk * (ev.d_x * j[:, 0, 0] + ev.d_y * j[:, 1, 0])
                cols[1] = nk * (ev.d_x * j[:, 0, 1] + ev.d_y * j[:, 1, 1])
            p = 2
            if self.is_3d:
                cols[p] = nk * ev.d_z if ev.d_z is not None else torch.zeros_like(mu)
                p += 1
            if self.free_sigma:
                cols[p] = nk * ev.d_s
            fk = (ch.fraction if self.linked else 1.0) * (kc if scalar else 1.0)
            cols[self.i_n if self.linked else self.i_n + c] = ev.psf * fk
            cols[self.i_bg + c] = (kc if scalar else torch.ones((), device=mu.device, dtype=mu.dtype)).expand_as(mu)
            if self.C == 1:  # every column is this channel's (zero where z or the width is not fitted)
                zero = torch.zeros((), device=mu.device, dtype=mu.dtype).expand_as(mu)
                cols = [zero if col is None else col for col in cols]
            p_used = [p for p, col in enumerate(cols) if col is not None]
            J = torch.stack([cols[p] for p in p_used], dim=1)
            if not scalar:
                J = J * kc.unsqueeze(-3)
            ms.append(m.reshape(n, R * R))
            js.append(J.reshape(n, len(p_used), R * R))
            used.append(p_used)
        if self.C == 1:
            return ms[0], js[0]
        key = (tuple(map(tuple, used)), str(theta.device))
        if key not in self._used_idx:  # index tensors made once: a copy to a GPU each iteration would sync
            self._used_idx[key] = [torch.as_tensor(u, device=theta.device) for u in used]
        return torch.cat(ms, dim=1), _ChannelJacobians(js, self._used_idx[key], self.P)


class _SeparableJacobian:
    """The Jacobian of a separable model as its factors ``U, V (n, Q, R)`` and its terms'
    coefficients ``coef (n, T)`` (see :meth:`_Problem._sep_table`)."""

    def __init__(self, U: Tensor, V: Tensor, coef: Tensor, problem: _Problem):
        self.U, self.V, self.coef, self.p = U, V, coef, problem

    def score(self, m: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Gradient and Fisher matrix without the full Jacobian. With ``W = 1 / m`` and ``E = x / m - 1``
        on the window, term t's gradient is ``coef_t U[u_t]ᵀ E V[v_t]`` (an entry of ``U E Vᵀ``) and the
        Fisher entry of terms s, t is ``coef_s coef_t (U[u_s] U[u_t])ᵀ W (V[v_s] V[v_t])`` (an entry of
        ``(U U) W (V V)ᵀ`` over the products of factor pairs); terms are then summed into parameters."""
        p = self.p
        n, Q, R = self.U.shape
        w = (1.0 / m).reshape(n, R, R)
        e = x.reshape(n, R, R) * w - 1.0
        G = torch.bmm(torch.bmm(self.U, e), self.V.transpose(1, 2)).reshape(n, Q * Q)
        g = (G.index_select(1, p._sep_g) * self.coef) @ p._sep_M
        UU = self.U.index_select(1, p._sep_up[0]) * self.U.index_select(1, p._sep_up[1])
        VV = self.V.index_select(1, p._sep_vp[0]) * self.V.index_select(1, p._sep_vp[1])
        C = torch.bmm(torch.bmm(UU, w), VV.transpose(1, 2)).reshape(n, -1)
        cc = self.coef.index_select(1, p._sep_fa) * self.coef.index_select(1, p._sep_fb)
        return g, ((C.index_select(1, p._sep_f) * cc) @ p._sep_Mf).reshape(n, p.P, p.P)


class _ChannelJacobians:
    """The Jacobian of a multi-channel model as one block per channel: ``js[c] (n, Q_c, R²)`` holds the columns
    ``used[c]`` of the parameters, the others being zero on that channel's pixels (another channel's photons and
    background). Gradient and Fisher matrix are sums over the channels; the full ``(n, P, C R²)`` Jacobian, mostly
    zeros for four channels, is never formed."""

    def __init__(self, js: list[Tensor], used: list[Tensor], P: int):
        self.js, self.used, self.P = js, used, P

    def dense(self) -> Tensor:
        """The full ``(n, P, C R²)`` Jacobian (for tests)."""
        n, _, RR = self.js[0].shape
        out = self.js[0].new_zeros(n, self.P, len(self.js) * RR)
        for c, (J, u) in enumerate(zip(self.js, self.used)):
            out[:, u, c * RR : (c + 1) * RR] = J
        return out

    def score(self, m: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        n, RR = m.shape[0], self.js[0].shape[2]
        g = m.new_zeros(n, self.P)
        H = m.new_zeros(n, self.P, self.P)
        for c, (J, u) in enumerate(zip(self.js, self.used)):
            w = 1.0 / m[:, c * RR : (c + 1) * RR]
            e = x[:, c * RR : (c + 1) * RR] * w - 1.0
            g.index_add_(1, u, torch.bmm(J, e[:, :, None])[..., 0])
            Hc = torch.bmm(J * w[:, None, :], J.transpose(1, 2))
            H[:, u[:, None], u[None, :]] += Hc
        return g, H


def _score(J: Tensor | _SeparableJacobian | _ChannelJacobians, m: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient ``J (x / m - 1)`` and Fisher matrix ``J diag(1/m) Jᵀ`` of the Poisson log-likelihood."""
    if isinstance(J, (_SeparableJacobian, _ChannelJacobians)):
        return J.score(m, x)
    w = 1.0 / m
    g = torch.bmm(J, (x * w - 1.0)[:, :, None])[..., 0]
    H = torch.bmm(J * w[:, None, :], J.transpose(1, 2))
    return g, H


#: the effective chi-square degrees of freedom of ``spot_llr`` under background alone, by the fit's structure
#: ``(is_3d, free_sigma, several channels, linked photons)``: measured on pure-noise windows fitted as the pipeline fits
#: them (the default window, start at the window's centre; EMCCD and sCMOS, 2-100 photons/px: the camera and the level
#: change it by less than the seeds do), matched at the 1 % tail (bench/spot_significance42.py). Not a textbook
#: count: the position of a spot that is not there is not identified, and the photons are bounded below; the measured
#: values lie 0.9-2 above the spot's parameters (x, y, photons: 3 -> 4.0; x, y, z, photons: 4 -> 4.85; with the
#: free width 4 -> 6.0; two linked channels, 3D: 4 -> 5.5; two free-photon channels, 3D: 5 -> 6.8)
SPOT_NULL_DOF: dict[tuple[bool, bool, bool, bool], float] = {
    (False, False, False, True): 4.0,
    (True, False, False, True): 4.85,
    (False, True, False, True): 6.0,
    (True, False, True, True): 5.5,
    (True, False, True, False): 6.8,
}
_SPOT_NULL_DOF_EXTRA = 1.5  # a structure not measured: the spot's parameters plus this


def spot_null_dof(*, is_3d: bool, free_sigma: bool = False, n_channels: int = 1, linked: bool = True) -> float:
    """The effective degrees of freedom of ``spot_llr``'s null distribution (:data:`SPOT_NULL_DOF`; a structure not
    measured there: the number of the spot's parameters plus 1.5)."""
    key = (bool(is_3d), bool(free_sigma), n_channels > 1, bool(linked) or n_channels == 1)
    if key in SPOT_NULL_DOF:
        return SPOT_NULL_DOF[key]
    n_spot = 2 + int(is_3d) + int(free_sigma) + (1 if key[3] else n_channels)
    return n_spot + _SPOT_NULL_DOF_EXTRA


def spot_pvalue(spot_llr: Tensor, *, is_3d: bool, free_sigma: bool = False, n_channels: int = 1,
                linked: bool = True) -> Tensor:
    """The false-alarm p-value of the detection statistic ``spot_llr`` (:attr:`FitResult.spot_llr`): the probability
    that a window of background alone, fitted the same way, gives a ``spot_llr`` at least this large. The chi-square
    tail with the measured effective degrees of freedom (:func:`spot_null_dof`), ``Q(d / 2, spot_llr / 2)``; 1 at
    ``spot_llr`` 0. Float64, on ``spot_llr``'s device."""
    d = spot_null_dof(is_3d=is_3d, free_sigma=free_sigma, n_channels=n_channels, linked=linked)
    t = spot_llr.double().clamp_min(0.0)
    return torch.special.gammaincc(torch.full_like(t, d / 2.0), t / 2.0)


def background_only_fit(x_eff: Tensor, k: Sequence[Tensor | float], off: Sequence[Tensor | float], n_channels: int, *,
                        newton_steps: int = 40, stop_early: bool | None = None) -> tuple[Tensor, Tensor]:
    """The background-only model's maximum likelihood on the effective counts the fit uses: per channel one constant
    background ``b`` (photons/px) with ``m0 = k b + offset`` on every pixel (the spot model's ``m`` without the
    spot), maximising ``sum(x log m0 - m0)``.

    Args:
        x_eff: ``(n, C R²)`` effective counts ``k d + offset`` (unclamped, as the fit maximises them).
        k, offset: one per channel, scalars or per-pixel maps broadcastable to ``(n, R, R)`` (:func:`noise_terms`).
        newton_steps: the most Newton steps of a channel with per-pixel maps.
        stop_early: stop the steps once every window's last step was below ``1e-10 b`` (read by the host after each
            step); default: on the CPU, where that read costs nothing, and not on an accelerator, where it would
            synchronise the host with the device once per step: there all ``newton_steps`` are taken.
    Returns:
        ``b (n, C)`` (float64, at least the fitter's background bound ``1e-4``) and the log-likelihood
        ``sum(x log m0 - m0) (n,)`` (float64, without the data's ``log x!`` terms).

    Scalar ``k``, ``offset``: the closed form ``b = (mean(x) - offset) / k``, clamped at the bound. Per-pixel maps:
    Newton steps on the score ``sum k (x / m0 - 1)``, all windows at once (from the left of the root they rise to it
    monotonically for the concave likelihood of counts >= 0; a step down is bounded to a third, as the fitter's). A
    window at its maximum stays there (its further steps are below the rounding of ``b``), so the steps taken without
    the test give the same backgrounds to rounding; the slowest windows measured needed 21 steps (0.01-5 photons/px beside
    a neighbour's known light in :mod:`plexloc.mle.refine`; 30 e- read-noise pixels at 0.01 photons/px: 14). Taking
    all 40 on the CPU too (as batched products) made this function 1.5-6x slower (300-10,000 windows) and the fit of a
    CPU sCMOS movie 8-11 % slower (bench/mle_scmos_timing43.py)."""
    n = x_eff.shape[0]
    RR = x_eff.shape[1] // max(n_channels, 1)
    R = int(round(RR**0.5))
    x = x_eff.double()
    if stop_early is None:
        stop_early = x.device.type == "cpu"
    bs, ll = [], torch.zeros(n, dtype=torch.float64, device=x.device)
    for c in range(n_channels):
        xc = x[:, c * RR:(c + 1) * RR]
        kc = torch.as_tensor(k[c], device=x.device, dtype=torch.float64)
        oc = torch.as_tensor(off[c], device=x.device, dtype=torch.float64)
        kc = kc.broadcast_to((n, R, R)).reshape(n, RR) if kc.numel() > 1 else kc.reshape(())
        oc = oc.broadcast_to((n, R, R)).reshape(n, RR) if oc.numel() > 1 else oc.reshape(())
        if kc.ndim == 0 and oc.ndim == 0:
            b = ((xc.mean(dim=1) - oc) / kc).clamp_min(_BG_MIN)
        else:
            kk, oo = kc.expand_as(xc), oc.expand_as(xc)
            b = ((xc - oo).sum(dim=1) / kk.sum(dim=1)).clamp_min(_BG_MIN)
            for _ in range(newton_steps):
                m0 = (kk * b[:, None] + oo).clamp_min(1e-6)
                g = (kk * (xc / m0 - 1.0)).sum(dim=1)
                h = (kk * kk * xc.clamp_min(0) / (m0 * m0)).sum(dim=1)  # minus the observed curvature
                h = torch.maximum(h, (kk * kk / m0).sum(dim=1) * 1e-3)  # no counts: a small Fisher curvature
                step = g / h
                b_new = torch.maximum(b + step, b / 3).clamp_min(_BG_MIN)
                if stop_early:
                    done = (b_new - b).abs() <= 1e-10 * b.abs() + 1e-12
                    b = b_new
                    if bool(done.all()):
                        break
                else:
                    b = b_new
        m0 = (kc * b[:, None] + oc).clamp_min(1e-6).expand_as(xc)
        ll = ll + (xc * torch.log(m0) - m0).sum(dim=1)
        bs.append(b)
    return torch.stack(bs, dim=1) if bs else x.new_zeros(n, 0), ll


def _starts(
    rois: list[Tensor], fractions: list[float], *, linked: bool, centre: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Start values: background = median of each window's border, photons = the background-subtracted
    sum, position = centroid of channel 0's background-subtracted 5 x 5 pixels around ``centre``
    ((n, 2) row, col; default the window's centre)."""
    bgs, ns = [], []
    for r in rois:
        border = torch.cat([r[:, 0, :], r[:, -1, :], r[:, 1:-1, 0], r[:, 1:-1, -1]], dim=1)
        bg = border.median(dim=1).values.clamp_min(0.1)
        bgs.append(bg)
        ns.append((r - bg[:, None, None]).sum(dim=(1, 2)).clamp_min(10.0))
    r0 = (rois[0] - bgs[0][:, None, None]).clamp_min(0)
    n_win, R = r0.shape[0], r0.shape[-1]
    h = 2
    if centre is None:
        centre = torch.full((n_win, 2), R // 2, dtype=torch.int64, device=r0.device)
    centre = centre.to(r0.device).long().clamp(h, R - 1 - h)
    off = torch.arange(-h, h + 1, device=r0.device)
    rows = (centre[:, 0, None] + off)[:, :, None].expand(n_win, 2 * h + 1, 2 * h + 1)
    cols = (centre[:, 1, None] + off)[:, None, :].expand(n_win, 2 * h + 1, 2 * h + 1)
    core = r0[torch.arange(n_win, device=r0.device)[:, None, None], rows, cols]
    w = core.sum(dim=(1, 2)).clamp_min(1e-6)
    offf = off.to(r0.dtype)
    x = centre[:, 1].to(r0.dtype) + 0.5 + (core.sum(dim=1) * offf).sum(dim=1) / w
    y = centre[:, 0].to(r0.dtype) + 0.5 + (core.sum(dim=2) * offf).sum(dim=1) / w
    n = torch.stack(ns, 1)
    if linked:
        n = (n.sum(dim=1) / max(sum(fractions), 1e-6))[:, None]
    return torch.stack([x, y], 1), n, torch.stack(bgs, 1)


def fit_rois(
    rois: Sequence[Tensor],
    channels: Sequence[FitChannel],
    *,
    origins: Tensor,
    k: Sequence[Tensor | float] | None = None,
    offset: Sequence[Tensor | float] | None = None,
    linked: bool = True,
    z_starts_nm: Sequence[float] | None = None,
    z_range_nm: tuple[float, float] | None = None,
    start_pixel: Tensor | None = None,
    start_xy: Tensor | None = None,
    start_z_nm: Tensor | None = None,
    max_iter: int = 30,
    tol: float = 1e-4,
    pre_iter: int = 6,
    batch_size: int | None = None,
) -> FitResult:
    """Maximum-likelihood fit of one emitter per window.

    Args:
        rois: one ``(N, R, R)`` tensor per channel, data in photons (``camera.to_photons``).
        channels: one :class:`FitChannel` per channel (channel 0 is the reference).
        origins: ``(N, C, 2)`` int, the frame pixel (row, col) of every window's top-left pixel.
        k, offset: effective-count transform per channel (see :func:`noise_terms`), scalars or
            tensors broadcastable to ``(N, R, R)`` (per-pixel sCMOS maps cut to the windows). Default:
            pure Poisson (k = 1, offset = 0).
        linked: one photon count split by ``channel.fraction`` (else a free count per channel).
        z_starts_nm: start values of z for 3D models (each window is fitted from every start, the
            best likelihood wins); default -300, 0, 300 nm clipped into ``z_range_nm``.
        z_range_nm: bounds of z (default: the models' own range, else +-1000 nm).
        start_pixel: optional ``(N, 2)`` (row, col) of each spot's pixel in channel 0's window (the start
            position is the centroid around it; default the window's centre).
        start_xy: optional ``(N, 2)`` start position (x, y) in channel 0's window pixels (e.g. another
            localizer's estimate, :mod:`plexloc.mle.refine`); replaces the centroid start.
        start_z_nm: optional ``(N,)`` start z of a 3D fit (clipped into the bounds); replaces ``z_starts_nm``
            (one start per window).
        max_iter: iteration limit; tol: convergence threshold on the Newton decrement (the squared
            step in units of the statistical error); pre_iter: iterations from every z start before
            only the best start goes on.
        batch_size: windows fitted at a time (memory); default: Jacobians of about 200 MB.
    """
    with torch.no_grad():
        return _fit_rois(rois, channels, origins=origins, k=k, offset=offset, linked=linked, z_starts_nm=z_starts_nm,
                         z_range_nm=z_range_nm, start_pixel=start_pixel, start_xy=start_xy, start_z_nm=start_z_nm,
                         max_iter=max_iter, tol=tol, pre_iter=pre_iter, batch_size=batch_size)


def _fit_rois(rois, channels, *, origins, k, offset, linked, z_starts_nm, z_range_nm, start_pixel, start_xy, start_z_nm,
              max_iter, tol, pre_iter, batch_size) -> FitResult:
    C = len(channels)
    if len(rois) != C:
        raise ValueError(f"{len(rois)} sets of windows for {C} channels")
    n_all = int(rois[0].shape[0])
    device, dtype = rois[0].device, rois[0].dtype if rois[0].is_floating_point() else torch.float32
    R = int(rois[0].shape[-1])
    k = list(k) if k is not None else [1.0] * C
    offset = list(offset) if offset is not None else [0.0] * C
    problem = _Problem(channels, R, linked=linked, origins=origins.to(device), device=device, dtype=dtype)
    lo, hi = z_range_nm if z_range_nm is not None else (-1000.0, 1000.0)
    for ch in channels:
        zl, zh = ch.model.z_range_nm()
        lo, hi = max(lo, zl + ch.z_offset_nm), min(hi, zh + ch.z_offset_nm)
    z_starts = [0.0] if not problem.is_3d else list(z_starts_nm if z_starts_nm is not None else (-300.0, 0.0, 300.0))
    if problem.is_3d and start_z_nm is not None:  # one given start per window (set in _fit_batch)
        z_starts = [0.0]
    z_starts = [min(max(z, lo + 1.0), hi - 1.0) for z in z_starts] if problem.is_3d else z_starts
    if batch_size is None:
        batch_size = max(1024, int(2e8 / (4 * len(z_starts) * problem.P * C * R * R)))
    results = []
    for s0 in range(0, max(n_all, 1), batch_size) if n_all else []:
        sl = slice(s0, min(s0 + batch_size, n_all))
        results.append(
            _fit_batch(
                problem,
                [r[sl].to(dtype) for r in rois],
                torch.arange(sl.start, sl.stop, device=device),
                [_cut(v, sl, device, dtype) for v in k],
                [_cut(v, sl, device, dtype) for v in offset],
                z_starts=z_starts,
                z_bounds=(lo, hi),
                start_pixel=None if start_pixel is None else start_pixel[sl],
                start_xy=None if start_xy is None else start_xy[sl].to(device, dtype),
                start_z_nm=None if start_z_nm is None or not problem.is_3d else start_z_nm[sl].to(device, dtype),
                max_iter=max_iter,
                tol=tol,
                pre_iter=pre_iter,
            )
        )
    return _collect(problem, results, n_all, device)


def _cut(v, sl: slice, device, dtype) -> Tensor:
    t = torch.as_tensor(v, device=device, dtype=dtype)
    return t[sl] if t.ndim == 3 else t


def _fit_batch(
    problem: _Problem, rois, idx, k, off, *, z_starts, z_bounds, start_pixel, max_iter, tol, pre_iter, start_xy=None,
    start_z_nm=None
) -> dict:
    n = rois[0].shape[0]
    K = len(z_starts)
    device, dtype = rois[0].device, rois[0].dtype
    # effective counts, not clamped at 0: the score J (x / m - 1) is linear in x, so the fit is unbiased wherever
    # E[x] = m, negative readings (read noise on an empty pixel) included; clamping them lifted the mean of x above m
    # and biased the background up (+11 % at 0.5 photons/px on an EMCCD, +5 % on an sCMOS of 1.5 e- read noise).
    # The goodness-of-fit statistics (llr, loglik) are those of Poisson counts and take the clamped values.
    x_eff = torch.cat([(kc * r + oc).reshape(n, -1) for r, kc, oc in zip(rois, k, off)], dim=1)
    xy0, n0, bg0 = _starts(rois, [ch.fraction for ch in problem.channels], linked=problem.linked, centre=start_pixel)
    if start_xy is not None:
        xy0 = start_xy.clamp(0.0, float(problem.roi))
    parts = [xy0]
    if problem.is_3d:
        parts.append(torch.zeros(n, 1, device=device, dtype=dtype))
    if problem.free_sigma:
        parts.append(torch.ones(n, 1, device=device, dtype=dtype))
    theta0 = torch.cat(parts + [n0, bg0], dim=1)
    # replicate over the z starts: row r*K + j is window r from start j
    theta = theta0.repeat_interleave(K, dim=0)
    if problem.is_3d and start_z_nm is not None:
        theta[:, 2] = start_z_nm.clamp(z_bounds[0] + 1.0, z_bounds[1] - 1.0)
    elif problem.is_3d:
        theta[:, 2] = torch.tensor(z_starts, device=device, dtype=dtype).repeat(n)
    rep = torch.arange(n, device=device).repeat_interleave(K)
    x_all = x_eff[rep] if K > 1 else x_eff
    k_all = [kc[rep] if kc.ndim == 3 else kc for kc in k]
    o_all = [oc[rep] if oc.ndim == 3 else oc for oc in off]
    gidx = idx[rep]

    def evaluate(th: Tensor, sel: Tensor) -> tuple[Tensor, Tensor]:
        return problem.evaluate(
            th, gidx[sel], [kc[sel] if kc.ndim == 3 else kc for kc in k_all], [oc[sel] if oc.ndim == 3 else oc for oc in o_all]
        )

    everyone = torch.arange(theta.shape[0], device=device)
    n_rows = theta.shape[0]
    m, J = evaluate(theta, everyone)
    g, H = _score(J, m, x_all)
    del J
    lam = torch.full((theta.shape[0],), 1e-3, device=device, dtype=dtype)
    iters = torch.zeros(theta.shape[0], dtype=torch.int64, device=device)
    converged = torch.zeros(theta.shape[0], dtype=torch.bool, device=device)
    prev = torch.zeros_like(theta)  # last accepted step, to notice oscillation
    R = problem.roi
    i_n, i_bg = problem.i_n, problem.i_bg

    def run(active: Tensor, n_iter: int) -> Tensor:
        """Levenberg-Marquardt iterations on the rows ``active``; returns the rows still running."""
        nonlocal m, theta, g, H, lam, iters, converged, prev
        for _ in range(n_iter):
            if active.numel() == 0:
                break
            full = active.numel() == n_rows  # every row still running: views instead of gathers
            Ha, ga, th, la = (H, g, theta, lam) if full else (H[active], g[active], theta[active], lam[active])
            diag = torch.diagonal(Ha, dim1=1, dim2=2)
            A = Ha + torch.diag_embed((la[:, None] + 1e-6) * diag + 1e-20)
            if problem.is_3d:
                # z on a bound with the likelihood rising outwards: held there (active set), the step and
                # the convergence test are those of the other parameters
                zc, gz = th[:, 2], ga[:, 2]
                pin = ((zc <= z_bounds[0] + 1e-3) & (gz < 0)) | ((zc >= z_bounds[1] - 1e-3) & (gz > 0))
                if bool(pin.any()):
                    ga = ga.clone()
                    ga[pin, 2] = 0.0
                    A[pin, 2, :] = 0.0
                    A[pin, :, 2] = 0.0
                    A[pin, 2, 2] = 1.0
            delta = torch.nan_to_num(torch.linalg.solve_ex(A, ga[:, :, None])[0][..., 0])
            step = (delta * ga).sum(dim=1)
            # converged already: the (nearly undamped) next step is below tol; no evaluation needed
            small = (step.abs() < tol) & (la <= 1e-2)
            if bool(small.any()):
                converged[active[small]] = True
                rest = ~small
                active, delta, th, ga, step, la = active[rest], delta[rest], th[rest], ga[rest], step[rest], la[rest]
                full = False
                if active.numel() == 0:
                    break
            new = th + delta
            # bounded steps
            new[:, :2] = torch.maximum(torch.minimum(new[:, :2], th[:, :2] + 1.0), th[:, :2] - 1.0).clamp(
                -_XY_MARGIN_PX, R + _XY_MARGIN_PX)
            p = 2
            if problem.is_3d:
                new[:, p] = torch.maximum(torch.minimum(new[:, p], th[:, p] + 150.0), th[:, p] - 150.0).clamp(*z_bounds)
                p += 1
            if problem.free_sigma:
                new[:, p] = torch.maximum(torch.minimum(new[:, p], th[:, p] + 0.2), th[:, p] - 0.2).clamp(*_WIDTH_RANGE)
            new[:, i_n:i_bg] = torch.maximum(new[:, i_n:i_bg], th[:, i_n:i_bg] / 3).clamp_min(_PHOTONS_MIN)
            new[:, i_bg:] = torch.maximum(new[:, i_bg:], th[:, i_bg:] / 3).clamp_min(_BG_MIN)
            m_new, J_new = evaluate(new, active)
            m_old = m if full else m[active]
            xa = x_all if full else x_all[active]
            dll = (xa * torch.log(m_new / m_old) - (m_new - m_old)).sum(dim=1)
            better = dll >= 0
            g_new, H_new = _score(J_new, m_new, xa)
            all_better = bool(better.all())
            acc = active if all_better else active[better]
            pick = (lambda t: t) if all_better else (lambda t: t[better])  # noqa: E731
            if full and all_better:
                theta, m, g, H = new, m_new, g_new, H_new
            else:
                theta[acc] = pick(new)
                m[acc] = pick(m_new)
                g[acc] = pick(g_new)
                H[acc] = pick(H_new)
            # an accepted step that reverses the previous one (Fisher scoring overshooting where the
            # model fits badly) raises the damping instead of lowering it
            pa = prev if full else prev[active]
            cos = (delta * pa).sum(1) / (delta.norm(dim=1) * pa.norm(dim=1) + 1e-30)
            lam_new = torch.where(better, torch.where(cos < -0.5, la * 4.0, (la * 0.1).clamp_min(1e-7)), la * 10.0)
            # converged: the step was below tol, or it raised the log-likelihood by less than tol / 2
            # (for a quadratic likelihood the same Fisher-metric size; it ends slow, flat-valley crawls)
            ok = better & ((step.abs() < tol) | (dll < 0.5 * tol))
            if full:
                lam, iters = lam_new, iters + 1
                prev = torch.where(better[:, None], delta, prev)
                converged |= ok
            else:
                lam[active] = lam_new
                prev[acc] = pick(delta)
                iters[active] += 1
                converged[active] |= ok
            active = active[~(ok | (la > 1e5))]
        return active

    if K > 1:  # a few iterations from every z start, then only the best start goes on
        still = run(everyone, pre_iter)
        ll = (x_all * torch.log(m) - m).sum(dim=1)
        best = ll.reshape(n, K).argmax(dim=1) + torch.arange(n, device=device) * K
        keep = torch.zeros_like(converged)
        keep[still] = True
        run(best[keep[best]], max_iter - pre_iter)
    else:
        best = everyone
        run(everyone, max_iter)
    m_b, x_b = m[best], x_all[best].clamp_min(0)
    ratio = torch.where(x_b > 0, x_b * torch.log(x_b.clamp_min(1e-30) / m_b), torch.zeros_like(x_b))
    llr = 2.0 * (ratio - (x_b - m_b)).sum(dim=1)
    loglik = (x_b * torch.log(m_b) - m_b - torch.lgamma(x_b + 1.0)).sum(dim=1)
    # the convergence test above is met by a fit held on a bound (the step clipped to nothing): a parameter on a
    # bound of the fitter's making is no maximum of the likelihood, and such a fit is not converged
    cov = _inverse_fisher(H[best])  # the CRLB's (_collect) and the bounds' (once per fit)
    at_bound = bounds_hit(theta[best], problem, z_bounds, cov=cov)
    # detection statistic: the spot model's maximum against the background-only model's, on the objective both
    # maximise (the unclamped effective counts)
    bg_only, ll_bg = background_only_fit(x_eff, k, off, problem.C)
    spot_llr_raw = 2.0 * ((x_eff.double() * torch.log(m_b.double())).sum(dim=1) - m_b.double().sum(dim=1) - ll_bg)
    return {
        "theta": theta[best],
        "loglik": loglik,
        "llr": llr,
        "iterations": iters[best],
        "converged": converged[best] & ((at_bound & NOT_CONVERGED_BOUNDS) == 0),
        "lm_converged": converged[best],
        "at_bound": at_bound,
        "cov": cov,
        "spot_llr_raw": spot_llr_raw,
        "bg_only": bg_only,
        "idx": idx,
    }


def _collect(problem: _Problem, results: list[dict], n_all: int, device) -> FitResult:
    C, P = problem.C, problem.P
    cat = lambda key, shape: (  # noqa: E731
        torch.cat([r[key] for r in results]).cpu() if results else torch.zeros(shape)
    )
    theta = cat("theta", (0, P)).double()
    idx = cat("idx", (0,)).long()
    origins = problem.origins.cpu()[idx] if n_all else torch.zeros(0, C, 2, dtype=torch.int64)
    px = problem.channels[0].px_size_nm
    x_nm = (theta[:, 0] + origins[:, 0, 1].double()) * px[0]
    y_nm = (theta[:, 1] + origins[:, 0, 0].double()) * px[1]
    z_nm = theta[:, 2] if problem.is_3d else torch.zeros_like(x_nm)
    sigma_scale = theta[:, problem.i_n - 1] if problem.free_sigma else None
    fr = torch.tensor([ch.fraction for ch in problem.channels], dtype=torch.float64)
    if problem.linked:
        photons = theta[:, problem.i_n] * (fr.sum() if C > 1 else 1.0)
        photons_ch = theta[:, problem.i_n, None] * fr[None, :]
    else:
        photons_ch = theta[:, problem.i_n : problem.i_n + C]
        photons = photons_ch.sum(dim=1)
    bg_ch = theta[:, problem.i_bg :]
    spot_raw = cat("spot_llr_raw", (0,)).double()
    spot_llr = spot_raw.clamp_min(0.0)
    # CRLB: inverse Fisher information at the fit (robust to a singular matrix), computed with the fit
    cov = cat("cov", (0, P, P)).double()
    var = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0)
    crlb = {"x_nm": var[:, 0].sqrt() * px[0], "y_nm": var[:, 1].sqrt() * px[1]}
    crlb["z_nm"] = var[:, 2].sqrt() if problem.is_3d else torch.full_like(x_nm, float("nan"))
    at_bound = cat("at_bound", (0,)).long()
    # a z held on its bound is no estimate: the emitter's z is at or beyond the bound by an unknown distance (or a
    # neighbour's light pulled it there), and the Fisher information at the bound does not bound that error. Measured
    # (bench/mle3d50.py, 3D astigmatic, fit range +-500 nm, emitters over +-600 nm): the rows on the z bound whose
    # true z was inside the range had z errors 5-8 times their CRLB (rms), the rows off it 1.5-3.9. Their crlb_z_nm
    # is NaN (not a small number read as a good z); extra["crlb_z_held"] keeps the bound's value at the bound.
    crlb_z_held = crlb["z_nm"]
    if problem.is_3d:
        crlb["z_nm"] = torch.where((at_bound & AT_BOUND_BITS["z"]) != 0, float("nan"), crlb_z_held)
    if problem.linked:
        crlb["photons"] = var[:, problem.i_n].sqrt() * (fr.sum() if C > 1 else 1.0)
    else:
        blk = cov[:, problem.i_n : problem.i_n + C, problem.i_n : problem.i_n + C]
        crlb["photons"] = blk.sum(dim=(1, 2)).clamp_min(0).sqrt()
        for c in range(C):
            crlb[f"photons_ch{c}"] = var[:, problem.i_n + c].sqrt()
    for c in range(C):
        crlb[f"bg_ch{c}"] = var[:, problem.i_bg + c].sqrt()
    crlb["bg"] = crlb["bg_ch0"]
    if problem.free_sigma:
        crlb["s"] = var[:, problem.i_n - 1].sqrt()
    return FitResult(
        x_nm=x_nm,
        y_nm=y_nm,
        z_nm=z_nm,
        photons=photons,
        photons_ch=photons_ch,
        bg_ch=bg_ch,
        sigma_scale=sigma_scale,
        crlb=crlb,
        loglik=cat("loglik", (0,)).double(),
        llr=cat("llr", (0,)).double(),
        iterations=cat("iterations", (0,)).long(),
        converged=cat("converged", (0,)).bool(),
        n_pixels=C * problem.roi**2,
        n_params=P,
        at_bound=at_bound,
        spot_llr=spot_llr,
        p_spot=spot_pvalue(spot_llr, is_3d=problem.is_3d, free_sigma=problem.free_sigma, n_channels=C,
                           linked=problem.linked),
        extra={"lm_converged": cat("lm_converged", (0,)).bool(), "spot_llr_raw": spot_raw,
               "bg_only": cat("bg_only", (0, C)).double(), "crlb_z_held": crlb_z_held},
    )
