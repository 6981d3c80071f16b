"""Session 41's review: defects found in the day's changes, one test each."""

from __future__ import annotations

import numpy as np

from plexloc.table import LocTable


def test_merging_ors_the_at_bound_bits_of_a_molecule():
    """at_bound is a sum of bits (plexloc.mle.fit.AT_BOUND_BITS): a merged event holds the bits of its rows. Averaged
    (as before), rows with 0, 2 (z) and 8 (bg) gave 3.33, which names bounds (xy 1, z 2) no row hit."""
    from plexloc.mle.fit import AT_BOUND_BITS
    from plexloc.post.merge import merge_localizations

    t = LocTable({"frame": [0, 1, 2, 10], "x_nm": [100.0, 101.0, 100.5, 5000.0], "y_nm": [100.0, 100.0, 100.0, 5000.0],
                  "z_nm": [0.0] * 4, "photons": [1000.0] * 4, "crlb_x_nm": [5.0] * 4, "crlb_y_nm": [5.0] * 4,
                  "converged": [1.0, 0.0, 1.0, 1.0], "at_bound": [0, 2, 8, 0]})
    merged = merge_localizations(t)
    assert len(merged) == 2
    order = np.argsort(merged["frame"])
    assert np.asarray(merged["at_bound"])[order].tolist() == [AT_BOUND_BITS["z"] | AT_BOUND_BITS["bg"], 0]


def test_calibrate_takes_the_cameras_saturation_adu(tmp_path, capsys):
    """A camera YAML with saturation_adu: beads that reach it are rejected as saturated, as plexloc fit flags their
    rows. Before, plexloc calibrate ignored the setting: it looked at 65535 (the uint16 maximum) and kept the bead."""
    import json

    import torch

    from plexloc.cli.main import main
    from plexloc.io import write_movie
    from plexloc.psf import AstigmaticPSF

    zs = np.arange(-800.0, 801.0, 50.0)
    grid = [(1230.0, 1170.0), (1260.0, 3010.0), (3120.0, 1240.0), (3050.0, 3080.0)]
    frames = torch.zeros((len(zs), 48, 48))
    for (x, y), n in zip(grid, [2e4, 2e4, 2e5, 2e4]):
        frames += AstigmaticPSF(px_size_nm=(100.0, 100.0), roi_px=21).render(
            torch.full((len(zs),), x), torch.full((len(zs),), y), torch.tensor(zs, dtype=torch.float32),
            torch.full((len(zs),), n), torch.arange(len(zs)), n_frames=len(zs), frame_shape=(48, 48))
    stack = torch.poisson(frames + 20.0, generator=torch.Generator().manual_seed(0)).numpy()
    assert 8000 < stack.max() < 65535 and np.sort(stack.ravel())[-1] != np.sort(stack.ravel())[-4]  # no flat top
    tif = tmp_path / "beads.tif"
    write_movie(tif, stack, dtype=np.uint16)
    cam = tmp_path / "cam.yaml"
    cam.write_text("kind: ideal\nsaturation_adu: 8000\n")
    out = tmp_path / "PSF.yaml"
    rc = main(["calibrate", str(tif), "--camera", str(cam), "--z-step", "50", "--pixel-size", "100", "--model",
               "astigmatic", "--out", str(out), "--no-validate"])
    err = capsys.readouterr().err
    assert rc == 0, err
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["n_beads_used"] == [3]
    assert rep["rejected_beads"][0][0]["reason"] == "saturated"
    assert "looked for at 8000 ADU, the camera's saturation_adu" in err


def test_at_bound_is_an_integer_column_that_selects_a_bound(tmp_path):
    """at_bound is a sum of bits: held as int64 (as saturated_px), read back so from a file, so that
    ``t["at_bound"] & AT_BOUND_BITS["z"]`` works. As float64 (before) the selection raised a TypeError."""
    from plexloc.io.tables import read_table, write_table
    from plexloc.mle.fit import AT_BOUND_BITS
    from plexloc.table import LocTable

    t = LocTable({"frame": [0, 1, 2], "x_nm": [1.0, 2.0, 3.0], "y_nm": [1.0] * 3, "z_nm": [0.0] * 3,
                  "photons": [100.0] * 3, "converged": [1.0, 0.0, 1.0], "at_bound": [0.0, 2.0, 8.0]})
    write_table(t, tmp_path / "t.csv")
    back = read_table(tmp_path / "t.csv")
    for table in (t, back):
        assert table["at_bound"].dtype == np.int64
        assert ((table["at_bound"] & AT_BOUND_BITS["z"]) != 0).tolist() == [False, True, False]


def test_process_counts_the_mle_rows_that_did_not_converge(tmp_path):
    """plexloc process keeps the MLE's counts of rows kept with converged 0 (and on each bound) in summary.json's fit
    and says them among its notes, as plexloc fit prints them. Before, summary.json had neither."""
    import json
    from pathlib import Path

    import torch

    from plexloc.cli.main import main
    from plexloc.config import load_config
    from plexloc.io.tables import read_table
    from plexloc.io.tiff import write_movie
    from plexloc.simulation import Simulator

    examples = Path(__file__).resolve().parents[1] / "examples"
    cfg = load_config(examples / "3d_astigmatic.yaml")  # emitters over +-900 nm, fitted within +-500 nm
    cfg.frame_size = [32, 32]
    cfg.emitters.density_per_um2 = 0.3
    cfg.background.variation = 0.0
    cfg.emitters.z_range_nm = [-900.0, 900.0]
    movie = Simulator(cfg).simulate_movie(20, generator=torch.Generator().manual_seed(4))
    write_movie(tmp_path / "m.tif", movie.frames[0].numpy())
    out = tmp_path / "out"
    assert main(["process", str(tmp_path / "m.tif"), "--method", "mle", "--config", str(examples / "3d_astigmatic.yaml"),
                 "--out", str(out), "--device", "cpu", "--no-drift"]) == 0
    s = json.loads((out / "m" / "summary.json").read_text())
    locs = read_table(out / "m" / "locs.csv")
    n_not = int((locs["converged"] == 0).sum())
    n_z = int(((np.asarray(locs["at_bound"]).astype(np.int64) & 2) != 0).sum())
    assert n_z >= 5
    assert s["fit"]["flagged"]["not_converged"] == n_not and s["fit"]["flagged"]["z"] == n_z
    assert any(f"{n_not} rows did not converge" in n and f"{n_z} z on its bound" in n for n in s["fit"]["notes"])
