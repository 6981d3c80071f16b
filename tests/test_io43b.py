"""Review 43, part 2, of reading movies and foreign tables: what users' real files did to the readers.

Each test pins a case that was read wrong, lost or crashed without a word before: two image series of a TIFF read
as one movie, a memory-mapped movie truncated while read (a 'Bus error' that killed the process), a ``.smlm``
manifest whose units list was one short (x in um read as nm), a second table of type 'Table' skipped, a SMAP v7.3
text field read as character codes, an OME pixel size in ``&#181;m`` not found, overlapping split-view boxes.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
import tifffile

from plexloc.config.models import SplitViewConfig
from plexloc.errors import InputError
from plexloc.io._readers import IgnoredFieldWarning
from plexloc.io.foreign import read_smap_sml
from plexloc.io.smlm import read_smlm, write_smlm
from plexloc.io.splitview import check_boxes
from plexloc.io.tiff import open_movie
from plexloc.table import LocTable

# --- TIFF: several image series ----------------------------------------------------------------------------------


def test_a_tiff_of_several_stacks_is_one_movie_with_a_warning(tmp_path):
    """Two (T, H, W) series in one file, the way tifffile.imwrite(..., append=True) writes a movie in chunks, were
    read one after the other as one movie of 5 frames without a word: still one movie, with a warning."""
    p = tmp_path / "two.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(np.full((3, 6, 7), 1, np.uint16), photometric="minisblack", metadata={"axes": "TYX"})
        tw.write(np.full((2, 6, 7), 2, np.uint16), photometric="minisblack", metadata={"axes": "TYX"})
    with pytest.warns(UserWarning, match=r"two\.tif: the TIFF file holds 2 image series of 3, 2 page\(s\), read one "
                                         r"after another as one movie of 5 frames"):
        movie = open_movie(p)
    with movie:
        assert len(movie) == 5 and [int(movie[i][0, 0]) for i in range(5)] == [1, 1, 1, 2, 2]


def test_single_pages_written_one_by_one_stay_one_movie(tmp_path, recwarn):
    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as tw:
        for k in range(4):  # tifffile's default metadata: one series per page
            tw.write(np.full((6, 7), k, np.uint16), photometric="minisblack")
    with open_movie(p) as movie:
        assert [int(movie[i][0, 0]) for i in range(len(movie))] == [0, 1, 2, 3]
    assert not [w for w in recwarn if "series" in str(w.message)]


def test_memory_mapped_movie_truncated_while_read_is_an_input_error(tmp_path):
    """os.truncate of a memory-mapped movie, then a read beyond the new end: SIGBUS killed the process ('Bus error',
    exit 135, nothing said or saved). Run in a child process so that the old code's crash cannot take pytest down."""
    p = tmp_path / "raw.tif"
    tifffile.imwrite(p, np.arange(50 * 32 * 32, dtype=np.uint16).reshape(50, 32, 32), photometric="minisblack")
    script = f"""
import os
from plexloc.errors import InputError
from plexloc.io.prefetch import prefetch
from plexloc.io.tiff import open_movie
m = open_movie({str(p)!r})
assert m._sources[0]._mm is not None, "not memory-mapped"
os.truncate({str(p)!r}, os.path.getsize({str(p)!r}) // 2)
try:
    for _ in prefetch(m.iter_chunks(8)):
        pass
except InputError as err:
    print("INPUTERROR", err)
m.close()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "INPUTERROR" in out.stdout and "raw.tif: cannot read frames 24..31: the file was truncated while it was " \
        "read" in out.stdout and "enough for frames 0..25 of its 50" in out.stdout, out.stdout


# --- .smlm manifests as other programs and hands write them ------------------------------------------------------


def _smlm_parts(tmp_path):
    t = LocTable({"frame": [0, 1, 2], "x_nm": [10.0, 20, 30], "y_nm": [1.0, 2, 3], "z_nm": [0.0, 0, 0],
                  "photons": [100.0, 200, 300]})
    write_smlm(t, tmp_path / "base.smlm")
    with zipfile.ZipFile(tmp_path / "base.smlm") as z:
        man = json.loads(z.read("manifest.json"))
        raw = z.read(man["files"][0]["name"])
    return man, raw, list(man["formats"])[0]


def _smlm(path, manifest, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_smlm_units_list_of_another_length_is_refused_not_read_as_nm(tmp_path):
    man, raw, fmt = _smlm_parts(tmp_path)
    units = man["formats"][fmt]["units"]  # ['frame', 'nm', 'nm', 'nm', '1']
    units[1] = units[2] = "um"
    units.pop()  # one short: no header matched, and x and y in um were read as nm
    p = _smlm(tmp_path / "a.smlm", man, {man["files"][0]["name"]: raw})
    with pytest.raises(InputError, match=r"a\.smlm: format of 'base\.bin': 'units' is 4 entries for 5 headers "
                                         r"\['frame', 'x', 'y', 'z', 'intensity'\]"):
        read_smlm(p)
    man["formats"][fmt]["units"] = "um"  # a string: ignored before, every column nm
    with pytest.raises(InputError, match=r"'units' is 'um', not a list"):
        read_smlm(_smlm(tmp_path / "b.smlm", man, {man["files"][0]["name"]: raw}))
    del man["formats"][fmt]["units"]  # no units at all: nm, as before
    assert read_smlm(_smlm(tmp_path / "c.smlm", man, {man["files"][0]["name"]: raw}))["x_nm"].tolist() == [10, 20, 30]


def test_smlm_second_table_of_type_Table_is_read_not_dropped(tmp_path):
    man, raw, fmt = _smlm_parts(tmp_path)
    second = copy.deepcopy(man["files"][0]) | {"name": "t2.bin", "type": "Table"}
    man["files"].append(second)
    man["files"].append({"name": "widefield.png", "type": "image"})
    with pytest.warns(IgnoredFieldWarning, match=r"lists file\(s\) 'widefield\.png' \(type 'image'\) that are not "
                                                 r"tables; not read"):
        t = read_smlm(_smlm(tmp_path / "two.smlm", man, {"base.bin": raw, "t2.bin": raw, "widefield.png": b"x"}))
    assert t["x_nm"].tolist() == [10, 20, 30, 10, 20, 30] and t["color"].tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("change, match", [
    (lambda m, f: m["formats"].__setitem__(f, "x"), r"the format 'smlm-table\(binary\)' of 'base\.bin' in "
                                                     r"manifest\.json is a str, not an object"),
    (lambda m, f: m["files"][0].__setitem__("format", [f]), r"file 'base\.bin' uses format .* which manifest\.json "
                                                            r"does not define"),
    (lambda m, f: m["files"][0].__setitem__("offset", [1, 2]), r"'offset' of table 'base\.bin' .* is \[1, 2\], not "
                                                               r"an object"),
    (lambda m, f: m["files"][0].__setitem__("offset", {"x": "abc"}), r"'offset' of column 'x' .* is 'abc', not a "
                                                                     r"number"),
    (lambda m, f: m["files"][0].__setitem__("rows", None), r"'rows' of table 'base\.bin' .* is None, not a whole "
                                                           r"number"),
    (lambda m, f: m["formats"][f].__setitem__("shape", ["1"] * 5), r"format of 'base\.bin': shape '1' of column 'frame' "
                                                                   r"is not a positive "
                                                                   r"whole number"),
    (lambda m, f: m["formats"][f].__setitem__("dtype", 5), r"format of 'base\.bin': 'dtype' is 5, not a list"),
    (lambda m, f: m["files"].append("x"), r"manifest\.json 'files' holds 'x', not an object"),
])
def test_smlm_manifest_field_of_an_unexpected_type_is_named(tmp_path, change, match):
    """Each was an AttributeError, TypeError or ValueError naming neither the file nor the field."""
    man, raw, fmt = _smlm_parts(tmp_path)
    change(man, fmt)
    with pytest.raises(InputError, match=r"m\.smlm: " + match):
        read_smlm(_smlm(tmp_path / "m.smlm", man, {"base.bin": raw}))


def test_smlm_damaged_member_and_greek_mu(tmp_path):
    man, raw, fmt = _smlm_parts(tmp_path)
    data = bytearray(_smlm(tmp_path / "ok.smlm", man, {"base.bin": raw}).read_bytes())
    at = data.find(b"PK\x03\x04", 10)  # the table's local header; its DEFLATE stream follows
    data[at + 40 : at + 50] = b"\xff" * 10
    (tmp_path / "bad.smlm").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.smlm: archive member 'base\.bin' cannot be read, a damaged file"):
        read_smlm(tmp_path / "bad.smlm")  # was zlib's bare 'Error -3 while decompressing data'
    man["formats"][fmt]["units"][1] = "\u03bcm"  # Greek mu, not the micro sign
    assert read_smlm(_smlm(tmp_path / "mu.smlm", man, {"base.bin": raw}))["x_nm"].tolist() == [1e4, 2e4, 3e4]


# --- SMAP _sml.mat saved as MATLAB v7.3 (HDF5) -------------------------------------------------------------------


def _sml73(path, extra, n=4):
    with h5py.File(path, "w", userblock_size=512) as f:
        loc = f.create_group("saveloc").create_group("loc")
        base = {"frame": np.arange(1, n + 1, dtype=float), "xnm": np.linspace(10, 40, n), "ynm": np.full(n, 5.0),
                "phot": np.full(n, 500.0), "bg": np.full(n, 3.0)}
        for k, v in base.items():
            loc.create_dataset(k, data=v[None, :]).attrs["MATLAB_class"] = np.bytes_("double")
        for k, (v, cls, attrs) in extra.items():
            d = loc.create_dataset(k, data=v)
            d.attrs["MATLAB_class"] = np.bytes_(cls)
            for a, av in attrs.items():
                d.attrs[a] = av
    return path


def test_smap_v73_text_field_is_not_read_as_character_codes(tmp_path):
    """A char field of 4 characters beside 4 localizations became a column 97, 98, 99, 100; of another length it
    sank the file ('has 2 values, expected 4')."""
    p = _sml73(tmp_path / "a_sml.mat", {"name": (np.array([[97], [98], [99], [100]], np.uint16), "char", {})})
    with pytest.warns(IgnoredFieldWarning, match=r"a_sml\.mat: saveloc\.loc field\(s\) name \(MATLAB char\) are not "
                                                 r"numeric and were not imported"):
        t = read_smap_sml(p)
    assert "name" not in t.columns and t["x_nm"].tolist() == [10, 20, 30, 40] and t["frame"].tolist() == [0, 1, 2, 3]


def test_smap_v73_empty_field_is_not_read_as_its_dimensions(tmp_path):
    """MATLAB stores an empty array as its dimensions (two uint64 zeros) with MATLAB_empty: with 2 localizations
    an empty bg became bg = 0, 0; with 4 the file was refused for bg's length."""
    empty = (np.array([0, 0], np.uint64), "double", {"MATLAB_empty": np.uint8(1)})
    for n in (2, 4):
        p = _sml73(tmp_path / f"e{n}_sml.mat", {"locprecznm": empty}, n=n)
        with pytest.warns(IgnoredFieldWarning, match=r"locprecznm \(empty\)"):
            t = read_smap_sml(p)
        assert "sigma_z_nm" not in t.columns and len(t) == n
    p = _sml73(tmp_path / "p_sml.mat", {})  # a required field stored empty
    with h5py.File(p, "a") as f:  # the base's phot is replaced by the empty one
        del f["saveloc/loc/phot"]
        f["saveloc/loc"].create_dataset("phot", data=empty[0]).attrs.update({"MATLAB_class": np.bytes_("double"),
                                                                            "MATLAB_empty": np.uint8(1)})
    with pytest.raises(InputError, match=r"saveloc\.loc has no field 'phot' that holds numbers; phot \(empty\)"):
        read_smap_sml(p)


# --- pixel size from OME-XML -------------------------------------------------------------------------------------


def _ome(path, attrs):
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="9" SizeY="8" '
           f'SizeZ="1" SizeC="1" SizeT="2" {attrs}><TiffData/></Pixels></Image></OME>')
    tifffile.imwrite(path, np.zeros((2, 8, 9), np.uint16), description=xml, photometric="minisblack", metadata=None)
    return path


@pytest.mark.parametrize("attrs, nm", [
    ('PhysicalSizeX="0.1" PhysicalSizeXUnit="&#181;m" PhysicalSizeY="0.1" PhysicalSizeYUnit="&#181;m"', 100.0),
    ('PhysicalSizeX="0.1" PhysicalSizeXUnit="&#956;m" PhysicalSizeY="0.1" PhysicalSizeYUnit="&#956;m"', 100.0),
    ("PhysicalSizeX='0.16' PhysicalSizeY='0.16'", 160.0),
    ('PhysicalSizeX="0.0000108" PhysicalSizeXUnit="cm" PhysicalSizeY="0.0000108" PhysicalSizeYUnit="cm"', 108.0),
    ('PhysicalSizeX="0.1" PhysicalSizeY="100" PhysicalSizeYUnit="nm"', 100.0),
])
def test_ome_pixel_size_in_any_written_form_is_found(tmp_path, attrs, nm):
    """An entity (&#181;m, as Java and C writers escape the micro sign), single quotes or a unit other than nm/µm
    hid the pixel size: no check against the model's, without a word."""
    with open_movie(_ome(tmp_path / "m.ome.tif", attrs)) as movie:
        found = movie.pixel_size
    assert found is not None and found.x_nm == pytest.approx(nm, rel=1e-12) and found.y_nm == pytest.approx(nm)


def test_ome_pixel_unit_is_no_pixel_size(tmp_path):
    with open_movie(_ome(tmp_path / "m.ome.tif", 'PhysicalSizeX="1" PhysicalSizeXUnit="pixel"')) as movie:
        assert movie.pixel_size is None


# --- split view --------------------------------------------------------------------------------------------------


def test_overlapping_split_view_boxes_are_refused(tmp_path):
    split = SplitViewConfig(boxes=[(0, 0, 256, 512), (200, 0, 256, 512)])  # 200 typed for 256
    with pytest.raises(InputError, match=r"m\.tif: split_view boxes 0 \[0, 0, 256, 512\] and 1 \[200, 0, 256, 512\] "
                                         r"\(\[x, y, width, height\]\) overlap by 56 \(width\) x 512 \(height\) "
                                         r"pixels at x 200, y 0"):
        check_boxes(split, (512, 512), source=tmp_path / "m.tif")
    check_boxes(SplitViewConfig(boxes=[(0, 0, 256, 512), (256, 0, 256, 512)]), (512, 512))  # side by side: fine
