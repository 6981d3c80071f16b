"""One clipping level for every fit path (session 50): where a movie clips below its pixel type's maximum.

Movies (simulated, 2D Gaussian PSF, the SMLM Challenge EMCCD of examples/2d_gaussian.yaml: baseline 100 ADU, em_gain
300, 45 e-/ADU; 64 x 64 px, 24 frames, 0.5 emitters/um^2, 500-8000 photons; written as uint16):

- **clipped**: the raw frames clipped at 1000 ADU and at 4000 ADU (a full well, no full scale 2^k - 1; no
  ``saturation_adu`` set), fitted with ``plexloc fit --method mle`` (the example's configuration) and with the
  network (``plexloc fit --model RUN``: a run of random weights, as tests/test_io49.py makes it: its rows are where
  its spots are, not a trained model's; the flag counts the clipped pixels of each row's spot either way). Per fit:
  the rows, the rows flagged (``saturated_px`` > 0), the rows whose spot truly holds a clipped pixel (the same
  window read on the raw frames: ``saturated_px`` recomputed from the movie), the level the summary line names, and
  whether the camera check said it (a ``CameraWarning`` naming the level). ``plexloc info`` on the movie: the
  clipping line.
- **unclipped**: the clipping level :func:`plexloc.camera.check.clip_level` finds (no setting) in the first frames
  of right, unclipped movies: EMCCD, sCMOS (1 e-/ADU, read sigma 1.6 e-), sparse (0.05 /um^2), crowded (5 /um^2),
  and a bright bead (one spot of 5e4 photons in every frame, on the EMCCD: a peak of about 28,000 ADU); 5 seeds each; the count of levels found
  other than the pixel type's maximum (false levels).

Usage::

    OMP_NUM_THREADS=1 python bench/clip50.py --label after --json bench/clip50.json
    OMP_NUM_THREADS=1 PYTHONPATH=OLD/src python bench/clip50.py --label before --json bench/clip50.json

The JSON keeps each label's numbers (a later run replaces its own label only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 24
SHAPE = (64, 64)


def _config(**over) -> dict:
    import yaml

    cfg = yaml.safe_load((ROOT / "examples" / "2d_gaussian.yaml").read_text())
    cfg["frame_size"] = list(SHAPE)
    for key, value in over.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return cfg


def _simulate(cfg: dict, seed: int, n: int = FRAMES) -> np.ndarray:
    import torch

    from plexloc.config import SimulationConfig
    from plexloc.simulation import Simulator

    sim = Simulator(SimulationConfig.model_validate(cfg))
    mov = sim.simulate_movie(n, generator=torch.Generator().manual_seed(seed))
    return np.clip(np.rint(mov.frames[0].numpy()), 0, 65535).astype(np.uint16)


def _run_folder(root: Path) -> Path:
    """A run folder of random weights (tests/test_infer.py's model) with the example's configuration."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import TINY_TRAIN
    from test_infer import _random_model

    from plexloc.config import TrainConfig
    from plexloc.nets.io import save_model

    cfg = copy.deepcopy(TINY_TRAIN)
    cfg["camera"] = _config()["camera"]
    (root / "run").mkdir(exist_ok=True)
    save_model(root / "run" / "model.pt", _random_model(2), TrainConfig.model_validate(cfg).model_dump(mode="json"),
               meta={})
    return root / "run"


def _cli(args: list[str]) -> tuple[int, str]:
    from plexloc.cli.main import main

    err = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        warnings.simplefilter("always")
        rc = main(args)
    return rc, err.getvalue()


def _truly_clipped(table, raw: np.ndarray, level: float, roi: int, px: float = 100.0) -> int:
    """Rows whose spot (a ``roi`` x ``roi`` window about the row's pixel, as the fits count it) holds a raw pixel at
    ``level`` or above (the movie's own clipped pixels, not the fit's flag)."""
    n = 0
    h = roi // 2
    for f, x, y in zip(table["frame"], table["x_nm"], table["y_nm"]):
        i, j = int(y // px), int(x // px)
        win = raw[int(f), max(i - h, 0):i + h + 1, max(j - h, 0):j + h + 1]
        n += bool((win >= level).any())
    return n


def _cached(cache: Path, name: str, make) -> np.ndarray:
    """The movie ``name`` from ``cache`` (made by ``make`` and kept there the first time): the runs of both labels
    fit the same frames (the simulator's noise changed between the commits compared)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}.npy"
    if not path.exists():
        np.save(path, make())
    return np.load(path)


def _later(raw: np.ndarray, start: int, level: int, dim: float = 0.12, baseline: float = 100.0) -> np.ndarray:
    """The illumination raised at frame ``start``: the frames before it at ``dim`` times the signal (ADU above the
    baseline), all below ``level``; those after it clipped at ``level``."""
    out = raw.astype(np.float64)
    out[:start] = baseline + (out[:start] - baseline) * dim
    assert out[:start].max() < level
    out[start:] = np.minimum(out[start:], level)
    return np.rint(out).astype(np.uint16)


def clipped(label: str, root: Path, cache: Path) -> list[dict]:
    import pandas as pd
    import yaml

    from plexloc.io.tiff import write_movie

    raw = _cached(cache, "emccd24", lambda: _simulate(_config(), seed=0))
    long = _cached(cache, "emccd100", lambda: _simulate(_config(), seed=1, n=100))
    run = _run_folder(root)
    (root / "c.yaml").write_text(yaml.safe_dump(_config()))
    out = []
    # (name, movie, level): clipped at 1000 / 4000 ADU throughout, unclipped, and clipped at 1000 ADU from frame 70 of
    # 100 on, the frames before at 0.12x the signal, all below it (the camera check reads the first 64 frames of 64 x 64)
    cases = [("clip1000", np.minimum(raw, 1000).astype(np.uint16), 1000),
             ("clip4000", np.minimum(raw, 4000).astype(np.uint16), 4000), ("unclipped", raw, None),
             ("later1000", _later(long, 70, 1000), 1000)]
    for name, movie, level in cases:
        path = root / f"{name}.tif"
        write_movie(path, movie)
        share = float((movie == level).mean()) if level else 0.0
        rc, info = _cli(["info", str(path)])
        line = next((s.strip() for s in info.splitlines() if "clipping:" in s), "")
        for method, args in (("mle", ["--method", "mle", "--config", str(root / "c.yaml")]),
                             ("network", ["--model", str(run), "--device", "cpu", "--precision", "float32"])):
            csv = root / f"{method}{name}.csv"
            t0 = time.perf_counter()
            rc, err = _cli(["fit", str(path), *args, "--out", str(csv)])
            table = pd.read_csv(csv)
            roi = int(np.median(table["roi_px"])) if "roi_px" in table and len(table) else 7
            true = _truly_clipped(table, movie, level, roi) if level else 0
            said = [s for s in err.splitlines() if "touch pixels clipped" in s or "touches pixels clipped" in s]
            warned = [s for s in err.splitlines() if "warning:" in s and level is not None and f"{level} ADU" in s]
            filtered = None
            if level is not None and method == "mle":  # plexloc filter --no-saturated on the fit's table
                rc_f, _ = _cli(["filter", str(csv), "--out", str(root / "f.csv"), "--no-saturated"])
                filtered = int(len(pd.read_csv(root / "f.csv"))) if rc_f == 0 else None
            out.append({"label": label, "movie": name, "clip_adu": level, "clipped_share": share, "method": method,
                        "rc": rc, "rows_after_no_saturated": filtered,
                        "rows": int(len(table)), "flagged": int((table["saturated_px"] > 0).sum()),
                        "truly_clipped": int(true), "summary": said[0][:160] if said else "",
                        "camera_warning": bool(warned), "info_clipping": line[:120],
                        "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(out[-1]), flush=True)
    return out


def _network_level(raw: np.ndarray):
    """The level the network fit took before session 50: clip_level, else infer.fit.piled_up_level (where there is
    one); after it, clip_level alone."""
    from plexloc.camera.check import clip_level

    level = clip_level(raw, None, raw.dtype)
    try:
        from plexloc.camera.check import find_clip_adu  # noqa: F401  (session 50: clip_level finds pile-ups)
    except ImportError:
        from plexloc.infer.fit import piled_up_level

        piled = piled_up_level(raw) if level[1] == "dtype" else None
        if piled is not None and piled < level[0]:
            return piled, "pile-up"
    return level


def unclipped(label: str, cache: Path) -> list[dict]:
    from plexloc.camera.check import head_frames

    scmos = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 1.0, "baseline": 100.0, "read_sigma": 1.6}
    kinds = {
        "emccd": _config(),
        "scmos": {**_config(), "camera": scmos},
        "sparse": _config(emitters__density_per_um2=0.05),
        "crowded": _config(emitters__density_per_um2=5.0),
        "bead": _config(),
    }
    out = []
    for kind, cfg in kinds.items():
        found = []
        for seed in range(5):
            raw = _cached(cache, f"{kind}_{seed}", lambda: _simulate(cfg, seed=seed, n=16))
            if kind == "bead":  # one bright spot in every frame (2e5 photons, sigma 1.3 px, EMCCD: gain 300 / 45)
                rng = np.random.default_rng(seed)
                yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
                spot = 5e4 * 0.9 * np.exp(-((yy - 31.3) ** 2 + (xx - 30.6) ** 2) / (2 * 1.3**2)) / (2 * np.pi * 1.3**2)
                n_e = rng.poisson(spot, size=raw.shape)
                e = rng.gamma(np.maximum(n_e, 1e-9), 300.0) * (n_e > 0)
                raw = np.clip(raw + np.rint(e / 45.0), 0, 65535).astype(np.uint16)
            k = head_frames(raw.shape[1:])
            level, how = _network_level(raw[:k])
            found.append({"seed": seed, "max_adu": float(raw.max()), "level": level, "how": how})
        false = sum(f["how"] != "dtype" for f in found)
        out.append({"label": label, "movie": kind, "movies": len(found), "false_levels": false, "found": found})
        print(json.dumps(out[-1]), flush=True)
    return out


def swap_path(label: str) -> list[dict]:
    """The camera check's crowded-EMCCD swap path (tests/test_camera49.py's and test_camera49_review.py's cases: the
    SMLM Challenge EMCCD given em_gain 45, e_per_adu 300): its messages and ratios, the seconds of ``check_camera``
    (best and median of 7; the machine is shared: compare the medians of runs made one after the other) and how many
    times the noise statistics (``_noise_stats``) were computed."""
    import torch

    import plexloc.camera.check as check
    from plexloc.camera import camera_from_config
    from plexloc.camera.synthetic import spotted_light

    emccd = {"kind": "emccd", "qe": 0.9, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 60.0,
             "spurious_charge": 0.002}
    cases = {"bg2_d0.2": (2.0, 0.2, 0.35), "bg10_d0.2": (10.0, 0.2, 0.35), "bg30_d5": (30.0, 5.0, 0.35),
             "bg30_d2_sharp": (30.0, 2.0, None)}
    out = []
    stats_fn = check._noise_stats
    calls = [0]

    def spy(*a, **k):
        calls[0] += 1
        return stats_fn(*a, **k)

    for name, (bg, density, waist) in cases.items():
        if waist is None:  # sharp spots (sd 0.8 px of 160 nm): tests/test_camera49_review.py's _raw
            sys.path.insert(0, str(ROOT / "tests"))
            from test_camera49_review import EMCCD, _raw

            raw = _raw(EMCCD, bg=bg, density=density, sigma_px=0.8, px_nm=160.0)
            true = EMCCD
        else:
            light = spotted_light(np.random.default_rng(0), 48, (112, 112), bg=bg, density=density, waist=waist)
            true = emccd
            raw = camera_from_config(true)(torch.tensor(light, dtype=torch.float32),
                                           generator=torch.Generator().manual_seed(1))
        cam = camera_from_config({**true, "em_gain": 45.0, "e_per_adu": 300.0})
        ph = cam.to_photons(raw)
        times = []
        check._noise_stats = spy
        try:
            for _ in range(7):
                calls[0] = 0
                t0 = time.perf_counter()
                res = check.check_camera([ph], [cam], dtype=np.uint16, source="movie.tif", warn=False)
                times.append(time.perf_counter() - t0)
        finally:
            check._noise_stats = stats_fn
        ch = res.channels[0]
        out.append({"label": label, "case": name, "seconds": round(min(times), 3),
                    "median_seconds": round(float(np.median(times)), 3), "noise_stats_calls": calls[0],
                    "noise_ratio": ch.noise_ratio, "swap_ratio": ch.swap_ratio, "note": ch.noise_note,
                    "warnings": res.warnings, "notes": res.notes})
        print(json.dumps({k: v for k, v in out[-1].items() if k not in ("warnings", "notes")}), flush=True)
    return out


def scmos_maps(label: str) -> list[dict]:
    """An sCMOS with per-pixel offset (100 +- 5 ADU) and gain (0.5 e-/ADU +- 5 %) maps, spots up to 40 e- peak per
    pixel over 20 e- of background, 32 frames of 64 x 64: clipped by its ADC at 1000 ADU (one value in ADU, a
    different one in photons per pixel), or by a full well of 300 e- before the offset and gain (a different value in
    ADU per pixel). Which level :func:`~plexloc.camera.check.clip_level` finds in each."""
    from plexloc.camera.check import clip_level

    rng = np.random.default_rng(5)
    shape = (32, 64, 64)
    off = 100 + rng.normal(0, 5, shape[1:])
    gain = 0.5 * (1 + rng.normal(0, 0.05, shape[1:]))
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    light = np.full(shape, 20.0)
    for t in range(shape[0]):
        for _ in range(6):
            r, c = rng.uniform(4, 60, 2)
            light[t] += rng.uniform(100, 600) * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.3**2))
    e = rng.poisson(light).astype(float)
    adu_of = lambda el: np.rint(el / gain + off + rng.normal(0, 1.6 / 0.5, shape))  # noqa: E731
    out = []
    for name, raw in (("adc_1000_adu", np.minimum(adu_of(e), 1000)), ("full_well_300_e", adu_of(np.minimum(e, 300)))):
        raw = np.clip(raw, 0, 65535).astype(np.uint16)
        top = raw.max(axis=0)
        level, how = clip_level(raw, None, np.uint16)
        out.append({"label": label, "case": name, "level": level, "how": how, "max_adu": float(raw.max()),
                    "pixels_at_max": int((raw == raw.max()).sum()),
                    "clipped_values_adu": (float(np.percentile(top[top >= np.percentile(top, 99)], 5)),
                                           float(top.max()))})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "clip50_cache",
                    help="where the simulated movies are kept, so that both labels fit the same frames")
    ap.add_argument("--only", choices=("fits", "unclipped", "swap", "maps"), action="append",
                    help="run only these parts (default all)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    parts = set(a.only or ("fits", "unclipped", "swap", "maps"))
    with tempfile.TemporaryDirectory() as tmp:
        fits = clipped(a.label, Path(tmp), a.cache) if "fits" in parts else []
    false = unclipped(a.label, a.cache) if "unclipped" in parts else []
    swaps = swap_path(a.label) if "swap" in parts else []
    maps = scmos_maps(a.label) if "maps" in parts else []
    if a.json:
        old = json.loads(a.json.read_text()) if a.json.exists() else {}
        mine = old.setdefault(a.label, {})
        mine.update({k: v for k, v in (("fits", fits), ("unclipped", false), ("swap", swaps), ("maps", maps))
                     if k in parts})
        a.json.write_text(json.dumps(old, indent=1) + "\n")
    print(f"\n{'label':8} {'movie':10} {'method':8} {'rows':>5} {'flagged':>8} {'truly':>6} {'warned':>6} "
          f"{'no-sat':>6}  summary")
    for r in fits:
        print(f"{r['label']:8} {r['movie']:10} {r['method']:8} {r['rows']:5d} {r['flagged']:8d} "
              f"{r['truly_clipped']:6d} {str(r['camera_warning']):>6} {str(r['rows_after_no_saturated']):>6}  "
              f"{r['summary'][:60]}")
    for r in false:
        print(f"{r['label']:8} unclipped {r['movie']:8} false levels {r['false_levels']} / {r['movies']}")
    for r in swaps:
        print(f"{r['label']:8} swap {r['case']:14} {r['seconds']:7.3f} s (median {r['median_seconds']:.3f})  "
              f"_noise_stats x{r['noise_stats_calls']}  "
              f"ratio {r['noise_ratio']:.4g}  swap {r['swap_ratio']:.4g}")


if __name__ == "__main__":
    main()
