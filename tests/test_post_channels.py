"""Channel-by-channel fits merged by the transform (plexloc.post.channels): the naive multi-channel path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.config import load_config
from plexloc.config.training import TrainConfig
from plexloc.errors import InputError
from plexloc.evaluate import evaluate, match
from plexloc.io.tiff import write_movie
from plexloc.mle import fit_movie
from plexloc.post.channels import channel_config, combine_channels
from plexloc.post.color import assign_colors
from plexloc.simulation import Simulator
from plexloc.table import COLUMN_DOCS, LocTable

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_channel_config_is_the_channel_in_its_own_coordinates():
    cfg = load_config(EXAMPLES / "biplane_plex.yaml", TrainConfig)
    one = channel_config(cfg, 1)
    assert one.n_channels == 1
    assert one.channels[0].transform == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert one.channels[0].z_offset_nm == 0.0 and one.channels[0].throughput == 1.0
    assert one.emitters.z_range_nm == (-750.0, 250.0)  # [-250, 750] seen from the plane at +500 nm
    assert one.emitters.photons_range == (2000.0, 3000.0)  # half of 4000-6000
    assert one.photon_model.kind == "linked"
    dual = load_config(EXAMPLES / "dual_color_plex.yaml", TrainConfig)
    ch0 = channel_config(dual, 0)
    assert ch0.background.range == (20.0, 20.0)
    assert ch0.emitters.photons_range == pytest.approx((5000 * 0.019, 5000 * 0.173))
    assert channel_config(dual, 1).background.range == (135.0, 135.0)
    with pytest.raises(InputError, match="channel 2 does not exist"):
        channel_config(dual, 2)


def _two_channel_tables(rng, n=4000, missing=0.2):
    cfg = load_config(EXAMPLES / "biplane_plex.yaml", TrainConfig).simulation()
    cfg = cfg.model_copy(update={"roi_offset_px": (150, 100)})
    off = np.array([150.0, 100.0]) * 100.0
    frame = rng.integers(0, 200, n)
    xy = rng.uniform(500, 6000, (n, 2))
    z = rng.uniform(-250, 750, n)
    sig = np.array([[10.0, 10.0, 40.0], [20.0, 20.0, 30.0]])
    tables, keep = [], []
    for c, ch in enumerate(cfg.channels):
        T = np.asarray(ch.transform)
        h = np.column_stack([xy + off, np.ones(n)]) @ T.T
        xc = h[:, :2] / h[:, 2:3] - off
        k = np.ones(n, bool) if c == 0 else rng.uniform(size=n) > missing
        noise = rng.normal(size=(n, 3)) * sig[c]
        tables.append(LocTable({
            "frame": frame[k], "x_nm": xc[k, 0] + noise[k, 0], "y_nm": xc[k, 1] + noise[k, 1],
            "z_nm": z[k] - ch.z_offset_nm + noise[k, 2], "photons": np.full(k.sum(), 2500.0 + 100 * c),
            "bg": np.full(k.sum(), 50.0 + c), "crlb_x_nm": np.full(k.sum(), sig[c, 0]),
            "crlb_y_nm": np.full(k.sum(), sig[c, 1]), "crlb_z_nm": np.full(k.sum(), sig[c, 2])}))
        keep.append(k)
    truth = LocTable({"frame": frame, "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": z, "photons": np.full(n, 5000.0)})
    return cfg, tables, truth, keep


def test_combine_weights_by_variance_and_keeps_single_channel_molecules():
    """Known transform (with a chip offset), known per-channel errors: the merged positions have the
    inverse-variance error (10 and 20 nm -> 8.9 nm laterally, 40 and 30 -> 24 nm axially), molecules
    seen in one channel stay, and photons / backgrounds are filled per channel."""
    rng = np.random.default_rng(3)
    cfg, tables, truth, keep = _two_channel_tables(rng)
    # sparse enough per frame (20 per frame over 5.5 um) that grouping is unambiguous
    out = combine_channels(tables, cfg)
    assert set(out.columns) <= set(COLUMN_DOCS) | {"photons_ch0", "photons_ch1", "bg_ch0", "bg_ch1"}
    # channel 1's molecules are all also in channel 0: only the rare close pair in a frame is split
    assert len(truth) <= len(out) <= 1.005 * len(truth)
    m = match(truth, out, dim=3, max_lat_nm=100.0, max_ax_nm=300.0)
    assert len(m.tp_truth) > 0.98 * len(truth)
    dx, dz = m.delta_nm[:, 0], m.delta_nm[:, 2]
    both = np.asarray(out["n_channels_seen"])[m.tp_pred] == 2
    assert both.mean() == pytest.approx(0.8, abs=0.03)
    lat = np.sqrt(np.mean(dx[both] ** 2))
    assert lat == pytest.approx(1 / np.sqrt(1 / 10**2 + 1 / 20**2), rel=0.05)
    assert np.sqrt(np.mean(dz[both] ** 2)) == pytest.approx(1 / np.sqrt(1 / 40**2 + 1 / 30**2), rel=0.05)
    assert np.sqrt(np.mean(dx[~both] ** 2)) == pytest.approx(10.0, rel=0.08)
    np.testing.assert_allclose(np.asarray(out["sigma_x_nm"])[m.tp_pred][both], 8.944, rtol=1e-3)
    assert np.all(np.abs(m.delta_nm.mean(axis=0)) < [1.0, 1.0, 2.0])
    ph = np.column_stack([out["photons_ch0"], out["photons_ch1"]])
    seen = np.asarray(out["n_channels_seen"]) == 2
    assert np.all(ph[seen] == [2500.0, 2600.0])
    assert np.all((ph[~seen] > 0).sum(axis=1) == 1)  # the other channel's photons are 0
    assert np.all(np.asarray(out["bg_ch1"]) == 51.0)
    # linked photons: total = sum / summed throughput of the channels present
    np.testing.assert_allclose(np.asarray(out["photons"])[seen], 5100.0)
    np.testing.assert_allclose(np.asarray(out["photons"])[~seen & (ph[:, 0] > 0)], 5000.0)


def test_combine_without_the_roi_offset_misplaces_a_rotated_channel():
    """The transform is in chip coordinates: ignoring the ROI's chip position (15 x 10 um from the chip's
    corner) leaves the 1-degree rotated channel about 300 nm off: beyond the 200 nm grouping radius, so
    molecules come out twice, once per channel."""
    rng = np.random.default_rng(4)
    cfg, tables, truth, _ = _two_channel_tables(rng, missing=0.0)
    right, wrong = combine_channels(tables, cfg), combine_channels(tables, cfg, roi_offset_px=(0, 0))
    m = match(truth, right, dim=3)
    assert np.sqrt(np.mean(np.sum(m.delta_nm[:, :2] ** 2, axis=1))) < 14.0  # 8.9 nm per axis
    assert np.mean(np.asarray(right["n_channels_seen"]) == 2) > 0.99
    assert len(wrong) > 1.8 * len(truth) and np.mean(np.asarray(wrong["n_channels_seen"]) == 2) < 0.1


def test_combine_rejects_a_wrong_number_of_tables_or_missing_sigmas():
    cfg, tables, _, _ = _two_channel_tables(np.random.default_rng(5), n=50)
    with pytest.raises(InputError, match="2 channel"):
        combine_channels(tables[:1], cfg)
    bare = LocTable({k: tables[1][k] for k in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
    with pytest.raises(InputError, match="sigma_x_nm or crlb_x_nm"):
        combine_channels([tables[0], bare], cfg)


def test_naive_dual_colour_pipeline_end_to_end(tmp_path):
    """A dual-colour movie (20 % / 60 % of each dye's photons in channel 0, sub-pixel channel shift):
    MLE on each channel alone, merged by the transform, coloured by eq. 3: molecules found, colours right."""
    cfg = load_config(EXAMPLES / "dual_color_plex_2060.yaml", TrainConfig).simulation()
    assert cfg.photon_model.ratios == [[0.2, 0.8], [0.6, 0.4]]
    d = cfg.model_dump()
    d["emitters"].update(density_per_um2=0.05, z_range_nm=(-300.0, 300.0))
    d["frame_size"] = (40, 40)
    d["channels"][1]["background"] = {"range": (20.0, 20.0)}
    cfg = type(cfg).model_validate(d)
    sim = Simulator(cfg)
    mov = sim.simulate_movie(300, generator=torch.Generator().manual_seed(11))
    paths = []
    for c in range(2):
        paths.append(tmp_path / f"ch{c}.tif")
        write_movie(paths[-1], mov.frames[c].numpy())
    tables = [fit_movie(paths[c], channel_config(cfg, c)) for c in range(2)]
    out = combine_channels(tables, cfg)
    out, _ = assign_colors(out, cfg.photon_model.ratios, excess_noise=2.0)
    met = evaluate(mov.truth, out, dim=3, px_size_nm=cfg.px_size_xy_nm[0]).to_dict()
    assert met["jaccard"] > 70.0, met
    assert met["color_accuracy"] > 95.0 and met["color_rejection"] < 25.0, met
