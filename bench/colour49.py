"""Colour assignment on network-like tables and a user's walk through colours and their scores (session 49, colour).

``--part network``: tables shaped like the network's output, per-channel photons ``photons_chN`` with predicted
``sigma_photons_chN``. Each molecule is one dye k (equal shares) with a total of photons log-normal about ``--photons``
(sigma 0.6 in log), its channels' expected photons ``N r_k``; a share ``merged`` of the rows is two emitters of
different dyes fitted as one (the second with 0.25-1 times the first's photons). The photons scatter ``--excess`` times
the EMCCD shot noise of their expectation (``sqrt(2 (mu + 4 pi bg))``, bg 50 photons/px; a network is not efficient),
and the predicted sigma is ``b`` times that scatter as the row's own photons give it, times a log-normal spread of
0.2 (the sigma head's own error). ``b`` 1: calibrated sigmas; 0.5 and 0.3: too small; 2: too large. For each
(ratios, merged share, b): the single-dye rows' rejected share and wrong colours, the share right among those at
``color_prob`` >= 0.9 and the expected calibration error (ECE, |mean color_prob - share right| per 0.05 bin of
``color_prob`` >= 0.5, weighted), the merged rows rejected and at ``color_prob`` >= 0.99, and the noise scale;
eq. 3 alone and with ``mixed_prior`` 0.01.

``--part walk``: ``plexloc simulate`` dual_color_splitview (64 x 128 px, dyes 0.8 / 0.3 in channel 0), ``plexloc fit
--method mle``, ``plexloc color`` with the ratios given (``--config``) and estimated, with and without
``--reject-mixed 0.01``, and ``plexloc evaluate`` against the truth (colour accuracy and rejection). ``--part mle``:
the walk's MLE tables classed as bench/colourwalk48.py does (isolated single-dye rows, two dyes' emitters fitted as
one): rejected and wrong per class with eq. 3 alone, ``misfit_alpha`` 1e-3 and ``mixed_prior`` 0.01 / 0.03.

Run it with the code to measure on the path (``PYTHONPATH=src``, or a worktree's ``src`` for the code before):

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/colour49.py --part network --json bench/colour49.json
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/colour49.py --part walk --seeds 3 4 --out /tmp/colour49
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/colour49.py --part mle --seeds 3 4 --out /tmp/colour49
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATIOS = {"dual_color": [[0.8, 0.2], [0.3, 0.7]], "af647_cf680": [[0.173, 0.827], [0.019, 0.981]]}


def network_like_table(ratios, *, n: int = 10000, photons: float = 1000.0, merged: float = 0.0, excess: float = 1.5,
                       b: float = 1.0, bg: float = 50.0, spread: float = 0.2, seed: int = 0):
    """``(table, dye, is_merged)`` (module docstring)."""
    from plexloc.table import LocTable

    r = np.asarray(ratios, float)
    K, C = r.shape
    rng = np.random.default_rng(seed)
    dye = rng.integers(0, K, n)
    total = np.exp(rng.normal(np.log(photons), 0.6, n))
    mu = total[:, None] * r[dye]
    is_merged = rng.uniform(size=n) < merged
    other = (dye + rng.integers(1, K, n)) % K
    second = total * rng.uniform(0.25, 1.0, n)
    mu[is_merged] += second[is_merged, None] * r[other[is_merged]]
    bg_px = 4.0 * np.pi * bg
    obs = mu + rng.normal(size=mu.shape) * excess * np.sqrt(2.0 * (mu + bg_px))
    sig = b * excess * np.sqrt(2.0 * (np.maximum(obs, 0.0) + bg_px)) * np.exp(rng.normal(0.0, spread, mu.shape))
    cols = {"frame": np.arange(n), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
            "photons": obs.sum(axis=1), "bg": np.full(n, bg)}
    for c in range(C):
        cols[f"photons_ch{c}"] = obs[:, c]
        cols[f"sigma_photons_ch{c}"] = sig[:, c]
    return LocTable(cols), dye, is_merged


def ece(p: np.ndarray, right: np.ndarray) -> float:
    """Expected calibration error over ``p >= 0.5`` in bins of 0.05 (weighted by rows)."""
    keep = p >= 0.5
    p, right = p[keep], right[keep]
    if not len(p):
        return float("nan")
    idx = np.clip(((p - 0.5) / 0.05).astype(int), 0, 9)
    return float(sum(abs(p[idx == i].mean() - right[idx == i].mean()) * np.count_nonzero(idx == i)
                     for i in range(10) if np.any(idx == i)) / len(p))


def network_part(seeds: list[int], n: int, photons: float) -> dict:
    from plexloc.post.color import assign_colors

    out = {}
    for name, ratios in RATIOS.items():
        for merged in (0.0, 0.1, 0.3):
            for b in (2.0, 1.0, 0.5, 0.3):
                key = f"{name} merged={merged:g} b={b:g}"
                res = {}
                for variant, kw in (("eq3", {}), ("mixed 0.01", {"mixed_prior": 0.01})):
                    acc = {"singles": 0, "singles_rejected": 0, "singles_wrong": 0, "kept_p90": 0, "right_p90": 0,
                           "wrong_p999": 0, "merged": 0, "merged_rejected": 0, "merged_p99": 0, "ece": [],
                           "noise_factor": []}
                    for seed in seeds:
                        table, dye, is_merged = network_like_table(ratios, n=n, photons=photons, merged=merged, b=b,
                                                                   seed=seed)
                        colored, report = assign_colors(table, ratios, 0.9, **kw)
                        c, p = np.asarray(colored["color"]), np.asarray(colored["color_prob"])
                        single = ~is_merged
                        # eq. 3's own argmax where rejected: color -1 hides it, color_prob is its probability
                        right = c == dye
                        acc["singles"] += int(single.sum())
                        acc["singles_rejected"] += int(np.sum(single & (c < 0)))
                        acc["singles_wrong"] += int(np.sum(single & (c >= 0) & (c != dye)))
                        acc["kept_p90"] += int(np.sum(single & (c >= 0)))
                        acc["right_p90"] += int(np.sum(single & right))
                        acc["wrong_p999"] += int(np.sum(single & (c >= 0) & (c != dye) & (p >= 0.999)))
                        acc["merged"] += int(is_merged.sum())
                        acc["merged_rejected"] += int(np.sum(is_merged & (c < 0)))
                        acc["merged_p99"] += int(np.sum(is_merged & (p >= 0.99)))
                        kept = single & (c >= 0)
                        acc["ece"].append(ece(p[kept], right[kept]))
                        acc["noise_factor"].append(report.noise_factor)
                    acc["singles_rejected_pct"] = 100.0 * acc["singles_rejected"] / max(acc["singles"], 1)
                    acc["right_among_p90_pct"] = 100.0 * acc["right_p90"] / max(acc["kept_p90"], 1)
                    acc["merged_rejected_pct"] = 100.0 * acc["merged_rejected"] / max(acc["merged"], 1)
                    acc["ece"] = float(np.mean(acc["ece"]))
                    res[variant] = acc
                out[key] = res
                e, m = res["eq3"], res["mixed 0.01"]
                print(f"{key:32s} nf {np.mean([v or 1 for v in e['noise_factor']]):5.2f} | eq3: singles rej "
                      f"{e['singles_rejected_pct']:5.1f} % right|p>=.9 {e['right_among_p90_pct']:5.2f} % wrong@.999 "
                      f"{e['wrong_p999']:3d} ECE {e['ece']:.4f} merged rej {e['merged_rejected_pct']:5.1f} % | mixed: "
                      f"singles rej {m['singles_rejected_pct']:5.1f} % merged rej {m['merged_rejected_pct']:5.1f} % "
                      f"p>=.99 {m['merged_p99']}", flush=True)
    return out


def plexloc(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "plexloc.cli.main", *args], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"plexloc {' '.join(args)}: {run.stderr}")
    return run.stdout + run.stderr


def walk_part(out: Path, frames: int, density: float, seed: int) -> dict:
    from plexloc.cli.color import register  # noqa: F401  (the code measured)

    config = ROOT / "src" / "plexloc" / "examples" / "dual_color_splitview.yaml"
    d = out / f"dens{density:g}_seed{seed}"
    if not (d / "mle.csv").exists():
        plexloc("simulate", str(config), "--frames", str(frames), "--density", str(density), "--seed", str(seed),
                "--out", str(d))
        plexloc("fit", str(d / "movie.tif"), "--method", "mle", "--config", str(d / "config.yaml"),
                "--out", str(d / "mle.csv"))
    import plexloc.post.color as pc

    has_scale = "noise_scale" in inspect.signature(pc.assign_colors).parameters
    runs = {"given": ["--config", str(d / "config.yaml")], "estimated": ["--colors", "2"],
            "given, mixed 0.01": ["--config", str(d / "config.yaml"), "--reject-mixed", "0.01"]}
    if has_scale:
        runs["given, --no-noise-scale"] = ["--config", str(d / "config.yaml"), "--no-noise-scale"]
    res = {}
    for name, extra in runs.items():
        tag = re.sub(r"[^a-z0-9]+", "_", name)
        colored = d / f"colored_{tag}.csv"
        text = plexloc("color", str(d / "mle.csv"), "--out", str(colored), "--excess-noise", "2",
                       "--figure", str(d / f"ratios_{tag}.png"), "--json", str(d / f"color_{tag}.json"), *extra)
        ev = plexloc("evaluate", str(d / "truth.csv"), str(colored), "--json", str(d / f"eval_{tag}.json"))
        with open(d / f"eval_{tag}.json") as f:
            scores = json.load(f)
        with open(d / f"color_{tag}.json") as f:
            report = json.load(f)
        res[name] = {"color_accuracy": scores.get("color_accuracy"), "color_rejection": scores.get("color_rejection"),
                     "jaccard": scores.get("jaccard"), "noise_factor": report.get("noise_factor"),
                     "counts": report.get("counts"),
                     "said": [line for line in (text + ev).splitlines() if "warning" in line.lower()
                              or line.startswith("estimated ratios") or line.startswith("noise scale")]}
        print(f"{name:28s} accuracy {res[name]['color_accuracy']:.2f} % rejection {res[name]['color_rejection']:.2f} %"
              f" noise {res[name]['noise_factor']} {res[name]['said']}", flush=True)
    return res


def mle_part(out: Path, frames: int, density: float, seeds: list[int]) -> dict:
    """The walk's MLE tables classed against the truth as bench/colourwalk48.py does (isolated single-dye rows,
    merged different-dye rows, merged same-dye rows): rejected and wrong per class, eq. 3 alone, misfit and mixed."""
    import warnings

    sys.path.insert(0, str(ROOT / "bench"))
    from colourwalk48 import score

    from plexloc.io import read_table

    res = {}
    for seed in seeds:
        d = out / f"dens{density:g}_seed{seed}"
        if not (d / "mle.csv").exists():
            walk_part(out, frames, density, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res[f"seed {seed}"] = score(read_table(d / "truth.csv"), read_table(d / "mle.csv"))
        print(f"seed {seed}: {json.dumps(res[f'seed {seed}'])}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("network", "walk", "mle"), required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n", type=int, default=10000, help="rows per network-like table")
    ap.add_argument("--photons", type=float, default=1000.0, help="median photons of a network-like row")
    ap.add_argument("--out", type=Path, default=Path("/tmp/colour49"))
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--density", type=float, default=1.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.part == "network":
        res = network_part(args.seeds, args.n, args.photons)
    elif args.part == "walk":
        res = {f"seed {s}": walk_part(args.out, args.frames, args.density, s) for s in args.seeds}
    else:
        res = mle_part(args.out, args.frames, args.density, args.seeds)
    if args.json is not None:
        old = json.loads(args.json.read_text()) if args.json.exists() else {}
        old[args.part] = res
        args.json.write_text(json.dumps(old, indent=1))


if __name__ == "__main__":
    main()
