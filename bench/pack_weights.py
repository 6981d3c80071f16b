"""A run's weights as bfloat16 parts small enough to come back from a GPU lease and be carried to the next one.

A lease returns at most 8 files of 16 MiB (64 MiB in all) and takes 64 MiB along: the DECODE-Plex-size dual-colour
model's checkpoint (weights, AdamW moments, weight average: ~400 MiB) never fits, its model.pt (100 MiB in float32)
neither; in bfloat16 the weights are 50 MiB. ``pack`` writes the weights a run is scored with (its model.pt: the
averaged, best weights) in bfloat16 with the run's configuration, the steps and minutes of training behind them and
its log rows (:func:`plexloc.train.trainer.export_weights`), split into 15 MiB parts ``OUT/wts_<stem>.NN``;
``unpack`` joins them into a model file that ``plexloc train --init-from FILE --clock-offset-min source`` trains on
(a fresh optimizer: the curve's seam) and ``plexloc fit --model FILE`` fits with. ``compare`` scores a run's model
and its bfloat16 copy on the run's validation set (what the rounding costs).

    python bench/pack_weights.py pack RUN_DIR --stem dual_color_plex --out OUT
    python bench/pack_weights.py unpack OUT --stem dual_color_plex --to wts_dual_color_plex.pt
    python bench/pack_weights.py compare RUN_DIR --samples 512 --out bf16_weights.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import torch

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path
from plexloc.nets.io import load_model
from plexloc.train.trainer import export_weights, read_init_source

PART_MIB = 15
PREFIX = "wts_"
#: each part starts with one line ``plexloc-weights <stem> <index> <count> <sha256 of the whole>``, so that a part of
#: another pack (an earlier lease's, left beside the new ones) or a damaged part is named, not found by a failed load
HEADER = "plexloc-weights"
HEADER_BYTES = 256  # room kept for it in each part (the line is about 100 bytes)


def part_paths(folder: Path, stem: str) -> list[Path]:
    """The parts ``folder/wts_<stem>.NN`` in order; InputError where none are there or the numbers have a gap."""
    rx = re.compile(re.escape(PREFIX + stem) + r"\.(\d{2,})$")
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir() if (m := rx.match(p.name))), key=lambda t: t[0])
    if not found:
        raise InputError(f"no parts {PREFIX}{stem}.NN here", source=folder)
    numbers = [n for n, _ in found]
    if numbers != list(range(len(found))):
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        raise InputError(f"the parts of {PREFIX}{stem} are not all here: {', '.join(f'{n:02d}' for n in missing)} "
                         "missing (copy every part the lease returned)", source=folder)
    return [p for _, p in found]


def pack(run: str | os.PathLike, out: str | os.PathLike, stem: str, *, part_mib: float = PART_MIB,
         dtype: torch.dtype = torch.bfloat16) -> list[Path]:
    """The weights of ``run`` (a run folder or a model file) as ``out/wts_<stem>.NN`` parts of at most ``part_mib``
    MiB, each written atomically; earlier parts of the same stem are removed first. Returns the parts."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stem):
        raise InputError(f"--stem: letters, digits, '_', '.' and '-' only, got {stem!r}")
    if not part_mib > 0:
        raise InputError(f"--part-mib must be > 0, got {part_mib}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = int(part_mib * 2**20)
    with tempfile.TemporaryDirectory(dir=out, prefix=".pack_") as tmp:
        whole = Path(tmp) / "weights.pt"
        export_weights(run, whole, dtype=dtype)
        data = whole.read_bytes()
    for old in out.glob(f"{PREFIX}{stem}.[0-9][0-9]*"):
        old.unlink()
    digest = hashlib.sha256(data).hexdigest()
    size -= HEADER_BYTES  # each part, header included, stays within part_mib
    if size <= 0:
        raise InputError(f"--part-mib {part_mib} leaves no room beside a part's {HEADER_BYTES}-byte header")
    count = max(1, math.ceil(len(data) / size))
    parts = []
    for k in range(count):
        path = out / f"{PREFIX}{stem}.{k:02d}"
        with atomic_path(path) as t:
            t.write_bytes(f"{HEADER} {stem} {k} {count} {digest}\n".encode() + data[k * size:(k + 1) * size])
        parts.append(path)
    return parts


def _read_part(path: Path) -> tuple[int, int, str, bytes]:
    """(index, count, digest, payload) of one part; InputError where it has no header."""
    raw = path.read_bytes()
    head, sep, payload = raw.partition(b"\n")
    fields = head.decode("ascii", "replace").split(" ")
    if not sep or len(fields) != 5 or fields[0] != HEADER or not (fields[2].isdigit() and fields[3].isdigit()):
        raise InputError("not a part written by bench/pack_weights.py pack (no header line)", source=path)
    return int(fields[2]), int(fields[3]), fields[4], payload


def unpack(folder: str | os.PathLike, stem: str, to: str | os.PathLike) -> dict:
    """Join ``folder/wts_<stem>.NN`` into the model file ``to`` (atomically), checked to load; returns its meta."""
    parts = part_paths(Path(folder), stem)
    read = [_read_part(p) for p in parts]
    packs: dict[str, list[str]] = {}
    for p, (_, _, digest, _) in zip(parts, read):
        packs.setdefault(digest, []).append(p.name.rsplit(".", 1)[1])
    if len(packs) > 1:
        which = "; ".join(f"parts {', '.join(names)} (pack {d[:12]})" for d, names in packs.items())
        raise InputError(f"the parts of {PREFIX}{stem} come from {len(packs)} different packs: {which}. Copy only the "
                         "parts of the latest lease, after removing the earlier ones", source=folder)
    count, digest = read[0][1], read[0][2]
    if len(parts) != count:
        raise InputError(f"{len(parts)} parts of {PREFIX}{stem} here, and the pack has {count}: "
                         + ("some are missing" if len(parts) < count else f"parts {count:02d} on are not its own"),
                         source=folder)
    if [r[0] for r in read] != list(range(count)):
        raise InputError(f"the parts of {PREFIX}{stem} are renamed: their headers number them "
                         f"{[r[0] for r in read]}", source=folder)
    data = b"".join(r[3] for r in read)
    if hashlib.sha256(data).hexdigest() != digest:
        raise InputError(f"the parts of {PREFIX}{stem} are damaged (cut short or changed in transfer): their checksum "
                         "is not the pack's; copy them again from the lease's output", source=folder)
    with atomic_path(to) as tmp:
        tmp.write_bytes(data)
        _, _, meta = load_model(tmp)  # a file that is not a model is refused before it takes the name
    return meta


def compare(run: str | os.PathLike, *, samples: int | None = None, device: str = "cpu") -> dict:
    """The run's model.pt and its bfloat16 copy scored on the run's validation set (``samples``: more than the
    training's), in float32 arithmetic and in the training's (bfloat16 autocast where the device has it)."""
    from plexloc.config import TrainConfig
    from plexloc.config.io import validate_config
    from plexloc.infer.predict import cpu_bf16_supported
    from plexloc.simulation import Simulator
    from plexloc.train.trainer import training_simulation, validation_set

    model32, config_dict, meta = load_model(run, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bf16.pt"
        export_weights(run, path)
        model16, _, _ = load_model(path, device=device)
    config = validate_config(config_dict, TrainConfig, source=run)
    sim = Simulator(training_simulation(config)).to(torch.device(device))
    val = validation_set(config, sim, model32.spec.window, samples)
    keys = ("val_loss", "jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "eff_3d",
            "crlb_ratio_lat", "color_accuracy", "color_rejection")
    amp_ok = torch.device(device).type == "cuda" or cpu_bf16_supported()
    res = {"run": str(run), "step": meta.get("step"), "elapsed_s": meta.get("elapsed_s"),
           "validation_samples": samples or config.training.validation_samples,
           "n_parameters": sum(p.numel() for p in model32.parameters()), "arithmetic": {}}
    for amp in (False, True) if amp_ok and config.training.amp else (False,):
        row = {}
        for name, model in (("float32_weights", model32), ("bfloat16_weights", model16)):
            scores = val.score(model, sim, threshold=config.training.detection_threshold, amp=amp)
            row[name] = {k: float(scores[k]) for k in keys if isinstance(scores.get(k), (int, float))
                         and math.isfinite(scores[k])}
        row["difference"] = {k: row["bfloat16_weights"][k] - v for k, v in row["float32_weights"].items()
                             if isinstance(v, float) and k in row["bfloat16_weights"]}
        res["arithmetic"]["bfloat16_autocast" if amp else "float32"] = row
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="a run's weights (model.pt) as bfloat16 parts OUT/wts_<stem>.NN")
    p.add_argument("run", type=Path, help="run folder or model file")
    p.add_argument("--stem", required=True, help="the parts' name: wts_<stem>.NN")
    p.add_argument("--out", type=Path, required=True, help="folder for the parts")
    p.add_argument("--part-mib", type=float, default=PART_MIB, help=f"largest part (MiB, default {PART_MIB})")
    p.add_argument("--float32", action="store_true", help="keep the weights in float32 (twice the bytes)")
    u = sub.add_parser("unpack", help="join the parts into a model file (checked to load)")
    u.add_argument("folder", type=Path, help="folder holding wts_<stem>.NN")
    u.add_argument("--stem", required=True)
    u.add_argument("--to", type=Path, required=True, help="the model file to write")
    c = sub.add_parser("compare", help="score a run's model and its bfloat16 copy on the run's validation set")
    c.add_argument("run", type=Path)
    c.add_argument("--samples", type=int, default=None, help="validation samples (default: the run's own)")
    c.add_argument("--device", default="cpu")
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            parts = pack(args.run, args.out, args.stem, part_mib=args.part_mib,
                         dtype=torch.float32 if args.float32 else torch.bfloat16)
            src = read_init_source(args.run)  # the record of the weights packed (a checkpoint's own step and time)
            mib = sum(p.stat().st_size for p in parts) / 2**20
            print(f"{len(parts)} part(s), {mib:.1f} MiB: {parts[0].parent}/{PREFIX}{args.stem}.00"
                  f"{f'..{len(parts) - 1:02d}' if len(parts) > 1 else ''} (step {src.step}, "
                  f"{(src.elapsed_s or 0) / 60:.2f} min of training)")
        elif args.cmd == "unpack":
            meta = unpack(args.folder, args.stem, args.to)
            print(f"{args.to}: step {meta.get('step')}, {(meta.get('elapsed_s') or 0) / 60:.2f} min of training, "
                  f"{len(meta.get('history') or [])} log rows, weights {meta.get('weights_dtype')}")
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            res = compare(args.run, samples=args.samples, device=args.device)
            text = json.dumps(res, indent=2)
            if args.out:
                with atomic_path(args.out) as tmp:
                    tmp.write_text(text + "\n")
            print(text)
    except InputError as err:
        print(f"pack_weights: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
