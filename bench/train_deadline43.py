"""Session 43: how far ``plexloc train --minutes M`` runs past its deadline.

``Trainer.run(minutes=M)`` on the CPU, one thread, for each configuration and budget: the wall time of the call
(from the start of ``run``, as the deadline is counted), its overrun (wall - 60 M, seconds), the number of
validations and the longest validation with its saves (model.pt, checkpoint.pt, log.csv, curves.png), and the
setup before it (building the trainer: the network, the validation set).

    OMP_NUM_THREADS=1 python bench/train_deadline43.py --minutes 0.5,1 --repeats 2 --out bench/train_deadline43.json
    OMP_NUM_THREADS=1 python bench/train_deadline43.py --minutes 1 --repeats 2 --out bench/train_deadline43_1min.json
    # the old code (before 057de9f): the same with PYTHONPATH at its source tree (a git worktree), into
    # bench/train_deadline43_before.json and bench/train_deadline43_1min_before.json
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/wt_old/src python bench/train_deadline43.py --minutes 0.5,1 --repeats 2 \
        --out bench/train_deadline43_before.json

The machine is shared (2 cores, other jobs running): compare the runs made one after the other (the _1min pair).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {"demo_2d": Path(__file__).resolve().parents[1] / "src" / "plexloc" / "examples" / "demo_2d.yaml"}


def one(config: str, minutes: float, repeat: int) -> dict:
    from plexloc.config import TrainConfig, load_config
    from plexloc.train import Trainer

    cfg = load_config(CONFIGS[config], TrainConfig)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        tr = Trainer(cfg, Path(tmp) / "run", device="cpu")
        setup = time.monotonic() - t0
        durations, validate = [], tr.validate

        def timed(*args, **kwargs):
            t = time.monotonic()
            try:
                return validate(*args, **kwargs)
            finally:
                durations.append(time.monotonic() - t)

        tr.validate = timed
        t1 = time.monotonic()
        tr.run(minutes=minutes)
        wall = time.monotonic() - t1
    return {"config": config, "minutes": minutes, "repeat": repeat, "wall_s": wall, "overrun_s": wall - 60.0 * minutes,
            "setup_s": setup, "steps": tr.step, "validations": len(durations),
            "validate_max_s": max(durations) if durations else None,
            "validate_last_s": durations[-1] if durations else None}


def table(rows: list[dict]) -> str:
    out = ["| config | --minutes | run() wall (s) | overrun (s) | steps | validations | longest validation + save (s) "
           "| last validation (s) | setup (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['config']} | {r['minutes']:g} | {r['wall_s']:.2f} | {r['overrun_s']:+.2f} | {r['steps']} | "
                   f"{r['validations']} | {r['validate_max_s']:.2f} | {r['validate_last_s']:.2f} | {r['setup_s']:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="demo_2d", help="comma-separated: " + ", ".join(CONFIGS))
    ap.add_argument("--minutes", default="0.5,1", help="comma-separated budgets")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for config in args.configs.split(","):
        for m in (float(v) for v in args.minutes.split(",")):
            for k in range(args.repeats):
                rows.append(one(config, m, k))
                print(f"{config} --minutes {m:g} (#{k}): overrun {rows[-1]['overrun_s']:+.2f} s", file=sys.stderr,
                      flush=True)
    print(table(rows))
    args.out.write_text(json.dumps({"torch": torch.__version__, "threads": 1, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
