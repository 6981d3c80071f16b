"""Review of plexloc calibrate-camera with known answers: an independent numpy camera (not the project's models), and
what the calibration must do with cosmic rays, saturated flats, swapped stacks, float frames and failed writes."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import tifffile

from plexloc.camera.calibration import calibrate_camera, stack_stats
from plexloc.cli.main import main
from plexloc.errors import InputError

H = W = 32


def _camera(seed: int = 0):
    """Per-pixel truth of an sCMOS: gain (e-/ADU), offset with a column pattern (ADU), read noise (e-) with two noisy
    pixels."""
    rng = np.random.default_rng(seed)
    gain = rng.normal(0.5, 0.01, (H, W))
    base = 100.0 + rng.normal(0.0, 2.0, (H, W)) + 3.0 * (np.arange(W) % 7)[None, :]
    read = np.abs(rng.normal(1.5, 0.3, (H, W)))
    read[5, 5], read[10, 20] = 15.0, 8.0
    return gain, base, read


def _frames(photons, n: int, cam, seed: int, *, quantise: bool = True, qe: float = 0.8) -> np.ndarray:
    """Independent simulation: Poisson(qe * photons) + N(0, read) electrons -> / gain + offset, rounded to uint16."""
    gain, base, read = cam
    rng = np.random.default_rng(seed)
    e = rng.poisson(qe * np.broadcast_to(photons, (n, H, W))) + rng.normal(0.0, 1.0, (n, H, W)) * read
    adu = e / gain + base
    return np.clip(np.round(adu), 0, 65535) if quantise else adu


def test_cosmic_rays_in_darks_and_flats_are_taken_out():
    cam = _camera()
    gain, base, read = cam
    clean_dark = _frames(0.0, 200, cam, 1)
    flats = [_frames(level, 200, cam, 2 + k) for k, level in enumerate((50.0, 200.0, 800.0))]
    ref = calibrate_camera(stack_stats([clean_dark]), kind="scmos", flats=[stack_stats([f]) for f in flats])
    dark = clean_dark.copy()
    dark[17, 3, 4] += 3000.0  # cosmic rays: single-frame spikes of a few hundred to thousands of ADU
    dark[50, 30, 31] += 800.0
    dark[0, 7, 8] += 500.0  # the first frame and the last
    dark[-1, 9, 9] += 500.0
    hit = [f.copy() for f in flats]
    for k, f in enumerate(hit):
        f[10 + k, 12, 13 + k] += 3000.0
    ds = stack_stats(np.array_split(dark, 7), source="dark.tif")  # across chunk borders
    cal = calibrate_camera(ds, kind="scmos", flats=[stack_stats([f], source=f"flat{k}.tif") for k, f in enumerate(hit)])
    # old: the 3000 ADU ray moved that pixel's offset by 15 ADU, its read noise 50x; the gain 5.6 % (the dark's
    # variance is subtracted from every flat), and a ray in each flat 15 % low
    assert int(ds.spikes.sum()) == 4
    for r, c, t in ((3, 4, 17), (30, 31, 50), (7, 8, 0), (9, 9, 199)):
        keep = np.delete(clean_dark[:, r, c], t)
        assert cal.offset_adu[r, c] == pytest.approx(keep.mean(), abs=1e-9)
    # the spikes' pixels: offset and variance as the clean frames without that frame; gain as without rays
    assert abs(cal.offset_adu[3, 4] - base[3, 4]) < 5 * read[3, 4] / gain[3, 4] / math.sqrt(199)
    assert np.max(np.abs(cal.read_sigma_adu / ref.read_sigma_adu - 1)) < 0.1
    assert abs(cal.config["e_per_adu"] / ref.config["e_per_adu"] - 1) < 2e-3
    assert abs(cal.config["e_per_adu"] / gain.mean() - 1) < 0.01
    assert any("dark.tif: 4 single-frame spike(s)" in n and "3000 ADU" in n and "row 3, column 4" in n for n in cal.notes)
    # no spike taken out of clean frames (noisy pixels included)
    assert not stack_stats([clean_dark]).spikes.any() and not any(stack_stats([f]).spikes.any() for f in flats)


def test_emccd_clock_induced_charge_is_not_taken_for_cosmic_rays():
    rng = np.random.default_rng(5)
    n, size = 400, 48

    def emccd(photons: float) -> np.ndarray:
        electrons = rng.poisson(0.9 * photons + 0.002, (n, size, size))
        amplified = rng.gamma(np.maximum(electrons, 1e-9), 300.0) * (electrons > 0)
        return np.round((amplified + rng.normal(0.0, 74.4, (n, size, size))) / 45.0 + 100.0)

    st = stack_stats([emccd(0.0)])
    assert int(st.spikes.sum()) <= 2  # of 1,800 dark-charge events, a few above 40 sd
    flat = stack_stats([emccd(20.0)])
    assert not flat.spikes.any()
    cal = calibrate_camera(st, kind="emccd", flats=[flat], em_gain=300.0)
    assert abs(cal.config["read_sigma"] / 74.4 - 1) < 0.02
    assert abs(cal.config["e_per_adu"] / 45.0 - 1) < 0.02


def test_saturated_flat_pixels_are_left_out_and_a_saturated_flat_refused():
    cam = _camera(1)
    gain = cam[0]
    dark = stack_stats([_frames(0.0, 100, cam, 1)], source="dark.tif")
    ramp = np.linspace(30000.0, 45000.0, W)[None, :] * np.ones((H, 1))  # 48,000 to 72,000 ADU: two thirds clipped
    levels = [np.full((H, W), 100.0), np.full((H, W), 1000.0), ramp]
    flats = [stack_stats([_frames(lv, 100, cam, 5 + k).astype(np.uint16)], source=f"flat{k}.tif", saturation=65535)
             for k, lv in enumerate(levels)]
    cal = calibrate_camera(dark, kind="scmos", flats=flats)
    # old: the clipped pixels' near-zero variance, weighted most, gave e_per_adu 2.2x too high
    assert abs(cal.config["e_per_adu"] / gain.mean() - 1) < 0.01
    assert any(n.startswith("flat2.tif: ") and "left out" in n for n in cal.notes)
    everything = stack_stats([np.full((30, H, W), 65535, np.uint16)], source="bright.tif", saturation=65535)
    with pytest.raises(InputError, match="bright.tif.*every pixel.*saturated.*dimmer"):
        calibrate_camera(dark, kind="scmos", flats=[flats[0], everything])


def test_dark_and_flat_swapped_is_named():
    cam = _camera(2)
    dark = stack_stats([_frames(0.0, 50, cam, 1)], source="dark.tif")
    flat = stack_stats([_frames(300.0, 50, cam, 2)], source="flat.tif")
    with pytest.raises(InputError, match=r"dark.tif.*no brighter than the dark frames.*swapped \(--dark flat.tif\)"):
        calibrate_camera(flat, kind="scmos", flats=[dark])


def test_float_frames_that_are_not_whole_numbers_keep_their_rounding_variance():
    """A camera (or a pipeline) that writes float frames without rounding has no 1/12 ADU² to take out."""
    cam = _camera(3)
    gain, base, read = cam
    read = read * 0.3  # 0.9 ADU: the 1/12 ADU² matters
    cam = (gain, base, read)
    dark = stack_stats([_frames(0.0, 400, cam, 1, quantise=False).astype(np.float32)])
    assert not dark.integer
    true = (read / gain) ** 2
    ratio = float(np.median(dark.read_variance / true))
    assert abs(ratio - 1) < 0.02  # old: 0.90
    rounded = stack_stats([_frames(0.0, 400, cam, 1).astype(np.float32)])  # float, but whole numbers: rounded
    assert rounded.integer and abs(float(np.median(rounded.read_variance / true)) - 1) < 0.03


def _write(tmp_path, cam):
    for name, level, seed in (("dark", 0.0, 1), ("flat1", 100.0, 2), ("flat2", 400.0, 3)):
        tifffile.imwrite(tmp_path / f"{name}.tif", _frames(level, 40, cam, seed).astype(np.uint16))
    return ["--dark", str(tmp_path / "dark.tif"), "--flat", str(tmp_path / "flat1.tif"), str(tmp_path / "flat2.tif"),
            "--kind", "scmos", "--gain-map", "yes"]


def test_outputs_appear_together_or_not_at_all(tmp_path, capsys):
    args = _write(tmp_path, _camera(4))
    out = tmp_path / "cal" / "camera.yaml"
    (tmp_path / "report.json").mkdir()  # an unwritable --json: a folder of that name
    rc = main(["calibrate-camera", *args, "--out", str(out), "--json", str(tmp_path / "report.json")])
    assert rc == 2 and "report.json" in capsys.readouterr().err
    # old: the YAML, its three maps and the figure were written before the JSON failed
    assert not out.parent.exists() or sorted(os.listdir(out.parent)) == []
    # a figure that cannot be written: nothing either
    (tmp_path / "fig.png").mkdir()
    rc = main(["calibrate-camera", *args, "--out", str(out), "--figure", str(tmp_path / "fig.png")])
    assert rc == 2
    assert not out.parent.exists() or sorted(os.listdir(out.parent)) == []
    rc = main(["calibrate-camera", *args, "--out", str(out), "--json", str(tmp_path / "cal.json")])
    assert rc == 0
    assert sorted(os.listdir(out.parent)) == ["camera.png", "camera.yaml", "camera_baseline.npy", "camera_e_per_adu.npy",
                                              "camera_read_variance.npy"]
    assert (tmp_path / "cal.json").exists()
