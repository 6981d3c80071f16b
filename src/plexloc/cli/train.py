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
        "(to resume), model.pt (best validation; what 'plexloc fit --model RUN_DIR' uses), log.csv and curves.png; other "
        "files there are left alone, and a new run refuses a folder that holds a run, or files of those names that "
        "are not its own (a config.yaml of yours: keep the configuration outside the run folder).",
    )
    add_config_argument(p, "training configuration (YAML)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--steps", type=int, default=None, help="train up to this many optimizer steps in total")
    stop.add_argument("--minutes", type=float, default=None,
                      help="train for this many minutes of wall clock, validations and saves included (the setup "
                      "before training is not): a step starts only while it and a validation with its saves, as long "
                      "as this run's took, still fit, so the call ends by the deadline (at least two steps are "
                      "trained)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--init-from", type=Path, default=None, metavar="MODEL",
                   help="a new run whose network starts from a trained model's weights (a run folder or a model .pt, "
                   "bfloat16 files included), with a fresh optimizer and schedule: fine-tuning for a changed camera, "
                   "background, photon range or density. The network's architecture (channels, model section, 2D/3D) "
                   "must be CONFIG's")
    p.add_argument("--clock-offset-min", default=None, metavar="M|source",
                   help="with --init-from: the training minutes behind the weights, from which log.csv's time and step "
                   "columns go on ('source': the model's own record of minutes and steps, and its run's log rows "
                   "before this run's: one learning curve; a number: those minutes, the steps from the record). "
                   "Default: the clock starts at 0. --steps then counts from the offset")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate from now on (overrides training.lr; with --resume: a fine-tuning phase)")
    p.add_argument("--lr-schedule", choices=("plateau", "cosine"), default=None,
                   help="overrides training.lr_schedule; cosine anneals to training.min_lr over this call's "
                   "--steps or --minutes. A plain --resume continues the phase it was in where its --steps or "
                   "--minutes lie within it; beyond its end (or in the other unit) the phase is stretched to end with "
                   "this call, the rate going on as in one cosine over the whole phase (said in a line)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_config(args)
    import torch

    from plexloc.config import TrainConfig, load_config
    from plexloc.errors import InputError
    from plexloc.train import Trainer
    from plexloc.train.trainer import check_targets

    if args.steps is not None and args.steps <= 0:
        raise InputError(f"--steps must be > 0, got {args.steps}")
    if args.minutes is not None and not (0 < args.minutes < math.inf):  # NaN too: it trained nothing and said done
        raise InputError(f"--minutes must be a finite number > 0, got {args.minutes}")
    clock = args.clock_offset_min
    if clock is not None and clock != "source":
        try:
            clock = float(clock)
        except ValueError:
            raise InputError(f"--clock-offset-min: a number of minutes or 'source', got {clock!r}") from None
        if not (0 <= clock < math.inf):
            raise InputError(f"--clock-offset-min must be a finite number >= 0, got {args.clock_offset_min}")
    if clock is not None and args.init_from is None:
        raise InputError("--clock-offset-min is the training behind the weights of --init-from: give --init-from too")
    if args.init_from is not None and args.resume:
        raise InputError("--init-from starts a new run from a model's weights, --resume continues the run in --out "
                         "(an --init-from run included): give one of them")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config, TrainConfig)
    if not args.resume:  # a resumed run trains on its own configuration (its maps were checked when it began)
        check_targets(config, source=args.config)
        _check_camera_maps(config, args.config)
    device = resolve_device(args.device)
    trainer = Trainer(config, args.out, device=device, resume=args.resume,
                      schedule={"lr": args.lr, "lr_schedule": args.lr_schedule}, init_from=args.init_from,
                      clock_offset_min=clock)
    fixed = {"training": set(Trainer.SCHEDULE_FIELDS)}  # what --lr/--lr-schedule may change
    if args.resume:
        differ = config_differences(trainer.config.model_dump(mode="json", exclude=fixed),
                                    config.model_dump(mode="json", exclude=fixed))
        if differ:  # the note named no field: an edit of the YAML looked taken and was not
            more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
            print(f"note: resuming with the run's own configuration (kept in {args.out / 'checkpoint.pt'}, as "
                  f"{args.out / 'config.yaml'} shows it), not {args.config}, which differs in "
                  + "; ".join(f"{k} (the run {a}, {args.config.name} {b})" for k, a, b in differ[:6]) + more
                  + f": a resumed run trains as it began; to train with the changed configuration, start a new run "
                  f"from this one's weights (plexloc train {args.config} --out NEW_RUN --init-from {args.out})")
    if args.resume:  # the schedule changes only through --lr / --lr-schedule, never silently from the YAML
        ignored = [f"{k} {getattr(config.training, k)!r}" for k in Trainer.SCHEDULE_FIELDS
                   if getattr(config.training, k) != getattr(trainer.config.training, k)
                   and getattr(args, k, None) is None]
        if ignored:
            print(f"note: {args.config} sets {', '.join(ignored)}; a resumed run keeps its own schedule: give "
                  "--lr / --lr-schedule to change it")
    if (args.resume or trainer.step) and args.steps is not None and args.steps <= trainer.step:
        where = "the run is already" if args.resume else "the clock offset puts the run"
        raise InputError(f"--steps {args.steps} is the total step count, and {where} at step {trainer.step}: "
                         f"give more (e.g. --steps {trainer.step + args.steps}) or --minutes")
    total = trainer.config.training.steps
    if args.init_from is not None and args.steps is None and args.minutes is None and total <= trainer.step:
        # training.steps is the total too: the run would score the weights and train nothing
        raise InputError(f"training.steps {total} is the total step count, and the clock offset puts the run at step "
                         f"{trainer.step}: give --steps (e.g. --steps {trainer.step + total}) or --minutes")
    s = trainer.model.spec
    n_par = sum(p.numel() for p in trainer.model.parameters())
    how = ("bfloat16" if trainer.amp else "float32") + (", channels-last" if trainer.channels_last else "")
    print(f"training on {device} ({how}): {n_par / 1e6:.2f} M parameters, window {s.window}, "
          f"{'3D' if s.is_3d else '2D'}, {s.n_channels} channel(s); run folder {args.out}"
          + (f", resuming at step {trainer.step}" if args.resume else ""))
    if trainer.defaults_used and not args.resume:  # the training data's emitters and background, never said before
        from plexloc.train.trainer import defaults_text

        val = ("" if "emitters.density_per_um2" not in trainer.defaults_used
               or trainer.config.training.density_range_per_um2 is None
               else " (the density is the validation set's; training samples draw from training.density_range_per_um2)")
        print(f"plexloc train: note: {args.config} does not give {defaults_text(trainer.defaults_used)}: the network "
              f"trains on plexloc's default(s){val}; write them in the configuration to train for your own sample "
              f"({args.out / 'config.yaml'} holds every value used)", file=sys.stderr)
    if not s.is_3d and any(ch.psf.is_3d for ch in trainer.sim.channels):  # said only as '2D' in the line above
        z = [float(v) for v in trainer.config.emitters.z_range_nm]
        print(f"note: the PSF is 3D but emitters.z_range_nm is {z}: the network is trained in 2D, on emitters in "
              "focus only, and fits a 3D sample's out-of-focus emitters poorly; give emitters.z_range_nm the depth to "
              "train for (e.g. [-500, 500])")
    o = trainer.origin
    if args.init_from is not None and o is not None:
        behind = ("" if o["source_elapsed_s"] is None
                  else f" ({o['source_step']} steps, {o['source_elapsed_s'] / 60:.1f} min of training)")
        clock = (f"the clock goes on from step {o['step']}, {o['elapsed_s'] / 60:.1f} min"
                 + (f", after {len(trainer.rows)} log rows of the source run" if trainer.rows else "")
                 if o["clock"] != "zero" else "the clock starts at 0")
        print(f"starting from the weights of {o['init_from']}{behind}, {o['weights_dtype']}, with a fresh optimizer "
              f"and schedule; {clock}")
        for note in trainer.init_notes:
            print(f"note: {note}")
    if (line := _map_crop_line(trainer.sim)) is not None:
        print(line)
    t = trainer.config.training
    print(f"learning rate {t.lr:g}, schedule {t.lr_schedule}" + (f" (to {t.min_lr:g})" if t.lr_schedule == "cosine" else ""))
    step0 = trainer.step
    last = trainer.run(steps=args.steps, minutes=args.minutes, progress=progress, log=print)
    if t.validate_every_s is None and trainer.step > step0 and len(trainer.rows) == 1:
        # one validation, the call's last: log.csv and curves.png have one point for the whole run
        print(f"note: log.csv and curves.png have one validation, the last: validations come every {t.validate_every} "
              f"steps (training.validate_every) and the run trained {trainer.step}; training.validate_every_s "
              "(e.g. 30) validates every so many seconds too, for a learning curve")
    before = "" if not (o and o["elapsed_s"]) else f" ({o['elapsed_s'] / 60:.1f} of them before this run)"
    print(f"done: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min of training{before}; model {args.out / 'model.pt'}")
    if last:
        ji = last.get("jaccard", float("nan"))
        colour = (f"; colours {last['color_accuracy']:.1f} % right, {last['color_rejection']:.1f} % rejected"
                  if "color_accuracy" in last else "")
        rmse = last.get("rmse_lat", float("nan"))
        rmse_text = f"RMSE lat {rmse:.1f} nm" if math.isfinite(rmse) else "RMSE lat none (no emitter matched)"
        print(f"last validation: JI {ji:.1f} %, {rmse_text}{colour}")
        saved = trainer.saved
        if saved is not None and saved.get("step") != last.get("step"):
            # model.pt holds the best validation's weights, which 'last validation' above is not: what fit uses
            ji = saved.get("jaccard", float("nan"))
            r = saved.get("rmse_lat", float("nan"))
            print(f"model.pt holds the weights of step {saved['step']}, the run's best validation loss "
                  f"({saved.get('val_loss', float('nan')):.3f} against {last.get('val_loss', float('nan')):.3f} now): "
                  f"JI {ji:.1f} %, " + (f"RMSE lat {r:.1f} nm" if math.isfinite(r) else "RMSE lat none"))
        if poor_model(ji, trainer.step):
            sps = last.get("samples_per_s", float("nan"))
            print(f"plexloc train: warning: the model detects poorly on its validation set (JI {ji:.1f} % after "
                  f"{trainer.step} steps, {sps:.0f} samples/s on {device}); it is not ready to fit movies: train on "
                  f"(--resume --minutes M){_faster(trainer.config)}", file=sys.stderr)
        from plexloc.train.validation import poor_colors

        colour = poor_colors(last)
        if colour:
            print(f"plexloc train: warning: the model is not ready to assign colours: {colour} after {trainer.step} "
                  f"steps ({trainer.elapsed_s / 60:.1f} min of training), so its per-channel photons do not yet tell "
                  f"the dyes apart (a good JI does not mean good colours); train longer (--resume --minutes M) and "
                  f"watch color_accuracy in {args.out / 'log.csv'}", file=sys.stderr)
    if trainer.interrupted:
        # saved and resumable, but not the run asked for: a non-zero exit (130, as a shell gives a command ended by
        # Ctrl-C), so that `plexloc train ... && plexloc fit ...` stops here instead of fitting with the half-trained model
        print(f"plexloc train: interrupted at step {trainer.step}; model.pt and checkpoint.pt are saved: continue with "
              f"plexloc train {args.config} --out {args.out} --resume (--minutes M or --steps S)", file=sys.stderr)
        return 130
    return 0


def _faster(config) -> str:
    """The ways to train faster that the poor-model warning adds for ``config``: a GPU; the model section of
    examples/demo_2d.yaml only where the model is larger (it was advised to a run that had it already: a 3D run of
    its model on 64x64 frames at 53 % after 3 CPU minutes); a smaller training ROI where frame_size is larger."""
    from plexloc.config import TrainConfig, load_config
    from plexloc.config.examples import example_path

    demo = load_config(example_path("demo_2d"), TrainConfig)
    m, d = config.model, demo.model
    ways = [", on a GPU"]
    if any(getattr(m, k) > getattr(d, k) for k in ("features", "union_features", "depth", "union_depth")):
        ways.append(f", or a smaller model on the CPU (the model and training sections of examples/demo_2d.yaml, "
                    f"{d.features} features against {m.features}, reach about 90 % in 4 CPU minutes on its 2D data)")
    h, w = config.frame_size
    dh, dw = demo.frame_size
    if h * w > dh * dw:
        ways.append(f", or on a smaller training ROI (frame_size {h}x{w} costs about {h * w / (dh * dw):.0f}x a step of "
                    f"demo_2d.yaml's {dh}x{dw}; the network fits movies of any frame size)")
    return "".join(ways)


def config_differences(run: object, given: object, where: str = "") -> list[tuple[str, object, object]]:
    """The fields (dotted paths, list items by index) where two configuration dumps differ, with both values."""
    if isinstance(run, dict) and isinstance(given, dict):
        out = []
        for k in list(run) + [k for k in given if k not in run]:
            out += config_differences(run.get(k), given.get(k), f"{where}{k}.")
        return out
    if isinstance(run, list) and isinstance(given, list) and len(run) == len(given):
        return [d for i, (a, b) in enumerate(zip(run, given)) for d in config_differences(a, b, f"{where}{i}.")]
    return [] if run == given else [(where.rstrip("."), run, given)]


def _check_camera_maps(config, source) -> None:
    """sCMOS maps smaller than ``frame_size`` (the training ROI) in either axis, refused before the model is built,
    naming the camera field, the map files and both shapes (:func:`plexloc.simulation.simulator.camera_map_crops`).
    Maps larger than it (the full chip's, from ``plexloc calibrate-camera``) train: each sample takes a random cut of
    them (said at the start: :func:`_map_crop_line`)."""
    from plexloc.simulation.simulator import check_camera_maps

    check_camera_maps(config, source=source)


def _map_crop_line(sim) -> str | None:
    """The line that says which channels' sCMOS maps the training cuts per sample (maps larger than frame_size)."""
    crops = sim.map_crops()
    if not crops:
        return None
    h, w = sim.frame_shape
    shapes = ", ".join(("" if sim.n_channels == 1 else f"channel {c} ") + f"{mh}x{mw} px"
                       for c, (mh, mw) in crops.items())
    return (f"sCMOS maps ({shapes}) larger than frame_size {h}x{w}: each training sample takes its own random cut of "
            "them, so the model learns the chip's per-pixel noise and fits any camera ROI of it")
