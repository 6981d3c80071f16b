"""What this installation can run on, and why not where it cannot (``plexloc doctor``).

A GPU install breaks in a few known ways, each with its own fix: a CPU-only torch build (pip's default on
some platforms), no NVIDIA driver or one too old for the build's CUDA, a GPU whose architecture the build
has no kernels for, or kernels that fail at run time. :func:`check_environment` tells them apart and, where
a GPU is usable, runs a small convolution forward and backward on it (bfloat16 autocast, as training does)
against the CPU's result, so that "it imports" is not mistaken for "it works".
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import sys
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

#: optional packages and what they are for
OPTIONAL = {
    "matplotlib": "figures (learning curves, reports)",
    "fastapi": "the job service (plexloc serve)",
    "httpx": "the job service's client and worker",
    "sqlalchemy": "the job service's database",
}


@dataclass
class GpuInfo:
    index: int
    name: str
    capability: str  # e.g. "9.0"
    memory_gib: float
    arch_supported: bool  # the torch build has kernels for this architecture
    smoke: str = "not run"  # "ok", or the error / the deviation from the CPU


@dataclass
class EnvironmentReport:
    plexloc: str
    python: str
    platform: str
    torch: str
    torch_cuda: str | None  # the CUDA version torch was built for; None: a CPU-only build
    cudnn: int | None
    cuda_available: bool
    cuda_error: str | None  # why CUDA is not available, as the driver layer says it
    arch_list: list[str]
    nvidia_driver: str | None = None  # the kernel driver's version where one is loaded ("present": nvidia-smi alone)
    gpus: list[GpuInfo] = field(default_factory=list)
    cpu_bf16: bool = False  # the CPU runs bfloat16 natively: training and fitting there use it (training.amp, --precision)
    cpu_onednn: bool = False  # the CPU's convolutions go through oneDNN: channels-last (NHWC) there by default
    optional: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # one line each, with the fix
    notes: list[str] = field(default_factory=list)  # what is so but needs no fix

    @property
    def gpu_ok(self) -> bool:
        """A GPU that plexloc can train and fit on (its test convolution passed, or was not run)."""
        return any(g.arch_supported and g.smoke in ("ok", "not run") for g in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gpu_ok"] = self.gpu_ok
        return d


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``, e.g. ``["sm_80", "sm_90"]``)
    runs on a GPU of compute ``capability``: a kernel of the same major version and a minor version not above
    the GPU's, or PTX (``compute_XY``) at or below it, which the driver compiles. An empty list (not known) counts
    as supported."""
    if not arch_list:
        return True
    major, minor = capability
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        digits = "".join(ch for ch in num if ch.isdigit())
        if len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def nvidia_driver(proc: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel driver's version where one is loaded (Linux), "present" where only ``nvidia-smi`` is found,
    else None: whether the machine has an NVIDIA GPU at all, whatever torch build is installed."""
    try:
        text = proc.read_text()
    except OSError:
        return "present" if shutil.which("nvidia-smi") else None
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)", text)
    return m.group(1) if m else "present"


def _smoke(device: str) -> str:
    """A 3x3 convolution with ELU, forward and backward under bfloat16 autocast on ``device``, against float32 on
    the CPU: "ok" or what went wrong."""
    import torch

    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(4, 8, 32, 32, generator=gen)
        conv = torch.nn.Conv2d(8, 16, 3, padding=1)
        ref_out = torch.nn.functional.elu(conv(x)).sum()
        ref_out.backward()
        ref = float(ref_out.detach())
        g_ref = conv.weight.grad.clone()
        conv.weight.grad = None
        conv_d = conv.to(device)
        kind = torch.device(device).type
        with torch.autocast(device_type=kind, dtype=torch.bfloat16):
            out = torch.nn.functional.elu(conv_d(x.to(device))).float().sum()
        out.backward()
        if kind == "cuda":
            torch.cuda.synchronize(device)
        dev_out, g = float(out.detach().cpu()), conv_d.weight.grad.float().cpu()
    except Exception as err:  # kernel image missing, driver errors, out of memory: all worth reporting
        return f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    rel = abs(dev_out - ref) / max(abs(ref), 1.0)
    g_rel = float((g - g_ref).norm() / g_ref.norm().clamp_min(1e-12))
    if rel > 0.05 or g_rel > 0.05:  # bfloat16 keeps ~3 significant digits: a few per cent is already wrong
        return f"wrong results: output off by {rel:.1%}, gradient by {g_rel:.1%} against the CPU"
    return "ok"


def check_environment(*, run_smoke: bool = True) -> EnvironmentReport:
    """The installation's torch, CUDA and GPUs, the optional packages, and the problems found with their fixes."""
    import torch

    from plexloc import __version__

    cuda_build = torch.version.cuda
    available = bool(torch.cuda.is_available())
    cuda_error = None
    if cuda_build and not available:
        try:  # the driver layer's own reason ("Found no NVIDIA driver", "driver too old", ...)
            torch.cuda.init()
        except Exception as err:
            cuda_error = str(err).splitlines()[0] if str(err) else type(err).__name__
    arch_list = list(torch.cuda.get_arch_list()) if cuda_build else []
    cudnn = torch.backends.cudnn.version() if cuda_build and available else None
    report = EnvironmentReport(
        plexloc=__version__, python=sys.version.split()[0], platform=platform.platform(), torch=torch.__version__,
        torch_cuda=cuda_build, cudnn=cudnn, cuda_available=available, cuda_error=cuda_error, arch_list=arch_list,
        nvidia_driver=nvidia_driver(), optional={name: importlib.util.find_spec(name) is not None for name in OPTIONAL},
    )
    from plexloc.infer import predict

    report.cpu_bf16, report.cpu_onednn = predict.cpu_bf16_supported(), predict.cpu_channels_last_supported()
    if available:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            cap = (props.major, props.minor)
            info = GpuInfo(index=i, name=props.name, capability=f"{cap[0]}.{cap[1]}",
                           memory_gib=round(props.total_memory / 2**30, 1), arch_supported=arch_supported(cap, arch_list))
            if run_smoke:
                info.smoke = _smoke(f"cuda:{i}")
            report.gpus.append(info)
    report.problems = _problems(report, run_smoke)
    if report.torch_cuda is None and report.nvidia_driver is None:
        report.notes.append("no NVIDIA GPU found and torch is a CPU-only build: plexloc runs on the CPU (slower; "
                            "the same network and results, within rounding)")
    return report


def _problems(r: EnvironmentReport, smoked: bool) -> list[str]:
    out = []
    if r.torch_cuda is None and r.nvidia_driver is not None:
        out.append(f"this machine has an NVIDIA driver ({r.nvidia_driver}) but torch {r.torch} is a CPU-only build: "
                   "install a CUDA build of torch into this environment (the command for your CUDA version is on "
                   "pytorch.org, 'Get started'); plexloc keeps whichever torch >= 2.3 is installed")
    elif r.torch_cuda is not None and not r.cuda_available:
        why = f" ({r.cuda_error})" if r.cuda_error else ""
        out.append(f"torch {r.torch} is built for CUDA {r.torch_cuda}, but no GPU can be used{why}. Check that "
                   "`nvidia-smi` lists the GPU, that the NVIDIA driver supports CUDA "
                   f"{r.torch_cuda} (else install a torch build for an older CUDA), and CUDA_VISIBLE_DEVICES")
    for g in r.gpus:
        if not g.arch_supported:
            out.append(f"GPU {g.index} ({g.name}, compute capability {g.capability}) is not among this torch build's "
                       f"architectures ({', '.join(r.arch_list)}): install a torch build that supports it")
        elif smoked and g.smoke != "ok":
            out.append(f"GPU {g.index} ({g.name}): a test convolution {g.smoke}; use --device cpu until that is fixed")
    return out


def format_report(r: EnvironmentReport) -> str:
    """The report as lines of text (what ``plexloc doctor`` prints)."""
    lines = [
        f"plexloc   {r.plexloc} (Python {r.python}, {r.platform})",
        f"torch     {r.torch}, " + (f"built for CUDA {r.torch_cuda}" if r.torch_cuda else "CPU-only build")
        + (f", cuDNN {r.cudnn}" if r.cudnn else ""),
        f"CUDA      {'available' if r.cuda_available else 'not available'}"
        + (f": {r.cuda_error}" if r.cuda_error else "")
        + (f"; NVIDIA driver {r.nvidia_driver}" if r.nvidia_driver else "; no NVIDIA driver found"),
    ]
    lines.append("CPU       " + ("bfloat16 instructions: training and fitting on the CPU run bfloat16 (about 1.4-1.9x "
                                 "float32; training.amp, plexloc fit --precision)" if r.cpu_bf16
                                 else "no bfloat16 instructions: training and fitting on the CPU run float32")
                 + ("; channels-last convolutions (oneDNN)" if r.cpu_onednn else ""))
    for g in r.gpus:
        lines.append(f"GPU {g.index}     {g.name}, compute {g.capability}, {g.memory_gib} GiB; "
                     f"{'kernels in this build' if g.arch_supported else 'NO kernels in this build'}; test: {g.smoke}")
    missing = [f"{k} ({OPTIONAL[k]})" for k, ok in r.optional.items() if not ok]
    if missing:
        lines.append("optional  not installed: " + "; ".join(missing))
    lines.append("")
    lines += [f"note: {n}" for n in r.notes]
    if r.problems:
        lines += [f"problem: {p}" for p in r.problems]
    else:
        lines.append("no problems found: " + ("training and fitting can use the GPU" if r.gpu_ok else "CPU"))
    return "\n".join(lines)
