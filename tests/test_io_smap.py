"""SMAP cubic-spline calibrations (``_3dcal.mat``): layouts, conventions, errors."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
import scipy.io

from plexloc.errors import InputError
from plexloc.io import SplineCalibration, list_smap_channels, load_smap_3dcal, save_smap_3dcal

N_ROWS, N_COLS, N_Z = 5, 6, 3


def _smap_coeff(seed: int) -> np.ndarray:
    """SMAP-order coefficients (rows, cols, z, 64), float32 like SMAP's 'single'."""
    return np.random.default_rng(seed).normal(size=(N_ROWS, N_COLS, N_Z, 64)).astype(np.float32)


def _save_v5(path, sxy) -> None:
    scipy.io.savemat(path, {"SXY": sxy})


def _cspline(coeff, *, dz=10.0, x0=3.0, z0=2.0, **extra) -> dict:
    return {"coeff": coeff, "dz": dz, "z0": z0, "x0": x0, **extra}


def _eval_smap(c: np.ndarray, r: int, col: int, k: int, dr: float, dc: float, dz: float) -> float:
    """SMAP's convention: index i*16 + j*4 + m multiplies dz^i dc^j dr^m in voxel (r, col, k)."""
    return sum(float(c[r, col, k, i * 16 + j * 4 + m]) * dz**i * dc**j * dr**m
               for i in range(4) for j in range(4) for m in range(4))


def _eval_ours(cal: SplineCalibration, ky: int, kx: int, kz: int, fy: float, fx: float, fz: float) -> float:
    """Ours: coeff[kz, ky, kx, i*16 + j*4 + m] multiplies fz^i fx^j fy^m."""
    return sum(float(cal.coeff[kz, ky, kx, i * 16 + j * 4 + m]) * fz**i * fx**j * fy**m
               for i in range(4) for j in range(4) for m in range(4))


# --- MATLAB v7.3 (HDF5) writer for tests ----------------------------------------------------------

_V73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def _finish_v73(path) -> None:
    header = _V73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header)


def _cls(obj, name: str) -> None:
    obj.attrs["MATLAB_class"] = np.bytes_(name)


def _v73_cspline(f: h5py.File, group: h5py.Group, coeffs: list[np.ndarray], *, dz, x0, z0, cell: bool) -> None:
    _cls(group, "struct")
    if cell:
        refs = f.require_group("#refs#")
        ref_list = []
        for k, c in enumerate(coeffs):
            ds = refs.create_dataset(f"{group.name.replace('/', '_')}_c{k}", data=c.T)  # MATLAB axes reversed
            _cls(ds, "single")
            ref_list.append(ds.ref)
        cell_ds = group.create_dataset("coeff", data=np.array(ref_list, dtype=h5py.ref_dtype)[:, None])
        _cls(cell_ds, "cell")
    else:
        _cls(group.create_dataset("coeff", data=coeffs[0].T), "single")
    for name, value in (("dz", dz), ("x0", x0), ("z0", z0)):
        _cls(group.create_dataset(name, data=np.array([[value]])), "double")


# --- loading ----------------------------------------------------------------------------------------


def test_load_single_channel_axes_and_centre(tmp_path):
    c = _smap_coeff(0)
    _save_v5(tmp_path / "bead_3dcal.mat", {"cspline": _cspline(c, dz=10.0, x0=13.0, z0=51.0)})
    cal = load_smap_3dcal(tmp_path / "bead_3dcal.mat")
    assert cal.coeff.shape == (N_Z, N_ROWS, N_COLS, 64) and cal.coeff.dtype == np.float32
    assert cal.shape == (N_Z, N_ROWS, N_COLS)
    np.testing.assert_array_equal(cal.coeff, c.transpose(2, 0, 1, 3))
    assert (cal.dz_nm, cal.x0, cal.y0, cal.z0) == (10.0, 12.0, 12.0, 51.0)  # x0 - 1 (0-based), z0 as DECODE
    assert cal.source == str(tmp_path / "bead_3dcal.mat") and cal.channel == 0 and cal.normf is None
    assert list_smap_channels(tmp_path / "bead_3dcal.mat") == 1


def test_coefficient_convention_rows_are_y(tmp_path):
    c = _smap_coeff(1)
    _save_v5(tmp_path / "c_3dcal.mat", {"cspline": _cspline(c)})
    cal = load_smap_3dcal(tmp_path / "c_3dcal.mat")
    rng = np.random.default_rng(2)
    for _ in range(5):
        r, col, k = rng.integers(N_ROWS), rng.integers(N_COLS), rng.integers(N_Z)
        dr, dc, dz = rng.uniform(0, 1, 3)
        # SMAP's (row fraction, column fraction) is our (fy, fx)
        assert _eval_ours(cal, r, col, k, dr, dc, dz) == pytest.approx(_eval_smap(c, r, col, k, dr, dc, dz), rel=1e-9)
    # a spline that rises along columns only: coefficient of dc^1 (index 4) -> our fx^1
    lin = np.zeros((N_ROWS, N_COLS, N_Z, 64), np.float32)
    lin[..., 4] = 1.0
    _save_v5(tmp_path / "lin_3dcal.mat", {"cspline": _cspline(lin)})
    lin_cal = load_smap_3dcal(tmp_path / "lin_3dcal.mat")
    assert _eval_ours(lin_cal, 0, 0, 0, fy=0.0, fx=0.25, fz=0.0) == pytest.approx(0.25)
    assert _eval_ours(lin_cal, 0, 0, 0, fy=0.25, fx=0.0, fz=0.0) == 0.0


def test_single_z_slice_keeps_4d_shape(tmp_path):
    c = _smap_coeff(3)[:, :, :1]
    _save_v5(tmp_path / "flat_3dcal.mat", {"cspline": _cspline(c)})
    assert load_smap_3dcal(tmp_path / "flat_3dcal.mat").coeff.shape == (1, N_ROWS, N_COLS, 64)


def test_multichannel_cell_layout(tmp_path):
    c0, c1 = _smap_coeff(4), _smap_coeff(5)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = c0, c1
    _save_v5(tmp_path / "2ch_3dcal.mat",
             {"cspline": _cspline(cell, normf=np.array([[1.0, 0.8]]), mirror=np.array([[0, 1]]), isglobal=1)})
    assert list_smap_channels(tmp_path / "2ch_3dcal.mat") == 2
    cal1 = load_smap_3dcal(tmp_path / "2ch_3dcal.mat", channel=1)
    np.testing.assert_array_equal(cal1.coeff, c1.transpose(2, 0, 1, 3))
    assert (cal1.channel, cal1.normf) == (1, 0.8)
    assert load_smap_3dcal(tmp_path / "2ch_3dcal.mat", channel=0).normf == 1.0
    with pytest.raises(InputError, match=r"channel 2 out of range; the file has 2 channel\(s\): 0\.\.1"):
        load_smap_3dcal(tmp_path / "2ch_3dcal.mat", channel=2)
    with pytest.raises(InputError, match=r"channel -1 out of range"):
        load_smap_3dcal(tmp_path / "2ch_3dcal.mat", channel=-1)


def test_struct_array_layout(tmp_path):
    c0, c1 = _smap_coeff(6), _smap_coeff(7)
    sxy = np.empty((1, 2), dtype=[("cspline", object)])
    sxy[0, 0]["cspline"] = _cspline(c0, dz=10.0, x0=3.0, z0=2.0)
    sxy[0, 1]["cspline"] = _cspline(c1, dz=20.0, x0=4.0, z0=1.0)
    _save_v5(tmp_path / "fov_3dcal.mat", sxy)
    assert list_smap_channels(tmp_path / "fov_3dcal.mat") == 2
    cal = load_smap_3dcal(tmp_path / "fov_3dcal.mat", channel=1)
    np.testing.assert_array_equal(cal.coeff, c1.transpose(2, 0, 1, 3))
    assert (cal.dz_nm, cal.x0, cal.z0) == (20.0, 3.0, 1.0)


@pytest.mark.parametrize("layout", ["plain", "cell", "struct_array"])
def test_matlab_v73_hdf5(tmp_path, layout):
    path = tmp_path / "v73_3dcal.mat"
    c0, c1 = _smap_coeff(8), _smap_coeff(9)
    with h5py.File(path, "w", userblock_size=512) as f:
        sxy = f.create_group("SXY")
        _cls(sxy, "struct")
        if layout == "struct_array":
            refs = f.create_group("#refs#")
            ref_list = []
            for k, c in enumerate((c0, c1)):
                g = refs.create_group(f"cs{k}")
                _v73_cspline(f, g, [c], dz=10.0 * (k + 1), x0=3.0, z0=2.0, cell=False)
                ref_list.append(g.ref)
            sxy.create_dataset("cspline", data=np.array(ref_list, dtype=h5py.ref_dtype)[:, None])
        else:
            coeffs = [c0, c1] if layout == "cell" else [c0]
            _v73_cspline(f, sxy.create_group("cspline"), coeffs, dz=10.0, x0=3.0, z0=2.0, cell=layout == "cell")
    _finish_v73(path)
    with pytest.raises(NotImplementedError):  # scipy sees a v7.3 file; the loader must fall back to h5py
        scipy.io.loadmat(path)
    n = 1 if layout == "plain" else 2
    assert list_smap_channels(path) == n
    cal = load_smap_3dcal(path, channel=n - 1)
    np.testing.assert_array_equal(cal.coeff, (c0 if n == 1 else c1).transpose(2, 0, 1, 3))
    assert (cal.x0, cal.y0, cal.z0) == (2.0, 2.0, 2.0)
    assert cal.dz_nm == (20.0 if layout == "struct_array" else 10.0)


# --- errors -----------------------------------------------------------------------------------------


def test_error_not_mat_or_unreadable(tmp_path):
    with pytest.raises(InputError, match=r"cal\.yaml: expected a SMAP calibration '\*_3dcal\.mat'"):
        (tmp_path / "cal.yaml").write_text("a: 1\n")
        load_smap_3dcal(tmp_path / "cal.yaml")
    (tmp_path / "junk_3dcal.mat").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(InputError, match=r"junk_3dcal\.mat: not a readable MATLAB \.mat file"):
        load_smap_3dcal(tmp_path / "junk_3dcal.mat")
    with pytest.raises(InputError, match=r"gone_3dcal\.mat: file not found"):
        load_smap_3dcal(tmp_path / "gone_3dcal.mat")


def test_error_no_sxy_lists_variables(tmp_path):
    scipy.io.savemat(tmp_path / "bead_3dpsf.mat", {"PSF": np.zeros((3, 3, 3)), "parameters": {"dz": 10.0}})
    with pytest.raises(InputError, match=r"bead_3dpsf\.mat: no variable 'SXY' \(found: \['PSF', 'parameters'\]\)"):
        load_smap_3dcal(tmp_path / "bead_3dpsf.mat")


def test_error_gaussian_only_calibration(tmp_path):
    _save_v5(tmp_path / "g_3dcal.mat", {"gauss_zfit": np.zeros((1, 6)), "gauss_sx2_sy2": np.zeros((1, 6))})
    with pytest.raises(InputError, match=r"g_3dcal\.mat: SXY has no cubic-spline coefficients .*cubic-spline "
                                         r"calibration is needed"):
        load_smap_3dcal(tmp_path / "g_3dcal.mat")
    _save_v5(tmp_path / "e_3dcal.mat", {"cspline": np.zeros((0, 0)), "gauss_zfit": np.zeros((1, 6))})
    with pytest.raises(InputError, match="cubic-spline calibration is needed"):
        load_smap_3dcal(tmp_path / "e_3dcal.mat")


def test_error_wrong_coeff_shape_nan_and_missing_field(tmp_path):
    _save_v5(tmp_path / "s_3dcal.mat", {"cspline": _cspline(_smap_coeff(10)[..., :16])})
    with pytest.raises(InputError, match=r"SXY\.cspline\.coeff has shape \(5, 6, 3, 16\); expected a 4-D array"):
        load_smap_3dcal(tmp_path / "s_3dcal.mat")
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = _smap_coeff(11), _smap_coeff(11)[0]
    _save_v5(tmp_path / "c_3dcal.mat", {"cspline": _cspline(cell)})
    with pytest.raises(InputError, match=r"SXY\.cspline\.coeff\{2\} has shape \(6, 3, 64\)"):
        list_smap_channels(tmp_path / "c_3dcal.mat")
    bad = _smap_coeff(12)
    bad[1, 2, 0, 5] = np.nan
    _save_v5(tmp_path / "n_3dcal.mat", {"cspline": _cspline(bad)})
    with pytest.raises(InputError, match=r"n_3dcal\.mat: SXY\.cspline\.coeff holds 1 NaN/inf coefficient"):
        load_smap_3dcal(tmp_path / "n_3dcal.mat")
    cs = _cspline(_smap_coeff(13))
    del cs["dz"]
    _save_v5(tmp_path / "d_3dcal.mat", {"cspline": cs})
    with pytest.raises(InputError, match=r"SXY\.cspline has no field 'dz'"):
        load_smap_3dcal(tmp_path / "d_3dcal.mat")


# --- writing and the dataclass ----------------------------------------------------------------------


def _cal(seed: int, **kw) -> SplineCalibration:
    args = {"dz_nm": 10.0, "x0": 2.0, "y0": 2.0, "z0": 1.0} | kw
    return SplineCalibration(coeff=_smap_coeff(seed).transpose(2, 0, 1, 3), **args)


def test_save_round_trip_single_and_layouts(tmp_path):
    one = _cal(20, normf=0.9)
    save_smap_3dcal(tmp_path / "one_3dcal.mat", one)
    back = load_smap_3dcal(tmp_path / "one_3dcal.mat")
    np.testing.assert_array_equal(back.coeff, one.coeff)
    assert (back.dz_nm, back.x0, back.y0, back.z0, back.normf) == (10.0, 2.0, 2.0, 1.0, 0.9)
    raw = scipy.io.loadmat(tmp_path / "one_3dcal.mat", struct_as_record=False, squeeze_me=True)["SXY"]
    assert raw.cspline.coeff.shape == (N_ROWS, N_COLS, N_Z, 64) and raw.cspline.x0 == 3.0  # 1-based on disk

    shared = [_cal(21, normf=1.0), _cal(22, normf=0.7)]
    save_smap_3dcal(tmp_path / "cell_3dcal.mat", shared)
    raw = scipy.io.loadmat(tmp_path / "cell_3dcal.mat", struct_as_record=False, squeeze_me=True)["SXY"]
    assert raw.cspline.coeff.dtype == object and len(raw.cspline.coeff) == 2  # SMAP's multi-channel cell
    for k, cal in enumerate(shared):
        b = load_smap_3dcal(tmp_path / "cell_3dcal.mat", channel=k)
        np.testing.assert_array_equal(b.coeff, cal.coeff)
        assert b.normf == cal.normf

    mixed = [_cal(23), _cal(24, dz_nm=25.0, z0=0.5)]
    save_smap_3dcal(tmp_path / "mixed_3dcal.mat", mixed)
    raw = scipy.io.loadmat(tmp_path / "mixed_3dcal.mat", struct_as_record=False, squeeze_me=True)["SXY"]
    assert raw.shape == (2,)  # struct array
    b = load_smap_3dcal(tmp_path / "mixed_3dcal.mat", channel=1)
    np.testing.assert_array_equal(b.coeff, mixed[1].coeff)
    assert (b.dz_nm, b.z0) == (25.0, 0.5)


def test_save_errors(tmp_path):
    with pytest.raises(InputError, match="x0=2.0 differs from y0=3.0"):
        save_smap_3dcal(tmp_path / "a_3dcal.mat", _cal(25, y0=3.0))
    with pytest.raises(InputError, match="SplineCalibration"):
        save_smap_3dcal(tmp_path / "a_3dcal.mat", [])
    assert list(tmp_path.iterdir()) == []


def test_dataclass_is_frozen_and_validated():
    source = _smap_coeff(26).transpose(2, 0, 1, 3)
    cal = SplineCalibration(coeff=source, dz_nm=10.0, x0=2.0, y0=2.0, z0=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.dz_nm = 5.0  # type: ignore[misc]
    source[0, 0, 0, 0] = 123.0
    assert cal.coeff[0, 0, 0, 0] != 123.0  # the calibration owns a copy
    with pytest.raises(InputError, match=r"shape \(n_z, n_rows, n_cols, 64\)"):
        SplineCalibration(coeff=np.zeros((2, 3, 64)), dz_nm=10.0, x0=0.0, y0=0.0, z0=0.0)
    with pytest.raises(InputError, match="dz must be a positive"):
        SplineCalibration(coeff=np.zeros((1, 2, 3, 64)), dz_nm=0.0, x0=0.0, y0=0.0, z0=0.0)
    with pytest.raises(InputError, match="NaN/inf"):
        SplineCalibration(coeff=np.full((1, 2, 3, 64), np.nan), dz_nm=1.0, x0=0.0, y0=0.0, z0=0.0)


def test_loaded_spline_psf_evaluates_smaps_polynomial_with_rows_as_y(tmp_path):
    """The PSF built from a loaded file (not a formula of this test file) gives, in pixel (row, col) of its patch,
    SMAP's polynomial of voxel (row, col, k) at (row fraction = fy, column fraction = fx); and a spline that rises
    along the columns moves with the emitter's x, not its y."""
    import torch

    from plexloc.psf import SplinePSF

    px = 100.0
    c = _smap_coeff(6)
    _save_v5(tmp_path / "r_3dcal.mat", {"cspline": _cspline(c, dz=10.0, x0=3.0, z0=2.0)})
    psf = SplinePSF(**{k: getattr(load_smap_3dcal(tmp_path / "r_3dcal.mat"), k) for k in ("coeff", "x0", "y0", "z0")},
                    dz_nm=10.0, px_size_nm=(px, px), normalize=False)
    x, y, z = torch.tensor([27.0]), torch.tensor([61.0]), torch.tensor([-3.5])
    patch, row0, col0 = psf.patches(x, y, z, torch.ones(1))
    cx, cy, sz = psf.x0 + 0.5 - 27.0 / px, psf.y0 + 0.5 - 61.0 / px, psf.z0 - 3.5 / 10.0
    fx, fy, k = cx - np.floor(cx), cy - np.floor(cy), int(np.floor(sz))
    for r, col in ((0, 0), (1, 4), (4, 2), (3, 5)):
        assert float(patch[0, r, col]) == pytest.approx(_eval_smap(c, r, col, k, fy, fx, sz - k), rel=1e-5, abs=1e-5)
    lin = np.zeros((N_ROWS, N_COLS, N_Z, 64), np.float32)
    lin[..., 4] = 1.0  # dc^1: rises along the columns
    _save_v5(tmp_path / "lin_3dcal.mat", {"cspline": _cspline(lin)})
    cal = load_smap_3dcal(tmp_path / "lin_3dcal.mat")
    flat = SplinePSF(coeff=cal.coeff, x0=cal.x0, y0=cal.y0, z0=cal.z0, dz_nm=cal.dz_nm, px_size_nm=(px, px),
                     normalize=False)

    def at(xx, yy):
        return flat.patches(torch.tensor([xx]), torch.tensor([yy]), torch.tensor([0.0]), torch.ones(1))[0]

    assert torch.allclose(at(20.0, 20.0), at(20.0, 50.0))  # y moves nothing
    assert not torch.allclose(at(20.0, 20.0), at(50.0, 20.0), atol=0.1)  # x does
