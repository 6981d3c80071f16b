"""Session 50's multi-channel walk (dual view / split view, biplane): what was measured, as a table and JSON.

1. ``register``: ``plexloc register``'s transform from two single-channel tables of one movie (rotated 1 degree, scaled
   1.01, at chip pixel (300, 200)), over field sizes, densities, frames, the share of molecules each channel sees and
   the channel's localization noise; 10 seeds a row. Corner error (nm, the largest distance between the fitted and the
   true transform's images of the frame's corners), the reported uncertainty (``transform_uncertainty_nm``), and how
   many of the 10 were warned by the pairs rule alone (as before) and now.
   ``chance`` (review, not in the default parts): chance pairs' share and how much they add to the corners' error
   beyond the reported standard error; ``--parts chance --json bench/multi50_chance.json``.
2. ``swap``: a split view whose right half (channel 1) is mirrored, listed the other way round (boxes and flips);
   does the alignment check's first-named fix give the true configuration back (boxes swapped with their flips)?
3. ``alignment``: the alignment check on biplane.yaml movies (200 frames of 64 x 64 px) at 0.03-3 per um^2, channel 1
   as bright as channel 0 or 9x / 19x dimmer, the right transform and one 3 px off in x.
4. ``duplicates``: the wrong-transform (duplicate) warning on tables where a 3-px-off transform doubles a share of the
   molecules, the copy from a dim channel with 10-80 nm noise; 5 tables a row.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/multi50.py --json bench/multi50.json
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PX = 100.0


def register_rows(seeds: int) -> list[dict]:
    from test_multi50 import chip_T, corner_error, single_channel_tables

    from plexloc.calibrate.fileformat import chip_transform
    from plexloc.errors import InputError
    from plexloc.post.registration import register_channels

    T, roi = chip_T(), (300, 200)
    rows = []
    for size, dens, frames, p0, p1, n1 in [(64, 0.5, 200, 0.9, 0.9, 10.0), (64, 0.5, 50, 0.2, 0.2, 10.0),
                                           (64, 0.5, 200, 0.9, 0.1, 30.0), (64, 3.0, 20, 0.3, 0.05, 30.0),
                                           (64, 0.05, 100, 0.5, 0.5, 10.0), (64, 0.03, 200, 0.9, 0.9, 15.0),
                                           (256, 0.5, 50, 0.2, 0.2, 10.0), (256, 0.5, 200, 0.9, 0.1, 30.0),
                                           (256, 3.0, 20, 0.3, 0.05, 30.0), (256, 1.0, 20, 0.05, 0.05, 10.0)]:
        errs, uncs, common, pairs, old, new, refused = [], [], [], [], 0, 0, 0
        for seed in range(seeds):
            a, b, c = single_channel_tables(T, roi, size, dens, frames, p0, p1, 10.0, n1, seed=seed)
            try:
                r = register_channels(a, b)
            except InputError:
                refused += 1
                continue
            errs.append(corner_error(chip_transform(r.transform, (roi[0] * PX, roi[1] * PX)), T, roi, size))
            uncs.append(getattr(r, "uncertainty_nm", float("nan")))
            common.append(c)
            pairs.append(r.n_pairs)
            old += r.n_pairs < 20 or r.n_pairs / min(len(a), len(b)) < 0.1
            new += r.warning is not None
        rows.append({"size_px": size, "density": dens, "frames": frames, "seen0": p0, "seen1": p1, "noise1_nm": n1,
                     "seeds": seeds, "refused": refused, "common_median": float(np.median(common)) if common else None,
                     "pairs_median": float(np.median(pairs)) if pairs else None,
                     "corner_error_nm_median": float(np.median(errs)) if errs else None,
                     "corner_error_nm_max": float(np.max(errs)) if errs else None,
                     "uncertainty_nm_median": float(np.median(uncs)) if uncs else None,
                     "warned_pairs_rule": int(old), "warned_now": int(new)})
    return rows


def chance_rows(seeds: int) -> list[dict]:
    """Review (session 50): how far chance pairs (two different molecules matched in one frame) make the register
    transform's standard error read low. Per condition: the rms over seeds of the mapped corners' error (nm, the worst
    of the four corners) with the pairs register found and with every true pair (no chance pair, an oracle), against
    the median reported uncertainty; the share of chance pairs among the final pairs and a cheap bound on it (the same
    matching with channel 1's frames moved by half the movie: only chance pairs remain)."""
    from test_multi50 import chip_T, single_channel_tables

    from plexloc.calibrate.fileformat import chip_transform
    from plexloc.calibrate.spline import fit_affine
    from plexloc.post.pairs import mutual_nearest
    from plexloc.post.registration import register_channels

    T, roi = chip_T(), (300, 200)
    o = np.asarray(roi, float) * PX
    rows = []
    for size, dens, frames, p0, p1, n1 in [(64, 0.5, 200, 0.9, 0.9, 10.0), (256, 3.0, 20, 0.3, 0.05, 30.0),
                                           (128, 10.0, 20, 0.2, 0.2, 30.0), (128, 10.0, 20, 0.3, 0.05, 30.0)]:
        pts = np.array([[o[0] + x, o[1] + y, 1.0] for x in (0.0, size * PX) for y in (0.0, size * PX)])
        err, oracle, unc, share, bound, warned, seconds = [], [], [], [], [], 0, []
        for seed in range(seeds):
            a, b, _, id0, id1 = single_channel_tables(T, roi, size, dens, frames, p0, p1, 10.0, n1, seed=seed, ids=True)
            r = register_channels(a, b)
            warned += r.warning is not None
            unc.append(r.uncertainty_nm)
            err.append((pts @ chip_transform(r.transform, tuple(o)).T - pts @ T.T)[:, :2])
            xa, xb = np.column_stack([a["x_nm"], a["y_nm"]]), np.column_stack([b["x_nm"], b["y_nm"]])
            common, ia, ib = np.intersect1d(id0, id1, return_indices=True)
            To, _, _ = fit_affine(xa[ia], xb[ib])
            oracle.append((pts @ chip_transform(To, tuple(o)).T - pts @ T.T)[:, :2])
            fa, fb = np.asarray(a["frame"]), np.asarray(b["frame"])
            mapped = xa @ r.transform[:2, :2].T + r.transform[:2, 2]
            i, j = mutual_nearest(mapped, fa, xb, fb, 100.0)
            share.append(float(np.mean(id0[i] != id1[j])))
            t0 = time.perf_counter()
            k = max(frames // 2, 1)
            ci, _ = mutual_nearest(mapped, (fa + k) % frames, xb, fb, 100.0)
            seconds.append(time.perf_counter() - t0)
            bound.append(len(ci) / len(i))

        def rms(e):
            return float(np.sqrt((np.array(e) ** 2).sum(-1).mean(0)).max())

        rows.append({"size_px": size, "density": dens, "frames": frames, "seen0": p0, "seen1": p1, "noise1_nm": n1,
                     "seeds": seeds, "rms_corner_error_nm": rms(err), "rms_corner_error_true_pairs_nm": rms(oracle),
                     "uncertainty_nm_median": float(np.median(unc)), "chance_share_median": float(np.median(share)),
                     "shifted_frames_share_median": float(np.median(bound)), "warned": warned,
                     "shifted_frames_ms": 1e3 * float(np.mean(seconds))})
    return rows


def swap_rows(seeds: int) -> list[dict]:
    from test_multi50 import _split_view_movie, chip_T

    from plexloc.calibrate.alignment import check_channel_alignment
    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import split_frames

    rows = []
    for flip in ("x", "y"):
        for label, T in [("1 deg + (100, 50) nm", chip_T(1.0, 1.0, (100.0, 50.0))),
                         ("(300, 0) nm", chip_T(0.0, 1.0, (300.0, 0.0))), ("(40, 25) nm", chip_T(0.0, 1.0, (40.0, 25.0)))]:
            for seed in range(seeds):
                raw, true = _split_view_movie(T, flip, seed=seed)
                wrong = SplitViewConfig(boxes=[(32, 0, 32, 32), (0, 0, 32, 32)], flip=[flip, "none"])
                cut = split_frames(raw, wrong)
                rep = check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), T], PX, split=wrong, warn=False)
                text = rep.findings[0] if rep.findings else ""
                right = f"(boxes: [[0, 0, 32, 32], [32, 0, 32, 32]], flip: [none, {flip}]"
                fix = text[text.find("likely cause and fix:"):]
                first = fix.split("; or")[0]
                cut = split_frames(raw, true)
                ok = check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), T], PX, split=true, warn=False)
                rows.append({"flip": flip, "transform": label, "seed": seed, "status": rep.status,
                             "first_fix_right": right in first, "right_named_at_all": right in fix,
                             "first_fix": first[:300], "right_config_status": ok.status})
    return rows


def alignment_rows() -> list[dict]:
    import torch

    from plexloc.calibrate.alignment import check_channel_alignment
    from plexloc.config import load_config
    from plexloc.simulation import Simulator

    rows = []
    for thr in [(0.5, 0.5), (0.9, 0.1), (0.95, 0.05)]:
        for dens in [0.03, 0.14, 0.65, 3.0]:
            cfg = load_config(ROOT / "src" / "plexloc" / "examples" / "biplane.yaml")
            d = cfg.model_dump()
            for c, t in enumerate(thr):
                d["channels"][c]["throughput"] = t
            cfg = type(cfg).model_validate(d)
            sim = Simulator(cfg)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = sim.simulate_movie(200, generator=torch.Generator().manual_seed(0), density_per_um2=dens)
                ph = [ch.camera.to_photons(m.frames[c]).numpy().astype(np.float32) for c, ch in enumerate(sim.channels)]
            T = [np.asarray(ch.transform, float) for ch in cfg.channels]
            for err in (0, 3):
                Tw = [t.copy() for t in T]
                Tw[1][0, 2] += err * PX
                rep = check_channel_alignment(ph, Tw, cfg.px_size_xy_nm, warn=False)
                p = rep.configured.pairs[0] if rep.configured else None
                rows.append({"throughput": list(thr), "density": dens, "error_px": err, "status": rep.status,
                             "warned": bool(rep.findings), "snr": None if p is None else p.snr,
                             "shift_px": None if p is None else list(p.shift_px)})
    return rows


def duplicate_rows(tables: int) -> list[dict]:
    from plexloc.post.duplicates import channel_duplicates
    from plexloc.post.synthetic_plex import doubled_table

    def table(dens, share, n1, seed):
        return doubled_table(dens, n=10000, share=share, noise_nm=10.0, copy_noise_nm=n1, seed=seed)

    rows = []
    for n1 in (10.0, 40.0, 80.0):
        for share in (0.0, 0.3, 1.0):
            for dens in (0.03, 0.14, 0.65, 3.0):
                reps = [channel_duplicates(table(dens, share, n1, s), warn=False) for s in range(tables)]
                rows.append({"copy_noise_nm": n1, "share_doubled": share, "density": dens, "tables": tables,
                             "warned": sum(r.warning is not None for r in reps),
                             "fraction_median": float(np.median([r.fraction for r in reps]))})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds per register row")
    ap.add_argument("--swap-seeds", type=int, default=3)
    ap.add_argument("--tables", type=int, default=5, help="tables per duplicates row")
    ap.add_argument("--parts", nargs="+", default=["register", "swap", "alignment", "duplicates"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out: dict = {"machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    if "register" in args.parts:
        out["register"] = rows = register_rows(args.seeds)
        print("| field px | density /um^2 | frames | seen ch0 / ch1 | ch1 noise nm | pairs (median) | corner error nm "
              "median / max | uncertainty nm median | warned: pairs rule / now |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            e = ("refused" if r["corner_error_nm_median"] is None else
                 f"{r['corner_error_nm_median']:.1f} / {r['corner_error_nm_max']:.1f}")
            print(f"| {r['size_px']} | {r['density']:g} | {r['frames']} | {r['seen0']:g} / {r['seen1']:g} | "
                  f"{r['noise1_nm']:g} | {r['pairs_median']} | {e} | {r['uncertainty_nm_median']:.1f} | "
                  f"{r['warned_pairs_rule']} / {r['warned_now']} of {r['seeds'] - r['refused']} |")
    if "chance" in args.parts:
        out["chance"] = rows = chance_rows(args.seeds)
        print("\n| field px | density /um^2 | frames | seen ch0 / ch1 | rms corner error nm: register / true pairs | "
              "uncertainty nm (median) | chance pairs: share / shifted-frame bound | warned |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['size_px']} | {r['density']:g} | {r['frames']} | {r['seen0']:g} / {r['seen1']:g} | "
                  f"{r['rms_corner_error_nm']:.2f} / {r['rms_corner_error_true_pairs_nm']:.2f} | "
                  f"{r['uncertainty_nm_median']:.2f} | {100 * r['chance_share_median']:.1f} / "
                  f"{100 * r['shifted_frames_share_median']:.1f} % | {r['warned']} of {r['seeds']} |")
    if "swap" in args.parts:
        out["swap"] = rows = swap_rows(args.swap_seeds)
        print("\n| flip of ch1's half | transform | seeds | status | first-named fix right | right fix named | "
              "right configuration |")
        print("|---|---|---|---|---|---|---|")
        for flip in ("x", "y"):
            for label in dict.fromkeys(r["transform"] for r in rows):
                rs = [r for r in rows if r["flip"] == flip and r["transform"] == label]
                print(f"| {flip} | {label} | {len(rs)} | {', '.join(sorted({r['status'] for r in rs}))} | "
                      f"{sum(r['first_fix_right'] for r in rs)} | {sum(r['right_named_at_all'] for r in rs)} | "
                      f"{', '.join(sorted({r['right_config_status'] for r in rs}))} |")
    if "alignment" in args.parts:
        out["alignment"] = rows = alignment_rows()
        print("\n| throughput ch0 / ch1 | density /um^2 | right transform: status (snr) | 3 px off: status, peak px |")
        print("|---|---|---|---|")
        for thr in dict.fromkeys(tuple(r["throughput"]) for r in rows):
            for dens in dict.fromkeys(r["density"] for r in rows):
                a, b = (next(r for r in rows if tuple(r["throughput"]) == thr and r["density"] == dens
                             and r["error_px"] == e) for e in (0, 3))
                print(f"| {thr[0]:g} / {thr[1]:g} | {dens:g} | {a['status']} ({a['snr']:.0f}) | {b['status']}, "
                      f"{b['shift_px'][0]:+.2f} |")
    if "duplicates" in args.parts:
        out["duplicates"] = rows = duplicate_rows(args.tables)
        print("\n| copy noise nm | share doubled | warned at 0.03 / 0.14 / 0.65 / 3 per um^2 | fraction in pairs (median) |")
        print("|---|---|---|---|")
        for n1 in (10.0, 40.0, 80.0):
            for share in (0.0, 0.3, 1.0):
                rs = [r for r in rows if r["copy_noise_nm"] == n1 and r["share_doubled"] == share]
                print(f"| {n1:g} | {share:g} | {' / '.join(str(r['warned']) for r in rs)} of {rs[0]['tables']} | "
                      f"{' / '.join(format(100 * r['fraction_median'], '.1f') for r in rs)} % |")
    out["seconds"] = time.perf_counter() - t0
    print(f"\n{out['seconds']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
