"""The simulator's physics and bookkeeping: density and blinking statistics from the truth table,
photon budgets, seeds, chunked movies, background fields, channel geometry (the sign of T_c), the
three photon models, and the training-batch generator.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from conftest import PX_NM
from plexloc.config import SimulationConfig, validate_config
from plexloc.errors import InputError
from plexloc.simulation import BatchGenerator, Simulator, sample_background, shift_transform

EYE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def config(**fields) -> SimulationConfig:
    """A single-channel Gaussian / ideal-camera simulation unless ``fields`` say otherwise."""
    data = {"px_size_nm": PX_NM, "frame_size": [32, 40], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    if "channels" in fields:
        data.pop("psf"), data.pop("camera")
    data.update(fields)
    return validate_config(data, SimulationConfig)


def two_channels(*, transform=EYE, throughputs=(1.0, 1.0), psf=None, camera=None, z_offset=0.0) -> list[dict]:
    psf = psf or {"kind": "gaussian"}
    camera = camera or {"kind": "ideal"}
    return [
        {"psf": psf, "camera": camera, "throughput": throughputs[0]},
        {"psf": psf, "camera": camera, "throughput": throughputs[1], "transform": [list(r) for r in transform],
         "z_offset_nm": z_offset},
    ]


def _rows_per_id(truth) -> tuple[np.ndarray, np.ndarray]:
    ids, counts = np.unique(truth["id"], return_counts=True)
    return ids, counts


# ------------------------------------------------------------------------- emitters and blinking
def test_active_emitters_per_frame_match_density():
    density = 1.5
    sim = Simulator(config(emitters={"density_per_um2": density, "on_time_frames": 3.0}))
    n = 2000
    truth = sim.simulate_movie(n, generator=_gen(1)).truth
    frames = truth["frame"]
    assert frames.min() >= 0 and frames.max() < n
    per_frame = np.bincount(frames, minlength=n)
    area_um2 = 32 * 40 * (PX_NM / 1000) ** 2
    assert abs(per_frame.mean() / (density * area_um2) - 1) < 0.05
    # and the density is what scales it
    half = Simulator(config(emitters={"density_per_um2": density / 2, "on_time_frames": 3.0}))
    per_frame_half = np.bincount(half.simulate_movie(n, generator=_gen(1)).truth["frame"], minlength=n)
    assert abs(per_frame_half.mean() / (density / 2 * area_um2) - 1) < 0.05


@pytest.mark.parametrize("on_time", [0.5, 3.0])
def test_blinking_on_time_and_photon_budget(on_time):
    """With an exponential on-time of mean tau and a uniform phase, a fluorophore touches tau + 1 frames
    on average (10 %); its frames are consecutive; inner frames (fully on) carry exactly its flux, uniform
    in photons_range; the first and last frames carry a fraction of it."""
    lo, hi = 1000.0, 5000.0
    sim = Simulator(config(emitters={"density_per_um2": 2.0, "on_time_frames": on_time, "photons_range": [lo, hi]}))
    n = 1500
    truth = sim.simulate_movie(n, generator=_gen(2)).truth
    phot = truth["photons"]
    assert phot.min() > 0.0 and phot.max() <= hi * (1 + 1e-6)
    order = np.lexsort((truth["frame"], truth["id"]))
    ids, frames, phot = truth["id"][order], truth["frame"][order], phot[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    stops = np.r_[starts[1:], len(ids)]
    spans, inner_flux, sums = [], [], []
    for a, b in zip(starts, stops):
        f = frames[a:b]
        assert np.array_equal(f, np.arange(f[0], f[0] + len(f))), "frames of one fluorophore are consecutive"
        if f[0] == 0 or f[-1] == n - 1:
            continue  # cut by the movie's ends
        spans.append(len(f))
        if len(f) >= 3:
            inner = phot[a + 1 : b - 1]
            assert np.allclose(inner, inner[0], rtol=1e-5), "constant flux while on"
            inner_flux.append(inner[0])
            sums.append((phot[a:b].sum(), inner[0], len(f)))
    assert abs(np.mean(spans) / (on_time + 1) - 1) < 0.10
    inner_flux = np.array(inner_flux)
    assert inner_flux.min() >= lo and inner_flux.max() <= hi
    assert abs(inner_flux.mean() / ((lo + hi) / 2) - 1) < 0.03
    # the total of a fluorophore is flux * on-time: between (frames - 2) and frames times its flux
    total, flux, k = np.array(sums).T
    assert np.all(total <= flux * k * (1 + 1e-5)) and np.all(total >= flux * (k - 2) * (1 - 1e-5))


def test_without_blinking_every_emitter_is_one_whole_frame_at_full_flux():
    """``blinking: false`` (seed 002's model): each fluorophore appears in exactly one frame with its whole
    flux, uniform over photons_range (no partial frames), and the count per frame is Poisson with the
    density's mean (variance = mean, 5 %)."""
    lo, hi, density = 400.0, 1400.0, 1.5
    sim = Simulator(config(emitters={"density_per_um2": density, "photons_range": [lo, hi], "blinking": False}))
    n = 2000
    truth = sim.simulate_movie(n, generator=_gen(3)).truth
    assert len(np.unique(truth["id"])) == len(truth)
    assert truth["photons"].min() >= lo and truth["photons"].max() <= hi
    assert abs(truth["photons"].mean() / ((lo + hi) / 2) - 1) < 0.01
    per_frame = np.bincount(truth["frame"], minlength=n)
    mean = density * 32 * 40 * (PX_NM / 1000) ** 2
    assert abs(per_frame.mean() / mean - 1) < 0.05 and abs(per_frame.var() / mean - 1) < 0.1
    # the blinking default gives partial frames: some rows carry under half the smallest flux
    blinking = Simulator(config(emitters={"density_per_um2": density, "photons_range": [lo, hi], "on_time_frames": 1.0}))
    assert (blinking.simulate_movie(200, generator=_gen(3)).truth["photons"] < lo / 2).mean() > 0.1


def test_on_time_without_blinking_is_refused_by_name():
    with pytest.raises(InputError, match="on_time_frames.*blinking"):
        config(emitters={"blinking": False, "on_time_frames": 3.0})
    # a dumped configuration writes the default on-time; it validates again
    cfg = config(emitters={"blinking": False})
    assert not validate_config(cfg.model_dump(), SimulationConfig).emitters.blinking


def test_zero_density_gives_an_empty_truth_and_background_only_frames():
    sim = Simulator(config(emitters={"density_per_um2": 0.0}, background={"range": [10.0, 10.0]}))
    movie = sim.simulate_movie(5, generator=_gen(3))
    assert len(movie.truth) == 0 and movie.frames.shape == (1, 5, 32, 40)
    assert_close(movie.frames.double().mean(), torch.tensor(10.0, dtype=torch.float64), rtol=0.05, atol=0.0)


def test_negative_frame_count_is_an_input_error():
    with pytest.raises(InputError, match="-1"):
        Simulator(config()).iter_movie(-1)


# ----------------------------------------------------------------------------------- seeds, chunks
def test_same_seed_same_movie_other_seed_other_movie():
    sim = Simulator(config(camera={"kind": "emccd"}))
    a = sim.simulate_movie(10, generator=_gen(4))
    b = sim.simulate_movie(10, generator=_gen(4))
    c = sim.simulate_movie(10, generator=_gen(5))
    assert torch.equal(a.frames, b.frames) and a.truth == b.truth and torch.equal(a.bg, b.bg)
    assert not torch.equal(a.frames, c.frames) and not a.truth == c.truth


def test_chunked_movie_has_the_same_truth_and_consistent_frames():
    """iter_movie samples emitters and background once for the whole movie, so the truth and the
    background do not depend on the chunking; the camera noise is drawn in blocks of the movie
    (noise_block_frames), not of the chunks, so the raw frames are the same numbers too (session 50:
    a different draw of the same distribution before, so --chunk changed the movie)."""
    sim = Simulator(config(camera={"kind": "emccd"}, emitters={"density_per_um2": 2.0}))
    whole = sim.simulate_movie(120, generator=_gen(6))
    chunked = sim.simulate_movie(120, generator=_gen(6), chunk_frames=17)
    assert whole.truth == chunked.truth
    assert torch.equal(whole.bg, chunked.bg)
    assert torch.equal(whole.frames, chunked.frames)
    expected = sim.expected_photons(whole.emitters, whole.bg)
    var = sim.channels[0].camera.noise_variance_photons(expected).double()
    for movie in (whole, chunked):
        z = (sim.to_photons(movie.frames).double() - expected) / var.sqrt()
        assert abs(float(z.mean())) < 4 / np.sqrt(z.numel())  # 4 standard errors
        assert abs(float(z.var()) - 1) < 0.03
    # the chunks of iter_movie tile the movie, starting where they say
    _, chunks = sim.iter_movie(200, generator=_gen(6), chunk_frames=64)
    starts, lengths = zip(*[(s, raw.shape[1]) for s, raw, _ in chunks])
    assert starts == (0, 64, 128, 192) and lengths == (64, 64, 64, 8)


def test_chunks_render_emitters_in_their_own_frames():
    """An ideal camera draws its Poisson noise element by element, so with one channel the chunked
    movie equals the whole one: a check that each chunk gets exactly its own emitters."""
    sim = Simulator(config(emitters={"density_per_um2": 3.0}))
    whole = sim.simulate_movie(30, generator=_gen(7))
    chunked = sim.simulate_movie(30, generator=_gen(7), chunk_frames=4)
    assert torch.equal(whole.frames, chunked.frames)


# -------------------------------------------------------------------------------------- background
def test_background_field_is_smooth_with_the_configured_amplitude():
    cfg = config(background={"range": [20.0, 200.0], "variation": 0.3, "variation_scale_nm": 1000.0}).background
    bg = sample_background(cfg, n_sequences=3, n_frames=4, frame_shape=(37, 31), px_size_nm=PX_NM, generator=_gen(8))
    assert bg.shape == (12, 37, 31)
    level = bg.mean(dim=(1, 2))
    assert bool((level >= 20.0).all()) and bool((level <= 200.0).all())
    rel = bg / level[:, None, None] - 1  # the field: one per sequence, shared by its frames
    assert_close(rel.abs().amax(dim=(1, 2)), torch.full((12,), 0.3), rtol=1e-4, atol=0.0)
    fields = rel.reshape(3, 4, 37, 31)
    assert_close(fields, fields[:, :1].expand(-1, 4, -1, -1), rtol=0.0, atol=1e-5)
    assert float((fields[0, 0] - fields[1, 0]).abs().max()) > 0.05  # sequences differ
    # smooth on a 10 px scale: neighbouring pixels differ by a small part of the amplitude
    # (white noise of the same amplitude would differ by about 0.2 on average)
    step = torch.cat([(rel[:, 1:] - rel[:, :-1]).abs().flatten(), (rel[:, :, 1:] - rel[:, :, :-1]).abs().flatten()])
    assert float(step.mean()) < 0.03 and float(step.max()) < 0.15


def test_background_without_variation_is_flat_per_frame():
    cfg = config(background={"range": [5.0, 50.0]}).background
    bg = sample_background(cfg, n_sequences=2, n_frames=3, frame_shape=(9, 11), px_size_nm=PX_NM, generator=_gen(9))
    assert_close(bg, bg[:, :1, :1].expand_as(bg), rtol=0.0, atol=0.0)
    assert len(set(bg[:, 0, 0].tolist())) == 6  # a new level every frame


# ------------------------------------------------------------------------------- channel geometry
def test_channel_shifted_by_plus_one_pixel_renders_one_column_to_the_right():
    """The conventions' sign test: T_c[0, 2] = +px maps the reference image one column to larger x."""
    t = shift_transform(PX_NM, 0.0)
    assert float(t[0, 2]) == PX_NM
    sim = Simulator(config(channels=two_channels(transform=t.tolist()), emitters={"density_per_um2": 2.0}))
    em = sim.sample_emitters(n_sequences=1, n_frames=3, generator=_gen(10))
    img = sim.expected_photons(em, torch.zeros(2, 3, 32, 40))
    assert_close(img[1][..., 1:], img[0][..., :-1], rtol=1e-5, atol=1e-3)
    # and not the other way round
    assert float((img[1][..., :-1] - img[0][..., 1:]).abs().max()) > 1.0
    # a shift in y moves rows
    sim_y = Simulator(config(channels=two_channels(transform=shift_transform(0.0, 2 * PX_NM).tolist())))
    img = sim_y.expected_photons(em, torch.zeros(2, 3, 32, 40))
    assert_close(img[1][:, 2:], img[0][:, :-2], rtol=1e-5, atol=1e-3)


def test_channel_z_offset_shifts_the_focal_plane():
    astig = {"kind": "astigmatic"}
    sim = Simulator(config(channels=two_channels(psf=astig, z_offset=200.0),
                           emitters={"z_range_nm": [-300.0, 300.0], "density_per_um2": 1.0}))
    em = sim.sample_emitters(n_sequences=1, n_frames=2, generator=_gen(11))
    img = sim.expected_photons(em, torch.zeros(2, 2, 32, 40))
    ch0 = sim.channels[0]
    moved = em.xyz_nm.clone()
    moved[:, 2] -= 200.0
    want = ch0.render(moved, em.photons[:, 1], em.frame_ix, n_frames=2, frame_shape=(32, 40))
    assert_close(img[1], want)
    assert float((img[1] - img[0]).abs().max()) > 1.0


# ---------------------------------------------------------------------------------- photon models
def test_linked_photons_split_by_throughput():
    sim = Simulator(config(channels=two_channels(throughputs=(0.6, 0.3)), emitters={"density_per_um2": 2.0}))
    truth = sim.simulate_movie(20, generator=_gen(12)).truth
    assert len(truth) > 100
    assert_close(truth["photons_ch0"] / truth["photons_ch1"], np.full(len(truth), 2.0), rtol=1e-5, atol=0.0)
    assert_close(truth["photons"], truth["photons_ch0"] + truth["photons_ch1"], rtol=1e-6, atol=0.0)
    assert "color" not in truth


def test_ratiometric_photons_follow_the_colour_ratios():
    ratios = [[0.8, 0.2], [0.3, 0.7], [0.5, 0.4]]
    sim = Simulator(config(channels=two_channels(), emitters={"density_per_um2": 3.0},
                           photon_model={"kind": "ratiometric", "ratios": ratios, "color_fractions": [0.5, 0.3, 0.2]}))
    truth = sim.simulate_movie(100, generator=_gen(13)).truth
    color = truth["color"]
    r = np.asarray(ratios)[color]
    assert_close(truth["photons_ch0"] / truth["photons_ch1"], r[:, 0] / r[:, 1], rtol=1e-5, atol=0.0)
    # photons (all channels) = flux * sum(ratios): at most the flux range times the row sum
    assert np.all(truth["photons"] <= 10000.0 * r.sum(axis=1) * (1 + 1e-6))
    # the colours of fluorophores come in the configured shares (3 standard errors of a multinomial)
    _, first = np.unique(truth["id"], return_index=True)
    share = np.bincount(color[first], minlength=3) / len(first)
    assert np.all(np.abs(share - [0.5, 0.3, 0.2]) < 3 * np.sqrt(0.25 / len(first)))


def _inner_rows(truth) -> np.ndarray:
    """Rows of frames in which a fluorophore is on the whole frame (not its first or last frame)."""
    order = np.lexsort((truth["frame"], truth["id"]))
    ids = truth["id"][order]
    first = np.r_[True, ids[1:] != ids[:-1]]
    last = np.r_[ids[1:] != ids[:-1], True]
    inner = order[~first & ~last]
    _, keep = np.unique(truth["id"][inner], return_index=True)  # one row per fluorophore
    return inner[keep]


@pytest.mark.parametrize("kind", ["independent", "linked"])
def test_independent_photons_are_uncorrelated_across_channels(kind):
    """independent: one free flux per channel, each uniform in photons_range (the training mode for
    colour); linked: the channels' fluxes are proportional. Measured on fully-on frames."""
    lo, hi = 500.0, 8000.0
    sim = Simulator(config(channels=two_channels(), photon_model={"kind": kind},
                           emitters={"density_per_um2": 3.0, "on_time_frames": 4.0, "photons_range": [lo, hi]}))
    truth = sim.sample_emitters(n_sequences=1, n_frames=500, generator=_gen(14))
    table = sim.truth_table(truth)
    rows = _inner_rows(table)
    assert len(rows) > 2000
    a, b = table["photons_ch0"][rows], table["photons_ch1"][rows]
    r = np.corrcoef(a, b)[0, 1]
    if kind == "independent":
        assert abs(r) < 4 / np.sqrt(len(rows))
        for ch in (a, b):
            assert ch.min() >= lo and ch.max() <= hi and abs(ch.mean() / ((lo + hi) / 2) - 1) < 0.03
    else:
        assert r > 0.999


# --------------------------------------------------------------------------------- batch generator
def _batch_sim(**fields) -> Simulator:
    return Simulator(config(
        channels=two_channels(camera={"kind": "emccd"}),
        frame_size=[24, 28],
        emitters={"density_per_um2": 4.0, "photons_range": [20.0, 3000.0], "on_time_frames": 1.0},
        **fields,
    ))


def test_batch_shapes_targets_and_masks():
    sim = _batch_sim()
    B, T, min_ph = 6, 3, 800.0
    batch = BatchGenerator(sim, batch_size=B, window=T, min_target_photons=min_ph, seed=15)()
    assert batch.frames.shape == (B, T, 2, 24, 28)
    assert batch.bg.shape == (B, 2, 24, 28)
    K = batch.target_mask.shape[1]
    assert batch.target_xyz_nm.shape == (B, K, 3) and batch.target_photons.shape == (B, K, 2)
    assert batch.target_color.shape == (B, K)
    # the targets are exactly the central-frame emitters with photons >= min_target_photons:
    # rebuild them from the same seed (the generator draws the emitters first)
    em = sim.sample_emitters(n_sequences=B, n_frames=T, generator=_gen(15))
    central = em.frame_ix % T == T // 2
    bright = em.photons.sum(dim=1) >= min_ph
    assert bool((central & ~bright).any()), "the photon threshold is exercised"
    want_counts = torch.bincount(em.frame_ix[central & bright] // T, minlength=B)
    assert torch.equal(batch.target_mask.sum(dim=1), want_counts)
    assert K == int(want_counts.max())
    for s in range(B):
        sel = (em.frame_ix // T == s) & central & bright
        got = batch.target_xyz_nm[s][batch.target_mask[s]]
        assert_close(got, em.xyz_nm[sel])
        assert_close(batch.target_photons[s][batch.target_mask[s]], em.photons[sel])
    # where there is no target, everything is zero; masks are a prefix of each row
    assert float(batch.target_xyz_nm[~batch.target_mask].abs().sum()) == 0.0
    assert float(batch.target_photons[~batch.target_mask].abs().sum()) == 0.0
    assert bool((batch.target_photons.sum(dim=2)[batch.target_mask] >= min_ph).all())
    ranks = torch.arange(K)[None, :] < batch.target_mask.sum(dim=1, keepdim=True)
    assert torch.equal(batch.target_mask, ranks)


def test_batch_frames_are_camera_frames_of_the_window():
    """frames[b, t, c] is channel c's camera frame of frame t of sample b: against the expected photons
    rebuilt from the same seed (emitters, then background, are drawn first), the residuals in units of
    the camera's noise have mean 0 (4 standard errors) and variance 1 (5 %)."""
    sim = _batch_sim()
    B, T = 8, 3
    batch = BatchGenerator(sim, batch_size=B, window=T, seed=16)()
    assert bool((batch.frames == torch.round(batch.frames)).all())
    gen = _gen(16)
    em = sim.sample_emitters(n_sequences=B, n_frames=T, generator=gen)
    bg = sim.sample_background(n_sequences=B, n_frames=T, generator=gen)
    expected = sim.expected_photons(em, bg).reshape(2, B, T, 24, 28).permute(1, 2, 0, 3, 4).double()
    assert_close(batch.bg.double(), bg.reshape(2, B, T, 24, 28)[:, :, T // 2].permute(1, 0, 2, 3).double())
    cam = sim.channels[0].camera
    z = (cam.to_photons(batch.frames).double() - expected) / cam.noise_variance_photons(expected).sqrt()
    assert abs(float(z.mean())) < 4 / np.sqrt(z.numel())
    assert abs(float(z.var()) - 1) < 0.05


def test_batches_are_reproducible_and_fresh_on_every_call():
    sim = _batch_sim()
    g1 = BatchGenerator(sim, batch_size=4, seed=17)
    g2 = BatchGenerator(sim, batch_size=4, seed=17)
    a1, a2 = g1(), g2()
    for name in ("frames", "bg", "target_xyz_nm", "target_photons", "target_mask", "target_color"):
        assert torch.equal(getattr(a1, name), getattr(a2, name)), name
    b1 = g1()
    assert not torch.equal(a1.frames, b1.frames)
    assert not torch.equal(a1.frames, BatchGenerator(sim, batch_size=4, seed=18)().frames)


def test_batch_window_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        BatchGenerator(_batch_sim(), window=2)


def test_sequence_densities_set_each_sequences_mean_count():
    """sample_emitters with one density per sequence: each sequence's mean active emitters per frame is its own
    density times the area (Poisson), a density of 0 gives none, and the draw is refused for a wrong length or a
    negative or NaN density."""
    sim = Simulator(config(emitters={"density_per_um2": 1.0, "blinking": False}))
    area_um2 = 32 * 40 * (PX_NM / 1000) ** 2
    dens = torch.tensor([0.0, 0.5, 4.0])
    n_frames = 400
    em = sim.sample_emitters(n_sequences=3, n_frames=n_frames, generator=_gen(3), sequence_density=dens)
    per_seq = torch.bincount(em.frame_ix // n_frames, minlength=3).double() / n_frames
    assert per_seq[0] == 0
    for s in (1, 2):
        want = float(dens[s]) * area_um2
        assert abs(float(per_seq[s]) - want) < 4 * (want / n_frames) ** 0.5, (s, float(per_seq[s]), want)
    for bad in (torch.tensor([1.0, 2.0]), torch.tensor([1.0, -1.0, 1.0]), torch.tensor([1.0, float("nan"), 1.0])):
        with pytest.raises(ValueError, match="sequence_density"):
            sim.sample_emitters(n_sequences=3, n_frames=2, generator=_gen(3), sequence_density=bad)


def test_batch_density_range_draws_each_samples_density_log_uniformly():
    """density_range_per_um2: per-sample densities log-uniform in [lo, hi] (the log's mean and spread of a uniform),
    target counts that follow them (over-dispersed against one density's Poisson counts), and without the option
    the generator's stream is the one it always was."""
    sim = _batch_sim()
    lo, hi = 0.5, 8.0
    gen = BatchGenerator(sim, batch_size=4, seed=21, density_range_per_um2=(lo, hi))
    d = gen.sample_densities(20000)
    assert float(d.min()) >= lo and float(d.max()) <= hi
    u = torch.log(d / lo) / np.log(hi / lo)
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.std()) - (1 / 12) ** 0.5) < 0.01
    n = 400
    wide = BatchGenerator(sim, batch_size=n, window=1, min_target_photons=0.0, seed=22, density_range_per_um2=(lo, hi))()
    one = BatchGenerator(sim, batch_size=n, window=1, min_target_photons=0.0, seed=22)()
    c_wide, c_one = wide.target_mask.sum(1).double(), one.target_mask.sum(1).double()
    # one density: Poisson (variance = mean); log-uniform densities: variance well above the mean
    assert abs(float(c_one.var() / c_one.mean()) - 1) < 0.3
    assert float(c_wide.var() / c_wide.mean()) > 5
    mean_density = (hi - lo) / np.log(hi / lo)  # of a log-uniform density
    area_um2 = 24 * 28 * (PX_NM / 1000) ** 2
    assert abs(float(c_wide.mean()) / (mean_density * area_um2) - 1) < 0.15
    # the default draws exactly what a generator without the option draws
    a = BatchGenerator(sim, batch_size=3, seed=23)()
    b = BatchGenerator(sim, batch_size=3, seed=23, density_range_per_um2=None)()
    assert torch.equal(a.frames, b.frames)
    for bad in ((0.0, 1.0), (2.0, 1.0), (1.0, float("inf"))):
        with pytest.raises(ValueError, match="density_range_per_um2"):
            BatchGenerator(sim, density_range_per_um2=bad)


@pytest.mark.gpu
def test_simulator_runs_on_cuda():
    sim = _batch_sim().to("cuda")
    assert sim.device.type == "cuda"
    batch = BatchGenerator(sim, batch_size=4, seed=19)()
    assert batch.frames.device.type == "cuda" and batch.target_mask.device.type == "cuda"
    movie = sim.simulate_movie(5, generator=_gen(20, "cuda"))
    assert movie.frames.device.type == "cuda" and len(movie.truth) > 0


def test_training_batches_render_the_patch_wise_frames():
    """A multi-plane training batch (four astigmatic planes with z offsets, a rotated and shifted channel, ROIs
    sampled over a chip, registration jitter, emitters in the margin) renders its expected photons as one product
    per channel (the separable render, one frame layout shared by the channels): the same as every channel's
    patch-wise render (:meth:`PSF.render`), to float rounding."""
    rot = [[0.9998, -0.0175, 60.0], [0.0175, 0.9998, -35.0], [0.0, 0.0, 1.0]]
    plane = {"kind": "astigmatic", "s0_nm": [133.0, 133.0], "c_nm": [0.0, 0.0], "d_nm": 302.0}
    channels = [{"psf": plane, "camera": {"kind": "ideal"}, "z_offset_nm": 400.0 * c, "transform": rot if c == 2 else EYE}
                for c in range(4)]
    sim = Simulator(config(channels=channels, px_size_nm=192.0, frame_size=[30, 34], chip_size_px=[128, 128],
                           emitters={"density_per_um2": 1.0, "z_range_nm": [-200.0, 1400.0]}))
    gen = BatchGenerator(sim, batch_size=5, window=3, seed=4, margin_px=12.0, transform_jitter_nm=30.0)
    b, t = gen.batch_size, gen.window
    em = sim.sample_emitters(n_sequences=b, n_frames=t, generator=gen.generator, margin_nm=12.0 * 192.0)
    bg = sim.sample_background(n_sequences=b, n_frames=t, generator=gen.generator)
    offset = sim.roi_offset_nm(gen.sample_roi_offsets(b))[em.frame_ix // t]
    shift = 30.0 * torch.randn(4, len(em), 2, generator=gen.generator)
    assert all(ch.psf.uses_frame_slots(sim.frame_shape) for ch in sim.channels)
    new = sim.expected_photons(em, bg, roi_offset_nm=offset, channel_shift_nm=shift)
    for ch in sim.channels:
        ch.psf.separable_max_pixels = 0  # patch by patch
    ref = sim.expected_photons(em, bg, roi_offset_nm=offset, channel_shift_nm=shift)
    assert new.shape == ref.shape == (4, b * t, 30, 34)
    assert float((ref - bg).sum()) > 0.2 * float(em.photons.sum())  # the emitters are rendered (a third inside)
    assert_close(new, ref, rtol=2e-5, atol=2e-5 * float(ref.max()))


def test_multichannel_movie_fills_a_shifted_channels_edge_and_keeps_the_truth_in_the_field():
    """Channel 1 sees the sample 800 nm (8 px) to the right: without emitters sampled beyond the reference field
    its first 8 columns were empty (0.0 photons/px against 12.5 in the middle); with the margin training uses,
    the edge is as bright as the middle. The truth holds only emitters inside the reference field."""
    from plexloc.config import SimulationConfig, validate_config

    cfg = validate_config({"px_size_nm": 100, "frame_size": [32, 32],
                           "channels": [{"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}},
                                        {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"},
                                         "transform": [[1, 0, 800.0], [0, 1, 0], [0, 0, 1]]}],
                           "emitters": {"density_per_um2": 2.0, "photons_range": [1000, 1000]},
                           "background": {"range": [0, 0]}}, SimulationConfig)
    sim = Simulator(cfg)
    assert sim.channel_margin_px() >= 8
    movie = sim.simulate_movie(200, generator=torch.Generator().manual_seed(0))
    cols = movie.frames[1].float().mean(dim=(0, 1))
    assert float(cols[:6].mean()) > 0.8 * float(cols[12:20].mean())
    t = movie.truth
    assert len(t) > 0 and (t["x_nm"] >= 0).all() and (t["x_nm"] < 3200).all() and (t["y_nm"] >= 0).all()
    assert (t["y_nm"] < 3200).all()
    assert len(movie.emitters) > len(t)  # the margin's emitters were rendered, not made targets


def test_background_variation_has_its_scale_in_nm_on_both_axes():
    from plexloc.simulation.background import _scale_px

    # pixels 50 nm wide (x) and 200 nm tall (y): 1 um is 5 rows and 20 columns (it was 20 px on both axes)
    assert _scale_px(1000.0, (50.0, 200.0)) == (5.0, 20.0)
    assert _scale_px(1000.0, 100.0) == (10.0, 10.0)


def test_multichannel_spline_config_warns_about_its_calibration_channels(tmp_path):
    """Channel 1 of a configuration built on a two-channel calibration file silently took channel 0's PSF when
    ``psf.channel`` was left out, and kept the identity while the file held the measured transform: both are now
    SplineChannelWarnings naming the field, the file and the values; a matching configuration stays quiet."""
    import warnings

    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration
    from plexloc.simulation.simulator import SplineChannelWarning

    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    volume = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 0.02 * zz**2) ** 2))
    volume /= volume[10].sum()
    shifted = [[1.0, 0.0, 60.0], [0.0, 1.0, -35.0], [0.0, 0.0, 1.0]]
    chans = [ChannelCalibration(volume=volume, x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0, transform_nm=np.array(t))
             for t in (EYE, shifted)]
    path = tmp_path / "PSF.h5"
    save_calibration(PSFCalibration(channels=chans, px_size_nm=(PX_NM, PX_NM), dz_nm=50.0), path)
    spline = {"kind": "spline", "calibration": str(path)}

    def channels(ch1: dict, transform) -> list[dict]:
        return [{"psf": spline, "camera": {"kind": "ideal"}},
                {"psf": {**spline, **ch1}, "camera": {"kind": "ideal"}, "transform": transform}]

    with pytest.warns(SplineChannelWarning, match=r"channels\.1\.psf\.channel is not given.*PSF\.h5"):
        Simulator(config(channels=channels({}, shifted)))
    with pytest.warns(SplineChannelWarning, match=r"channels\.1\.transform .*PSF\.h5.*60\.0.*by up to 69 nm.*"
                                                  r"channels\.1\.transform: \{file: .*PSF\.h5, channel: 1\}"):
        Simulator(config(channels=channels({"channel": 1}, EYE)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Simulator(config(channels=channels({"channel": 1}, shifted)))
