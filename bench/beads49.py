"""Session 49: the PSF-shape check against a camera baseline far above the offset (alone and with a wrong pixel size),
and a walk through ``plexloc calibrate`` on real-looking bead stacks that are wrong in one way each.

    # everything (~8 min on one thread): a table and one JSON
    OMP_NUM_THREADS=1 python bench/beads49.py --out bench/beads49.json
    # one part: baseline | good | walk
    OMP_NUM_THREADS=1 python bench/beads49.py --parts walk --out /tmp/walk.json
    # the code before a change: PYTHONPATH=<old tree>/src python bench/beads49.py ...

``baseline``: bench/bead_pairs48.py's baseline part (``check_psf_shape``, 150 spots, on 60-frame EMCCD movies of a 2D
Gaussian and an astigmatic PSF, offset 100 ADU, 2 seeds; read with the right camera, with a baseline 200-2000 ADU too
high, with 70 or 140 nm pixels configured for 100, and both), counted per case: warned, the baseline named, the pixel
size cleared (``not in question``), the pixel sizes suggested.

``good``: bench/bead_pairs48.py's good stacks (``plexloc simulate --beads`` of the example configurations, seed 0: 24
stacks), calibrated through the DIR/config.yaml that simulate now writes: refusals and warnings of the PSF's
axial-to-lateral ratio (every one false) and of the camera baseline.

``walk``: uint16 TIFF bead stacks of astigmatic Gaussian beads (``bead_field('gauss')``: foci of x and y at -250 and
+250 nm, 100 nm pixels), 12 beads in 96 x 96 px, 33 slices 50 nm apart over +-800 nm unless the case says otherwise,
20 photons/px of background, through an EMCCD (examples/3d_astigmatic.yaml's camera, offset 100 ADU, written as a
camera YAML), calibrated by ``plexloc calibrate --no-validate`` (spline) and ``--model astigmatic`` with the right
options except the one the case gets wrong. Recorded: the exit code, the last error line, the warnings, and the foci
the calibration reports (x and y, nm) against the true -250 / +250 nm.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bead_pairs48 import _layout, baseline_table, parse_args, run_parts  # noqa: E402


# -------------------------------------------------------------------------------------------------------- baseline
def run_baseline() -> list[dict]:
    from bead_pairs48 import run_baseline as rb

    rows = rb((0, 1))
    for r in rows:
        t = r["text"]
        r["cleared_px"] = "are not in question" in t
        r["px_guesses_nm"] = [float(v) for v in re.findall(r"pixels would be about ([0-9.]+)", t)]
        m = re.search(r"(?:With the baseline that fits, the spots' widths are|with the baseline that fits they read|"
                      r"the spots still read|With the baseline that fits, the spots read) ([0-9.]+)x", t)
        r["lifted_scale"] = float(m.group(1)) if m else None
    return rows


# ------------------------------------------------------------------------------------------------------------ walk
CAMERA = "kind: emccd\nqe: 0.9\nspurious_charge: 0.002\nem_gain: 300\ne_per_adu: 45\nbaseline: 100\nread_sigma: 74.4\n"
QE, GAIN, E_PER_ADU, OFFSET = 0.9, 300.0, 45.0, 100.0


def stack(*, z=np.arange(-800.0, 801.0, 50.0), n=12, size=96, photons=2e4, bright=None, drift_px=0.0, seed=0,
          full_scale=65535.0):
    """(len(z), size, size) uint16 ADU through the EMCCD: beads at random positions, ``bright`` = (index, factor),
    ``drift_px``: every bead moves this far in x per slice."""
    from plexloc.calibrate.synthetic import bead_field

    rng = np.random.default_rng(seed)
    pts = _layout(n, rng, margin=10, shape=(size, size), tries=20000)
    out = np.zeros((len(z), size, size))
    for k, zk in enumerate(z):
        em = [((c + 0.5 + drift_px * k) * 100, (r + 0.5) * 100, photons * (bright[1] if bright and i == bright[0] else 1))
              for i, (r, c) in enumerate(pts)]
        out[k] = bead_field("gauss", em, np.array([zk]), (size, size))[0]
    ph = rng.poisson(out + 20.0)
    electrons = rng.gamma(np.maximum(rng.binomial(ph, QE), 1e-9), GAIN) * (rng.binomial(ph, QE) > 0)
    adu = electrons / E_PER_ADU + OFFSET + rng.normal(0, 74.4 / E_PER_ADU, ph.shape)
    return np.clip(np.round(adu), 0, full_scale).astype(np.uint16)


def _main(argv) -> tuple[int, str, str]:
    from plexloc.cli.main import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def _foci(err: str):
    m = re.search(r"x is in focus at z = ([+-]?\d+) nm, y at z = ([+-]?\d+) nm", err)
    return (float(m.group(1)), float(m.group(2))) if m else None


def walk_case(name: str, data: np.ndarray, tmp: Path, *, z_step=50.0, extra=(), model="spline") -> dict:
    import tifffile

    d = tmp / f"{name}_{model}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "beads.tif"
    tifffile.imwrite(path, data)
    cam = d / "cam.yaml"
    cam.write_text(CAMERA)
    out = d / ("PSF.yaml" if model == "astigmatic" else "PSF.h5")
    t0 = time.time()
    rc, so, err = _main(["calibrate", path, "--z-step", z_step, "--pixel-size", 100, "--camera", cam, "--out", out,
                         "--no-validate", "--model", model, *extra])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    row = dict(case=name, model=model, shape=list(data.shape), rc=rc, seconds=round(time.time() - t0, 1),
               warnings=[ln.split("warning: ", 1)[1][:400] for ln in lines if "warning: " in ln],
               error=(lines[-1][:400] if rc != 0 and lines else ""), foci_nm=_foci(err))
    if rc == 0 and model == "astigmatic":
        import yaml

        psf = yaml.safe_load(out.read_text().split("\n", 1)[1])["psf"]
        row["astigmatic"] = {k: psf.get(k) for k in ("s0_nm", "c_nm", "d_nm")}
    return row


def run_walk() -> list[dict]:
    rows = []
    z = np.arange(-800.0, 801.0, 50.0)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        good = stack()
        cases = [
            ("right", good, {}),
            ("z step given 100 for 50", good, dict(z_step=100.0)),
            ("z step given 25 for 50", good, dict(z_step=25.0)),
            ("taken top-down (slices reversed)", good[::-1].copy(), {}),
            ("CZYX, 2 channels in one file", np.stack([good, stack(seed=1)]), {}),
            ("ZCYX, 2 channels in one file", np.stack([good, stack(seed=1)], axis=1), {}),
            ("TZYX, 3 time points of the stack", np.stack([good, stack(seed=2), stack(seed=3)]), {}),
            ("Z and Y exchanged (rows x slices x columns)", good.transpose(1, 0, 2).copy(), {}),
            ("12-bit camera, beads of 3e5 photons saturate", stack(photons=3e5, full_scale=4095), {}),
            ("one bead 20x brighter", stack(bright=(0, 20.0)), {}),
            ("one bead 4x brighter (below clipping)", stack(bright=(0, 4.0)), {}),
            ("one bead 20x brighter, 4 beads", stack(n=4, bright=(0, 20.0)), {}),
            ("drift 0.05 px a slice in x", stack(drift_px=0.05), {}),
            ("drift 0.15 px a slice in x", stack(drift_px=0.15), {}),
            ("9 slices over +-800 (200 nm)", stack(z=np.arange(-800.0, 801.0, 200.0)), dict(z_step=200.0)),
            ("7 slices over +-300 (100 nm)", stack(z=np.arange(-300.0, 301.0, 100.0)), dict(z_step=100.0)),
            ("12 slices over +-275 (50 nm)", stack(z=np.arange(-275.0, 276.0, 50.0)), {}),
        ]
        for name, data, opt in cases:
            for model in ("spline", "astigmatic"):
                if model == "astigmatic" and data.ndim != 3:
                    continue
                rows.append(walk_case(name, data, tmp, model=model, **opt))
                r = rows[-1]
                print("walk", json.dumps({k: v for k, v in r.items() if k != "warnings"}), f"warnings {len(r['warnings'])}",
                      flush=True)
        del z
    return rows


# ------------------------------------------------------------------------------------------------------------ good
def run_good(seeds=(0,)) -> list[dict]:
    """bench/bead_pairs48.py's good stacks (``plexloc simulate --beads`` of the example configurations: astigmatic on an
    EMCCD and an sCMOS, the scalar pupil PSF, the biplane; 3, 4 and 10 beads; low and high photons), calibrated with the
    right options: counted, warnings of the PSF's axial-to-lateral ratio (any is false) and of the baseline."""
    from bead_pairs48 import _config, _main as main48

    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for kind, levels in (("astigmatic", (2e3, 3e4)), ("scmos", (2e3, 1e5)), ("pupil", (1e4, 3e4)),
                             ("biplane", (4e3, 4e4))):
            for n in (3, 4, 10):
                for ph in levels:
                    for seed in seeds:
                        d = tmp / f"{kind}_{n}_{ph:g}_{seed}"
                        cfg = _config("scmos" if kind == "scmos" else kind, tmp)
                        extra = ["--bead-psf", "pupil"] if kind == "pupil" else []
                        rc, err = main48(["simulate", cfg, "--beads", n, "--z-step", 50, "--z-range", -800, 800, "--out",
                                          d, "--photons", ph, "--bg", 20, "--frame-size", 96, 96, "--seed", seed, *extra])
                        row = dict(kind=kind, n_beads=n, photons=ph, seed=seed, config_written=(d / "config.yaml").is_file())
                        rc, err = main48(["calibrate", *sorted(d.glob("beads*.tif")), "--z-step", 50, "--pixel-size", 100,
                                          "--config", d / "config.yaml", "--out", d / "PSF.h5", "--no-validate"])
                        row.update(rc=rc, ratio_warnings=err.count("longer than wide"),
                                   baseline_warnings=err.count("below the camera's baseline"),
                                   refused=(err.strip().splitlines()[-1][:300] if rc and err.strip() else ""))
                        rows.append(row)
                        print("good", json.dumps(row), flush=True)
    return rows


# ----------------------------------------------------------------------------------------------------------- table
def table(res: dict) -> None:
    if res.get("baseline"):
        baseline_table(res["baseline"], "\nPSF-shape check: px  baseline excess (ADU) -> warned / baseline named / pixel "
                       "size cleared / pixel sizes suggested (2 PSFs x 2 seeds), width scale as read -> lifted",
                       lambda rs: f"{sum(r['names_baseline'] for r in rs)}, px cleared "
                       f"{sum(r.get('cleared_px', False) for r in rs)}, px suggested "
                       f"{' '.join('/'.join('%g' % v for v in r.get('px_guesses_nm', [])) or '-' for r in rs)}"
                       f"; scale {', '.join('%.2f' % r['width_scale'] for r in rs)}"
                       + (f" -> {', '.join('%.2f' % r['lifted_scale'] if r.get('lifted_scale') else '-' for r in rs)}"
                          if any(r.get("lifted_scale") for r in rs) else ""))
    if res.get("good"):
        g = res["good"]
        print(f"\ngood stacks (simulate --beads, calibrate --config DIR/config.yaml): {len(g)}, config.yaml written "
              f"{sum(r['config_written'] for r in g)}, refused {sum(r['rc'] != 0 for r in g)}, axial-ratio warnings "
              f"{sum(r['ratio_warnings'] > 0 for r in g)}, baseline warnings {sum(r['baseline_warnings'] > 0 for r in g)}")
        for r in g:
            if r["rc"] or r["ratio_warnings"]:
                print(f"  {r['kind']} {r['n_beads']} {r['photons']:g}: rc {r['rc']} {r['refused']}")
    if res.get("walk"):
        print("\nwalk: case  model -> rc, warnings, foci x / y (true -250 / +250 nm), error")
        for r in res["walk"]:
            f = r.get("foci_nm")
            print(f"  {r['case']:45s} {r['model']:10s} rc {r['rc']}, {len(r['warnings'])} warning(s), foci "
                  f"{'%+.0f / %+.0f' % tuple(f) if f else '-'}" + (f", c_nm {r['astigmatic']['c_nm']}, d_nm "
                                                                  f"{r['astigmatic']['d_nm']}" if r.get("astigmatic") else "")
                  + (f"\n      error: {r['error'][:300]}" if r["error"] else "")
                  + "".join(f"\n      warning: {w[:300]}" for w in r["warnings"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="baseline,good,walk")
    a = parse_args(ap, argv, table)
    if a is None:
        return 0
    return run_parts((("baseline", run_baseline), ("good", run_good), ("walk", run_walk)), a.parts.split(","), table,
                     a.out)


if __name__ == "__main__":
    sys.exit(main())
