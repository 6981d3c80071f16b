"""Outputs are written to a temporary file and renamed; targets that cannot be written are named up front."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path


def test_unwritable_targets_are_input_errors_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError, match=r"a_file/out\.csv: cannot write the output: .*a_file is a file, not a folder"):
        with atomic_path(tmp_path / "a_file" / "out.csv"):
            pytest.fail("the block must not run")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match="a folder of that name exists"):
        with atomic_path(tmp_path / "folder.csv"):
            pytest.fail("the block must not run")
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(InputError, match="cannot create files in"):
            with atomic_path(ro / "out.csv"):
                pytest.fail("the block must not run")


def test_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_cli_names_an_unwritable_output(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("frame,x_nm,y_nm,z_nm,photons\n0,10,20,0,100\n")
    (tmp_path / "cfg.yaml").write_text("a: 1\n")
    assert main(["convert", str(tmp_path / "in.csv"), str(tmp_path / "cfg.yaml" / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "plexloc convert: error:" in err and "cfg.yaml is a file, not a folder" in err and "Traceback" not in err


def test_movie_with_a_nan_pixel_is_refused_naming_frame_and_pixel(tmp_path, capsys):
    import numpy as np

    from plexloc.io.tiff import open_movie

    movie = np.full((4, 8, 9), 100.0, np.float32)
    movie[2, 5, 7] = np.nan
    import tifffile

    tifffile.imwrite(tmp_path / "nan.tif", movie, photometric="minisblack")
    with open_movie(tmp_path / "nan.tif") as r:
        assert float(r[1].mean()) == 100.0  # the good frames read
        with pytest.raises(InputError, match=r"nan\.tif: frame 2 has a non-finite pixel value nan at row 5, column 7"):
            r[0:4]
    config = Path(__file__).resolve().parents[1] / "examples" / "demo_2d.yaml"
    assert main(["detect", str(tmp_path / "nan.tif"), "--config", str(config), "--out", str(tmp_path / "d.csv")]) == 2
    assert "frame 2 has a non-finite pixel" in capsys.readouterr().err and not (tmp_path / "d.csv").exists()
