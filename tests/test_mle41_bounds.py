"""A maximum-likelihood fit that ends with a parameter on a bound of the fitter is not converged, and says which bound
(``at_bound``): photons at their lower bound (an empty window, a spot at the frame's edge), z on its bound, the free
width at its limit, x / y beyond the window; a background at 0 and one channel's free photons at 1 are the
non-negative model's own estimates, flagged but converged. The movie pipeline writes and documents the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from conftest import PX_NM
from plexloc.camera import EMCCD
from plexloc.config import load_config
from plexloc.io.tables import column_unit
from plexloc.mle import Candidates, MLEFitter
from plexloc.mle.fit import AT_BOUND_BITS, NOT_CONVERGED_BOUNDS, FitChannel, fit_rois, noise_terms
from plexloc.mle.models import roi_model_for
from plexloc.psf import AstigmaticPSF, GaussianPSF
from plexloc.table import COLUMN_DOCS

R = 11
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _render(psf, n, *, x_px, y_px, z_nm=0.0, photons, bg, seed=None, cam=None):
    """n windows of one emitter at window pixels (x_px, y_px) (+-0.5 px jitter with a seed), noise-free or through
    ``cam``, in photons."""
    g = torch.Generator().manual_seed(seed if seed is not None else 0)
    jit = (torch.rand(n, generator=g) - 0.5) if seed is not None else torch.zeros(n)
    x = (x_px + jit) * PX_NM
    y = (y_px + (torch.rand(n, generator=g) - 0.5 if seed is not None else torch.zeros(n))) * PX_NM
    img = psf.render(x, y, torch.full((n,), float(z_nm)), torch.full((n,), float(photons)), torch.arange(n),
                     n_frames=n, frame_shape=(R, R)) + bg
    return img if cam is None else cam.to_photons(cam(img, generator=g))


def _fit(psf, data, cam=None, **kw):
    k, off = noise_terms(cam.noise_variance_photons, data[0]) if cam is not None else (1.0, 0.0)
    model = roi_model_for(psf, free_sigma=kw.pop("free_sigma", False))
    return fit_rois([data], [FitChannel(model)], origins=torch.zeros(data.shape[0], 1, 2, dtype=torch.int64),
                    k=[k], offset=[off], **kw)


def test_empty_window_ends_with_photons_at_the_bound_and_is_not_converged(device):
    """Noise-free flat background: the photons' likelihood falls for any spot, the fit holds them at their lower bound
    (1), and the old convergence test (a step clipped to nothing) called that converged (on every device)."""
    psf = GaussianPSF(sigma_nm=130.0)
    data = torch.full((4, R, R), 50.0, device=device)
    res = _fit(psf, data)
    assert torch.allclose(res.photons, torch.ones(4, dtype=torch.float64), atol=1e-3)
    assert not bool(res.converged.any())
    assert res.at_bound.tolist() == [AT_BOUND_BITS["photons"]] * 4


def test_spots_at_the_window_edge_never_say_converged_on_a_bound():
    """The reported defect: emitters at the frame's (window's) edge whose fit ends with photons at the lower bound, or
    x / y at the window's limit, said converged = 1 (17 of these 400 did). Now every such fit is converged = 0 and
    at_bound names the bound; the spots that fit inside their bounds stay converged."""
    psf, cam = GaussianPSF(sigma_nm=130.0), EMCCD()
    data = torch.cat([_render(psf, 200, x_px=0.3, y_px=R / 2, photons=2000, bg=50, seed=2, cam=cam),
                      _render(psf, 200, x_px=-0.7, y_px=R / 2, photons=2000, bg=50, seed=3, cam=cam)])
    res = _fit(psf, data, cam)
    xy = torch.stack([res.x_nm, res.y_nm], 1) / PX_NM
    pinned_photons = res.photons <= 1.0 + 1e-3
    pinned_xy = ((xy <= -1.0 + 1e-3) | (xy >= R + 1.0 - 1e-3)).any(dim=1)
    assert int(pinned_photons.sum()) >= 10 and int(pinned_xy.sum()) >= 10  # the cases occur
    assert not bool((res.converged & (pinned_photons | pinned_xy)).any())
    flag_photons = (res.at_bound & AT_BOUND_BITS["photons"]) != 0
    assert torch.equal((res.at_bound & AT_BOUND_BITS["xy"]) != 0, pinned_xy)
    # photons on the bound, or above it by less than 5 % of their CRLB (where the fit stopped short of the bound)
    assert bool(flag_photons[pinned_photons].all())
    assert bool((res.photons[flag_photons] - 1.0 <= 0.051 * res.crlb["photons"][flag_photons]).all())
    assert not bool((res.converged & flag_photons).any())
    # the spots inside their bounds at the edge (x 0.3 px) still converge
    assert float(res.converged[:200].double().mean()) > 0.85


def test_z_on_its_bound_is_not_converged_and_interior_z_is():
    """Astigmatic spots at z = 800 nm fitted within +-500 nm end on the bound (the old fitter held z there and called it
    converged); spots at z = 0 converge inside, with at_bound 0."""
    psf, cam = AstigmaticPSF(), EMCCD()
    outside = _render(psf, 50, x_px=R / 2, y_px=R / 2, z_nm=800, photons=3000, bg=50, seed=15, cam=cam)
    inside = _render(psf, 50, x_px=R / 2, y_px=R / 2, z_nm=0, photons=3000, bg=50, seed=14, cam=cam)
    res = _fit(psf, torch.cat([outside, inside]), cam, z_range_nm=(-500.0, 500.0))
    assert torch.allclose(res.z_nm[:50], torch.full((50,), 500.0, dtype=torch.float64), atol=1e-2)
    assert not bool(res.converged[:50].any())
    assert set(res.at_bound[:50].tolist()) == {AT_BOUND_BITS["z"]}
    assert set(res.at_bound[50:].tolist()) == {0} and bool(res.converged[50:].all())


def test_free_width_at_its_limit_is_not_converged():
    """A spot 5 times wider than the calibrated PSF: the free width scale stops at its limit (4)."""
    wide = GaussianPSF(sigma_nm=650.0)
    data = _render(wide, 3, x_px=R / 2, y_px=R / 2, photons=5000, bg=10)
    res = _fit(GaussianPSF(sigma_nm=130.0), data, free_sigma=True, max_iter=100)
    assert torch.allclose(res.sigma_scale, torch.full((3,), 4.0, dtype=torch.float64), atol=1e-4)
    assert not bool(res.converged.any())
    assert all(b & AT_BOUND_BITS["width"] for b in res.at_bound.tolist())


def test_background_at_zero_is_flagged_but_converged():
    """A noise-free spot on no background: the background ends on its bound (1e-4), the model's own estimate (bg >= 0);
    the position is exact, the fit converged, and at_bound says 8."""
    psf = GaussianPSF(sigma_nm=130.0)
    data = _render(psf, 3, x_px=5.3, y_px=5.6, photons=2000, bg=0.0)
    res = _fit(psf, data)
    assert res.at_bound.tolist() == [AT_BOUND_BITS["bg"]] * 3
    assert bool(res.converged.all())
    assert torch.allclose(res.x_nm, torch.full((3,), 530.0, dtype=torch.float64), atol=0.5)
    assert NOT_CONVERGED_BOUNDS & AT_BOUND_BITS["bg"] == 0


def test_one_channel_without_photons_is_flagged_but_converged():
    """Free photons per channel, a spot in channel 0 and none in channel 1 (a dye absent from a channel): channel 1's
    photons end at 1, flagged 32, converged; both channels empty: photons 4, not converged."""
    psf = GaussianPSF(sigma_nm=130.0)
    spot = _render(psf, 2, x_px=5.4, y_px=5.5, photons=3000, bg=20.0)
    flat = torch.full((2, R, R), 20.0)
    chans = [FitChannel(roi_model_for(psf)), FitChannel(roi_model_for(psf), transform=torch.eye(3, dtype=torch.float64))]
    origins = torch.zeros(4, 2, 2, dtype=torch.int64)
    res = fit_rois([torch.cat([spot, flat]), torch.cat([flat, flat])], chans, origins=origins, linked=False)
    assert res.at_bound.tolist() == [AT_BOUND_BITS["photons_ch"]] * 2 + [AT_BOUND_BITS["photons"]] * 2
    assert res.converged.tolist() == [True, True, False, False]


def test_movie_table_carries_the_documented_column_and_converged_agrees():
    """fit_candidates on a frame with one spot and one candidate on flat background at the frame's corner: the table
    has at_bound (documented, unit 1), the empty candidate is converged 0 with photons on the bound, the spot 1."""
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    fitter = MLEFitter(cfg)
    H = W = 32
    psf = GaussianPSF(sigma_nm=130.0)  # the example's PSF
    frame = psf.render(torch.tensor([1550.0]), torch.tensor([1650.0]), torch.zeros(1), torch.tensor([3000.0]),
                       torch.zeros(1, dtype=torch.int64), n_frames=1, frame_shape=(H, W)) + 40.0
    photons = frame[None].to(torch.float32)  # (C, T, H, W), noise-free
    cand = Candidates(frame=np.array([0, 0]), row=np.array([16, 0]), col=np.array([15, 0]), height=np.array([1.0, 1.0]))
    table = fitter.fit_candidates(photons, cand)
    assert table["converged"].tolist() == [1.0, 0.0]
    assert "at_bound" in table.columns and "at_bound" in COLUMN_DOCS and column_unit("at_bound") == "1"
    assert table["at_bound"].tolist() == [0.0, float(AT_BOUND_BITS["photons"])]
    assert "at_bound" in COLUMN_DOCS["converged"]


def test_fit_command_counts_the_rows_on_a_bound(tmp_path, capsys):
    """plexloc fit --method mle on a 3D astigmatic movie whose emitters span +-900 nm, fitted within the configuration's
    +-500 nm: the rows held on the z bound are written with converged 0 and at_bound 2, and the command says how many."""
    from plexloc.cli.main import main
    from plexloc.io.tables import read_table
    from plexloc.io.tiff import write_movie
    from plexloc.simulation import Simulator

    cfg = load_config(EXAMPLES / "3d_astigmatic.yaml")
    cfg.frame_size = [32, 32]
    cfg.emitters.density_per_um2 = 0.3
    cfg.background.variation = 0.0
    wide = cfg.model_copy(deep=True)
    wide.emitters.z_range_nm = [-900.0, 900.0]
    movie = Simulator(wide).simulate_movie(20, generator=torch.Generator().manual_seed(4))
    write_movie(tmp_path / "m.tif", movie.frames[0].numpy())
    assert main(["fit", str(tmp_path / "m.tif"), "--method", "mle", "--config", str(EXAMPLES / "3d_astigmatic.yaml"),
                 "--out", str(tmp_path / "locs.csv"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    t = read_table(tmp_path / "locs.csv")
    on_z = (t["at_bound"].astype(int) & AT_BOUND_BITS["z"]) != 0
    assert on_z.sum() >= 5 and (t["converged"][on_z] == 0).all()
    assert np.allclose(np.abs(t["z_nm"][on_z]), 500.0, atol=0.01)
    assert f"{int(on_z.sum())} z on its bound" in err and "did not converge" in err
