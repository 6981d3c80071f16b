"""A new run from a trained model's weights (Trainer(init_from=...), plexloc train --init-from): the loss goes on
from the source's, a mismatched architecture is refused by name, bfloat16 weights load, the run resumes, and a clock
offset continues the log's step and time columns after the source's rows."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from conftest import TINY_TRAIN, record_rates

from plexloc.cli.main import main
from plexloc.config import TrainConfig
from plexloc.config.io import save_config
from plexloc.errors import InputError
from plexloc.nets.io import MODEL_FILE, load_model, read_model_file
from plexloc.train import Trainer
from plexloc.train.trainer import CHECKPOINT_FILE, export_weights, read_init_source

SOURCE_STEPS = 200


def tiny_dict(model=None, **training) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(validate_every=40, validation_samples=32, **training)
    d["model"].update(model or {})
    return d


def tiny_config(model=None, **training) -> TrainConfig:
    return TrainConfig.model_validate(tiny_dict(model, **training))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny run trained 200 steps (read only by the tests)."""
    run = tmp_path_factory.mktemp("source") / "run"
    Trainer(tiny_config(), run).run(steps=SOURCE_STEPS)
    return run


def log_rows(run) -> list[dict]:
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_init_from_run_starts_at_the_sources_loss(source, tmp_path):
    """The weights are the source's: scored on the same validation set at the start (the seam row), the validation
    loss is the source model's own; the first interval's training loss is near the source's last and far below a
    fresh run's first (10.5 for this network; 200 steps brought it to 8.7)."""
    src_rows = Trainer(tiny_config(), source, resume=True).rows
    src_val = read_model_file(source / MODEL_FILE)["meta"]["validation"]["val_loss"]
    tr = Trainer(tiny_config(), tmp_path / "ft", init_from=source)
    assert tr.step == 0 and tr.elapsed_s == 0.0 and tr.rows == []  # no clock offset: the clock starts at 0
    tr.run(steps=40)
    seam, first = tr.rows
    assert seam["step"] == 0 and math.isnan(seam["loss"]) and seam["segment"] == 1
    assert seam["val_loss"] == pytest.approx(src_val, rel=1e-5)
    fresh = Trainer(tiny_config(), tmp_path / "fresh")
    fresh.run(steps=40)
    assert abs(first["loss"] - src_rows[-1]["loss"]) < 0.3
    assert first["loss"] < fresh.rows[0]["loss"] - 1.0
    assert first["val_loss"] < fresh.rows[0]["val_loss"] - 1.0
    # a fresh optimizer: the moments start empty and the warm-up starts again
    assert tr.origin["segment"] == 1 and tr.origin["source_step"] == SOURCE_STEPS
    ckpt = torch.load(tmp_path / "ft" / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    assert ckpt["origin"]["init_from"] == str(source / MODEL_FILE)
    assert read_model_file(tmp_path / "ft" / MODEL_FILE)["meta"]["origin"]["segment"] == 1
    assert (tmp_path / "ft" / "config.yaml").read_text().startswith(f"# this run started from the weights of {source}")


def test_a_mismatched_architecture_is_refused_by_name(source, tmp_path):
    with pytest.raises(InputError, match=r"model\.features \(features\): the configuration's 8, the weights' 4"):
        Trainer(tiny_config(model={"features": 8}), tmp_path / "a", init_from=source)
    with pytest.raises(InputError, match=r"model\.window \(window\): the configuration's 5, the weights' 3"):
        Trainer(tiny_config(model={"window": 5}), tmp_path / "b", init_from=source)
    d = tiny_dict()  # 3D against the source's 2D
    d["psf"] = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}
    d["emitters"]["z_range_nm"] = [-400.0, 400.0]
    with pytest.raises(InputError, match=r"\(is_3d\): the configuration's True, the weights' False"):
        Trainer(TrainConfig.model_validate(d), tmp_path / "c", init_from=source)
    assert not (tmp_path / "a").exists()  # refused before anything was written
    # the other settings follow the configuration, and are named
    tr = Trainer(tiny_config(), tmp_path / "d", init_from=source)
    assert tr.init_notes == []
    d = tiny_dict()
    d["emitters"]["photons_range"] = [1000.0, 10000.0]
    tr = Trainer(TrainConfig.model_validate(d), tmp_path / "e", init_from=source)
    assert any(n.startswith("photon_scale: the weights were trained with 6000") for n in tr.init_notes)
    with pytest.raises(InputError, match="--resume"):
        Trainer(tiny_config(), tmp_path / "f", init_from=source, resume=True)


def test_bfloat16_weights_load_upcast(source, tmp_path):
    path = tmp_path / "wts.pt"
    meta = export_weights(source, path)
    payload = read_model_file(path)
    assert {v.dtype for v in payload["state_dict"].values() if v.is_floating_point()} == {torch.bfloat16}
    assert meta["weights_dtype"] == "bfloat16" and meta["step"] == SOURCE_STEPS
    assert [r["step"] for r in meta["history"]] == [40, 80, 120, 160, 200]
    nbytes = lambda sd: sum(v.numel() * v.element_size() for v in sd.values() if v.is_floating_point())  # noqa: E731
    assert nbytes(payload["state_dict"]) * 2 == nbytes(read_model_file(source / MODEL_FILE)["state_dict"])
    model, _, _ = load_model(path)
    ref, _, _ = load_model(source)
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert a.dtype == b.dtype, k
        if a.is_floating_point():
            torch.testing.assert_close(a, b.to(torch.bfloat16).float(), rtol=0, atol=0)
    tr = Trainer(tiny_config(), tmp_path / "ft", init_from=path, clock_offset_min="source")
    assert tr.origin["weights_dtype"] == "bfloat16"
    tr.run(steps=SOURCE_STEPS + 1)
    src_val = read_model_file(source / MODEL_FILE)["meta"]["validation"]["val_loss"]
    seam = next(r for r in tr.rows if r.get("segment") == 1)
    assert seam["val_loss"] == pytest.approx(src_val, rel=2e-2)  # bf16 rounding moves it a little


def test_an_init_from_run_resumes(source, tmp_path):
    run = tmp_path / "ft"
    tr = Trainer(tiny_config(), run, init_from=source, clock_offset_min="source")
    tr.run(steps=SOURCE_STEPS + 20)
    res = Trainer(tiny_config(), run, resume=True)
    assert res.origin == tr.origin and res.start_step == SOURCE_STEPS and res.segment == 1
    assert res.step == SOURCE_STEPS + 20 and res.elapsed_s == pytest.approx(tr.elapsed_s)
    rates = record_rates(res)
    res.run(steps=SOURCE_STEPS + 40)
    assert rates[0] == pytest.approx(res.config.training.lr)  # the warm-up is not run again
    steps = [r["step"] for r in res.rows]
    segs = [r["segment"] for r in res.rows]
    assert steps == [40, 80, 120, 160, 200, 200, 220, 240]  # no second seam validation on resume
    assert segs == [0, 0, 0, 0, 0, 1, 1, 1]
    with pytest.raises(InputError, match="--resume"):
        Trainer(tiny_config(), run, init_from=source)  # the folder holds a run


def test_the_clock_offset_shows_in_the_log(source, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    save_config(tiny_config(), cfg)
    src_elapsed = read_init_source(source).elapsed_s
    out = tmp_path / "ft"
    assert main(["train", str(cfg), "--out", str(out), "--init-from", str(source), "--clock-offset-min", "source",
                 "--steps", str(SOURCE_STEPS + 40), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert f"the clock goes on from step {SOURCE_STEPS}" in text and "after 5 log rows of the source run" in text
    rows = log_rows(out)
    assert [int(r["step"]) for r in rows] == [40, 80, 120, 160, 200, 200, 240]
    assert [int(r["segment"]) for r in rows] == [0, 0, 0, 0, 0, 1, 1]
    t = [float(r["elapsed_s"]) for r in rows]
    assert t[5] == pytest.approx(src_elapsed, abs=0.01) and t[6] > t[5]
    assert (out / "curves.png").exists()
    # a number of minutes: the time column starts there, the steps at the source's, no rows of the source
    out2 = tmp_path / "ft2"
    assert main(["train", str(cfg), "--out", str(out2), "--init-from", str(source / MODEL_FILE), "--clock-offset-min",
                 "2.5", "--steps", str(SOURCE_STEPS + 10), "--device", "cpu"]) == 0
    capsys.readouterr()
    rows = log_rows(out2)
    assert [int(r["step"]) for r in rows] == [SOURCE_STEPS, SOURCE_STEPS + 10]
    assert float(rows[0]["elapsed_s"]) == pytest.approx(150.0)
    # --steps counts from the offset; the offset needs --init-from; a bad offset is named
    assert main(["train", str(cfg), "--out", str(tmp_path / "ft3"), "--init-from", str(source), "--clock-offset-min",
                 "source", "--steps", "10", "--device", "cpu"]) == 2
    assert f"puts the run at step {SOURCE_STEPS}" in capsys.readouterr().err
    assert main(["train", str(cfg), "--out", str(tmp_path / "ft4"), "--clock-offset-min", "3", "--steps", "3",
                 "--device", "cpu"]) == 2
    assert "give --init-from too" in capsys.readouterr().err
    assert main(["train", str(cfg), "--out", str(tmp_path / "ft5"), "--init-from", str(source), "--clock-offset-min",
                 "soon", "--steps", "3", "--device", "cpu"]) == 2
    assert "'soon'" in capsys.readouterr().err


def test_the_segment_column_is_documented():
    """plexloc columns describes every column a run's log.csv holds: segment too (it said 'not a column plexloc
    writes')."""
    from plexloc.train.log_columns import log_column_doc

    unit, text = log_column_doc("segment")
    assert unit == "" and "--init-from" in text
