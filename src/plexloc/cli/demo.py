"""``plexloc demo``: the main job end to end on a small simulated dataset (CPU-friendly).

simulate a movie -> localize it -> evaluate against the ground truth -> print the metrics table.
Until the network exists the localizer is the baseline (``plexloc detect``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate, localize and evaluate a small dataset end to end")
    p.add_argument("--config", type=Path, default=Path("examples/2d_gaussian.yaml"), help="simulation configuration")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli.main import main
    from plexloc.errors import InputError

    if not args.config.exists():
        raise InputError("configuration not found (run the demo from the repository root, or pass --config)", source=args.config)
    out = args.out
    steps = [
        ("simulate", ["simulate", str(args.config), "--frames", str(args.frames), "--out", str(out),
                      "--seed", str(args.seed), "--device", args.device]),
        ("localize", ["detect", str(out / "movie.tif"), "--config", str(out / "config.yaml"),
                      "--out", str(out / "locs.csv"), "--device", args.device]),
        ("evaluate", ["evaluate", str(out / "truth.csv"), str(out / "locs.csv"), "--dim", "2",
                      "--px-size", "100", "--json", str(out / "metrics.json")]),
    ]
    for name, argv in steps:
        t0 = time.perf_counter()
        print(f"== {name}: plexloc {' '.join(argv)}")
        rc = main(argv)
        if rc != 0:
            return rc
        print(f"   ({time.perf_counter() - t0:.1f} s)")
    print(f"demo outputs in {out}/: movie.tif, truth.csv, locs.csv, metrics.json")
    return 0
