"""A fresh install walked as a lab's IT person would (session 47): a command whose optional package is missing says
which extra to install; ``plexloc doctor`` reports a torch that cannot be imported, a dependency older than plexloc's
floor, and a CUDA_VISIBLE_DEVICES that hides the GPUs, each with its fix, instead of a traceback or silence."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from plexloc import doctor
from plexloc.cli.main import main


@pytest.mark.parametrize("argv,module,package", [
    (["serve"], "uvicorn", "uvicorn"),
    (["status", "--server", "http://127.0.0.1:9"], "httpx", "httpx"),
    (["download", "7", "--out", "OUT", "--server", "http://127.0.0.1:9"], "httpx", "httpx"),
])
def test_a_command_whose_optional_package_is_missing_names_the_extra(monkeypatch, capsys, tmp_path, argv, module,
                                                                     package):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # `import uvicorn` raises ModuleNotFoundError(name='uvicorn')
    for cached in ("plexloc.service.client", "plexloc.service.agent"):  # imported by an earlier test (a pytest-xdist
        monkeypatch.delitem(sys.modules, cached, raising=False)        # worker's): they would not import httpx again
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"plexloc {argv[0]}: error: this needs the optional package {package}, which is not installed "
                   f"({doctor.OPTIONAL[package][1]}): pip install 'plexloc[service]'")
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_unknown_missing_module_is_still_shown_as_the_bug_it_is(monkeypatch):
    """Only packages plexloc knows of become a one-line message: any other ImportError keeps its traceback."""
    import plexloc.cli.status as status

    def broken(args):
        import plexloc_no_such_module  # noqa: F401

    monkeypatch.setattr(status, "run", broken)
    with pytest.raises(ModuleNotFoundError, match="plexloc_no_such_module"):
        main(["status"])


def test_a_torch_that_cannot_be_imported_is_one_line_from_a_command(monkeypatch, capsys):
    err = ImportError("libtorch_cuda.so: cannot open shared object file: No such file or directory")
    message = doctor.missing_package_message(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert message.startswith("torch cannot be imported (ModuleNotFoundError: No module named 'torch'): reinstall")
    # raised inside torch's own package: a missing shared library of a CUDA build (torch then not in sys.modules)
    monkeypatch.delitem(sys.modules, "torch")
    fake = Path(torch.__file__)
    code = compile("raise err", str(fake), "exec")
    try:
        exec(code, {"err": err})
    except ImportError as raised:
        message = doctor.missing_package_message(raised)
    assert message is not None and "libtorch_cuda.so" in message and "plexloc doctor" in message


def test_doctor_reports_a_torch_that_cannot_be_imported(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    r = doctor.check_environment()
    assert r.torch == "not importable" and r.torch_error == "ModuleNotFoundError: import of torch halted; None in " \
                                                             "sys.modules"
    assert not r.gpu_ok and len([p for p in r.problems if p.startswith("torch cannot be imported")]) == 1
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch     not importable: ModuleNotFoundError" in out
    assert "problem: torch cannot be imported" in out and "pip install --force-reinstall torch" in out
    assert main(["doctor", "--require-gpu"]) == 1


def test_doctor_flags_a_dependency_older_than_plexlocs_floor(monkeypatch):
    monkeypatch.setattr(doctor, "required_floors", lambda: {"torch": "2.3", "numpy": "1.24", "tifffile": "2024.1.30",
                                                            "nosuchpkg47": "1.0"})
    monkeypatch.setattr(torch, "__version__", "2.1.2+cu121")
    versions = {"numpy": "2.4.6", "tifffile": "2023.1.23", "nosuchpkg47": None}
    monkeypatch.setattr(doctor, "installed_version", lambda name: versions.get(name))
    r = doctor.check_environment(run_smoke=False)
    assert r.versions == {"torch": "2.1.2+cu121", "numpy": "2.4.6", "tifffile": "2023.1.23", "nosuchpkg47": None}
    problems = [p for p in r.problems if "plexloc" in p and ("older" in p or "not installed" in p)]
    assert problems == [
        "torch 2.1.2+cu121 is older than plexloc supports (torch >= 2.3): pip install --upgrade 'torch>=2.3' (or a "
        "CUDA build of at least that version: pytorch.org)",
        "tifffile 2023.1.23 is older than plexloc supports (tifffile >= 2024.1.30): pip install --upgrade "
        "'tifffile>=2024.1.30'",
        "nosuchpkg47 is not installed, and plexloc needs nosuchpkg47 >= 1.0: pip install 'nosuchpkg47>=1.0'",
    ]
    text = doctor.format_report(r)
    assert "packages  torch 2.1.2+cu121, numpy 2.4.6, tifffile 2023.1.23, nosuchpkg47 MISSING" in text


@pytest.mark.parametrize("version,floor,ok", [
    ("2.3.0", "2.3", True), ("2.13.0+cpu", "2.3", True), ("2.2.9", "2.3", False), ("2.3.0rc1", "2.3", True),
    ("2024.1.30", "2024.1.30", True), ("2024.1.23", "2024.1.30", False), ("2023.12.9", "2024.1.30", False),
    ("1.26.4", "1.24", True), ("10.0", "9.9", True),
])
def test_version_at_least(version, floor, ok):
    assert doctor.version_at_least(version, floor) is ok


def test_required_floors_are_plexlocs_core_dependencies(monkeypatch):
    from importlib import metadata

    reqs = ['torch>=2.3', 'numpy >=1.24', 'tifffile>=2024.1.30', 'matplotlib (>=3.8)',
            "matplotlib>=3.8; extra == \"plot\"", "plexloc[service]; extra == \"postgres\"", "fastapi>=0.121; extra == "
            "\"service\""]
    monkeypatch.setattr(metadata, "requires", lambda name: reqs if name == "plexloc" else None)
    monkeypatch.setattr(doctor, "_source_pyproject", lambda: None)  # an installed copy (no source tree)
    assert doctor.required_floors() == {"torch": "2.3", "numpy": "1.24", "tifffile": "2024.1.30", "matplotlib": "3.8"}


def test_doctor_says_when_cuda_visible_devices_hides_the_gpus(monkeypatch):
    def no_gpu():
        raise RuntimeError("No CUDA GPUs are available")

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "abc")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", no_gpu)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90"])
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: "580.159.04")
    r = doctor.check_environment()
    gpu = [p for p in r.problems if "no GPU can be used" in p]
    assert len(gpu) == 1 and "(No CUDA GPUs are available)" in gpu[0]
    assert "CUDA_VISIBLE_DEVICES is set to 'abc'" in gpu[0] and "unset it" in gpu[0]
    assert "CUDA_VISIBLE_DEVICES='abc'" in doctor.format_report(r)


def test_optional_packages_are_pyprojects_extras():
    """doctor's list of optional packages and their extras is pyproject.toml's (the extras a user installs)."""
    tomllib = pytest.importorskip("tomllib")
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    listed = {}
    for extra in ("service", "postgres", "drift", "napari"):
        for req in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.\-]+", req).group().lower()
            if name != "plexloc":
                listed[name] = extra
    assert {name: extra for name, (extra, _) in doctor.OPTIONAL.items()} == listed
