"""Review of the io and split changes of 45: rows of one movie's cut replaced by another's, frames of a multi-table
.smlm shifted by a table without frames, and a 2D table's warning that did not name the z column it left unread."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import tifffile

from plexloc.cli.main import main
from plexloc.io import read_locs


def test_split_keeps_the_dots_of_a_movie_name(tmp_path, capsys):
    """Was: the name cut at its first dot, so run.1.tif and run.2.tif both wrote DIR/run_ch0.tif: the second movie's
    cut replaced the first's without a word (and 2024.05.01_cell.tif became 2024_ch0.tif)."""
    sv = tmp_path / "boxes.yaml"
    sv.write_text("split_view:\n  boxes: [[0, 0, 4, 4], [4, 0, 4, 4]]\n")
    out = tmp_path / "cut"
    frames = {}
    for name, n in (("run.1.tif", 6), ("run.2.tif", 4), ("2024.05.01_cell.ome.tif", 5)):
        frames[name] = (np.arange(n * 4 * 8, dtype=np.uint16).reshape(n, 4, 8) + 7 * n)
        tifffile.imwrite(tmp_path / name, frames[name], photometric="minisblack")
        assert main(["split", str(tmp_path / name), "--config", str(sv), "--out", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [
        "2024.05.01_cell_ch0.tif", "2024.05.01_cell_ch1.tif", "run.1_ch0.tif", "run.1_ch1.tif", "run.2_ch0.tif",
        "run.2_ch1.tif"]
    for stem, name in (("run.1", "run.1.tif"), ("run.2", "run.2.tif"), ("2024.05.01_cell", "2024.05.01_cell.ome.tif")):
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}_ch0.tif"), frames[name][:, :, :4])
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}_ch1.tif"), frames[name][:, :, 4:])


def _two_tables(path):
    """A .smlm archive (not plexloc's) of two tables: 'a.bin' with 1-based frames 1, 2, 3, 'b.bin' without frames."""
    def fmt(headers):
        return {"type": "table", "mode": "binary", "headers": headers, "dtype": ["float32"] * len(headers),
                "shape": [1] * len(headers),
                "units": ["frame" if h == "frame" else "photon" if h == "intensity" else "nm" for h in headers]}

    a = np.zeros(3, dtype=[("frame", "<f4"), ("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")])
    a["frame"], a["x"], a["intensity"] = [1, 2, 3], [1.0, 2.0, 3.0], 100.0
    b = np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")])
    b["x"], b["intensity"] = [7.0, 8.0], 100.0
    files = [{"name": "a.bin", "type": "table", "format": "A", "rows": 3, "offset": {}},
             {"name": "b.bin", "type": "table", "format": "B", "rows": 2, "offset": {}}]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", json.dumps({"format_version": "0.2", "files": files, "formats": {
            "A": fmt(["frame", "x", "y", "intensity"]), "B": fmt(["x", "y", "intensity"])}}))
        z.writestr("a.bin", a.tobytes())
        z.writestr("b.bin", b.tobytes())
    return path


def test_smlm_table_without_frames_neither_shifts_the_others_nor_is_miscounted(tmp_path):
    """Was: the frameless table's rows, put in frame 0 before the origin was guessed, made the other table's 1-based
    frames (1, 2, 3, as read alone) read as 0-based, one frame late, and the warning counted all 5 rows of the archive
    as put in frame 0 (2 were)."""
    from plexloc.io.smlm import FrameOriginWarning, MissingFrameWarning

    p = _two_tables(tmp_path / "two.smlm")
    with pytest.warns((MissingFrameWarning, FrameOriginWarning)) as caught:
        t = read_locs(p)
    assert t["frame"].tolist() == [0, 1, 2, 0, 0] and t["color"].tolist() == [0, 0, 0, 1, 1]
    assert t["x_nm"].tolist() == [1, 2, 3, 7, 8]
    said = {type(w.message): str(w.message) for w in caught}
    assert len(caught) == 2 and set(said) == {MissingFrameWarning, FrameOriginWarning}
    assert said[MissingFrameWarning].startswith(f"{p}: table(s) 'b.bin': no frame column, so all 2 localizations were "
                                                "put in frame 0")
    assert "because the smallest is 1" in said[FrameOriginWarning]
    for origin, want in ((1, [0, 1, 2, 0, 0]), (0, [1, 2, 3, 0, 0])):  # given: the frameless rows stay in frame 0
        with pytest.warns(MissingFrameWarning, match="all 2 localizations"):
            assert read_locs(p, frame_origin=origin)["frame"].tolist() == want


@pytest.mark.parametrize("z_name", ["z", "Z [nm]", "z_um"])
def test_a_2d_csv_warning_names_a_z_column_it_does_not_read(tmp_path, z_name):
    """Was: 'no column z_nm ... add a z_nm column', silent on the file's own 'z' column, which was kept under its name
    while every z was taken as unknown (evaluate then scored in 2D)."""
    from plexloc.io.tables import TwoDTableWarning, read_csv

    p = tmp_path / "t.csv"
    p.write_text(f"frame,x_nm,y_nm,{z_name},photons\n0,100,200,-40,1000\n")
    with pytest.warns(TwoDTableWarning) as caught:
        t = read_csv(p)
    assert [str(w.message) for w in caught] == [
        f"{p}: no column 'z_nm', so the table is read as 2D (z_nm NaN: z unknown); its column '{z_name}' is not read "
        "as z: rename it z_nm (in nm) if it holds z"]
    assert np.isnan(t["z_nm"]).all() and t[z_name].tolist() == [-40.0]
    p.write_text("frame,x_nm,y_nm,photons,zeta,z2\n0,100,200,1000,3,4\n")  # no z-like column: the plain advice
    with pytest.warns(TwoDTableWarning, match="; add a z_nm column if the localizations have z$"):
        read_csv(p)


def test_csv_refusals_of_utf16_without_its_mark_and_of_a_damaged_utf8_file(tmp_path):
    """Was: UTF-16 without its byte-order mark (valid UTF-8: every other byte NUL) refused as "column 'f\\x00r\\x00a...':
    value '\\x000\\x00' is not a number"; a file with UTF-8's byte-order mark but a byte of another encoding read as
    Windows-1252, "missing required column(s) ['frame'] ... found ['ï»¿frame', ...]"."""
    from plexloc.errors import InputError
    from plexloc.io.tables import read_csv

    p = tmp_path / "u.csv"
    p.write_bytes("frame,x_nm,y_nm,z_nm,photons\n0,1,2,3,4\n".encode("utf-16-le"))
    with pytest.raises(InputError) as err:
        read_csv(p)
    assert str(err.value) == (f"{p}: line 1 holds NUL characters (byte 0x00): UTF-16 text without its byte-order mark, "
                              "or a binary file; save the table as UTF-8")
    p.write_bytes(b"\xef\xbb\xbfframe,x_nm,y_nm,z_nm,photons,size_\xb5m\n0,1,2,3,4,5\n")  # 0xb5 at byte 37
    with pytest.raises(InputError) as err:
        read_csv(p)
    assert str(err.value) == (f"{p}: not UTF-8 (invalid start byte at byte 37, line 1), though it starts "
                              "with UTF-8's byte-order mark: a damaged file, or text of another encoding added to it; "
                              "save it as UTF-8 again")
    p.write_bytes(b"\xef\xbb\xbfframe,x_nm,y_nm,z_nm,photons,size_\xc2\xb5m\n0,1,2,3,4,5\n")  # the same in UTF-8: read
    assert read_csv(p).columns[-1] == "size_µm"


def test_split_makes_each_channels_configuration_before_it_cuts_the_movie(tmp_path, capsys, monkeypatch):
    """Was: each channel's configuration made after the whole movie was cut and its files put in place, so an error
    there (a configuration that does not validate alone) left the channel movies without their configurations."""
    import yaml

    import plexloc.post.channels as channels
    from plexloc.config.examples import example_path
    from plexloc.errors import InputError

    cfg = tmp_path / "sv.yaml"
    cfg.write_text(example_path("dual_color_splitview.yaml").read_text())
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.full((4, 64, 128), 100, dtype=np.uint16), photometric="minisblack")
    real = channels.channel_config

    def refused(config, channel):
        if channel == 1:
            raise InputError("channel 1 does not validate alone")
        return real(config, channel)

    monkeypatch.setattr(channels, "channel_config", refused)
    out = tmp_path / "o"
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(out)]) == 2
    assert "channel 1 does not validate alone" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.setattr(channels, "channel_config", real)
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["m_ch0.tif", "m_ch0.yaml", "m_ch1.tif", "m_ch1.yaml"]
    assert yaml.safe_load((out / "m_ch1.yaml").read_text())["channels"][0]["psf"]["s0_nm"] == [125.0, 125.0]
