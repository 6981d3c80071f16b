"""Review of session 44 (reviewer B): the service's submission check of configurations, and process's rows after a
run that stopped."""

from __future__ import annotations

import errno
import types

import pytest
import yaml
from service_support import EXAMPLE

import plexloc.workflow as workflow
from plexloc.errors import InputError
from plexloc.service.config_inputs import _check_one
from test_process40 import _fake_fit, _movie, _options, _rows

GOOD = yaml.safe_load(EXAMPLE.read_text())


class _Store:
    """The object store of one configuration's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def head(self, key: str, n: int) -> bytes:
        return self.data[:n]


def _check(cfg: dict) -> None:
    text = yaml.safe_dump(cfg).encode()
    f = types.SimpleNamespace(id="f1", name="scope.yaml", size=len(text), storage_key="k")
    _check_one(_Store(text), f, slot="config", kind="plexloc-config", folder="config", beside=[],
               beside_slots=["files"])


def test_a_spline_calibration_on_the_servers_own_disk_is_not_read_at_submission(tmp_path):
    """A spline calibration named by absolute path is the worker's to read (config_inputs' docstring: the server
    never reads a path a user names on its own disk). The loader's psf.channel check opened the server's own file
    there, and refused the job for what the server's disk holds (a 1-channel calibration at that path), which the
    worker's disk need not."""
    import h5py

    from plexloc.calibrate.fileformat import FORMAT_NAME

    h5 = tmp_path / "PSF.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["n_channels"] = 1
    for calibration in (str(h5), "../" * 12 + str(h5).lstrip("/")):  # absolute, and out of the job's folder
        _check({**GOOD, "psf": {"kind": "spline", "calibration": calibration, "channel": 1}})
    # what the check can read is still checked: another field of the same configuration
    with pytest.raises(InputError, match="px_size_nm"):
        _check({**GOOD, "px_size_nm": "big", "psf": {"kind": "spline", "calibration": str(h5), "channel": 1}})


def test_a_run_stopped_by_an_error_other_than_a_full_disk_is_not_called_a_full_disk(tmp_path, monkeypatch):
    """An OSError that is not a full disk (the earlier folder held open on Windows, no permission to replace it)
    ends the run as a full disk does; summary.csv's rows said 'stopped by a full disk', and a microscopist freed
    space for nothing. The error is named; a full disk is still called one (test_process44)."""
    out = tmp_path / "out"
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b")]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))

    def place(tmp, folder):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(workflow, "_place", place)
    with pytest.raises(PermissionError):
        workflow.process_movies(movies, out, _options(), progress=False)
    rows = _rows(out)
    assert [r["status"] for r in rows.values()] == ["interrupted", "not_started"]
    assert "full disk" not in rows["a"]["error"], rows["a"]["error"]
    assert rows["b"]["error"].startswith("not started when the run was stopped (PermissionError: "), rows["b"]["error"]
    assert "Permission denied" in rows["b"]["error"]
