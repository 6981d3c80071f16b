"""Session 43: a --minutes call ends by its deadline (the last validation and its saves kept back), and a plain
--resume whose budget lies beyond its cosine phase stretches the phase instead of training at min_lr (tiny models)."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import TINY_TRAIN, record_rates
from test_train_review import _Clock

from plexloc.cli.main import main
from plexloc.config import TrainConfig, save_config
from plexloc.train import Trainer
from plexloc.train import trainer as trainer_module
from plexloc.train.trainer import LOG_FILE, cosine_lr, read_log

COSINE = {"lr": 1e-3, "min_lr": 1e-5, "lr_schedule": "cosine", "warmup_steps": 0}


def tiny_config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def _timed(tr, clock, *, step_s=5.0, validate_s=5.0):
    """Each step takes ``step_s``, each validation (with its saves) ``validate_s`` of the fake clock; returns the rates
    the steps use, in order."""
    seen, step, validate = [], tr.train_step, tr.validate

    def spy_step():
        seen.append(tr.optimizer.param_groups[0]["lr"])
        clock.now += step_s
        return step()

    def spy_validate(*args, **kwargs):
        clock.now += validate_s
        return validate(*args, **kwargs)

    tr.train_step, tr.validate = spy_step, spy_validate
    return seen


# ------------------------------------------------------------------------------------------ (a) the deadline
def test_a_minutes_call_ends_by_its_deadline_with_a_slow_validation(tmp_path, monkeypatch, capsys):
    """`plexloc train --minutes 0.15` (9 s) with a validation set of 512 samples (1-3 s to score and save on a
    2-core CPU) and no validation before the last: the training call (Trainer.run, timed by a spy that calls it)
    ends by the deadline within 0.5 s. The old code checked the deadline only before each step and then validated
    the last interval: it ran the whole 9 s and the validation after (13.3 s for 6 s with 1024 samples)."""
    walls, trainers = [], []
    run = Trainer.run

    def timed_run(self, **kwargs):
        trainers.append(self)
        t0 = time.monotonic()
        try:
            return run(self, **kwargs)
        finally:
            walls.append(time.monotonic() - t0)

    monkeypatch.setattr(Trainer, "run", timed_run)
    save_config(tiny_config(validation_samples=512, validate_every=100_000), tmp_path / "c.yaml")
    minutes = 0.15
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--minutes", str(minutes),
                 "--device", "cpu", "--threads", "1"]) == 0
    capsys.readouterr()
    assert len(walls) == 1 and walls[0] <= 60.0 * minutes + 0.5, walls
    tr = trainers[0]
    rows = read_log(tmp_path / "run" / LOG_FILE)
    assert tr.step >= 2 and [r["step"] for r in rows] == [tr.step]  # it trained, and saved what it trained
    assert tr.validate_s is not None and 0.0 < tr.validate_s < walls[0]


@pytest.mark.parametrize("validate_every,minutes,steps,end_s", [
    (4, 1.0, 9, 60.0),  # old: 10 steps, the deadline at step 10, its partial interval validated 60-65 s
    (3, 0.9, 7, 50.0),  # old: 9 steps, the last started at 50 s (< 54), its validation on the grid 55-60 s
])
def test_the_last_step_starts_only_where_a_validation_still_fits(tmp_path, monkeypatch, validate_every, minutes,
                                                                  steps, end_s):
    """Steps of 5 s and validations of 5 s (fake clock): a step starts only while it and a validation fit before the
    deadline, the first validation's time estimated before it is timed (the set's 2 batches at a step's 5 s, plus
    1 s): the call ends by the deadline, and it leaves less than a step and a validation unused."""
    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    tr = Trainer(tiny_config(validate_every=validate_every), tmp_path / "run")
    _timed(tr, clock)
    t0 = clock.now
    tr.run(minutes=minutes)
    assert tr.step == steps and clock.now - t0 == pytest.approx(end_s)
    assert 60.0 * minutes - 10.0 < clock.now - t0 <= 60.0 * minutes
    assert tr.rows[-1]["step"] == steps and tr.validate_s == pytest.approx(5.0)
    # the next call of the run keeps back the time its checkpoint measured
    again = Trainer(tiny_config(validate_every=validate_every), tmp_path / "run", resume=True)
    assert again.validate_s == pytest.approx(5.0)


def test_the_first_two_steps_of_a_call_always_run(tmp_path, monkeypatch):
    """A budget shorter than two steps and a validation: two steps (the first one's time is no estimate of the
    next), validated and saved (a call that trained nothing would leave no model), and no more."""
    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    tr = Trainer(tiny_config(), tmp_path / "run")
    _timed(tr, clock)
    tr.run(minutes=0.1)  # 6 s: the third step would end at 15 s, its validation at 20
    assert tr.step == 2 and [r["step"] for r in tr.rows] == [2] and (tmp_path / "run" / "model.pt").exists()


# ------------------------------------------------------------------------------------------ (b) the cosine phase
def test_a_resume_beyond_the_phase_of_steps_stretches_it(tmp_path):
    """--steps 6 (cosine over 0..6), then --resume --steps 12: steps 7..12 use the rates of an uninterrupted
    12-step run (one cosine over 0..12), not min_lr, the call says so in one line, and log.csv shows them."""
    cfg = tiny_config(**COSINE)
    whole = Trainer(cfg, tmp_path / "whole")
    want = record_rates(whole)
    whole.run(steps=12)
    run = tmp_path / "run"
    Trainer(cfg, run).run(steps=6)
    resumed = Trainer(cfg, run, resume=True)
    got, lines = record_rates(resumed), []
    resumed.run(steps=12, log=lines.append)
    assert got == pytest.approx(want[6:], rel=1e-12)
    assert got == pytest.approx([cosine_lr(1e-3, 1e-5, s / 12) for s in range(6, 12)], rel=1e-12)
    assert got[0] > 50 * 1e-5 and got == sorted(got, reverse=True)  # the old code: 1e-5 for all six
    stretched = [x for x in lines if x.startswith("cosine schedule:")]
    assert stretched == [f"cosine schedule: its phase (steps 0-6) ends before --steps 12: stretched to end at step 12, "
                         f"the rate now {cosine_lr(1e-3, 1e-5, 0.5):.3g} (was 1e-05), 1e-05 at step 12"]
    rows = {r["step"]: r["lr"] for r in read_log(run / LOG_FILE)}
    assert [rows[s] for s in (9, 12)] == pytest.approx([want[8], want[11]], rel=1e-12)
    assert resumed.cosine_phase["steps"] == 12 and resumed.cosine_phase["start_step"] == 0


def test_a_resume_within_the_phase_is_the_uninterrupted_run(tmp_path):
    """Stopped at step 5 of a 12-step cosine run (a Ctrl-C) and resumed to 12: same rates, weights and log rates,
    and no line about the phase."""
    cfg = tiny_config(**COSINE)
    whole = Trainer(cfg, tmp_path / "whole")
    want = record_rates(whole)
    whole.run(steps=12)
    cut = Trainer(cfg, tmp_path / "cut")
    step = cut.train_step

    def stop():
        if cut.step == 5:
            raise KeyboardInterrupt
        return step()

    cut.train_step = stop
    cut.run(steps=12)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    assert resumed.step == 5
    got, lines = record_rates(resumed), []
    resumed.run(steps=12, log=lines.append)
    assert got == want[5:] and not [x for x in lines if x.startswith("cosine schedule:")]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["lr"] for r in whole.rows if r["step"] in (6, 9, 12)] == [r["lr"] for r in resumed.rows
                                                                        if r["step"] in (6, 9, 12)]


def test_a_resume_beyond_the_phase_of_minutes_stretches_it(tmp_path, monkeypatch):
    """--minutes 1 (its phase spent), then --resume --minutes 0.5: the phase is stretched to 90 s and ends with this
    call (at 85 s, the 5 s validation kept back): steps at 60, 65, 75 and 80 s of the phase; the old code trained
    them at min_lr."""
    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    cfg = tiny_config(validate_every=2, **COSINE)
    first = Trainer(cfg, tmp_path / "run")
    _timed(first, clock)
    first.run(minutes=1.0)
    assert first.step == 8 and first.cosine_phase["used_s"] == pytest.approx(60.0)
    resumed = Trainer(cfg, tmp_path / "run", resume=True)
    seen, lines = _timed(resumed, clock), []
    resumed.run(minutes=0.5, log=lines.append)
    assert seen == pytest.approx([cosine_lr(1e-3, 1e-5, s / 85) for s in (60, 65, 75, 80)], rel=1e-9)
    assert resumed.cosine_phase["seconds"] == pytest.approx(90.0)
    assert lines[0].startswith("cosine schedule: its phase of 1.00 min has 0.00 min left, less than this call's 0.5 "
                               "min: stretched to 1.50 min to end with this call")
    rows = {r["step"]: r["lr"] for r in read_log(tmp_path / "run" / LOG_FILE)}
    assert [rows[10], rows[12]] == pytest.approx([seen[1], seen[3]], rel=1e-9)


def test_a_phase_of_steps_resumed_with_minutes_ends_with_the_call(tmp_path, monkeypatch):
    """--steps 4 (30 s of the fake clock: 4 steps, 2 validations), then --resume --minutes 0.5: the phase is measured
    in wall time from there, its 30 s kept, and ends with this call: the rates of a --minutes 1 run's second half."""
    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    cfg = tiny_config(validate_every=2, **COSINE)
    first = Trainer(cfg, tmp_path / "run")
    _timed(first, clock)
    first.run(steps=4)
    assert first.cosine_phase["used_s"] == pytest.approx(30.0)
    resumed = Trainer(cfg, tmp_path / "run", resume=True)
    seen, lines = _timed(resumed, clock), []
    resumed.run(minutes=0.5, log=lines.append)
    assert seen == pytest.approx([cosine_lr(1e-3, 1e-5, s / 55) for s in (30, 35, 45, 50)], rel=1e-9)
    assert lines[0].startswith("cosine schedule: its phase of steps 0-4 (at step 4, 0.50 min used) is measured in wall "
                               "time from here and ends with this call's 0.5 min")


def test_a_phase_of_minutes_resumed_with_steps_ends_with_the_call(tmp_path, monkeypatch):
    """--minutes 0.5 (4 steps), then --resume --steps 8: the phase is measured in steps from its start, 0..8."""
    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    cfg = tiny_config(validate_every=2, **COSINE)
    first = Trainer(cfg, tmp_path / "run")
    _timed(first, clock)
    first.run(minutes=0.5)
    assert first.step == 4
    resumed = Trainer(cfg, tmp_path / "run", resume=True)
    seen, lines = _timed(resumed, clock), []
    resumed.run(steps=8, log=lines.append)
    assert seen == pytest.approx([cosine_lr(1e-3, 1e-5, s / 8) for s in range(4, 8)], rel=1e-12)
    assert lines[0].startswith("cosine schedule: its phase of 0.50 min (from step 0, 0.50 min used) is measured in "
                               "steps from here and ends with this call: steps 0-8")


def test_cli_says_how_it_stretches_the_phase(tmp_path, capsys):
    """`plexloc train --steps 6 --lr-schedule cosine`, then `--resume --steps 12`: the line, and log.csv's lr column
    going on down the cosine over 0..12 (min_lr at every row after step 6 before)."""
    save_config(tiny_config(lr=1e-3, min_lr=1e-5, warmup_steps=0), tmp_path / "c.yaml")
    base = ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main([*base, "--steps", "6", "--lr-schedule", "cosine"]) == 0
    capsys.readouterr()
    assert main([*base, "--steps", "12", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "cosine schedule: its phase (steps 0-6) ends before --steps 12: stretched to end at step 12" in out
    rows = read_log(tmp_path / "run" / LOG_FILE)
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    assert [r["lr"] for r in rows[2:]] == pytest.approx([cosine_lr(1e-3, 1e-5, s / 12) for s in (8, 11)], rel=1e-9)
