"""Session 47: a bead z-stack with a repeated slice.

- a frame saved twice (pixel for pixel the slice before it) was calibrated as the next z, so every later slice's z
  was one step off without a word: refused, naming the slice;
- a stalled stage (a new exposure of the same z: the beads unchanged within the noise while the steps beside change
  them far beyond it) is named in a note, and stacks without one, astigmatic or defocus-symmetric, bright or dim, are
  not.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_beadaudit46 import DZ, PX, ZS, _field

from plexloc.calibrate import beads as B
from plexloc.calibrate import calibrate_spline
from plexloc.calibrate.spline import _stalled_slices
from plexloc.errors import InputError


def _stalled(k: int) -> np.ndarray:
    """The z of each slice of a stack whose stage did not move between slices k and k + 1 (33 slices, as ZS)."""
    return np.concatenate([ZS[: k + 1], ZS[k:-1]])


def test_a_slice_saved_twice_is_refused_naming_it():
    st = _field(2e4, seed=3)
    st[14] = st[13]
    with pytest.raises(InputError, match=r"slice\(s\) 14 of 33 repeat the slice before them pixel for pixel: a frame "
                                         r"saved twice"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX)


def _notes(st: np.ndarray) -> list[str]:
    sel = B.detect_beads(st, roi_px=15)
    return _stalled_slices(st, sel, roi_px=15, src="beads.tif")


def test_a_stalled_stage_is_named_in_a_note():
    notes = _notes(_field(2e4, seed=4, zs=_stalled(20)))
    assert len(notes) == 1 and notes[0].startswith("beads.tif: slice(s) 21 (")
    assert "the stage may have stalled there" in notes[0]
    result = calibrate_spline([_field(2e4, seed=4, zs=_stalled(20))], z_step_nm=DZ, px_size_nm=PX)
    assert any("slice(s) 21 (" in w for w in result.summary["warnings"])


@pytest.mark.parametrize("photons", [2e3, 2e4, 1e5])
@pytest.mark.parametrize("c_nm", [(-250.0, 250.0), (0.0, 0.0)])
def test_stacks_without_a_stall_get_no_note(photons, c_nm):
    # defocus-symmetric beads change least around focus (the slices at -25 and +25 nm look alike): no stall there
    assert _notes(_field(photons, seed=5, c_nm=c_nm, zs=np.arange(-825.0, 826.0, DZ))) == []
    assert _notes(_field(photons, seed=6, c_nm=c_nm)) == []
