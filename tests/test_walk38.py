"""A microscopist's walk through the tools (walk 38): each test pins a defect found on the walk and failed on the code
before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plexloc.cli.main import main
from plexloc.io import write_movie
from plexloc.psf import AstigmaticPSF

PX = 100.0
ZS = np.arange(-800.0, 801.0, 50.0)


def _beads(xy_nm, *, photons=2e4, bg=20.0, shape=(48, 48), seed=0):
    """(n_z, H, W) photons of astigmatic beads (plexloc's PSF), Poisson noise, ideal camera."""
    frames = torch.zeros((len(ZS), *shape))
    psf = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=21)
    for x, y in xy_nm:
        frames += psf.render(torch.full((len(ZS),), float(x)), torch.full((len(ZS),), float(y)),
                             torch.tensor(ZS, dtype=torch.float32), torch.full((len(ZS),), photons),
                             torch.arange(len(ZS)), n_frames=len(ZS), frame_shape=shape)
    return torch.poisson(frames + bg, generator=torch.Generator().manual_seed(seed)).numpy()


FOUR = [(1230.0, 1170.0), (1260.0, 3010.0), (3120.0, 1240.0), (3050.0, 3080.0)]


@pytest.mark.parametrize("model, out_name", [("spline", "psf.h5"), ("astigmatic", "psf.yaml")])
def test_calibrate_interrupted_leaves_no_calibration_without_its_report(tmp_path, monkeypatch, model, out_name):
    """Ctrl-C during the leave-one-bead-out fits (most of the run) left PSF.h5 (PSF.yaml) written and no PSF.json;
    now the calibration is written last and nothing is left."""
    import plexloc.calibrate.validate as validate

    tif = tmp_path / "beads.tif"
    write_movie(tif, _beads(FOUR), dtype=np.uint16)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "leave_one_bead_out", interrupted)
    assert main(["calibrate", str(tif), "--z-step", "50", "--pixel-size", "100", "--model", model,
                 "--out", str(tmp_path / out_name)]) == 130  # "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beads.tif"]


def test_calibrate_from_few_beads_says_so(tmp_path, capsys):
    """Two beads calibrated without a word (a 2-bead spline's leave-one-bead-out z RMSE was 116 nm against 17 nm for 16
    of the same beads); now a warning names the count, on stderr and in PSF.json."""
    tif = tmp_path / "beads.tif"
    write_movie(tif, _beads(FOUR[:2]), dtype=np.uint16)
    out = tmp_path / "psf.yaml"
    assert main(["calibrate", str(tif), "--z-step", "50", "--pixel-size", "100", "--model", "astigmatic",
                 "--out", str(out), "--no-validate"]) == 0
    err = capsys.readouterr().err
    assert "2 bead(s) used, fewer than 5" in err
    assert any("fewer than 5" in w for w in json.loads(out.with_suffix(".json").read_text())["warnings"])


def test_merge_of_an_mle_table_weighs_by_its_crlbs_and_reduces_them():
    """An MLE table (crlb_* and no sigma_*) was merged with photon weights and its CRLBs averaged: two fits of one
    molecule with CRLBs 10.13 and 13.13 nm gave crlb_x_nm 11.63 nm; now inverse-variance weights and the bound of
    the weighted mean, 1 / sqrt(1/10.13² + 1/13.13²) = 8.02 nm (crlb_bg that of the averaged bg)."""
    from plexloc.post.merge import merge_localizations
    from plexloc.table import LocTable

    t = LocTable({"frame": [0, 1], "x_nm": [3647.28, 3632.84], "y_nm": [1554.85, 1538.04], "z_nm": [0.0, 0.0],
                  "photons": [1320.9, 951.1], "bg": [56.1, 54.9], "crlb_x_nm": [10.13, 13.13],
                  "crlb_y_nm": [10.13, 13.13], "crlb_photons": [85.7, 78.9], "crlb_bg": [1.15, 1.14]})
    m = merge_localizations(t)
    w = np.array([1 / 10.13**2, 1 / 13.13**2])
    assert len(m) == 1 and int(m["n_merged"][0]) == 2
    assert m["crlb_x_nm"][0] == pytest.approx(1 / np.sqrt(w.sum()), rel=1e-9)
    assert m["x_nm"][0] == pytest.approx((w * [3647.28, 3632.84]).sum() / w.sum(), rel=1e-12)
    assert m["crlb_photons"][0] == pytest.approx(np.hypot(85.7, 78.9))
    assert m["crlb_bg"][0] == pytest.approx(np.hypot(1.15, 1.14) / 2)
    # a table with sigma_* keeps them as its weights; its CRLBs become the weighted mean's bound
    s = t.with_columns(sigma_x_nm=np.array([5.0, 5.0]), sigma_y_nm=np.array([5.0, 5.0]))
    ms = merge_localizations(s)
    assert ms["sigma_x_nm"][0] == pytest.approx(5 / np.sqrt(2))
    assert ms["crlb_x_nm"][0] == pytest.approx(np.hypot(10.13, 13.13) / 2)


def test_csv_missing_values_as_pandas_and_r_write_them_are_nan(tmp_path):
    """pandas writes NaN as an empty cell, R as NA: such a table (a NaN sigma in one row) was refused ("value '' is
    not a number"); now those cells are NaN in optional columns (and z_nm), and one in a required column stays an error
    naming file, line, column and value."""
    from plexloc.errors import InputError
    from plexloc.io.formats import read_locs

    p = tmp_path / "pandas.csv"
    p.write_text("frame,x_nm,y_nm,z_nm,photons,sigma_x_nm,sigma_y_nm\n0,100,200,0,1000,,10\n1,110,210,NA,900,12,N/A\n")
    t = read_locs(p)
    assert len(t) == 2 and np.isnan(t["sigma_x_nm"][0]) and np.isnan(t["sigma_y_nm"][1]) and np.isnan(t["z_nm"][1])
    assert t["sigma_x_nm"][1] == 12.0
    q = tmp_path / "required.csv"
    q.write_text("frame,x_nm,y_nm,z_nm,photons\n0,100,200,0,1000\n1,,210,0,900\n")
    with pytest.raises(InputError, match=r"required\.csv: line 3, column 'x_nm': value '' is not a number"):
        read_locs(q)
    r = tmp_path / "word.csv"
    r.write_text("frame,x_nm,y_nm,z_nm,photons,sigma_x_nm\n0,100,200,0,1000,\n1,110,210,0,900,abc\n")
    with pytest.raises(InputError, match=r"word\.csv: line 3, column 'sigma_x_nm': value 'abc' is not a number"):
        read_locs(r)


def test_report_gridding_is_judged_against_counting_noise():
    """The report gave the gridding deviation bare: the demo fit's 19.0 / 20.4 % read as gridding, yet its truth table
    (3,218 rows of 1,121 emitters) read 15 % and de-biasing the fit raised its RMSE (14.17 -> 14.30 nm): counting noise
    of ~1,000 molecules. Now the summary compares it with the same histograms at periods other than the pixel's, which
    molecules that blink many times make as lumpy (a test of 300 molecules blinking 10 times each)."""
    from plexloc.evaluate.gridding import gridding_noise
    from plexloc.render.report import build_report
    from plexloc.table import LocTable

    rng = np.random.default_rng(1)
    n_mol, reps = 300, 10  # each molecule blinks 10 times, far apart in time: 10 on-events at one position
    x = np.repeat(rng.uniform(0, 20000, n_mol), reps) + rng.normal(0, 5, n_mol * reps)
    y = np.repeat(rng.uniform(0, 20000, n_mol), reps) + rng.normal(0, 5, n_mol * reps)
    frame = np.tile(np.arange(reps) * 1000, n_mol) + np.repeat(np.arange(n_mol), reps)
    t = LocTable({"frame": frame, "x_nm": x, "y_nm": y, "z_nm": np.zeros_like(x), "photons": np.full_like(x, 1e3)})
    assert gridding_noise(x, y, 100.0) > 0.3  # 300 positions, not 3,000 rows
    # the FRC at 20 nm pixels: at the default 5 nm the 20 um field's FRC images are 4,000 px a side (~5 s a report)
    frc_px = {"frc_px_size_nm": 20.0}
    assert "within counting noise" in build_report(t, camera_px_size_nm=100.0, **frc_px).summary[
        "gridding deviation x / y (%)"]
    # 3,000 molecules pulled 20 % of the way to the pixel centres in x: gridding, far above the noise
    x3, y3 = rng.uniform(0, 20000, 3000), rng.uniform(0, 20000, 3000)
    g = LocTable({"frame": np.arange(3000), "x_nm": x3 * 0.8 + (np.floor(x3 / 100) + 0.5) * 100 * 0.2, "y_nm": y3,
                  "z_nm": np.zeros(3000), "photons": np.full(3000, 1e3)})
    assert "above counting noise: gridding" in build_report(g, camera_px_size_nm=100.0, **frc_px).summary[
        "gridding deviation x / y (%)"]


def test_report_grey_image_has_a_labelled_intensity_scale():
    """The report's grey image had no colour bar: its brightness had no unit. Now one reads localizations per
    displayed pixel."""
    import re

    from plexloc.render.report import build_report
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    t = LocTable({"frame": np.arange(500), "x_nm": rng.uniform(0, 5000, 500), "y_nm": rng.uniform(0, 5000, 500),
                  "z_nm": np.zeros(500), "photons": np.full(500, 1e3)})
    import matplotlib.pyplot as plt

    labels = []
    orig = plt.Figure.colorbar

    def spy(self, *a, **k):
        cb = orig(self, *a, **k)
        labels.append(cb)
        return cb

    plt.Figure.colorbar = spy
    try:
        build_report(t)
    finally:
        plt.Figure.colorbar = orig
    assert any(re.match(r"localizations per \d+ nm pixel", cb.ax.get_ylabel()) for cb in labels)


def test_debias_says_when_there_was_only_counting_noise(tmp_path, capsys):
    """debias flattened the counting noise of a table without gridding silently (the demo fit: RMSE 14.17 -> 14.30
    nm); now a note says the histograms were within noise."""
    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    rng = np.random.default_rng(2)
    n = 600
    t = LocTable({"frame": np.arange(n) * 5, "x_nm": rng.uniform(0, 9000, n), "y_nm": rng.uniform(0, 9000, n),
                  "z_nm": np.zeros(n), "photons": np.full(n, 1e3), "sigma_x_nm": np.full(n, 8.0),
                  "sigma_y_nm": np.full(n, 8.0)})
    write_locs(t, tmp_path / "l.csv")
    assert main(["debias", str(tmp_path / "l.csv"), "--out", str(tmp_path / "d.csv"), "--px-size", "100"]) == 0
    assert "within counting noise" in capsys.readouterr().err


@pytest.mark.parametrize("gap", [0, 1, 3])
def test_merge_links_in_frame_blocks_find_the_same_events(gap):
    """link_localizations searched one KD-tree over the whole table (10^7 rows: 4.5 GB peak for plexloc merge); it now
    works in blocks of frames, which must give the same events for any block size, merged tables (frame_last) too."""
    from plexloc.post.merge import link_localizations, merge_localizations
    from plexloc.post.synthetic import blinking_table, structure_points

    rng = np.random.default_rng(3)
    t = blinking_table(structure_points("uniform", 400, fov_nm=3000.0, rng=rng), n_frames=300, rng=rng,
                       precision_nm=15.0, events_per_molecule=3, mean_on_frames=3.0)

    def canonical(labels):
        _, first = np.unique(labels, return_index=True)
        remap = np.empty(labels.max() + 1, np.int64)
        remap[labels[np.sort(first)]] = np.arange(len(first))
        return remap[labels]

    whole = canonical(link_localizations(t, radius_nm=40.0, gap=gap, block_rows=10**9))
    assert whole.max() + 1 < len(t)  # some links
    for block in (1, 37, 500):
        assert np.array_equal(canonical(link_localizations(t, radius_nm=40.0, gap=gap, block_rows=block)), whole)
    m = merge_localizations(t, radius_nm=40.0, gap=gap)
    again = [canonical(link_localizations(m, radius_nm=60.0, gap=gap, block_rows=b)) for b in (3, 10**9)]
    assert np.array_equal(*again)


def test_columns_does_not_read_a_big_table_as_text(tmp_path):
    """plexloc columns read every row of a CSV as Python strings to see whether it was a training log (10^7 rows:
    6.0 GB peak, the table 1.2 GB); now the header decides. 300,000 rows: the text rows alone were > 150 MB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 300_000
    data = np.column_stack([np.arange(n) // 10, rng.uniform(0, 5e4, (n, 2)), np.zeros(n), rng.uniform(500, 5e3, n),
                            np.full((n, 2), 10.0)])
    p = tmp_path / "big.csv"
    np.savetxt(p, data, delimiter=",", fmt=["%d"] + ["%.3f"] * 6, comments="",
               header="frame,x_nm,y_nm,z_nm,photons,sigma_x_nm,sigma_y_nm")
    tracemalloc.start()
    try:
        assert main(["columns", str(p)]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6, peak  # the table (7 x 300,000 float64: 17 MB) and its statistics


def test_render_default_method_takes_a_table_with_some_nan_sigmas(tmp_path, capsys):
    """A table with sigma columns and one NaN sigma (an imported table, or one row without an uncertainty) was an
    error with the default method, naming no way out; now the default renders the histogram (every row) and says
    why, and an explicit --method gaussian names the options."""
    import tifffile

    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    sx = np.full(50, 10.0)
    sx[7] = np.nan
    t = LocTable({"frame": np.arange(50), "x_nm": rng.uniform(0, 4000, 50), "y_nm": rng.uniform(0, 4000, 50),
                  "z_nm": np.zeros(50), "photons": np.full(50, 1e3), "sigma_x_nm": sx, "sigma_y_nm": np.full(50, 10.0)})
    write_locs(t, tmp_path / "l.csv")
    assert main(["render", str(tmp_path / "l.csv"), "--out", str(tmp_path / "i.tif")]) == 0
    assert "1 of 50 localizations have no finite sigma_x_nm/sigma_y_nm (first row 7)" in capsys.readouterr().err
    img = tifffile.imread(tmp_path / "i.tif").astype(float)
    assert img.sum() / img.max() == pytest.approx(50, abs=1e-6)  # histogram: every row, one count each
    assert main(["render", str(tmp_path / "l.csv"), "--out", str(tmp_path / "g.tif"), "--method", "gaussian"]) == 2
    assert "--sigma NM" in capsys.readouterr().err


def test_merge_memory_is_a_few_copies_of_the_table():
    """merge_localizations built the merged table, then a copy (LocTable), then a sorted copy: 385 bytes a row at peak
    for a 7-column table of single events (10^7 rows: 4.6 GB for plexloc merge); now sorted column by column and
    handed over without a copy."""
    import tracemalloc

    from plexloc.post.merge import merge_localizations
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    n = 300_000
    t = LocTable({"frame": np.sort(rng.integers(0, 3000, n)), "x_nm": rng.uniform(0, 5e4, n),
                  "y_nm": rng.uniform(0, 5e4, n), "z_nm": np.zeros(n), "photons": rng.uniform(500, 5e3, n),
                  "sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 10.0)})
    tracemalloc.start()
    try:
        m = merge_localizations(t)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(m) > 0.99 * n and np.all(np.diff(m["frame"]) >= 0)
    assert peak / n < 250, peak / n  # 378 bytes a row before, 178 now


def _camera_stacks(tmp_path, *, emccd: bool):
    """Dark frames and two flat levels (50 frames of 32 x 32): an EMCCD (gain 300, 45 e-/ADU, read 74.4 e- after gain)
    or an sCMOS (0.45 e-/ADU, read 1.6 e-); returns the paths."""
    import tifffile

    rng = np.random.default_rng(0)
    shape = (50, 32, 32)

    def frames(level):
        e = rng.poisson(level, shape).astype(float)
        if emccd:
            e = np.where(e > 0, rng.gamma(np.maximum(e, 1e-9), 300.0), 0.0)
            adu = 100 + (e + rng.normal(0, 74.4, shape)) / 45.0
        else:
            adu = 100 + (e + rng.normal(0, 1.6, shape)) / 0.45
        return np.clip(np.round(adu), 0, 65535).astype(np.uint16)

    paths = []
    for name, level in (("dark", 0.002 if emccd else 0.0), ("flat1", 20.0), ("flat2", 80.0)):
        tifffile.imwrite(tmp_path / f"{name}.tif", frames(level))
        paths.append(str(tmp_path / f"{name}.tif"))
    return paths


@pytest.mark.parametrize("emccd", [True, False])
def test_calibrate_camera_says_when_an_emccd_is_measured_as_an_scmos(tmp_path, capsys, emccd):
    """An EMCCD's frames given --kind scmos gave e_per_adu 0.075 (true 45/300 = 0.15: the excess noise) and a read
    noise of 0.12 e- without a word; now a warning (an sCMOS reads 0.7-3 e-), in the YAML too. An sCMOS: none."""
    dark, f1, f2 = _camera_stacks(tmp_path, emccd=emccd)
    out = tmp_path / "cam.yaml"
    assert main(["calibrate-camera", "--dark", dark, "--flat", f1, f2, "--kind", "scmos", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("are these an EMCCD's frames?" in err) == emccd
    assert ("are these an EMCCD's frames?" in out.read_text()) == emccd


def test_calibrate_camera_refuses_em_gain_for_an_scmos(tmp_path, capsys):
    """--em-gain with --kind scmos was ignored silently; it is refused, naming the option and the value."""
    dark, f1, f2 = _camera_stacks(tmp_path, emccd=False)
    assert main(["calibrate-camera", "--dark", dark, "--flat", f1, f2, "--kind", "scmos", "--em-gain", "300",
                 "--out", str(tmp_path / "c.yaml")]) == 2
    assert "--em-gain 300 does not apply to --kind scmos" in capsys.readouterr().err
    assert not (tmp_path / "c.yaml").exists()


@pytest.mark.parametrize("extra, message", [
    (["--cmap", "viridis"], "--cmap applies to --color-by z only"),
    (["--z-range", "0", "10"], "--z-range applies to --color-by z only"),
    (["--color-by", "color", "--cmap", "viridis"], "--cmap applies to --color-by z only"),
    (["--sigma", "10", "--method", "histogram"], "--sigma 10 applies to --method gaussian only"),
])
def test_render_refuses_options_that_do_not_apply(tmp_path, capsys, extra, message):
    """--cmap and --z-range without --color-by z, and --sigma with the histogram, were ignored without a word (the
    README: options that do not apply are refused)."""
    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    t = LocTable({"frame": [0, 1], "x_nm": [100.0, 300.0], "y_nm": [100.0, 200.0], "z_nm": [0.0, 0.0],
                  "photons": [1e3, 1e3], "color": [0, 1]})
    write_locs(t, tmp_path / "l.csv")
    assert main(["render", str(tmp_path / "l.csv"), "--out", str(tmp_path / "i.png"), *extra]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "i.png").exists()


def test_calibrate_refuses_camera_and_config_together(tmp_path, capsys):
    """--camera was ignored where --config was given too (the config's cameras were used)."""
    tif = tmp_path / "beads.tif"
    write_movie(tif, _beads(FOUR[:1]), dtype=np.uint16)
    (tmp_path / "cam.yaml").write_text("kind: emccd\nem_gain: 100\n")
    (tmp_path / "cfg.yaml").write_text("px_size_nm: 100\nframe_size: [48, 48]\npsf: {kind: gaussian, sigma_nm: 130}\n"
                                       "camera: {kind: ideal}\n")
    assert main(["calibrate", str(tif), "--z-step", "50", "--pixel-size", "100", "--camera", str(tmp_path / "cam.yaml"),
                 "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "p.h5")]) == 2
    assert "not both" in capsys.readouterr().err and not (tmp_path / "p.h5").exists()


def test_calibration_psf_figure_is_to_scale_in_nm(tmp_path, monkeypatch):
    """The xz/yz panels of PSF_psf.png were drawn with the aspect inverted (px / dz instead of dz / px: slivers 16x too
    narrow at 100 nm pixels and 50 nm steps) and in slice and pixel numbers without units; now in nm, to scale."""
    import plexloc.calibrate.figures as figures
    from plexloc.calibrate import calibrate_spline

    result = calibrate_spline([_beads(FOUR)], z_step_nm=50.0, px_size_nm=PX)
    figs = []
    real_save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (figs.append(fig), real_save(fig, path))[1])
    figures.write_figures(result, tmp_path / "psf.h5")
    ax_xy, ax_xz, ax_yz = figs[0].axes[:3]
    for ax in (ax_xz, ax_yz):
        assert ax.get_ylabel() == "z (nm)" and ax.get_aspect() == 1.0
        lo, hi = sorted(ax.get_ylim())
        assert lo < -700 and hi > 700  # the stack's +-800 nm, in nm
    assert ax_xy.get_xlabel() == "x (nm)" and ax_xy.get_aspect() == 1.0


def test_comet_drift_takes_a_2d_table_with_z_unknown():
    """A 2D table with z NaN in every row (z unknown: valid by the conventions, RCC takes it) was refused by COMET
    ("column 'z_nm' has ... non-finite value(s)"); now it is estimated as z = 0 and z stays NaN in the output."""
    pytest.importorskip("comet")
    from plexloc.post.drift import apply_drift, estimate_drift
    from plexloc.table import LocTable

    rng = np.random.default_rng(1)
    sites = rng.uniform(500, 9500, (200, 2))
    rows = [(f, *(sites[i] + rng.normal(0, 10, 2) + [0.05 * f, -0.03 * f])) for i in range(200)
            for f in np.sort(rng.choice(1000, 30, replace=False))]
    f, x, y = (np.array(v) for v in zip(*rows))
    t = LocTable({"frame": f, "x_nm": x, "y_nm": y, "z_nm": np.full(len(f), np.nan), "photons": np.full(len(f), 1e3)})
    res = estimate_drift(t, engine="comet", n_segments=5, split_half=False)
    out = apply_drift(t, res)
    assert np.all(np.isnan(out["z_nm"])) and np.all(out["drift_z_nm"] == 0)
    assert np.sqrt(np.mean((out["drift_x_nm"] - 0.05 * f) ** 2)) < 5.0


def test_filter_on_a_column_that_is_nan_throughout_is_refused():
    """--z-range on a 2D table with z unknown (NaN in every row) removed every row (12,000 of 12,000) without saying
    why; a column with no value is now refused like a missing one."""
    from plexloc.errors import InputError
    from plexloc.post.filter import filter_localizations
    from plexloc.table import LocTable

    t = LocTable({"frame": [0, 1], "x_nm": [1.0, 2.0], "y_nm": [1.0, 2.0], "z_nm": [np.nan, np.nan],
                  "photons": [1e3, 1e3]})
    with pytest.raises(InputError, match=r"z_range.*NaN in every row"):
        filter_localizations(t, z_range_nm=(-10.0, 10.0))


def test_evaluate_says_whether_gridding_is_above_counting_noise(tmp_path, capsys):
    """evaluate --px-size printed gridding_dev_x/y bare (the demo fit's 0.19 / 0.20 is counting noise); now a line
    says whether it is above the noise of the same histograms at other periods."""
    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    n = 3000
    x, y = rng.uniform(0, 20000, n), rng.uniform(0, 20000, n)
    truth = LocTable({"frame": np.arange(n), "x_nm": x, "y_nm": y, "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    write_locs(truth, tmp_path / "t.csv")
    for name, xs, verdict in (("ok", x + rng.normal(0, 5, n), "within"),
                              ("grid", x * 0.7 + (np.floor(x / 100) + 0.5) * 100 * 0.3, "above")):
        write_locs(truth.with_columns(x_nm=xs), tmp_path / f"{name}.csv")
        assert main(["evaluate", str(tmp_path / "t.csv"), str(tmp_path / f"{name}.csv"), "--px-size", "100"]) == 0
        assert f"gridding: {verdict} counting noise" in capsys.readouterr().out


def test_calibrate_with_no_bead_found_says_how_far_the_brightest_spot_was():
    """A stack with no bead ended in 'no beads left: 0 found' and nothing more; now it gives the brightest spot of
    the projection against the detection threshold, in photons, and the usual causes."""
    from plexloc.calibrate import calibrate_spline
    from plexloc.errors import InputError

    st = _beads([])  # background only
    with pytest.raises(InputError, match=r"0 found; no spot of the maximum projection over the 33 slices rises above "
                                         r"the detection threshold \(the brightest, smoothed, is [\d.]+ photons"):
        calibrate_spline([st], z_step_nm=50.0, px_size_nm=PX, sources=["empty.tif"])


def test_render_color_by_z_refuses_a_table_without_z(tmp_path, capsys):
    """--color-by z on a 2D table with z NaN in every row drew every row grey under a 0-1 nm colour scale; refused."""
    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    t = LocTable({"frame": [0, 1], "x_nm": [100.0, 300.0], "y_nm": [100.0, 200.0], "z_nm": [np.nan, np.nan],
                  "photons": [1e3, 1e3]})
    write_locs(t, tmp_path / "l.csv")
    assert main(["render", str(tmp_path / "l.csv"), "--out", str(tmp_path / "i.png"), "--color-by", "z"]) == 2
    assert "z_nm is NaN in every row" in capsys.readouterr().err and not (tmp_path / "i.png").exists()
