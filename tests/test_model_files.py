"""A model carries the files its configuration names (sCMOS maps, spline calibrations): it fits and resumes where
those paths are gone (another folder, another machine, a job-service worker), and a changed file does not silently
change what the model was trained with."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.camera import camera_from_config
from plexloc.cli.main import main
from plexloc.config import TrainConfig, save_config, validate_config
from plexloc.config.files import EmbeddedFileWarning, embed_files, referenced_files, restore_files
from plexloc.errors import InputError
from plexloc.io import read_table
from plexloc.nets.io import load_model, read_model_file
from plexloc.train import Trainer


def _maps(folder, shape=(16, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    np.save(folder / "gain.npy", rng.uniform(0.4, 0.6, shape))
    np.save(folder / "offset.npy", rng.uniform(95.0, 105.0, shape))
    return folder / "gain.npy", folder / "offset.npy"


def _scmos_config(folder, **training) -> TrainConfig:
    gain, offset = _maps(folder)
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["camera"] = {"kind": "scmos", "e_per_adu": str(gain), "baseline": str(offset), "read_variance": str(gain)}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def test_referenced_files_and_one_copy_per_file(tmp_path):
    """Every path field is found (single- and multi-channel); a file named twice is stored once."""
    gain, offset = _maps(tmp_path)
    cfg = {"channels": [{"psf": {"kind": "spline", "calibration": "/x/PSF.h5"}, "camera": {"e_per_adu": str(gain), "baseline": 100.0}},
                        {"camera": {"e_per_adu": str(gain), "baseline": str(offset), "read_sigma": 1.5}}]}
    assert referenced_files(cfg) == [("channels.0.psf.calibration", "/x/PSF.h5"), ("channels.0.camera.e_per_adu", str(gain)),
                                     ("channels.1.camera.e_per_adu", str(gain)), ("channels.1.camera.baseline", str(offset))]
    del cfg["channels"][0]["psf"]
    files = embed_files(cfg)
    assert len(files["refs"]) == 3 and len(files["blobs"]) == 2
    assert files["blobs"][files["refs"]["channels.1.camera.baseline"]["sha256"]]["data"] == offset.read_bytes()
    with pytest.raises(InputError, match=r"channels.0.psf.calibration.*PSF.h5"):
        embed_files({"channels": [{"psf": {"calibration": str(tmp_path / "PSF.h5")}}]})


def test_a_model_fits_and_resumes_after_its_maps_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("PLEXLOC_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _scmos_config(tmp_path / "maps")
    original = camera_from_config(cfg.simulation().channels[0].camera)
    Trainer(cfg, tmp_path / "run").run(steps=3)
    # three steps detect nothing: a detection bias raised by hand, so that the fits below have rows to compare
    payload = read_model_file(tmp_path / "run")
    payload["state_dict"]["head_prob.2.bias"] += 6.0
    torch.save(payload, tmp_path / "run" / "model.pt")
    # a movie in camera counts, fitted before and after the maps are moved away
    save_config(cfg, tmp_path / "c.yaml")
    assert main(["simulate", str(tmp_path / "c.yaml"), "--frames", "4", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    movie = str(tmp_path / "sim" / "movie.tif")
    args = ["fit", movie, "--model", str(tmp_path / "run"), "--device", "cpu", "--threshold", "0.001"]
    assert main([*args, "--out", str(tmp_path / "before.csv")]) == 0
    shutil.rmtree(tmp_path / "maps")

    _, config, _ = load_model(tmp_path / "run")
    restored = validate_config(config, TrainConfig)
    camera = restored.simulation().channels[0].camera
    assert str(camera.e_per_adu).startswith(str(tmp_path / "cache"))
    cam = camera_from_config(camera)
    for name in ("e_per_adu", "baseline", "read_sigma"):
        torch.testing.assert_close(getattr(cam, name), getattr(original, name))
    assert main([*args, "--out", str(tmp_path / "after.csv")]) == 0
    before, after = read_table(tmp_path / "before.csv"), read_table(tmp_path / "after.csv")
    assert len(before) > 0 and np.array_equal(before["x_nm"], after["x_nm"])
    # the checkpoint too: training resumes on a machine without the maps
    resumed = Trainer(cfg, tmp_path / "run", resume=True)
    resumed.run(steps=5)
    assert resumed.step == 5 and read_model_file(tmp_path / "run")["files"]["blobs"]


def test_a_changed_file_warns_and_the_model_keeps_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("PLEXLOC_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _scmos_config(tmp_path / "maps")
    files = embed_files(cfg.model_dump(mode="json"))
    data = cfg.model_dump(mode="json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert restore_files(data, files) == data  # unchanged files: the original paths, no copy written
    assert not (tmp_path / "cache").exists()
    gain = tmp_path / "maps" / "gain.npy"
    old = gain.read_bytes()
    np.save(gain, np.full((16, 16), 2.0))
    with pytest.warns(EmbeddedFileWarning, match=r"gain.npy \(channels.0.camera.e_per_adu, channels.0.camera.read_variance\) changed"):
        out = restore_files(data, files)
    cam, cam0 = out["channels"][0]["camera"], data["channels"][0]["camera"]
    assert cam["e_per_adu"] != str(gain) and Path(cam["e_per_adu"]).read_bytes() == old
    assert cam["baseline"] == cam0["baseline"] and cam["read_variance"] == cam["e_per_adu"]
    # a damaged cached copy is written again, not trusted
    Path(cam["e_per_adu"]).write_bytes(b"junk")
    with pytest.warns(EmbeddedFileWarning):
        again = restore_files(data, files)
    assert Path(again["channels"][0]["camera"]["e_per_adu"]).read_bytes() == old
    # models saved before files were embedded: the configuration as it was
    assert restore_files(data, None) == data


def test_an_unwritable_cache_is_named(tmp_path, monkeypatch):
    cfg = _scmos_config(tmp_path / "maps")
    files = embed_files(cfg.model_dump(mode="json"))
    shutil.rmtree(tmp_path / "maps")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PLEXLOC_CACHE_DIR", str(blocker))
    with pytest.raises(InputError, match="PLEXLOC_CACHE_DIR"):
        restore_files(cfg.model_dump(mode="json"), files, source="model.pt")


def test_model_files_of_older_and_newer_versions(tmp_path):
    """A model saved before some spec, configuration and payload keys existed loads with the documented defaults
    (3x3 kernels, bg_loss_scale None, photon_range_widen 2, no embedded files, empty meta); one with a network
    setting this version does not know is refused by name (it was a TypeError traceback)."""
    from plexloc.nets.localizer import LocalizerSpec

    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    Trainer(TrainConfig.model_validate(d), tmp_path / "run").run(steps=1)
    payload = read_model_file(tmp_path / "run" / "model.pt")
    for key in ("up_kernel", "out_kernel", "bg_loss_scale"):
        del payload["spec"][key]
    for key in ("photon_range_widen", "density_range_per_um2", "channels_last", "transform_jitter_nm"):
        del payload["config"]["training"][key]
    del payload["files"], payload["meta"]
    torch.save(payload, tmp_path / "old.pt")
    net, config, meta = load_model(tmp_path / "old.pt")
    assert (net.spec.up_kernel, net.spec.out_kernel, net.spec.bg_loss_scale) == (3, 3, None) and meta == {}
    assert validate_config(config, TrainConfig).training.photon_range_widen == 2.0
    payload["spec"]["attention_heads"] = 4
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(InputError, match=r"new.pt.*settings this plexloc does not know \(attention_heads\).*newer"):
        load_model(tmp_path / "new.pt")
    with pytest.raises(ValueError, match="attention_heads"):
        LocalizerSpec.from_dict(payload["spec"])
