"""The training-domain check: photons and background of a fitted table against the model's training ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.config import TrainConfig, load_config
from plexloc.infer.domain import DomainWarning, check_training_domain, noise_ratio, training_ranges
from plexloc.table import LocTable

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _config(name: str) -> TrainConfig:
    return load_config(EXAMPLES / name)


def test_training_ranges_of_one_channel_and_of_a_dye_pair():
    r = training_ranges(_config("2d_gaussian.yaml"))
    assert r["photons"] == ("photons", 500.0, 8000.0)
    assert r["bg"] == ("bg", 20.0, 100.0)
    d = training_ranges(_config("dual_color_plex.yaml"))
    # independent per-channel photons over what the dyes put in each channel (5000 x 0.019 .. 5000 x 0.173),
    # widened by training.photon_range_widen (default 2)
    assert d["photons_ch0"][1:] == pytest.approx((95.0 / 2, 865.0 * 2))
    assert d["photons_ch1"][1:] == pytest.approx((4135.0 / 2, 4905.0 * 2))
    assert d["bg_ch0"][1:] == (20.0, 20.0) and d["bg_ch1"][1:] == (135.0, 135.0)
    assert "photons" not in d and "bg" not in d


def _table(rng, n, photons, bg) -> LocTable:
    return LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 1e4, n), "y_nm": rng.uniform(0, 1e4, n),
                     "z_nm": np.zeros(n), "photons": photons, "bg": bg})


def test_data_inside_the_ranges_pass_and_a_wrong_gain_is_named():
    cfg = _config("2d_gaussian.yaml")
    rng = np.random.default_rng(0)
    n = 2000
    phot = rng.uniform(100, 8000, n) * rng.normal(1, 0.05, n)  # partial on-frames below the range are normal
    bg = rng.uniform(20, 100, n)
    ok = check_training_domain(_table(rng, n, phot, bg), cfg, warn=False)
    assert ok.warnings == [] and {c.column for c in ok.checks} == {"photons", "bg"}
    # a camera gain 3x too low in the configuration: every photon count 3x too high
    with pytest.warns(DomainWarning, match="photons") as rec:
        bad = check_training_domain(_table(rng, n, 3 * phot, 3 * bg), cfg)
    assert len(bad.warnings) == 2 and len(rec) == 2
    ph = next(c for c in bad.checks if c.column == "photons")
    # total photons: checked at 0.92 x the photon head's ceiling (1.2x the maximum), 1.104x
    assert ph.fraction_above == pytest.approx(np.mean(3 * phot > 0.92 * 1.2 * 8000)) and ph.warning and "8000" in ph.warning
    assert "median background" in next(c for c in bad.checks if c.column == "bg").warning
    # 10x too low (e-/ADU wrong by 10): background below the range warns, photons do not (dim estimates are
    # normal); 3x too low stays inside this wide range (20-100) and cannot be told
    assert check_training_domain(_table(rng, n, phot / 3, bg / 3), cfg, warn=False).warnings == []
    low = check_training_domain(_table(rng, n, phot / 10, bg / 10), cfg, warn=False)
    assert [c.column for c in low.checks if c.warning] == ["bg"]
    assert "OUTSIDE" in low.format_table() and "ok" in low.format_table()


def test_per_channel_photons_of_a_multicolour_model():
    cfg = _config("dual_color_plex.yaml")
    rng = np.random.default_rng(1)
    n = 1000
    cols = {"frame": np.arange(n), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
            "photons": np.full(n, 5000.0), "bg": np.full(n, 20.0), "bg_ch0": rng.normal(20, 1, n),
            "bg_ch1": rng.normal(135, 3, n), "photons_ch1": rng.uniform(2000, 4900, n)}
    # the 20 % / 60 % split: channel 0 holds 1000-3000 photons, the model trained on 47.5-1730 (3000 > 1.25 x 1730)
    cols["photons_ch0"] = np.where(rng.random(n) < 0.5, 1000.0, 3000.0) * rng.normal(1, 0.1, n)
    rep = check_training_domain(LocTable(cols), cfg, warn=False)
    assert [c.column for c in rep.checks if c.warning] == ["photons_ch0"]
    # the manuscript's split: within range
    cols["photons_ch0"] = np.where(rng.random(n) < 0.5, 865.0, 95.0) * rng.normal(1, 0.1, n)
    assert check_training_domain(LocTable(cols), cfg, warn=False).warnings == []


def test_small_or_empty_tables_do_not_warn():
    cfg = _config("2d_gaussian.yaml")
    rng = np.random.default_rng(2)
    few = check_training_domain(_table(rng, 10, np.full(10, 1e5), np.full(10, 1e3)), cfg, warn=False)
    assert few.warnings == [] and len(few.checks) == 2
    assert check_training_domain(_table(rng, 0, np.zeros(0), np.zeros(0)), cfg, warn=False).checks == []


def test_fit_reports_the_domain_and_the_cli_prints_its_warnings(tmp_path, capsys, monkeypatch):
    from conftest import TINY_TRAIN

    import plexloc.infer.domain as domain
    from plexloc.cli.main import main
    from plexloc.config import save_config
    from plexloc.infer import fit_movie
    from plexloc.nets.io import load_model, save_model

    cfg = tmp_path / "train.yaml"
    save_config(TrainConfig.model_validate(TINY_TRAIN), cfg)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--steps", "2", "--device", "cpu"]) == 0
    assert main(["simulate", str(cfg), "--frames", "4", "--out", str(tmp_path / "sim"), "--seed", "1", "--device", "cpu"]) == 0
    movie = tmp_path / "sim" / "movie.tif"
    # an untrained detector says "nothing here" (prior 2 %): make it see spots everywhere
    net, conf, _ = load_model(tmp_path / "run")
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(4.0)
    save_model(tmp_path / "eager.pt", net, conf)
    stats: dict = {}
    table = fit_movie(movie, tmp_path / "eager.pt", stats=stats)
    rep = stats["domain"]
    assert rep.n == len(table) > 0 and {c.column for c in rep.checks} == {"photons", "bg", "noise", "bg (movie)"}
    movie_bg = next(c for c in rep.checks if c.column == "bg (movie)")
    assert movie_bg.warning is None and 20.0 / 1.25 <= movie_bg.median <= 100.0 * 1.25
    noise = next(c for c in rep.checks if c.column == "noise")
    assert 0.75 <= noise.median <= 1.35 and noise.warning is None  # the movie's own camera: consistent
    assert next(c for c in rep.checks if c.column == "photons").train_hi == 5000.0
    capsys.readouterr()
    # a check that always fires (every photon count "above" a zero range): the CLI prints the table and the warning
    real = domain.check_training_domain
    monkeypatch.setattr(domain, "check_training_domain",
                        lambda t, c, **kw: real(t, c, **{**kw, "photon_over": 0.0, "min_localizations": 1}))
    assert main(["fit", str(movie), "--model", str(tmp_path / "eager.pt"), "--out", str(tmp_path / "l.csv"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "training domain" in err and "warning: photons:" in err and "5000 photons the model trained on" in err


def test_the_movie_background_is_checked_whatever_the_network_estimates():
    """A briefly trained network holds its bg output nearly constant: a movie far below the training background
    passed when only the table's bg was read. The mean pixel of the first frames is checked too, and a channel whose
    table bg already warned is not warned twice."""
    cfg = _config("2d_gaussian.yaml")  # background 20-100 photons/px
    rng = np.random.default_rng(1)
    n = 500
    table = _table(rng, n, rng.uniform(500, 8000, n), np.full(n, 60.0))  # the network's bg: inside, constant
    ok = check_training_domain(table, cfg, movie_bg=[70.0], warn=False)
    row = next(c for c in ok.checks if c.column == "bg (movie)")
    assert ok.warnings == [] and row.median == 70.0 and "| - |" in ok.format_table()
    # e-/ADU 10x too large in the configuration: photons and background 10x too low, the network's bg unmoved
    with pytest.warns(DomainWarning, match=r"bg: the movie's mean pixel is 6 photons/px, below .* 20-100") as rec:
        low = check_training_domain(table, cfg, movie_bg=[6.0])
    assert len(rec) == 1 and [c.column for c in low.checks if c.warning] == ["bg (movie)"]
    # a high mean is warned about only above what training's frames reach, emitters included: 1.25 x (100 + 0.5 per
    # um^2 of 8,000 photons at 100 nm pixels, 40) = 175 (tests/test_checks39.py); it was never warned about
    assert check_training_domain(table, cfg, movie_bg=[175.0], warn=False).warnings == []
    high = check_training_domain(table, cfg, movie_bg=[400.0], warn=False)
    assert [c.column for c in high.checks if c.warning] == ["bg (movie)"]
    both = check_training_domain(_table(rng, n, rng.uniform(500, 8000, n), np.full(n, 2.0)), cfg, movie_bg=[6.0],
                                 warn=False)
    assert [c.column for c in both.checks if c.warning] == ["bg"]  # said once, by the table's own bg
    # an empty table (a network that found nothing) still gets the movie's background checked
    empty = check_training_domain(_table(rng, 0, np.zeros(0), np.zeros(0)), cfg, movie_bg=[6.0], warn=False)
    assert [c.column for c in empty.checks if c.warning] == ["bg (movie)"]
    # one value per channel of a two-channel model: bg_ch0 20, bg_ch1 135 photons/px
    plex = _config("dual_color_plex.yaml")
    two = check_training_domain(_table(rng, 0, np.zeros(0), np.zeros(0)), plex, movie_bg=[21.0, 40.0], warn=False)
    assert [c.column for c in two.checks if c.warning] == ["bg_ch1 (movie)"]


@pytest.mark.parametrize("camera", [
    {"kind": "emccd"},
    {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.6},
])
def test_noise_ratio_tells_a_wrong_gain_from_the_right_one(camera):
    from plexloc.camera import camera_from_config
    from plexloc.config.models import ChannelConfig
    from plexloc.simulation import Simulator

    cfg = load_config(EXAMPLES / "2d_gaussian.yaml").simulation().model_dump()
    cfg["frame_size"] = [48, 48]
    cfg["channels"][0]["camera"] = camera
    cfg["emitters"]["density_per_um2"] = 2.0  # dense: half the pixels carry spots
    sim = Simulator(type(load_config(EXAMPLES / "2d_gaussian.yaml").simulation()).model_validate(cfg))
    adu = sim.simulate_movie(40, generator=torch.Generator().manual_seed(1)).frames[0]
    right = camera_from_config(ChannelConfig.model_validate(cfg["channels"][0]).camera)
    r = noise_ratio(right.to_photons(adu), right)
    assert 0.85 < r < 1.2
    gain_key = "em_gain" if camera["kind"] == "emccd" else "e_per_adu"
    for k, lo, hi in ((3.0, 2.4, 3.6), (1 / 3, 0.27, 0.45)):
        wrong_cfg = ChannelConfig.model_validate({**cfg["channels"][0], "camera": {
            **ChannelConfig.model_validate(cfg["channels"][0]).camera.model_dump(),
            gain_key: (ChannelConfig.model_validate(cfg["channels"][0]).camera.model_dump()[gain_key]
                       * (1 / k if gain_key == "em_gain" else k))}}).camera
        wrong = camera_from_config(wrong_cfg)  # photons come out k times too many
        assert lo < noise_ratio(wrong.to_photons(adu), wrong) < hi, k
    assert np.isnan(noise_ratio(right.to_photons(adu[:1]), right))


def test_noise_check_warns_outside_its_range():
    cfg = _config("2d_gaussian.yaml")
    rng = np.random.default_rng(3)
    t = _table(rng, 500, rng.uniform(500, 8000, 500), rng.uniform(20, 100, 500))
    ok = check_training_domain(t, cfg, noise=[1.05], warn=False)
    assert ok.warnings == [] and "noise (measured / predicted variance)" in ok.format_table()
    with pytest.warns(DomainWarning, match="3.00x what the camera settings predict"):
        bad = check_training_domain(t, cfg, noise=[3.0])
    assert "too many" in bad.warnings[0] and "gain" in bad.warnings[0]
    two = check_training_domain(t, cfg, noise=[1.0, 0.4], warn=False)
    assert [c.column for c in two.checks if c.warning] == ["noise_ch1"] and "too few" in two.warnings[0]
    # not measured (frames too crowded): a row that says why, without a verdict or a warning
    crowded = check_training_domain(t, cfg, noise=[float("nan")], noise_notes=["frames too crowded to measure it"],
                                    warn=False)
    assert crowded.warnings == [] and "| noise (measured / predicted variance) | 0.75-1.35 | not measured: frames too " \
        "crowded to measure it | - | - |" in crowded.format_table()
    silent = check_training_domain(t, cfg, noise=[float("nan")], warn=False)  # no note (not asked): no row
    assert all(c.kind != "noise" for c in silent.checks)


def test_the_movie_background_of_a_dim_emccd_movie_is_not_called_low(tmp_path):
    """An EMCCD's pixel median sits far below its background at a few photons/px (0.33 at 1 photon/px): the first
    version compared the median and called a movie recorded at the training background too dim. The mean is read."""
    import warnings

    from plexloc.config import SimulationConfig, validate_config
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie
    from plexloc.nets import Localizer, LocalizerSpec
    from plexloc.simulation import Simulator

    d = load_config(EXAMPLES / "2d_gaussian.yaml").model_dump(mode="json")
    d["background"] = {"range": [1.0, 1.0]}
    d["frame_size"] = [32, 32]
    sim = Simulator(validate_config({k: v for k, v in d.items() if k not in ("model", "training")}, SimulationConfig))
    m = sim.simulate_movie(20, generator=torch.Generator().manual_seed(0), density_per_um2=0.05)
    write_movie(tmp_path / "dim.tif", np.clip(np.round(m.frames[0].numpy()), 0, 65535))
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1)).eval()
    stats: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained network's own findings
        fit_movie(tmp_path / "dim.tif", net, config=d, stats=stats)
    row = next(c for c in stats["domain"].checks if c.column == "bg (movie)")
    assert 0.8 < row.median < 5.0 and row.warning is None  # the background 1 plus the emitters' light
    assert float(sim.to_photons(m.frames)[0].median()) < 0.8  # what the median read: "too dim"


def test_channels_given_in_the_wrong_order_are_named():
    """A dual-colour movie whose two channel files are given the other way round: photons and backgrounds outside
    training in both channels, and inside with the channels exchanged. The warning says so."""
    plex = _config("dual_color_plex.yaml")  # channel 0: the dim channel (bg 20), channel 1: bg 135
    rng = np.random.default_rng(3)
    n = 1000
    bright, dim = rng.uniform(4135, 4905, n), rng.uniform(95, 865, n)

    def table(ch0, ch1, bg0, bg1):
        return LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 1e4, n), "y_nm": rng.uniform(0, 1e4, n),
                         "z_nm": np.zeros(n), "photons": ch0 + ch1, "photons_ch0": ch0, "photons_ch1": ch1,
                         "bg": np.full(n, bg0), "bg_ch0": np.full(n, bg0), "bg_ch1": np.full(n, bg1)})

    right = check_training_domain(table(dim, bright, 20.0, 135.0), plex, movie_bg=[25.0, 150.0], warn=False)
    assert right.warnings == []
    import warnings

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        wrong = check_training_domain(table(bright, dim, 135.0, 20.0), plex, movie_bg=[150.0, 25.0])
    said = [str(w.message) for w in rec if issubclass(w.category, DomainWarning)]
    assert said == wrong.warnings and len(said) >= 2
    hinted = [w for w in said if "channels 0 and 1 exchanged" in w]
    assert len(hinted) == 1 and "wrong order" in hinted[0] and hinted[0].startswith("photons_ch0:")
    # outside training whatever the order (a wrong gain in both channels): no hint
    both = check_training_domain(table(3 * dim, 3 * bright, 60.0, 405.0), plex, movie_bg=[65.0, 420.0], warn=False)
    assert both.warnings and not any("exchanged" in w for w in both.warnings)


def test_total_photons_are_checked_below_the_photon_heads_ceiling():
    """A one-channel model's photon output stops at 1.2x its training maximum, so the 1.25x threshold could never
    fire: the demo model reported 12,000-photon emitters (trained to 8,000) at 9,332 (1.17x) without a word. Total
    photons are now checked at 1.10x; data inside the range stay silent."""
    cfg = _config("2d_gaussian.yaml")  # photons 500-8000
    rng = np.random.default_rng(4)
    n = 1000
    inside = rng.uniform(500, 8000, n) * rng.normal(1.0, 0.02, n)  # estimates of emitters inside the range
    assert check_training_domain(_table(rng, n, inside, rng.uniform(20, 100, n)), cfg, warn=False).warnings == []
    bright = inside.copy()
    bright[: n // 10] = rng.uniform(9000, 9500, n // 10)  # 10 % at the head's top: 1.13-1.19x
    with pytest.warns(DomainWarning, match=r"photons: 10 % of the localizations have more than 1.1x the 8000 photons"):
        check_training_domain(_table(rng, n, bright, rng.uniform(20, 100, n)), cfg)
