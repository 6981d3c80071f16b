"""Emitters far brighter than training: the network loses them, and only the movie's own spots can tell.

The PSF-shape check's bright isolated spots (their photons from its Gaussian fit) against the training maximum and
against the photons that the network's table gives the same spots (plexloc.infer.domain.bright_spot_checks)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.config import load_config
from plexloc.infer.domain import DomainWarning, bright_spot_checks, check_training_domain
from plexloc.table import LocTable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_psf_check import PSF_2D, PSF_3D, config, run  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _movie(cfg, photons, *, density=0.3, frames=60, seed=0):
    from plexloc.config import SimulationConfig, validate_config
    from plexloc.simulation import Simulator

    c = cfg.model_dump()
    c["emitters"]["photons_range"] = list(photons)
    cfg = validate_config(c, SimulationConfig)
    sim = Simulator(cfg)
    m = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed), density_per_um2=density)
    return cfg, sim.to_photons(m.frames)[0], m.truth


@pytest.mark.parametrize("psf, z", [(PSF_2D, (0.0, 0.0)), (PSF_3D, (-500.0, 500.0))])
def test_the_spots_photons_are_the_emitters(psf, z):
    """Fully-on isolated emitters of exactly 6,000 photons (on for whole frames only where on_time is long): the
    spots' corrected photons sit at 6,000 (QE and the camera taken out), not at the fit's window share."""
    cfg, frames, truth = _movie(config(psf, z=z, size=96), (6000.0, 6000.0), density=0.2)
    r = run(frames, cfg, warn=False)
    assert r.n_spots >= 50
    # emitters on for part of a frame are dimmer: the upper half of the spots is the fully-on ones
    upper = np.sort(r.photons_corrected)[len(r.photons_corrected) // 2:]
    assert np.median(upper) == pytest.approx(6000.0, rel=0.06)
    assert 0.9 < r.photon_scale <= 1.0 + 1e-6


def _report_and_table(spot_photons, table_photons, *, frames=100, px=100.0):
    """A PSF-shape report of spots at known pixels and a table holding ``table_photons`` at each spot (NaN: no row)."""
    from plexloc.psf.check import PSFShapeReport

    n = len(spot_photons)
    pix = np.stack([np.arange(n) % frames, 20 + (np.arange(n) // frames) * 15, np.full(n, 30)], axis=1)
    z = np.zeros(n)
    rep = PSFShapeReport(channel=None, px_size_nm=(px, px), psf_kind="gaussian", frames=frames, window_px=7,
                         candidates=n, n_spots=n, spot_pixel=pix, sigma_x_nm=z + 130, sigma_y_nm=z + 130,
                         photons=np.asarray(spot_photons, float), bg=z + 50, distance=z, z_nm=z, model_z_nm=z[:1],
                         model_sigma_x_nm=z[:1] + 130, model_sigma_y_nm=z[:1] + 130,
                         photons_corrected=np.asarray(spot_photons, float), origin_px=(10, 0))
    keep = np.isfinite(table_photons)
    # the localization 1.2 px off the spot's centre pixel, in the frame's coordinates (window origin row 10)
    t = LocTable({"frame": pix[keep, 0], "x_nm": (pix[keep, 2] + 0.5 + 1.2) * px,
                  "y_nm": (pix[keep, 1] + 10 + 0.5) * px, "z_nm": np.zeros(keep.sum()),
                  "photons": np.asarray(table_photons, float)[keep]})
    return rep, t


def test_lost_bright_emitters_warn_and_found_ones_do_not():
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")  # trained on 500-8000 photons
    rng = np.random.default_rng(0)
    inside = rng.uniform(2000, 8000, 180)
    bright = rng.uniform(16000, 50000, 60)  # 25 % of the spots beyond 1.5x 8000
    spots = np.concatenate([inside, bright])
    # the network found the in-range spots and lost the bright ones (no row, or a few hundred photons)
    lost = np.concatenate([inside * 0.98, np.where(np.arange(60) % 2 == 0, np.nan, 600.0)])
    rep, table = _report_and_table(spots, lost)
    (chk,) = bright_spot_checks([rep], table, cfg)
    assert chk.fraction_above == pytest.approx(0.25) and chk.warning is not None
    assert "60 of the 240 bright isolated spots" in chk.warning and "8000 photons" in chk.warning
    assert "gives them 1 %" in chk.note or "gives them 2 %" in chk.note or "gives them 0 %" in chk.note
    # through check_training_domain: a DomainWarning, and the row in the printed table
    with pytest.warns(DomainWarning, match="emitters this bright are lost"):
        rep2 = check_training_domain(table, cfg, psf_shape=[rep], head_table=table)
    assert "photons (bright spots)" in rep2.format_table()
    # crowded frames (most spots wider than one emitter): not judged, and said so
    rep.far_fraction = 0.7
    (crowded,) = bright_spot_checks([rep], table, cfg)
    assert crowded.warning is None and crowded.note.startswith("not judged: 70 % of the spots")
    rep.far_fraction = 0.1
    # spots wider than one emitter (far from the model's widths) do not count as too bright
    rep.distance = np.where(spots > 12000, 5.0, 0.0)
    assert bright_spot_checks([rep], table, cfg)[0].fraction_above == 0.0
    rep.distance = np.zeros(len(spots))
    # crowded: the too-bright spots are two in-range emitters each, and the network found both (the sum is there)
    pair = rng.uniform(7000, 8000, (60, 2))
    spots_c = np.concatenate([inside, pair.sum(1)])
    rep_c, table_c = _report_and_table(spots_c, np.concatenate([inside, pair[:, 0]]))
    extra = LocTable({"frame": np.asarray(rep_c.spot_pixel)[180:, 0],
                      "x_nm": (np.asarray(rep_c.spot_pixel)[180:, 2] + 0.5 - 1.0) * 100.0,
                      "y_nm": (np.asarray(rep_c.spot_pixel)[180:, 1] + 10 + 0.5) * 100.0,
                      "z_nm": np.zeros(60), "photons": pair[:, 1]})
    (chk_c,) = bright_spot_checks([rep_c], LocTable.concat([table_c, extra]).sort_by_frame(), cfg)
    assert chk_c.fraction_above > 0.05 and chk_c.warning is None and "gives them 100 %" in chk_c.note
    # in range: the row is there, no warning
    rep_i, table_i = _report_and_table(inside, inside)
    (chk_i,) = bright_spot_checks([rep_i], table_i, cfg)
    assert chk_i.fraction_above == 0.0 and chk_i.warning is None
    # a few too-bright spots (under the minimum count) say nothing even when lost
    rep_f, table_f = _report_and_table(np.concatenate([inside, bright[:5]]), np.concatenate([inside, np.full(5, np.nan)]))
    assert bright_spot_checks([rep_f], table_f, cfg)[0].warning is None
    # a localization further than half the spot's window (3.5 px) does not count for it
    rep_o, table_o = _report_and_table(bright, bright)
    far = table_o.with_columns(x_nm=np.asarray(table_o["x_nm"]) + 300.0)
    assert bright_spot_checks([rep_o], table_o, cfg)[0].warning is None
    assert bright_spot_checks([rep_o], far, cfg)[0].warning is not None


def test_no_bright_spot_check_without_one_channel_spots():
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    rep, table = _report_and_table([1000.0, 2000.0], [1000.0, 2000.0])
    assert bright_spot_checks(None, table, cfg) == [] and bright_spot_checks([rep, rep], table, cfg) == []
    assert bright_spot_checks([rep], None, cfg) == []
