"""Wrong-transform warning (issue 10): false-alarm rate and detection rate of
:func:`plexloc.post.duplicates.channel_duplicates` on synthetic tables.

False alarms: correct multi-channel output (one localization per molecule, 20 nm noise) with uniform
molecules at 0.03, 0.14, 0.65 and 3 per um^2 per frame, about 10,000 molecules per table on a 6.4 x 6.4 um
field (64 px of 100 nm); the share of tables that warn. Detection: the same tables in which a share of the
molecules is reported twice, 3 pixels (300 nm) apart (a transform off by 3 pixels); the share that warn.
Prints a table, writes JSON.

    python bench/duplicates_false_alarm.py --trials 200 --json bench/out/duplicates_false_alarm.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from plexloc.post.duplicates import DuplicateWarning, channel_duplicates
from plexloc.post.synthetic_plex import doubled_table

DENSITIES = (0.03, 0.14, 0.65, 3.0)
SHARES = (0.02, 0.05, 0.1, 0.3, 1.0)


def rate(density: float, share: float, trials: int, seed0: int) -> dict:
    fired, corrected_p, excess = 0, [], []
    for t in range(trials):
        table = doubled_table(density, share=share, offset_nm=(300.0, 0.0), seed=seed0 + t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DuplicateWarning)
            rep = channel_duplicates(table, warn=False)
        fired += rep.warning is not None
        corrected_p.append(min(rep.p_value * rep.looks, 1.0))
        excess.append(rep.excess)
    return {"density": density, "share": share, "trials": trials, "warned": fired, "rate": fired / trials,
            "min_corrected_p": float(np.min(corrected_p)), "median_excess": float(np.median(excess)),
            "max_excess": float(np.max(excess))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200, help="tables per density for the false-alarm rate")
    ap.add_argument("--power-trials", type=int, default=20, help="tables per density and share for detection")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    false_alarms = [rate(d, 0.0, args.trials, 1000) for d in DENSITIES]
    power = [rate(d, s, args.power_trials, 5000) for d in DENSITIES for s in SHARES]
    print("| density /um^2 | tables | warned | false-alarm rate | smallest corrected p | median / max excess |")
    print("|---|---|---|---|---|---|")
    for r in false_alarms:
        print(f"| {r['density']:g} | {r['trials']} | {r['warned']} | {r['rate']:.3f} | {r['min_corrected_p']:.2g} | "
              f"{100 * r['median_excess']:.2f} / {100 * r['max_excess']:.2f} % |")
    print("\n| density /um^2 | " + " | ".join(f"{100 * s:g} % doubled" for s in SHARES) + " |")
    print("|---|" + "---|" * len(SHARES))
    for d in DENSITIES:
        cells = [r for r in power if r["density"] == d]
        print(f"| {d:g} | " + " | ".join(f"{r['warned']}/{r['trials']}" for r in cells) + " |")
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s on {platform.processor() or platform.machine()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"false_alarms": false_alarms, "detection": power, "seconds": seconds},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
