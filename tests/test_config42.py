"""A YAML key given twice is an error naming the file, the key and both lines (PyYAML keeps the second silently: a
configuration with two psf: sections ran with the last, a 200-nm Gaussian instead of the first 130 nm); the library's
worker agent takes a relative work folder as the command line does (every job failed with 'file not found')."""

from __future__ import annotations

from pathlib import Path

import pytest

from plexloc.config import load_camera_config, load_config
from plexloc.config.io import load_yaml
from plexloc.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_configuration_with_a_section_twice_is_refused(tmp_path):
    text = (EXAMPLES / "2d_gaussian.yaml").read_text()
    assert "psf:" in text
    load_config(EXAMPLES / "2d_gaussian.yaml")  # the example itself is fine
    bad = tmp_path / "dup.yaml"
    bad.write_text(text + "\npsf:\n  kind: gaussian\n  sigma_nm: 200\n")
    with pytest.raises(InputError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg and "'psf' is given twice" in msg
    first = 1 + text.splitlines().index(next(ln for ln in text.splitlines() if ln.startswith("psf:")))
    assert f"(lines {first} and {len(text.splitlines()) + 2})" in msg, msg


def test_a_camera_file_with_a_field_twice_is_refused(tmp_path):
    cam = tmp_path / "cam.yaml"
    cam.write_text("camera:\n  kind: emccd\n  em_gain: 300\n  e_per_adu: 45\n  em_gain: 100\n")
    with pytest.raises(InputError, match=r"'em_gain' is given twice \(lines 3 and 5\)") as err:
        load_camera_config(cam)
    assert str(cam) in str(err.value)
    full = "camera:\n  kind: emccd\n  em_gain: 300\n  e_per_adu: 45\n  qe: 0.9\n  spurious_charge: 0.002\n  baseline: 100\n  read_sigma: 74.4\n"
    cam.write_text(full)
    assert load_camera_config(cam).em_gain == 300
    cam.write_text(full + "  baseline: 400\n")
    with pytest.raises(InputError, match=r"'baseline' is given twice \(lines 7 and 9\)"):
        load_camera_config(cam)


def test_merge_keys_may_be_overridden_and_lists_may_repeat():
    assert load_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")["other"] == {"x": 1, "y": 3}
    assert load_yaml("- {k: 1}\n- {k: 1}\n") == [{"k": 1}, {"k": 1}]
    with pytest.raises(Exception, match="'a' is given twice"):
        load_yaml("{a: 1, a: 2}")


def test_the_agent_makes_a_relative_work_folder_absolute(tmp_path, monkeypatch):
    from plexloc.service.agent import Agent, Hardware

    monkeypatch.chdir(tmp_path)
    agent = Agent("http://127.0.0.1:9", "plxw_x", work_dir="wk", hardware=Hardware(cpus=1, memory_mb=100))
    try:
        assert agent.work_dir == tmp_path.resolve() / "wk" and agent.work_dir.is_absolute()
    finally:
        agent.http.close()
        agent.bytes_http.close()
