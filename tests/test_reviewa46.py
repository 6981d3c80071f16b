"""Session 46's review (review-a): defects found in the day's changes, each pinned by a test that failed before its
fix: the camera package's lazy names (PEP 562) kept what ``import plexloc.camera`` gave before them."""

from __future__ import annotations

import subprocess
import sys


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
