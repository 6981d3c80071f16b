"""Session 47's walk of the maximum-likelihood fitter as a user.

(a) A camera ``saturation_adu`` that the movie's own values exceed is no clipping level: the fit says so once and
flags its rows at the level the movie's values pile up at (else the pixel type's maximum), not at the setting (a
setting of 1,500 ADU over a movie reaching 5,055 had flagged 263 of 392 rows, every bright one, as fitted from clipped
light, after a warning that the camera does not clip there).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.camera import EMCCD, CameraWarning
from plexloc.config import load_config
from plexloc.mle import fit_movie
from plexloc.mle.pipeline import MLEFitter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EMCCD_2D = {"qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
            "read_sigma": 74.4}


def _config(saturation_adu=None):
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    cam = cfg.channels[0].camera.model_copy(update={"saturation_adu": saturation_adu})
    return cfg.model_copy(update={"channels": [cfg.channels[0].model_copy(update={"camera": cam})]})


def _movie(clip_at=None, *, n: int = 12) -> np.ndarray:
    """uint16 frames (n, 40, 40) of the 2D example's EMCCD: in each frame a bright spot (30,000 photons, peak about
    16,000 ADU) and a dim one (1,000 photons, under 1,000 ADU) at 30 photons/px; ``clip_at``: the camera clips there."""
    cfg = _config()
    psf = MLEFitter(cfg).channels[0].psf
    px = cfg.px_size_xy_nm[0]
    x = torch.tensor([12.3 * px, 27.6 * px] * n)
    y = torch.tensor([14.4 * px, 25.2 * px] * n)
    ph = torch.tensor([30000.0, 1000.0] * n)
    fr = torch.arange(n).repeat_interleave(2)
    light = 30.0 + psf.render(x, y, torch.zeros(2 * n), ph, fr, n_frames=n, frame_shape=(40, 40))
    adu = EMCCD(**EMCCD_2D, saturation_adu=clip_at)(light, generator=torch.Generator().manual_seed(47))
    return adu.round().clamp(0, 65535).numpy().astype(np.uint16)


def _fit(movie, cfg):
    stats: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = fit_movie(movie, cfg, stats=stats)
    said = [str(w.message) for w in caught if issubclass(w.category, CameraWarning)]
    return table, stats, said


def test_a_saturation_the_movie_exceeds_is_told_once_and_flags_no_row():
    movie = _movie()
    assert movie.max() > 10000  # the bright spots reach far above 4095
    table, stats, said = _fit(movie, _config(saturation_adu=4095))
    assert len(table) == 24  # both spots in every frame
    (w,) = [s for s in said if "saturation_adu" in s]  # told once, by the fit (not by the camera check too)
    assert "lie above the camera's saturation_adu, 4095 ADU" in w and "the camera does not clip there" in w
    assert f"up to {movie[:12].max():.0f} ADU" in w
    assert "flagged as saturated (column saturated_px) at 65535 ADU instead, the pixel type's maximum" in w
    assert stats["clip_levels"] == [(65535.0, "dtype")]
    assert stats["saturated_rows"] == 0
    assert int((np.asarray(table["saturated_px"]) > 0).sum()) == 0


def test_a_saturation_the_movie_exceeds_takes_the_level_its_values_pile_up_at():
    """A 13-bit camera's movie (clipped at 8191) configured with 4095: the rows are flagged at 8191, found."""
    movie = np.minimum(_movie(), 8191).astype(np.uint16)
    assert (movie == 8191).sum() >= 12
    table, stats, said = _fit(movie, _config(saturation_adu=4095))
    (w,) = [s for s in said if "saturation_adu" in s]
    assert "at 8191 ADU instead, where the movie's values pile up" in w
    assert stats["clip_levels"] == [(8191.0, "found")]
    assert stats["saturated_rows"] == 12  # the bright spots, clipped at 16383; the dim ones not
    assert np.all(np.asarray(table["saturated_px"])[np.asarray(table["photons"]) > 10000] > 0)


def test_a_camera_that_clips_at_its_saturation_flags_its_bright_rows_as_before():
    table, stats, said = _fit(_movie(clip_at=4095), _config(saturation_adu=4095))
    assert not [s for s in said if "lie above" in s]
    assert stats["clip_levels"] == [(4095.0, "setting")]
    assert stats["saturated_rows"] == 12
    sat = np.asarray(table["saturated_px"]) > 0
    assert sat.sum() == 12 and np.all(np.asarray(table["photons"])[~sat] < 2000)


@pytest.mark.parametrize("cfg_sat", [None])
def test_no_setting_no_clipping_flags_nothing(cfg_sat):
    table, stats, said = _fit(_movie(), _config(saturation_adu=cfg_sat))
    assert not said and stats["saturated_rows"] == 0 and stats["clip_levels"] == [(65535.0, "dtype")]


# --- (b) plexloc crlb at a z outside a calibrated spline's range ---------------------------------------------------------

def _spline_config(tmp_path) -> Path:
    """examples/3d_astigmatic.yaml with a spline PSF calibrated over z [-500, 500] nm (21 slices, 50 nm; z range of the
    emitters [-300, 300])."""
    import yaml

    from conftest import astigmatic_spline_h5

    astigmatic_spline_h5(tmp_path / "PSF.h5")
    with open(EXAMPLES / "3d_astigmatic.yaml") as f:
        d = yaml.safe_load(f)
    d["psf"] = {"kind": "spline", "calibration": str(tmp_path / "PSF.h5")}
    d["emitters"]["z_range_nm"] = [-300.0, 300.0]
    path = tmp_path / "spline.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_crlb_refuses_a_z_outside_the_splines_calibrated_range(tmp_path, capsys):
    """--z 600 on a spline calibrated over [-500, 500] nm printed crlb_z_nm inf (the spline is flat there) with no
    word; now an error naming the values, the range and the calibration file; z within the range still answers."""
    from plexloc.cli.main import main

    cfg = _spline_config(tmp_path)
    out = tmp_path / "b.json"
    assert main(["crlb", str(cfg), "--photons", "2000", "--bg", "20", "--z=-500,0,450", "--json", str(out)]) == 0
    import json

    with open(out) as f:
        b = json.load(f)
    assert all(np.isfinite(b["crlb_z_nm"])) and 10.0 < b["crlb_z_nm"][1] < 200.0
    capsys.readouterr()
    assert main(["crlb", str(cfg), "--photons", "2000", "--bg", "20", "--z=0,600,-700"]) == 2
    err = capsys.readouterr().err
    assert "--z 600,-700 nm lies outside channel 0's PSF model, calibrated over z [-500, 500] nm" in err
    assert "PSF.h5" in err and "inf" not in capsys.readouterr().out


# --- (c) estimate-priors on a camera ROI's movie with full-chip sCMOS maps -------------------------------------------------

def test_estimate_priors_cuts_full_chip_maps_at_the_configurations_roi(tmp_path, capsys):
    """A movie simulated at the configuration's roi_offset_px with full-chip (64 x 64) sCMOS maps: plexloc fit --method
    mle cut the maps there, plexloc estimate-priors refused the movie, "frame shape (32, 32) does not match the sCMOS
    maps' shape (64, 64)". Now both cut them, and --roi-offset gives the position as fit's does."""
    import yaml

    from plexloc.cli.main import main

    rng = np.random.default_rng(47)
    base = 100.0 + rng.normal(0.0, 3.0, (64, 64))
    base[16:48, 24:56] += 40.0  # the movie's region (rows 16-47, columns 24-55) sits 40 ADU higher: a wrong cut shows
    np.save(tmp_path / "base.npy", base.astype(np.float32))
    d = {"px_size_nm": 100.0, "frame_size": [32, 32], "roi_offset_px": [24, 16],
         "psf": {"kind": "gaussian", "sigma_nm": 130.0},
         "camera": {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5,
                    "baseline": str(tmp_path / "base.npy"), "read_sigma": 1.6},
         "emitters": {"density_per_um2": 1.0, "photons_range": [2000.0, 4000.0], "on_time_frames": 8.0,
                      "z_range_nm": [0.0, 0.0]},
         "background": {"range": [20.0, 40.0], "variation": 0.0}}
    cfg = tmp_path / "chip.yaml"
    cfg.write_text(yaml.safe_dump(d))
    assert main(["simulate", str(cfg), "--frames", "120", "--out", str(tmp_path / "sim"), "--seed", "3"]) == 0
    out = tmp_path / "priors.yaml"
    assert main(["estimate-priors", str(tmp_path / "sim" / "movie.tif"), "--config", str(cfg), "--out", str(out),
                 "--json", str(tmp_path / "p.json"), "--device", "cpu"]) == 0
    import json

    with open(tmp_path / "p.json") as f:
        summary = json.load(f)
    lo, hi = summary["background_range"]
    assert 12.0 < lo < 28.0 and 32.0 < hi < 48.0  # the maps cut at the ROI: background [20, 40] read back
    # --roi-offset as fit takes it: another position reads the background 40 ADU (20 e-, 25 photons) off, which the
    # camera check tells
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default", CameraWarning)  # plexloc's main prints it
        assert main(["estimate-priors", str(tmp_path / "sim" / "movie.tif"), "--config", str(cfg), "--out",
                     str(tmp_path / "p2.yaml"), "--json", str(tmp_path / "p2.json"), "--roi-offset", "0", "0",
                     "--device", "cpu"]) == 0
    assert "the camera.baseline map about 28 ADU higher" in capsys.readouterr().err
    with open(tmp_path / "p2.json") as f:
        assert json.load(f)["background_range"][0] > lo + 15.0


def test_estimate_priors_tells_the_exceeded_saturation_as_the_fit_does():
    """estimate-priors' check of the first frames is the fit's: the setting that the values exceed told once, in the
    fit's words (it said 'the fits flag every spot that reaches it as saturated', which the fit no longer does)."""
    from plexloc.errors import InputError
    from plexloc.mle.priors import estimate_priors

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="tracks with three whole frames"):  # two spots: too few tracks
            estimate_priors(_movie(), _config(saturation_adu=4095))
    said = [str(w.message) for w in caught if issubclass(w.category, CameraWarning)]
    (w,) = [s for s in said if "saturation_adu" in s]
    assert "so rows are flagged as saturated (column saturated_px) at 65535 ADU instead" in w
    assert "the fits flag every spot" not in w


# --- (d) an emitter z range beyond the spline's calibrated range ----------------------------------------------------------

def test_mle_fit_tells_an_emitter_z_range_beyond_the_splines(tmp_path):
    """The simulator refuses emitters.z_range_nm beyond a spline's calibrated z range; the MLE fit took it silently
    and bounded z to the spline's range (rows held on its edge as 'z on its bound'). Now it says so, once."""
    from plexloc.mle.pipeline import ZRangeWarning

    cfg = load_config(_spline_config(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MLEFitter(cfg)  # [-300, 300] within [-500, 500]: nothing to say
    wide = cfg.model_copy(update={"emitters": cfg.emitters.model_copy(update={"z_range_nm": (-700.0, 400.0)})})
    with pytest.warns(ZRangeWarning) as rec:
        MLEFitter(wide)
    (w,) = [str(r.message) for r in rec]
    assert "emitters.z_range_nm [-700, 400] nm reaches beyond channel 0's spline PSF, calibrated over z [-500, 500]" in w
    assert "PSF.h5" in w and "narrow emitters.z_range_nm" in w
