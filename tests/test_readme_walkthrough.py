"""Defects found by running README.md's commands in order as a new user would (simulate, evaluate, demo,
the render/frc/report helps, and the job service's worker and download)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io import write_locs
from plexloc.table import LocTable


def _table(n: int = 40, seed: int = 0) -> LocTable:
    rng = np.random.default_rng(seed)
    return LocTable({
        "frame": np.repeat(np.arange(n // 4), 4).astype(np.int64),
        "x_nm": rng.uniform(500, 5500, n), "y_nm": rng.uniform(500, 5500, n), "z_nm": np.zeros(n),
        "photons": rng.uniform(1000, 5000, n), "sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 10.0),
    })


@pytest.mark.parametrize("name", ["pred.thunderstorm.csv", "pred.hdf5", "pred.smlm"])
def test_evaluate_reads_every_table_format_by_name(tmp_path, capsys, name):
    """The README: every command reads any supported format by its name. `plexloc evaluate` read plexloc .csv/.h5
    only: a ThunderSTORM table was refused with a hint to rename it to what it was already called."""
    truth = _table()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(truth, tmp_path / name, **({"px_size_nm": 100.0} if name.endswith(".hdf5") else {}))
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / name), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "jaccard" in out
    import json

    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["tp"] == len(truth) and scores["fp"] == 0


def test_evaluate_help_names_the_formats(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert ".thunderstorm.csv" in out and "--camera-px-size" in out


def test_simulate_counts_rows_and_emitters(tmp_path, capsys):
    """truth.csv has one row per emitter and frame it is on; the message called the rows 'emitters'."""
    from plexloc.io.tables import read_table

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "px_size_nm: 100.0\nframe_size: [32, 32]\npsf: {kind: gaussian, sigma_nm: 130.0}\n"
        "camera: {kind: emccd, qe: 0.9, spurious_charge: 0.002, em_gain: 300.0, e_per_adu: 45.0, baseline: 100.0, "
        "read_sigma: 74.4}\nemitters: {density_per_um2: 2.0, photons_range: [1000.0, 2000.0], on_time_frames: 3.0}\n"
    )
    assert main(["simulate", str(cfg), "--frames", "6", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    truth = read_table(tmp_path / "sim" / "truth.csv")
    n_ids = len(set(truth["id"].tolist()))
    assert n_ids < len(truth)  # emitters on for several frames: the two counts differ
    assert f"({len(truth)} localizations of {n_ids} emitters)" in out


def test_demo_help_describes_the_job(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "metrics.json" in out and "render.png" in out


@pytest.mark.parametrize("cmd", [["render"], ["frc"], ["report"]])
def test_commands_that_write_no_table_do_not_offer_picasso_output(capsys, cmd):
    with pytest.raises(SystemExit):
        main([*cmd, "--help"])
    assert "write Picasso" not in capsys.readouterr().out


def test_worker_makes_its_work_folder_before_claiming(tmp_path, monkeypatch, capsys):
    """`plexloc worker --work-dir DIR` with DIR missing claimed a job, then died on it ('No such file or
    directory'), leaving the job assigned until its lease lapsed."""
    import plexloc.service.agent as agent_mod

    seen = {}

    class FakeAgent:
        def __init__(self, server, token, *, work_dir=None, **kw):
            seen["work_dir_is_dir"] = work_dir is not None and Path(work_dir).is_dir()
            self.stop = threading.Event()
            self.runtime = None

        def run(self, max_jobs=None):
            return 0

        def close(self):
            pass

    monkeypatch.setattr(agent_mod, "Agent", FakeAgent)
    work = tmp_path / "not" / "yet"
    assert main(["worker", "--server", "http://127.0.0.1:9", "--token", "plxw_x", "--work-dir", str(work), "--once",
                 "--gpus", "0", "--container-runtime", "none"]) == 0
    assert seen["work_dir_is_dir"]
    # a work folder that cannot be made is one line and exit code 2, before any job is claimed
    (tmp_path / "file").write_text("x")
    seen.clear()
    assert main(["worker", "--server", "http://127.0.0.1:9", "--token", "plxw_x", "--work-dir",
                 str(tmp_path / "file" / "sub"), "--once", "--gpus", "0"]) == 2
    assert "work folder" in capsys.readouterr().err and not seen


def test_download_of_an_unfinished_job_says_so(tmp_path, monkeypatch, capsys):
    """`plexloc download JOB` of a job still running printed nothing and exited 0 (later: wrote the outputs uploaded so
    far); it is refused, nothing written."""
    import plexloc.cli.download as download

    class FakeClient:
        def download(self, job_id, out_dir):
            return []

        def job(self, job_id):
            return {"state": "running"}

    monkeypatch.setattr(download, "client_from", lambda args: contextlib.nullcontext(FakeClient()))
    assert main(["download", "abc123", "--server", "http://127.0.0.1:9", "--token", "plxu_x",
                 "--out", str(tmp_path / "res")]) == 1
    err = capsys.readouterr().err
    assert "abc123 is running" in err and "not final yet; nothing written" in err
    assert not (tmp_path / "res").exists()
