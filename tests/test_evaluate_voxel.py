"""Voxel-level Jaccard index (seed 002, Aritake et al.): hand-made cases with known voxel counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.evaluate.voxel import voxel_jaccard
from plexloc.io.tables import write_table
from plexloc.table import LocTable

VOX = (192.0, 192.0, 400.0)


def table(rows):
    a = np.asarray(rows, dtype=float).reshape(-1, 4)
    return LocTable({"frame": a[:, 0].astype(np.int64), "x_nm": a[:, 1], "y_nm": a[:, 2], "z_nm": a[:, 3],
                     "photons": np.full(len(a), 1000.0)})


def test_hand_made_counts():
    truth = table([
        (0, 100, 100, 0),     # voxel (0, 0, 0) of frame 0
        (0, 150, 50, 150),    # the same voxel: still one positive voxel
        (0, 500, 100, 400),   # voxel (2, 0, 1)
        (1, 100, 100, 0),     # frame 1, voxel (0, 0, 0)
    ])
    pred = table([
        (0, 180, 20, -150),   # in (0, 0, 0): TP
        (0, 300, 100, 400),   # (1, 0, 1): FP, the neighbour of (2, 0, 1), which is then FN
        (2, 100, 100, 0),     # frame 2 has no molecule: FP
    ])                        # frame 1's voxel is missed: FN
    vj = voxel_jaccard(truth, pred, voxel_nm=VOX)
    assert (vj.tp, vj.fp, vj.fn) == (1, 2, 2)
    assert vj.jaccard == pytest.approx(100 * 1 / 5)
    assert vj.origin_nm == (0.0, 0.0, -200.0)


def test_axial_voxels_are_centred_on_the_focal_planes_and_positions_within_a_voxel_do_not_matter():
    # z = 199 and z = -199 share voxel 0 (centred on the reference plane); z = 201 is voxel 1 (plane at 400)
    truth = table([(0, 96, 96, 199), (0, 96, 96, 201)])
    assert voxel_jaccard(truth, table([(0, 10, 180, -199), (0, 190, 5, 599)]), voxel_nm=VOX).jaccard == 100.0
    vj = voxel_jaccard(truth, table([(0, 96, 96, -201)]), voxel_nm=VOX)  # below the first voxel
    assert (vj.tp, vj.fp, vj.fn) == (0, 1, 2)


def test_shape_limits_the_target_space_and_the_table_4_numbers():
    truth = table([(0, 100, 100, 0), (0, 64 * 192 + 5, 100, 0), (0, 100, 100, 1500)])  # 2nd and 3rd outside
    pred = table([(0, 100, 100, 0), (0, -5, 100, 0)])                                    # 2nd outside
    vj = voxel_jaccard(truth, pred, voxel_nm=VOX, shape=(64, 64, 4))
    assert (vj.tp, vj.fp, vj.fn, vj.truth_outside, vj.pred_outside) == (1, 0, 0, 2, 1)
    assert voxel_jaccard(truth, pred, voxel_nm=VOX).fn == 2  # unbounded: all count
    # the paper's Table 4 (22,878 TP, 1,844 FP, 2,089 FN) is their 85.3 %: tables with those voxel counts
    rng = np.random.default_rng(0)
    cells = rng.permutation(64 * 64 * 4 * 2)[: 22878 + 1844 + 2089]  # distinct voxels of two frames
    f, rest = np.divmod(cells, 64 * 64 * 4)
    k, rest = np.divmod(rest, 64 * 64)
    j, i = np.divmod(rest, 64)
    centre = np.column_stack([f, (i + 0.5) * VOX[0], (j + 0.5) * VOX[1], k * VOX[2]])
    both, fp_only, fn_only = np.split(centre, [22878, 22878 + 1844])
    vj = voxel_jaccard(table(np.concatenate([both, fn_only])), table(np.concatenate([both, fp_only])), voxel_nm=VOX,
                       shape=(64, 64, 4))
    assert (vj.tp, vj.fp, vj.fn) == (22878, 1844, 2089) and vj.jaccard == pytest.approx(85.33, abs=0.01)


def test_empty_tables_and_bad_arguments():
    empty = table(np.zeros((0, 4)))
    vj = voxel_jaccard(empty, empty, voxel_nm=VOX)
    assert (vj.tp, vj.fp, vj.fn, vj.jaccard) == (0, 0, 0, 0.0)
    with pytest.raises(InputError, match="voxel_nm"):
        voxel_jaccard(empty, empty, voxel_nm=(192.0, 0.0, 400.0))
    with pytest.raises(InputError, match="voxel shape"):
        voxel_jaccard(empty, empty, shape=(64, 64))


def test_cli_voxel_ji(tmp_path, capsys):
    truth = table([(0, 100, 100, 0), (0, 500, 100, 400), (1, 100, 100, 0)])
    pred = table([(0, 120, 110, 30), (0, 300, 100, 400)])
    write_table(truth, tmp_path / "t.csv")
    write_table(pred, tmp_path / "p.csv")
    out = tmp_path / "m.json"
    assert main(["evaluate", str(tmp_path / "t.csv"), str(tmp_path / "p.csv"), "--voxel-ji", "192", "192", "400",
                 "--voxel-shape", "64", "64", "4", "--json", str(out)]) == 0
    assert "voxel_jaccard  25.00 %" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert (d["voxel_tp"], d["voxel_fp"], d["voxel_fn"]) == (1, 1, 2) and d["voxel_jaccard"] == pytest.approx(25.0)
    assert d["voxel_shape"] == [64, 64, 4] and d["voxel_origin_nm"] == [0.0, 0.0, -200.0]
    assert main(["evaluate", str(tmp_path / "t.csv"), str(tmp_path / "p.csv"), "--voxel-shape", "4", "4", "4"]) == 2
    assert "--voxel-ji" in capsys.readouterr().err
