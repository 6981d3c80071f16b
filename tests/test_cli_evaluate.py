"""``plexloc evaluate`` end to end, through ``plexloc.cli.main.main``."""

from __future__ import annotations

import json

import pytest

from plexloc.cli.main import main
from plexloc.evaluate.metrics import CORE_KEYS

HEADER = "frame,x_nm,y_nm,z_nm,photons"


def _write(path, rows, header=HEADER):
    path.write_text("\n".join([header, *(",".join(str(v) for v in r) for r in rows)]) + "\n")
    return path


@pytest.fixture
def tables(tmp_path):
    # 3 truths; 2 found with dx = 6, dy = 8 (10 nm) and dz = 20 nm; 1 spurious in another frame
    truth_rows = [(0, 1000, 1000, 0, 1000), (0, 3000, 1000, 100, 1000), (1, 500, 500, 0, 1000)]
    truth = _write(tmp_path / "truth.csv", truth_rows)
    pred = _write(tmp_path / "pred.csv", [(0, 1006, 1008, 20, 900), (0, 3006, 1008, 80, 900), (2, 500, 500, 0, 900)])
    return truth, pred


def test_evaluate_3d_prints_table_and_writes_json(tables, tmp_path, capsys):
    truth, pred = tables
    out = tmp_path / "res" / "metrics.json"
    assert main(["evaluate", str(truth), str(pred), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "jaccard" in printed and "%" in printed and "nm" in printed
    d = json.loads(out.read_text())
    assert set(CORE_KEYS) <= set(d)
    assert (d["tp"], d["fp"], d["fn"], d["dim"]) == (2, 1, 1, 3)
    assert d["jaccard"] == pytest.approx(50.0)
    assert d["rmse_lat"] == pytest.approx(10.0)
    assert d["rmse_ax"] == pytest.approx(20.0)
    assert d["eff_lat"] == pytest.approx(100.0 - (50.0**2 + 10.0**2) ** 0.5)
    assert d["eff_ax"] == pytest.approx(100.0 - (50.0**2 + 10.0**2) ** 0.5)
    assert "color_accuracy" not in d and "gridding_dev_x" not in d
    assert (d["truth_file"], d["pred_file"]) == (str(truth), str(pred))
    assert "NaN" not in out.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # no temporary file left


def test_evaluate_2d_axial_keys_are_null(tables, tmp_path):
    truth, pred = tables
    out = tmp_path / "m2.json"
    assert main(["evaluate", str(truth), str(pred), "--dim", "2", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert set(CORE_KEYS) <= set(d)
    for key in ("rmse_ax", "rmse_vol", "eff_ax", "eff_3d", "bias_z"):
        assert d[key] is None, key
    assert d["rmse_lat"] == pytest.approx(10.0) and d["dim"] == 2


def test_evaluate_thresholds_pixel_size_and_colours(tmp_path):
    header = HEADER + ",color"
    truth = _write(tmp_path / "t.csv", [(0, 150, 150, 0, 1000, 0), (0, 1150, 150, 0, 1000, 1)], header)
    pred = _write(tmp_path / "p.csv", [(0, 150, 150, 0, 1000, 0), (0, 1250, 150, 0, 1000, -1)], header)
    out = tmp_path / "m.json"
    args = ["evaluate", str(truth), str(pred), "--px-size", "100", "--json", str(out)]
    assert main([*args, "--max-lat", "50"]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["color_accuracy"], d["color_rejection"], d["max_lat_nm"]) == (1, 100.0, 0.0, 50.0)
    assert main(args) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["color_accuracy"], d["color_rejection"]) == (2, 50.0, 50.0)
    assert (d["gridding_dev_x"], d["gridding_dev_y"], d["px_size_nm"]) == (9.0, 9.0, 100.0)


def test_missing_column_exits_2_naming_file_and_column(tables, tmp_path, capsys):
    truth, _ = tables
    bad = _write(tmp_path / "bad.csv", [(0, 1000, 0, 1000)], header="frame,y_nm,z_nm,photons")
    assert main(["evaluate", str(truth), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(bad) in err and "x_nm" in err


def test_bad_pixel_size_exits_2(tables, capsys):
    truth, pred = tables
    assert main(["evaluate", str(truth), str(pred), "--px-size", "-1"]) == 2
    assert "px_size_nm" in capsys.readouterr().err


def test_bad_dim_is_a_usage_error(tables):
    truth, pred = tables
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(truth), str(pred), "--dim", "4"])
    assert exc.value.code == 2


def test_evaluate_scores_a_2d_truth_in_2d_by_default(tmp_path, capsys):
    """A 2D truth (z 0 everywhere) was scored in 3D by default: an eff_3d (83 %) above eff_lat (78.7 %) on a
    user's 2D movie. The default now follows the truth; --dim still chooses."""
    truth = _write(tmp_path / "t.csv", [(0, 1000, 1000, 0, 1000), (0, 3000, 1000, 0, 1000)])
    pred = _write(tmp_path / "p.csv", [(0, 1006, 1008, 0, 900), (0, 3006, 1008, 0, 900)])
    out = tmp_path / "m.json"
    assert main(["evaluate", str(truth), str(pred), "--json", str(out)]) == 0
    assert "scored in 2D (the truth has no z" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["dim"] == 2 and d["eff_3d"] is None
    assert main(["evaluate", str(truth), str(pred), "--dim", "3", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["dim"] == 3
