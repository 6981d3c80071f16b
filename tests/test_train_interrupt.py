"""Interrupted saves: a kill or Ctrl-C between or during the run folder's writes loses no model and logs no row twice."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.nets.io import MODEL_FILE, read_model_file
from plexloc.train import Trainer
from plexloc.train import trainer as trainer_module
from plexloc.train.trainer import CHECKPOINT_FILE


def tiny_config() -> TrainConfig:
    return TrainConfig.model_validate({k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()})


def model_step(run_dir) -> int:
    return int(read_model_file(run_dir / MODEL_FILE)["meta"]["step"])


def test_a_resume_after_a_kill_between_model_and_checkpoint_keeps_the_better_model(tmp_path):
    """The checkpoint is older than model.pt (killed after writing the model): the resumed run's best is the model's
    validation loss, so a worse validation does not overwrite it (the checkpoint's best alone let it)."""
    run = tmp_path / "run"
    Trainer(tiny_config(), run).run(steps=3)
    saved = read_model_file(run / MODEL_FILE)["meta"]["validation"]["val_loss"]
    ckpt = torch.load(run / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    ckpt["best"] = math.inf  # as written just before the model that is now model.pt
    torch.save(ckpt, run / CHECKPOINT_FILE)

    resumed = Trainer(tiny_config(), run, resume=True)
    assert resumed.best == pytest.approx(saved)
    score = resumed.validation.score

    def worse(*args, **kwargs):
        out = score(*args, **kwargs)
        out["val_loss"] = saved + 1.0
        return out

    resumed.validation.score = worse
    resumed.run(steps=6)
    assert [r["step"] for r in resumed.rows] == [3, 6]
    assert model_step(run) == 3  # not overwritten by the worse step-6 model


def test_ctrl_c_during_the_checkpoint_write_logs_one_row_per_step(tmp_path, monkeypatch):
    """Ctrl-C while validate() writes the checkpoint: run() validates the open interval again at the same step. The
    log keeps one row for it (it had two rows of step 3), and the checkpoint is written by the second try."""
    tr = Trainer(tiny_config(), tmp_path / "run")
    save = tr.save_checkpoint
    calls = []

    def interrupted_once():
        calls.append(tr.step)
        if len(calls) == 1:
            raise KeyboardInterrupt
        save()

    monkeypatch.setattr(tr, "save_checkpoint", interrupted_once)
    tr.run(steps=3)
    assert calls == [3, 3]
    assert [r["step"] for r in tr.rows] == [3]
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 2 and log[1].startswith("3,")
    assert torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["step"] == 3


def test_ctrl_c_during_the_model_write_saves_the_model_on_the_next_try(tmp_path, monkeypatch):
    """Ctrl-C while model.pt is written: the best validation loss is taken only once the file is written, so the
    second validation of the step saves it (best was set first, and the run ended without any model.pt)."""
    save_model = trainer_module.save_model
    calls = []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        save_model(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_model", interrupted_once)
    tr = Trainer(tiny_config(), tmp_path / "run")
    tr.run(steps=3)
    assert len(calls) == 2
    assert model_step(tmp_path / "run") == 3
    assert tr.best == pytest.approx(tr.rows[-1]["val_loss"])


def test_a_resume_removes_the_temporaries_of_killed_saves(tmp_path):
    """A killed save leaves its hidden temporary file; a resume removes the run's own, and nothing else."""
    run = tmp_path / "run"
    Trainer(tiny_config(), run).run(steps=3)
    stale = [run / ".checkpoint.pt.k2j4x.tmp.pt", run / ".model.pt.a8f1q.tmp.pt", run / ".log.csv.zz9.tmp.csv"]
    for f in stale:
        f.write_bytes(b"half")
    keep = run / ".notes.txt.abc.tmp.txt"
    keep.write_text("not ours")
    Trainer(tiny_config(), run, resume=True)
    assert not any(f.exists() for f in stale)
    assert keep.exists()
