"""Session 46, reader "read-1": ``plexloc info``'s baseline against the movie's pixels, as the camera check holds it
(207de97): a scalar baseline (the mean pixel offset) over an sCMOS whose pixel offsets spread by 3-10 ADU puts 1 % of
the pixels' medians 7-23 ADU below it at 0-2 photons/px, and ``plexloc info`` called the right baseline "above the
camera's offset" (and, having said it, kept the camera check's own answer, which had been fixed, from being heard).
The median of the pixels' medians is held against it now; a baseline far above the offset is still told."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plexloc.config.models import SCMOSConfig
from plexloc.io.movie_info import compare_camera, read_movie_info


def _spread_movie(path, spread: float, bg: float, frames: int = 16, shape=(64, 64), seed: int = 8):
    """An sCMOS movie (qe 0.8, 0.45 e-/ADU, read noise 1.4 e-) whose pixel offsets spread by ``spread`` ADU about
    100, at ``bg`` photons/px."""
    rng = np.random.default_rng(seed)
    offsets = 100.0 + spread * rng.standard_normal(shape)
    e = rng.poisson(0.8 * bg, size=(frames, *shape)) + rng.normal(0.0, 1.4, size=(frames, *shape))
    tifffile.imwrite(path, np.round(offsets + e / 0.45).astype(np.uint16), photometric="minisblack")
    return path


@pytest.mark.parametrize("spread", [3.0, 10.0])
@pytest.mark.parametrize("bg", [0.0, 0.5, 2.0])
def test_a_scalar_baseline_over_spread_pixel_offsets_is_not_told_by_info(tmp_path, spread, bg):
    info = read_movie_info(_spread_movie(tmp_path / "m.tif", spread, bg))
    right = SCMOSConfig(qe=0.8, e_per_adu=0.45, baseline=100.0, read_sigma=1.4)
    cmp = compare_camera(info, [right], camera_file="c.yaml")
    assert not [w for w in cmp.warnings if "baseline" in w]
    assert cmp.check is not None and not cmp.check.baseline_warnings


def test_a_baseline_far_above_the_offset_is_still_told_by_info(tmp_path):
    """Baseline 130 for offsets 100 +- 5 ADU at 0.5 photons/px (the pixels' median about 101 ADU): told once, by
    info, naming the file, the field, its value and the level."""
    path = _spread_movie(tmp_path / "m.tif", 5.0, 0.5)
    info = read_movie_info(path)
    bad = SCMOSConfig(qe=0.8, e_per_adu=0.45, baseline=130.0, read_sigma=1.4)
    cmp = compare_camera(info, [bad], camera_file="c.yaml")
    (w,) = [w for w in cmp.warnings if "baseline" in w]
    assert "c.yaml" in w and "130 ADU" in w and str(path) in w and "takes photons away" in w
    level = float(w.split("sit at or below ")[1].split()[0])
    assert 99 <= level <= 103
    assert cmp.check is not None and not cmp.check.baseline_warnings  # not said twice
