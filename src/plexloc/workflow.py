"""From a lab's movies to their localizations, image and report in one call (``plexloc process``).

:func:`process_movies` runs, for each acquisition (one movie, or one movie per channel of a multi-channel model), the
chain that the separate commands run one by one, with their defaults, into ``OUT/NAME/``:

1. ``locs.csv``: the fit (:func:`plexloc.infer.fit_movie_to_file`, or with ``method="mle"`` the maximum-likelihood
   fitter's :func:`plexloc.mle.fit_movie_to_file`), written as the frames are fitted;
2. ``drift.png`` and ``locs_dc.csv``: the drift estimated (:func:`plexloc.post.drift.estimate_drift`, RCC as plexloc
   drift's default, or COMET, with plexloc drift's time windows and largest drift searched for,
   :attr:`ProcessOptions.drift_segments` and :attr:`ProcessOptions.max_drift_nm`) and subtracted
   (:func:`~plexloc.post.drift.apply_drift`). Where the engine calls its estimate unreliable (``info["unreliable"]``,
   with an :class:`~plexloc.post.drift.UnreliableDriftWarning`), or there are too few localizations to estimate it, the
   drift is not subtracted: no ``locs_dc.csv``, the steps below take ``locs.csv`` (a fiducial markers' estimate:
   ``locs_no_fiducials.csv``, ``locs.csv`` without the markers' rows), and the summary says why; where
   only a 3D table's z curve is unreliable (``info["z_unreliable"]``), x and y are subtracted and z is not
   (``z_subtracted`` false in the summary's drift); where its z drift does not differ from none beyond the noise
   (``info["z_significant"]`` false: the engine's z curve is 0), the summary's drift says so (``z_significant``,
   ``z_p_value`` and the curve that was not subtracted, ``z_estimated_rms_nm``);
3. ``merged.csv``: :func:`plexloc.post.merge.merge_localizations` (50 nm, a gap of 1 frame);
4. ``report.html``: :func:`plexloc.render.report.build_report` of the table before merging (NeNA needs a
   molecule's consecutive frames), its FRC that of the merged table (``frc_table``), the value summary.json gives;
5. ``image.png``: the merged table rendered over the movie's whole field of view (the method of
   :func:`plexloc.render.image.default_method`: Gaussian with each localization's own sigma where every row has one,
   else a histogram; 10 nm pixels unless set, coarser where the image would be over :data:`MAX_IMAGE_PX` pixels on a
   side), with a scale bar, and its key ``image_legend.png`` (:func:`plexloc.render.figures.legend_figure`): the
   scale bar's length and the pixel; a 3D table (finite z that is not one value) coloured by z
   (:func:`~plexloc.render.image.render_color`, the 1 % to 99 % quantiles of z over the colormap), its key the z
   scale in nm and the scale bar's length, as ``plexloc render --color-by z`` writes it;
6. ``summary.json``: rows, frames, frames/s, the drift's range, uncertainty, windows and largest drift searched for,
   NeNA of the table before merging, the FRC resolution of the merged table, the image's z range (3D), the report's
   summary and what it could not show, and every warning issued for the acquisition: those of its steps, those
   issued as the options were read before it (``warnings_before`` of :func:`process_movies`: the camera file's
   :class:`~plexloc.config.CameraDefaultsWarning`, which ``plexloc process`` collects), and a network that its own
   validation calls not ready to fit (:func:`plexloc.infer.model_readiness_note`).

Paths in ``summary.json``, ``summary.csv`` and ``report.html``: a file inside ``OUT`` relative to ``OUT``
(``cell1/locs.csv``); the movies and the model as the caller gave them, or with
``ProcessOptions(input_names="file-name")`` (the job service's application asks for it) by their file names, and any
other absolute path by its file name too: a job's files name no path of its worker's scratch folder. What is printed
keeps the paths as they are on this machine.

Nothing is half-written: an acquisition's files are written into a hidden folder ``OUT/.NAME.partial-*`` that is
renamed to ``OUT/NAME`` at the end (an earlier ``OUT/NAME`` is replaced only then). An acquisition that fails (a
corrupt TIFF, a step's error) gets a folder too, with the files finished before the error, ``summary.json`` with
``"status": "failed"`` and the error, and ``FAILED.txt``; the other acquisitions go on. A failure does not replace
an earlier result in ``OUT/NAME``: it goes beside it to ``OUT/NAME.failed`` (removed when a later run succeeds). No
entry of ``OUT`` is replaced that is not the same movie's earlier result (:func:`_assign_names`): where ``NAME`` is
another movie's result, a folder plexloc process did not write, the movie itself, or a name that differs in case
only, the acquisition takes the next free name (``NAME_2``), with a warning; a movie given twice is processed once
(:func:`_drop_repeats`). An interrupt (Ctrl-C) leaves
the acquisition under way as it was before. A full disk or quota (``ENOSPC``, ``EDQUOT``) ends the run as an interrupt
does (the acquisitions after it would fail too, after their fits), with a
:class:`~plexloc.io._atomic.DiskFullError` naming the file in ``OUT/NAME`` that could not be written and the space
left.

Last, ``OUT/summary.csv`` is written (atomically: a temporary file renamed) with one row per acquisition folder in
``OUT`` (:func:`folder_results`): this run's results first, in their order, then the folders of earlier runs not
processed now, by name, read from their ``summary.json`` (one that cannot be read: status ``unknown``). So it
describes what ``OUT`` holds, the newest result of each name: also after an interrupt or a full disk (written before
the error is raised), and after a rerun on fewer movies (the other folders stay, and stay listed); a folder deleted by
hand leaves it at the next run. After an interrupt or a full disk it also lists, after this run's results, every
acquisition of the run not finished (:func:`_write_summary`): one with no folder as a row of status ``interrupted``
(the one under way) or ``not_started``, one with an earlier folder as that folder's row, its error saying that it was
not processed again.

Which folder is a movie's earlier result: ``summary.json`` records the movies as given (``movies``) and, with
``input_names="as-given"``, their absolute paths, links resolved (``movies_resolved``), by which a movie is
recognised from whatever working folder it is given (:func:`_same_movies`); a ``summary.json`` without them (written
before session 44, or by a service job) is compared by the paths as given, as before: from another working folder
a relative path is not recognised, and the rerun goes to ``NAME_2`` with a warning that says why.

Example:
    >>> from plexloc.workflow import acquisition_name
    >>> acquisition_name(["data/cell1_ch0.tif", "data/cell1_ch1.tif"])
    'cell1'
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from plexloc.errors import InputError
from plexloc.post.drift import MAX_DRIFT_NM  # the largest drift searched for (--max-drift): the drift engines' default
from plexloc.table import LocTable

__all__ = [
    "MAX_DRIFT_NM",
    "MAX_IMAGE_PX",
    "INPUT_NAMES",
    "SUMMARY_COLUMNS",
    "Acquisition",
    "AcquisitionResult",
    "ProcessOptions",
    "ProcessWarning",
    "acquisition_name",
    "folder_results",
    "format_summary",
    "group_movies",
    "noting_warnings",
    "process_acquisition",
    "process_movies",
    "write_summary_csv",
]

#: the longest side of image.png, in pixels, where the pixel size is not given: a larger field of view gets coarser
#: pixels (a 2048 x 2048 sCMOS chip of 108 nm pixels at 10 nm would be 22,000 pixels on a side, about 15 GB to render)
MAX_IMAGE_PX = 8192
#: the columns of ``summary.csv`` (and of the printed table), in order: the acquisition's folder name; ``ok`` or
#: ``failed`` (``unknown``: a summary.json that cannot be read; after an interrupt or a full disk, ``interrupted`` and
#: ``not_started``: an acquisition of the run without a folder); the fit's localizations and frames and frames per second (the network's or MLE's loop); the drift
#: (``applied``, ``unreliable``, ``not estimated``, ``off``) and its largest lateral range over the movie (x or y, nm);
#: the merged table's rows; NeNA (nm, the table before merging); the FRC resolution (nm, the merged table; empty
#: where the curve gives none); the acquisition's seconds; its movies (``;``-separated); a failure's error
SUMMARY_COLUMNS = ("name", "status", "rows", "frames", "frames_per_s", "drift", "drift_range_nm", "merged_rows",
                   "nena_nm", "frc_nm", "seconds", "movies", "error")
_PARTIAL = ".partial-"
_MOVIE_SUFFIXES = (".tif", ".tiff", ".btf", ".ome")


class ProcessWarning(UserWarning):
    """What :func:`process_movies` did other than asked (a movie given twice processed once, a folder name taken, so
    the next free one used) or an output with nothing in it (an empty image.png); ``plexloc process`` shows it on a
    line of its own."""


@dataclass(frozen=True)
class ProcessOptions:
    """What :func:`process_movies` does to each acquisition (the defaults are those of the separate commands).

    Args:
        method: ``"network"`` (``model``: a run folder or model file) or ``"mle"`` (``config``: a microscope
            configuration file, or a loaded :class:`~plexloc.config.models.SimulationConfig`).
        camera: the movies' camera(s) (:func:`plexloc.config.load_camera_configs`), default the model's or
            configuration's.
        device: where the network (and RCC's FFTs) run.
        threshold, batch_frames: the network's detection threshold and frames per block (None: its defaults).
        refine_mle: refit each localization by maximum likelihood with its frame's other localizations modelled:
            the network's, as :func:`plexloc.infer.fit_movie`'s, and (since session 51) ``"mle"``'s, as
            :func:`plexloc.mle.fit_movie`'s.
        precision: the network's arithmetic (``"auto"``, ``"float32"``, ``"bfloat16"``), as
            :func:`plexloc.infer.fit_movie`'s.
        split_view: a :class:`~plexloc.config.models.SplitViewConfig` that cuts each movie into the channels (over
            the model's or the configuration's own; None: theirs).
        roi_offset_px: chip pixel (x, y) at the reference channel image's corner (None: the movie's metadata, else
            the configuration's or 0 0), as ``plexloc fit --roi-offset``.
        filters: keyword arguments of :func:`plexloc.post.filter.filter_localizations` applied while fitting
            (``min_prob``, ``max_sigma_nm``, ``min_photons``, ``max_photons``; None values are left out).
        drift: estimate and subtract the drift; ``drift_engine``: ``"rcc"`` (plexloc drift's default: on a
            10,000-frame 64 x 64 movie, 0.3 s against COMET's 411 s after a 98 s fit on one CPU thread) or
            ``"comet"`` (RCC where comet-smlm is not installed) or ``"fiducials"`` (fiducial markers found in the
            table, :func:`plexloc.post.fiducials.fiducial_drift` with ``fiducial_options``; their rows are removed
            from ``locs_dc.csv`` unless ``keep_fiducials``, the summary's drift says how many,
            ``fiducial_rows_removed``); ``drift_segments``: its time windows (an integer >= 2, plexloc drift
            --segments, default 10); ``max_drift_nm``: the largest drift searched for (nm, > 0; COMET's pair radius,
            RCC's window; plexloc drift --max-drift, default :data:`MAX_DRIFT_NM`); rcc and comet only.
        fiducial_options: keyword arguments of :func:`plexloc.post.fiducials.fiducial_settings` for
            ``drift_engine`` ``"fiducials"`` (plexloc drift's fiducial options,
            :func:`plexloc.cli.drift.add_fiducial_options`; None values: the defaults); checked before any fit, and
            recorded with the defaults filled in the summary's drift (``fiducial_settings``).
        merge: merge each on-event into one localization (``merge_radius_nm``, ``merge_gap``) before the image and
            FRC.
        render_px_nm: the image's pixel (None: 10 nm, coarser where the field of view is over :data:`MAX_IMAGE_PX`
            pixels at 10 nm); ``frc_px_nm``: the FRC images' pixel.
        input_names: how ``summary.json``, ``summary.csv`` and ``report.html`` name the movies and the model:
            ``"as-given"`` (default: as the caller gave them) or ``"file-name"`` (the file name alone: the job
            service, whose worker gives the paths of its own scratch folder). Paths inside ``out`` are named relative
            to it either way.
    """

    method: str = "network"
    model: str | os.PathLike | None = None
    config: Any = None
    camera: Any = None
    device: Any = "cpu"
    threshold: float | None = None
    batch_frames: int | None = None
    refine_mle: bool = False
    precision: str = "auto"
    split_view: Any = None
    roi_offset_px: tuple[int, int] | None = None
    filters: dict[str, float | None] = field(default_factory=dict)
    drift: bool = True
    drift_engine: str = "rcc"
    drift_segments: int = 10
    max_drift_nm: float = MAX_DRIFT_NM
    fiducial_options: dict[str, Any] = field(default_factory=dict)
    merge: bool = True
    merge_radius_nm: float = 50.0
    merge_gap: int = 1
    render_px_nm: float | None = None
    frc_px_nm: float = 5.0
    input_names: str = "as-given"


#: the values of :attr:`ProcessOptions.input_names`
INPUT_NAMES = ("as-given", "file-name")


@dataclass(frozen=True)
class Acquisition:
    """One acquisition: its folder's ``name`` and its movies (one, or one per channel in channel order)."""

    name: str
    movies: tuple[Path, ...]


@dataclass
class AcquisitionResult:
    """What :func:`process_acquisition` did: ``summary`` is what ``summary.json`` holds."""

    acquisition: Acquisition
    folder: Path
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.summary.get("status") == "ok"

    def row(self) -> dict[str, Any]:
        """The acquisition's row of ``summary.csv`` (:data:`SUMMARY_COLUMNS`)."""
        s = self.summary
        drift = s.get("drift") or {}
        span = drift.get("range_nm")
        return {
            "name": self.acquisition.name,
            "status": s.get("status"),
            "rows": (s.get("fit") or {}).get("rows"),
            "frames": (s.get("fit") or {}).get("frames"),
            "frames_per_s": _rounded((s.get("fit") or {}).get("frames_per_s"), 1),
            "drift": drift.get("state"),
            "drift_range_nm": _rounded(max(span[:2]), 1) if span else None,
            "merged_rows": (s.get("merge") or {}).get("rows"),
            "nena_nm": _rounded((s.get("nena") or {}).get("sigma_nm"), 1),
            "frc_nm": _rounded((s.get("frc") or {}).get("resolution_nm"), 1),
            "seconds": _rounded(s.get("seconds"), 1),
            "movies": ";".join(str(m) for m in (s.get("movies") or self.acquisition.movies)),
            "error": s.get("error"),
        }


def _rounded(value: Any, digits: int) -> float | None:
    return round(float(value), digits) if value is not None and math.isfinite(float(value)) else None


def _finite(value: Any) -> float | None:
    """A float for the JSON summary: NaN and infinities (no value) as None."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


class _Names:
    """How the files that ``summary.json``, ``summary.csv`` and ``report.html`` name are written there: a path inside
    ``out`` relative to ``out`` (``cell1/locs.csv``, not the absolute path of a worker's scratch folder); the movies
    and the model as the caller gave them, or (``input_names="file-name"``, the job service) by their file names,
    and then any other absolute path by its file name too (a worker's input folder means nothing to the user)."""

    def __init__(self, out: Path, mode: str, inputs: Sequence[str | os.PathLike] = ()) -> None:
        self.mode = mode
        variants = {str(out.absolute()), str(out.resolve())} | ({str(out)} if str(out) != "." else set())
        self._out = re.compile(r"(?<![\w.~/-])(" + "|".join(re.escape(v.rstrip(os.sep) or os.sep) for v in
                                                         sorted(variants, key=len, reverse=True)) + r")(/|(?![\w.-]))")
        pairs: dict[str, str] = {}
        for p in inputs:
            p = Path(p)
            for variant in (str(p), str(p.absolute())):
                pairs.setdefault(variant, self.input(p))
        self._inputs = sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)

    def input(self, path: str | os.PathLike) -> str:
        """A movie's or the model's name: as given, or its file name."""
        return Path(path).name if self.mode == "file-name" else str(path)

    def text(self, text: str) -> str:
        """``text`` (a warning, an error) with its paths named as the class says."""
        text = self._out.sub(lambda m: "" if m.group(2) == "/" else ".", text)
        for given, name in self._inputs:
            if given != name:
                text = text.replace(given, name)
        if self.mode == "file-name":  # what is left absolute is the worker's: its file name
            text = re.sub(r"(?<![\w.~/-])/(?:[^\s/:;,'\"()\[\]]+/)+([^\s/:;,'\"()\[\]]+)", r"\1", text)
        return text

    def tree(self, value: Any) -> Any:
        """``value`` (the summary) with every string's paths named as the class says."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.tree(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.tree(v) for v in value]
        return value


def acquisition_name(movies: Sequence[str | os.PathLike]) -> str:
    """The folder name of an acquisition: a movie's file name without its suffixes (``cell1.ome.tif`` -> ``cell1``;
    a folder of TIFFs: the folder's name, also where it is given as ``.`` or ``..``); for one movie per channel, the
    movies' common start without a trailing channel tag (``cell1_ch0.tif``, ``cell1_ch1.tif`` -> ``cell1``), else the
    first movie's name. Never empty, ``.`` or ``..`` (a folder of those names is ``out`` itself or its parent):
    ``movie`` where the path names none (``/``)."""
    stems = []
    for m in movies:
        p = Path(m)
        if p.name in ("", ".", ".."):  # "." / ".." / "/": the folder's own name
            p = p.resolve()
        name = p.name or "movie"
        while not p.is_dir() and Path(name).suffix.lower() in _MOVIE_SUFFIXES and Path(name).stem:
            name = Path(name).stem
        stems.append(name)
    if len(stems) == 1:
        return stems[0]
    prefix = os.path.commonprefix(stems)
    prefix = re.sub(r"([_\-. ]+(ch|channel|c))?[_\-. ]*$", "", prefix, flags=re.IGNORECASE)
    return prefix or stems[0]


def _movie_paths(movies: Any) -> list[Path]:
    """``movies`` as a list of paths: one path (a string or ``os.PathLike``) is one movie (iterated, a string was
    taken letter by letter: ``"cell1.tif"`` processed ``/``, ``c``, ``e``, ... as movies); frames held in memory and
    anything else that is not a path are a TypeError that says what is taken (process writes its files next to named
    movies; an array goes to :func:`plexloc.infer.fit_movie`)."""
    if isinstance(movies, (str, os.PathLike)):
        return [Path(movies)]
    if hasattr(movies, "shape") and (hasattr(movies, "detach") or getattr(movies.dtype, "kind", "") in "biufc"):
        # a torch tensor or a numeric array of frames (an array or pandas Series of path strings is a list of paths)
        raise TypeError(f"movies must be TIFF files or folders (a list of paths), got frames held in memory "
                        f"({type(movies).__name__} of shape {tuple(movies.shape)}): fit those with "
                        "plexloc.infer.fit_movie (or plexloc.mle.fit_movie), or write them with "
                        "plexloc.io.tiff.write_movie first")
    if not isinstance(movies, Iterable):
        raise TypeError(f"movies must be a path or a list of paths of TIFF files or folders, got "
                        f"{type(movies).__name__}")
    paths = []
    for i, m in enumerate(movies):
        if not isinstance(m, (str, os.PathLike)):
            what = (f"{type(m).__name__} of shape {tuple(m.shape)}" if hasattr(m, "shape") else type(m).__name__)
            raise TypeError(f"movies[{i}] is {what}, not the path of a TIFF file or folder (frames held in memory: "
                            "plexloc.infer.fit_movie or plexloc.mle.fit_movie fit them)")
        paths.append(Path(m))
    return paths


@dataclass(frozen=True)
class _Geometry:
    """What the acquisitions' grouping, field of view and report need of the model or configuration, and what its
    validation says of a model not ready to fit (:func:`plexloc.infer.model_readiness_note`; None: nothing)."""

    n_channels: int
    split_view: Any  # SplitViewConfig or None
    px_xy_nm: tuple[float, float]
    readiness: str | None = None


def _mle_config(options: ProcessOptions) -> Any:
    """The MLE fitter's configuration, its split_view replaced by ``options.split_view`` where that is given."""
    if options.split_view is None:
        return options.config
    return options.config.model_copy(update={"split_view": options.split_view})


def _model_geometry(options: ProcessOptions) -> _Geometry:
    """The channels, split_view section (or None) and pixel (x, y) in nm of the model or configuration, and the
    model's readiness note."""
    if options.method == "mle":
        cfg = _mle_config(options)
        return _Geometry(cfg.n_channels, cfg.split_view, cfg.px_size_xy_nm)
    from plexloc.config.models import SplitViewConfig
    from plexloc.infer.readiness import model_readiness_note
    from plexloc.nets.io import read_model_file

    payload = read_model_file(options.model)
    cfg = payload.get("config") or {}
    n_channels = int((payload.get("spec") or {}).get("n_channels", len(cfg.get("channels") or [None])))
    split = options.split_view
    if split is None and cfg.get("split_view"):
        split = SplitViewConfig.model_validate(cfg["split_view"])
    px = cfg.get("px_size_nm", 100.0)
    px_xy = (float(px), float(px)) if isinstance(px, (int, float)) else (float(px[0]), float(px[1]))
    return _Geometry(n_channels, split, px_xy, model_readiness_note(payload))


def group_movies(movies: Sequence[str | os.PathLike], options: ProcessOptions, *, _geometry: _Geometry | None = None
                 ) -> list[Acquisition]:
    """The acquisitions of ``movies``: one each for a single-channel model (or configuration) and for a multi-channel
    one that cuts one split-view movie into its channels; for a multi-channel model without split_view, the movies
    are one acquisition, one movie per channel in channel order (several acquisitions: one call each).

    Raises:
        InputError: no movies; a multi-channel model given another number of movies than its channels.
    """
    paths = _movie_paths(movies)
    if not paths:
        raise InputError("no movie given")
    geometry = _geometry or _model_geometry(options)
    n_channels, split = geometry.n_channels, geometry.split_view
    if n_channels == 1 or split is not None:
        groups = [(p,) for p in paths]
    elif len(paths) == n_channels:
        groups = [tuple(paths)]
    else:
        what = "model" if options.method == "network" else "configuration"
        raise InputError(
            f"the {what} has {n_channels} channels and no split_view, so plexloc process takes one acquisition, one "
            f"movie per channel in channel order ({n_channels} movies), but {len(paths)} were given: run plexloc "
            "process once per acquisition (plexloc process ACQ_ch0.tif ACQ_ch1.tif ... --out DIR), or the separate "
            "commands (plexloc fit, drift, report, merge, render, frc)")
    names: set[str] = set()
    out = []
    for group in groups:
        name = base = acquisition_name(group)
        k = 2
        # two movies of one name in different folders (cell1, cell1_2), or of names that differ in case only (Cell,
        # cell_2: one folder on a case-insensitive disk, macOS's, Windows', a share of either, where the second
        # replaced the first), or in suffix only (a.tif, a.tiff)
        while name.casefold() in names:
            name, k = f"{base}_{k}", k + 1
        names.add(name.casefold())
        out.append(Acquisition(name, group))
    return out


@contextlib.contextmanager
def _collected_warnings(into: list[str], rename: Callable[[str], str] = str) -> Iterator[None]:
    """Shown as they are issued (as without it), every one (each acquisition's, not only the first's), and noted in
    ``into`` for the summary; ``rename`` turns the hidden temporary folder named in a message into the folder the
    files end up in (a warning named ``results/.cell1.partial-bup26ipy/locs.csv``, a path that is gone when read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            from tqdm import tqdm

            message = rename(str(message))
            into.append(f"{category.__name__}: {message}")
            # on a line of its own: a bar drawn on stderr (a terminal, the job service's log) is cleared first and
            # drawn again after (a warning issued at the end of the drift estimate ran on after its bar)
            with tqdm.external_write_mode(file=file or sys.stderr):
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def noting_warnings(into: list[str]) -> contextlib.AbstractContextManager[None]:
    """Warnings issued within, shown as usual and noted in ``into`` as ``"Category: message"``: what a caller
    (plexloc process) gives :func:`process_movies` as ``warnings_before`` for every ``summary.json``."""
    return _collected_warnings(into)


def _fit(acq: Acquisition, folder: Path, options: ProcessOptions, progress: bool) -> dict[str, Any]:
    """Fit the acquisition into ``folder/locs.csv``; what the fit reported."""
    movie = [str(m) for m in acq.movies] if len(acq.movies) > 1 else acq.movies[0]
    filters = {k: v for k, v in options.filters.items() if v is not None}
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    if options.method == "mle":
        from plexloc.mle import fit_movie_to_file as fit_mle
        from plexloc.mle.pipeline import check_movie_count

        config = _mle_config(options)
        check_movie_count(movie, config)
        rows = fit_mle(movie, config, folder / "locs.csv", device=options.device, camera=options.camera,
                       progress=progress, stats=stats, filters=filters, roi_offset_px=options.roi_offset_px,
                       refine_mle=options.refine_mle)
    else:
        from plexloc.infer import fit_movie_to_file
        from plexloc.progress import progress as bar

        rows = fit_movie_to_file(
            movie, options.model, folder / "locs.csv", camera=options.camera, device=options.device,
            **{k: v for k, v in (("threshold", options.threshold), ("batch_frames", options.batch_frames))
               if v is not None},
            filters=filters, progress=bar if progress else None, stats=stats, refine_mle=options.refine_mle,
            precision=options.precision, split_view=options.split_view, roi_offset_px=options.roi_offset_px)
    seconds = time.perf_counter() - t0
    frames = stats["frames"]  # (both fitters count them)
    fit = {"method": options.method, "rows": int(rows), "frames": int(frames), "seconds": seconds,
           "frames_per_s": _finite(stats.get("frames_per_s", frames / seconds if seconds > 0 else math.nan))}
    for key in ("precision", "channels_last", "sigma_calibration", "offset_calibration", "photon_calibration",
                "roi_offset_px", "roi_offset_source", "refined_rows", "saturated_rows"):
        if stats.get(key) is not None:
            fit[key] = list(stats[key]) if isinstance(stats[key], tuple) else stats[key]
    # the notes in plexloc fit's words (plexloc.mle.pipeline: one copy for both; process's own said less: no
    # "(before the filters)" where filters were given, no clipping level, nothing of the checks' notes)
    from plexloc.mle.pipeline import (check_notes, dropped_fits_line, not_converged_line, not_significant_line,
                                      saturated_line)

    filtered = any(v is not None for v in options.filters.values())
    notes = list(check_notes(stats))  # the PSF shape's and the camera check's (its gain and e-/ADU unchecked)
    if stats.get("domain") is not None:
        notes += stats["domain"].warnings
    if stats.get("duplicates") is not None and stats["duplicates"].warning:
        notes.append(stats["duplicates"].warning)
    if stats.get("filtered") is not None:
        fit["filtered"] = stats["filtered"].format_table()
    # rows fitted from clipped light: the table named where it will be (not the hidden folder being written)
    notes.append(saturated_line(stats.get("saturated_rows"), stats.get("clip_levels") or (),
                                table=folder.parent / acq.name / "locs.csv", filtered=filtered))
    if stats.get("z_edge") is not None:  # a 3D network's rows at its z range's ends, as plexloc fit says it
        fit["z_edge"] = stats["z_edge"].to_dict()
        if stats["z_edge"].warning:
            notes.append(stats["z_edge"].warning)
    dropped = {k: int(v) for k, v in (stats.get("dropped") or {}).items() if v}
    if dropped:  # the MLE's fits left out (process left them out without a word before session 43)
        fit["fits"], fit["dropped"] = int(stats.get("fits", 0)), dropped
        notes.append(dropped_fits_line(dropped, stats.get("fits")))
    flagged = stats.get("flagged") or {}  # the MLE's rows kept with converged 0, and those on each bound (at_bound)
    if flagged:
        fit["flagged"] = {k: int(v) for k, v in flagged.items()}
    notes.append(not_converged_line(flagged, filtered=filtered, rows=stats.get("rows_fitted"),
                                    z_range_nm=stats.get("z_range_nm")))
    if flagged.get("not_significant"):
        notes.append(not_significant_line(flagged["not_significant"], refined=options.method != "mle",
                                          filtered=filtered))
    notes = [n for n in notes if n]
    if rows == 0:
        notes.append("no localizations: check that the movie shows spots, that the camera converts its counts to "
                     "photons as the movie's camera does, and the detection threshold")
    fit["notes"] = notes
    return fit


def _check_fiducial_options(options: ProcessOptions) -> None:
    """InputError where ``fiducial_options`` has a key :func:`~plexloc.post.fiducials.fiducial_drift` does not take, a
    value out of range, or a setting for another drift engine (it would be ignored)."""
    from plexloc.post.fiducials import fiducial_settings

    given = dict(options.fiducial_options or {})
    known = tuple(inspect.signature(fiducial_settings).parameters)  # its keywords: the one list of them
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"fiducial_options: {', '.join(map(repr, unknown))} not known; they are "
                         f"{', '.join(known)}")
    set_ = [k for k, v in given.items() if v is not None and v is not False]
    if set_ and options.drift and options.drift_engine != "fiducials":
        raise InputError(f"fiducial_options {', '.join(set_)} are settings of the drift engine fiducials only, the "
                         f"engine is {options.drift_engine}; give drift_engine='fiducials' (--drift-engine fiducials)")
    fiducial_settings(**given)


def _drift(table: LocTable, folder: Path, options: ProcessOptions, progress: bool
           ) -> tuple[LocTable | None, dict[str, Any]]:
    """The table the later steps take (None: ``table`` as it is) and what was found; ``drift.png``. The drift-corrected
    table where the drift was subtracted (state "applied"); where a fiducial markers' estimate is not reliable, the
    table uncorrected but without the markers' rows (they would outshine the sample in the image and the FRC)."""
    from plexloc.post.drift import COMET_MAX_PAIRS, apply_drift, comet_available, estimate_drift
    from plexloc.progress import progress as bar

    engine = options.drift_engine
    segments, max_drift = int(options.drift_segments), float(options.max_drift_nm)
    if engine == "fiducials":  # its own settings; the windows and largest drift of rcc and comet mean nothing to it
        from plexloc.post.fiducials import fiducial_settings

        settings = fiducial_settings(**options.fiducial_options)
        info: dict[str, Any] = {"fiducial_settings": settings}
    else:
        info = {"segments": segments, "max_drift_nm": max_drift}
    if engine == "comet" and not comet_available():
        engine = "rcc"
        info["note"] = "COMET is not installed (pip install 'plexloc[drift]'): the RCC engine was used"
    # how far the step is, as plexloc drift shows it: COMET's pass of 3 (the table, then its two halves for the
    # uncertainty) and run; RCC's pairs of windows out of their total (a bare count of steps said neither)
    meter = bar(None, desc=f"drift ({engine})", unit="evaluation" if engine == "comet" else "pair") if progress \
        else None

    def comet_step(stage: str, info: dict) -> None:
        if stage == "evaluation":
            meter.update(1)
            meter.set_postfix_str(f"pass {info.get('pass', 1)}/3, run {info.get('run', '?')}", refresh=False)
        elif stage in ("pairs_start", "pairs_done"):
            meter.set_postfix_str(f"pass {info.get('pass', 1)}/3, {stage.replace('_', ' ')}", refresh=False)

    def rcc_step(done: int, total: int) -> None:
        meter.total = total
        meter.update(done - meter.n)

    try:
        if engine == "fiducials":
            result = estimate_drift(table, engine="fiducials", **settings)
        elif engine == "comet":
            result = estimate_drift(table, engine="comet", max_pairs=COMET_MAX_PAIRS, n_segments=segments,
                                    max_drift_nm=max_drift, progress=comet_step if meter is not None else None)
        else:
            result = estimate_drift(table, engine="rcc", n_segments=segments, max_drift_nm=max_drift,
                                    device=str(options.device), progress=rcc_step if meter is not None else None)
    except InputError as err:  # too few localizations or frames
        return None, {**info, "state": "not estimated", "reason": err.reason}
    finally:
        if meter is not None:
            meter.close()
    from plexloc.io._atomic import atomic_path
    from plexloc.render.figures import drift_figure

    def figure(verdict: str = "") -> None:  # drift.png, its title saying what was not subtracted
        with atomic_path(folder / "drift.png") as tmp:
            tmp.write_bytes(drift_figure(result.frames, result.drift_nm, segment_frames=result.segment_frames,
                                         segment_drift_nm=result.segment_drift_nm,
                                         title=f"drift ({result.engine}){verdict}",
                                         unmeasured_frames=result.info.get("unmeasured_frames")))

    span = result.drift_nm.max(axis=0) - result.drift_nm.min(axis=0)
    info.update(engine=result.engine, seconds=result.elapsed_s, range_nm=[float(v) for v in span],
                uncertainty_nm=_finite(result.info.get("uncertainty_nm")))
    # a 3D table's z curve has its own uncertainty and verdict (plexloc drift prints both): the report's line read
    # "spans 50 nm in x, 28 nm in y, 34 nm in z, known to +-1 nm rms" (the lateral figure; z's was 2.0 nm)
    if "z_uncertainty_nm" in result.info or result.info.get("z_unreliable"):
        info["z_uncertainty_nm"] = _finite(result.info.get("z_uncertainty_nm"))
        info["z_unreliable"] = bool(result.info.get("z_unreliable", False))
    if result.info.get("z_significant") is False:  # no z drift beyond the noise: its curve is 0, nothing subtracted
        info.update(z_significant=False, z_p_value=_finite(result.info.get("z_p_value")),
                    z_estimated_rms_nm=_finite(result.info.get("z_estimated_rms_nm")))
    if result.info.get("unreliable"):
        figure(": unreliable, not subtracted")
        info = {**info, "state": "unreliable",
                "reason": "the engine called its estimate unreliable (see the warning): the table was kept uncorrected"}
        if result.remove_rows is None:
            if result.engine == "fiducials":  # --keep-fiducials: the markers' rows stay
                info.update(fiducials=int(result.info["n_fiducials"]),
                            fiducial_rows_kept=int(result.info["fiducial_rows"]))
            return None, info
        kept = table[~result.remove_rows(table)]  # the markers' rows go all the same: they are not the sample's
        return kept, {**info, "fiducials": int(result.info["n_fiducials"]), "fiducial_rows_removed": len(table) - len(kept)}
    figure("; z unreliable, not subtracted" if info.get("z_unreliable") else "")
    if info.get("z_unreliable"):  # x and y are subtracted, z is not: the same rule as for the lateral curve
        info["z_subtracted"] = False
        result = replace(result, drift_nm=result.drift_nm * np.array([1.0, 1.0, 0.0]))
    corrected = apply_drift(table, result)
    if result.engine == "fiducials":
        info.update(fiducials=int(result.info["n_fiducials"]), fiducial_rows_removed=len(table) - len(corrected))
        if result.info.get("keep_fiducials"):
            info["fiducial_rows_kept"] = int(result.info["fiducial_rows"])
    return corrected, {**info, "state": "applied"}


def _render(table: LocTable, path: Path, fov_nm: tuple[float, float], options: ProcessOptions) -> dict[str, Any]:
    """``image.png`` of the field of view ``(width, height)`` in nm; a 3D table's coloured by z, with its key
    ``image_legend.png``."""
    from plexloc.render.image import default_method, render, render_color, save_image

    px = options.render_px_nm
    if px is None:
        px = max(10.0, float(np.ceil(max(fov_nm) / MAX_IMAGE_PX)))
    method = default_method(table)
    how = {"method": method, "px_size_nm": px, "extent_nm": (0.0, fov_nm[0], 0.0, fov_nm[1]),
           **({"min_sigma_nm": px / 2} if method == "gaussian" else {})}
    z = table["z_nm"][np.isfinite(table["z_nm"])]
    by_z = z.size > 0 and float(np.ptp(z)) > 0  # a 2D model's z is one value (its focal plane)
    r = render_color(table, color_by="z", **how) if by_z else render(table, **how)
    info = save_image(r, path)
    out = {"width_px": int(r.image.shape[1]), "height_px": int(r.image.shape[0]), "px_size_nm": px,
           "method": method, "scale_bar_nm": info["scale_bar_nm"], "outside_field": int(r.n_outside),
           "color_by": "z" if by_z else None}
    if len(table) - int(r.n_outside) <= 0:  # a black image.png, written without a word in summary.json
        out["note"] = ("empty: the table has no localizations" if len(table) == 0 else
                       f"empty: all {len(table)} localizations lie outside the movie's field of view")
        warnings.warn(f"image.png is {out['note']}", ProcessWarning, stacklevel=2)
    # the key: a 3D image's colours (as plexloc render --color-by z writes it) and the scale bar's length, which the
    # image's pixels do not say; a 2D image's scale bar length and pixel
    from plexloc.render.figures import legend_figure, save_png

    png = legend_figure(r, scale_bar_nm=info["scale_bar_nm"], grey=True)
    if png is not None:
        legend = path.with_name(f"{path.stem}_legend.png")
        save_png(png, legend)
        out["legend"] = legend.name
    if by_z:
        out.update(z_range_nm=list(r.z_range_nm), cmap=r.cmap, rows_without_z=int(len(table) - z.size))
    return out


def _field_of_view(acq: Acquisition, geometry: _Geometry) -> tuple[float, float]:
    """(width, height) in nm of the reference channel's image."""
    from plexloc.io.tiff import open_movie

    split, (px_x, px_y) = geometry.split_view, geometry.px_xy_nm
    if split is not None and len(acq.movies) == 1:
        w, h = split.boxes[0][2], split.boxes[0][3]
    else:
        with open_movie(acq.movies[0]) as reader:
            h, w = reader.frame_shape
    return w * px_x, h * px_y


def _place(tmp: Path, folder: Path) -> None:
    """Rename the finished folder ``tmp`` to ``folder``, an earlier ``folder`` removed only once the new one is there."""
    old = None
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise InputError("cannot write the acquisition's folder: a file of that name exists", source=folder)
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
        os.replace(folder, old / folder.name)
    try:
        os.replace(tmp, folder)
    except BaseException:
        if old is not None:  # the earlier folder back in place
            os.replace(old / folder.name, folder)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _Steps:
    """The step under way (named in a failure's error), each step's seconds, and a line as each starts."""

    def __init__(self, name: str, summary: dict[str, Any], log: Callable[[str], None] | None) -> None:
        self.name, self.summary, self.log = name, summary, log
        self.current = ""

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        self.current = step
        if self.log is not None:
            self.log(f"{self.name}: {step}")
        t0 = time.perf_counter()
        yield
        self.summary["steps"][step] = round(time.perf_counter() - t0, 3)


def _run_steps(acq: Acquisition, folder: Path, options: ProcessOptions, geometry: _Geometry, summary: dict[str, Any],
               step: _Steps, progress: bool, names: _Names | None = None) -> None:
    """The chain of the module docstring into ``folder``; what each step found into ``summary``."""
    from plexloc.io.tables import read_table, write_table
    from plexloc.post.merge import merge_localizations
    from plexloc.render.frc import frc, unmerged_caveat
    from plexloc.render.nena import nena_caveat
    from plexloc.render.report import build_report, write_report

    with step("fit"):
        summary["fit"] = _fit(acq, folder, options, progress)
        table = read_table(folder / "locs.csv")
    if len(table) == 0:  # status ok but nothing to show: said, in the summary and the report (it read as a success)
        warnings.warn(f"{acq.name}: the fit found no localizations: check that the movie shows spots, that the camera "
                      "(--camera, or the model's) converts its counts to photons as the movie's camera does, and the "
                      "detection --threshold", UserWarning, stacklevel=2)
    for note in summary["fit"]["notes"]:  # said as found (a wrong camera), not after the last movie of the batch
        if step.log is not None:
            step.log(f"{acq.name}: note: {note}")
    if options.drift:
        with step("drift"):
            corrected, summary["drift"] = _drift(table, folder, options, progress)
            name = "locs.csv"
            if corrected is not None:  # drift subtracted, or (unreliable) only the fiducial markers' rows left out
                name = "locs_dc.csv" if summary["drift"]["state"] == "applied" else "locs_no_fiducials.csv"
                write_table(corrected, folder / name)
                table = corrected
            summary["drift"]["table"] = name
    else:
        summary["drift"] = {"state": "off", "reason": "--no-drift", "table": "locs.csv"}
    unmerged = table  # NeNA and the report's histograms: a molecule's consecutive frames
    if options.merge:
        with step("merge"):
            table = merge_localizations(table, radius_nm=options.merge_radius_nm, gap=options.merge_gap)
            write_table(table, folder / "merged.csv")
            summary["merge"] = {"rows": len(table), "radius_nm": options.merge_radius_nm, "gap": options.merge_gap}
    else:
        summary["merge"] = {"rows": None, "state": "off"}
    # the report of the table before merging (NeNA compares a molecule's consecutive frames), its FRC of the table
    # image.png and summary.json's FRC take (merged.csv): it gave the unmerged table's, another value, with the advice
    # to run plexloc merge first
    with step("report"):
        drift = summary["drift"]
        named = names.text if names is not None else str  # the paths as summary.json names them
        report = build_report(unmerged, title=f"plexloc process: {acq.name}", camera_px_size_nm=geometry.px_xy_nm[0],
                              provenance=[(what, named(how)) for what, how in
                                          _provenance(acq, options, geometry, summary)],
                              warnings=[named(w) for w in summary["warnings"] + [f"fit: {n}" for n in
                                                                                 summary["fit"]["notes"]]],
                              drift_note=None if drift["state"] == "applied" else _drift_line(drift),
                              drift_png=(None if drift["state"] == "applied" or not (folder / "drift.png").is_file()
                                         else (folder / "drift.png").read_bytes()),
                              frc_table=table, frc_of=("of merged.csv, as summary.json's" if options.merge else None),
                              frc_px_size_nm=options.frc_px_nm)
        write_report(report, folder / "report.html")
        summary["report"] = {"figures": report.n_figures,
                             "summary": {str(k): str(v) for k, v in report.summary.items()},
                             "not_available": dict(report.missing)}
        nn = report.nena  # the report's, of the same table (None under 2 localizations)
        summary["nena"] = ({"sigma_nm": _finite(nn.sigma_nm), "sigma_se_nm": _finite(nn.sigma_se_nm),
                            "pairs": int(len(nn.distances_nm)), "no_value": nn.info.get("no_value"),
                            # against the predicted σ (the NeNA they give, their fitted scale k; None without them)
                            "expected_sigma_nm": _finite(nn.expected_sigma_nm), "scale_k": _finite(nn.scale_k),
                            "scale_k_se": _finite(nn.scale_k_se),
                            "caveat": nena_caveat(unmerged)} if nn is not None
                           else {"sigma_nm": None, "no_value": "fewer than 2 localizations"})
    with step("image"):
        summary["image"] = _render(table, folder / "image.png", _field_of_view(acq, geometry), options)
    with step("frc"):
        try:
            # the report's (of the same table, at the same pixel); where it had none (under 100 localizations) frc
            # says why
            res = report.frc if report.frc is not None else frc(table, px_size_nm=options.frc_px_nm)
            summary["frc"] = {"resolution_nm": _finite(res.resolution_nm), "px_size_nm": res.px_size_nm,
                              "no_value": res.info.get("no_crossing"), "caveat": unmerged_caveat(table)}
        except InputError as err:  # fewer than 100 localizations
            summary["frc"] = {"resolution_nm": None, "no_value": err.reason}


def _drift_line(drift: dict[str, Any]) -> str:
    """What the drift step did, in words (the report's)."""
    state = drift["state"]
    if state == "off":
        return "not corrected (--no-drift)"
    if state == "not estimated":
        return f"not estimated: {drift['reason']}"
    engine = str(drift.get("engine", "")).upper()
    span = drift.get("range_nm") or [math.nan] * 3
    unc = drift.get("uncertainty_nm")
    found = (f"{engine} estimate spans {span[0]:.0f} nm in x, {span[1]:.0f} nm in y"
             + (f", {span[2]:.0f} nm in z" if span[2] else "")
             + (f", known to +-{unc:.1f} nm rms in x and y" if unc is not None else ""))
    if "z_uncertainty_nm" in drift:  # z's own figure (the lateral one, after the z span, read as z's too)
        z_unc = drift.get("z_uncertainty_nm")
        found += (f", z to +-{z_unc:.1f} nm" if z_unc is not None else ", z not known")
        if drift.get("z_significant") is False:
            found += (" (no z drift beyond that noise: z was not subtracted"
                      + ("; see the warnings)" if drift.get("z_unreliable") else ")"))
        elif drift.get("z_unreliable"):
            found += (" (z not reliable: see the warnings; z was not subtracted)" if drift.get("z_subtracted") is False
                      else " (z not reliable: see the warnings)")
    if "fiducial_rows_kept" in drift:
        found += (f", from {drift.get('fiducials')} fiducial marker(s), whose {drift['fiducial_rows_kept']} rows "
                  "were kept (--keep-fiducials)")
    elif "fiducial_rows_removed" in drift:
        found += (f", from {drift.get('fiducials')} fiducial marker(s), whose {drift['fiducial_rows_removed']} rows "
                  "were removed")
    found += " (drift.png)"
    if state == "applied":
        return f"subtracted: the {found}; this table is locs_dc.csv"
    table = ("locs_no_fiducials.csv, locs.csv uncorrected without the markers' rows" if "fiducial_rows_removed" in drift
             else "locs.csv uncorrected")
    return f"not subtracted, the table is {table}: the estimate is not reliable (see the warnings). The {found}"


def _provenance(acq: Acquisition, options: ProcessOptions, geometry: _Geometry, summary: dict[str, Any]
                ) -> list[tuple[str, str]]:
    """The report's "How this table was made" rows: the movies, the fitter and its options, the drift, what follows."""
    import plexloc

    fit = summary["fit"]
    if options.method == "network":
        how = f"network {options.model}" + (f" (its validation calls it not ready: {geometry.readiness})"
                                            if geometry.readiness else "")
        settings = [f"threshold {options.threshold:g}" if options.threshold is not None else "the model's threshold",
                    f"precision {fit.get('precision', options.precision)}"]
        if options.refine_mle:
            settings.append(f"refined by MLE ({fit.get('refined_rows', 0)} rows)")
    else:
        how, settings = "maximum likelihood (--method mle) with the configuration given", []
        if options.refine_mle:
            settings.append(f"refined with the neighbours modelled ({fit.get('refined_rows', 0)} rows)")
    settings.append("the model's training camera" if options.camera is None and options.method == "network"
                    else "the configuration's camera" if options.camera is None else "the camera given (--camera)")
    filters = {k: v for k, v in options.filters.items() if v is not None}
    if filters:
        settings.append("filters " + ", ".join(f"{k} {v:g}" for k, v in filters.items()))
    fps = fit.get("frames_per_s")
    rows = [("movie" if len(acq.movies) == 1 else "movies", ", ".join(str(m) for m in acq.movies)),
            ("fit", f"{how}; {', '.join(settings)}; pixel {geometry.px_xy_nm[0]:g} x {geometry.px_xy_nm[1]:g} nm"),
            ("localizations", f"{fit['rows']} in {fit['frames']} frames"
             + (f" ({fps:.0f} frames/s)" if fps is not None else "") + " (locs.csv)"),
            ("drift", _drift_line(summary["drift"])),
            ("merge", (f"merged (radius {options.merge_radius_nm:g} nm, gap {options.merge_gap}) into merged.csv, "
                       "which image.png and the FRC (this report's and summary.json's) take" if options.merge
                       else "not merged (--no-merge): image.png and the FRC of summary.json take this table")),
            ("plexloc", f"{plexloc.__version__}, plexloc process, {time.strftime('%Y-%m-%d %H:%M')}")]
    return rows


def process_acquisition(acq: Acquisition, out: str | os.PathLike, options: ProcessOptions, *, progress: bool = True,
                        log: Callable[[str], None] | None = None, _geometry: _Geometry | None = None,
                        _warnings: Sequence[str] = ()) -> AcquisitionResult:
    """Run the chain of the module docstring on one acquisition into ``out/NAME`` (see there). A step's error ends
    the acquisition, as failed (its folder holds the files finished before, ``summary.json`` and ``FAILED.txt``);
    it is not raised. An interrupt (``KeyboardInterrupt``) and a full disk (a
    :class:`~plexloc.io._atomic.DiskFullError`, naming the file in ``out/NAME``) are: the partial folder is removed
    and an earlier ``out/NAME`` kept. ``log``: called with a line as each step starts. A network that its own
    validation calls not ready (:func:`plexloc.infer.model_readiness_note`) is noted in ``summary["warnings"]`` (and
    warned of by :func:`process_movies`, once), after ``_warnings`` (those issued before, as the options were loaded).
    The summary names its files as :class:`_Names` says (inside ``out``: relative to it)."""
    if not isinstance(acq, Acquisition):  # (a movie's path: "'str' object has no attribute 'name'" from deep inside)
        raise TypeError(f"acq must be an Acquisition (group_movies makes them from movies' paths; process_movies "
                        f"processes movies), got {type(acq).__name__}")
    from plexloc.io._atomic import DISK_FULL_ERRNOS, DiskFullError, disk_full, naming_disk_full

    geometry = _geometry or _model_geometry(options)
    out = Path(out)
    final = out / acq.name
    names = _Names(out, options.input_names,
                   [*acq.movies, *([options.model] if options.method == "network" and options.model else [])])
    out.mkdir(parents=True, exist_ok=True)
    with naming_disk_full(final):
        tmp = Path(tempfile.mkdtemp(prefix=f".{acq.name}{_PARTIAL}", dir=out))

    def rename(text: str) -> str:  # the hidden folder named as the folder the files are put in
        for hidden, placed in ((tmp, final), (tmp.absolute(), final.absolute())):
            text = text.replace(str(hidden), str(placed))
        return text

    def in_place(err: BaseException) -> BaseException:
        """A full disk named in the folder the files go to (the hidden one is removed): a writer's own error named
        its file, a bare one (no file) the acquisition's folder."""
        if isinstance(err, DiskFullError):
            return DiskFullError(rename(str(err.path)), err.errno, err.free_bytes, err.reason)
        return disk_full(err, rename(err.filename) if isinstance(err.filename, str) else final)

    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        summary: dict[str, Any] = {"name": acq.name, "movies": [str(m) for m in acq.movies],
                                   **({"movies_resolved": None} if options.input_names == "as-given" else {}),
                                   "status": "ok",
                                   "error": None, "method": options.method,
                                   "model": str(options.model) if options.method == "network" else None,
                                   "steps": {}, "warnings": list(_warnings)}
        if geometry.readiness:
            from plexloc.infer.readiness import ModelNotReadyWarning

            summary["warnings"].append(f"{ModelNotReadyWarning.__name__}: {geometry.readiness}")
        step = _Steps(acq.name, summary, log)
        t0 = time.perf_counter()
        try:
            with _collected_warnings(summary["warnings"], rename):
                _run_steps(acq, tmp, options, geometry, summary, step, progress, names)
        except Exception as err:  # this acquisition fails; the others go on (but on a full disk: they would too)
            if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
                raise in_place(err) from err
            text = str(err) if isinstance(err, (InputError, OSError)) else f"{type(err).__name__}: {err}"
            summary.update(status="failed", error=f"{step.current}: {' '.join(rename(text).split())}")
        summary["seconds"] = time.perf_counter() - t0
        files = [p.name for p in tmp.iterdir() if not p.name.startswith(".")] + ["summary.json"]
        summary = names.tree(summary)
        summary["movies"] = [names.input(m) for m in acq.movies]
        if "movies_resolved" in summary:  # the movies' absolute paths (links resolved), after the tree's renaming:
            # the same movie is recognised when run again from another working folder (:func:`_same_movies`)
            summary["movies_resolved"] = [_movie_key(m) for m in acq.movies]
        if options.method == "network" and options.model is not None:
            summary["model"] = names.input(options.model)
        place = final
        if summary["status"] == "failed":
            renamed: dict[str, str] = {}
            if _earlier_result_kept(final):  # a failed attempt does not replace a result: beside it, NAME.failed
                place = _failed_place(final, acq, names)
                summary["error"] += (f" (the earlier result in {names.text(str(final))} is kept; this attempt is "
                                     f"{names.text(str(place))})")
                summary["kept"] = final.name
                # a note's table (plexloc filter NAME/locs.csv) is this attempt's, in NAME.failed
                was, now = (f"plexloc filter {names.text(str(p / 'locs.csv'))} " for p in (final, place))
                renamed[was] = now
                fit_notes = (summary.get("fit") or {}).get("notes")
                if fit_notes:
                    summary["fit"]["notes"] = [n.replace(was, now) for n in fit_notes]
            if (tmp / "report.html").is_file():  # written before a later step failed: the page says so itself
                with naming_disk_full(place / "report.html"):
                    _mark_failed_report(tmp / "report.html", summary["error"], sorted(files + ["FAILED.txt"]),
                                        renamed)
            with naming_disk_full(place / "FAILED.txt"):
                (tmp / "FAILED.txt").write_text(summary["error"] + "\n")
            files.append("FAILED.txt")
        summary["files"] = sorted(files)
        with naming_disk_full(place / "summary.json"):
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False, default=_jsonable)
                                              + "\n")
        _place(tmp, place)
    except BaseException:  # an interrupt, a full disk, or the folder not put in place: nothing partial is left
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if place == final:  # this movie's earlier failed attempts kept beside the earlier result are out of date now
        for stale in _failed_places(final, acq, names):
            shutil.rmtree(stale, ignore_errors=True)
    return AcquisitionResult(Acquisition(place.name, acq.movies), place, summary)


def _mark_failed_report(path: Path, error: str, files: Sequence[str], renamed: dict[str, str]) -> None:
    """The report.html of an attempt that failed in a step after the report (the image, the FRC) said to be one: a
    "This attempt failed" section under its title with the error and the files the folder holds, "(failed)" in its
    title, and its notes' table (``renamed``: ``plexloc filter NAME/locs.csv`` -> ``NAME.failed/locs.csv``) this
    attempt's. Before, it read as a complete result, and in ``NAME.failed`` its notes named the earlier result's
    table, which this attempt never wrote."""
    import html

    from plexloc.io._atomic import atomic_path

    page = path.read_text(encoding="utf-8")
    for was, now in renamed.items():
        page = page.replace(html.escape(was), html.escape(now))
    page = re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{m.group(1)} (failed)</title>", page, count=1)
    page = re.sub(r"<h1>(.*?)</h1>", lambda m: f"<h1>{m.group(1)} (failed)</h1>", page, count=1)
    step = error.split(":", 1)[0]
    section = ("<section><h2>This attempt failed</h2>"
               f"<p class=\"na\">{html.escape(error)}</p>"
               f"<p>The page below was made before step {html.escape(step)} failed; the steps from there on did not "
               f"run, and this folder holds {html.escape(', '.join(files))} only.</p></section>\n")
    page = page.replace("</h1>\n", "</h1>\n" + section, 1)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")


def _earlier_result_kept(final: Path) -> bool:
    """Whether ``final`` holds an earlier result that a failed attempt must not replace: anything but an earlier
    failed attempt (status ``failed``). Before, a rerun whose movie failed (the file since damaged, a wrong option)
    replaced the earlier complete result with the failure's folder: the result was lost."""
    if not final.is_dir():
        return False
    return _folder_result(final).summary.get("status") != "failed"


def _failed_place(final: Path, acq: Acquisition, names: _Names) -> Path:
    """Where a failed attempt goes beside an earlier result kept in ``final``: ``NAME.failed`` (this movie's earlier
    failed attempt there replaced: :func:`_failed_places`), else ``NAME.failed_2``, ..."""
    mine = set(_failed_places(final, acq, names))
    k = 1
    while True:
        place = final.with_name(f"{final.name}.failed" + (f"_{k}" if k > 1 else ""))
        if not (place.exists() or place.is_symlink()) or place in mine:
            return place
        k += 1


def _failed_places(final: Path, acq: Acquisition, names: _Names) -> list[Path]:
    """This movie's failed attempts beside ``final`` (``NAME.failed``, ``NAME.failed_2``, ...): folders with a
    ``FAILED.txt`` whose summary.json records ``acq``'s movies (:func:`_same_movies`; another movie's folder that
    merely has such a name, ``cell1.failed.tif``'s, is not one)."""
    out, k = [], 1
    while True:
        place = final.with_name(f"{final.name}.failed" + (f"_{k}" if k > 1 else ""))
        if not (place.exists() or place.is_symlink()):
            return out
        if (place / "FAILED.txt").is_file() and not place.is_symlink():
            try:
                recorded = json.loads((place / "summary.json").read_text())
            except (OSError, ValueError):
                recorded = None
            if isinstance(recorded, dict) and _same_movies(recorded, acq, names):
                out.append(place)
        k += 1


def _jsonable(value: Any) -> Any:
    """numpy numbers and arrays in the summary as JSON values."""
    if isinstance(value, np.generic):
        return _finite(value) if isinstance(value, np.floating) else value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_summary_csv(results: Sequence[AcquisitionResult], path: str | os.PathLike) -> None:
    """``summary.csv``: one row per result (:data:`SUMMARY_COLUMNS`), in their order, written atomically (a temporary
    file renamed). :func:`process_movies` gives it every acquisition folder of ``out`` (:func:`folder_results`)."""
    from plexloc.io._atomic import atomic_path

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: "" if v is None else v for k, v in r.row().items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _folder_result(folder: Path) -> AcquisitionResult:
    """The result that the acquisition folder ``folder`` holds, read from its ``summary.json``; one that cannot be
    read is a row of status ``unknown`` saying why."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        if not isinstance(summary, dict):
            raise ValueError(f"a JSON {type(summary).__name__}, not an object")
    except (OSError, ValueError) as err:
        summary = {"status": "unknown", "error": f"{folder.name}/summary.json cannot be read: {err}"}
    movies = summary.get("movies") if isinstance(summary.get("movies"), list) else []
    result = AcquisitionResult(Acquisition(folder.name, tuple(Path(str(m)) for m in movies)), folder, summary)
    try:
        result.row()
    except (AttributeError, TypeError, ValueError, IndexError) as err:  # not what plexloc process writes
        result.summary = {"status": "unknown", "movies": movies,
                          "error": f"{folder.name}/summary.json is not plexloc process's ({type(err).__name__}: {err})"}
    return result


def _acquisition_folders(out: Path) -> list[Path]:
    """The acquisition folders of ``out`` (not hidden, with a ``summary.json``), in name order."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "summary.json").is_file())


def folder_results(out: str | os.PathLike, newest: Sequence[AcquisitionResult] = ()) -> list[AcquisitionResult]:
    """Every acquisition folder of ``out`` (a folder, not hidden, with a ``summary.json``) as a result: ``newest``
    (this run's, in their order) where one has the folder's name, else read from its ``summary.json``, in name order
    after them. A result of ``newest`` whose folder is not there is left out (the folders are what is described)."""
    new = {r.acquisition.name: r for r in newest}
    folders = _acquisition_folders(Path(out))
    present = {p.name for p in folders}
    return ([r for r in newest if r.acquisition.name in present]
            + [_folder_result(p) for p in folders if p.name not in new])


def format_summary(results: Sequence[AcquisitionResult]) -> str:
    """The table printed at the end: one line per acquisition (the columns of ``summary.csv`` but the movies and
    the error, which follow a failed acquisition's line). A NeNA or FRC value with a caveat (a network's NeNA reads
    low; the FRC of a table before merging, too optimistic) is marked ``*`` or ``+`` and the caveat said below: the
    bare number read as the precision or resolution (NeNA 3.3 nm for a 5.5 nm spread of the errors)."""
    heads = ("name", "status", "rows", "frames", "frames/s", "drift", "drift nm", "merged", "NeNA nm", "FRC nm", "s")
    keys = SUMMARY_COLUMNS[:11]
    marks = {"nena_nm": ("nena", "NeNA", "*"), "frc_nm": ("frc", "FRC", "+")}
    caveats: dict[str, tuple[str, list[str]]] = {}
    lines = [[str(h) for h in heads]]
    for r in results:
        row = r.row()
        cells = []
        for k in keys:
            cell = "-" if row[k] is None else str(row[k])
            if k in marks and row[k] is not None and (r.summary.get(marks[k][0]) or {}).get("caveat"):
                section, what, mark = marks[k]
                cell += mark
                caveats.setdefault(f"{mark} {what}", (r.summary[section]["caveat"], []))[1].append(r.acquisition.name)
            cells.append(cell)
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(heads))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    for head, (caveat, names) in caveats.items():
        text.append(f"{head} of {', '.join(names)}: {caveat}" if len(names) < len(results)
                    else f"{head}: {caveat}")
    for r in results:
        if not r.ok:
            text.append(f"{r.acquisition.name}: {r.summary['error']}")
    return "\n".join(text)


def process_movies(movies: Sequence[str | os.PathLike], out: str | os.PathLike, options: ProcessOptions, *,
                   progress: bool = True, log: Callable[[str], None] | None = None,
                   warnings_before: Sequence[str] = ()) -> list[AcquisitionResult]:
    """Process every acquisition of ``movies`` (:func:`group_movies`) into ``out`` (module docstring), one after the
    other, and write ``out/summary.csv`` (every acquisition folder in ``out``, this run's results winning by name; also
    after an interrupt or a full disk, before the error is raised). A failing acquisition does not stop the others
    (see ``ok`` and ``summary["error"]`` of its result). ``warnings_before``: warnings issued while the caller loaded
    the options (the camera file's :class:`~plexloc.config.CameraDefaultsWarning`), as ``"Category: message"``, put
    in every acquisition's ``summary.json`` with those issued while it was processed.

    Raises:
        InputError: bad options (:func:`group_movies`, an unreadable model or configuration, ``drift_segments`` or
            ``max_drift_nm`` out of range), or an ``out`` that is not a folder; raised before any fit.
        KeyboardInterrupt: the acquisition under way removed (its earlier folder kept), ``summary.csv`` written.
        plexloc.io._atomic.DiskFullError: the same, naming the file that could not be written.
    """
    if not isinstance(options, ProcessOptions):
        raise TypeError(f"options must be a ProcessOptions (ProcessOptions(model=RUN) or ProcessOptions(method='mle', "
                        f"config=CONFIG)), got {type(options).__name__}")
    movies = _movie_paths(movies)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder (the acquisitions' folders and summary.csv go in it); it is a file",
                         source=out)
    if options.method not in ("network", "mle"):
        raise InputError(f"method must be network or mle, got {options.method!r}")
    needed = "model" if options.method == "network" else "config"
    if getattr(options, needed) is None:
        raise InputError(f"method {options.method!r} needs ProcessOptions.{needed}: "
                         + ("a run folder or model file (plexloc train's --out)" if needed == "model" else
                            "a microscope configuration file or a loaded SimulationConfig"))
    from plexloc._call import as_device

    as_device(options.device)  # a device that is none, or CUDA without it: said once, before any fit
    if options.drift_engine not in ("comet", "fiducials", "rcc"):
        raise InputError(f"drift engine must be comet, fiducials or rcc, got {options.drift_engine!r}")
    segments = options.drift_segments
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)) or segments < 2:
        raise InputError(f"drift_segments (--drift-segments) must be an integer >= 2, got {segments!r}")
    if not isinstance(options.max_drift_nm, (int, float, np.number)) or isinstance(options.max_drift_nm, bool) \
            or not math.isfinite(float(options.max_drift_nm)) or options.max_drift_nm <= 0:
        raise InputError(f"max_drift_nm (--max-drift) must be a number of nm > 0, got {options.max_drift_nm!r}")
    _check_fiducial_options(options)
    if options.input_names not in INPUT_NAMES:
        raise InputError(f"input_names must be one of {', '.join(INPUT_NAMES)}, got {options.input_names!r}")
    before = list(warnings_before)
    with _collected_warnings(before):  # the model's file read: its warnings in every summary.json too
        geometry = _model_geometry(options)
        acquisitions = group_movies(movies, options, _geometry=geometry)
    if geometry.readiness:  # said once, before the fits (each summary.json notes it too)
        from plexloc.infer.readiness import ModelNotReadyWarning

        warnings.warn(geometry.readiness, ModelNotReadyWarning, stacklevel=2)
    acquisitions = _drop_repeats(acquisitions)
    # an earlier run's acquisitions in ``out``: each one processed again is replaced whole; the others stay, and
    # summary.csv lists them from their summary.json (it describes the folders in ``out``, whatever run made them).
    # A folder of the name that is not this movie's earlier result (another movie's, a folder of the user's, the
    # movie itself) is never replaced: the acquisition takes the next free name, said
    acquisitions, moved = _assign_names(acquisitions, out, options)
    earlier = {p.name for p in _acquisition_folders(out)}
    results: list[AcquisitionResult] = []
    try:
        for i, acq in enumerate(acquisitions):
            if log is not None:
                log(f"[{i + 1}/{len(acquisitions)}] {acq.name}: {', '.join(str(m) for m in acq.movies)}"
                    + (f" (replaces the earlier {out / acq.name} once done), kept if this one fails"
                       if acq.name in earlier else ""))
            results.append(process_acquisition(acq, out, options, progress=progress, log=log, _geometry=geometry,
                                               _warnings=[*before, *moved.get(acq.name, [])]))
    except BaseException as err:  # an interrupt, a full disk: summary.csv still describes the folders there
        done = f"{len(results)} of {len(acquisitions)} acquisition(s) processed"
        pending = acquisitions[len(results):]
        from plexloc.io._atomic import DISK_FULL_ERRNOS

        names = _Names(out, options.input_names)
        # any other error named (a folder held open or not writable was called a full disk, and space freed for nothing)
        said = names.text(" ".join(str(err).split()))
        stopped = ("interrupted (Ctrl-C or SIGTERM)" if isinstance(err, KeyboardInterrupt) else
                   "stopped by a full disk" if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS else
                   f"stopped ({type(err).__name__}{': ' + said if said else ''})")
        try:
            rows = _write_summary(out, results, pending=pending, stopped=stopped, names=names)
        except Exception as again:  # (a full disk may refuse it too): the first error is the one raised
            if log is not None:
                log(f"{out / 'summary.csv'} not updated ({again}); {done}")
        else:
            if log is not None:
                what = "interrupted" if isinstance(err, KeyboardInterrupt) else "stopped"
                log(f"{what} after {done}: {out / 'summary.csv'} has {rows} row(s): the acquisition folders in {out} "
                    "(an acquisition under way keeps its earlier folder, if it had one) and the acquisition(s) not "
                    f"processed, to run again: {', '.join(a.name for a in pending)}")
        raise
    _write_summary(out, results)
    kept = [name for name in earlier if name not in {a.name for a in acquisitions}]
    if kept and log is not None:
        log(f"{out} also holds {len(kept)} earlier result folder(s) not processed now, kept as they were and listed "
            f"in summary.csv from their summary.json: {', '.join(kept)}")
    return results


def _movie_key(path: str | os.PathLike) -> str:
    """A movie's path, resolved (``./m/a.tif`` and ``m/a.tif`` and a link to it are one movie)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(Path(path).absolute())


def _drop_repeats(acquisitions: Sequence[Acquisition]) -> list[Acquisition]:
    """``acquisitions`` without one whose movies an earlier one has (the same movie given twice: a shell pattern and
    its name; it was fitted twice, into ``NAME`` and ``NAME_2``), a warning naming it."""
    seen: dict[tuple[str, ...], Acquisition] = {}
    kept = []
    for acq in acquisitions:
        key = tuple(_movie_key(m) for m in acq.movies)
        if key in seen:
            first = seen[key]
            warnings.warn(f"{', '.join(str(m) for m in acq.movies)}: given again (as "
                          f"{', '.join(str(m) for m in first.movies)}): processed once, into {first.name}",
                          ProcessWarning, stacklevel=3)
            continue
        seen[key] = acq
        kept.append(acq)
    return kept


def _not_replaceable(folder: Path, acq: Acquisition, inputs: Sequence[str], names: _Names) -> str | None:
    """Why the entry ``folder`` of ``out`` must not be replaced by ``acq``'s results (None: it is ``acq``'s earlier
    result, or a failed attempt of it, which a new one replaces): a file, a link, the movie itself or a folder that
    holds one of the movies given, a folder plexloc process did not write, another movie's result."""
    if folder.is_symlink() or not folder.is_dir():
        return "is not a folder"
    key = _movie_key(folder)
    held = [m for m in inputs if m == key or m.startswith(key.rstrip(os.sep) + os.sep)]
    if held:
        return f"holds the movie {held[0]}" if held[0] != key else "is the movie itself"
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict) or not isinstance(summary.get("movies"), list) or "status" not in summary:
        return "is not a result folder of plexloc process (no summary.json of one)"
    if not _same_movies(summary, acq, names):
        recorded = [str(m) for m in summary["movies"]]
        why = f"holds the result of another movie ({', '.join(recorded)})"
        if _resolved(summary) is None and any(not Path(r).is_absolute() for r in recorded):
            why += (", or of this one given from another working folder: its summary.json, written before plexloc "
                    "process recorded the movies' absolute paths (movies_resolved), names them only as given")
        return why
    return None


def _resolved(summary: dict[str, Any]) -> list[str] | None:
    """The movies' absolute paths that ``summary`` (a summary.json's) records (``movies_resolved``), or None: a
    summary.json written before they were recorded, or with ``input_names="file-name"`` (no worker's path)."""
    resolved, given = summary.get("movies_resolved"), summary.get("movies")
    if isinstance(resolved, list) and isinstance(given, list) and len(resolved) == len(given) and all(
            isinstance(r, str) for r in resolved):
        return resolved
    return None


def _same_movies(summary: dict[str, Any], acq: Acquisition, names: _Names) -> bool:
    """Whether ``summary`` (a summary.json's) is of ``acq``'s movies: by the absolute paths it records
    (``movies_resolved``) where it has them: the same movie run again from another working folder with a relative
    path is the same, another movie of the same relative path (another day's ``cell1.tif``, run from its own folder)
    is not. A summary.json without them (written before session 44, or by a service job): by the paths as given,
    the same string or the same file from this working folder (before, the only test: the same movie from another
    working folder was called another movie, and another movie given by the same relative path, the same)."""
    recorded = summary.get("movies")
    if not isinstance(recorded, list) or len(recorded) != len(acq.movies):
        return False
    resolved = _resolved(summary)
    if resolved is not None:
        return resolved == [_movie_key(m) for m in acq.movies]
    return all(str(rec) == names.input(m) or _movie_key(str(rec)) == _movie_key(m)
               for rec, m in zip(recorded, acq.movies))


def _assign_names(acquisitions: Sequence[Acquisition], out: Path, options: ProcessOptions
                  ) -> tuple[list[Acquisition], dict[str, list[str]]]:
    """The acquisitions named so that none replaces what is not its own earlier result: where ``out`` holds an
    entry of the name (compared without case: one folder on a case-insensitive disk) that :func:`_not_replaceable`
    keeps, the next free name (``cell1_2``), with a warning, which is also returned (by the new name) for the
    acquisition's summary.json. Before, ``plexloc process data/cell1 --out data`` (a folder of TIFFs) replaced the
    movie's own folder with its results and deleted its frames, and a rerun on another movie of the name (another
    day's ``cell1.tif``) replaced the earlier one's result."""
    entries: dict[str, list[Path]] = {}
    if out.is_dir():
        for p in out.iterdir():
            if not p.name.startswith("."):
                entries.setdefault(p.name.casefold(), []).append(p)
    inputs = [_movie_key(m) for acq in acquisitions for m in acq.movies]
    names = _Names(out, options.input_names)
    # first, each acquisition whose own earlier result is there (cell1 or cell1_2, ...) keeps its folder, without a
    # word of the other movies' folders of its name (a rerun of day2's and day1's cell1 together)
    own: dict[int, str] = {}
    for i, acq in enumerate(acquisitions):
        base = re.escape(acquisition_name(acq.movies).casefold())
        for key in sorted(entries, key=lambda key: (len(key), key)):
            if key not in own.values() and re.fullmatch(base + r"(_\d+)?", key) and len(entries[key]) == 1 and \
                    _not_replaceable(entries[key][0], acq, inputs, names) is None:
                own[i] = key
                break
    taken: set[str] = set(own.values())
    named, notes = [], {}
    for i, acq in enumerate(acquisitions):
        if i in own:
            named.append(Acquisition(entries[own[i]][0].name, acq.movies))
            continue
        base = acquisition_name(acq.movies)
        name, k, why = base, 2, []
        while True:
            if name.casefold() not in taken:
                there = entries.get(name.casefold(), [])
                reasons = [f"{p} {r}" for p in there
                           for r in [("has the name in another case" if p.name != name else None)
                                     or _not_replaceable(p, acq, inputs, names)] if r is not None]
                if not reasons:
                    break
                why += reasons
            name, k = f"{base}_{k}", k + 1
        taken.add(name.casefold())
        named.append(Acquisition(name, acq.movies))
        if why:
            text = (f"{', '.join(str(m) for m in acq.movies)}: {'; '.join(why)}: kept as it is; this movie's results "
                    f"go to {out / name}")
            warnings.warn(text, ProcessWarning, stacklevel=3)
            notes[name] = [f"{ProcessWarning.__name__}: {text}"]
    return named, notes


def _write_summary(out: Path, results: Sequence[AcquisitionResult], *, pending: Sequence[Acquisition] = (),
                   stopped: str = "stopped", names: _Names | None = None) -> int:
    """``out/summary.csv`` of every acquisition folder in ``out`` (``results`` winning by name), and of each
    acquisition of ``pending`` (those of a run that stopped, ``stopped`` saying how, before their results were in
    place: the first was under way), in the run's order after its results: one without a folder as a row of status
    ``interrupted`` (the one under way) or ``not_started``, one with an earlier folder as that folder's row, its error
    saying that it was not processed again. Before, a movie that never got a folder had no row, and summary.csv did
    not show what was left to run. The number of rows."""
    rows = folder_results(out, results)
    placed = sum(1 for r in rows if any(r is n for n in results))  # this run's results come first
    earlier = {r.acquisition.name: r for r in rows[placed:]}
    unfinished = []
    for k, acq in enumerate(pending):
        what = f"{'under way' if k == 0 else 'not started'} when the run was {stopped}"
        r = earlier.pop(acq.name, None)
        if r is not None:  # its earlier folder, kept: the row says that the result is not this run's
            note = f"not processed again: {what}; this row is the earlier result in {acq.name}"
            error = "; ".join(str(e) for e in (r.summary.get("error"), note) if e)
            unfinished.append(AcquisitionResult(r.acquisition, r.folder, {**r.summary, "error": error}))
        else:
            given = [names.input(m) if names is not None else str(m) for m in acq.movies]
            unfinished.append(AcquisitionResult(acq, out / acq.name, {
                "status": "interrupted" if k == 0 else "not_started", "movies": given,
                "error": f"{what}: no result; process it again"}))
    rows = rows[:placed] + unfinished + list(earlier.values())
    write_summary_csv(rows, out / "summary.csv")
    return len(rows)
