"""Fit a movie with a trained localizer: TIFF (streamed) or frames in memory in, localization table out."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from plexloc._call import as_device, keyword_defaults
from plexloc.camera import Camera, camera_from_config
from plexloc.camera.models import cut_maps_to_movie, model_camera
from plexloc.config.models import CameraConfig
from plexloc.errors import InputError
from plexloc.camera.check import NOISE_FRAMES, clip_threshold_photons, piled_up_level  # noqa: F401 (its home was here)
from plexloc.infer._memory import release_free_heap
from plexloc.infer.extract import Extracted
from plexloc.infer.predict import Predictor, iter_frame_blocks
from plexloc.config.models import SplitViewConfig
from plexloc.io.prefetch import prefetch
from plexloc.io.pixel_size import recorded_pixel_size, warn_pixel_size
from plexloc.io.splitview import check_boxes, split_frames
from plexloc.io.tiff import CHUNK_PIXELS, MovieReader, channel_movies, frames_per_chunk, open_channel_movie
from plexloc.nets.io import load_model
from plexloc.nets.localizer import Localizer
from plexloc.table import REQUIRED_COLUMNS, LocTable

#: the heap is handed back to the system (:func:`~plexloc.infer._memory.release_free_heap`) once per this many pixels of
#: blocks fitted on the CPU (a block of 1000 x 1000 frames: every block): once per block of 64 x 64 frames took 0.9 s
#: of a 5-s fit
TRIM_PIXELS = 2**22


#: side (px) of the square around a network localization's pixel, in each channel, whose raw pixels ``saturated_px``
#: counts at the clipping level: a clipped spot's peak lies within a pixel of its position, and a clipped neighbour
#: this close overlaps the spot (the MLE's smallest window, :data:`plexloc.mle.pipeline.DEFAULT_MIN_ROI_PX`)
SPOT_PX = 7


def to_table(ex: Extracted, frames: np.ndarray, model: Localizer, saturated: np.ndarray | None = None) -> LocTable:
    """Localization table (conventions.md columns) from extracted localizations; ``frames[sample]`` is the frame.
    ``saturated``: each row's ``saturated_px`` (:func:`clipped_near`); zeros where not given."""
    spec = model.spec
    sample = ex.sample.cpu().numpy()
    f = lambda t: t.detach().float().cpu().numpy().astype(np.float64)  # noqa: E731
    phot = f(ex.photons)
    sig = f(ex.sigma)
    bg = f(ex.bg)
    cols: dict[str, np.ndarray] = {
        "frame": frames[sample].astype(np.int64),
        "x_nm": f(ex.x_nm),
        "y_nm": f(ex.y_nm),
        "z_nm": f(ex.z_nm),
        "photons": phot.sum(axis=1),
        "prob": f(ex.prob),
        "bg": bg[:, 0],
        "sigma_x_nm": sig[:, 0],
        "sigma_y_nm": sig[:, 1],
    }
    if spec.is_3d:
        cols["sigma_z_nm"] = sig[:, 2]
    if spec.n_photons == 1:
        cols["sigma_photons"] = sig[:, 3]
    else:  # independent photons per channel: the total's sigma from the per-channel sigmas
        cols["sigma_photons"] = np.sqrt((sig[:, 3:] ** 2).sum(axis=1))
        for c in range(spec.n_photons):
            cols[f"photons_ch{c}"] = phot[:, c]
            cols[f"sigma_photons_ch{c}"] = sig[:, 3 + c]
    if spec.n_channels > 1:
        for c in range(spec.n_channels):
            cols[f"bg_ch{c}"] = bg[:, c]
    cols["saturated_px"] = (np.zeros(len(sample), np.int64) if saturated is None
                            else np.asarray(saturated, np.int64))
    return LocTable(cols)


#: a 3D network's row is *at the edge* of the model's z range (the training configuration's ``emitters.z_range_nm``)
#: where its z lies within this many nm of an end of it, or beyond it (the network's tanh band reaches 20 % of the
#: range's half-width further: ``LocalizerSpec.z_scale_nm`` is 0.6 times the range's width). bench/zedge42.py: a 13-min
#: CPU model (+-500 nm, JI 76 %) put 0.28 % and 0.39 % of two movies of emitters spread over its range here, 2.00 % of
#: a movie spread over +-750 nm and 1.26 % of one over +-1000 nm (those far beyond are folded back inside); within
#: 10 nm 0.10-0.17 % against 0.88 % and 0.62 %, within 50 nm 1.97-2.24 % against 7.58 % and 5.99 %
Z_EDGE_MARGIN_NM = 20.0
#: the share of rows at the edge that emitters inside the range give, where the model's validation recorded none
#: (``meta["validation"]["z_edge_share"]``): bench/zedge42.py's in-range movies, 0.20 % and 0.28 % after 1,800 and
#: 2,541 steps, 0.39 % on a second movie (the alarm, 3 times this, is 0.9 %)
Z_EDGE_IN_RANGE_SHARE = 0.003
#: the model's validation share is the baseline where it counted at least this many rows (about 10 at the edge at
#: 0.3 %), and no lower than Z_EDGE_MIN_SHARE
Z_EDGE_MIN_VALIDATION_ROWS = 3000
Z_EDGE_MIN_SHARE = 0.001
#: warn where the share at the edge is above this many times the in-range share, and at least Z_EDGE_MIN_ROWS rows
Z_EDGE_ALARM_FACTOR = 3.0
Z_EDGE_MIN_ROWS = 20


def model_z_range(spec, cfg: dict | None = None) -> tuple[float, float] | None:
    """The z range (nm) a 3D model was trained on: its training configuration's ``emitters.z_range_nm``, else the
    range its output band implies (``make_spec``: centre +- ``z_scale_nm`` / 1.2); None for a 2D model."""
    if not spec.is_3d:
        return None
    zr = ((cfg or {}).get("emitters") or {}).get("z_range_nm")
    if zr is not None and len(zr) == 2 and float(zr[1]) > float(zr[0]):
        return float(zr[0]), float(zr[1])
    half = float(spec.z_scale_nm) / 1.2
    return float(spec.z_center_nm) - half, float(spec.z_center_nm) + half


def count_z_edge(z_nm: np.ndarray, z_range_nm: tuple[float, float], margin_nm: float = Z_EDGE_MARGIN_NM
                 ) -> tuple[int, int]:
    """``(at_edge, beyond)``: the rows whose z lies within ``margin_nm`` of an end of ``z_range_nm`` or beyond it,
    and those beyond it alone."""
    z = np.asarray(z_nm, dtype=np.float64)
    lo, hi = z_range_nm
    beyond = (z > hi) | (z < lo)
    return int(np.count_nonzero(beyond | (z >= hi - margin_nm) | (z <= lo + margin_nm))), int(np.count_nonzero(beyond))


@dataclass
class ZEdgeReport:
    """How many of a 3D network fit's rows (before the filters) have z at the edge of the model's z range.

    A network places z in a band set by its training range (``z_center_nm +- z_scale_nm``, 1.2 times the range):
    emitters beyond the range are put near its end or folded back inside it, with a larger ``sigma_z_nm``
    (bench/zedge42.py: a +-500-nm model on emitters over +-1000 nm; its beyond-range rows landed at |z| 56-468 nm,
    5-95 %, errors -408 nm median towards the centre, sigma_z 114 nm against 48 nm inside). Their pile-up at the
    range's ends is what the fit can see: ``at_edge`` rows within ``margin_nm`` of an end or beyond it, against the
    share that emitters inside the range give (``baseline_share``); ``warning`` where it is well above it."""

    z_range_nm: tuple[float, float]
    band_nm: tuple[float, float]
    margin_nm: float
    rows: int
    at_edge: int
    beyond: int
    baseline_share: float
    baseline_source: str
    warning: str | None = None

    @property
    def share(self) -> float:
        return self.at_edge / self.rows if self.rows else 0.0

    @property
    def alarm_share(self) -> float:
        return Z_EDGE_ALARM_FACTOR * self.baseline_share

    def to_dict(self) -> dict:
        """JSON-safe (``plexloc process``'s summary)."""
        return {"z_range_nm": list(self.z_range_nm), "band_nm": list(self.band_nm), "margin_nm": self.margin_nm,
                "rows": self.rows, "at_edge": self.at_edge, "beyond": self.beyond, "share": self.share,
                "baseline_share": self.baseline_share, "baseline_source": self.baseline_source,
                "alarm_share": self.alarm_share, "warning": self.warning}

    def count_line(self) -> str:
        lo, hi = self.z_range_nm
        return (f"{self.at_edge} of {self.rows} rows ({100 * self.share:.2f} %) have z within {self.margin_nm:g} nm of "
                f"an end of the model's z range {lo:g}..{hi:g} nm or beyond it ({self.beyond} beyond); emitters "
                f"inside the range give about {100 * self.baseline_share:.2f} % ({self.baseline_source})")


def z_edge_report(rows: int, at_edge: int, beyond: int, z_range_nm: tuple[float, float], band_nm: tuple[float, float],
                  *, margin_nm: float = Z_EDGE_MARGIN_NM, meta: dict | None = None) -> ZEdgeReport:
    """The :class:`ZEdgeReport` of the counts (:func:`count_z_edge`). The in-range share is the model's validation's
    (``meta["validation"]["z_edge_share"]`` of at least :data:`Z_EDGE_MIN_VALIDATION_ROWS` rows, no lower than
    :data:`Z_EDGE_MIN_SHARE`; training records it since session 42), else :data:`Z_EDGE_IN_RANGE_SHARE`; a warning
    where more than :data:`Z_EDGE_ALARM_FACTOR` times it, and at least :data:`Z_EDGE_MIN_ROWS` rows, are at the edge."""
    val = (meta or {}).get("validation") or {}
    v, n_val = val.get("z_edge_share"), val.get("z_edge_rows")
    if v is not None and np.isfinite(v) and n_val is not None and n_val >= Z_EDGE_MIN_VALIDATION_ROWS:
        # a share of a few rows is noise: no lower than Z_EDGE_MIN_SHARE
        base, source = max(float(v), Z_EDGE_MIN_SHARE), f"the model's validation set, {int(n_val)} rows"
    else:
        base, source = Z_EDGE_IN_RANGE_SHARE, "measured on a model of this kind, bench/zedge42.py"
    rep = ZEdgeReport((float(z_range_nm[0]), float(z_range_nm[1])), (float(band_nm[0]), float(band_nm[1])),
                      float(margin_nm), int(rows), int(at_edge), int(beyond), base, source)
    if rows and at_edge >= Z_EDGE_MIN_ROWS and rep.share > rep.alarm_share:
        lo, hi = rep.z_range_nm
        rep.warning = (
            f"{at_edge} of {rows} localizations ({100 * rep.share:.1f} %) have z within {margin_nm:g} nm of an end of "
            f"the model's z range, {lo:g}..{hi:g} nm (its training emitters.z_range_nm), or beyond it: "
            f"{rep.share / base:.0f} times the {100 * base:.2f} % that emitters inside the range give. The sample "
            "probably holds emitters beyond that range (a thicker sample, the focus elsewhere): the network cannot "
            "place them there and puts them near the range's end or folds them back inside it (with a larger "
            "sigma_z), so dropping the rows at the edge does not remove them all. Fit this movie with a model trained "
            "with an emitters.z_range_nm that covers the sample's depth")
    return rep


def clipped_near(frames: torch.Tensor, ex: Extracted, thresholds: Sequence[torch.Tensor | None],
                 transforms: Sequence[torch.Tensor | None] | None = None, *, px_size_nm: tuple[float, float] = (100.0, 100.0),
                 spot_px: int = SPOT_PX) -> np.ndarray:
    """Pixels at the clipping level around each localization (``saturated_px``), summed over the channels: in each
    channel the ``spot_px`` square centred on the localization's pixel (shifted to stay inside the frame), read from
    the photon frames ``frames`` (n, C, H, W; ``ex.sample`` indexes n) and compared with the channel's
    :func:`~plexloc.camera.check.clip_threshold_photons` (None: not counted). ``transforms``: channel c's position
    is ``T_c`` (at the ROI, nm) of the reference one; None or a None entry: the reference pixel. ``(N,)`` int64."""
    from plexloc.camera.check import count_clipped

    n = len(ex)
    if not n or all(t is None for t in thresholds):
        return np.zeros(n, np.int64)
    H, W = frames.shape[-2:]
    R = min(int(spot_px), H, W)
    off = torch.arange(R, device=frames.device)
    sample = ex.sample.to(frames.device)
    total = torch.zeros(n, dtype=torch.int64, device=frames.device)
    for c, thr in enumerate(thresholds):
        if thr is None:
            continue
        t = transforms[c] if transforms is not None and c < len(transforms) else None
        if t is None:
            row, col = ex.pixel_row.to(frames.device), ex.pixel_col.to(frames.device)
        else:
            t = t.to(frames.device, torch.float64)
            x, y = ex.x_nm.to(frames.device, torch.float64), ex.y_nm.to(frames.device, torch.float64)
            w = t[2, 0] * x + t[2, 1] * y + t[2, 2]
            col = torch.floor((t[0, 0] * x + t[0, 1] * y + t[0, 2]) / w / px_size_nm[0]).to(torch.int64)
            row = torch.floor((t[1, 0] * x + t[1, 1] * y + t[1, 2]) / w / px_size_nm[1]).to(torch.int64)
        rows = (row - R // 2).clamp(0, H - R)[:, None, None] + off[None, :, None]
        cols = (col - R // 2).clamp(0, W - R)[:, None, None] + off[None, None, :]
        win = frames[sample[:, None, None], c, rows, cols]
        total += count_clipped(win, thr.to(frames.device), rows, cols)
    return total.cpu().numpy()


class RoiOffsetWarning(UserWarning):
    """The channel movies' metadata place their ROIs at different chip positions."""


class FrameSizeWarning(UserWarning):
    """Frames too narrow for the network to see a spot in, or tiles so small that the fit is many times slower."""


#: frame sides (px) under which the network finds few emitters: strips cut from a 1/um^2 movie of the demo network
#: gave recall 0.69 at 3 and 5 px wide, 0.375 at 2 px, none at 1 px (bench/tiles50.json, "small"); training
#: simulations are at least 4 px (``simulation.frame_size``)
MIN_FRAME_SIDE_PX = 3
#: the smallest --tile without a warning: each tile's core is predicted with ``margin_px`` of context on every side,
#: so a tile of t px costs ((t + 2 margin) / t)^2 times its pixels (bench/small50.py, "tiles")
MIN_TILE_PX = 16


def frame_size_warnings(frame_shape: Sequence[int], tile_px: int, margin_px: int, *, source: str = "") -> list[str]:
    """The warnings (text) for frames of ``frame_shape`` (rows, columns) narrower than :data:`MIN_FRAME_SIDE_PX`,
    and for a ``tile_px`` under :data:`MIN_TILE_PX` where the frames are tiled (wider or taller than it)."""
    h, w = int(frame_shape[0]), int(frame_shape[1])
    where = f"{source}: " if source else ""
    out = []
    if min(h, w) < MIN_FRAME_SIDE_PX:
        out.append(f"{where}frames of {h} x {w} px (rows x columns): a side under {MIN_FRAME_SIDE_PX} px is too narrow "
                   "for the network to see a spot in (strips 2 px wide gave 38 % of the emitters, 1 px none; it is "
                   f"trained on frames of at least 4 px); fit the movie before it is cropped, or a region at least "
                   f"{MIN_FRAME_SIDE_PX} px, better 16 px or more, on each side")
    if tile_px < MIN_TILE_PX and max(h, w) > tile_px:
        cost = ((tile_px + 2 * margin_px) / tile_px) ** 2
        out.append(f"{where}--tile {tile_px} (tile_px) is under {MIN_TILE_PX} px: each tile is predicted with "
                   f"{margin_px} px of context on every side, about {cost:.0f}x its own pixels, so the fit is that "
                   "much slower and holds that much more memory for the same localizations; leave --tile out "
                   f"(256) or give at least {MIN_TILE_PX}")
    return out


def resolve_roi_offset(
    readers: Sequence[MovieReader], given: tuple[int, int] | None, *, split: SplitViewConfig | None = None
) -> tuple[tuple[int, int], str]:
    """The chip pixel ``(x, y)`` of the reference channel image's corner, and where it came from.

    Precedence: ``given`` (``--roi-offset``) > the reference movie's metadata (:attr:`MovieReader.roi_offset`,
    Micro-Manager) > ``(0, 0)``. The metadata are not read when an offset is given (bad metadata then do
    not matter). For one movie per channel the model assumes one ROI position for all channels; where
    another channel's metadata place its ROI elsewhere, a :class:`RoiOffsetWarning` says so.

    A split-view movie's channel boxes are pixel-preserving crops applied before the transforms, whose
    coordinates are those of the cropped images (:class:`~plexloc.config.models.SplitViewConfig`, as
    ``plexloc calibrate --split-view`` and ``plexloc simulate`` use them): the boxes move every channel into
    the same frame, so they add nothing to the offset, which is the camera ROI's (metadata) or ``(0, 0)``.
    """
    if given is not None:
        return (int(given[0]), int(given[1])), "--roi-offset"
    roi = readers[0].roi_offset
    if roi is None:
        what = "split-view boxes are crops in the transforms' coordinates, " if split is not None else ""
        return (0, 0), f"default (0, 0): {what}no ROI position in the metadata of {readers[0].path}"
    for r in readers[1:]:
        other = r.roi_offset
        if other is not None and other.px != roi.px:
            warnings.warn(
                f"{r.path}: its metadata place the ROI at {other.px} but the reference channel's "
                f"({readers[0].path}) at {roi.px}; the model uses one ROI position for every channel (the "
                f"reference's); give --roi-offset X Y if that is wrong", RoiOffsetWarning, stacklevel=3)
    return roi.px, f"{roi.source} in {readers[0].path}"


def _camera_config(camera):
    """A camera configuration given as a dict (``{"kind": "emccd", ...}``, as in a YAML file) validated into its
    model; a model as it is."""
    if isinstance(camera, dict):
        from pydantic import TypeAdapter

        try:
            return TypeAdapter(CameraConfig).validate_python(camera)
        except ValueError as err:
            raise InputError(f"camera {camera!r} is not a valid camera configuration: {' '.join(str(err).split())}") from None
    return camera


def _photon_chunks(
    readers: Sequence[MovieReader], cameras: Sequence[Camera], chunk_frames: int, split: SplitViewConfig | None = None
) -> Iterator[torch.Tensor]:
    """(t, C, H, W) float32 photon chunks from one reader per channel, or one split-view reader."""
    iters = [r.iter_chunks(chunk_frames) for r in readers]
    for parts in zip(*iters):
        if split is not None:
            raw = split_frames(np.asarray(parts[0][1], dtype=np.float32), split)
            arrs = [torch.from_numpy(raw[:, c]) for c in range(raw.shape[1])]
            yield torch.stack([cam.to_photons(a) for cam, a in zip(cameras, arrs)], dim=1)
        elif len(parts) == 1:  # one float32 copy of the chunk, converted in place (no temporaries)
            yield cameras[0].to_photons_(torch.from_numpy(np.array(parts[0][1], dtype=np.float32))).unsqueeze(1)
        else:
            out = torch.empty((parts[0][1].shape[0], len(parts), *parts[0][1].shape[1:]), dtype=torch.float32)
            for c, ((_, a), cam) in enumerate(zip(parts, cameras)):
                out[:, c].numpy()[...] = a  # numpy casts (any integer or float dtype)
                cam.to_photons_(out[:, c])
            yield out


class FrameSample:
    """The rows of a uniform random sample of frames, at most ``max_rows`` of them, gathered part by part.

    For the checks that look at whole frames (duplicates across channels) or at distributions (the
    training-domain check) when a fitted table is streamed to a file and never held whole. Every frame
    gets a random key; the frames with the smallest keys are kept, as many as fit in ``max_rows`` (at
    least one). While the rows seen stay within ``max_rows`` the sample is all of them. ``keep_column``: a
    test of a column's name, to hold only those columns (and the required ones); None: every column.
    """

    def __init__(self, max_rows: int = 200_000, *, keep_column: Callable[[str], bool] | None = None, seed: int = 0):
        if max_rows < 1:
            raise InputError(f"max_rows must be >= 1, got {max_rows}")
        self.max_rows = int(max_rows)
        self.keep_column = keep_column
        self.rows_seen = 0
        self._rng = np.random.default_rng(seed)
        self._parts: list[LocTable] = []
        self._keys: list[np.ndarray] = []
        self._rows = 0
        self._cut = np.inf  # frames with keys at or above it are out for good

    def add(self, table: LocTable) -> None:
        """Offer the rows of ``table`` (whole frames; frames after those of earlier parts)."""
        self.rows_seen += len(table)
        if not len(table):
            return
        _, inverse = np.unique(table["frame"], return_inverse=True)
        keys = self._rng.random(int(inverse.max()) + 1)[inverse]
        keep = keys < self._cut
        if not keep.any():
            return
        if self.keep_column is not None:
            table = table.without_columns(*[c for c in table.columns if c not in REQUIRED_COLUMNS and not self.keep_column(c)])
        self._parts.append(table[keep] if not keep.all() else table)
        self._keys.append(keys[keep])
        self._rows += int(keep.sum())
        if self._rows > 1.5 * self.max_rows:
            self._compact()

    def _compact(self) -> None:
        if len(self._parts) <= 1 and self._rows <= self.max_rows:
            return
        table, keys = LocTable.concat(self._parts), np.concatenate(self._keys)
        if len(table) > self.max_rows:
            frame_keys, counts = np.unique(keys, return_counts=True)  # one key per frame, ascending
            n_frames = max(int(np.searchsorted(np.cumsum(counts), self.max_rows, side="right")), 1)
            if n_frames < len(frame_keys):
                self._cut = float(frame_keys[n_frames])
                keep = keys < self._cut
                table, keys = table[keep], keys[keep]
        self._parts, self._keys, self._rows = [table], [keys], len(table)

    def table(self) -> LocTable | None:
        """The sampled rows in frame order (None before any row)."""
        if not self._parts:
            return None
        self._compact()
        return self._parts[0]


class _FitRun:
    """What one fit learns on the way (the model, cameras, timing, calibrations, filter counts), for its stats."""

    def __init__(self):
        self.spec = None
        self.cfg: dict = {}
        self.cams: list = []
        self.head: list[torch.Tensor] = []
        self.dtype = np.dtype(np.float32)  # the movie's pixel type (its integer maximum: the saturation check)
        self.counts_dtype: np.dtype | None = None  # a file's pixel type, for the not-raw-counts hints (None: an array)
        self.movie = ""
        self.n_frames = 0
        self.elapsed = float("nan")
        self.factors: dict[str, float] = {}
        self.offsets: dict[str, float] = {}
        self.photon_scale: dict[str, float] = {}
        self.roi_offset: tuple[int, int] = (0, 0)
        self.roi_source = ""
        self.filtered = None  # FilterReport summed over the parts
        self.empty: LocTable | None = None  # a part with no rows (its columns), for a fit that finds nothing
        self.refined = 0
        self.not_significant: int | None = None  # refined rows with p_spot above SPOT_P_REPORT (before the filters)
        self.legacy_sigma = False  # the model's sigma calibration predates the extraction's spread: none is added
        self.source = ""
        self.alignment = None  # AlignmentReport of the first frames (several channels)
        self.psf_shape = None  # PSFShapeReport per channel of the first frames
        self.head_rows: list[LocTable] = []  # the unfiltered rows of the frames the PSF check looked at
        self.maps_cut: list = []  # (channel, map shape, (x, y), source): sCMOS maps cut to a camera ROI's frames
        self.check_roi_offset: tuple[int, int] = (0, 0)  # chip pixel (x, y) of the reference image's corner (checks)
        self.train_cfg = None  # the model's TrainConfig (validated once), where it carries one
        self.check_seconds = 0.0  # the alignment and PSF shape checks before the fit
        self.frame_means: list[torch.Tensor] = []  # (t, C) mean photons per pixel of every chunk's frames, on the device
        self.precision = ""  # the network's arithmetic the Predictor chose ("float32" or "bfloat16")
        self.clip_levels: list = []  # each channel's (clipping level ADU, where from): plexloc.camera.check.clip_level
        self.saturated_rows = 0  # rows (before the filters) whose spot reaches the clipping level (saturated_px > 0)
        self.channels_last = False  # whether its convolutions ran channels-last
        self.z_range: tuple[float, float] | None = None  # a 3D model's training z range (model_z_range)
        self.z_rows = 0  # network rows (before the filters) counted for the z-edge check, and those at the edge
        self.z_at_edge = 0
        self.z_beyond = 0
        self.meta: dict = {}  # the model file's meta (its validation)

    def count_z_edge(self, table: LocTable) -> None:
        """Count the network's own rows (before any refinement and filter) at the edge of the model's z range."""
        if self.z_range is None or not len(table):
            return
        at_edge, beyond = count_z_edge(table["z_nm"], self.z_range)
        self.z_rows += len(table)
        self.z_at_edge += at_edge
        self.z_beyond += beyond

    def add_filter_report(self, report) -> None:
        self.filtered = report if self.filtered is None else self.filtered.add(report)

    def count_not_significant(self, table: LocTable) -> None:
        """Count the refined rows whose refit background alone matches (``p_spot`` above
        :data:`plexloc.mle.pipeline.SPOT_P_REPORT`), as the MLE fitter counts its rows (``flagged``)."""
        from plexloc.mle.pipeline import SPOT_P_REPORT

        p = np.asarray(table["p_spot"]) if "p_spot" in table else np.zeros(0)
        self.not_significant = (self.not_significant or 0) + int(np.count_nonzero(p > SPOT_P_REPORT))

    def report(self, stats: dict | None, checked: LocTable | None) -> None:
        """Fill ``stats`` (see :func:`fit_movie`); the duplicate and domain checks look at ``checked``."""
        if stats is None:
            return
        n, elapsed = self.n_frames, self.elapsed
        stats.update(frames=n, seconds=elapsed, frames_per_s=n / elapsed if elapsed > 0 else float("nan"),
                     check_seconds=self.check_seconds,
                     sigma_calibration=self.factors, offset_calibration=self.offsets, photon_calibration=self.photon_scale,
                     refined_rows=self.refined, legacy_sigma=self.legacy_sigma, precision=self.precision,
                     channels_last=self.channels_last, camera_maps_cut=self.maps_cut,
                     saturated_rows=self.saturated_rows, clip_levels=list(self.clip_levels))
        if self.not_significant is not None:  # --refine-mle: as the MLE fitter's stats say it
            stats["flagged"] = {"not_significant": self.not_significant}
        spec = self.spec
        if self.z_range is not None:  # emitters beyond a 3D model's z range, placed at its ends
            stats["z_edge"] = z_edge_report(self.z_rows, self.z_at_edge, self.z_beyond, self.z_range,
                                            (spec.z_center_nm - spec.z_scale_nm, spec.z_center_nm + spec.z_scale_nm),
                                            meta=self.meta)
        if spec.n_aux:
            stats.update(roi_offset_px=self.roi_offset, roi_offset_source=self.roi_source)
        checked = checked if checked is not None else self.empty
        if spec.n_channels > 1 and checked is not None and len(checked):  # a wrong transform: one per channel per molecule
            from plexloc.post.duplicates import channel_duplicates

            stats["duplicates"] = channel_duplicates(checked, warn=False)
        camera = None
        if self.head:  # the movie's first frames against the cameras (plexloc.camera.check): noise and saturation
            from plexloc.camera.check import check_camera

            camera = check_camera([self.head[0][:, c] for c in range(spec.n_channels)], self.cams, dtype=self.dtype,
                                  source=self.movie, warn=False, levels=self.clip_levels or None)
            stats["camera"] = camera
            camera.warn(noise=False)  # the noise finding is reported with the training domain, as before
        if self.train_cfg is not None and checked is not None:  # photons and bg against the training ranges (bad camera settings)
            from plexloc.infer.domain import check_training_domain

            noise = [ch.noise_ratio for ch in camera.channels] if camera is not None else None
            notes = [ch.noise_note for ch in camera.channels] if camera is not None else None
            movie_bg = ([float(self.head[0][:, c].float().nanmean()) for c in range(spec.n_channels)] if self.head
                        else None)  # the mean pixel: at least the background, read off the movie
            head_table = LocTable.concat(self.head_rows) if self.head_rows else self.empty
            # the first frames (photons, per channel) for the spot-shape finding: the rows' own spots
            frames = [self.head[0][:, c] for c in range(spec.n_channels)] if self.head else None
            stats["domain"] = check_training_domain(checked, self.train_cfg, noise=noise, movie_bg=movie_bg, warn=False,
                                                    noise_notes=notes, psf_shape=self.psf_shape, head_table=head_table,
                                                    roi_offset_px=self.check_roi_offset, cameras=self.cams,
                                                    movie_dtype=self.counts_dtype, frames=frames)
            if camera is not None:  # the noise finding said here: with the camera's file, or the model's camera and the fix
                n = len(camera.channels)
                for chk in stats["domain"].checks:  # (columns noise, or noise_ch0, noise_ch1, ...)
                    c = 0 if chk.column == "noise" else int(chk.column[8:]) if chk.column.startswith("noise_ch") else -1
                    advice = camera.source_advice(c) if chk.kind == "noise" and chk.warning and 0 <= c < n else ""
                    if advice:
                        chk.warning += f". {advice}"
        if self.filtered is not None:
            stats["filtered"] = self.filtered
        if self.alignment is not None:
            stats["alignment"] = self.alignment
        if self.psf_shape is not None:
            stats["psf_shape"] = self.psf_shape
        if self.frame_means:  # single frames unlike the movie (blank, saturated): their neighbours in the window too
            from plexloc.camera.frames import frame_outlier_warning, outlier_frames

            means = torch.cat([m.float().cpu() for m in self.frame_means]).numpy()
            bad = outlier_frames(means)
            stats["outlier_frames"] = bad.tolist()
            frame_outlier_warning(means, window=spec.window, source=str(self.movie), outliers=bad)


def _fit_parts(
    movie, model, *, camera, device, batch_frames, chunk_frames, threshold, tile_px, filters, progress, config,
    roi_offset_px, split_view, calibrate_sigma, refine_mle, compile, channels_last, run: _FitRun, precision="auto",
) -> Iterator[LocTable]:
    """The finished localizations of each batch of frames, in frame order (see :func:`fit_movie`)."""
    device = as_device(device)
    paths = channel_movies(movie)  # paths, or in-memory arrays (ArrayMovie): checked before the model is read
    if isinstance(model, Localizer):
        net, cfg, meta = model.to(device).eval(), (config or {}), {}
    elif isinstance(model, (str, os.PathLike)):
        net, cfg, meta = load_model(model, device=device)
    else:
        raise TypeError(f"model must be a run folder or model file (plexloc train's model.pt), or a loaded Localizer "
                        f"(plexloc.nets.load_model), got {type(model).__name__}")
    model_name = f"the given {type(model).__name__}" if isinstance(model, Localizer) else str(model)
    spec = net.spec
    if split_view is None and cfg.get("split_view"):
        split_view = SplitViewConfig.model_validate(cfg["split_view"])
    split = split_view if (len(paths) == 1 and spec.n_channels > 1) else None
    if split is None and len(paths) != spec.n_channels:
        raise InputError(
            f"the model has {spec.n_channels} channel(s) but {len(paths)} movie(s) were given "
            "(give one movie per channel, or one split-view movie with plexloc fit --split-view CONFIG, a "
            "configuration whose split_view section cuts it into the channels)",
            source=paths[0],
        )
    if split is not None and len(split.boxes) != spec.n_channels:
        raise InputError(f"split_view has {len(split.boxes)} boxes for a {spec.n_channels}-channel model", source=paths[0])
    if camera is None:
        if not cfg or "channels" not in cfg:
            raise InputError("no camera given and the model carries no training configuration (give camera=, or "
                             "config= the training configuration dict load_model returns with the Localizer)",
                             source=model_name)
        from plexloc.config.models import ChannelConfig

        # the model's training cameras: a model file's named in the camera check's warnings (the fix is --camera, not
        # the run folder); a Localizer's given with its configuration dict keeps the wording of a camera built in Python
        cams = [model_camera(ChannelConfig.model_validate(ch).camera, model) if isinstance(model, (str, os.PathLike))
                else camera_from_config(ChannelConfig.model_validate(ch).camera) for ch in cfg["channels"]]
    else:
        cams = [camera_from_config(_camera_config(c)) for c in ([camera] if not isinstance(camera, (list, tuple)) else camera)]
    if len(cams) != spec.n_channels:
        raise InputError(f"{len(cams)} camera(s) given for a {spec.n_channels}-channel model (one per channel: "
                         "--camera once per channel, in channel order, or one configuration with every channel's camera)")

    readers = [open_channel_movie(p) for p in paths]
    source = None
    try:
        n = len(readers[0])
        if split is not None:
            check_boxes(split, readers[0].frame_shape, source=paths[0])
        for c, (r, p) in enumerate(zip(readers[1:], paths[1:]), start=1):
            if len(r) != n or r.frame_shape != readers[0].frame_shape:  # named both: no silent truncation
                raise InputError(
                    f"channel movies differ: channel {c}'s has {len(r)} frames of {r.frame_shape} (rows, columns) but "
                    f"channel 0's ({paths[0]}) has {n} of {readers[0].frame_shape}; every channel needs the same frames",
                    source=p,
                )
        # the frames the network sees: a split-view channel's box (rows, columns), else the movie's frames
        frame_shape = tuple(split.boxes[0][3:1:-1]) if split is not None else tuple(readers[0].frame_shape)
        for c, cam in enumerate(cams):
            shape = getattr(cam, "map_shape", None)
            if shape is not None and tuple(shape) != frame_shape and split is None:
                cut = cut_maps_to_movie(cam, readers, roi_offset_px, frame_shape, channel=c, source=paths[0])
                if cut is not None:  # full-chip maps of a camera ROI's movie: the ROI's part of them
                    cams[c], at, where = cut
                    run.maps_cut.append((c, tuple(shape), at, where))
                    continue
            if shape is not None and tuple(shape) != frame_shape:
                what = (f"the split-view channel boxes are {frame_shape} (a split-view channel's camera maps cover its "
                        "box, cut out and flipped as the channel's image is)" if split is not None
                        else f"the movie's frames are {frame_shape}")
                raise InputError(f"channel {c}'s camera maps are {tuple(shape)} (rows, columns) but {what}",
                                 source=paths[0])
        # a movie at another pixel size: wrong positions, no error. The training configuration's, else the network's
        # own (the pixel size the positions are computed with: a Localizer given without its configuration)
        px = cfg.get("px_size_nm") if cfg else None
        px = spec.px_size_nm if px is None else px
        px = (float(px[0]), float(px[1])) if isinstance(px, (list, tuple)) else (float(px), float(px))
        warn_pixel_size(readers[0], px, what="the model was trained for")
        transforms = None
        roi_offset, roi_source = (0, 0), "not used (single channel)"
        if spec.n_aux:
            if not cfg or "channels" not in cfg:
                raise InputError("a multi-channel model needs its training configuration (channel transforms)")
            transforms = [torch.tensor(ch["transform"], dtype=torch.float64) for ch in cfg["channels"]]
            roi_offset, roi_source = resolve_roi_offset(readers, roi_offset_px, split=split)
        # a multi-channel movie's chip position (reference image's corner), for the checks and the clipped-pixel
        # count: the ROI offset a model with the transform indicator uses, else resolved once here
        chip_at = None
        if spec.n_channels > 1 and cfg and "channels" in cfg:
            chip_at = roi_offset if spec.n_aux else resolve_roi_offset(readers, roi_offset_px, split=split)[0]
        train_cfg = None  # the training configuration, validated once for the checks and the refiner
        if cfg and "channels" in cfg:
            from plexloc.config import TrainConfig, validate_config

            train_cfg = validate_config(cfg, TrainConfig, source=model_name)
        photons_of = _photons_reader(readers, split, cams)
        t_checks = time.perf_counter()
        if spec.n_channels > 1 and train_cfg is not None:  # the first frames against the model's channel geometry
            run.alignment = _alignment_check(photons_of, len(readers[0]), readers, split, cfg, chip_at, paths)
            run.check_roi_offset = chip_at  # the bright-spot check maps the table into each channel's image there
        if train_cfg is not None:  # the first frames' spots against the model's PSF (2D model on a 3D movie, ...)
            run.psf_shape = _psf_shape_check(photons_of, len(readers[0]), readers[0], train_cfg, cams, paths)
        run.check_seconds = time.perf_counter() - t_checks  # a fixed cost per movie, outside frames_per_s
        if channels_last is None and device.type == "cuda":  # as the model was trained; CPU: the Predictor's choice
            channels_last = bool((cfg.get("training") or {}).get("channels_last", False))
        if threshold is None:  # the threshold the model's sigma and offset calibration were measured at
            threshold = float((cfg.get("training") or {}).get("detection_threshold", 0.5))
        spread = extraction_spread(meta)  # as the model's sigma factors were measured (--raw-sigma too: the same σ)
        # precision "auto" follows the model's training.amp: a model trained and calibrated in float32 (amp: false)
        # is fitted in float32
        amp = bool((cfg.get("training") or {}).get("amp", True))
        predictor = Predictor(net, threshold=threshold, tile_px=tile_px, transforms=transforms, compile=compile,
                              spread_radius_px=spread, channels_last=channels_last, precision=precision, amp=amp)
        run.precision, run.channels_last = predictor.precision, predictor.channels_last
        for msg in frame_size_warnings(frame_shape, predictor.tile_px, predictor.margin_px, source=str(readers[0].path)):
            warnings.warn(msg, FrameSizeWarning, stacklevel=3)
        run.legacy_sigma = spread == 0.0 and bool(sigma_factors(meta)) and calibrate_sigma
        refiner = _refiner(train_cfg, camera, device, roi_offset, source=model_name) if refine_mle else None
        if refiner is not None:
            from plexloc.mle.refine import refine_frames

            if refiner.roi_px > min(frame_shape):
                raise InputError(f"refine_mle: the MLE's fitting window ({refiner.roi_px} px) is larger than the "
                                 f"frames {frame_shape}", source=paths[0])
        # each channel's clipping level (the camera's saturation_adu, one found in the raw frames: the first ones and some
        # spread over the movie, or the pixel type's maximum) and its value in photons: rows whose spot reaches it get saturated_px > 0
        run.clip_levels = _clip_levels(readers, split, cams, len(readers[0]))
        clip = [clip_threshold_photons(cam, level, frame_shape, device=device)
                for cam, (level, _) in zip(cams, run.clip_levels)]
        px_xy = (float(spec.px_size_nm[0]), float(spec.px_size_nm[1])) if isinstance(spec.px_size_nm, (list, tuple)) \
            else (float(spec.px_size_nm), float(spec.px_size_nm))
        spot_transforms = None
        if chip_at is not None:  # each channel's spot where the transform puts it
            from plexloc.simulation.geometry import transform_at_roi

            spot_transforms = [None if ch.get("transform") is None
                               else transform_at_roi(torch.tensor(ch["transform"], dtype=torch.float64), chip_at, px_xy)
                               for ch in cfg["channels"]]
        per_frame = int(np.prod(readers[0].frame_shape)) * (1 if split is not None else len(readers))
        # chunks of a quarter of CHUNK_PIXELS at most (16 MB of float32): the chunks in flight (read ahead, being read,
        # being copied into the block) took 64 MB each before session 48 (this module's name: tests scale it); not
        # capped at a block's frames, which read small frames 16 at a time (the demo's fit 211 -> 150 frames/s)
        head_chunk = frames_per_chunk(per_frame, chunk_frames, budget=CHUNK_PIXELS)
        chunk_frames = frames_per_chunk(per_frame, chunk_frames, budget=max(CHUNK_PIXELS // 4, 1))
        # chunks go to the device before the temporal windows are formed: each frame crosses once, not once
        # per window it belongs to, and the windows are views on the device
        head: list[torch.Tensor] = []  # the movie's first frames, kept on the CPU for the camera noise check

        def keep_first(c: torch.Tensor) -> torch.Tensor:
            # whole frames (camera maps are per pixel), as many as 64 x 256 x 256 pixels allow (>= 2) and the first
            # chunk of chunk_frames held before session 48 (head_chunk), from as many of the smaller chunks now read
            # as hold them (one of large frames may hold one)
            n_keep = min(max(NOISE_FRAMES * 256 * 256 // max(c.shape[-2] * c.shape[-1], 1), 2), NOISE_FRAMES)
            n_keep = min(n_keep, max(head_chunk, 2))
            have = head[0].shape[0] if head else 0
            if have < n_keep:
                more = c[: n_keep - have].clone()
                head[:] = [torch.cat([head[0], more]) if head else more]
            c = c.to(device)
            run.frame_means.append(c.mean(dim=(-2, -1)))  # (t, C), kept on the device: no synchronisation per chunk
            return c

        # the next chunks are read and converted to photons by a background thread while this one is fitted
        source = prefetch(_photon_chunks(readers, cams, chunk_frames, split))
        chunks = (keep_first(c) for c in source)
        # each frame through the frame U-Nets once, not once per window it belongs to
        batches = iter_frame_blocks(chunks, window=spec.window, batch_frames=batch_frames)
        bar = progress(None, total=n, desc="fit", unit="frame") if progress else None
        run.spec, run.cfg, run.cams, run.head, run.n_frames, run.source = spec, cfg, cams, head, n, model_name
        run.train_cfg = train_cfg
        run.z_range, run.meta = model_z_range(spec, cfg), meta
        run.dtype, run.movie = readers[0].dtype, str(paths[0]) if len(paths) == 1 else [str(p) for p in paths]
        run.counts_dtype = readers[0].dtype if getattr(readers[0], "counts_dtype_known", True) else None
        run.roi_offset, run.roi_source = roi_offset, roi_source
        factors = sigma_factors(meta) if calibrate_sigma else {}
        offsets = position_offsets(meta) if calibrate_sigma else {}
        scale = photon_scale(meta) if calibrate_sigma and spec.n_photons == 1 else {}
        run.factors, run.offsets, run.photon_scale = factors, offsets, scale
        use_filters = bool(filters) and any(v is not None for v in filters.values())
        if use_filters:
            from plexloc.post.filter import filter_localizations
        n_locs = 0
        head_frames = max(r.frames for r in run.psf_shape) if run.psf_shape else 0  # every channel's
        t0 = time.perf_counter()
        untrimmed = TRIM_PIXELS  # pixels fitted since the heap was last handed back (the first block: the checks')
        for first, block in batches:
            n_block = block.shape[0] - 2 * (spec.window // 2)
            # the heap's holes, left by the checks and the last blocks, back to the system, once per TRIM_PIXELS (on a
            # GPU the activations are not on the host's heap)
            if predictor.device.type == "cpu" and untrimmed >= TRIM_PIXELS:
                release_free_heap()
                untrimmed = 0
            untrimmed += block.numel()
            ex = predictor.localize_frames(block, roi_offset)
            h = spec.window // 2
            sat = clipped_near(block[h : h + n_block], ex, clip, spot_transforms, px_size_nm=px_xy)
            run.saturated_rows += int(np.count_nonzero(sat))
            tab = to_table(ex, np.arange(first, first + n_block), net, sat)
            run.count_z_edge(tab)
            if refiner is not None:
                frames_ph = block[h : h + n_block].to(refiner.device).transpose(0, 1)  # (C, n, H, W)
                tab = refine_frames(refiner, frames_ph, tab, frame_offset=first)
                run.count_not_significant(tab)
                del frames_ph
            del block, ex  # one block at a time: iter_frame_blocks fills the next one after this is dropped
            tab = _calibrate(tab, factors, offsets, scale)
            if head_frames and first < head_frames and len(tab):  # the bright-spot check's frames, before the filters
                run.head_rows.append(tab[np.asarray(tab["frame"]) < head_frames])
            if use_filters:
                tab, report = filter_localizations(tab, **filters)
                run.add_filter_report(report)
            if "refined" in tab:
                run.refined += int(np.count_nonzero(np.asarray(tab["refined"]) == 1))
            n_locs += len(tab)
            if bar is not None:
                bar.update(n_block)
                bar.set_postfix(locs=n_locs, refresh=False)
            if len(tab):
                yield tab
            elif run.empty is None:
                run.empty = tab
            run.elapsed = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        run.elapsed = time.perf_counter() - t0
    finally:
        if source is not None:  # the reading thread stops before its files close
            source.close()
        for r in readers:
            r.close()
    if run.empty is None:  # the columns of a fit that found nothing (also for a movie of no frames)
        empty = to_table(_empty(spec, device), np.zeros(0, dtype=np.int64), net)
        if refine_mle:  # the same columns as a refined table
            empty = empty.with_columns(**{k: np.zeros(0) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "llr",
                                                                   "roi_px", "spot_llr", "p_spot", "refined")})
        if use_filters:
            empty, report = filter_localizations(empty, **filters)
            run.add_filter_report(report)
        run.empty = empty


def _clip_levels(readers: Sequence[MovieReader], split: SplitViewConfig | None, cams: Sequence[Camera], n: int
                 ) -> list[tuple[float | None, str]]:
    """Each channel's :func:`~plexloc.camera.check.clip_level` from the movie's first raw frames (as many as the
    camera check reads): the camera's ``saturation_adu``, else a level found in them (a full scale ``2**k - 1``,
    ``"found"``, or another value they pile up at, ``"pile-up"``: :func:`~plexloc.camera.check.find_clip_adu`), else
    the pixel type's maximum. A split view's channels are cut from the frames as floats and looked at as the file's
    integers (its dtype). The level is also looked for in as many frames spread over the rest of the movie
    (:func:`~plexloc.camera.check.later_frames`): a camera that clips only later is found before the fit."""
    from plexloc.camera.check import clip_level, head_frames, later_frames

    if not n:
        return [clip_level(None, cam, readers[0].dtype) for cam in cams]
    k = min(head_frames(split.boxes[0][3:1:-1] if split is not None else readers[0].frame_shape), n)
    more = later_frames(n, k)

    def frames(r: MovieReader) -> np.ndarray:
        return np.concatenate([r[0:k], *(r[i:i + 1] for i in more)]) if more else r[0:k]

    if split is not None:
        raw = split_frames(np.asarray(frames(readers[0]), dtype=np.float32), split)
        arrs = [raw[:, c] for c in range(raw.shape[1])]
    else:
        arrs = [frames(r) for r in readers]
    return [clip_level(a, cam, readers[0].dtype) for a, cam in zip(arrs, cams)]


def _photons_reader(readers: Sequence[MovieReader], split: SplitViewConfig | None, cams: Sequence[Camera]):
    """``photons_of(a, b)``: frames ``a:b`` of every channel, cut as the fit cuts them, in photons (one ``(T, H, W)``
    tensor per channel), for the checks that look at the movie's first frames."""

    def photons_of(a: int, b: int) -> list[torch.Tensor]:
        if split is not None:
            raw = split_frames(np.asarray(readers[0][a:b], dtype=np.float32), split)
            arrs = [raw[:, c] for c in range(raw.shape[1])]
        else:
            arrs = [np.asarray(r[a:b], dtype=np.float32) for r in readers]
        return [cam.to_photons(torch.from_numpy(np.ascontiguousarray(x))) for cam, x in zip(cams, arrs)]

    return photons_of


def _alignment_check(photons_of, n: int, readers: Sequence[MovieReader], split: SplitViewConfig | None, cfg: dict,
                     roi_offset: tuple[int, int], paths: Sequence):
    """:func:`plexloc.calibrate.alignment.check_movie_alignment` on the movie's first frames (``photons_of``:
    :func:`_photons_reader`) against the training configuration's channel transforms (chip coordinates, at the
    movie's ROI offset); its findings are :class:`~plexloc.calibrate.alignment.ChannelAlignmentWarning` s."""
    from plexloc.calibrate.alignment import check_movie_alignment

    shape = (split.boxes[0][3], split.boxes[0][2]) if split is not None else tuple(readers[0].frame_shape)
    px = cfg.get("px_size_nm", 100.0)
    px = (float(px[0]), float(px[1])) if isinstance(px, (list, tuple)) else float(px)
    transforms = [ch.get("transform") if ch.get("transform") is not None else np.eye(3) for ch in cfg["channels"]]
    return check_movie_alignment(photons_of, n, shape, transforms, px, roi_offset_px=roi_offset,
                                 split=split, sources=[str(p) for p in paths] if split is None else str(paths[0]))


def _psf_shape_check(photons_of, n: int, reader: MovieReader, config, cams: Sequence[Camera], paths: Sequence):
    """:func:`plexloc.psf.check.check_movie_psf_shapes` of the movie's first frames against the training
    configuration's (``config``, validated) PSFs and z range; its findings are
    :class:`~plexloc.psf.check.PSFShapeWarning` s (a 2D model on an astigmatic movie, another pixel size)."""
    from plexloc.psf.check import check_movie_psf_shapes

    sources = [str(p) for p in paths] if len(paths) == len(cams) else str(paths[0])  # a file per channel, or one split view
    return check_movie_psf_shapes(photons_of, n, config, cameras=cams, source=sources,
                                  movie_px_size_nm=recorded_pixel_size(reader),
                                  movie_dtype=reader.dtype if getattr(reader, "counts_dtype_known", True) else None)


def _calibrate(table: LocTable, factors: dict[str, float], offsets: dict[str, float],
               photons: dict[str, float] | None = None) -> LocTable:
    """The network's own rows (not the refined ones) get the sigma factors, position offsets and photon calibration
    (:func:`photon_scale`) measured on its validation set; before any filter, so that ``max_sigma_nm`` and
    ``min_photons`` see the calibrated values."""
    if not len(table) or not (factors or offsets or photons):
        return table
    net_rows = np.asarray(table["refined"]) == 0 if "refined" in table else np.ones(len(table), bool)
    cols = {f"sigma_{ax}_nm": np.where(net_rows, table[f"sigma_{ax}_nm"] * f, table[f"sigma_{ax}_nm"])
            for ax, f in factors.items() if f"sigma_{ax}_nm" in table}
    cols.update({f"{ax}_nm": table[f"{ax}_nm"] - np.where(net_rows, o, 0.0) for ax, o in offsets.items()})
    if photons:
        scale, spread = photons.get("scale", 1.0), photons.get("sigma", 1.0)
        cols.update({c: np.where(net_rows, table[c] * f, table[c])
                     for c, f in (("photons", 1.0 / scale), ("sigma_photons", spread / scale)) if c in table})
    return table.with_columns(**cols)


def fit_movie(
    movie: str | os.PathLike | np.ndarray | torch.Tensor | Sequence[str | os.PathLike | np.ndarray | torch.Tensor],
    model: str | os.PathLike | Localizer,
    *,
    camera: CameraConfig | Sequence[CameraConfig] | None = None,
    device: torch.device | str = "cpu",
    batch_frames: int = 16,
    chunk_frames: int = 256,
    threshold: float | None = None,
    tile_px: int = 256,
    filters: dict | None = None,
    progress: Callable | None = None,
    config: dict | None = None,
    stats: dict | None = None,
    roi_offset_px: tuple[int, int] | None = None,
    split_view: SplitViewConfig | None = None,
    calibrate_sigma: bool = True,
    refine_mle: bool = False,
    compile: bool = False,
    channels_last: bool | None = None,
    precision: str = "auto",
) -> LocTable:
    """Localize every frame of a movie.

    Args:
        movie: a TIFF stack or a folder of TIFFs (one per channel for several channels), streamed; or raw frames
            (ADU, as the camera wrote them) held in memory: a numpy array or torch tensor ``(T, H, W)``, ``(C, T, H,
            W)`` for one movie per channel (``MovieSimulation.frames``), or a list of one per channel
            (:func:`~plexloc.io.tiff.channel_movies`; an array carries no metadata, so give ``roi_offset_px`` where a
            multi-channel model needs the ROI's chip position). Channel movies of different lengths or frame shapes
            are an ``InputError`` naming both and their counts (never cut to the shorter).
        model: a run folder / model file, or a loaded :class:`Localizer` (then ``config`` is its training config dict,
            the second value :func:`plexloc.nets.load_model` returns; without it give ``camera``).
        camera: camera configuration(s) of the movie (models, or dicts as in a YAML file); default: the training
            configuration's cameras. Per-pixel
            (sCMOS) maps have the frames' shape; for a split-view movie each channel's map covers its box, cut out
            and flipped as the channel's image is (the conversion to photons follows the split).
        device: where the network runs (``"cpu"``, ``"cuda"``; the table is on the CPU either way). batch_frames: frames per block (held together with their
            temporal windows; on CUDA one forward pass, on the CPU passes of
            :data:`~plexloc.infer.predict.CPU_PASS_PIXELS` output pixels). chunk_frames: frames read at once
            (at most :data:`CHUNK_PIXELS` pixels: fewer of large frames).
        threshold: integrated detection probability for a localization; default: the model's
            ``training.detection_threshold`` (0.5), at which its validation calibration was measured.
        tile_px: frames larger than this are tiled.
        filters: keyword arguments of :func:`plexloc.post.filter.filter_localizations` (e.g. ``min_prob``,
            ``max_sigma_nm``, ``min_photons``); the counts removed go to ``stats["filtered"]``.
        progress: ``progress(iterable, total=..., desc=..., unit=...)`` wrapper (e.g. tqdm), or None.
        stats: a dict that receives ``frames``, ``seconds``, ``frames_per_s`` (the frames' loop: reading, network,
            extraction, writing), ``check_seconds`` (the checks of the first frames before it, a fixed cost of about
            1 s per movie on a CPU core), ``refined_rows`` and, with ``refine_mle``, ``flagged["not_significant"]``
            (the refined rows with ``p_spot`` above 0.01, before the filters), ``precision`` and ``channels_last`` (the network's
            arithmetic and layout, as the Predictor chose them); ``camera_maps_cut``: ``(channel, map shape, (x, y),
            source)`` for each sCMOS camera whose per-pixel maps, larger than the frames (the full chip, a movie of a
            camera ROI), were cut at the ROI's chip position (``roi_offset_px``, else the movie's metadata); ``domain``, the
            :class:`~plexloc.infer.domain.DomainReport` of the photons and background against the model's training
            ranges (where the model carries its configuration), with the spot-shape finding (``spot shape`` checks,
            :func:`~plexloc.infer.domain.spot_shape_checks`: the widths of the first frames' bright isolated rows'
            spots against the model's PSF over its training z range, a sign of emitters beyond that range, which the
            network folds back inside it, or of a wrong PSF or pixel size); and, for a multi-channel model, ``roi_offset_px``,
            ``roi_offset_source``, ``duplicates`` and ``alignment``: the
            :class:`~plexloc.calibrate.alignment.AlignmentReport` of the movie's first frames against the training
            configuration's channel geometry (checked before the fit; its findings, a split-view flip forgotten,
            boxes or movies swapped, a transform 1.5 px or more off, are also
            :class:`~plexloc.calibrate.alignment.ChannelAlignmentWarning` s); and ``psf_shape`` (where the model
            carries its configuration): one :class:`~plexloc.psf.check.PSFShapeReport` per channel, the widths of the
            first frames' bright isolated spots against the model's PSF over its z range (a 2D model on an
            astigmatic movie, or another pixel size, is a :class:`~plexloc.psf.check.PSFShapeWarning`).
            ``z_edge`` (3D models): the :class:`ZEdgeReport` of the network's rows (before the filters) whose z lies
            within :data:`Z_EDGE_MARGIN_NM` of an end of the model's z range or beyond it, and a ``warning`` where
            their share is well above what emitters inside the range give (emitters beyond the range).
        roi_offset_px: chip pixel (x, y) at the reference channel image's corner (for a multi-channel model's
            transformation indicator; the transforms are the training configuration's); ``None``: from the
            movie's metadata where they record it, else (0, 0) (:func:`resolve_roi_offset`).
        calibrate_sigma: multiply ``sigma_x/y/z_nm`` by the factors the trainer measured on its validation set
            (:func:`sigma_factors`) and subtract the constant position offset it measured there
            (:func:`position_offsets`) and calibrate the photons and their sigma
            (:func:`photon_scale`, one-photon-output models); ``stats["sigma_calibration"]``,
            ``stats["offset_calibration"]`` and ``stats["photon_calibration"]`` say which
            were applied. False: the network's raw output.
        refine_mle: refine every localization by maximum likelihood in its frame with the other localizations
            nearby in the model (:func:`plexloc.mle.refine.refine_frames`; the training configuration's PSFs,
            cameras and transforms). Worth it where the network's errors are well above the Cramér-Rao bound
            (its validation ``RMSE/CRLB``), e.g. emitters on for single frames; where the network beats the
            single-frame bound by seeing several frames, it would lose that. Refined rows have ``refined`` 1 and
            the CRLB as their sigma; the sigma calibration and offsets apply to the others only.
        compile: the network through ``torch.compile`` (:class:`~plexloc.infer.predict.Predictor`); the first
            batches compile (tens of seconds), then each runs faster on a GPU. Same localizations.
        channels_last: the convolutions in the channels-last (NHWC) memory format (:meth:`Localizer.channels_last_`,
            in place on a given model), which cuDNN's bf16 kernels may prefer; ``None``: on CUDA as the model's
            training configuration says (``training.channels_last``), on the CPU channels-last where oneDNN runs it
            (:class:`~plexloc.infer.predict.Predictor`: faster there). Same localizations.
        precision: the network's arithmetic (:class:`~plexloc.infer.predict.Predictor`): ``"auto"`` (bfloat16 on
            CUDA and on a CPU with bfloat16 instructions, where it is 1.6-1.9 times as fast as float32 with slightly
            different localizations; float32 on other CPUs), ``"float32"``, or ``"bfloat16"`` (float32 with a warning
            on a CPU without those instructions).

    Returns:
        The localization table, rows ordered by frame. :func:`fit_movie_to_file` writes it part by part
        instead, for movies whose table is too large to hold.
    """
    run = _FitRun()
    parts = list(_fit_parts(movie, model, camera=camera, device=device, batch_frames=batch_frames,
                            chunk_frames=chunk_frames, threshold=threshold, tile_px=tile_px, filters=filters,
                            progress=progress, config=config, roi_offset_px=roi_offset_px, split_view=split_view,
                            calibrate_sigma=calibrate_sigma, refine_mle=refine_mle, compile=compile,
                            channels_last=channels_last, run=run, precision=precision))
    table = LocTable.concat(parts) if parts else run.empty
    run.report(stats, table)
    return table


def fit_movie_to_file(
    movie: str | os.PathLike | np.ndarray | torch.Tensor | Sequence[str | os.PathLike | np.ndarray | torch.Tensor],
    model: str | os.PathLike | Localizer,
    out: str | os.PathLike,
    *,
    float_format: str | None = None,
    check_rows: int = 200_000,
    stats: dict | None = None,
    **options,
) -> int:
    """Localize every frame of a movie into a table file, written as the frames are fitted.

    The same table as :func:`fit_movie` followed by :func:`~plexloc.io.tables.write_table`, but only a
    batch of frames' localizations (and a sample) is held at a time, so that memory does not grow with the
    movie. The file appears only once the whole movie is fitted (a temporary next to it is renamed); after
    an error or an interrupt nothing is left and an earlier file of that name is untouched.

    Args:
        out: the table file (``.csv``, ``.h5``, ``.hdf5``).
        float_format: %-format of CSV floats (default that of :func:`~plexloc.io.tables.write_table`).
        check_rows: the duplicate and training-domain checks of ``stats`` look at the rows of a uniform random
            sample of frames (:class:`FrameSample`) of at most this many rows; all of them where the table is smaller.
        stats: as for :func:`fit_movie`, plus ``rows`` (written) and ``checked_rows``.
        options: the keyword arguments of :func:`fit_movie`.

    Returns:
        The number of localizations written.
    """
    from plexloc.io.tables import DEFAULT_FLOAT_FORMAT, TableWriter

    defaults = keyword_defaults(fit_movie, exclude=("stats",))
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"fit_movie_to_file() got unexpected keyword argument(s) {unknown}")
    run = _FitRun()
    # what the checks read: positions and frames (duplicates), photons and background per channel (domain)
    sample = FrameSample(check_rows, keep_column=lambda c: c == "bg" or c.startswith(("photons_ch", "bg_ch")))
    with TableWriter(out, float_format=float_format or DEFAULT_FLOAT_FORMAT, background=True) as writer:
        for part in _fit_parts(movie, model, **{**defaults, **options}, run=run):
            writer.append(part)
            sample.add(part)
        if not writer.rows:
            writer.append(run.empty)
    checked = sample.table()
    run.report(stats, checked)
    if stats is not None:
        stats.update(rows=writer.rows, checked_rows=len(checked) if checked is not None else 0)
    return writer.rows


def _refiner(train_cfg, camera, device, roi_offset: tuple[int, int], *, source: str):
    """The MLE fitter of ``fit_movie(refine_mle=True)``: the model's (validated) training configuration, the movie's
    cameras."""
    if train_cfg is None:
        raise InputError("refine_mle needs the model's training configuration (PSFs, cameras)", source=source)
    from plexloc.mle import MLEFitter

    return MLEFitter(train_cfg.simulation(), device=device, camera=camera, roi_offset_px=roi_offset)


def _validation_values(meta: dict, prefix: str, keep) -> dict[str, float]:
    """``{axis: value}`` of the keys ``{prefix}x/y/z`` in a model file's validation meta, where ``keep(value)``."""
    val = (meta or {}).get("validation") or {}
    out = {}
    for ax in ("x", "y", "z"):
        v = val.get(f"{prefix}{ax}")
        if v is not None and np.isfinite(v) and keep(v):
            out[ax] = float(v)
    return out


def sigma_factors(meta: dict) -> dict[str, float]:
    """``{axis: factor}`` from a model file's meta: the robust z-score spread of the isolated emitters of the
    validation set at the saved step (``sigma_cal_x/y/z``, :func:`plexloc.evaluate.uncertainty.sigma_calibration`).

    A network's sigma heads learn the spread of their own pixel's error, and training stops before they settle;
    the factors correct both on simulated data the network never trained on. Axes without a finite positive
    factor (models saved before 2026-12-03, z of 2D models) are left out."""
    return _validation_values(meta, "sigma_cal_", lambda v: v > 0)


def extraction_spread(meta: dict) -> float | None:
    """The extraction's neighbourhood spread (``spread_radius_px`` of :func:`~plexloc.infer.extract.extract`) that a
    model's sigma calibration was measured with: the value its validation recorded; 0 for a model saved before the
    spread was added to the sigmas (2026-12-05) whose factors were measured without it, so that its sigmas stay as
    calibrated (``plexloc.train.recalibrate_model`` measures them again with the spread); None (the extraction's
    default) for a model without factors."""
    val = (meta or {}).get("validation") or {}
    v = val.get("extraction_spread_px")
    if v is not None and np.isfinite(v):
        return float(v)
    return 0.0 if sigma_factors(meta) else None


def position_offsets(meta: dict) -> dict[str, float]:
    """``{axis: nm}`` to subtract from the positions: the validation set's median error of the matched emitters
    where it was significant (``offset_cal_x/y/z``, :func:`plexloc.evaluate.uncertainty.offset_calibration`); zero
    and missing offsets are left out."""
    return _validation_values(meta, "offset_cal_", lambda v: v != 0.0)


def photon_scale(meta: dict) -> dict[str, float]:
    """``{"scale": s, "sigma": f}``: divide the photons by ``s`` (the validation set's median predicted / true
    photons where it was significant, ``photon_cal``) and multiply ``sigma_photons`` by ``f / s`` (the isolated
    emitters' photon z-score spread after the scale, ``photon_sigma_cal``;
    :func:`plexloc.evaluate.uncertainty.photon_calibration`). Values of 1, missing (models saved before 2026-12-05)
    or not positive are left out."""
    val = (meta or {}).get("validation") or {}
    out = {}
    for key, name in (("scale", "photon_cal"), ("sigma", "photon_sigma_cal")):
        v = val.get(name)
        if v is not None and np.isfinite(v) and v > 0 and v != 1.0:
            out[key] = float(v)
    return out


def _empty(spec, device) -> Extracted:
    z = torch.zeros(0, device=device)
    zi = torch.zeros(0, dtype=torch.int64, device=device)
    return Extracted(
        sample=zi, pixel_row=zi, pixel_col=zi, x_nm=z, y_nm=z, z_nm=z,
        photons=torch.zeros(0, spec.n_photons, device=device), prob=z,
        sigma=torch.zeros(0, 3 + spec.n_photons, device=device), bg=torch.zeros(0, spec.n_channels, device=device),
    )
