"""Session 51 (helper "register"): is ``plexloc register``'s transform uncertainty honest, and does the duplicate
check's share of localizations in pairs read noisy copies whole? A table and JSON.

1. ``register``: two single-channel tables of one movie (tests/test_multi50.py ``single_channel_tables``: 1 degree
   rotation, scale 1.01, chip pixel (300, 200), channel 0 with 10 nm noise, channel 1 with 30 nm), over densities
   0.1-10 per um^2 and the share of molecules each channel sees; ``--seeds`` seeds a row. Per row: the rms over seeds
   of the mapped position's error at the worst of the field's four corners (nm), the median reported uncertainty
   (``transform_uncertainty_nm``), their ratio (1 = honest), the median chance-pair share (true, from the molecules'
   numbers) and its bound (``chance_pairs_share_bound``), and how many seeds were warned. The least-squares standard
   error before this session is the reported one times ``1 - chance_pairs_share_bound`` (column ``se_ls``).
   Registrations the pairs rule warns about (chance transforms, errors of micrometres) are left out of the ratio.
2. ``note``: how often the note "the transform is more than a shift: give --roi-offset" fires for a shift alone and
   for a 1 degree rotation, 3-1,000 molecules (the old rule's count computed from the same fit), and the error that
   the fitted T.json makes, read in chip coordinates without --roi-offset, at an ROI at chip pixel (300, 200)
   (``(L - I) O``, median nm; a linear part of noise alone is applied too).
3. ``duplicates``: tables where a transform 3 px off doubles a share of the molecules, the copies with 10-80 nm noise;
   the reported share of localizations in pairs (median over ``--tables`` tables) and how many were warned.
4. ``sites`` (review of session 51): emitters seen again and again at the same places, one layout each and
   ``--seeds`` noise seeds: beads (or fiducials) in every frame, 8-site rings 100 nm across (nuclear-pore-like) and
   lines of sites, blinking; the rms over seeds of the error at the worst corner of the reference table's extent
   (where the uncertainty is computed), the median reported uncertainty, their ratio, the true chance-pair share and
   the bound. Before the review the bound counted each bead found again in the moved frame (0.5, the cap).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/register51.py --json bench/register51.json

(The JSON's ``note`` and ``sites`` parts were run alone, ``--parts note`` and ``--parts sites --seeds 20``, and merged
in; ``sites_before_review``: ``--parts sites --seeds 20`` on d40c1d4's src.)

``bench/register51_before.json``: the same script run on the code before (3abfe7b, a worktree's src on PYTHONPATH),
where the reported uncertainty was the least-squares standard error and the duplicate share was counted at 50 nm.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PX = 100.0
CONDITIONS = [(256, 0.1, 200, 0.3, 0.05), (256, 0.3, 60, 0.3, 0.05), (256, 1.0, 20, 0.3, 0.05),
              (256, 3.0, 20, 0.3, 0.05), (128, 3.0, 20, 0.9, 0.9), (128, 10.0, 20, 0.3, 0.05),
              (128, 10.0, 20, 0.2, 0.2), (64, 0.5, 200, 0.9, 0.9)]


def register_rows(seeds: int) -> list[dict]:
    from test_multi50 import chip_T, single_channel_tables

    from plexloc.calibrate.fileformat import chip_transform
    from plexloc.errors import InputError
    from plexloc.post.pairs import mutual_nearest
    from plexloc.post.registration import register_channels

    T, roi = chip_T(), (300, 200)
    o = np.asarray(roi, float) * PX
    rows = []
    for size, dens, frames, p0, p1 in CONDITIONS:
        pts = np.array([[o[0] + x, o[1] + y, 1.0] for x in (0.0, size * PX) for y in (0.0, size * PX)])
        err, unc, se_ls, share, bound, warned, pairs_rule, refused, t0 = [], [], [], [], [], 0, 0, 0, time.time()
        for seed in range(seeds):
            a, b, _, id0, id1 = single_channel_tables(T, roi, size, dens, frames, p0, p1, 10.0, 30.0, seed=seed, ids=True)
            try:
                r = register_channels(a, b)
            except InputError:
                refused += 1
                continue
            warned += r.warning is not None
            if r.n_pairs < 20 or r.n_pairs / min(len(a), len(b)) < 0.1:
                pairs_rule += 1
                continue
            f = getattr(r, "chance_share", 0.0)
            unc.append(r.uncertainty_nm)
            se_ls.append(r.uncertainty_nm * (1.0 - f))
            bound.append(f)
            err.append((pts @ chip_transform(r.transform, tuple(o)).T - pts @ T.T)[:, :2])
            xa = np.column_stack([a["x_nm"], a["y_nm"]])
            xb = np.column_stack([b["x_nm"], b["y_nm"]])
            i, j = mutual_nearest(xa @ r.transform[:2, :2].T + r.transform[:2, 2], np.asarray(a["frame"]), xb,
                                  np.asarray(b["frame"]), 100.0)
            share.append(float(np.mean(id0[i] != id1[j])))
        rms = float(np.sqrt((np.array(err) ** 2).sum(-1).mean(0)).max()) if err else None
        rows.append({"size_px": size, "density": dens, "frames": frames, "seen0": p0, "seen1": p1, "seeds": seeds,
                     "refused": refused, "warned_pairs_rule": pairs_rule, "warned": warned, "kept": len(err),
                     "rms_corner_error_nm": rms,
                     "uncertainty_nm_median": float(np.median(unc)) if unc else None,
                     "se_ls_nm_median": float(np.median(se_ls)) if se_ls else None,
                     "ratio": rms / float(np.median(unc)) if unc else None,
                     "ratio_ls": rms / float(np.median(se_ls)) if se_ls else None,
                     "chance_share_median": float(np.median(share)) if share else None,
                     "chance_bound_median": float(np.median(bound)) if bound else None,
                     "seconds": time.time() - t0})
    return rows


def note_rows(seeds: int) -> list[dict]:
    """How often ``plexloc register`` notes that the transform is more than a shift (give --roi-offset): a shift alone
    (false notes) and a 1 degree rotation (the notes it should give), ``n`` molecules over 20 frames of a 64-px field
    seen in both channels (10 and 30 nm noise). The old rule: the linear part more than 1e-3 off the identity; now
    (review of session 51) also 10 pairs (``plexloc.cli.register._roi_note``)."""
    from test_multi50 import chip_T

    from plexloc.cli.register import _roi_note
    from plexloc.errors import InputError
    from plexloc.post.registration import register_channels
    from plexloc.table import LocTable

    def table(p, f):
        return LocTable({"frame": f, "x_nm": p[:, 0], "y_nm": p[:, 1], "z_nm": np.zeros(len(p)),
                         "photons": np.ones(len(p))})

    rows = []
    for label, T in [("shift (50, 0) nm", chip_T(0.0, 1.0, (50.0, 0.0))), ("1 degree", chip_T(1.0, 1.0, (50.0, 0.0)))]:
        for n in (3, 5, 12, 30, 100, 1000):
            old = new = done = 0
            roi_err = []
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                xy = rng.uniform(0.0, 6400.0, (n, 2))
                f = rng.integers(0, 20, n)
                a = xy + rng.normal(size=(n, 2)) * 10.0
                b = xy @ T[:2, :2].T + T[:2, 2] + rng.normal(size=(n, 2)) * 30.0
                try:
                    r = register_channels(table(a, f), table(b, f))
                except InputError:
                    continue
                done += 1
                big = np.abs(r.transform[:2, :2] - np.eye(2)).max() > 1e-3
                old += big
                new += _roi_note(r) is not None
                roi_err.append(float(np.hypot(*((r.transform[:2, :2] - np.eye(2)) @ (30000.0, 20000.0)))))
            rows.append({"transform": label, "molecules": n, "registered": done, "noted_before": int(old),
                         "noted_now": int(new),
                         "error_without_roi_offset_nm_median": float(np.median(roi_err)) if roi_err else None})
    return rows


def site_rows(seeds: int) -> list[dict]:
    from test_multi50 import chip_T

    from plexloc.calibrate.fileformat import chip_transform
    from plexloc.post.pairs import mutual_nearest
    from plexloc.post.registration import register_channels
    from plexloc.table import LocTable

    T, o, field = chip_T(), np.array([300.0, 200.0]) * PX, 64 * PX

    def rings(rng, n):
        c = rng.uniform(200.0, field - 200.0, (n, 2))
        a = 2 * np.pi * np.arange(8) / 8
        return (c[:, None, :] + 50.0 * np.column_stack([np.cos(a), np.sin(a)])[None]).reshape(-1, 2)

    def lines(rng, n, step):
        out = []
        for _ in range(n):
            p, ang = rng.uniform(0.0, field, 2), rng.uniform(0.0, np.pi)
            q = p + np.outer(np.arange(-field, field, step), [np.cos(ang), np.sin(ang)])
            out.append(q[(q >= 0).all(1) & (q < field).all(1)])
        return np.concatenate(out)

    cases = [("beads, every frame", lambda r: r.uniform(300.0, field - 300.0, (30, 2)), 1.0, 20, 1.0, 1.0),
             ("beads, every frame", lambda r: r.uniform(300.0, field - 300.0, (8, 2)), 1.0, 50, 1.0, 1.0),
             ("rings of 8 sites", lambda r: rings(r, 300), 0.05, 200, 0.9, 0.9),
             ("rings of 8 sites", lambda r: rings(r, 300), 0.1, 200, 0.9, 0.9),
             ("lines, sites 10 nm apart", lambda r: lines(r, 8, 10.0), 0.01, 200, 0.9, 0.9),
             ("lines, sites 20 nm apart", lambda r: lines(r, 20, 20.0), 0.02, 100, 0.9, 0.9)]
    rows = []
    for label, make, duty, frames, p0, p1 in cases:
        sites = make(np.random.default_rng(7))
        m = (np.column_stack([sites + o, np.ones(len(sites))]) @ T.T)[:, :2] - o
        err, unc, bound, share, warned = [], [], [], [], 0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            f, s = np.nonzero(rng.uniform(size=(frames, len(sites))) < duty)
            s0 = rng.uniform(size=len(f)) < p0
            s1 = (rng.uniform(size=len(f)) < p1) & (m[s] >= 0).all(1) & (m[s] < field).all(1)
            tabs = [LocTable({"frame": f[k], "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(len(xy)),
                              "photons": np.ones(len(xy))})
                    for k, xy in ((s0, sites[s[s0]] + rng.normal(size=(s0.sum(), 2)) * 10.0),
                                  (s1, m[s[s1]] + rng.normal(size=(s1.sum(), 2)) * 30.0))]
            r = register_channels(*tabs)
            warned += r.warning is not None
            xa = np.column_stack([tabs[0]["x_nm"], tabs[0]["y_nm"]])
            pts = np.array([[o[0] + x, o[1] + y, 1.0] for x in (xa[:, 0].min(), xa[:, 0].max())
                            for y in (xa[:, 1].min(), xa[:, 1].max())])
            err.append((pts @ chip_transform(r.transform, tuple(o)).T - pts @ T.T)[:, :2])
            unc.append(r.uncertainty_nm)
            bound.append(getattr(r, "chance_share", 0.0))
            xb = np.column_stack([tabs[1]["x_nm"], tabs[1]["y_nm"]])
            i, j = mutual_nearest(xa @ r.transform[:2, :2].T + r.transform[:2, 2], np.asarray(tabs[0]["frame"]), xb,
                                  np.asarray(tabs[1]["frame"]), 100.0)
            ids0, ids1 = np.flatnonzero(s0), np.flatnonzero(s1)  # event numbers: a true pair has the same
            share.append(float(np.mean(ids0[i] != ids1[j])))
        rms = float(np.sqrt((np.array(err) ** 2).sum(-1).mean(0)).max())
        rows.append({"sites": label, "n_sites": len(sites), "duty": duty, "frames": frames, "seen0": p0, "seen1": p1,
                     "seeds": seeds, "rms_corner_error_nm": rms, "uncertainty_nm_median": float(np.median(unc)),
                     "ratio": rms / float(np.median(unc)), "chance_share_median": float(np.median(share)),
                     "chance_bound_median": float(np.median(bound)), "warned": warned})
    return rows


def duplicate_rows(tables: int) -> list[dict]:
    from plexloc.post.duplicates import channel_duplicates
    from plexloc.table import LocTable

    def table(dens, share, n1, seed, n=6000, field=6400.0):
        rng = np.random.default_rng(seed)
        per = dens * (field * 1e-3) ** 2
        frames = max(int(np.ceil(n / per)), 1)
        m = int(rng.poisson(per * frames))
        frame = np.sort(rng.integers(0, frames, m))
        xy = rng.uniform(0, field, (m, 2))
        dup = rng.uniform(size=m) < share
        pos = np.concatenate([xy + rng.normal(size=xy.shape) * 10.0,
                              xy[dup] + (300.0, 0.0) + rng.normal(size=(int(dup.sum()), 2)) * n1])
        return LocTable({"frame": np.concatenate([frame, frame[dup]]), "x_nm": pos[:, 0], "y_nm": pos[:, 1],
                         "z_nm": np.zeros(len(pos)), "photons": np.ones(len(pos))}), int(dup.sum()), len(pos)

    rows = []
    for n1 in (10.0, 40.0, 80.0):
        for share in (0.0, 0.3, 1.0):
            for dens in (0.14, 3.0):
                reps, truth = [], []
                for s in range(tables):
                    t, k, n = table(dens, share, n1, s)
                    reps.append(channel_duplicates(t, warn=False))
                    truth.append(2 * k / n)
                rows.append({"copy_noise_nm": n1, "share_doubled": share, "density": dens, "tables": tables,
                             "true_fraction_median": float(np.median(truth)),
                             "warned": sum(r.warning is not None for r in reps),
                             "fraction_median": float(np.median([r.fraction for r in reps])),
                             "excess_median": float(np.median([r.fraction - r.background for r in reps]))})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30, help="seeds per register row")
    ap.add_argument("--tables", type=int, default=3, help="tables per duplicates row")
    ap.add_argument("--parts", nargs="+", default=["register", "note", "duplicates"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = {"machine": platform.machine(), "python": platform.python_version()}
    if "register" in args.parts:
        out["register"] = rows = register_rows(args.seeds)
        print("| field px | density /um^2 | frames | seen 0 / 1 | kept (pairs-rule warned) | rms corner error nm | "
              "reported nm (median) | ratio | least-squares SE nm | ratio | chance share / bound |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if r["kept"]:
                print(f"| {r['size_px']} | {r['density']} | {r['frames']} | {r['seen0']} / {r['seen1']} | {r['kept']} "
                      f"({r['warned_pairs_rule']}) | {r['rms_corner_error_nm']:.2f} | {r['uncertainty_nm_median']:.2f} "
                      f"| {r['ratio']:.2f} | {r['se_ls_nm_median']:.2f} | {r['ratio_ls']:.2f} | "
                      f"{100 * r['chance_share_median']:.1f} / {100 * r['chance_bound_median']:.1f} % |")
    if "note" in args.parts:
        out["note"] = rows = note_rows(args.seeds)
        print("| true transform | molecules | registered | 'more than a shift' noted: old rule / now | "
              "error without --roi-offset, ROI at (300, 200) px (median nm) |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['transform']} | {r['molecules']} | {r['registered']} | {r['noted_before']} / {r['noted_now']} "
                  f"| {r['error_without_roi_offset_nm_median']:.0f} |")
    if "sites" in args.parts:
        out["sites"] = rows = site_rows(args.seeds)
        print("| sites | n | duty | frames | rms error at the extent's worst corner nm | reported nm (median) | ratio | "
              "chance share / bound | warned |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sites']} | {r['n_sites']} | {r['duty']:g} | {r['frames']} | {r['rms_corner_error_nm']:.2f} | "
                  f"{r['uncertainty_nm_median']:.2f} | {r['ratio']:.2f} | {100 * r['chance_share_median']:.1f} / "
                  f"{100 * r['chance_bound_median']:.1f} % | {r['warned']}/{r['seeds']} |")
    if "duplicates" in args.parts:
        out["duplicates"] = rows = duplicate_rows(args.tables)
        print("| copy noise nm | doubled | density | true share | reported share (median) | excess | warned |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['copy_noise_nm']:g} | {r['share_doubled']:g} | {r['density']:g} | "
                  f"{100 * r['true_fraction_median']:.1f} % | {100 * r['fraction_median']:.1f} % | "
                  f"{100 * r['excess_median']:.1f} % | {r['warned']}/{r['tables']} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
