"""The sub-commands as a user sees them: one name per concept (aliases where commands disagreed), outputs that cannot
be written refused before the work (and before any other output is written), exit code 2 and one line for a user's
mistake."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from plexloc.cli import _common
from plexloc.cli.main import build_parser, main
from plexloc.errors import InputError
from plexloc.io.tables import write_csv
from plexloc.table import LocTable

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIG = EXAMPLES / "2d_gaussian.yaml"


def _locs(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    table = LocTable({
        "frame": np.sort(rng.integers(0, 50, n)), "x_nm": rng.uniform(0, 3000, n), "y_nm": rng.uniform(0, 3000, n),
        "z_nm": np.zeros(n), "photons": rng.uniform(500, 5000, n),
        "sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 10.0),
    })
    write_csv(table, path)
    return path


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _not_reached(*args, **kwargs):
    raise AssertionError("the work started although an output cannot be written")


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    """A plain file, used as if it were a folder: ``afile/out.csv`` cannot be written."""
    path = tmp_path / "afile"
    path.write_text("")
    return path


def _one_line_error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"plexloc {command}: error: "), err
    for needle in needles:
        assert needle in last, err
    return last


# --- outputs refused before the work ------------------------------------------------------------------------------


def test_detect_refuses_an_unwritable_out_before_reading_the_movie(tmp_path, afile, monkeypatch, capsys):
    """It detected the whole movie and only then found that --out could not be written."""
    import plexloc.io.tiff

    monkeypatch.setattr(plexloc.io.tiff, "open_movie", _not_reached)
    out = afile / "locs.csv"
    assert _run(["detect", str(tmp_path / "movie.tif"), "--config", str(CONFIG), "--out", str(out),
                 "--device", "cpu"]) == 2
    _one_line_error(capsys, "detect", str(out), "is a file, not a folder")


def test_detect_refuses_a_read_only_format_before_the_work(tmp_path, monkeypatch, capsys):
    import plexloc.io.tiff

    monkeypatch.setattr(plexloc.io.tiff, "open_movie", _not_reached)
    assert _run(["detect", str(tmp_path / "movie.tif"), "--config", str(CONFIG), "--out",
                 str(tmp_path / "locs_sml.mat"), "--device", "cpu"]) == 2
    _one_line_error(capsys, "detect", "does not write them")


def test_estimate_priors_refuses_an_unwritable_json_before_the_fits(tmp_path, afile, monkeypatch, capsys):
    """The priors were estimated and --out written before --json failed (exit 2, one of two outputs written)."""
    import plexloc.mle.priors

    monkeypatch.setattr(plexloc.mle.priors, "estimate_priors", _not_reached)
    out = tmp_path / "priors.yaml"
    assert _run(["estimate-priors", str(tmp_path / "movie.tif"), "--config", str(CONFIG), "--out", str(out),
                 "--json", str(afile / "p.json"), "--device", "cpu"]) == 2
    _one_line_error(capsys, "estimate-priors", "p.json", "is a file, not a folder")
    assert not out.exists()


def test_drift_refuses_an_unwritable_json_before_the_estimate(tmp_path, afile, monkeypatch, capsys):
    """--json was written last: an unwritable one left the corrected table and its figure behind, exit code 2."""
    import plexloc.post.drift

    monkeypatch.setattr(plexloc.post.drift, "estimate_drift", _not_reached)
    locs = _locs(tmp_path / "locs.csv")
    out = tmp_path / "corrected.csv"
    assert _run(["drift", str(locs), "--out", str(out), "--engine", "rcc", "--json", str(afile / "d.json")]) == 2
    _one_line_error(capsys, "drift", "d.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "locs.csv"]


def test_drift_refuses_picasso_without_pixel_size_before_the_estimate(tmp_path, monkeypatch, capsys):
    import plexloc.post.drift

    monkeypatch.setattr(plexloc.post.drift, "estimate_drift", _not_reached)
    locs = _locs(tmp_path / "locs.csv")
    assert _run(["drift", str(locs), "--out", str(tmp_path / "c.hdf5"), "--engine", "rcc"]) == 2
    _one_line_error(capsys, "drift", "--camera-px-size")


def test_filter_unwritable_json_leaves_no_table(tmp_path, afile, capsys):
    """The table was written, then --json failed: exit code 2 with a new table in place."""
    locs = _locs(tmp_path / "locs.csv")
    out = tmp_path / "kept.csv"
    assert _run(["filter", str(locs), "--out", str(out), "--min-photons", "1000", "--json", str(afile / "f.json")]) == 2
    _one_line_error(capsys, "filter", "f.json")
    assert not out.exists()


def test_frc_unwritable_figure_leaves_no_json(tmp_path, afile, capsys):
    """--json was written, then --figure failed."""
    locs = _locs(tmp_path / "locs.csv")
    js = tmp_path / "frc.json"
    assert _run(["frc", str(locs), "--json", str(js), "--figure", str(afile / "frc.png")]) == 2
    _one_line_error(capsys, "frc", "frc.png")
    assert not js.exists()


@pytest.mark.parametrize("command, module, name", [
    ("merge", "plexloc.post.merge", "merge_localizations"),
    ("convert", "plexloc.io.formats", "read_locs"),
    ("color", "plexloc.post.color", "photon_matrix"),
    ("debias", "plexloc.post.debias", "debias"),
])
def test_table_commands_refuse_an_unwritable_out_before_the_work(command, module, name, tmp_path, afile, monkeypatch,
                                                                 capsys):
    import importlib

    monkeypatch.setattr(importlib.import_module(module), name, _not_reached)
    locs = _locs(tmp_path / "locs.csv")
    out = afile / "out.csv"
    argv = [command, str(locs)] + ([str(out)] if command == "convert" else ["--out", str(out)])
    argv += ["--px-size", "100"] if command == "debias" else []
    assert _run(argv) == 2
    _one_line_error(capsys, command, "is a file, not a folder")


@pytest.mark.parametrize("argv, name", [
    (["evaluate", "{locs}", "{locs}", "--json", "{bad}/m.json"], "m.json"),
    (["columns", "{locs}", "--json", "{bad}/c.json"], "c.json"),
    (["render", "{locs}", "--out", "{bad}/i.png"], "i.png"),
    (["report", "{locs}", "--out", "{bad}/r.html"], "r.html"),
    (["register", "{locs}", "{locs}", "--out", "{bad}/T.json"], "T.json"),
    (["crlb", str(CONFIG), "--photons", "1000", "--bg", "10", "--json", "{bad}/c.json"], "c.json"),
])
def test_unwritable_output_named_before_reading(argv, name, tmp_path, afile, monkeypatch, capsys):
    """Checked first: the input is never read (its reader would fail the test)."""
    import plexloc.cli._locs

    monkeypatch.setattr(plexloc.cli._locs, "read", _not_reached)
    locs = _locs(tmp_path / "locs.csv")
    argv = [a.format(locs=locs, bad=afile) for a in argv]
    if argv[0] == "crlb":  # reads no table: its configuration must not be loaded
        import plexloc.config

        monkeypatch.setattr(plexloc.config, "load_config", _not_reached)
    assert _run(argv) == 2
    _one_line_error(capsys, argv[0], name, "is a file, not a folder")


def test_calibrate_refuses_an_unwritable_out_before_reading_the_beads(tmp_path, afile, monkeypatch, capsys):
    import plexloc.cli.calibrate

    monkeypatch.setattr(plexloc.cli.calibrate, "_read_stacks", _not_reached)
    assert _run(["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--out",
                 str(afile / "PSF.h5")]) == 2
    _one_line_error(capsys, "calibrate", "PSF.h5", "is a file, not a folder")


def test_calibrate_camera_refuses_an_unwritable_figure_before_reading_the_frames(tmp_path, afile, monkeypatch, capsys):
    import plexloc.camera.calibration

    monkeypatch.setattr(plexloc.camera.calibration, "movie_stats", _not_reached)
    assert _run(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--flat", str(tmp_path / "f.tif"),
                 "--kind", "scmos", "--out", str(tmp_path / "cam.yaml"), "--figure", str(afile / "cam.png")]) == 2
    _one_line_error(capsys, "calibrate-camera", "cam.png")


def test_check_outputs(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "file").write_text("")
    _common.check_outputs(None, tmp_path / "new" / "deeper" / "a.json", table=tmp_path / "a.csv")  # made later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.csv"]  # nothing created
    with pytest.raises(InputError, match="a folder of that name exists"):
        _common.check_outputs(tmp_path / "folder.csv")
    with pytest.raises(InputError, match="is a file, not a folder"):
        _common.check_outputs(tmp_path / "file" / "sub" / "a.json")
    with pytest.raises(InputError, match="does not write"):
        _common.check_outputs(table=tmp_path / "a_sml.mat")
    with pytest.raises(InputError, match="--camera-px-size"):
        _common.check_outputs(table=tmp_path / "a.hdf5")
    _common.check_outputs(table=tmp_path / "a.hdf5", px_size_nm=100.0)
    with pytest.raises(InputError, match="unknown table format"):
        _common.check_outputs(table=tmp_path / "a.txt")


# --- one name per concept -------------------------------------------------------------------------------------------


def test_calibrate_takes_camera_px_size_as_the_other_commands_do():
    """calibrate called the camera pixel --pixel-size, which is the rendered image's pixel in render, frc and report."""
    base = ["calibrate", "beads.tif", "--z-step", "50", "--out", "PSF.h5"]
    assert build_parser().parse_args(base + ["--camera-px-size", "108"]).pixel_size == 108.0
    assert build_parser().parse_args(base + ["--pixel-size", "108"]).pixel_size == 108.0  # old scripts


def test_estimate_priors_takes_max_frames_as_calibrate_camera_does():
    base = ["estimate-priors", "movie.tif", "--config", "c.yaml", "--out", "p.yaml"]
    assert build_parser().parse_args(base + ["--max-frames", "300"]).frames == 300
    assert build_parser().parse_args(base + ["--frames", "300"]).frames == 300
    assert build_parser().parse_args(base).frames == 2000


def test_debias_takes_the_camera_pixel_from_camera_px_size(tmp_path, capsys):
    """debias had --px-size (required) and --camera-px-size, both the camera pixel: --camera-px-size alone was a
    usage error."""
    locs = _locs(tmp_path / "locs.csv", n=600)
    out = tmp_path / "flat.csv"
    assert _run(["debias", str(locs), "--out", str(out), "--camera-px-size", "100", "--min-count", "10"]) == 0
    assert out.exists()
    out.unlink()
    assert _run(["debias", str(locs), "--out", str(out), "--px-size", "100", "--min-count", "10"]) == 0  # old scripts
    out.unlink()
    capsys.readouterr()
    assert _run(["debias", str(locs), "--out", str(out), "--px-size", "100", "--camera-px-size", "110"]) == 2
    _one_line_error(capsys, "debias", "disagree")
    assert _run(["debias", str(locs), "--out", str(out)]) == 2
    _one_line_error(capsys, "debias", "--camera-px-size")
    assert not out.exists()


def test_every_device_option_says_its_default():
    """--help of fit said 'auto, cpu or cuda[:N]' (no default), simulate 'cuda' without an index."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = 0
    for name, p in sub.choices.items():
        for action in p._actions:
            if "--device" in action.option_strings:
                seen += 1
                assert "default" in action.help and "cuda[:N]" in action.help, (name, action.help)
                assert f"{action.default} (default" in action.help, (name, action.help)
    assert seen >= 7


def test_demo_refuses_a_negative_seed_up_front(tmp_path, capsys):
    """demo --seed took any integer, and a seed under -1000 failed only in its first step (simulate's seed is
    --seed + 1000, which must be >= 0); refused by the parser now, as simulate's and frc's."""
    with pytest.raises(SystemExit) as err:
        main(["demo", "--seed", "-2000", "--out", str(tmp_path / "d")])
    assert err.value.code == 2 and "--seed" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_mle_fit_and_priors_name_the_configuration_whose_channels_do_not_match_the_movies(tmp_path, capsys):
    """`fit --method mle` and `estimate-priors` with a two-channel configuration and one movie said "the configuration
    has 2 channel(s) but 1 movie(s)" without naming the configuration's file; nothing is written."""
    import tifffile

    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.full((3, 16, 16), 100, dtype=np.uint16))
    config = Path(__file__).resolve().parents[1] / "examples" / "biplane.yaml"
    for argv, out in ((["fit", str(movie), "--method", "mle", "--config", str(config), "--out"], "x.csv"),
                      (["estimate-priors", str(movie), "--config", str(config), "--out"], "p.yaml")):
        assert main([*argv, str(tmp_path / out), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"{config}: the configuration has 2 channel(s) but 1 movie(s)" in err, err
        assert not (tmp_path / out).exists()


def test_evaluate_says_when_truth_and_predictions_look_swapped(tmp_path, capsys):
    """`plexloc evaluate locs.csv truth.csv` (the fit first) scored silently with the two exchanged."""
    rng = np.random.default_rng(0)
    n = 50
    xy = rng.uniform(0, 5000, (n, 2))
    truth = LocTable({"frame": np.arange(n), "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(n),
                      "photons": np.full(n, 1000.0)})
    fit = LocTable({"frame": np.arange(n), "x_nm": xy[:, 0] + 5, "y_nm": xy[:, 1], "z_nm": np.zeros(n),
                    "photons": np.full(n, 1000.0), "prob": np.full(n, 0.9), "sigma_x_nm": np.full(n, 10.0),
                    "sigma_y_nm": np.full(n, 10.0)})
    write_csv(truth, tmp_path / "truth.csv")
    write_csv(fit, tmp_path / "locs.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "locs.csv")]) == 0
    assert "swapped" not in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "locs.csv"), str(tmp_path / "truth.csv")]) == 0
    err = capsys.readouterr().err
    assert "locs.csv has columns only a fit writes (prob, sigma_x_nm)" in err and "were the two swapped?" in err
