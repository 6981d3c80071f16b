"""Session 48, review of the camera walk (plexloc.camera.mapfit): ``plexloc info``'s maps warning names where its ROI
came from (the configuration's roi_offset_px, not "--roi-offset"), and a right offset map whose structure is mostly its
own measurement noise (an on-camera-corrected, nearly flat offset; a map of few dark frames) is not told as another
ROI's."""

from __future__ import annotations

import numpy as np
import tifffile
import torch

from plexloc.camera.check import check_camera
from plexloc.camera.models import SCMOS
from plexloc.camera.synthetic import spotted_light
from plexloc.config.models import SCMOSConfig
from plexloc.io.movie_info import compare_camera, read_movie_info

CHIP, H = 128, 48


def _chip(seed: int = 1, spread: float = 3.0):
    rng = np.random.default_rng(seed)
    base = (100 + rng.normal(0, spread, (CHIP, CHIP)) + rng.normal(0, spread / 2, (1, CHIP))).astype(np.float32)
    gain = np.full((CHIP, CHIP), 0.46, np.float32)
    rs = (1.4 * np.exp(rng.normal(0, 0.3, (CHIP, CHIP)))).astype(np.float32)
    return base, gain, rs


def _raw(chip, x0, y0, *, h=H, frames=16, bg=30.0, seed=0):
    base, gain, rs = chip
    sl = np.s_[y0:y0 + h, x0:x0 + h]
    cam = SCMOS(qe=0.8, e_per_adu=torch.tensor(gain[sl]), baseline=torch.tensor(base[sl]),
                read_sigma=torch.tensor(rs[sl]))
    light = spotted_light(np.random.default_rng(seed), frames, (h, h), bg=bg, density=0.3)
    return cam(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(seed)).numpy()


def test_info_names_the_configurations_roi_offset_px_and_how_to_set_it(tmp_path):
    chip = _chip()
    base, gain, rs = chip
    tifffile.imwrite(tmp_path / "m.tif", np.round(_raw(chip, 40, 24)).astype(np.uint16), photometric="minisblack")
    for name, arr in (("base", base), ("gain", gain), ("rs", rs)):
        np.save(tmp_path / f"{name}.npy", arr)
    cfg = SCMOSConfig(qe=0.8, e_per_adu=str(tmp_path / "gain.npy"), baseline=str(tmp_path / "base.npy"),
                      read_sigma=str(tmp_path / "rs.npy"))
    info = read_movie_info(tmp_path / "m.tif")
    cmp = compare_camera(info, [cfg], camera_file="config.yaml", roi_offset_px=(0, 0))
    (w,) = cmp.check.map_warnings
    assert "cut at chip x 0, y 0 (the configuration's roi_offset_px)" in w and "(--roi-offset)" not in w
    assert "set roi_offset_px: [40, 24] in the configuration (or give --roi-offset 40 24)" in w
    right = compare_camera(info, [cfg], camera_file="config.yaml", roi_offset_px=(40, 24))
    assert right.check.map_warnings == []


def _noisy_map_check(seed: int, *, spread: float, dark_frames: int, shift: tuple[int, int] = (0, 0)):
    """A chip of offset spread ``spread`` ADU, its offset map measured on ``dark_frames`` dark frames (the map's own
    noise: the read noise over sqrt(dark_frames)), a 96 x 96 ROI movie checked with the map (``shift``: cut there)."""
    rng = np.random.default_rng(seed)
    base, gain, rs = _chip(seed, spread)
    measured = (base + rng.normal(0, 1, base.shape) * rs / gain / np.sqrt(dark_frames)).astype(np.float32)
    raw = _raw((base, gain, rs), 16, 16, h=96, frames=32, seed=seed)
    y0, x0 = 16 + shift[1], 16 + shift[0]
    sl = np.s_[y0:y0 + 96, x0:x0 + 96]
    cam = SCMOS(qe=0.8, e_per_adu=torch.tensor(gain[sl]), baseline=torch.tensor(measured[sl]),
                read_sigma=torch.tensor(rs[sl]))
    out = check_camera([cam.to_photons(torch.as_tensor(raw))], [cam], dtype=np.uint16, warn=False)
    return out.channels[0].map_match, out.map_warnings


def test_a_right_map_that_is_mostly_its_own_measurement_noise_is_not_told():
    # an on-camera-corrected offset (spread 0.05 ADU) measured on 20 dark frames (noise ~0.7 ADU): the map's structure
    # is its noise, which no movie shares; it was told as "not this movie's pixels' offset map"
    told = [bool(_noisy_map_check(s, spread=0.05, dark_frames=20)[1]) for s in range(6)]
    assert told == [False] * 6
    m, _ = _noisy_map_check(0, spread=0.05, dark_frames=20)
    assert not m.decisive  # a wrong region could not be told either: nothing said


def test_a_wrong_region_of_a_map_with_real_structure_is_still_told():
    for s in range(3):
        m, w = _noisy_map_check(s, spread=2.0, dark_frames=20, shift=(7, 3))
        assert m.decisive and m.mismatch and len(w) == 1
        m, w = _noisy_map_check(s, spread=2.0, dark_frames=20)
        assert m.decisive and not m.mismatch and w == []


def test_the_maps_check_converts_only_the_central_window_of_large_frames(monkeypatch):
    # a fit with right maps on 2048 x 2048 frames took 0.4-1.1 s for the maps check, most of it the whole frames'
    # median converted back to ADU; the check compares the central 512 x 512 pixels only, and converts only those
    from plexloc.camera import check as check_mod

    rng = np.random.default_rng(0)
    s = 1024
    base = torch.tensor((100 + rng.normal(0, 2, (s, s))).astype(np.float32))
    cam = SCMOS(qe=0.8, e_per_adu=torch.full((s, s), 0.46), baseline=base, read_sigma=torch.full((s, s), 1.4))
    photons = cam.to_photons(cam(torch.full((2, s, s), 30.0), generator=torch.Generator().manual_seed(0)))
    shapes = []
    real = SCMOS.expected_adu

    def spy(self, p):
        shapes.append(tuple(p.shape))
        return real(self, p)

    monkeypatch.setattr(SCMOS, "expected_adu", spy)
    m = check_mod._map_match(photons, cam)
    assert shapes == [(512, 512)] and m.pixels == 512 * 512
    assert m.decisive and not m.mismatch and m.r > 0.6 * m.expected
