"""Bead calibration: file format round trip, SplinePSF loading, the pipeline on astigmatic beads, clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from plexloc.calibrate import calibrate_spline, load_calibration, save_calibration
from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io import write_movie
from plexloc.psf import AstigmaticPSF, SplinePSF, psf_from_config
from plexloc.config import SplinePSFConfig

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)


def _stack(xy_nm, *, photons=2e4, bg=20.0, seed=0, shape=(48, 48), z=ZS, dz_beads=None, psf=None):
    """Astigmatic beads (plexloc's own model, default parameters unless ``psf``), Poisson noise, in photons: (n_z, H, W)."""
    psf = psf or AstigmaticPSF(px_size_nm=(PX, PX), roi_px=15)
    xy = np.asarray(xy_nm, float)
    n = len(xy)
    dzb = np.zeros(n) if dz_beads is None else np.asarray(dz_beads, float)
    zz = (z[:, None] + dzb[None, :]).ravel()
    frames = psf.render(
        torch.tensor(np.tile(xy[:, 0], len(z)), dtype=torch.float32),
        torch.tensor(np.tile(xy[:, 1], len(z)), dtype=torch.float32),
        torch.tensor(zz, dtype=torch.float32),
        torch.full((n * len(z),), photons),
        torch.arange(len(z)).repeat_interleave(n),
        n_frames=len(z),
        frame_shape=shape,
    )
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(frames + bg, generator=g).numpy()


GRID = [(1230.0, 1170.0), (1260.0, 3010.0), (3120.0, 1240.0), (3050.0, 3080.0)]


@pytest.fixture(scope="module")
def astig_result():
    return calibrate_spline([_stack(GRID, dz_beads=[0, 20, -15, 10])], z_step_nm=DZ, px_size_nm=PX, roi_px=15)


def test_astigmatic_beads_give_the_crossing_as_z0_and_a_faithful_psf(astig_result):
    cal = astig_result.calibration
    assert astig_result.summary["n_beads_used"] == [4]
    assert "astigmatism crossing" in cal.z0_definition
    # the astigmatic model's sigma_x = sigma_y at z = 0 (c = -250/+250, equal d): the average's focus is the
    # median bead's frame; shifts are registered, so the calibration's z0 sits at the crossing within 10 nm
    ch = cal.channels[0]
    z_med = np.median(astig_result.beads[0].shifts[:, 0]) * DZ
    assert abs((ch.z0_voxel - (len(ZS) - 1) / 2) * DZ - z_med) < 25.0
    psf = cal.psf(0)
    truth = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=13)
    for z in (-400.0, 0.0, 300.0):
        args = [torch.tensor([v]) for v in (650.0, 650.0, z, 1.0)]
        a, r0, c0 = psf.patches(*args)
        b, r1, c1 = truth.patches(*args)
        # compare on the frame grid (both normalised to the photons of their own windows)
        fa = np.zeros((20, 20))
        fb = np.zeros((20, 20))
        fa[r0 + 3 : r0 + 3 + a.shape[1], c0 + 3 : c0 + 3 + a.shape[2]] = a[0].detach().numpy()
        fb[r1 + 3 : r1 + 3 + b.shape[1], c1 + 3 : c1 + 3 + b.shape[2]] = b[0].detach().numpy()
        assert np.abs(fa / fa.sum() - fb / fb.sum()).max() < 0.01


def test_file_round_trip_and_spline_loader(astig_result, tmp_path):
    cal = astig_result.calibration
    cal.command = "plexloc calibrate test"
    path = tmp_path / "PSF.h5"
    save_calibration(cal, path)
    back = load_calibration(path)
    assert back.n_channels == 1 and back.dz_nm == DZ and back.px_size_nm == (PX, PX)
    assert back.command == "plexloc calibrate test" and back.z0_definition == cal.z0_definition
    np.testing.assert_array_equal(back.channels[0].volume, cal.channels[0].volume)
    with h5py.File(path) as f:
        assert f.attrs["format"] == "plexloc-psf-calibration" and f.attrs["format_version"] == 1
        assert "created" in f.attrs and "plexloc_version" in f.attrs
    psf = psf_from_config(SplinePSFConfig(calibration=path), px_size_nm=(PX, PX))
    assert isinstance(psf, SplinePSF)
    ref = cal.psf(0)
    x = torch.tensor([512.0])
    torch.testing.assert_close(psf.patches(x, x, torch.tensor([120.0]), torch.ones(1))[0],
                               ref.patches(x, x, torch.tensor([120.0]), torch.ones(1))[0])
    with pytest.raises(InputError, match="px_size_nm"):
        SplinePSF.from_file(path, px_size_nm=(110.0, 110.0))
    with pytest.raises(InputError, match="channel 1 out of range"):
        SplinePSF.from_file(path, px_size_nm=(PX, PX), channel=1)


def test_loader_errors_name_file_and_field(astig_result, tmp_path):
    path = tmp_path / "PSF.h5"
    save_calibration(astig_result.calibration, path)
    with h5py.File(path, "a") as f:
        del f["channel_0"].attrs["z0_voxel"]
    with pytest.raises(InputError, match=r"PSF.h5.*z0_voxel"):
        load_calibration(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something"
    with pytest.raises(InputError, match=r"other.h5.*'format'"):
        load_calibration(other)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(InputError, match="newer"):
        load_calibration(path)


def test_rejections_are_counted_and_no_beads_says_why():
    # two beads 9 px apart (too close), one at the border, one saturated by brightness
    xy = [(1500.0, 1500.0), (2400.0, 1500.0), (150.0, 3000.0)]
    st = _stack(xy, shape=(40, 40))
    with pytest.raises(InputError, match=r"no beads left: 3 found, 1 border, 2 too close"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    st = _stack([(1200.0, 1200.0), (3300.0, 3300.0)], shape=(48, 48))
    with pytest.raises(InputError, match=r"no beads left: 2 found, 2 saturated"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, roi_px=15, saturation_adu=50.0)


def test_wrong_z_step_and_mismatched_channels_are_errors():
    st = _stack(GRID)
    with pytest.raises(InputError, match="check --z-step"):
        calibrate_spline([st], z_step_nm=2.0, px_size_nm=PX, roi_px=15)
    with pytest.raises(InputError, match="differs from channel 0"):
        calibrate_spline([st, st[:, :40]], z_step_nm=DZ, px_size_nm=PX, roi_px=15, sources=["a.tif", "b.tif"])
    with pytest.raises(InputError, match="end of the stack"):
        calibrate_spline([_stack(GRID, z=np.arange(0.0, 1201.0, DZ))], z_step_nm=DZ, px_size_nm=PX, roi_px=15)


def test_cli_writes_calibration_report_and_figures(tmp_path, capsys):
    st = _stack(GRID, dz_beads=[0, 20, -15, 10])
    write_movie(tmp_path / "beads.tif", np.round(st).astype(np.uint16))
    out = tmp_path / "PSF.h5"
    rc = main(["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--out", str(out),
               "--no-validate"])
    assert rc == 0
    assert load_calibration(out).channels[0].n_beads_used == 4
    import json

    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["n_beads_used"] == [4] and rep["beads_rejected"] == [{"found": 4}]
    assert (tmp_path / "PSF_psf.png").stat().st_size > 0
    rc = main(["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--out",
               str(tmp_path / "x.h5"), "--roi-px", "41"])
    assert rc == 2 and "no beads left" in capsys.readouterr().err


def test_mle_window_is_capped_to_the_spline_extent(astig_result, tmp_path):
    """Default windows of the MLE pipeline stay inside the spline's lateral extent; a larger explicit one is an error."""
    from plexloc.config import SimulationConfig
    from plexloc.mle.pipeline import MLEFitter, spline_window_cap_px

    path = tmp_path / "PSF.h5"
    save_calibration(astig_result.calibration, path)
    cfg = SimulationConfig.model_validate(
        {"px_size_nm": PX, "frame_size": [48, 48], "psf": {"kind": "spline", "calibration": str(path)}, "camera": {"kind": "ideal"},
         "emitters": {"z_range_nm": [-600.0, 600.0]}}
    )
    extent = min(astig_result.calibration.psf(0).roi_px)
    cap = spline_window_cap_px([astig_result.calibration.psf(0)])
    assert cap % 2 == 1 and cap <= extent - 1 and cap >= extent - 2
    fitter = MLEFitter(cfg)
    # the uncapped default (+-3.5 sigma at |z| = 600 nm of this astigmatic PSF) would be wider than the spline
    assert fitter.roi_px == cap
    assert MLEFitter(cfg, roi_px=cap - 2).roi_px == cap - 2
    with pytest.raises(InputError, match="lateral extent"):
        MLEFitter(cfg, roi_px=cap + 2)
    assert spline_window_cap_px([AstigmaticPSF()]) is None


# ------------------------------------------------------------------------------- astigmatic calibration
TRUTH = dict(s0_nm=(115.0, 125.0), c_nm=(-280.0, 280.0), d_nm=(380.0, 380.0), A=(0.1, -0.1), B=(0.05, 0.05))


def _sigma(p, z):
    from plexloc.psf.functional import astigmatic_sigma

    d = p["d_nm"]
    return np.stack([astigmatic_sigma(torch.as_tensor(z), p["s0_nm"][i], p["c_nm"][i], d[i], p["A"][i], p["B"][i]).numpy()
                     for i in (0, 1)], axis=1)


def test_astigmatic_calibration_recovers_the_defocus_model():
    from plexloc.calibrate.astigmatic import astigmatic_builder, calibrate_astigmatic
    from plexloc.calibrate.validate import leave_one_bead_out

    psf = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=15, **TRUTH)
    st = _stack(GRID, dz_beads=[0, 20, -15, 10], psf=psf, photons=5e4, seed=3)
    r = calibrate_astigmatic(st, z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    # z = 0 is the crossing sigma_x = sigma_y; the truth's crossing: s0 differ, so find it numerically
    z = np.linspace(-300, 300, 6001)
    t = _sigma(TRUTH, z)
    z_cross = z[np.argmin(np.abs(t[:, 0] - t[:, 1]))]
    fit = r.psf.model_dump()
    fit["d_nm"] = fit["d_nm"] if isinstance(fit["d_nm"], tuple) else (fit["d_nm"],) * 2
    for i in (0, 1):
        assert abs(fit["s0_nm"][i] - TRUTH["s0_nm"][i]) < 0.03 * TRUTH["s0_nm"][i]
        assert abs(fit["c_nm"][i] + z_cross - TRUTH["c_nm"][i]) < 25.0
    # the curves agree within 2 % over +-600 nm (A, B and d trade off against each other; the curve is what counts)
    zz = np.linspace(-600, 600, 121)
    assert np.abs(_sigma(fit, zz) / _sigma(TRUTH, zz + z_cross) - 1).max() < 0.02
    assert max(r.residual_nm) < 3.0
    loo = leave_one_bead_out(r.spline, build_psf=astigmatic_builder())
    assert abs(loo["z_bias_nm"]) < 10.0 and loo["z_rmse_nm"] < 15.0 and max(map(abs, loo["xy_bias_nm"])) < 3.0


def test_cli_astigmatic_writes_a_config_the_simulator_accepts(tmp_path, capsys):
    import json

    from plexloc.config import load_config

    st = _stack(GRID, dz_beads=[0, 20, -15, 10])
    write_movie(tmp_path / "beads.tif", np.round(st).astype(np.uint16))
    out = tmp_path / "PSF.yaml"
    tif = str(tmp_path / "beads.tif")
    args = ["--z-step", "50", "--pixel-size", "100", "--model", "astigmatic"]
    capsys.readouterr()
    assert main(["calibrate", tif, *args, "--out", str(out)]) == 0
    # without a camera nothing is said of its baseline (the camera run below says it)
    assert "below the camera's baseline" not in capsys.readouterr().err
    cfg = load_config(out)
    psf = psf_from_config(cfg.channels[0].psf, px_size_nm=cfg.px_size_xy_nm)
    assert isinstance(psf, AstigmaticPSF)
    assert abs(psf.c_nm[0] + 250.0) < 25.0 and abs(psf.c_nm[1] - 250.0) < 25.0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["n_beads_used"] == [4] and rep["model"] == "astigmatic"
    assert abs(rep["z_bias_nm"]) < 10.0 and rep["z_rmse_nm"] < 15.0
    assert (tmp_path / "PSF_sigma.png").stat().st_size > 0
    assert main(["calibrate", tif, *args, "--out", str(tmp_path / "PSF.h5")]) == 2
    assert "must end in .yaml" in capsys.readouterr().err
    assert main(["calibrate", tif, tif, *args, "--out", str(out)]) == 2
    assert "one bead stack" in capsys.readouterr().err
    # one bead: calibrated, leave-one-out skipped with a note (it crashed on the missing z_limit_nm)
    write_movie(tmp_path / "one.tif", np.round(_stack(GRID[:1])).astype(np.uint16))
    assert main(["calibrate", str(tmp_path / "one.tif"), *args, "--out", str(tmp_path / "one.yaml")]) == 0
    assert "leave-one-bead-out validation skipped" in capsys.readouterr().err
    one = json.loads((tmp_path / "one.json").read_text())
    assert one["n_beads_used"] == [1] and one["z_rmse_nm"] is None and "z_convention" in one
    # a camera whose baseline lies above the data is named (the stack is in photons, ~20 in the background)
    (tmp_path / "cam.yaml").write_text("kind: scmos\nbaseline: 400\ne_per_adu: 1\nqe: 1\nread_sigma: 1.5\nspurious_charge: 0\n")
    main(["calibrate", tif, *args, "--camera", str(tmp_path / "cam.yaml"), "--out", str(tmp_path / "bad.yaml")])
    assert "below the camera's baseline" in capsys.readouterr().err


def test_cli_split_view_stack_is_cut_into_channels(tmp_path, capsys):
    """One stack with two channel boxes (the right one mirrored): the transform recovers the +1 px shift."""
    import json

    ch0 = _stack(GRID, dz_beads=[0, 20, -15, 10])
    ch1 = _stack([(x + PX, y) for x, y in GRID], dz_beads=[0, 20, -15, 10], seed=1)
    frame = np.concatenate([ch0, ch1[:, :, ::-1]], axis=2)  # (z, 48, 96)
    write_movie(tmp_path / "beads.tif", np.round(frame).astype(np.uint16))
    ch = {"psf": {"kind": "astigmatic"}, "camera": {"kind": "ideal"}}
    cfg = {"px_size_nm": PX, "frame_size": [48, 48], "channels": [ch, ch],
           "split_view": {"boxes": [[0, 0, 48, 48], [48, 0, 48, 48]], "flip": ["none", "x"]}}
    import yaml

    (tmp_path / "split.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "PSF.h5"
    args = ["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--no-validate",
            "--split-view", str(tmp_path / "split.yaml")]
    assert main([*args, "--out", str(out)]) == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["n_beads_used"] == [4, 4]
    T = np.array(rep["transforms"][1])
    assert abs(T[0, 2] - PX) < 10.0 and abs(T[1, 2]) < 10.0 and np.abs(T[:2, :2] - np.eye(2)).max() < 0.01
    cfg["split_view"]["boxes"][1] = [60, 0, 48, 48]
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(cfg))
    assert main([*args, "--out", str(out)]) == 2
    assert "reaches outside" in capsys.readouterr().err


def test_astigmatic_calibration_of_a_pupil_function_psf():
    """An independent, physically different astigmatic PSF (scalar pupil with Zernike astigmatism): the two
    focal lines come out on opposite sides of z = 0 and the Gaussian defocus model follows its widths."""
    from plexloc.calibrate.astigmatic import calibrate_astigmatic
    from plexloc.calibrate.synthetic import PupilAstigmaticBeads, render_bead_stacks
    from plexloc.camera.models import IdealCamera

    m = PupilAstigmaticBeads()
    assert abs(m.fine_stack(np.array([0.0]), 141)[0].sum() - 1) < 1e-9
    raws, _ = render_bead_stacks(m, xy_nm=np.array(GRID), z_stage_nm=ZS, frame_shape=(48, 48), photons=1e5, bg=20.0,
                                 cameras=[IdealCamera()], roi_px=15, seed=0)
    r = calibrate_astigmatic(raws[0], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    cx, cy = r.psf.c_nm
    assert cx > 100.0 and cy < -100.0 and abs(cx + cy) < 40.0  # symmetric astigmatism about the crossing
    # s0 trades off against A and B (88-102 nm over bead sets); the in-focus width of this pupil is ~95 nm
    assert max(r.residual_nm) < 6.0 and 80.0 < min(r.psf.s0_nm) < 115.0


def test_transforms_are_written_in_chip_coordinates(tmp_path, capsys):
    """Bead stacks taken on a camera ROI away from the chip's corner: their transform (here 1 degree and a shift,
    measured in the stacks' pixels) is written as it acts on chip positions, ``A T A^-1``, which ``plexloc fit``
    evaluates there. Used as measured, it was 870 nm off at a ROI 500 px (50 um) from the corner. The offset comes
    from --roi-offset or the stacks' Micro-Manager metadata, and is recorded in PSF.h5 and PSF.json."""
    import json

    from test_io_roi import write_mm_stack

    from plexloc.calibrate import chip_transform

    a = np.deg2rad(1.0)
    T = np.array([[np.cos(a), -np.sin(a), 60.0], [np.sin(a), np.cos(a), -40.0], [0.0, 0.0, 1.0]])
    moved = (np.c_[GRID, np.ones(len(GRID))] @ T.T)[:, :2]
    st0 = _stack(GRID, shape=(48, 48))
    st1 = _stack(moved, shape=(48, 48), seed=1)
    args = ["--z-step", "50", "--pixel-size", "100", "--no-validate"]
    stacks = []
    for c, st in enumerate((st0, st1)):
        write_movie(tmp_path / f"ch{c}.tif", np.round(st).astype(np.uint16))
        stacks.append(str(tmp_path / f"ch{c}.tif"))
    assert main(["calibrate", *stacks, *args, "--out", str(tmp_path / "own.h5")]) == 0
    own = np.array(json.loads((tmp_path / "own.json").read_text())["transforms"][1])
    assert np.abs(own - T).max() < 5.0  # the stacks' own coordinates (the ROI at the corner)
    assert main(["calibrate", *stacks, *args, "--roi-offset", "500", "300", "--out", str(tmp_path / "chip.h5")]) == 0
    assert "chip pixel [500, 300] (--roi-offset)" in capsys.readouterr().err
    rep = json.loads((tmp_path / "chip.json").read_text())
    want = chip_transform(own, (50000.0, 30000.0))
    assert np.abs(np.array(rep["transforms"][1]) - want).max() < 1e-6 and rep["roi_offset_px"] == [500, 300]
    assert abs(want[0, 2] - own[0, 2]) > 400.0  # what using the stacks' transform on chip positions would miss
    cal = load_calibration(tmp_path / "chip.h5")
    assert cal.roi_offset_px == (500, 300) and np.abs(cal.channels[1].transform_nm - want).max() < 1e-6
    # the same offset from the stacks' Micro-Manager metadata ("x-y-w-h" ROI)
    mm = []
    for c, st in enumerate((st0, st1)):
        write_mm_stack(tmp_path / f"mm{c}.tif", np.round(st), summary={"ROI": [500, 300, 48, 48]},
                       image_meta={"ROI": "500-300-48-48"})
        mm.append(str(tmp_path / f"mm{c}.tif"))
    assert main(["calibrate", *mm, *args, "--out", str(tmp_path / "mm.h5")]) == 0
    rep = json.loads((tmp_path / "mm.json").read_text())
    assert rep["roi_offset_px"] == [500, 300] and np.abs(np.array(rep["transforms"][1]) - want).max() < 1e-6


def test_close_pairs_of_beads_are_rejected_with_their_separation(tmp_path, capsys):
    """Two beads 300 nm (3 px) apart make one maximum of the projection: taken as one bead, they widened the
    calibrated PSF (s0_x 159 nm, c_x -121 nm for a truth of 120, -250; with only pairs, s0_x 196 nm) and nothing was
    listed as rejected. They are rejected as 'second bead in window', counted in PSF.json; with only pairs, the
    calibration fails saying so. Beads farther apart than the window are never rejected by this rule."""
    import json

    import yaml

    from plexloc.calibrate.beads import detect_beads

    close = [(1230.0, 1170.0), (1530.0, 1170.0), (3120.0, 1240.0), (3050.0, 3080.0)]
    write_movie(tmp_path / "close.tif", np.round(_stack(close, dz_beads=[0, 20, -15, 10])).astype(np.uint16))
    args = ["calibrate", str(tmp_path / "close.tif"), "--z-step", "50", "--pixel-size", "100"]
    assert main([*args, "--model", "astigmatic", "--out", str(tmp_path / "PSF.yaml")]) == 0
    psf = yaml.safe_load((tmp_path / "PSF.yaml").read_text())["psf"]
    rep = json.loads((tmp_path / "PSF.json").read_text())
    assert rep["n_beads_used"] == [2] and rep["beads_rejected"] == [{"found": 3, "second bead in window": 1}]
    assert max(abs(s - 120.0) for s in psf["s0_nm"]) < 6.0
    assert abs(psf["c_nm"][0] + 250.0) < 25.0 and abs(psf["c_nm"][1] - 250.0) < 25.0
    # the spline path: the same rejection
    res = calibrate_spline([_stack(close, dz_beads=[0, 20, -15, 10])], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    assert res.summary["n_beads_used"] == [2] and res.summary["rejected"] == [{"found": 3, "second bead in window": 1}]
    # only pairs (one along x, one diagonal): no bead left, and why
    pairs = _stack([(1230.0, 1170.0), (1530.0, 1170.0), (3050.0, 3080.0), (3262.0, 3292.0)], dz_beads=[0, 20, -15, 10])
    with pytest.raises(InputError, match=r"no beads left: 2 found, 2 second bead in window \(3.0 px apart"):
        calibrate_spline([pairs], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    # beads 16 px apart (one more than the window): both used
    sel = detect_beads(_stack([(850.0, 2400.0), (2450.0, 2400.0), (2450.0, 800.0)]), roi_px=15)
    assert len(sel.rows) == 3 and list(sel.reason) == ["", "", ""]


def test_one_channel_calibration_does_not_read_the_camera_roi(tmp_path):
    """The ROI only matters for transforms: a one-channel stack whose Micro-Manager metadata still describe the
    uncropped 512 x 512 ROI calibrated before, and failed ('the ROI is 512x512 ... but the frames are 48x48') once
    every calibration read the ROI."""
    import json

    from test_io_roi import write_mm_stack

    write_mm_stack(tmp_path / "beads.tif", np.round(_stack(GRID, dz_beads=[0, 20, -15, 10])), summary={},
                   image_meta={"ROI": "0-0-512-512"})
    out = tmp_path / "PSF.yaml"
    assert main(["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--no-validate",
                 "--model", "astigmatic", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["n_beads_used"] == [4]


def test_cli_warns_of_a_large_transform_residual(tmp_path, capsys):
    """A split-view stack cut without the mirrored channel's flip wrote its transform without a word (the residual
    only in PSF.json); now each channel's transform residual (rms, max) is printed and an rms above 15 nm warned
    about, naming the split_view boxes/flip; with the flip the residual is printed and nothing warned."""
    import yaml

    beads = [(1230.0, 1170.0), (3180.0, 1290.0), (5120.0, 1210.0), (1310.0, 3120.0), (3240.0, 3050.0),
             (5060.0, 3180.0), (2200.0, 5100.0)]
    ch0 = _stack(beads, shape=(64, 64))
    ch1 = _stack([(x + PX, y) for x, y in beads], seed=1, shape=(64, 64))
    write_movie(tmp_path / "beads.tif", np.round(np.concatenate([ch0, ch1[:, :, ::-1]], axis=2)).astype(np.uint16))
    ch = {"psf": {"kind": "astigmatic"}, "camera": {"kind": "ideal"}}
    args = ["calibrate", str(tmp_path / "beads.tif"), "--z-step", "50", "--pixel-size", "100", "--no-validate",
            "--split-view", str(tmp_path / "split.yaml"), "--out", str(tmp_path / "PSF.h5")]
    for flip, bad in ((["none", "x"], False), (["none", "none"], True)):
        cfg = {"px_size_nm": PX, "frame_size": [64, 64], "channels": [ch, ch],
               "split_view": {"boxes": [[0, 0, 64, 64], [64, 0, 64, 64]], "flip": flip}}
        (tmp_path / "split.yaml").write_text(yaml.safe_dump(cfg))
        capsys.readouterr()
        assert main(args) == 0
        err = capsys.readouterr().err
        assert "channel 1 transform residual: rms" in err
        assert ("warning: channel 1's transform leaves an rms residual" in err) == bad, err
        if bad:
            assert "split.yaml" in err and "flip" in err
