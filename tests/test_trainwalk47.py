"""Session 47's walk of training for one's own microscope (bead calibration, camera, configuration, train, resume,
fit): a new run's folder holding a configuration of the user's, a resumed run's ignored edits, a training with no
targets, errors that named no file or field, a PSF file of another pixel size, a progress bar silent between
validations (tiny models, seconds)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import yaml
from conftest import TINY_TRAIN, full_chip_camera

from plexloc.cli.main import main
from plexloc.config import TrainConfig, load_config, save_config
from plexloc.config.io import validate_config
from plexloc.errors import InputError
from plexloc.simulation.simulator import Simulator
from plexloc.train import Trainer
from plexloc.train import trainer as trainer_module


#: every field given: a file read with a field left out warns of the default (CameraDefaultsWarning)
CAMERA = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
          "read_sigma": 74.4}


def tiny(**over) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["camera"] = dict(CAMERA)
    for k, v in over.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    return d


# ------------------------------------------------------------------------------- a new run in an existing folder
def test_a_new_run_does_not_overwrite_the_users_configuration_in_its_folder(tmp_path):
    """`plexloc train exp/config.yaml --out exp` replaced the user's configuration (its comments, its relative
    paths) by the run's dump, and a log.csv of the user's by the run's, without a word. Now refused, naming the files,
    which stay as they were; a config.yaml that is the run's own dump (a run killed before its first save) is not."""
    exp = tmp_path / "exp"
    exp.mkdir()
    mine = "# my notes on this experiment\n" + yaml.safe_dump(tiny())
    (exp / "config.yaml").write_text(mine)
    rc = main(["train", str(exp / "config.yaml"), "--out", str(exp), "--steps", "2", "--device", "cpu"])
    assert rc == 2
    assert (exp / "config.yaml").read_text() == mine
    assert sorted(p.name for p in exp.iterdir()) == ["config.yaml"]

    config = TrainConfig.model_validate(tiny())
    with pytest.raises(InputError, match=r"files a new run would overwrite: config\.yaml \(not this run's"):
        Trainer(config, exp)
    other = tmp_path / "other"
    other.mkdir()
    (other / "log.csv").write_text("time,counts\n1,2\n")
    with pytest.raises(InputError, match=r"overwrite: log\.csv; move them or give another --out") as err:
        Trainer(config, other)
    assert str(other) in str(err.value)
    assert (other / "log.csv").read_text() == "time,counts\n1,2\n"

    left = tmp_path / "left"  # the config.yaml a run writes when it starts, the run killed before its first save
    left.mkdir()
    save_config(config, left / "config.yaml")
    (left / "notes.txt").write_text("kept")
    tr = Trainer(config, left)
    tr.run(steps=1)
    assert (left / "model.pt").exists() and (left / "notes.txt").read_text() == "kept"


# ------------------------------------------------------------------------------- a resumed run's ignored edits
def test_a_resume_names_the_edited_fields_it_does_not_take(tmp_path, capsys):
    """A resumed run trains on its own configuration; the note said so without naming a field, so an edit of the
    density or the batch size looked taken. It names each field with both values and the way to use the edits."""
    cfg, run = tmp_path / "c.yaml", tmp_path / "run"
    cfg.write_text(yaml.safe_dump(tiny()))
    assert main(["train", str(cfg), "--out", str(run), "--steps", "1", "--device", "cpu"]) == 0
    capsys.readouterr()
    cfg.write_text(yaml.safe_dump(tiny(emitters={"density_per_um2": 2.0}, training={"batch_size": 2})))
    assert main(["train", str(cfg), "--out", str(run), "--resume", "--steps", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "emitters.density_per_um2 (the run 1.0, c.yaml 2.0)" in out
    assert "training.batch_size (the run 4, c.yaml 2)" in out
    assert f"--init-from {run}" in out
    assert load_config(run / "config.yaml", TrainConfig).emitters.density_per_um2 == 1.0  # the run's, unchanged


# ------------------------------------------------------------------------------- a training with no targets
def test_a_photon_range_below_min_target_photons_is_refused_before_training(tmp_path, capsys):
    """photons_range [30, 90] with min_target_photons 100 (the default): no emitter was a target, the run trained
    and said only 'JI 0.0 %: train on'. Refused naming the file, both fields and their values; nothing is written.
    The same file still simulates a movie (a training check only)."""
    cfg = tmp_path / "dim.yaml"
    cfg.write_text(yaml.safe_dump(tiny(emitters={"photons_range": [30.0, 90.0]})))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--steps", "2", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: training.min_target_photons 100 is above" in err
    assert "(90, from emitters.photons_range [30.0, 90.0])" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="no emitter would be a training target"):
        Trainer(TrainConfig.model_validate(tiny(emitters={"photons_range": [30.0, 90.0]})), tmp_path / "lib")
    Simulator(load_config(cfg, TrainConfig).simulation())
    Trainer(TrainConfig.model_validate(tiny(emitters={"photons_range": [30.0, 90.0]},
                                            training={"min_target_photons": 50.0})), tmp_path / "ok")


# ------------------------------------------------------------------------------- errors that named no file or field
def test_a_z_range_beyond_the_spline_names_the_calibration_and_the_fix(tmp_path):
    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration

    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    volume = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 0.02 * zz**2) ** 2))
    volume /= volume[10].sum()
    eye = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    chans = [ChannelCalibration(volume=volume, x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0, transform_nm=eye)]
    save_calibration(PSFCalibration(channels=chans, px_size_nm=(100.0, 100.0), dz_nm=50.0), tmp_path / "PSF.h5")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny(psf="PSF.h5", emitters={"z_range_nm": [-800.0, 800.0]})))
    with pytest.raises(InputError) as err:
        Simulator(load_config(cfg, TrainConfig))
    text = str(err.value)
    assert text.startswith(f"{(tmp_path / 'PSF.h5').resolve()}: the configuration's emitters.z_range_nm [-800, 800]")
    assert "calibrated z range [-500, 500] nm: narrow emitters.z_range_nm to [-500, 500] nm or less" in text


def test_section_checks_name_their_field_and_not_the_whole_mapping():
    """A model's window of 4 was 'field 'model': ... (got {'window': 4, ...})', and a check of the whole file printed
    the whole configuration after it; now the field, and the check's own words alone."""
    with pytest.raises(InputError) as err:
        validate_config(tiny(model={"window": 4}), TrainConfig, source="c.yaml")
    assert str(err.value) == ("c.yaml: field 'model.window': window must be odd (the prediction is for the middle "
                              "frame) (got 4)")
    d = tiny(channels=[{"psf": TINY_TRAIN["psf"], "camera": CAMERA}])
    with pytest.raises(InputError) as err:
        validate_config(d, TrainConfig, source="c.yaml")
    assert str(err.value) == "c.yaml: give either 'channels' or top-level 'psf' and 'camera', not both"


# ------------------------------------------------------------------------------- a PSF file of another pixel size
def test_a_psf_file_calibrated_at_another_pixel_size_is_warned(tmp_path):
    """`psf: PSF.yaml` (calibrate --model astigmatic: a configuration with the bead stack's --pixel-size) at 108 nm
    under a configuration of 100 nm was taken in silence (a spline file is refused on it)."""
    from plexloc.config.io import PSFPixelSizeWarning

    psf = {"kind": "astigmatic", "s0_nm": [115.0, 125.0], "c_nm": [-280.0, 260.0], "d_nm": 420.0}
    (tmp_path / "PSF.yaml").write_text(yaml.safe_dump({"px_size_nm": 108.0, "psf": psf, "camera": CAMERA}))
    d = tiny(psf="PSF.yaml", emitters={"z_range_nm": [-400.0, 400.0]})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(d))
    with pytest.warns(PSFPixelSizeWarning, match=r"names .*PSF\.yaml, calibrated with 108 nm pixels, but px_size_nm "
                                                  r"is 100: set px_size_nm"):
        config = load_config(cfg, TrainConfig)
    assert config.channels[0].psf.s0_nm == (115.0, 125.0)
    cfg.write_text(yaml.safe_dump({**d, "px_size_nm": 108.0}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PSFPixelSizeWarning)
        load_config(cfg, TrainConfig)


# ------------------------------------------------------------------------------- progress between validations
class _Bar:
    """A progress bar that records its postfixes (the trainer's ``progress`` callable returns it)."""

    def __init__(self, *args, **kwargs):
        self.postfixes: list[dict] = []

    def update(self, n=1):
        pass

    def set_postfix(self, refresh=True, **kw):
        self.postfixes.append(kw)

    def close(self):
        pass


def test_the_bar_shows_the_training_loss_between_validations(tmp_path, monkeypatch):
    """With validations every 200 steps and a step a second on a CPU, the bar showed nothing of the training until the
    first validation, minutes in (and a 2-minute run's only one was its last). It shows the interval's training loss
    as it goes (every POSTFIX_EVERY_S), beside the last validation's JI once there is one."""
    monkeypatch.setattr(trainer_module, "POSTFIX_EVERY_S", 0.0, raising=False)
    bars: list[_Bar] = []

    def progress(*args, **kwargs):
        bars.append(_Bar())
        return bars[-1]

    tr = Trainer(TrainConfig.model_validate(tiny(training={"validate_every": 4})), tmp_path / "run")
    tr.run(steps=6, progress=progress)
    seen = bars[0].postfixes
    assert len(seen) >= 6, seen  # every step here (and the validation at step 4)
    assert "JI" not in seen[0] and math.isfinite(float(seen[0]["loss"]))
    assert all("JI" in p for p in seen[4:])  # after the validation at step 4


def test_training_curves_of_runs_that_matched_nothing_yet_keep_the_step_axis(tmp_path, monkeypatch):
    """A 2-minute CPU run's curves.png: one validation, JI 0, no RMSE. The RMSE panel was empty with a 'step' axis of
    -0.04..0.04; it shares the step axis of the others and says why it is empty."""
    import matplotlib.pyplot as plt

    from plexloc.train.trainer import plot_curves

    figs, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figs.append(fig), close(fig))[1])
    plot_curves([{"step": 97, "loss": 16.8, "val_loss": 11.7, "jaccard": 0.0, "eff_lat": math.nan,
                  "rmse_lat": math.nan}], tmp_path / "curves.png")
    rmse = figs[-1].axes[2]
    lo, hi = rmse.get_xlim()
    assert lo < 97 < hi
    assert "no emitter matched yet" in " ".join(t.get_text() for t in rmse.texts)
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_the_not_ready_warning_advises_only_what_would_be_smaller(tmp_path, capsys):
    """The warning advised 'the model and training sections of examples/demo_2d.yaml' to a run that had them (a 3D run
    of that model on 64x64 frames at 53 % after 3 CPU minutes); it advises a smaller model only where the model is
    larger than demo_2d.yaml's, and a smaller training ROI where frame_size is larger than its 32x32."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny()))  # 4 features, 16x16
    assert main(["train", str(cfg), "--out", str(tmp_path / "a"), "--steps", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "not ready to fit movies: train on (--resume --minutes M), on a GPU" in err
    assert "demo_2d" not in err and "smaller" not in err
    cfg.write_text(yaml.safe_dump(tiny(frame_size=[48, 48], model={"features": 24})))
    assert main(["train", str(cfg), "--out", str(tmp_path / "b"), "--steps", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "a smaller model on the CPU (the model and training sections of examples/demo_2d.yaml, 16 features " \
           "against 24" in err
    assert "frame_size 48x48 costs about 2x a step of demo_2d.yaml's 32x32" in err


def test_a_3d_psf_trained_without_a_z_range_is_said(tmp_path, capsys):
    """A configuration of an astigmatic (or spline) PSF that leaves out emitters.z_range_nm ([0, 0]) trained a 2D
    network, said only as '2D' in the start line."""
    psf = {"kind": "astigmatic", "s0_nm": [115.0, 125.0], "c_nm": [-280.0, 260.0], "d_nm": 420.0}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**tiny(), "psf": psf}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "a"), "--steps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "2D, 1 channel(s)" in out
    assert "note: the PSF is 3D but emitters.z_range_nm is [0.0, 0.0]: the network is trained in 2D" in out
    cfg.write_text(yaml.safe_dump({**tiny(emitters={"z_range_nm": [-300.0, 300.0]}), "psf": psf}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "b"), "--steps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "3D, 1 channel(s)" in out and "note: the PSF is 3D" not in out


def test_simulate_names_the_file_and_the_option_when_the_maps_cannot_cover_the_frame(tmp_path, capsys):
    """`plexloc simulate CONFIG --frame-size 48 48` with 40x36 sCMOS maps: the error named no file and asked to set
    frame_size, which the configuration did not set here. It names the file and --frame-size; nothing is written."""
    cam = full_chip_camera(tmp_path)  # 40x36 maps
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**tiny(), "camera": str(cam)}))
    out = tmp_path / "sim"
    assert main(["simulate", str(cfg), "--frames", "2", "--frame-size", "48", "48", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {cfg}: camera: the sCMOS maps" in err
    assert "are 40x36 px (rows x columns) but --frame-size, the simulated frame" in err
    assert "set --frame-size to at most 40x36" in err
    assert not out.exists()


def test_an_error_in_an_included_camera_file_names_that_file_and_its_field(tmp_path):
    """`camera: camx.yaml` holding an sCMOS with an em_gain: the error named the configuration and 'camera.em_gain',
    a field the configuration does not have; it names the camera file and the field's name there too."""
    (tmp_path / "camx.yaml").write_text("kind: scmos\nqe: 0.8\nem_gain: 300\ne_per_adu: 0.46\nbaseline: 100\n"
                                        "read_sigma: 1.6\nspurious_charge: 0\n")
    (tmp_path / "camy.yaml").write_text(yaml.safe_dump({"camera": {**CAMERA, "qe": 1.8}}))
    for cam, said in [("camx.yaml", "unknown field 'camera.em_gain' (in {} as 'em_gain'); allowed:"),
                      ("camy.yaml", "field 'camera.qe' (in {} as 'camera.qe'): Input should be less than or equal")]:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({**tiny(), "camera": cam}))
        with pytest.raises(InputError) as err:
            load_config(cfg, TrainConfig)
        assert str(err.value).startswith(f"{cfg}: ")
        assert said.format(tmp_path / cam) in str(err.value)


def test_train_says_when_model_pt_is_not_the_last_validation(tmp_path, capsys, monkeypatch):
    """model.pt holds the best validation loss's weights; the run ended by printing the last validation's JI alone,
    which is not the model's where a later validation scored worse (what plexloc fit uses was never shown). The
    validation set's loss is made to rise after step 2 (its scores otherwise the real ones)."""
    from plexloc.train.validation import ValidationSet

    score, losses = ValidationSet.score, iter([1.0, 5.0])

    def rising(self, *args, **kwargs):
        return {**score(self, *args, **kwargs), "val_loss": next(losses)}

    monkeypatch.setattr(ValidationSet, "score", rising)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny(training={"validate_every": 2})))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--steps", "4", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "model.pt holds the weights of step 2, the run's best validation loss (1.000 against 5.000 now): JI " in out
    from plexloc.nets.io import read_model_file

    assert read_model_file(tmp_path / "run" / "model.pt")["meta"]["step"] == 2


def test_a_call_shorter_than_one_validation_interval_says_its_curve_has_one_point(tmp_path, capsys):
    """`plexloc train --minutes 2` on a CPU with validations every 200 steps trained 97 and validated once, at its end:
    curves.png had one point and nothing said why. Said, with training.validate_every_s as the way to more."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny(training={"validate_every": 50})))
    assert main(["train", str(cfg), "--out", str(tmp_path / "a"), "--steps", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "note: log.csv and curves.png have one validation, the last: validations come every 50 steps " \
           "(training.validate_every) and the run trained 3; training.validate_every_s" in out
    assert main(["train", str(cfg), "--out", str(tmp_path / "a"), "--steps", "5", "--resume", "--device", "cpu"]) == 0
    assert "have one validation" not in capsys.readouterr().out  # two points now
    cfg.write_text(yaml.safe_dump(tiny(training={"validate_every": 2})))
    assert main(["train", str(cfg), "--out", str(tmp_path / "b"), "--steps", "3", "--device", "cpu"]) == 0
    assert "have one validation" not in capsys.readouterr().out
