"""Readers of localization tables (helper io, 45): rows dropped or refused on import, and foreign columns kept under
names nobody documented.

2D CSV tables without z_nm, CSV in Windows-1252, .smlm tables without frames, Picasso's lpz / photons_unc / bg_unc and
SMAP's photerr / bgerr, and the refusal of a tab-separated file whose every comma could be a thousands separator."""

from __future__ import annotations

import json
import time
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

from plexloc.errors import InputError
from plexloc.io import read_locs, tables
from plexloc.io.tables import CsvDialectWarning, read_csv, write_csv

# --- a 2D CSV: no z_nm column ------------------------------------------------------------------------------------


def test_a_csv_without_z_nm_is_read_as_a_2d_table_with_one_warning(tmp_path):
    """Was: refused, "missing required column(s) ['z_nm']"; z_nm NaN is how plexloc holds a 2D table."""
    from plexloc.io.tables import TwoDTableWarning

    p = tmp_path / "t.csv"
    p.write_text("frame,x_nm,y_nm,photons\n0,100,200,1000\n3,150.5,250,1200\n")
    with pytest.warns(TwoDTableWarning) as caught:
        t = read_csv(p)
    assert len(caught) == 1
    assert str(caught[0].message) == (f"{p}: no column 'z_nm', so the table is read as 2D (z_nm NaN: z unknown); add "
                                      "a z_nm column if the localizations have z")
    assert t.columns == ["frame", "x_nm", "y_nm", "z_nm", "photons"]
    assert t["frame"].tolist() == [0, 3] and t["x_nm"].tolist() == [100, 150.5] and np.isnan(t["z_nm"]).all()
    # written back out: z stays unknown (nan), nothing made up, and reads back without a warning
    write_csv(t, tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_text().splitlines()[1:] == ["0,100,200,nan,1000", "3,150.5,250,nan,1200"]
    assert read_csv(tmp_path / "back.csv") == t
    # header only: an empty 2D table
    (tmp_path / "e.csv").write_text("frame,x_nm,y_nm,photons\n")
    with pytest.warns(TwoDTableWarning):
        assert len(read_csv(tmp_path / "e.csv")) == 0


def test_a_csv_without_frame_is_refused_saying_how_to_add_it(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("x_nm,y_nm,photons\n100,200,1000\n")
    with pytest.raises(InputError, match=r"t\.csv: missing required column\(s\) \['frame', 'z_nm'\]; .*: add a column "
                                         r"'frame' \(all 0 for a table of one frame or of a summed image\)"):
        read_csv(p)


@pytest.mark.filterwarnings("always::plexloc.io.tables.TwoDTableWarning")  # shown by the commands, on stderr
def test_2d_table_through_the_commands(tmp_path, capsys):
    """render, frc, drift, merge, filter, evaluate (2D truth), convert and report take a 2D CSV; none invents z."""
    from plexloc.cli.main import main

    rng = np.random.default_rng(3)
    mx, my = rng.uniform(1000, 5000, 60), rng.uniform(1000, 5000, 60)
    rows = [(f, mx[m], my[m]) for f in range(300) for m in rng.choice(60, 3, replace=False)]
    truth, pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    truth.write_text("frame,x_nm,y_nm,photons\n" + "".join(f"{f},{x:.2f},{y:.2f},2000\n" for f, x, y in rows))
    pred.write_text("frame,x_nm,y_nm,photons,sigma_x_nm,sigma_y_nm\n" + "".join(
        f"{f},{x + rng.normal(0, 10):.2f},{y + rng.normal(0, 10):.2f},1900,10,10\n" for f, x, y in rows))
    commands = [["render", str(pred), "--out", str(tmp_path / "r.png")],
                ["frc", str(pred)],
                ["drift", str(pred), "--out", str(tmp_path / "d.csv")],
                ["merge", str(pred), "--out", str(tmp_path / "m.csv")],
                ["filter", str(pred), "--out", str(tmp_path / "f.csv"), "--min-photons", "100"],
                ["evaluate", str(truth), str(pred)],
                ["convert", str(pred), str(tmp_path / "c.h5")],
                ["report", str(pred), "--out", str(tmp_path / "rep.html")]]
    for args in commands:
        assert main(args) == 0, args
        captured = capsys.readouterr()
        assert f"plexloc {args[0]}: warning: {pred}: no column 'z_nm', so the table is read as 2D" in captured.err, args
        if args[0] == "evaluate":
            assert "scored in 2D" in captured.out and "jaccard" in captured.out
    for name in ("d.csv", "m.csv", "f.csv", "c.h5"):
        back = read_locs(tmp_path / name)
        assert len(back) and np.isnan(back["z_nm"]).all(), name
    assert (tmp_path / "r.png").stat().st_size and (tmp_path / "rep.html").stat().st_size


# --- CSV in Windows-1252 -----------------------------------------------------------------------------------------

MU, DEGREE = b"\xb5", b"\xb0"  # 'µ' and '°' in Windows-1252 (and Latin-1): no UTF-8


def test_a_windows_1252_csv_is_read_with_one_warning_naming_the_encoding(tmp_path):
    """Was: "not a UTF-8 text file" for a header typed in Excel on Windows ('µ', byte 0xB5)."""
    p = tmp_path / "w.csv"
    text = b"frame,x_nm,y_nm,z_nm,photons,size_\xb5m\n0,100,200,-5,1000,0.25\n1,110,210,5,900,0.5\n"
    p.write_bytes(text)
    with pytest.warns(CsvDialectWarning) as caught:
        t = read_csv(p)
    assert [str(w.message) for w in caught] == [
        f"{p}: read as a table in Windows-1252 (Latin-1), not UTF-8 (byte {text.index(MU)}, line 1, read as 'µ'; "
        "save it as UTF-8 "
        "to be sure of its characters)"]
    assert t.columns[-1] == "size_µm" and t["size_µm"].tolist() == [0.25, 0.5] and t["frame"].tolist() == [0, 1]
    # with ';' and decimal commas (a European Excel's "CSV"): still one warning, naming all of it
    q = tmp_path / "e.csv"
    text = b"frame;x_nm;y_nm;z_nm;photons;T_\xb0C\n0;100,5;200;0;1000;21,5\n"
    q.write_bytes(text)
    with pytest.warns(CsvDialectWarning) as caught:
        t = read_csv(q)
    assert len(caught) == 1 and str(caught[0].message).startswith(
        f"{q}: read as a table in Windows-1252 (Latin-1), not UTF-8 (byte {text.index(DEGREE)}, line 1, read as '°'; ")
    assert str(caught[0].message).endswith("separated by ';', with decimal commas (read as points)")
    assert t["x_nm"].tolist() == [100.5] and t["T_°C"].tolist() == [21.5]


def test_a_binary_file_is_still_refused_naming_file_and_bytes(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes(b"frame,x_nm,y_nm,z_nm,photons\n0,1,2,3,\xb5\x00\x07\n")  # 0xb5 at byte 37
    with pytest.raises(InputError, match=r"b\.csv: not a text file: not UTF-8 \(invalid start byte at byte 37, line 2\),"
                                         r" nor Windows-1252 \(byte 0x00 at 38 is a control character\); a binary or "
                                         r"damaged file\?"):
        read_csv(p)
    p.write_bytes(b"frame,x_nm\x81\n")  # 0x81: no character of Windows-1252
    with pytest.raises(InputError, match=r"nor Windows-1252 \(byte 0x81 at 10 is not Windows-1252\)"):
        read_csv(p)


# --- .smlm without frames ----------------------------------------------------------------------------------------


def _smlm_no_frame(path, n=3):
    rec = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")])
    rec["x"], rec["y"], rec["intensity"] = np.arange(n) * 10.0, 5.0, 100.0
    fmt = {"name": "t", "type": "table", "mode": "binary", "headers": ["x", "y", "intensity"],
           "dtype": ["float32", "float32", "float32"], "shape": [1, 1, 1], "units": ["nm", "nm", "photon"]}
    info = {"name": "t.bin", "type": "table", "format": "t", "rows": n, "offset": {}}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"format_version": "0.2", "formats": {"t": fmt}, "files": [info]}))
        z.writestr("t.bin", rec.tobytes())
    return path


def test_smlm_without_frames_says_every_row_was_put_in_frame_0(tmp_path):
    """Was: read with every row in frame 0 without a word."""
    from plexloc.io.smlm import MissingFrameWarning

    p = _smlm_no_frame(tmp_path / "s.smlm")
    with pytest.warns(MissingFrameWarning) as caught:
        t = read_locs(p)
    assert [str(w.message) for w in caught] == [
        f"{p}: no frame column, so all 3 localizations were put in frame 0 (drift correction, merging and per-frame "
        "evaluation need the frames of the acquisition: export them with the file if they are known)"]
    assert t["frame"].tolist() == [0, 0, 0] and t["x_nm"].tolist() == [0, 10, 20]
    with pytest.warns(MissingFrameWarning):  # an origin given: frame 0 all the same, not refused as below it
        assert read_locs(p, frame_origin=1)["frame"].tolist() == [0, 0, 0]


# --- Picasso's and SMAP's uncertainties --------------------------------------------------------------------------


def _picasso(path, extra, n=2):
    fields = [("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("lpx", "f4"), ("lpy", "f4"),
              ("z", "f4")] + [(k, "f4") for k in extra]
    locs = np.zeros(n, fields)
    locs["x"], locs["lpx"], locs["lpy"], locs["photons"], locs["z"] = 3.0, 0.1, 0.2, 5000.0, [-100.0, 250.0]
    for k, v in extra.items():
        locs[k] = v
    with h5py.File(path, "w") as f:
        f.create_dataset("locs", data=locs)
    return path


def test_picasso_lpz_photons_unc_bg_unc_are_the_plexloc_uncertainties(tmp_path):
    """Were kept under Picasso's names: lpz (nm, as z), photons_unc (photons), bg_unc (photons per pixel)."""
    p = _picasso(tmp_path / "p.hdf5", {"lpz": [30.0, 45.0], "photons_unc": [80.0, 90.0], "bg_unc": [1.5, 2.5]})
    t = read_locs(p, px_size_nm=130.0)
    assert t["sigma_z_nm"].tolist() == [30.0, 45.0]  # nm, not times the pixel size as lpx
    assert t["sigma_x_nm"].tolist() == pytest.approx([13.0, 13.0]) and t["z_nm"].tolist() == [-100.0, 250.0]
    assert t["sigma_photons"].tolist() == [80.0, 90.0] and t["sigma_bg"].tolist() == [1.5, 2.5]
    assert not {"lpz", "photons_unc", "bg_unc"} & set(t.columns)
    # a file that carries sigma_z_nm itself keeps lpz under its name (neither is lost)
    q = _picasso(tmp_path / "q.hdf5", {"lpz": [30.0, 45.0], "sigma_z_nm": [7.0, 8.0]})
    t = read_locs(q, px_size_nm=130.0)
    assert t["sigma_z_nm"].tolist() == [7.0, 8.0] and t["lpz"].tolist() == [30.0, 45.0]


@pytest.mark.parametrize("v73", [False, True])
def test_smap_photerr_and_bgerr_are_sigma_photons_and_sigma_bg(tmp_path, v73):
    """Were kept as 'photerr' and 'bgerr': SMAP's sqrt(CRLB) of phot and bg, in photons (per pixel)."""
    from plexloc.io.foreign import read_smap_sml

    loc = {"frame": np.array([[1.0], [2.0]]), "xnm": np.array([[10.0], [20.0]]), "ynm": np.array([[5.0], [6.0]]),
           "phot": np.array([[1000.0], [2000.0]]), "bg": np.array([[10.0], [12.0]]),
           "photerr": np.array([[31.0], [45.0]]), "bgerr": np.array([[0.5], [0.6]])}
    p = tmp_path / "a_sml.mat"
    if v73:
        with h5py.File(p, "w", userblock_size=512) as f:
            g = f.create_group("saveloc").create_group("loc")
            for k, v in loc.items():
                g.create_dataset(k, data=v.T).attrs["MATLAB_class"] = np.bytes_("double")
    else:
        scipy.io.savemat(p, {"saveloc": {"loc": loc}})
    t = read_smap_sml(p)
    assert t["sigma_photons"].tolist() == [31.0, 45.0] and t["sigma_bg"].tolist() == [0.5, 0.6]
    assert "photerr" not in t.columns and "bgerr" not in t.columns


def test_sigma_bg_is_documented():
    from plexloc.io.tables import column_description, column_unit

    assert column_unit("sigma_bg") == "photons/pixel/frame" and "uncertainty of bg" in column_description("sigma_bg")


# --- a tab-separated file whose commas may all be thousands separators -------------------------------------------


def timed_read_and_refusal(ok, bad, *, ok_warns: str | None = None):
    """Seconds of two reads of ``ok`` and of two refusals of ``bad`` (``read_csv``), and the last refusal's
    ``pytest.raises`` info; ``ok_warns``: the CsvDialectWarning reading ``ok`` gives."""
    took_ok, took = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        if ok_warns is None:
            read_csv(ok)
        else:
            with pytest.warns(CsvDialectWarning, match=ok_warns):
                read_csv(ok)
        took_ok.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with pytest.raises(InputError) as err:
            read_csv(bad)
        took.append(time.perf_counter() - t0)
    return took_ok, took, err


def test_tab_separated_thousands_refusal_is_fast_and_names_the_first_value(tmp_path, monkeypatch):
    """Was: ~9 s per million rows to be refused, the whole file read again line by line in Python to name the first
    value (5x the time of reading the same file without the commas); now the translated read names it, refusing in
    about the time of a read."""
    n = 200_000
    rows = [(i // 50, i % 997, i % 991, 1000 + i % 7000) for i in range(n)]
    header = "frame\tx_nm\ty_nm\tz_nm\tphotons\n\n"  # a blank line: line numbers are the file's own
    ok, p = tmp_path / "ok.csv", tmp_path / "k.csv"  # photons 1000, and 1,000
    ok.write_text(header + "".join(f"{f}\t{x}\t{y}\t0\t{ph}\n" for f, x, y, ph in rows))
    p.write_text(header + "".join(f"{f}\t{x}\t{y}\t0\t{ph:,}\n" for f, x, y, ph in rows))
    split_calls = []
    split = tables._split
    monkeypatch.setattr(tables, "_split", lambda line, sep: split_calls.append(1) or split(line, sep))
    took_ok, took, err = timed_read_and_refusal(ok, p, ok_warns="separated by tabs$")
    assert str(err.value) == (f"{p}: line 3, column 'photons': value '1,000' in a tab-separated file may be a decimal "
                              "comma or a thousands separator, and no value of the file tells which; save the table "
                              "with '.' as the decimal point")
    assert len(split_calls) < 100, len(split_calls)  # a few lines parsed one by one in Python (14), not 400,012 as before
    assert min(took) < 4 * min(took_ok) + 0.3, (took, took_ok)  # loosely: a busy machine stretches both
    # the first comma deep in the file: named by its own line
    q = tmp_path / "q.csv"
    q.write_text("frame\tx_nm\ty_nm\tz_nm\tphotons\n" + "0\t1\t2\t0\t100\n" * 150_000 + "1\t2\t3\t0\t\"2,500\"\n")
    with pytest.raises(InputError, match=r"line 150002, column 'photons': value '2,500' in a tab-separated"):
        read_csv(q)
    # one value that cannot be a thousands separator tells: decimal commas
    q.write_text("frame\tx_nm\ty_nm\tz_nm\tphotons\n0\t1\t2\t0\t1,500\n1\t2,5\t3\t0\t100\n")
    with pytest.warns(CsvDialectWarning, match="separated by tabs, with decimal commas"):
        assert read_csv(q)["photons"].tolist() == [1.5, 100]


def test_a_2d_table_exports_to_thunderstorm_without_a_z_column(tmp_path):
    """Was: "z [nm]" written as 'nan' on every row, which ThunderSTORM's Java number parser refuses; now the column
    is left out, as in ThunderSTORM's own 2D files (read back as z NaN, unknown: plexloc's 2D convention, as for Picasso;
    z 0 before session 47). A 3D table keeps it."""
    from plexloc.io.thunderstorm import export_thunderstorm, import_thunderstorm
    from plexloc.table import LocTable

    n = 3
    cols = dict(frame=np.arange(n), x_nm=[10.0, 20.0, 30.0], y_nm=[5.0, 6.0, 7.0], photons=[1e3, 2e3, 3e3])
    two_d = LocTable({**cols, "z_nm": np.full(n, np.nan)})
    export_thunderstorm(two_d, tmp_path / "a.csv")
    text = (tmp_path / "a.csv").read_text()
    assert "z [nm]" not in text.splitlines()[0] and "nan" not in text
    back = import_thunderstorm(tmp_path / "a.csv")
    assert len(back) == n and np.all(np.isnan(back["z_nm"])) and np.allclose(back["x_nm"], cols["x_nm"])
    three_d = LocTable({**cols, "z_nm": np.array([-50.0, np.nan, 70.0])})  # some rows without z: the column stays
    export_thunderstorm(three_d, tmp_path / "b.csv")
    assert '"z [nm]"' in (tmp_path / "b.csv").read_text().splitlines()[0]
