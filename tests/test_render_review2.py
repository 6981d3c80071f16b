"""Render / report review 2: the 16-bit TIFF's dynamic range, memory refusals, and the report as a microscopist reads
it (precision from CRLB columns, NaN z, every localization visible, colour images, labelled axes)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.render import image as image_mod
from plexloc.render.image import render_color, render_histogram, save_image
from plexloc.render.report import build_report
from plexloc.table import LocTable


def _table(x, y, z=None, **cols) -> LocTable:
    n = len(x)
    d = {"frame": np.arange(n) % 50, "x_nm": np.asarray(x, float), "y_nm": np.asarray(y, float),
         "z_nm": np.zeros(n) if z is None else np.asarray(z, float), "photons": np.full(n, 1000.0)}
    d.update(cols)
    return LocTable(d)


def _report_image(html: str) -> np.ndarray:
    import matplotlib.image

    m = re.search(r'alt="rendered image" src="data:image/png;base64,([^"]*)"', html)
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(m.group(1))))


def test_tiff_is_linear_to_the_brightest_pixel_and_calibrated(tmp_path):
    """1000 pixels with one localization, 5 with two and one with 40: the old TIFF put the 0.995 quantile (1) at
    65535, so 1, 2 and 40 localizations were all 65535; now the levels are proportional to the counts."""
    xs = [10.0 * (2 * k) + 5 for k in range(1000)] + [10.0 * (2 * k + 1) + 5 for k in range(5)] * 2 + [20005.0] * 40
    r = render_histogram(_table(xs, np.full(len(xs), 5.0)), px_size_nm=10.0, extent_nm=(0, 20010, 0, 10))
    info = save_image(r, tmp_path / "h.tif", scale_bar=False)
    with tifffile.TiffFile(tmp_path / "h.tif") as f:
        a = f.asarray().astype(float)
        meta = f.imagej_metadata
        assert f.pages[0].tags["XResolution"].value == (100, 1) and meta["unit"] == "um"
    counts = r.image
    assert a.max() == 65535 and np.count_nonzero(a == 65535) == 1  # only the 40
    assert np.allclose(a * meta["c1"], counts, atol=meta["c1"])  # ImageJ's calibration gives the counts back
    assert meta["cf"] == 0 and meta["vunit"] == "localizations per pixel" and info["tiff_value_per_level"] == meta["c1"]
    assert 0 < meta["max"] < 65535  # display range: the saturate quantile, as the PNG
    # RGB: not clipped either
    rgb = render_color(_table(xs, np.full(len(xs), 5.0), z=np.linspace(-300, 300, len(xs))), color_by="z",
                       px_size_nm=10.0, extent_nm=(0, 20010, 0, 10))
    save_image(rgb, tmp_path / "c.tif", scale_bar=False)
    c = tifffile.imread(tmp_path / "c.tif").astype(float)
    assert np.count_nonzero(c.max(axis=-1) == 65535) == 1


def test_an_image_beyond_the_memory_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(image_mod, "_available_memory_bytes", lambda: 2**30)
    t = _table([0.0, 100_000.0], [0.0, 100_000.0], z=[-100.0, 100.0])
    # 100 µm at 6.2 nm: 2.6e8 pixels, under max_pixels (2^28), about 16 GiB coloured by z (the old code tried)
    with pytest.raises(InputError, match=r"GiB of memory.*>= \d+(\.\d)? nm"):
        render_color(t, color_by="z", px_size_nm=6.2)
    with pytest.raises(InputError, match="GiB of memory"):
        render_histogram(t, px_size_nm=6.2)  # 6 GiB as a histogram
    assert render_histogram(t, px_size_nm=500.0).image.sum() == 2
    # the refusal names the table's file (it named none)
    from plexloc.table import LocTable

    named = LocTable({c: t[c] for c in t.columns}, source="big_locs.csv")
    with pytest.raises(InputError) as err:
        render_histogram(named, px_size_nm=6.2)
    assert "big_locs.csv" in str(err.value)
    with pytest.raises(InputError) as err:
        render_histogram(named, px_size_nm=0.5)  # beyond max_pixels
    assert "big_locs.csv" in str(err.value) and "exceeds" in str(err.value)


def test_report_precision_from_crlb_columns_and_nan_z():
    rng = np.random.default_rng(1)
    n = 300
    z = rng.normal(0, 200, n)
    z[::3] = np.nan
    t = _table(rng.uniform(0, 4000, n), rng.uniform(0, 4000, n), z=z, crlb_x_nm=rng.uniform(5, 15, n),
               crlb_y_nm=rng.uniform(6, 16, n), crlb_z_nm=rng.uniform(20, 60, n))
    r = build_report(t)
    assert "sigma" not in r.missing  # the CRLB histograms are drawn (were 'not available' for an MLE table)
    for c, label in (("crlb_x_nm", "x"), ("crlb_y_nm", "y"), ("crlb_z_nm", "z")):
        assert r.summary[f"median CRLB {label} (nm)"] == f"{np.median(t[c]):.3g}"
    zf = z[np.isfinite(z)]
    assert r.summary["z range (nm)"] == f"{zf.min():.0f} .. {zf.max():.0f} ({n - zf.size} rows without a finite z)"
    bare = build_report(_table(t["x_nm"], t["y_nm"], z=np.full(n, np.nan)))
    assert "no finite z" in bare.missing["z"] and "z range (nm)" not in bare.summary  # was 'nan .. nan', an empty plot


def test_report_image_shows_every_localization():
    """400 isolated localizations, 10 µm field, 7 nm pixels: the figure skipped rows and columns of the 1430-pixel
    image and showed 65 of them; now it is summed to the figure's resolution first."""
    from scipy import ndimage

    g = np.arange(20) * 500 + 250.0
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    im = _report_image(build_report(_table(x, y)).html)[..., :3].mean(-1)
    dark = im < 0.05
    lab, k = ndimage.label(dark)
    biggest = np.argmax(ndimage.sum(dark, lab, range(1, k + 1))) + 1
    box = ndimage.find_objects((lab == biggest).astype(int))[0]
    inner = im[box]
    _, n_seen = ndimage.label(inner > 0.15)
    assert n_seen >= 390


def test_report_colours_a_multicolour_and_a_3d_table():
    rng = np.random.default_rng(2)
    n = 600
    colour = rng.choice([-1, 0, 1], n, p=[0.05, 0.55, 0.40])
    t = _table(rng.uniform(0, 3000, n), rng.uniform(0, 3000, n), color=colour)
    r = build_report(t)
    ks, cnt = np.unique(colour, return_counts=True)
    expect = ", ".join(f"{'rejected' if k < 0 else f'colour {k}'}: {c} ({100 * c / n:.1f} %)" for k, c in zip(ks, cnt))
    assert r.summary["localizations per colour"] == expect
    im = _report_image(r.html)[..., :3]
    assert np.count_nonzero((im[..., 0] > 0.5) & (im[..., 1] < 0.3)) and np.count_nonzero((im[..., 1] > 0.5) & (im[..., 0] < 0.3))
    z = rng.normal(0, 250, n)
    r3 = build_report(_table(t["x_nm"], t["y_nm"], z=z))
    z0, z1 = np.quantile(z, [0.01, 0.99])
    assert f"coloured by z ({z0:.0f} to {z1:.0f} nm" in r3.html


def test_every_report_axis_is_labelled(monkeypatch):
    from plexloc.render import figures

    seen = []
    real = figures.figure_png

    def record(fig):
        seen.extend((ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes)
        return real(fig)

    monkeypatch.setattr(figures, "figure_png", record)
    rng = np.random.default_rng(3)
    n = 400
    t = _table(rng.uniform(0, 3000, n), rng.uniform(0, 3000, n), z=rng.normal(0, 100, n), bg=rng.uniform(5, 50, n),
               sigma_x_nm=rng.uniform(5, 15, n), sigma_y_nm=rng.uniform(5, 15, n), sigma_z_nm=rng.uniform(20, 40, n),
               drift_x_nm=np.zeros(n), drift_y_nm=np.zeros(n))
    build_report(t, camera_px_size_nm=100.0)
    assert len(seen) >= 9
    unlabelled = [s for s in seen if not (s[0] or s[1]) or not s[1] and s[0] != ""]
    assert not unlabelled and all(ylab for _, ylab in seen), seen  # the subpixel histogram had no y label
