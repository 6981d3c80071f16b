"""The model-free channel-alignment check (plexloc.calibrate.alignment) and its hooks in both fitters."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch

from plexloc.calibrate.alignment import (
    ChannelAlignmentWarning,
    _flip,
    _flip_spectrum,
    check_channel_alignment,
)
from plexloc.config import SimulationConfig, validate_config
from plexloc.config.models import IdealCameraConfig, SplitViewConfig
from plexloc.errors import InputError
from plexloc.io.splitview import join_frames
from plexloc.io.tiff import write_movie
from plexloc.simulation import Simulator

PX = 100.0
SIZE = 32
EYE = np.eye(3)


def shift(dx_px: float, dy_px: float = 0.0) -> np.ndarray:
    return np.array([[1.0, 0.0, dx_px * PX], [0.0, 1.0, dy_px * PX], [0.0, 0.0, 1.0]])


def two_channels(transform=EYE, **over) -> dict:
    d = {
        "px_size_nm": PX,
        "frame_size": [SIZE, SIZE],
        "photon_model": {"kind": "linked"},
        "channels": [
            {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "throughput": 0.5},
            {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "throughput": 0.5,
             "transform": np.asarray(transform).tolist()},
        ],
        "emitters": {"density_per_um2": 1.0, "photons_range": [2000.0, 5000.0], "z_range_nm": [0.0, 0.0]},
        "background": {"range": [10.0, 10.0]},
    }
    d.update(over)
    return d


def movie(transform=EYE, n_frames: int = 80, seed: int = 0) -> np.ndarray:
    """Photon frames (C, T, H, W) of two channels (ideal cameras: the frames are photons)."""
    cfg = validate_config(two_channels(transform), SimulationConfig)
    return Simulator(cfg).simulate_movie(n_frames, generator=torch.Generator().manual_seed(seed)).frames.numpy()


@pytest.fixture(scope="module")
def plain() -> np.ndarray:
    return movie(EYE)


@pytest.fixture(scope="module")
def shifted() -> np.ndarray:
    return movie(shift(3.0))  # channel 1 three pixels right of channel 0


def test_mirrors_in_fourier_space_are_the_mirrored_frames():
    """The check mirrors spectra (negated frequencies and a phase) instead of frames: the same numbers."""
    x = torch.randn(3, 12, 10)
    ky, kx = torch.fft.fftfreq(12).view(-1, 1), torch.fft.rfftfreq(10).view(1, -1)
    spec = torch.fft.rfft2(x)
    for flip in ("x", "y", "xy"):
        back = torch.fft.irfft2(_flip_spectrum(spec, flip, (12, 10), ky, kx), s=(12, 10))
        assert torch.allclose(back, _flip(x, flip), atol=1e-5), flip


def test_fourier_mirrors_and_shifts_give_what_warped_frames_give(shifted, monkeypatch):
    """A translation is applied to the spectra (and mirrors and swaps are combined there); forced through bilinear
    warps of the frames instead, every geometry correlates the same (integer shift: both exact but at the edges)."""
    import plexloc.calibrate.alignment as al

    frames = [shifted[1], shifted[0]]  # swapped: the swap alternative lines up, the configured one does not
    fast = check_channel_alignment(frames, [EYE, shift(3.0)], PX, warn=False)
    monkeypatch.setattr(al, "NEAR_TRANSLATION_PX", -1.0)
    slow = check_channel_alignment(frames, [EYE, shift(3.0)], PX, warn=False)
    assert [g.name for g in fast.alternatives] == [g.name for g in slow.alternatives]
    for a, b in zip([fast.configured, *fast.alternatives], [slow.configured, *slow.alternatives]):
        for p, q in zip(a.pairs, b.pairs):
            assert p.at_zero == pytest.approx(q.at_zero, abs=0.05), a.name
            if p.snr > 10:  # a real peak (not the best of noise) sits at the same shift
                assert p.shift_px == pytest.approx(q.shift_px, abs=0.3), a.name
    assert next(g for g in fast.alternatives if g.name == "swap0-1").pairs[0].at_zero > 0.5


def test_correct_geometry_is_silent(plain, shifted):
    for frames, tr in ((plain, EYE), (shifted, shift(3.0))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rep = check_channel_alignment(list(frames), [EYE, tr], PX)
        assert rep.status == "ok" and rep.findings == ()
        (pair,) = rep.configured.pairs
        assert pair.at_zero > 0.5 and pair.snr > 30
        assert abs(pair.shift_px[0]) < 0.2 and abs(pair.shift_px[1]) < 0.2
        assert rep.summary().startswith("channel alignment ok (80 frames of 32x32 px): configured geometry correlation ch1 ")
        assert json.loads(json.dumps(rep.as_dict()))["status"] == "ok"
        # every alternative correlates far less at zero shift
        assert max(p.at_zero for g in rep.alternatives if g.name != "swap0-1" for p in g.pairs) < 0.3 * pair.at_zero


def test_flip_forgotten_warns_naming_the_split_view_flip(plain):
    """Channel 1's box is mirrored on the camera and the configuration's split_view says flip 'none' for it."""
    true = SplitViewConfig(boxes=[(0, 0, SIZE, SIZE), (SIZE + 4, 0, SIZE, SIZE)], flip=["none", "x"])
    raw = join_frames(np.moveaxis(plain, 0, 1), true, (SIZE, 2 * SIZE + 4))
    wrong = SplitViewConfig(boxes=true.boxes, flip=["none", "none"])
    from plexloc.io.splitview import split_frames

    cut = split_frames(raw, wrong)
    with pytest.warns(ChannelAlignmentWarning, match=re.escape(
            "channel 1 mirrored left-right relative to the configuration correlates")) as rec:
        rep = check_channel_alignment([cut[:, 0], cut[:, 1]], [EYE, EYE], PX, split=wrong, sources="sv.tif")
    assert len(rec) == 1
    assert "set the split_view section's flip of channel 1 from 'none' to 'x' (flip: [none, x])" in str(rec[0].message)
    assert rep.status == "wrong geometry"
    flip = next(g for g in rep.alternatives if g.name == "flip1x")
    assert flip.pairs[0].at_zero > 0.5 and flip.pairs[0].at_zero > 2.5 * rep.configured.pairs[0].at_zero
    # the geometry as cut with the right flip is silent
    cut = split_frames(raw, true)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_channel_alignment([cut[:, 0], cut[:, 1]], [EYE, EYE], PX, split=true).status == "ok"


def test_swapped_channel_movies_are_warned_naming_the_order(shifted):
    """Channel movies given in the wrong order: with a 3 px transform the swapped channels sit 6 px apart."""
    with pytest.warns(ChannelAlignmentWarning, match=r"channels 0 and 1 in each other's place correlates") as rec:
        rep = check_channel_alignment([shifted[1], shifted[0]], [EYE, shift(3.0)], PX, sources=["a.tif", "b.tif"])
    assert len(rec) == 1
    assert "the channel movies are in the wrong order: give them to plexloc fit as b.tif a.tif" in str(rec[0].message)
    assert rep.status == "wrong geometry"
    assert rep.configured.pairs[0].shift_px[0] == pytest.approx(-6.0, abs=0.3)  # T applied the wrong way: 2 x 3 px
    # split-view boxes in the wrong order name the boxes
    split = SplitViewConfig(boxes=[(SIZE, 0, SIZE, SIZE), (0, 0, SIZE, SIZE)])
    with pytest.warns(ChannelAlignmentWarning, match=re.escape(
            "swap the split_view section's boxes of channels 0 and 1 (boxes: [[0, 0, 32, 32], [32, 0, 32, 32]]")):
        check_channel_alignment([shifted[1], shifted[0]], [EYE, shift(3.0)], PX, split=split)


def test_transform_error_of_3_px_is_warned_with_its_size_and_1_px_is_not(plain):
    with pytest.warns(ChannelAlignmentWarning, match=re.escape(
            "peaks at dx = -3.0 px (-300 nm), dy = +0.0 px (+0 nm) from zero")) as rec:
        rep = check_channel_alignment(list(plain), [EYE, shift(3.0)], PX)
    assert "re-run plexloc calibrate" in str(rec[0].message) and "plexloc register" in str(rec[0].message)
    assert rep.status == "misaligned"
    assert rep.offsets_px[1] == pytest.approx((-3.0, 0.0), abs=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = check_channel_alignment(list(plain), [EYE, shift(0.0, -1.0)], PX)
    assert rep.status == "ok" and rep.offsets_px[1] == pytest.approx((0.0, 1.0), abs=0.15)


def test_the_roi_offset_on_the_chip_places_a_rotated_channel():
    """A 2 degree rotation about the chip's corner moves an ROI at chip pixel (200, 150) by about 7 px: checked
    with the ROI offset the geometry is right, without it the check finds the transform off by that much."""
    a = np.radians(2.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    cfg = validate_config(two_channels(rot, chip_size_px=[256, 256], roi_offset_px=[200, 150]), SimulationConfig)
    frames = Simulator(cfg).simulate_movie(80, generator=torch.Generator().manual_seed(1)).frames.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = check_channel_alignment(list(frames), [EYE, rot], PX, roi_offset_px=(200, 150))
    assert rep.status == "ok"
    with pytest.warns(ChannelAlignmentWarning, match="does not line up"):
        rep = check_channel_alignment(list(frames), [EYE, rot], PX)
    dx, dy = rep.offsets_px[1]
    # the transform without the offset should map r + s with A (r + s) = A r + A o - o: s = o - A^-1 o
    ox, oy = 200.0, 150.0
    assert dx == pytest.approx((1 - np.cos(a)) * ox - np.sin(a) * oy, abs=0.4)  # -5.1 px
    assert dy == pytest.approx(np.sin(a) * ox + (1 - np.cos(a)) * oy, abs=0.4)  # +7.1 px


def test_too_little_signal_is_undecided_without_a_warning():
    rng = np.random.default_rng(0)
    noise = [rng.poisson(10.0, size=(80, SIZE, SIZE)).astype(np.float32) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = check_channel_alignment(noise, [EYE, EYE], PX)
    assert rep.status == "undecided" and rep.findings == ()
    assert "too little signal to decide" in rep.notes[0]
    few = check_channel_alignment([n[:5] for n in noise], [EYE, EYE], PX)
    assert few.status == "undecided" and "5 frame(s): too few" in few.notes[0]


def test_bad_input_is_refused():
    f = np.zeros((20, SIZE, SIZE), np.float32)
    with pytest.raises(InputError, match="at least two channels, got 1"):
        check_channel_alignment([f], [EYE], PX)
    with pytest.raises(InputError, match="1 transform\\(s\\) for 2 channels"):
        check_channel_alignment([f, f], [EYE], PX)
    with pytest.raises(InputError, match="one shape"):
        check_channel_alignment([f, f[:, :10]], [EYE, EYE], PX)


# --- the fitters --------------------------------------------------------------------------------------------------
def _split_movie(tmp_path, frames: np.ndarray) -> tuple:
    """A split-view movie whose right box is mirrored, and the configuration's split_view that forgot the flip."""
    true = SplitViewConfig(boxes=[(0, 0, SIZE, SIZE), (SIZE, 0, SIZE, SIZE)], flip=["none", "x"])
    raw = join_frames(np.moveaxis(frames, 0, 1), true, (SIZE, 2 * SIZE))
    write_movie(tmp_path / "sv.tif", np.round(raw))
    return tmp_path / "sv.tif", {"boxes": [list(b) for b in true.boxes], "flip": ["none", "none"]}


def test_mle_fit_reports_the_alignment_and_warns(tmp_path, plain):
    from plexloc.mle import fit_movie

    path, wrong = _split_movie(tmp_path, plain[:, :40])
    cfg = validate_config(two_channels(EYE, split_view=wrong), SimulationConfig)
    stats: dict = {}
    with pytest.warns(ChannelAlignmentWarning, match=r"split_view section's flip of channel 1 from 'none' to 'x'"):
        fit_movie(path, cfg, stats=stats)
    assert stats["alignment"].status == "wrong geometry" and stats["alignment"].frames == 40
    right = validate_config(two_channels(EYE, split_view={**wrong, "flip": ["none", "x"]}), SimulationConfig)
    stats = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_movie(path, right, stats=stats)
    assert stats["alignment"].status == "ok" and stats["alignment"].configured.pairs[0].at_zero > 0.5


def test_network_fit_reports_the_alignment_and_warns(tmp_path, plain):
    from plexloc.config import TrainConfig
    from plexloc.infer import fit_movie
    from plexloc.nets import Localizer, LocalizerSpec

    path, wrong = _split_movie(tmp_path, plain[:, :40])
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, n_channels=2,
                                  input_offset=[10.0, 10.0], input_scale=[20.0, 20.0])).eval()
    cfg = validate_config(two_channels(EYE), TrainConfig).model_dump(mode="json")
    stats: dict = {}
    with pytest.warns(ChannelAlignmentWarning, match=r"split_view section's flip of channel 1 from 'none' to 'x'"):
        fit_movie(path, net, config=cfg, camera=[IdealCameraConfig(), IdealCameraConfig()], stats=stats,
                  split_view=SplitViewConfig.model_validate(wrong))
    rep = stats["alignment"]
    assert rep.status == "wrong geometry" and rep.frames == 40
    flip = next(g for g in rep.alternatives if g.name == "flip1x")
    assert flip.pairs[0].at_zero > 2.5 * rep.configured.pairs[0].at_zero


def test_mle_fit_checks_spline_channels_against_their_calibration(tmp_path, plain):
    """The network path warned (the simulator's check_spline_channels) where channel 1 of a two-channel calibration
    file was left on the file's channel 0; the MLE fit said nothing."""
    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration
    from plexloc.mle import fit_movie
    from plexloc.simulation.simulator import SplineChannelWarning

    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    volume = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 0.02 * zz**2) ** 2))
    volume /= volume[10].sum()
    chans = [ChannelCalibration(volume=volume, x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0, transform_nm=EYE)
             for _ in range(2)]
    save_calibration(PSFCalibration(channels=chans, px_size_nm=(PX, PX), dz_nm=50.0), tmp_path / "PSF.h5")
    spline = {"kind": "spline", "calibration": str(tmp_path / "PSF.h5")}
    d = two_channels(EYE)
    d["channels"][0]["psf"], d["channels"][1]["psf"] = spline, dict(spline)
    for c in range(2):
        write_movie(tmp_path / f"ch{c}.tif", np.round(plain[c, :12]))
    cfg = validate_config(d, SimulationConfig)
    with pytest.warns(SplineChannelWarning, match=r"channels\.1\.psf\.channel is not given"):
        fit_movie([tmp_path / "ch0.tif", tmp_path / "ch1.tif"], cfg)
    d["channels"][1]["psf"]["channel"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_movie([tmp_path / "ch0.tif", tmp_path / "ch1.tif"], validate_config(d, SimulationConfig))


def test_movie_reading_copies_windows_and_reads_large_frames_a_few_at_a_time(monkeypatch, plain):
    """Each chunk's window was kept as a view of the chunk's whole frames until the end (a 2048 x 2048 two-channel
    movie: 1.6 GB held for 0.1 GB of windows); now whole frames come CHUNK_PIXELS at a time, each chunk freed."""
    import gc
    import weakref

    import plexloc.calibrate.alignment as alignment

    monkeypatch.setattr(alignment, "CHUNK_PIXELS", 5 * SIZE * SIZE)
    frames = torch.as_tensor(plain[:, :40])
    alive, sizes = [], []

    def frames_of(a, b):
        gc.collect()
        sizes.append(b - a)
        assert sum(r() is not None for r in alive) == 0  # the chunks read before are gone
        out = [frames[c, a:b].clone() for c in range(2)]
        alive.extend(weakref.ref(t) for t in out)
        return out

    rep = alignment.check_movie_alignment(frames_of, 40, (SIZE, SIZE), [EYE, EYE], PX, warn=False)
    assert max(sizes) == 5 and sum(sizes) == 40 and rep.status == "ok"
