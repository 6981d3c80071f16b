"""Channel transform from single-channel localizations of the same movie (plexloc register)."""

import json

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.post.registration import register_channels
from plexloc.table import LocTable

PX = 100.0
FIELD = 128 * PX


def two_channels(T, *, n=4000, frames=200, noise_nm=15.0, seed=0):
    """Molecules seen in both channels (90% detected in each), channel positions r_c = T r_0, plus noise."""
    rng = np.random.default_rng(seed)
    x, y, f = rng.uniform(0, FIELD, n), rng.uniform(0, FIELD, n), rng.integers(0, frames, n)
    xc, yc = T[0, 0] * x + T[0, 1] * y + T[0, 2], T[1, 0] * x + T[1, 1] * y + T[1, 2]

    def table(xx, yy, k):
        return LocTable({"frame": f[k], "x_nm": xx[k] + rng.normal(size=k.sum()) * noise_nm,
                         "y_nm": yy[k] + rng.normal(size=k.sum()) * noise_nm,
                         "z_nm": np.zeros(k.sum()), "photons": np.full(k.sum(), 1000.0)})

    return table(x, y, rng.uniform(size=n) > 0.1), table(xc, yc, rng.uniform(size=n) > 0.1)


def rotation_shift(deg, dx, dy):
    th = np.deg2rad(deg)
    return np.array([[np.cos(th), -np.sin(th), dx], [np.sin(th), np.cos(th), dy], [0.0, 0.0, 1.0]])


def corners_error(Ta, Tb):
    c = np.array([[0, 0], [FIELD, 0], [0, FIELD], [FIELD, FIELD]])
    return float(np.abs((c @ Ta[:2, :2].T + Ta[:2, 2]) - (c @ Tb[:2, :2].T + Tb[:2, 2])).max())


@pytest.mark.parametrize(("deg", "dx", "dy"), [(1.0, 3.3 * PX, -2.1 * PX), (-0.5, -4.0 * PX, 0.7 * PX)])
def test_recovers_known_affine(deg, dx, dy):
    T = rotation_shift(deg, dx, dy)
    ref, ch = two_channels(T)
    r = register_channels(ref, ch)
    assert corners_error(r.transform, T) < 3.0  # nm, over a 12.8 um field
    assert abs(r.transform[0, 2] - dx) < 3.0 and abs(r.transform[1, 2] - dy) < 3.0
    # residual of a pair: both channels' noise, sqrt(4 * 15^2) = 30 nm rms
    assert 27.0 < r.residual_nm["rms"] < 33.0
    assert r.n_used > 0.75 * 4000


def test_sign_convention_shift_of_one_pixel():
    ref, ch = two_channels(rotation_shift(0.0, PX, 0.0), noise_nm=5.0, n=1000)
    r = register_channels(ref, ch)
    assert r.transform[0, 2] == pytest.approx(PX, abs=1.0)  # conventions.md: T_c[0, 2] = +px


def test_unrelated_tables_fail_clearly():
    a, _ = two_channels(np.eye(3), n=50, seed=1)
    b = a.with_columns(frame=a["frame"] + 10_000)
    with pytest.raises(InputError, match="share a frame"):
        register_channels(a, b)
    # the same frames, other molecules: a few chance pairs that an affine fit follows, flagged
    ref, _ = two_channels(np.eye(3), n=4000, seed=2)
    _, other = two_channels(rotation_shift(0.5, 200.0, 0.0), n=4000, seed=3)
    r = register_channels(ref, other)  # 21 chance pairs of ~3,600 localizations
    assert r.warning is not None and "may not come from the same movie" in r.warning and r.n_pairs < 100
    assert register_channels(*two_channels(rotation_shift(0.5, 200.0, 0.0), n=4000, seed=3)).warning is None


def test_cli_register(tmp_path):
    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    T = rotation_shift(1.0, 330.0, -210.0)
    ref, ch = two_channels(T, n=2000)
    write_locs(ref, tmp_path / "c0.csv")
    write_locs(ch, tmp_path / "c1.csv")
    assert main(["register", str(tmp_path / "c0.csv"), str(tmp_path / "c1.csv"), "--out", str(tmp_path / "T.json")]) == 0
    data = json.loads((tmp_path / "T.json").read_text())
    assert corners_error(np.array(data["transform"]), T) < 5.0
    assert data["residual_nm"]["rms"] < 35.0


def test_cli_register_writes_chip_coordinates_with_the_roi_offset(tmp_path, capsys):
    """Tables are in the fitted movie's coordinates; a configuration reads transforms in chip coordinates. With
    --roi-offset (and the pixel size) the written transform is ``A T A^-1``; without, a rotation gets a note."""
    from plexloc.calibrate import chip_transform
    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    T = rotation_shift(1.0, 330.0, -210.0)
    ref, ch = two_channels(T, n=2000)
    write_locs(ref, tmp_path / "c0.csv")
    write_locs(ch, tmp_path / "c1.csv")
    args = ["register", str(tmp_path / "c0.csv"), str(tmp_path / "c1.csv"), "--out", str(tmp_path / "T.json")]
    assert main(args) == 0
    assert "give --roi-offset" in capsys.readouterr().err
    own = np.array(json.loads((tmp_path / "T.json").read_text())["transform"])
    assert main([*args, "--roi-offset", "400", "200", "--camera-px-size", "100"]) == 0
    data = json.loads((tmp_path / "T.json").read_text())
    assert np.abs(np.array(data["transform"]) - chip_transform(own, (40000.0, 20000.0))).max() < 1e-6
    assert data["roi_offset_px"] == [400, 200] and data["coordinates"] == "camera chip (nm)"
    assert corners_error(np.array(data["transform_in_table_coordinates"]), T) < 5.0
    assert main([*args, "--roi-offset", "400", "200"]) == 2
    assert "--camera-px-size" in capsys.readouterr().err
    # a pure shift fitted with noise: no note (the linear part's fitting noise, ~1e-4, set it off)
    ref, ch = two_channels(rotation_shift(0.0, 250.0, -120.0), n=500)
    write_locs(ref, tmp_path / "s0.csv")
    write_locs(ch, tmp_path / "s1.csv")
    assert main(["register", str(tmp_path / "s0.csv"), str(tmp_path / "s1.csv"), "--out", str(tmp_path / "S.json")]) == 0
    assert "give --roi-offset" not in capsys.readouterr().err
