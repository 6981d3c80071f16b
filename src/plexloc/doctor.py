"""What this installation can run on, and why not where it cannot (``plexloc doctor``).

A GPU install breaks in a few known ways, each with its own fix: a CPU-only torch build (pip's default on
some platforms), no NVIDIA driver or one too old for the build's CUDA, a GPU whose architecture the build
has no kernels for, or kernels that fail at run time. :func:`check_environment` tells them apart and, where
a GPU is usable, runs a small convolution forward and backward on it (bfloat16 autocast, as training does)
against the CPU's result, so that "it imports" is not mistaken for "it works".
"""

from __future__ import annotations

import platform
import re
import shutil
import sys
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

#: optional packages (distribution name) -> (the extra of plexloc that installs it, what it is for); the same lists
#: as pyproject.toml's optional-dependencies (a test checks)
OPTIONAL: dict[str, tuple[str, str]] = {
    "fastapi": ("service", "the job service, plexloc serve"),
    "uvicorn": ("service", "the job service's web server, plexloc serve"),
    "sqlalchemy": ("service", "the job service's database, plexloc serve and admin"),
    "alembic": ("service", "the job service's database migrations"),
    "httpx": ("service", "the job service's client and worker, plexloc submit, status, download and worker"),
    "python-multipart": ("service", "uploads to the job service"),
    "boto3": ("service", "the job service's S3 storage"),
    "psycopg": ("postgres", "the job service on PostgreSQL"),
    "comet-smlm": ("drift", "the COMET drift engine, plexloc drift --engine comet"),
    "napari": ("napari", "the napari plugin"),
    "npe2": ("napari", "the napari plugin"),
}

#: importable module -> the distribution that provides it, for the modules of optional packages (and of matplotlib,
#: a dependency that a broken environment may lack) that plexloc imports: a command that finds one missing says
#: what to install (:func:`missing_package_message`)
MODULES: dict[str, str] = {
    "fastapi": "fastapi", "starlette": "fastapi", "uvicorn": "uvicorn", "sqlalchemy": "sqlalchemy",
    "alembic": "alembic", "httpx": "httpx", "multipart": "python-multipart", "python_multipart": "python-multipart",
    "boto3": "boto3", "botocore": "boto3", "psycopg": "psycopg", "comet": "comet-smlm", "napari": "napari",
    "npe2": "npe2", "matplotlib": "matplotlib",
}


def _version_key(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version ("2.3.1+cu121" -> (2, 3, 1); "2.4.0rc1" -> (2, 4, 0)), for comparing
    against a ``>=`` floor."""
    key = []
    for part in version.split("+")[0].split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        key.append(int(m.group()))
        if m.end() < len(part):  # "0rc1": a pre-release of 0
            break
    return tuple(key)


def version_at_least(version: str, floor: str) -> bool:
    """Whether ``version`` is at or above ``floor`` (release numbers; a pre-release counts as its release)."""
    a, b = _version_key(version), _version_key(floor)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) >= b + (0,) * (width - len(b))


def required_floors() -> dict[str, str]:
    """plexloc's own dependencies and their ``>=`` floors (pyproject.toml's ``dependencies``): ``{"torch": "2.3",
    "numpy": "1.24", ...}``. From the source tree's pyproject.toml where plexloc runs from one (an editable install:
    its installed metadata is that of when it was installed, older floors where they have risen since), else from the
    installed metadata; empty where plexloc runs uninstalled and without its pyproject.toml."""
    from importlib import metadata

    reqs = _source_requirements()
    if reqs is None:
        try:
            reqs = metadata.requires("plexloc") or []
        except metadata.PackageNotFoundError:
            return {}
    floors = {}
    for req in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*\(?\s*>=\s*([0-9][^,;\s)]*)\s*\)?\s*", req)
        if m and ";" not in req:  # a core dependency (not an extra's)
            floors[m.group(1).lower()] = m.group(2)
    return floors


def _source_pyproject() -> Path | None:
    """The pyproject.toml of the source tree plexloc is imported from (``src/plexloc`` beside it), None for an
    installed copy (site-packages has none)."""
    import plexloc

    path = Path(plexloc.__file__).resolve().parents[2] / "pyproject.toml"
    return path if path.is_file() and path.parent.joinpath("src", "plexloc").is_dir() else None


def _source_requirements() -> list[str] | None:
    """The ``project.dependencies`` of :func:`_source_pyproject`, None where there is none to read (an installed
    copy, Python 3.10 without tomllib, a file that is not plexloc's)."""
    path = _source_pyproject()
    if path is None:
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata
        return None
    try:
        with open(path, "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    deps = project.get("dependencies")
    return deps if project.get("name") == "plexloc" and isinstance(deps, list) else None


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, None where it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def missing_package_message(err: ImportError) -> str | None:
    """What to install for an ``ImportError`` that a command ended with, in one sentence; None where it is not a
    package plexloc knows (a bug, to be shown as one). A missing optional package names its extra
    (``pip install 'plexloc[service]'``); a torch that cannot be imported (a missing shared library of a CUDA build,
    a build for another Python) says so and points to ``plexloc doctor``."""
    full = getattr(err, "name", None) or ""
    name = full.split(".")[0]
    # the package itself not found (ModuleNotFoundError naming it): an ImportError of an installed package ("cannot
    # import name X from fastapi": a version, or a bug of plexloc's) or of one of its submodules is not a missing
    # package, and keeps its traceback
    if name in MODULES and isinstance(err, ModuleNotFoundError) and full == name:
        dist = MODULES[name]
        if dist in OPTIONAL:
            extra, purpose = OPTIONAL[dist]
            return (f"this needs the optional package {dist}, which is not installed ({purpose}): "
                    f"pip install 'plexloc[{extra}]'")
        return (f"this needs {dist}, a dependency of plexloc that is not installed in this environment: "
                f"pip install {dist} (or reinstall plexloc)")
    # torch itself not importable: not found, or its own import failed (then it is not in sys.modules); a lazy import
    # inside a torch that imported (torch.compile's triton, a name an older torch lacks) is not a broken torch
    if (isinstance(err, ModuleNotFoundError) and full == "torch") or (
            sys.modules.get("torch") is None and (name == "torch" or _raised_in_torch(err))):
        return (f"torch cannot be imported ({type(err).__name__}: {_first_line(err)}): reinstall it in this "
                "environment (pip install --force-reinstall torch, or the command for your CUDA version on "
                "pytorch.org); plexloc doctor says more")
    return None


def _raised_in_torch(err: BaseException) -> bool:
    """Whether the error was raised while importing torch's own package (its files under a ``torch`` folder)."""
    tb = err.__traceback__
    while tb is not None:
        parts = Path(tb.tb_frame.f_code.co_filename).parts
        if "torch" in parts[:-1]:
            return True
        tb = tb.tb_next
    return False


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


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
    torch: str  # the imported torch's version ("not importable": see torch_error)
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
    torch_error: str | None = None  # why torch cannot be imported
    cuda_visible_devices: str | None = None  # the environment variable, where set
    versions: dict[str, str | None] = field(default_factory=dict)  # plexloc's dependencies: installed version (None: not)
    floors: dict[str, str] = field(default_factory=dict)  # the same: the lowest version plexloc supports
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
    """The installation's torch, CUDA and GPUs, its dependencies' versions against plexloc's floors, the optional
    packages, and the problems found with their fixes. A torch that cannot be imported is one of the problems (the
    rest of the report is still made)."""
    import os

    from plexloc import __version__

    floors = required_floors()
    versions = {name: installed_version(name) for name in floors}
    common = dict(plexloc=__version__, python=sys.version.split()[0], platform=platform.platform(),
                  nvidia_driver=nvidia_driver(), cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                  optional={name: installed_version(name) is not None for name in OPTIONAL},
                  versions=versions, floors=floors)
    try:
        import torch
    except Exception as err:  # a missing shared library, a build for another Python, a broken install
        report = EnvironmentReport(**common, torch="not importable", torch_cuda=None, cudnn=None, cuda_available=False,
                                   cuda_error=None, arch_list=[], torch_error=f"{type(err).__name__}: {_first_line(err)}")
        report.problems = _problems(report, run_smoke)
        return report
    versions["torch"] = torch.__version__  # the torch imported (its metadata may name another)

    cuda_build = torch.version.cuda
    available = bool(torch.cuda.is_available())
    cuda_error = None
    if cuda_build and not available:
        try:  # the driver layer's own reason ("Found no NVIDIA driver", "driver too old", ...)
            torch.cuda.init()
        except Exception as err:
            cuda_error = _first_line(err)
    arch_list = list(torch.cuda.get_arch_list()) if cuda_build else []
    cudnn = torch.backends.cudnn.version() if cuda_build and available else None
    report = EnvironmentReport(**common, torch=torch.__version__, torch_cuda=cuda_build, cudnn=cudnn,
                               cuda_available=available, cuda_error=cuda_error, arch_list=arch_list)
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
    if r.torch_error is not None:
        out.append(f"torch cannot be imported ({r.torch_error}): nothing that trains or fits runs; reinstall torch in "
                   "this environment (pip install --force-reinstall torch, or the command for your CUDA version on "
                   "pytorch.org, 'Get started')")
    for name, floor in r.floors.items():
        have = r.versions.get(name)
        if name == "torch" and r.torch_error is not None:
            continue
        if have is None:
            out.append(f"{name} is not installed, and plexloc needs {name} >= {floor}: pip install '{name}>={floor}'")
        elif not version_at_least(have, floor):
            out.append(f"{name} {have} is older than plexloc supports ({name} >= {floor}): pip install --upgrade "
                       f"'{name}>={floor}'" + (" (or a CUDA build of at least that version: pytorch.org)"
                                                 if name == "torch" else ""))
    cvd = r.cuda_visible_devices
    if r.torch_cuda is None and r.nvidia_driver is not None and r.torch_error is None:
        out.append(f"this machine has an NVIDIA driver ({r.nvidia_driver}) but torch {r.torch} is a CPU-only build: "
                   "install a CUDA build of torch into this environment (the command for your CUDA version is on "
                   "pytorch.org, 'Get started'); plexloc keeps whichever torch >= 2.3 is installed")
    elif r.torch_cuda is not None and not r.cuda_available:
        why = f" ({r.cuda_error})" if r.cuda_error else ""
        if cvd is not None and r.nvidia_driver is not None:  # the GPUs are there, the variable hides them
            out.append(f"torch {r.torch} is built for CUDA {r.torch_cuda}, but no GPU can be used{why}, and "
                       f"CUDA_VISIBLE_DEVICES is set to {cvd!r}, which hides every GPU it does not list by index or "
                       "UUID: unset it, or set it to the GPUs to use (e.g. 0, or 0,1; `nvidia-smi -L` lists them)")
        else:
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


#: what each extra is for, in the report's "optional" line
_EXTRA_PURPOSE = {"service": "the job service: plexloc serve, worker, admin, submit, status, download",
                  "postgres": "the job service on PostgreSQL", "drift": "the COMET drift engine",
                  "napari": "the napari plugin"}


def format_report(r: EnvironmentReport) -> str:
    """The report as lines of text (what ``plexloc doctor`` prints)."""
    lines = [
        f"plexloc   {r.plexloc} (Python {r.python}, {r.platform})",
        f"torch     not importable: {r.torch_error}" if r.torch_error else
        f"torch     {r.torch}, " + (f"built for CUDA {r.torch_cuda}" if r.torch_cuda else "CPU-only build")
        + (f", cuDNN {r.cudnn}" if r.cudnn else ""),
        f"CUDA      {'available' if r.cuda_available else 'not available'}"
        + (f": {r.cuda_error}" if r.cuda_error else "")
        + (f"; NVIDIA driver {r.nvidia_driver}" if r.nvidia_driver else "; no NVIDIA driver found")
        + (f"; CUDA_VISIBLE_DEVICES={r.cuda_visible_devices!r}" if r.cuda_visible_devices is not None else ""),
    ]
    if r.versions:
        lines.append("packages  " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in r.versions.items()))
    if r.torch_error is None:
        lines.append("CPU       " + ("bfloat16 instructions: training and fitting on the CPU run bfloat16 (about 1.4-1.9x "
                                     "float32; training.amp, plexloc fit --precision)" if r.cpu_bf16
                                     else "no bfloat16 instructions: training and fitting on the CPU run float32")
                     + ("; channels-last convolutions (oneDNN)" if r.cpu_onednn else ""))
    for g in r.gpus:
        lines.append(f"GPU {g.index}     {g.name}, compute {g.capability}, {g.memory_gib} GiB; "
                     f"{'kernels in this build' if g.arch_supported else 'NO kernels in this build'}; test: {g.smoke}")
    by_extra: dict[str, list[str]] = {}
    for k, ok in r.optional.items():
        if not ok and k in OPTIONAL:
            by_extra.setdefault(OPTIONAL[k][0], []).append(k)
    if by_extra:
        lines.append("optional  not installed: " + "; ".join(
            f"{', '.join(names)} ({_EXTRA_PURPOSE.get(extra, extra)}: pip install 'plexloc[{extra}]')"
            for extra, names in by_extra.items()))
    lines.append("")
    lines += [f"note: {n}" for n in r.notes]
    if r.problems:
        lines += [f"problem: {p}" for p in r.problems]
    else:
        lines.append("no problems found: " + ("training and fitting can use the GPU" if r.gpu_ok else "CPU"))
    return "\n".join(lines)
