"""What a user sees (session 46's audit): the FRC of a field wider than one image keeps its pixel, a value the pixel
limits says so, a scale bar is as long as it is said to be, and a TIFF's calibration puts it at the table's x, y."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.post.synthetic import blinking_table, structure_points
from plexloc.render.frc import expected_frc_resolution, frc
from plexloc.table import LocTable


@pytest.fixture(scope="module")
def molecules():
    rng = np.random.default_rng(0)
    m = 6000
    mol = structure_points("uniform", m, fov_nm=8000.0, rng=rng)
    t = blinking_table(mol, n_frames=1000, rng=rng, precision_nm=10.0, events_per_molecule=4, mean_on_frames=1.0)
    return t, len(t) / m / 2


def test_frc_of_a_field_wider_than_one_image_keeps_its_pixel(molecules):
    """An 8 µm field at 5 nm is 1609 pixels: over max_image_px the pixel was grown to fit one image (20.1 nm here; a
    59 µm table at the default 5 nm: 14.4 nm, and 29.1 nm read for 26.2), silently. Tiles pooled keep the pixel and
    the value of one image."""
    t, q = molecules
    one = frc(t, px_size_nm=5.0)
    tiled = frc(t, px_size_nm=5.0, max_image_px=500)
    assert tiled.px_size_nm == 5.0 and tiled.info["tiles"] == 16 and tiled.info["image_px"] <= 500
    assert "tiles" not in one.info and "px_grown" not in tiled.info
    assert tiled.resolution_nm == pytest.approx(one.resolution_nm, rel=0.03)
    assert tiled.resolution_nm == pytest.approx(expected_frc_resolution(10.0, q, px_size_nm=5.0), rel=0.1)


def test_frc_grows_the_pixel_only_past_its_tiles_and_says_so(molecules):
    t, _ = molecules
    res = frc(t, px_size_nm=5.0, max_image_px=400, max_tiles=4)
    # the finest pixel that 2 x 2 tiles of 400 pixels cover (8.04 µm / 800), not more
    assert res.px_size_nm == pytest.approx(8041 / 800, rel=0.01) and res.info["image_px"] == 400
    assert "grown from 5 to 10.1 nm" in res.info["px_grown"] and "--extent" in res.info["px_grown"]


def test_a_resolution_of_a_few_pixels_is_said_to_be_limited_by_them(molecules, tmp_path, capsys):
    """At 20 nm pixels the value (44.5 nm, 2.2 pixels) is coarsened by the binning (40.7 nm at 5 nm); it was given
    without a word."""
    t, _ = molecules
    coarse, fine = frc(t, px_size_nm=20.0), frc(t, px_size_nm=5.0)
    assert coarse.resolution_nm > 1.05 * fine.resolution_nm
    assert "under 3 pixels of 20 nm (2.2 pixels)" in coarse.info["pixel_limited"]
    assert "pixel_limited" not in fine.info

    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs
    from plexloc.render.report import build_report

    path = tmp_path / "locs.csv"
    write_locs(t, path)
    assert main(["frc", str(path), "--pixel-size", "20"]) == 0
    err = capsys.readouterr().err
    assert "note: the resolution is under 3 pixels of 20 nm" in err
    rep = build_report(t, px_size_nm=50.0, frc_px_size_nm=20.0)
    assert "20 nm pixels" in rep.summary["FRC resolution (nm)"]
    assert "note: the resolution is under 3 pixels" in rep.summary["FRC resolution (nm)"]


def test_frc_extent_takes_the_region(molecules, tmp_path, capsys):
    import json

    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    t, _ = molecules
    path = tmp_path / "locs.csv"
    write_locs(t, path)
    assert main(["frc", str(path), "--extent", "0", "4000", "0", "4000", "--json", str(tmp_path / "f.json")]) == 0
    out = capsys.readouterr().out
    x, y = t["x_nm"], t["y_nm"]
    inside = int(np.count_nonzero((x >= 0) & (x < 4000) & (y >= 0) & (y < 4000)))
    assert f"{inside} localizations, 5 nm pixels)" in out
    got = json.loads((tmp_path / "f.json").read_text())
    assert got["n_localizations"] == inside and got["image_px"] == 800
    assert main(["frc", str(path), "--extent", "10", "0", "0", "10"]) == 2
    assert "--extent X0 X1 Y0 Y1 needs X0 < X1" in capsys.readouterr().err


def test_scale_bar_is_as_long_as_it_is_said_to_be(tmp_path):
    """One localization is a 1-pixel image: its '2 nm' bar was 0 pixels, yet printed and keyed; 10 pixels of 30 nm
    drew '50 nm' as 2 pixels (60 nm)."""
    import matplotlib.image

    from plexloc.render.image import Rendered, save_image

    one = Rendered(np.ones((1, 1)), 10.0, (0.0, 10.0, 0.0, 10.0))
    assert save_image(one, tmp_path / "one.png")["scale_bar_nm"] == 0.0
    small = Rendered(np.zeros((10, 10)), 30.0, (0.0, 300.0, 0.0, 300.0))
    assert save_image(small, tmp_path / "small.png")["scale_bar_nm"] == 0.0
    for w, px, bar in ((12, 10.0, 20.0), (100, 15.0, 200.0), (655, 10.0, 1000.0)):
        r = Rendered(np.zeros((40, w)), px, (0.0, w * px, 0.0, 40 * px))
        info = save_image(r, tmp_path / f"bar{w}.png")
        drawn = int((matplotlib.image.imread(tmp_path / f"bar{w}.png")[..., 0] > 0.5).any(axis=0).sum())
        assert info["scale_bar_nm"] == bar and abs(drawn * px - bar) <= 0.05 * bar


def test_render_cli_says_a_tiny_image_has_no_scale_bar(tmp_path, capsys):
    from plexloc.cli.main import main

    path = tmp_path / "one.csv"
    path.write_text("frame,x_nm,y_nm,z_nm,photons\n0,100,200,50,1000\n")
    assert main(["render", str(path), "--out", str(tmp_path / "one.png")]) == 0
    out = capsys.readouterr().out
    assert "no scale bar (too few pixels for one)" in out and "scale bar 2 nm" not in out


def test_tiff_and_png_say_where_the_image_lies(tmp_path):
    """A TIFF opened in Fiji read x and y from 0 at its corner, not the table's: ImageJ's origin now puts them at
    x_nm, y_nm (µm); the RGB TIFF and the PNG say the corner in their description."""
    import tifffile
    from PIL import Image

    from plexloc.render.image import render, render_color, save_image

    t = LocTable({"frame": [0, 0, 1], "x_nm": [1234.0, 1500.0, 2000.0], "y_nm": [5678.0, 6000.0, 5900.0],
                  "z_nm": [-100.0, 0.0, 100.0], "photons": [1e3] * 3})
    r = render(t, px_size_nm=10.0)
    assert r.extent_nm[0] == 1230.0 and r.extent_nm[2] == 5670.0
    save_image(r, tmp_path / "g.tif")
    with tifffile.TiffFile(tmp_path / "g.tif") as f:
        meta = f.imagej_metadata
    px_um = 0.01
    # ImageJ: calibrated x = (pixel x - xorigin) * pixel width; pixel 0's corner at the table's 1.23 µm
    assert (0 - meta["xorigin"]) * px_um == pytest.approx(1.230) and (0 - meta["yorigin"]) * px_um == pytest.approx(5.670)
    # the localization at x 1500 nm lies in column 27: Fiji's x of that column's corner is 1.50 µm
    assert (27 - meta["xorigin"]) * px_um == pytest.approx(1.500)
    save_image(render_color(t, color_by="z", px_size_nm=10.0), tmp_path / "c.tif")
    with tifffile.TiffFile(tmp_path / "c.tif") as f:
        assert "corner of pixel (0, 0) at x 1230 nm, y 5670 nm" in f.pages[0].description
    save_image(r, tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert "corner of pixel (0, 0) at x 1230 nm, y 5670 nm" in im.info["Description"]


def test_nena_without_repeats_says_so_without_a_runtime_warning(molecules):
    """Molecules on for one frame on average: the 662 next-frame neighbours are chance ones, the fit runs its σ far
    above the radius, where 1 - exp(-r²/2s²) was 0: a 'divide by zero' RuntimeWarning (an error under the tests,
    printed by plexloc report) before the answer."""
    from plexloc.render.nena import nena, nena_density

    res = nena(molecules[0])
    assert np.isnan(res.sigma_nm) and "not small against the search radius" in res.info["no_value"]
    d = np.array([0.0, 50.0, 150.0])
    # σ far above the radius: the uniform disk's 2 d / r²; σ far below: nothing but the chance share
    assert nena_density(d, 1e12, 0.0, 150.0) == pytest.approx(2 * d / 150.0**2)
    assert nena_density(d, 1e-160, 0.5, 150.0) == pytest.approx(0.5 * 2 * d / 150.0**2)


def test_histogram_count_beyond_the_axes_is_not_written_over_a_bar(monkeypatch):
    """'4 of 2794 values beyond the axes' (top right) was written across the tallest bar where it stood at the right
    (the report's background histogram of an MLE fit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plexloc.render import figures

    figs = []
    png = figures.figure_png

    def keep(fig):
        fig.canvas.draw()
        figs.append((fig, fig.canvas.get_renderer()))
        return png(fig)

    monkeypatch.setattr(figures, "figure_png", keep)
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0.0, 10.0, 3000), np.full(1500, 9.95), np.full(4, 1e3)])
    figures.histogram_figure(values, xlabel="background (photons/pixel)")
    fig, renderer = figs[0]
    ax = fig.axes[0]
    (note,) = [t for t in ax.texts if "beyond the axes" in t.get_text()]
    box = note.get_window_extent(renderer)
    assert note.get_text().endswith(" of 4504 values beyond the axes")
    assert not any(box.overlaps(b.get_window_extent(renderer)) for b in ax.patches if b.get_height() > 0)
    plt.close(fig)


def test_one_z_value_gets_no_made_up_colour_scale(tmp_path, capsys):
    """One row (or one row with a finite z) coloured by z was drawn under a 'z from 50 nm to 51 nm' key, in the
    report too ('coloured by z (50 to 51 nm ...)'), a scale the data do not have."""
    from plexloc.cli.main import main
    from plexloc.render.report import build_report

    one = tmp_path / "one.csv"
    one.write_text("frame,x_nm,y_nm,z_nm,photons\n0,100,200,50,1000\n")
    nanz = tmp_path / "nanz.csv"
    nanz.write_text("frame,x_nm,y_nm,z_nm,photons\n0,100,200,50,1000\n1,150,250,nan,1000\n")
    for path in (one, nanz):
        assert main(["render", str(path), "--out", str(tmp_path / "z.png"), "--color-by", "z"]) == 2
        err = capsys.readouterr().err
        assert "z_nm is finite in one row only (50 nm" in err and "--z-range" in err
    assert main(["render", str(one), "--out", str(tmp_path / "z.png"), "--color-by", "z", "--z-range", "0", "100"]) == 0
    t = LocTable({"frame": [0, 1], "x_nm": [100.0, 300.0], "y_nm": [200.0, 250.0], "z_nm": [50.0, 50.0],
                  "photons": [1e3, 1e3]})
    rep = build_report(t)
    assert "coloured by z" not in rep.html and "50 .. 50" in rep.summary["z range (nm)"]
