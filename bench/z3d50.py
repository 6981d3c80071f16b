"""Session 50, helper z3d: a 3D astigmatic user's walk through de-biasing, per z slab.

``examples/3d_astigmatic.yaml`` (100 nm pixels, EMCCD, astigmatic Gaussian) is simulated with its emitters over
z -600..600 nm (its own range is -500..500: the 100 nm beyond each end are the "z outside the range" case) at 0.1 and
1 active emitters per um^2, and fitted with ``plexloc fit --method mle`` under the example's own config (fit range
-500..500). On each fit and on network-like tables made from the same truth, ``plexloc.post.debias.debias`` (50-nm z
slabs, 200 rows at least, the defaults) is scored before and after, per 100-nm slab of the true z: matched rows, lateral
RMSE (nm) and the gridding deviation of x (fraction; the noise level of the same rows at other periods beside it).
For the MLE fits also the z-scores (error / CRLB) per slab (``plexloc.evaluate.uncertainty.zscore_slabs``).

Network-like tables (no network is trained here): every truth row gets a lateral error of sd ``sigma(z)`` (the
astigmatic widths' geometric mean over sqrt(photons), times 1.5), a ``sigma_x_nm``/``sigma_y_nm`` of that value, and a
pull towards (``pull`` > 0) or away from the pixel centre whose exponent grows linearly over z
(``plexloc.post.synthetic_plex.pulled_table``'s map); ``flip``: pulled at the bottom of the range, pushed at the top;
``scaled by sigma``: each row's exponent times its sigma over the median sigma (uncertain rows pulled harder, what the
sigma weighting of the shifts assumes); ``no sigma columns``: the same table de-biased without its sigma columns (the
plain mapped shift); ``sigma_power 1``: the shifts in proportion to sigma, the only weighting before session 50 (the
default now measures the power from the table).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/z3d50.py --out bench/z3d50.json`` (CPU; 3.2 min on the 2-core session-50 machine, shared).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from plexloc.evaluate.gridding import gridding_deviation, gridding_noise
from plexloc.evaluate.matching import match
from plexloc.evaluate.uncertainty import zscore_slabs
from plexloc.io.tables import read_table
from plexloc.post.debias import debias
from plexloc.table import LocTable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "3d_astigmatic.yaml"
PX = 100.0
REPORT_SLABS = np.arange(-600.0, 601.0, 100.0)


def plexloc(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "plexloc.cli.main", *args], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"plexloc {' '.join(args)}: {run.stderr}")
    return run.stdout + run.stderr


def simulate_and_fit(work: Path, density: float, frames: int, seed: int) -> tuple[LocTable, LocTable]:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["emitters"]["z_range_nm"] = [-600.0, 600.0]
    cfg_path = work / "sim600.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    sim = work / f"sim_{density:g}"
    plexloc("simulate", str(cfg_path), "--frames", str(frames), "--out", str(sim), "--density", f"{density:g}",
            "--seed", str(seed))
    plexloc("fit", str(sim / "movie.tif"), "--method", "mle", "--config", str(EXAMPLE), "--out", str(sim / "mle.csv"))
    return read_table(sim / "truth.csv"), read_table(sim / "mle.csv")


def network_like(truth: LocTable, *, pull: float, flip: bool = False, by_sigma: bool = False, seed: int = 0) -> LocTable:
    rng = np.random.default_rng(seed)
    z = np.asarray(truth["z_nm"], float)
    wx = 120.0 * np.sqrt(1 + ((z + 250.0) / 400.0) ** 2)
    wy = 120.0 * np.sqrt(1 + ((z - 250.0) / 400.0) ** 2)
    sig = 1.5 * np.sqrt(wx * wy) / np.sqrt(np.asarray(truth["photons"], float))
    xy = np.c_[truth["x_nm"], truth["y_nm"]] + rng.normal(size=(len(z), 2)) * sig[:, None]
    frac = np.clip((z + 600.0) / 1200.0, 0.0, 1.0)
    a = (pull * (1.0 - 2.0 * frac) if flip else pull * (0.5 + frac))[:, None]  # flip: +pull at -600, -pull at +600
    if by_sigma:  # the uncertain rows pulled harder (the model de-biasing's sigma weighting assumes)
        a = a * (sig / np.median(sig))[:, None]
    c = (np.floor(xy / PX) + 0.5) * PX
    u = (xy - c) / PX
    moved = c + PX * np.sign(u) * np.abs(2 * u) ** (1 + a) / 2
    return LocTable({"frame": truth["frame"], "x_nm": moved[:, 0], "y_nm": moved[:, 1], "z_nm": z,
                     "photons": truth["photons"], "sigma_x_nm": sig, "sigma_y_nm": sig})


def slab_rows(truth: LocTable, before: LocTable, after: LocTable) -> list[dict]:
    """Per 100-nm slab of true z: matched rows (matched on ``before``; debias moves x, y by a few nm only), RMSE_lat and
    gridding of x before and after."""
    m = match(truth, before, dim=3)
    zt = np.asarray(truth["z_nm"], float)[m.tp_truth]
    tx, ty = np.asarray(truth["x_nm"])[m.tp_truth], np.asarray(truth["y_nm"])[m.tp_truth]
    rows = []
    for lo, hi in zip(REPORT_SLABS[:-1], REPORT_SLABS[1:]):
        sel = (zt >= lo) & (zt < hi)
        row = {"z_lo": float(lo), "z_hi": float(hi), "n": int(sel.sum())}
        if sel.sum() >= 20:
            p = m.tp_pred[sel]
            for tag, tab in (("before", before), ("after", after)):
                dx, dy = np.asarray(tab["x_nm"])[p] - tx[sel], np.asarray(tab["y_nm"])[p] - ty[sel]
                row[f"rmse_lat_{tag}"] = float(np.sqrt(np.mean(dx**2 + dy**2)))
                row[f"grid_x_{tag}"] = gridding_deviation(np.asarray(tab["x_nm"])[p], PX)
            row["grid_noise_before"] = gridding_noise(np.asarray(before["x_nm"])[p], np.asarray(before["y_nm"])[p], PX)
        rows.append(row)
    return rows


def total(truth: LocTable, before: LocTable, after: LocTable) -> dict:
    m = match(truth, before, dim=3)
    tx, ty = np.asarray(truth["x_nm"])[m.tp_truth], np.asarray(truth["y_nm"])[m.tp_truth]
    out = {"n_pred": len(before), "tp": int(m.n_tp)}
    for tag, tab in (("before", before), ("after", after)):
        x, y = np.asarray(tab["x_nm"])[m.tp_pred], np.asarray(tab["y_nm"])[m.tp_pred]
        out[f"rmse_lat_{tag}"] = float(np.sqrt(np.mean((x - tx) ** 2 + (y - ty) ** 2)))
        out[f"grid_x_{tag}"] = gridding_deviation(x, PX)
        out[f"grid_y_{tag}"] = gridding_deviation(y, PX)
    out["grid_noise_before"] = gridding_noise(np.asarray(before["x_nm"])[m.tp_pred], np.asarray(before["y_nm"])[m.tp_pred], PX)
    return out


def case(name: str, truth: LocTable, table: LocTable, **kw) -> dict:
    t0 = time.perf_counter()
    out, rep = debias(table, PX, **kw)
    dt = time.perf_counter() - t0
    row = {"case": name, "options": dict(kw), "seconds": dt,
           "report": {k: v for k, v in rep.to_dict().items()}, **total(truth, table, out),
           "slabs": slab_rows(truth, table, out)}
    if "crlb_x_nm" in table:  # an MLE fit: is its CRLB its uncertainty, per slab of the true z (issue 10)?
        row["zscore_slabs"] = zscore_slabs(table, match(truth, table, dim=3), truth, REPORT_SLABS)
        for s in row["zscore_slabs"]:
            print(f"   z-score z {s['z_lo']:+5.0f}..{s['z_hi']:+5.0f}: n {s['n']:5d}  robust sd x {s['zscore_rsd_x']:.2f} "
                  f"y {s['zscore_rsd_y']:.2f} z {s['zscore_rsd_z']:.2f}; sd x {s['zscore_std_x']:.2f} "
                  f"z {s['zscore_std_z']:.2f}")
    print(f"{name}: {row['n_pred']} rows, {rep.n_slabs} slabs, {rep.n_skipped} rows left as they were; RMSE_lat "
          f"{row['rmse_lat_before']:.2f} -> {row['rmse_lat_after']:.2f} nm; gridding x {row['grid_x_before']:.3f} -> "
          f"{row['grid_x_after']:.3f} (noise {row['grid_noise_before']:.3f}); {dt:.2f} s", flush=True)
    for s in row["slabs"]:
        if "rmse_lat_before" in s:
            print(f"   z {s['z_lo']:+5.0f}..{s['z_hi']:+5.0f}: n {s['n']:5d}  RMSE {s['rmse_lat_before']:6.2f} -> "
                  f"{s['rmse_lat_after']:6.2f}  grid_x {s['grid_x_before']:.3f} -> {s['grid_x_after']:.3f} "
                  f"(noise {s['grid_noise_before']:.3f})")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "z3d50.json")
    ap.add_argument("--frames", type=int, nargs=2, default=(3000, 600), metavar=("F_0.1", "F_1"),
                    help="frames at 0.1 and at 1 emitter per um^2")
    args = ap.parse_args()
    result = {"machine": platform.platform(), "python": platform.python_version(), "px_size_nm": PX, "densities": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for density, frames in zip((0.1, 1.0), args.frames):
            truth, mle = simulate_and_fit(Path(tmp), density, frames, seed=1)
            rows = [case(f"mle {density:g}/um2", truth, mle)]
            for pull, flip, by_sigma in ((0.0, False, False), (1.0, False, False), (1.0, False, True), (1.0, True, False)):
                net = network_like(truth, pull=pull, flip=flip, by_sigma=by_sigma)
                name = (f"network-like {density:g}/um2 pull {pull:g}{' flipped over z' if flip else ''}"
                        f"{' scaled by sigma' if by_sigma else ''}")
                rows.append(case(name, truth, net))
                if flip:
                    rows.append(case(name + ", one slab", truth, net, slab_nm=1e4))
                else:
                    rows.append(case(name + ", no sigma columns", truth, net.without_columns("sigma_x_nm", "sigma_y_nm")))
                if pull and not flip:  # the weighting before session 50: shifts in proportion to sigma
                    rows.append(case(name + ", sigma_power 1", truth, net, sigma_power=1.0))
            result["densities"][f"{density:g}"] = {"frames": frames, "truth_rows": len(truth), "cases": rows}
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
