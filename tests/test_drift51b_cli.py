"""Session 51 (helper drift2): plexloc drift prints RCC's 2-window checks, which reached the --json only: the 3-window
check of a sparse table's strong peak (``peak_check``, ``strong_peak``) and the bend below the warning's gate counted in
the uncertainty (``bend_below_gate_nm``). Fails on 96dea8a (neither line)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

from plexloc.cli.main import main
from plexloc.io.tables import write_table
from plexloc.post.drift import UnreliableDriftWarning
from plexloc.table import LocTable
from test_drift51_review import _sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from drift_engines39 import case_table  # noqa: E402


def _drift(table, tmp_path, capsys, *extra: str) -> tuple[str, dict]:
    write_table(LocTable({c: table[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")}), tmp_path / "t.csv")
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableDriftWarning)
        assert main(["drift", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o.csv"), "--segments", "2",
                     "--device", "cpu", "--json", str(tmp_path / "d.json"), *extra]) == 0
    return capsys.readouterr().out, json.loads((tmp_path / "d.json").read_text())


def test_a_sparse_strong_peak_check_is_printed(tmp_path, capsys):
    """Rings, 1,400 rows (700 a window), 40 nm pixels: checked on 3 windows, passed (closure 10.8 nm of 20)."""
    table, _ = _sparse("rings", 7, 1400, molecules=400)
    out, info = _drift(table, tmp_path, capsys, "--render-px", "40")
    assert info["peak_check"]["strong_peak"] and info["peak_check"]["passed"]
    line = next(s for s in out.splitlines() if "checked on 3 time windows" in s)
    assert "fewer than 1000 localizations a window" in line and "passed" in line
    assert f"within {info['peak_check']['closure_nm']:.1f} nm (20 allowed)" in line


def test_a_failed_check_at_a_small_reach_is_printed(tmp_path, capsys):
    """The same table at --max-drift 100: closure 10.7 nm of 10 allowed, failed (and NOT RELIABLE)."""
    table, _ = _sparse("rings", 7, 1400, molecules=400)
    out, info = _drift(table, tmp_path, capsys, "--render-px", "40", "--max-drift", "100")
    line = next(s for s in out.splitlines() if "checked on 3 time windows" in s)
    assert "miss adding up by" in line and "(10 allowed): failed" in line and "NOT RELIABLE" in out


def test_a_quiet_bend_is_printed_and_a_straight_drift_prints_none(tmp_path, capsys):
    """A 2-window wobble of clusters (5,000 rows, bend below the gate > 8 nm) gets the bend line; a straight drift of
    the same table kind (bend 0) and a dense table (no 3-window check) get neither line."""
    table, _ = case_table("clusters", "wobble", 5000, 0)
    out, info = _drift(table, tmp_path, capsys)
    assert info["bend_below_gate_nm"] > 8.0
    line = next(s for s in out.splitlines() if "bends" in s)
    assert f"about {info['bend_below_gate_nm']:.1f} nm rms off a curve" in line and "counted in the uncertainty" in line
    table, _ = case_table("clusters", "linear", 5000, 0)
    out, info = _drift(table, tmp_path, capsys)
    assert info.get("bend_below_gate_nm", 0.0) == pytest.approx(0.0)
    assert "bends" not in out and "checked on 3 time windows" not in out and "peak_check" not in info


def test_a_quiet_bend_that_makes_the_drift_unreliable_is_not_said_too_weak_to_warn_about(tmp_path, capsys):
    """Review (session 51): a 2-window wobble of clusters (5,000 rows, seed 2) whose quiet bend (12.0 nm) makes the
    uncertainty too large for its curve (+-12 nm for 14 nm rms): rcc_drift warns and the summary says NOT RELIABLE, so
    the bend line must not say "too weak a sign to warn about" (it did, c6e06f0)."""
    table, _ = case_table("clusters", "wobble", 5000, 2)
    out, info = _drift(table, tmp_path, capsys)
    assert info["bend_below_gate_nm"] > 8.0 and info["unreliable"] and "NOT RELIABLE" in out
    line = next(s for s in out.splitlines() if "bends" in s)
    assert "too weak a sign to warn about" not in line
    assert f"now +-{info['uncertainty_nm']:.0f} nm" in line and "not reliable, see the warning above" in line
