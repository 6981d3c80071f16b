"""A plain 2D U-Net with ELU activations (the backbone of the DECODE family)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


#: ELUs overwrite their input where no gradient is recorded (:class:`InferenceELU`); False: out of place always
#: (the same values; for benchmarks of the difference)
ELU_IN_PLACE_IN_INFERENCE = True


def _elu_in_place() -> bool:
    return ELU_IN_PLACE_IN_INFERENCE and not torch.is_grad_enabled()


class InferenceELU(nn.ELU):
    """ELU that overwrites its input where no gradient is recorded (inference): the same values, without a second
    feature map's allocation and memory traffic.

    Every ELU of these networks follows a convolution whose output nothing else reads, so overwriting it is safe.
    Measured on the CPU (2026-12-06, one thread, 16 features, 8 frames of 256x256, channels-last): 4 % more
    frames/s in float32, 14 % under bfloat16 autocast; in NCHW within the noise of a shared machine
    (``bench/diag/cpu_inference.py``). With gradients (training) it is a plain ELU. No parameters: state dicts are
    those of :class:`torch.nn.ELU`.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha, inplace=_elu_in_place())


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), InferenceELU(), nn.Conv2d(c_out, c_out, 3, padding=1), InferenceELU()
    )


class UNet(nn.Module):
    """U-Net: ``depth`` max-pool down stages (features doubling), nearest up-sampling with skip
    connections, two 3x3 convolutions per stage, output ``out_channels`` feature maps (ELU applied).

    ``up_kernel``: kernel of the convolution that halves the features after each up-sampling; ``out_kernel``:
    kernel of the output convolution. 3 and 3 is plexloc's original net; DECODE's U-Net uses 1 and 1, which
    costs about a quarter fewer operations for the same widths (the 3x3 up-convolutions at the two finest
    stages are a third of a depth-2 U-Net's work).

    Any input height and width: a side that is not a multiple of ``2**depth`` pools its last, incomplete cell
    from the pixels there are (``ceil_mode``) and each up-sampled map is cut back to its skip connection's size,
    so the network sees the frame's edge as an edge, as in training. (Padding such a frame with copies of its
    last row and column, as plexloc did before, put pixels the network never saw at the right and bottom edges:
    on a 90-px frame the last 8 columns' RMSE was 29 nm against 21 nm unpadded, with an 11 nm bias.) On
    multiples of ``2**depth`` (training) both operations change nothing.
    """

    def __init__(self, in_channels: int, out_channels: int, *, features: int = 48, depth: int = 2,
                 up_kernel: int = 3, out_kernel: int = 3):
        super().__init__()
        for name, k in (("up_kernel", up_kernel), ("out_kernel", out_kernel)):
            if k not in (1, 3):
                raise ValueError(f"{name} must be 1 or 3, got {k}")
        self.depth = int(depth)
        widths = [features * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, widths[0])])
        self.down.extend(_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up_conv = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], up_kernel, padding=up_kernel // 2) for i in reversed(range(depth)))
        self.up = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.out = nn.Sequential(nn.Conv2d(widths[0], out_channels, out_kernel, padding=out_kernel // 2), InferenceELU())

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = block(x)
            skips.append(x)
        skips.pop()
        for conv, block in zip(self.up_conv, self.up):
            skip = skips.pop()
            up = F.interpolate(x, scale_factor=2.0, mode="nearest")[..., : skip.shape[-2], : skip.shape[-1]]
            x = block(torch.cat([skip, F.elu(conv(up), inplace=_elu_in_place())], dim=1))
        return self.out(x)
