"""The camera ROI's chip position from movie metadata (Micro-Manager), and its use by fit_movie.

The test files are laid out as Micro-Manager's multipage TIFF writer lays them out, so that tifffile
recognises them as Micro-Manager stacks: the header at byte 8 (index-map, display-settings and comments
offsets, then the summary JSON), per page a 13-entry IFD immediately followed by the pixels and then the
tag values, the per-image JSON in tag 51123, and the index map, display settings and comments at the end.
Metadata keys as the two versions write them: MM 2 per image ``"ROI": "x-y-w-h"``; MM 1.4 summary
``"ROI": [x, y, w, h]``; the core's per-image ``"ROI-X-start"``/``"ROI-Y-start"``.
"""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io.tiff import open_movie, write_movie

MM_ROI_TAG = 51123


def write_mm_stack(path, frames, *, summary: dict, image_meta: dict, first: int = 0):
    """A Micro-Manager multipage TIFF (uint16, one channel, position, slice) with the given summary and
    per-image metadata (``Frame``/``FrameIndex`` etc. are filled in per page). ``first``: the frame index of its
    first frame, for the later files of a multi-file stack (``..._MMStack_Pos0_1.ome.tif``)."""
    frames = np.asarray(frames, dtype="<u2")
    t, h, w = frames.shape
    summary = {"MicroManagerVersion": "2.0.1", "Frames": t, "Slices": 1, "Channels": 1, "Positions": 1,
               "Width": w, "Height": h, "PixelType": "GRAY16", "BitDepth": 16, "IJType": 1, "Prefix": "movie",
               "TimeFirst": False, "SlicesFirst": True, **summary}
    buf = bytearray(b"II" + struct.pack("<HI", 42, 0))
    head = len(buf)
    buf += bytes(32)
    sj = json.dumps(summary).encode()
    struct.pack_into("<II", buf, head + 24, 2355492, len(sj))
    buf += sj
    ifds, prev_next = [], 4  # the first-IFD pointer sits at byte 4
    for k, frame in enumerate(frames):
        if len(buf) % 2:
            buf += b"\0"
        ifd = len(buf)
        ifds.append(ifd)
        struct.pack_into("<I", buf, prev_next, ifd)
        meta = json.dumps({**image_meta, "Frame": first + k, "FrameIndex": first + k, "ChannelIndex": 0, "SliceIndex": 0,
                           "PositionIndex": 0, "Width": w, "Height": h, "PixelType": "GRAY16"}).encode() + b"\0"
        data = ifd + 2 + 13 * 12 + 4  # = ifd + 162: the pixels follow the IFD, as tifffile expects of MM stacks
        after = data + frame.nbytes
        xres, yres, meta_off = after, after + 8, after + 16
        entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
                   (273, 4, 1, data), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, frame.nbytes), (282, 5, 1, xres),
                   (283, 5, 1, yres), (296, 3, 1, 3), (MM_ROI_TAG, 2, len(meta), meta_off)]
        buf += struct.pack("<H", len(entries))
        for tag, typ, count, value in entries:
            buf += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
        prev_next = len(buf)
        buf += struct.pack("<I", 0)
        assert len(buf) == data
        buf += frame.tobytes() + struct.pack("<IIII", 10000, 1, 10000, 1) + meta
    index_off = len(buf)
    buf += struct.pack("<II", 3453623, t) + b"".join(struct.pack("<5I", 0, 0, first + k, 0, ifds[k]) for k in range(t))
    disp = json.dumps([{"Color": -1, "Name": "Default", "Min": 0, "Max": 65535}]).encode()
    disp_off = len(buf)
    buf += struct.pack("<II", 347834724, len(disp)) + disp
    comm = json.dumps({"Summary": ""}).encode()
    comm_off = len(buf)
    buf += struct.pack("<II", 84720485, len(comm)) + comm
    struct.pack_into("<IIIIII", buf, head, 54773648, index_off, 483765892, disp_off, 99384722, comm_off)
    path.write_bytes(bytes(buf))
    return path


def movie(t=4, h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(100, 4000, size=(t, h, w)).astype(np.uint16)


def test_the_test_files_are_micro_manager_stacks_to_tifffile(tmp_path):
    frames = movie()
    p = write_mm_stack(tmp_path / "m_MMStack_Pos0.ome.tif", frames, summary={"ROI": [16, 8, 32, 24]},
                       image_meta={"ROI": "16-8-32-24"})
    with tifffile.TiffFile(p) as tf:
        assert tf.is_micromanager and tf.is_mmstack
        assert tf.micromanager_metadata["Summary"]["ROI"] == [16, 8, 32, 24]
        assert tf.pages.first.tags[MM_ROI_TAG].value["ROI"] == "16-8-32-24"
    with open_movie(p) as m:  # and plexloc reads their frames
        assert len(m) == 4 and np.array_equal(m[:], frames)


@pytest.mark.parametrize("summary, image_meta, expected, key", [
    ({}, {"ROI": "128-64-32-24", "Camera": "Andor"}, (128, 64), "image metadata 'ROI'"),            # MM 2
    ({"ROI": [40, 300, 32, 24]}, {"Camera": "Andor"}, (40, 300), "summary metadata 'ROI'"),        # MM 1.4
    ({}, {"ROI-X-start": "7", "ROI-Y-start": "9", "Camera": "Andor"}, (7, 9), "'ROI-X-start'"),   # core tags
    ({"ROI": [1, 2, 32, 24]}, {"ROI": "5-6-32-24"}, (5, 6), "image metadata"),                     # per image first
])
def test_micro_manager_roi(tmp_path, summary, image_meta, expected, key):
    p = write_mm_stack(tmp_path / "m.tif", movie(), summary=summary, image_meta=image_meta)
    with open_movie(p) as m:
        assert m.roi_offset_px == expected
        assert key in m.roi_offset.source
    with open_movie(tmp_path) as m:  # a folder: the first file's metadata
        assert m.roi_offset_px == expected


def test_files_without_a_recorded_roi(tmp_path):
    write_movie(tmp_path / "plain.tif", movie())
    tifffile.imwrite(tmp_path / "x.ome.tif", movie(), metadata={"axes": "TYX", "PhysicalSizeX": 0.1,
                                                                "PhysicalSizeY": 0.1})
    write_mm_stack(tmp_path / "mm.tif", movie(), summary={}, image_meta={"Camera": "Andor"})
    for name in ("plain.tif", "x.ome.tif", "mm.tif"):
        with open_movie(tmp_path / name) as m:
            assert m.roi_offset is None and m.roi_offset_px is None


@pytest.mark.parametrize("image_meta, match", [
    ({"ROI": "0-0-512-512"}, r"'0-0-512-512'.*512x512 \(width x height\) but the frames are 32x24"),
    ({"ROI": "12;4;32;24"}, r"'12;4;32;24' is not 'x-y-width-height'"),
    ({"ROI": "-2-0-32-24"}, r"position \(-2, 0\) is negative"),
    ({"ROI-X-start": "abc", "ROI-Y-start": "0"}, r"'ROI-X-start' = 'abc' is not an integer"),
])
def test_bad_metadata_is_an_error_naming_file_and_value_on_access(tmp_path, image_meta, match):
    p = write_mm_stack(tmp_path / "bad.tif", movie(), summary={}, image_meta=image_meta)
    with open_movie(p) as m:
        assert m[0].shape == (24, 32)  # the movie itself opens and reads
        with pytest.raises(InputError, match=match) as err:
            _ = m.roi_offset_px
        assert "bad.tif" in str(err.value) and "--roi-offset X Y" in str(err.value)


# --- fit_movie: CLI > metadata > (0, 0) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_channel_model(tmp_path_factory):
    import torch

    from test_multichannel_net import two_channel_config

    from plexloc.train import Trainer

    torch.manual_seed(0)
    cfg = two_channel_config()
    return Trainer(cfg, tmp_path_factory.mktemp("run") / "run").model, cfg.model_dump(mode="json")


def _fit(paths, model, **kw):
    from plexloc.infer import fit_movie

    stats: dict = {}
    table = fit_movie([str(p) for p in paths], model[0], config=model[1], threshold=0.05, stats=stats, **kw)
    return table, stats


def test_fit_takes_the_offset_from_metadata_unless_given(tmp_path, two_channel_model, monkeypatch):
    from plexloc.infer import fit as fit_module

    seen = []  # the offsets that reach the predictor (the transformation indicator)
    localize = fit_module.Predictor.localize_frames
    monkeypatch.setattr(fit_module.Predictor, "localize_frames",
                        lambda self, b, off=(0, 0): seen.append(tuple(off)) or localize(self, b, off))
    a = write_mm_stack(tmp_path / "ch0.tif", movie(seed=1), summary={}, image_meta={"ROI": "30-12-32-24"})
    b = write_mm_stack(tmp_path / "ch1.tif", movie(seed=2), summary={}, image_meta={"ROI": "30-12-32-24"})
    _, s = _fit([a, b], two_channel_model)
    assert s["roi_offset_px"] == (30, 12) and "Micro-Manager image metadata 'ROI'" in s["roi_offset_source"]
    assert set(seen) == {(30, 12)}
    seen.clear()
    _, s = _fit([a, b], two_channel_model, roi_offset_px=(0, 3))
    assert s["roi_offset_px"] == (0, 3) and s["roi_offset_source"] == "--roi-offset" and set(seen) == {(0, 3)}
    write_movie(tmp_path / "p0.tif", movie(seed=1))
    write_movie(tmp_path / "p1.tif", movie(seed=2))
    _, s = _fit([tmp_path / "p0.tif", tmp_path / "p1.tif"], two_channel_model)
    assert s["roi_offset_px"] == (0, 0) and s["roi_offset_source"].startswith("default")


def test_fit_with_bad_or_disagreeing_metadata(tmp_path, two_channel_model):
    from plexloc.infer.fit import RoiOffsetWarning

    bad = write_mm_stack(tmp_path / "bad.tif", movie(seed=1), summary={}, image_meta={"ROI": "0-0-512-512"})
    ok = write_mm_stack(tmp_path / "ok.tif", movie(seed=2), summary={}, image_meta={"ROI": "30-12-32-24"})
    with pytest.raises(InputError, match="bad.tif.*512x512"):
        _fit([bad, ok], two_channel_model)
    _, s = _fit([bad, ok], two_channel_model, roi_offset_px=(4, 4))  # the option overrides: no error
    assert s["roi_offset_px"] == (4, 4)
    with pytest.warns(RoiOffsetWarning, match="ok.tif.*at \\(30, 12\\).*\\(2, 2\\)"):
        other = write_mm_stack(tmp_path / "ref.tif", movie(seed=1), summary={}, image_meta={"ROI": "2-2-32-24"})
        _, s = _fit([other, ok], two_channel_model)
    assert s["roi_offset_px"] == (2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit([ok, ok], two_channel_model)  # agreeing channels: silent


def test_cli_fit_reports_the_roi_source_and_bad_metadata_end_in_one_line(tmp_path, capsys):
    import torch

    from test_multichannel_net import two_channel_config

    from plexloc.cli.main import main
    from plexloc.train import Trainer

    torch.manual_seed(0)
    Trainer(two_channel_config(), tmp_path / "run").run(steps=1)
    a = write_mm_stack(tmp_path / "ch0.tif", movie(seed=1), summary={}, image_meta={"ROI": "30-12-32-24"})
    b = write_mm_stack(tmp_path / "ch1.tif", movie(seed=2), summary={"ROI": [30, 12, 32, 24]}, image_meta={})
    capsys.readouterr()
    assert main(["fit", str(a), str(b), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "l.csv")]) == 0
    err = capsys.readouterr().err
    assert "ROI offset (30, 12) px from Micro-Manager image metadata 'ROI' = '30-12-32-24'" in err and "ch0.tif" in err
    bad = write_mm_stack(tmp_path / "bad.tif", movie(seed=1), summary={}, image_meta={"ROI": "0-0-512-512"})
    assert main(["fit", str(bad), str(b), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tif" in err and "'0-0-512-512'" in err
    assert not (tmp_path / "m.csv").exists()
    assert main(["fit", str(bad), str(b), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "m.csv"),
                 "--roi-offset", "3", "4"]) == 0
    assert "ROI offset (3, 4) px from --roi-offset" in capsys.readouterr().err
