"""The localizer: frame U-Nets over a temporal window, a union U-Net, per-pixel output heads.

Data flow for C channels and a window of T frames, all in one forward pass:

    input (B, T, C, H, W) photons  --normalise per channel-->  frame U-Net of channel c, shared over
    the T frames (plus ``n_aux`` auxiliary maps, e.g. a channel-transformation indicator)
    --> features (B, C*T*F, H, W) --> union U-Net --> heads (3x3 conv, ELU, 1x1 conv) per quantity.

Outputs per pixel (see :class:`Prediction`): detection probability; photons (one total, or one per
channel); x, y offsets from the pixel centre (pixels) and z (nm) of the reference channel; a 1-sigma
uncertainty for each of these; background per channel. Everything the network needs to be rebuilt
(architecture and output scales) is in :class:`LocalizerSpec`, stored with the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import Tensor, nn

from plexloc.nets.unet import InferenceELU, UNet

#: largest predicted sigma in units of each quantity's scale (pixels for x/y)
SIGMA_MAX = 3.0
SIGMA_MIN = 1e-3


@dataclass
class LocalizerSpec:
    """Architecture and output scaling of a :class:`Localizer` (JSON-safe; saved in checkpoints).

    Attributes:
        n_channels: camera channels C. ``n_photons``: photon outputs (1 = total, linked; C = per channel).
        window: frames per prediction (odd). ``n_aux``: extra input maps fed to every net.
        features, depth, union_features, union_depth: U-Net sizes.
        up_kernel, out_kernel: kernels of both U-Nets' up-sampling and output convolutions
            (:class:`~plexloc.nets.unet.UNet`; 3 and 3 for models saved before 2026-12-04).
        px_size_nm: (x, y) pixel size of the reference channel.
        z_center_nm, z_scale_nm: z = z_center + z_scale * tanh(.) ; ``is_3d`` False: z is not predicted.
        photon_scale, bg_scale: photons = photon_scale * sigmoid(.), bg = bg_scale * sigmoid(.).
        input_offset, input_scale: per-channel normalisation of the input photons.
        bg_loss_scale: per channel, the background error (photons/px) that costs 1 in the training loss: the spread
            of the training background (:func:`plexloc.train.trainer.make_spec`). ``None`` (models from before
            2026-12-03): ``bg_scale``, a weight so small that the background head learnt nothing.
    """

    n_channels: int = 1
    n_photons: int = 1
    window: int = 3
    n_aux: int = 0
    features: int = 48
    depth: int = 2
    union_features: int = 48
    union_depth: int = 2
    up_kernel: int = 3
    out_kernel: int = 3
    px_size_nm: tuple[float, float] = (100.0, 100.0)
    is_3d: bool = False
    z_center_nm: float = 0.0
    z_scale_nm: float = 1.0
    photon_scale: float = 10000.0
    bg_scale: float = 200.0
    input_offset: list[float] = field(default_factory=lambda: [0.0])
    input_scale: list[float] = field(default_factory=lambda: [1.0])
    bg_loss_scale: list[float] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["px_size_nm"] = list(d["px_size_nm"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LocalizerSpec:
        """The spec of a saved model; fields it lacks (an older plexloc's) take their defaults above. A field this
        version does not know (a newer plexloc's architecture option) raises ValueError naming it."""
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"the network has settings this plexloc does not know ({', '.join(unknown)}): it was "
                             "saved by a newer plexloc; update plexloc to use it")
        if "px_size_nm" in d:
            d["px_size_nm"] = tuple(d["px_size_nm"])
        return cls(**d)


@dataclass
class Prediction:
    """Per-pixel outputs, all (B, n, H, W) float32.

    ``prob`` (n=1); ``photons`` (n_photons); ``offset`` (3: x, y in pixels from the pixel centre, z in nm
    absolute); ``sigma`` (3 + n_photons: x, y in pixels, z in nm, photons); ``bg`` (n_channels, photons/px).
    """

    prob: Tensor
    photons: Tensor
    offset: Tensor
    sigma: Tensor
    bg: Tensor
    logit: Tensor | None = None


def _head(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1), InferenceELU(), nn.Conv2d(c_in, c_out, 1))


class Localizer(nn.Module):
    """See the module docstring. ``forward`` takes photons, (B, T, C, H, W), and optional auxiliary
    maps (B, n_aux, H, W), of any H and W (:class:`~plexloc.nets.unet.UNet`)."""

    def __init__(self, spec: LocalizerSpec):
        super().__init__()
        self.spec = spec
        s = spec
        self.frame_nets = nn.ModuleList(
            UNet(1 + s.n_aux, s.features, features=s.features, depth=s.depth, up_kernel=s.up_kernel,
                 out_kernel=s.out_kernel) for _ in range(s.n_channels)
        )
        self.union = UNet(
            s.n_channels * s.window * s.features + s.n_aux, s.union_features, features=s.union_features,
            depth=s.union_depth, up_kernel=s.up_kernel, out_kernel=s.out_kernel,
        )
        f = s.union_features
        self.head_prob = _head(f, 1)
        self.head_photons = _head(f, s.n_photons)
        self.head_offset = _head(f, 3)
        self.head_sigma = _head(f, 3 + s.n_photons)
        self.head_bg = _head(f, s.n_channels)
        self.register_buffer("input_offset", torch.tensor(s.input_offset, dtype=torch.float32).view(1, 1, -1, 1, 1))
        self.register_buffer("input_scale", torch.tensor(s.input_scale, dtype=torch.float32).view(1, 1, -1, 1, 1))
        with torch.no_grad():  # start with few detections (a sparse prior, as in detection networks)
            self.head_prob[-1].bias.fill_(-4.0)

    def channels_last_(self, enabled: bool = True) -> Localizer:
        """Put every convolution's weights in the channels-last (NHWC) memory format, in place (their
        outputs follow); the 5D input buffers stay as they are. ``enabled=False``: back to the contiguous
        (NCHW) format. The values, and so the state dict, are the same either way."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.to(memory_format=fmt)
        return self

    @property
    def is_channels_last(self) -> bool:
        """Whether the convolutions' weights are in the channels-last format (:meth:`channels_last_`)."""
        w = self.union.down[0][0].weight
        return w.dim() == 4 and w.shape[1] > 1 and w.is_contiguous(memory_format=torch.channels_last)

    def forward(self, photons: Tensor, aux: Tensor | None = None) -> Tensor:
        """Raw head outputs (B, 1 + P + 3 + 3 + P + C, H, W) before the output non-linearities."""
        b, t, c, h, w = photons.shape
        s = self.spec
        if t != s.window or c != s.n_channels:
            raise ValueError(f"expected input (B, {s.window}, {s.n_channels}, H, W), got {tuple(photons.shape)}")
        frame_aux = aux if aux is None or aux.shape[0] == 1 else aux.repeat_interleave(t, dim=0)  # (1 or B*T, ...)
        feats = self.frame_features(photons.reshape(b * t, c, h, w), frame_aux)
        return self.union_forward(feats.reshape(b, t, *feats.shape[1:]), aux)

    def frame_features(self, frames: Tensor, aux: Tensor | None = None) -> Tensor:
        """The frame U-Nets alone: photons (N, C, H, W) of N frames -> features (N, C, F, H, W).

        A frame's features do not depend on the window it sits in, so a movie's frames can go through this
        once each (:meth:`plexloc.infer.Predictor.localize_frames`) instead of once per window."""
        n, c, h, w = frames.shape
        s = self.spec
        if c != s.n_channels:
            raise ValueError(f"expected frames (N, {s.n_channels}, H, W), got {tuple(frames.shape)}")
        x = (frames - self.input_offset[0]) / self.input_scale[0]
        feats = []
        for ci, net in enumerate(self.frame_nets):
            xc = x[:, ci : ci + 1]
            if s.n_aux:
                xc = torch.cat([xc, aux.expand(n, -1, -1, -1)], dim=1)
            feats.append(net(xc))
        return torch.stack(feats, dim=1)

    def union_forward(self, feats: Tensor, aux: Tensor | None = None) -> Tensor:
        """The union U-Net and the heads on windows of frame features (B, T, C, F, H, W) -> raw outputs."""
        b, t, c, f, h, w = feats.shape
        if feats.stride(3) == 1 and f > 1:  # channels-last features: gathered as NHWC, one copy (not two)
            u_in = feats.permute(0, 4, 5, 2, 1, 3).reshape(b, h, w, c * t * f).permute(0, 3, 1, 2)
        else:
            u_in = feats.transpose(1, 2).reshape(b, c * t * f, h, w)  # channel-major, then time, then feature
        if self.spec.n_aux:
            u_in = torch.cat([u_in, aux.expand(b, -1, -1, -1).to(u_in.dtype)], dim=1)
        u = self.union(u_in)
        return torch.cat(
            [self.head_prob(u), self.head_photons(u), self.head_offset(u), self.head_sigma(u), self.head_bg(u)], dim=1
        )

    def decode(self, raw: Tensor) -> Prediction:
        """Apply the output non-linearities and scales (float32)."""
        s = self.spec
        raw = raw.float()
        p = s.n_photons
        logit, phot, off, sig, bg = torch.split(raw, [1, p, 3, 3 + p, s.n_channels], dim=1)
        offset = torch.tanh(off)
        z = s.z_center_nm + s.z_scale_nm * offset[:, 2:3] if s.is_3d else torch.full_like(offset[:, 2:3], s.z_center_nm)
        sigma_unit = torch.sigmoid(sig) * SIGMA_MAX + SIGMA_MIN
        scales = torch.tensor([1.0, 1.0, s.z_scale_nm] + [s.photon_scale] * p, device=raw.device).view(1, -1, 1, 1)
        return Prediction(
            prob=torch.sigmoid(logit),
            photons=torch.sigmoid(phot) * s.photon_scale,
            offset=torch.cat([offset[:, :2], z], dim=1),
            sigma=sigma_unit * scales,
            bg=torch.sigmoid(bg) * s.bg_scale,
            logit=logit,
        )

    def predict(self, photons: Tensor, aux: Tensor | None = None) -> Prediction:
        return self.decode(self(photons, aux))

