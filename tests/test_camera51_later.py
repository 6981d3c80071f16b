"""Session 51 (helper "camera"): a camera that clips only later in the movie. ``plexloc info`` read the first frames
only (no clipping line), and estimate-priors' pre-fit looked for the level in the first frames only, where
``fit_movie`` looks in frames spread over the movie too (test_clip50's ``_later_clipped``: clipped at 4000 ADU from
frame 66 of 72, the check reading 64)."""

from __future__ import annotations

import warnings

from test_clip50 import _later_clipped
from test_saturation41 import _config, _movie

from plexloc.errors import InputError
from plexloc.io.tiff import write_movie


def test_plexloc_info_says_a_level_found_only_in_later_frames(tmp_path, capsys):
    from plexloc.cli.main import main
    from plexloc.io.movie_info import read_movie_info

    movie = _later_clipped()
    write_movie(tmp_path / "m.tif", movie)
    assert main(["info", str(tmp_path / "m.tif")]) == 0
    out = capsys.readouterr().out
    n = int((movie[64:] == 4000).sum())
    assert "  clipping: the values" not in out  # the first frames do not clip
    assert (f"clipping in later frames: 8 frames spread over the rest of the movie pile up at 4000 ADU ({n} px = "
            f"{100 * n / movie[64:].size:.3g} %), the first frames do not") in out
    adu = read_movie_info(tmp_path / "m.tif").adu
    assert (adu.later_clip_level, adu.later_clip_source, adu.later_frames, adu.later_clip_pixels) == \
        (4000.0, "pile-up", 8, n)
    # unclipped, and clipped from the first frame on: no later line
    write_movie(tmp_path / "u.tif", _movie(n_frames=72, clip=65535, bright=3000.0))
    assert main(["info", str(tmp_path / "u.tif")]) == 0
    assert "clipping" not in capsys.readouterr().out
    write_movie(tmp_path / "c.tif", _movie(n_frames=72, clip=4000))
    assert main(["info", str(tmp_path / "c.tif")]) == 0
    out = capsys.readouterr().out
    assert "clipping: the values pile up at 4000 ADU" in out and "later frames:" not in out


def test_the_priors_pre_fit_looks_for_the_level_in_later_frames(tmp_path, monkeypatch):
    import plexloc.mle.pipeline as pipeline
    from plexloc.mle.priors import estimate_priors

    write_movie(tmp_path / "m.tif", _later_clipped())
    seen = []
    first = pipeline.first_frames_check

    def spy(fitter, frames, **kw):
        out = first(fitter, frames, **kw)
        seen.append(list(fitter.clip_levels))
        return out

    monkeypatch.setattr(pipeline, "first_frames_check", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimate_priors(tmp_path / "m.tif", _config(), max_frames=72)
        except InputError:  # two spots make too few tracks for priors: the level is what is asked here
            pass
    # before: [(65535.0, "dtype")], the pre-fit's rows of the clipped frames unflagged
    assert seen == [[(4000.0, "pile-up")]]


def test_calibrate_camera_blames_a_clipped_flat_not_the_dark_frames_for_a_high_read_noise(tmp_path, capsys):
    """A flat 60 % at 1000 ADU (test_clip50_review): e_per_adu 41.9 for 0.46, so 140 e- of read noise, which the
    warning blamed on light reaching the dark frames."""
    from test_clip50_review import _calibrate

    rc, err = _calibrate(tmp_path, 1000, (100.0, 250.0, 560.0), capsys)
    assert rc == 0 and "did light reach the dark frames" not in err
    assert "above any sCMOS's (0.7-3 e-): flats clipped where the camera clips (" in err
    assert "flat2.tif at 1000 ADU) measured it" in err and "Record the flats dimmer, below 1000 ADU" in err
    # unclipped flats keep their words (no read-noise warning at all)
    rc, err = _calibrate(tmp_path, 65535, (100.0, 250.0, 480.0), capsys)
    assert rc == 0 and "read noise measured" not in err
