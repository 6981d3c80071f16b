"""Session 49, bead calibration and the PSF check, second walk (helper "beads"):

- the PSF-shape check was silent where the camera's baseline alone lay 600-2000 ADU above the movie's offset and the
  spots' widths happened to pass (6 of 12 such movies, bench/bead_pairs48.py): it now tells, with what was measured
  and the baseline that would fit;
- 140 nm pixels configured for 100 (spots 1.4x wider) and a baseline 600-1000 ADU too high (spots cut narrower)
  cancelled: the spots read 0.82-1.17x the model's width and nothing was said (8 of 8). The check on the frames lifted
  to the baseline that fits now runs wherever the baseline is off and tells the two apart;
- ``plexloc simulate --beads`` wrote no DIR/config.yaml, which ``plexloc split`` of its stack needs.
"""

from __future__ import annotations

import re
import warnings

import torch

from plexloc.cli.main import main
from test_beadwalk48 import _check, _psf_config


def _movie(seed: int):
    from plexloc.simulation import Simulator

    sim = Simulator(_psf_config(100.0, 100.0))  # a 2D Gaussian, EMCCD with a 100 ADU offset
    return sim.simulate_movie(60, generator=torch.Generator().manual_seed(seed), density_per_um2=0.5).frames


def _read(raw, px: float, baseline: float):
    """The PSF check of ``raw`` read through a camera of ``baseline`` ADU with ``px`` nm pixels: (report, message)."""
    from plexloc.simulation import Simulator

    cfg = _psf_config(px, baseline)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = _check(Simulator(cfg).to_photons(raw)[0], cfg)
    told = [str(w.message) for w in rec if w.category.__name__ == "PSFShapeWarning"]
    assert len(told) == (1 if r.warning else 0)
    return r, r.warning or ""


def test_a_baseline_alone_far_above_the_offset_is_told_where_the_widths_pass():
    """Seed 1, baseline 600 and 2000 ADU too high (offset 100): the spots read 0.89x and 0.49x the model's width and the
    check was silent at both; now the baseline is told with the dim pixels' level and the baseline that fits, and the
    pixel size is cleared by the widths on the frames lifted to it (1.08x)."""
    raw = _movie(1)
    for extra in (600.0, 2000.0):
        r, text = _read(raw, 100.0, 100.0 + extra)
        assert r.enough and r.warning is not None, extra
        assert text.startswith("the camera's baseline lies above the movie's offset: half of the pixels sit ")
        below = float(text.split("half of the pixels sit ")[1].split()[0])
        assert abs(below - (extra - 418.0)) < 30  # the dim pixels' medians 418 ADU above the offset (60 photons/px)
        fits = float(text.split("a baseline of at most about ")[1].split()[0])
        assert 480 <= fits <= 560 and f"(now {100 + extra:g})" in text  # the offset and the background
        assert "Set the camera's baseline to its offset" in text
        k2 = float(re.search(r"With the baseline that fits, the spots' widths are ([0-9.]+)x", text).group(1))
        assert 0.95 <= k2 <= 1.15 and "the pixel size (100 nm) and the PSF are not in question" in text
        assert "pixels would be about" not in text


def test_a_wrong_pixel_size_and_a_high_baseline_that_cancel_are_told_apart():
    """Seed 0, 140 nm pixels configured for 100 and a baseline 1000 ADU too high: the spots read 0.92x the model's
    width and the check was silent; now both: the baseline, and the pixel size from the lifted spots (1.49x wider:
    about 94 nm). The right camera with 140 nm pixels still names the pixel size alone (98 nm)."""
    raw = _movie(0)
    r, text = _read(raw, 140.0, 1100.0)
    assert 0.8 < r.width_scale < 1.05 and r.warning is not None
    assert text.startswith("the camera's baseline lies above the movie's offset")
    assert "two errors cancel" in text and "Check px_size_nm, 140 nm" in text
    guess = float(text.split("the movie's pixels would be about ")[1].split()[0])
    assert 88 <= guess <= 108
    r, text = _read(raw, 140.0, 100.0)
    assert "baseline" not in text and "Check px_size_nm, 140 nm" in text
    assert 88 <= float(text.split("the movie's pixels would be about ")[1].split()[0]) <= 108
    r, text = _read(raw, 100.0, 100.0)  # all right: silent
    assert r.warning is None


def test_the_field_to_set_is_named_where_the_camera_came_from_a_file(tmp_path):
    from plexloc.camera.models import camera_from_config
    from plexloc.config import load_config, save_config
    from plexloc.psf.check import _baseline_field, baseline_above_offset

    cfg = tmp_path / "cfg.yaml"
    save_config(_psf_config(100.0, 1100.0), cfg)
    cam = camera_from_config(load_config(cfg).channels[0].camera)
    assert _baseline_field(cam) == f" (channels.0.camera.baseline in {cfg})"  # as the saved file writes it
    raw = _movie(1)
    from plexloc.simulation import Simulator

    said = baseline_above_offset(Simulator(load_config(cfg)).to_photons(raw)[0], cam)
    assert f"set the camera's baseline (channels.0.camera.baseline in {cfg}) to its offset" in said


def test_simulate_beads_writes_the_configuration_that_split_and_calibrate_take(tmp_path, capsys):
    from pathlib import Path

    ex = Path(__file__).resolve().parent.parent / "src" / "plexloc" / "examples" / "dual_color_splitview.yaml"
    out = tmp_path / "sim"
    assert main(["simulate", str(ex), "--beads", "4", "--z-step", "100", "--z-range", "-300", "300", "--out",
                 str(out), "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    assert (out / "config.yaml").is_file()
    assert f"--config {out / 'config.yaml'} --split-view {out / 'config.yaml'}" in printed
    hint = next(ln for ln in printed.splitlines() if ln.startswith("or cut it into one stack per channel: "))
    argv = hint.split(": ", 1)[1].split()[1:]
    assert argv == ["split", str(out / "beads.tif"), "--config", str(out / "config.yaml"), "--out", str(out / "split")]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "split").glob("*.tif")) == ["beads_ch0.tif", "beads_ch1.tif"]
