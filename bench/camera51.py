"""Session 51 (helper "camera"): the camera check's blind spots, and false accusations of right cameras.

Sections (``--only`` picks some; each row says whether the check told the camera, its noise ratio and note):

- ``crowded``: 64 x 64 px, 16 and 64 frames, 2 emitters/um^2, 20 photons/px (spotted_light, sd 1.3 px at 100 nm), the
  session-50 EMCCD and sCMOS of bench/small50.py, checked right, with e_per_adu 2x and (EMCCD) em_gain 0.5x.
- ``grid``: the session-50 review's grid of normal movies (264 checks): 64 and 128 px, 20 and 64 frames, 0.2 and 2
  emitters/um^2, 3 seeds, right and e_per_adu 2x / 0.5x, em_gain 0.5x, read_sigma 3x / 1/3x.
- ``small``: bench/small50.py's 16-24 px frames, 4-16 frames, right and e_per_adu 2x / 0.5x.
- ``beam``: right cameras on sharp spots under a beam, 64 x 64 px, 1-2 emitters/um^2, 200-1000 photons/px, 4 seeds.
- ``margin``: e_per_adu 0.70-0.75x on crowded 32 and 64 px movies (LOW_HP_SE's "too few pixels").
- ``sharp``: bench/camera49.py's movies (96 x 96 px, 32 frames, a beam, background 2 / 30 / 1000 photons/px, 0.3 / 2 /
  5 emitters/um^2) with sharp spots (sd 0.8 px at 160 nm) and normal ones (sd 1.3 px at 100 nm), right, e_per_adu 2x.

    OMP_NUM_THREADS=1 .venv/bin/python bench/camera51.py [--only crowded,grid] [--out bench/camera51.json]

Against another checkout: PYTHONPATH=/path/src .venv/bin/python bench/camera51.py --out /tmp/old.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from camera49 import EMCCD as EMCCD49  # noqa: E402
from camera49 import SCMOS as SCMOS49  # noqa: E402
from small50 import EMCCD, SCMOS  # noqa: E402

SETTINGS = {"right": lambda c: c,
            "e_per_adu_2x": lambda c: {**c, "e_per_adu": 2 * c["e_per_adu"]},
            "e_per_adu_0.5x": lambda c: {**c, "e_per_adu": 0.5 * c["e_per_adu"]},
            "em_gain_0.5x": lambda c: {**c, "em_gain": 0.5 * c["em_gain"]} if "em_gain" in c else None,
            "read_3x": lambda c: {**c, "read_sigma": 3 * c["read_sigma"]},
            "read_0.33x": lambda c: {**c, "read_sigma": c["read_sigma"] / 3}}


def _check(raw, cfg: dict) -> dict:
    from plexloc.camera import camera_from_config
    from plexloc.camera.check import check_camera

    cam = camera_from_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = check_camera([cam.to_photons(raw)], [cam], dtype=np.uint16, warn=False)
    ch = out.channels[0]
    return {"told": bool(out.warnings), "ratio": float(ch.noise_ratio), "note": ch.noise_note}


def _spotted(cams, sizes, frames, densities, seeds, settings, *, section: str) -> list[dict]:
    from plexloc.camera import camera_from_config
    from plexloc.camera.synthetic import spotted_light

    rows = []
    for cname, cfg in cams:
        true = camera_from_config(cfg)
        for s in sizes:
            for t in frames:
                for d in densities:
                    for seed in range(seeds):
                        light = spotted_light(np.random.default_rng(seed), t, (s, s), bg=20.0, density=d)
                        raw = true(torch.tensor(light, dtype=torch.float32),
                                   generator=torch.Generator().manual_seed(seed + 1))
                        for wname in settings:
                            c2 = SETTINGS[wname](cfg)
                            if c2 is None:
                                continue
                            rows.append({"section": section, "camera": cname, "setting": wname, "size": s,
                                         "frames": t, "density": d, "seed": seed, **_check(raw, c2)})
    return rows


def crowded(seeds: int = 6) -> list[dict]:
    return _spotted((("emccd", EMCCD), ("scmos", SCMOS)), (64,), (16, 64), (2.0,), seeds,
                    ("right", "e_per_adu_2x", "em_gain_0.5x"), section="crowded")


def grid(seeds: int = 3) -> list[dict]:
    return _spotted((("emccd", EMCCD), ("scmos", SCMOS)), (64, 128), (20, 64), (0.2, 2.0), seeds, tuple(SETTINGS),
                    section="grid")


def small(seeds: int = 6) -> list[dict]:
    return _spotted((("emccd", EMCCD), ("scmos", SCMOS)), (16, 20, 24), (4, 6, 16), (2.0,), seeds,
                    ("right", "e_per_adu_2x", "e_per_adu_0.5x"), section="small")


def sharp(seeds: int = 1) -> list[dict]:
    from plexloc.camera import camera_from_config
    from plexloc.camera.synthetic import spotted_light

    rows = []
    for spot, (sig, px) in (("sharp", (0.8, 160.0)), ("normal", (1.3, 100.0))):
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            for cname, cfg in (("emccd", EMCCD49), ("scmos", SCMOS49)):
                true = camera_from_config(cfg)
                for bg in (2.0, 30.0, 1000.0):
                    for d in (0.3, 2.0, 5.0):
                        light = spotted_light(rng, 32, (96, 96), bg=bg, waist=0.35, density=d, sigma_px=sig, px_nm=px)
                        raw = true(torch.tensor(light, dtype=torch.float32),
                                   generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))
                        for wname in ("right", "e_per_adu_2x"):
                            rows.append({"section": "sharp", "spots": spot, "camera": cname, "setting": wname,
                                         "bg": bg, "density": d, "seed": seed,
                                         **_check(raw, SETTINGS[wname](cfg))})
    return rows


def beam(seeds: int = 4) -> list[dict]:
    """Right cameras (camera49's EMCCD at em_gain 300 and 1000, its sCMOS) on sharp spots (sd 0.8 px at 160 nm) under a
    beam (waist 0.35), 64 x 64 px, 32 frames, 1 and 2 emitters/um^2, 200 and 1000 photons/px (session-51 review: the
    sharp-spot guard's lift, a5db5b5, told them)."""
    from plexloc.camera import camera_from_config
    from plexloc.camera.synthetic import spotted_light

    rows = []
    for cname, cfg in (("emccd", EMCCD49), ("emccd_g1000", {**EMCCD49, "em_gain": 1000.0}), ("scmos", SCMOS49)):
        true = camera_from_config(cfg)
        for bg in (200.0, 1000.0):
            for d in (1.0, 2.0):
                for seed in range(seeds):
                    light = spotted_light(np.random.default_rng(seed), 32, (64, 64), bg=bg, waist=0.35, density=d,
                                          sigma_px=0.8, px_nm=160.0)
                    raw = true(torch.tensor(light, dtype=torch.float32),
                               generator=torch.Generator().manual_seed(seed + 1))
                    rows.append({"section": "beam", "spots": "sharp", "camera": cname, "setting": "right", "bg": bg,
                                 "density": d, "seed": seed, **_check(raw, cfg)})
    return rows


def margin(seeds: int = 4) -> list[dict]:
    """e_per_adu 0.70 / 0.73 / 0.75x on crowded movies of 32 and 64 px (10 and 20 frames, 2 emitters/um^2): read just
    under NOISE_RANGE, where LOW_HP_SE says "too few pixels" within one standard error (session-51 review)."""
    from plexloc.camera import camera_from_config
    from plexloc.camera.synthetic import spotted_light

    rows = []
    for cname, cfg in (("emccd", EMCCD), ("scmos", SCMOS)):
        true = camera_from_config(cfg)
        for s, t in ((64, 20), (32, 10)):
            for seed in range(seeds):
                light = spotted_light(np.random.default_rng(seed), t, (s, s), bg=20.0, density=2.0)
                raw = true(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(seed + 1))
                for f in (0.7, 0.73, 0.75):
                    rows.append({"section": "margin", "camera": cname, "setting": f"e_per_adu_{f}x", "size": s,
                                 "frames": t, "seed": seed, **_check(raw, {**cfg, "e_per_adu": f * cfg["e_per_adu"]})})
    return rows


SECTIONS = {"crowded": crowded, "grid": grid, "small": small, "sharp": sharp, "beam": beam, "margin": margin}


def table(rows: list[dict]) -> str:
    lines = []
    for sec in SECTIONS:
        sel = [r for r in rows if r["section"] == sec]
        if not sel:
            continue
        lines.append(f"\n## {sec}: told / checks (declined: noise not measured)")
        keys = ("spots", "camera", "setting", "size", "frames", "density", "bg")
        groups: dict[tuple, list] = {}
        for r in sel:
            groups.setdefault(tuple(r.get(k) for k in keys if k in r), []).append(r)
        for g, rs in groups.items():
            told = sum(r["told"] for r in rs)
            nan = sum(not np.isfinite(r["ratio"]) for r in rs)
            ratios = [r["ratio"] for r in rs if np.isfinite(r["ratio"])]
            span = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
            lines.append(f"{' '.join(str(v) for v in g):48s} told {told}/{len(rs)}  declined {nan}  ratio {span}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_suffix(".json")))
    a = ap.parse_args()
    rows, secs = [], {}
    for name in a.only.split(","):
        t0 = time.time()
        rows += SECTIONS[name]()
        secs[name] = round(time.time() - t0, 1)
        print(f"{name}: {secs[name]} s", flush=True)
    print(table(rows))
    pathlib.Path(a.out).write_text(json.dumps({"seconds": secs, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
