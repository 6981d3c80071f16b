"""Issue 10 post-processing on simulated tables: colour assignment (accuracy/rejection against photons, both
ratio splits, given sigma and the shot-noise estimate, ratios given and estimated), de-biasing, registration
and the wrong-transform duplicate check. Prints tables and writes JSON (``--json``).

    PYTHONPATH=src python bench/post_plex.py --json bench/post_plex.json

Every number is measured here on the machine that runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import yaml

from plexloc.evaluate import evaluate
from plexloc.evaluate.metrics import gridding_deviation
from plexloc.post.color import assign_colors, estimate_ratios
from plexloc.post.debias import debias
from plexloc.post.duplicates import channel_duplicates
from plexloc.post.registration import register_channels
from plexloc.post.synthetic_plex import pulled_table, ratiometric_table
from plexloc.table import LocTable

SPLITS = {"20/60": [[0.2, 0.8], [0.6, 0.4]], "AF647/CF680 17.3/1.9": [[0.173, 0.827], [0.019, 0.981]]}


def colour(frames: int) -> list[dict]:
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "dual_color.yaml").read_text())
    rows = []
    print(f"{'split':<22} {'photons':>7} {'bg':>4} {'sigma':>9} {'rows':>6} {'acc all':>8} {'rej all':>8} "
          f"{'acc >=50%':>9} {'rej >=50%':>9} {'r0 fit':>7} {'r1 fit':>7}")
    for name, ratios in SPLITS.items():
        for photons in (500, 1000, 2000, 5000):
            for with_sigma in (True, False):
                truth, pred = ratiometric_table(cfg, ratios, photons, bg=50.0, frames=frames, with_sigma=with_sigma)
                t0 = time.perf_counter()
                out, _ = assign_colors(pred, ratios, excess_noise=2.0)
                dt = time.perf_counter() - t0
                bright = truth["photons"] >= 0.5 * photons
                m_all, m_b = evaluate(truth, out, dim=2), evaluate(truth[bright], out[bright], dim=2)
                fit = estimate_ratios(pred, min_photons=0.5 * photons)
                r = sorted(fit.ratios[:, 0])
                row = {"split": name, "photons": photons, "bg": 50.0, "sigma": "given" if with_sigma else "estimated",
                       "rows": len(pred), "rows_bright": int(bright.sum()), "acc_all": m_all.color_accuracy,
                       "rej_all": m_all.color_rejection, "acc_bright": m_b.color_accuracy,
                       "rej_bright": m_b.color_rejection, "ratio0_fit_sorted": r, "seconds": dt}
                rows.append(row)
                print(f"{name:<22} {photons:>7} {50:>4} {row['sigma']:>9} {len(pred):>6} {m_all.color_accuracy:>8.2f} "
                      f"{m_all.color_rejection:>8.2f} {m_b.color_accuracy:>9.2f} {m_b.color_rejection:>9.2f} "
                      f"{r[0]:>7.4f} {r[1]:>7.4f}")
    return rows


def debias_rows() -> list[dict]:
    rows = []
    for strength in (0.5, 1.0):
        txy, nxy, t = pulled_table(50000, strength=strength)
        t0 = time.perf_counter()
        out, rep = debias(t, 100.0)
        dt = time.perf_counter() - t0

        def rmse(tab):
            return float(np.sqrt(np.mean((tab["x_nm"] - txy[:, 0]) ** 2 + (tab["y_nm"] - txy[:, 1]) ** 2)))

        row = {"strength": strength, "n": len(t), "grid_x_before": gridding_deviation(t["x_nm"], 100.0),
               "grid_x_after": gridding_deviation(out["x_nm"], 100.0), "rmse_before": rmse(t), "rmse_after": rmse(out),
               "rmse_noise_only": float(np.sqrt(np.mean(np.sum((nxy - txy) ** 2, axis=1)))),
               "shift_over_sigma_x": rep.shift_over_sigma["x"], "seconds": dt}
        rows.append(row)
        print(f"debias strength {strength}: gridding x {row['grid_x_before']:.3f} -> {row['grid_x_after']:.3f}; RMSE "
              f"{row['rmse_before']:.2f} -> {row['rmse_after']:.2f} nm (noise only {row['rmse_noise_only']:.2f}); "
              f"|shift|/sigma median {rep.shift_over_sigma['x']['q50']:.2f}, q90 {rep.shift_over_sigma['x']['q90']:.2f}; "
              f"{dt:.2f} s for {len(t)}")
    return rows


def registration_row() -> dict:
    rng = np.random.default_rng(0)
    n, field = 20000, 12800.0
    th = np.deg2rad(1.0)
    T = np.array([[np.cos(th), -np.sin(th), 330.0], [np.sin(th), np.cos(th), -210.0], [0, 0, 1]])
    xy, f = rng.uniform(0, field, (n, 2)), rng.integers(0, 1000, n)
    xyc = xy @ T[:2, :2].T + T[:2, 2]

    def tab(p, keep):
        p = p[keep] + rng.normal(size=(keep.sum(), 2)) * 15.0
        return LocTable({"frame": f[keep], "x_nm": p[:, 0], "y_nm": p[:, 1], "z_nm": np.zeros(keep.sum()),
                         "photons": np.ones(keep.sum())})

    t0 = time.perf_counter()
    r = register_channels(tab(xy, rng.uniform(size=n) > 0.1), tab(xyc, rng.uniform(size=n) > 0.1))
    dt = time.perf_counter() - t0
    c = np.array([[0, 0], [field, 0], [0, field], [field, field]])
    err = float(np.abs((c @ r.transform[:2, :2].T + r.transform[:2, 2]) - (c @ T[:2, :2].T + T[:2, 2])).max())
    print(f"register: 1 deg + (330, -210) nm, 15 nm noise per channel, 90% detected in each: corner error "
          f"{err:.2f} nm, residual rms {r.residual_nm['rms']:.1f} nm, {r.n_used}/{r.n_pairs} pairs, {dt:.2f} s")
    return {"corner_error_nm": err, "residual_nm": r.residual_nm, "n_used": r.n_used, "n_pairs": r.n_pairs, "seconds": dt}


def duplicates_rows() -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    n = 20000
    base = {"frame": rng.integers(0, 1000, n), "x_nm": rng.uniform(0, 6400, n), "y_nm": rng.uniform(0, 6400, n)}
    for share, off in ((0.0, (300.0, 0.0)), (0.05, (300.0, 0.0)), (0.1, (300.0, 0.0)), (1.0, (300.0, 0.0)),
                       (1.0, (100.0, 100.0))):
        dup = rng.uniform(size=n) < share
        cols = {k: np.concatenate([v, v[dup]]) for k, v in base.items()}
        cols["x_nm"][n:] += off[0] + rng.normal(size=dup.sum()) * 20
        cols["y_nm"][n:] += off[1] + rng.normal(size=dup.sum()) * 20
        m = len(cols["frame"])
        rep = channel_duplicates(LocTable({**cols, "z_nm": np.zeros(m), "photons": np.ones(m)}), warn=False)
        row = {"share_duplicated": share, "offset_true": off, **rep.to_dict()}
        rows.append(row)
        print(f"duplicates {100 * share:5.1f}% at {off}: found {np.round(rep.offset_nm, 1).tolist()}, fraction "
              f"{rep.fraction:.3f}, chance {rep.background:.3f}, warns {rep.warning is not None}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="frames per colour condition (64x64 px, 0.5/um^2)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    res = {"machine": platform.processor() or platform.machine(), "colour": colour(args.frames),
           "debias": debias_rows(), "register": registration_row(), "duplicates": duplicates_rows()}
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
