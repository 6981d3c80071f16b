"""Per-channel photon and background parameters in the Cramér-Rao bound (the 'independent' photon model).

Known answers: a symmetric spot decouples position from photons, so each channel's (photons, bg) block is the
one-channel problem's; free parameters never lower a bound, and they raise the axial bound of two focal planes
(where z and each plane's brightness trade off)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from torch.testing import assert_close

from conftest import PX_NM
from plexloc.camera import IdealCamera
from plexloc.cli.main import main
from plexloc.evaluate.crlb import crlb, fisher_information
from pathlib import Path
from plexloc.psf import AstigmaticPSF, GaussianPSF

F64 = torch.float64
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_per_channel_photons_of_a_centred_spot_are_the_one_channel_bound():
    psf = GaussianPSF(sigma_nm=130.0, px_size_nm=(PX_NM, PX_NM))
    x = y = torch.tensor([15.5 * PX_NM], dtype=F64)  # a pixel centre: position and brightness uncorrelated
    two = crlb([(psf, IdealCamera()), (psf, IdealCamera())], x_nm=x, y_nm=y, photons=3000.0, bg=10.0,
               photon_fractions=[0.5, 0.5], photons_per_channel=True, bg_per_channel=True)
    one = crlb(psf, IdealCamera(), x_nm=x, y_nm=y, photons=1500.0, bg=10.0)
    assert set(two) >= {"crlb_photons_ch0", "crlb_photons_ch1", "crlb_bg_ch0", "crlb_bg_ch1", "crlb_photons"}
    assert "crlb_bg" not in two
    for c in (0, 1):
        assert_close(two[f"crlb_photons_ch{c}"], one["crlb_photons"], rtol=1e-6, atol=0.0)
        assert_close(two[f"crlb_bg_ch{c}"], one["crlb_bg"], rtol=1e-6, atol=0.0)
    # the total of two independent, equally known counts: sqrt(2) times one of them
    assert_close(two["crlb_photons"], one["crlb_photons"] * math.sqrt(2), rtol=1e-6, atol=0.0)
    # positions: both channels' information, as with one shared photon parameter (uncorrelated here)
    shared = crlb([(psf, IdealCamera()), (psf, IdealCamera())], x_nm=x, y_nm=y, photons=3000.0, bg=10.0,
                  photon_fractions=[0.5, 0.5])
    assert_close(two["crlb_x_nm"], shared["crlb_x_nm"], rtol=1e-6, atol=0.0)


def test_free_brightness_per_plane_raises_the_axial_bound_of_a_biplane():
    psf = AstigmaticPSF(px_size_nm=(PX_NM, PX_NM))
    chans = [(psf, IdealCamera()), (psf, IdealCamera())]
    z = torch.tensor([-250.0, 0.0, 150.0], dtype=F64)
    x = torch.tensor([15.5, 15.23, 15.81], dtype=F64) * PX_NM
    y = torch.tensor([15.5, 15.64, 15.12], dtype=F64) * PX_NM
    args = dict(x_nm=x, y_nm=y, z_nm=z, photons=4000.0, bg=20.0, z_offsets_nm=[-250.0, 250.0], photon_fractions=[0.5, 0.5])
    shared = crlb(chans, **args)
    free = crlb(chans, photons_per_channel=True, bg_per_channel=True, **args)
    for key in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm"):
        assert torch.all(free[key] >= shared[key] * (1 - 1e-9)), key
    assert torch.all(free["crlb_z_nm"] > 1.02 * shared["crlb_z_nm"])  # the planes' brightness ratio encodes z
    info, names = fisher_information(chans, x_nm=x, y_nm=y, z_nm=z, photons=torch.full_like(z, 4000.0),
                                     bg=20.0, photons_per_channel=True, bg_per_channel=True)
    assert names == ["x", "y", "z", "photons_ch0", "photons_ch1", "bg_ch0", "bg_ch1"]
    assert info.shape == (3, 7, 7)
    assert torch.all(info[:, 3, 4] == 0) and torch.all(info[:, 5, 6] == 0)  # no channel informs another's counts


def _independent_config(tmp_path):
    data = yaml.safe_load((EXAMPLES / "dual_color.yaml").read_text())
    data["photon_model"] = {"kind": "independent"}
    path = tmp_path / "independent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_crlb_of_an_independent_configuration_has_a_count_per_channel(tmp_path, capsys):
    cfg = _independent_config(tmp_path)
    out = tmp_path / "b.json"
    assert main(["crlb", str(cfg), "--photons", "865,4135", "--bg", "20", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["photons"] == [865.0, 4135.0]
    assert data["crlb_photons_ch0"] < data["crlb_photons_ch1"]  # fewer photons, smaller absolute spread
    assert {"crlb_bg_ch0", "crlb_bg_ch1"} <= set(data) and "crlb_bg" not in data
    # one value: every channel that count (as before), and the bound equals the per-channel form given twice
    same = tmp_path / "s.json"
    assert main(["crlb", str(cfg), "--photons", "2000", "--bg", "20", "--json", str(same)]) == 0
    twice = tmp_path / "t.json"
    assert main(["crlb", str(cfg), "--photons", "2000,2000", "--bg", "20", "--json", str(twice)]) == 0
    a, b = json.loads(same.read_text()), json.loads(twice.read_text())
    assert a["crlb_x_nm"] == pytest.approx(b["crlb_x_nm"], rel=1e-12) and a["photons"] == [2000.0, 2000.0]
    capsys.readouterr()
    assert main(["crlb", str(cfg), "--photons", "1,2,3", "--bg", "20"]) == 2
    assert "3 values" in capsys.readouterr().err


def test_cli_crlb_refuses_per_channel_counts_for_a_linked_configuration(capsys):
    assert main(["crlb", str(EXAMPLES / "biplane.yaml"), "--photons", "1000,2000", "--bg", "20"]) == 2
    err = capsys.readouterr().err
    assert "linked" in err and "one value" in err
