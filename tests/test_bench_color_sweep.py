"""bench/color_sweep.py: colour accuracy and rejection as the colour-probability threshold moves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from plexloc.table import LocTable

_spec = importlib.util.spec_from_file_location("color_sweep", Path(__file__).resolve().parents[1] / "bench" / "color_sweep.py")
color_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(color_sweep)


def test_sweep_counts_rejected_and_wrong_colours_of_matched_pairs():
    n = 100
    frame = np.arange(n)
    truth = LocTable({"frame": frame, "x_nm": np.full(n, 500.0), "y_nm": np.full(n, 500.0), "z_nm": np.zeros(n),
                      "photons": np.full(n, 1000.0), "color": frame % 2})
    # 90 right and sure (0.999), 6 right and unsure (0.7), 4 wrong and unsure (0.6); one extra false positive
    prob = np.r_[np.full(90, 0.999), np.full(6, 0.7), np.full(4, 0.6)]
    colour = np.r_[frame[:96] % 2, 1 - frame[96:] % 2]
    pred = LocTable({"frame": np.r_[frame, 0], "x_nm": np.full(n + 1, 510.0), "y_nm": np.r_[np.full(n, 500.0), 5000.0],
                     "z_nm": np.zeros(n + 1), "photons": np.full(n + 1, 1000.0),
                     "color": np.r_[colour, 0], "color_prob": np.r_[prob, 0.99]})
    rows = color_sweep.sweep(truth, pred, [0.5, 0.65, 0.9])
    assert [r["tp"] for r in rows] == [100, 100, 100]
    assert [r["rejection"] for r in rows] == pytest.approx([0.0, 4.0, 10.0])
    assert [r["accuracy"] for r in rows] == pytest.approx([96.0, 96.0, 90.0])  # correct / TP
    assert [r["accuracy_assigned"] for r in rows] == pytest.approx([96.0, 100.0, 100.0])  # correct / (TP - rejected)
    assert color_sweep.at_rejection(rows, 3.0)["threshold"] == 0.65
    assert color_sweep.at_rejection(rows, 50.0) is None


def _tables(tmp_path):
    """Truth and prediction CSVs of 40 matched two-colour emitters (20/60 split photons); the prediction's own
    threshold rejected the last 10 (colour -1, probability 0.8), all of which are in fact right."""
    from plexloc.io import write_table

    n = 40
    frame = np.arange(n)
    color = frame % 2
    truth = LocTable({"frame": frame, "x_nm": np.full(n, 500.0), "y_nm": np.full(n, 500.0), "z_nm": np.zeros(n),
                      "photons": np.full(n, 5000.0), "color": color})
    ch0 = np.where(color == 0, 1000.0, 3000.0)
    pred = LocTable({"frame": frame, "x_nm": np.full(n, 505.0), "y_nm": np.full(n, 500.0), "z_nm": np.zeros(n),
                     "photons": np.full(n, 5000.0), "photons_ch0": ch0, "photons_ch1": 5000.0 - ch0,
                     "sigma_photons_ch0": np.full(n, 50.0), "sigma_photons_ch1": np.full(n, 50.0),
                     "color": np.r_[color[:30], np.full(10, -1)], "color_prob": np.r_[np.full(30, 0.999), np.full(10, 0.8)]})
    write_table(truth, tmp_path / "t_truth.csv")
    write_table(pred, tmp_path / "t_pred.csv")
    return tmp_path / "t_pred.csv"


def test_thresholds_below_the_tables_own_are_left_out_or_read_from_the_photons(tmp_path):
    import json

    pred = _tables(tmp_path)
    assert color_sweep.main([str(pred), "--json", str(tmp_path / "a.json")]) == 0
    rows = json.loads((tmp_path / "a.json").read_text())["t_pred.csv"]
    assert min(r["threshold"] for r in rows) > 0.8  # below 0.8 the 10 rejected rows would count as wrong
    assert rows[0]["rejection"] == pytest.approx(25.0) and rows[0]["accuracy_assigned"] == pytest.approx(100.0)
    cfg = Path(__file__).resolve().parents[1] / "examples" / "dual_color_plex_2060.yaml"
    assert color_sweep.main([str(pred), "--config", str(cfg), "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["t_pred.csv"]
    low = rows[0]
    assert low["threshold"] == pytest.approx(0.5)
    assert low["rejection"] == pytest.approx(0.0) and low["accuracy"] == pytest.approx(100.0)  # colours read again
