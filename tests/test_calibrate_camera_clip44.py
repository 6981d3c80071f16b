"""Flats of a 12-bit camera written into 16-bit files clip at 4095 ADU, below the file's own maximum (65535), which
``plexloc calibrate-camera`` took as the level pixels clip at: their clipped variance read as a higher e_per_adu
(0.527 for 0.46, +15 %) without a word. The level is now found in each flat's first frames (the camera check's
detector) and warned about, naming the flat, the level and the count; the pixels stay in (leaving them out by their
own values biased the gain the other way)."""

from __future__ import annotations

import numpy as np
import tifffile
import torch

from plexloc.camera.models import SCMOS
from plexloc.cli.main import main


def _write(path, cam, photons, seed, n=60, shape=(32, 48)):
    x = cam(torch.full((n, *shape), float(photons)), generator=torch.Generator().manual_seed(seed)).numpy()
    tifffile.imwrite(path, np.minimum(x, 4095).astype(np.uint16))  # a 12-bit camera's full scale


def test_flats_clipping_at_a_12_bit_full_scale_are_warned_about(tmp_path, capsys):
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    _write(tmp_path / "dark.tif", cam, 0.0, 1)
    flats = []
    for k, level in enumerate((200.0, 800.0, 2240.0)):  # the last: mean 3996 ADU, 1 sd (92 ADU) below 4095
        flats.append(tmp_path / f"flat{k}.tif")
        _write(flats[-1], cam, level, 2 + k)
    rc = main(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--flat", *map(str, flats), "--kind", "scmos",
               "--gain-map", "no", "--out", str(tmp_path / "cam.yaml")])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "plexloc calibrate-camera: warning:" in err and "flat2.tif" in err and "4095 ADU, a 12-bit camera's full scale" in err
    assert "flat0.tif: " not in err  # the flats below it are not named
    assert "4095 ADU" in (tmp_path / "cam.yaml").read_text()  # kept with the notes in the YAML


def test_flats_below_any_full_scale_give_no_such_warning(tmp_path, capsys):
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    _write(tmp_path / "dark.tif", cam, 0.0, 1)
    flats = []
    for k, level in enumerate((200.0, 600.0)):
        flats.append(tmp_path / f"flat{k}.tif")
        _write(flats[-1], cam, level, 2 + k)
    assert main(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--flat", *map(str, flats), "--kind", "scmos",
                 "--gain-map", "no", "--out", str(tmp_path / "cam.yaml")]) == 0
    assert "full scale" not in capsys.readouterr().err


def _calibrate_emccd(tmp_path, cam, em_gain, capsys):
    _write(tmp_path / "dark.tif", cam, 0.0, 1, n=100)
    flats = []
    for k, level in enumerate((20.0, 60.0, 150.0)):
        flats.append(tmp_path / f"flat{k}.tif")
        _write(flats[-1], cam, level, 2 + k, n=100)
    assert main(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--flat", *map(str, flats), "--kind", "emccd",
                 "--em-gain", str(em_gain), "--out", str(tmp_path / "cam.yaml")]) == 0
    return capsys.readouterr().err


def test_an_scmos_calibrated_as_an_emccd_is_warned_about(tmp_path, capsys):
    """An sCMOS's stacks (1.6 e- read noise) run as --kind emccd --em-gain 300 wrote e_per_adu ~275 and read_sigma
    ~965 e- without a word: 3.2 e- at the input, where an EMCCD at that gain reads 0.25."""
    err = _calibrate_emccd(tmp_path, SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6), 300, capsys)
    assert "plexloc calibrate-camera: warning: the read noise measured is" in err and "--kind scmos" in err
    read_in = float(err.split("e- at the input")[0].split(",")[-1])
    assert 2.0 < read_in < 5.0


def test_a_real_emccd_gives_no_read_noise_warning(tmp_path, capsys):
    from plexloc.camera.models import EMCCD

    err = _calibrate_emccd(tmp_path, EMCCD(qe=0.9, em_gain=300, e_per_adu=45, baseline=100, read_sigma=74.4,
                                           spurious_charge=0.002), 300, capsys)
    assert "read noise measured" not in err
