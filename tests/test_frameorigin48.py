"""A table's first frame number as written (``frame_origin``, ``--frame-origin``) is honoured for every format, not
only .smlm and the SMLM Challenge's CSV: a plexloc CSV a tool numbered from 1 was read with frames one too high
(and ``read_locs(..., frame_origin=1)`` / ``plexloc render LOCS --frame-origin 1`` took the option without a word)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io.formats import read_locs, write_locs
from plexloc.table import LocTable


def _table(first: int) -> LocTable:
    frame = np.array([0, 0, 3, 7]) + first
    return LocTable({"frame": frame, "x_nm": np.array([100.0, 900.0, 400.0, 50.0]),
                     "y_nm": np.array([200.0, 300.0, 800.0, 70.0]), "z_nm": np.zeros(4), "photons": np.full(4, 1e3)})


@pytest.mark.parametrize("name", ["t.csv", "t.h5", "t.thunderstorm.csv"])
def test_frame_origin_moves_every_formats_frames(tmp_path, name):
    path = tmp_path / name
    write_locs(_table(0), path)
    own = read_locs(path)
    assert own["frame"].tolist() == [0, 0, 3, 7]
    own_origin = 1 if name.endswith(".thunderstorm.csv") else 0
    assert read_locs(path, frame_origin=own_origin)["frame"].tolist() == [0, 0, 3, 7]
    other = 1 - own_origin  # the file's frames numbered from the other first number: moved by the difference
    moved = read_locs(path, frame_origin=other)["frame"].tolist() if other == 0 else None
    if other == 0:  # a ThunderSTORM file a tool numbered from 0: its frames as written
        assert moved == [1, 1, 4, 8]
    else:  # the table as written holds frame 0, below the first number 1 given: refused, naming the file and value
        with pytest.raises(InputError, match=r"column .frame. holds 0 .*frame_origin=1 \(--frame-origin 1\) gives it.*from 0") as err:
            read_locs(path, frame_origin=1)
        assert name in str(err.value)


def test_plexloc_csv_numbered_from_one(tmp_path):
    path = tmp_path / "from_one.csv"
    write_locs(_table(1), path)
    assert read_locs(path, frame_origin=1)["frame"].tolist() == [0, 0, 3, 7]
    with pytest.raises(InputError, match="frame_origin must be 0 or 1, got 2"):
        read_locs(path, frame_origin=2)


def test_filter_command_honours_frame_origin(tmp_path):
    src, out = tmp_path / "from_one.csv", tmp_path / "out.csv"
    write_locs(_table(1), src)
    assert main(["filter", str(src), "--out", str(out), "--frame-origin", "1"]) == 0
    assert read_locs(out)["frame"].tolist() == [0, 0, 3, 7]


def test_info_config_without_roi_offset_px_stops_where_fit_stops(tmp_path, capsys):
    """``plexloc info --config`` with full-chip sCMOS maps, a configuration giving no ``roi_offset_px`` and a movie
    recording no ROI cut the maps at the chip's corner (the field's default) where ``fit --method mle`` refuses
    them and asks for the ROI: it now says what fit says, with the corner the movie's offsets fit."""
    import tifffile
    import yaml

    from test_revcamwalk48 import _chip, _raw

    chip = _chip()
    tifffile.imwrite(tmp_path / "m.tif", np.round(_raw(chip, 40, 24)).astype(np.uint16), photometric="minisblack")
    for name, arr in zip(("base", "gain", "rs"), chip):
        np.save(tmp_path / f"{name}.npy", arr)
    cfg = yaml.safe_load((Path(__file__).parents[1] / "src/plexloc/examples/2d_gaussian.yaml").read_text())
    cfg.update(frame_size=[48, 48], camera={"kind": "scmos", "qe": 0.8, "e_per_adu": "gain.npy", "spurious_charge": 0.0,
                                            "baseline": "base.npy", "read_sigma": "rs.npy"})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["info", str(tmp_path / "m.tif"), "--config", str(tmp_path / "cfg.yaml")]) == 0
    out = capsys.readouterr().out
    assert "could not run (fit would stop here too)" in out and "--roi-offset 40 24" in out
    assert "cut at chip x 0, y 0" not in out
