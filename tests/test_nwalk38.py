"""Defects found by the 2026-12-06 walk of training and fitting on a user's own sCMOS microscope (108-nm pixels,
3D astigmatic, 200x180 frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from plexloc.camera.models import SCMOS
from plexloc.config import TrainConfig
from plexloc.infer.domain import check_training_domain
from plexloc.table import LocTable


def _empty() -> LocTable:
    return LocTable({k: np.zeros(0) for k in ("frame", "x_nm", "y_nm", "z_nm", "photons")})


def test_a_forgotten_baseline_is_named_with_the_baseline_that_would_fit():
    """plexloc fit with a camera file whose baseline was left at 0 (the camera adds 100 ADU): the noise check read
    0.51 and said 'photons come out about 2x too few: check the gain and e-/ADU', while the photons were 12 % high
    (evaluate: photons_bias +11.8 %) and the background 57 photons/px too high. A gain off by 2 and a baseline too
    low read alike; the warning now gives the other reading with the baseline that would fit (the walk: 107 ADU for
    a true 100)."""
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=0.0, read_sigma=1.6)
    rep = check_training_domain(_empty(), cfg, noise=[0.5], movie_bg=[120.0], cameras=[cam], warn=False)
    noise = next(c for c in rep.checks if c.column == "noise")
    assert "about 2x too few" in noise.warning  # the gain reading stays
    # 120 photons/px predicted, 60 seen: 60 photons * 0.8 / 0.46 = 104 ADU of baseline missing
    assert "baseline is about 104 ADU too low (camera.baseline 0 ADU; about 104 would fit)" in noise.warning
    # a ratio above the range (gain too high, or baseline too high) gets no baseline-too-low reading
    rep = check_training_domain(_empty(), cfg, noise=[5.0], movie_bg=[120.0], cameras=[cam], warn=False)
    assert "baseline is about" not in next(c for c in rep.checks if c.column == "noise").warning
    # without the cameras (library callers): as before
    rep = check_training_domain(_empty(), cfg, noise=[0.5], movie_bg=[120.0], warn=False)
    assert "baseline is about" not in next(c for c in rep.checks if c.column == "noise").warning


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_movie_below_the_baseline_is_named_as_not_raw_counts(dtype):
    """A float32 movie already in photons (baseline subtracted) and an 8-bit export of a 16-bit sCMOS movie, fitted
    with the camera's baseline of 100 ADU: the movie's mean pixel came out -18.8 / -26.5 photons/px and the warning
    said only 'below the model's training background ... check the camera settings'. A mean below zero means the
    frames average less than the baseline: the warning now says that the frames are not raw counts, naming the
    movie's pixel type."""
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    rep = check_training_domain(_empty(), cfg, movie_bg=[-18.8], movie_dtype=np.dtype(dtype), warn=False)
    bg = next(c for c in rep.checks if c.column == "bg (movie)")
    assert f"a {np.dtype(dtype).name} movie whose frames are not the camera's raw counts" in bg.warning
    rep = check_training_domain(_empty(), cfg, movie_bg=[0.5], movie_dtype=np.dtype(dtype), warn=False)
    bg = next(c for c in rep.checks if c.column == "bg (movie)")
    assert bg.warning and "raw counts" not in bg.warning  # low, but not below the baseline: as before


def test_camera_maps_give_the_baseline_hint_too():
    """An sCMOS with per-pixel maps: the hint is the maps' mean."""
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    cam = SCMOS(qe=0.8, e_per_adu=torch.full((8, 8), 0.5), baseline=torch.zeros(8, 8), read_sigma=torch.ones(8, 8))
    rep = check_training_domain(_empty(), cfg, noise=[0.5], movie_bg=[100.0], cameras=[cam], warn=False)
    assert "baseline is about 80 ADU too low" in next(c for c in rep.checks if c.column == "noise").warning


def test_full_chip_scmos_maps_are_cut_to_a_camera_roi_movie(tmp_path):
    """sCMOS maps measured on the full chip (plexloc calibrate-camera on full-frame darks) and a movie recorded in a
    camera ROI: plexloc fit refused ('camera maps are (200, 180) but the movie's frames are (150, 120)') although the
    ROI's chip position was in the movie's Micro-Manager metadata or given by --roi-offset. The maps are now cut
    there: the same table as maps cropped by hand; without a known position, an error that asks for --roi-offset."""
    from test_infer_review2 import _model_file, _random_model

    from plexloc.errors import InputError
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie

    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    off, gain, (x0, y0, h, w), chip, roi = _chip_and_roi_maps(tmp_path, rng)
    write_movie(tmp_path / "roi.tif", rng.poisson(150, (6, h, w)).astype(np.uint16))
    model = _model_file(tmp_path, _random_model(2))
    stats: dict = {}
    got = fit_movie(tmp_path / "roi.tif", model, camera=chip, roi_offset_px=(x0, y0), stats=stats)
    assert stats["camera_maps_cut"] == [(0, (40, 36), (x0, y0), "--roi-offset")]
    want = fit_movie(tmp_path / "roi.tif", model, camera=roi)
    assert len(got) == len(want) > 0
    for col in ("frame", "x_nm", "y_nm", "photons", "bg"):
        np.testing.assert_allclose(np.asarray(got[col]), np.asarray(want[col]), rtol=1e-5, atol=1e-3)
    with pytest.raises(InputError, match=r"do not record the camera ROI's position.*--roi-offset X Y"):
        fit_movie(tmp_path / "roi.tif", model, camera=chip)
    with pytest.raises(InputError, match="outside the maps"):
        fit_movie(tmp_path / "roi.tif", model, camera=chip, roi_offset_px=(20, 4))


def test_roi_offset_unused_by_a_one_channel_fit_is_said(tmp_path, capsys):
    """plexloc fit --roi-offset 30 20 with a one-channel model and a camera without maps: the offset was ignored
    without a word (positions stay relative to the frame's corner, as conventions.md has them). Now a note says so;
    with full-chip sCMOS maps the CLI says where it cut them."""
    from test_infer_review2 import _model_file, _random_model

    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    torch.set_num_threads(1)
    model = _model_file(tmp_path, _random_model(2))
    write_movie(tmp_path / "m.tif", np.random.default_rng(0).poisson(150, (4, 16, 16)).astype(np.uint16))
    assert main(["fit", str(tmp_path / "m.tif"), "--model", str(model), "--out", str(tmp_path / "a.csv"),
                 "--roi-offset", "30", "20", "--device", "cpu"]) == 0
    assert "--roi-offset was not used" in capsys.readouterr().err
    np.save(tmp_path / "off.npy", np.full((40, 40), 100, np.float32))
    (tmp_path / "cam.yaml").write_text(f"kind: scmos\nqe: 0.8\ne_per_adu: 0.5\nbaseline: {tmp_path / 'off.npy'}\n"
                                       "read_sigma: 1.5\nspurious_charge: 0\n")
    assert main(["fit", str(tmp_path / "m.tif"), "--model", str(model), "--out", str(tmp_path / "b.csv"),
                 "--roi-offset", "3", "2", "--camera", str(tmp_path / "cam.yaml"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "sCMOS maps (40x40 px) cut to the movie's frames at chip x 3, y 2 (--roi-offset)" in err
    assert "was not used" not in err


def test_training_with_maps_smaller_than_the_training_roi_says_what_to_do(tmp_path, capsys):
    """A microscope YAML naming the camera file of plexloc calibrate-camera with frame_size larger than the maps:
    refused before anything is built, naming the camera field, the map files and both shapes; nothing written.
    (Until 2026-12-06 maps larger than frame_size were refused here too; the training now cuts them per sample:
    tests/test_scmos_crops39.py.)"""
    import yaml

    from plexloc.cli.main import main

    np.save(tmp_path / "off.npy", np.full((20, 18), 100, np.float32))
    np.save(tmp_path / "var.npy", np.full((20, 18), 2.56, np.float32))
    (tmp_path / "cam.yaml").write_text("kind: scmos\nqe: 0.8\ne_per_adu: 0.46\nbaseline: off.npy\n"
                                       "read_variance: var.npy\nspurious_charge: 0\n")
    cfg = {**TINY_TRAIN, "camera": "cam.yaml", "frame_size": [24, 16]}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "train.yaml"), "--out", str(tmp_path / "run"), "--steps", "1",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "camera: the sCMOS maps (baseline: " in err and "off.npy" in err and "var.npy" in err
    assert "are 20x18 px (rows x columns) but frame_size, the simulated frame (the training ROI), is 24x16" in err
    assert not (tmp_path / "run").exists()


def test_ctrl_c_in_training_saves_and_exits_non_zero(tmp_path, capsys, monkeypatch):
    """Ctrl-C in plexloc train saved the checkpoint and exited 0, as a finished run does: `plexloc train ... && plexloc
    fit ...` went on to fit with the half-trained model (the walk: interrupted at step 274 of a 2-minute run, rc 0).
    Now it exits 130 and says how to continue; --resume continues from the saved step."""
    import yaml

    from plexloc.cli.main import main
    from plexloc.train.trainer import Trainer

    torch.set_num_threads(1)
    cam = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
           "baseline": 100.0, "read_sigma": 74.4}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "camera": cam}))
    step = Trainer.train_step
    calls = []

    def ctrl_c(self):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "t.yaml"), "--out", str(run), "--steps", "8", "--device", "cpu"]) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 3" in err and "--resume" in err
    assert (run / "checkpoint.pt").exists() and (run / "model.pt").exists()
    monkeypatch.setattr(Trainer, "train_step", step)
    assert main(["train", str(tmp_path / "t.yaml"), "--out", str(run), "--resume", "--steps", "6",
                 "--device", "cpu"]) == 0
    assert "resuming at step 3" in capsys.readouterr().out


def test_full_chip_scmos_maps_are_cut_for_the_mle_fit_too(tmp_path):
    """fit --method mle with full-chip sCMOS maps and a camera ROI's movie refused ('frame shape (24, 20) does not match
    the sCMOS maps' shape (40, 36)') where the network fit cuts the maps at the ROI's chip position; now the MLE fit
    cuts them alike: the same table as maps cropped by hand."""
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.io.tiff import write_movie
    from plexloc.mle.pipeline import fit_movie

    rng = np.random.default_rng(5)
    off, gain, (x0, y0, h, w), chip, roi = _chip_and_roi_maps(tmp_path, rng)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    photons = 20.0 + 2000.0 / (2 * np.pi * 1.3**2) * np.exp(-((xx - 9.3) ** 2 + (yy - 11.6) ** 2) / (2 * 1.3**2))
    adu = rng.poisson(0.8 * np.broadcast_to(photons, (4, h, w))) / gain[y0:y0 + h, x0:x0 + w] + off[y0:y0 + h, x0:x0 + w]
    write_movie(tmp_path / "roi.tif", np.round(adu).astype(np.uint16))
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "2d_gaussian.yaml")
    stats: dict = {}
    got = fit_movie(tmp_path / "roi.tif", config, camera=chip, roi_offset_px=(x0, y0), stats=stats)
    assert stats["camera_maps_cut"] == [(0, (40, 36), (x0, y0), "--roi-offset")]
    want = fit_movie(tmp_path / "roi.tif", config, camera=roi)
    assert len(got) == len(want) == 4  # one spot in each frame
    for col in ("frame", "x_nm", "y_nm", "photons", "bg"):
        np.testing.assert_allclose(np.asarray(got[col]), np.asarray(want[col]), rtol=1e-5, atol=1e-3)
    # the configuration's roi_offset_px where the movie has no metadata (as fit --help says, and as the transforms and
    # plexloc info take it): session 46, it asked for --roi-offset
    placed = config.model_copy(update={"roi_offset_px": (x0, y0)})
    stats = {}
    again = fit_movie(tmp_path / "roi.tif", placed, camera=chip, stats=stats)
    assert stats["camera_maps_cut"] == [(0, (40, 36), (x0, y0), "the configuration's roi_offset_px")]
    np.testing.assert_allclose(np.asarray(again["x_nm"]), np.asarray(want["x_nm"]), rtol=1e-5, atol=1e-3)
    assert abs(float(np.median(got["x_nm"])) - 930.0) < 30 and abs(float(np.median(got["y_nm"])) - 1160.0) < 30


def _chip_and_roi_maps(tmp_path, rng):
    """sCMOS offset and gain maps of a 40x36-px chip (off.npy, gain.npy) and their part under a 24x20-px camera ROI at
    chip x 6, y 4 (off_roi.npy, gain_roi.npy): the maps, (x0, y0, h, w), and a camera configuration of each."""
    from plexloc.config.models import SCMOSConfig

    off, gain = 100 + rng.normal(0, 5, (40, 36)), 0.5 * (1 + rng.normal(0, 0.05, (40, 36)))
    np.save(tmp_path / "off.npy", off.astype(np.float32))
    np.save(tmp_path / "gain.npy", gain.astype(np.float32))
    x0, y0, h, w = 6, 4, 24, 20
    np.save(tmp_path / "off_roi.npy", off[y0:y0 + h, x0:x0 + w].astype(np.float32))
    np.save(tmp_path / "gain_roi.npy", gain[y0:y0 + h, x0:x0 + w].astype(np.float32))
    chip = SCMOSConfig(qe=0.8, e_per_adu=str(tmp_path / "gain.npy"), baseline=str(tmp_path / "off.npy"), read_sigma=1.5)
    roi = SCMOSConfig(qe=0.8, e_per_adu=str(tmp_path / "gain_roi.npy"), baseline=str(tmp_path / "off_roi.npy"),
                      read_sigma=1.5)
    return off, gain, (x0, y0, h, w), chip, roi
