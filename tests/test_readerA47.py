"""A last read of session 47's install walk (readerA): the ImportError a command ends with becomes a one-line
"install this" message only where the package is really missing (an installed package whose import fails, or a lazy
import inside a torch that imported fine, keeps its traceback: a bug or a version to look at, not a missing package);
``plexloc doctor`` checks the floors of the plexloc it runs (a source tree's pyproject.toml, not the stale metadata
of an editable install made before the floors changed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from plexloc import doctor
from plexloc.cli.main import main

ROOT = Path(__file__).parents[1]


def _raised_in(path: Path, err: BaseException) -> BaseException:
    """``err`` as raised by code of the file ``path`` (its traceback's last frame there)."""
    try:
        exec(compile("raise err", str(path), "exec"), {"err": err})
    except BaseException as raised:  # noqa: BLE001
        return raised
    raise AssertionError("not raised")


def test_an_installed_package_whose_import_fails_is_not_said_to_be_missing(monkeypatch):
    """`from fastapi import X` failing (an old fastapi, or a name plexloc has wrong) is an ImportError with
    name='fastapi': it was told as 'the optional package fastapi, which is not installed' (it is installed)."""
    err = ImportError("cannot import name 'NoSuchThing' from 'fastapi'", name="fastapi")
    assert doctor.missing_package_message(err) is None
    # a missing submodule of an installed package: not the package missing either
    assert doctor.missing_package_message(ModuleNotFoundError("No module named 'matplotlib.backends.backend_qtagg'",
                                                              name="matplotlib.backends.backend_qtagg")) is None
    # the package itself missing still names its extra
    assert doctor.missing_package_message(ModuleNotFoundError("No module named 'fastapi'", name="fastapi")) == (
        f"this needs the optional package fastapi, which is not installed ({doctor.OPTIONAL['fastapi'][1]}): "
        "pip install 'plexloc[service]'")

    import plexloc.cli.status as status

    def broken(args):
        raise ImportError("cannot import name 'NoSuchThing' from 'httpx'", name="httpx")

    monkeypatch.setattr(status, "run", broken)
    with pytest.raises(ImportError, match="NoSuchThing"):  # the traceback, not 'pip install plexloc[service]'
        main(["status"])


def test_an_import_error_inside_a_torch_that_imported_is_not_a_broken_torch(monkeypatch):
    """A lazy import inside torch (torch.compile's triton, an optional submodule) raised under torch's folder was told
    'torch cannot be imported ... reinstall it', though torch imported fine: the error is kept (a bug to see)."""
    assert "torch" in sys.modules
    lazy = _raised_in(Path(torch.__file__).parent / "_inductor" / "codecache.py",
                      ModuleNotFoundError("No module named 'triton'", name="triton"))
    assert doctor.missing_package_message(lazy) is None
    assert doctor.missing_package_message(ImportError("cannot import name 'nope' from 'torch'", name="torch")) is None
    nope = ModuleNotFoundError("No module named 'torch.nope'", name="torch.nope")
    assert doctor.missing_package_message(nope) is None
    # torch's own import failing (a missing shared library of a CUDA build): torch is then not in sys.modules
    monkeypatch.delitem(sys.modules, "torch")
    broken = _raised_in(Path(torch.__file__), ImportError("libtorch_cuda.so: cannot open shared object file"))
    message = doctor.missing_package_message(broken)
    assert message is not None and message.startswith("torch cannot be imported (ImportError: libtorch_cuda.so")


def test_doctor_checks_the_floors_of_the_source_tree_it_runs(monkeypatch):
    """An editable install keeps the metadata of when it was installed: doctor checked pydantic against 2.5 and
    matplotlib not at all while the code (pyproject.toml) needs 2.10 and 3.8."""
    tomllib = pytest.importorskip("tomllib")
    from importlib import metadata

    stale = ["torch>=2.3", "numpy>=1.24", "tifffile>=2023.1", "pydantic>=2.5"]
    monkeypatch.setattr(metadata, "requires", lambda name: stale if name == "plexloc" else None)
    import plexloc

    if Path(plexloc.__file__).resolve().parents[2] != ROOT.resolve():
        pytest.skip("plexloc is not imported from this source tree")
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    floors = doctor.required_floors()
    assert floors["pydantic"] == "2.10" and floors["matplotlib"] == "3.8" and floors["tifffile"] == "2024.1.30"
    assert len(floors) == len(deps)
    r = doctor.check_environment(run_smoke=False)
    assert r.floors == floors and "matplotlib" in r.versions
    # an installed plexloc (no source tree) reads its metadata
    monkeypatch.setattr(doctor, "_source_pyproject", lambda: None)
    assert doctor.required_floors() == {"torch": "2.3", "numpy": "1.24", "tifffile": "2023.1", "pydantic": "2.5"}


# --- the z range a spline PSF leaves to the emitters, over every channel ---------------------------------------------

def _two_plane_spline_config(tmp_path, z_range, offsets=(0.0, 300.0)):
    """Two channels of one spline calibration over PSF z [-500, 500] nm, their focal planes ``offsets`` apart: emitter
    z [-500, 500] fits channel 0 and [-200, 800] channel 1 (both: [-200, 500])."""
    from conftest import astigmatic_spline_h5

    from plexloc.config import validate_config
    from plexloc.config.models import SimulationConfig

    astigmatic_spline_h5(tmp_path / "PSF.h5")
    camera = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
              "baseline": 100.0, "read_sigma": 74.4}
    channels = [{"psf": {"kind": "spline", "calibration": str(tmp_path / "PSF.h5")}, "camera": camera,
                 "z_offset_nm": off} for off in offsets]
    return validate_config({"px_size_nm": 100.0, "frame_size": [16, 16], "channels": channels,
                            "photon_model": {"kind": "linked"},
                            "emitters": {"z_range_nm": list(z_range)}}, SimulationConfig)


def test_the_z_range_the_simulator_advises_fits_every_channel(tmp_path):
    """A biplane whose channel 1 is focused 300 nm deeper: emitters.z_range_nm [-600, 600] was told to narrow to
    [-500, 500] (channel 0's range), which channel 1 refuses in turn (its PSF covers [-200, 800]); the range advised is
    the one every channel covers, [-200, 500]."""
    from plexloc.errors import InputError
    from plexloc.simulation.simulator import Simulator

    with pytest.raises(InputError) as err:
        Simulator(_two_plane_spline_config(tmp_path, [-600.0, 600.0]))
    msg = str(err.value)
    assert "emitters.z_range_nm [-600, 600] (channel 0 z offset 0) leaves the PSF's calibrated z range [-500, 500] " \
           "nm: narrow emitters.z_range_nm to [-200, 500] nm or less (the z range every channel's PSF covers, with " \
           "its z offset)" in msg
    Simulator(_two_plane_spline_config(tmp_path, [-200.0, 500.0]))  # what it advised is taken
    # a range wholly outside: it advised the empty [700, 500]
    with pytest.raises(InputError) as err:
        Simulator(_two_plane_spline_config(tmp_path, [700.0, 900.0], offsets=(0.0,)))
    msg = str(err.value)
    assert "[700, 500]" not in msg and "move emitters.z_range_nm within [-500, 500] nm" in msg
    # channels whose ranges do not meet: no emitter z range fits, and the offsets are what to check
    with pytest.raises(InputError) as err:
        Simulator(_two_plane_spline_config(tmp_path, [0.0, 0.0], offsets=(0.0, 1200.0)))
    assert "no emitter z range fits every channel" in str(err.value) and "z_offset_nm" in str(err.value)
