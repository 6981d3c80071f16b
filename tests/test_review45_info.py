"""Review of ``plexloc info`` (session 45) as a microscopist uses it: what the metadata of Micro-Manager stacks of
other cameras (Photometrics' PVCAM, Hamamatsu's DCAM, an Andor iXon on its conventional amplifier), ImageJ files
with a time unit, OME-XML with several detectors and movies of large frames give; and the camera check's fix for a
network fit given no camera of a multi-channel model."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from test_info45 import MM_IMAGE, _camera, mm_movie

from plexloc.io.movie_info import adu_statistics, compare_camera, read_movie_info


def test_a_photometrics_gain_index_is_not_compared_with_the_em_gain(tmp_path):
    """PVCAM's 'Gain' is a gain index (1-3), not the EM gain: an EMCCD camera of em_gain 300 got 'the EM gain
    differs: ... 300 but the movie's metadata record 1 ... off by about 3e+02x'."""
    image = {"Camera": "Photometrics", "Exposure-ms": 20.0, "Photometrics-Gain": "1",
             "Photometrics-ReadoutRate": "100MHz 16bit"}
    info = read_movie_info(mm_movie(tmp_path, image=image))
    assert info.recorded["gain"].value == 1.0 and "em_gain" not in info.recorded
    cmp = compare_camera(info, [_camera(em_gain=300.0)], camera_file="camera.yaml")
    assert not [w for w in cmp.warnings if "EM gain" in w], cmp.warnings
    assert ("em_gain", "300", "not recorded", "camera.yaml's em_gain") in cmp.rows
    # its EM gain is 'MultiplierGain' (an Evolve): that one is compared
    info = read_movie_info(mm_movie(tmp_path, image={**image, "Photometrics-MultiplierGain": "100"}))
    assert info.recorded["em_gain"].value == 100.0 and info.recorded["gain"].value == 1.0
    (w,) = compare_camera(info, [_camera(em_gain=300.0)], camera_file="camera.yaml").warnings
    assert "'Photometrics-MultiplierGain'" in w and "about 3x" in w


def test_an_scmos_gain_mode_is_not_an_em_gain(tmp_path):
    """An sCMOS's 'Gain' (a conversion mode) against an EMCCD configuration: no EM gain is said to differ."""
    image = {"Camera": "Andor sCMOS Camera", "Andor sCMOS Camera-Gain": "2"}
    info = read_movie_info(mm_movie(tmp_path, image=image))
    assert "em_gain" not in info.recorded and info.recorded["gain"].value == 2.0
    assert not [w for w in compare_camera(info, [_camera()], camera_file="c.yaml").warnings if "EM gain" in w]


def test_an_andor_ixon_on_its_conventional_amplifier(tmp_path):
    """The iXon's 'Gain' is not applied with the conventional amplifier: recorded as no EM gain, and an EMCCD
    configuration of em_gain 300 is told."""
    info = read_movie_info(mm_movie(tmp_path, image={**MM_IMAGE, "Andor-Output_Amplifier": "Conventional"}))
    rec = info.recorded["em_gain"]
    assert rec.value.startswith("none: the EM amplifier is off") and "'Andor-Output_Amplifier'" in rec.source
    (w,) = [w for w in compare_camera(info, [_camera()], camera_file="c.yaml").warnings if "EM amplifier" in w]
    assert w.startswith("the movie was taken with the EM amplifier off (") and "c.yaml's em_gain is 300" in w


def test_hamamatsu_dcam_properties_in_capitals(tmp_path):
    """The DCAM adapter names its properties as DCAM does ('SENSOR TEMPERATURE', 'READOUT SPEED'): they were
    'not recorded'."""
    image = {"Camera": "HamamatsuHam_DCAM", "Exposure-ms": 10.0, "HamamatsuHam_DCAM-SENSOR TEMPERATURE": "-10",
             "HamamatsuHam_DCAM-READOUT SPEED": "FAST", "HamamatsuHam_DCAM-Binning": "1x1"}
    rec = read_movie_info(mm_movie(tmp_path, image=image)).recorded
    assert rec["temperature_c"].value == -10.0
    assert rec["temperature_c"].source == "Micro-Manager image metadata 'HamamatsuHam_DCAM-SENSOR TEMPERATURE'"
    assert rec["readout"].value == "READOUT SPEED FAST" and "'HamamatsuHam_DCAM-READOUT SPEED'" in rec["readout"].source
    assert rec["binning"].value == "1x1"


@pytest.mark.parametrize("meta, expected_ms", [({"finterval": 50, "tunit": "ms"}, 50.0),
                                                ({"finterval": 0.05, "tunit": "sec"}, 50.0),
                                                ({"finterval": 0.05}, 50.0)])
def test_an_imagej_frame_interval_in_its_time_unit(tmp_path, meta, expected_ms):
    """ImageJ's finterval is in its 'tunit': 50 ms (tunit=ms) was shown as 50000 ms ('finterval' = 50 s)."""
    tifffile.imwrite(tmp_path / "ij.tif", np.zeros((4, 8, 8), np.uint16), imagej=True, metadata={"axes": "TYX", **meta})
    rec = read_movie_info(tmp_path / "ij.tif").recorded["frame_interval_ms"]
    assert (rec.value, rec.unit) == (pytest.approx(expected_ms), "ms")
    assert rec.source.startswith(f"ImageJ description 'finterval' = {meta['finterval']}")


def _ome(detectors: str, settings_id: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            f'<Instrument ID="Instrument:0">{detectors}</Instrument><Image ID="Image:0"><Pixels ID="Pixels:0" '
            'DimensionOrder="XYZCT" Type="uint16" SizeX="8" SizeY="8" SizeZ="1" SizeC="1" SizeT="3">'
            f'<Channel ID="Channel:0:0" SamplesPerPixel="1"><DetectorSettings ID="{settings_id}"/></Channel>'
            '<TiffData IFD="0" PlaneCount="3"/></Pixels></Image></OME>')


def test_an_ome_image_of_the_second_detector_is_read_with_that_detector(tmp_path):
    """A two-camera instrument (an EMCCD and an sCMOS): the image's DetectorSettings name Detector:1; the first
    detector's EM gain and model were reported for it."""
    two = ('<Detector ID="Detector:0" Manufacturer="Andor" Model="iXon" Type="EMCCD" AmplificationGain="300"/>'
           '<Detector ID="Detector:1" Manufacturer="Hamamatsu" Model="ORCA-Flash4.0" Type="CMOS"/>')
    path = tmp_path / "two.ome.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), description=_ome(two, "Detector:1"), metadata=None,
                     photometric="minisblack")
    rec = read_movie_info(path).recorded
    assert rec["camera"].value == "Hamamatsu ORCA-Flash4.0 (CMOS)" and "em_gain" not in rec
    # settings naming no detector of several: none is taken (not the first)
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), description=_ome(two, "Detector:9"), metadata=None,
                     photometric="minisblack")
    rec = read_movie_info(path).recorded
    assert "camera" not in rec and "em_gain" not in rec


def _scmos_dark(path, frames: int, shape=(64, 64)):
    """An sCMOS movie of 2 photons/px: offset 100 ADU, 0.5 e-/ADU, read noise 1.5 e- (3 ADU)."""
    rng = np.random.default_rng(0)
    e = rng.poisson(0.8 * 2.0, size=(frames, *shape)) + rng.normal(0, 1.5, size=(frames, *shape))
    tifffile.imwrite(path, np.round(100 + e / 0.5).astype(np.uint16), photometric="minisblack")
    return path


def test_the_right_baseline_of_a_movie_of_large_frames_is_not_said_to_be_too_high(tmp_path):
    """Frames over max_pixels (a 3200 x 3200 sCMOS is 10 Mpx) gave one frame: 1 % of its pixels sit 7 ADU below the
    offset by read noise alone, and the right baseline (100) was 'above the camera's offset'. Two frames now; with one
    (--frames 1) the baseline is shown, not checked."""
    from plexloc.config.models import SCMOSConfig

    cam = SCMOSConfig(qe=0.8, e_per_adu=0.5, baseline=100.0, read_sigma=1.5)
    path = _scmos_dark(tmp_path / "dark.tif", 4)
    info = read_movie_info(path, max_pixels=64 * 64)  # frames of more pixels than measured
    assert info.adu.frames == 2
    assert not [w for w in compare_camera(info, [cam], camera_file="c.yaml").warnings if "baseline" in w]
    one = read_movie_info(path, head_frames=1)
    cmp = compare_camera(one, [cam], camera_file="c.yaml")
    assert one.adu.dim_level < 95 and not [w for w in cmp.warnings if "baseline" in w]
    (row,) = [r for r in cmp.rows if r[0] == "baseline"]
    assert "one frame" in row[2] and "not checked" in row[2]
    # a baseline far above the data is still told (two frames)
    bad = SCMOSConfig(qe=0.8, e_per_adu=0.5, baseline=130.0, read_sigma=1.5)
    assert [w for w in compare_camera(info, [bad], camera_file="c.yaml").warnings if "baseline is 130 ADU" in w]


def test_one_large_frame_is_measured_without_float_copies():
    """One frame's statistics: no float64 or int64 copy of the whole frame (each 4x a uint16 frame: 8x together, 160 MB
    for a 10 Mpx frame)."""
    import tracemalloc

    frame = np.random.default_rng(0).integers(100, 200, size=(1, 1000, 1000)).astype(np.uint16)
    adu_statistics(frame[:, :8, :8])  # (its imports outside the measure)
    tracemalloc.start()
    try:
        a = adu_statistics(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert a.frames == 1 and 100 <= a.dim_level <= 102
    assert peak < 2 * frame.nbytes, peak
