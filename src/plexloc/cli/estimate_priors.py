"""``plexloc estimate-priors MOVIE --config CONFIG --out PRIORS.yaml``: training priors from an MLE pre-fit."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import (check_outputs, nonnegative_int, path_with_suffix, positive_int, resolve_device,
                                 write_json)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate-priors",
        help="pre-fit a movie by MLE and write its photon/background ranges as a training config",
        description="Localize a subset of frames by maximum likelihood, estimate the emitter flux range "
        "(from frames in the middle of blinking events), the background range (per-frame levels) and, for "
        "several channels, the photon fractions, and write CONFIG with those ranges replaced (a valid "
        "configuration for training). The movie's first frames are checked against the camera of CONFIG (noise, "
        "saturation): a wrong camera makes wrong ranges. Several channels: one movie per channel, or one split-view movie "
        "cut by the split_view section of CONFIG (as fit --method mle does). See plexloc.mle.priors for how the ranges are derived.",
    )
    p.add_argument("movie", type=Path, nargs="+", help="TIFF stack or folder of TIFFs: one per channel, or one split-view movie "
                   "where CONFIG has a split_view section (its boxes cut the channels out)")
    p.add_argument("--config", type=Path, required=True, help="configuration with PSF, camera and channels")
    p.add_argument("--out", type=path_with_suffix(".yaml", ".yml"), required=True,
                   help="output configuration (.yaml or .yml)")
    p.add_argument("--frames", "--max-frames", dest="frames", type=positive_int, default=2000, metavar="N",
                   help="frames pre-fitted at most (default 2000); --max-frames, as calibrate-camera names it, is the "
                        "same option")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers behind the ranges")
    p.add_argument("--roi-offset", type=nonnegative_int, nargs=2, default=None, metavar=("X", "Y"),
                   help="chip pixel (x, y) at the frames' corner, as plexloc fit --method mle takes it: full-chip sCMOS "
                        "maps are cut there and several channels' transforms act there (default: the camera ROI "
                        "recorded in the movie's Micro-Manager metadata, else the configuration's roi_offset_px)")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from plexloc.config import load_config, save_config
    from plexloc.mle.pipeline import check_movie_count
    from plexloc.mle.priors import estimate_priors

    check_outputs(args.out, args.json)  # before the movie is fitted, not after
    config = load_config(args.config)
    movie = args.movie[0] if len(args.movie) == 1 else args.movie
    check_movie_count(movie, config, source=args.config)  # the error names the configuration's file
    priors, summary = estimate_priors(
        movie, config, max_frames=args.frames, device=resolve_device(args.device), progress=True,
        roi_offset_px=None if args.roi_offset is None else tuple(args.roi_offset),
    )
    save_config(priors, args.out)
    for note in summary.get("camera_notes", []):
        print(f"plexloc estimate-priors: note: {note}", file=sys.stderr)
    if args.json is not None:
        write_json(summary, args.json)
    lo, hi = summary["photons_range"]
    blo, bhi = summary["background_range"]
    print(
        f"wrote {args.out}: photons_range [{lo:.0f}, {hi:.0f}], background range [{blo:.1f}, {bhi:.1f}] "
        f"({summary['localizations']} localizations in {summary['frames_fitted']} frames)"
    )
    _cpu_model_note(priors, args.out)
    return 0


def _cpu_model_note(priors, out) -> None:
    """Without a GPU, the DECODE-sized network written into ``out`` trains at a few samples/s: a 2-minute run made 11
    steps and a model that found nothing. Say so, and what trains on a CPU."""
    import sys

    import torch

    features = getattr(getattr(priors, "model", None), "features", 0)
    if torch.cuda.is_available() or features < 32:
        return
    print(f"plexloc estimate-priors: note: {out} trains the default network ({features} features), which needs a GPU "
          "(about 20-30 minutes there); this machine has none: to train on its CPU, take the model and training "
          "sections of examples/demo_2d.yaml (16 features; about 90 % JI on its data after 4 CPU minutes) or "
          "train elsewhere (plexloc submit to a GPU worker)", file=sys.stderr)
