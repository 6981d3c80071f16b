"""Session 46's review (review-a): defects found in the day's changes, each pinned by a test that failed before its
fix: the camera package's lazy names (PEP 562) kept what ``import plexloc.camera`` gave before them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest


def _run(code: str) -> str:
    """``code`` in a fresh interpreter (a module imported by an earlier test would hide what the import gives)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_camera_packages_submodules_are_its_attributes_after_a_plain_import():
    """``import plexloc.camera`` then ``plexloc.camera.check.saturation_adu`` (or ``.models.EMCCD``) worked while the
    package imported its modules; with its names made lazy it raised AttributeError: no attribute 'check'."""
    got = _run("import plexloc.camera as c, numpy as np, sys\n"
               "print(c.check.saturation_adu(np.uint16), c.models.EMCCD is c.EMCCD, c.functional.__name__)")
    assert got == "65535.0 True plexloc.camera.functional"


def test_the_camera_packages_lazy_names_import_pickle_and_list_as_before():
    """``from plexloc.camera import X``, isinstance, pickling and ``dir()`` (each name once: a name fetched was listed
    twice, once from the module's globals and once from the lazy table)."""
    got = _run("import pickle, plexloc.camera as c\n"
               "names = dir(c)\n"
               "from plexloc.camera import EMCCD, CameraCheck, IdealCamera, camera_from_config\n"
               "after = dir(c)\n"
               "cam = IdealCamera()\n"
               "back = pickle.loads(pickle.dumps(cam))\n"
               "print(isinstance(back, c.Camera), type(back) is IdealCamera, len(after) == len(set(after)),"
               " set(c.__all__) <= set(names), 'check' in after)")
    assert got == "True True True True True"


def test_the_camera_package_still_imports_without_torch():
    """The point of the lazy names: importing the package and the check's numpy parts does not import torch."""
    got = _run("import sys, plexloc.camera as c\n"
               "from plexloc.camera.check import saturation_adu\n"
               "print('torch' in sys.modules, c.check.saturation_adu('uint8'))")
    assert got == "False 255.0"


# --- FRC tiles (784551c): the tiles counted and limited are those that hold localizations ----------------------------

def _two_far_regions(seed: int = 0):
    """Two 1.4 µm squares of blinking molecules (10 nm precision) at opposite corners of a 6.2 µm field: at 5 nm and
    tiles of at most 320 pixels the field is 4 x 4 tiles of about 1.55 µm, of which two hold localizations."""
    from plexloc.post.synthetic import blinking_table, structure_points

    rng = np.random.default_rng(seed)
    mol = structure_points("uniform", 3000, fov_nm=1400.0, rng=rng)
    mol = np.vstack([mol[:1500] + 100.0, mol[1500:] + 4900.0])
    return blinking_table(mol, n_frames=500, rng=rng, precision_nm=10.0, events_per_molecule=4, mean_on_frames=1.0)


def test_frc_tiles_pooled_are_those_with_localizations_and_empty_ones_do_not_grow_the_pixel(tmp_path, capsys):
    """Empty tiles were skipped but counted: 'plexloc frc' printed '16 tiles of 314 pixels pooled' for the 2 it
    pooled, and a field whose localizations lie in 2 tiles had its pixel grown past max_tiles 4 (to 7.8 nm, said
    'needs more than 4 tiles') though 2 tiles at 5 nm cost less than the 4 it allows."""
    from plexloc.render.frc import expected_frc_resolution, frc

    t = _two_far_regions()
    tiled = frc(t, px_size_nm=5.0, max_image_px=320)
    assert tiled.info["tiles"] == 2 and tiled.info["image_px"] <= 320 and tiled.px_size_nm == 5.0
    limited = frc(t, px_size_nm=5.0, max_image_px=320, max_tiles=4)
    assert limited.px_size_nm == 5.0 and "px_grown" not in limited.info and limited.info["tiles"] == 2
    assert limited.resolution_nm == tiled.resolution_nm
    # the two regions' tiles pooled: the value the molecules' precision and repeats give (40.2 nm; 39.8 pooled)
    assert tiled.resolution_nm == pytest.approx(expected_frc_resolution(10.0, len(t) / 3000 / 2, px_size_nm=5.0),
                                                rel=0.05)
    one = frc(t, px_size_nm=5.0, max_image_px=320, max_tiles=1)  # more tiles held than allowed: grown, and said
    assert one.px_size_nm > 5.0 and "lie in 2 tiles of 320 pixels, more than 1" in one.info["px_grown"]


def test_frc_extent_that_leaves_too_few_localizations_names_the_region(tmp_path, capsys):
    """plexloc frc --extent over a corner with 0 localizations said 'FRC needs at least 100 localizations, the table
    has 0' of a table of thousands: the error names --extent, its values and the table's count."""
    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    t = _two_far_regions()
    path = tmp_path / "locs.csv"
    write_locs(t, path)
    assert main(["frc", str(path), "--extent", "2000", "4000", "2000", "4000"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"--extent 2000 4000 2000 4000 holds 0 of the table's {len(t)} localizations" in err


# --- fiducials' cross scale (852c9a4): exact tracks ------------------------------------------------------------------

def test_fiducial_drift_of_exact_markers_keeps_the_scatter_floor():
    """Markers localized exactly (a simulation at precision 0): their differences between frames are all 0, so the
    cross scale was 0 and scaled every scatter to 0 past its floor: 1 / s² divided by zero (a RuntimeWarning, an
    error under warnings as errors; a NaN drift otherwise). Before the cross scale the floor held and the drift was
    found to 0.03 nm."""
    from test_fiducials46 import _table

    from plexloc.post.drift import drift_error_rms, estimate_drift

    t, truth = _table(3, precision_nm=0.0)
    res = estimate_drift(t, engine="fiducials")  # (warnings are errors)
    assert np.isfinite(res.drift_nm).all()
    assert drift_error_rms(res.drift_nm, truth) < 0.5
