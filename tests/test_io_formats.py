"""Exports to other programs: ThunderSTORM CSV and Picasso HDF5 (+ YAML sidecar)."""

from __future__ import annotations

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
    picasso_sidecar_path,
    write_table,
)
from plexloc.table import LocTable

PX = 100.0


def _table(n: int = 40, seed: int = 0, *, z: bool = True, extra: bool = True) -> LocTable:
    rng = np.random.default_rng(seed)
    cols = {
        "frame": rng.integers(0, 30, n),
        "x_nm": rng.uniform(0, 3200, n),
        "y_nm": rng.uniform(0, 2400, n),
        "z_nm": rng.normal(0, 300, n) if z else np.zeros(n),
        "photons": rng.uniform(500, 5000, n),
        "bg": rng.uniform(5, 50, n),
        "sigma_x_nm": rng.uniform(3, 30, n),
        "sigma_y_nm": rng.uniform(3, 30, n),
    }
    if extra:
        cols.update(
            id=np.arange(n),
            sigma_z_nm=rng.uniform(10, 60, n),
            prob=rng.uniform(0, 1, n),
            color=rng.integers(-1, 2, n),
            photons_ch0=rng.uniform(100, 2000, n),
        )
    return LocTable(cols)


# --- ThunderSTORM --------------------------------------------------------------------------------


def test_thunderstorm_header_and_values(tmp_path):
    t = LocTable({"frame": [0, 4], "x_nm": [150.0, 20.5], "y_nm": [50.0, 70.0], "z_nm": [-10.0, 0.0],
                  "photons": [1000.0, 300.0], "bg": [7.0, 8.0], "sigma_x_nm": [10.0, 20.0],
                  "sigma_y_nm": [12.0, 30.0], "crlb_z_nm": [40.0, 50.0]})
    export_thunderstorm(t, tmp_path / "ts.csv", psf_sigma_nm=130.0)
    lines = (tmp_path / "ts.csv").read_text().splitlines()
    assert lines[0] == (
        '"frame","x [nm]","y [nm]","z [nm]","sigma [nm]","intensity [photon]","offset [photon]",'
        '"uncertainty [nm]","uncertainty_z [nm]","sigma_x_nm","sigma_y_nm","crlb_z_nm"'
    )
    # frame 1-based; no origin shift (pixel centres at (j + 0.5) px in both); uncertainty = mean(sx, sy)
    assert lines[1] == "1,150,50,-10,130,1000,7,11,40,10,12,40"
    assert lines[2] == "5,20.5,70,0,130,300,8,25,50,20,30,50"


def test_thunderstorm_round_trip(tmp_path):
    t = _table()
    export_thunderstorm(t, tmp_path / "ts.csv", float_format="%.17g")
    back = import_thunderstorm(tmp_path / "ts.csv")
    assert back == t
    export_thunderstorm(t, tmp_path / "ts10.csv")
    back10 = import_thunderstorm(tmp_path / "ts10.csv")
    assert back10.columns == t.columns
    for c in t.columns:
        np.testing.assert_allclose(back10[c], t[c], rtol=1e-9, atol=1e-6)


def test_thunderstorm_round_trip_with_crlb_only(tmp_path):
    rng = np.random.default_rng(1)
    t = _table(extra=False, seed=2).without_columns("sigma_x_nm", "sigma_y_nm").with_columns(
        crlb_x_nm=rng.uniform(5, 9, 40), crlb_y_nm=rng.uniform(5, 9, 40)
    )
    export_thunderstorm(t, tmp_path / "ts.csv", float_format="%.17g", uncertainty_label="uncertainty_xy [nm]")
    assert '"uncertainty_xy [nm]"' in (tmp_path / "ts.csv").read_text().splitlines()[0]
    assert import_thunderstorm(tmp_path / "ts.csv") == t  # the derived uncertainty adds no column


def test_thunderstorm_import_native_file(tmp_path):
    # as newer ThunderSTORM writes it: other order, its own extra columns, no z, 1-based frames
    (tmp_path / "native.csv").write_text(
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","offset [photon]",'
        '"bkgstd [photon]","chi2","uncertainty_xy [nm]"\n'
        "1,1,1234.5,2345.25,140.2,812.3,10.5,3.1,55.0,12.5\n"
        "2,3,50.0,60.0,130.0,1000.0,11.0,3.3,42.0,9.0\n"
    )
    t = import_thunderstorm(tmp_path / "native.csv")
    assert t["frame"].tolist() == [0, 2]
    assert t["x_nm"].tolist() == [1234.5, 50.0] and t["y_nm"].tolist() == [2345.25, 60.0]
    assert np.isnan(t["z_nm"]).all()  # 2D file: z unknown
    assert t["photons"].tolist() == [812.3, 1000.0] and t["bg"].tolist() == [10.5, 11.0]
    assert t["sigma_x_nm"].tolist() == [12.5, 9.0] and t["sigma_y_nm"].tolist() == [12.5, 9.0]
    assert t["id"].tolist() == [1, 2]
    assert t["sigma [nm]"].tolist() == [140.2, 130.0]  # unknown columns kept under their labels
    assert t["bkgstd [photon]"].tolist() == [3.1, 3.3] and t["chi2"].tolist() == [55.0, 42.0]
    assert "uncertainty_xy [nm]" not in t


def test_thunderstorm_import_units_and_unquoted(tmp_path):
    (tmp_path / "um.csv").write_text("x [um],frame,y [um],z [nm],intensity [photon]\n1.5,2,0.25,-40,100\n")
    t = import_thunderstorm(tmp_path / "um.csv")
    assert (t["frame"][0], t["x_nm"][0], t["y_nm"][0], t["z_nm"][0]) == (1, 1500.0, 250.0, -40.0)
    (tmp_path / "px.csv").write_text("frame,x [px],y [px],intensity [photon]\n1,1.5,0.5,100\n")
    with pytest.raises(InputError, match=r"px\.csv: column 'x \[px\]' is in pixels; pass px_size_nm"):
        import_thunderstorm(tmp_path / "px.csv")
    t = import_thunderstorm(tmp_path / "px.csv", px_size_nm=PX)
    assert (t["x_nm"][0], t["y_nm"][0]) == (150.0, 50.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"frame","x [nm]","y [nm]"\n1,2,3\n', r"no 'intensity \[photon\]' column"),
        ('"frame","x [nm]","intensity [photon]"\n1,2,3\n', r"no 'y \[nm\]' column"),
        ('"x [nm]","y [nm]","intensity [photon]"\n1,2,3\n', r"no 'frame' column"),
        ('"frame","x [nm]","y [nm]","intensity"\n1,2,3,4\n', r"column 'intensity' is not in photons"),
        ('"frame","x [nm]","y [nm]","intensity [photon]"\n1,2,3,4\n0,2,3,4\n', r"line 3: frame 0 < 1"),
        ('"frame","x [nm]","y [nm]","intensity [photon]"\n1.5,2,3,4\n', r"line 2: column 'frame' must hold integers"),
        ('"frame","x [nm]","y [nm]","intensity [photon]"\n1,2,x,4\n', r"line 2, column 'y \[nm\]': value 'x'"),
        ('"frame","x [nm]","y [nm]","intensity [photon]"\n1,2,3,4\n2,nan,3,4\n', r"line 3: x_nm is nan"),
        ('"frame","x [mm]","y [nm]","intensity [photon]"\n1,2,3,4\n',
         r"column 'x \[mm\]' has unit 'mm'; allowed are nm, um or px"),
    ],
)
def test_thunderstorm_import_errors(tmp_path, text, message):
    (tmp_path / "ts.csv").write_text(text)
    with pytest.raises(InputError, match=r"ts\.csv: " + message):
        import_thunderstorm(tmp_path / "ts.csv")


def test_thunderstorm_export_errors(tmp_path):
    t = _table(3)
    with pytest.raises(InputError, match="uncertainty_label"):
        export_thunderstorm(t, tmp_path / "a.csv", uncertainty_label="sigma")
    with pytest.raises(InputError, match="psf_sigma_nm"):
        export_thunderstorm(t, tmp_path / "a.csv", psf_sigma_nm=-1.0)
    assert not (tmp_path / "a.csv").exists()


# --- Picasso -------------------------------------------------------------------------------------


def test_picasso_pixel_convention_pinned(tmp_path):
    # emitters at the centres of pixels (0, 0), (row 2, col 5), and at the outer corner of pixel (0, 0)
    t = LocTable({"frame": [0, 0, 1], "x_nm": [PX / 2, 5.5 * PX, 0.0], "y_nm": [PX / 2, 2.5 * PX, 0.0],
                  "z_nm": [0.0, 0.0, 0.0], "photons": [1.0, 1.0, 1.0], "sigma_x_nm": [10.0] * 3,
                  "sigma_y_nm": [20.0] * 3})
    export_picasso(t, tmp_path / "p.hdf5", px_size_nm=PX, frame_shape=(8, 8))
    with h5py.File(tmp_path / "p.hdf5", "r") as f:
        locs = f["locs"][()]
    assert locs["x"].tolist() == [0.0, 5.0, -0.5] and locs["y"].tolist() == [0.0, 2.0, -0.5]
    assert locs["lpx"].tolist() == pytest.approx([0.1] * 3) and locs["lpy"].tolist() == pytest.approx([0.2] * 3)


def test_picasso_fields_dtypes_and_sidecar(tmp_path):
    t = _table(seed=3)
    export_picasso(t, tmp_path / "locs.hdf5", px_size_nm=PX, frame_shape=(24, 32), n_frames=100, psf_sigma_nm=130.0)
    with h5py.File(tmp_path / "locs.hdf5", "r") as f:
        locs = f["locs"][()]
    core = [("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("sx", "f4"), ("sy", "f4"),
            ("bg", "f4"), ("lpx", "f4"), ("lpy", "f4"), ("z", "f4")]
    assert [(n, locs.dtype[n].str[1:]) for n in locs.dtype.names[:10]] == core
    assert locs.dtype["frame"].str == "<u4"
    np.testing.assert_array_equal(locs["frame"], t["frame"])
    np.testing.assert_allclose(locs["x"], t["x_nm"] / PX - 0.5, rtol=1e-6)
    np.testing.assert_allclose(locs["z"], t["z_nm"], rtol=1e-6)  # nm, not pixels
    np.testing.assert_allclose(locs["sx"], 1.3)
    np.testing.assert_allclose(locs["sy"], 1.3)
    np.testing.assert_allclose(locs["lpy"], t["sigma_y_nm"] / PX, rtol=1e-6)
    assert {"id", "prob", "color", "photons_ch0", "sigma_x_nm"} <= set(locs.dtype.names)
    sidecar = picasso_sidecar_path(tmp_path / "locs.hdf5")
    assert sidecar.name == "locs.yaml"
    docs = list(yaml.safe_load_all(sidecar.read_text()))
    info = docs[0]
    assert info["Generated by"] == "plexloc"
    assert (info["Frames"], info["Height"], info["Width"], info["Pixelsize"]) == (100, 24, 32, PX)


def test_picasso_2d_has_no_z_and_unknowns_are_nan(tmp_path):
    t = _table(seed=4, z=False, extra=False).without_columns("bg")
    export_picasso(t, tmp_path / "p.hdf5", px_size_nm=PX, frame_shape=(24, 32))
    with h5py.File(tmp_path / "p.hdf5", "r") as f:
        locs = f["locs"][()]
    assert "z" not in locs.dtype.names
    assert np.isnan(locs["sx"]).all() and np.isnan(locs["bg"]).all()
    info = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert info["Frames"] == int(t["frame"].max()) + 1
    back = import_picasso(tmp_path / "p.hdf5")
    assert "bg" not in back and "psf_sigma_x_nm" not in back  # placeholders give no column
    # a pixel size that contradicts the sidecar is used, and said
    from plexloc.io.picasso import PixelSizeWarning

    with pytest.warns(PixelSizeWarning, match=f"replaces the {PX:g} nm of its sidecar"):
        other = import_picasso(tmp_path / "p.hdf5", px_size_nm=2 * PX)
    np.testing.assert_allclose(other["x_nm"], 2 * back["x_nm"], rtol=1e-6)


def test_picasso_round_trip(tmp_path):
    t = _table(seed=5)
    export_picasso(t, tmp_path / "p.hdf5", px_size_nm=PX, frame_shape=(24, 32))
    back = import_picasso(tmp_path / "p.hdf5", px_size_nm=PX)
    assert set(back.columns) == set(t.columns)
    for c in t.columns:
        if c in ("frame", "id", "color"):
            np.testing.assert_array_equal(back[c], t[c])
        else:  # float32 in the file
            np.testing.assert_allclose(back[c], t[c], rtol=1e-6, atol=1e-3)


def test_picasso_precision_fallback_and_requirement(tmp_path):
    t = _table(seed=6, extra=False).without_columns("sigma_x_nm", "sigma_y_nm")
    with pytest.raises(InputError, match=r"p\.hdf5: the table has neither sigma_x_nm nor crlb_x_nm; Picasso needs"):
        export_picasso(t, tmp_path / "p.hdf5", px_size_nm=PX, frame_shape=(8, 8))
    assert not (tmp_path / "p.hdf5").exists() and not (tmp_path / "p.yaml").exists()
    t = t.with_columns(crlb_x_nm=np.full(len(t), 8.0), crlb_y_nm=np.full(len(t), 9.0))
    export_picasso(t, tmp_path / "p.hdf5", px_size_nm=PX, frame_shape=(8, 8))
    with h5py.File(tmp_path / "p.hdf5", "r") as f:
        np.testing.assert_allclose(f["locs"]["lpx"], 0.08, rtol=1e-6)
    back = import_picasso(tmp_path / "p.hdf5")
    assert "sigma_x_nm" not in back and back["crlb_y_nm"].tolist() == pytest.approx([9.0] * len(t))
    bad = t.with_columns(crlb_x_nm=np.r_[0.0, np.full(len(t) - 1, 8.0)])
    with pytest.raises(InputError, match="crlb_x_nm' is 0.0 at row 0"):
        export_picasso(bad, tmp_path / "q.hdf5", px_size_nm=PX, frame_shape=(8, 8))


def test_picasso_export_argument_errors(tmp_path):
    t = _table(5, seed=7)
    out = tmp_path / "p.hdf5"
    with pytest.raises(InputError, match="px_size_nm must be a positive number"):
        export_picasso(t, out, px_size_nm=0, frame_shape=(8, 8))
    with pytest.raises(InputError, match="frame_shape"):
        export_picasso(t, out, px_size_nm=PX, frame_shape=8)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"n_frames=2 but the table has frame"):
        export_picasso(t, out, px_size_nm=PX, frame_shape=(8, 8), n_frames=2)
    with pytest.raises(InputError, match="clash"):
        export_picasso(t.with_columns(sx=np.ones(5)), out, px_size_nm=PX, frame_shape=(8, 8))
    assert list(tmp_path.iterdir()) == []


def test_picasso_import_native_file(tmp_path):
    dtype = [("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("sx", "f4"), ("sy", "f4"),
             ("bg", "f4"), ("lpx", "f4"), ("lpy", "f4"), ("net_gradient", "f4"), ("likelihood", "f4"),
             ("iterations", "i4")]
    locs = np.array([(3, 0.0, 9.0, 500.0, 1.2, 1.1, 20.0, 0.05, 0.06, 3000.0, -100.0, 7)], dtype=dtype)
    with h5py.File(tmp_path / "native.hdf5", "w") as f:
        f.create_dataset("locs", data=locs)
    with open(tmp_path / "native.yaml", "w") as f:  # Picasso appends one document per processing step
        yaml.safe_dump_all([{"Frames": 10, "Height": 32, "Width": 32}, {"Pixelsize": 130}], f)
    t = import_picasso(tmp_path / "native.hdf5")
    assert t["frame"].tolist() == [3]
    assert t["x_nm"].tolist() == [65.0] and t["y_nm"].tolist() == [1235.0]  # (x + 0.5) * 130
    assert np.isnan(t["z_nm"]).all()  # 2D file: z unknown
    assert t["sigma_x_nm"][0] == pytest.approx(6.5) and t["psf_sigma_y_nm"][0] == pytest.approx(143.0)
    assert t["bg"].tolist() == [20.0] and t["iterations"].tolist() == [7] and t["net_gradient"].tolist() == [3000.0]


def test_picasso_import_errors(tmp_path):
    write_table(_table(3), tmp_path / "ours.h5")
    with pytest.raises(InputError, match=r"ours\.h5: dataset 'locs' .* is a group \(a plexloc table"):
        import_picasso(tmp_path / "ours.h5", px_size_nm=PX)
    with h5py.File(tmp_path / "nopx.hdf5", "w") as f:
        f.create_dataset("locs", data=np.zeros(1, dtype=[("frame", "u4"), ("x", "f4"), ("y", "f4"),
                                                         ("photons", "f4")]))
    with pytest.raises(InputError, match=r"nopx\.hdf5: no pixel size: pass px_size_nm \(--camera-px-size NM\) or provide 'Pixelsize'"):
        import_picasso(tmp_path / "nopx.hdf5")
    with h5py.File(tmp_path / "nox.hdf5", "w") as f:
        f.create_dataset("locs", data=np.zeros(1, dtype=[("frame", "u4"), ("y", "f4"), ("photons", "f4")]))
    with pytest.raises(InputError, match=r"lacks field\(s\) \['x'\]"):
        import_picasso(tmp_path / "nox.hdf5", px_size_nm=PX)
    with pytest.raises(InputError, match=r"missing\.hdf5: file not found"):
        import_picasso(tmp_path / "missing.hdf5", px_size_nm=PX)


def test_picasso_frame_shape_guessed_from_the_pixels_the_localizations_fall_in(tmp_path):
    """Without frame_shape, a 64-px movie's localizations (up to x, y = 6399 nm at 100 nm pixels) were written as a
    65 x 65 px movie (Height / Width one pixel too many): the ceiling of the extent, plus one."""
    from plexloc.io import write_locs

    t = LocTable({"frame": [0, 1], "x_nm": [10.0, 6399.0], "y_nm": [5.0, 6350.0], "z_nm": [0.0, 0.0],
                  "photons": [1000.0, 1000.0], "sigma_x_nm": [10.0, 10.0], "sigma_y_nm": [10.0, 10.0]})
    write_locs(t, tmp_path / "p.hdf5", px_size_nm=PX)
    info = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    assert (info["Height"], info["Width"]) == (64, 64)
