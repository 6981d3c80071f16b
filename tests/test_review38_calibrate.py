"""Review of the day's changes (c2ae2ab..): plexloc calibrate's files on an interruption (58a5397)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io import write_movie


@pytest.mark.parametrize("model, out_name", [("spline", "psf.h5"), ("astigmatic", "psf.yaml")])
def test_an_interrupted_recalibration_leaves_the_earlier_calibration_whole(tmp_path, monkeypatch, model, out_name):
    """58a5397 removed this run's files on an error or Ctrl-C; calibrating again into the same PSF.h5 (files are
    overwritten), the earlier PSF.json and figures were replaced and then removed: the earlier PSF.h5 stayed without
    its report. Now the run writes aside and moves its files in only once all are written."""
    import plexloc.cli.calibrate as cli_calibrate
    from test_walk38 import FOUR, _beads

    tif = tmp_path / "beads.tif"
    write_movie(tif, _beads(FOUR), dtype=np.uint16)
    argv = ["calibrate", str(tif), "--z-step", "50", "--pixel-size", "100", "--model", model,
            "--out", str(tmp_path / out_name), "--no-validate"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert out_name in before and out_name.split(".")[0] + ".json" in before and any(n.endswith(".png") for n in before)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_calibrate, "write_json", interrupted)  # after the figures, before the calibration
    assert main(argv) == 130
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing removed, nothing left aside
