"""Six small defects left by earlier reviews (review 34): each test failed on the code before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.table import LocTable

from test_cli_evaluate import HEADER, _write  # noqa: E402,F401  (the same CSV writer)


# --- 1. a 2D table with NaN z reads; NaN x/y is still refused; 3D consumers still refuse NaN z ---------------------


@pytest.fixture
def tables_2d(tmp_path):
    """Truth and prediction of a 2D fit that wrote NaN z: 2 of 3 found with dx = 6, dy = 8 (10 nm), 1 spurious."""
    truth = _write(tmp_path / "truth.csv", [(0, 1000, 1000, "nan", 1000), (0, 3000, 1000, "nan", 1000),
                                             (1, 500, 500, "nan", 1000)])
    pred = _write(tmp_path / "pred.csv", [(0, 1006, 1008, "nan", 900), (0, 3006, 1008, "nan", 900),
                                           (2, 500, 500, "nan", 900)])
    return truth, pred


def test_a_2d_csv_with_nan_z_is_read(tables_2d):
    from plexloc.io.formats import read_locs
    from plexloc.io.tables import read_table

    truth, _ = tables_2d
    for reader in (read_table, read_locs):
        t = reader(truth)
        assert len(t) == 3 and bool(np.all(np.isnan(t["z_nm"])))
        assert t["x_nm"].tolist() == [1000.0, 3000.0, 500.0]


def test_nan_z_in_some_rows_is_read_as_nan_there(tmp_path):
    from plexloc.io.tables import read_table

    t = read_table(_write(tmp_path / "t.csv", [(0, 1, 2, 30, 4), (1, 1, 2, "nan", 4)]))
    assert t["z_nm"][0] == 30.0 and np.isnan(t["z_nm"][1])


def test_evaluate_dim_2_scores_a_table_with_nan_z(tables_2d, tmp_path):
    truth, pred = tables_2d
    out = tmp_path / "m.json"
    assert main(["evaluate", str(truth), str(pred), "--dim", "2", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"], d["dim"]) == (2, 1, 1, 2)
    assert d["jaccard"] == pytest.approx(50.0) and d["rmse_lat"] == pytest.approx(10.0)
    assert d["rmse_ax"] is None


def test_evaluate_without_dim_scores_a_nan_z_truth_in_2d(tables_2d, tmp_path, capsys):
    truth, pred = tables_2d
    out = tmp_path / "m.json"
    assert main(["evaluate", str(truth), str(pred), "--json", str(out)]) == 0
    assert "scored in 2D" in capsys.readouterr().out
    assert json.loads(out.read_text())["dim"] == 2


def test_evaluate_dim_3_refuses_nan_z_naming_the_file_and_column(tables_2d, capsys):
    truth, pred = tables_2d
    assert main(["evaluate", str(truth), str(pred), "--dim", "3"]) == 2
    err = capsys.readouterr().err
    assert "truth.csv" in err and "'z_nm'" in err and "3 non-finite" in err and "dim=2 ignores z" in err


@pytest.mark.parametrize(("column", "row"), [("x_nm", "0,nan,2,3,4"), ("y_nm", "0,1,nan,nan,4")])
def test_nan_x_or_y_is_still_refused_with_file_column_and_line(tmp_path, column, row):
    from plexloc.io.tables import read_table

    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n0,1,2,nan,4\n" + row + "\n")
    with pytest.raises(InputError, match=rf"bad\.csv: line 3: column '{column}' is nan; required columns must be finite"):
        read_table(path)


def test_infinite_z_is_still_refused(tmp_path):
    from plexloc.io.tables import read_table

    path = _write(tmp_path / "inf.csv", [(0, 1, 2, "nan", 4), (0, 1, 2, "-inf", 4)])
    with pytest.raises(InputError, match=r"inf\.csv: line 3: column 'z_nm' is -inf"):
        read_table(path)


def _nan_z_table() -> LocTable:
    return LocTable({"frame": np.array([0, 1, 5]), "x_nm": np.array([10.0, 12.0, 500.0]),
                     "y_nm": np.array([10.0, 11.0, 300.0]), "z_nm": np.full(3, np.nan),
                     "photons": np.array([1000.0, 1000.0, 900.0])})


@pytest.mark.parametrize("name", ["t.csv", "t.h5", "t.smlm"])
def test_a_2d_table_with_nan_z_round_trips_through_every_format(tmp_path, name):
    """Written (z NaN in every row: a 2D table) and read back with z still NaN; positions unchanged. ThunderSTORM
    and Picasso have no NaN convention for z: their 2D files have no z (read back as 0), tested apart."""
    from plexloc.io.formats import read_locs, write_locs

    table = _nan_z_table()
    write_locs(table, tmp_path / name)
    back = read_locs(tmp_path / name)
    assert back["x_nm"].tolist() == [10.0, 12.0, 500.0] and back["frame"].tolist() == [0, 1, 5]
    assert bool(np.all(np.isnan(back["z_nm"])))


def test_a_2d_table_with_nan_z_goes_to_picasso_as_a_2d_file(tmp_path):
    """Picasso has no NaN convention for z: a table without any z is written without the z field (Picasso's 2D; read
    back as z NaN, unknown, since session 47: it was 0), not as a 3D file of NaN z."""
    import h5py

    from plexloc.io.formats import read_locs, write_locs

    table = _nan_z_table()
    table = table.with_columns(sigma_x_nm=np.full(3, 10.0), sigma_y_nm=np.full(3, 10.0))
    write_locs(table, tmp_path / "t.hdf5", px_size_nm=100.0)
    with h5py.File(tmp_path / "t.hdf5", "r") as f:
        assert "z" not in f["locs"].dtype.names
    back = read_locs(tmp_path / "t.hdf5", px_size_nm=100.0)
    assert np.isnan(back["z_nm"]).all() and len(back) == 3
    assert np.allclose(back["x_nm"], [10.0, 12.0, 500.0])


def test_a_3d_consumer_of_z_still_names_the_file_and_column(tmp_path):
    """The voxel Jaccard index needs z: a NaN z read from a file is refused there, naming the file and column."""
    from plexloc.evaluate.voxel import voxel_jaccard
    from plexloc.io.tables import read_table

    t = read_table(_write(tmp_path / "t.csv", [(0, 1, 2, "nan", 4)]))
    with pytest.raises(InputError, match=r"t\.csv: .*column 'z_nm' has 1 non-finite value\(s\), first at row 0"):
        voxel_jaccard(t, t)


def test_the_crlb_of_a_3d_psf_refuses_nan_z_naming_the_file(tmp_path):
    """table_crlb gave NaN bounds for NaN-z rows of a 3D PSF without a word; a 2D PSF's bound ignores z."""
    from plexloc.camera import IdealCamera
    from plexloc.evaluate.uncertainty import table_crlb
    from plexloc.io.tables import read_table
    from plexloc.psf import AstigmaticPSF, GaussianPSF

    t = read_table(_write(tmp_path / "t.csv", [(0, 500, 500, "nan", 1000, 10), (0, 900, 500, 0, 1000, 10)],
                          header=HEADER + ",bg"))
    flat = table_crlb(t, [(GaussianPSF(sigma_nm=130.0), IdealCamera())])
    assert flat["crlb_x_nm"][0] == pytest.approx(flat["crlb_x_nm"][1]) and np.isfinite(flat["crlb_x_nm"][0])
    with pytest.raises(InputError, match=r"t\.csv: column 'z_nm' has 1 non-finite value\(s\), first at row 0 .*3D PSF"):
        table_crlb(t, [(AstigmaticPSF(), IdealCamera())])


# --- 2. a predicted sigma of 0 is an InputError, not an infinite z-score ----------------------------------------------


def _sigma_case(sigma_x):
    from plexloc.evaluate.matching import match

    n = 4
    truth = LocTable({"frame": np.arange(n), "x_nm": np.full(n, 1000.0), "y_nm": np.full(n, 1000.0),
                      "z_nm": np.zeros(n), "photons": np.full(n, 1000.0)}, source="truth.csv")
    pred = LocTable({**truth.to_dict(), "x_nm": 1000.0 + np.array([10.0, -10.0, 20.0, -20.0]),
                     "y_nm": 1000.0 + np.array([5.0, -5.0, 5.0, -5.0]), "sigma_x_nm": np.asarray(sigma_x, float),
                     "sigma_y_nm": np.full(n, 5.0)}, source="pred.csv")
    return truth, pred, match(truth, pred, dim=2)


def test_zscores_with_positive_sigmas_are_unchanged():
    from plexloc.evaluate.uncertainty import error_scores

    truth, pred, m = _sigma_case([10.0, 10.0, 20.0, 10.0])
    bound = {"crlb_x_nm": np.full(4, 10.0), "crlb_y_nm": np.full(4, 10.0), "crlb_z_nm": np.full(4, np.nan)}
    s = error_scores(pred, m, bound, dim=2)
    assert s["zscore_std_y"] == pytest.approx(1.0)
    assert s["zscore_std_x"] == pytest.approx(float(np.std([1.0, -1.0, 1.0, -2.0])))


@pytest.mark.parametrize("value", [0.0, -3.0])
def test_a_zero_or_negative_sigma_is_refused_naming_column_and_rows(value):
    """Was: a RuntimeWarning 'divide by zero', zscore_std_x NaN and zscore_rsd_x 2.22 (an infinite z-score counted
    in the median), tail4 counting the row as an outlier."""
    from plexloc.evaluate.uncertainty import (
        error_scores,
        sigma_calibration,
        zscore_by_neighbour,
        zscore_slabs,
    )

    truth, pred, m = _sigma_case([10.0, 10.0, value, value])
    bound = {"crlb_x_nm": np.full(4, 10.0), "crlb_y_nm": np.full(4, 10.0), "crlb_z_nm": np.full(4, np.nan)}
    msg = rf"pred\.csv: column 'sigma_x_nm' has 2 row\(s\) with a predicted sigma <= 0, first at row 2 \({value}\)"
    for call in (lambda: error_scores(pred, m, bound, dim=2),
                 lambda: zscore_slabs(pred, m, truth, [-100.0, 100.0]),
                 lambda: zscore_by_neighbour(pred, m, truth),
                 lambda: sigma_calibration(pred, m, truth, dim=2, min_pairs=2)):
        with pytest.raises(InputError, match=msg):
            call()


# --- 3. plexloc evaluate --max-ax with --dim 2 ------------------------------------------------------------------------


@pytest.fixture
def tables_3d(tmp_path):
    """2 of 3 truths found with dx = 6, dy = 8 (10 nm) and |dz| = 20 nm; 1 spurious in another frame."""
    truth = _write(tmp_path / "truth.csv", [(0, 1000, 1000, 0, 1000), (0, 3000, 1000, 100, 1000), (1, 500, 500, 0, 1000)])
    pred = _write(tmp_path / "pred.csv", [(0, 1006, 1008, 20, 900), (0, 3006, 1008, 80, 900), (2, 500, 500, 0, 900)])
    return truth, pred


def test_evaluate_refuses_max_ax_with_dim_2_before_reading(tmp_path, capsys):
    """--max-ax was ignored without a word with --dim 2 (2D matching has no axial limit); the tables are missing here:
    the conflict is named first, and nothing is written."""
    out = tmp_path / "m.json"
    argv = ["evaluate", str(tmp_path / "t.csv"), str(tmp_path / "p.csv"), "--dim", "2", "--max-ax", "10",
            "--json", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--max-ax 10" in err and "--dim 2" in err and "not found" not in err, err
    assert not out.exists()


def test_evaluate_max_ax_still_applies_in_3d(tables_3d, tmp_path):
    truth, pred = tables_3d
    out = tmp_path / "m.json"
    assert main(["evaluate", str(truth), str(pred), "--dim", "3", "--max-ax", "10", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"], d["max_ax_nm"]) == (0, 3, 3, 10.0)  # |dz| = 20 nm > 10 nm: nothing matches
    assert main(["evaluate", str(truth), str(pred), "--dim", "2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["tp"] == 2  # --dim 2 without --max-ax: as before
    assert main(["evaluate", str(truth), str(pred), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["max_ax_nm"] == 500.0  # the default


def test_evaluate_warns_when_a_2d_truth_drops_the_max_ax_given(tmp_path, capsys):
    """No --dim, and a truth without z: scored in 2D, and --max-ax said to be unused (stderr), exit 0."""
    truth = _write(tmp_path / "t.csv", [(0, 1000, 1000, 0, 1000)])
    assert main(["evaluate", str(truth), str(truth), "--max-ax", "10"]) == 0
    captured = capsys.readouterr()
    assert "scored in 2D" in captured.out
    assert "warning: --max-ax 10 is not used" in captured.err and "--dim 3" in captured.err


# --- 4. write_smlm: integer columns beyond uint32 as int64 ------------------------------------------------------------


def _smlm_dtypes(path) -> dict[str, str]:
    import zipfile

    fmt = next(iter(json.loads(zipfile.ZipFile(path).read("manifest.json"))["formats"].values()))
    return dict(zip(fmt["headers"], fmt["dtype"]))


def test_smlm_keeps_integers_beyond_uint32_exact_as_int64(tmp_path):
    """Was: id = 2**40 + 1 and n_merged = 2**53 + 1 stored as float64 (the latter read back as 2**53)."""
    from plexloc.io.smlm import read_smlm, write_smlm

    big = [2**40 + 1, 2**53 + 1, 2**62 + 3]
    t = LocTable({"frame": [0, 1, 2], "x_nm": [1.0, 2.0, 3.0], "y_nm": [1.0, 2.0, 3.0], "z_nm": [0.0, 0.0, 0.0],
                  "photons": [1.0, 1.0, 1.0], "id": np.array(big), "n_merged": np.array([2**53 + 1, 1, 2]),
                  "color": np.array([0, -1, 1]), "frame_last": np.array([0, 1, 2])})
    path = tmp_path / "big.smlm"
    write_smlm(t, path)
    dtypes = _smlm_dtypes(path)
    assert (dtypes["id"], dtypes["n_merged"]) == ("int64", "int64")
    assert (dtypes["frame"], dtypes["frame_last"], dtypes["color"]) == ("uint32", "uint32", "float64")  # as before
    back = read_smlm(path)
    assert back["id"].dtype == np.int64 and back["id"].tolist() == big
    assert back["id"][0] == 2**40 + 1 and back["n_merged"].tolist() == [2**53 + 1, 1, 2]
    assert back["color"].tolist() == [0, -1, 1] and back == t


# --- 5. plexloc drift --device defaults to auto, as every other command ----------------------------------------------


class _Stop(Exception):
    pass


def _drift_device(tmp_path, monkeypatch, extra, *, cuda: bool) -> str:
    """The device ``plexloc drift --engine rcc`` hands the RCC engine (captured before any FFT runs)."""
    import torch

    import plexloc.post.drift as drift_mod

    seen = {}

    def fake_estimate(table, **kw):
        seen["device"] = kw.get("device")
        raise _Stop

    monkeypatch.setattr(drift_mod, "estimate_drift", fake_estimate)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    locs = _write(tmp_path / "l.csv", [(f, 1000 + f, 1000, 0, 1000) for f in range(4)])
    with pytest.raises(_Stop):
        main(["drift", str(locs), "--out", str(tmp_path / "o.csv"), "--engine", "rcc", *extra])
    return seen["device"]


def test_drift_device_defaults_to_auto(tmp_path, monkeypatch):
    """Was: --device cpu by default (every other command: auto), so RCC ran on the CPU with a GPU present."""
    from plexloc.cli.main import build_parser

    assert build_parser().parse_args(["drift", "l.csv", "--out", "o.csv"]).device == "auto"
    assert _drift_device(tmp_path, monkeypatch, [], cuda=True) == "cuda"
    assert _drift_device(tmp_path, monkeypatch, [], cuda=False) == "cpu"
    assert _drift_device(tmp_path, monkeypatch, ["--device", "cpu"], cuda=True) == "cpu"


def test_drift_device_help_says_auto_is_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "auto (default: cuda where there is one, else cpu)" in help_text and "cpu (default)" not in help_text


# --- 6. plexloc convert IN --out OUT ----------------------------------------------------------------------------------


@pytest.fixture
def locs_csv(tmp_path):
    return _write(tmp_path / "in.csv", [(0, 1000.5, 2000.25, -30, 1500), (3, 10, 20, 0, 800)])


def test_convert_takes_out_as_an_option(locs_csv, tmp_path):
    """Was: 'plexloc convert IN --out OUT' an argparse usage error (OUT was positional only)."""
    from plexloc.io.formats import read_locs

    out = tmp_path / "o.thunderstorm.csv"
    assert main(["convert", str(locs_csv), "--out", str(out)]) == 0
    back = read_locs(out)
    assert back["frame"].tolist() == [0, 3] and back["x_nm"].tolist() == [1000.5, 10.0]
    assert back["z_nm"].tolist() == [-30.0, 0.0] and back["photons"].tolist() == [1500.0, 800.0]


def test_convert_positional_out_still_works_and_the_same_out_twice_is_fine(locs_csv, tmp_path):
    from plexloc.io.formats import read_locs

    out = tmp_path / "o.h5"
    assert main(["convert", str(locs_csv), str(out)]) == 0
    assert read_locs(out)["y_nm"].tolist() == [2000.25, 20.0]
    out.unlink()
    assert main(["convert", str(locs_csv), str(out), "--out", str(out)]) == 0 and out.exists()


def test_convert_refuses_two_different_outputs_and_none(locs_csv, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.h5"
    assert main(["convert", str(locs_csv), str(a), "--out", str(b)]) == 2
    err = capsys.readouterr().err
    assert f"two outputs given: {a} and --out {b}; give one" in err
    assert not a.exists() and not b.exists()
    assert main(["convert", str(locs_csv)]) == 2
    assert "no output given: OUT or --out OUT" in capsys.readouterr().err
