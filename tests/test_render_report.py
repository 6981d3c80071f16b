"""The post-processing commands end to end, and the HTML report in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io.formats import read_locs, write_locs
from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift
from plexloc.evaluate.gridding import gridding_deviation, subpixel_histogram
from plexloc.render.report import build_report


#: the image pixel of the reports whose image is not what they test (nm): the default (the extent / 1500, ~5.5 nm
#: here) renders a 1500 x 1500 image in 16 z colours, ~8 s of each report; test_report_sections_and_missing_columns
#: keeps the default
REPORT_PX_NM = 20.0


@pytest.fixture(scope="module")
def locs(tmp_path_factory):
    """(a CSV file the tests only read, its table): made once for the module."""
    rng = np.random.default_rng(0)
    n_frames = 1500
    truth = wobbly_drift(n_frames, 100.0, rng=rng)
    mol = structure_points("rings", 3000, fov_nm=8000.0, rng=rng)
    t = blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=truth, events_per_molecule=5)
    t = t.with_columns(bg=rng.uniform(5, 30, len(t)), prob=rng.uniform(0.3, 1.0, len(t)), z_nm=rng.normal(0, 150, len(t)))
    path = tmp_path_factory.mktemp("locs") / "locs.csv"
    write_locs(t, path)
    return path, t


def test_cli_chain_drift_merge_filter_render_frc_convert(locs, tmp_path, capsys):
    path, t = locs
    assert main(["drift", str(path), "--out", str(tmp_path / "d.csv"), "--engine", "rcc", "--json",
                 str(tmp_path / "d.json")]) == 0
    d = read_locs(tmp_path / "d.csv")
    assert len(d) == len(t) and "drift_x_nm" in d and (tmp_path / "d.csv.drift.png").stat().st_size > 1000
    err = d["drift_x_nm"] - d["true_drift_x_nm"]
    assert np.std(err) < 5.0
    assert json.loads((tmp_path / "d.json").read_text())["engine"] == "rcc"
    assert main(["merge", str(tmp_path / "d.csv"), "--out", str(tmp_path / "m.h5")]) == 0
    m = read_locs(tmp_path / "m.h5")
    assert len(m) < len(t) and int(m["n_merged"].sum()) == len(t)
    assert main(["filter", str(tmp_path / "m.h5"), "--out", str(tmp_path / "f.smlm"), "--min-prob", "0.5",
                 "--max-sigma", "5", "--json", str(tmp_path / "f.json")]) == 0
    rep = json.loads((tmp_path / "f.json").read_text())
    assert rep["n_out"] == len(read_locs(tmp_path / "f.smlm")) and sum(rep["removed"].values()) == len(m) - rep["n_out"]
    assert main(["render", str(tmp_path / "f.smlm"), "--out", str(tmp_path / "img.tif"), "--pixel-size", "20",
                 "--color-by", "z"]) == 0
    assert main(["render", str(path), "--out", str(tmp_path / "img.png")]) == 0
    assert main(["frc", str(tmp_path / "m.h5"), "--json", str(tmp_path / "frc.json")]) == 0
    assert 5 < json.loads((tmp_path / "frc.json").read_text())["resolution_nm"] < 100
    assert main(["convert", str(path), str(tmp_path / "x.thunderstorm.csv")]) == 0
    assert main(["convert", str(tmp_path / "x.thunderstorm.csv"), str(tmp_path / "x.hdf5"), "--camera-px-size", "100"]) == 0
    back = read_locs(tmp_path / "x.hdf5")
    np.testing.assert_allclose(back["x_nm"], t["x_nm"], atol=1e-3)
    assert back["frame"].tolist() == t["frame"].tolist()
    out = capsys.readouterr().out
    assert "FRC resolution" in out and "merged" in out


def test_cli_errors_are_one_line(locs, tmp_path, capsys):
    path, _ = locs
    assert main(["filter", str(path), "--out", str(tmp_path / "f.csv"), "--max-bg", "-1", "--max-sigma-z", "3"]) == 2
    assert "sigma_z_nm" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "out.txt")]) == 2
    assert main(["render", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "a.png")]) == 2
    assert not (tmp_path / "a.png").exists()


def test_drift_falls_back_to_rcc_without_comet(locs, tmp_path, capsys, monkeypatch):
    import plexloc.post.drift as drift_module

    monkeypatch.setattr(drift_module, "comet_available", lambda: False)
    path, _ = locs
    assert main(["drift", str(path), "--out", str(tmp_path / "d.csv"), "--engine", "comet", "--segments", "4"]) == 0
    assert "using the RCC engine instead" in capsys.readouterr().err


def test_report_sections_and_missing_columns(locs, tmp_path):
    path, t = locs
    full = build_report(t.with_columns(drift_x_nm=t["true_drift_x_nm"], drift_y_nm=t["true_drift_y_nm"]),
                        camera_px_size_nm=100.0)
    assert full.n_figures == 10 and not {"drift", "subpixel", "sigma", "bg", "nena"} & set(full.missing)
    assert full.html.count("data:image/png;base64,") == 10 and "FRC resolution (nm)" in full.html
    assert "NeNA precision (nm)" in full.html
    bare = build_report(t.without_columns("bg", "prob", "sigma_x_nm", "sigma_y_nm").with_columns(z_nm=np.zeros(len(t))))
    assert {"bg", "sigma", "subpixel", "drift", "z"} <= set(bare.missing)
    assert bare.html.count("not available") == len(bare.missing)
    hist, dev = subpixel_histogram(np.arange(0, 1000, 1.0), 100.0), gridding_deviation(np.arange(0, 1000, 1.0), 100.0)
    assert hist.tolist() == [100] * 10 and dev == 0.0
    # the column table explains every column, foreign ones marked
    assert "<h2>Columns</h2>" in full.html and "x position (along columns) in nm" in full.html
    from plexloc.table import is_known_column

    foreign = [c for c in t.columns if not is_known_column(c) and c not in ("drift_x_nm", "drift_y_nm")]
    assert foreign and full.html.count("not a plexloc column") == len(foreign)


def _browser():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_browser() is None, reason="no Chromium (Debian: apt-get install chromium-headless-shell)")
def test_report_opens_in_headless_chromium_with_all_figures(locs, tmp_path):
    path, _ = locs
    assert main(["drift", str(path), "--out", str(tmp_path / "d.csv"), "--engine", "rcc", "--segments", "6"]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "d.csv"), "--out", str(out), "--camera-px-size", "100",
                 "--pixel-size", str(REPORT_PX_NM)]) == 0
    proc = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=10000", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok = re.search(r'data-images-ok="(\d+)"', proc.stdout)
    total = re.search(r'data-images-total="(\d+)"', proc.stdout)
    assert ok and total, proc.stdout[:500]
    assert int(total.group(1)) == 10
    assert int(ok.group(1)) == 10  # every inline figure decoded by the browser


def test_report_says_next_to_the_frc_value_when_the_table_looks_unmerged(locs):
    """An unmerged table's FRC value is too optimistic (repeated localizations fall in both halves): the report says
    so next to the value (before: only plexloc frc --help did); a merged table's value stands alone."""
    from plexloc.post.merge import merge_localizations

    _, t = locs
    raw = build_report(t, px_size_nm=REPORT_PX_NM)
    assert "caveat: the table looks unmerged" in raw.summary["FRC resolution (nm)"]
    assert raw.html.count("caveat: the table looks unmerged") == 2  # the summary and the FRC section
    merged = build_report(merge_localizations(t, radius_nm=50.0, gap=1), px_size_nm=REPORT_PX_NM)
    assert "caveat" not in merged.summary["FRC resolution (nm)"] and "caveat" not in merged.html
