"""Review 39's fixes: a stale render key, the key's grey rows, z drift with some rows without z, split-view and
full-chip sCMOS maps in movie simulation and training, and the maps line of plexloc simulate."""

from __future__ import annotations

import io

import numpy as np
import pytest

from plexloc.cli.main import main


def _z_table(tmp_path, n: int = 400, n_no_z: int = 0):
    import pandas as pd

    rng = np.random.default_rng(0)
    z = rng.uniform(-400, 400, n)
    z[:n_no_z] = np.nan
    path = tmp_path / "locs.csv"
    pd.DataFrame({"frame": np.arange(n) % 50, "x_nm": rng.uniform(0, 3000, n), "y_nm": rng.uniform(0, 3000, n),
                  "z_nm": z, "photons": np.full(n, 2000.0)}).to_csv(path, index=False)
    return path


# --- 1. plexloc render: a grey PNG over a coloured one removes the coloured one's key ----------------------------------
def test_a_grey_render_removes_the_key_of_an_earlier_coloured_one(tmp_path, capsys):
    """A coloured PNG wrote OUT_legend.png; a later grey render to the same OUT left it there, the key of colours that
    the image no longer has. Now it is removed (said on stderr); a TIFF keeps OUT.png's key (it shares its name)."""
    locs = _z_table(tmp_path)
    out, key = tmp_path / "image.png", tmp_path / "image_legend.png"
    assert main(["render", str(locs), "--out", str(out), "--color-by", "z"]) == 0
    assert key.is_file()
    assert main(["render", str(locs), "--out", str(tmp_path / "image.tif"), "--color-by", "z"]) == 0
    assert key.is_file()  # image.png, coloured, is still there: its key stays
    other = tmp_path / "other_legend.png"
    other.write_bytes(b"not ours")
    capsys.readouterr()
    assert main(["render", str(locs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert not key.exists() and f"removed {key}" in err
    assert other.read_bytes() == b"not ours"  # only that exact name
    assert main(["render", str(locs), "--out", str(out)]) == 0  # nothing to remove: no note
    assert "removed" not in capsys.readouterr().err


# --- 2. the key of a z-coloured image names its grey rows ---------------------------------------------------------------
def _grey_pixels(png: bytes) -> int:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        a = np.asarray(im.convert("RGB")).astype(int)
    return int(((np.abs(a - 127.5) <= 1.5).all(axis=2)).sum())


def test_the_z_key_has_a_grey_patch_for_the_rows_without_z():
    """Rows without a finite z are drawn grey in a z-coloured image, but its key had no grey: now a "no z (N rows)"
    patch (N from the rendered image's legend)."""
    from plexloc.render.figures import legend_figure
    from plexloc.render.image import render_color
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    z = np.linspace(-300, 500, 50)
    cols = {"frame": np.zeros(50, int), "x_nm": rng.uniform(0, 500, 50), "y_nm": rng.uniform(0, 500, 50),
            "photons": np.ones(50)}
    full = render_color(LocTable({**cols, "z_nm": z}), color_by="z", px_size_nm=10.0, z_range_nm=(-300, 500))
    z[:7] = np.nan
    part = render_color(LocTable({**cols, "z_nm": z}), color_by="z", px_size_nm=10.0, z_range_nm=(-300, 500))
    assert "7 without a finite z in grey" in part.legend  # what the key reads
    grey_full, grey_part = (_grey_pixels(legend_figure(r, scale_bar_nm=100.0)) for r in (full, part))
    assert grey_part > grey_full + 80  # the patch (about 20 x 7 px at 100 dpi)


# --- 3. z drift from the rows that have a z --------------------------------------------------------------------------
def _table3d_some_without_z(frac: float):
    from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift

    rng = np.random.default_rng(0)
    truth = wobbly_drift(3000, 70.0, rng=rng)
    truth[:, 2] = 40.0 * np.linspace(0.0, 1.0, 3000)
    mol = structure_points("lines", 800, fov_nm=12000.0, rng=rng, z_range_nm=(-400.0, 400.0))
    t = blinking_table(mol, n_frames=3000, rng=rng, drift_nm=truth, events_per_molecule=5, precision_nm=9.0,
                       precision_z_nm=40.0)
    z = np.array(t["z_nm"], dtype=float)
    z[rng.random(len(z)) < frac] = np.nan
    return t.with_columns(z_nm=z), truth


def test_rcc_z_drift_takes_the_rows_with_a_z():
    """One NaN z skipped the pair-based z correction: RCC kept z at 0, with no word. Now the rows with a finite z
    give it (info z_rows_without_z says how many were left out)."""
    from plexloc.post.drift import drift_error_rms, rcc_drift

    t, truth = _table3d_some_without_z(0.05)
    res = rcc_drift(t)
    n_nan = int(np.isnan(t["z_nm"]).sum())
    assert n_nan > 100 and res.info["z_rows_without_z"] == n_nan
    found = float(np.polyfit(np.arange(len(res.frames)), res.drift_nm[:, 2], 1)[0] * (len(res.frames) - 1))
    assert abs(found - 40.0) < 8.0  # before: 0
    assert drift_error_rms(res.drift_nm, truth[res.frames], axes=(2,)) < 3.5
    assert np.isfinite(res.info["z_uncertainty_nm"])


def test_too_few_rows_with_a_z_take_the_unreliable_path():
    """Almost every z unknown: too few pairs in other windows, the existing 'no z drift' warning (naming the rows left
    out), z left at 0 and the lateral drift kept."""
    from plexloc.post.drift import UnreliableDriftWarning, rcc_drift

    t, _ = _table3d_some_without_z(0.0)
    z = np.full(len(t), np.nan)
    z[:30] = np.linspace(-100.0, 100.0, 30)  # the first frames only: one window
    t = t.with_columns(z_nm=z)
    with pytest.warns(UnreliableDriftWarning, match=r"no z drift.*without a finite z left out"):
        res = rcc_drift(t)
    assert res.info["z_unreliable"] and res.info["z_rows_without_z"] == len(t) - 30
    assert np.all(res.drift_nm[:, 2] == 0.0) and np.isfinite(res.drift_nm).all()


# --- 4. a split-view movie with maps larger than its frames: refused ---------------------------------------------------
CAM = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5, "spurious_charge": 0.0}


def _sim(frame=(16, 16), maps=((24, 20),), hot=(12, 10), **cfg):
    """A 2D sCMOS simulation of len(maps) channels, channel c's baseline maps of shape maps[c], 100 ADU with one pixel
    at 60000 ADU (at ``hot``)."""
    import torch

    from plexloc.camera.models import SCMOS
    from plexloc.config import SimulationConfig, validate_config
    from plexloc.simulation import Simulator

    ch = {"psf": {"kind": "gaussian"}, "camera": CAM, "throughput": 1.0 / len(maps)}
    sim = Simulator(validate_config({"frame_size": list(frame), "channels": [ch] * len(maps),
                                     "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 1500.0]},
                                     "background": {"range": [20.0, 30.0]}, **cfg}, SimulationConfig))
    for c, shape in enumerate(maps):
        base = torch.full(shape, 100.0)
        base[hot] = 60000.0
        sim.channels[c].camera = SCMOS(qe=0.8, baseline=base)
    return sim


def test_a_split_view_movie_refuses_maps_larger_than_its_frames():
    """Each channel's full-chip maps were cut at roi_offset_px, the same pixels for every channel, not at its box
    (and not flipped as the channel's image): now an InputError that says what to give (the box's maps, as plexloc fit
    --split-view takes them). Box-sized maps are used as they are."""
    import torch

    from plexloc.errors import InputError

    split = {"boxes": [[0, 0, 16, 16], [16, 0, 16, 16]], "flip": ["none", "x"]}
    sim = _sim(maps=((40, 48), (40, 48)), split_view=split, roi_offset_px=[4, 2])
    with pytest.raises(InputError, match=r"channels\[0\].camera: the sCMOS maps are 40x48 px .* split view: .* "
                                         r"maps of its box \(16x16 px"):
        sim.simulate_movie(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="split view"):
        sim.movie_cameras()
    box = _sim(maps=((16, 16), (16, 16)), split_view=split)
    assert box.simulate_movie(2, generator=torch.Generator().manual_seed(0)).frames.shape == (2, 2, 16, 16)


# --- 5. training: maps of the chip are cut at the sample's ROI ----------------------------------------------------------
def _hot_positions(frames):
    b, t, _, h, w = frames.shape
    flat = frames[:, :, 0].reshape(b, t, -1).argmax(-1)
    return np.stack([(flat // w).numpy(), (flat % w).numpy()], axis=-1)


def test_training_cuts_maps_of_the_chip_at_the_samples_roi():
    """Maps of the chip's shape (chip_size_px): each sample's cut is at its own ROI corner (the frames' hot pixel sits
    at the chip's hot pixel minus the ROI corner), not drawn independently of it (the noise of one place on the chip,
    the channel geometry of another)."""
    import torch

    from plexloc.simulation import BatchGenerator

    torch.set_num_threads(1)
    sim = _sim(maps=((30, 40), (30, 40)), hot=(15, 20), chip_size_px=[30, 40])
    batch = BatchGenerator(sim, batch_size=300, window=3, seed=2)()
    roi = batch.roi_offset_px.to(torch.int64)
    assert len({tuple(r) for r in roi.tolist()}) > 50  # the ROI moves over the chip
    for c in range(2):
        assert torch.equal(batch.map_offset_px[:, c], roi)  # before: equal in a few samples only
        pos = _hot_positions(batch.frames[:, :, c:c + 1])
        shown = (roi[:, 0] <= 20) & (roi[:, 0] > 20 - 16) & (roi[:, 1] <= 15) & (roi[:, 1] > 15 - 16)
        assert int(shown.sum()) > 30
        np.testing.assert_array_equal(pos[shown.numpy(), 1], np.stack([15 - roi[shown, 1], 20 - roi[shown, 0]], -1))


def test_other_maps_are_still_cut_independently_of_the_roi():
    """Maps of another shape than chip_size_px, and a split view's: independent cuts, as before."""
    import torch

    from plexloc.simulation import BatchGenerator

    torch.set_num_threads(1)
    for sim in (_sim(maps=((30, 40),), chip_size_px=[36, 44]),
                _sim(maps=((30, 40), (30, 40)), chip_size_px=[30, 40],
                     split_view={"boxes": [[0, 0, 40, 30], [40, 0, 40, 30]]})):
        batch = BatchGenerator(sim, batch_size=200, window=1, seed=3)()
        roi = batch.roi_offset_px.to(torch.int64)
        assert int((batch.map_offset_px[:, 0] == roi).all(-1).sum()) < 50


# --- 6. plexloc simulate names every channel's maps --------------------------------------------------------------------
def test_plexloc_simulate_names_each_channels_maps(tmp_path, capsys):
    """The 'sCMOS maps (HxW px) cut at roi_offset_px' line named the first cut channel's maps only."""
    import yaml
    from conftest import full_chip_camera

    for name, shape in (("a", (40, 36)), ("b", (30, 28))):
        (tmp_path / name).mkdir()
        full_chip_camera(tmp_path / name, shape=shape)
    ch = [{"psf": {"kind": "gaussian"}, "camera": str(tmp_path / n / "cam.yaml"), "throughput": 0.5} for n in "ab"]
    cfg = {"frame_size": [24, 20], "roi_offset_px": [6, 4], "channels": ch, "photon_model": {"kind": "linked"},
           "emitters": {"density_per_um2": 0.3}}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(tmp_path / "sim.yaml"), "--frames", "4", "--out", str(tmp_path / "m"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sCMOS maps (channel 0: 40x36 px, channel 1: 30x28 px) cut at roi_offset_px x 6, y 4" in out
