"""Session 46, a new user's walk through bead calibration (``plexloc calibrate``):

- beads that fill the field (bright or saturated beads, whose defocused images cover it, or dense touching pairs) made
  the detection threshold, 8 robust standard deviations of the projection, the beads' own spread: the calibration
  said "0 found ... beads too dim" of 16 saturated beads and of 16 touching pairs; they are found now and rejected for
  what they are (``saturated``, ``second bead in window``), and a stack of noise keeps its threshold;
- a stack in another axis order (rows, slices, columns) is refused naming the axes (it wrote a calibration normalised
  at a slice of noise once its streaks were detected, and said "0 found" before);
- ``--model astigmatic --out PSF.yaml`` beside ``--out PSF.h5`` (the README's names) replaced PSF.h5's PSF.json;
- ``--z-step`` and ``--pixel-size`` against the stack's ImageJ metadata (a step 2x off calibrated without a word);
- a dark slice (shutter closed: noise, no bead) is refused naming it (one of 33 took the leave-one-bead-out z RMSE from
  6.9 to 118 nm without a word), and a blank one's value is given as the file holds it (ADU, not converted photons);
- the spline calibration of an astigmatic PSF says where x and y are in focus, as the astigmatic model did: a stack
  taken toward the objective is calibrated mirrored in z.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tifffile
import torch

from plexloc.calibrate import beads as B
from plexloc.calibrate import calibrate_spline
from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.psf import AstigmaticPSF

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)


def _field(photons: float, *, pair_px: float | None = None, seed: int = 0, n_side: int = 4, spacing: int = 16,
           size: int = 64, zs: np.ndarray = ZS, c_nm: tuple[float, float] = (-250.0, 250.0)) -> np.ndarray:
    """(33, size, size) Poisson photons, bg 20: ``n_side`` x ``n_side`` astigmatic Gaussian beads ``spacing`` px apart
    (as ``plexloc simulate --beads 16`` places them in a 64 x 64 frame), each with a second bead ``pair_px`` to its
    right where given; one slice per z of ``zs``, the foci at ``c_nm`` (x, y; both 0: a defocus-symmetric PSF)."""
    rng = np.random.default_rng(seed)
    xy = [((spacing // 2 + spacing * i) * PX + rng.uniform(-40, 40),
           (spacing // 2 + spacing * j) * PX + rng.uniform(-40, 40)) for i in range(n_side) for j in range(n_side)]
    if pair_px is not None:
        xy += [(x + pair_px * PX, y) for x, y in xy]
    psf = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=31, c_nm=c_nm)
    n = len(xy)
    frames = psf.render(
        torch.tensor(np.tile([p[0] for p in xy], len(zs)), dtype=torch.float32),
        torch.tensor(np.tile([p[1] for p in xy], len(zs)), dtype=torch.float32),
        torch.tensor(np.repeat(zs, n), dtype=torch.float32),
        torch.full((n * len(zs),), float(photons)),
        torch.arange(len(zs)).repeat_interleave(n),
        n_frames=len(zs),
        frame_shape=(size, size),
    )
    return rng.poisson(frames.numpy().astype(np.float64) + 20.0).astype(np.float64)


@pytest.fixture(scope="module")
def good():
    return _field(2e4, seed=1)


def test_saturated_beads_filling_the_field_are_found_and_rejected_as_saturated():
    raw = np.minimum(_field(4e5, seed=2), 4095.0)  # a 12-bit camera's clipping, the stack in photons (ideal camera)
    assert np.count_nonzero(raw == 4095.0) > 1000
    sel = B.detect_beads(raw, roi_px=15, raw=raw, saturation_adu=4095.0)
    assert len(sel.rows) == 16  # 0 before: the projection's spread was the beads'
    assert sel.counts() == {"saturated": 16}
    with pytest.raises(InputError, match=r"no beads left: 16 found, 16 saturated; saturated: bead at pixel"):
        calibrate_spline([raw], z_step_nm=DZ, px_size_nm=PX, saturation_adu=4095.0)


def test_touching_pairs_filling_the_field_are_named_as_pairs():
    st = _field(2e4, pair_px=4.0, seed=3)
    with pytest.raises(InputError) as err:
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX)
    msg = str(err.value)
    assert "0 found" not in msg and "too dim" not in msg  # it said both of these bright pairs
    assert "16 found" in msg and "second bead in window (4.0 px apart" in msg


def test_a_field_of_beads_still_calibrates_and_noise_keeps_its_threshold(good):
    res = calibrate_spline([good], z_step_nm=DZ, px_size_nm=PX)
    assert res.summary["n_beads_used"] == [16]
    noise = np.random.default_rng(4).poisson(20.0, (33, 64, 64)).astype(np.float64)
    proj, med, thr = B.detection_projection(noise)
    mad = 1.4826 * float(np.median(np.abs(proj - med)))
    assert thr == pytest.approx(med + 8.0 * mad)  # the projection's spread is the noise's: the threshold as before
    assert len(B.detect_beads(noise, roi_px=15).rows) <= 1


@pytest.mark.parametrize("axes", [(1, 0, 2), (2, 1, 0)])
def test_a_stack_in_another_axis_order_is_refused_naming_the_axes(good, axes):
    with pytest.raises(InputError, match=r"its axes are \(slices, rows, columns\)"):
        calibrate_spline([np.ascontiguousarray(np.transpose(good, axes))], z_step_nm=DZ, px_size_nm=PX)


def _write_imagej(path, stack, *, spacing_um: float, px_um: float) -> None:
    tifffile.imwrite(path, np.round(stack).astype(np.uint16), imagej=True, resolution=(1.0 / px_um, 1.0 / px_um),
                     metadata={"axes": "ZYX", "spacing": spacing_um, "unit": "um"})


def test_astigmatic_beside_a_spline_calibration_keeps_its_report(tmp_path, good, capsys):
    stack = tmp_path / "beads.tif"
    _write_imagej(stack, good, spacing_um=0.05, px_um=0.1)  # its metadata agree with the options below
    args = [str(stack), "--z-step", "50", "--pixel-size", "100", "--no-validate"]
    assert main(["calibrate", *args, "--out", str(tmp_path / "PSF.h5")]) == 0
    err = capsys.readouterr().err
    assert "its metadata give" not in err
    # where the spline puts the foci of x and y, as the astigmatic model says (a stack taken the other way is mirrored)
    assert re.search(r"note: x is in focus at z = -2[45]\d nm, y at z = \+2[45]\d nm \(z > 0 away from the obj", err)
    report = (tmp_path / "PSF.json").read_text()
    assert json.loads(report)["calibration"].endswith("PSF.h5")
    # the README's astigmatic name beside it: refused before any work, PSF.h5's report kept
    assert main(["calibrate", *args, "--model", "astigmatic", "--out", str(tmp_path / "PSF.yaml")]) == 2
    err = capsys.readouterr().err
    assert "PSF.json beside it is the report of the calibration PSF.h5, which is still there" in err
    assert "PSF_astigmatic.yaml" in err
    assert (tmp_path / "PSF.json").read_text() == report and not (tmp_path / "PSF.yaml").exists()
    # the same calibration again replaces its own report
    (tmp_path / "PSF.h5").unlink()
    assert main(["calibrate", *args, "--model", "astigmatic", "--out", str(tmp_path / "PSF.yaml")]) == 0
    assert json.loads((tmp_path / "PSF.json").read_text())["calibration"].endswith("PSF.yaml")


def test_z_step_and_pixel_size_against_the_stacks_imagej_metadata(tmp_path, good, capsys):
    stack = tmp_path / "beads.tif"
    _write_imagej(stack, good[::-1], spacing_um=0.025, px_um=0.065)  # taken toward the objective, too
    out = tmp_path / "PSF.h5"
    assert main(["calibrate", str(stack), "--z-step", "50", "--pixel-size", "100", "--no-validate", "--out",
                 str(out)]) == 0
    err = capsys.readouterr().err
    z_text = (f"{stack}: its metadata give a z step of 25 nm (ImageJ 'spacing' = 0.025 um) but --z-step is 50 nm: "
              "every z of the calibration follows --z-step (2x the recorded step); give --z-step 25 if the metadata "
              "are right")
    px_text = f"{stack}: its metadata give pixels of 65 x 65 nm (ImageJ calibration"
    assert f"plexloc calibrate: warning: {z_text}" in err
    assert f"plexloc calibrate: warning: {px_text}" in err and "but --pixel-size is 100 x 100 nm" in err
    assert re.search(r"note: x is in focus at z = \+\d+ nm, y at z = -\d+ nm", err)  # mirrored: said
    warnings = json.loads(out.with_suffix(".json").read_text())["warnings"]
    assert z_text in warnings and any(w.startswith(px_text) for w in warnings)


def test_a_blank_slice_is_named_with_its_value_in_the_file(good):
    raw = np.round(good) + 100.0  # a camera's baseline of 100 ADU
    raw[12] = 100.0  # a dropped frame written as the baseline: the photons after conversion are 0 (or -0.00222222)
    with pytest.raises(InputError, match=r"slice\(s\) 12 of 33 hold one constant value \(100 ADU\): a dropped"):
        calibrate_spline([raw - 100.0], raw_stacks=[raw], z_step_nm=DZ, px_size_nm=PX)


def test_a_dark_slice_of_noise_is_refused_naming_it(good):
    st = good.copy()
    st[12] = np.random.default_rng(6).poisson(20.0, st[12].shape)  # the shutter closed: background and noise, no bead
    with pytest.raises(InputError, match=r"slice\(s\) 12 of 33 hold much less of the beads' light than the slices "
                                         r"beside them \(each one's share of the light beside it, over the 16 beads: "
                                         r"12: 0%\): "
                                         r"a dark or dropped frame"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX)


@pytest.mark.parametrize("seed", range(4))
def test_a_single_dim_bead_is_not_taken_for_dark_slices(seed):
    from plexloc.calibrate.spline import _refuse_dark_slices

    st = _field(1500.0, n_side=1, spacing=32, size=32, seed=seed)
    sel = B.detect_beads(st, roi_px=15)
    assert len(sel.used) == 1
    _refuse_dark_slices(st, sel, roi_px=15, src="dim")  # no error: its window's light scatters, no slice is dark


def test_psf_figure_of_two_channels_keeps_its_labels_apart(tmp_path, monkeypatch):
    """The colour bars' labels lay over the next panel's z axis label in the figure of two channels (a biplane)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from types import SimpleNamespace

    from plexloc.calibrate.figures import write_figures

    figs = []
    close = plt.close

    def keep(fig=None):
        if fig is not None and not isinstance(fig, str):
            fig.canvas.draw()
            fig.kept_renderer = fig.canvas.get_renderer()
            figs.append(fig)
        return close(fig) if fig is not None else close()

    monkeypatch.setattr(plt, "close", keep)
    z = (np.arange(33) - 16.0)[:, None, None]
    r2 = ((np.arange(15) - 7.0)[None, :, None] ** 2 + (np.arange(15) - 7.0)[None, None, :] ** 2)
    v = np.exp(-r2 / (2 * (1.5 + (z / 10.0) ** 2))) / (1.0 + (z / 10.0) ** 2)
    ch = SimpleNamespace(volume=v, z0_voxel=15.98, x0_voxel=7.0, y0_voxel=7.0)  # as a biplane calibration's
    cal = SimpleNamespace(n_channels=2, channels=[ch, ch], px_size_nm=(100.0, 100.0), dz_nm=50.0)
    write_figures(SimpleNamespace(calibration=cal, transform_residual_nm=[[0.5, 1.0, 0.7]]), tmp_path / "PSF.h5")
    fig = figs[0]
    r = fig.kept_renderer
    images = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if not ax.images]
    labels = [b.yaxis.label for b in bars if b.get_ylabel()] + [a.yaxis.label for a in images] + [
        a.xaxis.label for a in images] + [a.title for a in images]
    boxes = [t.get_window_extent(r) for t in labels]
    clashes = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
               if boxes[i].overlaps(boxes[j])]
    assert clashes == []
    assert sum(bool(b.get_ylabel()) for b in bars) == 2  # one colour bar label per row, beside its last panel
    assert "share of the photons in a pixel, the window summing to 1 at z = 0" in fig._suptitle.get_text()
