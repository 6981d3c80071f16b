"""Session 51, registration's leftovers: ``plexloc split MOVIE --flip F --camera CAMERA`` mirrors an sCMOS camera's
per-pixel maps with the movie (before, it told the user to "mirror them too" with no command)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile
import yaml

from plexloc.cli.main import main
from plexloc.config.io import load_camera_config
from plexloc.table import LocTable


def _scmos_movie(tmp_path, *, chip=False):
    rng = np.random.default_rng(3)
    raw = rng.integers(90, 400, size=(7, 6, 9)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ch1.tif", raw, photometric="minisblack")
    shape = (40, 50) if chip else (6, 9)
    maps = {"baseline": rng.uniform(95, 105, shape), "e_per_adu": rng.uniform(0.3, 0.6, shape),
            "read_variance": rng.uniform(1, 9, shape)}
    for field, arr in maps.items():
        np.save(tmp_path / f"{field}_map.npy", arr.astype(np.float32))
    cam = {"kind": "scmos", "qe": 0.7, "spurious_charge": 0.0, **{f: f"{f}_map.npy" for f in maps}}
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump({"camera": cam}))
    return raw, {f: a.astype(np.float32) for f, a in maps.items()}


@pytest.mark.parametrize("flip, how", [("x", lambda a: a[..., ::-1]), ("xy", lambda a: a[..., ::-1, ::-1])])
def test_flip_with_camera_mirrors_the_frame_sized_maps_and_writes_a_camera_file(tmp_path, capsys, flip, how):
    raw, maps = _scmos_movie(tmp_path)
    out = tmp_path / "out"
    assert main(["split", str(tmp_path / "ch1.tif"), "--flip", flip, "--camera", str(tmp_path / "cam.yaml"),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(out / f"ch1_flip{flip}.tif"), how(raw))
    for field, arr in maps.items():
        np.testing.assert_array_equal(np.load(out / f"ch1_flip{flip}_{field}.npy"), how(arr))
    cam_file = out / f"ch1_flip{flip}_camera.yaml"
    assert f"--camera {cam_file}" in text
    cam = load_camera_config(cam_file)  # its maps named relative to it, as plexloc fit --camera reads them
    assert cam.kind == "scmos" and cam.qe == pytest.approx(0.7)
    for field, arr in maps.items():
        assert (out / str(getattr(cam, field))).resolve() == (out / f"ch1_flip{flip}_{field}.npy").resolve()
    # the mirrored movie's pixel (i, j) is the original's mirrored one, and so is its offset map value
    base = np.load(out / f"ch1_flip{flip}_baseline.npy")
    assert base[2, 0] == maps["baseline"][2 if flip == "x" else 3, 8]


def test_flip_with_camera_cuts_full_chip_maps_at_the_roi_then_mirrors(tmp_path, capsys):
    raw, maps = _scmos_movie(tmp_path, chip=True)
    out = tmp_path / "out"
    args = ["split", str(tmp_path / "ch1.tif"), "--flip", "x", "--camera", str(tmp_path / "cam.yaml"),
            "--out", str(out)]
    assert main(args) == 2  # no metadata: where on the chip is unknown
    assert "give --roi-offset X Y" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    assert main(args + ["--roi-offset", "12", "7"]) == 0
    for field, arr in maps.items():
        np.testing.assert_array_equal(np.load(out / f"ch1_flipx_{field}.npy"), arr[7:13, 12:21][:, ::-1])


def test_flip_without_camera_names_the_command_for_the_maps(tmp_path, capsys):
    _scmos_movie(tmp_path)
    assert main(["split", str(tmp_path / "ch1.tif"), "--flip", "y", "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "--camera CAMERA.yaml" in text and "mirror them too" not in text
    assert not (tmp_path / "out" / "ch1_flipy_camera.yaml").exists()


def test_the_swap_fix_says_what_its_number_is():
    """The swap fix quoted "1.003 at zero": now the channels' frames' correlation where they should overlap, with
    what 1 and 0 mean; the alignment summary line says "correlation ... at zero shift"."""
    from test_multi50 import PX
    from test_register51 import _three_channel_split_view

    from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import split_frames

    raw, _, Ts = _three_channel_split_view(("none", "x", "none"))
    wrong = SplitViewConfig(boxes=[(32, 0, 32, 32), (0, 0, 32, 32), (64, 0, 32, 32)], flip=["x", "none", "none"])
    cut = split_frames(raw, wrong)
    with pytest.warns(ChannelAlignmentWarning) as rec:
        rep = check_channel_alignment([cut[:, c] for c in range(3)], Ts, PX, split=wrong, sources="sv.tif")
    fix = str(rec[0].message).split("likely cause and fix: ")[1]
    assert fix.startswith("swap the split_view section's boxes of channels 0 and 1")
    assert " at zero" not in fix
    found = re.findall(r"the channels' frames then correlate (\d\.\d\d) where they should overlap \(1: the same image, "
                       r"0: no likeness\)", fix)
    assert found and all(0.3 < float(v) < 1.2 for v in found)
    assert re.search(r"best alternative: .*, correlation \d\.\d{3} at zero shift", rep.summary())


def test_the_duplicate_share_of_a_random_table_is_counted_at_the_test_radius():
    """Session 51 counted the share at the one of 5 radii with the largest excess: on random tables (no duplicates)
    that pick read about twice the share at the 50 nm test radius (50 localizations in one 5 um frame: 22.9 % against
    14.0 %, 100 tables). Where the p-value does not pass there is no offset to count copies around: the share is the
    one within tol_nm again, as before session 51."""
    from plexloc.post.duplicates import channel_duplicates

    rng = np.random.default_rng(51)
    fractions = []
    for _ in range(40):
        xy = rng.uniform(0, 5000.0, (50, 2))
        table = LocTable({"frame": np.zeros(50, np.int64), "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(50),
                          "photons": np.full(50, 1000.0)})
        rep = channel_duplicates(table, warn=False)
        if rep.warning is None:
            assert rep.share_radius_nm == 50.0
            fractions.append(rep.fraction)
    assert len(fractions) >= 38 and np.mean(fractions) < 0.18


def test_an_empty_ring_is_no_certainty_of_duplicates():
    """The expected count came from the pairs on the ring at the offset's distance; a small table with none there had
    mu = 0, so any 2 pairs gave p = 0 and a warning (table 88 of 100 random ones, 50 localizations in one 10 um frame:
    2 pairs 106 nm apart, "8 % of the localizations come in same-frame pairs"). The p-value now takes mu from one ring
    pair more."""
    from plexloc.post.duplicates import channel_duplicates

    rng = np.random.default_rng(51)
    for _ in range(89):  # as bench/register51b.py draws them
        xy = rng.uniform(0, 10000.0, (50, 2))
        frame = np.sort(rng.integers(0, 1, 50))
    table = LocTable({"frame": frame.astype(np.int64), "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(50),
                      "photons": np.full(50, 1000.0)})
    rep = channel_duplicates(table, warn=False)
    assert rep.pairs == 2 and rep.expected_pairs == 0.0
    assert rep.warning is None and 0.005 < rep.p_value < 0.1


def test_a_fit_of_the_mirrored_movie_with_the_written_camera_gives_the_original_localizations_mirrored(tmp_path):
    """Review (session 51): full-chip sCMOS maps with strong gradients (gain 0.25-1.35 e-/ADU across the chip, offset
    80-140 ADU, read variance 1-60 e-^2), a 24 x 32 ROI at chip x 7, y 11. plexloc fit --method mle of the original
    (with --roi-offset) and of split --flip x's movie with the camera file it writes give the same localizations,
    mirrored (measured: 34 rows, 5e-5 nm at most, for x, y and xy alike); the same mirrored movie fitted with maps cut
    but not mirrored was off by 5.6 nm in the median, 94 nm at most, photons by up to 83 %."""
    from pathlib import Path

    rng = np.random.default_rng(5)
    h, w, px, roi = 24, 32, 100.0, (7, 11)
    yy, xx = np.mgrid[0:40, 0:50]
    chip = {"e_per_adu": 0.25 + 0.9 * xx / 50 + 0.2 * yy / 40, "baseline": 80 + 60 * (xx / 50) ** 2 + 10 * np.sin(yy / 3),
            "read_variance": rng.uniform(1, 60, (40, 50))}
    for field, arr in chip.items():
        np.save(tmp_path / f"{field}.npy", arr.astype(np.float32))
    cam = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, **{f: f"{f}.npy" for f in chip}}
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump({"camera": cam}))
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "2d_gaussian.yaml").read_text())
    cfg.update(frame_size=[h, w], camera=cam)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    g, o, v = (a[roi[1]:roi[1] + h, roi[0]:roi[0] + w] for a in chip.values())
    r, c = np.mgrid[0:h, 0:w]
    s = 1.3
    frames = []
    for _ in range(5):
        lam = np.full((h, w), 20.0)
        for x, y in rng.uniform((3, 3), (w - 3, h - 3), (3, 2)):
            lam += 3000 * np.exp(-((c + .5 - x) ** 2 + (r + .5 - y) ** 2) / (2 * s * s)) / (2 * np.pi * s * s)
        e = rng.poisson(0.8 * lam) + rng.normal(0, np.sqrt(v))
        frames.append(np.clip(np.round(e / g + o), 0, 65535).astype(np.uint16))
    tifffile.imwrite(tmp_path / "m.tif", np.stack(frames), photometric="minisblack")
    fit = ["--method", "mle", "--config", str(tmp_path / "cfg.yaml")]
    assert main(["fit", str(tmp_path / "m.tif"), *fit, "--roi-offset", "7", "11", "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["split", str(tmp_path / "m.tif"), "--flip", "x", "--camera", str(tmp_path / "cam.yaml"),
                 "--roi-offset", "7", "11", "--out", str(tmp_path / "o")]) == 0
    assert main(["fit", str(tmp_path / "o" / "m_flipx.tif"), *fit, "--camera", str(tmp_path / "o" / "m_flipx_camera.yaml"),
                 "--out", str(tmp_path / "b.csv")]) == 0
    from plexloc.io.tables import read_table

    a, b = read_table(tmp_path / "a.csv"), read_table(tmp_path / "b.csv")
    assert len(a) >= 10 and len(b) == len(a)
    ka = np.lexsort((np.round(np.asarray(a["y_nm"]), 1), np.asarray(a["frame"])))
    kb = np.lexsort((np.round(np.asarray(b["y_nm"]), 1), np.asarray(b["frame"])))
    np.testing.assert_array_equal(np.asarray(a["frame"])[ka], np.asarray(b["frame"])[kb])
    np.testing.assert_allclose(np.asarray(b["x_nm"])[kb], w * px - np.asarray(a["x_nm"])[ka], atol=1e-2)
    np.testing.assert_allclose(np.asarray(b["y_nm"])[kb], np.asarray(a["y_nm"])[ka], atol=1e-2)
    np.testing.assert_allclose(np.asarray(b["photons"])[kb], np.asarray(a["photons"])[ka], rtol=1e-4)
