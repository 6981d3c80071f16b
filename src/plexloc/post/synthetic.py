"""Localization tables of known structures, for validating drift correction, merging and FRC.

No camera and no PSF: molecules sit on a structure (lines, rings, clusters or uniformly at random),
blink on for a few consecutive frames per on-event, and every on-frame gives one localization at
the molecule's position plus the stage drift of that frame plus Gaussian noise of the
localization precision ``sigma = psf_sigma_nm / sqrt(photons)`` (the photon-limited term of
Thompson/Mortensen; use ``precision_nm`` for one fixed value). The table carries the truth that
the validations need: ``id`` (molecule), ``event`` (on-event, the unit that merging should
recover), ``x_true_nm``/``y_true_nm``, and the drift that was added (``true_drift_x_nm``, ...).

Example:
    >>> import numpy as np
    >>> mol = structure_points("rings", 50, fov_nm=5000.0, rng=np.random.default_rng(0))
    >>> t = blinking_table(mol, n_frames=200, rng=np.random.default_rng(1))
    >>> int(t["event"].max()) + 1 >= len(mol), set(np.unique(t["id"])) <= set(range(len(mol)))
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["STRUCTURES", "blinking_table", "linear_drift", "structure_points", "with_fiducials", "wobbly_drift"]

STRUCTURES = ("lines", "rings", "clusters", "uniform")


def structure_points(kind: str, n: int, *, fov_nm: float, rng: np.random.Generator, n_lines: int | None = None,
                     z_range_nm: tuple[float, float] | None = None) -> np.ndarray:
    """``(n, 2)`` molecule positions (nm) on a structure inside ``[0, fov_nm)²``; ``(n, 3)`` with ``z_range_nm``.

    ``lines``: random straight filaments (100 nm to 0.6 fov long); ``rings``: 120 nm diameter
    rings (nuclear-pore-like, 8 corners of 2 molecules jittered by 5 nm); ``clusters``: Gaussian
    clusters of 30 nm σ; ``uniform``: complete spatial randomness.

    ``n_lines``: the number of filaments (``lines``); default ``max(n // 200, min(5, n // 40), 1)``: 200 molecules a
    line from 1,000 molecules up (as before), and at least 5 lines of 40 or more molecules from 200 (``n // 200``
    alone put 300 molecules on one line).

    ``z_range_nm = (lo, hi)``: a third column, z (nm), drawn after the lateral positions (which are then the same as
    without it): each filament runs straight between two random depths in the range, each ring lies at one random
    depth, each cluster's centre is at one (the molecules 30 nm around it, clipped to the range), uniform points
    anywhere in it.
    """
    if kind not in STRUCTURES:
        raise InputError(f"structure {kind!r} unknown; choose one of {', '.join(STRUCTURES)}")
    margin = 0.1 * fov_nm
    z_lo, z_hi = (0.0, 0.0) if z_range_nm is None else (float(z_range_nm[0]), float(z_range_nm[1]))

    def with_z(pts: np.ndarray, z: Callable[[], np.ndarray]) -> np.ndarray:
        return pts if z_range_nm is None else np.column_stack([pts, np.clip(z(), z_lo, z_hi)])

    if kind == "uniform":
        return with_z(rng.uniform(0, fov_nm, (n, 2)), lambda: rng.uniform(z_lo, z_hi, n))
    if kind == "lines":
        n_lines = max(n // 200, min(5, n // 40), 1) if n_lines is None else int(n_lines)
        if n_lines < 1:
            raise InputError(f"n_lines must be >= 1, got {n_lines}")
        start = rng.uniform(margin, fov_nm - margin, (n_lines, 2))
        angle = rng.uniform(0, np.pi, n_lines)
        length = rng.uniform(100.0, 0.6 * fov_nm, n_lines)
        which = rng.integers(0, n_lines, n)
        u = rng.uniform(0, 1, n)
        t = u * length[which]
        pts = start[which] + t[:, None] * np.stack([np.cos(angle[which]), np.sin(angle[which])], axis=1)
        pts = np.clip(pts + rng.normal(0, 4.0, (n, 2)), 0, fov_nm - 1e-6)

        def line_z() -> np.ndarray:
            ends = rng.uniform(z_lo, z_hi, (n_lines, 2))
            return ends[which, 0] + u * (ends[which, 1] - ends[which, 0]) + rng.normal(0, 4.0, n)

        return with_z(pts, line_z)
    if kind == "rings":
        n_rings = max(1, n // 16)
        centre = rng.uniform(margin, fov_nm - margin, (n_rings, 2))
        which = np.arange(n) % n_rings
        corner = rng.integers(0, 8, n)
        phi = corner * (np.pi / 4) + rng.uniform(0, 2 * np.pi, n_rings)[which]
        pts = centre[which] + 60.0 * np.stack([np.cos(phi), np.sin(phi)], axis=1)
        return with_z(pts + rng.normal(0, 5.0, (n, 2)),
                      lambda: rng.uniform(z_lo, z_hi, n_rings)[which] + rng.normal(0, 5.0, n))
    n_cl = max(1, n // 50)
    centre = rng.uniform(margin, fov_nm - margin, (n_cl, 2))
    which = rng.integers(0, n_cl, n)
    return with_z(centre[which] + rng.normal(0, 30.0, (n, 2)),
                  lambda: rng.uniform(z_lo, z_hi, n_cl)[which] + rng.normal(0, 30.0, n))


def linear_drift(n_frames: int, total_nm: tuple[float, float, float] = (100.0, -60.0, 0.0)) -> np.ndarray:
    """``(n_frames, 3)`` drift growing linearly from 0 to ``total_nm``."""
    t = np.linspace(0.0, 1.0, n_frames)[:, None]
    return t * np.asarray(total_nm, dtype=float)[None, :]


def settling_drift(n_frames: int, tau: float = 0.2) -> np.ndarray:
    """``(n_frames, 3)`` drift that settles: an exponential approach (time constant ``tau`` of the movie) to
    (120, -70) nm, plus a slow linear 20 nm in x (z = 0); the bend a curve through a few windows misses."""
    t = np.linspace(0.0, 1.0, n_frames)
    settle = 1.0 - np.exp(-t / tau)
    return np.stack([120.0 * settle + 20.0 * t, -70.0 * settle, np.zeros(n_frames)], axis=1)


def wobbly_drift(n_frames: int, amplitude_nm: float = 100.0, *, rng: np.random.Generator) -> np.ndarray:
    """``(n_frames, 3)`` smooth, non-linear lateral drift of about ``amplitude_nm`` over the movie (z = 0).

    A linear trend plus a slow sinusoid with random phase, so that a purely linear fit would fail.
    """
    t = np.linspace(0.0, 1.0, n_frames)
    phase = rng.uniform(0, 2 * np.pi, 2)
    dx = amplitude_nm * (0.8 * t + 0.2 * np.sin(2 * np.pi * 1.3 * t + phase[0]) - 0.2 * np.sin(phase[0]))
    dy = amplitude_nm * (-0.5 * t + 0.25 * np.sin(2 * np.pi * 0.7 * t + phase[1]) - 0.25 * np.sin(phase[1]))
    return np.stack([dx, dy, np.zeros(n_frames)], axis=1)


def blinking_table(
    molecules_nm: np.ndarray,
    *,
    n_frames: int,
    rng: np.random.Generator,
    events_per_molecule: float = 3.0,
    mean_on_frames: float = 2.5,
    mean_photons: float = 2000.0,
    psf_sigma_nm: float = 130.0,
    precision_nm: float | None = None,
    precision_z_nm: float | None = None,
    drift_nm: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    max_events: int | None = None,
) -> LocTable:
    """One localization per on-frame of every on-event of every molecule.

    Args:
        molecules_nm: ``(M, 2)`` positions (nm), or ``(M, 3)`` with z (``structure_points(z_range_nm=...)``).
        n_frames: movie length.
        rng: the random generator (the only source of randomness).
        events_per_molecule: mean number of on-events per molecule (Poisson, at least 1).
        mean_on_frames: mean on-time of an event in frames (geometric, >= 1).
        mean_photons: mean photons per on-frame (exponential, floored at 100).
        psf_sigma_nm: PSF σ for the precision ``psf_sigma_nm / sqrt(photons)``.
        precision_nm: one fixed precision instead (``photons`` still drawn).
        precision_z_nm: the axial precision, a fixed value (an astigmatic fit: 2-5x the lateral); z is the
            molecule's z (0 for ``(M, 2)`` molecules) plus Gaussian noise of it, drawn after everything else (so the
            other columns are as without it). None: no z noise.
        drift_nm: ``(n_frames, 3)`` drift added to every localization of that frame, or a function of
            the frame indices; None for no drift.
        max_events: cap on the number of on-events (to size tables exactly).

    Returns:
        table with ``frame, x_nm, y_nm, z_nm (0 for 2D molecules), photons, sigma_x_nm, sigma_y_nm, id, event,
        x_true_nm, y_true_nm`` (``z_true_nm`` for 3D molecules, ``sigma_z_nm`` with ``precision_z_nm``) and,
        with drift, ``true_drift_x_nm, true_drift_y_nm, true_drift_z_nm``. Rows are
        sorted by frame. Events of one molecule never overlap in time (they are placed one after
        the other with off-times of at least 2 frames).
    """
    mol = np.asarray(molecules_nm, dtype=float)
    m = len(mol)
    n_ev = np.maximum(1, rng.poisson(events_per_molecule, m))
    ev_mol = np.repeat(np.arange(m), n_ev)
    if max_events is not None and len(ev_mol) > max_events:
        ev_mol = np.sort(rng.choice(ev_mol, max_events, replace=False))
    n_events = len(ev_mol)
    dur = rng.geometric(1.0 / mean_on_frames, n_events)
    # place the events of each molecule in order with off-gaps, then shift the whole molecule randomly
    gap = 2 + rng.geometric(1.0 / max(3.0, n_frames / (events_per_molecule + 1) / 2), n_events)
    step = dur + gap
    first = np.r_[True, ev_mol[1:] != ev_mol[:-1]]
    csum = np.cumsum(step)
    base = csum - step
    group_start = np.maximum.accumulate(np.where(first, base, 0))
    rel_start = base - group_start
    span_end = np.zeros(m)
    np.maximum.at(span_end, ev_mol, rel_start + dur)
    slack = np.maximum(n_frames - span_end, 0.0)
    shift = np.floor(rng.uniform(0, 1, m) * (slack + 1)).astype(np.int64)
    start = rel_start + shift[ev_mol]
    # expand events into on-frames
    row_event = np.repeat(np.arange(n_events), dur)
    offset = np.arange(len(row_event)) - np.repeat(np.cumsum(dur) - dur, dur)
    frame = start[row_event] + offset
    keep = frame < n_frames
    row_event, frame = row_event[keep], frame[keep].astype(np.int64)
    n = len(frame)
    # renumber events so that event ids are 0..E-1 over the events that kept at least one frame
    used, row_event = np.unique(row_event, return_inverse=True)
    ids = ev_mol[used][row_event]
    photons = np.maximum(100.0, rng.exponential(mean_photons, n))
    sigma = np.full(n, float(precision_nm)) if precision_nm is not None else psf_sigma_nm / np.sqrt(photons)
    xt, yt = mol[ids, 0], mol[ids, 1]
    zt = mol[ids, 2] if mol.shape[1] > 2 else np.zeros(n)
    cols = {
        "frame": frame,
        "x_nm": xt + rng.normal(0, 1, n) * sigma,
        "y_nm": yt + rng.normal(0, 1, n) * sigma,
        "z_nm": zt.copy(),
        "photons": photons,
        "sigma_x_nm": sigma,
        "sigma_y_nm": sigma,
        "id": ids,
        "event": row_event,
        "x_true_nm": xt,
        "y_true_nm": yt,
    }
    if mol.shape[1] > 2:
        cols["z_true_nm"] = zt
    if precision_z_nm is not None:
        cols["z_nm"] = cols["z_nm"] + rng.normal(0, float(precision_z_nm), n)
        cols["sigma_z_nm"] = np.full(n, float(precision_z_nm))
    if drift_nm is not None:
        d = drift_nm(frame) if callable(drift_nm) else np.asarray(drift_nm, dtype=float)[frame]
        cols["x_nm"] = cols["x_nm"] + d[:, 0]
        cols["y_nm"] = cols["y_nm"] + d[:, 1]
        cols["z_nm"] = cols["z_nm"] + d[:, 2]
        cols["true_drift_x_nm"], cols["true_drift_y_nm"], cols["true_drift_z_nm"] = d[:, 0], d[:, 1], d[:, 2]
    return LocTable(cols).sort_by_frame()


def with_fiducials(
    table: LocTable,
    n: int,
    *,
    n_frames: int,
    fov_nm: float,
    rng: np.random.Generator,
    drift_nm: np.ndarray | None = None,
    precision_nm: float = 3.0,
    precision_z_nm: float | None = None,
    presence: float = 0.9,
    photons: float = 50000.0,
    last_frames: list[int | None] | None = None,
    own_motion_nm: list[np.ndarray | None] | None = None,
    positions_nm: np.ndarray | None = None,
) -> LocTable:
    """``table`` (of :func:`blinking_table`) with ``n`` fiducial markers added: bright, always-on emitters localized in
    a random ``presence`` share of the frames (each frame drawn independently), at fixed positions plus the stage drift
    plus Gaussian noise of ``precision_nm`` (``precision_z_nm`` in z, where the table has z; z 0 otherwise).

    Args:
        positions_nm: ``(n, 2)`` (or ``(n, 3)``) positions; default uniform in ``[0.1, 0.9) fov_nm``, z 0.
        last_frames: per fiducial the last frame it is localized in (it bleaches after), None: to the end.
        own_motion_nm: per fiducial an ``(n_frames, 3)`` motion of its own added to the drift (one that detached), or
            None.

    Its rows have ``id`` ``-1 - k`` (fiducial k), ``event`` -1, the truth columns of the table (``x_true_nm``: its
    position; ``true_drift_*``: the stage drift), ``photons`` about ``photons`` (10 % spread) and ``sigma_x_nm`` etc.
    the precision; sorted by frame with the rest.
    """
    if positions_nm is None:
        pos = np.column_stack([rng.uniform(0.1 * fov_nm, 0.9 * fov_nm, (n, 2)), np.zeros(n)])
    else:
        pos = np.asarray(positions_nm, dtype=float)
        pos = np.column_stack([pos, np.zeros(len(pos))]) if pos.shape[1] == 2 else pos
    drift = np.zeros((n_frames, 3)) if drift_nm is None else np.asarray(drift_nm, dtype=float)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in table.columns}
    for k in range(n):
        last = n_frames - 1 if last_frames is None or last_frames[k] is None else int(last_frames[k])
        frame = np.flatnonzero(rng.uniform(0, 1, n_frames) < presence)
        frame = frame[frame <= last]
        m = len(frame)
        motion = drift[frame].copy()
        if own_motion_nm is not None and own_motion_nm[k] is not None:
            motion += np.asarray(own_motion_nm[k], dtype=float)[frame]
        noise = rng.normal(0, precision_nm, (m, 2))
        z_noise = rng.normal(0, precision_z_nm, m) if precision_z_nm is not None else np.zeros(m)
        values = {
            "frame": frame,
            "x_nm": pos[k, 0] + motion[:, 0] + noise[:, 0],
            "y_nm": pos[k, 1] + motion[:, 1] + noise[:, 1],
            "z_nm": pos[k, 2] + motion[:, 2] + z_noise,
            "photons": photons * (1.0 + 0.1 * rng.normal(0, 1, m)),
            "sigma_x_nm": np.full(m, precision_nm),
            "sigma_y_nm": np.full(m, precision_nm),
            "sigma_z_nm": np.full(m, np.nan if precision_z_nm is None else precision_z_nm),
            "id": np.full(m, -1 - k),
            "event": np.full(m, -1),
            "x_true_nm": np.full(m, pos[k, 0]),
            "y_true_nm": np.full(m, pos[k, 1]),
            "z_true_nm": np.full(m, pos[k, 2]),
            "true_drift_x_nm": drift[frame, 0],
            "true_drift_y_nm": drift[frame, 1],
            "true_drift_z_nm": drift[frame, 2],
        }
        for c in cols:
            if c not in values:
                raise InputError(f"with_fiducials: the table's column {c!r} has no value for a fiducial's rows")
            cols[c].append(values[c])
    out = LocTable({c: np.concatenate([table[c], *v]) for c, v in cols.items()}, source=table.source)
    return out.sort_by_frame()
