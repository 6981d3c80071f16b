"""``plexloc train CONFIG --out RUN_DIR``: train a localizer on the fly on the simulator."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from plexloc.cli._common import add_config_argument, poor_model, progress, resolve_config, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the network on simulated data (on the fly)",
        description="Train a localizer on data simulated on the fly from CONFIG (a simulation configuration, "
        "optionally with 'model' and 'training' sections). The run folder gets config.yaml, checkpoint.pt "
        "(to resume), model.pt (best validation; what 'plexloc fit --model RUN_DIR' uses), log.csv and curves.png.",
    )
    add_config_argument(p, "training configuration (YAML)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--steps", type=int, default=None, help="train up to this many optimizer steps in total")
    stop.add_argument("--minutes", type=float, default=None, help="train for this many minutes (wall clock)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate from now on (overrides training.lr; with --resume: a fine-tuning phase)")
    p.add_argument("--lr-schedule", choices=("plateau", "cosine"), default=None,
                   help="overrides training.lr_schedule; cosine anneals to training.min_lr over this call's "
                   "--steps or --minutes")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_config(args)
    import torch

    from plexloc.config import TrainConfig, load_config
    from plexloc.errors import InputError
    from plexloc.train import Trainer

    if args.steps is not None and args.steps <= 0:
        raise InputError(f"--steps must be > 0, got {args.steps}")
    if args.minutes is not None and not (0 < args.minutes < math.inf):  # NaN too: it trained nothing and said done
        raise InputError(f"--minutes must be a finite number > 0, got {args.minutes}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config, TrainConfig)
    device = resolve_device(args.device)
    trainer = Trainer(config, args.out, device=device, resume=args.resume,
                      schedule={"lr": args.lr, "lr_schedule": args.lr_schedule})
    fixed = {"training": set(Trainer.SCHEDULE_FIELDS)}  # what --lr/--lr-schedule may change
    if args.resume and trainer.config.model_dump(exclude=fixed) != config.model_dump(exclude=fixed):
        print(f"note: resuming with the run's own configuration ({args.out / 'config.yaml'}), not {args.config}")
    if args.resume:  # the schedule changes only through --lr / --lr-schedule, never silently from the YAML
        ignored = [f"{k} {getattr(config.training, k)!r}" for k in Trainer.SCHEDULE_FIELDS
                   if getattr(config.training, k) != getattr(trainer.config.training, k)
                   and getattr(args, k, None) is None]
        if ignored:
            print(f"note: {args.config} sets {', '.join(ignored)}; a resumed run keeps its own schedule: give "
                  "--lr / --lr-schedule to change it")
    if args.resume and args.steps is not None and args.steps <= trainer.step:
        raise InputError(f"--steps {args.steps} is the total step count, and the run is already at step {trainer.step}: "
                         f"give more (e.g. --steps {trainer.step + args.steps}) or --minutes")
    s = trainer.model.spec
    n_par = sum(p.numel() for p in trainer.model.parameters())
    how = ("bfloat16" if trainer.amp else "float32") + (", channels-last" if trainer.channels_last else "")
    print(f"training on {device} ({how}): {n_par / 1e6:.2f} M parameters, window {s.window}, "
          f"{'3D' if s.is_3d else '2D'}, {s.n_channels} channel(s); run folder {args.out}"
          + (f", resuming at step {trainer.step}" if args.resume else ""))
    t = trainer.config.training
    print(f"learning rate {t.lr:g}, schedule {t.lr_schedule}" + (f" (to {t.min_lr:g})" if t.lr_schedule == "cosine" else ""))
    last = trainer.run(steps=args.steps, minutes=args.minutes, progress=progress, log=print)
    print(f"done: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min of training; model {args.out / 'model.pt'}")
    if last:
        ji = last.get("jaccard", float("nan"))
        colour = (f"; colours {last['color_accuracy']:.1f} % right, {last['color_rejection']:.1f} % rejected"
                  if "color_accuracy" in last else "")
        print(f"last validation: JI {ji:.1f} %, RMSE lat {last.get('rmse_lat', float('nan')):.1f} nm{colour}")
        if poor_model(ji, trainer.step):
            sps = last.get("samples_per_s", float("nan"))
            print(f"plexloc train: warning: the model detects poorly on its validation set (JI {ji:.1f} % after "
                  f"{trainer.step} steps, {sps:.0f} samples/s on {device}); it is not ready to fit movies: train on "
                  f"(--resume --minutes M), on a GPU, or a smaller model on the CPU (the model and training sections "
                  f"of examples/demo_2d.yaml reach about 90 % in 4 CPU minutes)", file=sys.stderr)
        from plexloc.train.validation import poor_colors

        colour = poor_colors(last)
        if colour:
            print(f"plexloc train: warning: the model is not ready to assign colours: {colour} after {trainer.step} "
                  f"steps ({trainer.elapsed_s / 60:.1f} min of training), so its per-channel photons do not yet tell "
                  f"the dyes apart (a good JI does not mean good colours); train longer (--resume --minutes M) and "
                  f"watch color_accuracy in {args.out / 'log.csv'}", file=sys.stderr)
    return 0
