"""Session 46: a TIFF hyperstack of several channels and frames (or slices) is refused naming its channels (it was
refused as 'a movie must be 2-D or 3-D' without saying why)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io.tiff import open_movie


@pytest.mark.parametrize(("axes", "shape", "ome"), [("ZCYX", (5, 2, 16, 16), False), ("TCYX", (3, 2, 16, 16), True)])
def test_a_hyperstack_of_channels_is_refused_naming_its_channels(tmp_path, axes, shape, ome):
    path = tmp_path / ("h.ome.tif" if ome else "h.tif")
    tifffile.imwrite(path, np.zeros(shape, np.uint16), metadata={"axes": axes}, **({} if ome else {"imagej": True}))
    with pytest.raises(InputError, match=rf"h(\.ome)?\.tif: image has shape .* with 2 channels \(axes '{axes}'\); "
                                         r"plexloc reads one channel per TIFF: save each channel as its own file"):
        with open_movie(path):
            pass


def test_a_stack_that_imagej_metadata_call_channels_is_still_a_movie(tmp_path):
    """tifffile's ``imagej=True`` marks any (T, H, W) array as channels (axes 'CYX'): still read as frames, and a
    singleton channel axis is no hyperstack."""
    a, b = tmp_path / "a.tif", tmp_path / "b.ome.tif"
    tifffile.imwrite(a, np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16), imagej=True)
    tifffile.imwrite(b, np.zeros((3, 1, 16, 16), np.uint16), metadata={"axes": "TCYX"})
    with tifffile.TiffFile(a) as tf:
        assert tf.series[0].axes == "CYX"
    with open_movie(a) as movie:
        assert len(movie) == 4 and movie.frame_shape == (16, 16) and int(movie[3][0, 0]) == 3 * 256
    with open_movie(b) as movie:
        assert len(movie) == 3 and movie.frame_shape == (16, 16)


def test_a_damaged_header_is_said_in_the_error_not_printed_before_it(tmp_path, capfd):
    """tifffile logs a header whose first-page offset leads nowhere while the file opens, before plexloc listened:
    Python's last-resort handler printed it to stderr ahead of plexloc's error (and the job service copied that line
    into the job's error), and the error lacked it (session 46)."""
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00\x67\x45\x23\x62" + b"garbage" * 3)
    with pytest.raises(InputError, match=r"bad\.tif: TIFF file holds no image \(0 readable page\(s\): a damaged or "
                                         r"empty file; <tifffile\.TiffPages @\d+> invalid offset to first page"):
        with open_movie(bad):
            pass
    assert "invalid offset" not in capfd.readouterr().err
