"""Frames that do not belong to the movie around them: dropped (blank) frames, saturated frames, shutter or laser
glitches.

One such frame costs a fitter that sees one frame at a time only its own localizations. A network with a temporal
window also predicts the frames next to it from it: a single fully saturated frame in a simulated movie made its
neighbour produce 82 localizations instead of about 7 (bench/RESULTS.md, session 32). :func:`outlier_frames`
finds them from each frame's mean photons per pixel, which the fit gathers as it goes (one number per frame and
channel, no extra pass over the movie):

- the movie's own level at each frame is the running median over :data:`WINDOW` frames (slow changes such as
  bleaching or a drifting focus follow it);
- a frame is an outlier where its mean differs from that level by more than :data:`MIN_RELATIVE` of it **and** by
  more than :data:`MIN_ROBUST_SD` times the robust spread of all frames' differences (blinking and shot noise
  move a frame's mean by a few percent; a dropped frame by 100 %, a saturated one by orders of magnitude).

A finding is a :class:`FrameOutlierWarning` naming the frames and their neighbours.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["FrameOutlierWarning", "MIN_RELATIVE", "MIN_ROBUST_SD", "WINDOW", "frame_outlier_warning", "frame_ranges",
           "outlier_frames"]

#: frames of the running median that gives the movie's level at each frame
WINDOW = 21
#: an outlier differs from the level by more than this share of it ...
MIN_RELATIVE = 0.5
#: ... and by more than this many robust standard deviations of all frames' differences
MIN_ROBUST_SD = 8.0


class FrameOutlierWarning(UserWarning):
    """Single frames unlike the movie around them (blank, saturated, a glitch): their localizations, and with a
    temporal window their neighbours', are suspect."""


def outlier_frames(frame_means: np.ndarray) -> np.ndarray:
    """Indices of the frames whose mean photons per pixel (``(T,)`` or ``(T, C)``: any channel) stand out from the
    running median of the movie (module docstring); ascending."""
    from scipy.ndimage import median_filter

    from plexloc.evaluate.uncertainty import robust_sd

    m = np.asarray(frame_means, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    t = m.shape[0]
    if t < 5:
        return np.zeros(0, dtype=np.int64)
    out = np.zeros(t, dtype=bool)
    for c in range(m.shape[1]):
        v = m[:, c]
        ok = np.isfinite(v)
        if ok.sum() < 5:
            continue
        level = median_filter(np.where(ok, v, np.nanmedian(v)), size=min(WINDOW, t | 1), mode="mirror")
        diff = v - level
        spread = robust_sd(diff[ok])
        out |= ~ok | ((np.abs(diff) > MIN_RELATIVE * np.abs(level)) & (np.abs(diff) > MIN_ROBUST_SD * spread))
    return np.flatnonzero(out)


def frame_ranges(frames: list[int]) -> str:
    """[19, 20, 21, 40] -> ``19-21,40`` (ascending frame numbers), as ``plexloc filter --exclude-frames`` reads them."""
    parts: list[str] = []
    start = prev = None
    for f in frames:
        if start is None:
            start = prev = f
        elif f == prev + 1:
            prev = f
        else:
            parts.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = prev = f
    if start is not None:
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ",".join(parts)


def frame_outlier_warning(frame_means: np.ndarray, *, window: int = 1, source: str = "", warn: bool = True,
                          outliers: np.ndarray | None = None) -> str | None:
    """The message for :func:`outlier_frames` of a fit's frame means (None where there is none), also issued as a
    :class:`FrameOutlierWarning` where ``warn``. ``window``: the network's temporal window (frames), whose
    neighbours of an outlier are named too; ``outliers``: :func:`outlier_frames` of these means where the caller
    has it already."""
    bad = outlier_frames(frame_means) if outliers is None else np.asarray(outliers, dtype=np.int64)
    if not len(bad):
        return None
    m = np.asarray(frame_means, dtype=np.float64).reshape(len(frame_means), -1)
    level = np.nanmedian(m, axis=0)
    shown = ", ".join(f"{int(f)} ({', '.join(f'{v:.3g}' for v in m[f])})" for f in bad[:10]) + (" ..." if len(bad) > 10 else "")
    h = window // 2
    text = (f"{source + ': ' if source else ''}{len(bad)} frame(s) of {len(m)} unlike the movie around them, frame "
            f"(mean photons/px): {shown}, against a median of {', '.join(f'{v:.3g}' for v in level)}: a dropped, blank "
            "or saturated frame, or a glitch. Their localizations are suspect")
    near = sorted({int(f) + d for f in bad for d in range(-h, h + 1) if d and 0 <= int(f) + d < len(m)} - set(bad.tolist()))
    if near:
        shown_near = ", ".join(map(str, near[:10])) + (" ..." if len(near) > 10 else "")
        text += (f", and so are those of frame(s) {shown_near}: the network's temporal window of {window} frames "
                 "predicted them from these too")
    text += f" (plexloc filter LOCS --out OUT --exclude-frames {frame_ranges(sorted(set(bad.tolist()) | set(near)))})"
    if warn:
        warnings.warn(text, FrameOutlierWarning, stacklevel=2)
    return text
