"""Session 40's lab walk: a simulated dSTORM-like movie (re-blinking molecules, stage drift) through plexloc simulate,
process --method mle and the separate commands, every output checked against the truth. Each test here failed on the
code before the walk's fixes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from plexloc.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "plexloc" / "examples"


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    names = list(columns)
    data = np.column_stack([np.asarray(columns[n], float) for n in names])
    np.savetxt(path, data, delimiter=",", header=",".join(names), comments="", fmt="%.6g")
    return path


def _truth(rng: np.random.Generator, n_frames: int = 200, per_frame: int = 6) -> dict[str, np.ndarray]:
    """Molecules on for 3 consecutive frames each, spread over a 6.4 um field."""
    frames, xs, ys, ids = [], [], [], []
    k = 0
    for f0 in range(0, n_frames - 3, 3):
        for _ in range(per_frame):
            x, y = rng.uniform(200, 6200, 2)
            for f in range(f0, f0 + 3):
                frames.append(f), xs.append(x), ys.append(y), ids.append(k)
            k += 1
    n = len(frames)
    return {"frame": np.array(frames), "x_nm": np.array(xs), "y_nm": np.array(ys), "z_nm": np.zeros(n),
            "photons": np.full(n, 2000.0), "id": np.array(ids)}


def _evaluate(truth: Path, pred: Path, capsys) -> tuple[str, str]:
    assert main(["evaluate", str(truth), str(pred)]) == 0
    out = capsys.readouterr()
    return out.out, out.err


def test_evaluate_says_when_the_predictions_are_a_merged_table(tmp_path, capsys):
    """plexloc evaluate scored merged.csv per frame without a word: a merged row sits in its event's first frame with
    the event's summed photons (the walk's 2D MLE table: JI 85 % before merging, 32 % after, photons +119 %)."""
    rng = np.random.default_rng(1)
    t = _truth(rng)
    truth = _write_csv(tmp_path / "truth.csv", t)
    first = np.r_[True, t["id"][1:] != t["id"][:-1]]
    merged = {k: v[first] for k, v in t.items() if k != "id"}
    merged["photons"] = merged["photons"] * 3
    merged["n_merged"] = np.full(first.sum(), 3)
    merged["frame_last"] = merged["frame"] + 2
    pred = _write_csv(tmp_path / "merged.csv", merged)
    out, err = _evaluate(truth, pred, capsys)
    assert "jaccard" in out
    assert "merged table" in err and "n_merged" in err and "before plexloc merge" in err
    # an unmerged table (or one whose rows are all n_merged 1) is not warned about
    unmerged = _write_csv(tmp_path / "locs.csv", {k: v for k, v in t.items() if k != "id"})
    _, err = _evaluate(truth, unmerged, capsys)
    assert "merged table" not in err


def test_evaluate_says_when_the_errors_follow_the_simulated_drift(tmp_path, capsys):
    """truth.csv of plexloc simulate --drift-nm holds the sample's own positions and truth_drift.csv the drift: a table
    scored before its drift correction had the drift in its RMSE and biases (46 nm instead of 20 in the walk) and
    nothing said so. Now said where the matched errors follow truth_drift.csv; a corrected table is not warned about."""
    rng = np.random.default_rng(2)
    t = _truth(rng)
    truth = _write_csv(tmp_path / "truth.csv", t)
    frames = np.arange(200)
    drift = np.column_stack([60.0 * frames / 199, -40.0 * frames / 199, np.zeros(200)])
    _write_csv(tmp_path / "truth_drift.csv", {"frame": frames, "x_nm": drift[:, 0], "y_nm": drift[:, 1],
                                              "z_nm": drift[:, 2]})
    noise = rng.normal(0, 8.0, (len(t["frame"]), 2))
    base = {k: v for k, v in t.items() if k != "id"}
    drifting = _write_csv(tmp_path / "locs.csv", {**base, "x_nm": t["x_nm"] + drift[t["frame"], 0] + noise[:, 0],
                                                  "y_nm": t["y_nm"] + drift[t["frame"], 1] + noise[:, 1]})
    _, err = _evaluate(truth, drifting, capsys)
    assert "follow the stage drift" in err and "truth_drift.csv" in err and "drift-corrected" in err
    corrected = _write_csv(tmp_path / "locs_dc.csv", {**base, "x_nm": t["x_nm"] + noise[:, 0],
                                                      "y_nm": t["y_nm"] + noise[:, 1]})
    _, err = _evaluate(truth, corrected, capsys)
    assert "stage drift" not in err


@pytest.fixture(scope="module")
def walk3d(tmp_path_factory):
    """A small 3D movie (astigmatic, re-blinking molecules, drift 50 / 30 / 40 nm) through process --method mle."""
    d = tmp_path_factory.mktemp("walk40")
    sim = d / "sim"
    assert main(["simulate", str(EXAMPLES / "3d_astigmatic.yaml"), "--frames", "1000", "--frame-size", "40", "40",
                 "--density", "0.3", "--drift-nm", "50", "30", "40", "--blinks-per-molecule", "10", "--seed", "3",
                 "--out", str(sim), "--device", "cpu"]) == 0
    out = d / "results"
    assert main(["process", str(sim / "movie.tif"), "--method", "mle", "--config", str(sim / "config.yaml"),
                 "--out", str(out), "--device", "cpu"]) == 0
    return sim, out / "movie"


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_process_says_the_z_drift_uncertainty(walk3d):
    """plexloc drift prints 'z known to +-N nm'; process dropped it: summary.json had the lateral uncertainty only and
    report.html read '... 34 nm in z, known to +-1 nm rms' (the lateral figure, rounded; z's was 2.0 nm)."""
    _, folder = walk3d
    s = json.loads((folder / "summary.json").read_text())
    assert s["drift"]["state"] == "applied"
    z_unc = s["drift"]["z_uncertainty_nm"]
    assert z_unc is not None and z_unc > 0 and s["drift"]["z_unreliable"] is False
    made = _text((folder / "report.html").read_text()).split("How this table was made", 1)[1]
    assert "rms in x and y" in made and f"z to +-{z_unc:.1f} nm" in made
    assert "drift range z (nm)" in s["report"]["summary"]


def test_process_report_gives_the_frc_of_the_merged_table(walk3d):
    """report.html (and summary.json's copy of its summary) gave the FRC of the table before merging with the advice
    to 'run plexloc merge first', while summary.json and summary.csv gave merged.csv's: two values for one movie."""
    _, folder = walk3d
    s = json.loads((folder / "summary.json").read_text())
    assert s["frc"]["resolution_nm"] is not None and s["frc"]["caveat"] is None
    reported = s["report"]["summary"]["FRC resolution (nm)"]
    assert float(reported.split()[0]) == pytest.approx(s["frc"]["resolution_nm"], abs=0.05)
    assert "merged.csv" in reported and "run plexloc merge first" not in reported
    text = _text((folder / "report.html").read_text())
    assert "run plexloc merge first" not in text
    # NeNA stays the table before merging (a merged table has none)
    assert s["nena"]["sigma_nm"] is not None and s["nena"]["pairs"] > 100
    assert list(s["steps"])[:4] == ["fit", "drift", "merge", "report"]


def test_nena_standard_error_is_not_printed_as_zero():
    """A NeNA of 12,270 pairs read '7.1 ± 0.0' (its standard error 0.047 nm)."""
    from plexloc.render.report import build_report
    from plexloc.table import LocTable

    rng = np.random.default_rng(4)
    n_pairs, per = 100, 150  # 150 molecules in each of 100 pairs of frames over 10 x 10 um (some chance neighbours)
    n = n_pairs * per
    x, y = rng.uniform(0, 10_000, n), rng.uniform(0, 10_000, n)
    first = np.repeat(np.arange(n_pairs) * 2, per)
    t = LocTable({"frame": np.r_[first, first + 1].astype(np.int64),
                  "x_nm": np.r_[x, x] + rng.normal(0, 7.0, 2 * n), "y_nm": np.r_[y, y] + rng.normal(0, 7.0, 2 * n),
                  "z_nm": np.zeros(2 * n), "photons": np.full(2 * n, 1000.0)})
    value = build_report(t).summary["NeNA precision (nm)"]
    sigma, se = (float(v) for v in re.match(r"([\d.]+) ± ([\d.e-]+)", value).groups())
    assert sigma == pytest.approx(7.0, abs=0.3)
    assert 0 < se < 0.05, value


def test_sigterm_leaves_no_temporary_file(tmp_path):
    """SIGTERM (a scheduler, timeout, kill) killed plexloc simulate where it stood: its movie's temporary file
    (.movie.tif.*.tmp.tif, 125 MB after 5 s of the walk's movie) stayed beside the output for good, and exit code -15.
    Only plexloc process handled it; now every command ends on SIGTERM as on Ctrl-C: nothing left, exit code 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sim"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 64 x 64 px frames: the temporary file is there ~2 s after the start (~6 s at the walk's 128 x 128), and the
    # 20,000 frames take ~1 min, so that the signal comes mid-movie
    proc = subprocess.Popen([sys.executable, "-m", "plexloc.cli.main", "simulate", str(EXAMPLES / "2d_gaussian.yaml"),
                             "--frames", "20000", "--frame-size", "64", "64", "--out", str(out), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out.is_dir() and any(p.name.startswith(".movie.tif") for p in out.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert sorted(p.name for p in out.iterdir()) == []
