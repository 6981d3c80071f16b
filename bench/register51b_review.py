"""Session 51 review of register2 (d46d4e5): detection and false warnings of the duplicate check on small tables,
before (d46d4e5^, PYTHONPATH of a worktree) and after. Tables of n uniform random localizations over `frames` frames
of a square field, a share of them doubled 300 nm off in x with 20 nm copy noise; 200 tables per row (seed 11)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/register51b_review.py 200 bench/register51b_review.json

Prints and writes {row: (warned, tables, mean share)}.
"""
import sys, json, warnings, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from register51b import _table, random_table
from plexloc.post.duplicates import channel_duplicates
def small_doubled(n, frames, field, share, noise, rng, off=300.0):
    frame = np.sort(rng.integers(0, frames, n)); xy = rng.uniform(0, field, (n, 2))
    dup = rng.uniform(size=n) < share
    pos = np.concatenate([xy, xy[dup] + (off, 0.0) + rng.normal(size=(int(dup.sum()), 2)) * noise])
    return _table(pos, np.concatenate([frame, frame[dup]]))
out = {}
T = int(sys.argv[1])
for n, frames, field in [(30, 1, 5000.), (50, 1, 10000.), (100, 5, 5000.), (200, 20, 10000.), (500, 10, 10000.)]:
    for share in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0):
        for noise in (20.0,):
            rng = np.random.default_rng(11); w = 0; fr = []
            for _ in range(T):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t = small_doubled(n, frames, field, share, noise, rng) if share else random_table(n, frames, field, rng)
                    rep = channel_duplicates(t, warn=False)
                w += rep.warning is not None; fr.append(rep.fraction)
            out[f"n{n} f{frames} {field/1000:g}um share{share}"] = (w, T, round(float(np.mean(fr)), 3))
            print(f"n{n} f{frames} {field/1000:g}um share{share}: warned {w}/{T} frac {np.mean(fr):.3f}", flush=True)
json.dump(out, open(sys.argv[2], "w"))
