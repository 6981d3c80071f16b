"""A 3D network fit counts its rows at the ends of the model's z range and warns where emitters lie beyond it.

The network's z is ``z_center + z_scale * tanh(.)``: emitters beyond the training ``emitters.z_range_nm`` cannot be
placed where they are. Models here are untrained Localizers whose z head is fixed (zero weights, a bias) so that
every row's z is known: at the band's end (beyond the range), or at the centre (inside it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plexloc.config.models import EMCCDConfig
from plexloc.nets.localizer import Localizer, LocalizerSpec


def _model(z_bias: float, *, z_scale_nm: float = 600.0) -> Localizer:
    """A 3D Localizer (+-500 nm range: band +-600 nm) that detects spots everywhere and puts every row's z at
    ``z_scale * tanh(z_bias)``."""
    torch.manual_seed(0)
    spec = LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, is_3d=True, z_center_nm=0.0,
                         z_scale_nm=z_scale_nm, input_offset=[50.0], input_scale=[20.0])
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)
        net.head_offset[-1].weight[2].zero_()
        net.head_offset[-1].bias[2] = z_bias
    return net.eval()


def _movie(n_frames: int = 6, shape=(20, 24), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(300.0, 30.0, (n_frames, *shape)).astype(np.float32)


def test_rows_beyond_the_range_are_counted_and_the_warning_names_the_range():
    from plexloc.infer import fit_movie
    from plexloc.infer.fit import Z_EDGE_MARGIN_NM

    stats: dict = {}
    table = fit_movie(_movie(), _model(3.0), camera=EMCCDConfig(), stats=stats, calibrate_sigma=False)
    z = np.asarray(table["z_nm"])
    assert len(table) > 50 and np.allclose(z, 600.0 * np.tanh(3.0), atol=0.5)  # 597 nm: beyond +500
    rep = stats["z_edge"]
    assert rep.z_range_nm == (-500.0, 500.0) and rep.band_nm == (-600.0, 600.0)  # from the spec: 600 / 1.2
    assert rep.rows == rep.at_edge == rep.beyond == len(table) and rep.share == 1.0
    assert rep.margin_nm == Z_EDGE_MARGIN_NM == 20.0
    assert rep.warning is not None
    assert "-500..500 nm" in rep.warning and "emitters.z_range_nm" in rep.warning and f"{len(table)} of" in rep.warning


def test_rows_inside_the_range_give_no_warning():
    from plexloc.infer import fit_movie

    stats: dict = {}
    table = fit_movie(_movie(), _model(0.0), camera=EMCCDConfig(), stats=stats, calibrate_sigma=False)
    assert len(table) > 50 and np.allclose(np.asarray(table["z_nm"]), 0.0, atol=1e-3)
    rep = stats["z_edge"]
    assert rep.rows == len(table) and rep.at_edge == 0 and rep.beyond == 0 and rep.warning is None


def test_the_edge_is_the_margin_inside_the_ends_and_the_alarm_needs_a_share_well_above_in_range_data():
    from plexloc.infer.fit import Z_EDGE_IN_RANGE_SHARE, count_z_edge, z_edge_report

    z = np.array([-700.0, -500.5, -481.0, -479.0, 0.0, 479.9, 480.0, 499.0, 500.0, 520.0])
    assert count_z_edge(z, (-500.0, 500.0)) == (7, 3)  # -700, -500.5, -481, 480, 499, 500, 520; 3 beyond
    assert count_z_edge(z, (-500.0, 500.0), margin_nm=0.0) == (4, 3)  # the ends themselves count
    band = (-600.0, 600.0)
    # 0.9 % at the edge: 3 times the in-range 0.3 % is the limit, not above it; 1 % is
    assert z_edge_report(10_000, 90, 0, (-500, 500), band).warning is None
    assert z_edge_report(10_000, 100, 0, (-500, 500), band).warning is not None
    # few rows: a share of 100 % out of 19 is no alarm
    assert z_edge_report(19, 19, 19, (-500, 500), band).warning is None
    assert z_edge_report(20, 20, 20, (-500, 500), band).warning is not None
    # a model whose validation measured its own in-range share: that share is the baseline
    rep = z_edge_report(10_000, 100, 0, (-500, 500), band,
                        meta={"validation": {"z_edge_share": 0.01, "z_edge_rows": 5000.0}})
    assert rep.baseline_share == 0.01 and rep.warning is None and "validation set, 5000 rows" in rep.baseline_source
    # a validation of few rows is not trusted, and a tiny share is floored (a few rows at the edge are noise)
    few = {"validation": {"z_edge_share": 0.01, "z_edge_rows": 500.0}}
    assert z_edge_report(10_000, 100, 0, (-500, 500), band, meta=few).baseline_share == Z_EDGE_IN_RANGE_SHARE
    tiny = {"validation": {"z_edge_share": 0.0, "z_edge_rows": 8000.0}}
    assert z_edge_report(10_000, 29, 0, (-500, 500), band, meta=tiny).warning is None  # 0.29 % < 3 x 0.1 %
    assert z_edge_report(10_000, 31, 0, (-500, 500), band, meta=tiny).warning is not None
    assert z_edge_report(10_000, 100, 0, (-500, 500), band).baseline_share == Z_EDGE_IN_RANGE_SHARE


def test_a_2d_model_has_no_z_edge_report():
    from plexloc.infer import fit_movie

    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0],
                                  input_scale=[20.0])).eval()
    stats: dict = {}
    fit_movie(_movie(n_frames=3), net, camera=EMCCDConfig(), stats=stats)
    assert "z_edge" not in stats


@pytest.fixture
def saved_models(tmp_path):
    """Model files with a training configuration (+-300 nm: the range named is the configuration's, not the
    spec's) and a movie written as a TIFF."""
    from plexloc.io.tiff import write_movie
    from plexloc.nets.io import save_model

    from plexloc.config import TrainConfig

    cfg = TrainConfig.model_validate({
        "px_size_nm": 100.0, "frame_size": [16, 16], "camera": {"kind": "emccd"},
        "psf": {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0},
        "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 5000.0], "z_range_nm": [-300.0, 300.0]},
        "background": {"range": [20.0, 50.0]}}).model_dump(mode="json")
    save_model(tmp_path / "edge.pt", _model(3.0, z_scale_nm=360.0), cfg)  # every z at 358 nm, beyond +300
    save_model(tmp_path / "centre.pt", _model(0.0, z_scale_nm=360.0), cfg)
    write_movie(tmp_path / "m.tif", np.round(_movie(n_frames=8)).astype(np.uint16))
    return tmp_path


@pytest.mark.filterwarnings("ignore::UserWarning")  # the untrained network's other findings (camera, PSF, domain)
def test_plexloc_fit_prints_the_count_and_the_warning(saved_models, capsys):
    from plexloc.cli.main import main

    d = saved_models
    assert main(["fit", str(d / "m.tif"), "--model", str(d / "edge.pt"), "--out", str(d / "e.csv"),
                 "--device", "cpu", "--raw-sigma"]) == 0
    err = capsys.readouterr().err
    n = len(np.genfromtxt(d / "e.csv", delimiter=",", names=True))
    assert n > 50
    assert f"{n} of {n} rows (100.00 %) have z within 20 nm of an end of the model's z range -300..300 nm" in err
    assert "warning:" in err and "the model's z range, -300..300 nm (its training emitters.z_range_nm)" in err
    assert "covers the sample's depth" in err
    assert main(["fit", str(d / "m.tif"), "--model", str(d / "centre.pt"), "--out", str(d / "c.csv"),
                 "--device", "cpu", "--raw-sigma"]) == 0
    err = capsys.readouterr().err
    assert "z range" not in err and "emitters.z_range_nm" not in err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_process_summary_holds_the_count_and_the_note(saved_models):
    from plexloc.workflow import Acquisition, ProcessOptions, _fit

    d = saved_models
    for name, want_warning in (("edge", True), ("centre", False)):
        folder = d / name
        folder.mkdir()
        fit = _fit(Acquisition(name, (d / "m.tif",)), folder, ProcessOptions(model=d / f"{name}.pt", device="cpu"),
                   progress=False)
        z = json.loads(json.dumps(fit["z_edge"]))  # JSON-safe, as summary.json writes it
        assert z["rows"] == fit["rows"] > 50 and z["z_range_nm"] == [-300.0, 300.0]
        assert z["at_edge"] == (fit["rows"] if want_warning else 0)
        notes = [n for n in fit["notes"] if "emitters.z_range_nm" in n]
        assert len(notes) == int(want_warning) and (z["warning"] is not None) == want_warning


def test_the_validation_records_the_models_own_in_range_share(tmp_path, monkeypatch):
    """Training's validation counts its 3D predictions at the ends of the z range (z_edge_share, z_edge_rows in the
    model's meta["validation"]): plexloc fit's baseline for that model instead of one measured on another."""
    from conftest import TINY_TRAIN

    import plexloc.train.validation as validation
    from plexloc.config import TrainConfig
    from plexloc.table import LocTable
    from plexloc.train import Trainer

    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["psf"] = {"kind": "astigmatic"}
    d["emitters"]["z_range_nm"] = [-500.0, 500.0]
    tr = Trainer(TrainConfig.model_validate(d), tmp_path / "run")
    assert tr.model.spec.is_3d
    truth = tr.validation.truth

    def the_truth_with_z_at_the_end(ex, frames, model):  # the batch's truth; its first row's z 495 nm (at the edge)
        sel = np.isin(np.asarray(truth["frame"]), frames)
        cols = {k: np.asarray(truth[k], float)[sel].copy() for k in ("x_nm", "y_nm", "z_nm", "photons")}
        cols["z_nm"] = np.clip(cols["z_nm"], -470.0, 470.0)
        if len(cols["z_nm"]):
            cols["z_nm"][0] = 495.0
        return LocTable({"frame": np.asarray(truth["frame"])[sel], **cols})

    monkeypatch.setattr(validation, "to_table", the_truth_with_z_at_the_end)
    s = tr.validation.score(tr.evaluated, tr.sim)
    starts = np.cumsum([0] + [b.frames.shape[0] for b in tr.validation.batches])
    frames = np.asarray(truth["frame"])
    n_batches = sum(1 for a, b in zip(starts[:-1], starts[1:]) if ((frames >= a) & (frames < b)).any())
    assert n_batches >= 2
    assert s["z_edge_rows"] == len(truth) and s["z_edge_share"] * len(truth) == pytest.approx(n_batches)
