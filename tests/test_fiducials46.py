"""Session 46 (fiducials): positions given on the command line in any order (--fiducial X,Y, once per marker), the
fiducial options in one list, the uncertainty at --smooth 1 where the drift moves between frames."""

from __future__ import annotations

import argparse
import inspect
import json
import warnings

import numpy as np
import pytest

from plexloc.cli.main import build_parser, main
from plexloc.io.tables import write_table
from plexloc.post.drift import drift_error_rms, estimate_drift
from plexloc.post.fiducials import FiducialWarning, fiducial_settings
from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials, wobbly_drift

N = 1500
POSITIONS = np.array([[2000.0, 2100.0], [6000.0, 3000.0], [4000.0, 6500.0]])


def _table(n_fid: int = 3, *, n: int = N, seed: int = 0, fast: np.ndarray | None = None, **kw):
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(n, 100.0, rng=rng)
    if fast is not None:
        truth = truth + fast
    t = blinking_table(structure_points("lines", 1500, fov_nm=8000.0, rng=rng), n_frames=n, rng=rng, drift_nm=truth)
    t = with_fiducials(t, n_fid, n_frames=n, fov_nm=8000.0, drift_nm=truth, rng=rng, positions_nm=POSITIONS[:n_fid],
                       **kw)
    return t, truth


# --- 1. positions on the command line -------------------------------------------------------------------------------

def test_fiducial_before_the_table_is_one_position_and_the_command_runs(tmp_path, capsys):
    """`plexloc drift --fiducials 100,200 locs.csv --out d` took locs.csv for a second position and failed; --fiducial
    takes one position each, anywhere on the command line (the table after it, as the README's example reads)."""
    t, truth = _table(2)
    src = tmp_path / "locs.csv"
    write_table(t, src)
    out = tmp_path / "dc.csv"
    assert main(["drift", "--engine", "fiducials", "--fiducial", "2000,2100", "--fiducial", "6000,3000", str(src),
                 "--out", str(out), "--json", str(tmp_path / "d.json")]) == 0
    assert "2 used of 2 found" in capsys.readouterr().out
    with open(tmp_path / "d.json") as f:
        d = json.load(f)
    assert [f_["given"] for f_ in d["fiducials"]] == [True, True] and d["positions_given"]
    assert drift_error_rms(np.asarray(d["drift_nm"]), truth) < 2.5


@pytest.mark.parametrize("argv, positions", [
    (["--fiducial", "100,200", "locs.csv", "--out", "d"], [(100.0, 200.0)]),
    (["--fiducial", "100,200", "--fiducial", "300,400.5", "locs.csv", "--out", "d"], [(100.0, 200.0), (300.0, 400.5)]),
    (["locs.csv", "--out", "d", "--fiducial=-5,20"], [(-5.0, 20.0)]),
    # the older spelling keeps working where it did: several after one option, the table before it or after --
    (["locs.csv", "--out", "d", "--fiducials", "1,2", "3,4"], [(1.0, 2.0), (3.0, 4.0)]),
    (["--out", "d", "--fiducials", "1,2", "3,4", "--", "locs.csv"], [(1.0, 2.0), (3.0, 4.0)]),
    # both: --fiducial's first
    (["locs.csv", "--fiducials", "1,2", "--fiducial", "5,6", "--out", "d"], [(5.0, 6.0), (1.0, 2.0)]),
])
def test_positions_parse_in_any_order(argv, positions):
    from plexloc.cli.drift import fiducial_kwargs

    args = build_parser().parse_args(["drift", "--engine", "fiducials"] + argv)
    assert str(args.locs) == "locs.csv" and fiducial_kwargs(args)["positions_nm"] == positions
    movie = build_parser().parse_args(["process", "--drift-engine", "fiducials", "--fiducial", "100,200", "m.tif",
                                       "--model", "m", "--out", "o"])
    assert [str(m) for m in movie.movie] == ["m.tif"] and fiducial_kwargs(movie)["positions_nm"] == [(100.0, 200.0)]


def test_a_bad_position_names_it_and_fiducials_swallowing_the_table_names_the_fix(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["drift", "locs.csv", "--out", "d", "--fiducial", "100"])
    err = capsys.readouterr().err
    assert "argument --fiducial: a fiducial's position must be X,Y in nm" in err and "'100'" in err
    assert "takes every word" not in err  # one position: nothing swallowed
    with pytest.raises(SystemExit):
        build_parser().parse_args(["drift", "--fiducials", "100,200", "locs.csv", "--out", "d"])
    err = capsys.readouterr().err
    assert "argument --fiducials" in err and "got 'locs.csv'" in err
    assert "give each marker as --fiducial X,Y (one position each, anywhere on the command line)" in err


# --- 2. one list of the options -------------------------------------------------------------------------------------

def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_the_fiducial_options_are_one_list_read_by_both_commands_and_the_checks(capsys):
    from plexloc.cli.drift import _fiducial_options, check_fiducial_options, fiducial_kwargs
    from plexloc.errors import InputError

    options = _fiducial_options("--engine")
    flags = [flag for flag, _, _ in options]
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("drift", "process"):
        assert set(flags) <= _flags(sub.choices[command])
    # every keyword of fiducial_settings has an option, and nothing else
    assert {kw for _, kw, _ in options} == set(inspect.signature(fiducial_settings).parameters)
    base = ["drift", "l.csv", "--out", "d"]
    values = {"--fiducial": ["1,2"], "--fiducials": ["1,2"], "--fiducial-min-frames": ["0.4"],
              "--fiducial-min-brightness": ["1"], "--fiducial-radius": ["200"], "--smooth": ["3"],
              "--keep-fiducials": []}
    assert set(values) == set(flags)
    for flag in flags:  # each, given with another engine, is named and refused (--fiducial was not listed before)
        args = parser.parse_args(base + [flag] + values[flag])
        with pytest.raises(InputError, match=f"^{flag}: option\\(s\\) of --engine fiducials only, the engine is rcc"):
            check_fiducial_options(args, "rcc", "--engine")
        with pytest.raises(InputError, match=f"^{flag}: option\\(s\\) of the drift correction, which --no-drift"):
            check_fiducial_options(args, "fiducials", "--drift-engine", no_drift=True)
        check_fiducial_options(args, "fiducials", "--engine")
        kwargs = fiducial_kwargs(args)
        assert fiducial_settings(**kwargs)  # every keyword it gives is one fiducial_settings takes
        assert sum(v not in (None, False) for v in kwargs.values()) == 1
    # plexloc process refuses --fiducial for another engine before anything else
    assert main(["process", "m.tif", "--model", "run", "--out", "o", "--fiducial", "1,2"]) == 2
    assert "--fiducial: option(s) of --drift-engine fiducials only, the engine is rcc" in capsys.readouterr().err


def test_process_options_know_the_keywords_of_fiducial_settings():
    from plexloc import workflow
    from plexloc.errors import InputError

    with pytest.raises(InputError, match="'radius' not known; they are min_share, radius_nm, min_brightness, "
                                         "positions_nm, smooth_frames, keep_fiducials"):
        workflow._check_fiducial_options(workflow.ProcessOptions(model=None, drift_engine="fiducials",
                                                                 fiducial_options={"radius": 3.0}))
