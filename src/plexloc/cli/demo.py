"""``plexloc demo``: the main job end to end on a small simulated dataset, on the CPU in minutes.

simulate a movie -> train a small network on the simulator -> fit the movie -> evaluate against the
ground truth -> render an image -> print the metrics table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from plexloc.cli._common import nonnegative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate, train, fit, evaluate and render a small dataset end to end",
        description="The main job end to end, each step a plexloc command printed before it runs: simulate a test "
        "movie from CONFIG, train a small network on the simulator for --minutes, fit the movie, evaluate against "
        "the truth and render the image. Writes movie.tif, truth.csv, run/ (model.pt, log.csv, curves.png), "
        "locs.csv, metrics.json and render.png into --out.",
    )
    p.add_argument("--config", type=Path, default=Path("examples/demo_2d.yaml"),
                   help="training configuration (default examples/demo_2d.yaml, the installed copy outside the repository)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--frames", type=positive_int, default=500, help="frames of the test movie (default 500)")
    p.add_argument("--frame-size", type=positive_int, nargs=2, default=(64, 64), metavar=("H", "W"),
                   help="test movie frame size in pixels (default 64 64)")
    p.add_argument("--minutes", type=positive_float, default=4.0, help="training time in minutes (default 4)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed of the test movie, >= 0 (default 0)")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch in training and fitting (default: torch's choice, all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from plexloc.cli.main import COMMANDS, main
    from plexloc.config.examples import resolve_config_path
    from plexloc.errors import InputError

    if args.threads:  # the fit (and simulation) run in this process: train passes it on as well
        import torch

        torch.set_num_threads(args.threads)
    args.config = resolve_config_path(args.config)  # examples/demo_2d.yaml outside the repository: the installed copy
    if not args.config.exists():
        raise InputError("configuration not found (`plexloc examples` lists the installed ones)", source=args.config)
    out = args.out
    run_dir = out / "run"
    if run_dir.exists():  # a fresh model every time: the demo shows the whole job
        shutil.rmtree(run_dir)
    h, w = args.frame_size
    steps = [
        ("simulate", ["simulate", str(args.config), "--frames", str(args.frames), "--out", str(out), "--frame-size",
                      str(h), str(w), "--seed", str(args.seed + 1000), "--device", args.device]),
        ("train", ["train", str(args.config), "--out", str(run_dir), "--minutes", str(args.minutes), "--device", args.device]
         + (["--threads", str(args.threads)] if args.threads else [])),
        ("fit", ["fit", str(out / "movie.tif"), "--model", str(run_dir), "--out", str(out / "locs.csv"), "--device", args.device]),
        ("evaluate", ["evaluate", str(out / "truth.csv"), str(out / "locs.csv"), "--dim", "2",
                      "--px-size", "100", "--json", str(out / "metrics.json")]),
    ]
    if "render" in COMMANDS:
        from plexloc.config import load_config

        px = load_config(args.config).px_size_xy_nm
        extent = [0.0, w * px[0], 0.0, h * px[1]]  # the movie's field of view, even if nothing was found
        steps.append(("render", ["render", str(out / "locs.csv"), "--out", str(out / "render.png"), "--pixel-size", "10",
                                 "--extent", *(f"{v:g}" for v in extent)]))
    t_all = time.perf_counter()
    for name, argv in steps:
        t0 = time.perf_counter()
        print(f"== {name}: plexloc {' '.join(argv)}", flush=True)
        rc = main(argv)
        if rc != 0:
            return rc
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"demo done in {(time.perf_counter() - t_all) / 60:.1f} min; outputs in {out}/: movie.tif, truth.csv, "
          f"run/ (model.pt, log.csv, curves.png), locs.csv, metrics.json" + (", render.png" if "render" in COMMANDS else ""))
    return 0
