"""The CLI contract: simulate, detect, crlb, demo; bad input -> one line, exit code 2, no partial files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from plexloc.cli.main import main
from plexloc.io.tables import read_table
from plexloc.io.tiff import read_movie

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def small_config(tmp_path: Path, name: str = "2d_gaussian.yaml", **overrides) -> Path:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    data["frame_size"] = [24, 20]
    data.update(overrides)
    path = tmp_path / f"small_{name}"
    path.write_text(yaml.safe_dump(data))
    return path


def test_simulate_writes_movie_truth_and_config(tmp_path):
    cfg = small_config(tmp_path)
    out = tmp_path / "sim"
    assert main(["simulate", str(cfg), "--frames", "30", "--out", str(out), "--seed", "3", "--device", "cpu",
                 "--chunk", "7"]) == 0
    movie = read_movie(out / "movie.tif")
    assert movie.shape == (30, 24, 20) and movie.dtype == np.uint16
    truth = read_table(out / "truth.csv")
    assert set(truth["frame"]) <= set(range(30)) and len(truth) > 0
    assert truth.columns[:5] == ["frame", "x_nm", "y_nm", "z_nm", "photons"]
    assert (truth["x_nm"] >= 0).all() and (truth["x_nm"] <= 2000).all() and (truth["y_nm"] <= 2400).all()
    assert (out / "config.yaml").exists()
    # same seed -> same movie; the chunk size does not change the truth
    out2 = tmp_path / "sim2"
    assert main(["simulate", str(cfg), "--frames", "30", "--out", str(out2), "--seed", "3", "--device", "cpu"]) == 0
    assert read_table(out2 / "truth.csv") == truth


def test_simulate_lights_the_edges_from_outside_unless_margin_0(tmp_path):
    """By default emitters just outside the field light its edges (a real movie's do); --margin-px 0 ends the sample
    at the edge, where the frames are then dimmer than in their middle."""
    cfg = small_config(tmp_path)
    edge_over_middle = {}
    for margin in (None, "0"):
        out = tmp_path / f"m{margin}"
        extra = ["--margin-px", margin] if margin is not None else []
        assert main(["simulate", str(cfg), "--frames", "300", "--out", str(out), "--density", "2", "--device", "cpu",
                     *extra]) == 0
        m = read_movie(out / "movie.tif").astype(np.float64)
        cols = m.mean(axis=(0, 1)) - np.median(m)  # signal over the flat background, per column
        edge_over_middle[margin] = float((cols[0] + cols[-1]) / 2 / cols[8:12].mean())
    assert edge_over_middle[None] > 0.85 and edge_over_middle["0"] < 0.65, edge_over_middle  # 0.99 and 0.50


def test_simulate_density_override_changes_emitter_count(tmp_path):
    cfg = small_config(tmp_path)
    counts = []
    for d in ("0.5", "4"):
        out = tmp_path / f"d{d}"
        assert main(["simulate", str(cfg), "--frames", "200", "--out", str(out), "--density", d, "--device", "cpu"]) == 0
        counts.append(len(read_table(out / "truth.csv")) / 200)
    area = 2.4 * 2.0
    assert counts[0] == pytest.approx(0.5 * area, rel=0.2)
    assert counts[1] == pytest.approx(4 * area, rel=0.1)


def test_simulate_multichannel_names(tmp_path):
    cfg = small_config(tmp_path, "dual_color.yaml")
    out = tmp_path / "dc"
    assert main(["simulate", str(cfg), "--frames", "5", "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "movie_ch0.tif").exists() and (out / "movie_ch1.tif").exists() and not (out / "movie.tif").exists()
    truth = read_table(out / "truth.csv")
    assert {"color", "photons_ch0", "photons_ch1"} <= set(truth.columns)


def test_crlb_json_keys_and_values(tmp_path):
    out = tmp_path / "c.json"
    assert main(["crlb", str(EXAMPLES / "3d_astigmatic.yaml"), "--photons", "2000", "--bg", "50", "--z", "0",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "crlb_photons"):
        assert math.isfinite(data[key]) and data[key] > 0
    # symmetric astigmatism (c = -250, +250): x and y bounds are equal in focus
    assert data["crlb_x_nm"] == pytest.approx(data["crlb_y_nm"], rel=1e-6)
    out2d = tmp_path / "c2.json"
    assert main(["crlb", str(EXAMPLES / "2d_gaussian.yaml"), "--photons", "2000", "--bg", "50", "--json", str(out2d)]) == 0
    assert json.loads(out2d.read_text())["crlb_z_nm"] is None  # a 2D PSF has no z bound


def test_crlb_photons_are_the_total_over_linked_channels(tmp_path):
    """--photons is the emitter's total, as the truth's photons column: four quad-plane channels of throughput 1
    each see a quarter of it each (the bound was computed for four times the photons, about half as large)."""
    import torch

    from plexloc.config import load_config
    from plexloc.evaluate.crlb import crlb
    from plexloc.simulation import Simulator

    out = tmp_path / "q.json"
    assert main(["crlb", str(EXAMPLES / "quad_plane.yaml"), "--photons", "4000", "--bg", "10", "--json", str(out)]) == 0
    got = json.loads(out.read_text())["crlb_x_nm"]
    sim = Simulator(load_config(EXAMPLES / "quad_plane.yaml"))
    ref = sim.channels[0].psf

    def bound(fractions):
        return float(crlb([(ch.psf, ch.camera) for ch in sim.channels], x_nm=(ref.roi_px[1] + 0.5) * ref.px_size_nm[0],
                          y_nm=(ref.roi_px[0] + 0.5) * ref.px_size_nm[1], z_nm=torch.zeros(1, dtype=torch.float64),
                          photons=4000.0, bg=10.0, transforms=[ch.transform for ch in sim.channels],
                          z_offsets_nm=[ch.z_offset_nm for ch in sim.channels], photon_fractions=fractions)["crlb_x_nm"][0])

    assert got == pytest.approx(bound([0.25] * 4), rel=1e-6)
    assert bound([1.0] * 4) < 0.6 * got  # what it said before


def test_detect_then_evaluate_finds_bright_emitters(tmp_path):
    cfg = small_config(tmp_path, emitters={"density_per_um2": 0.3, "photons_range": [3000.0, 6000.0],
                                           "on_time_frames": 1.0, "z_range_nm": [0.0, 0.0]})
    out = tmp_path / "s"
    assert main(["simulate", str(cfg), "--frames", "60", "--out", str(out), "--device", "cpu"]) == 0
    assert main(["detect", str(out / "movie.tif"), "--config", str(cfg), "--out", str(out / "locs.csv"),
                 "--device", "cpu", "--chunk", "16"]) == 0
    js = tmp_path / "m.json"
    assert main(["evaluate", str(out / "truth.csv"), str(out / "locs.csv"), "--dim", "2", "--json", str(js)]) == 0
    m = json.loads(js.read_text())
    assert m["precision"] > 80 and m["rmse_lat"] < 60
    # the name says the format: a ThunderSTORM file (frames from 1) that reads back as the same rows
    from plexloc.io import read_locs, read_table

    assert main(["detect", str(out / "movie.tif"), "--config", str(cfg), "--out", str(out / "locs.thunderstorm.csv"),
                 "--device", "cpu"]) == 0
    ts, ours = read_locs(out / "locs.thunderstorm.csv"), read_table(out / "locs.csv")
    assert len(ts) == len(ours) and np.array_equal(ts["frame"], ours["frame"])
    assert (out / "locs.thunderstorm.csv").read_text().splitlines()[1].split(",")[0] == str(int(ours["frame"][0]) + 1)
    assert main(["detect", str(out / "movie.tif"), "--config", str(cfg), "--out", str(out / "p.hdf5")]) == 2
    assert not (out / "p.hdf5").exists()


@pytest.mark.parametrize(
    "argv_tail, expect",
    [
        (["--frames", "0"], "--frames"),
        (["--frames", "3", "--density", "-1"], "--density"),
        (["--frames", "3", "--margin-px", "-1"], "--margin-px"),
    ],
)
def test_simulate_bad_arguments(tmp_path, capsys, argv_tail, expect):
    rc = main(["simulate", str(small_config(tmp_path)), "--out", str(tmp_path / "o"), *argv_tail])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0]


def test_bad_config_field_names_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("psf: {kind: gaussian, sigma_nm: -3}\ncamera: {kind: emccd}\n")
    rc = main(["simulate", str(bad), "--frames", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.yaml" in err and "sigma_nm" in err and "-3" in err
    assert not (tmp_path / "o" / "movie.tif").exists()


def test_detect_not_a_tiff_exit_2_and_no_output(tmp_path, capsys):
    fake = tmp_path / "movie.tif"
    fake.write_bytes(b"this is not a tiff")
    out = tmp_path / "locs.csv"
    rc = main(["detect", str(fake), "--config", str(EXAMPLES / "2d_gaussian.yaml"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "movie.tif" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [fake]


def test_detect_wrong_rank_tiff(tmp_path, capsys):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 8, 8), dtype=np.uint16))
    rc = main(["detect", str(path), "--config", str(EXAMPLES / "2d_gaussian.yaml"), "--out", str(tmp_path / "l.csv")])
    assert rc == 2 and "rgb.tif" in capsys.readouterr().err


def test_crlb_bad_values(tmp_path, capsys):
    assert main(["crlb", str(EXAMPLES / "2d_gaussian.yaml"), "--photons", "0", "--bg", "1"]) == 2
    assert "--photons" in capsys.readouterr().err


def test_cuda_request_without_cuda_is_clear(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    rc = main(["simulate", str(small_config(tmp_path)), "--frames", "2", "--out", str(tmp_path / "o"), "--device", "cuda"])
    assert rc == 2 and "no CUDA device" in capsys.readouterr().err


def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # --threads reaches torch (the test keeps its own)
    out = tmp_path / "demo"
    # the pipeline end to end with seconds of training (the accuracy bar is tests/test_train_accuracy.py)
    assert main(["demo", "--out", str(out), "--frames", "20", "--frame-size", "40", "48", "--minutes", "0.05",
                 "--device", "cpu", "--threads", "1"]) == 0
    assert threads[:2] == [1, 1]  # demo, then train (the PSF check sets 1 and restores its own)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_truth"] > 0 and "jaccard" in metrics
    for name in ("movie.tif", "truth.csv", "locs.csv", "run/model.pt", "run/curves.png", "run/log.csv", "render.png"):
        assert (out / name).stat().st_size > 0, name
    printed = capsys.readouterr().out
    assert "jaccard" in printed.lower() and "== train" in printed and "== fit" in printed


def test_building_the_parser_does_not_import_torch():
    """Every `plexloc` command (the service's workers too) parses its arguments without loading torch."""
    import subprocess
    import sys

    code = "import sys, plexloc.cli.main as m; m.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_columns_explains_every_column_of_a_table(tmp_path, capsys):
    """`plexloc columns LOCS`: each column's unit, meaning and range, non-finite values counted, foreign columns
    marked; without LOCS every documented column, each with a unit."""
    from plexloc.io import write_table
    from plexloc.table import COLUMN_DOCS, LocTable

    t = LocTable({"frame": [0, 1, 2], "x_nm": [10.0, 20.0, 30.0], "y_nm": [1.0, 2.0, 3.0], "z_nm": [0.0, 0.0, 0.0],
                  "photons": [100.0, 200.0, 300.0], "bg_ch1": [5.0, float("nan"), 7.0], "my_score": [1.0, 2.0, 9.0]})
    write_table(t, tmp_path / "t.csv")
    assert main(["columns", str(tmp_path / "t.csv"), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "3 rows, 7 columns" in out and "background photons per pixel per frame in channel 1" in out
    assert "5 .. 6 .. 7, 1 not finite" in out and "not a plexloc column" in out
    rows = {r["column"]: r for r in json.loads((tmp_path / "c.json").read_text())["columns"]}
    assert rows["x_nm"]["unit"] == "nm" and rows["x_nm"]["median"] == 20.0 and rows["my_score"]["description"] is None
    assert main(["columns"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == len(COLUMN_DOCS) and all("[" in line for line in listing)


def test_example_configurations_are_installed_and_found_anywhere(tmp_path, monkeypatch, capsys):
    """`plexloc demo` outside the repository failed with 'examples/demo_2d.yaml: configuration not found': the
    examples are installed with the package (`plexloc examples` lists and copies them) and examples/NAME.yaml
    falls back to the installed copy where the path does not exist."""
    from plexloc.config import load_config
    from plexloc.config.examples import example_names, resolve_config_path

    names = example_names()
    assert {"demo_2d", "2d_gaussian", "3d_astigmatic", "dual_color", "quad_plane"} <= set(names)
    assert names == sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    monkeypatch.chdir(tmp_path)  # no examples/ folder here
    found = resolve_config_path("examples/demo_2d.yaml")
    assert found.is_file() and found.read_text() == (EXAMPLES / "demo_2d.yaml").read_text()
    assert load_config(found).frame_size
    assert main(["examples"]) == 0
    assert "demo_2d" in capsys.readouterr().out
    assert main(["examples", "2d_gaussian", "--copy", "mine"]) == 0
    assert (tmp_path / "mine" / "2d_gaussian.yaml").read_text() == (EXAMPLES / "2d_gaussian.yaml").read_text()
    assert main(["examples", "2d_gaussian", "--copy", "mine"]) == 2  # kept, not overwritten silently
    assert "--overwrite" in capsys.readouterr().err
    assert main(["examples", "nope"]) == 2
    assert "installed: 2d_gaussian" in capsys.readouterr().err


def test_progress_in_a_log_writes_lines_only_for_long_work(monkeypatch, capsys):
    """stderr not a terminal (a log file, nohup): long work showed nothing at all. Now a plain line every
    LOG_INTERVAL_S after LOG_DELAY_S, the last one once; short work stays silent."""
    import time

    import plexloc.progress as prog

    monkeypatch.delenv("PLEXLOC_PROGRESS", raising=False)
    for _ in prog.progress(range(5), total=5, desc="short"):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(prog, "LOG_DELAY_S", 0.05)
    monkeypatch.setattr(prog, "LOG_INTERVAL_S", 0.05)
    for _ in prog.progress(range(6), total=6, desc="long", unit="step"):
        time.sleep(0.03)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("long:") for line in lines), lines
    assert "6/6" in lines[-1] and len(set(lines)) == len(lines)  # no carriage returns, the last line once


def _cli_warnings(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` with plexloc's warnings shown (as a user sees them) instead of raised; (exit code, stderr)."""
    import warnings

    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        rc = main(argv)
    return rc, capsys.readouterr().err


def test_simulate_and_detect_check_the_camera(tmp_path, capsys):
    """simulate warns where its frames clip at 65535 (e_per_adu 1: 2 % of the pixels; was silent); detect with
    e_per_adu and em_gain swapped warns of the noise (12,813 rows for 2,800 on 200 frames, silently)."""
    cfg = small_config(tmp_path, camera={"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0,
                                         "e_per_adu": 1.0, "baseline": 100.0, "read_sigma": 74.4})
    rc, err = _cli_warnings(["simulate", str(cfg), "--frames", "20", "--out", str(tmp_path / "sat"), "--device", "cpu"],
                            capsys)
    assert rc == 0 and "plexloc simulate: warning: " in err and "sit at 65535 ADU" in err and "e_per_adu 1 e-/ADU" in err
    good = small_config(tmp_path)
    rc, err = _cli_warnings(["simulate", str(good), "--frames", "20", "--out", str(tmp_path / "sim"), "--device", "cpu"],
                            capsys)
    assert rc == 0 and "warning" not in err
    movie = str(tmp_path / "sim" / "movie.tif")
    rc, err = _cli_warnings(["detect", movie, "--config", str(good), "--out", str(tmp_path / "ok.csv"), "--device", "cpu"],
                            capsys)
    assert rc == 0 and "warning" not in err
    swapped = tmp_path / "swapped.yaml"
    swapped.write_text(good.read_text().replace("em_gain: 300.0", "em_gain: 45.0").replace("e_per_adu: 45.0",
                                                                                             "e_per_adu: 300.0"))
    rc, err = _cli_warnings(["detect", movie, "--config", str(swapped), "--out", str(tmp_path / "bad.csv"), "--device",
                             "cpu"], capsys)
    assert rc == 0 and f"plexloc detect: warning: {movie}: the pixel noise between frames is" in err and "em_gain 45" in err


def test_device_option_has_help(capsys):
    """--device of detect and estimate-priors had no help text."""
    for cmd in ("detect", "estimate-priors"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--device DEVICE auto (default: cuda where there is one, else cpu), cpu or cuda[:N]" in out, cmd


def test_network_fit_checks_the_camera(tmp_path, capsys):
    """The network fit's camera check (now plexloc.camera.check): the noise ratio it gives the training-domain
    report is the check's, and pixels clipped at 65535 (e_per_adu 1) are warned about (they were not: bright
    emitters came out at 0.32x their photons)."""
    from conftest import TINY_TRAIN

    from plexloc.config import TrainConfig, save_config
    from plexloc.infer import fit_movie

    cfg = tmp_path / "train.yaml"
    save_config(TrainConfig.model_validate(TINY_TRAIN), cfg)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--steps", "2", "--device", "cpu"]) == 0
    assert main(["simulate", str(cfg), "--frames", "4", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    stats: dict = {}
    fit_movie(tmp_path / "sim" / "movie.tif", tmp_path / "run", stats=stats)
    ratio = stats["camera"].channels[0].noise_ratio
    assert 0.75 <= ratio <= 1.35 and stats["domain"].checks[0].median == ratio and stats["camera"].warnings == []
    bright = tmp_path / "bright.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["channels"][0]["camera"]["e_per_adu"] = 1.0
    bright.write_text(yaml.safe_dump(data))
    rc, err = _cli_warnings(["simulate", str(bright), "--frames", "8", "--out", str(tmp_path / "sat"), "--device",
                             "cpu"], capsys)
    assert rc == 0 and "sit at 65535 ADU" in err
    camera = tmp_path / "cam.yaml"
    camera.write_text(yaml.safe_dump({"camera": data["channels"][0]["camera"]}))
    movie = str(tmp_path / "sat" / "movie.tif")
    rc, err = _cli_warnings(["fit", movie, "--model", str(tmp_path / "run"), "--camera", str(camera), "--out",
                             str(tmp_path / "l.csv"), "--device", "cpu"], capsys)
    assert rc == 0 and f"plexloc fit: warning: {movie}: " in err and "of the pixels" in err and "sit at 65535 ADU" in err


def test_detect_uses_channel_0s_split_view_box(tmp_path, capsys):
    """detect with a split_view configuration works in channel 0's box (cut out and flipped as split_frames does,
    positions in that box's coordinates) and says so; the rows equal those of channel 0's own movie. Before, it
    localized over the whole double-width frame (x up to twice the box's width) and raised a false camera alarm
    (the two halves' noise differs)."""
    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import join_frames
    from plexloc.io.tiff import write_movie

    cfg = Path(__file__).resolve().parents[1] / "examples" / "dual_color.yaml"
    assert main(["simulate", str(cfg), "--frames", "20", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    chans = np.stack([read_movie(tmp_path / "sim" / f"movie_ch{c}.tif") for c in range(2)], axis=1)  # (T, 2, 64, 64)
    split = SplitViewConfig(boxes=[(72, 0, 64, 64), (0, 0, 64, 64)], flip=["x", "none"])  # channel 0 right, mirrored
    write_movie(tmp_path / "split.tif", join_frames(chans, split, (64, 136)))
    data = yaml.safe_load(cfg.read_text())
    data["split_view"] = {"boxes": [list(b) for b in split.boxes], "flip": list(split.flip)}
    split_cfg = tmp_path / "split.yaml"
    split_cfg.write_text(yaml.safe_dump(data))
    assert main(["detect", str(tmp_path / "sim" / "movie_ch0.tif"), "--config", str(cfg), "--out",
                 str(tmp_path / "ch0.csv"), "--device", "cpu"]) == 0
    capsys.readouterr()
    rc, err = _cli_warnings(["detect", str(tmp_path / "split.tif"), "--config", str(split_cfg), "--out",
                             str(tmp_path / "split.csv"), "--device", "cpu"], capsys)
    assert rc == 0 and "warning" not in err and "channel 0's split_view box [x, y, width, height] = [72, 0, 64, 64]" in err, err
    ref, got = read_table(tmp_path / "ch0.csv"), read_table(tmp_path / "split.csv")
    assert len(got) > 10 and got["x_nm"].max() < 65 * 100.0  # the box is 64 px wide (the frame 136)
    np.testing.assert_allclose(got["x_nm"], ref["x_nm"], atol=1e-3)
    np.testing.assert_allclose(got["y_nm"], ref["y_nm"], atol=1e-3)


def test_network_fit_takes_split_view_from_an_option(tmp_path, capsys):
    """A 2-channel model trained without split_view fits one split-view movie with ``--split-view CONFIG`` (a
    configuration whose split_view section cuts it): the rows of one movie per channel. Before, there was no such
    option and the error asked for 'a split_view configuration', which the user could not give."""
    import torch
    from test_multichannel_net import two_channel_config

    from plexloc.config import save_config
    from plexloc.io.splitview import join_frames
    from plexloc.io.tiff import write_movie
    from plexloc.train import Trainer

    torch.manual_seed(0)
    cfg = two_channel_config(chip_size_px=None)
    save_config(cfg, tmp_path / "cfg.yaml")
    Trainer(cfg, tmp_path / "run").run(steps=2)
    from plexloc.nets.io import load_model, read_model_file, save_model

    net, run_cfg, meta = load_model(tmp_path / "run")
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # an untrained model: plenty of detections to compare
    save_model(tmp_path / "net.pt", net, run_cfg, meta, read_model_file(tmp_path / "run").get("files"))
    assert main(["simulate", str(tmp_path / "cfg.yaml"), "--frames", "4", "--out", str(tmp_path / "sim"), "--device",
                 "cpu"]) == 0
    chans = [str(tmp_path / "sim" / f"movie_ch{c}.tif") for c in range(2)]
    data = yaml.safe_load((tmp_path / "cfg.yaml").read_text())
    data["split_view"] = {"boxes": [[0, 0, 16, 16], [20, 0, 16, 16]], "flip": ["none", "x"]}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    from plexloc.config import load_config

    split = load_config(tmp_path / "lab.yaml").split_view
    write_movie(tmp_path / "split.tif", join_frames(np.stack([read_movie(p) for p in chans], axis=1), split, (16, 36)))
    common = ["--model", str(tmp_path / "net.pt"), "--device", "cpu", "--threshold", "0.3"]
    assert main(["fit", *chans, "--out", str(tmp_path / "ch.csv"), *common]) == 0
    assert main(["fit", str(tmp_path / "split.tif"), "--split-view", str(tmp_path / "lab.yaml"), "--out",
                 str(tmp_path / "sv.csv"), *common]) == 0
    a, b = read_table(tmp_path / "ch.csv"), read_table(tmp_path / "sv.csv")
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(b["x_nm"], a["x_nm"], atol=1e-3)
    capsys.readouterr()
    # without the option: the error says which option gives the boxes
    assert main(["fit", str(tmp_path / "split.tif"), "--out", str(tmp_path / "x.csv"), *common]) == 2
    assert "--split-view CONFIG" in capsys.readouterr().err
    # a file without a split_view section is named
    assert main(["fit", str(tmp_path / "split.tif"), "--split-view", str(tmp_path / "cfg.yaml"), "--out",
                 str(tmp_path / "x.csv"), *common]) == 2
    assert "cfg.yaml: --split-view: the file has no split_view section" in capsys.readouterr().err


def test_detect_says_when_the_camera_noise_could_not_be_measured(tmp_path, capsys):
    """A movie too crowded for the camera's noise check (15 emitters/um^2; 5 is measured since session 49): detect
    says in a note that the camera went unchecked, instead of nothing."""
    cfg = small_config(tmp_path, frame_size=[48, 48])
    assert main(["simulate", str(cfg), "--frames", "40", "--density", "15", "--out", str(tmp_path / "sim"),
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["detect", str(tmp_path / "sim" / "movie.tif"), "--config", str(cfg), "--out", str(tmp_path / "d.csv"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "plexloc detect: note:" in err and "could not measure the pixel noise (frames too crowded" in err


def test_simulate_crlb_and_train_take_the_configuration_as_an_option_too(tmp_path, capsys):
    """fit, detect and estimate-priors take --config CONFIG; simulate, crlb and train took it only positionally
    (--config was an unrecognised argument). Both forms now work; two different ones, or none, are refused."""
    cfg = small_config(tmp_path)
    assert main(["simulate", "--config", str(cfg), "--frames", "3", "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    assert main(["simulate", str(cfg), "--frames", "3", "--out", str(tmp_path / "b"), "--device", "cpu"]) == 0
    assert read_table(tmp_path / "a" / "truth.csv") == read_table(tmp_path / "b" / "truth.csv")
    assert main(["crlb", "--config", str(cfg), "--photons", "1000", "--bg", "10"]) == 0
    capsys.readouterr()
    other = small_config(tmp_path, "3d_astigmatic.yaml")
    assert main(["simulate", str(cfg), "--config", str(other), "--frames", "3", "--out", str(tmp_path / "c")]) == 2
    assert "two configurations given" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "no configuration given" in capsys.readouterr().err
