"""Session 51: training says which emitter/background fields it takes from plexloc's defaults; the model section
refuses true/false for its numbers; an unknown field that belongs to another section says which."""

from __future__ import annotations

import pytest
import torch
import yaml

from conftest import TINY_TRAIN

from plexloc.cli.main import main
from plexloc.config import TrainConfig, validate_config
from plexloc.errors import InputError
from plexloc.train import Trainer


def config_dict(**sections) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["emitters"] = {**d["emitters"], "on_time_frames": 2.0}  # every field that shapes the data given
    d.update(sections)
    return d


def without_photons() -> dict:
    d = config_dict()
    d["emitters"] = {k: v for k, v in d["emitters"].items() if k != "photons_range"}
    return d


def test_trainer_names_the_defaults_of_the_configuration_given(tmp_path):
    t = Trainer(validate_config(without_photons(), TrainConfig), tmp_path / "a")
    assert t.defaults_used == {"emitters.photons_range": (1000.0, 10000.0)}
    assert t.sim.defaults_used == {}  # the simulator's own, from a dump: why the trainer reads the configuration given
    assert Trainer(validate_config(config_dict(), TrainConfig), tmp_path / "b").defaults_used == {}
    # a schedule given for the call re-validates a dump of the configuration: the defaults are still the user's
    t = Trainer(validate_config(without_photons(), TrainConfig), tmp_path / "c", schedule={"lr": 1e-3})
    assert t.defaults_used == {"emitters.photons_range": (1000.0, 10000.0)}


def test_the_note_changes_no_training_number(tmp_path):
    """The same configuration with the default photon range written out trains bit for bit as the one leaving it out."""
    losses = []
    for name, d in (("left_out", without_photons()),
                    ("written", config_dict(emitters={**without_photons()["emitters"], "photons_range": [1000, 10000]}))):
        t = Trainer(validate_config(d, TrainConfig), tmp_path / name)
        losses.append(torch.stack([t.train_step() for _ in range(2)]))
    assert torch.equal(losses[0], losses[1])


@pytest.mark.filterwarnings("ignore::plexloc.config.io.CameraDefaultsWarning")  # the camera's note is not this test's
def test_cli_train_says_the_defaults_once_and_keeps_them_in_the_run(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(without_photons()))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--steps", "2", "--device", "cpu"]) == 0
    got = capsys.readouterr()
    assert got.err.count("does not give") == 1
    assert f"{cfg} does not give emitters.photons_range [1000, 10000]: the network trains on plexloc's default" in got.err
    first = (run / "config.yaml").read_text().splitlines()[0]
    assert first.startswith("#") and "emitters.photons_range [1000, 10000] to plexloc's defaults" in first
    # resumed: the run's own configuration (a dump, every field set) keeps the defaults said when it began; no new note
    assert main(["train", str(cfg), "--out", str(run), "--steps", "3", "--device", "cpu", "--resume"]) == 0
    assert "does not give" not in capsys.readouterr().err
    t = Trainer(validate_config(without_photons(), TrainConfig), run, resume=True, schedule={"lr": 1e-3})
    assert t.defaults_used == {"emitters.photons_range": (1000.0, 10000.0)}
    t.save_checkpoint()  # the schedule rewrites config.yaml: its comment stays
    assert "emitters.photons_range [1000, 10000]" in (run / "config.yaml").read_text().splitlines()[0]


@pytest.mark.filterwarnings("ignore::plexloc.config.io.CameraDefaultsWarning")  # the camera's note is not this test's
def test_cli_train_says_nothing_when_the_file_gives_every_field(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(config_dict()))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cpu"]) == 0
    assert "does not give" not in capsys.readouterr().err
    assert not (tmp_path / "run" / "config.yaml").read_text().startswith("#")


@pytest.mark.parametrize("field", ["window", "features", "depth", "union_features", "union_depth", "up_kernel",
                                   "out_kernel"])
@pytest.mark.parametrize("value", [True, False])
def test_model_numbers_refuse_true_and_false(field, value):
    d = config_dict(model={**TINY_TRAIN["model"], field: value})
    word = str(value).lower()
    with pytest.raises(InputError, match=rf"train\.yaml: field 'model\.{field}': takes a whole number, not {word}"):
        validate_config(d, TrainConfig, source="train.yaml")


def test_model_numbers_still_taken():
    m = validate_config(config_dict(model={"window": 5, "features": 8.0, "depth": 3, "up_kernel": 1}), TrainConfig).model
    assert (m.window, m.features, m.depth, m.up_kernel) == (5, 8, 3, 1)


@pytest.mark.parametrize("where, key, home", [
    ("training", "window", "model.window"),
    ("training", "features", "model.features"),
    ("model", "lr", "training.lr"),
    ("model", "batch_size", "training.batch_size"),
    ("training", "density_per_um2", "emitters.density_per_um2"),
    ("training", "photons_range", "emitters.photons_range"),
    ("emitters", "density_range_per_um2", "training.density_range_per_um2"),
    ("training", "frame_size", "frame_size at the top level"),
    (None, "batch_size", "training.batch_size"),
    (None, "window", "model.window"),
    (None, "blinking", "emitters.blinking"),
])
def test_a_field_of_another_section_says_where_it_belongs(where, key, home):
    d = config_dict()
    value = [32, 32] if key == "frame_size" else [1.0, 2.0] if key.endswith("range_per_um2") else 3
    if where is None:
        d[key] = value
    else:
        d[where] = {**d.get(where, {}), key: value}
    with pytest.raises(InputError) as err:
        validate_config(d, TrainConfig, source="train.yaml")
    assert f"did you mean {home}? (move it there)" in str(err.value)


def test_a_field_of_two_sections_names_both_and_typos_keep_their_hint():
    d = config_dict(training={"on_time_frames": 2})
    with pytest.raises(InputError, match=r"did you mean photon_model\.on_time_frames or emitters\.on_time_frames\?"):
        validate_config(d, TrainConfig, source="train.yaml")
    d = config_dict(emitters={"photon_range": [1, 2]})
    with pytest.raises(InputError, match=r"did you mean 'photons_range'\?"):
        validate_config(d, TrainConfig, source="train.yaml")
    d = config_dict(training={"learning_rate": 1e-3})
    with pytest.raises(InputError, match=r"the learning rate is training\.lr"):
        validate_config(d, TrainConfig, source="train.yaml")
