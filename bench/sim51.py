"""Session 51: the blinking process's first frames against its stationary density, and the cost of drawing them.

For on-times tau = 1, 2, 5 frames: the active emitters in frames 0, 1, 2 of 200,000 sequences over 1 µm² at 5/µm² (1e6
expected a frame: sd 0.1 % from counting alone, ``sd_per_seed`` in the JSON; 0.16 % measured over 10 seeds in frame 0 at
tau 2, session 51's review), as a fraction of the configured density, next to the closed form of a lead-in of 5 tau
(frame k short by tau e^-(5 + k / tau) / (tau + 1)); and the time of sample_emitters for a training batch (32 sequences
of 3 frames, 64x64 px of 100 nm, tau 2), where the lead-in's events are drawn and thrown away (a best-of time that swings with the machine's load: the JSON's
9.96 / 6.57 ms were not reproduced, the review read 1.05 / 1.02 ms, bench/RESULTS.md says not measurably different).

    OMP_NUM_THREADS=1 .venv/bin/python bench/sim51.py --label current --json bench/sim51.json
    OMP_NUM_THREADS=1 PYTHONPATH=<a tree with b22d427's emitters.py>/src .venv/bin/python bench/sim51.py \\
        --label stationary_b22d427 --json bench/sim51.json

Each run adds its rows under its label to the JSON (other labels kept).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from plexloc.config import EmitterConfig
from plexloc.simulation.emitters import sample_emitters


def first_frames(tau: float, seeds=(1, 2, 3), S: int = 200_000, density: float = 5.0) -> dict:
    cfg = EmitterConfig(density_per_um2=density, photons_range=(1000.0, 1000.0), on_time_frames=tau)
    per = []
    for seed in seeds:
        em = sample_emitters(cfg, n_sequences=S, n_frames=3, fov_nm=(1000.0, 1000.0),
                             generator=torch.Generator().manual_seed(seed))
        per.append((torch.bincount(em.frame_ix % 3, minlength=3).double() / (S * density)).tolist())
    mean = [statistics.fmean(p[k] for p in per) for k in range(3)]
    lead_in = [1 - tau * math.exp(-(5 + k / tau)) / (tau + 1) for k in range(3)]
    return {"tau": tau, "frames_0_1_2": mean, "per_seed": per, "closed_form_lead_in_5tau": lead_in,
            "sd_per_seed": 1 / math.sqrt(S * density)}


def batch_time(repeats: int = 7, calls: int = 50) -> dict:
    cfg = EmitterConfig(density_per_um2=1.0, photons_range=(1000.0, 5000.0), on_time_frames=2.0)
    g = torch.Generator().manual_seed(0)
    best = math.inf
    rows = 0
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            rows += len(sample_emitters(cfg, n_sequences=32, n_frames=3, fov_nm=(6400.0, 6400.0), generator=g,
                                        margin_nm=500.0))
        best = min(best, (time.perf_counter() - t) / calls)
    return {"ms_per_batch": 1e3 * best, "rows_per_batch": rows / (repeats * calls)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--label", default="current")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    out = {"first_frames": [first_frames(t) for t in (1.0, 2.0, 5.0)], "batch": batch_time(),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(f"[{args.label}] active density / configured, mean of 3 seeds (sd {out['first_frames'][0]['sd_per_seed']:.4f}"
          " each)")
    print("| tau | frame 0 | frame 1 | frame 2 | lead-in 5 tau, closed form (frame 0, 1, 2) |")
    print("|---|---|---|---|---|")
    for r in out["first_frames"]:
        f, c = r["frames_0_1_2"], r["closed_form_lead_in_5tau"]
        print(f"| {r['tau']:g} | {f[0]:.4f} | {f[1]:.4f} | {f[2]:.4f} | {c[0]:.4f}, {c[1]:.4f}, {c[2]:.4f} |")
    b = out["batch"]
    print(f"sample_emitters, training batch (32 x 3 frames, 64x64 px, tau 2): {b['ms_per_batch']:.2f} ms "
          f"(best of 7 x 50 calls), {b['rows_per_batch']:.0f} rows")
    if args.json is not None:
        data = json.loads(args.json.read_text()) if args.json.exists() else {}
        data[args.label] = out
        args.json.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
