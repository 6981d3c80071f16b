"""Session 48, bead calibrations that fail without saying why (helper "beadwalk"):

- ``plexloc calibrate`` opened every stack two or three times (its frames, its metadata, its camera ROI); once now;
- a calibration left with no bead named the reasons and the values measured, never what to change: the fix now;
- a bead rejected as ``second bead in window`` was printed without what was measured (the two spots' separation);
- the bead calibration's second-moment widths and the PSF-shape check's were two copies of one computation;
- the PSF-shape check blamed the pixel size where the camera's baseline lay far above the movie's offset (the width
  fit takes no light below zero, so the spots' tails were cut and they read narrower): the baseline now comes first,
  measured by the pixels' medians against the baseline (:func:`plexloc.camera.check.dim_offset`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import torch

from plexloc.calibrate import beads as B
from plexloc.calibrate import calibrate_spline
from plexloc.calibrate.synthetic import bead_field
from plexloc.cli.main import main
from plexloc.errors import InputError

PX, DZ = 100.0, 50.0
ZS = np.arange(-800.0, 801.0, DZ)


def _stack(pixels, photons: float = 2e4, *, size: int = 64, bg: float = 20.0, seed: int = 0) -> np.ndarray:
    """(33, size, size) Poisson photons of astigmatic Gaussian beads at frame pixels ``(row, col)``."""
    em = [((c + 0.5) * PX, (r + 0.5) * PX, photons) for r, c in pixels]
    field = bead_field("gauss", em, ZS, (size, size)) + bg
    return np.random.default_rng(seed).poisson(field).astype(np.float64)


def test_calibrate_opens_each_stack_once(tmp_path, monkeypatch, capsys):
    """Two stacks (two channels): each file opened once (three times each before: frames, metadata, ROI)."""
    import plexloc.io.tiff as T

    paths = []
    for c in range(2):
        p = tmp_path / f"beads_ch{c}.tif"
        tifffile.imwrite(p, np.random.default_rng(c).poisson(20.0, (10, 32, 32)).astype(np.uint16))
        paths.append(p)
    opened: list[str] = []
    init = T.MovieReader.__init__

    def counting(self, path, *a, **k):
        opened.append(str(path))
        return init(self, path, *a, **k)

    monkeypatch.setattr(T.MovieReader, "__init__", counting)
    rc = main(["calibrate", *map(str, paths), "--z-step", "50", "--pixel-size", "100", "--out",
               str(tmp_path / "PSF.h5"), "--no-validate"])
    err = capsys.readouterr().err
    assert rc == 2 and "no beads left: 0 found" in err  # noise only: read, then refused
    assert sorted(opened) == sorted(map(str, paths)), opened


def calibrate_above_baseline(tmp_path, capsys) -> tuple[int, str, object]:
    """``plexloc calibrate`` of a 10-slice stack at a 100 ADU offset (20 photons of background, no bead) through a
    camera file with baseline 400: its exit code, stderr and the stack's path."""
    cam = tmp_path / "cam.yaml"
    cam.write_text("kind: scmos\nqe: 1.0\ne_per_adu: 1.0\nbaseline: 400\nread_sigma: 1.0\nspurious_charge: 0\n")
    stack = tmp_path / "beads.tif"
    tifffile.imwrite(stack, (100 + np.random.default_rng(0).poisson(20.0, (10, 32, 32))).astype(np.uint16))
    rc = main(["calibrate", str(stack), "--z-step", "50", "--pixel-size", "100", "--camera", str(cam), "--out",
               str(tmp_path / "PSF.h5"), "--no-validate"])
    return rc, capsys.readouterr().err, stack


def test_calibrate_names_the_baseline_that_would_fit(tmp_path, capsys):
    """Stacks at a 100 ADU offset through a camera file with baseline 400: the warning said the median pixel was -280
    photons, and nothing to set; now the baseline that fits (the offset plus the ~20 photons of background)."""
    rc, err, stack = calibrate_above_baseline(tmp_path, capsys)
    assert rc == 2
    said = err.split("half of the pixels of stack 0 (")[1]
    assert said.startswith(f"{stack}) sit 28") and "ADU below the camera's baseline" in said
    fits = float(said.split("a baseline of at most about ")[1].split()[0])
    assert 118 <= fits <= 122 and "(now 400)" in said


def test_saturated_beads_left_no_bead_and_the_error_says_the_fix():
    st = np.minimum(_stack([(16, 16), (16, 47), (47, 16), (47, 47)], 3e5), 4095.0)
    with pytest.raises(InputError) as err:
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, saturation_adu=4095.0)
    text = str(err.value)
    assert "no beads left: 4 found, 4 saturated; saturated: bead at pixel" in text  # as before
    assert "to fix: saturated (4): beads that reach the camera's saturation level: take the stack with less light" in text
    assert "--saturation-adu" in text


def test_beads_at_the_edge_and_too_close_say_the_fix():
    st = _stack([(3, 30), (30, 61), (60, 30), (30, 2), (30, 24), (30, 33)])
    with pytest.raises(InputError) as err:
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX)
    text = str(err.value)
    assert "no beads left: 6 found, 4 border, 2 too close" in text
    assert "to fix: border (4): beads whose window leaves the frame: use beads farther from the frame's edge" in text
    assert "too close (2): beads closer to each other than the window: a sparser bead sample" in text and "--roi-px" in text


def test_a_double_bead_names_the_separation_measured():
    """The per-bead line of plexloc calibrate printed 'rejected: second bead in window' and nothing measured."""
    sel = B.detect_beads(_stack([(20, 20), (20, 45), (45, 20), (45, 45)] + [(20, 23), (45, 48)], seed=3), roi_px=15)
    double = np.flatnonzero(sel.reason == B.DOUBLE)
    assert len(double) == 2
    for i in double:
        assert sel.detail[int(i)].startswith("two spots ")
        sep = float(sel.detail[int(i)].split()[2])
        assert abs(sep - 3.0) < 0.5 and abs(sep - sel.separation_px[i]) < 0.05


def test_moment_widths_is_one_implementation():
    from plexloc.calibrate import spline
    from plexloc.psf import check

    assert spline.moment_widths is check.moment_widths
    yy, xx = np.mgrid[:41, :41]
    img = np.exp(-0.5 * (((xx - 20.3) / 1.5) ** 2 + ((yy - 19.6) / 2.5) ** 2))[None]
    sx, sy = check.moment_widths(img)
    assert abs(sx[0] - 1.5) < 1e-3 and abs(sy[0] - 2.5) < 1e-3
    t = torch.as_tensor(np.concatenate([img, -img]))  # a tensor, negative light taken as none
    np.testing.assert_allclose(check._moment_widths(t), [2.5, 0.0], atol=1e-3)


def _psf_config(px: float, baseline: float):
    from plexloc.config import SimulationConfig, validate_config

    return validate_config({
        "px_size_nm": px, "frame_size": [64, 64], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
        "camera": {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
                   "baseline": baseline, "read_sigma": 74.4},
        "emitters": {"density_per_um2": 0.5, "photons_range": [1000.0, 8000.0], "on_time_frames": 2.0,
                     "z_range_nm": [0.0, 0.0]},
        "background": {"range": [20.0, 100.0]},
    }, SimulationConfig)


def _check(frames, cfg):
    from plexloc.psf.check import check_psf_shape
    from plexloc.simulation import Simulator

    ch = Simulator(cfg).channels[0]
    return check_psf_shape(frames, ch.psf, z_range_nm=cfg.emitters.z_range_nm, z_offset_nm=ch.z_offset_nm,
                           camera=ch.camera, max_spots=150)


def test_psf_shape_check_names_a_baseline_far_above_the_offset_before_the_pixel_size():
    """An EMCCD movie (offset 100 ADU) read with a baseline of 1100: the spots read 0.62x the model's width, and the
    check said the movie's pixels would be about 161 nm (they are 100 nm). A wrong pixel size alone is still the
    pixel size."""
    from plexloc.psf.check import PSFShapeWarning
    from plexloc.simulation import Simulator

    true = _psf_config(100.0, 100.0)
    sim = Simulator(true)
    raw = sim.simulate_movie(60, generator=torch.Generator().manual_seed(0), density_per_um2=0.5).frames
    wrong = Simulator(_psf_config(100.0, 1100.0))
    with pytest.warns(PSFShapeWarning) as rec:
        r = _check(wrong.to_photons(raw)[0], _psf_config(100.0, 1100.0))
    text = str(rec[0].message)
    assert r.width_scale < 0.8
    assert "below the camera's baseline" in text and "That is the likelier cause: set the camera's baseline" in text
    fits = float(text.split("a baseline of at most about ")[1].split()[0])
    assert 100.0 <= fits < 600.0  # the offset plus the background (~56 photons/px = ~340 ADU)
    # the spots lifted to the baseline that fits clear the pixel size; not "If the baseline is right, check px_size_nm
    # ... about 161 nm" before it in the same warning (session 49)
    assert "the pixel size (100 nm) and the PSF are not in question" in text
    assert "If the baseline is right" not in text and "pixels would be about" not in text
    # the right camera, another pixel size: the pixel size, no baseline
    with pytest.warns(PSFShapeWarning) as rec:
        r = _check(sim.to_photons(raw)[0], _psf_config(70.0, 100.0))
    text = str(rec[0].message)
    assert "baseline" not in text and "Check px_size_nm, 70 nm" in text
    # the right camera and pixel size: silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _check(sim.to_photons(raw)[0], true).warning is None


def test_with_three_or_four_beads_a_close_pair_is_named_not_kept_silently():
    """3 single beads and a pair 1.5 px apart (as bright, 3000 photons each): the pair-shape check needs 5 beads to
    reject and did not run, so the pair was averaged in without a word (the two-spot fit misses pairs this close).
    Now it is named in a warning, and kept; 4 single beads are named none."""
    singles = [(20.3, 20.6), (20.5, 50.2), (50.1, 20.4)]
    pair = [(50.2, 50.3), (50.2, 51.8)]
    res = calibrate_spline([_stack(singles + pair, 3000.0, size=72, seed=5)], z_step_nm=DZ, px_size_nm=PX)
    pc = res.summary["pair_shape_check"]
    assert res.summary["n_beads_used"] == [4] and not pc["ran"]
    assert len(pc["named"]) == 1 and abs(pc["named"][0][0] - 50) <= 1 and abs(pc["named"][0][1] - 51) <= 1
    said = [w for w in res.summary["warnings"] if "may be two beads" in w]
    assert len(said) == 1 and said[0].startswith(f"the bead at pixel (row, col) ({pc['named'][0][0]}, "
                                                 f"{pc['named'][0][1]}) may be two beads: anisotropic excess width")
    assert "With 4 beads it is kept" in said[0]
    assert pc["note"].startswith("the double-bead shape check rejects beads from 5: 4 bead(s) reached it, it needs 5; "
                                 "it named 1 bead(s) that look double")  # not "did not run", under the warning
    # the warning's fix: calibrate again without it
    r, c = pc["named"][0]
    assert f"calibrate again without it (--exclude-bead {r} {c})" in said[0]
    st = _stack(singles + pair, 3000.0, size=72, seed=5)
    again = calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, exclude_px=[(r + 1, c - 1)])  # within 2 px
    assert again.summary["n_beads_used"] == [3] and again.summary["rejected"] == [{"found": 4, "excluded": 1}]
    assert again.summary["rejected_beads"][0] == [{"row": r, "col": c, "reason": "excluded",
                                                   "detail": f"--exclude-bead {r + 1} {c - 1}"}]
    with pytest.raises(InputError, match=r"--exclude-bead 35 35: no bead found within 2 px of pixel \(row, col\) "
                                         r"\(35, 35\); the nearest beads are at \(21, 50\), \(20, 21\)"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, exclude_px=[(35, 35)])
    clean = calibrate_spline([_stack(singles + [(50.2, 50.3)], 3000.0, size=72, seed=5)], z_step_nm=DZ, px_size_nm=PX)
    assert clean.summary["pair_shape_check"]["named"] == []
    assert not any("may be two beads" in w for w in clean.summary["warnings"])


def test_the_cli_names_the_stack_and_what_was_measured_for_each_rejected_bead(tmp_path, capsys):
    """'channel 0: bead at pixel (row, col) (40, 40) rejected: second bead in window', nothing measured and no file."""
    st = _stack([(15, 15), (15, 40), (15, 65), (40, 15), (65, 15), (40, 40), (40, 43)], size=80, seed=7)
    path = tmp_path / "beads.tif"
    tifffile.imwrite(path, st.astype(np.uint16))
    rc = main(["calibrate", str(path), "--z-step", "50", "--pixel-size", "100", "--out", str(tmp_path / "PSF.h5"),
               "--no-validate"])
    err = capsys.readouterr().err
    assert rc == 0
    line = next(t for t in err.splitlines() if "rejected: second bead in window" in t)
    assert line.startswith(f"plexloc calibrate: channel 0 ({path}): bead at pixel (row, col) (40, 4")
    sep = float(line.split(": two spots ")[1].split()[0])
    assert abs(sep - 3.0) < 0.5
    # --exclude-bead leaves a bead out (PSF.json lists it, reason excluded)
    import json

    rc = main(["calibrate", str(path), "--z-step", "50", "--pixel-size", "100", "--out", str(tmp_path / "PSF2.h5"),
               "--no-validate", "--exclude-bead", "15", "16"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((tmp_path / "PSF2.json").read_text())
    assert rep["n_beads_used"] == [4] and rep["beads_rejected"][0]["excluded"] == 1
    assert {"row": 15, "col": 15, "reason": "excluded", "detail": "--exclude-bead 15 16"} in rep["rejected_beads"][0]
