"""Colour of the molecules that one channel missed: a ratiometric multi-colour movie fitted channel by channel
(MLE), merged (:func:`plexloc.post.channels.combine_channels`), coloured (:func:`plexloc.post.color.assign_colors`)
and scored against the truth among the rows seen in one channel only and among all rows.

A channel that missed a molecule has not measured 0 photons there but fewer than it detects (censored); the colour
of such rows comes from the channels that saw them and the probability that the others would have missed each dye
(``plexloc.post.color``, 54f6ab7). This is the colour helper's reproduction (session 47) as a bench.

Scores (matched rows, :func:`plexloc.evaluate.matching.match`, 3D): for each group (``all``, ``one``: seen in one
channel, ``only0`` / ``only1``: seen in channel 0 / 1 alone) the rows ``n``, the share of correct colours among the
rows given one (``acc_given``, %), the share rejected (``rej``, colour -1, %), conventions.md's accuracy (correct /
rows, ``acc``, %) and the wrong colours (``wrong``).

    OMP_NUM_THREADS=1 python bench/color_partial.py --photons 5000 --frames 200 --json bench/color_partial_2060_5000.json

The movie: the configuration's simulation (default ``examples/dual_color_plex_2060.yaml``) at ``--photons`` per
emitter on 48x48 frames (``--frame-size``), seed 7; each channel fitted on the CPU by ``plexloc.mle.fit_movie`` with
:func:`plexloc.post.channels.channel_config`. ``excess_noise`` for the colours follows the cameras
(:func:`plexloc.post.color.camera_excess_noise`: 2 for the examples' EMCCDs).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "plexloc" / "examples"


def simulate_and_fit(config: Path, photons: float, frames: int, frame_size: int, seed: int):
    """``(truth, merged, sim_config, timings)``: the simulated truth and the channel-by-channel fit merged."""
    import torch

    from plexloc.config import SimulationConfig, TrainConfig
    from plexloc.config.io import load_config
    from plexloc.mle import fit_movie
    from plexloc.post.channels import channel_config, combine_channels
    from plexloc.simulation.simulator import Simulator

    torch.set_num_threads(1)
    d = load_config(config, TrainConfig).simulation().model_dump()
    d["emitters"]["photons_range"] = (photons, photons)
    d["frame_size"] = (frame_size, frame_size)
    d.pop("model", None)
    d.pop("training", None)
    cfg = SimulationConfig.model_validate(d)
    if cfg.n_channels < 2 or getattr(cfg.photon_model, "kind", None) != "ratiometric":
        raise SystemExit(f"{config}: a ratiometric configuration of 2 or more channels is needed "
                         f"(photon_model.kind {getattr(cfg.photon_model, 'kind', None)!r}, {cfg.n_channels} channels)")
    t0 = time.perf_counter()
    movie = Simulator(cfg).simulate_movie(frames, generator=torch.Generator().manual_seed(seed))
    timings = {"simulate_s": time.perf_counter() - t0}
    tables = []
    for c in range(cfg.n_channels):
        t0 = time.perf_counter()
        tables.append(fit_movie(movie.frames[c].numpy(), channel_config(cfg, c), device="cpu"))
        timings[f"fit_ch{c}_s"] = time.perf_counter() - t0
    return movie.truth, combine_channels(tables, cfg), cfg, timings


def score(truth, colored) -> dict:
    """The scores of the module docstring, per group of matched rows."""
    from plexloc.evaluate.matching import match

    m = match(truth, colored, dim=3)
    tc = np.asarray(truth["color"])[m.tp_truth]
    pc = np.asarray(colored["color"])[m.tp_pred]
    seen = np.asarray(colored["n_channels_seen"])[m.tp_pred]
    ph0 = np.asarray(colored["photons_ch0"])[m.tp_pred]
    groups = {"all": np.ones(len(tc), bool), "one": seen == 1, "only0": (seen == 1) & (ph0 != 0),
              "only1": (seen == 1) & (ph0 == 0)}
    out = {}
    for name, sel in groups.items():
        n = int(sel.sum())
        given = sel & (pc >= 0)
        ng = int(given.sum())
        out[name] = {"n": n, "acc_given": round(100.0 * np.sum(pc[given] == tc[given]) / max(ng, 1), 2),
                     "rej": round(100.0 * (n - ng) / max(n, 1), 2),
                     "acc": round(100.0 * np.sum(pc[sel] == tc[sel]) / max(n, 1), 2),
                     "wrong": int(np.sum(given & (pc != tc)))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, default=EXAMPLES / "dual_color_plex_2060.yaml",
                    help="ratiometric multi-colour configuration (default: examples/dual_color_plex_2060.yaml)")
    ap.add_argument("--photons", type=float, nargs="+", default=[5000.0], help="photons per emitter, one run each")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--frame-size", type=int, default=48)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None, help="write the results here (default: beside this script, "
                    "color_partial_<config>.json)")
    args = ap.parse_args(argv)

    from plexloc.post.color import assign_colors, camera_excess_noise

    results = []
    for photons in args.photons:
        truth, merged, cfg, timings = simulate_and_fit(args.config, photons, args.frames, args.frame_size, args.seed)
        excess = camera_excess_noise([ch.camera for ch in cfg.channels]) or 1.0
        colored, report = assign_colors(merged, cfg.photon_model.ratios, excess_noise=excess)
        seen = np.bincount(np.asarray(merged["n_channels_seen"]).astype(int), minlength=cfg.n_channels + 1)
        shown = args.config.resolve()
        with contextlib.suppress(ValueError):  # the repository's examples by their relative path
            shown = shown.relative_to(EXAMPLES.parent.parent.parent)
        results.append({"config": str(shown), "photons": photons, "frames": args.frames,
                        "frame_size": args.frame_size, "seed": args.seed, "excess_noise": excess,
                        "truth_rows": len(truth), "merged_rows": len(merged),
                        "rows_by_channels_seen": seen.tolist(), "partial_rows": report.n_partial,
                        "partial_rejected": report.n_partial_rejected, "detection_limits": report.detection_limits,
                        "timings_s": {k: round(v, 1) for k, v in timings.items()},
                        "scores": score(truth, colored)})
        print(f"photons {photons:g}: {len(truth)} truth rows, {len(merged)} merged, by channels seen {seen.tolist()}",
              flush=True)

    print()
    print("| photons | rows | one-channel rows | acc. of given (one) | rejected (one) | acc. of given (all) "
          "| rejected (all) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        s = r["scores"]
        print(f"| {r['photons']:g} | {s['all']['n']} | {s['one']['n']} | {s['one']['acc_given']:.2f} % "
              f"| {s['one']['rej']:.2f} % | {s['all']['acc_given']:.2f} % | {s['all']['rej']:.2f} % |")
    path = args.json or Path(__file__).resolve().parent / f"color_partial_{args.config.stem}.json"
    from plexloc.io._atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
