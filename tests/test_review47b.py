"""Session 47, review of the session's MLE, library and calibration/camera changes (helper review2).

- camera check: an EMCCD read out without EM gain (its conventional amplifier, em_gain 1 set on purpose) has no
  excess noise, which the emccd model keeps at any em_gain; its noise ratio (0.70 at 50 photons/px, 8 e- read noise)
  was told as an EM gain folded into e_per_adu (read_sigma to divide by a gain that is not there) and a read_sigma
  about 4.3 e- advised first. It is now named as that amplifier, with kind: scmos and the same values as the fix.
"""

from __future__ import annotations

import torch

from test_camaudit46 import _camera, _check

from plexloc.camera.models import SCMOS

#: a CCD's conventional amplifier: Poisson and Gaussian read noise, no excess noise (plexloc's scmos model)
EM_OFF = dict(qe=0.9, spurious_charge=0.0, e_per_adu=4.0, baseline=100.0, read_sigma=8.0)


def _em_off_movie(bg: float) -> torch.Tensor:
    return SCMOS(**EM_OFF)(torch.full((16, 32, 32), bg), generator=torch.Generator().manual_seed(3))


def test_an_emccd_without_em_gain_is_named_as_such_not_as_a_folded_gain(tmp_path):
    # session 49: the emccd model's excess noise is 2 - 1/em_gain, 1 at em_gain 1: an EMCCD read out without EM gain
    # fits its settings (it was told as the conventional amplifier, which the model then did not describe)
    for bg in (50.0, 200.0):  # read noise 42 % and 15 % of the predicted variance
        assert _check(_em_off_movie(bg), _camera(tmp_path / "cam.yaml", {"kind": "emccd", **EM_OFF,
                                                                         "em_gain": 1.0})).warnings == []
    # the camera as it is (no excess noise): no warning
    assert _check(_em_off_movie(50.0), _camera(tmp_path / "cam2.yaml", {"kind": "scmos", **EM_OFF})).warnings == []


def _table():
    from plexloc.table import LocTable

    return LocTable({"frame": [0, 1, 2], "x_nm": [50.0, 150.0, 250.0], "y_nm": [50.0] * 3, "z_nm": [0.0] * 3,
                     "photons": [1000.0, 3000.0, 2000.0]})


def test_a_pandas_dataframe_of_a_table_is_no_column_of_its_names():
    # iterating a table gave its column names: pandas.DataFrame(t) was a (5, 1) frame of names, without a word
    import pandas as pd
    import pytest

    t = _table()
    with pytest.raises(TypeError, match=r"pandas.DataFrame\(t.to_dict\(\)\)"):
        pd.DataFrame(t)
    assert pd.DataFrame(t.to_dict()).shape == (3, 5) and "x_nm" in t


def test_a_row_by_a_tensor_index():
    # t[torch.argmax(...)] (a 0-d tensor) and t[tensor([1])] were "column 'frame' must be 1-D, got shape ()"
    import numpy as np

    t = _table()
    assert t[torch.argmax(torch.as_tensor(t["photons"]))]["x_nm"].tolist() == [150.0]
    assert t[np.array(2)]["x_nm"].tolist() == [250.0]
    assert t[torch.tensor([1])]["x_nm"].tolist() == [150.0]
    assert t[torch.tensor([2, 0])]["frame"].tolist() == [2, 0]
    assert t[torch.as_tensor(t["photons"]) > 1500]["frame"].tolist() == [1, 2]


def test_process_movies_takes_an_array_or_series_of_paths(tmp_path):
    # an array or pandas Series of the movies' paths was refused as 'frames held in memory' (bd98e11)
    import numpy as np
    import pandas as pd
    import pytest

    from plexloc.errors import InputError
    from plexloc.workflow import ProcessOptions, process_movies

    options = ProcessOptions(model=tmp_path / "no_run")
    for movies in (np.array([str(tmp_path / "cell1.tif"), str(tmp_path / "cell2.tif")]),
                   pd.Series([str(tmp_path / "cell1.tif")])):
        with pytest.raises(InputError, match="model not found"):  # the paths taken: the model is what is missing
            process_movies(movies, tmp_path / "out", options)
    with pytest.raises(TypeError, match=r"frames held in memory \(ndarray of shape \(3, 8, 8\)\)"):
        process_movies(np.zeros((3, 8, 8), np.uint16), tmp_path / "out", options)


def _bead_stack(z_nm, photons: float, drift_nm, *, seed: int):
    """16 astigmatic beads (Poisson noise, background 20 photons/px) in 128 x 128 slices at ``z_nm``, each slice's
    beads moved laterally by ``drift_nm`` (n_z, 2)."""
    import numpy as np

    from plexloc.psf import AstigmaticPSF

    psf = AstigmaticPSF(s0_nm=120.0, c_nm=(-250.0, 250.0), d_nm=400.0, A=0.0, B=0.0, px_size_nm=100.0,
                        z_extent_nm=800.0)
    rng = np.random.default_rng(seed)
    g = np.arange(16)
    xs, ys = 16 + (g % 4) * 28 + rng.uniform(0, 4, 16), 16 + (g // 4) * 28 + rng.uniform(0, 4, 16)
    n = len(z_nm)
    f = psf.render(torch.as_tensor(np.repeat(xs[None] * 100.0, n, 0) + drift_nm[:, :1]).reshape(-1),
                   torch.as_tensor(np.repeat(ys[None] * 100.0, n, 0) + drift_nm[:, 1:]).reshape(-1),
                   torch.as_tensor(np.repeat(np.asarray(z_nm, float), 16)), torch.full((16 * n,), photons,
                                                                                        dtype=torch.float64),
                   torch.arange(n).repeat_interleave(16), n_frames=n, frame_shape=(128, 128))
    return rng.poisson(f.numpy() + 20.0).astype(np.float64)


def test_a_stage_drifting_in_x_and_y_is_no_stalled_stage():
    # 5 nm z steps, the beads drifting 3 nm (sd) per slice in x and y: quiet steps between drifting ones were told as
    # a stalled stage (2 of 2 stacks; 14 of 104 real-like stacks of 5-50 nm steps, drift or jumps of 15 nm)
    import numpy as np

    from plexloc.calibrate import beads as B
    from plexloc.calibrate.spline import _stalled_slices

    z = np.arange(-300.0, 301.0, 5.0)
    for seed in (0, 1):
        drift = np.cumsum(np.random.default_rng(100 + seed).normal(0.0, 3.0, (len(z), 2)), axis=0)
        st = _bead_stack(z, 1e5, drift, seed=seed)
        assert _stalled_slices(st, B.detect_beads(st, roi_px=15), roi_px=15, src="beads.tif") == []
    # 10 nm steps, the stage jumping 15 nm in x and y at 1 slice in 10: a quiet step between two jumps
    z = np.arange(-600.0, 601.0, 10.0)
    jumps = np.cumsum(np.where(np.random.default_rng(201).random((len(z), 1)) < 0.1, 15.0, 0.5) * np.ones((len(z), 2)),
                      axis=0)
    st = _bead_stack(z, 1e5, jumps, seed=1)
    assert _stalled_slices(st, B.detect_beads(st, roi_px=15), roi_px=15, src="beads.tif") == []
    # a stall in the same drifting stack is still named (20 nm steps)
    z = np.arange(-600.0, 601.0, 20.0)
    k = 30
    stalled = np.concatenate([z[: k + 1], z[k:-1]])
    drift = np.cumsum(np.random.default_rng(7).normal(0.0, 3.0, (len(z), 2)), axis=0)
    st = _bead_stack(stalled, 1e5, drift, seed=7)
    (note,) = _stalled_slices(st, B.detect_beads(st, roi_px=15), roi_px=15, src="beads.tif")
    assert note.startswith(f"beads.tif: slice(s) {k + 1} (") and note.count(" against ") == 1


def test_the_z_range_warning_is_importable_from_plexloc_mle():
    # README names ZRangeWarning; only plexloc.mle.pipeline held it (warnings.filterwarnings needs the class)
    import plexloc.mle
    from plexloc.mle.pipeline import ZRangeWarning

    assert plexloc.mle.ZRangeWarning is ZRangeWarning and "ZRangeWarning" in plexloc.mle.__all__
