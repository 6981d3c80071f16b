"""sCMOS maps of another region or binning (plexloc.camera.mapfit): false warnings on right maps, and wrong maps found.

Random sCMOS chips (offset spread 0.3-5 ADU per pixel plus column offsets, read noise 0.8-3 e-, gain 0.25-2 e-/ADU,
2 % gain spread), maps as calibrate-camera measures them (the offset map from 100 dark frames: its own noise kept),
movies of a camera ROI (64-256 px, 2-64 frames as the check reads them, background 2-200 photons/px under a beam,
0-1.5 spots/um^2). Each movie is checked (plexloc.camera.check.check_camera, as a fit runs it) with the maps cut at the
right corner, at a wrong one (another corner; one row off), and, for a 2x2-binned movie, at the corner of the unbinned
maps. Prints the counts; `--n N` movies (default 40), `--seed S`.

`--settings`: the whole camera check (every finding) on correct cameras and on the settings users get wrong:
sCMOS (scalar) and EMCCD cameras of random gain and read noise, movies of 64 frames of 128 x 128 px at a background
of 2, 10, 30 or 100 photons/px; each checked with its own settings (a warning there is a false one) and with each
mistake (told or not).

    OMP_NUM_THREADS=1 .venv/bin/python bench/camwalk48.py --n 40
    OMP_NUM_THREADS=1 .venv/bin/python bench/camwalk48.py --settings --n 8
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from plexloc.camera.check import check_camera
from plexloc.camera.models import SCMOS
from plexloc.camera.synthetic import spotted_light


def chip(rng, size):
    spread = rng.uniform(0.3, 5.0)
    base = 100 + rng.normal(0, spread, (size, size)) + rng.normal(0, spread / 2, (1, size))
    gain = rng.uniform(0.25, 2.0) * (1 + rng.normal(0, 0.02, (size, size)))
    rs = rng.uniform(0.8, 3.0) * np.exp(rng.normal(0, 0.3, (size, size)))
    measured = base + rng.normal(0, 1, base.shape) * rs / gain / 10.0  # 100 dark frames' mean
    return base, gain, rs, measured, spread


def cam_of(base, gain, rs, qe=0.8):
    return SCMOS(qe=qe, e_per_adu=torch.tensor(gain, dtype=torch.float32),
                 baseline=torch.tensor(base, dtype=torch.float32), read_sigma=torch.tensor(rs, dtype=torch.float32))


def check(raw, base_cut, gain_cut, rs_cut, chip_base, at):
    cam = cam_of(base_cut, gain_cut, rs_cut)
    cam.chip_baseline = torch.tensor(chip_base, dtype=torch.float32)
    cam.map_cut = (at[0], at[1], "--roi-offset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = check_camera([cam.to_photons(torch.as_tensor(raw))], [cam], dtype=np.uint16, warn=False)
    return out.channels[0].map_match, out


def settings(n: int, seed: int) -> None:
    from plexloc.camera import camera_from_config

    rng = np.random.default_rng(seed)
    told: dict[str, list[int]] = {}
    false = []
    errors: dict[str, list[float]] = {}
    missed: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for i in range(n):
        for kind in ("scmos", "emccd"):
            if kind == "scmos":
                e, rs = float(rng.uniform(0.25, 2.0)), float(rng.uniform(0.8, 3.0))
                right = {"kind": "scmos", "qe": 0.8, "e_per_adu": e, "baseline": 100.0, "read_sigma": rs,
                         "spurious_charge": 0.0}
            else:
                g, e = float(rng.uniform(100, 300)), float(rng.uniform(5, 45))
                rs = float(rng.uniform(20, 80))
                right = {"kind": "emccd", "qe": 0.9, "em_gain": g, "e_per_adu": e, "baseline": 100.0,
                         "read_sigma": rs, "spurious_charge": 0.002}
            for bg in (2.0, 10.0, 30.0, 100.0):
                light = spotted_light(rng, 64, (128, 128), bg=bg, waist=0.35, density=float(rng.uniform(0.05, 1.0)))
                cam = camera_from_config(right)
                raw = cam(torch.tensor(light, dtype=torch.float32),
                          generator=torch.Generator().manual_seed(int(rng.integers(1 << 30)))).numpy()
                lo = float(raw.min())
                mistakes = {"right": right, "e_per_adu inverted (ADU/e-)": {**right, "e_per_adu": 1 / right["e_per_adu"]},
                            "baseline = movie minimum": {**right, "baseline": lo},
                            "baseline 0": {**right, "baseline": 0.0},
                            "qe 20 % high": {**right, "qe": min(right["qe"] * 1.2, 1.0)}}
                if kind == "scmos":
                    mistakes["read_sigma in ADU"] = {**right, "read_sigma": rs / right["e_per_adu"]}
                    mistakes["read_sigma given as read_variance"] = {
                        **{k: v for k, v in right.items() if k != "read_sigma"}, "read_variance": rs}
                else:
                    mistakes["em_gain, e_per_adu swapped"] = {**right, "em_gain": right["e_per_adu"],
                                                               "e_per_adu": right["em_gain"]}
                    mistakes["read_sigma in ADU"] = {**right, "read_sigma": rs / right["e_per_adu"]}
                    mistakes["EMCCD read as sCMOS"] = {"kind": "scmos", "qe": 0.9, "baseline": 100.0,
                                                       "e_per_adu": right["e_per_adu"] / right["em_gain"],
                                                       "read_sigma": rs / right["em_gain"]}
                true_bg = float(np.median(cam.to_photons(torch.as_tensor(raw)).numpy()))
                for name, cfg in mistakes.items():
                    c = camera_from_config(cfg)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ph = c.to_photons(torch.as_tensor(raw))
                        out = check_camera([ph], [c], dtype=np.uint16, warn=False)
                    key = f"{kind} bg {bg:g}: {name}"
                    told.setdefault(key, []).append(bool(out.warnings))
                    # the background's photons under these settings over the right ones: a miss matters where far off
                    err = float(np.median(ph.numpy())) / true_bg
                    errors.setdefault(key, []).append(err)
                    if not out.warnings and not 0.8 <= err <= 1.25:
                        missed.setdefault(key, []).append(err)
                    if name == "right" and out.warnings:
                        false.append((key, out.warnings[0][:200]))
    for key, v in told.items():
        e = np.asarray(errors[key])
        m = missed.get(key, [])
        print(f"{key:55s} told {sum(v)}/{len(v)}  bg photons x{e.min():.2f}..{e.max():.2f}  missed beyond "
              f"0.8-1.25x: {len(m)}" + (f" ({', '.join(f'{x:.2f}x' for x in m)})" if m else ""))
    for key, w in false:
        print("FALSE:", key, w)
    print(f"{time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", action="store_true")
    args = ap.parse_args()
    if args.settings:
        return settings(args.n, args.seed)
    rng = np.random.default_rng(args.seed)
    counts = {"right": [0, 0, 0], "wrong corner": [0, 0, 0], "one row off": [0, 0, 0], "binned 2x2": [0, 0, 0]}
    ratios = {k: [] for k in counts}
    t0 = time.perf_counter()
    for _ in range(args.n):
        size = int(rng.choice([256, 512]))
        base, gain, rs, measured, spread = chip(rng, size)
        h = int(rng.choice([64, 128, 192])) if size == 512 else int(rng.choice([64, 96]))
        x0, y0 = (int(v) for v in rng.integers(0, size - 2 * h, 2))
        frames = max(2, min(64, 64 * 65536 // (h * h)))
        bg, dens = float(rng.uniform(2, 200)), float(rng.uniform(0, 1.5))
        light = spotted_light(rng, frames, (h, h), bg=bg, waist=0.35, density=dens)
        sl = np.s_[y0:y0 + h, x0:x0 + h]
        roi_cam = cam_of(base[sl], gain[sl], rs[sl])
        raw = roi_cam(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))
        cases = {"right": (x0, y0), "wrong corner": (x0 + h, y0 + h), "one row off": (x0, y0 + 1)}
        for name, (x, y) in cases.items():
            s2 = np.s_[y:y + h, x:x + h]
            m, _ = check(raw.numpy(), measured[s2], gain[s2], rs[s2], measured, (x, y))
            c = counts[name]
            c[0] += 1
            c[1] += bool(m is not None and m.mismatch)
            c[2] += bool(m is not None and m.found is not None and m.found[:3] == (x0, y0, 1))
            ratios[name].append(m.r / m.expected if m is not None and m.expected > 0 else np.nan)
        # a 2x2-binned movie of the chip's top-left (h/2 binned pixels), checked with the unbinned maps at 0, 0
        hb = h // 2
        full = cam_of(base[:h, :h], gain[:h, :h], rs[:h, :h])
        lightb = spotted_light(rng, frames, (h, h), bg=bg / 4, waist=0.35, density=dens)
        rb = full(torch.tensor(lightb, dtype=torch.float32)).numpy().reshape(frames, hb, 2, hb, 2).sum(axis=(2, 4)) - 300
        m, _ = check(rb, measured[:hb, :hb], gain[:hb, :hb], rs[:hb, :hb], measured, (0, 0))
        c = counts["binned 2x2"]
        c[0] += 1
        c[1] += bool(m is not None and m.mismatch)
        c[2] += bool(m is not None and m.found is not None and m.found[:3] == (0, 0, 2))
        ratios["binned 2x2"].append(m.r / m.expected if m is not None and m.expected > 0 else np.nan)
    for name, (n, told, found) in counts.items():
        r = np.asarray(ratios[name], dtype=float)
        print(f"{name:14s} movies {n:3d}  told {told:3d}  right corner found {found:3d}  r/expected "
              f"{np.nanmin(r):.2f}..{np.nanmax(r):.2f}")
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
