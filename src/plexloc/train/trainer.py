"""On-the-fly training of the localizer.

Every batch is simulated on the training device and used once. AdamW with a linear warm-up, the
learning rate halved when the validation loss plateaus (ReduceLROnPlateau), gradient-norm clipping,
bfloat16 autocast on CUDA and on CPUs with AVX512-BF16 (``training.amp``). At every validation the run folder gets:

- ``checkpoint.pt``: everything to resume (weights and their moving average, optimizer, scheduler, step, elapsed
  time, log, the random state of the sample stream) and the full configuration;
- ``model.pt``: the network with the best validation loss so far (what ``plexloc fit`` uses): the moving average of
  the weights (``training.ema_steps``), which is what validation scores;
- ``log.csv`` and ``curves.png``: the training and validation curves;
- ``config.yaml``: the validated configuration the run was started with.

A run may start from a trained model's weights (``init_from``: fine-tuning with a changed configuration, or a run
continued on another machine where its checkpoint cannot go): the network's architecture must be the source's, the
optimizer and schedule start afresh, and the run records where it started from (``origin`` in the checkpoint and
``model.pt``'s meta, a comment at the top of ``config.yaml``, a ``segment`` column in the log). With a clock offset the
log's step and time columns go on from the training behind those weights, after the source run's own log rows, so
that one learning curve spans both runs (the optimizer's restart is the seam where ``segment`` changes).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from plexloc._call import as_device
from plexloc.config.files import embed_files, restore_files
from plexloc.config.io import load_yaml, save_config, validate_config
from plexloc.config.training import TrainConfig
from plexloc.errors import InputError
from plexloc.infer.predict import cpu_bf16_supported, cpu_channels_last_supported
from plexloc.io._atomic import atomic_path
from plexloc.nets.io import (
    ARCHITECTURE_FIELDS,
    MODEL_FILE,
    _weights_error,
    check_architecture,
    load_model,
    model_from_payload,
    model_payload,
    read_model_file,
    resolve_model_path,
    save_model,
    save_weights_as,
)
from plexloc.nets.localizer import Localizer, LocalizerSpec
from plexloc.progress import FractionLines, outside_bar
from plexloc.simulation.generator import BatchGenerator
from plexloc.simulation.simulator import Simulator
from plexloc.train.loss import decode_loss
from plexloc.train.validation import CHANNEL_USE_MIN, ValidationSet, amp_context, batch_aux, batch_photons, has_colors

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"
CURVES_FILE = "curves.png"
CONFIG_FILE = "config.yaml"

#: before a call has timed a validation (and its checkpoint holds none of an earlier call), the time kept back for
#: the one that ends a ``--minutes`` call is the validation set's batches at one training step each (scoring a sample
#: is a forward pass; a training step on as many samples also simulates them and runs the backward pass) plus this
#: many seconds for the saves (model.pt, checkpoint.pt, log.csv, curves.png): measured on a 2-core CPU, 0.4 s for the
#: tiny test model and 0.6 s for demo_2d.yaml's, 1.1 s in a process's first validation (matplotlib's import)
FIRST_SAVE_S = 1.0



#: seconds between the progress bar's updates of the training loss between validations (each reads it off the device)
POSTFIX_EVERY_S = 2.0

#: the photon head's ceiling over the brightest training target (``LocalizerSpec.photon_scale``): estimates cannot go
#: above it, so :mod:`plexloc.infer.domain` checks total photons against a share of it
PHOTON_SCALE_OVER_MAX = 1.2


def make_spec(config: TrainConfig, sim: Simulator, *, seed: int = 0) -> LocalizerSpec:
    """Architecture from ``config.model``; output scales and input normalisation from the simulation's ranges."""
    m = config.model
    c = config.n_channels
    n_photons = 1 if (c == 1 or config.photon_model.kind == "linked") else c
    z_lo, z_hi = config.emitters.z_range_nm
    is_3d = z_hi > z_lo and any(ch.psf.is_3d for ch in sim.channels)
    # the background head's ceiling covers every channel's own background (a channel with its own range above the
    # top-level one saturated below that range)
    bg_hi = max(float(bg.range[1]) * (1.0 + bg.variation) for bg in
                (sim.channel_background(c) for c in range(len(sim.config.channels))))
    # input normalisation per channel from a few simulated frames (photon domain)
    gen = BatchGenerator(sim, batch_size=8, window=1, min_target_photons=0.0, seed=seed + 12345)
    b = gen()
    x = batch_photons(sim, b.frames, b.map_offset_px)  # (8, 1, C, H, W)
    per_ch = x.transpose(0, 2).reshape(c, -1).float()
    offset = per_ch.mean(dim=1)
    scale = per_ch.std(dim=1).clamp_min(1.0)
    return LocalizerSpec(
        n_channels=c,
        n_photons=n_photons,
        n_aux=2 * c if c > 1 else 0,
        window=m.window,
        features=m.features,
        depth=m.depth,
        union_features=m.union_features,
        union_depth=m.union_depth,
        up_kernel=m.up_kernel,
        out_kernel=m.out_kernel,
        px_size_nm=config.px_size_xy_nm,
        is_3d=bool(is_3d),
        z_center_nm=0.5 * (z_lo + z_hi),
        z_scale_nm=0.6 * (z_hi - z_lo) if is_3d else 1.0,
        photon_scale=PHOTON_SCALE_OVER_MAX * max_target_photons(sim.config),
        bg_scale=max(1.5 * bg_hi, 1.0),
        input_offset=[float(v) for v in offset],
        input_scale=[float(v) for v in scale],
        bg_loss_scale=background_spread(sim),
    )


def max_target_photons(config) -> float:
    """The most photons one photon output of the network is trained on, for the training simulation's
    configuration (:func:`training_simulation`): the total over the channels for one photon output (one channel,
    or linked: ``photons_range`` times the sum of the throughputs, 4 for a quad-plane configuration whose planes
    each see ``throughput: 1``), else the largest per-channel count (independent: ``channel_photons_range``, the
    widened dye ranges of a multi-colour configuration; ratiometric: a dye's ratio is at most 1). Until 2026-12-04 the scale was
    ``photons_range[1]`` alone, and a quad-plane model's photons saturated at a quarter of the true totals."""
    hi = float(config.emitters.photons_range[1])
    pm = config.photon_model
    if config.n_channels == 1 or pm.kind == "linked":
        return hi * sum(float(ch.throughput) for ch in config.channels)
    if pm.kind == "independent" and pm.channel_photons_range:
        return max(float(r[1]) for r in pm.channel_photons_range)
    return hi


def background_spread(sim: Simulator) -> list[float]:
    """Per channel, the background error (photons/px) that costs 1 in the loss: the standard deviation of the
    training background level (uniform over its range, widened by the spatial variation), at least its
    Poisson noise ``sqrt(hi)``, so that a fixed background still weighs. A constant guess then costs about 1,
    as much as the count term; normalised by the output scale instead (bg_scale, 150 photons for a 20-100
    range), the term was 0.024 whatever the network did, and the background head learnt nothing (its
    estimates did not correlate with the truth: bench/RESULTS.md)."""
    out = []
    for c in range(len(sim.config.channels)):
        bg = sim.channel_background(c)
        lo, hi = float(bg.range[0]) * (1.0 - bg.variation), float(bg.range[1]) * (1.0 + bg.variation)
        out.append(max((hi - lo) / math.sqrt(12.0), math.sqrt(max(hi, 1.0))))
    return out


class TrainingDiverged(InputError):
    """The network's weights stopped being finite (the learning rate is too high for the data)."""


def auto_margin_px(sim: Simulator) -> float:
    """Half a PSF patch, plus with several channels the largest shift of any channel anywhere on the chip
    (:meth:`Simulator.channel_margin_px`, which simulated movies sample too)."""
    return sim.channel_margin_px()


def training_simulation(config: TrainConfig):
    """The simulation the network trains on: the configuration's, except that multi-colour
    (``ratiometric``) training samples ``independent`` photons per channel (conventions.md: dye ratios
    built into training would bias the photon outputs and make colour assignment circular).

    Each channel's photons are drawn independently and uniformly over the range that channel receives
    from the configured dyes, ``[lo * min_k r_kc, hi * max_k r_kc]`` for the emitters' photon range
    ``[lo, hi]``, widened by ``f = training.photon_range_widen`` (default 2) to ``[lo * min_k r_kc / f,
    hi * max_k r_kc * f]``. With AF647/CF680 (0.173 / 0.019 in channel 0) and 5000 photons the dyes put
    95-865 photons in channel 0 and 4135-4905 in channel 1; training draws 47.5-1730 and 2067.5-9810, in
    every combination, so the network sees the counts of the data without ever seeing a ratio more often than
    another. Why widen: at the ends of a training range the photon head is pulled towards its middle, and
    with the dyes' own ranges (f = 1) each dye sits at an end (CF680's 95 channel-0 photons read +12-17 %);
    f = 2 kept the colour accuracy from degrading with longer training (bench/RESULTS.md, issue 10).
    ``photon_model.channel_photons_range`` in an ``independent`` configuration sets the ranges directly."""
    sim = config.simulation()
    if sim.photon_model.kind == "ratiometric":
        data = sim.model_dump()
        lo, hi = sim.emitters.photons_range
        r = sim.photon_model.ratios
        f = config.training.photon_range_widen
        ranges = [(lo * min(row[c] for row in r) / f, hi * max(row[c] for row in r) * f) for c in range(sim.n_channels)]
        data["photon_model"] = {"kind": "independent", "channel_photons_range": ranges}
        sim = type(sim).model_validate(data)
    return sim


def defaults_text(defaults: dict[str, Any]) -> str:
    """``emitters.photons_range [1000, 10000], background.range [5, 30]``: :attr:`Trainer.defaults_used` as a user
    writes the values."""
    shown = lambda v: f"[{v[0]:g}, {v[1]:g}]" if isinstance(v, (tuple, list)) else f"{v:g}"  # noqa: E731
    return ", ".join(f"{name} {shown(value)}" for name, value in defaults.items())


def validation_set(config: TrainConfig, sim: Simulator, window: int, n_samples: int | None = None) -> ValidationSet:
    """The run's fixed validation set: the same samples for every validation of a run, a resumed run and
    :func:`recalibrate_model` (its own seed, the training's batch and margin settings); ``n_samples`` other than
    the configuration's ``validation_samples`` draws more (or fewer) from the same stream. A configuration with dye
    ratios (ratiometric, two or more dyes) adds the colour part: samples of the configuration's own ratiometric
    simulation, scored for colour assignment (:class:`~plexloc.train.validation.ColorSet`)."""
    t = config.training
    margin = t.margin_px if t.margin_px is not None else auto_margin_px(sim)
    color_sim = Simulator(config.simulation()).to(sim.device) if has_colors(config) else None
    return ValidationSet.simulate(
        sim, n_samples=n_samples or t.validation_samples, batch_size=min(t.batch_size, 64), window=window,
        min_target_photons=t.min_target_photons, seed=t.seed + 7_777_777, margin_px=margin, color_sim=color_sim,
    )


def recalibrate_model(run_dir: str | os.PathLike, *, n_samples: int | None = None,
                      device: torch.device | str = "cpu") -> dict[str, Any]:
    """Score a run's ``model.pt`` on its validation set again with today's code and rewrite the file's
    validation meta (the scores with the ``sigma_cal_*`` and ``offset_cal_*`` that ``plexloc fit`` applies;
    weights untouched, atomic write): models saved before a calibration existed get it without training, and
    ``n_samples`` larger than the training's validation set measures the factors more closely. Returns the
    new meta. A ratiometric model is scored on today's ``training_simulation`` of its configuration (a model saved
    before ``photon_range_widen`` existed reads it as the default, 2, unlike its training)."""
    if n_samples is not None and n_samples < 1:
        raise InputError(f"n_samples must be at least 1, got {n_samples}")
    path = resolve_model_path(run_dir)
    model, config_dict, meta = load_model(path, device=device)
    config = validate_config(config_dict, TrainConfig, source=path)
    sim = Simulator(training_simulation(config)).to(torch.device(device))
    val = validation_set(config, sim, model.spec.window, n_samples)
    # the arithmetic the training validated with (bfloat16 where training.amp and the device have it)
    scores = val.score(model, sim, threshold=config.training.detection_threshold, amp=config.training.amp)
    meta = {**meta, "validation": scores}
    save_model(path, model, config_dict, meta=meta, files=read_model_file(path).get("files"))
    return meta


def saved_row(model_path: Path) -> dict[str, Any] | None:
    """The validation ``model_path`` was saved with, as a log row (``step`` and the scores), or None where there is no
    readable file or no score."""
    if not model_path.exists():
        return None
    try:
        meta = read_model_file(model_path).get("meta", {})
        return {"step": int(meta.get("step")), **dict(meta.get("validation") or {})}
    except (InputError, TypeError, ValueError):
        return None


def saved_val_loss(saved: dict[str, Any] | None) -> float:
    """The validation loss of ``saved``, :func:`saved_row` of ``model.pt`` (inf where there is no readable file or no
    score).

    A resumed run starts from the smaller of this and its checkpoint's best: a kill between writing ``model.pt``
    and ``checkpoint.pt`` left a checkpoint whose best was the model before, and a worse model could then
    overwrite the better one."""
    try:
        value = float((saved or {}).get("val_loss", math.inf))
    except (TypeError, ValueError):
        return math.inf
    return value if math.isfinite(value) else math.inf


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove the hidden temporary files that a killed save left in ``run_dir`` (``.model.pt.<random>.tmp.pt``,
    written then renamed by :func:`plexloc.io._atomic.atomic_path`); the run's own file names only. Returns them."""
    gone = []
    for name in (CHECKPOINT_FILE, MODEL_FILE, LOG_FILE, CURVES_FILE):
        for tmp in run_dir.glob(f".{name}.*.tmp{Path(name).suffix}"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                gone.append(tmp)
    return gone


def check_targets(config: TrainConfig, *, source: str | os.PathLike | None = None) -> None:
    """Refuse a ``training.min_target_photons`` above the brightest emitter the training simulates (photons in one
    frame, summed over the channels as the batch generator sums them; an upper bound where channels draw their own
    photons): no emitter would be a target, and the run trained a network that detects nothing, saying only that it
    was not trained enough yet. A training check alone: such a configuration simulates a movie as it should."""
    t, pm, hi = config.training, config.photon_model, float(config.emitters.photons_range[1])
    rng = f"emitters.photons_range {[float(v) for v in config.emitters.photons_range]}"
    if config.n_channels == 1 or pm.kind == "linked":
        most = hi * sum(float(ch.throughput) for ch in config.channels)
    elif pm.kind == "independent" and pm.channel_photons_range:
        most = sum(float(r[1]) for r in pm.channel_photons_range)
        rng = f"photon_model.channel_photons_range {[[float(v) for v in r] for r in pm.channel_photons_range]}"
    else:  # independent draws each channel from photons_range, ratiometric training widens the dyes' ranges
        most = hi * config.n_channels * float(t.photon_range_widen)
    if most < t.min_target_photons:
        raise InputError(
            f"training.min_target_photons {t.min_target_photons:g} is above the most photons any emitter of this "
            f"configuration has in a frame ({most:g}, from {rng}): no emitter would be a training target and the "
            f"network would learn to detect nothing; lower training.min_target_photons below the photon range, or "
            f"check the photon range (photons per emitter per frame, before QE)", source=source)


def refuse_foreign_run_files(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a new run in ``run_dir`` (no checkpoint.pt, no model.pt) where files of the names the run writes are
    not a run's: a ``config.yaml`` that is not ``config`` (the dump :meth:`Trainer._save_config` writes; a leftover of
    the same run started before is), and any ``log.csv`` or ``curves.png`` (a run writes them after its checkpoint).
    They were overwritten in silence: ``plexloc train exp/config.yaml --out exp`` replaced the user's configuration,
    comments and relative paths, by the run's dump. The InputError names the files; other files are never touched."""
    if not run_dir.is_dir():
        return
    found = []
    cfg = run_dir / CONFIG_FILE
    if cfg.is_file():
        try:
            same = load_yaml(cfg.read_text()) == config
        except (OSError, UnicodeDecodeError, yaml.YAMLError):  # not a configuration of this run either
            same = False
        if not same:
            found.append(f"{CONFIG_FILE} (not this run's configuration; where it is the configuration given, keep that "
                         "outside the run folder: the run writes its validated copy there)")
    found += [name for name in (LOG_FILE, CURVES_FILE) if (run_dir / name).exists()]
    if found:
        raise InputError(f"the run folder holds no training run (no {CHECKPOINT_FILE} or {MODEL_FILE}) but files a new "
                         f"run would overwrite: {', '.join(found)}; move them or give another --out",
                         source=run_dir)


#: what an init_from run's optimizer segment adds to its sample stream's seed (:func:`stream_seed`): odd, and within the
#: 32 bits that seed a CPU generator (torch's mt19937 takes the seed's low 32 bits: an offset of 2**40 was none)
SEGMENT_SEED_STEP = 0x9E3779B9


def stream_seed(seed: int, step: int, segment: int | None = None) -> int:
    """The seed of a training sample stream that starts at ``step``: ``seed * 1_000_003 + step + 1`` for a run
    trained from scratch (and a checkpoint resumed without its stream's state), plus ``segment *``
    :data:`SEGMENT_SEED_STEP` for an init_from run's optimizer segment, so that a run started from another run's
    weights does not draw the batches that run trained on (with its clock at 0 and the same seed it drew them
    again, in the same order)."""
    return int(seed) * 1_000_003 + int(step) + 1 + int(segment or 0) * SEGMENT_SEED_STEP


def cosine_lr(lr: float, min_lr: float, fraction: float) -> float:
    """The cosine-annealed rate after ``fraction`` (clipped to [0, 1]) of the budget: ``lr`` at 0, ``min_lr`` at 1."""
    f = min(max(fraction, 0.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * f))


def fused_adamw_supported(device: torch.device) -> bool:
    """Whether this torch has the fused AdamW kernel for ``device`` (CUDA always; the CPU since torch 2.4)."""
    try:
        q = torch.nn.Parameter(torch.zeros(1, device=device))
        q.grad = torch.zeros_like(q)
        torch.optim.AdamW([q], fused=True).step()
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``log.csv``, numbers as int or float (``nan`` stays a float), other text as text; a
    column a row left empty is not in that row."""
    def value(text: str) -> Any:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    try:
        with open(path, newline="") as fh:
            return [{k: value(v) for k, v in row.items() if k is not None and v not in (None, "")}
                    for row in csv.DictReader(fh)]
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise InputError(f"the run's log cannot be read ({type(err).__name__}: {err})", source=path) from None


@dataclass
class InitSource:
    """A trained model that a new run starts from (:func:`read_init_source`)."""

    path: Path  #: the model file read (a run folder's ``model.pt``)
    model: Localizer  #: its weights, float32 on the CPU (bfloat16 files upcast)
    config: dict[str, Any]  #: its training configuration
    meta: dict[str, Any]  #: its meta (validation, origin, weights_dtype)
    step: int | None  #: the optimizer steps behind the weights, from its record (None: it has none)
    elapsed_s: float | None  #: the training seconds behind them
    #: its run's log rows up to those weights: the run folder's ``log.csv``, or a packed file's ``meta["history"]``
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def segment(self) -> int:
        """The optimizer segment the weights come from: 0 for a run trained from scratch, +1 per ``init_from``."""
        return int((self.meta.get("origin") or {}).get("segment", 0))


def read_init_source(path: str | os.PathLike) -> InitSource:
    """The weights, configuration and record of a trained model: a run folder (its ``model.pt``, the averaged best
    weights, and its ``log.csv``), a model file (``model.pt``, a bfloat16 file of :func:`export_weights`) or a
    ``checkpoint.pt`` (the weights' moving average). The record (steps and training time behind the weights) is the
    file's meta (a checkpoint's own step and time); the history, the run's log rows up to that step."""
    p = resolve_model_path(path)
    payload = read_model_file(p)
    model, config, meta = model_from_payload(payload, p)
    step, elapsed = meta.get("step"), meta.get("elapsed_s")
    if payload.get("format") == "plexloc-checkpoint":
        step, elapsed = payload.get("step", step), payload.get("elapsed_s", elapsed)
        if payload.get("origin") is not None:  # an init_from run's checkpoint keeps its origin (segment) beside meta
            meta = {**meta, "origin": payload["origin"]}
    try:
        step = None if step is None else int(step)
        elapsed = None if elapsed is None else float(elapsed)
    except (TypeError, ValueError):
        raise InputError(f"the model's record of its training is not a number (step {step!r}, elapsed_s "
                         f"{elapsed!r})", source=p) from None
    log = p.parent / LOG_FILE
    if p.name in (MODEL_FILE, CHECKPOINT_FILE) and log.exists():
        history = read_log(log)
    else:
        history = [dict(r) for r in meta.get("history") or [] if isinstance(r, dict)]
    if step is not None:  # rows after the weights' own step are of weights the new run does not start from
        history = [r for r in history if isinstance(r.get("step"), int) and r["step"] <= step]
    return InitSource(path=p, model=model, config=config, meta=meta, step=step, elapsed_s=elapsed, history=history)


def export_weights(source: str | os.PathLike, path: str | os.PathLike, *, dtype: torch.dtype = torch.bfloat16) -> dict[str, Any]:
    """Write the weights a run would be scored with (:func:`read_init_source`: a run folder's ``model.pt``) as a
    model file in ``dtype`` (default bfloat16: half the bytes), with the configuration, the embedded files, the
    record of the training behind them (``meta``: step, elapsed_s) and the run's log rows up to them
    (``meta["history"]``), so that ``Trainer(init_from=path, clock_offset_min="source")`` on another machine goes on
    with one learning curve. ``plexloc fit --model`` reads the file as it reads ``model.pt``. Returns its meta."""
    src = read_init_source(source)
    payload = read_model_file(src.path)
    meta = dict(src.meta)  # a checkpoint's origin included
    meta.update(step=src.step, elapsed_s=src.elapsed_s, history=src.history, exported_from=str(src.path))
    if payload.get("format") == "plexloc-checkpoint":
        payload = {**payload, "state_dict": src.model.state_dict()}  # the moving average it validates
    save_weights_as({**payload, "meta": meta}, path, dtype=dtype)
    return read_model_file(path)["meta"]


class Trainer:
    """Trains a localizer for a :class:`TrainConfig` into ``run_dir`` (created; resumable)."""

    #: training fields that may change between calls of a run (the learning-rate schedule); the rest is fixed
    SCHEDULE_FIELDS = ("lr", "lr_schedule", "min_lr")

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, *, device: torch.device | str = "cpu", resume: bool = False,
                 schedule: dict[str, Any] | None = None, init_from: str | os.PathLike | InitSource | None = None,
                 clock_offset_min: float | Literal["source"] | None = None):
        """``schedule``: new values of :attr:`SCHEDULE_FIELDS` for this call, also when resuming (a fine-tuning
        phase at a lower rate); they are written into the run's configuration and checkpoint.

        ``init_from``: a new run whose network starts from these weights (:func:`read_init_source`: a run folder, a
        model file, a bfloat16 file of :func:`export_weights`), with a fresh optimizer, warm-up, schedule and weight
        average. The architecture (:data:`~plexloc.nets.io.ARCHITECTURE_FIELDS`) must be the configuration's (an
        InputError names each field that differs); pixel size, output scales and input normalisation are the
        configuration's (:func:`make_spec`: the same as the source's where the configuration is, on the same
        device type), and :attr:`init_notes` lists those that differ. ``clock_offset_min``: the training behind the
        weights, from which the log's time and step columns go on: ``"source"`` (the source's record: its minutes,
        steps and log rows, so that one curve spans both runs), a number of minutes (the steps from the source's
        record, else 0), or None (the clock starts at 0). ``--steps`` of :meth:`run` count from that offset.

        ``config``: a validated :class:`TrainConfig` (``load_config(path, TrainConfig)``, or ``validate_config(dict,
        TrainConfig)``); a dict or a :class:`~plexloc.config.SimulationConfig` is a TypeError saying so. ``device``:
        ``"cpu"`` or ``"cuda"`` (CUDA where torch has none: an InputError)."""
        if not isinstance(config, TrainConfig):  # an AttributeError ('dict' object has no attribute 'model_dump') before
            raise TypeError(f"config must be a validated TrainConfig (plexloc.config.load_config(path, TrainConfig), or "
                            f"validate_config(dict, TrainConfig): a simulation with its model and training sections), "
                            f"got {type(config).__name__}")
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():  # before any simulation work
            raise InputError("the run folder is a file, not a folder: give another --out", source=self.run_dir)
        if init_from is not None and resume:
            raise InputError("--init-from starts a new run from a model's weights, --resume continues a run from its "
                             "checkpoint (an --init-from run included): give one of them", source=self.run_dir)
        if init_from is None and clock_offset_min is not None:
            raise InputError("a clock offset is the training behind the weights of --init-from: give --init-from too")
        if isinstance(clock_offset_min, str) and clock_offset_min != "source":
            raise InputError(f"clock offset: a number of minutes or 'source', got {clock_offset_min!r}")
        if (clock_offset_min is not None and not isinstance(clock_offset_min, str)
                and not (0.0 <= float(clock_offset_min) < math.inf)):
            raise InputError(f"clock offset: minutes must be a finite number >= 0, got {clock_offset_min}")
        self.device = as_device(device)
        ckpt_path = self.run_dir / CHECKPOINT_FILE
        self.rows: list[dict[str, Any]] = []
        self.step, self.elapsed_s, self.best = 0, 0.0, math.inf
        #: the validation row of the weights model.pt holds (the best validation loss so far), None before any
        self.saved: dict[str, Any] | None = None
        self._skipped = torch.zeros((), dtype=torch.int64, device=self.device)
        #: the cosine schedule's phase: {"start_step", "steps"}, or {"seconds"} of the wall time of its calls
        #: (validation included, as in the --minutes deadline); both with the step it began at ("start_step") and the
        #: wall time it has used ("used_s"), so that a call in the other unit can measure it in its own (:meth:`run`).
        #: Kept in the checkpoint so that a run resumed after an interruption anneals on instead of starting at the
        #: peak again
        self.cosine_phase: dict[str, float] | None = None
        self._phase_clock: tuple[float, float] | None = None  # (the phase's used_s, time.monotonic()) when run began
        #: the longest of the last three validations with their saves (s), kept in the checkpoint: the time that a
        #: --minutes call keeps back for the validation that ends it (:meth:`run`); None before the first
        self.validate_s: float | None = None
        self._plateau_step: int | None = None  # the step whose validation the plateau rule last counted
        ckpt = None
        if resume:
            if not ckpt_path.exists():
                raise InputError("--resume: no checkpoint.pt in the run folder", source=self.run_dir)
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            # the calibration and maps it was trained with, also where their paths are gone (another machine)
            config = validate_config(restore_files(ckpt["config"], ckpt.get("files"), source=ckpt_path), TrainConfig,
                                     source=ckpt_path)
        elif ckpt_path.exists() or (self.run_dir / MODEL_FILE).exists():
            # a finished run whose (large) checkpoint was deleted still has its model: never trained over silently
            raise InputError("the run folder already holds a training run (checkpoint.pt or model.pt); use --resume "
                             "or another --out", source=self.run_dir)
        src = (init_from if isinstance(init_from, InitSource) or init_from is None else read_init_source(init_from))
        #: where an ``init_from`` run started: the source, the training behind its weights, the clock offset and the
        #: optimizer segment (kept in the checkpoint and model.pt's meta); None for a run trained from scratch
        self.origin: dict[str, Any] | None = ckpt.get("origin") if ckpt else None
        #: what differs between the source's network settings and this configuration's besides the architecture
        self.init_notes: list[str] = []
        #: the emitter and background fields that the configuration leaves to plexloc's defaults, with their values
        #: (:meth:`~plexloc.config.SimulationConfig.defaulted_fields` of the configuration as given: the simulator
        #: below is built from a dump, in which every field is set, so its ``defaults_used`` is always empty); a
        #: resumed run's from its checkpoint (the run's own configuration, said when it began)
        self.defaults_used: dict[str, Any] = (
            {k: tuple(v) if isinstance(v, list) else v for k, v in (ckpt.get("defaults_used") or {}).items()}
            if ckpt else config.defaulted_fields())
        if self.defaults_used and not ckpt:
            logging.getLogger("plexloc.train").info(
                "the configuration leaves %s to plexloc's defaults (Trainer.defaults_used)",
                ", ".join(f"{k} = {v}" for k, v in self.defaults_used.items()))
        schedule = {k: v for k, v in (schedule or {}).items() if v is not None}
        unknown = sorted(set(schedule) - set(self.SCHEDULE_FIELDS))
        if unknown:
            raise InputError(f"only {', '.join(self.SCHEDULE_FIELDS)} can change for a call of a run, got {', '.join(unknown)}")
        if schedule:
            data = config.model_dump(mode="json")
            data.setdefault("training", {}).update(schedule)
            config = validate_config(data, TrainConfig, source="training schedule " + ", ".join(f"{k}={v}" for k, v in schedule.items()))
        self.config = config
        check_targets(config)
        if ckpt is None:
            refuse_foreign_run_files(self.run_dir, self._config_dict())
        #: the files the configuration names (spline calibration, sCMOS maps), read once, kept in model.pt and
        #: checkpoint.pt so that the model works where those paths do not exist (plexloc.config.files)
        self.files = ckpt["files"] if ckpt and ckpt.get("files") else embed_files(self._config_dict(), source=self.run_dir)
        t = config.training
        self.sim = Simulator(training_simulation(config)).to(self.device)
        spec = LocalizerSpec.from_dict(ckpt["spec"]) if ckpt else make_spec(config, self.sim, seed=t.seed)
        if src is not None:  # before any weights: a mismatch names the field, never a partial load
            check_architecture(spec, src.model.spec, source=src.path)
        with torch.random.fork_rng(devices=[]):  # reproducible initial weights, global RNG untouched
            torch.manual_seed(t.seed)
            self.model = Localizer(spec).to(self.device)
        if src is not None:
            self._start_from(src, clock_offset_min)
        #: the step this run's warm-up counts from: 0, or where an init_from run's clock started
        self.start_step = int((self.origin or {}).get("step", 0))
        #: the optimizer segment of this run's rows (the ``segment`` log column): None for a run trained from scratch
        self.segment: int | None = None if self.origin is None else int(self.origin["segment"])
        #: the network's memory format: training.channels_last, where None means NHWC on a oneDNN CPU (faster there)
        self.channels_last = (t.channels_last if t.channels_last is not None
                              else self.device.type == "cpu" and cpu_channels_last_supported())
        if self.channels_last:  # before the optimizer takes the parameters (a checkpoint's weights are copied into them)
            self.model.channels_last_()
        # the fused kernel: one launch for all parameters instead of a few per tensor, and it skips a step on the
        # device when told its gradients are not finite (train_step), as mixed-precision loss scaling does
        self.fused = fused_adamw_supported(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                           fused=self.fused, foreach=None if self.fused else True)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=t.lr_factor, patience=t.lr_patience, min_lr=t.min_lr
        )
        if ckpt:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            # the moments in their parameter's memory format: a checkpoint of a channels-last run (the CPU default)
            # resumed in NCHW (CUDA's), or the reverse, keeps the saved strides, and the fused AdamW kernel walks
            # parameter and moments in memory order: on mismatched layouts it updated each weight with another's moments
            for q, state in self.optimizer.state.items():
                for k, v in state.items():
                    if torch.is_tensor(v) and v.shape == q.shape and v.stride() != q.stride():
                        state[k] = torch.empty_like(q, dtype=v.dtype).copy_(v)
            for group in self.optimizer.param_groups:  # a checkpoint of a GPU run resumed on the CPU, or the reverse
                group["fused"] = self.fused
                group["foreach"] = None if self.fused else True
            if self.fused:  # the fused kernel wants each step count as a float32 tensor beside its parameter
                for q, state in self.optimizer.state.items():
                    if "step" in state:
                        state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(q.device)
            if schedule:  # the new rate from now on; the plateau count starts afresh (its old state is not loaded)
                self.set_lr(t.lr)
            else:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            self.step, self.elapsed_s, self.best = int(ckpt["step"]), float(ckpt["elapsed_s"]), float(ckpt["best"])
            self.saved = saved_row(self.run_dir / MODEL_FILE)
            self.best = min(self.best, saved_val_loss(self.saved))  # (model.pt read once)
            remove_stale_temporaries(self.run_dir)
            self.rows = list(ckpt["log"])
            if self.rows:  # the count is "so far", over all calls of the run: the checkpoint's last row holds it
                self._skipped += int(self.rows[-1].get("skipped_steps", 0))
            if not schedule:  # a plain --resume continues the cosine phase it was in (a new --lr starts a new one)
                self.cosine_phase = ckpt.get("cosine_phase")
            self.validate_s = ckpt.get("validate_s")
        #: the weights validated and saved (:meth:`evaluated`): an exponential moving average of the trained ones
        #: (``training.ema_steps``), kept in the checkpoint; a checkpoint without one (before 2026-12-06) starts it
        #: from its weights
        self.average: Localizer | None = None
        #: the step its warm-up counts from: 0, or the start of a phase with a new schedule (a fine-tuning --resume
        #: --lr), so that a short phase's average is its own weights' and not mostly the weights it began from
        self.average_from = 0
        if t.ema_steps:
            self.average = copy.deepcopy(self.model).requires_grad_(False)
            if ckpt and ckpt.get("average") is not None and not schedule:
                self.average.load_state_dict(ckpt["average"])
                self.average_from = int(ckpt.get("average_from", 0))
            elif ckpt or src is not None:  # a new phase, a checkpoint from before the average, or another run's
                self.average_from = self.step  # weights: start it from the weights
        #: bfloat16 autocast: on CUDA, and on a CPU with AVX512-BF16 (1.3-1.4x the steps per second of float32 for the
        #: 16-feature CPU models, 1.9x the network's forward and backward at 48 features; bench/RESULTS.md, session 36)
        self.amp = t.amp and (self.device.type == "cuda" or (self.device.type == "cpu" and cpu_bf16_supported()))
        if self.device.type == "cuda":  # fixed shapes: let cuDNN time its algorithms once per shape
            torch.backends.cudnn.benchmark = True
        self.forward = self.model
        if t.compile and self.device.type == "cuda":
            self.forward = torch.compile(self.model)
        # a reproducible sample stream; a resumed run continues it where the checkpoint left it (the generator's
        # state is in the checkpoint), so that an interrupted run and an uninterrupted one see the same batches.
        # Checkpoints without that state (before 2026-12-05), or of another device type (a CUDA generator's state
        # is not a CPU one's), start a fresh stream seeded by the step: samples it has not seen, not the same ones
        # An init_from run's stream is its segment's own: seeded by the step alone, a run started from another's
        # weights with its clock at 0 (and the same seed) drew the source run's batches again, one for one
        margin = t.margin_px if t.margin_px is not None else auto_margin_px(self.sim)
        self.generator = BatchGenerator(
            self.sim, batch_size=t.batch_size, window=spec.window, min_target_photons=t.min_target_photons,
            seed=stream_seed(t.seed, self.step, self.segment), margin_px=margin, transform_jitter_nm=t.transform_jitter_nm,
            density_range_per_um2=t.density_range_per_um2,
        )
        #: the random state of the sample stream (saved in the checkpoint)
        self.stream: torch.Generator = self.generator.generator
        saved = ckpt.get("sample_stream") if ckpt else None
        if saved and saved.get("device") == self.device.type:
            self.stream.set_state(saved["state"])
        self.validation = validation_set(config, self.sim, spec.window)
        #: config.yaml is written (and the run folder made) when the run first saves something (:meth:`_open_folder`),
        #: not here: a call refused after the trainer is built (``plexloc train --steps`` at or below the clock
        #: offset's or the checkpoint's step) left a config.yaml in --out, or a resumed run's rewritten with a new --lr
        self._config_due = not ckpt or bool(schedule)

    def _start_from(self, src: InitSource, clock_offset_min: float | str | None) -> None:
        """Load ``src``'s weights into the new network and set the run's clock, origin and log history."""
        try:
            self.model.load_state_dict(src.model.state_dict())  # strict: every weight, every shape
        except RuntimeError as err:
            raise InputError(f"the weights do not fit this configuration's network ({_weights_error(err)})",
                             source=src.path) from None
        new, old = self.model.spec, src.model.spec
        changed = {k: [getattr(old, k), getattr(new, k)] for k in new.to_dict()
                   if k not in ARCHITECTURE_FIELDS and getattr(new, k) != getattr(old, k)}
        for k, (a, b) in changed.items():
            fmt = (lambda v: "[" + ", ".join(f"{x:.4g}" for x in v) + "]" if isinstance(v, (list, tuple))
                   else f"{v:.4g}" if isinstance(v, float) else repr(v))
            self.init_notes.append(f"{k}: the weights were trained with {fmt(a)}, this configuration has {fmt(b)}")
        step0, t0, history = 0, 0.0, []
        if clock_offset_min == "source":
            if src.elapsed_s is None or src.step is None:
                raise InputError("the model records no training time or steps behind its weights: give the clock "
                                 "offset in minutes (--clock-offset-min M)", source=src.path)
            step0, t0 = src.step, src.elapsed_s
            history = [dict(r) for r in src.history]
            for r in history:  # rows of a run trained from scratch are segment 0
                r.setdefault("segment", 0)
        elif clock_offset_min is not None:
            step0, t0 = (src.step or 0), 60.0 * float(clock_offset_min)
        self.step, self.elapsed_s = step0, t0
        self.rows = history
        if history:  # the count is "so far": the source's skipped batches are behind the weights too
            self._skipped += int(history[-1].get("skipped_steps", 0) or 0)
        self.origin = {
            "init_from": str(src.path), "source_step": src.step, "source_elapsed_s": src.elapsed_s,
            "weights_dtype": str(src.meta.get("weights_dtype", "float32")), "step": step0, "elapsed_s": t0,
            "clock": "source" if clock_offset_min == "source" else "minutes" if clock_offset_min is not None else "zero",
            "segment": src.segment + 1, "changed": {k: v for k, v in changed.items()},
            "previous": src.meta.get("origin"),
        }

    def _open_folder(self) -> None:
        """The run folder and its config.yaml, once, before the run's first file (:meth:`validate`, :meth:`run`)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._config_due:
            self._save_config()
            self._config_due = False

    def _save_config(self) -> None:
        """config.yaml: the validated configuration, under a comment saying where an init_from run started."""
        o, comment = self.origin, None
        if o is not None:
            clock = (f"its clock goes on from step {o['step']}, {o['elapsed_s'] / 60:.2f} min" if o["clock"] != "zero"
                     else "its clock starts at 0")
            comment = (f"this run started from the weights of {o['init_from']} (step {o['source_step']}, "
                       f"{'?' if o['source_elapsed_s'] is None else format(o['source_elapsed_s'] / 60, '.2f')} min of "
                       f"training; {o['weights_dtype']}) with a fresh optimizer (segment {o['segment']}); {clock}")
        if self.defaults_used:
            said = defaults_text(self.defaults_used)
            comment = (f"{comment}; " if comment else "") + f"the configuration given left {said} to plexloc's defaults"
        save_config(self.config, self.run_dir / CONFIG_FILE, comment=comment)

    # ------------------------------------------------------------------------------------------
    def set_lr(self, lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def _warm_up(self) -> None:
        """The warm-up's rate for the next step, while it lasts (an init_from run warms its fresh optimizer up
        again): the rate that step uses, and what an init_from run's seam row shows (it showed training.lr)."""
        t = self.config.training
        k = self.step - self.start_step
        if k < t.warmup_steps:
            self.set_lr(t.lr * (k + 1) / t.warmup_steps)

    def train_step(self) -> torch.Tensor:
        t = self.config.training
        batch = self.generator()
        x = batch_photons(self.sim, batch.frames, batch.map_offset_px)
        ctx = amp_context(self.amp, self.device)
        with ctx:
            raw = self.forward(x, batch_aux(self.sim, batch, self.model.spec))
        pred = self.model.decode(raw)
        parts = decode_loss(pred, self.model.spec, target_xyz_nm=batch.target_xyz_nm,
                            target_photons=batch.target_photons, target_mask=batch.target_mask, bg=batch.bg)
        self._warm_up()
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        # a batch whose loss or gradient is not finite must not reach the weights (one NaN makes every weight NaN),
        # decided on the device (no synchronisation per step); the count is read at validation
        found_inf = (~torch.isfinite(norm)).to(torch.float32)
        if self.fused:  # the fused AdamW skips the whole update (moments and step count too) when found_inf is 1
            self.optimizer.found_inf = found_inf
        else:  # the update of zero gradients: only the weight decay and the moments' decay act
            grads = [q.grad for q in self.model.parameters() if q.grad is not None]
            for g in grads:
                g.nan_to_num_(0.0, 0.0, 0.0)
            torch._foreach_mul_(grads, (1.0 - found_inf).to(grads[0].dtype))
        self._skipped = self._skipped + found_inf.to(torch.int64)
        self.optimizer.step()
        self.step += 1
        if self.average is not None:
            k = self.step - self.average_from
            decay = min(1.0 - 1.0 / t.ema_steps, (1.0 + k) / (10.0 + k))
            with torch.no_grad():  # else the average would join the autograd graph, and keep every step's graph
                torch._foreach_lerp_(list(self.average.parameters()), list(self.model.parameters()), 1.0 - decay)
        return torch.stack([parts.total.detach(), parts.count, parts.loc, parts.bg])

    @property
    def evaluated(self) -> Localizer:
        """The network that validation scores and ``model.pt`` holds: the weights' moving average
        (``training.ema_steps``), else the last step's weights."""
        return self.average if self.average is not None else self.model

    def validate(self, train_loss: np.ndarray | None, samples_per_s: float, *, scheduled: bool = True) -> dict[str, Any]:
        """Score the averaged weights on the validation set, log a row, save model.pt (when best) and the checkpoint.

        ``scheduled``: a validation of the schedule (every ``validate_every`` steps, every ``validate_every_s``
        seconds, an init_from run's seam), which the plateau rule counts. The validation of the last, partial
        interval of a call (its --steps or --minutes reached off the grid, or a Ctrl-C) is not: it scores and saves
        the weights trained so far, but a run interrupted and resumed then halves its rate where the uninterrupted
        run does (it counted one validation more: with lr_patience 1, validations every 4 steps and a stop at step 6,
        the rate was halved after step 8 instead of 12). The rule counts each step's validation once."""
        self._open_folder()
        skipped = int(self._skipped)
        if not all(bool(torch.isfinite(q).all()) for q in self.model.parameters()):
            raise TrainingDiverged(
                f"training diverged before step {self.step}: the network's weights are no longer finite; "
                f"{self.run_dir / CHECKPOINT_FILE} and {self.run_dir / MODEL_FILE} keep the last finite state "
                f"(lower training.lr, now {self.config.training.lr:g}, or training.grad_clip)")
        scores = self.validation.score(self.evaluated, self.sim, threshold=self.config.training.detection_threshold,
                                       amp=self.amp)
        # the rate the logged steps used (a halving below is the next step's: the row showed it one row early)
        lr_used = self.optimizer.param_groups[0]["lr"]
        if (scheduled and self._plateau_step != self.step
                and self.step - self.start_step >= self.config.training.warmup_steps
                and self.config.training.lr_schedule == "plateau"):
            self.scheduler.step(scores["val_loss"])
            self._plateau_step = self.step  # once per step (a Ctrl-C in the saves below validates this step again)
        row: dict[str, Any] = {"step": self.step, "elapsed_s": round(self.elapsed_s, 2),
                               "lr": lr_used, "samples_per_s": samples_per_s}
        names = ("loss", "loss_count", "loss_loc", "loss_bg")
        row.update({k: (float(v) if train_loss is not None else math.nan) for k, v in zip(names, train_loss if train_loss is not None else [0] * 4)})
        row.update(scores)
        row["skipped_steps"] = skipped  # batches with a non-finite loss or gradient so far (their update was 0)
        if self.segment is not None:  # the optimizer segment: +1 at each init_from (the curve's seam)
            row["segment"] = self.segment
        if self.rows and self.rows[-1].get("step") == self.step and self.rows[-1].get("segment") == self.segment:
            # this step's validation again: Ctrl-C during the saves of the first, then run() validates the interval
            # it had not closed. One row per step (the log had two rows of the same step)
            self.rows.pop()
        self.rows.append(row)
        if scores["val_loss"] < self.best:
            meta = {"step": self.step, "elapsed_s": self.elapsed_s, "validation": scores}
            if self.origin is not None:
                meta["origin"] = self.origin
            save_model(self.run_dir / MODEL_FILE, self.evaluated, self._config_dict(), meta=meta, files=self.files)
            self.saved = row
            # after the file is written: an interrupted write leaves best where model.pt is, so the model is saved
            # by the next validation that beats it (set before, the interrupted model was never saved)
            self.best = scores["val_loss"]
        self.save_checkpoint()
        self.write_log()
        return row

    def _config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def _plan_phase(self, target: int | None, minutes: float | None) -> str | None:
        """The cosine phase of a call of :meth:`run` (its docstring): a new one, the one it was in, or that one
        stretched to end with this call. Returns the line that says what changed (None: nothing to say)."""
        t = self.config.training
        ph = self.cosine_phase
        step = float(self.step)
        if ph is None:  # a new phase: this call's budget
            self.cosine_phase = ({"start_step": step, "steps": float(max(target - self.step, 1)), "used_s": 0.0}
                                 if target is not None else {"start_step": step, "used_s": 0.0, "seconds": 60.0 * minutes})
            return None
        rate = lambda f: f"{cosine_lr(t.lr, t.min_lr, f):.3g}"  # noqa: E731
        if target is not None:
            if "steps" in ph:
                start, end = ph["start_step"], ph["start_step"] + ph["steps"]
                if target <= end:  # within: an interrupted run resumed to its target
                    return None
                ph["steps"] = float(target) - start
                return (f"cosine schedule: its phase (steps {start:.0f}-{end:.0f}) ends before --steps {target}: "
                        f"stretched to end at step {target}, the rate now {rate((step - start) / ph['steps'])} (was "
                        f"{rate((step - start) / (end - start))}), {t.min_lr:g} at step {target}")
            if "seconds" in ph and "start_step" in ph:  # a phase of minutes, measured in steps from here
                start, used = ph["start_step"], ph.get("used_s", 0.0)
                self.cosine_phase = {"start_step": start, "steps": float(max(target - start, 1)), "used_s": used}
                return (f"cosine schedule: its phase of {ph['seconds'] / 60:.2f} min (from step {start:.0f}, "
                        f"{used / 60:.2f} min used) is measured in steps from here and ends with this call: steps "
                        f"{start:.0f}-{target}, the rate now {rate((step - start) / self.cosine_phase['steps'])}, "
                        f"{t.min_lr:g} at step {target}")
            self.cosine_phase = {"start_step": step, "steps": float(max(target - self.step, 1)), "used_s": 0.0}
            return (f"cosine schedule: the checkpoint's phase of minutes does not say where it started (an older "
                    f"checkpoint): a new phase over steps {self.step}-{target}, from {t.lr:g} to {t.min_lr:g}")
        budget = 60.0 * minutes
        if "seconds" in ph and "used_s" in ph:
            used = ph["used_s"]
            if used + budget <= ph["seconds"]:  # within: an interrupted run resumed for the minutes it had left
                return None
            was = ph["seconds"]
            ph["seconds"] = used + budget
            return (f"cosine schedule: its phase of {was / 60:.2f} min has {max(was - used, 0.0) / 60:.2f} min left, "
                    f"less than this call's {minutes:g} min: stretched to {ph['seconds'] / 60:.2f} min to end with "
                    "this call, the rate now about "
                    f"{rate(used / ph['seconds'])} (was {rate(used / was)}), {t.min_lr:g} at the deadline")
        if "steps" in ph and "used_s" in ph:  # a phase of steps, measured in wall time from here
            used = ph["used_s"]
            self.cosine_phase = {"start_step": ph["start_step"], "used_s": used, "seconds": used + budget}
            return (f"cosine schedule: its phase of steps {ph['start_step']:.0f}-{ph['start_step'] + ph['steps']:.0f} "
                    f"(at step {self.step}, {used / 60:.2f} min used) is measured in wall time from here and ends with "
                    f"this call's {minutes:g} min: the rate now about {rate(used / (used + budget))} (was "
                    f"{rate((step - ph['start_step']) / ph['steps'])}), {t.min_lr:g} at the deadline")
        if "start_s" in ph and self.elapsed_s - ph["start_s"] + budget <= ph["seconds"]:
            return None  # a phase of training time (before 2026-12-05), resumed within it
        self.cosine_phase = {"start_step": step, "used_s": 0.0, "seconds": budget}
        return (f"cosine schedule: the checkpoint's phase does not say how much wall time it used (an older "
                f"checkpoint): a new phase over this call's {minutes:g} min, from {t.lr:g} to {t.min_lr:g}")

    def _sync_phase(self) -> None:
        """A cosine phase of wall time has used this call's time (since :meth:`run` began) on top of its earlier calls'."""
        ph = self.cosine_phase
        if ph is not None and "used_s" in ph and self._phase_clock is not None:
            used_before, t_start = self._phase_clock
            ph["used_s"] = used_before + (time.monotonic() - t_start)

    def save_checkpoint(self) -> None:
        self._open_folder()
        self._sync_phase()
        payload = model_payload(self.model, self._config_dict(), {"step": self.step}, files=self.files)
        payload.update(
            format="plexloc-checkpoint",
            model=payload.pop("state_dict"),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            step=self.step,
            elapsed_s=self.elapsed_s,
            best=self.best,
            log=self.rows,
            cosine_phase=self.cosine_phase,
            validate_s=self.validate_s,
            average=None if self.average is None else self.average.state_dict(),
            average_from=self.average_from,
            origin=self.origin,
            defaults_used={k: list(v) if isinstance(v, tuple) else v for k, v in self.defaults_used.items()},
            sample_stream={"device": self.device.type, "state": self.stream.get_state()},
        )
        with atomic_path(self.run_dir / CHECKPOINT_FILE) as tmp:
            torch.save(payload, tmp)

    def write_log(self) -> None:
        if not self.rows:
            return
        keys = list(self.rows[-1].keys())
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.rows)
        with atomic_path(self.run_dir / LOG_FILE) as tmp:
            tmp.write_text(buf.getvalue())
        plot_curves(self.rows, self.run_dir / CURVES_FILE)

    # ------------------------------------------------------------------------------------------
    def run(self, *, steps: int | None = None, minutes: float | None = None,
            progress: Callable | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Train until ``steps`` (total, counting a resumed run's earlier steps) or ``minutes`` (of this call).

        ``minutes`` is a deadline on this call's wall clock (from here; the setup before, the trainer's construction,
        is not counted), and the call ends by it: a step starts only when it and one validation with its saves (the
        next one of the schedule, or the one that closes the last, partial interval) still fit before the deadline.
        A step's time is the longer of the last step's and the mean of this call's steps after its first; a
        validation's, the longest of this call's last three (with the saves: model.pt, checkpoint.pt, log.csv,
        curves.png), before this call's first the last call's from the checkpoint, and before any the validation
        set's batches at one training step each plus :data:`FIRST_SAVE_S`. Before the deadline, the first two steps of a
        call always run (a call that trained nothing would save nothing, and the first step's time, with its one-time
        setup, is no estimate of the next), so a budget shorter than two steps and a validation overruns by them; a
        call whose first validation (an ``init_from`` run's seam) already passed the deadline trains nothing.

        The cosine schedule anneals over a phase (:attr:`cosine_phase`): a new one (a run's first call, a new
        ``schedule``) spans this call's budget, its steps or its minutes; a phase of minutes ends at the deadline less
        the time kept back for the last validation, when training stops. A later call (a plain resume, or ``run``
        again) continues the phase when its target lies within it: an interrupted run resumed to its target anneals
        as the uninterrupted run, bit for bit. A target beyond the phase's end stretches the phase to end there: the
        rate from here on is that of one cosine over the phase's start to the new target (a run trained to step 1000
        and resumed with ``steps=2000`` goes on at the rate of step 1000 of a 2000-step run, half-way down the
        cosine, instead of 1000 steps at min_lr). A call in the other unit (``minutes`` on a phase of steps, or the
        reverse) measures the phase in its own, the phase's steps or wall time so far kept, and stretches it to end
        with this call. Each change of the phase is said in one ``log`` line; log.csv's lr column shows the rates."""
        t = self.config.training
        target = steps if steps is not None else (t.steps if minutes is None else None)
        t_start = time.monotonic()
        deadline = t_start + 60.0 * minutes if minutes is not None else math.inf

        line = self._plan_phase(target, minutes) if t.lr_schedule == "cosine" else None
        if line is not None and log is not None:
            log(line)
        self._phase_clock = (float((self.cosine_phase or {}).get("used_s", 0.0)), t_start)
        self._open_folder()
        n_val = len(self.validation.batches) + (len(self.validation.color.batches) if self.validation.color else 0)
        # a step's time (s), the sum and count of this call's steps after its first (whose time includes one-time
        # setup: kernels, allocations), and this call's validations with their saves (s)
        step_s, steady_s, n_steady, timed = 0.0, 0.0, 0, []

        def keep_s() -> float:
            """The time kept back for the validation and saves that end the call (s)."""
            return self.validate_s if self.validate_s is not None else n_val * step_s + FIRST_SAVE_S

        def validate(*args, **kwargs) -> dict[str, Any]:
            t0 = time.monotonic()
            row = self.validate(*args, **kwargs)
            timed.append(time.monotonic() - t0)
            self.validate_s = max(timed[-3:])
            return row

        def budget_used() -> float:
            """The fraction of the cosine phase spent: its steps, or the wall time of its calls (the --minutes deadline
            is wall time: measured in training time, validation excluded, the rate was still far from min_lr at the
            deadline, 3.8e-4 of 1e-3 where validation took a third of the time), out of the phase's time less what is
            kept back for the last validation (training ends there)."""
            ph = self.cosine_phase
            if "steps" in ph:
                return (self.step - ph["start_step"]) / ph["steps"]
            if "used_s" in ph:
                self._sync_phase()
                return ph["used_s"] / max(ph["seconds"] - keep_s(), 1e-3)
            return (self.elapsed_s - ph["start_s"]) / ph["seconds"]  # a checkpoint from before 2026-12-05: training time
        bar = progress(None, total=target, initial=self.step, desc="train", unit="step") if progress else None
        # a run by minutes: its bar has no total, so the job service reads the fraction of the time from these lines
        fraction = FractionLines(bar) if target is None and math.isfinite(deadline) else None

        def say(line: str) -> None:
            if log is not None:
                with outside_bar(bar):  # its own line, not run into the bar's (stdout and stderr read as one stream)
                    log(line)
        acc, n_acc, samples, t_int = None, 0, 0, time.perf_counter()
        n_ok: torch.Tensor | None = None  # batches of the interval whose loss was finite
        # the bar's postfix between validations: the interval's training loss so far, and the last validation's JI
        # (a CPU run validating every 200 steps at a step a second showed nothing of its learning for minutes)
        t_postfix = -math.inf

        def postfix(loss: float) -> None:
            ji = last.get("jaccard")
            left = ({"left": f"{max(deadline - time.monotonic(), 0.0) / 60:.1f} min"} if math.isfinite(deadline)
                    else {})
            bar.set_postfix(loss=f"{loss:.3g}", **({} if ji is None else {"JI": f"{ji:.1f}"}), **left, refresh=False)
        t_last = time.perf_counter()
        self.model.train()
        last: dict[str, Any] = self.rows[-1] if self.rows else {}
        self.interrupted = False  # set by a Ctrl-C (KeyboardInterrupt) that this call stopped at and saved after
        try:
            if self.segment is not None and not any(r.get("segment") == self.segment for r in self.rows):
                # an init_from run's first call: the weights it starts from, scored on its validation set (the
                # curve's seam; model.pt exists from the start), its lr the warm-up's first rate (in effect from here)
                if t.lr_schedule == "cosine":
                    self.set_lr(cosine_lr(t.lr, t.min_lr, budget_used()))
                self._warm_up()
                last = validate(None, math.nan)
                say(format_row(last))
                t_int = t_last = time.perf_counter()  # its validation is not training time (elapsed_s, samples/s)
            trained = 0  # steps of this call
            while target is None or self.step < target:
                clock = time.monotonic()
                # the call ends by the deadline: the next step and a validation with its saves must fit (docstring)
                if clock >= deadline or (trained >= 2 and clock + step_s + keep_s() > deadline):
                    break
                if t.lr_schedule == "cosine":
                    self.set_lr(cosine_lr(t.lr, t.min_lr, budget_used()))
                loss = self.train_step()
                trained += 1
                # the interval's mean over the batches that trained: a skipped (non-finite) batch is counted in
                # skipped_steps, not averaged in (one would make the row NaN); decided on the device, no sync
                ok = torch.isfinite(loss).all()
                loss = torch.where(ok, loss, torch.zeros_like(loss))
                acc = loss if acc is None else acc + loss
                n_ok = ok.to(loss.dtype) if n_acc == 0 else n_ok + ok.to(loss.dtype)
                n_acc += 1
                samples += t.batch_size
                now = time.perf_counter()
                if trained > 1:
                    steady_s, n_steady = steady_s + (now - t_last), n_steady + 1
                step_s = max(now - t_last, steady_s / n_steady) if n_steady else now - t_last  # the last, or the mean
                self.elapsed_s += now - t_last
                t_last = now
                if bar is not None:
                    bar.update(1)
                    if now - t_postfix >= POSTFIX_EVERY_S:  # the loss between validations (one device sync)
                        t_postfix = now
                        postfix(float(acc[0] / n_ok))
                if fraction is not None:
                    fraction((time.monotonic() - t_start) / (deadline - t_start))
                due = t.validate_every_s is not None and now - t_int >= t.validate_every_s
                if self.step % t.validate_every == 0 or due:
                    sps = samples / max(now - t_int, 1e-9)
                    last = validate((acc / n_ok).cpu().numpy(), sps)
                    acc, n_acc, samples, t_int = None, 0, 0, time.perf_counter()
                    t_last = time.perf_counter()
                    if bar is not None:
                        postfix(last["loss"])
                    say(format_row(last))
        except KeyboardInterrupt:
            self.interrupted = True
            say("interrupted: saving the checkpoint")
            if self.segment is not None and not (self.run_dir / CHECKPOINT_FILE).exists():
                # interrupted in an init_from run's seam validation, after model.pt and before the first checkpoint:
                # without one the folder could be neither resumed nor started again (its model.pt is there)
                self.save_checkpoint()
                self.write_log()
        finally:
            if bar is not None:
                bar.close()
        if n_acc:  # the last partial interval is validated too, so the saved model is the trained one; off the
            # schedule, the plateau rule does not count it (a resumed run keeps the uninterrupted run's rates)
            last = validate((acc / n_ok).cpu().numpy(), samples / max(time.perf_counter() - t_int, 1e-9),
                                 scheduled=self.step % t.validate_every == 0)  # on the grid: a Ctrl-C in its validation
            if log is not None:
                log(format_row(last))
        return last


def format_row(row: dict[str, Any]) -> str:
    def f(k: str, fmt: str) -> str:
        v = row.get(k)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    text = (f"step {row['step']}: loss {f('loss', '.3f')} | val {f('val_loss', '.3f')} | JI {f('jaccard', '.1f')} % | "
            f"RMSE lat {f('rmse_lat', '.1f')} ax {f('rmse_ax', '.1f')} nm | RMSE/CRLB {f('crlb_ratio_lat', '.2f')} | "
            f"{f('samples_per_s', '.0f')} samples/s | lr {f('lr', '.2g')}")
    if "color_accuracy" in row:
        text += f" | colour {f('color_accuracy', '.1f')} % right, {f('color_rejection', '.1f')} % rejected"
    use = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in row.items() if k.startswith("channel_use_"))
    if use:
        text += " | channel use " + " / ".join(f"{v:.2f}" for _, v in use)
        for c, v in use:
            if v < CHANNEL_USE_MIN:
                text += (f"\n  warning: the network barely uses channel {c} ({v:.2f} of the most used channel's share): "
                         f"what only channel {c} shows (its photons) is guessed from the others; train longer and "
                         "watch this figure (bench/RESULTS.md, issue 10)")
    return text


def log_seams(rows: list[dict[str, Any]]) -> list[int]:
    """Indices of the log rows where the optimizer segment changes (an ``init_from`` run's fresh optimizer on an earlier
    run's weights: the curve's seams); a row without a ``segment`` is segment 0."""
    seg = [int(r.get("segment") or 0) for r in rows]
    return [i for i in range(1, len(rows)) if seg[i] != seg[i - 1]]


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Training/validation loss, JI and RMSE against step, as a PNG; a multi-colour run's colour accuracy and
    rejected share beside its colour set's JI and each dye's recall in a fourth panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = np.array([r["step"] for r in rows])
    get = lambda k: np.array([r.get(k, math.nan) for r in rows], dtype=float)  # noqa: E731
    colors = any("color_accuracy" in r for r in rows)
    # one step axis: a panel with no finite value (no emitter matched yet: no RMSE, no efficiency) kept matplotlib's
    # empty -0.05..0.05 as its "step" range
    fig, ax = plt.subplots(1, 4 if colors else 3, figsize=(17 if colors else 13, 3.6), sharex=True)
    # small markers: a value logged once, or between NaNs (no match yet: no RMSE), was a line of one point, invisible
    mark = {"marker": ".", "ms": 5}
    ax[0].plot(step, get("loss"), label="train", **mark)
    ax[0].plot(step, get("val_loss"), label="validation", **mark)
    ax[0].set_title("loss")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    ax[1].plot(step, get("jaccard"), label="JI", **mark)
    ax[1].plot(step, get("eff_lat"), label="E_lat", **mark)
    if not np.all(np.isnan(get("eff_ax"))):
        ax[1].plot(step, get("eff_ax"), label="E_ax", **mark)
    ax[1].set_title("detection / efficiency (%)")
    ax[1].set_ylabel("JI, efficiency (%)")
    ax[1].legend()
    ax[2].plot(step, get("rmse_lat"), label="RMSE lat", **mark)
    if not np.all(np.isnan(get("rmse_ax"))):
        ax[2].plot(step, get("rmse_ax"), label="RMSE ax", **mark)
    if np.all(np.isnan(get("rmse_lat"))):  # an empty panel says why
        ax[2].text(0.5, 0.5, "no emitter matched yet\n(JI 0 %: no RMSE)", transform=ax[2].transAxes, ha="center",
                   va="center", color="grey")
    ax[2].set_title("RMSE (nm)")
    ax[2].set_ylabel("RMSE (nm)")
    ax[2].legend()
    if colors:
        ax[3].plot(step, get("color_accuracy"), label="accuracy", **mark)
        ax[3].plot(step, get("color_rejection"), label="rejected", **mark)
        ax[3].plot(step, get("color_jaccard"), ls=":", label="JI (colour set)", **mark)
        dyes = sorted({int(k.rsplit("_", 1)[1]) for r in rows for k in r
                       if k.startswith("color_recall_") and k.rsplit("_", 1)[1].isdigit()})
        for k in dyes:
            ax[3].plot(step, get(f"color_recall_{k}"), ls="--", lw=1, label=f"recall dye {k}", **mark)
        ax[3].set_title("colour assignment (%)")
        ax[3].set_ylabel("score (%)")
        ax[3].set_ylim(0, 100)
        ax[3].legend(fontsize=7)
    seams = [int(step[i]) for i in log_seams(rows)]
    for a in ax:
        a.set_xlabel("step")
        a.grid(alpha=0.3)
        for s in seams:  # an init_from run: the optimizer restarted here
            a.axvline(s, color="grey", ls=":", lw=1,
                      label="optimizer restarted (init_from)" if a is ax[0] and s == seams[0] else None)
    if seams:  # the dotted line's meaning, once
        ax[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
