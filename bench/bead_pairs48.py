"""Session 48: the bead calibration's close-pair warning (3-4 beads) and the camera-baseline rules, on right and
wrong input.

    # everything (~4-6 min on one thread), a table and one JSON
    OMP_NUM_THREADS=1 python bench/bead_pairs48.py --out bench/bead_pairs48.json
    # one part: pairs | good | baseline
    OMP_NUM_THREADS=1 python bench/bead_pairs48.py --parts good --out /tmp/good.json
    # the code before a change: PYTHONPATH=<old tree>/src python bench/bead_pairs48.py ...

Three parts:

``pairs``: ``calibrate_spline`` on 112x112 px stacks (100 nm pixels, 33 slices 50 nm apart over +-800 nm, bg 20
photons/px, Poisson) of astigmatic Gaussian beads (``bead_field('gauss')``) at random positions >= 17 px apart: 3
single beads and one pair, or 2 singles and one pair, the pair ``sep`` px apart (1.5, 2.0, 2.5) at a random angle,
photons split 1:1 or 1:2, singles of 2e4 or 3e3 photons. Counted: pairs kept in the average (the two-spot fit
misses them), pairs named in the warning (``pair_shape_check.named``), single beads named or rejected.

``good``: ``plexloc calibrate`` (in process, ``--no-validate``) on stacks that ``plexloc simulate --beads`` writes
from the example configurations, each through its own camera file (``--config``): astigmatic Gaussian
(examples/3d_astigmatic.yaml, EMCCD), the same with an sCMOS camera, the scalar pupil-function PSF (``--bead-psf
pupil``), the biplane (two channels), with 3, 4 and 10 beads, low and high photons (below the cameras' clipping). Counted: refusals, beads named
as possible pairs (any is false: every bead is single), baseline warnings (any is false: the camera is right).

``baseline``: the PSF-shape check (``check_psf_shape``, 150 spots) on 60-frame EMCCD movies (offset 100 ADU) of a 2D
Gaussian and an astigmatic PSF, 2 seeds, read with the right camera file, one whose baseline is 200-2000 ADU too
high, the wrong pixel size (70, 140 nm for 100) and both at once. Counted: warned, the baseline named first, the width scale.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
Z = np.arange(-800.0, 801.0, 50.0)
H = W = 112


# ----------------------------------------------------------------------------------------------------------- pairs
def _layout(n, rng, gap=17, margin=9, shape=(H, W), tries=10000):
    """Up to ``n`` random (row, col) positions in ``shape`` (px), ``margin`` px in from the edges, more than ``gap`` px
    apart in x or y; fewer where ``tries`` draws place no more (bench/beads49.py's stacks use it too)."""
    h, w = shape
    pts = []
    for _ in range(tries):
        if len(pts) == n:
            break
        r, c = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        if all(max(abs(r - a), abs(c - b)) > gap for a, b in pts):
            pts.append((r, c))
    return pts


def pair_case(n_single, n_pair, sep, ratio, photons, seed, bg=20.0) -> dict:
    from plexloc.calibrate import calibrate_spline
    from plexloc.calibrate.synthetic import bead_field
    from plexloc.errors import InputError

    rng = np.random.default_rng(seed)
    pts = _layout(n_single + n_pair, rng)
    em, pair_px = [], []
    for i, (r, c) in enumerate(pts):
        if i < n_pair:
            a = rng.uniform(0, np.pi)
            w1 = 1 / (1 + ratio)
            em.append(((c + .5) * 100, (r + .5) * 100, photons * 2 * w1))
            em.append(((c + .5 + sep * np.cos(a)) * 100, (r + .5 + sep * np.sin(a)) * 100, photons * 2 * (1 - w1)))
            pair_px.append((r, c))
        else:
            em.append(((c + .5) * 100, (r + .5) * 100, photons))
    st = np.random.default_rng(seed + 1000).poisson(bead_field("gauss", em, Z, (H, W)) + bg).astype(np.float64)
    out = dict(n_single=n_single, n_pair=n_pair, sep_px=sep, ratio=ratio, photons=photons, seed=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = calibrate_spline([st], z_step_nm=50, px_size_nm=100)
    except InputError as e:
        return {**out, "refused": str(e)[:200]}
    sel = res.selections[0]

    def near_pair(r, c):
        return any(abs(r - a) < 4 and abs(c - b) < 4 for a, b in pair_px)

    single_px = pts[n_pair:]

    def near_single(r, c):
        return any(abs(r - a) < 4 and abs(c - b) < 4 for a, b in single_px)

    named = res.summary.get("pair_shape_check", {}).get("named", [])
    named_pair = sum(near_pair(r, c) for r, c in named)
    return {**out, "used": int(len(sel.used)),
            "kept_pairs": int(sum(near_pair(sel.rows[i], sel.cols[i]) for i in sel.used)),
            "named_pairs": int(named_pair), "named_singles": int(len(named) - named_pair),
            "rejected_singles": int(sum(1 for i in range(len(sel.rows))
                                        if sel.reason[i] != "" and near_single(sel.rows[i], sel.cols[i])))}


def run_pairs(seeds) -> list[dict]:
    rows = []
    for ns, npair in ((3, 1), (2, 1)):
        for sep in (1.5, 2.0, 2.5):
            for ratio in (1.0, 2.0):
                for ph in (2e4, 3e3):
                    for seed in seeds:
                        rows.append(pair_case(ns, npair, sep, ratio, ph, seed))
                        print("pairs", json.dumps(rows[-1]), flush=True)
    return rows


# ------------------------------------------------------------------------------------------------------------ good
def _config(kind: str, tmp: Path) -> Path:
    import yaml

    src = ROOT / "examples" / ("biplane.yaml" if kind == "biplane" else "3d_astigmatic.yaml")
    if kind != "scmos":
        return src
    d = yaml.safe_load(src.read_text())
    d["camera"] = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5, "baseline": 100.0,
                   "read_sigma": 1.6}
    p = tmp / "scmos.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _main(argv) -> tuple[int, str]:
    from plexloc.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def good_case(kind, n_beads, photons, seed, tmp: Path) -> dict:
    d = tmp / f"{kind}_{n_beads}_{photons:g}_{seed}"
    cfg = _config("scmos" if kind == "scmos" else kind, tmp)
    extra = ["--bead-psf", "pupil"] if kind == "pupil" else []
    rc, err = _main(["simulate", cfg, "--beads", n_beads, "--z-step", 50, "--z-range", -800, 800, "--out", d,
                     "--photons", photons, "--bg", 20, "--frame-size", 96, 96, "--seed", seed, *extra])
    out = dict(kind=kind, n_beads=n_beads, photons=photons, seed=seed)
    if rc != 0:
        return {**out, "simulate_failed": err[-300:]}
    stacks = sorted(d.glob("beads*.tif"))
    rc, err = _main(["calibrate", *stacks, "--z-step", 50, "--pixel-size", 100, "--config", cfg, "--out",
                     d / "PSF.h5", "--no-validate"])
    out.update(rc=rc, baseline_warnings=err.count("below the camera's baseline"))
    if rc != 0:
        return {**out, "refused": err.strip().splitlines()[-1][:300] if err.strip() else ""}
    rep = json.loads((d / "PSF.json").read_text())
    out.update(used=rep["n_beads_used"], named=len(rep.get("pair_shape_check", {}).get("named", [])),
               rejected=rep.get("beads_rejected"))
    return out


def run_good(seeds) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as t:
        for kind, levels in (("astigmatic", (2e3, 3e4)), ("scmos", (2e3, 1e5)), ("pupil", (1e4, 3e4)),
                             ("biplane", (4e3, 4e4))):
            for n in (3, 4, 10):
                for ph in levels:
                    for seed in seeds:
                        rows.append(good_case(kind, n, ph, seed, Path(t)))
                        print("good", json.dumps(rows[-1]), flush=True)
    return rows


# -------------------------------------------------------------------------------------------------------- baseline
def run_baseline(seeds) -> list[dict]:
    import torch

    from plexloc.config import SimulationConfig, validate_config
    from plexloc.psf.check import check_psf_shape
    from plexloc.simulation import Simulator

    cam = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
           "baseline": 100.0, "read_sigma": 74.4}

    def config(psf, px=100.0, z=(0.0, 0.0), baseline=100.0):
        return validate_config({
            "px_size_nm": px, "frame_size": [64, 64], "psf": psf, "camera": {**cam, "baseline": baseline},
            "emitters": {"density_per_um2": 0.5, "photons_range": [1000.0, 8000.0], "on_time_frames": 2.0,
                         "z_range_nm": list(z)},
            "background": {"range": [20.0, 100.0]}}, SimulationConfig)

    rows = []
    for name, psf, z in (("gauss2d", {"kind": "gaussian", "sigma_nm": 130.0}, (0.0, 0.0)),
                         ("astig", {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0],
                                    "d_nm": 400.0}, (-500.0, 500.0))):
        for seed in seeds:
            cfg = config(psf, z=z)
            sim = Simulator(cfg)
            m = sim.simulate_movie(60, generator=torch.Generator().manual_seed(seed), density_per_um2=0.5)
            for px in (100.0, 70.0, 140.0):
                for extra in (0, 200, 600, 1000, 2000):
                    c = config(psf, px=px, z=z, baseline=100.0 + extra)  # the camera file the movie is read with
                    read = Simulator(c)
                    ch = read.channels[0]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = check_psf_shape(read.to_photons(m.frames)[0], ch.psf, z_range_nm=c.emitters.z_range_nm,
                                            z_offset_nm=ch.z_offset_nm, camera=ch.camera, max_spots=150)
                    w = r.warning or ""
                    rows.append(dict(psf=name, seed=seed, px_nm=px, baseline_excess_adu=extra,
                                     warned=bool(w), names_baseline="below the camera's baseline" in w,
                                     baseline_first="likelier cause: set the camera" in w,
                                     both_named="not the only cause" in w,
                                     width_scale=round(float(r.width_scale), 3),
                                     says_px=("px_size_nm" in w), px_guess_nm=_number(w, "pixels would be about "),
                                     lifted_scale=_number(w, "the spots still read "), text=w))
                    print("baseline", json.dumps({k2: v for k2, v in rows[-1].items() if k2 != "text"}), flush=True)
    return rows


def _number(text: str, after: str) -> float | None:
    """The number written after ``after`` in a message (``'0.67x'``, ``'104 nm'``), or None."""
    if after not in text:
        return None
    word = text.split(after)[1].split()[0].rstrip("x,;:")
    try:
        return float(word)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------------------- table
def baseline_table(rows: list[dict], header: str, rest) -> None:
    """The baseline part's table: ``header``, then a line a case (pixel size configured, baseline excess in ADU): the
    warnings counted, then ``rest(rows of the case)`` after "baseline named " (bench/beads49.py's table too)."""
    print(header)
    for px in (100.0, 70.0, 140.0):
        for extra in (0, 200, 600, 1000, 2000):
            rs = [r for r in rows if r["px_nm"] == px and r["baseline_excess_adu"] == extra]
            print(f"  px {px:5.0f} +{extra:4d}: warned {sum(r['warned'] for r in rs)}/{len(rs)}, baseline named "
                  + rest(rs))


def table(res: dict) -> None:
    if res.get("pairs"):
        print("\npairs among 3-4 beads: (singles+pairs) sep  kept/named pairs  named/rejected singles")
        for lay in sorted({(r["n_single"], r["n_pair"]) for r in res["pairs"]}, reverse=True):
            for sep in (1.5, 2.0, 2.5):
                rs = [r for r in res["pairs"] if (r["n_single"], r["n_pair"]) == lay and r["sep_px"] == sep
                      and "refused" not in r]
                kept = sum(r["kept_pairs"] for r in rs)
                print(f"  {lay[0]}+{lay[1]} sep {sep:.1f}: {len(rs)} stacks, pairs kept {kept}, named "
                      f"{sum(r['named_pairs'] for r in rs)}, kept and not named "
                      f"{sum(r['kept_pairs'] - min(r['kept_pairs'], r['named_pairs']) for r in rs)}; singles named "
                      f"{sum(r['named_singles'] for r in rs)}, rejected {sum(r['rejected_singles'] for r in rs)}")
        print(f"  refused: {sum('refused' in r for r in res['pairs'])} of {len(res['pairs'])}")
    if res.get("good"):
        print("\ngood stacks: kind  beads  photons  -> refused, beads named as pairs, baseline warnings")
        for r in res["good"]:
            print(f"  {r['kind']:10s} {r['n_beads']:3d} {r['photons']:8g} seed {r['seed']}: rc {r.get('rc')}, used "
                  f"{r.get('used')}, named {r.get('named')}, baseline warnings {r.get('baseline_warnings')}"
                  f"{'  ' + r['refused'] if r.get('refused') else ''}{'  ' + r['simulate_failed'] if 'simulate_failed' in r else ''}")
        g = res["good"]
        print(f"  total {len(g)}: refused {sum(r.get('rc', 1) != 0 for r in g)}, named "
              f"{sum(bool(r.get('named')) for r in g)}, baseline warnings {sum(bool(r.get('baseline_warnings')) for r in g)}")
    if res.get("baseline"):
        baseline_table(res["baseline"], "\nPSF-shape check: px  baseline excess (ADU) -> warned / baseline named (as "
                       "the likelier cause, as not the only one) / says px_size_nm (over PSFs and seeds), width scales",
                       lambda rs: f"{sum(r.get('names_baseline', r['baseline_first']) for r in rs)} (the likelier cause "
                       f"{sum(r['baseline_first'] for r in rs)}, not the only one "
                       f"{sum(r.get('both_named', 0) for r in rs)}), px named {sum(r['says_px'] for r in rs)}; pixels "
                       f"guessed {', '.join('%g' % r['px_guess_nm'] for r in rs if r.get('px_guess_nm')) or '-'}; "
                       f"scale {', '.join('%.2f' % r['width_scale'] for r in rs)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="pairs,good,baseline")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (pairs and good)")
    a = parse_args(ap, argv, table)
    if a is None:
        return 0
    seeds = [int(s) for s in a.seeds.split(",")]
    return run_parts((("pairs", lambda: run_pairs(seeds)), ("good", lambda: run_good(seeds)),
                      ("baseline", lambda: run_baseline((0, 1)))), a.parts.split(","), table, a.out, seeds=seeds)


def parse_args(ap: argparse.ArgumentParser, argv, table):
    """``ap``'s arguments with --out and --table added; None where --table printed that JSON's table (the script then
    stops). bench/beads49.py's main too."""
    ap.add_argument("--out", type=Path, default=None, help="JSON to write (with the code's commit)")
    ap.add_argument("--table", type=Path, default=None, help="print the table of this JSON and stop")
    a = ap.parse_args(argv)
    if a.table:
        table(json.loads(a.table.read_text()))
        return None
    return a


def run_parts(parts, chosen: list[str], table, out: Path | None, **meta) -> int:
    """Runs the ``parts`` ((name, function of no arguments), in order) named in ``chosen``, each timed, prints
    ``table`` of the result and the seconds, and writes it as JSON to ``out``: the commit and folder of the plexloc
    measured (PYTHONPATH may point at another tree than this script's), ``meta``, the seconds, a list of rows a part.
    bench/beads49.py's main too."""
    import plexloc

    commit = subprocess.run(["git", "-C", str(Path(plexloc.__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    res: dict = {"commit": commit, "plexloc": str(Path(plexloc.__file__).parent), **meta, "seconds": {}}
    for part, fn in parts:
        if part in chosen:
            t0 = time.time()
            res[part] = fn()
            res["seconds"][part] = round(time.time() - t0, 1)
    table(res)
    print("\nseconds:", res["seconds"], "code:", res["plexloc"], "commit", commit)
    if out:
        out.write_text(json.dumps(res, indent=1))
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
