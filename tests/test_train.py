"""Training loop, run folder, resume, and the train/fit command line (tiny models, a few steps)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, poison_batch

from plexloc.io import read_table
from plexloc.cli.main import main
from plexloc.config import TrainConfig, save_config, validate_config
from plexloc.errors import InputError
from plexloc.nets.io import load_model
from plexloc.train import Trainer, make_spec
from plexloc.simulation import Simulator

TINY = TINY_TRAIN


def tiny_config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def test_spec_scales_follow_the_simulation():
    cfg = TrainConfig.model_validate({**TINY, "psf": {"kind": "astigmatic"}, "emitters": {"z_range_nm": [-500.0, 300.0], "photons_range": [100.0, 2000.0]}})
    spec = make_spec(cfg, Simulator(cfg.simulation()))
    assert spec.is_3d and spec.z_center_nm == -100.0 and spec.z_scale_nm == pytest.approx(480.0)
    assert spec.photon_scale == pytest.approx(2400.0) and spec.bg_scale == pytest.approx(75.0)
    assert 15.0 < spec.input_offset[0] < 80.0 and spec.input_scale[0] >= 1.0
    spec2d = make_spec(tiny_config(), Simulator(tiny_config().simulation()))
    assert not spec2d.is_3d


def test_photon_scale_holds_the_largest_target():
    """The photon output's scale covers the largest training target: a linked quad-plane model's total is the flux
    times four throughputs of 1 (it saturated at a quarter of that before), a multi-colour model's largest
    channel count of its widened training ranges."""
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.train.trainer import max_target_photons, training_simulation

    ex = Path(__file__).resolve().parents[1] / "examples"
    quad = load_config(ex / "quad_plane_additive.yaml")
    assert max_target_photons(training_simulation(quad)) == pytest.approx(4 * 1356.0)
    sim = Simulator(training_simulation(quad))
    mov = sim.simulate_movie(20, generator=torch.Generator().manual_seed(0))
    assert float(mov.truth["photons"].max()) <= 1.2 * max_target_photons(sim.config)
    assert float(mov.truth["photons"].max()) > 1356.0 * 2  # the old scale (1.2 x 1356) was below the totals
    dual = load_config(ex / "dual_color_plex.yaml")
    assert max_target_photons(training_simulation(dual)) == pytest.approx(4905.0 * 2, rel=1e-3)  # widened by 2
    bi = load_config(ex / "biplane_plex.yaml")
    assert max_target_photons(training_simulation(bi)) == pytest.approx(bi.emitters.photons_range[1])  # 0.5 + 0.5


def test_training_writes_a_resumable_run(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    tr = Trainer(tiny_config(), run)
    before = [p.detach().clone() for p in tr.model.parameters()]
    last = tr.run(steps=4)
    assert tr.step == 4 and last["step"] == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))
    for name in ("checkpoint.pt", "model.pt", "log.csv", "curves.png", "config.yaml"):
        assert (run / name).stat().st_size > 0, name
    with (run / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [3, 4]  # validation every 3 steps and at the end
    for key in ("loss", "val_loss", "jaccard", "rmse_lat", "eff_lat", "crlb_ratio_lat", "zscore_std_x", "lr", "samples_per_s",
                "sigma_cal_x"):
        assert key in rows[0]
    from plexloc.nets.io import load_model

    meta = load_model(run)[2]  # the sigma calibration travels with the model (NaN here: too few isolated pairs)
    assert {"sigma_cal_x", "sigma_cal_y", "sigma_cal_z"} <= set(meta["validation"])
    # the background term weighs the spread of the training background (20-50 photons: 8.7), not the output scale
    assert tr.model.spec.bg_loss_scale == pytest.approx([30.0 / 12**0.5])
    assert np.isfinite(float(rows[-1]["val_loss"]))
    with pytest.raises(InputError, match="already holds a training run"):
        Trainer(tiny_config(), run)
    (run / "checkpoint.pt").rename(run / "kept.pt")  # the large checkpoint deleted, the model kept
    with pytest.raises(InputError, match="already holds a training run"):
        Trainer(tiny_config(), run)
    (run / "kept.pt").rename(run / "checkpoint.pt")
    resumed = Trainer(tiny_config(), run, resume=True)
    assert resumed.step == 4 and len(resumed.rows) == 2
    for a, b in zip(resumed.model.parameters(), tr.model.parameters()):
        assert torch.equal(a, b.cpu())
    resumed.run(steps=6)
    assert resumed.step == 6 and [r["step"] for r in resumed.rows] == [3, 4, 6]
    with pytest.raises(InputError, match="no checkpoint"):
        Trainer(tiny_config(), tmp_path / "other", resume=True)


def test_validation_by_training_time(tmp_path, monkeypatch):
    """validate_every_s validates whenever that much training time has passed, whatever the step count."""
    clock = [0.0]

    def tick():  # every call to the trainer's clock advances 0.4 s: each step takes about that long
        clock[0] += 0.4
        return clock[0]

    tr = Trainer(tiny_config(validate_every=1000, validate_every_s=1.0), tmp_path / "run")
    monkeypatch.setattr("plexloc.train.trainer.time.perf_counter", tick)
    tr.run(steps=6)
    steps = [r["step"] for r in tr.rows]
    assert steps[-1] == 6 and 2 <= len(steps) <= 4, steps  # never at step 1000; about every 1 s of the 2.4 s
    tr2 = Trainer(tiny_config(validate_every=1000), tmp_path / "run2")
    tr2.run(steps=4)
    assert [r["step"] for r in tr2.rows] == [4]  # without it: only the final validation


def test_cli_train_then_fit(tmp_path, capsys):
    cfg_path = tmp_path / "train.yaml"
    save_config(tiny_config(), cfg_path)
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--steps", "3", "--device", "cpu"]) == 0
    got = capsys.readouterr()
    assert "done: step 3" in got.out
    assert re.search(r"training on cpu \((bfloat16|float32)(, channels-last)?\):", got.out)  # the arithmetic, the layout
    # three steps make no usable model: said at the end of training and again when it fits a movie
    assert "the model detects poorly on its validation set" in got.err and "not ready to fit movies" in got.err
    # nothing matched: said so, where it printed "RMSE lat nan nm" (session 46)
    assert "nan nm" not in got.out and re.search(r"last validation: JI [\d.]+ %, RMSE lat ([\d.]+ nm|none \(no emitter "
                                                 r"matched\))", got.out), got.out
    # every column of the run's log.csv is documented (`plexloc columns` refused the file before)
    assert main(["columns", str(tmp_path / "run" / "log.csv")]) == 0
    described = capsys.readouterr().out
    assert "a training log, 1 validation rows" in described and "not a column plexloc writes" not in described
    assert "zscore_std_x" in described and "axis x" in described
    assert main(["simulate", str(cfg_path), "--frames", "6", "--out", str(tmp_path / "sim"), "--seed", "1", "--device", "cpu"]) == 0
    out = tmp_path / "locs.csv"
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--model", str(tmp_path / "run"), "--out", str(out),
                 "--device", "cpu", "--threshold", "0.05"]) == 0
    got = capsys.readouterr()
    assert "it is not trained enough to fit movies" in got.err
    assert re.search(r"frames/s, (bfloat16|float32)(, channels-last)?\)", got.out)  # wrote ... (N localizations, ...)
    # a whole configuration as --camera: its camera is taken, and a pixel size other than the model's is said
    import yaml

    other = yaml.safe_load(cfg_path.read_text())
    other["px_size_nm"] = 160.0
    (tmp_path / "px160.yaml").write_text(yaml.safe_dump(other))
    assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--model", str(tmp_path / "run"), "--out",
                 str(tmp_path / "l160.csv"), "--device", "cpu", "--camera", str(tmp_path / "px160.yaml")]) == 0
    assert "says px_size_nm 160.0 but the model was trained for" in capsys.readouterr().err
    header = out.read_text().splitlines()[0].split(",")
    for col in ("frame", "x_nm", "y_nm", "z_nm", "photons", "prob", "bg", "sigma_x_nm", "sigma_y_nm", "sigma_photons"):
        assert col in header
    # resume continues to a total of 5 steps
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--steps", "5", "--resume", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 3" in out and "note: resuming with the run's own" not in out
    # a fine-tuning call at a new rate: no note about a different configuration, the schedule is printed
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--steps", "6", "--resume", "--device", "cpu",
                 "--lr", "1e-4", "--lr-schedule", "cosine"]) == 0
    out = capsys.readouterr().out
    assert "learning rate 0.0001, schedule cosine (to 1e-06)" in out and "note:" not in out
    # a YAML whose rate changed, without --lr: the run keeps its schedule, and says so
    save_config(tiny_config(lr=0.01), tmp_path / "fast.yaml")
    assert main(["train", str(tmp_path / "fast.yaml"), "--out", str(tmp_path / "run"), "--steps", "7", "--resume",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sets lr 0.01, lr_schedule 'plateau'; a resumed run keeps its own schedule" in out
    assert "learning rate 0.0001" in out
    # --steps is the total: at or below the current step it would do nothing
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--steps", "3", "--resume", "--device", "cpu"]) == 2
    assert "already at step 7" in capsys.readouterr().err


def test_cli_fit_errors_name_the_problem(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.tif"), "--model", str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2
    assert "no model.pt" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "m.tif"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "--model" in capsys.readouterr().err
    bad_cam = tmp_path / "cam.yaml"
    bad_cam.write_text("kind: emccd\nem_gian: 300\n")
    assert main(["fit", str(tmp_path / "m.tif"), "--model", str(tmp_path), "--camera", str(bad_cam), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "cam.yaml" in err and "em_gian" in err
    assert not (tmp_path / "o.csv").exists()


def test_cli_fit_with_the_mle_method(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    save_config(TrainConfig.model_validate({**TINY, "frame_size": [24, 24], "emitters": {"density_per_um2": 0.3,
                                            "photons_range": [3000.0, 5000.0]}}), cfg)
    assert main(["simulate", str(cfg), "--frames", "5", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    out = tmp_path / "mle.csv"
    assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--method", "mle", "--config", str(cfg), "--out", str(out),
                 "--device", "cpu"]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert {"crlb_x_nm", "llr", "iterations"} <= set(header)
    assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--method", "mle", "--out", str(out)]) == 2
    assert "--config" in capsys.readouterr().err
    # the photon filters apply to the MLE's rows too; the network's options are refused, not ignored
    every = read_table(out)
    cut = float(np.median(every["photons"]))
    kept = tmp_path / "kept.csv"
    assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--method", "mle", "--config", str(cfg), "--out", str(kept),
                 "--device", "cpu", "--min-photons", str(cut)]) == 0
    assert 0 < len(read_table(kept)) < len(every) and (read_table(kept)["photons"] >= cut).all()
    assert "removed" in capsys.readouterr().out  # the filter's counts
    # --max-sigma reads the MLE rows' CRLB (they have no predicted sigma)
    bound = float(np.median(np.maximum(every["crlb_x_nm"], every["crlb_y_nm"])))
    assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--method", "mle", "--config", str(cfg), "--out", str(kept),
                 "--device", "cpu", "--max-sigma", str(bound)]) == 0
    tight = read_table(kept)
    assert 0 < len(tight) < len(every) and (np.maximum(tight["crlb_x_nm"], tight["crlb_y_nm"]) <= bound).all()
    assert "max_sigma_nm read crlb_x_nm, crlb_y_nm" in capsys.readouterr().out
    for extra in (["--threshold", "0.3"],):  # (--refine-mle refines MLE fits too since session 51)
        assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--method", "mle", "--config", str(cfg),
                     "--out", str(tmp_path / "x.csv"), *extra]) == 2
        assert f"{extra[0]} applies to --method network only, not to --method mle" in capsys.readouterr().err
    for name in ("x.thunderstorm.csv", "x.hdf5"):
        assert main(["fit", str(tmp_path / "sim" / "movie.tif"), "--method", "mle", "--config", str(cfg),
                     "--out", str(tmp_path / name)]) == 2
        assert "plexloc fit writes plexloc tables" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_initial_weights_follow_the_seed(tmp_path):
    a = Trainer(tiny_config(), tmp_path / "a").model.state_dict()
    b = Trainer(tiny_config(), tmp_path / "b").model.state_dict()
    c = Trainer(tiny_config(seed=5), tmp_path / "c").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_density_range_reaches_the_training_batches_and_not_the_validation_set(tmp_path):
    """training.density_range_per_um2: the training stream draws per-sample densities from it, the validation set stays
    at emitters.density_per_um2 (the same samples as a run without the option), and a reversed range is refused by
    name."""
    plain = Trainer(tiny_config(validation_samples=64), tmp_path / "a")
    ranged = Trainer(tiny_config(validation_samples=64, density_range_per_um2=[4.0, 8.0]), tmp_path / "b")
    assert plain.generator.density_range_per_um2 is None
    assert ranged.generator.density_range_per_um2 == (4.0, 8.0)
    assert np.array_equal(plain.validation.truth["x_nm"], ranged.validation.truth["x_nm"])
    ranged.generator.batch_size = plain.generator.batch_size = 64
    dense, sparse = ranged.generator().target_mask.sum(), plain.generator().target_mask.sum()
    assert float(dense) > 3 * float(sparse)  # densities 4-8 against 1 per um^2
    with pytest.raises(InputError, match="density_range_per_um2"):
        d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
        d["training"]["density_range_per_um2"] = [2.0, 1.0]
        validate_config(d, TrainConfig, source="run.yaml")


def test_recalibrate_model_rescores_the_same_validation_set_and_keeps_the_weights(tmp_path):
    """A model file stripped of its validation meta (as saved before the calibrations existed) gets exactly the
    trainer's scores back from :func:`recalibrate_model` (the same validation samples), with its weights untouched,
    and ``n_samples`` scores a larger set drawn from the same stream."""
    from plexloc.nets.io import load_model, save_model
    from plexloc.train.trainer import recalibrate_model

    cfg = TrainConfig.model_validate({**TINY, "psf": {"kind": "astigmatic"}, "emitters": {"z_range_nm": [-400.0, 400.0],
                                      "photons_range": [1000.0, 5000.0], "density_per_um2": 1.0}})
    run = tmp_path / "run"
    Trainer(cfg, run).run(steps=3)
    net, config, meta = load_model(run)
    assert "sigma_cal_z" in meta["validation"]
    save_model(run / "model.pt", net, config, meta={"step": meta["step"]})
    new = recalibrate_model(run)
    assert new["step"] == meta["step"] and set(new["validation"]) == set(meta["validation"])
    for k, v in meta["validation"].items():
        assert new["validation"][k] == pytest.approx(v, nan_ok=True), k
    net2, _, meta2 = load_model(run)
    assert meta2["validation"] == pytest.approx(new["validation"], nan_ok=True)
    assert np.isfinite(new["validation"]["val_loss"]) and np.isfinite(new["validation"]["val_loss_loc"])
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="n_samples must be at least 1, got 0"):
        recalibrate_model(run, n_samples=0)
    more = recalibrate_model(run, n_samples=3 * cfg.training.validation_samples)
    assert more["validation"]["val_loss"] != pytest.approx(meta["validation"]["val_loss"])


def test_cosine_schedule_and_a_fine_tuning_resume(tmp_path):
    """cosine anneals lr -> min_lr over the call's step budget; a resume with a new rate starts from that rate,
    keeps the weights and writes the new schedule into the run's configuration."""
    from plexloc.config import load_config
    from plexloc.train.trainer import cosine_lr

    assert cosine_lr(1e-3, 1e-5, 0.0) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 1e-5, 0.5) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert cosine_lr(1e-3, 1e-5, 1.0) == pytest.approx(1e-5) == cosine_lr(1e-3, 1e-5, 7.0)
    run = tmp_path / "run"
    tr = Trainer(tiny_config(lr=1e-3, warmup_steps=1), run)
    tr.run(steps=3)
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # plateau: no decay yet
    weights = [p.detach().clone() for p in tr.model.parameters()]
    with pytest.raises(InputError, match="only lr, lr_schedule, min_lr"):
        Trainer(tiny_config(), run, resume=True, schedule={"batch_size": 2})
    with pytest.raises(InputError, match="lr"):
        Trainer(tiny_config(), run, resume=True, schedule={"lr": -1.0})
    ft = Trainer(tiny_config(), run, resume=True, schedule={"lr": 2e-4, "lr_schedule": "cosine", "min_lr": 2e-5})
    for a, b in zip(ft.model.parameters(), weights):
        assert torch.equal(a, b)
    seen = []
    orig = ft.train_step

    def spy():
        seen.append(ft.optimizer.param_groups[0]["lr"])
        return orig()

    ft.train_step = spy
    ft.run(steps=7)  # 4 more steps: fractions 0, 1/4, 2/4, 3/4 of the budget
    assert seen == pytest.approx([cosine_lr(2e-4, 2e-5, f) for f in (0, 0.25, 0.5, 0.75)])
    saved = load_config(run / "config.yaml", TrainConfig).training
    assert (saved.lr, saved.lr_schedule, saved.min_lr) == (2e-4, "cosine", 2e-5)
    again = Trainer(tiny_config(), run, resume=True)  # the checkpoint keeps the new schedule too
    assert again.config.training.lr_schedule == "cosine" and again.step == 7


def test_an_interrupted_cosine_phase_anneals_on_after_a_plain_resume(tmp_path):
    """Ctrl-C at step 4 of 8, then --resume --steps 8: the rates are those of an uninterrupted run (the phase is
    in the checkpoint; it used to start again at the peak)."""
    cfg = tiny_config(lr=1e-3, lr_schedule="cosine", min_lr=1e-5, warmup_steps=1)

    def rates_of(tr, stop_at=None):
        seen, step = [], tr.train_step

        def spy():
            if stop_at is not None and tr.step == stop_at:
                raise KeyboardInterrupt
            seen.append(tr.optimizer.param_groups[0]["lr"])
            return step()

        tr.train_step = spy
        return seen

    whole = Trainer(cfg, tmp_path / "whole")
    want = rates_of(whole)
    whole.run(steps=8)
    cut = Trainer(cfg, tmp_path / "cut")
    got = rates_of(cut, stop_at=4)
    cut.run(steps=8)  # interrupted: the checkpoint is saved at step 4
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    assert resumed.step == 4
    after = rates_of(resumed)
    resumed.run(steps=8)
    assert len(want) == 8 and got + after == pytest.approx(want)


def test_channels_last_trains_the_same_network(tmp_path):
    """training.channels_last changes the memory layout only: same initial weights, same losses, and the run
    resumes and saves a model that loads into an ordinary one."""
    a = Trainer(tiny_config(channels_last=False), tmp_path / "a")
    b = Trainer(tiny_config(channels_last=True), tmp_path / "b")
    conv = next(m for m in b.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    conv_a = next(m for m in a.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv_a.weight.is_contiguous() and not a.channels_last
    for _ in range(3):
        la, lb = a.train_step(), b.train_step()
        assert torch.allclose(la, lb, rtol=1e-3, atol=1e-4), (la, lb)
    b.run(steps=4)
    resumed = Trainer(tiny_config(channels_last=True), tmp_path / "b", resume=True)
    assert resumed.step == 4 and resumed.config.training.channels_last
    net = load_model(tmp_path / "b" / "model.pt")[0]
    x = torch.rand(2, net.spec.window, net.spec.n_channels, 16, 16) * 50
    torch.testing.assert_close(net(x), resumed.evaluated(x), rtol=1e-4, atol=1e-4)  # model.pt: the weights' average


def test_a_batch_with_a_non_finite_loss_does_not_reach_the_weights(tmp_path):
    """One batch of NaN frames (a broken simulation, an overflow): its update is 0, the weights stay finite, the
    log counts it; weights that are no longer finite stop the run with a clear error, nothing saved over."""
    from plexloc.train.trainer import TrainingDiverged

    tr = Trainer(tiny_config(), tmp_path / "run")
    poison_batch(tr)
    tr.run(steps=4)
    assert all(bool(torch.isfinite(q).all()) for q in tr.model.parameters())
    assert tr.rows[-1]["skipped_steps"] == 1 and np.isfinite(tr.rows[-1]["val_loss"])
    with torch.no_grad():
        next(tr.model.parameters()).fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match="weights are no longer finite"):
        tr.validate(None, 0.0)
    assert load_model(tmp_path / "run")[0] is not None  # the last finite model is still there


def test_cli_fit_takes_one_camera_per_channel(tmp_path, capsys):
    """--camera repeated, or one configuration holding every channel's camera: one camera per channel, read in
    channel order; a count that does not match the model's channels is named."""
    from plexloc.config import CameraDefaultsWarning, load_camera_configs

    two = tmp_path / "two.yaml"
    two.write_text("channels:\n  - camera: {kind: emccd, em_gain: 100}\n  - camera: {kind: scmos, e_per_adu: 2.0}\n")
    with pytest.warns(CameraDefaultsWarning, match="channels.0.camera.baseline 100 ADU"):  # fields left out: said
        cams = load_camera_configs(two)
    assert [c.kind for c in cams] == ["emccd", "scmos"] and cams[0].em_gain == 100 and cams[1].e_per_adu == 2.0
    one = tmp_path / "one.yaml"
    one.write_text("kind: ideal\n")
    assert [c.kind for c in load_camera_configs(one)] == ["ideal"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels:\n  - camera: {kind: emccd}\n  - camera: {kind: scmos, e_per_adu: -1}\n")
    with pytest.raises(InputError, match=r"bad.yaml \(channel 1\)"):
        load_camera_configs(bad)
    # a one-channel model given two cameras
    Trainer(tiny_config(), tmp_path / "run").run(steps=2)
    save_config(tiny_config(), tmp_path / "c.yaml")
    assert main(["simulate", str(tmp_path / "c.yaml"), "--frames", "3", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    movie = str(tmp_path / "sim" / "movie.tif")
    assert main(["fit", movie, "--model", str(tmp_path / "run"), "--out", str(tmp_path / "o.csv"),
                 "--camera", str(one), "--camera", str(one)]) == 2
    assert "2 camera(s) given for a 1-channel model (one per channel" in capsys.readouterr().err
    assert main(["fit", movie, "--model", str(tmp_path / "run"), "--out", str(tmp_path / "o.csv"), "--camera", str(two)]) == 2
    assert main(["fit", movie, "--model", str(tmp_path / "run"), "--out", str(tmp_path / "o.csv"), "--camera", str(one)]) == 0


def test_a_movie_recorded_at_another_pixel_size_is_warned_about(tmp_path):
    """A movie whose metadata say 160 nm pixels fitted by a model (or an MLE configuration) of 100 nm pixels:
    positions and PSF widths are wrong (a new user's case: JI 5 %, RMSE 170 nm) and nothing was said."""
    import tifffile

    from plexloc.infer import fit_movie
    from plexloc.io.pixel_size import PixelSizeWarning
    from plexloc.mle import fit_movie as fit_mle

    cfg = tiny_config()
    Trainer(cfg, tmp_path / "run").run(steps=1)
    px = cfg.px_size_xy_nm[0]

    frames = Simulator(cfg.simulation()).simulate_movie(6, generator=torch.Generator().manual_seed(0)).frames[0]
    frames = frames.numpy().astype(np.uint16)
    tifffile.imwrite(tmp_path / "m160.tif", frames, imagej=True, resolution=(1000 / 160.0, 1000 / 160.0),
                     metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "mok.tif", frames, imagej=True, resolution=(1000 / px, 1000 / px),
                     metadata={"unit": "micron"})
    with pytest.warns(PixelSizeWarning, match=rf"pixels of 160 x 160 nm .* the model was trained for {px:g} x {px:g} nm"):
        fit_movie(tmp_path / "m160.tif", tmp_path / "run", device="cpu")
    with pytest.warns(PixelSizeWarning, match="the configuration says"):
        fit_mle(tmp_path / "m160.tif", cfg)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", PixelSizeWarning)  # the movie's own pixel size: quiet
        fit_movie(tmp_path / "mok.tif", tmp_path / "run", device="cpu")


def test_the_background_head_covers_every_channels_own_background():
    """make_spec set bg_scale from the top-level background only: a channel with its own range of 400-500
    photons/px (the top level at its default 20-200) got a head that saturates at 300 (the networks review)."""
    from plexloc.config import TrainConfig
    from plexloc.simulation import Simulator
    from plexloc.train.trainer import make_spec

    ch = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    cfg = TrainConfig.model_validate({"channels": [ch, {**ch, "background": {"range": [400.0, 500.0]}}],
                                      "model": {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1}})
    spec = make_spec(cfg, Simulator(cfg.simulation()))
    assert spec.bg_scale >= 1.5 * 500.0


@pytest.mark.parametrize("onednn", [True, False])
def test_channels_last_by_default_on_a_onednn_cpu(tmp_path, monkeypatch, onednn):
    """training.channels_last None (the default): NHWC on a CPU whose convolutions go through oneDNN (faster there),
    NCHW where they do not; an explicit value wins."""
    from plexloc.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_channels_last_supported", lambda: onednn)
    assert tiny_config().training.channels_last is None
    tr = Trainer(tiny_config(), tmp_path / "auto", device="cpu")
    conv = next(m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert tr.channels_last is onednn
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is onednn
    assert Trainer(tiny_config(channels_last=False), tmp_path / "off", device="cpu").channels_last is False
    assert Trainer(tiny_config(channels_last=True), tmp_path / "on", device="cpu").channels_last is True
