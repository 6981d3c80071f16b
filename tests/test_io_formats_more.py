"""Round trips through every writable format, and hand-written files of other tools (.smlm, SMAP, DECODE)."""

from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

from plexloc.errors import InputError
from plexloc.io.formats import format_of, read_locs, write_locs
from plexloc.table import LocTable


def _table(n=50, seed=0) -> LocTable:
    rng = np.random.default_rng(seed)
    return LocTable({
        "frame": rng.integers(0, 100, n), "x_nm": rng.uniform(0, 5000, n), "y_nm": rng.uniform(0, 4000, n),
        "z_nm": rng.normal(0, 200, n), "photons": rng.uniform(100, 5000, n), "bg": rng.uniform(1, 50, n),
        "sigma_x_nm": rng.uniform(3, 30, n), "sigma_y_nm": rng.uniform(3, 30, n), "prob": rng.uniform(0, 1, n),
        "color": rng.integers(-1, 2, n), "id": np.arange(n),
    })


@pytest.mark.parametrize(("name", "rtol"), [("t.csv", 1e-9), ("t.h5", 0.0), ("t.thunderstorm.csv", 1e-9),
                                             ("t.smlm", 0.0), ("t.hdf5", 1e-6)])
def test_round_trip_every_writable_format(tmp_path, name, rtol):
    t = _table()
    write_locs(t, tmp_path / name, px_size_nm=100.0)
    back = read_locs(tmp_path / name)
    assert len(back) == len(t)
    for c in t.columns:
        assert c in back.columns, f"{name}: lost column {c}"
        np.testing.assert_allclose(back[c], t[c], rtol=rtol, atol=1e-3 if rtol else 0, err_msg=f"{name}: {c}")


def test_format_by_name_and_errors(tmp_path):
    assert format_of("x.h5") == "h5" and format_of("x.hdf5") == "picasso" and format_of("X.CSV") == "csv"
    with pytest.raises(InputError, match="must end with"):
        format_of("x.txt")
    with pytest.raises(InputError, match="does not write"):
        write_locs(_table(), tmp_path / "x_sml.mat")
    with pytest.raises(InputError, match="pixel size"):
        write_locs(_table(), tmp_path / "p.hdf5")
    with pytest.raises(InputError, match="not found"):
        read_locs(tmp_path / "missing.smlm")


def _smlm_by_hand(path, headers, dtypes, rows, units=None, offset=None, fmt_extra=None, name="table.bin"):
    """A .smlm written the way the specification describes it (row-major binary, manifest.json)."""
    dt = np.dtype([(h, {"float32": "<f4", "uint32": "<u4", "float64": "<f8"}[d]) for h, d in zip(headers, dtypes)])
    rec = np.array([tuple(r) for r in rows], dtype=dt)
    fmt = {"name": "smlm-table(binary)", "type": "table", "mode": "binary", "extension": ".bin",
           "columns": len(headers), "headers": headers, "dtype": dtypes, "shape": [1] * len(headers),
           "units": units or [], **(fmt_extra or {})}
    manifest = {"format_version": "0.2", "formats": {"smlm-table(binary)": fmt},
                "files": [{"name": name, "format": "smlm-table(binary)", "channel": "default", "rows": len(rows),
                           "offset": offset or {}, "type": "table"}]}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr(name, rec.tobytes())


def test_smlm_from_thunderstorm_plugin_convention(tmp_path):
    # the ThunderSTORM plug-in: float32 columns, ThunderSTORM's labels without units, frames from 1
    headers = ["id", "frame", "x", "y", "sigma", "intensity", "offset", "bkgstd", "uncertainty_xy"]
    rows = [[1, 1, 150.5, 250.25, 120, 1000, 10, 3, 12.5], [2, 7, 3000.0, 20.0, 130, 2500, 12, 3, 8.0]]
    _smlm_by_hand(tmp_path / "ts.smlm", headers, ["float32"] * 9, rows,
                  units=["", "", "nm", "nm", "nm", "photon", "photon", "photon", "nm"])
    from plexloc.io.smlm import FrameOriginWarning

    with pytest.warns(FrameOriginWarning, match="1-based .* smallest is 1"):
        t = read_locs(tmp_path / "ts.smlm")
    assert t["frame"].tolist() == [0, 6]
    assert t["x_nm"].tolist() == [150.5, 3000.0] and t["y_nm"].tolist() == [250.25, 20.0]
    assert t["z_nm"].tolist() == [0.0, 0.0] and t["photons"].tolist() == [1000.0, 2500.0]
    assert t["bg"].tolist() == [10.0, 12.0] and t["sigma_x_nm"].tolist() == [12.5, 8.0] == t["sigma_y_nm"].tolist()
    assert t["sigma"].tolist() == [120.0, 130.0]  # unknown headers are kept
    # µm positions are converted, per-column offsets added, an explicit origin obeyed
    _smlm_by_hand(tmp_path / "um.smlm", ["frame", "x", "y", "intensity"], ["uint32", "float64", "float64", "float32"],
                  [[0, 1.5, 2.0, 100], [3, 0.25, 0.5, 200]], units=["", "um", "um", "photon"], offset={"x": 1.0})
    u = read_locs(tmp_path / "um.smlm")
    assert u["frame"].tolist() == [0, 3]  # a frame 0 present: 0-based
    assert u["x_nm"].tolist() == [2500.0, 1250.0] and u["y_nm"].tolist() == [2000.0, 500.0]
    assert read_locs(tmp_path / "ts.smlm", frame_origin=0)["frame"].tolist() == [1, 7]
    assert read_locs(tmp_path / "ts.smlm", frame_origin=1)["frame"].tolist() == [0, 6]  # said: no warning


def test_smlm_units_duplicates_and_malformed_manifests(tmp_path):
    """Intensity in ADU is refused (not read as photons); a second header for bg keeps its own name; a user column
    named like a format header survives a round trip; malformed manifests are InputErrors."""
    import json
    import zipfile

    from plexloc.io.smlm import read_smlm, write_smlm

    _smlm_by_hand(tmp_path / "adu.smlm", ["frame", "x", "y", "intensity", "offset"], ["float32"] * 5,
                  [[0, 100, 200, 5000, 300]], units=["", "nm", "nm", "ADU", "ADU"])
    with pytest.raises(InputError, match=r"adu\.smlm: column 'intensity' has unit 'ADU'; .* photons only"):
        read_locs(tmp_path / "adu.smlm")
    _smlm_by_hand(tmp_path / "two.smlm", ["frame", "x", "y", "intensity", "offset", "bg"], ["float32"] * 6,
                  [[0, 1, 1, 100, 7, 9]])
    t = read_locs(tmp_path / "two.smlm")
    assert t["bg"].tolist() == [9.0] and t["offset"].tolist() == [7.0]  # neither value lost
    user = LocTable({"frame": [0], "x_nm": [1.0], "y_nm": [2.0], "z_nm": [0.0], "photons": [10.0], "x": [42.0]})
    write_smlm(user, tmp_path / "user.smlm")
    assert read_smlm(tmp_path / "user.smlm")["user_x"].tolist() == [42.0]
    big = LocTable({"frame": [2**32 + 5], "x_nm": [1.0], "y_nm": [2.0], "z_nm": [0.0], "photons": [10.0]})
    with pytest.raises(InputError, match="2\\*\\*32"):
        write_smlm(big, tmp_path / "big.smlm")
    assert not (tmp_path / "big.smlm").exists()
    for manifest, message in (([1, 2], "must be an object"),
                              ({"formats": {"f": {"dtype": "float32"}}, "files": [{"name": "t.bin", "format": "f"}]},
                               "needs a list 'headers'")):
        with zipfile.ZipFile(tmp_path / "m.smlm", "w") as z:
            z.writestr("manifest.json", json.dumps(manifest))
            z.writestr("t.bin", b"")
        with pytest.raises(InputError, match=message):
            read_locs(tmp_path / "m.smlm")


def test_smlm_bad_files(tmp_path):
    (tmp_path / "x.smlm").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="ZIP"):
        read_locs(tmp_path / "x.smlm")
    _smlm_by_hand(tmp_path / "nophot.smlm", ["frame", "x", "y"], ["float32"] * 3, [[1, 2, 3]])
    with pytest.raises(InputError, match="intensity"):
        read_locs(tmp_path / "nophot.smlm")
    _smlm_by_hand(tmp_path / "px.smlm", ["frame", "x", "y", "intensity"], ["float32"] * 4, [[1, 2, 3, 4]],
                  units=["", "px", "px", "photon"])
    with pytest.raises(InputError, match="unit 'px'"):
        read_locs(tmp_path / "px.smlm")


def test_smap_sml_mat_v5_and_v73(tmp_path):
    loc = {"frame": np.array([[1.0], [1.0], [5.0]]), "xnm": np.array([[100.0], [200.5], [300.0]]),
           "ynm": np.array([[50.0], [60.0], [70.0]]), "znm": np.array([[-20.0], [0.0], [40.0]]),
           "phot": np.array([[1000.0], [2000.0], [1500.0]]), "bg": np.array([[10.0], [11.0], [12.0]]),
           "locprecnm": np.array([[8.0], [6.0], [7.0]]), "LLrel": np.array([[-1.0], [-2.0], [-3.0]])}
    scipy.io.savemat(tmp_path / "cell_sml.mat", {"saveloc": {"loc": loc, "file": {"name": "cell.tif"}}})
    with h5py.File(tmp_path / "cell73_sml.mat", "w") as f:  # v7.3: MATLAB writes column vectors as (1, N)
        g = f.create_group("saveloc").create_group("loc")
        for k, v in loc.items():
            g.create_dataset(k, data=v.T)
    for name in ("cell_sml.mat", "cell73_sml.mat"):
        t = read_locs(tmp_path / name)
        assert t["frame"].tolist() == [0, 0, 4], name
        assert t["x_nm"].tolist() == [100.0, 200.5, 300.0] and t["z_nm"].tolist() == [-20.0, 0.0, 40.0]
        assert t["photons"].tolist() == [1000.0, 2000.0, 1500.0] and t["sigma_y_nm"].tolist() == [8.0, 6.0, 7.0]
        assert t["LLrel"].tolist() == [-1.0, -2.0, -3.0]
    scipy.io.savemat(tmp_path / "other_sml.mat", {"something": np.ones(3)})
    with pytest.raises(InputError, match="saveloc"):
        read_locs(tmp_path / "other_sml.mat")


def _decode_by_hand(path, unit="px", px_size=(100.0, 120.0), sig=True):
    with h5py.File(path, "w") as f:
        m = f.create_group("meta")
        m.attrs["xy_unit"] = unit
        if px_size is not None:
            m.attrs["px_size"] = np.array(px_size)
        f.create_group("decode").attrs["version"] = "0.10.0"
        g = f.create_group("data")
        g.create_dataset("xyz", data=np.array([[0.0, 0.0, -50.0], [10.25, 3.5, 100.0]], dtype=np.float32))
        g.create_dataset("xyz_sig", data=np.array([[0.1, 0.2, 30.0], [0.05, 0.1, 20.0]], dtype=np.float32)) if sig \
            else g.create_dataset("xyz_sig", data=h5py.Empty("f"))
        g.create_dataset("xyz_cr", data=h5py.Empty("f"))
        g.create_dataset("phot", data=np.array([1000.0, 3000.0], dtype=np.float32))
        g.create_dataset("phot_cr", data=h5py.Empty("f"))
        g.create_dataset("phot_sig", data=np.array([50.0, 80.0], dtype=np.float32))
        g.create_dataset("frame_ix", data=np.array([0, 9]))
        g.create_dataset("id", data=np.array([-1, -1]))
        g.create_dataset("prob", data=np.array([0.9, 0.99], dtype=np.float32))
        g.create_dataset("bg", data=np.array([20.0, 25.0], dtype=np.float32))
        g.create_dataset("bg_cr", data=h5py.Empty("f"))
        g.create_dataset("bg_sig", data=h5py.Empty("f"))


def test_decode_h5_pixel_convention(tmp_path):
    """DECODE's xyz[:, 0] runs along the image rows (it loads TIFFs as (frames, rows, columns) and calls the row
    axis x), so it is our y; its px_size follows its axes; the centre of pixel 0 is at 0 px (ours: px / 2)."""
    _decode_by_hand(tmp_path / "emitters.h5")  # px_size (100 along DECODE x = rows, 120 along columns)
    t = read_locs(tmp_path / "emitters.h5")
    np.testing.assert_allclose(t["y_nm"], [50.0, 10.25 * 100 + 50])
    np.testing.assert_allclose(t["x_nm"], [60.0, 3.5 * 120 + 60])
    np.testing.assert_allclose(t["z_nm"], [-50.0, 100.0])
    np.testing.assert_allclose(t["sigma_y_nm"], [10.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(t["sigma_x_nm"], [24.0, 12.0], rtol=1e-6)
    assert t["frame"].tolist() == [0, 9] and "crlb_x_nm" not in t and "sigma_bg" not in t
    np.testing.assert_allclose(t["prob"], [0.9, 0.99], rtol=1e-6)
    _decode_by_hand(tmp_path / "nm.h5", unit="nm", sig=False)
    np.testing.assert_allclose(read_locs(tmp_path / "nm.h5")["x_nm"], [60.0, 63.5])
    _decode_by_hand(tmp_path / "nopx.h5", px_size=None)
    with pytest.raises(InputError, match="px_size"):
        read_locs(tmp_path / "nopx.h5")
    np.testing.assert_allclose(read_locs(tmp_path / "nopx.h5", px_size_nm=100.0)["x_nm"], [50.0, 400.0])
    _decode_by_hand(tmp_path / "scalar.h5", px_size=100.0)  # one pixel size for both axes
    np.testing.assert_allclose(read_locs(tmp_path / "scalar.h5")["y_nm"], [50.0, 1075.0])


def test_decode_h5_bad_fields_are_named(tmp_path):
    _decode_by_hand(tmp_path / "e.h5")
    with h5py.File(tmp_path / "e.h5", "a") as f:
        del f["data/bg"]
        f["data"].create_dataset("bg", data=np.array([20.0, 25.0, 30.0]))
    with pytest.raises(InputError, match=r"e\.h5: data/bg has shape \(3,\); expected \(2,\)"):
        read_locs(tmp_path / "e.h5")
    _decode_by_hand(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "a") as f:
        del f["data/xyz_sig"]
        f["data"].create_dataset("xyz_sig", data=np.ones(2))
    with pytest.raises(InputError, match=r"data/xyz_sig must be \(2, 3\)"):
        read_locs(tmp_path / "s.h5")
    _decode_by_hand(tmp_path / "z.h5", px_size=(0.0, 100.0))
    with pytest.raises(InputError, match="px_size must be one or two positive"):
        read_locs(tmp_path / "z.h5")


def test_doctests():
    import doctest

    from plexloc.io import formats, smlm

    assert doctest.testmod(smlm).failed == 0 and doctest.testmod(formats).failed == 0


def test_foreign_edge_cases_are_input_errors(tmp_path):
    """A SMAP v7.3 file whose loc is not a struct, a ThunderSTORM frame beyond exact integers, a Picasso export
    with a zero pixel size: one clear error each, nothing written."""
    with h5py.File(tmp_path / "bad_sml.mat", "w") as f:
        f.create_group("saveloc").create_dataset("loc", data=np.ones(3))
    with pytest.raises(InputError, match="saveloc.loc' is a Dataset"):
        read_locs(tmp_path / "bad_sml.mat")
    (tmp_path / "big.thunderstorm.csv").write_text("id,frame,x [nm],y [nm],intensity [photon]\n1,1e20,10,20,100\n")
    with pytest.raises(InputError, match=r"line 2: column 'frame' holds 1e\+20"):
        read_locs(tmp_path / "big.thunderstorm.csv")
    t = LocTable({"frame": [0], "x_nm": [10.0], "y_nm": [20.0], "z_nm": [0.0], "photons": [100.0],
                  "sigma_x_nm": [5.0], "sigma_y_nm": [5.0]})
    for px in (0.0, float("nan"), -1.0):
        with pytest.raises(InputError, match="px_size_nm must be a positive"):
            write_locs(t, tmp_path / "o.hdf5", px_size_nm=px)
    assert not (tmp_path / "o.hdf5").exists()


def test_thunderstorm_pixel_uncertainty_is_converted_with_the_positions(tmp_path):
    (tmp_path / "px.thunderstorm.csv").write_text(
        "id,frame,x [px],y [px],intensity [photon],uncertainty_xy [px]\n1,1,10.5,20,100,0.25\n")
    t = read_locs(tmp_path / "px.thunderstorm.csv", px_size_nm=100.0)
    assert t["x_nm"].tolist() == [1050.0] and t["sigma_x_nm"].tolist() == [25.0] == t["sigma_y_nm"].tolist()
    assert "uncertainty_xy [px]" not in t


def test_split_view_box_messages_label_width_and_height():
    """A box past the frame's right edge: the message labels the box [x, y, width, height] and the frame 'W (width) x
    H (height)', and names the edge. It read '... leaves the 48x96 frame' (height x width, unlabelled) where the
    calibration said '(w x h)'."""
    from plexloc.config.models import SplitViewConfig
    from plexloc.errors import InputError
    from plexloc.io.splitview import check_boxes

    split = SplitViewConfig(boxes=[(0, 0, 48, 48), (50, 0, 48, 48)])
    with pytest.raises(InputError) as err:
        check_boxes(split, (48, 96), source="movie.tif")
    assert str(err.value) == ("movie.tif: split_view box 1 [x, y, width, height] = [50, 0, 48, 48] leaves the 96 "
                              "(width) x 48 (height) frame (x + width = 98 > 96)")
    check_boxes(SplitViewConfig(boxes=[(0, 0, 48, 48), (48, 0, 48, 48)]), (48, 96))  # fits exactly


def test_simulate_split_view_size_message_labels_width_and_height(tmp_path, capsys):
    """simulate's 'boxes are 32x40 (w x h) but frame_size is 64x64' labelled only the boxes: both are labelled now."""
    from pathlib import Path

    import yaml

    from plexloc.cli.main import main

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "dual_color.yaml").read_text())
    data["split_view"] = {"boxes": [[0, 0, 32, 40], [40, 0, 32, 40]]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert main(["simulate", str(tmp_path / "c.yaml"), "--frames", "2", "--out", str(tmp_path / "s"), "--device",
                 "cpu"]) == 2
    assert ("split_view boxes are 32 (width) x 40 (height) but frame_size is 64 (width) x 64 (height)"
            in capsys.readouterr().err)
