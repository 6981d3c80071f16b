"""Saturated spots, flagged per localization (issue 41): before/after on simulated movies.

Three measurements, each of the code at two source trees (``--before SRC``, e.g. a ``git worktree`` of the commit
before, and this tree's ``src``), run in separate processes through ``PYTHONPATH``:

1. ``clip``: examples/2d_gaussian.yaml's EMCCD as a 12-bit camera (``saturation_adu: 4095`` in the simulation only:
   its frames clip at 4095 ADU in a uint16 TIFF), with its photons and with brighter ones, and a 16-bit camera
   clipped at 65535 (:data:`CASES`); fitted with the configuration without the setting (what a user of such a
   camera has): MLE (``plexloc fit --method mle``) and, with ``--model RUN``, a network. Rows are matched
   to the truth (2D, 250 nm); per group of rows (flagged ``saturated_px > 0``, not flagged) the median of fitted /
   true photons and the lateral error. Before the change no row is flagged and nothing warns; the groups are those
   of the new table (same fits).
2. ``false_alarms``: a short movie of every examples/*.yaml (its own camera, no setting): the level each channel's
   rows are flagged at (:func:`plexloc.camera.check.clip_level`), the raw pixels at or above it, and whether a level
   was found in the movie. No pixel at the level: no row can be flagged.
3. ``speed``: frames/s of the fit loop on a 256 x 256 movie, one thread (network: ``stats["frames_per_s"]``; MLE:
   the library call's seconds), old and new alternated ``--repeats`` times.

    .venv/bin/python bench/saturation41.py --before /tmp/wt_h5/src --model RUN --out /tmp/sat41 \
        --json bench/saturation41.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
EXAMPLES = HERE / "examples"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_py(src: Path, code: str) -> str:
    """``code`` in a fresh interpreter with ``src`` first on the path; its stdout."""
    out = subprocess.run([sys.executable, "-c", code], env={**ENV, "PYTHONPATH": str(src)}, capture_output=True,
                         text=True, cwd=str(HERE))
    if out.returncode:
        raise RuntimeError(f"{src}: {out.stderr[-3000:]}")
    return out.stdout


def cli(src: Path, *args: str) -> tuple[str, str]:
    code = "import sys; from plexloc.cli.main import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, *args], env={**ENV, "PYTHONPATH": str(src)}, capture_output=True,
                         text=True, cwd=str(HERE))
    if out.returncode:
        raise RuntimeError(f"{src} plexloc {' '.join(args)}: {out.stderr[-3000:]}")
    return out.stdout, out.stderr


def yaml_with(base: Path, out: Path, *, camera: dict | None = None, **top) -> Path:
    import yaml

    cfg = yaml.safe_load(base.read_text())
    if camera:
        cfg["camera"] = {**cfg["camera"], **camera}
    cfg.update(top)
    out.write_text(yaml.safe_dump(cfg))
    return out


def groups(table_csv: Path, truth_csv: Path) -> dict:
    """Fitted / true photons and lateral error (nm) of the matched rows, flagged and not."""
    from plexloc.evaluate.matching import match
    from plexloc.io.tables import read_table

    t, g = read_table(table_csv), read_table(truth_csv)
    m = match(g, t, dim=2)
    ratio = t["photons"][m.tp_pred] / g["photons"][m.tp_truth]
    err = np.hypot(*m.delta_nm[:, :2].T)
    flag = t["saturated_px"][m.tp_pred] > 0 if "saturated_px" in t else np.zeros(len(m.tp_pred), bool)
    out = {"rows": len(t), "matched": int(len(m.tp_pred)), "flagged_rows": int((t["saturated_px"] > 0).sum())
           if "saturated_px" in t else None}
    for name, sel in (("flagged", flag), ("unflagged", ~flag), ("all", np.ones_like(flag))):
        out[name] = {"n": int(sel.sum()),
                     "photon_ratio_median": float(np.median(ratio[sel])) if sel.any() else None,
                     "lateral_error_median_nm": float(np.median(err[sel])) if sel.any() else None,
                     "lateral_rmse_nm": float(np.sqrt(np.mean(err[sel] ** 2))) if sel.any() else None}
    if "crlb_x_nm" in t:
        crlb = t["crlb_x_nm"][m.tp_pred]
        for name, sel in (("flagged", flag), ("unflagged", ~flag)):
            if sel.any():
                out[name]["rmse_x_over_crlb"] = float(np.sqrt(np.mean((m.delta_nm[sel, 0] / crlb[sel]) ** 2)))
    for lo, hi in ((1, 2), (3, 8), (9, 10**9)):  # by the clipped pixels in the spot
        sel = (t["saturated_px"][m.tp_pred] >= lo) & (t["saturated_px"][m.tp_pred] <= hi) if "saturated_px" in t \
            else np.zeros(len(m.tp_pred), bool)
        out[f"saturated_px_{lo}_{hi if hi < 10**9 else 'up'}"] = {
            "n": int(sel.sum()), "photon_ratio_median": float(np.median(ratio[sel])) if sel.any() else None,
            "lateral_error_median_nm": float(np.median(err[sel])) if sel.any() else None}
    if "converged" in t:
        out["flagged"]["converged_share"] = float(np.mean(t["converged"][m.tp_pred][flag] == 1)) if flag.any() else None
    return out


#: the clipped movies: name -> (camera fields of the simulation only, photons_range, clipping level ADU)
CASES = {
    # a 12-bit camera, examples/2d_gaussian.yaml's photons: the brightest spots' peaks just past 4095 ADU
    "12bit": ({"saturation_adu": 4095}, [500.0, 8000.0], 4095),
    # the same camera and brighter emitters (beads, aggregates): peaks up to ~6x the level
    "12bit_bright": ({"saturation_adu": 4095}, [500.0, 40000.0], 4095),
    # a 16-bit file clipped at its maximum: e_per_adu 4 (67.5 ADU per photon), the fit's camera the same
    "16bit_bright": ({"e_per_adu": 4.0}, [500.0, 20000.0], 65535),
}


def clip_case(src_old: Path, src_new: Path, work: Path, frames: int, model: Path | None, name: str) -> dict:
    import yaml

    sim_camera, photons, level = CASES[name]
    emitters = {**yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())["emitters"], "photons_range": photons}
    sim = yaml_with(EXAMPLES / "2d_gaussian.yaml", work / f"{name}_sim.yaml", camera=sim_camera, emitters=emitters)
    fit_camera = {k: v for k, v in sim_camera.items() if k != "saturation_adu"}  # the setting not known to the fit
    fit_cfg = yaml_with(EXAMPLES / "2d_gaussian.yaml", work / f"{name}_fit.yaml", camera=fit_camera, emitters=emitters)
    movie = work / name
    cli(src_new, "simulate", str(sim), "--frames", str(frames), "--out", str(movie), "--seed", "3")
    import tifffile

    raw = tifffile.imread(movie / "movie.tif")
    res = {"frames": frames, "photons_range": photons, "level_adu": level,
           "pixels_at_level_percent": 100 * float(np.mean(raw >= level)), "methods": {}}
    for method in ("mle", "network") if model is not None else ("mle",):
        res["methods"][method] = {}
        for tag, src in (("before", src_old), ("after", src_new)):
            out = work / f"{name}_{method}_{tag}.csv"
            opts = (["--method", "mle", "--config", str(fit_cfg)] if method == "mle"
                    else ["--model", str(model), "--device", "cpu", "--camera", str(fit_cfg)])
            stdout, stderr = cli(src, "fit", str(movie / "movie.tif"), *opts, "--out", str(out))
            warned = [ln for ln in stderr.splitlines() if "warning" in ln and ("ADU" in ln)]
            said = [ln for ln in stderr.splitlines() if "saturated_px" in ln and "rows" in ln]
            res["methods"][method][tag] = {"camera_warnings": warned, "fit_line": said, "table": str(out)}
        # the fits are the same: the groups come from the new table (the old one has no column)
        res["methods"][method]["groups"] = groups(work / f"{name}_{method}_after.csv", movie / "truth.csv")
        old = groups(work / f"{name}_{method}_before.csv", movie / "truth.csv")
        res["methods"][method]["before_all"] = old["all"]
        kept = work / f"{name}_{method}_kept.csv"
        cli(src_new, "filter", str(work / f"{name}_{method}_after.csv"), "--out", str(kept), "--no-saturated")
        res["methods"][method]["after_no_saturated"] = groups(kept, movie / "truth.csv")["all"]
    return res


FALSE_ALARM_CODE = textwrap.dedent("""
    import glob, json, sys
    import numpy as np, tifffile
    from plexloc.camera import camera_from_config
    from plexloc.camera.check import clip_level, detect_clip_adu, head_frames
    from plexloc.config import load_config
    out = {}
    for name, folder in json.loads(sys.argv[1]).items():
        cfg = load_config(folder + "/config.yaml")
        files = sorted(glob.glob(folder + "/movie*.tif"))
        rows = []
        for c, f in enumerate(files):
            raw = tifffile.imread(f)
            k = head_frames(raw.shape)
            cam = camera_from_config(cfg.channels[c].camera)
            level, how = clip_level(raw[:k], cam, raw.dtype)
            rows.append({"file": f.rsplit("/", 1)[-1], "max_adu": int(raw.max()), "level": level, "source": how,
                         "pixels_at_level": int((raw >= level - 0.5).sum()) if level is not None else 0,
                         "found": detect_clip_adu(raw, raw.dtype)})
        out[name] = rows
    print(json.dumps(out))
""")


def false_alarms(src_new: Path, work: Path, frames: int) -> dict:
    folders = {}
    for cfg in sorted(EXAMPLES.glob("*.yaml")):
        folder = work / f"ex_{cfg.stem}"
        cli(src_new, "simulate", str(cfg), "--frames", str(frames), "--out", str(folder), "--seed", "0")
        folders[cfg.stem] = str(folder)
    return json.loads(run_py(src_new, FALSE_ALARM_CODE.replace("sys.argv[1]", repr(json.dumps(folders)))))


SPEED_CODE = textwrap.dedent("""
    import json, time, warnings
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)
    method, movie, what = {method!r}, {movie!r}, {what!r}
    if method == "mle":
        from plexloc.config import load_config
        from plexloc.mle import fit_movie
        cfg = load_config(what)
        t0 = time.perf_counter(); table = fit_movie(movie, cfg); dt = time.perf_counter() - t0
        import tifffile
        n = len(tifffile.TiffFile(movie).pages)
        print(json.dumps({{"frames_per_s": n / dt, "rows": len(table)}}))
    else:
        from plexloc.infer import fit_movie
        stats = {{}}
        table = fit_movie(movie, what, stats=stats)
        print(json.dumps({{"frames_per_s": stats["frames_per_s"], "rows": len(table)}}))
""")


def speed(src_old: Path, src_new: Path, work: Path, model: Path | None, repeats: int, frames_mle: int,
          frames_net: int) -> dict:
    sim = yaml_with(EXAMPLES / "2d_gaussian.yaml", work / "speed.yaml", frame_size=[256, 256])
    out = {}
    for method, n in (("mle", frames_mle), ("network", frames_net)):
        if method == "network" and model is None:
            continue
        movie = work / f"speed_{method}"
        cli(src_new, "simulate", str(sim), "--frames", str(n), "--out", str(movie), "--seed", "5")
        what = str(sim) if method == "mle" else str(model)
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(repeats):
            for tag, src in (("before", src_old), ("after", src_new)):
                code = SPEED_CODE.format(method=method, movie=str(movie / "movie.tif"), what=what)
                rates[tag].append(json.loads(run_py(src, code).strip().splitlines()[-1])["frames_per_s"])
        out[method] = {"frames": n, "frame_size": [256, 256], **{f"{k}_frames_per_s": v for k, v in rates.items()},
                       "median_change_percent": 100 * (np.median(rates["after"]) / np.median(rates["before"]) - 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="src folder of the code before (a git worktree's src)")
    ap.add_argument("--after", type=Path, default=HERE / "src")
    ap.add_argument("--model", type=Path, default=None, help="a network run of examples/demo_2d.yaml (plexloc train)")
    ap.add_argument("--out", type=Path, required=True, help="work folder")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--speed-frames", type=int, nargs=2, default=(20, 40), metavar=("MLE", "NET"))
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--skip", nargs="*", default=[], choices=["clip", "false_alarms", "speed"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"model": str(args.model) if args.model else None}
    if "clip" not in args.skip:
        res["clip"] = {name: clip_case(args.before, args.after, args.out, args.frames, args.model, name)
                       for name in args.cases}
    if "false_alarms" not in args.skip:
        res["false_alarms"] = false_alarms(args.after, args.out, 20)
    if "speed" not in args.skip:
        res["speed"] = speed(args.before, args.after, args.out, args.model, args.repeats, *args.speed_frames)
    text = json.dumps(res, indent=1, default=float)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
