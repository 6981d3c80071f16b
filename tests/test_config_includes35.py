"""A configuration's ``camera`` or ``psf`` given as a file name: the camera YAML that ``plexloc calibrate-camera``
writes, the PSF YAML of ``plexloc calibrate --model astigmatic``, a spline calibration file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from plexloc.config import load_config
from plexloc.config.io import CameraDefaultsWarning
from plexloc.errors import InputError

CAMERA = {"kind": "emccd", "qe": 0.95, "spurious_charge": 0.001, "em_gain": 200.0, "e_per_adu": 30.0,
          "baseline": 400.0, "read_sigma": 60.0}
PSF = {"kind": "astigmatic", "s0_nm": [110.0, 120.0], "c_nm": [-300.0, 300.0], "d_nm": 450.0}
REST = {"px_size_nm": 100.0, "frame_size": [32, 32], "emitters": {"z_range_nm": [-400.0, 400.0]}}


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_camera_and_psf_files_read_as_if_written_in(tmp_path):
    (tmp_path / "calib").mkdir()
    _write(tmp_path / "calib" / "camera.yaml", CAMERA)  # calibrate-camera's file: the camera's mapping itself
    _write(tmp_path / "calib" / "PSF.yaml", {"px_size_nm": 100.0, "psf": PSF})  # calibrate --model astigmatic's
    inline = load_config(_write(tmp_path / "inline.yaml", {**REST, "psf": PSF, "camera": CAMERA}))
    named = load_config(_write(tmp_path / "named.yaml", {**REST, "psf": "calib/PSF.yaml", "camera": "calib/camera.yaml"}))
    assert named.model_dump() == inline.model_dump()


def test_an_scmos_camera_file_finds_its_maps_beside_it(tmp_path):
    (tmp_path / "cam").mkdir()
    np.save(tmp_path / "cam" / "camera_baseline.npy", np.full((32, 32), 101.0, np.float32))
    _write(tmp_path / "cam" / "camera.yaml", {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5,
                                              "baseline": "camera_baseline.npy", "read_sigma": 1.5,
                                              "spurious_charge": 0.0})
    cfg = load_config(_write(tmp_path / "c.yaml", {**REST, "psf": PSF, "camera": "cam/camera.yaml"}))
    assert str(cfg.channels[0].camera.baseline) == str((tmp_path / "cam" / "camera_baseline.npy").resolve())


def test_a_spline_file_and_channel_cameras(tmp_path):
    _write(tmp_path / "cam0.yaml", {"camera": CAMERA})  # a whole configuration: its camera
    _write(tmp_path / "cam1.yaml", {**CAMERA, "baseline": 500.0})
    data = {**REST, "channels": [{"psf": "beads.h5", "camera": "cam0.yaml"},
                                 {"psf": PSF, "camera": "cam1.yaml",
                                  "transform": [[1, 0, 5.0], [0, 1, 0], [0, 0, 1]]}]}
    cfg = load_config(_write(tmp_path / "two.yaml", data))
    assert cfg.channels[0].psf.kind == "spline"
    assert str(cfg.channels[0].psf.calibration) == str((tmp_path / "beads.h5").resolve())
    assert cfg.channels[0].camera.baseline == 400.0 and cfg.channels[1].camera.baseline == 500.0
    # a second channel's spline by file name alone would be the file's channel 0: refused, the mapping asked for
    data["channels"][1]["psf"] = "beads.h5"
    with pytest.raises(InputError, match=r"field 'channels.1.psf'.*channel: 1"):
        load_config(_write(tmp_path / "three.yaml", data))


def test_a_missing_or_wrong_file_names_the_field_and_the_file(tmp_path):
    with pytest.raises(InputError, match=r"field 'camera': the file 'nowhere.yaml' it names was not found") as err:
        load_config(_write(tmp_path / "a.yaml", {**REST, "psf": PSF, "camera": "nowhere.yaml"}))
    assert "a.yaml" in str(err.value)
    _write(tmp_path / "notes.yaml", {"comment": "no camera here"})
    with pytest.raises(InputError, match=r"field 'channels.0.camera': the file 'notes.yaml' holds no camera"):
        load_config(_write(tmp_path / "b.yaml", {**REST, "channels": [{"psf": PSF, "camera": "notes.yaml"}]}))


def test_fields_the_camera_file_leaves_out_are_still_named(tmp_path):
    _write(tmp_path / "camera.yaml", {"kind": "emccd", "em_gain": 100.0, "e_per_adu": 12.0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(_write(tmp_path / "c.yaml", {**REST, "psf": PSF, "camera": "camera.yaml"}))
    notes = [str(w.message) for w in caught if issubclass(w.category, CameraDefaultsWarning)]
    assert len(notes) == 1 and "camera (camera.yaml).baseline 100 ADU" in notes[0]


def test_a_blank_file_name_is_refused_as_blank(tmp_path):
    """``camera: "  "`` is no file name (``plexloc submit`` and the service attach nothing for it): the loader says the
    field is blank, where it looked for a file called "  " in the configuration's folder before."""
    with pytest.raises(InputError, match=r"field 'camera' is blank: give the camera section itself or the name") as err:
        load_config(_write(tmp_path / "a.yaml", {**REST, "psf": PSF, "camera": "  "}))
    assert "a.yaml" in str(err.value)
    with pytest.raises(InputError, match=r"field 'channels.1.psf' is blank"):
        load_config(_write(tmp_path / "b.yaml", {**REST, "channels": [{"psf": PSF, "camera": CAMERA},
                                                                       {"psf": "", "camera": CAMERA}]}))
