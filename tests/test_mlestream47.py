"""The MLE fit's stream (session 47): chunks of a bounded number of pixels as the network fit reads them, a progress
bar that counts frames with their rate and a summary line with frames/s; and one computation of a spline PSF's z range
(plus the channel's z offset) for the simulator, the MLE fit and plexloc crlb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.config import load_config
from plexloc.io.tiff import ArrayMovie, write_movie
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _movie(frames: int = 20, size: int = 32, seed: int = 0):
    """(config, raw frames (T, H, W)) of examples/2d_gaussian.yaml at 0.5 emitters/um^2 on ``size`` x ``size`` px."""
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    cfg.frame_size = [size, size]
    sim = Simulator(cfg)
    movie = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed))
    return cfg, movie.frames[0].numpy().astype(np.uint16)


def test_mle_fit_reads_large_frames_in_chunks_of_a_bounded_number_of_pixels(monkeypatch):
    # 256 frames a chunk whatever their size: 100 frames of 1000 x 1000 peaked at 3.3 GB of RSS (0.9 GB in chunks of
    # 2**24 pixels, the network fit's budget). Here the budget is scaled down to 4 frames of 32 x 32 pixels
    from plexloc.io import tiff
    from plexloc.mle import fit_movie

    cfg, frames = _movie()
    reads: list[tuple[int, int]] = []

    class CountedReads(ArrayMovie):
        def _read(self, start, stop):
            reads.append((start, stop))
            return super()._read(start, stop)

    whole_stats: dict = {}
    whole = fit_movie(frames, cfg, stats=whole_stats)
    monkeypatch.setattr(tiff, "CHUNK_PIXELS", 4 * 32 * 32, raising=False)
    stats: dict = {}
    table = fit_movie([CountedReads(frames)], cfg, stats=stats)
    # the fit's chunks (the PSF shape check before it reads frame 0, then frames 1-19, in its own chunks)
    assert (0, 4) in reads and sorted(r for r in reads if r[0] > 1) == [(a, a + 4) for a in range(4, 20, 4)]
    assert stats["chunk_frames"] == 4 and whole_stats["chunk_frames"] == 256  # the default batch_frames: all 20
    # the same table: detection and fits are per frame and per window
    assert len(table) == len(whole)
    for col in ("frame", "x_nm", "y_nm", "photons", "bg", "crlb_x_nm"):
        np.testing.assert_allclose(table[col], whole[col], rtol=1e-6, atol=1e-6, err_msg=col)


def test_mle_fit_progress_counts_frames_and_stats_give_frames_per_s(monkeypatch):
    # the bar counted chunks (1 of 1 for a movie of 256 frames or fewer) with no rate of frames
    import plexloc.progress
    from plexloc.io import tiff
    from plexloc.mle import fit_movie

    bars = []

    class Bar:
        def __init__(self, iterable, *, total=None, desc="", unit="it", **kwargs):
            self.total, self.desc, self.unit, self.n, self.closed, self.postfix = total, desc, unit, 0, False, {}
            self.iterable = iterable
            bars.append(self)

        def __iter__(self):  # a bar over an iterable (the old bar of chunks) counts as it goes
            for item in self.iterable:
                yield item
                self.n += 1
            self.close()

        def update(self, k=1):
            self.n += k

        def set_postfix(self, refresh=True, **kw):
            self.postfix = kw

        def close(self):
            self.closed = True

    monkeypatch.setattr(plexloc.progress, "progress", Bar)
    monkeypatch.setattr(tiff, "CHUNK_PIXELS", 8 * 32 * 32, raising=False)  # 3 chunks: 8 + 8 + 4 frames
    cfg, frames = _movie()
    stats: dict = {}
    table = fit_movie(frames, cfg, progress=True, stats=stats)
    (bar,) = bars
    assert (bar.desc, bar.unit, bar.total, bar.n, bar.closed) == ("fit", "frame", 20, 20, True)
    assert bar.postfix == {"locs": len(table)}
    assert stats["frames"] == 20 and stats["seconds"] > 0
    assert stats["frames_per_s"] == pytest.approx(20 / stats["seconds"])


def test_plexloc_fit_mle_summary_line_gives_frames_per_s(tmp_path, capsys):
    import yaml

    from plexloc.cli.main import main

    cfg, frames = _movie(frames=6)
    write_movie(tmp_path / "movie.tif", frames)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    out = tmp_path / "locs.csv"
    assert main(["fit", str(tmp_path / "movie.tif"), "--method", "mle", "--config", str(tmp_path / "config.yaml"),
                 "--out", str(out)]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 1 and " frames/s)" in wrote[0], wrote


# --- one z range of a spline PSF for the simulator, the MLE fit and plexloc crlb -------------------------------------

def _spline_config(tmp_path) -> Path:
    """examples/3d_astigmatic.yaml with a spline PSF calibrated over z [-500, 500] nm and the channel's focal plane
    100 nm deeper (z_offset_nm 100: the spline covers emitter z [-400, 600])."""
    import yaml

    from conftest import astigmatic_spline_h5

    astigmatic_spline_h5(tmp_path / "PSF.h5")
    with open(EXAMPLES / "3d_astigmatic.yaml") as f:
        d = yaml.safe_load(f)
    d["channels"] = [{"psf": {"kind": "spline", "calibration": str(tmp_path / "PSF.h5")}, "camera": d.pop("camera"),
                      "z_offset_nm": 100.0}]
    del d["psf"]
    d["emitters"]["z_range_nm"] = [-300.0, 300.0]
    path = tmp_path / "spline.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_spline_z_range_with_the_channels_offset_is_one_computation_for_simulator_mle_and_crlb(tmp_path, capsys):
    from plexloc.cli.main import main
    from plexloc.errors import InputError
    from plexloc.mle import MLEFitter
    from plexloc.mle.pipeline import ZRangeWarning
    from plexloc.simulation.simulator import psf_z_range

    path = _spline_config(tmp_path)
    cfg = load_config(path)
    sim = Simulator(cfg)  # [-300, 300] within [-400, 600]
    assert psf_z_range(sim.channels[0], cfg.channels[0]) == (-400.0, 600.0, str(tmp_path / "PSF.h5"))
    wide = cfg.model_copy(update={"emitters": cfg.emitters.model_copy(update={"z_range_nm": (-450.0, 300.0)})})
    with pytest.raises(InputError) as err:  # the simulator: the PSF's own range, and the emitters' range that fits
        Simulator(wide)
    msg = str(err.value)
    assert "emitters.z_range_nm [-450, 300] (channel 0 z offset 100) leaves the PSF's calibrated z range [-500, 500] " \
           "nm: narrow emitters.z_range_nm to [-400, 300] nm or less, or calibrate with a bead stack" in msg
    assert "PSF.h5" in msg
    with pytest.warns(ZRangeWarning) as rec:  # the MLE fit: the emitter z range the spline covers
        MLEFitter(wide)
    (w,) = [str(r.message) for r in rec]
    assert "[-450, 300] nm reaches beyond channel 0's spline PSF, calibrated over z [-400, 600] nm (" in w
    assert str(tmp_path / "PSF.h5") in w
    # plexloc crlb: the same range; z within it answers
    assert main(["crlb", str(path), "--photons", "2000", "--bg", "20", "--z=-400,550"]) == 0
    assert main(["crlb", str(path), "--photons", "2000", "--bg", "20", "--z=-450,0,650"]) == 2
    text = capsys.readouterr().err
    assert "--z -450,650 nm lies outside channel 0's PSF model, calibrated over z [-400, 600] nm" in text
