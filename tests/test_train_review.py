"""Training loop review: resume continues exactly, counts survive a resume, schedules reach their ends (tiny models)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_TRAIN, poison_batch

from plexloc.config import TrainConfig
from plexloc.train import Trainer

TIMING = ("elapsed_s", "samples_per_s")  # wall-clock columns: differ between any two runs


def tiny_config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def test_a_resumed_run_is_the_uninterrupted_run(tmp_path):
    """12 steps in one call and 6 + --resume 6 give the same weights, optimizer state and log rows: the checkpoint
    keeps the sample stream's position (a resumed run used to draw a fresh stream seeded by the step, and its
    weights differed by 2e-3 after 6 more steps)."""
    cfg = tiny_config()
    whole = Trainer(cfg, tmp_path / "whole")
    whole.run(steps=12)
    cut = Trainer(cfg, tmp_path / "cut")
    cut.run(steps=6)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    resumed.run(steps=12)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for sa, sb in zip(whole.optimizer.state.values(), resumed.optimizer.state.values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert [r["step"] for r in resumed.rows] == [r["step"] for r in whole.rows] == [3, 6, 9, 12]
    for ra, rb in zip(whole.rows, resumed.rows):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k not in TIMING:
                assert ra[k] == rb[k] or (math.isnan(ra[k]) and math.isnan(rb[k])), (ra["step"], k, ra[k], rb[k])


def test_skipped_steps_count_over_a_resume(tmp_path):
    """skipped_steps counts the non-finite batches "so far" (log_columns): a resumed run goes on from the checkpoint's
    count (it restarted at 0, and the log lost the batch skipped before the resume)."""
    tr = Trainer(tiny_config(), tmp_path / "run")
    poison_batch(tr)
    tr.run(steps=3)
    assert tr.rows[-1]["skipped_steps"] == 1
    resumed = Trainer(tiny_config(), tmp_path / "run", resume=True)
    resumed.run(steps=6)
    assert [r["skipped_steps"] for r in resumed.rows] == [1, 1]


class _Clock:
    """A fake ``time`` for the trainer: one clock for monotonic and perf_counter, advanced by the test."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def perf_counter(self):
        return self.now


def _timed(tr, clock, *, step_s, validate_s, stop_at=None):
    """Each step takes ``step_s``, each validation ``validate_s`` of the fake clock; the rates each step starts with."""
    seen, step, validate = [], tr.train_step, tr.validate

    def spy_step():
        if stop_at is not None and tr.step == stop_at:
            raise KeyboardInterrupt
        seen.append(tr.optimizer.param_groups[0]["lr"])
        clock.now += step_s
        return step()

    def spy_validate(*args):
        clock.now += validate_s
        return validate(*args)

    tr.train_step, tr.validate = spy_step, spy_validate
    return seen


def test_cosine_over_minutes_reaches_min_lr_at_the_deadline(tmp_path, monkeypatch):
    """--minutes is wall time, validation included; the cosine phase is measured the same way, so the rate is near
    min_lr at the deadline. Steps of 5 s and a 5 s validation every 2 steps: 8 steps in 1 min, starting at 0, 5, 15,
    20, 30, 35, 45 and 50 s. (Measured in training time, validation excluded, the fractions were 0, 5, ..., 35 s of
    60 and the last rate 3.8e-4.) Training ends where the time for the last validation is kept back (session 43:
    the call ends by its deadline), 55 s, and the phase ends there: the fractions are the start times over 55 s, over
    49 s for step 2, before any validation was timed (kept back: the validation set's 2 batches at a step's 5 s each,
    plus 1 s for the saves). Interrupted after step 4 and resumed with --minutes, the phase goes on where it was."""
    from plexloc.train import trainer as trainer_module
    from plexloc.train.trainer import cosine_lr

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    cfg = tiny_config(lr=1e-3, min_lr=1e-5, lr_schedule="cosine", warmup_steps=0, validate_every=2)
    whole = Trainer(cfg, tmp_path / "whole")
    seen = _timed(whole, clock, step_s=5.0, validate_s=5.0)
    whole.run(minutes=1.0)
    want = [cosine_lr(1e-3, 1e-5, f) for f in (0.0, 5 / 49, 15 / 55, 20 / 55, 30 / 55, 35 / 55, 45 / 55, 50 / 55)]
    assert seen == pytest.approx(want, rel=1e-9)
    assert seen[-1] < 1e-4

    cut = Trainer(cfg, tmp_path / "cut")
    got = _timed(cut, clock, step_s=5.0, validate_s=5.0, stop_at=4)
    cut.run(minutes=1.0)  # Ctrl-C at 30 s, after the validation of step 4: the checkpoint holds 30 s of the phase
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    after = _timed(resumed, clock, step_s=5.0, validate_s=5.0)
    resumed.run(minutes=0.5)
    assert got + after == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("option,value,message", [
    ("--minutes", "-1", "--minutes must be a finite number > 0, got -1.0"),
    ("--minutes", "nan", "--minutes must be a finite number > 0, got nan"),  # trained 0 steps and said "done"
    ("--minutes", "inf", "--minutes must be a finite number > 0, got inf"),
    ("--threads", "-2", "--threads must be at least 1, got -2"),  # a RuntimeError traceback from torch
    ("--threads", "0", "--threads must be at least 1, got 0"),  # silently torch's choice
])
def test_cli_train_names_a_bad_budget_or_thread_count(tmp_path, capsys, monkeypatch, option, value, message):
    from plexloc.cli.main import main
    from plexloc.config import save_config

    def no_training(*args, **kwargs):  # a bad value must be refused before any training (inf would never end)
        raise AssertionError("the trainer was built")

    monkeypatch.setattr("plexloc.train.Trainer", no_training)
    save_config(tiny_config(), tmp_path / "c.yaml")
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), option, value, "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_logged_training_loss_is_the_mean_of_the_batches_that_trained(tmp_path):
    """A skipped (non-finite) batch is counted in skipped_steps and left out of the interval's mean training loss
    (it made the whole interval's loss NaN: one bad batch of 500 blanked a row of log.csv and the progress bar)."""
    tr = Trainer(tiny_config(), tmp_path / "run")
    poison_batch(tr)
    losses, step = [], tr.train_step

    def spy():
        losses.append(step())
        return losses[-1]

    tr.train_step = spy
    tr.run(steps=3)
    assert not torch.isfinite(losses[1]).any()
    want = (losses[0] + losses[2]) / 2
    row = tr.rows[-1]
    assert row["skipped_steps"] == 1
    assert [row[k] for k in ("loss", "loss_count", "loss_loc", "loss_bg")] == pytest.approx(want.tolist(), rel=1e-6)


def test_a_run_folder_that_is_a_file_is_named(tmp_path):
    """--out naming a file: a clear error before any work (it was OSError 'File exists' after the validation set had
    been simulated), the file untouched."""
    from plexloc.errors import InputError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"notes.txt.*run folder is a file"):
        Trainer(tiny_config(), tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"
