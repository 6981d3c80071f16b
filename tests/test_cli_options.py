"""Numeric and file-name options of the sub-commands: impossible values are argparse usage errors (exit code 2,
``argument --x: ...`` naming the value) at parse time, before any file is read or written."""

from __future__ import annotations

import argparse

import pytest

from plexloc.cli import _common
from plexloc.cli.main import build_parser, main

# every command gets inputs that do not exist: a value that passes parsing ends in "not found", not in work
M = "missing_movie.tif"
L = "missing_locs.csv"
C = "missing_config.yaml"

FIT = ["fit", M, "--model", "missing_run", "--out", "o.csv"]
DETECT = ["detect", M, "--config", C, "--out", "o.csv"]
SIMULATE = ["simulate", C, "--frames", "4", "--out", "sim"]
DRIFT = ["drift", L, "--out", "o.csv"]
REGISTER = ["register", L, L, "--out", "T.json"]
COLOR = ["color", L, "--out", "o.csv"]
FRC = ["frc", L]
RENDER = ["render", L, "--out", "i.png"]
FILTER = ["filter", L, "--out", "o.csv"]
REPORT = ["report", L, "--out", "r.html"]
CRLB = ["crlb", C, "--photons", "1000", "--bg", "10"]
CALIBRATE = ["calibrate", M, "--z-step", "50", "--pixel-size", "100", "--out", "PSF.h5"]
CONVERT = ["convert", L, "x.hdf5"]
PRIORS = ["estimate-priors", M, "--config", C, "--out", "p.yaml"]
EVALUATE = ["evaluate", L, L]
MERGE = ["merge", L, "--out", "o.csv"]
DEBIAS = ["debias", L, "--out", "o.csv", "--px-size", "100"]

# (argv, option named in the error, value named in the error)
BAD = [
    (FIT + ["--batch-frames", "0"], "--batch-frames", "0"),
    (FIT + ["--batch-frames", "-3"], "--batch-frames", "-3"),
    (FIT + ["--batch-frames", "2.5"], "--batch-frames", "2.5"),
    (FIT + ["--tile", "0"], "--tile", "0"),
    (FIT + ["--threshold", "1.5"], "--threshold", "1.5"),
    (FIT + ["--threshold", "-0.1"], "--threshold", "-0.1"),
    (FIT + ["--threshold", "0"], "--threshold", "0"),
    (FIT + ["--threshold", "nan"], "--threshold", "nan"),
    (FIT + ["--min-prob", "2"], "--min-prob", "2"),
    (FIT + ["--max-sigma", "-1"], "--max-sigma", "-1"),
    (FIT + ["--min-photons", "-5"], "--min-photons", "-5"),
    (FIT + ["--max-photons", "inf"], "--max-photons", "inf"),
    (FIT + ["--roi-offset", "-1", "0"], "--roi-offset", "-1"),
    (DETECT + ["--chunk", "0"], "--chunk", "0"),
    (DETECT + ["--threshold", "-2"], "--threshold", "-2"),
    (SIMULATE + ["--chunk", "0"], "--chunk", "0"),
    (SIMULATE + ["--chunk", "-2"], "--chunk", "-2"),
    (SIMULATE + ["--density", "nan"], "--density", "nan"),
    (SIMULATE + ["--seed", "-1"], "--seed", "-1"),
    (SIMULATE + ["--frame-size", "0", "32"], "--frame-size", "0"),
    (DRIFT + ["--engine", "rcc", "--max-drift", "0"], "--max-drift", "0"),
    (DRIFT + ["--engine", "rcc", "--max-drift", "-10"], "--max-drift", "-10"),
    (DRIFT + ["--render-px", "0"], "--render-px", "0"),
    (DRIFT + ["--render-px", "-5"], "--render-px", "-5"),
    (DRIFT + ["--segments", "1"], "--segments", "1"),
    (DRIFT + ["--figure", "d.xyz"], "--figure", "d.xyz"),
    (DRIFT + ["--camera-px-size", "0"], "--camera-px-size", "0"),
    (REGISTER + ["--max-shift", "-100"], "--max-shift", "-100"),
    (REGISTER + ["--max-shift", "nan"], "--max-shift", "nan"),
    (REGISTER + ["--camera-px-size", "-1"], "--camera-px-size", "-1"),
    (["register", L, L, "--out", "T.csv"], "--out", "T.csv"),
    (COLOR + ["--colors", "0"], "--colors", "0"),
    (COLOR + ["--colors", "-2"], "--colors", "-2"),
    (COLOR + ["--excess-noise", "-1"], "--excess-noise", "-1"),
    (COLOR + ["--excess-noise", "0.5"], "--excess-noise", "0.5"),
    (COLOR + ["--threshold", "1.1"], "--threshold", "1.1"),
    (COLOR + ["--ratios", "0.7", "-0.3"], "--ratios", "-0.3"),
    (COLOR + ["--min-photons", "-1"], "--min-photons", "-1"),
    (COLOR + ["--figure", "f.jpg"], "--figure", "f.jpg"),
    (FRC + ["--seed", "-1"], "--seed", "-1"),
    (FRC + ["--pixel-size", "nan"], "--pixel-size", "nan"),
    (FRC + ["--pixel-size", "0"], "--pixel-size", "0"),
    (FRC + ["--pixel-size", "-5"], "--pixel-size", "-5"),
    (FRC + ["--figure", "f.pdf"], "--figure", "f.pdf"),
    (RENDER + ["--color-by", "z", "--cmap", "nosuchmap"], "--cmap", "nosuchmap"),
    (RENDER + ["--sigma", "-5"], "--sigma", "-5"),
    (RENDER + ["--pixel-size", "0"], "--pixel-size", "0"),
    (RENDER + ["--z-range", "0", "nan"], "--z-range", "nan"),
    (RENDER + ["--extent", "0", "1", "0", "inf"], "--extent", "inf"),
    (["render", L, "--out", "i.jpg"], "--out", "i.jpg"),
    (FILTER + ["--min-prob", "1.5"], "--min-prob", "1.5"),
    (FILTER + ["--min-prob", "-0.5"], "--min-prob", "-0.5"),
    (FILTER + ["--min-prob", "nan"], "--min-prob", "nan"),
    (FILTER + ["--max-sigma", "-3"], "--max-sigma", "-3"),
    (FILTER + ["--max-sigma-z", "0"], "--max-sigma-z", "0"),
    (FILTER + ["--max-bg", "nan"], "--max-bg", "nan"),
    (FILTER + ["--z-range", "nan", "1"], "--z-range", "nan"),
    (REPORT + ["--camera-px-size", "-100"], "--camera-px-size", "-100"),
    (REPORT + ["--pixel-size", "0"], "--pixel-size", "0"),
    (["report", L, "--out", "r.txt"], "--out", "r.txt"),
    (CRLB + ["--photons", "nan"], "--photons", "nan"),
    (CRLB + ["--bg", "-1"], "--bg", "-1"),
    (CRLB + ["--color", "-1"], "--color", "-1"),
    (CRLB + ["--z", "0,nan"], "--z", "0,nan"),
    (CALIBRATE + ["--pixel-size", "0"], "--pixel-size", "0"),
    (CALIBRATE + ["--pixel-size", "-100"], "--pixel-size", "-100"),
    (CALIBRATE + ["--z-step", "0"], "--z-step", "0"),
    (CALIBRATE + ["--roi-px", "14"], "--roi-px", "14"),
    (CALIBRATE + ["--roi-px", "5"], "--roi-px", "5"),
    (CALIBRATE + ["--saturation-adu", "-1"], "--saturation-adu", "-1"),
    (CONVERT + ["--camera-px-size", "0"], "--camera-px-size", "0"),
    (CONVERT + ["--camera-px-size", "nan"], "--camera-px-size", "nan"),
    (CONVERT + ["--frame-shape", "64", "0"], "--frame-shape", "0"),
    (PRIORS + ["--frames", "0"], "--frames", "0"),
    (["estimate-priors", M, "--config", C, "--out", "p.csv"], "--out", "p.csv"),
    (EVALUATE + ["--max-lat", "0"], "--max-lat", "0"),
    (EVALUATE + ["--max-ax", "-1"], "--max-ax", "-1"),
    (EVALUATE + ["--px-size", "nan"], "--px-size", "nan"),
    (EVALUATE + ["--voxel-ji", "10", "10", "0"], "--voxel-ji", "0"),
    (EVALUATE + ["--voxel-shape", "4", "-4", "4"], "--voxel-shape", "-4"),
    (EVALUATE + ["--voxel-origin", "0", "0", "nan"], "--voxel-origin", "nan"),
    (MERGE + ["--radius", "0"], "--radius", "0"),
    (MERGE + ["--gap", "-1"], "--gap", "-1"),
    (DEBIAS + ["--slab", "0"], "--slab", "0"),
    (DEBIAS + ["--min-count", "0"], "--min-count", "0"),
    (["debias", L, "--out", "o.csv", "--px-size", "-100"], "--px-size", "-100"),
]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv, option, value", BAD, ids=[" ".join(a[0:1] + a[-3:]) for a, _, _ in BAD])
def test_impossible_value_is_a_usage_error(argv, option, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"plexloc {argv[0]}: error: argument {option}") and repr(value) in last, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


# values on the edge of each domain: they parse, and the command stops at the missing input
GOOD = [
    FIT + ["--threshold", "1", "--min-prob", "0", "--batch-frames", "1", "--tile", "1", "--min-photons", "0",
           "--max-photons", "1e4", "--max-sigma", "30", "--roi-offset", "0", "0"],
    DETECT + ["--chunk", "1", "--threshold", "0.5"],
    SIMULATE + ["--chunk", "1", "--seed", "0", "--density", "0"],
    DRIFT + ["--segments", "2", "--max-drift", "1", "--render-px", "0.5", "--figure", "D.PNG"],
    REGISTER + ["--max-shift", "1e4", "--camera-px-size", "108.5"],
    COLOR + ["--colors", "1", "--threshold", "0", "--excess-noise", "2", "--ratios", "1", "0", "--figure", "f.png"],
    FRC + ["--seed", "0", "--pixel-size", "0.5", "--figure", "f.png"],
    RENDER + ["--color-by", "z", "--cmap", "viridis", "--sigma", "1", "--z-range", "-500", "500"],
    FILTER + ["--min-prob", "1", "--max-sigma", "20", "--min-photons", "10", "--max-photons", "10", "--max-bg", "0",
              "--z-range", "-100", "-100"],
    REPORT + ["--camera-px-size", "100", "--pixel-size", "10"],
    CRLB + ["--z=-100,0,100", "--color", "0"],
    CALIBRATE + ["--roi-px", "7", "--saturation-adu", "65535"],
    CONVERT + ["--camera-px-size", "100", "--frame-shape", "64", "64"],
    ["estimate-priors", M, "--config", C, "--out", "p.yml", "--frames", "1"],
    EVALUATE + ["--max-lat", "100", "--max-ax", "200", "--voxel-ji", "192", "192", "400", "--voxel-origin", "-1", "0",
                "-200", "--voxel-shape", "4", "4", "4"],
    MERGE + ["--radius", "0.1", "--gap", "0"],
    DEBIAS + ["--slab", "10", "--min-count", "1"],
]


@pytest.mark.parametrize("argv", GOOD, ids=[a[0] for a in GOOD])
def test_possible_values_parse_and_reach_the_input(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    build_parser().parse_args(argv)  # no usage error
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert "argument" not in err and "not found" in err.lower(), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (FILTER + ["--min-photons", "100", "--max-photons", "10"], "--min-photons 100 is above --max-photons 10"),
        (FILTER + ["--z-range", "100", "-100"], "--z-range"),
        (RENDER + ["--z-range", "500", "-500"], "--z-range"),
        (RENDER + ["--extent", "0", "100", "50", "50"], "--extent"),
    ],
)
def test_contradicting_options_fail_before_reading(argv, message, tmp_path, monkeypatch, capsys):
    """Checked in run(), before the (missing) table is read: an InputError naming the options, not 'not found'."""
    monkeypatch.chdir(tmp_path)
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "not found" not in err, err


def test_calibrate_bad_pixel_size_writes_nothing(tmp_path, capsys):
    """It used to crash only after writing PSF.h5."""
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "beads.tif", np.zeros((3, 16, 16), np.uint16))
    with pytest.raises(SystemExit):
        main(["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "0",
              "--out", str(tmp_path / "PSF.h5")])
    assert "argument --pixel-size" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beads.tif"]


@pytest.mark.parametrize(
    "func, good, bad",
    [
        (_common.positive_int, {"1": 1, "12": 12}, ["0", "-1", "1.5", "x", ""]),
        (_common.nonnegative_int, {"0": 0, "7": 7}, ["-1", "nan", "1e3"]),
        (_common.positive_float, {"1e-9": 1e-9, "3": 3.0}, ["0", "-0.0", "-1", "nan", "inf", "-inf", "x"]),
        (_common.nonnegative_float, {"0": 0.0, "2.5": 2.5}, ["-1e-9", "nan", "inf"]),
        (_common.finite_float, {"-3": -3.0, "0": 0.0}, ["nan", "inf", "-inf", "NaN", "x"]),
        (_common.probability, {"0": 0.0, "1": 1.0, "0.25": 0.25}, ["1.0001", "-0.1", "nan"]),
        (_common.open_probability, {"1": 1.0, "1e-6": 1e-6}, ["0", "1.5", "-0.1", "nan"]),
        (_common.int_at_least(2), {"2": 2}, ["1", "0"]),
        (_common.float_at_least(1.0), {"1": 1.0, "2": 2.0}, ["0.99", "nan"]),
        (_common.path_with_suffix(".yaml", ".yml"), {"a.yaml": None, "B.YML": None}, ["a.csv", "yaml", "a.yaml.txt"]),
    ],
)
def test_type_functions(func, good, bad):
    for text, value in good.items():
        result = func(text)
        assert value is None or result == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {text!r}"):
            func(text)


def test_every_argument_of_every_command_has_a_help_text():
    """`plexloc COMMAND --help` explains every option and argument (a new user found a dozen without a word)."""
    import argparse

    from plexloc.cli.main import build_parser

    missing = []

    def walk(name, parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(f"{name} {sub_name}".strip(), sub)
            elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk("", build_parser())
    assert missing == [], missing
