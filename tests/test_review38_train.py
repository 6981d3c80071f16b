"""Review 38 of the trainer: a ``plexloc train`` refused by a check after the trainer is built leaves --out as it
was (it left config.yaml written, a resumed run's rewritten with the refused --lr), and an init_from run's seam row
shows the learning rate in effect there (the warm-up's first rate), not training.lr."""

from __future__ import annotations

import csv

import pytest

from conftest import TINY_TRAIN, record_rates

from plexloc.cli.main import main
from plexloc.config import TrainConfig
from plexloc.config.io import save_config
from plexloc.train import Trainer

SOURCE_STEPS = 12


def tiny_config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(validate_every=6, validation_samples=8, **training)
    return TrainConfig.model_validate(d)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    run = tmp_path_factory.mktemp("source") / "run"
    Trainer(tiny_config(), run).run(steps=SOURCE_STEPS)
    return run


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


def test_a_refused_init_from_call_leaves_out_as_it_was(source, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    save_config(tiny_config(), cfg)
    out = tmp_path / "ft"
    # --steps at or below the clock offset's step: refused after the trainer is built
    assert main(["train", str(cfg), "--out", str(out), "--init-from", str(source), "--clock-offset-min", "source",
                 "--steps", "5", "--device", "cpu"]) == 2
    assert f"puts the run at step {SOURCE_STEPS}" in capsys.readouterr().err
    assert not out.exists()  # it held config.yaml
    # training.steps at or below the offset (no --steps, no --minutes): the same
    save_config(tiny_config(steps=SOURCE_STEPS), cfg)
    out.mkdir()  # an empty folder given as --out stays empty
    assert main(["train", str(cfg), "--out", str(out), "--init-from", str(source), "--clock-offset-min", "source",
                 "--device", "cpu"]) == 2
    assert "training.steps" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_refused_resume_leaves_the_run_as_it_was(source, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(source, run)
    before = snapshot(run)
    cfg = tmp_path / "c.yaml"
    save_config(tiny_config(), cfg)
    # a new --lr for a --steps the run has already done: refused, and config.yaml keeps the run's own rate
    assert main(["train", str(cfg), "--out", str(run), "--resume", "--lr", "5e-5", "--steps", "4",
                 "--device", "cpu"]) == 2
    assert "already at step" in capsys.readouterr().err
    assert snapshot(run) == before


def test_the_folder_and_config_are_written_when_the_run_starts(tmp_path):
    out = tmp_path / "new"
    tr = Trainer(tiny_config(), out)
    assert not out.exists()
    tr.run(steps=2)
    assert (out / "config.yaml").exists() and (out / "model.pt").exists()


def test_the_seam_row_shows_the_rate_in_effect(source, tmp_path):
    """The seam row is scored before the fresh optimizer's first step: its lr is the warm-up's first rate, the one
    that step uses (it showed training.lr, 10x the real rate with warmup_steps 10)."""
    lr, warmup = 1e-3, 10
    tr = Trainer(tiny_config(lr=lr, warmup_steps=warmup), tmp_path / "ft", init_from=source, clock_offset_min="source")
    seen = record_rates(tr)
    tr.run(steps=SOURCE_STEPS + 6)
    seam = next(r for r in tr.rows if r.get("segment") == 1)
    assert seam["step"] == SOURCE_STEPS
    assert seam["lr"] == pytest.approx(lr / warmup)
    assert seen[0] == pytest.approx(lr / warmup)  # the rate the first step used
    after = [r for r in tr.rows if r.get("segment") == 1][1]
    assert after["lr"] == pytest.approx(lr * 6 / warmup)  # the next row: the rate of its last step, as before
    with open(tmp_path / "ft" / "log.csv", newline="") as fh:
        logged = [r for r in csv.DictReader(fh) if r["segment"] == "1"]
    assert float(logged[0]["lr"]) == pytest.approx(lr / warmup)


def test_the_seam_row_of_a_cosine_run(source, tmp_path):
    tr = Trainer(tiny_config(lr=2e-3, warmup_steps=4, lr_schedule="cosine", min_lr=1e-5), tmp_path / "ft",
                 init_from=source)
    tr.run(steps=8)
    assert tr.rows[0]["segment"] == 1 and tr.rows[0]["lr"] == pytest.approx(2e-3 / 4)
    # without a warm-up the first step's rate is the cosine's start, training.lr
    tr = Trainer(tiny_config(lr=2e-3, warmup_steps=0, lr_schedule="cosine", min_lr=1e-5), tmp_path / "ft0",
                 init_from=source)
    tr.run(steps=4)
    assert tr.rows[0]["lr"] == pytest.approx(2e-3)
