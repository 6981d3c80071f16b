"""Wrong camera settings on simulated movies: what the camera check says and how wrong the photons are.

`OMP_NUM_THREADS=1 .venv/bin/python bench/camera43.py [all | CASE-SUBSTRING] [--json OUT.json]`: each case simulates
64 frames of examples/2d_gaussian.yaml (64x64 px, 0.5 emitters/um^2) with the true camera, converts them with the
given (wrong) camera YAML, and prints one markdown row: the photons' scale and offset against the true conversion,
the share of negative pixels, the check's noise ratio (plexloc.camera.check.check_camera) and its warning or note.
"""
import json
import os
import sys
import warnings
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
torch.set_num_threads(1)
from plexloc.config import load_config, validate_config
from plexloc.camera.models import camera_from_config
from plexloc.camera.check import check_camera
from plexloc.simulation.simulator import Simulator

EX = "examples/2d_gaussian.yaml"


def movie(cam: dict, bg=(20.0, 100.0), n=64, density=0.5, seed=1):
    cfg = load_config(EX)
    d = cfg.model_dump(mode="json")
    d["channels"][0]["camera"] = cam
    d["background"]["range"] = list(bg)
    d["emitters"]["density_per_um2"] = density
    c = validate_config({k: v for k, v in d.items() if k not in ("model", "training")}, type(cfg))
    sim = Simulator(c)
    g = torch.Generator().manual_seed(seed)
    m = sim.simulate_movie(n, generator=g)
    return m.frames[0], m.bg[0], sim.channels[0].camera


def run(name, true_cam, wrong_cam, bg=(20.0, 100.0), **kw):
    raw, bgt, cam = movie(true_cam, bg=bg, **kw)
    try:
        wcfg = validate_config({"camera": wrong_cam}, _CF)
    except Exception as e:
        print(f"| {name} | config error: {str(e)[:150]} |")
        return
    w = camera_from_config(wcfg.camera)
    ph_w = w.to_photons(raw)
    ph_r = cam.to_photons(raw)
    a, b = np.polyfit(ph_r.flatten().numpy(), ph_w.flatten().numpy(), 1)
    neg = float((ph_w < 0).float().mean())
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        chk = check_camera([raw], [w], dtype=np.uint16, adu=True, source="movie.tif")
    r = chk.channels[0].noise_ratio
    msg = " // ".join(str(x.message) for x in rec) or (("note: " + "; ".join(chk.notes))[:160] if chk.notes
                                                         else "silent")
    print(f"| {name} | photons x{a:.3g} {b:+.3g}/px | neg px {100*neg:.1f}% | ratio {r:.3g} | {msg} |")
    ROWS.append({"case": name, "photon_scale": float(a), "photon_offset": float(b), "negative_share": neg,
                 "noise_ratio": None if r is None else float(r), "said": msg})


ROWS: list = []


from pydantic import BaseModel, ConfigDict
from plexloc.config.models import CameraConfig


class _CF(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: CameraConfig


E = dict(kind="emccd", qe=0.9, spurious_charge=0.002, em_gain=300.0, e_per_adu=45.0, baseline=100.0, read_sigma=74.4)
S = dict(kind="scmos", qe=0.8, spurious_charge=0.0, e_per_adu=0.5, baseline=100.0, read_sigma=1.5)

if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if "--json" in args:
        i = args.index("--json")
        out = args[i + 1]
        del args[i : i + 2]
    which = args[0] if args else "all"
    print("| case (true -> given) | photons | negative pixels | noise ratio | what the check says |")
    print("|---|---|---|---|---|")
    cases = [
        ("E right", E, E, {}),
        ("E swapped gain/e_per_adu", E, E | dict(em_gain=45.0, e_per_adu=300.0), {}),
        ("E e_per_adu as ADU/e- (1/45)", E, E | dict(e_per_adu=1 / 45), {}),
        ("E em_gain forgotten (1)", E, E | dict(em_gain=1.0), {}),
        ("E em_gain 100 vs 300", E, E | dict(em_gain=100.0), {}),
        ("E baseline 0 vs 100", E, E | dict(baseline=0.0), {}),
        ("E baseline 0 vs 100, bg 5-10", E, E | dict(baseline=0.0), dict(bg=(5.0, 10.0))),
        ("E baseline 130 vs 100", E, E | dict(baseline=130.0), {}),
        ("E baseline 400 vs 100", E, E | dict(baseline=400.0), {}),
        ("E baseline 100 vs 400 true", E | dict(baseline=400.0), E, {}),
        ("E qe 1 vs 0.9", E, E | dict(qe=1.0), {}),
        ("E read_sigma in ADU", E, E | dict(read_sigma=74.4 / 45), {}),
        ("E sCMOS yaml", E, S, {}),
        ("E dim bg 1-2, e_per_adu 4.5 (10x)", E, E | dict(e_per_adu=4.5), dict(bg=(1.0, 2.0))),
        ("E bg 20-100, e_per_adu 1/45 dim", E, E | dict(e_per_adu=1 / 45), dict(bg=(5.0, 10.0))),
        ("S right", S, S, {}),
        ("S e_per_adu as ADU/e- (2)", S, S | dict(e_per_adu=2.0), {}),
        ("S gain 1 vs 0.5", S, S | dict(e_per_adu=1.0), {}),
        ("S baseline 0 vs 100", S, S | dict(baseline=0.0), {}),
        ("S baseline 110 vs 100", S, S | dict(baseline=110.0), {}),
        ("S baseline 200 vs 100", S, S | dict(baseline=200.0), {}),
        ("S baseline 90 vs 100", S, S | dict(baseline=90.0), {}),
        ("S read_sigma in ADU (3)", S, S | dict(read_sigma=3.0), {}),
        ("S read_sigma in ADU (3), bg 1-3", S, S | dict(read_sigma=3.0), dict(bg=(1.0, 3.0))),
        ("S EMCCD yaml", S, E, {}),
        ("S qe 1 vs 0.8", S, S | dict(qe=1.0), {}),
    ]
    for name, t, w, kw in cases:
        if which == "all" or which in name:
            run(name, t, w, **kw)
    if out:
        with open(out, "w") as f:
            json.dump({"cases": ROWS}, f, indent=1)
