"""bench/pack_weights.py: a run's weights as bfloat16 parts of a size a GPU lease returns, and back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.errors import InputError
from plexloc.nets.io import load_model, read_model_file
from plexloc.train import Trainer

_spec = importlib.util.spec_from_file_location("pack_weights", Path(__file__).resolve().parents[1] / "bench" / "pack_weights.py")
pack_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pack_weights)


@pytest.fixture
def run(tmp_path):
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    Trainer(TrainConfig.model_validate(d), tmp_path / "run").run(steps=6)
    return tmp_path / "run"


def test_pack_and_unpack_round_trip(run, tmp_path):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "wts_tiny.07").write_bytes(b"stale")  # a part of an earlier pack: removed
    parts = pack_weights.pack(run, out, "tiny", part_mib=0.01)
    assert [p.name for p in parts] == [f"wts_tiny.{i:02d}" for i in range(len(parts))] and len(parts) > 1
    assert all(p.stat().st_size <= int(0.01 * 2**20) for p in parts)
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in parts]  # no temporaries left
    meta = pack_weights.unpack(out, "tiny", tmp_path / "w.pt")
    assert meta["weights_dtype"] == "bfloat16" and meta["step"] == 6 and [r["step"] for r in meta["history"]] == [3, 6]
    model, _, _ = load_model(tmp_path / "w.pt")
    ref = read_model_file(run / "model.pt")["state_dict"]
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, ref[k].to(torch.bfloat16).float(), rtol=0, atol=0)
    # a missing part is named; the file is not written
    parts[1].unlink()
    with pytest.raises(InputError, match="01 missing"):
        pack_weights.unpack(out, "tiny", tmp_path / "w2.pt")
    assert not (tmp_path / "w2.pt").exists()
    with pytest.raises(InputError, match="no parts wts_other"):
        pack_weights.unpack(out, "other", tmp_path / "w3.pt")
    with pytest.raises(InputError, match="--stem"):
        pack_weights.pack(run, out, "a/b")


def test_a_cut_short_set_of_parts_is_refused(run, tmp_path):
    parts = pack_weights.pack(run, tmp_path / "out", "tiny", part_mib=0.01)
    parts[-1].unlink()  # the numbers have no gap, but the set is cut short
    with pytest.raises(InputError, match=f"{len(parts) - 1} parts of wts_tiny here, and the pack has {len(parts)}"):
        pack_weights.unpack(tmp_path / "out", "tiny", tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_parts_of_another_pack_and_damaged_parts_are_named(run, tmp_path):
    """Each part's header names its pack (the whole's checksum) and count: an earlier lease's parts left beside the
    new ones, a part cut short in transfer, or a file that is no part are named as such (they were found only by the
    joined file failing to load, an error naming a temporary file)."""
    out, old = tmp_path / "out", tmp_path / "old"
    new_parts = pack_weights.pack(run, out, "tiny", part_mib=0.01)
    Trainer(TrainConfig.model_validate({k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}),
            tmp_path / "run2").run(steps=3)
    old_parts = pack_weights.pack(tmp_path / "run2", old, "tiny", part_mib=0.004)
    assert len(old_parts) > len(new_parts)
    for p in old_parts[len(new_parts):]:  # the earlier, longer pack's last parts left in the folder
        (out / p.name).write_bytes(p.read_bytes())
    with pytest.raises(InputError, match="come from 2 different packs"):
        pack_weights.unpack(out, "tiny", tmp_path / "w.pt")
    for p in old_parts[len(new_parts):]:
        (out / p.name).unlink()
    data = new_parts[1].read_bytes()
    new_parts[1].write_bytes(data[:-100])  # cut short in transfer
    with pytest.raises(InputError, match="damaged"):
        pack_weights.unpack(out, "tiny", tmp_path / "w.pt")
    new_parts[1].write_bytes(b"not a part")
    with pytest.raises(InputError, match="no header line"):
        pack_weights.unpack(out, "tiny", tmp_path / "w.pt")
    new_parts[1].write_bytes(data)
    assert pack_weights.unpack(out, "tiny", tmp_path / "w.pt")["step"] == 6
    assert not (tmp_path / "w.pt.tmp").exists()


def test_the_bench_curve_marks_each_optimizer_restart(tmp_path):
    """bench/accuracy.py's time to plateau over the log of a run continued across leases: one curve, each seam
    (a change of the log's segment) with its minutes, step and the efficiency on either side."""
    spec = importlib.util.spec_from_file_location("accuracy_bench", Path(__file__).resolve().parents[1] / "bench" / "accuracy.py")
    accuracy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(accuracy)
    rows = [(100, 60, 0, 50.0), (200, 120, 0, 60.0), (200, 120, 1, 59.5), (300, 180, 1, 64.0), (300, 180, 2, 64.0),
            (400, 240, 2, 65.0)]
    log = tmp_path / "log.csv"
    log.write_text("step,elapsed_s,eff_lat,segment\n" + "".join(f"{s},{t},{e},{g}\n" for s, t, g, e in rows))
    tta = accuracy.time_to_plateau(log, "eff_lat")
    assert tta["curve_minutes"] == [1.0, 2.0, 2.0, 3.0, 3.0, 4.0]
    assert tta["seams"] == [{"minutes": 2.0, "step": 200, "segment": 1, "eff_before": 60.0, "eff_after": 59.5},
                            {"minutes": 3.0, "step": 300, "segment": 2, "eff_before": 64.0, "eff_after": 64.0}]
    assert tta["minutes_to_plateau"] == 3.0
    log.write_text("step,elapsed_s,eff_lat\n100,60,50\n200,120,60\n300,180,64\n")  # a run from scratch: no seams
    assert accuracy.time_to_plateau(log, "eff_lat")["seams"] == []
