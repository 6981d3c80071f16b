"""What plexloc reads from a movie before a fit: its files and format, what its metadata record (each value with the
tag or key it came from), and the first frames' ADU statistics; beside a camera, what the camera settings say and
the camera check's verdict. ``plexloc info`` prints it.

The commonest mistakes in single-molecule localization are camera settings and pixel sizes. The fits check both
(:mod:`plexloc.io.pixel_size`, :mod:`plexloc.io.roi`, :mod:`plexloc.camera.check`) but only once the fit runs;
:func:`read_movie_info` shows the same readings first, fast and in bounded memory: the movie is opened as the fits
open it (:func:`plexloc.io.tiff.open_movie`, whose errors name the file) and only its first frames are read.

Metadata read (first found; a value that is not recorded is ``None``, never guessed):

- **Micro-Manager**: the first image's per-image JSON (TIFF tag 51123), then the summary JSON of the file header:
  ``Camera`` / ``Core-Camera``, ``Exposure-ms``, ``Interval_ms`` (the frame interval asked for) or the difference
  of the first frames' ``ElapsedTime-ms`` (the interval taken), ``Binning``, ``BitDepth``, and the camera device's
  own properties ``<camera>-<property>`` (matched without case, spaces or underscores: Hamamatsu's DCAM adapter
  writes ``SENSOR TEMPERATURE``): EM gain (``EMGain``, ``MultiplierGain`` (PVCAM), and Andor's iXon ``Gain`` where
  its ``Output_Amplifier`` or ``EMSwitch`` says the EM amplifier is on; with the conventional amplifier the EM gain
  is recorded as none), readout (``ReadoutMode``, ``ReadoutRate``, ``Output_Amplifier``, ``ScanMode``,
  ``PixelReadoutRate``, ``READOUT SPEED``, ...), temperature (``CCDTemperature``, ``SensorTemperature``,
  ``Temperature``; not the set point). Any other ``Gain`` (PVCAM's gain index, an sCMOS's gain mode) is recorded as
  ``gain``, never compared with an EMCCD's em_gain.
- **OME-XML**: ``Pixels/@SignificantBits``, ``@TimeIncrement``, the first ``Plane/@ExposureTime``, the first
  channel's ``DetectorSettings`` (``@Binning``, ``@Gain``, ``@ReadOutRate``) and the ``Detector`` they name (else
  the only one: manufacturer, model, type, ``@Gain``, ``@AmplificationGain``), with their units.
- **ImageJ**: ``finterval`` (frame interval, in ``tunit``: seconds where none), ``spacing`` and ``unit`` (the z
  step of a stack).
- The pixel size (:func:`plexloc.io.pixel_size.read_pixel_size`) and the camera ROI's chip position
  (:func:`plexloc.io.roi.read_roi_offset`, as :attr:`plexloc.io.tiff.MovieReader.roi_offset` gives it to the fits);
  metadata that those refuse are reported with their error, not hidden.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plexloc.errors import InputError
from plexloc.io._metadata import MM_METADATA_TAG, first_element, local_name, micro_manager_metadata, ome_root
from plexloc.io.pixel_size import PixelSize, pixel_size_mismatch
from plexloc.io.roi import RoiOffset
from plexloc.io.tiff import MovieReader, open_movie

__all__ = ["AduStats", "CameraComparison", "MovieInfo", "Recorded", "TiffFormat", "adu_statistics",
           "compare_camera", "format_movie_info", "read_movie_info", "HEAD_FRAMES", "HEAD_PIXELS"]

#: frames whose ADU statistics are measured by default
HEAD_FRAMES = 64
#: at most this many pixels are measured (fewer frames of large frames: a 2048 x 2048 movie gives 2 frames; two
#: frames at least), so that time and memory do not grow with the movie
HEAD_PIXELS = 2**23
#: full scales whose pile-up (clipping) is counted: a 12-, 14- or 16-bit camera's largest value
FULL_SCALE_BITS = (12, 14, 16)
#: relative difference from which a camera setting and the metadata's value are said to disagree
SETTING_TOLERANCE = 0.05

#: the recorded values, in the order they are shown, with their labels
RECORDED_FIELDS: dict[str, str] = {
    "camera": "camera",
    "exposure_ms": "exposure",
    "frame_interval_ms": "frame interval",
    "em_gain": "EM gain",
    "gain": "gain",
    "readout": "readout",
    "binning": "binning",
    "bit_depth": "bit depth",
    "temperature_c": "sensor temperature",
    "z_spacing": "z spacing",
}

# device properties, matched without case, spaces, underscores or hyphens (:func:`_fold`)
_MM_EM_GAIN = ("EMGain", "MultiplierGain", "EMMultiplier")
_MM_READOUT = ("ReadoutMode", "ReadMode", "ReadoutRate", "PixelReadoutRate", "Output_Amplifier", "ScanMode",
               "SensorMode", "ReadoutSpeed", "ReadoutTime", "PixelRate", "Speed", "Port")
#: the iXon adapter's output amplifier ('Electron Multiplying' or 'Conventional') and EM switch ('On' / 'Off')
_MM_AMPLIFIER = ("Output_Amplifier", "EMSwitch")
#: the EM gain recorded where the metadata say the EM amplifier was off (Andor's conventional amplifier)
_EM_OFF = "none: the EM amplifier is off"
_MM_TEMPERATURE = ("CCDTemperature", "SensorTemperature", "CurrentTemperature", "Temperature", "TemperatureCurrent")
_OME_TIME_MS = {"ns": 1e-6, "µs": 1e-3, "\u03bcs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0, "min": 60_000.0,
                "h": 3_600_000.0}
#: ImageJ's time units ('tunit'), lower case, in ms (others as OME's)
_IMAGEJ_TIME_MS = {"sec": 1000.0, "s": 1000.0, "second": 1000.0, "seconds": 1000.0, "msec": 1.0, "ms": 1.0,
                   "usec": 1e-3, "us": 1e-3, "µs": 1e-3, "\u03bcs": 1e-3, "min": 60_000.0, "minute": 60_000.0,
                   "minutes": 60_000.0, "hr": 3_600_000.0, "hour": 3_600_000.0, "hours": 3_600_000.0}


@dataclass(frozen=True)
class Recorded:
    """A value the metadata record (as recorded: a number where it is one, else the text), its unit, and where it
    was read (the format and the key or element)."""

    value: Any
    source: str
    unit: str = ""

    @property
    def text(self) -> str:
        v = self.value
        shown = f"{v:g}" if isinstance(v, float) else str(v)
        return f"{shown} {self.unit}".strip()


@dataclass
class TiffFormat:
    """How tifffile sees the (first) file: its pages and image series, and which formats it recognises."""

    pages: int
    series: list[str]
    formats: list[str]
    bigtiff: bool
    compression: str
    software: str | None = None


@dataclass
class AduStats:
    """The first frames' raw values (ADU, as the file holds them).

    ``at_full_scale``: for the pixel type's maximum and each 12/14/16-bit full scale below it, ``(level, pixels at
    it, pixels above it)``; ``clip_level``: the level :func:`plexloc.camera.check.find_clip_adu` finds the values
    piled up at (a camera's full scale below the pixel type's maximum, or another value, as a full well clips a
    16-bit movie at 1000 ADU), None where none; ``clip_source`` how (``"found"``: a full scale 2^k - 1,
    ``"pile-up"``: another value) and ``clip_pixels`` the pixels at it. ``dim_level`` is the 1st
    percentile of the pixels' medians over these frames (per-pixel offsets are at most about this: the background
    adds to it), ``mid_level`` their median: a scalar baseline (the camera's offset) is at most about this, as the
    camera check holds it (:data:`plexloc.camera.check.DIM_QUANTILE`: sCMOS pixel offsets spread by 3-10 ADU put the
    1st percentile 7-23 ADU below the right one); ``dim_noise``: the frame-to-frame noise (ADU) of the dimmest 10 % of
    the pixels (NaN with one frame). ``later_clip_level``: where the first frames show no clipping level, the level
    found in them together with ``later_frames`` frames spread over the rest of the movie
    (:func:`plexloc.camera.check.later_frames`, as the fits look for it), ``later_clip_source`` how, and
    ``later_clip_pixels`` the pixels of the later frames at it: a camera that clips only later (the illumination
    raised, a bead drifting into focus)."""

    frames: int
    pixels: int
    min: float
    p1: float
    median: float
    p99_9: float
    max: float
    at_full_scale: list[tuple[float, int, int]] = field(default_factory=list)
    clip_level: float | None = None
    dim_level: float = math.nan
    dim_noise: float = math.nan
    mid_level: float = math.nan
    clip_source: str = ""
    clip_pixels: int = 0
    later_frames: int = 0
    later_clip_level: float | None = None
    later_clip_source: str = ""
    later_clip_pixels: int = 0

    def clipped_share(self, level: float) -> float:
        for lv, n, _ in self.at_full_scale:
            if lv == level:
                return n / self.pixels if self.pixels else 0.0
        return 0.0


@dataclass
class MovieInfo:
    """What :func:`read_movie_info` read from a movie."""

    path: str
    files: list[str]
    n_frames: int
    frame_shape: tuple[int, int]
    dtype: str
    bytes_on_disk: int
    #: "yes" (every file memory-mapped, as the fits stream it), "no (...)" with why, or "partly (k of n files)"
    memory_mapped: str
    tiff: TiffFormat
    pixel_size: PixelSize | None = None
    #: the error the pixel size's metadata gave ("" where none)
    pixel_size_error: str = ""
    roi_offset: RoiOffset | None = None
    #: the error the ROI's metadata gave, as a fit would raise it ("" where none)
    roi_offset_error: str = ""
    recorded: dict[str, Recorded] = field(default_factory=dict)
    adu: AduStats | None = None
    #: what opening the movie warned about (as the fits would), and metadata that could not be read
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (:func:`plexloc.io.jsonfile.write_json`)."""
        out = asdict(self)
        out["frame_shape"] = list(self.frame_shape)
        out["recorded"] = {k: {"value": v.value, "unit": v.unit, "source": v.source} for k, v in self.recorded.items()}
        return out


# ------------------------------------------------------------------------------------------------ metadata


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(str(v).strip())
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _value(v: Any) -> Any:
    """A number as a float where the text is one, else the text (stripped)."""
    f = _number(v)
    return f if f is not None else (v.strip() if isinstance(v, str) else v)


def _fold(key: str) -> str:
    """A property name without case, spaces, underscores or hyphens ('SENSOR TEMPERATURE' = 'SensorTemperature')."""
    return "".join(ch for ch in str(key).lower() if ch not in " _-")


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, str) and not v.strip()) and v != []


def _mm_elapsed_interval(tf) -> tuple[float, str] | None:
    """The median step of the first frames' ``ElapsedTime-ms`` (Micro-Manager per-image metadata), at most 8 pages."""
    times = []
    with contextlib.suppress(Exception):
        for k in range(min(len(tf.pages), 8)):
            page = tf.pages[k]
            tag = page.tags.get(MM_METADATA_TAG) if page is not None and hasattr(page, "tags") else None
            t = _number(tag.value.get("ElapsedTime-ms")) if tag is not None and isinstance(tag.value, dict) else None
            if t is None:
                break
            times.append(t)
    if len(times) < 2:
        return None
    step = float(np.median(np.diff(times)))
    return (step, f"Micro-Manager image metadata 'ElapsedTime-ms' (median step of frames 0-{len(times) - 1})") \
        if step > 0 else None


def _read_micro_manager(tf, out: dict[str, Recorded]) -> None:
    image, summary = micro_manager_metadata(tf)
    if not image and not summary:
        return

    # a device's property by its name as the adapters spell it (Hamamatsu's DCAM adapter: 'SENSOR TEMPERATURE',
    # 'READOUT SPEED'; Andor's: 'CCDTemperature'): compared without case, spaces, underscores or hyphens
    folded = [(where, meta, {_fold(k): k for k in reversed(list(meta))}) for where, meta in
              (("image", image), ("summary", summary))]

    def lookup(*keys: str) -> tuple[Any, str, str] | None:
        for where, meta, by_fold in folded:
            for key in keys:
                real = key if key in meta else by_fold.get(_fold(key))
                if real is not None and _present(meta.get(real)):
                    return meta[real], f"Micro-Manager {where} metadata '{real}'", real
        return None

    def find(*keys: str) -> tuple[Any, str] | None:
        found = lookup(*keys)
        return None if found is None else found[:2]

    def put(name: str, found: tuple[Any, str] | None, unit: str = "") -> None:
        if found is not None and name not in out:
            out[name] = Recorded(_value(found[0]), found[1], unit)

    camera = find("Camera", "Core-Camera")
    put("camera", camera)
    put("exposure_ms", find("Exposure-ms", "Exposure_ms"), "ms")
    elapsed = _mm_elapsed_interval(tf)
    if elapsed is not None:
        out.setdefault("frame_interval_ms", Recorded(round(elapsed[0], 6), elapsed[1], "ms"))
    interval = find("Interval_ms", "IntervalMs")
    if interval is not None and "frame_interval_ms" not in out:
        v = _number(interval[0])
        if v == 0:  # Micro-Manager's "as fast as possible": the interval asked for is none
            out["frame_interval_ms"] = Recorded("0 (as fast as possible: the interval taken is not recorded)",
                                                interval[1])
        else:
            put("frame_interval_ms", interval, "ms")
    put("binning", find("Binning") or (find(f"{camera[0]}-Binning") if camera else None))
    put("bit_depth", find("BitDepth", "Camera-BitDepth") or (find(f"{camera[0]}-BitDepth") if camera else None))
    if camera is None:
        # the devices' properties are named '<device label>-<property>': without the camera's label, EM gain etc.
        # cannot be told from another device's
        return
    cam = str(camera[0])
    put("em_gain", find(*(f"{cam}-{p}" for p in _MM_EM_GAIN)) or find("EMGain", "EM Gain"))
    gain = find(f"{cam}-Gain")
    amplifier = find(*(f"{cam}-{p}" for p in _MM_AMPLIFIER))
    if "em_gain" not in out and gain is not None and amplifier is not None:
        # Andor's iXon adapter: 'Gain' is the EM gain setting, which its output amplifier or EM switch says is on or
        # off. Elsewhere 'Gain' is no EM gain (Photometrics' PVCAM: a gain index 1-3; an sCMOS: a conversion mode):
        # recorded as gain, never compared with em_gain
        amp = str(amplifier[0]).strip().lower()
        if "electron multiplying" in amp or amp in ("on", "em"):
            out["em_gain"] = Recorded(_value(gain[0]), f"{gain[1]}, the EM gain ({amplifier[1]} = {amplifier[0]!r})")
            gain = None
        elif "conventional" in amp or amp == "off":
            out["em_gain"] = Recorded(f"{_EM_OFF} ({gain[1]} = {gain[0]!r} is not applied)",
                                      f"{amplifier[1]} = {amplifier[0]!r}")
            gain = None
    put("gain", gain)
    readout: dict[str, Any] = {}  # image before summary, one entry per property
    for p in _MM_READOUT:
        if (found := lookup(f"{cam}-{p}")) is not None:
            readout.setdefault(found[2], found[0])
    if readout:
        text = ", ".join(f"{k.removeprefix(cam + '-')} {v}" for k, v in readout.items())
        out.setdefault("readout", Recorded(text, "Micro-Manager metadata " + ", ".join(f"'{k}'" for k in readout)))
    put("temperature_c", find(*(f"{cam}-{p}" for p in _MM_TEMPERATURE)), "°C")


def _read_ome(tf, out: dict[str, Recorded]) -> None:
    root = None
    with contextlib.suppress(Exception):  # a description that cannot be read: nothing recorded
        root = ome_root(tf)  # (parsed once: the pixel size read it already)
    if root is None:
        return
    pixels = first_element(root, "Pixels")
    if pixels is not None:
        if (b := _number(pixels.get("SignificantBits"))) is not None:
            out.setdefault("bit_depth", Recorded(b, "OME-XML Pixels/@SignificantBits"))
        if (ti := _number(pixels.get("TimeIncrement"))) is not None:
            unit = pixels.get("TimeIncrementUnit", "s")
            if unit in _OME_TIME_MS:
                out.setdefault("frame_interval_ms", Recorded(ti * _OME_TIME_MS[unit], f"OME-XML Pixels/@TimeIncrement = "
                                                             f"{pixels.get('TimeIncrement')} {unit}", "ms"))
    plane = first_element(root, "Plane")
    if plane is not None and (ex := _number(plane.get("ExposureTime"))) is not None:
        unit = plane.get("ExposureTimeUnit", "s")
        if unit in _OME_TIME_MS:
            out.setdefault("exposure_ms", Recorded(ex * _OME_TIME_MS[unit], f"OME-XML Plane/@ExposureTime = "
                                                   f"{plane.get('ExposureTime')} {unit} (first plane)", "ms"))
    # the image's detector: the one its (first) channel's DetectorSettings name, else the only one; of several
    # detectors none named, none is taken (a two-camera instrument's first detector may not be this image's)
    settings = first_element(pixels, "DetectorSettings") if pixels is not None else None
    detectors = [el for el in root.iter() if local_name(el.tag) == "Detector"]
    named = [d for d in detectors if settings is not None and settings.get("ID") and d.get("ID") == settings.get("ID")]
    detector = named[0] if named else detectors[0] if len(detectors) == 1 else None
    if detector is not None:
        name = " ".join(detector.get(k, "") for k in ("Manufacturer", "Model")).strip()
        if name or detector.get("Type"):
            kind = f" ({detector.get('Type')})" if detector.get("Type") else ""
            out.setdefault("camera", Recorded(f"{name or 'detector'}{kind}",
                                              "OME-XML Detector/@Manufacturer, @Model, @Type"))
        if (g := _number(detector.get("AmplificationGain"))) is not None:
            out.setdefault("em_gain", Recorded(g, "OME-XML Detector/@AmplificationGain"))
        if (g := _number(detector.get("Gain"))) is not None:
            out.setdefault("gain", Recorded(g, "OME-XML Detector/@Gain"))
    if settings is not None:
        if _present(settings.get("Binning")):
            out.setdefault("binning", Recorded(settings.get("Binning"), "OME-XML DetectorSettings/@Binning"))
        if (g := _number(settings.get("Gain"))) is not None:
            out.setdefault("gain", Recorded(g, "OME-XML DetectorSettings/@Gain"))
        if (r := _number(settings.get("ReadOutRate"))) is not None:
            unit = settings.get("ReadOutRateUnit", "MHz")
            out.setdefault("readout", Recorded(f"rate {r:g} {unit}", "OME-XML DetectorSettings/@ReadOutRate"))


def _read_imagej(tf, out: dict[str, Recorded]) -> None:
    meta = (tf.imagej_metadata or {}) if getattr(tf, "is_imagej", False) else {}
    if (fi := _number(meta.get("finterval"))) is not None and fi > 0:
        # in ImageJ's time unit 'tunit' (its default: seconds)
        unit = str(meta.get("tunit", "sec")).strip() or "sec"
        scale = _IMAGEJ_TIME_MS.get(unit.lower(), _OME_TIME_MS.get(unit))
        source = f"ImageJ description 'finterval' = {meta['finterval']}" + (
            f", 'tunit' = {unit}" if "tunit" in meta else " (in seconds: no 'tunit')")
        out.setdefault("frame_interval_ms", Recorded(scale * fi, source, "ms") if scale is not None else
                       Recorded(fi, source, unit))
    if (sp := _number(meta.get("spacing"))) is not None:
        unit = str(meta.get("unit", "")).strip() or "(no unit)"
        out.setdefault("z_spacing", Recorded(sp, "ImageJ description 'spacing' with 'unit'", unit))


def _tiff_format(tf) -> TiffFormat:
    series = []
    for s in tf.series[:4]:
        series.append(f"{s.kind or 'generic'} {s.axes} {tuple(int(v) for v in s.shape)} {np.dtype(s.dtype)}")
    if len(tf.series) > 4:
        series.append(f"... {len(tf.series) - 4} more")
    formats = [f for f in ("ome", "imagej", "micromanager", "mmstack", "shaped", "ndtiff", "andor", "metaseries",
                           "nih", "fluoview", "sis", "stk", "lsm", "nikon?")
               if getattr(tf, f"is_{f.rstrip('?')}", False)]
    page = tf.pages.first
    software = page.tags.get("Software")
    comp = getattr(page.compression, "name", str(page.compression))
    return TiffFormat(pages=len(tf.pages), series=series, formats=formats or ["plain TIFF"], bigtiff=bool(tf.is_bigtiff),
                      compression=comp, software=str(software.value).strip() if software is not None else None)


def _memory_mapped(reader: MovieReader, tf) -> str:
    """Whether the fits' reader memory-maps the movie's files (their pixels uncompressed in one contiguous block)."""
    mapped = reader.memory_mapped
    if mapped and all(mapped):
        return "yes (streamed from a memory map)"
    why = ("compressed pixels (" + getattr(tf.pages.first.compression, "name", "?") + ")"
           if getattr(tf.pages.first.compression, "name", "NONE") != "NONE" else "pixels not in one contiguous block")
    if any(mapped):
        return f"partly ({sum(mapped)} of {len(mapped)} files; the others: page reads)"
    return f"no: {why}; read page by page"


# ------------------------------------------------------------------------------------------------ ADU statistics


def _quantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``qs`` quantiles of the values ``x`` (inverted CDF: every one is a value of ``x``); 8/16-bit integers through a
    histogram (no sort, no float copy)."""
    if x.dtype.kind in "iu" and x.dtype.itemsize <= 2:
        off = int(np.iinfo(x.dtype).min)
        flat = x.ravel()
        counts = np.zeros(1 << (8 * x.dtype.itemsize), np.int64)
        for i in range(0, flat.size, 1 << 18):  # (bincount takes an int64 copy: of a part at a time)
            part = flat[i:i + (1 << 18)]
            counts += np.bincount(part.astype(np.int64) - off if off else part, minlength=counts.size)
        cum = np.cumsum(counts)
        n = int(cum[-1])
        return [float(np.searchsorted(cum, max(math.ceil(q * n), 1)) + off) for q in qs]
    return [float(v) for v in np.quantile(x.ravel(), qs, method="inverted_cdf")]


def adu_statistics(frames: np.ndarray, dtype: Any | None = None) -> AduStats:
    """:class:`AduStats` of raw frames ``(T, H, W)`` (``dtype``: the movie's pixel type, default the array's)."""
    from plexloc.camera.check import find_clip_adu, saturation_adu

    x = np.asarray(frames)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or not x.size:
        raise ValueError(f"adu_statistics takes frames (T, H, W) with a pixel at least, got shape {x.shape}")
    dt = np.dtype(dtype if dtype is not None else x.dtype)
    p1, med, p999 = _quantiles(x, (0.01, 0.5, 0.999))
    lo, hi = float(x.min()), float(x.max())
    full = []
    top = saturation_adu(dt)
    levels = sorted({float(2**b - 1) for b in FULL_SCALE_BITS if top is None or 2**b - 1 < top}
                    | ({top} if top is not None else set()))
    for level in levels:
        if dt.kind in "iu" or level <= hi:
            full.append((level, int(np.count_nonzero(x == level)), int(np.count_nonzero(x > level))))
    clip, clip_source = find_clip_adu(x, dt) if dt.kind in "iu" else (None, "")
    per_px = np.median(x, axis=0) if len(x) > 1 else x[0]  # (one frame: its values, not a float64 copy)
    dim_level, mid_level = _quantiles(per_px, (0.01, 0.5))
    dim_noise = math.nan
    if len(x) > 1:
        dim = per_px <= np.quantile(per_px, 0.1)
        d = np.diff(x[:, dim].astype(np.float64), axis=0)
        # robust spread (MAD) of the differences of consecutive frames, per frame (over sqrt 2)
        dim_noise = float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0)) if d.size else math.nan
    return AduStats(len(x), int(x.size), lo, p1, med, p999, hi, full, clip, float(dim_level), dim_noise,
                    float(mid_level), clip_source, int(np.count_nonzero(x == clip)) if clip is not None else 0)


# ------------------------------------------------------------------------------------------------ reading


def read_movie_info(path: str | os.PathLike, *, head_frames: int = HEAD_FRAMES,
                    max_pixels: int = HEAD_PIXELS) -> MovieInfo:
    """Open the movie as the fits do and read what its metadata record and its first frames' ADU statistics.

    Args:
        path: a TIFF file or a folder of TIFF files (:func:`plexloc.io.tiff.open_movie`).
        head_frames: the ADU statistics are measured on at most this many first frames ...
        max_pixels: ... and at most this many pixels (whole frames, at least two where there are two), so that a
            20 GB movie of large frames is as quick and small as any.

    Raises:
        InputError: as :func:`~plexloc.io.tiff.open_movie` (missing path, empty folder, not a TIFF, corrupt TIFF, ...:
            the message names the file).
    """
    from plexloc.camera.check import head_frames as check_head_frames

    if int(head_frames) < 1:
        raise InputError(f"head_frames must be >= 1, got {head_frames}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = open_movie(path)
    notes = [str(w.message) for w in caught]
    with reader:
        tf = reader.tiff_file  # the first file as the reader parsed it (opened once, not twice)
        files = reader.data_files
        size = 0
        for f in files:
            with contextlib.suppress(OSError):
                size += Path(f).stat().st_size
        info = MovieInfo(path=str(path), files=[str(f) for f in files], n_frames=reader.n_frames,
                         frame_shape=tuple(reader.frame_shape), dtype=str(reader.dtype), bytes_on_disk=size,
                         memory_mapped=_memory_mapped(reader, tf), tiff=_tiff_format(tf), notes=notes)
        try:
            info.pixel_size = reader.pixel_size
        except Exception as err:  # damaged metadata: said, the frames may still be fine
            info.pixel_size_error = str(err)
        roi_error = None
        try:
            info.roi_offset = reader.roi_offset
        except InputError as err:  # a fit of a multi-channel model refuses the movie with this error
            info.roi_offset_error, roi_error = str(err), err
        recorded: dict[str, Recorded] = {}
        for read in (_read_micro_manager, _read_ome, _read_imagej):
            try:
                read(tf, recorded)
            except Exception as err:  # noqa: BLE001 - metadata are a courtesy: said, never fatal
                info.notes.append(f"{path}: could not read the {read.__name__.removeprefix('_read_').replace('_', '-')} "
                                  f"metadata ({type(err).__name__}: {err})")
        info.recorded = {k: recorded[k] for k in RECORDED_FIELDS if k in recorded}
        h, w = reader.frame_shape
        # at least two frames where the movie has them (the dimmest pixels' noise, that tells the offset from the
        # noise below it, needs two), else as many whole frames as max_pixels holds
        k = max(min(2, int(head_frames), reader.n_frames), min(int(head_frames), reader.n_frames,
                                                               int(max_pixels) // max(h * w, 1)))
        # the camera check's first frames are read with them (kept for compare_camera: not opened again)
        raw = reader[:max(k, min(check_head_frames(reader.frame_shape), reader.n_frames))]
        info.adu = adu_statistics(raw[:k], reader.dtype)
        _later_clipping(info.adu, reader, raw)
        info._head = _MovieHead(raw, reader.n_frames, tuple(reader.frame_shape), reader.dtype, info.roi_offset,
                                roi_error)
    return info


def _later_clipping(adu: AduStats, reader, raw) -> None:
    """Where the first frames show no clipping level: look for it as the fits do, in the camera check's first frames
    ``raw`` and frames spread over the rest of the movie (:func:`plexloc.camera.check.later_frames`), and keep it on
    ``adu`` (``later_*``). Before session 51 ``plexloc info`` read the first frames only and showed no clipping line
    for a movie that the fits then flagged as clipped from later frames."""
    from plexloc.camera.check import find_clip_adu, later_frames

    if adu.clip_level is not None or np.dtype(reader.dtype).kind not in "iu":
        return
    more = later_frames(reader.n_frames, len(raw))
    if not more:
        return
    later = np.concatenate([np.asarray(reader[i:i + 1]) for i in more])
    level, how = find_clip_adu(np.concatenate([np.asarray(raw), later]), reader.dtype)
    adu.later_frames = len(more)
    if level is not None:
        adu.later_clip_level, adu.later_clip_source = level, how
        adu.later_clip_pixels = int(np.count_nonzero(later == level))


@dataclass
class _MovieHead:
    """The first frames :func:`read_movie_info` read (raw ADU) and what the camera check asks of the movie besides, kept
    on the :class:`MovieInfo` (not a field: neither shown nor written) so that :func:`compare_camera` checks them
    without opening and parsing the movie a second time (a 50,000-page OME-TIFF: 1.7 s)."""

    frames: np.ndarray
    n_frames: int
    frame_shape: tuple[int, int]
    dtype: np.dtype
    roi: RoiOffset | None
    roi_error: InputError | None = None

    @property
    def roi_offset(self) -> RoiOffset | None:
        """As :attr:`plexloc.io.tiff.MovieReader.roi_offset`: the metadata's error raised again."""
        if self.roi_error is not None:
            raise self.roi_error
        return self.roi

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(self.n_frames)
        if stop > len(self.frames):
            raise IndexError(f"frames {start}..{stop - 1}: only the first {len(self.frames)} were kept")
        return np.array(self.frames[start:stop])  # a new array, as MovieReader's


# ------------------------------------------------------------------------------------------------ camera


@dataclass
class CameraComparison:
    """A camera's settings beside what the movie's metadata and first frames say.

    ``rows``: ``(setting, the camera's value, the movie's value, where each came from)``; ``warnings``: one sentence
    each, naming both sources; ``check``: :func:`plexloc.camera.check.check_camera`'s result as a fit gets it (None
    where it could not run: ``check_error`` says why)."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    check: Any = None
    check_error: str = ""
    #: the channel whose camera the movie was compared with (cameras of one movie per channel); None for a split view,
    #: whose every channel is checked in its own box
    channel: int | None = 0

    def to_dict(self) -> dict[str, Any]:
        check = None
        if self.check is not None:
            check = {"frames": self.check.frames, "warnings": self.check.warnings, "notes": self.check.notes,
                     "finding": self.check.finding,
                     "channels": [{"channel": c.channel, "noise_ratio": c.noise_ratio, "noise_note": c.noise_note,
                                   "saturated": c.saturated, "pixels": c.pixels, "saturation_adu": c.saturation_adu,
                                   "level_source": c.level_source, "settings": c.settings}
                                  for c in self.check.channels]}
        return {"channel": self.channel,
                "rows": [dict(zip(("setting", "camera", "movie", "sources"), r)) for r in self.rows],
                "warnings": list(self.warnings), "notes": list(self.notes), "check": check,
                "check_error": self.check_error}


def _field_name(cfg, name: str, fallback: str) -> str:
    """``config.yaml's camera.em_gain`` where the loaders kept the file, else ``fallback's em_gain``."""
    src = getattr(cfg, "_source", None)
    return f"{src[0]}'s {src[1]}{name}" if src else f"{fallback}'s {name}"


def _disagree(a: float, b: float) -> bool:
    return abs(a - b) > SETTING_TOLERANCE * max(abs(a), abs(b), 1e-12)


def compare_camera(info: MovieInfo, cameras: list, *, camera_file: str | os.PathLike, px_size_nm=None,
                   split=None, roi_offset_px: tuple[int, int] | None = None, channel: int = 0) -> CameraComparison:
    """The camera configuration(s) ``cameras`` (one per channel, as :func:`plexloc.config.load_camera_configs` or a
    configuration's channels give them) beside the movie ``info``: the EM gain, the bit depth against
    ``saturation_adu``, the baseline against the dimmest pixels, the pixel size ``px_size_nm`` (x, y; a
    configuration's) against the metadata's; and the camera check (:func:`plexloc.camera.check.check_camera`) on the
    movie's first frames as the fits run it. ``split``: a configuration's split_view (each channel's box cut out as
    the fits cut it, with its own camera; the settings compared are channel 0's); ``roi_offset_px``: the
    configuration's, used where the metadata record none (full-chip sCMOS maps are cut there, as ``fit --method mle``
    does). Without ``split``, several cameras are one movie per channel: the movie is compared with ``channel``'s
    camera alone, and a note names it.

    Raises:
        ValueError: ``channel`` not one of the cameras' (without ``split``)."""
    from plexloc.camera.check import saturation_adu

    out = CameraComparison(channel=None if split is not None else channel)
    name = str(camera_file)
    if split is None:
        if not 0 <= channel < len(cameras):
            raise ValueError(f"channel {channel} of {len(cameras)} camera(s) of {name}")
        if len(cameras) > 1:
            out.notes.append(f"{name} has {len(cameras)} channels, each with its own movie: {info.path} is compared "
                             f"with channel {channel}'s camera; for another channel's movie, give --channel N")
        cameras = [cameras[channel]]
    cam0 = cameras[0]
    kind = getattr(cam0, "kind", "")
    out.rows.append(("kind", str(kind), info.recorded["camera"].text if "camera" in info.recorded else "not recorded",
                     f"{_field_name(cam0, 'kind', name)}; " + (info.recorded["camera"].source
                                                               if "camera" in info.recorded else "")))
    # EM gain
    em = getattr(cam0, "em_gain", None)
    rec = info.recorded.get("em_gain")  # (a device's 'Gain' only where its EM amplifier says it is the EM gain)
    if em is not None:
        out.rows.append(("em_gain", f"{em:g}", rec.text if rec is not None else "not recorded",
                         _field_name(cam0, "em_gain", name) + (f"; {rec.source}" if rec is not None else "")))
        if rec is not None and isinstance(rec.value, float) and _disagree(float(em), rec.value):
            out.warnings.append(
                f"the EM gain differs: {_field_name(cam0, 'em_gain', name)} is {em:g} but the movie's metadata record "
                f"{rec.text} ({rec.source}, in {info.path}): photons and background will be off by about "
                f"{max(em, rec.value) / max(min(em, rec.value), 1e-12):.2g}x; set em_gain to the gain the movie was "
                "taken with (a camera's gain setting may differ from its real gain: plexloc calibrate-camera measures it)")
        elif rec is not None and str(rec.value).startswith(_EM_OFF) and float(em) > 1:
            out.warnings.append(
                f"the movie was taken with the EM amplifier off ({rec.source}, in {info.path}) but "
                f"{_field_name(cam0, 'em_gain', name)} is {em:g}: photons and background will be off by about {em:.2g}x; "
                "measure the camera as the movie was taken (plexloc calibrate-camera) and give that camera")
    elif rec is not None and isinstance(rec.value, float) and rec.value > 1 and kind in ("scmos", "ideal"):
        out.warnings.append(
            f"the movie's metadata record an EM gain of {rec.text} ({rec.source}, in {info.path}) but "
            f"{_field_name(cam0, 'kind', name)} is {kind}, which has none: an EMCCD movie needs kind: emccd with its "
            "em_gain")
    # bit depth against the clipping level
    sat = getattr(cam0, "saturation_adu", None)
    bits = info.recorded.get("bit_depth")
    if bits is not None and isinstance(bits.value, float) and bits.value.is_integer() and 8 <= bits.value < 32:
        full = 2.0 ** int(bits.value) - 1
        dtype_max = saturation_adu(info.dtype)
        out.rows.append(("saturation_adu", "not set" if sat is None else f"{sat:g}",
                         f"{full:g} ({int(bits.value)}-bit)", f"{_field_name(cam0, 'saturation_adu', name)}; {bits.source}"))
        if sat is None and dtype_max is not None and full < dtype_max:
            out.warnings.append(
                f"the movie's metadata give a {int(bits.value)}-bit camera ({bits.source}, in {info.path}), whose values "
                f"clip at {full:g} ADU, but {_field_name(cam0, 'saturation_adu', name)} is not set, so the fits take the "
                f"{info.dtype} maximum {dtype_max:g}: set saturation_adu: {full:g} so that clipped spots are flagged")
    # a clipping level the movie's own pixels exceed: not where this camera clips
    adu = info.adu
    above_told = baseline_told = False  # what the camera check then does not say again
    if isinstance(sat, (int, float)) and adu is not None and math.isfinite(adu.max) and adu.max > sat:
        above_told = True
        out.warnings.append(
            f"{_field_name(cam0, 'saturation_adu', name)} is {sat:g} ADU, but pixels of the movie's first {adu.frames} "
            f"frames reach {adu.max:g} ({info.path}): the camera does not clip there, and the fits would flag every "
            "spot above it as saturated; set it to the level the camera's values pile up at (plexloc info shows any), "
            "or leave it out")
    # baseline against the dimmest pixels
    base = getattr(cam0, "baseline", None)
    if isinstance(base, (int, float)) and adu is not None and math.isfinite(adu.mid_level):
        noise = math.isfinite(adu.dim_noise)
        out.rows.append(("baseline", f"{base:g} ADU", f"<= about {adu.mid_level:g} ADU (half of the pixels; the "
                         f"dimmest 1 % {adu.dim_level:g})" + (
                             "" if noise else "; one frame: its noise below the offset is not told from a baseline "
                             "set too high, not checked"),
                         f"{_field_name(cam0, 'baseline', name)}; median and 1st percentile of the pixels' medians over the "
                         f"first {adu.frames} frames"))
        # the medians' median sits below a scalar offset by a few times their own noise at most (which one frame
        # cannot measure), and does not move with the pixel offsets' spread (their 1st percentile does: a right scalar
        # baseline over sCMOS offsets spread by 3-10 ADU was told as too high at 0-2 photons/px)
        margin = 3.0 * 1.25 * adu.dim_noise / math.sqrt(adu.frames) + 1.0 if noise else math.inf
        if base > adu.mid_level + margin:
            baseline_told = True
            out.warnings.append(
                f"{_field_name(cam0, 'baseline', name)} is {base:g} ADU but half of the pixels of {info.path} sit at "
                f"or below {adu.mid_level:g} ADU (their medians over the first {adu.frames} frames): a baseline above the "
                "camera's offset takes photons away (negative photons in dim pixels); measure it on dark frames "
                "(plexloc calibrate-camera)")
    # pixel size
    if px_size_nm is not None:
        px = (float(px_size_nm[0]), float(px_size_nm[1]))
        got = info.pixel_size
        out.rows.append(("px_size_nm", f"{px[0]:g} x {px[1]:g} nm",
                         f"{got.x_nm:g} x {got.y_nm:g} nm" if got is not None else "not recorded",
                         f"{name}'s px_size_nm; " + (got.source if got is not None else "")))
        message = pixel_size_mismatch(got, px, what=f"{name} says", path=info.path)
        if message:
            out.warnings.append(message)
    try:
        out.check = _camera_check(info, cameras, split=split, roi_offset_px=roi_offset_px, channel=channel)
    except InputError as err:  # the fits would stop here too (camera maps that do not fit the movie, ...)
        out.check_error = str(err)
    if out.check is not None:  # said above: not again by the camera check
        out.check.baseline_told, out.check.above_level_told = baseline_told, above_told
    return out


def _camera_check(info: MovieInfo, configs: list, *, split, roi_offset_px, channel: int = 0):
    """:func:`plexloc.camera.check.check_camera` on the movie's first frames, as ``fit`` and ``detect`` run it: the
    clipping level of the raw frames (:func:`~plexloc.camera.check.clip_level`), the frames converted to photons by the
    camera, :func:`~plexloc.camera.check.head_frames` of them; split-view channels cut out and flipped as the fits do;
    full-chip sCMOS maps cut at the ROI (:func:`plexloc.camera.models.cut_maps_to_movie`). The frames
    :func:`read_movie_info` kept where they are enough, else the movie is opened again. ``channel``: without
    ``split``, the channel whose camera ``configs`` holds (named in the errors about its maps)."""
    import torch

    from plexloc.camera import camera_from_config
    from plexloc.camera.check import check_camera, clip_level, head_frames
    from plexloc.camera.models import cut_maps_to_movie

    path = info.path
    cams = [camera_from_config(c) for c in configs]
    head: _MovieHead | None = getattr(info, "_head", None)
    shape = tuple(split.boxes[0][3:1:-1]) if split is not None else tuple(info.frame_shape)
    if head is not None and len(head.frames) >= min(head_frames(shape), head.n_frames):
        opened: Any = contextlib.nullcontext(head)
    else:  # a MovieInfo made otherwise, or a split view's channels that need more frames than were read
        with warnings.catch_warnings():  # what opening the movie warns about, read_movie_info noted already
            warnings.simplefilter("ignore")
            opened = open_movie(path)
    with opened as movie:
        k = min(head_frames(shape), len(movie))
        raw = movie[:k]
        if split is not None:
            from plexloc.io.splitview import check_boxes, split_frames

            check_boxes(split, movie.frame_shape, source=path)
            parts = split_frames(np.asarray(raw, dtype=np.float32), split)
            chans = [parts[:, c] for c in range(parts.shape[1])]
        else:
            chans = [raw]  # (one camera: the channel's whose movie this is)
            cam = cams[0]
            if getattr(cam, "map_shape", None) is not None and tuple(cam.map_shape) != shape:
                cut = cut_maps_to_movie(cam, [movie], None if movie.roi_offset is not None else roi_offset_px,
                                        shape, channel=channel, source=path,
                                        given_by="the configuration's roi_offset_px")
                if cut is not None:
                    cams[0] = cut[0]
        levels = [clip_level(np.asarray(a), cam, movie.dtype) for a, cam in zip(chans, cams)]
        photons = [cam.to_photons(torch.as_tensor(np.asarray(a, dtype=np.float32))) for a, cam in zip(chans, cams)]
        return check_camera(photons, cams, dtype=movie.dtype, source=str(path), warn=False, levels=levels)


# ------------------------------------------------------------------------------------------------ text


def _size(n: int) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.3g} {unit}"
    return f"{n} B"


def format_movie_info(info: MovieInfo, comparison: CameraComparison | None = None) -> str:
    """The short readable block ``plexloc info`` prints."""
    h, w = info.frame_shape
    files = info.files
    shown = files[0] if len(files) == 1 else f"{len(files)} files, {Path(files[0]).name} ... {Path(files[-1]).name}"
    t = info.tiff
    lines = [
        f"movie           {info.path}",
        f"files           {shown}",
        f"frames          {info.n_frames} of {h} x {w} px (rows x columns), {info.dtype}",
        f"on disk         {_size(info.bytes_on_disk)} ({info.bytes_on_disk} bytes)",
        f"memory-mapped   {info.memory_mapped}",
        f"TIFF            {', '.join(t.formats)}; {t.pages} page(s){', BigTIFF' if t.bigtiff else ''}, compression "
        f"{t.compression}; series: {'; '.join(t.series)}" + (f"; software {t.software!r}" if t.software else ""),
        "metadata" + (" (of the first file, as the fits read them):" if len(files) > 1 else ":"),
    ]
    ps = info.pixel_size
    lines.append("  pixel size         " + (f"{ps.x_nm:g} x {ps.y_nm:g} nm ({ps.source})" if ps is not None else
                                         f"unreadable: {info.pixel_size_error}" if info.pixel_size_error else
                                         "not recorded"))
    roi = info.roi_offset
    lines.append("  ROI offset         " + (f"x {roi.x}, y {roi.y} px on the chip ({roi.source}); fit uses it (multi-channel "
                                            "transforms, full-chip sCMOS maps)"
                                         if roi is not None else
                                         f"unusable: {info.roi_offset_error}" if info.roi_offset_error else
                                         "not recorded (fit uses (0, 0), or --roi-offset X Y; --method mle: the "
                                         "configuration's roi_offset_px)"))
    for key, label in RECORDED_FIELDS.items():
        rec = info.recorded.get(key)
        lines.append(f"  {label:<18} " + (f"{rec.text} ({rec.source})" if rec is not None else "not recorded"))
    a = info.adu
    if a is not None:
        from plexloc.camera.check import saturation_adu

        dtype_max = saturation_adu(info.dtype)
        lines.append(f"ADU, first {a.frames} frame(s), {a.pixels} px:")
        lines.append(f"  min {a.min:g}, 1% {a.p1:g}, median {a.median:g}, 99.9% {a.p99_9:g}, max {a.max:g}")
        parts = []
        for level, n, above in a.at_full_scale:
            what = (f"{info.dtype} maximum" if level == dtype_max else f"{int(round(math.log2(level + 1)))}-bit")
            parts.append(f"{level:g} ({what}) {n} px = {100 * n / max(a.pixels, 1):.3g} %"
                         + (f" ({above} px above)" if above else ""))
        if parts:
            lines.append("  at full scale: " + "; ".join(parts))
        if a.clip_level is not None:
            lines.append(f"  clipping: the values pile up at {a.clip_level:g} ADU ({a.clip_pixels} px = "
                         f"{100 * a.clip_pixels / max(a.pixels, 1):.3g} %) and none is above: the camera clips there"
                         + (" (no full scale 2^k - 1: its full well, or its offset and gain, end its range there)"
                            if a.clip_source == "pile-up" else "")
                         + f"; saturation_adu: {a.clip_level:g} in the camera makes it the level the fits flag "
                         "clipped spots at (without it they look for it in the first frames and in frames spread over "
                         "the movie)")
        if a.later_clip_level is not None:
            lines.append(f"  clipping in later frames: {a.later_frames} frames spread over the rest of the movie pile "
                         f"up at {a.later_clip_level:g} ADU ({a.later_clip_pixels} px = "
                         f"{100 * a.later_clip_pixels / max(a.later_frames * a.pixels // max(a.frames, 1), 1):.3g} %), "
                         "the first frames do not: the camera clips there later in the movie"
                         + (" (no full scale 2^k - 1: its full well, or its offset and gain, end its range there)"
                            if a.later_clip_source == "pile-up" else "")
                         + "; the fits find this level and flag the rows fitted from clipped pixels (saturated_px); "
                         f"saturation_adu: {a.later_clip_level:g} in the camera sets it")
        dim = f"  dimmest pixels: 1% of the pixels' medians at or below {a.dim_level:g} ADU (the camera offset is at most about this)"
        if math.isfinite(a.dim_noise):
            dim += f"; their noise {a.dim_noise:.3g} ADU per frame"
        lines.append(dim)
    if comparison is not None:
        lines.append("camera:")
        for setting, cam, movie, src in comparison.rows:
            lines.append(f"  {setting:<18} camera {cam} | movie {movie} ({src.strip().rstrip(';')})")
        if comparison.check is not None:
            c = comparison.check
            if c.warnings:
                lines.append(f"  camera check ({c.frames} frames, as fit runs it): {len(c.warnings)} warning(s), below")
            else:
                lines.append(f"  camera check ({c.frames} frames, as fit runs it): {c.finding}")
            lines += [f"  note: {n}" for n in c.notes]
        elif comparison.check_error:
            lines.append(f"  camera check could not run (fit would stop here too): {comparison.check_error}")
        lines += [f"  note: {n}" for n in comparison.notes]
        lines += [f"warning: {w}" for w in comparison.warnings]
        if comparison.check is not None:
            lines += [f"warning: camera check: {w}" for w in comparison.check.warnings]
    lines += [f"warning: {n}" for n in info.notes]  # what opening the movie warned about, or unreadable metadata
    return "\n".join(lines)
