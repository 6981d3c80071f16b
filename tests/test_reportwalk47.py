"""The report, the napari reader and the log-file progress lines, walked as an imaging facility user (session 47)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap


def test_a_log_files_progress_bar_writes_no_line_for_a_stall_and_another_at_once_after_it(tmp_path):
    """stderr a file: tqdm's monitor thread redrew a bar stalled for longer than its interval (a training's validation)
    with the count unchanged, and the next update wrote the next count at once ('262step' then '263step' in the same
    second, around every validation). Intervals shortened; a subprocess, so that the monitor thread is its own."""
    script = textwrap.dedent("""
        import io, sys, time
        import plexloc.progress as P
        from tqdm import tqdm
        tqdm.monitor_interval = 0.05  # the monitor looks every 0.05 s (10 s by default)
        P.LOG_DELAY_S, P.LOG_INTERVAL_S = 0.0, 0.5

        class Log(io.StringIO):
            def isatty(self):
                return False

        sys.stderr = log = Log()
        bar = P.progress(None, total=None, desc="train", unit="step")
        for _ in range(30):
            bar.update(1)
            time.sleep(0.02)
        time.sleep(1.2)  # a validation: the bar stalls for twice its interval
        for _ in range(5):
            bar.update(1)
            time.sleep(0.02)
        bar.close()
        sys.__stdout__.write(log.getvalue())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True).stdout
    counts = [int(m) for m in re.findall(r"train: (\d+)step", out)]
    # a line at the start (no delay here), one when the interval has passed at an update and one at the end; the
    # stall's line (30, the count before it) is gone, and the line after the stall is 31, the first step after it
    assert counts[0] == 0 and counts[-1] == 35, out
    assert 30 not in counts, out
    assert 31 in counts, out
    assert counts == sorted(counts), out


# --- the report -------------------------------------------------------------------------------------------------------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from plexloc.render import figures  # noqa: E402
from plexloc.render.report import build_report  # noqa: E402
from plexloc.table import LocTable  # noqa: E402


def _mle_table(n=400, n_frames=40):
    """A 3D table as plexloc fit --method mle writes it: 3 rows of 12 ran to the z bound (converged 0, at_bound 2) and
    1 to the photons' bound (4); frames 0..39 with the first ten holding twice as many rows (bleaching)."""
    rng = np.random.default_rng(3)
    frame = np.concatenate([rng.integers(0, 10, n // 2), rng.integers(10, n_frames, n - n // 2)])
    frame[0], frame[1] = 0, n_frames - 1
    at_bound = np.zeros(n, np.int64)
    at_bound[::12] = 2
    at_bound[5::40] = 4
    z = rng.uniform(-400, 400, n)
    z[at_bound == 2] = np.where(rng.random(int(np.sum(at_bound == 2))) < 0.5, -500.0, 500.0)
    return LocTable({"frame": frame, "x_nm": rng.uniform(0, 3000, n), "y_nm": rng.uniform(0, 3000, n), "z_nm": z,
                     "photons": rng.uniform(500, 3000, n), "bg": rng.uniform(10, 30, n),
                     "crlb_x_nm": rng.uniform(5, 10, n), "crlb_y_nm": rng.uniform(5, 10, n),
                     "crlb_z_nm": rng.uniform(20, 40, n), "converged": (at_bound == 0).astype(float),
                     "at_bound": at_bound}, source="locs.csv")


def test_the_report_says_how_many_rows_of_an_mle_fit_converged_and_what_the_z_histograms_end_bars_are():
    """An astigmatic fit's z histogram had a bar at each end (521 of 4536 rows on the fit's z bound) and nothing on the
    page said what they were, nor that 530 rows had not converged."""
    t = _mle_table()
    on_z, on_photons = int(np.sum(t["at_bound"] == 2)), int(np.sum(t["at_bound"] == 4))
    rep = build_report(t, px_size_nm=20.0)
    line = rep.summary["converged (maximum-likelihood fit)"]
    n_ok = len(t) - on_z - on_photons
    assert line.startswith(f"{n_ok} of {len(t)} rows ({100 * n_ok / len(t):.1f} %)"), line
    assert f"{on_z + on_photons} rows did not converge" in line and f"{on_z} z on its bound" in line, line
    assert f"{on_photons} photons at their bound" in line and "plexloc filter --converged" in line, line
    assert f"{on_z} of {len(t)} rows ({100 * on_z / len(t):.1f} %) ended on the fit&#x27;s z bound" in rep.html
    # a table without the column (a network's): no such row
    plain = LocTable({c: t[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
    assert not any(k.startswith("converged") for k in build_report(plain, px_size_nm=20.0).summary)


def test_the_report_shows_the_localizations_per_frame_and_the_settings_it_was_made_with(monkeypatch):
    """A microscopist looks for the count over time (bleaching, a focus lost) and for the settings of the page (a
    report passed on said neither its pixels, the FRC's split nor plexloc's version): neither was there."""
    from plexloc import __version__

    drawn = []
    real = figures.figure_png

    def keep(fig):  # what each figure's axes say, read before the PNG is made
        drawn.append([(ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), [ln.get_ydata() for ln in ax.get_lines()])
                      for ax in fig.axes])
        return real(fig)

    monkeypatch.setattr(figures, "figure_png", keep)
    t = _mle_table()
    rep = build_report(t, px_size_nm=20.0, camera_px_size_nm=100.0, seed=7)
    assert "<h2>Localizations per frame</h2>" in rep.html
    per_frame = [axes[0] for axes in drawn if axes[0][1] == "localizations per frame"]
    assert len(per_frame) == 1
    xlabel, _, _, lines = per_frame[0]
    counts = np.bincount(t["frame"], minlength=40)
    np.testing.assert_allclose(lines[0], counts)  # one frame per bin: the counts themselves
    assert lines[1][0] == pytest.approx(len(t) / 40)  # the mean, dashed
    assert rep.summary["mean localizations per frame"].startswith(f"{len(t) / 40:.3g} ")
    settings = rep.summary["report settings"]
    for part in (f"plexloc {__version__}", "camera pixel 100 nm", "image pixel 20 nm", "FRC: 5 nm pixels",
                 "seed 7", "within 150 nm"):
        assert part in settings, settings
    # the lateral CRLB histogram pools x and y: its bars count values, two per localization (they read as rows)
    lateral = [axes[0] for axes in drawn if axes[0][0] == "lateral CRLB (nm)"]
    assert lateral and lateral[0][1] == "values (x and y: 2 per localization)"
    automatic = build_report(t).summary["report settings"]
    assert "camera pixel not given" in automatic and "(automatic:" in automatic, automatic


def test_frame_counts_figure_bins_a_long_movie_to_the_mean_per_frame(monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "figure_png", lambda fig: drawn.append(fig) or b"")
    frames = np.repeat(np.arange(1000, 2000), 3)  # 3 per frame over 1000 frames: 500 bins of 2 frames
    figures.frame_counts_figure(np.concatenate([frames, [1999]]), max_bins=500)
    ax = drawn[0].axes[0]
    y = ax.get_lines()[0].get_ydata()
    assert len(y) == 500 and np.allclose(y[:-1], 3.0) and y[-1] == pytest.approx(3.5)  # the last bin: 7 rows in 2
    assert "bins of 2 frames" in ax.get_title()


# --- the napari reader ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_sigma", [False, True])
def test_napari_opens_a_multi_colour_table_as_one_image_layer_per_colour_on_one_grid(tmp_path, with_sigma):
    """A dual-colour table opened as one grey image (its colours summed) and cyan points: the channels could not be
    told apart. Now a layer per colour in the report's hues, additive, on the whole table's grid (so that they overlay
    each other and the points), rejected rows grey and hidden, the points coloured alike."""
    from plexloc.io.formats import write_locs
    from plexloc.napari import read_localizations
    from plexloc.render.image import COLOR_PALETTE, render

    rng = np.random.default_rng(5)
    n = 600
    colour = rng.choice([-1, 0, 1], n, p=[0.1, 0.5, 0.4])
    cols = {"frame": rng.integers(0, 20, n), "x_nm": rng.uniform(0, 2000, n) + 3000 * (colour == 1),
            "y_nm": rng.uniform(0, 2000, n), "z_nm": np.zeros(n), "photons": rng.uniform(500, 2000, n), "color": colour}
    if with_sigma:
        cols.update(sigma_x_nm=rng.uniform(5, 15, n), sigma_y_nm=rng.uniform(5, 15, n))
    path = tmp_path / "two.csv"
    write_locs(LocTable(cols), path)
    *images, (pts, pts_kw, kind) = read_localizations(str(path), px_size_nm=10.0)
    assert kind == "points" and [im[2] for im in images] == ["image"] * 3
    names = [im[1]["name"] for im in images]
    assert names == ["two.csv rejected (colour -1) (rendered, 10 nm)", "two.csv colour 0 (rendered, 10 nm)",
                     "two.csv colour 1 (rendered, 10 nm)"]
    assert [im[1]["colormap"] for im in images] == ["gray", "magenta", "green"]
    assert [im[1]["visible"] for im in images] == [False, True, True]
    assert {im[1]["blending"] for im in images} == {"additive"}
    # one grid: that of the whole table's image, which the colours' layers sum to
    whole = render(LocTable(cols), method="gaussian" if with_sigma else "histogram", px_size_nm=10.0,
                   **({"min_sigma_nm": 5.0} if with_sigma else {}))
    x0, _, y0, _ = whole.extent_nm
    for im in images:
        assert im[0].shape == whole.image.shape
        assert im[1]["translate"] == (y0 + 5.0, x0 + 5.0) and im[1]["scale"] == (10.0, 10.0)
    if with_sigma:  # each row's Gaussian inside the grid (σ are quantised in levels 10 % apart, per table: a colour's
        # levels differ a little from the whole's, pixel by pixel)
        np.testing.assert_allclose([im[0].sum() for im in images], [np.sum(colour == k) for k in (-1, 0, 1)],
                                   rtol=1e-3)
    else:  # a histogram: each layer counts its colour's rows, and they sum to the whole's image
        np.testing.assert_array_equal(sum(im[0] for im in images), whole.image)
        assert [int(im[0].sum()) for im in images] == [int(np.sum(colour == k)) for k in (-1, 0, 1)]
    face = pts_kw["face_color"]
    np.testing.assert_allclose(face[colour == 0, :3], np.broadcast_to(COLOR_PALETTE[0], (np.sum(colour == 0), 3)))
    np.testing.assert_allclose(face[colour == 1, :3], np.broadcast_to(COLOR_PALETTE[1], (np.sum(colour == 1), 3)))
    np.testing.assert_allclose(face[colour == -1, :3], 0.5)
    np.testing.assert_allclose(pts[:, 1], cols["x_nm"])
    assert pts_kw["metadata"] == {"source": str(path), "rows": n}
