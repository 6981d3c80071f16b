"""``plexloc doctor``: the installation check tells the known GPU-install failures apart and says how to fix each."""

from __future__ import annotations

import json
import re

import pytest
import torch

from plexloc import doctor
from plexloc.cli.main import main
from plexloc.doctor import EnvironmentReport, GpuInfo, arch_supported, check_environment, nvidia_driver


@pytest.mark.parametrize("cap,archs,ok", [
    ((9, 0), ["sm_80", "sm_90"], True),
    ((9, 0), ["sm_80", "sm_86"], False),  # an H100 under a build without Hopper kernels
    ((8, 9), ["sm_80", "sm_86"], True),  # same major, lower minor: binary compatible
    ((8, 6), ["sm_89"], False),
    ((12, 0), ["sm_90", "compute_90"], True),  # PTX: the driver compiles it for newer GPUs
    ((7, 0), ["sm_80", "compute_80"], False),
    ((9, 0), [], True),  # not known
])
def test_arch_supported(cap, archs, ok):
    assert arch_supported(cap, archs) is ok


def test_nvidia_driver_version_from_the_kernel_module(tmp_path, monkeypatch):
    f = tmp_path / "version"
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U16)\n"
                 "GCC version:  gcc version 12.2.0\n")
    assert nvidia_driver(f) == "580.159.04"
    f.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n")
    assert nvidia_driver(f) == "535.104.05"
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert nvidia_driver(tmp_path / "missing") is None
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert nvidia_driver(tmp_path / "missing") == "present"


def test_cpu_build_on_a_machine_with_an_nvidia_driver_is_a_problem(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: "580.159.04")
    r = check_environment()
    assert not r.gpu_ok and len(r.problems) == 1
    assert "NVIDIA driver (580.159.04)" in r.problems[0] and "CPU-only build" in r.problems[0]
    assert "install a CUDA build of torch" in r.problems[0]
    # without a driver the CPU build is right: a note, no problem
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: None)
    r = check_environment()
    assert r.problems == [] and "runs on the CPU" in r.notes[0]
    assert "no problems found: CPU" in doctor.format_report(r)


def test_cuda_build_without_a_usable_gpu_gives_the_drivers_reason(monkeypatch):
    def no_driver():
        raise RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU\nmore")

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", no_driver)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90"])
    r = check_environment()
    assert r.cuda_error == "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU"
    assert len(r.problems) == 1 and "built for CUDA 12.8" in r.problems[0] and "Found no NVIDIA driver" in r.problems[0]
    assert "nvidia-smi" in r.problems[0]


def test_gpu_problems_name_the_gpu_and_the_fix():
    base = dict(plexloc="0", python="3", platform="p", torch="2.9.0+cu128", torch_cuda="12.8", cudnn=90000,
                cuda_available=True, cuda_error=None, arch_list=["sm_80", "sm_90"], nvidia_driver="580.1")
    old_gpu = GpuInfo(0, "Tesla V100", "7.0", 16.0, arch_supported=False, smoke="not run")
    broken = GpuInfo(1, "NVIDIA H100", "9.0", 80.0, arch_supported=True, smoke="failed: RuntimeError: CUDA error")
    good = GpuInfo(2, "NVIDIA H200", "9.0", 140.0, arch_supported=True, smoke="ok")
    r = EnvironmentReport(**base, gpus=[old_gpu, broken])
    probs = doctor._problems(r, smoked=True)
    assert len(probs) == 2 and not r.gpu_ok
    assert "compute capability 7.0" in probs[0] and "sm_80, sm_90" in probs[0]
    assert "GPU 1 (NVIDIA H100)" in probs[1] and "--device cpu" in probs[1]
    r2 = EnvironmentReport(**base, gpus=[good])
    assert doctor._problems(r2, smoked=True) == [] and r2.gpu_ok
    assert "training and fitting can use the GPU" in doctor.format_report(r2)


def test_cli_doctor_writes_json_and_require_gpu_fails_without_one(tmp_path, capsys):
    out = tmp_path / "env.json"
    assert main(["doctor", "--json", str(out), "--no-smoke"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("plexloc ") and "torch" in text
    data = json.loads(out.read_text())
    assert data["torch"] == torch.__version__ and set(data["optional"]) == set(doctor.OPTIONAL)
    if not data["gpu_ok"]:
        assert main(["doctor", "--require-gpu", "--no-smoke"]) == 1


def test_smoke_convolution_passes_on_a_working_device_and_reports_a_broken_one(monkeypatch):
    assert doctor._smoke("cpu") == "ok"  # bfloat16 autocast against float32: within its precision
    real_elu = torch.nn.functional.elu

    def wrong(x, *a, **k):  # a device whose kernels compute garbage
        return real_elu(x, *a, **k) * (1.3 if x.dtype == torch.bfloat16 else 1.0)

    monkeypatch.setattr(torch.nn.functional, "elu", wrong)
    assert re.fullmatch(r"wrong results: output off by (29|30)\.\d%, gradient by (29|30)\.\d% against the CPU", doctor._smoke("cpu"))
    monkeypatch.setattr(torch.nn.functional, "elu", lambda x: (_ for _ in ()).throw(RuntimeError("no kernel image")))
    assert doctor._smoke("cpu") == "failed: RuntimeError: no kernel image"


@pytest.mark.gpu
def test_doctor_runs_the_test_convolution_on_the_gpu():
    r = check_environment()
    assert r.gpus and all(g.smoke == "ok" for g in r.gpus) and r.gpu_ok, r.gpus


def test_worker_warns_when_its_gpus_are_out_of_torchs_reach(monkeypatch):
    from plexloc.cli.worker import gpu_warning

    assert gpu_warning(0) is None  # no GPU offered: nothing to check
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: "580.159.04")
    w = gpu_warning(2)
    assert w.startswith("warning: this machine offers 2 GPU(s)") and "CPU-only build" in w and "--gpus 0" in w


@pytest.mark.parametrize("bf16", [True, False])
def test_doctor_says_whether_the_cpu_runs_bfloat16(monkeypatch, bf16):
    """The CPU line: whether training and fitting on this CPU run bfloat16 (AVX512-BF16 / AMX) or float32, and the
    JSON keys that say it."""
    from plexloc.infer import predict

    monkeypatch.setattr(predict, "cpu_bf16_supported", lambda: bf16)
    monkeypatch.setattr(predict, "cpu_channels_last_supported", lambda: True)
    r = doctor.check_environment(run_smoke=False)
    assert r.cpu_bf16 is bf16 and r.cpu_onednn is True and r.to_dict()["cpu_bf16"] is bf16
    line = next(ln for ln in doctor.format_report(r).splitlines() if ln.startswith("CPU"))
    assert ("run bfloat16" in line) is bf16 and ("run float32" in line) is (not bf16) and "channels-last" in line
