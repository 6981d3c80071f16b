"""The spot-shape finding of the training-domain check (plexloc.infer.domain.spot_shape_checks).

Emitters beyond a 3D model's training z range are folded back inside it by the network, silently; their spots, and those
of a PSF that is not the model's, have widths the model's PSF has at no z of its range. Small simulated movies: the
truth's rows inside the field of view stand for the network's (bench/psfwidth43.py measures the thresholds)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from plexloc.config import SimulationConfig, TrainConfig, validate_config
from plexloc.infer.domain import DomainWarning, check_training_domain, spot_shape_checks
from plexloc.psf.check import check_psf_shapes
from plexloc.simulation import Simulator

EMCCD = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
         "read_sigma": 74.4}
PSF_2D = {"kind": "gaussian", "sigma_nm": 130.0}
PSF_3D = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}


def _cfg(psf: dict, z=(0.0, 0.0), *, size: int = 80, cls=TrainConfig):
    return validate_config({
        "px_size_nm": 100.0, "frame_size": [size, size], "psf": psf, "camera": EMCCD,
        "emitters": {"density_per_um2": 0.5, "photons_range": [1000.0, 10000.0], "on_time_frames": 2.0,
                     "z_range_nm": list(z)},
        "background": {"range": [20.0, 100.0]},
    }, cls)


def _movie(psf: dict, *, beyond: float = 0.0, frames: int = 48, density: float = 0.5, seed: int = 0,
           adu: bool = False):
    """Photon frames and the truth rows inside the field of view (``adu``: and the camera's raw frames); for the
    astigmatic PSF each molecule's z is uniform over +-500 nm, or (a share ``beyond``) 200-500 nm beyond either end."""
    three_d = psf["kind"] == "astigmatic"
    sim = Simulator(_cfg(psf, (-1000.0, 1000.0) if three_d else (0.0, 0.0), cls=SimulationConfig))
    g = torch.Generator().manual_seed(seed)
    em = sim.sample_emitters(n_sequences=1, n_frames=frames, generator=g, density_per_um2=density,
                             margin_nm=sim.channel_margin_px() * 100.0)
    if three_d:
        rng = np.random.default_rng(seed)
        uniq, inv = np.unique(em.id.numpy(), return_inverse=True)
        z = rng.uniform(-500.0, 500.0, len(uniq))
        out = rng.random(len(uniq)) < beyond
        z[out] = rng.choice([-1.0, 1.0], int(out.sum())) * rng.uniform(700.0, 1000.0, int(out.sum()))
        em.xyz_nm[:, 2] = torch.as_tensor(z[inv], dtype=em.xyz_nm.dtype)
    bg = sim.sample_background(n_sequences=1, n_frames=frames, generator=g)
    with torch.no_grad():
        raw = sim.camera(sim.expected_photons(em, bg), generator=g)
    out = (sim.to_photons(raw)[0], sim.truth_table(em, bg))
    return (*out, raw[0]) if adu else out


def _check(frames, rows, cfg, **kw):
    (rep,) = check_psf_shapes([frames], cfg, warn=False, max_spots=150)
    (chk,) = spot_shape_checks([rep], rows, [frames], cfg, **kw)
    return chk


def test_emitters_beyond_the_z_range_fire_and_in_range_ones_do_not():
    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D)
    chk = _check(frames, rows, cfg)
    assert chk.kind == "shape" and chk.column == "spot shape"
    n = int(chk.note.split(" spots")[0])
    assert n >= 100 and chk.fraction_above < 0.02 and chk.warning is None
    # the PSF's width sqrt(sigma_x sigma_y) over +-500 nm: 120 nm in focus (pixel-integrated, a little wider) to
    # sqrt(255 * 141) = 190 nm at the ends
    assert 120 < chk.train_lo < 150 and 180 < chk.train_hi < 200
    frames, rows = _movie(PSF_3D, beyond=0.5)
    chk = _check(frames, rows, cfg)
    assert chk.fraction_above > 0.15 and chk.warning is not None
    assert "training range -500..500 nm" in chk.warning and "emitters.z_range_nm" in chk.warning
    assert "px_size_nm" in chk.warning
    # most far spots are wider than the range's ends: said in the message
    at_end = float(chk.warning.split(" % of them lie beyond")[0].rsplit(" ", 1)[-1])
    assert at_end > 80


def test_a_wider_psf_than_the_2d_models_fires_and_the_right_one_does_not():
    cfg = _cfg(PSF_2D)
    frames, rows = _movie(PSF_2D)
    chk = _check(frames, rows, cfg)
    assert chk.fraction_above < 0.02 and chk.warning is None
    assert chk.train_lo == pytest.approx(chk.train_hi) and chk.train_lo == pytest.approx(130.0, rel=0.01)  # one width
    assert chk.median == pytest.approx(chk.train_lo, rel=0.05)
    frames, rows = _movie({"kind": "gaussian", "sigma_nm": 130.0 * 1.3})
    chk = _check(frames, rows, cfg)
    assert chk.fraction_above > 0.5 and chk.warning is not None
    assert chk.median == pytest.approx(1.3 * chk.train_lo, rel=0.08)
    assert "does not have" in chk.warning and "px_size_nm" in chk.warning


def test_neighbours_do_not_read_as_wide_spots():
    """At 1 emitter/um^2 many spots have a neighbour a few pixels away, which widens them as defocus does; rows with
    another row within 0.75 windows are left out, so an in-range movie stays silent (with 4 px it read 21 % far)."""
    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D, density=1.0, seed=1)
    chk = _check(frames, rows, cfg)
    assert chk.warning is None and chk.fraction_above < 0.03
    loose = _check(frames, rows, cfg, isolation=0.35)
    assert loose.fraction_above > 2 * max(chk.fraction_above, 0.01)


def test_too_few_or_imprecise_spots_are_reported_not_judged():
    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D, beyond=0.5, frames=3)
    chk = _check(frames, rows, cfg)
    assert chk.warning is None and math.isnan(chk.fraction_above) and chk.note.startswith("not judged")
    frames, rows = _movie(PSF_3D, beyond=0.5)
    chk = _check(frames, rows, cfg, max_rel_error=0.001)  # no width is measured that precisely
    assert chk.warning is None and "not judged: 0 of" in chk.note
    assert spot_shape_checks(None, rows, [frames], cfg) == []
    assert spot_shape_checks([object()], rows, None, cfg) == []


def test_the_finding_lands_in_the_training_domain_report():
    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D, beyond=0.5)
    reps = check_psf_shapes([frames], cfg, warn=False, max_spots=150)
    with pytest.warns(DomainWarning, match=r"spot shape: .* no z of its training range"):
        report = check_training_domain(rows, cfg, psf_shape=reps, head_table=rows, frames=[frames])
    (chk,) = [c for c in report.checks if c.kind == "shape"]
    assert chk.warning in report.warnings
    table = report.format_table()
    assert "| spot shape (width, nm) | PSF " in table and "outside the PSF's range" in table and "OUTSIDE" in table
    # without the frames (as before): no such check
    report = check_training_domain(rows, cfg, psf_shape=reps, head_table=rows, warn=False)
    assert not [c for c in report.checks if c.kind == "shape"]


def test_frames_of_the_wrong_count_are_named():
    from plexloc.errors import InputError

    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D, frames=4)
    reps = check_psf_shapes([frames], cfg, warn=False, max_spots=50)
    with pytest.raises(InputError, match="frame stack"):
        spot_shape_checks(reps, rows, [frames, frames], cfg)


@pytest.mark.gpu
def test_frames_on_cuda_give_the_same_finding():
    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D, beyond=0.5)
    (rep,) = check_psf_shapes([frames], cfg, warn=False, max_spots=150)
    (cpu,) = spot_shape_checks([rep], rows, [frames], cfg)
    (gpu,) = spot_shape_checks([rep], rows, [frames.cuda()], cfg)
    assert gpu.fraction_above == pytest.approx(cpu.fraction_above) and gpu.note == cpu.note


@pytest.mark.parametrize("beyond, fires", [(0.0, False), (0.5, True)])
def test_a_network_fit_reports_the_spot_shape(monkeypatch, beyond, fires):
    """plexloc fit's stats["domain"] carries the finding, read off the movie's first frames (fit_movie's own) and the
    rows of those frames. The (untrained) network's rows are replaced by the truth's, what a network that finds every
    emitter reports (as bench/psfwidth43.py does): the frames, the PSF-shape report and the rows all go through the
    fit."""
    import plexloc.infer.fit as fit_mod
    from plexloc.infer import fit_movie
    from plexloc.nets import Localizer, LocalizerSpec

    _, truth, adu = _movie(PSF_3D, beyond=beyond, frames=40, seed=2, adu=True)
    tf = np.asarray(truth["frame"])

    def truth_rows(ex, frames, model, saturated=None):
        keep = np.isin(tf, frames)
        cols = {k: np.asarray(truth[k], dtype=np.float64)[keep] for k in ("x_nm", "y_nm", "z_nm", "photons", "bg")}
        return fit_mod.LocTable({"frame": tf[keep], **cols})

    monkeypatch.setattr(fit_mod, "to_table", truth_rows)
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, is_3d=True,
                                  z_scale_nm=600.0)).eval()
    cfg = _cfg(PSF_3D, (-500.0, 500.0)).model_dump(mode="json")
    stats: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PSF-shape check's own finding (the beyond-range movie's spots)
        fit_movie(adu.numpy(), net, config=cfg, stats=stats)
    (chk,) = [c for c in stats["domain"].checks if c.kind == "shape"]
    assert chk.column == "spot shape" and int(chk.note.split(" spots")[0]) >= 50
    assert (chk.warning is not None) == fires and (chk.warning in stats["domain"].warnings) == fires
    assert (chk.fraction_above > 0.1) if fires else (chk.fraction_above < 0.02)


def test_a_report_without_a_model_curve_gives_no_finding_instead_of_failing_the_fit():
    """A PSF report with an empty model curve raised 'frames must be (T, H, W)' (a wrong cause) in fit_movie's report
    step, after every frame was fitted; that channel is now skipped."""
    import dataclasses

    cfg = _cfg(PSF_3D, (-500.0, 500.0))
    frames, rows = _movie(PSF_3D, frames=4)
    (rep,) = check_psf_shapes([frames], cfg, warn=False, max_spots=50)
    empty = dataclasses.replace(rep, model_sigma_x_nm=np.zeros(0), model_sigma_y_nm=np.zeros(0))
    assert spot_shape_checks([empty], rows, [frames], cfg) == []
