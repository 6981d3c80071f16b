"""Review 3 of the table files: the Picasso pair is replaced as a pair, integers beyond 2**53 survive a CSV, and
negative frames are refused by every reader and writer (frames are numbered from 0)."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from plexloc.errors import InputError
from plexloc.io import (
    export_picasso,
    export_thunderstorm,
    import_picasso,
    import_thunderstorm,
    read_locs,
    read_table,
    write_locs,
    write_smlm,
    write_table,
)
from plexloc.io import _atomic, picasso, tables, thunderstorm
from plexloc.io.tables import TableWriter
from plexloc.table import LocTable

PX = 100.0
HEADER = "frame,x_nm,y_nm,z_nm,photons"
INT64_MAX = int(np.iinfo(np.int64).max)


def _table(n: int, seed: int = 0, **extra) -> LocTable:
    rng = np.random.default_rng(seed)
    return LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 800, n), "y_nm": rng.uniform(0, 800, n),
                     "z_nm": np.zeros(n), "photons": rng.uniform(500, 5000, n), "sigma_x_nm": np.full(n, 10.0),
                     "sigma_y_nm": np.full(n, 12.0), **extra})


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _export(table: LocTable, path: Path, n_frames: int) -> None:
    export_picasso(table, path, px_size_nm=PX, frame_shape=(8, 8), n_frames=n_frames)


# --- 1. the Picasso .hdf5 and its .yaml sidecar are one output -------------------------------------------------


def _fail_second_commit(monkeypatch) -> list[str]:
    """Make the second rename of a new temporary onto its target fail (an injected error between the two renames
    that put a Picasso pair in place, whichever goes first); returns the targets renamed onto, in order."""
    real = os.replace
    commits: list[str] = []

    def replace(src, dst):
        if Path(src).name.startswith(".") and ".tmp." in Path(src).name:  # atomic_path's temporaries
            commits.append(Path(dst).name)
            if len(commits) == 2:
                raise OSError(28, "No space left on device (injected)")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return commits


@pytest.mark.parametrize("hard_links", [True, False])
def test_picasso_failure_between_the_two_renames_leaves_the_old_pair(tmp_path, monkeypatch, hard_links):
    """Was: the sidecar was renamed into place first, then the .hdf5; an error between the two left the new sidecar
    next to the old .hdf5 (Frames, Pixelsize of another file). Now the old pair stays as it was, with no temporary
    or backup left, whether the old data file can be kept by a hard link or has to be moved aside."""
    out = tmp_path / "locs.hdf5"
    old = _table(5, seed=1)
    _export(old, out, n_frames=10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["locs.hdf5", "locs.yaml"]
    if not hard_links:
        def no_link(*args, **kwargs):
            raise OSError(1, "Operation not permitted (no hard links here)")

        monkeypatch.setattr(os, "link", no_link)
    commits = _fail_second_commit(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        _export(_table(7, seed=2), out, n_frames=20)
    monkeypatch.undo()
    assert commits == ["locs.hdf5", "locs.yaml"]  # the data file first, the sidecar last
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing else, nothing changed
    back = import_picasso(out)
    assert len(back) == 5 and np.allclose(back["x_nm"], old["x_nm"], atol=1e-3)


def test_picasso_failure_between_the_two_renames_without_an_old_pair_leaves_nothing(tmp_path, monkeypatch):
    """Was: a sidecar without its .hdf5 (Picasso and import_picasso would find a sidecar describing nothing)."""
    _fail_second_commit(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        _export(_table(7), tmp_path / "locs.hdf5", n_frames=20)
    assert list(tmp_path.iterdir()) == []


def test_picasso_failure_while_writing_leaves_the_old_pair_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "locs.hdf5"
    _export(_table(5, seed=1), out, n_frames=10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device (sidecar)")

    monkeypatch.setattr(yaml, "safe_dump_all", broken)
    with pytest.raises(OSError, match="sidecar"):
        _export(_table(7, seed=2), out, n_frames=20)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_picasso_sidecar_on_disk_always_describes_the_data_next_to_it(tmp_path, monkeypatch):
    """At every rename of a replacement, a sidecar that is there belongs to the .hdf5 that is there (the old pair's
    Frames with the old rows, or the new pair's with the new rows); at the end the new pair is in place."""
    out = tmp_path / "locs.hdf5"
    _export(_table(5, seed=1), out, n_frames=10)
    pairs = {(5, 10), (7, 20)}  # (rows of the .hdf5, Frames of its sidecar): the old pair, the new pair
    real = os.replace
    seen: list[tuple[int | None, int | None]] = []

    def state() -> tuple[int | None, int | None]:
        rows = None
        if out.exists():
            with h5py.File(out, "r") as f:
                rows = len(f["locs"])
        side = out.with_suffix(".yaml")
        frames = yaml.safe_load(side.read_text())["Frames"] if side.exists() else None
        return rows, frames

    def replace(src, dst):
        real(src, dst)
        seen.append(state())

    monkeypatch.setattr(os, "replace", replace)
    _export(_table(7, seed=2), out, n_frames=20)
    monkeypatch.undo()
    assert seen and seen[-1] == (7, 20)
    assert all(frames is None or (rows, frames) in pairs for rows, frames in seen), seen
    assert _hidden(tmp_path) == []


def test_atomic_pair_puts_back_the_old_pair_when_the_data_rename_fails(tmp_path, monkeypatch):
    """The other failure point: the new data file cannot be put in place (after the old sidecar was moved aside)."""
    data, side = tmp_path / "d.hdf5", tmp_path / "d.yaml"
    data.write_text("old data")
    side.write_text("old sidecar")
    real = os.replace

    def replace(src, dst):
        if Path(dst) == data and ".tmp." in Path(src).name:
            raise OSError(5, "Input/output error (injected)")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="injected"):
        with _atomic.atomic_pair(data, side) as (tmp_data, tmp_side):
            tmp_data.write_text("new data")
            tmp_side.write_text("new sidecar")
    assert data.read_text() == "old data" and side.read_text() == "old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5", "d.yaml"]


# --- 2. integer columns beyond 2**53 in CSV ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [2**53 + 1, INT64_MAX])
@pytest.mark.parametrize("column", ["frame", "id", "n_merged", "frame_last"])
def test_csv_integers_beyond_2_53_round_trip_exactly(tmp_path, column, value):
    """Was: 2**53 + 1 was written and read back as 2**53 (silently), the int64 maximum was written and then refused.
    Now they are read as int64 from their text, exactly (plain CSV and the streamed writer)."""
    t = _table(3, **({} if column == "frame" else {column: np.array([0, value, 7])}))
    if column == "frame":
        t = t.with_columns(frame=np.array([0, value, 7]))
    write_table(t, tmp_path / "t.csv", float_format="%.17g")
    assert str(value) in (tmp_path / "t.csv").read_text().splitlines()[2].split(",")  # written as an integer
    back = read_table(tmp_path / "t.csv")
    assert back[column].dtype == np.int64 and back[column].tolist() == [0, value, 7]
    assert back == t
    with TableWriter(tmp_path / "w.csv", float_format="%.17g", buffer_rows=2) as w:
        w.append(t)
    assert read_table(tmp_path / "w.csv")[column].tolist() == [0, value, 7]


def test_thunderstorm_integers_beyond_2_53_round_trip_exactly(tmp_path):
    """The ThunderSTORM reader shares the CSV parser: its 1-based frame, its id and our integer columns under their
    own names (frame_last, n_merged) come back exactly."""
    big = 2**53 + 1
    t = _table(2, id=np.array([big, INT64_MAX]), frame_last=np.array([big, 3]), n_merged=np.array([1, big]))
    t = t.with_columns(frame=np.array([big, 1]))
    export_thunderstorm(t, tmp_path / "t.thunderstorm.csv")
    back = import_thunderstorm(tmp_path / "t.thunderstorm.csv")
    for c in ("frame", "id", "frame_last", "n_merged"):
        assert back[c].dtype == np.int64 and back[c].tolist() == t[c].tolist(), c
    with pytest.raises(InputError, match=r"column 'frame' is 9223372036854775807 at row 0; .*does not fit"):
        export_thunderstorm(t.with_columns(frame=np.array([INT64_MAX, 1])), tmp_path / "max.thunderstorm.csv")
    assert not (tmp_path / "max.thunderstorm.csv").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9007199254740993", 2**53 + 1),
        ("9007199254740993.0", 2**53 + 1),  # an integer written as a float by another program
        ("9.007199254740993e15", 2**53 + 1),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775807", INT64_MAX),
    ],
)
def test_csv_integer_text_beyond_2_53_is_read_as_written(tmp_path, text, expected):
    (tmp_path / "t.csv").write_text(f"{HEADER},id\n0,1,2,3,4,5\n\n1,1,2,3,4,{text}\n2,1,2,3,4,6.0\n")
    assert read_table(tmp_path / "t.csv")["id"].tolist() == [5, expected, 6]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9007199254740993.5", r"line 4: column 'id' must hold integers, found '9007199254740993\.5'"),
        ("9223372036854775808", r"line 4: column 'id' holds 9223372036854775808, beyond the range of an integer "
                                r"column \(int64"),
        ("-9223372036854775809", r"line 4: column 'id' holds -9223372036854775809, beyond"),
        ("1e20", r"line 4: column 'id' holds 1e\+20, beyond"),
    ],
)
def test_csv_integer_text_that_no_int64_holds_is_refused_by_line(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(f"{HEADER},id\n0,1,2,3,4,5\n\n1,1,2,3,4,{text}\n")
    with pytest.raises(InputError, match=r"bad\.csv: " + message):
        read_table(tmp_path / "bad.csv")


# --- 3. frames are numbered from 0 -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t.csv", "t.h5", "t.hdf5", "t.thunderstorm.csv", "t.smlm"])
def test_a_negative_frame_is_not_written(tmp_path, name):
    """Was: plexloc CSV and HDF5 wrote frame -1 (and read it back); now every writer refuses it, naming the file,
    the column, the row and the value, and writes nothing."""
    t = _table(4).with_columns(frame=np.array([0, 3, -2, -1]))
    msg = rf"{name}: not written: column 'frame' has 2 negative value\(s\), first at row 2 \(-2\); frames are " \
          r"numbered from 0"
    with pytest.raises(InputError, match=msg):
        write_locs(t, tmp_path / name, px_size_nm=PX)
    assert list(tmp_path.iterdir()) == []


def test_every_writer_of_its_own_refuses_a_negative_frame_by_row(tmp_path):
    t = _table(3).with_columns(frame=np.array([0, -1, 2]))
    for write, name in ((write_table, "a.csv"), (write_table, "a.h5"), (write_smlm, "a.smlm"),
                        (export_thunderstorm, "a.ts.csv"),
                        (lambda t, p: export_picasso(t, p, px_size_nm=PX, frame_shape=(8, 8)), "a.hdf5")):
        with pytest.raises(InputError, match=rf"{name}: .*column 'frame' has 1 negative value\(s\), first at row 1 "
                                             r"\(-1\)"):
            write(t, tmp_path / name)
    with pytest.raises(InputError, match=r"s\.csv: not written: column 'frame' .* first at row 1 \(-1\)"):
        with TableWriter(tmp_path / "s.csv") as w:
            w.append(_table(2))
            w.append(t)
    with pytest.raises(InputError, match=r"column 'frame_last' has 1 negative value\(s\), first at row 0 \(-3\)"):
        write_table(_table(2, frame_last=np.array([-3, 1])), tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []


def test_a_negative_frame_in_a_csv_is_refused_by_its_line(tmp_path):
    """Errors of the CSV reader name the 1-based line of the file (blank lines counted)."""
    (tmp_path / "n.csv").write_text(f"{HEADER}\n0,1,2,3,4\n\n5,1,2,3,4\n-3,1,2,3,4\n-1,1,2,3,4\n")
    with pytest.raises(InputError, match=r"n\.csv: line 5: column 'frame' is -3; frames are numbered from 0 "
                                         r"\(2 negative value\(s\) in this column\)"):
        read_table(tmp_path / "n.csv")
    (tmp_path / "m.csv").write_text(f"{HEADER},frame_last\n0,1,2,3,4,0\n1,1,2,3,4,-9007199254740993\n")
    with pytest.raises(InputError, match=r"m\.csv: line 3: column 'frame_last' is -9007199254740993"):
        read_table(tmp_path / "m.csv")


def test_negative_frames_are_refused_by_the_binary_readers(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        g = f.create_group("locs")
        for c in ("x_nm", "y_nm", "z_nm", "photons"):
            g.create_dataset(c, data=np.ones(3))
        g.create_dataset("frame", data=np.array([0, 2, -4]))
    with pytest.raises(InputError, match=r"n\.h5: column 'frame' has 1 negative value\(s\), first at row 2 \(-4\); "
                                         r"frames are numbered from 0"):
        read_locs(tmp_path / "n.h5")
    rec = np.zeros(2, dtype=[("frame", "i4"), ("x", "f4"), ("y", "f4"), ("photons", "f4")])
    rec["frame"] = [-1, 0]
    with h5py.File(tmp_path / "p.hdf5", "w") as f:
        f.create_dataset("locs", data=rec)
    with pytest.raises(InputError, match=r"p\.hdf5: column 'frame' has 1 negative value\(s\), first at row 0 \(-1\)"):
        import_picasso(tmp_path / "p.hdf5", px_size_nm=PX)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        f["meta"].attrs["px_size"] = np.array([PX, PX])
        g = f.create_group("data")
        g.create_dataset("xyz", data=np.zeros((2, 3)))
        g.create_dataset("phot", data=np.ones(2))
        g.create_dataset("frame_ix", data=np.array([3, -1]))
    with pytest.raises(InputError, match=r"d\.h5: data/frame_ix has 1 negative value\(s\), first at row 1 \(-1\); "
                                         r"DECODE numbers frames from 0"):
        read_locs(tmp_path / "d.h5")


def test_a_smlm_frame_below_its_origin_is_refused(tmp_path):
    write_smlm(_table(3), tmp_path / "t.smlm")  # frames 0, 1, 2, marked 0-based
    assert read_locs(tmp_path / "t.smlm")["frame"].tolist() == [0, 1, 2]
    with pytest.raises(InputError, match=r"t\.smlm: column 'frame' has 1 value\(s\) below 1, first at row 0 \(0\); "
                                         r"frames are numbered from 1 here"):
        read_locs(tmp_path / "t.smlm", frame_origin=1)


def test_frame_zero_is_valid_everywhere_and_thunderstorm_stays_1_based(tmp_path):
    t = _table(3).with_columns(frame=np.array([0, 0, 2]), frame_last=np.array([0, 1, 2]))
    for name in ("t.csv", "t.h5", "t.hdf5", "t.thunderstorm.csv", "t.smlm"):
        write_locs(t, tmp_path / name, px_size_nm=PX)
        back = read_locs(tmp_path / name)
        assert back["frame"].tolist() == [0, 0, 2] and back["frame_last"].tolist() == [0, 1, 2], name
    assert (tmp_path / "t.thunderstorm.csv").read_text().splitlines()[1].startswith("1,")  # frame 0 is ThunderSTORM's 1
    (tmp_path / "ts.csv").write_text('"frame","x [nm]","y [nm]","intensity [photon]"\n1,10,20,100\n7,10,20,100\n')
    assert import_thunderstorm(tmp_path / "ts.csv")["frame"].tolist() == [0, 6]
    (tmp_path / "ts0.csv").write_text('"frame","x [nm]","y [nm]","intensity [photon]"\n1,10,20,100\n0,10,20,100\n')
    with pytest.raises(InputError, match=r"ts0\.csv: line 3: frame 0 < 1; ThunderSTORM numbers frames from 1"):
        import_thunderstorm(tmp_path / "ts0.csv")


def test_doctests_of_the_changed_modules():
    for module in (_atomic, tables, picasso, thunderstorm):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_a_folder_given_as_a_table_is_named_as_a_folder(tmp_path):
    """A folder given where a table is read said "unknown table format of 'results'" (or, named like a table, a
    reader's error): the mistake is named now."""
    from plexloc.errors import InputError
    from plexloc.io import read_locs

    for name in ("results", "locs.csv"):
        (tmp_path / name).mkdir()
        with pytest.raises(InputError, match="is a folder, not a table file"):
            read_locs(tmp_path / name)
