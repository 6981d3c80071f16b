"""The camera check and ``plexloc calibrate-camera`` walked as an imaging facility would (session 44, helper "camera").

- A camera whose noise at a photon or two per pixel is shot noise (an ideal camera's photon frames, a qCMOS of a few
  tenths of an e- read noise) read 1.3-1.5 there: Poisson counts of a few electrons over their pair's own mean are far
  from Gaussian. A right camera was warned about; such signals are no longer measured (a note says so), unless the
  ratio is far beyond what a right camera reads there.
- An ideal camera (frames taken as photons) that does not fit was advised "an e_per_adu too high ... a baseline above
  the camera's offset": it has neither. The warning now says what an ideal camera's misfit means.
- The noise check looked at every frame it was given, up to 64: 64 frames of 2048 x 2048 px took 186 s and 15 GB; it
  now looks at 64 frames of 256 x 256 px's worth (:func:`head_frames`, as the fits already give it)."""

from __future__ import annotations

import math

import pytest
import torch

from plexloc.camera.check import check_camera, head_frames, noise_measure
from plexloc.camera.models import SCMOS, IdealCamera


def _ideal_photons(bg: float, seed: int, shape=(32, 64, 64)) -> torch.Tensor:
    return IdealCamera()(torch.full(shape, bg), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bg", [0.8, 1.0, 1.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_right_ideal_camera_at_a_photon_or_two_is_not_warned_about(bg, seed):
    frames = _ideal_photons(bg, seed)
    check = check_camera([frames], [IdealCamera()], dtype="float32", source="ph.tif", warn=False)
    ch = check.channels[0]
    assert check.warnings == []  # read 1.30-1.53 before: "likely from an e_per_adu too high"
    assert math.isnan(ch.noise_ratio)
    assert "under the 2 e- it is measured from where shot noise dominates" in ch.noise_note
    (note,) = check.notes
    assert note.startswith("ph.tif: the camera check could not measure the pixel noise")


def test_a_right_ideal_camera_is_still_measured_above_two_photons():
    ch = check_camera([_ideal_photons(5.0, 0)], [IdealCamera()], dtype="float32", warn=False).channels[0]
    assert 0.95 <= ch.noise_ratio <= 1.1


@pytest.mark.parametrize("seed", [0, 1])
def test_a_right_qcmos_at_a_photon_per_pixel_is_not_warned_about(seed):
    # ORCA-Quest-like: 0.27 e- read noise, 0.11 e-/ADU; at 1 photon/px it read 1.34-1.37 (over the 1.35 edge)
    cam = SCMOS(qe=0.8, e_per_adu=0.11, baseline=100.0, read_sigma=0.27)
    adu = cam(torch.full((32, 64, 64), 1.0), generator=torch.Generator().manual_seed(seed))
    check = check_camera([adu], [cam], dtype="uint16", adu=True, warn=False)
    assert check.warnings == []
    assert "where shot noise dominates" in check.channels[0].noise_note


def test_a_typical_scmos_at_a_photon_per_pixel_is_still_measured():
    """Read noise of 1.6 e- is most of the noise there: the counts are not the issue, and the check measures."""
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    adu = cam(torch.full((32, 64, 64), 1.0), generator=torch.Generator().manual_seed(0))
    ch = check_camera([adu], [cam], dtype="uint16", adu=True, warn=False).channels[0]
    assert 0.9 <= ch.noise_ratio <= 1.12


def test_photons_scaled_far_up_at_low_light_are_still_told():
    """Under the gate, a ratio no right camera reads there (above 2) is still a warning."""
    frames = 2.5 * _ideal_photons(0.7, 0)  # 2.5x the photons, 1.25 photons/px: their variance 2.5x the prediction
    check = check_camera([frames], [IdealCamera()], dtype="float32", warn=False)
    assert check.channels[0].noise_level < 2 and check.channels[0].noise_ratio > 2.5
    (w,) = check.warnings
    assert "photons scaled up" in w


def test_raw_adu_read_by_an_ideal_camera_names_the_camera_kind_not_a_gain():
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    adu = cam(torch.full((32, 64, 64), 20.0), generator=torch.Generator().manual_seed(0))
    (w,) = check_camera([adu], [IdealCamera()], dtype="uint16", adu=True, source="raw.tif", warn=False).warnings
    assert w.startswith("raw.tif: the pixel noise between frames is 0.6")
    assert "raw camera counts read as photons" in w
    assert "kind (emccd or scmos)" in w and "instead of kind: ideal" in w
    assert "e_per_adu" not in w and "baseline" not in w  # an ideal camera has neither


def test_photons_of_an_scmos_read_by_an_ideal_camera_are_named_as_such():
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    photons = cam.to_photons(cam(torch.full((32, 64, 64), 20.0), generator=torch.Generator().manual_seed(0)))
    (w,) = check_camera([photons], [IdealCamera()], dtype="float32", warn=False).warnings
    assert "frames converted to photons from a camera with read noise or EM gain" in w
    assert "e_per_adu" not in w


def test_the_noise_check_looks_at_a_bounded_number_of_pixels():
    """Given more frames than 64 frames of 256 x 256 px's worth (here 8 frames of 512 x 512 with max_frames 8: 2 of
    them), the noise check uses the first ones only, as the fits give it: 64 frames of 2048 x 2048 px took 186 s and
    15 GB before, 2.5 s now (bench/RESULTS.md, session 44)."""
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    adu = cam(torch.full((8, 512, 512), 20.0), generator=torch.Generator().manual_seed(0))
    photons = cam.to_photons(adu)
    k = head_frames(photons.shape, max_frames=8)
    assert k == 2
    assert noise_measure(photons, cam, max_frames=8) == noise_measure(photons[:k], cam, max_frames=8)


# ------------------------------------------------------------------------------------------ plexloc calibrate-camera


def _stack(cam, photons: float, n: int, seed: int, shape=(48, 64)):
    import numpy as np

    return cam(torch.full((n, *shape), float(photons)), generator=torch.Generator().manual_seed(seed)).numpy().astype(np.uint16)


def test_a_dark_of_another_camera_mode_is_refused_naming_both_stacks():
    """Flats below the dark frames' offset, yet noisier than them: the dark was recorded in another readout mode.
    Before, the flats above the offset gave e_per_adu 0.31 for 0.46 (+-70 %) without a word."""
    from plexloc.camera.calibration import calibrate_camera, stack_stats
    from plexloc.errors import InputError

    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    other = SCMOS(qe=0.8, e_per_adu=1.84, baseline=400.0, read_sigma=2.4)  # another mode: offset 400 ADU
    dark = stack_stats([_stack(other, 0.0, 100, 1)], source="dark_mode2.tif")
    flats = [stack_stats([_stack(cam, lv, 100, 2 + k)], source=f"flat{lv}.tif") for k, lv in enumerate((50, 200, 800))]
    with pytest.raises(InputError, match="another camera setting") as err:
        calibrate_camera(dark, kind="scmos", flats=flats)
    text = str(err.value)
    assert "flat50.tif" in text and "dark_mode2.tif" in text and "below the dark frames' offset (400" in text


def test_a_steady_emccd_flat_is_not_called_flickering():
    """A steady lamp: the frame means' scatter is their noise. Steady EMCCD flats read 0.15-0.97 % flicker and were
    noted as 'the light changed from frame to frame (a flickering lamp)'; only an excess beyond 3 of its standard
    errors counts now."""
    from plexloc.camera.calibration import calibrate_camera, stack_stats
    from plexloc.camera.models import EMCCD

    em = EMCCD(qe=0.9, em_gain=300, e_per_adu=45, baseline=100, read_sigma=74.4, spurious_charge=0.002)

    def stack(photons, seed):
        import numpy as np

        x = em(torch.full((100, 32, 32), float(photons)), generator=torch.Generator().manual_seed(seed))
        return x.numpy().astype(np.uint16)

    dark = stack_stats([stack(0.0, 101)], source="dark.tif")  # read 0.97 % and 0.55 % flicker in flats 5 and 20
    flats = [stack_stats([stack(lv, 10 + k)], source=f"flat{lv}.tif") for k, lv in enumerate((5, 20, 60))]
    cal = calibrate_camera(dark, kind="emccd", flats=flats, em_gain=300)
    assert not any("flicker" in n for n in cal.notes)
    assert list(cal.transfer.flicker) == [0.0, 0.0, 0.0]
    assert cal.config["e_per_adu"] == pytest.approx(45, rel=0.05)
