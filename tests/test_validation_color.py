"""The colour part of a multi-colour model's validation (train.validation.ColorSet): samples of the configuration's
own dyes, fitted, matched and assigned colours as plexloc color does; its scores in the log, the curves and the
"not ready" notes of plexloc train and plexloc fit."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from plexloc.cli.main import main
from plexloc.config import TrainConfig, save_config
from plexloc.nets.localizer import Localizer, LocalizerSpec, Prediction
from plexloc.simulation import Simulator
from plexloc.table import LocTable
from plexloc.train import Trainer
from plexloc.train.log_columns import log_column_doc
from plexloc.train.trainer import format_row, training_simulation, validation_set
from plexloc.train.validation import (
    COLOR_THRESHOLD,
    POOR_COLOR_ACCURACY,
    ColorSet,
    color_samples,
    color_scores,
    has_colors,
    poor_colors,
)

PX = 100.0
RATIOS = [[0.8, 0.2], [0.3, 0.7]]
COLOR_KEYS = ("color_jaccard", "color_accuracy", "color_rejection", "color_fraction_rmse", "photon_zscore_std_ch0",
              "photon_zscore_std_ch1", "color_recall_0", "color_recall_1")


def dual_color_config(**over) -> TrainConfig:
    """Two dyes through a dichroic (examples/dual_color.yaml's ratios) on 16-px frames, a tiny network."""
    cam = {"kind": "emccd"}
    d = {
        "px_size_nm": PX,
        "frame_size": [16, 16],
        "photon_model": {"kind": "ratiometric", "ratios": RATIOS, "color_fractions": [0.5, 0.5]},
        "channels": [
            {"psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": cam},
            {"psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": cam,
             "transform": [[1.0, 0.0, 40.0], [0.0, 1.0, 25.0], [0.0, 0.0, 1.0]]},
        ],
        "emitters": {"density_per_um2": 1.0, "photons_range": [2000.0, 8000.0]},
        "background": {"range": [20.0, 50.0]},
        "model": {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1},
        # float32: an untrained 4-feature network's bfloat16 outputs tie on neighbouring pixels, and the colour
        # test below needs its detections
        "training": {"batch_size": 4, "validate_every": 2, "validation_samples": 16, "warmup_steps": 1, "amp": False},
    }
    d.update(over)
    return TrainConfig.model_validate(d)


def color_set(cfg: TrainConfig, n: int = 16) -> ColorSet:
    return ColorSet.simulate(Simulator(cfg.simulation()), n_samples=n, batch_size=8, window=3,
                             min_target_photons=100.0, seed=5)


def noisy_table(truth: LocTable, *, swap: bool = False, seed: int = 0) -> LocTable:
    """The truth as a network's table would give it: per-channel photons with shot and background noise, and their
    sigmas; ``swap``: channel 0's photons reported as channel 1's and the reverse."""
    rng = np.random.default_rng(seed)
    n = np.stack([truth["photons_ch0"], truth["photons_ch1"]], axis=1).astype(float)
    s = np.sqrt(n + 4 * np.pi * 35.0)
    got = n + rng.normal(size=n.shape) * s
    if swap:
        got, s = got[:, ::-1], s[:, ::-1]
    return LocTable({"frame": truth["frame"], "x_nm": truth["x_nm"] + rng.normal(0, 10, len(truth)),
                     "y_nm": truth["y_nm"] + rng.normal(0, 10, len(truth)), "z_nm": truth["z_nm"],
                     "photons": got.sum(axis=1), "photons_ch0": got[:, 0], "photons_ch1": got[:, 1],
                     "sigma_photons_ch0": s[:, 0], "sigma_photons_ch1": s[:, 1]})


def test_color_scores_read_the_per_channel_photons():
    """True photons with their noise are assigned their dyes; the same photons with the channels swapped score a
    low accuracy (dye 0's 0.8 in channel 0 reads 0.2, nearer dye 1's 0.3), and their fraction error shows it."""
    cs = color_set(dual_color_config(frame_size=[32, 32]), 24)
    truth = cs.truth
    assert len(truth) > 200 and set(np.unique(truth["color"])) == {0, 1}
    frac = truth["photons_ch0"] / (truth["photons_ch0"] + truth["photons_ch1"])
    assert np.allclose(frac, np.where(truth["color"] == 0, 0.8, 0.3), atol=1e-4)  # the dyes' ratios, not independent
    good = color_scores(truth, noisy_table(truth), RATIOS, dim=2)
    assert good["color_jaccard"] == pytest.approx(100.0)
    assert good["color_accuracy"] > 95.0 and good["color_rejection"] < 4.0
    assert good["color_fraction_rmse"] < 0.05
    assert good["photon_zscore_std_ch0"] == pytest.approx(1.0, abs=0.15)  # the sigmas of the noise: calibrated
    swapped = color_scores(truth, noisy_table(truth, swap=True), RATIOS, dim=2)
    assert swapped["color_jaccard"] == pytest.approx(100.0)  # detection unchanged
    assert swapped["color_accuracy"] < 5.0
    assert swapped["color_fraction_rmse"] > 0.4
    assert swapped["photon_zscore_std_ch0"] > 5.0
    for scores in (good, swapped):
        assert set(scores) == set(COLOR_KEYS)
        assert scores["color_accuracy"] + scores["color_rejection"] <= 100.0 + 1e-9
    assert good["color_recall_0"] == good["color_recall_1"] == 100.0
    # a network that misses one dye (dim in the channel it reads) keeps a perfect accuracy of what it matched: the
    # dye's recall says it
    one_dye = noisy_table(truth)[np.asarray(truth["color"]) == 0]
    missed = color_scores(truth, one_dye, RATIOS, dim=2)
    assert missed["color_accuracy"] > 95.0 and missed["color_recall_0"] == 100.0 and missed["color_recall_1"] == 0.0
    # colours are those of plexloc color: a stricter threshold rejects more and never assigns more right
    strict = color_scores(truth, noisy_table(truth), RATIOS, dim=2, threshold=0.999999)
    assert strict["color_rejection"] > good["color_rejection"] and strict["color_accuracy"] <= good["color_accuracy"]


class Oracle(Localizer):
    """A 'network' that outputs the truth of the batches it is given (per-channel photons with shot-noise-like
    noise and their sigmas): raw output = the prediction itself, decode passes it through. Unknown inputs (the
    channel-use probe) give nothing. ``swap``: it reports channel 0's photons as channel 1's and the reverse."""

    def __init__(self, spec: LocalizerSpec, sim: Simulator, batches, *, swap: bool = False):
        super().__init__(spec)
        from plexloc.train.validation import batch_photons

        self.known = [(batch_photons(sim, b.frames), b) for b in batches]
        self.swap = swap
        self.rng = np.random.default_rng(0)

    def forward(self, photons, aux=None):
        s = self.spec
        b_n, _, _, h, w = photons.shape
        p = s.n_photons
        out = torch.zeros(b_n, 1 + p + 3 + 3 + p + s.n_channels, h, w)
        out[:, 4 + p:7 + p] = 0.1  # sigma x, y (pixels), z (nm)
        out[:, 7 + p:7 + 2 * p] = 10.0
        out[:, 7 + 2 * p:] = 30.0
        batch = next((b for x, b in self.known if x.shape == photons.shape and torch.equal(x, photons)), None)
        if batch is None:
            return out
        si, ki = torch.nonzero(batch.target_mask, as_tuple=True)
        xyz = batch.target_xyz_nm[si, ki].double()
        col = (xyz[:, 0] / PX).floor().long().clamp(0, w - 1)
        row = (xyz[:, 1] / PX).floor().long().clamp(0, h - 1)
        n = batch.target_photons[si, ki].double().numpy()
        sig = np.sqrt(n + 4 * np.pi * 35.0)
        got = n + self.rng.normal(size=n.shape) * sig
        if self.swap:
            got, sig = got[:, ::-1].copy(), sig[:, ::-1].copy()
        out[si, 0, row, col] = 1.0
        out[si, 1:1 + p, row, col] = torch.from_numpy(got).float()
        out[si, 1 + p, row, col] = (xyz[:, 0] / PX - col - 0.5).float()
        out[si, 2 + p, row, col] = (xyz[:, 1] / PX - row - 0.5).float()
        out[si, 3 + p, row, col] = xyz[:, 2].float()
        out[si, 7 + p:7 + 2 * p, row, col] = torch.from_numpy(sig).float()
        return out

    def decode(self, raw):
        p, c = self.spec.n_photons, self.spec.n_channels
        prob, phot, off, sig, bg = torch.split(raw.float(), [1, p, 3, 3 + p, c], dim=1)
        logit = torch.logit(prob.clamp(1e-6, 1 - 1e-6))
        return Prediction(prob=prob, photons=phot, offset=off, sigma=sig, bg=bg, logit=logit)


def test_a_network_with_swapped_channel_photons_scores_a_low_colour_accuracy():
    """Through the whole path (the network's fit of the colour set, to_table, eq. 3, matching): a network that
    reports each emitter's true per-channel photons is given its colours; the same network with the two photon
    outputs swapped is given the wrong ones."""
    cfg = dual_color_config(frame_size=[32, 32])
    cs = color_set(cfg, 24)
    spec = LocalizerSpec(n_channels=2, n_photons=2, n_aux=4, features=4, depth=1, union_features=4, union_depth=1,
                         px_size_nm=(PX, PX))
    right = cs.score(Oracle(spec, cs.sim, cs.batches), threshold=0.5)
    wrong = cs.score(Oracle(spec, cs.sim, cs.batches, swap=True), threshold=0.5)
    assert right["color_jaccard"] > 85.0 and wrong["color_jaccard"] == pytest.approx(right["color_jaccard"])
    assert right["color_accuracy"] > 90.0
    assert wrong["color_accuracy"] < 10.0
    assert poor_colors(right) is None and "colour accuracy" in poor_colors(wrong)
    with pytest.raises(ValueError, match="one photon output per channel"):
        cs.score(Localizer(LocalizerSpec(n_channels=2, n_photons=1, n_aux=4, features=4, depth=1, union_features=4,
                                         union_depth=1)))


def test_the_validation_of_a_multicolour_run_carries_colour_scores(tmp_path):
    """A ratiometric run's validation set has a colour part from the configuration's own dyes (its ratios, not the
    training's independent photons), the same samples for a resumed run; every row of log.csv carries the colour
    scores (percentages in [0, 100]), each documented, and curves.png draws them."""
    torch.manual_seed(0)
    cfg = dual_color_config()
    tr = Trainer(cfg, tmp_path / "run")
    assert tr.sim.config.photon_model.kind == "independent"  # training photons: independent per channel
    cs = tr.validation.color
    assert cs is not None and cs.ratios == RATIOS and len(cs.batches[0].frames) == color_samples(16) == 2
    again = validation_set(cfg, Simulator(training_simulation(cfg)), tr.model.spec.window).color
    for a, b in zip(cs.batches, again.batches):  # a resumed run (or recalibrate_model) scores the same samples
        assert torch.equal(a.frames, b.frames)
    assert np.array_equal(cs.truth["x_nm"], again.truth["x_nm"])
    with torch.no_grad():  # an untrained network detects nothing: a probability bias of 0 makes it detect
        tr.evaluated.head_prob[-1].bias.fill_(0.0)  # the network validation scores (the weights' average)
    row = tr.validate(None, 0.0)
    for k in COLOR_KEYS:
        assert k in row and np.isfinite(row[k]), k
    for k in ("color_jaccard", "color_accuracy", "color_rejection"):
        assert 0.0 <= row[k] <= 100.0
    assert row["color_accuracy"] + row["color_rejection"] <= 100.0 + 1e-9
    with (tmp_path / "run" / "log.csv").open() as fh:
        names = next(csv.reader(fh))
    assert set(COLOR_KEYS) <= set(names)
    undocumented = [n for n in names if log_column_doc(n) is None]
    assert not undocumented
    assert "channel 1" in log_column_doc("photon_zscore_std_ch1")[1] and log_column_doc("photon_zscore_std_x") is None
    assert "dye 1" in log_column_doc("color_recall_1")[1] and log_column_doc("color_recall_x") is None
    assert "% right" in format_row(row) and "% rejected" in format_row(row)
    from PIL import Image

    with Image.open(tmp_path / "run" / "curves.png") as im:
        w4 = im.size[0]
    assert w4 > 17 * 90 * 0.95  # the fourth (colour) panel: 17 inches at 90 dpi, 13 without it


@pytest.mark.parametrize("photon_model", [None, {"kind": "linked"}, {"kind": "independent"},
                                          {"kind": "ratiometric", "ratios": [[0.5, 0.5]]}])
def test_no_colour_part_without_two_dyes(tmp_path, photon_model):
    """One channel, linked (biplane) channels, independent photons without dyes, one dye: nothing to assign, no
    colour part and no colour columns."""
    if photon_model is None:
        d = dual_color_config().model_dump(mode="json", exclude={"channels", "photon_model"})
        cfg = TrainConfig.model_validate({**d, "psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": {"kind": "emccd"}})
        assert cfg.n_channels == 1
    else:
        cfg = dual_color_config(photon_model=photon_model)
    assert not has_colors(cfg)
    sim = Simulator(training_simulation(cfg))
    val = validation_set(cfg, sim, 3)
    assert val.color is None
    spec = LocalizerSpec(n_channels=cfg.n_channels, n_photons=1 if photon_model in (None, {"kind": "linked"}) else 2,
                         n_aux=0 if cfg.n_channels == 1 else 4, features=4, depth=1, union_features=4, union_depth=1,
                         px_size_nm=(PX, PX))
    scores = val.score(Localizer(spec), sim)
    assert not [k for k in scores if k.startswith("color_") or k.startswith("photon_zscore")]
    with pytest.raises(ValueError, match="ratiometric simulation with two or more dyes"):
        ColorSet.simulate(sim, n_samples=1, batch_size=1, window=3, min_target_photons=0.0, seed=0)


def test_poor_colours_are_named_with_their_numbers():
    assert poor_colors({"jaccard": 80.0}) is None  # no colour part
    assert poor_colors({"color_accuracy": 95.0, "color_rejection": 3.0}) is None
    low = poor_colors({"color_accuracy": 62.5, "color_rejection": 12.0})
    assert "62.5 %" in low and "12.0 % rejected" in low and "25.5 % given the wrong colour" in low
    assert f"accuracy >= {POOR_COLOR_ACCURACY:g} %" in low
    assert "rejected" in poor_colors({"color_accuracy": POOR_COLOR_ACCURACY + 1, "color_rejection": 40.0})
    assert "not measured" in poor_colors({"color_accuracy": float("nan"), "color_rejection": float("nan")})
    # the matched localizations' colours right, and one dye hardly detected (a network reading one channel)
    one = poor_colors({"color_accuracy": 98.0, "color_rejection": 1.4, "color_recall_0": 75.0, "color_recall_1": 0.9})
    assert "dye 1" in one and "0.9 %" in one and "75.0 % for dye 0" in one and "accuracy 98.0" not in one
    assert poor_colors({"color_accuracy": 98.0, "color_rejection": 1.4, "color_recall_0": 75.0,
                        "color_recall_1": 60.0}) is None
    assert COLOR_THRESHOLD == 0.9  # plexloc color's default


def test_train_and_fit_say_a_model_with_poor_colours_is_not_ready(tmp_path, capsys):
    """plexloc train warns at the end of a multi-colour run whose colours are poor (here not measured: two steps
    detect nothing); plexloc fit says it from the model's saved validation, also where its JI is fine."""
    cfg_path = tmp_path / "dual.yaml"
    save_config(dual_color_config(), cfg_path)
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--steps", "2", "--device", "cpu"]) == 0
    got = capsys.readouterr()
    assert "last validation: JI" in got.out and "% rejected" in got.out
    assert "not ready to assign colours" in got.err and "train longer" in got.err
    # a model whose detection validated well and whose colours did not: only the colour note, naming the numbers
    from plexloc.cli.fit import _model_note
    from plexloc.nets.io import load_model, save_model

    net, net_cfg, meta = load_model(tmp_path / "run")
    val = {**meta["validation"], "jaccard": 85.0, "color_accuracy": 48.0, "color_rejection": 41.0}
    save_model(tmp_path / "colour.pt", net, net_cfg, meta={**meta, "step": 20000, "validation": val})
    note = _model_note(tmp_path / "colour.pt", 100)
    assert note is not None and "48.0 %" in note and "41.0 % rejected" in note and "train it longer" in note
    val = {**val, "color_accuracy": 96.0, "color_rejection": 2.0}
    save_model(tmp_path / "good.pt", net, net_cfg, meta={**meta, "step": 20000, "validation": val})
    assert _model_note(tmp_path / "good.pt", 100) is None
