"""The figures plexloc writes, checked as figures: axis labels and titles, the numbers drawn against those computed,
panels that do not overlap, and degenerate inputs (no values, one frame, an empty image, a 2D table's z columns)
that draw a message instead of blank axes or raise. Each figure function is run as the commands run it; its
matplotlib figure is caught just before it is closed and inspected."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from plexloc.render import figures  # noqa: E402
from plexloc.table import LocTable  # noqa: E402


@pytest.fixture
def caught(monkeypatch):
    """Every figure made during the test, in order, caught where it is turned into PNG bytes or closed."""
    figs = []
    png = figures.figure_png

    def keep_png(fig):
        fig.canvas.draw()  # the layout as saved, for the overlap checks (closing drops the canvas's renderer)
        fig.kept_renderer = fig.canvas.get_renderer()
        figs.append(fig)
        return png(fig)

    close = plt.close

    def keep_close(fig=None):
        if fig is not None and not isinstance(fig, str) and fig not in figs:
            fig.canvas.draw()
            fig.kept_renderer = fig.canvas.get_renderer()
            figs.append(fig)
        return close(fig) if fig is not None else close()

    monkeypatch.setattr(figures, "figure_png", keep_png)
    monkeypatch.setattr(plt, "close", keep_close)
    return figs


def _texts(ax) -> str:
    return " | ".join(t.get_text() for t in ax.texts)


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _table(n=300, seed=0, **cols) -> LocTable:
    rng = np.random.default_rng(seed)
    data = {"frame": np.arange(n) // 3, "x_nm": rng.uniform(0, 3000, n), "y_nm": rng.uniform(0, 3000, n),
            "z_nm": np.zeros(n), "photons": rng.uniform(500, 5000, n)}
    data.update(cols)
    return LocTable({k: np.asarray(v, dtype=float) for k, v in data.items()})


# --- render/figures.py -------------------------------------------------------------------------------------------

def test_histogram_of_no_finite_values_says_so_and_one_value_is_centred(caught):
    figures.histogram_figure(np.full(7, np.nan), xlabel="σ (nm)")
    ax = caught[-1].axes[0]
    assert "no finite values: all 7 are NaN" in _texts(ax)  # it was blank 0..1 axes
    assert ax.get_xlabel() == "σ (nm)" and ax.get_ylabel() == "localizations"
    figures.histogram_figure(np.array([]), xlabel="photons")
    assert "the table is empty" in _texts(caught[-1].axes[0])
    figures.histogram_figure(np.full(50, 3.0), xlabel="σ (nm)")
    ax = caught[-1].axes[0]
    lo, hi = ax.patches[0].get_x(), ax.patches[-1].get_x() + ax.patches[-1].get_width()
    assert lo < 3.0 < hi and math.isclose((lo + hi) / 2, 3.0)  # the bin was at the range's left edge
    assert sum(p.get_height() for p in ax.patches) == 50
    # a small sample is drawn whole: the interpolated 0.1 % quantiles left out its smallest and largest value
    figures.histogram_figure(np.random.default_rng(0).normal(40, 10, 54), xlabel="σ (nm)")
    ax = caught[-1].axes[0]
    assert sum(p.get_height() for p in ax.patches) == 54 and "beyond the axes" not in _texts(ax)
    # a large one leaves its 0.1 % tails out, and says how many
    v = np.random.default_rng(1).lognormal(8, 0.5, 5000)
    figures.histogram_figure(v, xlabel="photons")
    ax = caught[-1].axes[0]
    shown = sum(p.get_height() for p in ax.patches)
    assert 4990 <= shown < 5000 and f"{5000 - shown:.0f} of 5000 values beyond the axes" in _texts(ax)


def test_drift_figure_draws_one_frame_names_the_dots_and_takes_two_columns(caught):
    frames = np.arange(0, 100)
    drift = np.column_stack([np.linspace(0, 30, 100), np.linspace(0, -20, 100), np.zeros(100)])
    figures.drift_figure(frames, drift, segment_frames=np.array([10, 50, 90]), segment_drift_nm=drift[[10, 50, 90]],
                         title="drift (rcc)")
    ax = caught[-1].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["dx", "dy", "window estimates"]  # the dots had no entry; no dz for a zero z
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_allclose(lines["dx"].get_ydata(), drift[:, 0])
    np.testing.assert_allclose(lines["dy"].get_ydata(), drift[:, 1])
    assert ax.get_xlabel() == "frame" and ax.get_ylabel() == "drift (nm)" and ax.get_title() == "drift (rcc)"
    figures.drift_figure(np.array([4]), np.array([[1.0, 2.0, 0.0]]))
    ax = caught[-1].axes[0]
    assert [ln.get_marker() for ln in ax.lines] == ["o", "o"]  # one frame: points (a line of one point is invisible)
    figures.drift_figure(np.arange(5), np.ones((5, 2)))  # x and y only: IndexError before
    assert [ln.get_label() for ln in caught[-1].axes[0].lines] == ["dx", "dy"]
    figures.drift_figure(np.array([], dtype=int), np.zeros((0, 3)))
    assert "no drift to show: no frames" in _texts(caught[-1].axes[0])
    figures.drift_figure(np.arange(3), np.full((3, 3), np.nan))
    assert "not a finite number" in _texts(caught[-1].axes[0])


def test_frc_and_nena_figures_have_titles_and_survive_no_data(caught):
    q = np.linspace(0, 0.1, 200)
    smooth = np.clip(1 - q / 0.06, -0.05, 1)
    figures.frc_figure(q, smooth, smooth, 22.0, 1 / 7)
    ax = caught[-1].axes[0]
    assert "resolution 22.0 nm" in ax.get_title() and ax.get_xlabel() == "spatial frequency (1/nm)"
    vline = [ln for ln in ax.lines if ln.get_label().startswith("resolution")][0]
    assert math.isclose(vline.get_xdata()[0], 1 / 22.0)
    figures.frc_figure(np.array([]), np.array([]), np.array([]), math.nan, 1 / 7)
    ax = caught[-1].axes[0]
    assert "no FRC curve" in _texts(ax) and "no crossing" in ax.get_title()
    # no pairs: a histogram of nothing as a density divided by zero (a RuntimeWarning: an error under pytest)
    figures.nena_figure(np.array([]), math.nan, math.nan, 150.0)
    ax = caught[-1].axes[0]
    assert "no pairs" in _texts(ax) and "NeNA" in ax.get_title() and ax.get_ylabel() == "density (1/nm)"


def test_image_figure_of_an_empty_image_says_so(caught):
    figures.image_figure(np.zeros((20, 30)), px_size_nm=10.0)
    assert "no localizations in the image" in _texts(caught[-1].axes[0])
    figures.image_figure(np.zeros((0, 0)), px_size_nm=10.0)  # a singular-limits UserWarning (an error here) before
    assert "no pixels" in _texts(caught[-1].axes[0])


# --- render/report.py ---------------------------------------------------------------------------------------------

def test_report_of_a_2d_mle_table_has_no_blank_axial_histogram(caught):
    """plexloc fit --method mle on a 2D movie writes crlb_z_nm = NaN in every row: the report drew an empty axes
    titled crlb_z_nm; it says why there is none. The lateral CRLBs, x and y pooled, say so in the title."""
    from plexloc.render.report import build_report

    n = 300
    rng = np.random.default_rng(3)
    t = _table(n, crlb_x_nm=rng.uniform(4, 12, n), crlb_y_nm=rng.uniform(4, 12, n), crlb_z_nm=np.full(n, np.nan))
    r = build_report(t)
    assert "axial CRLB (nm) histogram" not in r.html and "crlb_z_nm NaN or infinite in every row" in r.missing["sigma_z"]
    assert r.html.count("not available") == len(r.missing)
    lateral = [f for f in caught if f.axes and f.axes[0].get_xlabel() == "lateral CRLB (nm)"]
    assert len(lateral) == 1 and "pooled (2 values per localization)" in lateral[0].axes[0].get_title()
    # every value drawn (the bars summed to 598 of the 600)
    assert sum(p.get_height() for p in lateral[0].axes[0].patches) == 2 * n


def test_report_of_an_empty_table_says_so_once_per_section(caught):
    from plexloc.render.report import build_report

    r = build_report(_table(0))
    assert r.n_figures == 0 and not caught  # four histograms of nothing before
    assert r.missing["hist"] == "the table is empty" and r.html.count("not available") == len(r.missing)


def test_report_subpixel_panels_do_not_overlap_and_show_the_summary_numbers(caught):
    from plexloc.evaluate.gridding import gridding_check
    from plexloc.render.report import build_report

    t = _table(400, seed=4)
    r = build_report(t, camera_px_size_nm=100.0)
    fig = [f for f in caught if len(f.axes) == 2 and "mod pixel" in f.axes[0].get_xlabel()][0]
    left, right = fig.axes
    renderer = fig.kept_renderer
    # the titles ran into each other and the right panel's y label into the left panel
    assert not _overlap(left.title.get_window_extent(renderer), right.title.get_window_extent(renderer))
    assert not _overlap(right.yaxis.label.get_window_extent(renderer), left.get_tightbbox(renderer))
    check = gridding_check(t["x_nm"], t["y_nm"], 100.0)
    assert f"largest deviation {100 * check.dev_x:.1f} %" in left.get_title()
    assert f"largest deviation {100 * check.dev_y:.1f} %" in right.get_title()
    assert r.summary["gridding deviation x / y (%)"] == check.describe()


# --- calibrate/figures.py ----------------------------------------------------------------------------------------

def _fake_calibration(n_channels=2):
    v = np.zeros((9, 7, 7))
    v[:, 3, 3] = 1.0
    ch = SimpleNamespace(volume=v, z0_voxel=4.0, x0_voxel=3.0, y0_voxel=3.0)
    cal = SimpleNamespace(n_channels=n_channels, channels=[ch] * n_channels, px_size_nm=(100.0, 100.0), dz_nm=50.0)
    res = [[0.2, 0.4, 0.3, 0.1]] * (n_channels - 1)
    return SimpleNamespace(calibration=cal, transform_residual_nm=res)


def test_calibration_figures_name_beads_whole_and_say_what_they_show(caught, tmp_path):
    from plexloc.calibrate.figures import write_figures

    tz = np.tile(np.linspace(-500, 500, 11), 3)
    loo = {"n_fits": 33, "true_z_nm": tz.tolist(), "fit_z_nm": (tz + 3.0).tolist(), "bead": np.repeat([0, 1, 2], 11),
           "z_bias_nm": 3.0, "z_rmse_nm": 3.0}
    written = write_figures(_fake_calibration(3), tmp_path / "PSF.h5", loo=loo)
    assert [p.name for p in written] == ["PSF_psf.png", "PSF_zcal.png", "PSF_transform.png"]
    psf, zcal, transform = (caught[-3:])
    images = [ax for ax in psf.axes if ax.images]
    assert len(images) == 9 and all(ax.get_xlabel().endswith("(nm)") for ax in images)
    assert any("share of the photons" in ax.get_ylabel() for ax in psf.axes if not ax.images)  # colour bars
    ax = zcal.axes[0]
    assert "bias 3.0 nm, RMSE 3.0 nm" in ax.get_title() and "leave" not in ax.get_title().split("\n")[1]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == ["bead 0", "bead 1", "bead 2"]
    ax = transform.axes[0]
    ticks = [t for t in ax.get_xticks() if -0.5 < t < 3.5]
    assert ticks == [0, 1, 2, 3]  # whole beads (it read 0.5, 1.5, ...)
    assert "ch1 rms 0.27, max 0.4 nm" in ax.get_title() and "ch2 rms" in ax.get_title()
    assert ax.get_ylim()[1] > 0.4 * 1.2  # room for the legend above the bars
    # the two channels' bars sit either side of each bead's number
    xs = sorted(p.get_x() + p.get_width() / 2 for p in ax.patches)
    assert math.isclose(xs[0], -0.2) and math.isclose(xs[1], 0.2)


# --- camera/calibration.py, post/color.py, train/trainer.py -------------------------------------------------------

def test_camera_figure_marks_the_printed_medians_and_says_when_there_is_no_transfer(caught, tmp_path):
    from plexloc.camera.calibration import CameraCalibration

    rng = np.random.default_rng(0)
    offset = rng.normal(100.0, 0.2, (40, 40))
    read = np.abs(rng.normal(1.7, 0.3, (40, 40)))
    cal = CameraCalibration("emccd", {}, {}, offset, read, None, 100)
    cal.figure(tmp_path / "cam.png")
    assert (tmp_path / "cam.png").stat().st_size > 0
    transfer, off, rd = caught[-1].axes
    assert "no photon transfer measured" in _texts(transfer)  # blank axes before
    assert [t.get_text() for t in off.get_legend().get_texts()] == [f"median {np.median(offset):.5g} ADU"]
    assert [t.get_text() for t in rd.get_legend().get_texts()] == [f"median {np.median(read):.4g} ADU"]
    assert off.get_xlabel() == "offset (ADU)" and rd.get_xlabel() == "read noise (ADU)"
    renderer = caught[-1].kept_renderer
    labels = [t for t in off.get_xticklabels() if t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(_overlap(a, b) for a, b in zip(boxes, boxes[1:]))  # (100.75101.00)


def test_ratio_figure_has_a_title_and_draws_no_fractions_as_a_message(caught, tmp_path):
    from plexloc.post.color import RatioFit, ratio_figure

    rng = np.random.default_rng(1)
    f = np.r_[rng.normal(0.8, 0.03, 200), rng.normal(0.3, 0.03, 200)][:, None]
    fit = RatioFit(np.array([[0.8, 0.2], [0.3, 0.7]]), np.array([0.5, 0.5]), np.array([[0.03], [0.03]]), f, 10, True)
    ratio_figure(fit, tmp_path / "r.png", ratios=[[0.8, 0.2], [0.3, 0.7]])
    ax = caught[-1].axes[0]
    assert "400 localizations, 2 colours" in ax.get_title()
    assert ax.get_xlabel() == "fraction of photons in channel 0" and "density" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "r_0 = 0.800 (fitted)" in labels and "r_1 = 0.300 (given)" in labels
    empty = RatioFit(fit.ratios, fit.weights, fit.spreads, np.zeros((0, 1)), 0, False)
    ratio_figure(empty, tmp_path / "e.png")  # a density of no values: a RuntimeWarning (an error here) before
    assert "no localizations" in _texts(caught[-1].axes[0]) and (tmp_path / "e.png").stat().st_size > 0


def test_training_curves_label_every_axis_and_show_a_value_logged_once(caught, tmp_path):
    from plexloc.train.trainer import plot_curves

    rows = [{"step": 40, "loss": 15.0, "val_loss": 10.0, "jaccard": 0.0, "eff_lat": math.nan, "rmse_lat": math.nan},
            {"step": 80, "loss": 9.0, "val_loss": 8.0, "jaccard": 1.8, "eff_lat": -3.8, "rmse_lat": 33.7}]
    plot_curves(rows, tmp_path / "curves.png")
    axes = caught[-1].axes
    assert [a.get_ylabel() for a in axes] == ["loss", "JI, efficiency (%)", "RMSE (nm)"]
    assert all(a.get_xlabel() == "step" for a in axes)
    rmse = axes[2].lines[0]
    assert rmse.get_marker() not in (None, "None", "")  # one finite value between NaNs: drawn as a point
    np.testing.assert_allclose(rmse.get_ydata(), [math.nan, 33.7])
    rows[1]["segment"] = 1  # an init_from run's seam: named once
    plot_curves(rows, tmp_path / "curves.png")
    assert [t.get_text() for t in caught[-1].axes[0].get_legend().get_texts()] == [
        "train", "validation", "optimizer restarted (init_from)"]


def test_astigmatic_sigma_figure_says_what_it_shows_and_draws_the_fitted_widths(caught, tmp_path):
    from plexloc.calibrate.figures import write_sigma_figure

    z = np.linspace(-800, 800, 33)
    sx, sy = 120 * np.sqrt(1 + ((z + 250) / 400) ** 2), 120 * np.sqrt(1 + ((z - 250) / 400) ** 2)
    psf = SimpleNamespace(s0_nm=[120.0, 120.0], c_nm=[-250.0, 250.0], d_nm=400.0, A=[0.0, 0.0], B=[0.0, 0.0])
    result = SimpleNamespace(psf=psf, z_nm=z, sigma_nm=np.column_stack([sx, sy]), residual_nm=[0.7, 0.8])
    assert write_sigma_figure(result, tmp_path / "astig.yaml").name == "astig_sigma.png"
    ax = caught[-1].axes[0]
    assert "defocus curves" in ax.get_title() and ax.get_xlabel() == "z (nm)" and ax.get_ylabel().endswith("(nm)")
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_allclose(lines["sigma_x (slices)"].get_ydata(), sx)
    assert "fit, rms 0.7 nm" in lines and "fit, rms 0.8 nm" in lines
