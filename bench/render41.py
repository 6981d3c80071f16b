"""Session 41: the z-coloured (and grey) Gaussian image, before and after drawing sparse σy levels as 2D kernels.

Before (commit 2b7ff8f), ``render_color`` rendered each z level (16) as an image of its own, and each image was
filtered along y over every pixel once per σy level of its rows; after, a σy level's rows are drawn each as its 2D
kernel where that is cheaper, straight into the RGB image. The images should be the same to float rounding.

    python bench/render41.py compare --out bench/render41_compare.json   # old vs new images, PNG/TIFF bytes
    python bench/render41.py time --out bench/render41_time.json         # seconds and peak memory, 1e4..1e6 rows
    python bench/render41.py calib --out bench/render41_calib.json       # the cost model against both ways forced

The old module is ``git show 2b7ff8f:src/plexloc/render/image.py``, loaded beside the installed one. Timings are one
thread (OMP_NUM_THREADS=1), each render in a process of its own under ``/usr/bin/time -v`` (peak RSS of the process:
the table and the interpreter included).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OLD_COMMIT = "2b7ff8f"
ROOT = Path(__file__).resolve().parents[1]


def old_module():
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:src/plexloc/render/image.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_image.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_image", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_image"] = mod
    spec.loader.exec_module(mod)
    return mod


def table3d(n, field_nm=25000.0, seed=0, nan_z=0.0, sigma="sigma", scale=1.0, z_mode="astig"):
    """A 3D astigmatic-like table: x, y uniform over the field, z uniform in +-500 nm, photons log-normal around 2000,
    σx, σy = 12 nm sqrt(2000/photons) (1 + ((z -+ 250)/500)^2) x log-normal 10 % (5 to ~100 nm); ``sigma``: 'sigma'
    (sigma_x/y_nm), 'crlb' (crlb_x/y_nm), 'crlb_x' (crlb_x_nm only: round); ``z_mode`` 'astig', '2d' (z = 0) or 'nan'
    (z all NaN)."""
    from plexloc.table import LocTable

    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, field_nm, n), rng.uniform(0, field_nm, n)
    z = rng.uniform(-500, 500, n)
    ph = rng.lognormal(np.log(2000), 0.6, n)
    base = 12.0 * np.sqrt(2000 / ph)
    sx = scale * base * (1 + ((z - 250) / 500) ** 2) * rng.lognormal(0, 0.1, n)
    sy = scale * base * (1 + ((z + 250) / 500) ** 2) * rng.lognormal(0, 0.1, n)
    if nan_z:
        z[rng.random(n) < nan_z] = np.nan
    if z_mode == "2d":
        z = np.zeros(n)
    elif z_mode == "nan":
        z = np.full(n, np.nan)
    d = {"frame": rng.integers(0, 10000, n), "x_nm": x, "y_nm": y, "z_nm": z, "photons": ph,
         "color": rng.integers(-1, 3, n)}
    if sigma == "sigma":
        d.update(sigma_x_nm=sx, sigma_y_nm=sy)
    elif sigma == "crlb":
        d.update(crlb_x_nm=sx, crlb_y_nm=sy)
    else:
        d.update(crlb_x_nm=sx)
    return LocTable(d)


#: (name, table arguments, function, keyword arguments)
CASES = [
    ("3d z-colour gaussian 20k rows 10 um", dict(n=20000, field_nm=10000), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("3d z-colour gaussian, 5 % NaN z (grey)", dict(n=20000, field_nm=10000, nan_z=0.05), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("crlb_x/crlb_y only", dict(n=20000, field_nm=10000, sigma="crlb"), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("crlb_x only (round)", dict(n=20000, field_nm=10000, sigma="crlb_x"), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("2d table (z = 0) coloured by z", dict(n=20000, field_nm=10000, z_mode="2d"), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("z all NaN (all grey)", dict(n=5000, field_nm=10000, z_mode="nan"), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("viridis, z range 0..300 (clipped), 8 levels, no floor, step 0.2", dict(n=20000, field_nm=10000), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, cmap="viridis", z_range_nm=(0.0, 300.0), n_levels=8,
          sigma_step=0.2)),
    ("fixed sigma_nm 15, weights = photons", dict(n=20000, field_nm=10000), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, sigma_nm=15.0, weights="photons")),
    ("extent cuts the field (rows outside, kernels at the border)", dict(n=20000, field_nm=10000, nan_z=0.05),
     "color", dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0,
                   extent_nm=(2000.0, 6000.0, 3000.0, 8000.0))),
    ("wide sigma (x2.5, to the 32 px cap) at 5 nm pixels", dict(n=20000, field_nm=5000, scale=2.5), "color",
     dict(color_by="z", method="gaussian", px_size_nm=5.0, min_sigma_nm=2.5)),
    ("dense 300k rows on 5 um (filtered levels)", dict(n=300000, field_nm=5000), "color",
     dict(color_by="z", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("dense 300k rows, 2 nm pixels (mixed)", dict(n=300000, field_nm=3000, nan_z=0.02), "color",
     dict(color_by="z", method="gaussian", px_size_nm=2.0, min_sigma_nm=1.0)),
    ("colour by channel, gaussian (-1 grey)", dict(n=20000, field_nm=10000), "color",
     dict(color_by="color", method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("z-colour histogram, NaN z", dict(n=200000, field_nm=10000, nan_z=0.05), "color",
     dict(color_by="z", method="histogram", px_size_nm=10.0)),
    ("z-colour histogram, weights, extent cut", dict(n=200000, field_nm=10000), "color",
     dict(color_by="z", method="histogram", px_size_nm=10.0, weights="photons", extent_nm=(1000.0, 9000.0, 0.0, 5000.0))),
    ("colour by channel, histogram", dict(n=200000, field_nm=10000), "color",
     dict(color_by="color", method="histogram", px_size_nm=10.0)),
    ("grey gaussian 20k rows 10 um", dict(n=20000, field_nm=10000), "grey",
     dict(method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("grey gaussian, default extent, no floor (point kernels)", dict(n=20000, field_nm=10000, scale=0.2), "grey",
     dict(method="gaussian", px_size_nm=20.0)),
    ("grey gaussian dense 1e6 rows 10 um", dict(n=1000000, field_nm=10000), "grey",
     dict(method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)),
    ("grey gaussian, weights, crlb", dict(n=50000, field_nm=10000, sigma="crlb"), "grey",
     dict(method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0, weights="photons")),
]


def _render(mod, table, fn, kw):
    kw = dict(kw)
    if kw.get("weights") == "photons":
        kw["weights"] = np.asarray(table["photons"])
    if fn == "color":
        return mod.render_color(table, **kw)
    return mod.render(table, **kw)


def compare(out: Path) -> None:
    from plexloc.render import image as new

    old = old_module()
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for name, targs, fn, kw in CASES:
        t = table3d(**targs)
        t0 = time.perf_counter()
        a = _render(old, t, fn, kw)
        t1 = time.perf_counter()
        b = _render(new, t, fn, kw)
        t2 = time.perf_counter()
        same = {}
        for suffix in (".png", ".tif"):
            old.save_image(a, tmp / f"a{suffix}")  # (each module's own Rendered; save_image is unchanged)
            new.save_image(b, tmp / f"b{suffix}")
            same[suffix] = (tmp / f"a{suffix}").read_bytes() == (tmp / f"b{suffix}").read_bytes()
        diff = np.abs(a.image - b.image)
        top = float(np.abs(a.image).max()) or 1.0
        row = {"case": name, "rows": len(t), "shape": list(a.image.shape), "old_s": round(t1 - t0, 3),
               "new_s": round(t2 - t1, 3), "max_abs_diff_over_max": float(diff.max() / top),
               "exactly_equal": bool(np.array_equal(a.image, b.image)), "n_outside_equal": a.n_outside == b.n_outside,
               "legend_equal": a.legend == b.legend, "png_bytes_identical": same[".png"],
               "tiff_bytes_identical": same[".tif"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out.write_text(json.dumps({"old_commit": OLD_COMMIT, "cases": rows}, indent=1) + "\n")


def one(args) -> None:
    """One render in this process (for /usr/bin/time -v): prints the render's seconds."""
    mod = old_module() if args.version == "old" else __import__("plexloc.render.image", fromlist=["x"])
    t = table3d(args.n, 25000.0, nan_z=0.01)
    kw = dict(px_size_nm=10.0, extent_nm=(0.0, 25000.0, 0.0, 25000.0))
    if args.what == "color-gaussian":
        kw.update(color_by="z", method="gaussian", min_sigma_nm=5.0)
    elif args.what == "color-histogram":
        kw.update(color_by="z", method="histogram")
    else:
        kw.update(method="gaussian", min_sigma_nm=5.0)
    t0 = time.perf_counter()
    r = _render(mod, t, "color" if args.what.startswith("color") else "grey", kw)
    print(json.dumps({"seconds": time.perf_counter() - t0, "shape": list(r.image.shape),
                      "sum": float(r.image.sum())}))


def timing(out: Path, ns, whats, repeat: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows = []
    for n in ns:
        for what in whats:
            for version in ("old", "new"):
                best, rss = None, None
                for _ in range(repeat):
                    p = subprocess.run(["/usr/bin/time", "-v", sys.executable, __file__, "one", "--version", version,
                                        "--n", str(n), "--what", what], capture_output=True, text=True, env=env,
                                       check=True)
                    res = json.loads(p.stdout.strip().splitlines()[-1])
                    kb = int(next(line for line in p.stderr.splitlines() if "Maximum resident" in line).split()[-1])
                    best = res["seconds"] if best is None else min(best, res["seconds"])
                    rss = kb if rss is None else max(rss, kb)
                row = {"rows": n, "what": what, "version": version, "seconds": round(best, 3),
                       "peak_rss_mib": round(rss / 1024, 1), "shape": res["shape"], "image_sum": res["sum"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    out.write_text(json.dumps({"old_commit": OLD_COMMIT, "field_um": 25, "px_nm": 10, "threads": 1,
                               "repeat_best_of": repeat, "rows": rows}, indent=1) + "\n")


def calib(out: Path) -> None:
    """The per-σy-level choice (``_direct_saving``) against every level forced one way (each row's 2D kernel, or
    spread along x and filtered along y): seconds, 25 um at 10 nm, σ scaled by 0.5, 1 and 2.5."""
    from plexloc.render import image

    real = image._direct_saving
    small = table3d(1000, 25000.0)  # imports (matplotlib's colormaps) and first-touch costs out of the timings
    image.render_color(small, color_by="z", method="gaussian", px_size_nm=10.0, extent_nm=(0.0, 25000.0, 0.0, 25000.0))
    rows = []
    for n, whats in ((10**5, ("grey", "color")), (10**6, ("grey", "color")), (3 * 10**6, ("grey",))):
        for scale in (0.5, 1.0, 2.5):
            t = table3d(n, 25000.0, scale=scale)
            for what in whats:
                kw = dict(px_size_nm=10.0, extent_nm=(0.0, 25000.0, 0.0, 25000.0), min_sigma_nm=5.0)
                row = {"rows": n, "sigma_scale": scale, "what": what}
                for way, f in (("direct", lambda *a: 1.0), ("filtered", lambda *a: -1e30), ("model", real)):
                    image._direct_saving = f
                    t0 = time.perf_counter()
                    if what == "color":
                        image.render_color(t, color_by="z", method="gaussian", **kw)
                    else:
                        image.render_gaussian(t, **kw)
                    row[f"{way}_s"] = round(time.perf_counter() - t0, 3)
                image._direct_saving = real
                rows.append(row)
                print(json.dumps(row), flush=True)
    out.write_text(json.dumps({"field_um": 25, "px_nm": 10, "threads": 1, "rows": rows}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--out", type=Path, default=ROOT / "bench" / "render41_compare.json")
    tm = sub.add_parser("time")
    tm.add_argument("--out", type=Path, default=ROOT / "bench" / "render41_time.json")
    tm.add_argument("--n", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    tm.add_argument("--what", nargs="+", default=["color-gaussian", "grey-gaussian", "color-histogram"])
    tm.add_argument("--repeat", type=int, default=1)
    cb = sub.add_parser("calib")
    cb.add_argument("--out", type=Path, default=ROOT / "bench" / "render41_calib.json")
    o = sub.add_parser("one")
    o.add_argument("--version", choices=("old", "new"), required=True)
    o.add_argument("--n", type=int, required=True)
    o.add_argument("--what", required=True)
    args = ap.parse_args()
    if args.cmd == "compare":
        compare(args.out)
    elif args.cmd == "calib":
        calib(args.out)
    elif args.cmd == "time":
        timing(args.out, args.n, args.what, args.repeat)
    else:
        one(args)


if __name__ == "__main__":
    main()
