"""A simulated split-view movie's pixels between the channel boxes read the camera's baseline, as a dark part of a
real chip does; they were 0 ADU, 100 below the baseline, which a viewer's contrast and any check over the whole frame
read as a black band."""

from __future__ import annotations

import numpy as np
import tifffile
import yaml

from plexloc.cli.main import main
from plexloc.config import load_config
from plexloc.config.examples import example_path


def _splitview_config(tmp_path):
    data = yaml.safe_load(example_path("biplane.yaml").read_text())
    h, w = load_config(example_path("biplane.yaml")).frame_size
    data["split_view"] = {"boxes": [[w + 6, 0, w, h], [0, 0, w, h]], "flip": ["x", "none"]}
    cfg = tmp_path / "sv.yaml"
    cfg.write_text(yaml.safe_dump(data))
    base = float(load_config(cfg).channels[0].camera.baseline)
    return cfg, w, base


def test_gap_between_the_boxes_reads_the_baseline(tmp_path, capsys):
    cfg, w, base = _splitview_config(tmp_path)
    assert main(["simulate", str(cfg), "--frames", "4", "--out", str(tmp_path / "m"), "--device", "cpu"]) == 0
    movie = tifffile.imread(tmp_path / "m" / "movie.tif")
    gap = movie[:, :, w : w + 6]
    assert base > 0 and np.all(gap == round(base))
    assert np.median(movie[:, :, :w]) > base  # the boxes hold the signal above it


def test_bead_stack_gap_reads_the_baseline(tmp_path, capsys):
    cfg, w, base = _splitview_config(tmp_path)
    assert main(["simulate", str(cfg), "--beads", "4", "--z-step", "200", "--z-range", "-400", "400",
                 "--out", str(tmp_path / "b"), "--device", "cpu"]) == 0
    stack = tifffile.imread(tmp_path / "b" / "beads.tif")
    assert np.all(stack[:, :, w : w + 6] == round(base))
