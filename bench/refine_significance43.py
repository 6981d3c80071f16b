"""The spot significance (``spot_llr``, ``p_spot``) of rows refined by maximum likelihood (:func:`plexloc.mle.refine_frames`).

A refined row's ``spot_llr`` is the refit's own detection test (:func:`plexloc.mle.fit.fit_rois`): the emitter against
the window's background plus the light of the neighbours held at their estimates, its p-value from the null that the MLE
fitter's was measured with (:data:`plexloc.mle.fit.SPOT_NULL_DOF`). Three settings per PSF and camera:

- ``noise``: rows of a table (a network's, say) placed on pure-noise frames, one per window (16 px apart: no
  neighbours), at random positions, z and 300 photons; refined with the defaults. Counted: the share of the rows that
  were refined, and among the refined rows the share with ``p_spot`` below 0.05 / 0.01 / 0.001 (the refit keeps only
  converged fits that stayed within 1 px and pass the core-deviance test: a subset of the windows).
- ``phantom``: the same rows, each 4-6 px from a real emitter (2,000-5,000 photons) that the table holds too (the
  phantom and the emitter are each other's modelled neighbour): the phantoms' shares as above.
- ``spots``: the real emitters of ``phantom`` (and, for power, 300-photon emitters alone): the share with ``p_spot``
  below 0.01 among the refined ones.

    OMP_NUM_THREADS=1 .venv/bin/python bench/refine_significance43.py [--out bench/refine_significance43.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from plexloc.camera import EMCCD, SCMOS
from plexloc.config import load_config
from plexloc.mle import MLEFitter, refine_frames
from plexloc.table import LocTable

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
SPACING = 16  # px between the windows' centres (the refits' pairs reach one window, 11-13 px)


def scene(fitter: MLEFitter, cam, *, n_frames: int, size: int, bg: float, seed: int, neighbour: bool,
          spot_photons: tuple[float, float] | None = None) -> tuple[torch.Tensor, LocTable, np.ndarray]:
    """Photon frames (1, T, H, W) and a table: one row per grid cell at a random position near the cell's centre (a
    phantom: nothing there, unless ``spot_photons``), and with ``neighbour`` a real emitter 4-6 px away in the table
    too. Returns the frames, the table and a mask of the table's real emitters."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    px = fitter.config.px_size_xy_nm[0]
    cells = np.arange(SPACING // 2, size - SPACING // 2 + 1, SPACING)
    cy, cx = np.meshgrid(cells, cells, indexing="ij")
    cy, cx = cy.ravel().astype(np.float64), cx.ravel().astype(np.float64)
    per = len(cy)
    frame = np.repeat(np.arange(n_frames), per)
    x = (np.tile(cx, n_frames) + rng.uniform(-0.5, 0.5, per * n_frames)) * px
    y = (np.tile(cy, n_frames) + rng.uniform(-0.5, 0.5, per * n_frames)) * px
    zr = fitter.config.emitters.z_range_nm
    z = rng.uniform(zr[0], zr[1], len(x)) if fitter.is_3d else np.zeros(len(x))
    rows = {"frame": frame, "x_nm": x, "y_nm": y, "z_nm": z, "photons": np.full(len(x), 300.0)}
    real = np.zeros(len(x), bool)
    emit_x, emit_y, emit_z, emit_n, emit_f = [], [], [], [], []
    if spot_photons is not None:  # the rows are real emitters
        ph = rng.uniform(*spot_photons, len(x))
        rows["photons"] = ph
        real[:] = True
        emit_x, emit_y, emit_z, emit_n, emit_f = [x], [y], [z], [ph], [frame]
    if neighbour:
        ang = rng.uniform(0, 2 * np.pi, len(x))
        d = rng.uniform(4.0, 6.0, len(x)) * px
        nx, ny = x + d * np.cos(ang), y + d * np.sin(ang)
        nz = rng.uniform(zr[0], zr[1], len(x)) if fitter.is_3d else np.zeros(len(x))
        nph = rng.uniform(2000.0, 5000.0, len(x))
        emit_x.append(nx), emit_y.append(ny), emit_z.append(nz), emit_n.append(nph), emit_f.append(frame)
        rows = {k: np.concatenate([v, {"frame": frame, "x_nm": nx, "y_nm": ny, "z_nm": nz, "photons": nph}[k]])
                for k, v in rows.items()}
        real = np.concatenate([real, np.ones(len(x), bool)])
    psf = fitter.channels[0].psf
    img = torch.full((n_frames, size, size), float(bg))
    if emit_x:
        cat = lambda v: torch.as_tensor(np.concatenate(v), dtype=torch.float32)  # noqa: E731
        img = img + psf.render(cat(emit_x), cat(emit_y), cat(emit_z), cat(emit_n),
                               torch.as_tensor(np.concatenate(emit_f)), n_frames=n_frames, frame_shape=(size, size))
    fitter.channels[0].camera = cam
    frames = cam(img, generator=g)
    return fitter.to_photons([frames]), LocTable(rows), real


def shares(out: LocTable, mask: np.ndarray) -> dict:
    ref = (np.asarray(out["refined"]) == 1) & mask
    p = np.asarray(out["p_spot"])[ref]
    return {"n": int(mask.sum()), "refined": float(ref.sum() / max(mask.sum(), 1)), "n_refined": int(ref.sum()),
            "p05": float((p < 0.05).mean()) if len(p) else float("nan"),
            "p01": float((p < 0.01).mean()) if len(p) else float("nan"),
            "p001": float((p < 0.001).mean()) if len(p) else float("nan"),
            "median_spot_llr": float(np.median(np.asarray(out["spot_llr"])[ref])) if len(p) else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "refine_significance43.json")
    ap.add_argument("--quick", action="store_true", help="a quarter of the frames")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_frames = 10 if args.quick else 40
    size = 128
    rows = []
    t_all = time.perf_counter()
    seed = 4300
    for cfg_name in ("2d_gaussian.yaml", "3d_astigmatic.yaml"):
        for cam_name, cam in (("EMCCD", EMCCD()), ("SCMOS", SCMOS())):
            for bg in (5.0, 30.0):
                fitter = MLEFitter(load_config(EX / cfg_name))
                seed += 1
                t0 = time.perf_counter()
                ph, tab, real = scene(fitter, cam, n_frames=n_frames, size=size, bg=bg, seed=seed, neighbour=False)
                noise = shares(refine_frames(fitter, ph, tab), ~real)
                ph, tab, real = scene(fitter, cam, n_frames=n_frames, size=size, bg=bg, seed=seed + 100, neighbour=True)
                out = refine_frames(fitter, ph, tab)
                phantom, spots = shares(out, ~real), shares(out, real)
                ph, tab, real = scene(fitter, cam, n_frames=n_frames, size=size, bg=bg, seed=seed + 200, neighbour=False,
                                      spot_photons=(300.0, 300.0))
                dim = shares(refine_frames(fitter, ph, tab), real)
                row = {"psf": cfg_name.removesuffix(".yaml"), "camera": cam_name, "bg": bg, "noise": noise,
                       "phantom": phantom, "spots": spots, "dim300": dim, "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(json.dumps(row), flush=True)
    seconds = time.perf_counter() - t_all
    print("\nrefined rows' p_spot: share below 0.05 / 0.01 / 0.001 (of the refined rows; 'refined': share of the rows "
          "that were refined)")
    print("| PSF | camera | bg | noise: refined | <0.05 | <0.01 | <0.001 | phantom: refined | <0.05 | <0.01 | <0.001 "
          "| spots 2-5k: <0.01 | 300 ph: refined | <0.01 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n, f, s, d = r["noise"], r["phantom"], r["spots"], r["dim300"]
        print(f"| {r['psf']} | {r['camera']} | {r['bg']:g} | {100 * n['refined']:.0f} % ({n['n_refined']}) | "
              f"{100 * n['p05']:.2f} % | {100 * n['p01']:.2f} % | {100 * n['p001']:.2f} % | "
              f"{100 * f['refined']:.0f} % ({f['n_refined']}) | {100 * f['p05']:.2f} % | {100 * f['p01']:.2f} % | "
              f"{100 * f['p001']:.2f} % | {100 * s['p01']:.1f} % | {100 * d['refined']:.0f} % | {100 * d['p01']:.1f} % |")
    print(f"\n{seconds:.0f} s")
    args.out.write_text(json.dumps({"rows": rows, "n_frames": n_frames, "size_px": size, "seconds": seconds,
                                    "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/refine_significance43.py"
                                    + (" --quick" if args.quick else "")}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
