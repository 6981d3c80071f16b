"""Multi-channel accuracy (issue 10): bench/accuracy.py with the DECODE-Plex evaluation's settings.

Defaults: `examples/dual_color_plex.yaml`, `examples/biplane_plex.yaml` and `examples/quad_plane.yaml` (seed
002's quad-plane model, with its voxel-level Jaccard index besides the emitter scores), 80x80 training ROIs (room for
the channel offsets), density sweep 0.03, 0.14, 0.65 and 3 emitters/um^2 with at least 10,000 emitters per
step; colour accuracy / rejection for ratiometric data (once `plexloc.post.color` exists), the joint
multi-channel CRLB, z-scores, and the MLE global fit with --compare-mle. Prints the table, writes JSON.

    python bench/multichannel.py --device cuda --minutes 25
    python bench/multichannel.py --device cpu --minutes 2 --features 8 --min-emitters 500 --frames 20  # smoke
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = [
    "--configs", str(ROOT / "examples" / "dual_color_plex.yaml"), str(ROOT / "examples" / "biplane_plex.yaml"),
    str(ROOT / "examples" / "quad_plane.yaml"),
    "--densities", "0.03", "0.14", "0.65", "3",
    "--min-emitters", "10000",
    "--train-size", "80",
    "--train-density", "0.65",
    "--lr", "4e-4",
    "--out", str(ROOT / "bench" / "out" / "multichannel"),
]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    given = {a for a in argv if a.startswith("--")}
    merged: list[str] = []
    i = 0
    while i < len(DEFAULTS):  # defaults the caller did not override
        opt, j = DEFAULTS[i], i + 1
        while j < len(DEFAULTS) and not DEFAULTS[j].startswith("--"):
            j += 1
        if opt not in given:
            merged += DEFAULTS[i:j]
        i = j
    return accuracy.main(merged + argv)


if __name__ == "__main__":
    sys.exit(main())
