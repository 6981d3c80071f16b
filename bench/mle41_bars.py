"""The bar tests of tests/test_mle_movie.py (2D Gaussian 2,500 frames, seed 11; 3D astigmatic 3,000 frames, seed 12; 0.05
/um²) scored as the tests score them (isolated emitters, LLR p >= 1e-3, CRLB at the truth), on all rows and on the rows
with converged == 1, with the share of rows converged and on a bound. Run from the repository root:
``OMP_NUM_THREADS=1 python bench/mle41_bars.py`` (tests/ on the path for its helpers)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_mle_movie import _scores, _simulate_all  # noqa: E402

from plexloc.mle import MLEFitter, fit_movie  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out = []
    for name, frames, seed, photons, dim, n_params in (("2d_gaussian.yaml", 2500, 11, (1000.0, 10000.0), 2, 4),
                                                       ("3d_astigmatic.yaml", 3000, 12, None, 3, 5)):
        with tempfile.TemporaryDirectory() as tmp:
            cfg, sim, truth, paths, everyone = _simulate_all(name, frames, Path(tmp), seed=seed, photons=photons)
            locs = fit_movie(paths[0], cfg, batch_frames=1000)
        fitter = MLEFitter(cfg)
        kw = dict(dim=dim, roi_px=fitter.roi_px, n_params=n_params, fov_nm=sim.fov_nm, everyone=everyone)
        conv = locs["converged"] == 1
        row = {"config": name, "frames": frames, "rows": len(locs), "converged": float(conv.mean()),
               "at_bound_rows": int((locs["at_bound"] != 0).sum()) if "at_bound" in locs.columns else None,
               "all_rows": _scores(sim, truth, locs, **kw), "converged_rows": _scores(sim, truth, locs[conv], **kw)}
        out.append(row)
        print(json.dumps(row))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
