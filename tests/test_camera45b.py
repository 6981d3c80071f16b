"""Session 45: the camera check of a network fit given no camera names the model's training camera and the fix.

``plexloc fit movie.tif --model RUN_DIR`` (and ``plexloc process --model``) without ``--camera`` converts the movie
with the camera the model was trained with. Where the movie's noise does not fit it, the warning said only "check the
camera's gain and e-/ADU (and baseline) against the movie": nothing told the user that the settings were the model's
training camera, nor that the fix is ``--camera CAMERA.yaml`` (or ``plexloc calibrate-camera``) rather than an edit of
the run folder. It now says so, with the settings that would fit and the camera written out as a ``--camera`` YAML
holding the first of them; a worker's scratch path stays out of the job's summary (``--input-names file-name``). A
camera given with ``--camera camera.yaml`` is named by its file in the network fit's warning too.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from plexloc.camera import CameraWarning, camera_from_config
from plexloc.camera.check import check_camera
from plexloc.config import TrainConfig, load_camera_config
from plexloc.config.models import EMCCDConfig
from plexloc.io.tiff import write_movie
from plexloc.nets.io import save_model
from plexloc.simulation import Simulator

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_TRAIN  # noqa: E402
from test_infer import _random_model  # noqa: E402

TRUE_E = 4.5  # the movie's camera: the model's EMCCD (e_per_adu 45) but 4.5 e-/ADU, photons 10x too many
FIX = "No camera was given, so these are the settings of the camera the model was trained with ("


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """A run folder with a model file trained (here: random weights) on TINY_TRAIN's EMCCD, and a movie of another
    e_per_adu."""
    root = tmp_path_factory.mktemp("cam45b")
    run = root / "run"
    run.mkdir()
    save_model(run / "model.pt", _random_model(2), TrainConfig.model_validate(TINY_TRAIN).model_dump(mode="json"),
               meta={})
    other = copy.deepcopy(TINY_TRAIN)
    other["camera"] = {"kind": "emccd", "e_per_adu": TRUE_E}
    other["frame_size"] = [48, 48]
    mov = Simulator(TrainConfig.model_validate(other).simulation()).simulate_movie(
        16, generator=torch.Generator().manual_seed(0))
    movie = root / "movie.tif"
    write_movie(movie, mov.frames[0].numpy().astype(np.uint16), dtype=np.uint16)
    return run, movie


def _snippet(text: str) -> str:
    (found,) = re.findall(r"camera: \{[^}]*\}", text)
    return found


def _loads(snippet: str, tmp_path: Path):
    """The snippet as a --camera file reads it."""
    path = tmp_path / "CAMERA.yaml"
    path.write_text(snippet + "\n")
    return load_camera_config(path)


def _fit_cli(args: list[str], capsys) -> str:
    from plexloc.cli.main import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert main(args) == 0
    return capsys.readouterr().err


def test_a_network_fit_without_camera_names_the_models_camera_and_the_fix(files, tmp_path, capsys):
    run, movie = files
    err = _fit_cli(["fit", str(movie), "--model", str(run), "--out", str(tmp_path / "locs.csv")], capsys)
    (said,) = [line for line in err.splitlines() if "the pixel noise between frames" in line]
    assert said.startswith("warning: noise: the pixel noise between frames is ")
    assert FIX + f"{run}'s training configuration, channels.0.camera): give the movie's camera with --camera " \
                 "CAMERA.yaml" in said
    assert "plexloc calibrate-camera" in said and "editing the run folder changes nothing" in said
    # the settings that would fit, by the camera's fields with their values now
    fit = float(said.split("The settings that would fit: e_per_adu about ")[1].split()[0])
    assert fit == pytest.approx(TRUE_E, rel=0.1) and "e-/ADU (now 45)" in said
    # the camera to give, written out: it loads as a --camera file and holds the model's other settings
    cam = _loads(_snippet(said), tmp_path)
    assert isinstance(cam, EMCCDConfig) and cam.e_per_adu == pytest.approx(fit)
    assert (cam.em_gain, cam.baseline, cam.qe, cam.read_sigma) == (300.0, 100.0, 0.9, 74.4)


def test_the_camera_given_the_fit_of_the_written_camera_checks_clean(files, tmp_path, capsys):
    """The camera the warning writes out, given with --camera: no noise warning any more."""
    run, movie = files
    err = _fit_cli(["fit", str(movie), "--model", str(run), "--out", str(tmp_path / "a.csv")], capsys)
    path = tmp_path / "CAMERA.yaml"
    path.write_text(_snippet(err) + "\n")
    err = _fit_cli(["fit", str(movie), "--model", str(run), "--camera", str(path), "--out", str(tmp_path / "b.csv")],
                   capsys)
    assert "the pixel noise between frames" not in err, err


def test_a_camera_yaml_given_to_a_network_fit_is_named_with_its_fields(files, tmp_path, capsys):
    run, movie = files
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(EMCCDConfig().model_dump(mode="json")))
    err = _fit_cli(["fit", str(movie), "--model", str(run), "--camera", str(path), "--out", str(tmp_path / "l.csv")],
                   capsys)
    (said,) = [line for line in err.splitlines() if "the pixel noise between frames" in line]
    assert f"The settings that would fit, in {path}: e_per_adu about " in said
    assert FIX not in said and "camera: {" not in said


def test_the_fits_camera_check_says_it_too(files):
    """stats['camera'] (the line of an error that may come from the camera, CameraCheck.finding) and a model file
    given in Python: the model's camera and the fix, not 'Check the camera's values'."""
    from plexloc.infer import fit_movie

    run, movie = files
    stats: dict = {}
    fit_movie(movie, run / "model.pt", stats=stats)
    (w,) = stats["camera"].warnings
    assert w.startswith(f"{movie}: the pixel noise between frames is ")
    assert f"emccd camera of {run / 'model.pt'}'s training configuration (em_gain 300, e_per_adu 45 e-/ADU" in w
    assert FIX + f"{run / 'model.pt'}'s training configuration, channels.0.camera)" in w
    assert "Check the camera's values" not in w
    assert any(FIX in x for x in stats["domain"].warnings)


def test_process_names_the_model_by_its_file_name_for_the_service(files, tmp_path, capsys):
    """plexloc process --input-names file-name (the job service): the model named by its file name, the worker's
    scratch folder nowhere in summary.json."""
    run, movie = files
    scratch = tmp_path / "scratch" / "job123"
    scratch.mkdir(parents=True)
    (scratch / "trained.pt").write_bytes((run / "model.pt").read_bytes())
    _fit_cli(["process", str(movie), "--model", str(scratch / "trained.pt"), "--out", str(tmp_path / "res"),
              "--no-drift", "--no-merge", "--input-names", "file-name"], capsys)
    summary = json.loads((tmp_path / "res" / "movie" / "summary.json").read_text())
    (note,) = [n for n in summary["fit"]["notes"] if "the pixel noise between frames" in n]
    assert FIX + "trained.pt's training configuration, channels.0.camera): give the movie's camera with --camera" in note
    assert str(scratch) not in json.dumps(summary)
    assert _loads(_snippet(note), tmp_path).e_per_adu == pytest.approx(TRUE_E, rel=0.1)


# --- the camera check itself ---------------------------------------------------------------------------------------


def _adu(e_per_adu: float) -> torch.Tensor:
    torch.manual_seed(0)
    return camera_from_config(EMCCDConfig(e_per_adu=e_per_adu))(torch.full((16, 64, 64), 50.0))


def test_a_models_camera_is_tagged_and_its_warning_writes_the_camera_that_fits(tmp_path):
    from plexloc.camera.check import camera_model
    from plexloc.camera.models import model_camera

    cam = model_camera(EMCCDConfig(), "run")
    assert camera_model(cam)[0] == "run"
    (w,) = check_camera([_adu(TRUE_E)], [cam], dtype="uint16", adu=True, source="movie.tif", warn=False).warnings
    assert "emccd camera of run's training configuration (em_gain 300" in w
    assert FIX + "run's training configuration, channels.0.camera)" in w
    assert _loads(_snippet(w), tmp_path).e_per_adu == pytest.approx(TRUE_E, rel=0.1)
    # the same camera built in Python: the wording it had
    (old,) = check_camera([_adu(TRUE_E)], [camera_from_config(EMCCDConfig())], dtype="uint16", adu=True,
                          source="movie.tif", warn=False).warnings
    assert FIX not in old and old.endswith("Check the camera's values against the movie, or measure them "
                                           "(plexloc calibrate-camera)")


def test_a_baseline_advised_first_is_the_one_written(tmp_path):
    """A model's EMCCD whose baseline is 100 ADU above the movie's offset (tests/test_camera44.py): the warning puts the baseline first (an
    em_gain no EMCCD has explains it otherwise), and the camera it writes out takes that baseline."""
    from plexloc.camera.models import model_camera

    torch.manual_seed(0)
    adu = camera_from_config(EMCCDConfig(baseline=100.0))(torch.full((32, 64, 64), 22.0))
    cam = model_camera(EMCCDConfig(baseline=200.0), "run")
    with pytest.warns(CameraWarning, match="No camera was given"):
        check_camera([adu], [cam], dtype="uint16", adu=True, source="movie.tif")
    (w,) = check_camera([adu], [cam], dtype="uint16", adu=True, source="movie.tif", warn=False).warnings
    likely = w.split("The settings that would fit: ")[1]
    assert likely.startswith("baseline about "), w
    written = _loads(_snippet(w), tmp_path)
    assert written.baseline == pytest.approx(100.0, abs=6) and written.e_per_adu == 45.0


def test_a_models_camera_of_maps_gets_the_cli_line_without_a_camera_written(tmp_path):
    """A model trained with an sCMOS of per-pixel maps: its fields name files (the model's copies), not written out."""
    from plexloc.camera.check import camera_model
    from plexloc.camera.models import model_camera
    from plexloc.config.models import SCMOSConfig

    np.save(tmp_path / "base.npy", np.full((64, 64), 100.0, np.float32))
    cam = model_camera(SCMOSConfig(e_per_adu=4.6, baseline=str(tmp_path / "base.npy"), read_sigma=1.6), "run")
    assert camera_model(cam) == ("run", None)
    torch.manual_seed(0)
    adu = camera_from_config(SCMOSConfig(e_per_adu=0.46, baseline=100.0, read_sigma=1.6))(torch.full((16, 64, 64), 50.0))
    (w,) = check_camera([adu], [cam], dtype="uint16", adu=True, source="movie.tif", warn=False).warnings
    assert w.endswith("give the movie's camera with --camera CAMERA.yaml; or measure the camera with plexloc "
                      "calibrate-camera (editing the run folder changes nothing: the model file holds its configuration)")
    assert "camera: {" not in w and str(tmp_path) not in w.split("The settings that would fit")[1]


def test_the_clipping_advice_of_a_models_camera_says_to_give_one():
    from plexloc.camera.models import model_camera

    rng = np.random.default_rng(0)
    raw = rng.integers(100, 3000, size=(4, 32, 32)).astype(np.uint16)
    raw[:, :3, :3] = 4095
    cam = model_camera(EMCCDConfig(), "run")
    (w,) = check_camera([raw], [cam], dtype=np.uint16, adu=True, noise=False, source="movie.tif", warn=False).warnings
    assert ("Set saturation_adu: 4095 in a camera YAML given with --camera CAMERA.yaml (no camera was given: the camera "
            "is the one the model was trained with, run's training configuration) to make it the level") in w


def test_a_multi_channel_models_fix_gives_every_channels_camera(tmp_path, capsys):
    """A two-channel model fitted without --camera: each channel's warning wrote 'give the movie's camera with
    --camera CAMERA.yaml' and its camera, and that one file given was refused ('1 camera(s) given for a 2-channel
    model'). It says to give every channel's, once per channel in channel order; the two cameras written, given so,
    check clean."""
    cfg = yaml.safe_load((Path(__file__).parents[1] / "examples" / "dual_color.yaml").read_text())
    cfg.update(frame_size=[16, 16], model={"features": 4, "depth": 1, "union_features": 4, "union_depth": 1})
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.pt", _random_model(0, n_channels=2), TrainConfig.model_validate(cfg).model_dump(mode="json"),
               meta={})
    torch.manual_seed(0)
    cam = camera_from_config(EMCCDConfig(e_per_adu=TRUE_E))
    movies = [str(tmp_path / f"ch{c}.tif") for c in range(2)]
    for m in movies:
        write_movie(m, cam(torch.full((16, 48, 48), 50.0)).numpy().astype(np.uint16), dtype=np.uint16)
    err = _fit_cli(["fit", *movies, "--model", str(run), "--out", str(tmp_path / "a.csv")], capsys)
    said = [line for line in err.splitlines() if "the pixel noise between frames" in line]
    assert len(said) == 2
    files = []
    for c, line in enumerate(said):
        assert f"{run}'s training configuration, channels.{c}.camera): give every channel's camera with --camera " \
               "once per channel, in channel order" in line
        assert f"channel {c}'s, e.g. the first setting above put in: camera: {{" in line
        files.append(tmp_path / f"CH{c}.yaml")
        files[-1].write_text(_snippet(line) + "\n")
    err = _fit_cli(["fit", *movies, "--model", str(run), "--camera", str(files[0]), "--camera", str(files[1]),
                    "--out", str(tmp_path / "b.csv")], capsys)
    assert "the pixel noise between frames" not in err, err
