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
