"""Simulation samples/s with each emitter on a patch of its own width (the default) against every emitter on the
PSF's full patch (``adaptive_roi = False``, the renderer before 2026-12-04), interleaved in one process so that a
busy machine slows both alike. CPU, one thread, 80x80 training samples of a configuration's channels.

    PYTHONPATH=src python bench/diag/adaptive_patches.py examples/quad_plane.yaml
"""

from __future__ import annotations

import sys
import tempfile
import time

import torch

from plexloc.config import TrainConfig, load_config
from plexloc.train import Trainer
from plexloc.train.validation import batch_photons


def main(path: str, repeats: int = 4, batch: int = 32) -> None:
    torch.set_num_threads(1)
    cfg = load_config(path, TrainConfig).model_dump()
    cfg["frame_size"] = [80, 80]
    cfg["training"].update(batch_size=batch, validation_samples=8)
    cfg["model"].update(features=4, union_features=4, depth=1, union_depth=1)
    tr = Trainer(TrainConfig.model_validate(cfg), tempfile.mkdtemp() + "/run", device="cpu")
    psfs = [m for m in tr.sim.modules() if hasattr(m, "adaptive_roi")]
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for adaptive in (False, True):
            for p in psfs:
                p.adaptive_roi = adaptive
            t0 = time.perf_counter()
            for _ in range(3):
                batch_photons(tr.sim, tr.generator().frames)
            rates[adaptive].append(3 * batch / (time.perf_counter() - t0))
    print(f"{path}: {len(psfs)} channel PSF(s), full patch {psfs[0].roi_px if psfs else '-'}")
    print("| patches | simulation samples/s (each repeat) |\n|---|---|")
    for adaptive in (False, True):
        print(f"| {'per emitter' if adaptive else 'full'} | {' / '.join(f'{r:.0f}' for r in rates[adaptive])} |")


if __name__ == "__main__":
    main(sys.argv[1])
