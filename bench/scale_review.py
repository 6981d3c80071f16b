"""Scale review: peak memory and wall time of the commands that take whole tables or movies, as the input grows.

Each command runs in its own process under ``/usr/bin/time -v`` (peak resident set size, "Maximum resident set
size", and elapsed wall time). Inputs are written under ``--dir`` (default /tmp/scale) and kept for reruns; delete
the folder when done. Prints one table and writes JSON (``--json``).

    .venv/bin/python bench/scale_review.py gen-tables --rows 100000 1000000 5000000
    .venv/bin/python bench/scale_review.py gen-movies --frames 1000 5000 20000
    .venv/bin/python bench/scale_review.py run --rows 100000 1000000 5000000 --commands render-hist drift-rcc \
        --json bench/scale_review.json

Tables: molecules on random lines in a 40 um field (``plexloc.post.synthetic``), 5 on-events each, a smooth
100 nm drift over 20,000 frames; columns frame, x_nm, y_nm, z_nm, photons, sigma_x_nm, sigma_y_nm, bg, prob
(72 bytes a row in memory). Movies: 256x256 uint16, Poisson background of 100 photons plus 20 Gaussian spots a
frame, written frame by frame (never held whole).

Every number is measured on the machine that runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLEXLOC = str(ROOT / ".venv" / "bin" / "plexloc")
PY = str(ROOT / ".venv" / "bin" / "python")


def table_path(d: Path, n: int, ext: str = "h5") -> Path:
    return d / f"locs_{n}.{ext}"


def movie_path(d: Path, frames: int) -> Path:
    return d / f"movie_{frames}.tif"


def gen_tables(d: Path, rows: list[int], csv: bool) -> None:
    from plexloc.io.tables import write_table
    from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift
    from plexloc.table import LocTable

    for n in rows:
        p = table_path(d, n)
        if p.exists() and (not csv or table_path(d, n, "csv").exists()):
            continue
        rng = np.random.default_rng(n)
        n_frames = 20000
        drift = wobbly_drift(n_frames, 125.0, rng=rng)
        mol = structure_points("lines", max(1000, n // 12), fov_nm=40000.0, rng=rng)
        t = blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=drift, events_per_molecule=5)
        m = len(t)
        keep = np.sort(rng.choice(m, n, replace=False)) if m > n else np.arange(m)
        cols = {c: np.asarray(t[c])[keep] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons", "sigma_x_nm",
                                                     "sigma_y_nm")}
        cols["bg"] = rng.uniform(50, 150, len(keep))
        cols["prob"] = rng.uniform(0.5, 1.0, len(keep))
        lt = LocTable(cols)
        write_table(lt, p)
        if csv:
            write_table(lt, table_path(d, n, "csv"))
        # a prediction for evaluate: 90 % of the rows, 20 nm of noise, 5 % false positives
        keep_p = rng.uniform(0, 1, len(lt)) < 0.9
        pc = {c: v[keep_p].copy() for c, v in cols.items()}
        pc["x_nm"] += rng.normal(0, 20.0, len(pc["x_nm"]))
        pc["y_nm"] += rng.normal(0, 20.0, len(pc["y_nm"]))
        n_fp = len(lt) // 20
        fp = {c: v[rng.integers(0, len(lt), n_fp)].copy() for c, v in cols.items()}
        fp["x_nm"] = rng.uniform(0, 40000.0, n_fp)
        fp["y_nm"] = rng.uniform(0, 40000.0, n_fp)
        write_table(LocTable.concat([LocTable(pc), LocTable(fp)]).sort_by_frame(), d / f"pred_{n}.h5")
        print(f"wrote {p} ({len(lt):,} rows)", flush=True)


def gen_movies(d: Path, frames: list[int], spots: int = 20) -> None:
    import tifffile

    h = w = 256
    yy, xx = np.mgrid[0:7, 0:7].astype(np.float32) - 3.0
    for n in frames:
        p = movie_path(d, n)
        if p.exists():
            continue
        rng = np.random.default_rng(n)
        bgpool = rng.poisson(100.0, (64, h, w)).astype(np.uint16) + np.uint16(100)

        def frames_iter():
            for i in range(n):
                f = bgpool[i % 64].copy()
                cx = rng.uniform(4, w - 5, spots)
                cy = rng.uniform(4, h - 5, spots)
                for x, y in zip(cx, cy):
                    ix, iy = int(x), int(y)
                    g = 300.0 * np.exp(-((xx - (x - ix)) ** 2 + (yy - (y - iy)) ** 2) / (2 * 1.3 ** 2))
                    f[iy - 3:iy + 4, ix - 3:ix + 4] += g.astype(np.uint16)
                yield f

        tmp = p.with_suffix(".tmp.tif")
        tifffile.imwrite(tmp, frames_iter(), shape=(n, h, w), dtype=np.uint16, bigtiff=n * h * w * 2 > 2 ** 31)
        os.replace(tmp, p)
        print(f"wrote {p} ({n} frames)", flush=True)


def _rss_anon_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd``; peak RSS (``ru_maxrss``: anonymous memory plus the file pages mapped, e.g. a memory-mapped
    movie) and peak anonymous RSS (``RssAnon`` sampled every 50 ms: the process's own memory), wall seconds."""
    t0 = time.perf_counter()
    err_path = Path(f"/tmp/scale_review_{os.getpid()}.err")
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        anon = 0
        rc: object = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc
                break
            anon = max(anon, _rss_anon_kb(proc.pid) or 0)
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = rc = "timeout"
                break
            time.sleep(0.05)
    dt = time.perf_counter() - t0
    lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln.strip()]
    err_path.unlink()
    return {"rc": rc, "seconds": dt, "peak_mb": usage.ru_maxrss / 1024, "peak_anon_mb": anon / 1024,
            "stderr_tail": lines[-3:]}


def command(name: str, d: Path, n: int) -> list[str]:
    src = str(table_path(d, n))
    out = d / "out"
    out.mkdir(exist_ok=True)
    return {
        "render-hist": [PLEXLOC, "render", src, "--out", str(out / "r.tif"), "--method", "histogram"],
        "render-gauss": [PLEXLOC, "render", src, "--out", str(out / "g.tif"), "--method", "gaussian"],
        "drift-rcc": [PLEXLOC, "drift", src, "--out", str(out / "d.h5"), "--engine", "rcc"],
        "drift-default": [PLEXLOC, "drift", src, "--out", str(out / "dd.h5")],
        "merge": [PLEXLOC, "merge", src, "--out", str(out / "m.h5")],
        "filter": [PLEXLOC, "filter", src, "--out", str(out / "f.h5"), "--min-prob", "0.6", "--max-sigma", "20"],
        "frc": [PLEXLOC, "frc", src, "--json", str(out / "frc.json")],
        "report": [PLEXLOC, "report", src, "--out", str(out / "rep.html")],
        "convert-h5-csv": [PLEXLOC, "convert", src, str(out / "c.csv")],
        "convert-csv-h5": [PLEXLOC, "convert", str(table_path(d, n, "csv")), str(out / "c.h5")],
        "convert-ts": [PLEXLOC, "convert", src, str(out / "c.thunderstorm.csv")],
        "convert-picasso": [PLEXLOC, "convert", src, str(out / "c.hdf5"), "--camera-px-size", "100"],
        "convert-smlm": [PLEXLOC, "convert", src, str(out / "c.smlm")],
        "evaluate": [PLEXLOC, "evaluate", src, str(d / f"pred_{n}.h5"), "--dim", "2"],
    }[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["gen-tables", "gen-movies", "run"])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/scale"))
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000])
    ap.add_argument("--frames", type=int, nargs="*", default=[1000, 5000, 20000])
    ap.add_argument("--csv", action="store_true", help="gen-tables: also write CSV")
    ap.add_argument("--commands", nargs="*", default=["render-hist", "render-gauss", "drift-rcc", "merge", "filter",
                                                       "frc", "report", "convert-h5-csv"])
    ap.add_argument("--extra", nargs="*", default=[], help="run: raw commands, {dir} replaced (movie commands)")
    ap.add_argument("--timeout", type=float, default=240.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.what == "gen-tables":
        gen_tables(args.dir, args.rows, args.csv)
        return
    if args.what == "gen-movies":
        gen_movies(args.dir, args.frames)
        return
    results = []
    base = measure([PY, "-c", "import plexloc.cli.main"], 60)
    print(f"baseline (python + plexloc.cli.main import): {base['peak_mb']:.0f} MB", flush=True)
    jobs = [(c, n, command(c, args.dir, n)) for c in args.commands for n in args.rows]
    jobs += [(e.split()[0], 0, [PLEXLOC, *e.format(dir=args.dir).split()[1:]]) for e in args.extra]
    print(f"{'command':<18} {'input':>12} {'peak MB':>9} {'anon MB':>9} {'B/row':>7} {'s':>8}  rc", flush=True)
    for name, n, cmd in jobs:
        r = measure(cmd, args.timeout)
        per = (r["peak_mb"] - base["peak_mb"]) * 2 ** 20 / n if (n and r["peak_mb"]) else float("nan")
        print(f"{name:<18} {n:>12,} {r['peak_mb'] or float('nan'):>9.0f} {r['peak_anon_mb']:>9.0f} {per:>7.0f} {r['seconds']:>8.1f}  {r['rc']}"
              + (f"  {r['stderr_tail'][-1][:120]}" if r["rc"] not in (0,) and r.get("stderr_tail") else ""), flush=True)
        results.append({"command": name, "rows": n, "argv": cmd[1:], **r})
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                                         "python": sys.version.split()[0], "baseline_mb": base["peak_mb"],
                                         "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
