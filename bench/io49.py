"""Session 49, helper io: numbers behind the movie-input and network-fit changes.

1. Peak resident memory of one CPU network pass (Predictor.localize_frames on one block) for a 1- and a 2-channel
   model of the default widths, before and after the pass size counted channels (``--passes``).
2. Which TIFF compressions this environment reads without imagecodecs (``--codecs``).

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/io49.py [--passes] [--codecs]; writes bench/io49.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _vm(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def one_pass(n_channels: int, frames: int, size: int, count_channels: bool) -> dict:
    """In this process: peak RSS above the baseline of one block through Predictor.localize_frames (float32, CPU)."""
    import time

    import torch

    from plexloc.infer import predict
    from plexloc.nets.localizer import Localizer, LocalizerSpec

    torch.manual_seed(0)
    spec = LocalizerSpec(n_channels=n_channels, input_offset=[50.0] * n_channels, input_scale=[20.0] * n_channels)
    net = Localizer(spec).eval()
    p = predict.Predictor(net, precision="float32", channels_last=False, tile_px=size)
    if not count_channels:  # the pass size as before session 49: frames x tile pixels, whatever the channels
        p._pass_frames = lambda x, per_item=1: max(1, int(p.pass_pixels) // (per_item * int(x.shape[-2]) * int(x.shape[-1])))
    block = torch.rand(frames + 2, n_channels, size, size) * 100 + 50
    with torch.no_grad():  # a warm-up pass on a small block (allocator, oneDNN primitives)
        p.localize_frames(block[:4, :, :64, :64])
    predict_k = p._pass_frames(block[:, :, :size, :size])
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    base = _vm("VmRSS")
    t0 = time.perf_counter()
    p.localize_frames(block)
    dt = time.perf_counter() - t0
    return {"channels": n_channels, "frames": frames, "size": size, "count_channels": count_channels,
            "frames_per_pass": predict_k, "peak_above_base_MB": round((_vm("VmHWM") - base) / 1e6, 1),
            "seconds": round(dt, 2)}


def passes() -> list[dict]:
    out = []
    for c in (1, 2):
        for counted in (False, True):
            if c == 1 and counted:
                continue  # the same pass for one channel
            cmd = [sys.executable, __file__, "--one", str(c), "16", "256", str(int(counted))]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(out[-1], flush=True)
    return out


def codecs(folder: Path) -> dict:
    """For each compression: does plexloc open and read a 3-frame uint16 movie so compressed (else its error)?
    Written by tifffile where it can here; LZW, PackBits and JPEG (8-bit) by Pillow; Zstandard by tifffile with the
    raw-block encoder of tests/test_io49.py (a valid Zstandard frame, stored blocks)."""
    import numpy as np
    import tifffile
    from PIL import Image

    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_io49 import write_zstd_tiff

    from plexloc.errors import InputError
    from plexloc.io.tiff import open_movie

    folder.mkdir(parents=True, exist_ok=True)
    a = (np.arange(3 * 16 * 16).reshape(3, 16, 16) % 1000).astype(np.uint16)

    def pil(path, frames, compression):
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], compression=compression)

    writers = {
        "zlib": lambda p, f: tifffile.imwrite(p, f, compression="zlib", photometric="minisblack"),
        "lzma": lambda p, f: tifffile.imwrite(p, f, compression="lzma", photometric="minisblack"),
        "packbits (Pillow)": lambda p, f: pil(p, f, "packbits"),
        "lzw (Pillow)": lambda p, f: pil(p, f, "tiff_lzw"),
        "jpeg, 8-bit (Pillow)": lambda p, f: pil(p, (f % 256).astype(np.uint8), "jpeg"),
        "zstd (raw blocks)": write_zstd_tiff,
    }
    out = {}
    for name, write in writers.items():
        p = folder / f"{name.split()[0].strip(',')}.tif"
        frames = (a % 256).astype(np.uint8) if name.startswith("jpeg") else a
        write(p, a)
        try:
            with open_movie(p) as m:
                out[name] = "read, equal" if (m[:] == frames).all() else "read, values differ (lossy)"
        except InputError as err:
            out[name] = f"refused when opened: {err.reason}"
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", action="store_true")
    ap.add_argument("--codecs", action="store_true")
    ap.add_argument("--one", nargs=4)
    a = ap.parse_args()
    if a.one:
        c, f, s, counted = (int(v) for v in a.one)
        print(json.dumps(one_pass(c, f, s, bool(counted))))
        sys.exit(0)
    res: dict = {"date": "2026-12-07", "session": 49, "machine": "CPU, this machine, OMP_NUM_THREADS=1"}
    path = HERE / "io49.json"
    if path.exists():
        res.update(json.loads(path.read_text()))
    if a.passes:
        res["passes"] = passes()
    if a.codecs:
        import tempfile

        try:
            import imagecodecs  # noqa: F401

            key = "codecs_with_imagecodecs"
        except ImportError:
            key = "codecs_without_imagecodecs"
        res.pop("codecs", None)
        res[key] = codecs(Path(tempfile.mkdtemp()))
        print(key, json.dumps(res[key], indent=1))
    path.write_text(json.dumps(res, indent=1) + "\n")
