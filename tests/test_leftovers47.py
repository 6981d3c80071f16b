"""Five defects left by earlier sessions (session 47, helper "leftovers"); each test fails on the code before its fix
(the split one counts the configuration's reads: no behaviour changed there)."""

from __future__ import annotations

import pathlib
import sqlite3

import numpy as np
import pytest
import yaml


# --- service: forget_inputs with more ids than an old SQLite's 999 bound variables -----------------------------------

def test_forget_inputs_chunks_its_in_list_under_sqlites_variable_limit(tmp_path):
    """Deleting 1,500 files at once put 1,500 ids in one IN list: an SQLite built with the old limit of 999 variables
    (before 3.32; 32,766 after) refused it ("too many SQL variables") and the deletion failed. Here the limit is set to
    999 on the deleting session's connection, as such a build has it."""
    from sqlalchemy import select

    from plexloc.service import jobs as ops
    from plexloc.service.db import File, Job, JobInput, User, make_engine, session_factory, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        n = 1500
        with sessions.begin() as s:
            user = User(name="alice", token_hash="0" * 64)
            s.add(user)
            s.flush()
            files = [File(user_id=user.id, name=f"movie{i}.tif", size=1, storage_key=f"u/{i}", state="ready")
                     for i in range(n)]
            s.add_all(files)
            job = Job(user_id=user.id, application="a", version="1", entry_point="e", state="succeeded")
            s.add(job)
            s.flush()
            s.add_all([JobInput(job_id=job.id, slot="movies", position=i, file_id=f.id) for i, f in enumerate(files)])
            s.flush()
            job_id = job.id
        with sessions.begin() as s:
            raw = s.connection().connection.dbapi_connection
            old = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            try:
                files = list(s.scalars(select(File)).all())
                assert len(files) == n
                ops.forget_inputs(s, files)
            finally:
                raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, old)
        with sessions.begin() as s:
            rows = s.scalars(select(JobInput).where(JobInput.job_id == job_id).order_by(JobInput.position)).all()
            assert len(rows) == n
            assert all(r.file_id is None for r in rows)
            assert [r.source_name for r in rows] == [f"movie{i}.tif" for i in range(n)]
    finally:
        engine.dispose()


# --- plexloc split: the configuration read once ------------------------------------------------------------------------

def test_split_reads_its_configuration_once(tmp_path, monkeypatch, capsys):
    """``plexloc split`` read its YAML three times (the split_view section, the test for channels, the configuration):
    now once, and the files it writes are the same."""
    import tifffile

    from plexloc.cli.main import main
    from plexloc.config import load_config
    from plexloc.config.examples import example_path
    from plexloc.io.splitview import split_frames

    data = yaml.safe_load(example_path("dual_color_splitview.yaml").read_text())
    data["split_view"]["boxes"] = [[2, 1, 8, 6], [12, 1, 8, 6]]
    cfg = tmp_path / "sv.yaml"
    cfg.write_text(yaml.safe_dump(data))
    frames = np.random.default_rng(0).integers(0, 4000, size=(5, 9, 22)).astype(np.uint16)
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, frames)
    reads = []
    original = pathlib.Path.read_text

    def counting(self, *args, **kwargs):
        if self.resolve() == cfg.resolve():
            reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", counting)
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "cut")]) == 0
    monkeypatch.undo()
    assert len(reads) == 1
    want = split_frames(frames, load_config(cfg).split_view)
    for c in range(2):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "cut" / f"m_ch{c}.tif"), want[:, c])
        assert load_config(tmp_path / "cut" / f"m_ch{c}.yaml").n_channels == 1
    assert "plexloc register" in capsys.readouterr().out


# --- 2D foreign tables: z unknown (NaN), as plexloc's own 2D CSV -------------------------------------------------------

def _table_2d():
    from plexloc.table import LocTable

    return LocTable({"frame": [0, 1, 1], "x_nm": [150.0, 420.0, 990.0], "y_nm": [250.0, 80.0, 610.0],
                     "z_nm": [np.nan] * 3, "photons": [1000.0, 2000.0, 1500.0], "sigma_x_nm": [9.0, 7.0, 8.0],
                     "sigma_y_nm": [9.0, 7.0, 8.0]})


def test_thunderstorm_2d_file_reads_z_as_unknown(tmp_path):
    """A ThunderSTORM file without "z [nm]" (its 2D file) was read with z_nm 0 in every row, plexloc's own 2D CSV with
    NaN (conventions: z unknown): a 2D ThunderSTORM table then looked like a 3D one at the focal plane. Now NaN, and a
    2D table written to ThunderSTORM and read back is the same table."""
    from plexloc.io import read_locs, write_locs

    p = tmp_path / "a.thunderstorm.csv"
    p.write_text('"frame","x [nm]","y [nm]","intensity [photon]","uncertainty [nm]"\n1,150,250,1000,9\n2,420,80,2000,7\n')
    t = read_locs(p)
    assert np.isnan(t["z_nm"]).all() and t["x_nm"].tolist() == [150.0, 420.0]
    q = tmp_path / "b.thunderstorm.csv"
    write_locs(_table_2d(), q)
    with open(q) as f:
        assert "z [nm]" not in f.readline()
    back = read_locs(q)
    assert np.isnan(back["z_nm"]).all()
    np.testing.assert_array_equal(back["x_nm"], _table_2d()["x_nm"])


def test_picasso_2d_file_reads_z_as_unknown(tmp_path):
    """A Picasso file without a z field (its 2D localizations) was read with z_nm 0; now NaN, as a 2D table written
    to Picasso comes back."""
    from plexloc.io.picasso import export_picasso, import_picasso

    p = tmp_path / "a.hdf5"
    export_picasso(_table_2d(), p, px_size_nm=100.0, frame_shape=(16, 16))
    back = import_picasso(p)
    assert np.isnan(back["z_nm"]).all() and len(back) == 3
    np.testing.assert_allclose(back["x_nm"], _table_2d()["x_nm"], rtol=1e-6)


def test_smap_file_without_znm_reads_z_as_unknown(tmp_path):
    """A SMAP _sml.mat without znm was read with z_nm 0; now NaN (z unknown), and with znm its values."""
    import scipy.io

    from plexloc.io.foreign import read_smap_sml

    loc = {"frame": np.array([[1.0], [2.0]]), "xnm": np.array([[100.0], [200.0]]), "ynm": np.array([[50.0], [60.0]]),
           "phot": np.array([[1000.0], [900.0]])}
    scipy.io.savemat(tmp_path / "a_sml.mat", {"saveloc": {"loc": loc}})
    assert np.isnan(read_smap_sml(tmp_path / "a_sml.mat")["z_nm"]).all()
    scipy.io.savemat(tmp_path / "b_sml.mat", {"saveloc": {"loc": {**loc, "znm": np.array([[0.0], [-40.0]])}}})
    assert read_smap_sml(tmp_path / "b_sml.mat")["z_nm"].tolist() == [0.0, -40.0]


def test_a_2d_thunderstorm_table_is_not_scored_in_3d_at_z_0(tmp_path):
    """Scored against a 3D truth with dim=3, a 2D ThunderSTORM table read with z 0 got an axial error from z = 0 (RMSE_ax
    300 nm here, the truth's own z, without a word); with z unknown a 3D score is refused, naming the column and dim=2,
    and dim=2 scores it."""
    from plexloc.errors import InputError
    from plexloc.evaluate import evaluate
    from plexloc.io import read_locs
    from plexloc.table import LocTable

    p = tmp_path / "a.thunderstorm.csv"
    p.write_text('"frame","x [nm]","y [nm]","intensity [photon]"\n1,150,250,1000\n2,420,80,2000\n')
    truth = LocTable({"frame": [0, 1], "x_nm": [152.0, 418.0], "y_nm": [249.0, 82.0], "z_nm": [300.0, -300.0],
                      "photons": [1000.0, 2000.0]})
    pred = read_locs(p)
    with pytest.raises(InputError, match=r"'z_nm'.*dim=2 ignores z"):
        evaluate(truth, pred, dim=3)
    m2 = evaluate(truth, pred, dim=2).to_dict()
    assert m2["jaccard"] == 100.0 and m2["rmse_lat"] == pytest.approx(np.sqrt((4 + 1 + 4 + 4) / 2))


# --- plexloc color: --excess-noise 2 where the camera is an EMCCD --------------------------------------------------------

_EMCCD = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
          "baseline": 100.0, "read_sigma": 74.4}
_SCMOS = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}


def _colour_table(path):
    """Dual-colour rows (ratios 0.2/0.8 and 0.6/0.4), 1,000 photons, Poisson noise doubled in variance (an EMCCD's)."""
    from plexloc.io import write_locs
    from plexloc.table import LocTable

    rng = np.random.default_rng(1)
    n = 400
    k = rng.integers(0, 2, n)
    r = np.array([[0.2, 0.8], [0.6, 0.4]])[k]
    ph = 1000.0 * r + rng.normal(size=(n, 2)) * np.sqrt(2.0 * 1000.0 * r)
    write_locs(LocTable({"frame": np.arange(n), "x_nm": np.full(n, 100.0), "y_nm": np.full(n, 100.0),
                         "z_nm": np.zeros(n), "photons": ph.sum(axis=1), "photons_ch0": ph[:, 0],
                         "photons_ch1": ph[:, 1], "bg_ch0": np.zeros(n), "bg_ch1": np.zeros(n)}), path)


def test_color_takes_excess_noise_2_from_an_emccd_camera(tmp_path, capsys):
    """plexloc color used --excess-noise 1 unless told, also on an EMCCD's photons (whose variance is twice their
    shot noise): colour probabilities over-confident. A table does not record its camera; --camera (a camera YAML or
    the configuration) does: an EMCCD there makes the default 2, said on the output; an explicit value is kept."""
    import json

    from plexloc.cli.main import main

    locs = tmp_path / "locs.csv"
    _colour_table(locs)
    cam = tmp_path / "cam.yaml"
    cam.write_text(yaml.safe_dump(_EMCCD))
    conf = tmp_path / "conf.yaml"  # a two-channel configuration: both channels' cameras
    conf.write_text(yaml.safe_dump({"channels": [{"psf": {"kind": "gaussian"}, "camera": _EMCCD}] * 2}))
    ratios = ["--ratios", "0.2", "0.8", "--ratios", "0.6", "0.4"]

    def run(*extra):
        out = tmp_path / f"o{len(list(tmp_path.glob('o*.csv')))}.csv"
        js = out.with_suffix(".json")
        assert main(["color", str(locs), "--out", str(out), *ratios, "--json", str(js), *extra]) == 0
        return json.loads(js.read_text())["sigma_source"], capsys.readouterr().out

    src, printed = run("--camera", str(cam))
    assert "excess_noise=2.0" in src and f"--excess-noise 2: {cam} is an EMCCD" in printed
    src, printed = run("--camera", str(conf))
    assert "excess_noise=2.0" in src and "--excess-noise 2" in printed
    src, printed = run("--camera", str(cam), "--excess-noise", "1")  # explicit: kept, nothing said
    assert "excess_noise=1.0" in src and "--excess-noise 2" not in printed
    src, _ = run()  # no camera: 1, as before
    assert "excess_noise=1.0" in src
    scmos = tmp_path / "scmos.yaml"
    scmos.write_text(yaml.safe_dump(_SCMOS))
    src, printed = run("--camera", str(scmos))
    assert "excess_noise=1.0" in src and "--excess-noise 2" not in printed
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(yaml.safe_dump({"channels": [{"psf": {"kind": "gaussian"}, "camera": _EMCCD},
                                                  {"psf": {"kind": "gaussian"}, "camera": _SCMOS}]}))
    assert main(["color", str(locs), "--out", str(tmp_path / "m.csv"), *ratios, "--camera", str(mixed)]) == 2
    assert "different kinds (emccd, scmos): give --excess-noise" in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()


def test_camera_excess_noise():
    from plexloc.config.models import EMCCDConfig, IdealCameraConfig, SCMOSConfig
    from plexloc.post.color import camera_excess_noise

    emccd, scmos = EMCCDConfig(**_EMCCD), SCMOSConfig(**_SCMOS)
    assert camera_excess_noise([emccd, emccd]) == 2.0
    assert camera_excess_noise([scmos]) == 1.0 and camera_excess_noise([IdealCameraConfig()]) == 1.0
    assert camera_excess_noise([emccd, scmos]) is None


# --- combine_channels: the total photons of a molecule seen in some channels only ------------------------------------

def _channel_tables(cfg, photons_per_channel, seen, sigma_photons=None):
    """Per-channel tables of molecules on a grid (one per frame, so grouping is unambiguous) in each channel's own
    coordinates: ``photons_per_channel`` (n, C), ``seen`` (n, C) which channel found which molecule."""
    from plexloc.table import LocTable

    n = len(seen)
    frame = np.arange(n)
    xy = np.column_stack([np.full(n, 2000.0), np.full(n, 1500.0)])
    off = np.asarray(cfg.roi_offset_px, float) * np.asarray(cfg.px_size_xy_nm)
    tables = []
    for c, ch in enumerate(cfg.channels):
        h = np.column_stack([xy + off, np.ones(n)]) @ np.asarray(ch.transform, float).T
        xc = h[:, :2] / h[:, 2:3] - off
        k = seen[:, c]
        cols = {"frame": frame[k], "x_nm": xc[k, 0], "y_nm": xc[k, 1], "z_nm": np.zeros(k.sum()),
                "photons": photons_per_channel[k, c], "crlb_x_nm": np.full(k.sum(), 10.0),
                "crlb_y_nm": np.full(k.sum(), 10.0)}
        if sigma_photons is not None:
            cols["sigma_photons"] = sigma_photons[k, c]
        tables.append(LocTable(cols))
    return tables


def test_combine_linked_scales_a_one_channel_rows_photon_sigma_with_its_photons():
    """Linked (biplane, 0.5 each): a molecule seen in one channel gets that channel's photons / 0.5, as before, and now
    a sigma_photons scaled alike (there was none): 2 x the channel's; seen in both, sqrt(s0^2 + s1^2) / 1."""
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.config.training import TrainConfig
    from plexloc.post.channels import combine_channels

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "biplane.yaml", TrainConfig).simulation()
    seen = np.array([[True, True], [True, False], [False, True]])
    ph = np.array([[2400.0, 2600.0], [2500.0, 0.0], [0.0, 1800.0]])
    s = np.array([[60.0, 80.0], [50.0, 0.0], [0.0, 40.0]])
    out = combine_channels(_channel_tables(cfg, ph, seen, s), cfg)
    np.testing.assert_allclose(out["photons"], [5000.0, 5000.0, 3600.0])
    np.testing.assert_allclose(out["sigma_photons"], [100.0, 100.0, 80.0])
    assert out["n_channels_seen"].tolist() == [2, 1, 1]


def test_a_ratiometric_row_seen_in_one_channel_gets_its_total_once_its_dye_is_known():
    """Ratiometric (20/80 and 60/40): a molecule that one channel missed held only the other channel's photons as its
    total (0.8 or 0.6 of the truth here; 0.72 on a simulated movie fitted channel by channel), and kept them after
    colour assignment. combine_channels says so (its docstring); assign_colors, knowing the dye, now divides them by
    its fraction in the channels seen, and sigma_photons alike. Rows seen in both channels keep their sum."""
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.config.training import TrainConfig
    from plexloc.post.channels import combine_channels
    from plexloc.post.color import assign_colors

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "dual_color_plex_2060.yaml",
                      TrainConfig).simulation()
    ratios = np.array(cfg.photon_model.ratios)
    assert ratios.tolist() == [[0.2, 0.8], [0.6, 0.4]]
    dye = np.array([0, 0, 1, 1, 0, 0])  # each missed in its dimmer channel, as a dim channel misses a molecule
    total = np.array([3000.0, 4000.0, 5000.0, 6000.0, 2000.0, 2500.0])
    ph = total[:, None] * ratios[dye]
    seen = np.array([[True, True], [False, True], [True, True], [True, False], [True, True], [False, True]])
    s = np.sqrt(ph)
    out = combine_channels(_channel_tables(cfg, ph, seen, s), cfg)
    got = np.asarray(out["photons"])
    np.testing.assert_allclose(got[seen.all(axis=1)], total[seen.all(axis=1)])
    np.testing.assert_allclose(got[~seen.all(axis=1)], [3200.0, 3600.0, 2000.0])  # the channels seen only
    # a channel that missed a molecule received fewer photons than it detects (these limits; without a background
    # nothing under 800 photons would go unseen and the rows would fit both dyes alike), not 0: each row's dye
    # is the likelier, about 0.9-0.95 (test_colormiss47.py)
    coloured, _ = assign_colors(out, ratios.tolist(), 0.5, excess_noise=1.0, detection_limits=[1000.0, 3000.0])
    assert coloured["color"].tolist() == dye.tolist()
    np.testing.assert_allclose(coloured["photons"], total)
    partial = ~seen.all(axis=1)
    np.testing.assert_allclose(np.asarray(coloured["sigma_photons"])[partial],
                               np.sqrt((ph * seen)[partial].sum(axis=1)) / (ratios[dye] * seen)[partial].sum(axis=1))
    np.testing.assert_allclose(np.asarray(coloured["sigma_photons"])[~partial],
                               np.sqrt(ph[~partial].sum(axis=1)))
    # a row without a colour keeps the photons of the channels seen; a table of a joint fit (no n_channels_seen) is
    # not touched
    rejected, _ = assign_colors(out, ratios.tolist(), threshold=1.0)
    np.testing.assert_allclose(np.asarray(rejected["photons"])[np.asarray(rejected["color"]) < 0],
                               got[np.asarray(rejected["color"]) < 0])
    joint = out.without_columns("n_channels_seen")
    np.testing.assert_array_equal(assign_colors(joint, ratios.tolist())[0]["photons"], got)
