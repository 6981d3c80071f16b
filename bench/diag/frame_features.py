"""Fitting with each frame through the frame U-Nets once (``Predictor.localize_frames``) against once per window
(``Predictor.localize`` of the block's sliding windows): frames/s on the CPU, the DECODE-sized network (48 features,
2 stages) with fresh weights, one thread, 128x128 frames, a block of 8 frames and their 2 neighbours.

    PYTHONPATH=src python bench/diag/frame_features.py
"""

from __future__ import annotations

import time

import torch

from plexloc.infer import Predictor, sliding_windows
from plexloc.nets import Localizer, LocalizerSpec


def main(repeats: int = 2) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = LocalizerSpec(features=48, depth=2, union_features=48, union_depth=2, input_offset=[50.0], input_scale=[20.0])
    predictor = Predictor(Localizer(spec).eval())
    block = torch.rand(10, 1, 128, 128) * 100 + 20
    print("| repeat | per window frames/s | once per frame frames/s | speed-up |\n|---|---|---|---|")
    for r in range(repeats):
        t0 = time.perf_counter()
        predictor.localize(sliding_windows(block, 3))
        t_win = time.perf_counter() - t0
        t0 = time.perf_counter()
        predictor.localize_frames(block)
        t_once = time.perf_counter() - t0
        print(f"| {r} | {8 / t_win:.2f} | {8 / t_once:.2f} | {t_win / t_once:.2f} |")


if __name__ == "__main__":
    main()
