"""Walk 39: an astigmatic 3D lab (EMCCD, 100 nm pixels) from its own bead stack to a z-coloured image, on the CLI.

The bead stack is rendered with plexloc's astigmatic Gaussian (the 3d_astigmatic example's s0, c, d), each bead at
its own z offset (a tilted coverslip), with a little stage drift, through the SMLM Challenge's EMCCD.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plexloc.cli.main import main
from plexloc.io import write_movie

STEP_NM = 30.0


def _astigmatic_beads(seed: int = 0, n_side: int = 3):
    """uint16 stack (41 slices, +-600 nm), the beads' (x, y) nm and their z offsets (nm; a bead at stage z sits at
    defocus z + dz)."""
    from plexloc.camera.models import EMCCD
    from plexloc.psf import AstigmaticPSF

    rng = np.random.default_rng(seed)
    xy = np.array([(1000.0 + 1600.0 * i, 1000.0 + 1600.0 * j) for i in range(n_side) for j in range(n_side)])
    xy += rng.uniform(-50, 50, xy.shape)
    dz = rng.uniform(-25, 25, len(xy))
    zs = np.arange(-600.0, 601.0, STEP_NM)
    k = np.arange(len(zs))
    n = len(xy)
    size = int(np.ceil((1000.0 + 1600.0 * n_side) / 100.0))
    x = (xy[None, :, 0] + 0.3 * k[:, None]).ravel()  # 12 nm of drift in x over the stack
    y = (xy[None, :, 1] - 0.15 * k[:, None]).ravel()
    z = (zs[:, None] + dz[None]).ravel()
    psf = AstigmaticPSF(px_size_nm=(100.0, 100.0), roi_px=21)
    f = psf.render(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                   torch.tensor(z, dtype=torch.float32), torch.full((n * len(zs),), 3e4),
                   torch.arange(len(zs)).repeat_interleave(n), n_frames=len(zs), frame_shape=(size, size))
    raw = EMCCD()(f + 30.0, generator=torch.Generator().manual_seed(seed)).numpy()
    return raw.astype(np.uint16), xy, dz


@pytest.fixture(scope="module")
def bead_stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("beads")
    raw, xy, dz = _astigmatic_beads()
    tif = d / "beads.tif"
    write_movie(tif, raw, dtype=np.uint16)
    return tif, xy, dz


def test_psf_json_lists_every_bead_used_with_its_position_and_z_offset(bead_stack, tmp_path, capsys):
    """PSF.json listed only the rejected beads (and a count of the used ones), and the summary line printed Python
    dictionaries ('beads used [9] ({'found': 9})'). Now every used bead is listed with its pixel, position and z
    offset from the average (a tilted coverslip shows as offsets growing across the field), and the line reads
    '9 of 9 found'."""
    tif, xy, dz = bead_stack
    out = tmp_path / "psf.h5"
    assert main(["calibrate", str(tif), "--z-step", f"{STEP_NM:g}", "--pixel-size", "100", "--out", str(out),
                 "--no-validate"]) == 0
    line = capsys.readouterr().out
    assert "beads used 9 of 9 found;" in line and "{" not in line
    report = json.loads(out.with_suffix(".json").read_text())
    used = report["used_beads"][0]
    assert len(used) == report["n_beads_used"][0] == 9
    pos = np.array([[b["x_nm"], b["y_nm"]] for b in used])
    near = np.argmin(np.linalg.norm(pos[:, None] - xy[None], axis=2), axis=1)
    assert sorted(near.tolist()) == list(range(9))
    # positions: the beads' at the stack's middle slice (the drift there: +6, -3 nm)
    assert np.abs(pos - xy[near] - [6.0, -3.0]).max() < 10.0
    assert [(b["row"], b["col"]) for b in used] == [(int(p[1] // 100), int(p[0] // 100)) for p in xy[near]]
    z_off = np.array([b["z_offset_nm"] for b in used])
    truth = dz[near]
    # relative to the average bead: equal up to one constant (the average's own offset)
    err = (z_off - z_off.mean()) - (truth - truth.mean())
    assert np.abs(err).max() < 4.0, err
    assert np.std(truth) > 10.0  # the offsets are measured, not all zero


def test_a_z_step_ten_times_too_large_names_the_likely_step(bead_stack, tmp_path, capsys):
    """A --z-step 10x too large was refused with 'check --z-step' and no value; one 10x too small named the likely
    step. Now both do."""
    tif, _, _ = bead_stack
    assert main(["calibrate", str(tif), "--z-step", f"{10 * STEP_NM:g}", "--pixel-size", "100",
                 "--out", str(tmp_path / "psf.h5"), "--no-validate"]) == 2
    err = capsys.readouterr().err
    assert "check --z-step" in err and "would mean a step of about" in err
    likely = float(err.split("a step of about ")[1].split(" nm")[0])
    assert 0.6 * STEP_NM <= likely <= 1.6 * STEP_NM, err
    assert not list(tmp_path.iterdir())


def _z_table(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    x = rng.uniform(0, 3000, n)
    t = {"frame": np.arange(n) % 50, "x_nm": x, "y_nm": rng.uniform(0, 3000, n), "z_nm": -400.0 + 800.0 * x / 3000,
         "photons": np.full(n, 2000.0), "sigma_x_nm": np.full(n, 8.0), "sigma_y_nm": np.full(n, 8.0),
         "color": rng.integers(-1, 2, n)}
    path = tmp_path / "locs.csv"
    import pandas as pd

    pd.DataFrame(t).to_csv(path, index=False)
    return path


def test_a_z_coloured_png_gets_its_colour_scale_in_nm(tmp_path, capsys):
    """plexloc render --color-by z wrote a PNG whose colours had no key (the z range was only printed) and whose scale
    bar had no number. Now OUT_legend.png beside it holds the z scale in nm, the colormap, and the bar's length."""
    from PIL import Image

    locs = _z_table(tmp_path)
    out = tmp_path / "image.png"
    assert main(["render", str(locs), "--out", str(out), "--color-by", "z", "--z-range", "-400", "400",
                 "--cmap", "viridis"]) == 0
    printed = capsys.readouterr().out
    legend = tmp_path / "image_legend.png"
    assert legend.is_file() and f"legend {legend}" in printed
    with Image.open(legend) as im:
        img = np.asarray(im.convert("RGB"), dtype=float)
    # the legend's colours are the colormap's: viridis' ends (dark purple, yellow) both appear
    import matplotlib

    for end in (0.0, 1.0):
        rgb = 255 * np.asarray(matplotlib.colormaps["viridis"](end)[:3])
        assert np.abs(img - rgb).sum(axis=2).min() < 30, end
    # the image itself is unchanged: its pixels only (the rendered size, as printed)
    w, h = (int(v) for v in printed.split(": ")[1].split(" px")[0].split(" x "))
    with Image.open(out) as im:
        assert im.size == (w, h)


def test_the_legend_figure_reads_the_rendered_scale_and_channels():
    """The legend is drawn from what the image used (Rendered.z_range_nm, cmap, levels; the channels' colours)."""
    from plexloc.render.figures import legend_figure
    from plexloc.render.image import render_color
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    t = LocTable({"frame": np.zeros(50, int), "x_nm": rng.uniform(0, 500, 50), "y_nm": rng.uniform(0, 500, 50),
                  "z_nm": np.linspace(-300, 500, 50), "photons": np.ones(50), "color": np.r_[np.zeros(25, int), -np.ones(25, int)]})
    rz = render_color(t, color_by="z", px_size_nm=10.0, cmap="magma")
    assert rz.z_range_nm == pytest.approx((np.quantile(t["z_nm"], 0.01), np.quantile(t["z_nm"], 0.99)))
    assert rz.cmap == "magma" and rz.n_levels == 16
    rc = render_color(t, color_by="color", px_size_nm=10.0)
    assert rc.z_range_nm is None and [k for k, _ in rc.colors] == [0, -1]
    for r in (rz, rc):
        png = legend_figure(r, scale_bar_nm=100.0)
        assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tiff_or_a_grey_png_gets_no_legend_file(tmp_path):
    locs = _z_table(tmp_path)
    assert main(["render", str(locs), "--out", str(tmp_path / "image.tif"), "--color-by", "z"]) == 0
    assert main(["render", str(locs), "--out", str(tmp_path / "grey.png")]) == 0
    assert not list(tmp_path.glob("*_legend.png"))
