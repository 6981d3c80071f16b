"""The bright-spot check for multi-channel models: each channel's bright isolated spots (in that channel's image)
against that channel's training maximum, and against the photons in that channel of the network's localizations,
mapped from the reference frame into the channel's image by its chip transform at the movie's ROI offset
(plexloc.infer.domain.bright_spot_checks). Constructed PSF-shape reports and tables; one fit end to end."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from plexloc.config import TrainConfig
from plexloc.errors import InputError
from plexloc.infer.domain import DomainWarning, bright_spot_checks, check_training_domain
from plexloc.psf.check import PSFShapeReport
from plexloc.table import LocTable

PX = 100.0
ROI = (200, 150)  # chip pixel (x, y) of the reference image's corner: 20,000 / 15,000 nm


def _rot(deg: float, dx: float, dy: float) -> list[list[float]]:
    a = math.radians(deg)
    return [[math.cos(a), -math.sin(a), dx], [math.sin(a), math.cos(a), dy], [0.0, 0.0, 1.0]]


def _config(photon_model: dict, throughputs=(1.0, 1.0)) -> TrainConfig:
    cam = {"kind": "emccd"}
    return TrainConfig.model_validate({
        "px_size_nm": PX, "frame_size": [96, 96], "chip_size_px": [512, 512], "photon_model": photon_model,
        "channels": [
            {"psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": cam, "throughput": throughputs[0]},
            # rotated by 1 degree: at the ROI's chip position the rotation moves a spot by (-2.6, +3.5) px
            {"psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": cam, "throughput": throughputs[1],
             "transform": _rot(1.0, 40.0, -25.0)},
        ],
        "emitters": {"photons_range": [500.0, 8000.0], "z_range_nm": [0.0, 0.0]},
        "background": {"range": [20.0, 100.0]},
    })


#: linked photons, 40 / 60 %: the total's training maximum 8,000, channel 0's 3,200 and channel 1's 4,800
LINKED = _config({"kind": "linked"}, (0.4, 0.6))
#: independent photons: channel 0 trained to 4,000, channel 1 to 8,000
INDEPENDENT = _config({"kind": "independent", "channel_photons_range": [[300.0, 4000.0], [500.0, 8000.0]]})


def _report(photons, *, column: int, channel: int, frames: int = 100) -> PSFShapeReport:
    """Spots of ``photons`` in one channel's image, one per frame and row (window origin row 10), at ``column``."""
    n = len(photons)
    pix = np.stack([np.arange(n) % frames, 20 + (np.arange(n) // frames) * 15, np.full(n, column)], axis=1)
    z = np.zeros(n)
    return PSFShapeReport(channel=channel, px_size_nm=(PX, PX), psf_kind="gaussian", frames=frames, window_px=7,
                          candidates=n, n_spots=n, spot_pixel=pix, sigma_x_nm=z + 130, sigma_y_nm=z + 130,
                          photons=np.asarray(photons, float), bg=z + 50, distance=z, z_nm=z, model_z_nm=z[:1],
                          model_sigma_x_nm=z[:1] + 130, model_sigma_y_nm=z[:1] + 130,
                          photons_corrected=np.asarray(photons, float), origin_px=(10, 0), far_fraction=0.1)


def _reference_xy(rep: PSFShapeReport, config: TrainConfig, channel: int, roi=ROI) -> np.ndarray:
    """Reference positions (nm) of the emitters whose images are ``rep``'s spots, 1 px off the spot's centre along the
    channel's x: the inverse of ``r_c = T_c(r + o) - o`` (written out here, against the code's forward map)."""
    pix = np.asarray(rep.spot_pixel, float)
    xc = (rep.origin_px[1] + pix[:, 2] + 0.5 + 1.0) * PX
    yc = (rep.origin_px[0] + pix[:, 1] + 0.5) * PX
    o = np.array([roi[0] * PX, roi[1] * PX])
    T = np.asarray(config.channels[channel].transform, float)
    h = np.linalg.solve(T, np.stack([xc + o[0], yc + o[1], np.ones(len(xc))]))
    return np.stack([h[0] / h[2] - o[0], h[1] / h[2] - o[1]], axis=1)


def _table(reps, config, rows) -> LocTable:
    """A table with a row per (channel, spot index, column values) of ``rows`` at that spot's reference position."""
    cols: dict[str, list] = {"frame": [], "x_nm": [], "y_nm": [], "z_nm": []}
    extra: dict[str, list] = {}
    for c, i, values in rows:
        xy = _reference_xy(reps[c], config, c)[i]
        cols["frame"].append(int(reps[c].spot_pixel[i, 0]))
        cols["x_nm"].append(xy[0])
        cols["y_nm"].append(xy[1])
        cols["z_nm"].append(0.0)
        for k, v in values.items():
            extra.setdefault(k, []).append(v)
    return LocTable({**{k: np.asarray(v) for k, v in cols.items()}, **{k: np.asarray(v, float) for k, v in extra.items()}})


def _linked_case(bright_rows):
    """Channel 0: 180 spots inside its 3,200; channel 1: 180 inside its 4,800 and 60 at 12,000-30,000 (25 %). The table
    holds every in-range spot with its photons (the total: the channel's photons over its share) and, for the bright
    ones, ``bright_rows(their photons)`` (the total; NaN: no row)."""
    rng = np.random.default_rng(0)
    ch0 = rng.uniform(800, 3000, 180)
    ch1 = np.concatenate([rng.uniform(1000, 4500, 180), rng.uniform(12000, 30000, 60)])
    reps = [_report(ch0, column=30, channel=0), _report(ch1, column=60, channel=1)]
    rows = [(0, i, {"photons": p / 0.4}) for i, p in enumerate(ch0)]
    rows += [(1, i, {"photons": p / 0.6}) for i, p in enumerate(ch1[:180])]
    rows += [(1, 180 + i, {"photons": v}) for i, v in enumerate(bright_rows(ch1[180:])) if np.isfinite(v)]
    return reps, _table(reps, LINKED, rows), ch1


def test_linked_bright_spots_lost_in_channel_1_warn_for_channel_1_only():
    lost = np.where(np.arange(60) % 2 == 0, np.nan, 600.0)  # no row, or a few hundred photons
    reps, table, ch1 = _linked_case(lambda b: lost)
    c0, c1 = bright_spot_checks(reps, table, LINKED, roi_offset_px=ROI)
    assert (c0.column, c1.column) == ("photons_ch0 (bright spots)", "photons_ch1 (bright spots)")
    assert c0.train_hi == pytest.approx(3200.0) and c1.train_hi == pytest.approx(4800.0)  # 8,000 split 40 / 60
    assert c0.train_lo == pytest.approx(200.0) and c1.train_lo == pytest.approx(300.0)
    assert c0.fraction_above == 0.0 and c0.warning is None
    assert c1.fraction_above == pytest.approx(0.25) and c1.warning is not None
    assert c1.warning.startswith("photons_ch1: 60 of the 240 bright isolated spots of channel 1's first 100 frames (25 %)")
    assert "4800 photons the model trained on in channel 1" in c1.warning
    # the suggestion is in the configuration's own field: the emitters' photons, of which channel 1 gets 0.6
    q95 = float(np.quantile(ch1, 0.95))
    assert f"emitters.photons_range up to about {q95 / 0.6:.3g}: channel 1 receives 0.6 of it" in c1.warning
    # lost: half have no row, half 600 total photons (360 in channel 1): the median share is 0-2 %
    share = float(c1.note.split("gives them ")[1].split(" %")[0])
    assert 0 <= share <= 2
    # through check_training_domain: a DomainWarning, and both rows in the printed table
    with pytest.warns(DomainWarning, match="photons_ch1: 60 of the 240"):
        rep = check_training_domain(table, LINKED, psf_shape=reps, head_table=table, roi_offset_px=ROI)
    text = rep.format_table()
    assert "photons_ch0 (bright spots)" in text and "photons_ch1 (bright spots)" in text
    assert [c.column for c in rep.checks if c.warning and c.kind == "spots"] == ["photons_ch1 (bright spots)"]


def test_linked_bright_spots_the_table_has_are_silent_and_the_roi_offset_matters():
    """The network found the bright emitters (their total photons at the spots): silent, share 100 %. Mapped with
    the wrong ROI offset (0, 0), the rotated channel's rows land 4-5 px from the spots, outside half the window: the same
    table reads as lost."""
    reps, table, ch1 = _linked_case(lambda b: b / 0.6)
    c0, c1 = bright_spot_checks(reps, table, LINKED, roi_offset_px=ROI)
    assert c1.fraction_above == pytest.approx(0.25) and c1.warning is None and c0.warning is None
    assert c1.note == "the network gives them 100 % of their photons"
    _, wrong = bright_spot_checks(reps, table, LINKED, roi_offset_px=(0, 0))
    assert wrong.warning is not None and "gives them 0 %" in wrong.note


def test_in_range_channels_are_silent():
    rng = np.random.default_rng(1)
    ch0, ch1 = rng.uniform(800, 3100, 200), rng.uniform(1000, 4700, 200)
    reps = [_report(ch0, column=30, channel=0), _report(ch1, column=60, channel=1)]
    # in range but slightly above channel 0's 3,200 are not "too bright": only beyond 1.5x (4,800)
    reps[0].photons_corrected = np.concatenate([ch0[:190], np.full(10, 4500.0)])
    rows = [(c, i, {"photons": p / (0.4, 0.6)[c]}) for c, ph in enumerate((ch0, ch1)) for i, p in enumerate(ph)]
    table = _table(reps, LINKED, rows)
    checks = bright_spot_checks(reps, table, LINKED, roi_offset_px=ROI)
    assert [c.fraction_above for c in checks] == [0.0, 0.0] and not any(c.warning for c in checks)
    assert [c.note for c in checks] == ["", ""]


def test_crowded_channel_is_not_judged_and_says_so():
    reps, table, _ = _linked_case(lambda b: np.full(60, np.nan))
    reps[1].far_fraction = 0.7
    c0, c1 = bright_spot_checks(reps, table, LINKED, roi_offset_px=ROI)
    assert c1.warning is None and c1.note.startswith("not judged: 70 % of the spots are wider than one emitter")
    assert c0.warning is None and not c0.note.startswith("not judged")  # channel 0 on its own


def test_independent_photons_are_judged_with_each_channels_own_range_and_column():
    """Channel 1's bright spots (3-4x its 8,000) lost: the rows there carry in-range channel-1 photons, and 20,000
    channel-0 photons (so that their total would cover the spots): warned, from photons_ch1. Channel 0's 4,000 is its own
    maximum (spots up to 5,900 are under 1.5x)."""
    rng = np.random.default_rng(2)
    ch0 = rng.uniform(500, 5900, 200)
    ch1 = np.concatenate([rng.uniform(600, 7900, 150), rng.uniform(24000, 32000, 50)])
    reps = [_report(ch0, column=30, channel=0), _report(ch1, column=60, channel=1)]
    rows = [(0, i, {"photons_ch0": p, "photons_ch1": 100.0}) for i, p in enumerate(ch0)]
    rows += [(1, i, {"photons_ch0": 100.0, "photons_ch1": p}) for i, p in enumerate(ch1[:150])]
    rows += [(1, 150 + i, {"photons_ch0": 20000.0, "photons_ch1": 700.0}) for i in range(50)]
    for r in rows:
        r[2]["photons"] = r[2]["photons_ch0"] + r[2]["photons_ch1"]
    table = _table(reps, INDEPENDENT, rows)
    c0, c1 = bright_spot_checks(reps, table, INDEPENDENT, roi_offset_px=ROI)
    assert (c0.train_hi, c1.train_hi) == (4000.0, 8000.0)
    assert c0.fraction_above == 0.0 and c0.warning is None
    assert c1.fraction_above == pytest.approx(0.25) and c1.warning is not None
    assert "8000 photons the model trained on in channel 1" in c1.warning
    assert "photon_model.channel_photons_range[1] up to about" in c1.warning
    assert "gives them 2 %" in c1.note or "gives them 3 %" in c1.note  # 700 of 24,000-32,000
    # the same rows carrying the spots' channel-1 photons: silent
    found = table.with_columns(photons_ch1=np.where(np.asarray(table["photons_ch0"]) == 20000.0,
                                                    np.concatenate([np.zeros(350), ch1[150:]]),
                                                    np.asarray(table["photons_ch1"])))
    assert bright_spot_checks(reps, found, INDEPENDENT, roi_offset_px=ROI)[1].warning is None
    # a table without the channel's photons (a one-photon-output table): that channel is not judged
    only_total = LocTable({k: table[k] for k in ("frame", "x_nm", "y_nm", "z_nm", "photons", "photons_ch0")})
    n0, n1 = bright_spot_checks(reps, only_total, INDEPENDENT, roi_offset_px=ROI)
    assert n1.warning is None and n1.note == "not judged: the table has no photons_ch1" and n0.column == "photons_ch0 (bright spots)"


def test_a_report_per_channel_is_required():
    reps, table, _ = _linked_case(lambda b: np.full(60, np.nan))
    with pytest.raises(InputError, match="psf_shape has 1 report"):
        bright_spot_checks(reps[:1], table, LINKED)
    assert bright_spot_checks(None, table, LINKED) == [] and bright_spot_checks(reps, None, LINKED) == []


def test_fit_gives_the_check_every_channels_head_rows_at_the_roi_offset(tmp_path, monkeypatch):
    """plexloc fit hands the bright-spot check the unfiltered rows of the frames the PSF check looked at and the ROI
    offset for a two-channel model too (it gave none: the check was one-channel only)."""
    import plexloc.infer.domain as domain
    from plexloc.config import SimulationConfig, validate_config
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie
    from plexloc.nets import Localizer, LocalizerSpec
    from plexloc.simulation import Simulator

    d = LINKED.model_dump(mode="json")
    d["frame_size"], d["chip_size_px"] = [40, 40], None
    d["model"] = {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1}
    sim = Simulator(validate_config({k: v for k, v in d.items() if k not in ("model", "training")}, SimulationConfig))
    m = sim.simulate_movie(12, generator=torch.Generator().manual_seed(0), density_per_um2=0.3)
    paths = [tmp_path / f"ch{c}.tif" for c in range(2)]
    for c, p in enumerate(paths):
        write_movie(p, np.clip(np.round(m.frames[c].numpy()), 0, 65535).astype(np.uint16))
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(n_channels=2, n_aux=4, features=4, depth=1, union_features=4, union_depth=1)).eval()
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(4.0)  # untrained: detections everywhere, so that the table has rows
    seen = {}
    real = domain.bright_spot_checks

    def spy(psf_shape, table, config, **kw):
        seen.update(psf_shape=psf_shape, table=table, **kw)
        return real(psf_shape, table, config, **kw)

    monkeypatch.setattr(domain, "bright_spot_checks", spy)
    stats: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained network's own findings
        fit_movie([str(p) for p in paths], net, config=d, stats=stats, roi_offset_px=(7, 3))
    assert len(seen["psf_shape"]) == 2 and seen["roi_offset_px"] == (7, 3)
    head = seen["table"]
    assert len(head) > 0 and set(np.unique(np.asarray(head["frame"]))) == set(range(12))
    assert all(r.n_spots for r in stats["psf_shape"])  # (10 and 13 spots)
    assert [c.column for c in stats["domain"].checks if c.kind == "spots"] == ["photons_ch0 (bright spots)",
                                                                               "photons_ch1 (bright spots)"]
