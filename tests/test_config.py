"""Typed configuration: bad input gives one-line InputErrors that name the field (and file) and the
offending value; YAML round-trips; relative paths resolve against the YAML's own folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plexloc.config import (
    AstigmaticPSFConfig,
    EMCCDConfig,
    SCMOSConfig,
    SimulationConfig,
    SplinePSFConfig,
    load_config,
    save_config,
    validate_config,
)
from plexloc.errors import InputError

GAUSS = {"kind": "gaussian"}
EMCCD = {"kind": "emccd"}
BASE = {"psf": GAUSS, "camera": EMCCD}


def _error(data) -> str:
    with pytest.raises(InputError) as info:
        validate_config(data, SimulationConfig)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("data", "must_say"),
    [
        pytest.param({"psf": {"kind": "gausian"}, "camera": EMCCD},
                     ["psf", "'gausian'", "'gaussian'", "'astigmatic'", "'spline'"], id="psf-kind"),
        pytest.param({"psf": GAUSS, "camera": {"kind": "ccd"}}, ["camera", "'ccd'", "'emccd'", "'scmos'"],
                     id="camera-kind"),
        pytest.param({"psf": {"kind": "gaussian", "sigma": 100}, "camera": EMCCD},
                     ["unknown field 'psf.sigma'", "['kind', 'roi_px', 'sigma_nm']"],
                     id="unknown-psf-field"),
        pytest.param({**BASE, "frame_sise": [32, 32]}, ["unknown field 'frame_sise'", "'frame_size'", "'channels'"],
                     id="unknown-top-field"),
        pytest.param({**BASE, "emitters": {"densty": 2}}, ["emitters.densty", "'density_per_um2'"],
                     id="unknown-emitter-field"),
        pytest.param({"psf": GAUSS, "camera": {"kind": "emccd", "em_gain": -5}}, ["camera.em_gain", "-5"],
                     id="negative-em-gain"),
        pytest.param({"psf": GAUSS, "camera": {"kind": "scmos", "qe": 1.5}}, ["camera.qe", "1.5"],
                     id="qe-above-1"),
        pytest.param({"psf": GAUSS, "camera": {"kind": "scmos", "baseline": -5}},
                     ["field 'camera.baseline': must be a number >= 0 or the path of a per-pixel map", "-5"],
                     id="scmos-negative-baseline"),
        pytest.param({"psf": GAUSS, "camera": {"kind": "scmos", "e_per_adu": 0}},
                     ["field 'camera.e_per_adu': must be a number > 0", "(got 0)"], id="scmos-zero-gain"),
        pytest.param({**BASE, "emitters": {"photons_range": [5000, 100]}}, ["emitters.photons_range", "5000", "100"],
                     id="range-min-above-max"),
        pytest.param({**BASE, "emitters": {"z_range_nm": [300, -300]}}, ["emitters.z_range_nm", "300", "-300"],
                     id="z-range-reversed"),
        pytest.param({**BASE, "emitters": {"density_per_um2": -1}}, ["emitters.density_per_um2", "-1"],
                     id="negative-density"),
        pytest.param({**BASE, "background": {"variation": 1.5}}, ["background.variation", "1.5"], id="variation"),
        pytest.param({**BASE, "frame_size": "big"}, ["frame_size", "'big'"], id="wrong-type"),
        pytest.param({"psf": GAUSS}, ["single-channel", "'camera'"], id="shortcut-missing-camera"),
        pytest.param({**BASE, "channels": [{"psf": GAUSS, "camera": EMCCD}]}, ["either 'channels'", "not both"],
                     id="shortcut-and-channels"),
        pytest.param({"channels": [{"psf": GAUSS, "camera": EMCCD, "transform": [[1, 0], [0, 1]]}]},
                     ["channels.0.transform", "3x3", "[[1, 0], [0, 1]]"], id="transform-2x2"),
        pytest.param({"channels": [{"psf": GAUSS, "camera": EMCCD},
                                   {"psf": GAUSS, "camera": EMCCD, "transform": [[1, 0, 0], [0, 1, 0]]}]},
                     ["channels.1.transform", "3x3"], id="transform-2-rows"),
        pytest.param({**BASE, "photon_model": {"kind": "ratiometric"}}, ["photon_model", "ratiometric", "'ratios'"],
                     id="ratiometric-without-ratios"),
        pytest.param({"channels": [BASE, BASE], "photon_model": {"kind": "ratiometric", "ratios": [[0.5, 0.2, 0.3]]}},
                     ["ratios", "3 entries", "(2)"], id="ratios-per-channel"),
        pytest.param({"channels": [BASE, BASE], "photon_model": {"kind": "ratiometric", "ratios": [[0.9, 0.9]]}},
                     ["ratios[0]", "1.8"], id="ratios-sum-above-1"),
        pytest.param({**BASE, "photon_model": {"kind": "linked", "ratios": [[1.0]]}}, ["'ratios'", "'linked'"],
                     id="ratios-without-ratiometric"),
        pytest.param({"channels": []}, ["channels", "[]"], id="no-channels"),
    ],
)
def test_bad_configs_name_the_field_and_the_value(data, must_say):
    message = _error(data)
    for part in must_say:
        assert part in message, f"{part!r} not in {message!r}"


def test_scmos_scalar_error_is_one_message():
    message = _error({"psf": GAUSS, "camera": {"kind": "scmos", "baseline": -5}})
    assert message.count("baseline") == 1 and "lax-or-strict" not in message and "valid path" not in message


def test_several_problems_are_all_reported():
    message = _error({"psf": GAUSS, "camera": {"kind": "emccd", "em_gain": 0, "e_per_adu": -1}})
    assert "camera.em_gain" in message and "camera.e_per_adu" in message


def test_single_channel_shortcut_is_one_channel():
    cfg = validate_config({"psf": {"kind": "astigmatic", "c_nm": [-200, 200]}, "camera": EMCCD}, SimulationConfig)
    assert cfg.n_channels == 1
    assert isinstance(cfg.channels[0].psf, AstigmaticPSFConfig) and cfg.channels[0].psf.c_nm == (-200.0, 200.0)
    assert isinstance(cfg.channels[0].camera, EMCCDConfig)
    assert cfg.channels[0].transform == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert cfg.px_size_xy_nm == (100.0, 100.0)
    assert validate_config({**BASE, "px_size_nm": [100, 110]}, SimulationConfig).px_size_xy_nm == (100.0, 110.0)


def test_assignment_is_validated_too():
    cfg = validate_config(BASE, SimulationConfig)
    with pytest.raises(ValueError, match="em_gain"):
        cfg.channels[0].camera.em_gain = -1.0


# ---------------------------------------------------------------------------------------- files
def test_load_config_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(InputError, match="nowhere.yaml.*not found") as info:
        load_config(path)
    assert info.value.source == str(path)


def test_load_config_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("psf: {kind: gaussian\ncamera: [emccd\n")
    with pytest.raises(InputError, match=r"broken\.yaml: not valid YAML") as info:
        load_config(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", ""])
def test_load_config_non_mapping_names_the_file(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"list\.yaml: expected a mapping"):
        load_config(path)


def test_load_config_validation_error_names_file_field_and_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"psf": GAUSS, "camera": {"kind": "emccd", "em_gain": -3}}))
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "camera.em_gain" in message and "-3" in message


def test_yaml_round_trip(tmp_path):
    data = {
        "px_size_nm": [100.0, 105.0],
        "frame_size": [48, 40],
        "channels": [
            {"psf": {"kind": "astigmatic", "A": [0.1, -0.2]}, "camera": {"kind": "emccd", "em_gain": 150}},
            {"psf": {"kind": "gaussian", "sigma_nm": [120, 140]}, "camera": {"kind": "scmos", "read_sigma": 2.0},
             "transform": [[1.0, 0.01, 3.0], [0.0, 0.99, -150.0], [0.0, 0.0, 1.0]], "z_offset_nm": 300.0,
             "throughput": 0.4},
        ],
        "photon_model": {"kind": "ratiometric", "ratios": [[0.8, 0.2], [0.3, 0.6]], "color_fractions": [1, 3]},
        "emitters": {"density_per_um2": 0.5, "z_range_nm": [-400, 400], "on_time_frames": 1.5},
        "background": {"range": [10, 80], "variation": 0.2},
    }
    src = tmp_path / "in.yaml"
    src.write_text(yaml.safe_dump(data))
    from plexloc.config import CameraDefaultsWarning

    with pytest.warns(CameraDefaultsWarning, match=r"in.yaml: .*channels.0.camera.e_per_adu 45 e-/ADU.*"
                      r"channels.1.camera.e_per_adu 0.5 e-/ADU"):
        cfg = load_config(src)
    out = tmp_path / "sub" / "out.yaml"
    save_config(cfg, out)
    again = load_config(out)  # a saved configuration has every field: quiet
    assert again == cfg
    assert again.model_dump() == cfg.model_dump()
    assert again.channels[1].transform[1][2] == -150.0 and again.photon_model.ratios == [[0.8, 0.2], [0.3, 0.6]]
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.yaml"]  # no temporary file left behind


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path, monkeypatch):
    folder = tmp_path / "experiment"
    folder.mkdir()
    absolute = tmp_path / "elsewhere" / "offset.npy"
    (folder / "cfg.yaml").write_text(
        yaml.safe_dump(
            {
                "channels": [
                    {"psf": {"kind": "spline", "calibration": "cal/bead_3dcal.mat"},
                     "camera": {"kind": "scmos", "e_per_adu": "maps/gain.npy", "baseline": str(absolute),
                                "read_sigma": 1.2}},
                ]
            }
        )
    )
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    from plexloc.config import CameraDefaultsWarning

    with pytest.warns(CameraDefaultsWarning, match=r"channels.0.camera.qe 0.8, channels.0.camera.spurious_charge 0"):
        cfg = load_config(Path("experiment") / "cfg.yaml")
    psf, cam = cfg.channels[0].psf, cfg.channels[0].camera
    assert isinstance(psf, SplinePSFConfig) and isinstance(cam, SCMOSConfig)
    # absolute, so that a model saved with this configuration finds them from any folder
    assert Path(psf.calibration) == (folder / "cal" / "bead_3dcal.mat").resolve()
    assert Path(cam.e_per_adu) == (folder / "maps" / "gain.npy").resolve()
    assert Path(cam.baseline) == absolute
    assert cam.read_sigma == 1.2
    # validate_config on a mapping does not touch paths (there is no file to be relative to)
    raw = validate_config({"psf": {"kind": "spline", "calibration": "cal/x.mat"}, "camera": EMCCD}, SimulationConfig)
    assert Path(raw.channels[0].psf.calibration) == Path("cal/x.mat")


def test_camera_yaml_finds_its_maps_next_to_it_and_names_bad_fields(tmp_path, monkeypatch):
    import numpy as np

    from plexloc.config import load_camera_config
    from plexloc.errors import InputError

    (tmp_path / "cfg").mkdir()
    np.save(tmp_path / "cfg" / "gain.npy", np.full((4, 4), 0.5, np.float32))
    (tmp_path / "cfg" / "cam.yaml").write_text("kind: scmos\ne_per_adu: gain.npy\nbaseline: 100\n")
    monkeypatch.chdir(tmp_path)  # not the YAML's folder
    from plexloc.config import CameraDefaultsWarning

    with pytest.warns(CameraDefaultsWarning, match=r"cam.yaml: .*: qe 0.8, spurious_charge 0 e-/px/frame, read_sigma"):
        cam = load_camera_config("cfg/cam.yaml")
    assert cam.kind == "scmos" and Path(cam.e_per_adu) == tmp_path / "cfg" / "gain.npy"
    (tmp_path / "nested.yaml").write_text("camera: {kind: emccd, em_gain: 100}\npsf: {kind: gaussian}\n")
    with pytest.warns(CameraDefaultsWarning, match=r"camera.e_per_adu 45 e-/ADU, camera.baseline 100 ADU"):
        assert load_camera_config(tmp_path / "nested.yaml").em_gain == 100
    (tmp_path / "typo.yaml").write_text("kind: emccd\nem_gian: 100\n")
    with pytest.raises(InputError, match=r"typo\.yaml: unknown field 'em_gian'; allowed: .*'em_gain'"):
        load_camera_config(tmp_path / "typo.yaml")
    (tmp_path / "none.yaml").write_text("psf: {kind: gaussian}\n")
    with pytest.raises(InputError, match="no camera in it"):
        load_camera_config(tmp_path / "none.yaml")
    with pytest.raises(InputError, match="camera file not found"):
        load_camera_config(tmp_path / "missing.yaml")


def test_camera_numbers_with_units_and_micrometre_pixels_are_refused_by_name(tmp_path):
    """``baseline: "100 ADU"`` was read as a map path ("got '/tmp/walk/100 ADU'"); now the message names the field,
    its unit and that units are not written in the value, and keeps the value as written. ``px_size_nm: 0.1`` (um
    typed as nm) simulated 0 emitters silently; now refused naming the field."""
    from plexloc.config import load_camera_config, load_config

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "2d_gaussian.yaml").read_text())
    for kind, allowed in (("emccd", "takes a number (ADU); units"),
                          ("scmos", "takes a number (ADU) or the path of a per-pixel map (.npy or .tif); units")):
        cam = dict(base["camera"], kind=kind, baseline="100 ADU")
        if kind == "scmos":
            del cam["em_gain"]
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump({**base, "camera": cam}))
        with pytest.raises(InputError, match=rf"{kind}.yaml: field 'camera.baseline': "
                           rf"{__import__('re').escape(allowed)} are not written in the value \(got '100 ADU'\)"):
            load_config(path)
        (tmp_path / "cam.yaml").write_text(yaml.safe_dump(cam))
        with pytest.raises(InputError, match=r"yaml: field 'baseline': takes a number .*\(got '100 ADU'\)"):
            load_camera_config(tmp_path / "cam.yaml")
    quoted = dict(base["camera"], baseline="100")  # a number in quotes is still the number
    assert validate_config({**base, "camera": quoted}, SimulationConfig).channels[0].camera.baseline == 100.0
    assert "baseline" in _error({"psf": GAUSS, "camera": {"kind": "additive", "baseline": "1e2 ADU"}})
    message = _error({**base, "px_size_nm": 0.1})
    assert "field 'px_size_nm'" in message and "0.1 um" not in message and "(0.1 µm = 100 nm)" in message
    assert "px_size_nm" in _error({**base, "px_size_nm": [100.0, 0.1]})
    assert validate_config({**base, "px_size_nm": 20.0}, SimulationConfig).px_size_nm == 20.0


def test_camera_fields_left_out_of_a_file_are_named_once_with_their_defaults(tmp_path):
    """Leaving ``baseline`` out of a camera with baseline 400 ADU took the SMLM Challenge camera's 100 without a
    word (fit --method mle: median bg 102 photons/px against 62). Now a file's camera that leaves fields out gives
    one CameraDefaultsWarning naming each field and its default; complete cameras (every example), an ideal
    camera, sCMOS read noise given as read_variance, and configurations built in code stay quiet."""
    import warnings

    from plexloc.config import CameraDefaultsWarning, load_camera_config, load_camera_configs, load_config

    examples = Path(__file__).resolve().parents[1] / "examples"
    for example in sorted(examples.glob("*.yaml")):
        load_config(example)  # warnings are errors here
    base = yaml.safe_load((examples / "2d_gaussian.yaml").read_text())
    cam = {"kind": "emccd", "em_gain": 100.0, "e_per_adu": 12.0, "qe": 0.9, "spurious_charge": 0.002,
           "read_sigma": 74.4}
    path = tmp_path / "nobase.yaml"
    path.write_text(yaml.safe_dump({**base, "camera": cam}))
    with pytest.warns(CameraDefaultsWarning, match=r"nobase.yaml: camera field\(s\) not given, defaults used \(the "
                      r"SMLM Challenge 2016 EMCCD's\): camera.baseline 100 ADU; ") as rec:
        assert load_config(path).channels[0].camera.baseline == 100.0
    assert len(rec) == 1 and "em_gain" not in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path)  # once per command (process)
        validate_config({**base, "camera": cam}, SimulationConfig)  # the library API: the caller wrote what it wrote
        (tmp_path / "ideal.yaml").write_text("kind: ideal\n")
        load_camera_config(tmp_path / "ideal.yaml")
        (tmp_path / "var.yaml").write_text("kind: scmos\nqe: 0.7\nspurious_charge: 0\ne_per_adu: 0.5\nbaseline: 100\n"
                                           "read_variance: 4.0\n")
        load_camera_config(tmp_path / "var.yaml")
    bare = tmp_path / "bare.yaml"
    bare.write_text("channels:\n  - camera: {kind: emccd, qe: 0.9}\n  - camera: {kind: scmos, e_per_adu: 2.0}\n")
    with pytest.warns(CameraDefaultsWarning, match=r"bare.yaml: .*\(the SMLM Challenge 2016 EMCCD's, plexloc's generic "
                      r"sCMOS\): channels.0.camera.spurious_charge 0.002 e-/px/frame, channels.0.camera.em_gain 300, "
                      r"channels.0.camera.e_per_adu 45 e-/ADU, .*channels.1.camera.qe 0.8, .*"
                      r"channels.1.camera.read_sigma 1.5 e-; "):
        load_camera_configs(bare)


def test_transposed_transform_is_refused_and_a_mirror_warned():
    """A transform with its translation pasted into the bottom row was accepted as a projective transform (and
    simulate piled the channel onto a few pixels); now it is refused as transposed, naming the channel and the
    matrix. A linear part far from the identity (a mirror) is warned about: it belongs in split_view.flip."""
    import warnings

    from plexloc.config.models import TransformWarning

    transposed = [[1, -0.0102, 0], [0.0097, 1.0002, 0], [60.56, -35.06, 1]]
    message = _error({"channels": [BASE, {**BASE, "transform": transposed}]})
    assert "channels.1.transform" in message and "transposed" in message and "60.56" in message
    with pytest.warns(TransformWarning, match=r"channels\.1\.transform.*split_view\.flip"):
        validate_config({"channels": [BASE, {**BASE, "transform": [[-1, 0, 9600.0], [0, 1, 0], [0, 0, 1]]}]},
                        SimulationConfig)
    with warnings.catch_warnings():  # a small rotation, shift and a real (tiny) perspective term stay quiet
        warnings.simplefilter("error")
        validate_config({"channels": [BASE, {**BASE, "transform": [[0.9998, -0.0175, 60.0], [0.0175, 0.9998, -35.0],
                                                                   [1e-7, -2e-7, 1.0]]}]}, SimulationConfig)


def test_errors_of_a_single_channel_file_name_its_own_fields_without_pydantic_type_labels(tmp_path):
    """A single-channel file writes psf/camera at the top; its errors named 'channels.0.psf...', a path the user never
    wrote, and for a field that takes a number or a pair, a -130 gave two errors with pydantic's type labels
    ('...sigma_nm.constrained-float': > 0; '...tuple[constrained-float, constrained-float]': not a valid tuple)."""
    from plexloc.config.io import load_config

    examples = Path(__file__).resolve().parents[1] / "examples"
    base = yaml.safe_load((examples / "2d_gaussian.yaml").read_text())

    def error(**psf) -> str:
        data = {**base, "psf": {**base["psf"], **psf}}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(InputError) as ei:
            load_config(path)
        return str(ei.value)

    msg = error(sigma_nm=-130)
    assert "field 'psf.sigma_nm': Input should be greater than 0 (got -130)" in msg
    assert "channels.0" not in msg and "constrained" not in msg and "tuple" not in msg
    msg = error(sigma_nm=[120, -3])  # the pair member's own error, at the element
    assert "field 'psf.sigma_nm.1': Input should be greater than 0 (got -3)" in msg and "constrained" not in msg
    msg = error(sigma_nm="abc")  # wrong for every member: one line with what it may be
    assert msg.count("field 'psf.sigma_nm'") == 1 and "valid number" in msg and "valid tuple" in msg
    msg = error(sigmaa=3)  # an unknown field still lists the allowed ones of its section
    assert "unknown field 'psf.sigmaa'; allowed: ['kind', 'roi_px', 'sigma_nm']" in msg
    # a multi-channel file keeps its channels' paths
    dual = yaml.safe_load((examples / "biplane.yaml").read_text())
    dual["channels"][1]["psf"]["s0_nm"] = [120.0, -1.0]
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(dual))
    with pytest.raises(InputError, match=r"field 'channels\.1\.psf\.") as ei:
        load_config(path)
    assert "constrained" not in str(ei.value)


def test_a_camera_file_s_errors_name_its_own_fields(tmp_path):
    """A camera file of the camera's fields alone ('kind: emccd', 'qe: 80') was validated wrapped as 'camera' and its
    errors named 'camera.qe', a field the file does not have; a wrong kind named '<top level>'."""
    from plexloc.config import load_camera_configs

    def error(text: str) -> str:
        path = tmp_path / "cam.yaml"
        path.write_text(text)
        with pytest.raises(InputError) as ei:
            load_camera_configs(path)
        return str(ei.value)

    assert "field 'qe': is the fraction of photons detected, 0-1: 80 reads as a percentage; write qe: 0.8 (got 80)" in error(
        "kind: emccd\nqe: 80\n")
    assert "field 'kind': kind 'ccd' is not one of" in error("kind: ccd\n")
    assert "field 'camera.qe':" in error("camera: {kind: emccd, qe: 80}\n")  # the file's own 'camera' section
    assert "(channel 1): field 'channels.1.camera.e_per_adu': must be a number > 0" in error(
        "channels:\n  - camera: {kind: emccd}\n  - camera: {kind: scmos, e_per_adu: -1}\n")
