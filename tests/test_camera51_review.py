"""Session 51 review of helper "camera": find_clip_adu no longer leaves out frames where most pixels hold the level,
only constant ones (a5db5b5). Noiseless frames at one value with a zero border or dead pixels at 0 (blank frames,
not constant) then read that value as a clipping level: no pixel lies within 16 ADU under it, no clipped tail ends
there. A real clip over most of the pixels (a bright frame) keeps its tail just under the level and is still found."""

import numpy as np
import pytest

from plexloc.camera.check import find_clip_adu


def _blank(t, border=True):
    x = np.full((t, 48, 48), 100, np.uint16)
    if border:
        x[:, :, :6] = 0  # a zero border (a padded or registered channel)
    else:
        x[:, [3, 20, 40], [7, 30, 11]] = 0  # three dead pixels
    return x


@pytest.mark.parametrize("t,border", [(1, True), (5, True), (3, False)])
def test_blank_frames_with_a_border_or_dead_pixels_give_no_level(t, border):
    # a5db5b5: (100.0, "pile-up"); 3abfe7b: (None, "")
    assert find_clip_adu(_blank(t, border)) == (None, "")


def test_a_clip_over_most_pixels_with_its_tail_under_it_is_still_found():
    rng = np.random.default_rng(0)
    y = np.minimum(np.round(rng.normal(1500, 300, (1, 48, 48))), 1400).astype(np.uint16)  # 63 % at 1400
    assert find_clip_adu(y) == (1400.0, "pile-up")
    # after blank frames with a border: the bright frame's level
    assert find_clip_adu(np.concatenate([_blank(3), y])) == (1400.0, "pile-up")


def test_the_fit_summary_line_says_a_level_came_from_later_frames():
    """fit_movie finds a level in frames spread over the movie (test_clip50's movie: 4000 ADU from frame 66 of 72, the
    check reads 64); the summary line named it '(where the movie's pixels pile up)' as if the first frames held it,
    while plexloc info's clipping line (the first frames) showed none."""
    import warnings

    from test_clip50 import _later_clipped
    from test_saturation41 import _config, _movie

    from plexloc.mle import fit_movie
    from plexloc.mle.pipeline import saturated_line

    stats: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_movie(_later_clipped(), _config(), stats=stats)
    assert stats["clip_levels"] == [(4000.0, "pile-up")] and stats["saturated_rows"] > 0
    line = saturated_line(stats["saturated_rows"], stats["clip_levels"], table="t.csv")
    assert ("pixels clipped at 4000 ADU (where the pixels of frames later in the movie pile up, not those of the "
            "first ones)") in line
    # clipped from the first frame on: said as before
    stats = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_movie(_movie(n_frames=72, clip=4000), _config(), stats=stats)
    line = saturated_line(stats["saturated_rows"], stats["clip_levels"], table="t.csv")
    assert "pixels clipped at 4000 ADU (where the movie's pixels pile up) (column" in line


@pytest.mark.parametrize("name,bg,density,seed", [("emccd", 200.0, 2.0, 1), ("emccd", 200.0, 2.0, 2),
                                                  ("emccd", 200.0, 1.0, 0), ("emccd", 200.0, 1.0, 1),
                                                  ("scmos", 1000.0, 1.0, 1)])
def test_a_right_camera_with_sharp_spots_under_a_beam_is_not_accused(name, bg, density, seed):
    """bench/camera49.py's cameras, sd 0.8 px spots at 160 nm under a beam (waist 0.35), 64 x 64 px, 32 frames: the
    high-passed ratio 1.37-1.82 with the dimmest tenth within 1.15x of it. a5db5b5 lifted the sharp-spot guard there
    ("frames too crowded") and told these right cameras; 3abfe7b declined them, as now."""
    import warnings

    import torch

    from plexloc.camera import camera_from_config
    from plexloc.camera.check import check_camera
    from plexloc.camera.synthetic import spotted_light

    cfg = ({"kind": "emccd", "qe": 0.9, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 74.4,
            "spurious_charge": 0.002} if name == "emccd" else
           {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.46, "baseline": 100.0, "read_sigma": 1.6, "spurious_charge": 0.0})
    light = spotted_light(np.random.default_rng(seed), 32, (64, 64), bg=bg, waist=0.35, density=density,
                          sigma_px=0.8, px_nm=160.0)
    cam = camera_from_config(cfg)
    raw = cam(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(seed + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = check_camera([cam.to_photons(raw)], [cam], dtype=np.uint16, warn=False)
    ch = out.channels[0]
    assert not out.warnings and ch.noise_note.startswith("frames too crowded"), (ch.noise_ratio, ch.noise_note)
