"""Shared fixtures and the ``slow`` / ``gpu`` marker policy of the test suite.

- ``slow`` tests run only with ``PLEXLOC_SLOW=1`` in the environment;
- ``gpu`` tests run only where ``torch.cuda.is_available()``.

Tests that run on every device take the ``device`` fixture (``cpu``, plus ``cuda`` under the ``gpu``
marker). PSFs are built per test by ``make_psf(kind)`` (modules are mutable: ``.to``, ``.double``);
only the spline's source volume, a read-only array, is shared across the session.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from plexloc.psf import PSFS, AstigmaticPSF, GaussianPSF, SplinePSF

PX_NM = 100.0
#: the spline's source: 41 z slices every 25 nm (z = -500 ... 500 nm) of a 27 x 27 px astigmatic patch
SPLINE_DZ_NM = 25.0
SPLINE_NZ = 41
SPLINE_ROI = 27

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs ``-n``) each worker gets one torch thread, and its subprocesses one
    OpenMP thread: two workers of two threads each on two cores spin and slow each other down, and the CI bar's
    training (one thread, a fixed time) needs its core."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    run_slow = os.environ.get("PLEXLOC_SLOW") == "1"
    has_cuda = torch.cuda.is_available()
    skip_slow = pytest.mark.skip(reason="slow: set PLEXLOC_SLOW=1 to run")
    skip_gpu = pytest.mark.skip(reason="gpu: no CUDA device")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
    if run_slow:  # the slow ones first, ``slow(first=True)`` (the CI bar's minutes) before them: under pytest-xdist
        # they then overlap the other files instead of running alone at the end (stable: the rest keep their order)
        def rank(item) -> int:
            mark = item.get_closest_marker("slow")
            return 2 if mark is None else 0 if mark.kwargs.get("first") else 1

        items.sort(key=rank)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, the earlier count restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def astigmatic_volume(psf: AstigmaticPSF | None = None) -> np.ndarray:
    """(41, 27, 27) pixel-integrated astigmatic PSF, emitter at the centre of pixel (13, 13), photons 1."""
    psf = psf if psf is not None else AstigmaticPSF(roi_px=SPLINE_ROI)
    centre = (SPLINE_ROI // 2 + 0.5) * PX_NM
    z = (torch.arange(SPLINE_NZ, dtype=torch.float64) - SPLINE_NZ // 2) * SPLINE_DZ_NM
    xy = torch.full((SPLINE_NZ,), centre, dtype=torch.float64)
    patch, row0, col0 = psf.patches(xy, xy, z, torch.ones_like(z))
    assert int(row0.abs().max()) == 0 and int(col0.abs().max()) == 0  # the patch is the frame's corner
    return patch.numpy()


@pytest.fixture(scope="session")
def spline_volume() -> np.ndarray:
    vol = astigmatic_volume()
    vol.setflags(write=False)
    return vol


@pytest.fixture
def make_psf(spline_volume):
    """``make_psf(kind)``: a fresh PSF of the registry (default parameters, 100 nm pixels)."""

    def make(kind: str):
        if kind == "gaussian":
            return GaussianPSF(sigma_nm=130.0, px_size_nm=(PX_NM, PX_NM))
        if kind == "astigmatic":
            return AstigmaticPSF(px_size_nm=(PX_NM, PX_NM))
        if kind == "spline":
            return SplinePSF.from_volume(spline_volume, dz_nm=SPLINE_DZ_NM, px_size_nm=(PX_NM, PX_NM))
        raise KeyError(f"no PSF kind {kind!r} in the test factory; registry: {sorted(PSFS)}")

    return make


def make_table(frame, x, y=None, z=None, **extra):
    """A LocTable from short lists: frame broadcast, y/z default 0, photons 1000 (for hand-made metric cases)."""
    from plexloc.table import LocTable

    x = np.asarray(x, dtype=float)
    n = x.size
    frame = np.broadcast_to(np.asarray(frame), (n,))
    y = np.zeros(n) if y is None else np.asarray(y, dtype=float)
    z = np.zeros(n) if z is None else np.asarray(z, dtype=float)
    return LocTable({"frame": frame, "x_nm": x, "y_nm": y, "z_nm": z, "photons": np.full(n, 1e3), **extra})


# The smallest training configuration (2D Gaussian, EMCCD, 16x16 ROI, a 4-feature network) the training tests share.
def poison_batch(trainer, at: int = 2) -> None:
    """Make the ``at``-th batch a trainer draws all NaN frames (a broken simulation, an overflow): its step must be
    skipped and counted (``skipped_steps``)."""
    real, calls = trainer.generator, {"n": 0}

    def poisoned():
        batch = real()
        calls["n"] += 1
        if calls["n"] == at:
            batch.frames[...] = float("nan")
        return batch

    trainer.generator = poisoned


TINY_TRAIN = {
    "px_size_nm": 100.0,
    "frame_size": [16, 16],
    "psf": {"kind": "gaussian", "sigma_nm": 130.0},
    "camera": {"kind": "emccd"},
    "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 5000.0]},
    "background": {"range": [20.0, 50.0]},
    "model": {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1},
    "training": {"batch_size": 4, "validate_every": 3, "validation_samples": 8, "warmup_steps": 2},
}


def record_rates(trainer) -> list[float]:
    """The learning rate each later ``train_step`` of ``trainer`` uses, in order (a spy on its ``train_step``)."""
    rates: list[float] = []
    step = trainer.train_step

    def spy():
        out = step()
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        return out

    trainer.train_step = spy
    return rates


def full_chip_camera(folder, shape=(40, 36), seed: int = 0):
    """A camera YAML naming sCMOS maps of a ``shape`` chip (offset ~100 ADU, gain ~0.5 e-/ADU with a 5 % spread,
    read variance 1-4): ``folder / "cam.yaml"`` and its three .npy maps, as ``plexloc calibrate-camera`` writes them."""
    rng = np.random.default_rng(seed)
    np.save(folder / "off.npy", (100 + rng.normal(0, 5, shape)).astype(np.float32))
    np.save(folder / "gain.npy", (0.5 * (1 + rng.normal(0, 0.05, shape))).astype(np.float32))
    np.save(folder / "var.npy", rng.uniform(1.0, 4.0, shape).astype(np.float32))
    path = folder / "cam.yaml"
    path.write_text(f"kind: scmos\nqe: 0.8\ne_per_adu: {folder / 'gain.npy'}\nbaseline: {folder / 'off.npy'}\n"
                    f"read_variance: {folder / 'var.npy'}\nspurious_charge: 0\n")
    return path


def astigmatic_spline_h5(path):
    """A spline calibration file ``path`` (PSF.h5) of an astigmatic Gaussian bead volume: 21 slices 50 nm apart (its
    calibrated z range -500 to 500 nm), 15 x 15 px of 100 nm, x and y in focus at z = +-250 nm."""
    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration

    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    sx, sy = 1.2 + 0.004 * (zz - 5) ** 2, 1.2 + 0.004 * (zz + 5) ** 2
    volume = np.exp(-xx**2 / (2 * sx**2) - yy**2 / (2 * sy**2))
    volume /= volume[10].sum()
    ch = ChannelCalibration(volume=volume, x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0, transform_nm=np.eye(3))
    save_calibration(PSFCalibration(channels=[ch], px_size_nm=(100.0, 100.0), dz_nm=50.0), path)
    return path


@pytest.fixture
def estimate_drift_calls(monkeypatch) -> dict:
    """The keyword arguments of the last ``plexloc.post.drift.estimate_drift`` call: a spy that still estimates."""
    import plexloc.post.drift as drift

    seen: dict = {}
    real = drift.estimate_drift

    def spy(table, **kw):
        seen.update(kw)
        return real(table, **kw)

    monkeypatch.setattr(drift, "estimate_drift", spy)
    return seen
