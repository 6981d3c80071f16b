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
    from plexloc.psf.check import baseline_field, baseline_above_offset

    cfg = tmp_path / "cfg.yaml"
    save_config(_psf_config(100.0, 1100.0), cfg)
    cam = camera_from_config(load_config(cfg).channels[0].camera)
    assert baseline_field(cam) == f" (channels.0.camera.baseline in {cfg})"  # as the saved file writes it
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


def _stack4(seed: int = 0):
    from test_beadwalk48 import _stack

    return _stack([(16, 16), (16, 47), (47, 16), (47, 47)], seed=seed)  # 33 slices 50 nm apart, astigmatic beads


def test_a_z_step_twice_the_step_taken_is_warned_of():
    """--z-step 100 for a stack taken at 50 nm wrote a calibration whose every z was twice the true one (foci at -500 /
    +500 nm for -250 / +250) without a word: the PSF reads 6.7x longer than wide, where high-NA bead stacks read
    1.6-4.9 (the refusal holds 1.2-20)."""
    from plexloc.calibrate import calibrate_spline

    st = _stack4()
    right = calibrate_spline([st], z_step_nm=50.0, px_size_nm=100.0)
    assert not any("longer than wide" in w for w in right.summary["warnings"])
    # (--z-step 25 for 50 reads 1.69 on this Gaussian, under 1.7 but above 1.45: right vectorial stacks at NA 1.49 read
    # 1.62-1.82, tests/test_beads49_review.py; the ratio no longer tells it)
    for given, low, high in ((100.0, 40.0, 55.0),):
        res = calibrate_spline([st], z_step_nm=given, px_size_nm=100.0)
        said = [w for w in res.summary["warnings"] if "longer than wide" in w]
        assert len(said) == 1, (given, res.summary["warnings"])
        assert f"with --z-step {given:g} nm" in said[0] and "check it (the stage step between slices" in said[0]
        # (since session 49 the steps real optics' ratios would mean: tests/test_beads49b.py)
        lo, hi = (float(v) for v in said[0].split("about ")[-1].split()[0].split("-"))
        assert low <= lo <= 50.0 <= hi, (given, lo, hi)


def test_a_file_of_two_channels_stacks_is_refused_with_the_advice_for_bead_stacks(tmp_path, capsys):
    """A (2, 33, H, W) TIFF without axis labels (two channels' stacks, or a time series of stacks) was refused with a
    movie's advice: make them one stack (Image > Hyperstacks > Hyperstack to Stack, 66 frames), which makes the two
    channels one 66-slice z-stack. Now the advice of a bead stack: one TIFF per channel, one z-stack of a series."""
    import numpy as np
    import tifffile

    for shape in ((2, 33, 32, 32), (33, 2, 32, 32), (3, 33, 32, 32)):
        path = tmp_path / "beads.tif"
        tifffile.imwrite(path, np.zeros(shape, np.uint16))
        rc = main(["calibrate", str(path), "--z-step", "50", "--pixel-size", "100", "--out", str(tmp_path / "P.h5")])
        err = capsys.readouterr().err
        assert rc == 2
        assert f"{path}: image has shape {shape}" in err and "plexloc cannot tell which axis holds the slices" in err
        assert "save each channel's z-stack as its own TIFF" in err and "of a time series of z-stacks" in err
        assert "Hyperstack to Stack" not in err and "one movie's frames" not in err


def test_too_few_slices_says_what_the_stack_covers_and_what_to_take():
    """'a z-stack needs >= 8 slices, got 7' said nothing of the z range or the step to take."""
    import numpy as np
    import pytest

    from plexloc.calibrate import calibrate_spline
    from plexloc.errors import InputError

    with pytest.raises(InputError) as err:
        calibrate_spline([np.zeros((7, 32, 32))], z_step_nm=100.0, px_size_nm=100.0)
    text = str(err.value)
    assert text.startswith("channel 0: a z-stack needs >= 8 slices, got 7 (z -300 to +300 nm around its middle with --z-step 100")
    assert "take the stack over the z range to calibrate (usually +-600 nm or more around focus) in steps of 10-50 nm" in text


def test_a_fit_is_told_the_baseline_alone_once_by_its_camera_check_not_by_the_shape_check_too():
    """check_movie_psf_shapes (the fits' entry, whose camera check tells a baseline above the offset by the same rule)
    leaves the baseline alone to the camera check; the baseline with a wrong pixel size is still its finding."""
    import warnings as w

    from plexloc.psf.check import check_movie_psf_shapes
    from plexloc.simulation import Simulator

    for seed, px, baseline, told in ((1, 100.0, 700.0, False), (0, 140.0, 1100.0, True)):
        raw = _movie(seed)
        cfg = _psf_config(px, baseline)
        ph = Simulator(cfg).to_photons(raw)[0]
        with w.catch_warnings():
            w.simplefilter("ignore")
            (r,) = check_movie_psf_shapes(lambda a, b: [ph[a:b]], len(ph), cfg, max_spots=150)
        assert (r.warning is not None) == told, (seed, px, r.warning)
        if told:
            assert "two errors cancel" in r.warning and "Check px_size_nm, 140 nm" in r.warning
