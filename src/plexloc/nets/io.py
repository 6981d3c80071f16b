"""Saving and loading a trained localizer with everything needed to use it.

A model file (``model.pt`` in a run folder) is a plain ``torch.save`` dictionary loaded with
``weights_only=True`` (no pickled code is ever executed):

- ``format`` = ``"plexloc-model"``, ``version``;
- ``spec``: :class:`~plexloc.nets.localizer.LocalizerSpec` as a dict;
- ``config``: the full training configuration (JSON-like dict, as validated);
- ``state_dict``: the weights; ``meta``: step, validation metrics, plexloc and torch versions;
- ``files``: the files the configuration names (spline calibration, sCMOS maps), their bytes
  (:mod:`plexloc.config.files`), so that the model works where those paths do not exist.

The weights may be stored in bfloat16 (:func:`save_weights_as`: half the bytes, for moving a large model between
machines); they load upcast to float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from plexloc.config.files import embed_files, restore_files
from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path
from plexloc.nets.localizer import Localizer, LocalizerSpec

FORMAT = "plexloc-model"
VERSION = 1
MODEL_FILE = "model.pt"


def model_payload(model: Localizer, config: dict[str, Any], meta: dict[str, Any] | None = None,
                  files: dict[str, Any] | None = None) -> dict[str, Any]:
    """``files``: :func:`plexloc.config.files.embed_files` of ``config``, read now when not given."""
    state = {k.removeprefix("_orig_mod."): v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.spec.to_dict(),
        "config": config,
        "state_dict": state,
        "meta": dict(meta or {}),
        "files": embed_files(config) if files is None else files,
    }


def save_model(path: str | os.PathLike, model: Localizer, config: dict[str, Any], meta: dict[str, Any] | None = None,
               files: dict[str, Any] | None = None) -> None:
    """Write a model file atomically, with the files its configuration names (``files``: as for
    :func:`model_payload`)."""
    with atomic_path(path) as tmp:
        torch.save(model_payload(model, config, meta, files), tmp)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A run folder (its ``model.pt``) or a model file."""
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
        if not p.exists():
            raise InputError(f"no {MODEL_FILE} in this run folder (has training written a validation yet?)", source=path)
    elif not p.exists():
        raise InputError("model not found (give a run folder or a model .pt file)", source=path)
    return p


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    p = resolve_model_path(path)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise InputError(f"not a readable plexloc model file (damaged, cut short or not a model; {p.stat().st_size:,} "
                         f"bytes): {type(err).__name__}: {err}", source=p) from None
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, "plexloc-checkpoint"):
        raise InputError("not a plexloc model file (missing format tag)", source=p)
    version = payload.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"not a plexloc model file: its version is {version!r}, not a whole number", source=p)
    if version > VERSION:
        raise InputError(f"model file version {version} is newer than this plexloc reads ({VERSION})", source=p)
    return payload


def _weights_error(err: RuntimeError) -> str:
    """torch's ``load_state_dict`` complaint in one line: the missing and unexpected weights, and how many have
    another shape (the first named)."""
    lines = [ln.strip().rstrip(".") for ln in str(err).splitlines()[1:] if ln.strip()]
    shape = [ln for ln in lines if ln.startswith("size mismatch")]
    parts = [ln if len(ln) <= 200 else ln[:200] + " ..." for ln in lines if not ln.startswith("size mismatch")]
    if shape:
        parts.append(f"{len(shape)} of another shape, the first: {shape[0].removeprefix('size mismatch for ')}")
    return "; ".join(parts) or str(err)


def load_model(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> tuple[Localizer, dict[str, Any], dict[str, Any]]:
    """Localizer (eval mode, on ``device``), its training configuration dict and its meta dict.

    The configuration's file paths hold the files the model was trained with (:func:`plexloc.config.files.restore_files`:
    the model's own copies where the originals are gone or changed). Weights stored in bfloat16 load upcast to
    float32."""
    path = resolve_model_path(path)
    return model_from_payload(read_model_file(path), path, device=device)


def model_from_payload(payload: dict[str, Any], path: str | os.PathLike, *, device: torch.device | str = "cpu"
                       ) -> tuple[Localizer, dict[str, Any], dict[str, Any]]:
    """:func:`load_model` of a payload already read (:func:`read_model_file`) from ``path`` (named in errors)."""
    # a checkpoint: the weights' moving average where it keeps one (what its run validates and saves in model.pt),
    # else the last step's weights
    weights_key = ("state_dict" if "state_dict" in payload
                   else "average" if isinstance(payload.get("average"), dict) else "model")
    parts = {"spec": "network settings (spec)", weights_key: "weights", "config": "training configuration"}
    missing = [word for key, word in parts.items() if not isinstance(payload.get(key), dict)]
    if missing:
        raise InputError(f"the model file lacks its {', '.join(missing)} (damaged, or not written by plexloc)", source=path)
    try:
        spec = LocalizerSpec.from_dict(payload["spec"])
    except ValueError as err:
        raise InputError(str(err), source=path) from None
    try:
        with torch.random.fork_rng(devices=[]):  # the initial weights, replaced below, draw from the global RNG:
            model = Localizer(spec)  # left as it was (a load changed the caller's random numbers after it)
    except (TypeError, ValueError, RuntimeError) as err:  # a setting of the wrong type or out of range
        raise InputError(f"the network's settings do not make a network ({type(err).__name__}: {err}): the file is "
                         "damaged or was not written by plexloc", source=path) from None
    state = payload[weights_key]
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # weights of another architecture than the spec's (damaged, edited or foreign file)
        raise InputError(f"the weights do not fit the network its settings describe ({_weights_error(err)}): the file is "
                         "damaged or was written by another version of plexloc's network", source=path) from None
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InputError(f"{len(bad)} weight tensor(s) are not finite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): "
                         "a diverged or damaged model", source=path)
    config = restore_files(payload["config"], payload.get("files"), source=path)
    return model.to(device).eval(), config, payload.get("meta") or {}


#: the :class:`LocalizerSpec` fields that make the network's weights (their number, shapes and meaning): weights
#: trained for one spec start another network only where these agree. The rest (pixel size, output scales, input
#: normalisation) follows the configuration.
ARCHITECTURE_FIELDS: dict[str, str] = {
    "n_channels": "channels (the configuration's channels)",
    "n_photons": "photon outputs (1 for one channel or linked photons, else one per channel: photon_model)",
    "n_aux": "auxiliary inputs (the channels' transform maps: 2 per channel with 2 or more channels)",
    "window": "model.window",
    "features": "model.features",
    "depth": "model.depth",
    "union_features": "model.union_features",
    "union_depth": "model.union_depth",
    "up_kernel": "model.up_kernel",
    "out_kernel": "model.out_kernel",
    "is_3d": "3D (emitters.z_range_nm wider than a point and a 3D PSF)",
}


def check_architecture(spec: LocalizerSpec, weights_spec: LocalizerSpec, *, source: str | os.PathLike) -> None:
    """InputError naming the first :data:`ARCHITECTURE_FIELDS` field where the network ``spec`` (of a configuration)
    differs from the one the weights of ``source`` were trained for, with both values (every field that differs)."""
    diff = [(k, getattr(spec, k), getattr(weights_spec, k)) for k in ARCHITECTURE_FIELDS
            if getattr(spec, k) != getattr(weights_spec, k)]
    if diff:
        text = "; ".join(f"{ARCHITECTURE_FIELDS[k]} ({k}): the configuration's {a!r}, the weights' {b!r}" for k, a, b in diff)
        raise InputError(f"the weights were trained for another network than this configuration's: {text} (give the "
                         "configuration the weights' model section and channels, or train from scratch)", source=source)


def save_weights_as(payload: dict[str, Any], path: str | os.PathLike, *, dtype: torch.dtype = torch.bfloat16) -> int:
    """Write a model payload (:func:`read_model_file`, :func:`model_payload`) to ``path`` (atomically) with its
    floating-point weights cast to ``dtype`` (the meta records it as ``weights_dtype``); a checkpoint's payload is
    written as a model file of the weights it validates (its moving average, else its weights), without the optimizer.
    Returns the file's size in bytes. bfloat16 halves a float32 model (the 26 M parameters of the DECODE-Plex-size
    network: 100 -> 50 MiB) at a relative rounding of at most 2^-9 per weight."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputError(f"weights dtype must be a floating-point torch dtype, got {dtype!r}")
    key = ("state_dict" if "state_dict" in payload
           else "average" if isinstance(payload.get("average"), dict) else "model")
    if not isinstance(payload.get(key), dict):
        raise InputError("the payload has no weights (state_dict)", source=path)
    state = {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in payload[key].items()}
    meta = dict(payload.get("meta") or {})
    if payload.get("format") == "plexloc-checkpoint":  # the checkpoint's own clock, as a model file's meta has it
        meta.setdefault("step", payload.get("step"))
        meta.setdefault("elapsed_s", payload.get("elapsed_s"))
    meta["weights_dtype"] = str(dtype).removeprefix("torch.")
    out = {"format": FORMAT, "version": VERSION, "spec": payload["spec"], "config": payload["config"],
           "state_dict": state, "meta": meta, "files": payload.get("files") or {}}
    with atomic_path(path) as tmp:
        torch.save(out, tmp)
    return Path(path).stat().st_size
