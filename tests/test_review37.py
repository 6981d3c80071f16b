"""Review of 2026-12-06's init-from work: known answers that the first tests did not pin.

- A run started from another init_from run's ``checkpoint.pt`` is the next optimizer segment (its origin is kept
  beside the checkpoint's meta, not in it): it was segment 1 again, with no seam row and no ``previous`` origin.
- The seam validation of an init_from run's first call is not training time (``elapsed_s`` of the first training
  row counted it: the time column, and accuracy.py's time to plateau of every lease, read high by one validation).
"""

from __future__ import annotations

import time


from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.train import Trainer
from plexloc.train.trainer import CHECKPOINT_FILE, export_weights, read_init_source


def tiny_config() -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(validate_every=20, validation_samples=16)
    return TrainConfig.model_validate(d)


def test_a_checkpoint_of_an_init_from_run_starts_the_next_segment(tmp_path):
    Trainer(tiny_config(), tmp_path / "a").run(steps=40)
    b = Trainer(tiny_config(), tmp_path / "b", init_from=tmp_path / "a", clock_offset_min="source")
    b.run(steps=60)
    assert b.segment == 1
    src = read_init_source(tmp_path / "b" / CHECKPOINT_FILE)
    assert src.segment == 1 and src.meta["origin"] == b.origin
    c = Trainer(tiny_config(), tmp_path / "c", init_from=tmp_path / "b" / CHECKPOINT_FILE, clock_offset_min="source")
    assert c.segment == 2 and c.origin["previous"] == b.origin
    c.run(steps=80)
    assert [(r["step"], r["segment"]) for r in c.rows] == [(20, 0), (40, 0), (40, 1), (60, 1), (60, 2), (80, 2)]
    # the bfloat16 file of that checkpoint keeps the origin too (the run it starts is segment 2)
    meta = export_weights(tmp_path / "b" / CHECKPOINT_FILE, tmp_path / "w.pt")
    assert meta["origin"] == b.origin
    assert read_init_source(tmp_path / "w.pt").segment == 1


def test_the_seam_validation_is_not_training_time(tmp_path, monkeypatch):
    Trainer(tiny_config(), tmp_path / "a").run(steps=20)
    tr = Trainer(tiny_config(), tmp_path / "b", init_from=tmp_path / "a")
    score = tr.validation.score
    calls = []

    def slow(*args, **kwargs):  # the seam validation takes 2 s; the others as they are
        if not calls:
            time.sleep(2.0)
        calls.append(1)
        return score(*args, **kwargs)

    monkeypatch.setattr(tr.validation, "score", slow)
    tr.run(steps=3)
    seam, first = tr.rows
    assert seam["step"] == 0 and seam["elapsed_s"] == 0.0
    # 3 steps of a 4-feature network: tens of ms (a busy machine may stretch them, never to the seam's 2 s)
    assert first["step"] == 3 and first["elapsed_s"] < 1.0
    assert first["samples_per_s"] > 3 * 4 / 1.0


def test_init_from_with_the_configurations_steps_behind_the_clock_is_refused(tmp_path, capsys):
    """Without --steps or --minutes the run trains to training.steps in total: where the clock offset is already
    past it, the run scored the weights, trained nothing and said done."""
    from plexloc.cli.main import main
    from plexloc.config.io import save_config

    Trainer(tiny_config(), tmp_path / "a").run(steps=40)
    d = tiny_config().model_dump(mode="json")
    d["training"]["steps"] = 30
    cfg = tmp_path / "c.yaml"
    save_config(TrainConfig.model_validate(d), cfg)
    out = tmp_path / "b"
    assert main(["train", str(cfg), "--out", str(out), "--init-from", str(tmp_path / "a"), "--clock-offset-min",
                 "source", "--device", "cpu"]) == 2
    assert "training.steps 30 is the total step count" in capsys.readouterr().err
    assert not (out / "model.pt").exists()
    d["training"]["steps"] = 50  # beyond the offset: trains the 10 steps left
    save_config(TrainConfig.model_validate(d), cfg)
    assert main(["train", str(cfg), "--out", str(out), "--init-from", str(tmp_path / "a"), "--clock-offset-min",
                 "source", "--device", "cpu"]) == 0
    assert Trainer(tiny_config(), out, resume=True).step == 50


def test_ctrl_c_in_the_seam_validation_leaves_a_resumable_run(tmp_path, monkeypatch):
    """Ctrl-C after the seam validation wrote model.pt and before the first checkpoint: the folder had a model.pt and
    no checkpoint.pt, so --resume refused it (no checkpoint) and a new --init-from too (a model.pt is there). Now the
    interrupted call saves the checkpoint, and --resume trains on from it."""
    Trainer(tiny_config(), tmp_path / "a").run(steps=20)
    tr = Trainer(tiny_config(), tmp_path / "b", init_from=tmp_path / "a")
    save = tr.save_checkpoint
    calls = []

    def interrupted():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        save()

    monkeypatch.setattr(tr, "save_checkpoint", interrupted)
    tr.run(steps=10)
    assert (tmp_path / "b" / "model.pt").exists() and (tmp_path / "b" / CHECKPOINT_FILE).exists()
    assert tr.step == 0
    again = Trainer(tiny_config(), tmp_path / "b", resume=True)
    assert again.segment == 1 and again.step == 0
    again.run(steps=5)
    assert again.step == 5
    assert [(r["step"], r["segment"]) for r in again.rows][-2:] == [(0, 1), (5, 1)]
