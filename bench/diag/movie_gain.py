"""Diagnosis of the movie method's gain bias (plexloc calibrate-camera, :func:`movie_transfer`): small numpy
movies with known answers, the method taken apart.

Cameras: ``scmos`` (Poisson + N(0, 1.5 e-) read noise, 0.5 e-/ADU, one gain for every pixel), ``emccd`` (the SMLM
Challenge EMCCD: Poisson -> Gamma(n, 300) -> + N(0, 74.4 e-), 45 e-/ADU, clock-induced charge 0.002 e-), ``gauss``
(Gaussian noise of the EMCCD's mean and variance at every pixel: what the old clipping correction assumes).
Light: 80 photons/px times a Gaussian beam (``None``: uniform; waist 0.5: corners at 37 % of the centre; 0.35: 13 %),
optional single-frame emitters (1000-5000 photons, sigma 1.3 px) at ``density`` per um^2 (100 nm pixels).

Variants of the estimator (``VARIANTS``):

- ``old``: the code before session 35b (per pair, pixels whose pair mean is below the pair's median over the window;
  bins by that pair mean; each bin's difference variance clipped at 3.5 robust sd, divided by a Gaussian's clipping
  factor; a line through the origin);
- ``old-noclip``: the same selection and bins, no clipping;
- ``all-noclip``: every pixel and pair, bins by the pair mean, no clipping (no selection at all);
- ``all-ratio``: every pixel and pair, the summed excess variance over the summed signal (no bins);
- ``new``: :func:`plexloc.camera.calibration.movie_transfer` as it is now (session 35b: pairs chosen by the
  neighbouring pixels, binned by each pixel's median level).

    PYTHONPATH=src python bench/diag/movie_gain.py --seeds 6    # two tables, about 150 s on one thread
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from plexloc.camera.calibration import _gaussian_clip_factor, movie_transfer, stack_stats
from plexloc.camera.synthetic import spotted_light
from plexloc.evaluate.uncertainty import robust_sd

H = W = 64
CAMS = {
    "scmos": dict(qe=0.8, gain=0.5, read=1.5, em=None, cic=0.0),
    "emccd": dict(qe=0.9, gain=45.0, read=74.4, em=300.0, cic=0.002),
}


def true_slope(cam: str) -> float:
    c = CAMS["emccd" if cam == "gauss" else cam]
    return 1.0 / c["gain"] if c["em"] is None else 2.0 * c["em"] / c["gain"]


def light(rng, n: int, bg: float, waist: float | None, density: float) -> np.ndarray:
    return spotted_light(rng, n, (H, W), bg=bg, waist=waist, density=density)


def camera(rng, cam: str, lam: np.ndarray) -> np.ndarray:
    """ADU frames of expected photons ``lam`` (offset 100 ADU, rounded)."""
    if cam == "gauss":  # the EMCCD's mean and variance, Gaussian
        c = CAMS["emccd"]
        e = c["qe"] * lam + c["cic"]
        mean = e * c["em"]
        sd = np.sqrt(2.0 * e * c["em"] ** 2 + c["read"] ** 2)
        return np.round((mean + sd * rng.standard_normal(lam.shape)) / c["gain"] + 100.0)
    c = CAMS[cam]
    n = rng.poisson(c["qe"] * lam + c["cic"])
    if c["em"] is not None:
        out = rng.gamma(np.maximum(n, 1e-300), c["em"]) * (n > 0)
    else:
        out = n.astype(float)
    return np.round((out + c["read"] * rng.standard_normal(lam.shape)) / c["gain"] + 100.0)


def old_like(x: np.ndarray, off: np.ndarray, rvar: np.ndarray, *, select: bool, clip: bool, ratio: bool = False,
             bins: int = 12) -> float:
    """The pre-35b movie_transfer's slope, with its selection and clipping switched on or off."""
    m = (x[:-1] + x[1:]) / 2.0 - off
    d = (x[:-1] - x[1:]) / math.sqrt(2.0)
    d -= np.median(d.reshape(len(d), -1), axis=1)[:, None, None]
    keep = (m <= np.quantile(m.reshape(len(m), -1), 0.5, axis=1)[:, None, None]) if select else np.ones(m.shape, bool)
    s, d, r = m[keep], d[keep], np.broadcast_to(rvar, m.shape)[keep]
    if ratio:
        return float(np.sum(d * d - r) / np.sum(s))
    edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, bins + 1)))
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 2)
    factor = _gaussian_clip_factor(3.5) if clip else 1.0
    ss, ee, cc = [], [], []
    for k in range(len(edges) - 1):
        sel = idx == k
        dk = d[sel]
        inside = np.abs(dk - np.median(dk)) <= 3.5 * robust_sd(dk) if clip else np.ones(len(dk), bool)
        ss.append(s[sel].mean()), ee.append(np.var(dk[inside]) / factor - r[sel].mean()), cc.append(sel.sum())
    s_, e_, c_ = map(np.array, (ss, ee, cc))
    w = c_ / np.maximum(e_ + r.mean(), 1e-12) ** 2
    return float(np.sum(w * s_ * e_) / np.sum(w * s_ * s_))


VARIANTS = {
    "old": lambda x, o, r: old_like(x, o, r, select=True, clip=True),
    "old-noclip": lambda x, o, r: old_like(x, o, r, select=True, clip=False),
    "all-noclip": lambda x, o, r: old_like(x, o, r, select=False, clip=False),
    "all-ratio": lambda x, o, r: old_like(x, o, r, select=False, clip=False, ratio=True),
    "new": lambda x, o, r: movie_transfer([x], o, r).slope,
}


def conditional(cam: str, seed: int, n: int = 300) -> list[tuple[float, float, float]]:
    """Uniform light, no emitters: the difference variance per bin of the pair mean (old binning, every pair) against
    the true transfer line at that bin's mean: (signal, measured var, line var)."""
    rng = np.random.default_rng(seed)
    x = camera(rng, cam, light(rng, n, 80.0, None, 0.0))
    m = (x[:-1] + x[1:]) / 2.0 - 100.0
    d = (x[:-1] - x[1:]) / math.sqrt(2.0)
    q = np.quantile(m, [0.02, 0.16, 0.5, 0.84, 0.98])
    out = []
    for lo, hi in zip(q[:-1], q[1:]):
        sel = (m >= lo) & (m < hi)
        out.append((float(m[sel].mean()), float(d[sel].var()), float(m[sel].mean() * true_slope(cam))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print("## conditional variance of the pair difference given the pair mean (uniform light, no emitters, seed 0)")
    print("| camera | pair-mean bin (ADU above offset) | var((a-b)/sqrt2) ADU^2 | true transfer at that mean | ratio |")
    print("|---|---|---|---|---|")
    for cam in ("scmos", "emccd", "gauss"):
        for s, v, line in conditional(cam, 0):
            print(f"| {cam} | {s:.1f} | {v:.1f} | {line:.1f} | {v / line:.3f} |")
    print("\n## gain (e_per_adu) error %, mean +- sd over seeds (e_per_adu error = true slope / measured - 1)")
    print("| camera | beam | emitters/um^2 | " + " | ".join(VARIANTS) + " |")
    print("|---|---|---|" + "---|" * len(VARIANTS))
    for cam in ("scmos", "emccd", "gauss"):
        dark = None
        for waist, density in ((None, 0.0), (0.5, 0.0), (0.35, 0.0), (None, 0.1), (0.5, 0.1), (0.35, 0.1)):
            if cam == "gauss" and waist is not None:
                continue
            errs = {k: [] for k in VARIANTS}
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                if dark is None:
                    dark = stack_stats([camera(np.random.default_rng(999), cam, np.zeros((300, H, W)))])
                x = camera(rng, cam, light(rng, args.frames, 80.0, waist, density))
                for k, f in VARIANTS.items():
                    errs[k].append(100.0 * (true_slope(cam) / f(x, dark.mean, dark.read_variance) - 1.0))
            beam_s = "uniform" if waist is None else f"waist {waist:g}"
            print(f"| {cam} | {beam_s} | {density:g} | "
                  + " | ".join(f"{np.mean(v):+.2f} +- {np.std(v, ddof=1):.2f}" for v in errs.values()) + " |")
            sys.stdout.flush()
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
