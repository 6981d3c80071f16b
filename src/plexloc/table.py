"""The localization table: one type for ground truth and predictions.

Columns follow ``docs/conventions.md``. Required: ``frame, x_nm, y_nm, z_nm, photons``.
Optional (when known): ``id, bg, sigma_x_nm, sigma_y_nm, sigma_z_nm, sigma_photons, prob,
photons_ch0, photons_ch1, ..., color, color_prob, crlb_x_nm, crlb_y_nm, crlb_z_nm``.
Other columns a user brings are kept as they are (never dropped), as float.

``z_nm`` is the one required column that may be NaN: z unknown, as in a 2D table (a 2D fit's output, a 2D
ground truth), in some rows or all of them (:data:`NAN_ALLOWED_COLUMNS`). The readers take such tables
(:meth:`LocTable.check_readable`); ``±inf`` is refused there as everywhere, and NaN/inf in ``frame, x_nm, y_nm,
photons`` too. A consumer that needs z checks it itself and names the file and column
(``table.check_finite(("z_nm",))``): evaluation in 3D, the voxel Jaccard index, COMET drift correction.

The table holds one 1-D numpy array per column, all of the same length. It converts no units:
readers and writers of other formats (ThunderSTORM, Picasso, ...) do that at the file boundary.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from plexloc.errors import InputError

REQUIRED_COLUMNS: tuple[str, ...] = ("frame", "x_nm", "y_nm", "z_nm", "photons")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "id",
    "bg",
    "sigma_x_nm",
    "sigma_y_nm",
    "sigma_z_nm",
    "sigma_photons",
    "prob",
    "color",
    "color_prob",
    "crlb_x_nm",
    "crlb_y_nm",
    "crlb_z_nm",
)
#: required columns that may hold NaN (z unknown: a 2D table); never ±inf. See the module docstring.
NAN_ALLOWED_COLUMNS: tuple[str, ...] = ("z_nm",)
#: columns held as int64: indices and counts (merge adds ``n_merged`` and ``frame_last``; stored as floats they read
#: "3.0" in a CSV and compared as floats)
INTEGER_COLUMNS: frozenset[str] = frozenset({"frame", "id", "color", "n_merged", "frame_last", "saturated_px",
                                           "at_bound"})
_PHOTONS_CH = re.compile(r"^photons_ch(\d+)$")

#: Human-readable meaning and unit of every documented column (used by docs and file headers).
COLUMN_DOCS: dict[str, str] = {
    "frame": "frame index, 0-based",
    "x_nm": "x position (along columns) in nm, origin at the outer corner of pixel (0, 0)",
    "y_nm": "y position (along rows) in nm, same origin",
    "z_nm": "axial position in nm relative to the reference channel's focal plane, > 0 away from the objective",
    "photons": "photons sent to the detector in this frame (before quantum efficiency), all channels",
    "id": "molecule identity (ground truth: the same in every frame and blink of a molecule) or localization index",
    "bg": "background photons per pixel per frame",
    "sigma_x_nm": "predicted 1-sigma uncertainty of x_nm",
    "sigma_y_nm": "predicted 1-sigma uncertainty of y_nm",
    "sigma_z_nm": "predicted 1-sigma uncertainty of z_nm",
    "sigma_photons": "predicted 1-sigma uncertainty of photons",
    "prob": "detection probability, 0..1",
    "photons_chN": "photons in channel N (before quantum efficiency)",
    "color": "0-based colour index, -1 where the colour was rejected",
    "color_prob": "probability of the assigned colour",
    "crlb_x_nm": "Cramér-Rao bound (1 sigma) of x_nm",
    "crlb_y_nm": "Cramér-Rao bound (1 sigma) of y_nm",
    "crlb_z_nm": "Cramér-Rao bound (1 sigma) of z_nm; NaN where the MLE fit held z on its bound (at_bound & 2: no "
    "estimate of z)",
    # written by the maximum-likelihood fitter (plexloc.mle)
    "crlb_photons": "Cramér-Rao bound (1 sigma) of photons, at the fitted parameters",
    "crlb_bg": "Cramér-Rao bound (1 sigma) of bg (reference channel), at the fitted parameters",
    # imported from other programs' uncertainties (DECODE bg_sig, SMAP bgerr, Picasso bg_unc)
    "sigma_bg": "predicted 1-sigma uncertainty of bg (imported: DECODE's bg_sig, SMAP's bgerr, Picasso's bg_unc)",
    "bg_chN": "background photons per pixel per frame in channel N",
    "sigma_photons_chN": "predicted 1-sigma uncertainty of photons_chN (network with per-channel photons)",
    "iterations": "iterations of the maximum-likelihood fit",
    "converged": "1 where the maximum-likelihood fit converged to a maximum of the likelihood inside the fit's bounds; "
    "0 where it stopped at its iteration limit or ended with its position, z, photons or PSF width on a bound of the "
    "fit (at_bound says which: such an estimate is no maximum of the likelihood, and its CRLB does not describe its "
    "error). Such rows are kept, and are usually worse: a selection converged == 1 removes them (plexloc filter "
    "--converged). A merged row: 1 where every row of the event converged",
    "at_bound": "bounds the maximum-likelihood fit ended on, a sum of: 1 x or y 1 px beyond the fitting window, 2 z at "
    "the fit's z bound (the configured emitter z range, or the PSF's calibrated range), 4 photons at the lower bound "
    "(1, or above it by less than 5 % of their CRLB: no spot), 8 background at 0, 16 PSF width at its bound (free width), 32 one channel's photons at 1 (free "
    "photons per channel, not all); 0 none. 1, 2, 4 and 16 make converged 0; 8 and 32 are the non-negative model's "
    "own estimate (a very low background, a dye absent from a channel) and leave it 1. Integer (t['at_bound'] & 2 "
    "selects z); 8 is set also where the background lies above 0 by less than 5 % of its CRLB; a merged row holds the "
    "bits of all its rows",
    "loglik": "Poisson log-likelihood of the fit (effective counts of the camera's noise model)",
    "llr": "log-likelihood ratio 2 (log L_saturated - log L_fit); chi-square with (pixels - parameters) "
    "degrees of freedom for a good fit, large for overlapping or misfit spots",
    "spot_llr": "detection statistic of the MLE fit: 2 (log L_fit - log L_background-only), the fitted spot against "
    "one constant background per channel on the same window and camera noise model (generalized likelihood-ratio "
    "test, as Smith et al. 2015); 0 where the fit ended below the background-only maximum; a merged row: the sum over "
    "its rows. A row refined by plexloc fit --refine-mle: its refit's, the emitter against the background plus the "
    "light of the frame's other localizations held at their estimates (the neighbours are in both models); NaN where "
    "the network's row was kept (refined 0)",
    "p_spot": "false-alarm p-value of spot_llr: the probability that background alone gives a spot_llr this large "
    "(chi-square tail with effective degrees of freedom measured on pure-noise windows, plexloc.mle.fit.spot_pvalue; "
    "2D 4.0, 3D 4.85). Small: a spot; above 0.01 the fit is no evidence of one (plexloc filter --max-p-spot 0.01). A "
    "merged row: its rows' p_spot combined by Fisher's method (the chi-square tail of -2 sum log p with 2 n degrees of "
    "freedom). A refined row (plexloc fit --refine-mle): the p-value of its refit's spot_llr, the same null; NaN on the "
    "network's rows that were not refined, which --max-p-spot therefore removes (on pure noise 4-9 % of a table's rows "
    "are refined, and 0-1.3 % of those have p_spot < 0.01; a phantom row beside a bright 3D emitter: 3-29 %, as its "
    "neighbour's estimate errs and the null holds it fixed: bench/refine_significance43.py)",
    "roi_px": "side of the square fitting window in pixels (llr's pixels: roi_px² per channel)",
    "saturated_px": "raw pixels of the localization's spot at the camera's clipping level, all channels summed (the "
    "MLE's fitting window; for a network the 7 x 7 pixels around its position in each channel): the camera's "
    "saturation_adu, else a level found in the movie (a 12-bit camera's 4095), else the file's integer maximum (65535). "
    "0 none; a row above 0 was fitted from clipped light: its photons low, the more so the more pixels clipped (MLE "
    "0.95x at 1-2 clipped pixels, 0.52x at 9 or more, still converged 1, its x error 10.9x its CRLB against 3.9x "
    "unflagged; bench/saturation41.py), and plexloc filter --no-saturated drops it",
    "psf_sigma_x_nm": "fitted PSF width along x (free-width Gaussian fit)",
    "psf_sigma_y_nm": "fitted PSF width along y (free-width Gaussian fit)",
    "refined": "1 where plexloc fit --refine-mle refined the network's row by maximum likelihood with its neighbours "
    "modelled (its sigma_x/y/z_nm are then the CRLB at the fit), 0 where the network's values were kept",
    # written by post-processing (plexloc.post)
    "drift_x_nm": "drift subtracted from x_nm in this frame (plexloc drift)",
    "drift_y_nm": "drift subtracted from y_nm in this frame (plexloc drift)",
    "drift_z_nm": "drift subtracted from z_nm in this frame (plexloc drift)",
    "n_merged": "localizations merged into this row (plexloc merge: one molecule on in consecutive frames)",
    "frame_last": "last frame of the merged localizations; frame is the first",
    "n_channels_seen": "channels in which the molecule was localized when each channel was fitted alone and "
    "the tables merged by the transform (plexloc.post.channels)",
}


#: per axis, the columns of a row's uncertainty in order of preference: the predicted σ (a network's), then the
#: Cramér-Rao bound at the fit (the MLE's)
UNCERTAINTY_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "xy": (("sigma_x_nm", "sigma_y_nm"), ("crlb_x_nm", "crlb_y_nm")),
    "z": (("sigma_z_nm",), ("crlb_z_nm",)),
}


def uncertainty_columns(table: LocTable, axis: str = "xy") -> tuple[str, ...] | None:
    """The columns that hold the rows' uncertainty along ``axis`` (``"xy"`` or ``"z"``): the predicted σ
    (``sigma_x_nm, sigma_y_nm``), else the CRLB (``crlb_x_nm, crlb_y_nm``), the first whose columns are all in the table
    with a finite value in some row (an empty table: all in it); None where neither. Filtering, rendering and NeNA
    read the same columns by this one rule."""
    for cols in UNCERTAINTY_COLUMNS[axis]:
        if all(c in table for c in cols) and (
                len(table) == 0 or bool(np.any(np.all([np.isfinite(table[c]) for c in cols], axis=0)))):
            return cols
    return None


def is_known_column(name: str) -> bool:
    """Whether ``name`` is a column that conventions.md documents."""
    return name in REQUIRED_COLUMNS or name in OPTIONAL_COLUMNS or _PHOTONS_CH.match(name) is not None


def _column_order(names: Iterable[str]) -> list[str]:
    names = list(names)
    known = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in names]
    ch = sorted((n for n in names if _PHOTONS_CH.match(n)), key=lambda n: int(n[len("photons_ch") :]))
    rest = [n for n in names if n not in known and n not in ch]
    return known + ch + rest


class LocTable:
    """A table of localizations (or ground-truth emitters), columns per conventions.md.

    Args:
        columns: mapping of column name to a 1-D array-like; all the same length. The five required
            columns must be present. Integer columns (``INTEGER_COLUMNS``: ``frame, id, color, n_merged,
            frame_last, saturated_px, at_bound``) are stored as int64, all others as float64.
        source: where the table came from (a file name), used in error messages.

    Example:
        >>> t = LocTable({"frame": [0, 1], "x_nm": [50.0, 150.0], "y_nm": [50.0, 50.0],
        ...               "z_nm": [0.0, 0.0], "photons": [1000.0, 2000.0]})
        >>> len(t), t.columns[:3]
        (2, ['frame', 'x_nm', 'y_nm'])
        >>> t[t["frame"] == 1]["x_nm"].tolist()
        [150.0]
    """

    def __init__(self, columns: Mapping[str, Any], *, source: str | None = None, copy: bool = True):
        """``copy=False``: columns that are already int64 / float64 arrays are taken as they are, not copied (for
        arrays the caller made for this table and hands over: it must not change them afterwards)."""
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(
                f"missing required column(s) {missing}; required are {list(REQUIRED_COLUMNS)}",
                source=source,
            )
        named = [k for k in columns.keys() if not isinstance(k, str)]
        if named:
            raise InputError(f"column names must be text, got {named[0]!r} ({type(named[0]).__name__})", source=source)
        data: dict[str, np.ndarray] = {}
        n = None
        for name in _column_order(columns.keys()):
            arr = _column_array(columns[name], name, source)
            if arr.ndim != 1:
                raise InputError(f"column '{name}' must be 1-D, got shape {arr.shape}", source=source)
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise InputError(f"column '{name}' has {len(arr)} rows, expected {n}", source=source)
            if name in INTEGER_COLUMNS:
                if arr.size and arr.dtype.kind == "f":
                    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                        bad = arr[~np.isfinite(arr) | (arr != np.round(arr))][0]
                        raise InputError(f"column '{name}' must hold integers, found {bad!r}", source=source)
                    # beyond int64 the cast wraps (1e19 read -9223372036854775808): refused, as a wrapped uint64 is
                    out = (arr < -(2.0**63)) | (arr >= 2.0**63)
                    if np.any(out):
                        raise InputError(f"column '{name}' holds {arr[out][0]!r}, beyond the 64-bit integer range",
                                         source=source)
                elif arr.size and arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.max() > np.iinfo(np.int64).max:
                    raise InputError(f"column '{name}' holds {int(arr.max())}, beyond the 64-bit integer range",
                                     source=source)
                elif arr.dtype.kind not in "biuf":
                    raise InputError(f"column '{name}' must hold integers, got dtype {arr.dtype}", source=source)
                arr = arr.astype(np.int64, copy=copy)
            else:
                if arr.dtype.kind not in "biuf":
                    raise InputError(f"column '{name}' must be numeric, got dtype {arr.dtype}", source=source)
                arr = arr.astype(np.float64, copy=copy)
            data[name] = arr
        self._data = data
        self.source = source

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, extra_columns: Iterable[str] = ()) -> LocTable:
        """A table with zero rows and the required (plus ``extra_columns``) columns."""
        return cls({c: np.zeros(0) for c in (*REQUIRED_COLUMNS, *extra_columns)})

    @classmethod
    def concat(cls, tables: Iterable[LocTable]) -> LocTable:
        """Stack tables with the same columns row-wise (``tables``: a list of :class:`LocTable`)."""
        if isinstance(tables, LocTable):  # (iterating one gives its column names)
            raise TypeError("LocTable.concat takes a list of tables, got one LocTable: LocTable.concat([a, b])")
        tables = list(tables)
        for i, t in enumerate(tables):
            if not isinstance(t, LocTable):
                raise TypeError(f"LocTable.concat: item {i} is {type(t).__name__}, not a LocTable")
        if not tables:
            return cls.empty()
        names = tables[0].columns
        for t in tables[1:]:
            if set(t.columns) != set(names):
                raise InputError(f"cannot concatenate tables with columns {names} and {t.columns}")
        return cls({c: np.concatenate([t[c] for t in tables]) for c in names})

    # --- access ---------------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """Column names, required first, then documented optional ones, then user columns."""
        return list(self._data)

    def __len__(self) -> int:
        return len(self._data["frame"])

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        """Not iterable: a TypeError naming what to use. Iterating gave the column names, which
        ``pandas.DataFrame(t)`` took as the rows of a one-column frame of names without a word (a DataFrame is
        ``pandas.DataFrame(t.to_dict())``); the columns are :attr:`columns` (``name in t`` asks of them), the rows
        ``t[i]``."""
        raise TypeError("a LocTable is not iterated: its column names are t.columns, a row is t[i], and a pandas "
                        "DataFrame of it is pandas.DataFrame(t.to_dict())")

    def __getitem__(self, key):
        """``t["x_nm"]`` gives a column; ``t[mask]``, ``t[indices]`` or ``t[a:b]`` a new table of those rows, ``t[i]``
        one of row ``i`` (``i`` an int, or a 0-d integer array or tensor; a boolean mask or indices may be numpy arrays,
        lists or torch tensors)."""
        if isinstance(key, str):
            try:
                return self._data[key]
            except KeyError:
                raise KeyError(f"no column '{key}'; columns are {self.columns}") from None
        if not isinstance(key, (bool, np.bool_)) and getattr(key, "ndim", 0) == 0 and _is_integer(key):
            key = operator.index(key)  # (a 0-d integer array or tensor too: torch.argmax(t_photons) is one)
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"row {key} is out of range: the table has {n} rows")
            key = [key]
        elif hasattr(key, "detach") and hasattr(key, "numpy"):  # a torch tensor: as numpy indexes with it (a tensor
            key = key.detach().cpu().numpy()  # of one index was taken as that number: 'column frame must be 1-D')
        return LocTable({k: v[key] for k, v in self._data.items()}, source=self.source)

    def get(self, name: str, default: Any = None) -> Any:
        return self._data.get(name, default)

    def with_columns(self, **columns: Any) -> LocTable:
        """A new table with columns added or replaced."""
        data = dict(self._data)
        data.update(columns)
        return LocTable(data, source=self.source)

    def without_columns(self, *names: str) -> LocTable:
        bad = [n for n in names if n in REQUIRED_COLUMNS]
        if bad:
            raise InputError(f"cannot remove required column(s) {bad}")
        return LocTable({k: v for k, v in self._data.items() if k not in names}, source=self.source)

    def to_dict(self) -> dict[str, np.ndarray]:
        """A shallow copy of the columns."""
        return dict(self._data)

    def sort_by_frame(self) -> LocTable:
        """Rows sorted by frame (stable)."""
        return self[np.argsort(self._data["frame"], kind="stable")]

    @property
    def xyz_nm(self) -> np.ndarray:
        """(N, 3) array of ``x_nm, y_nm, z_nm``."""
        return np.stack([self._data["x_nm"], self._data["y_nm"], self._data["z_nm"]], axis=1)

    @property
    def n_channels_photons(self) -> int:
        """How many ``photons_chN`` columns the table has."""
        return sum(1 for c in self._data if _PHOTONS_CH.match(c))

    def check_finite(self, columns: Iterable[str] = REQUIRED_COLUMNS, *, name: str | None = None,
                     allow_nan: Iterable[str] = ()) -> None:
        """Raise :class:`InputError` naming the first row with NaN/inf in one of ``columns`` (and the table's
        ``name``, where its source is not a file: "channel 1's table"); in the columns of ``allow_nan`` only
        ``±inf`` is refused."""
        allow_nan = set(allow_nan)
        for c in columns:
            if c not in self._data:
                continue
            nan_ok = c in allow_nan
            bad = np.flatnonzero(np.isinf(self._data[c]) if nan_ok else ~np.isfinite(self._data[c]))
            if bad.size:
                what = "infinite value(s)" if nan_ok else "non-finite value(s)"
                why = "; NaN marks an unknown value (z of a 2D table), inf is refused" if nan_ok else ""
                raise InputError(
                    (f"{name}: " if name else "") + f"column '{c}' has {bad.size} {what}, first at row "
                    f"{bad[0]} ({float(self._data[c][bad[0]])}){why}",  # nan / inf, not np.float64(nan)
                    source=self.source,
                )

    def check_readable(self, *, name: str | None = None) -> None:
        """What every table reader asks of a table: the required columns finite, except that ``z_nm`` may be NaN
        (z unknown, a 2D table: :data:`NAN_ALLOWED_COLUMNS`); raises :class:`InputError` as :meth:`check_finite`."""
        self.check_finite(REQUIRED_COLUMNS, name=name, allow_nan=NAN_ALLOWED_COLUMNS)

    def __repr__(self) -> str:
        return f"LocTable({len(self)} rows, columns={self.columns})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocTable):
            return NotImplemented
        return self.columns == other.columns and all(
            np.array_equal(self[c], other[c], equal_nan=self[c].dtype.kind == "f") for c in self.columns
        )

    __hash__ = None  # type: ignore[assignment]


def _is_integer(key: Any) -> bool:
    """Whether ``key`` is one integer: an int, a numpy integer, or a 0-d integer numpy array or torch tensor."""
    if isinstance(key, (int, np.integer)):
        return True
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return False
    if isinstance(dtype, np.dtype):
        return dtype.kind in "iu"
    return getattr(key, "is_floating_point", None) is not None and not key.is_floating_point() \
        and not key.is_complex() and str(dtype) != "torch.bool"


def _column_array(values: Any, name: str, source: str | None) -> np.ndarray:
    """A column's values as a numpy array: a torch tensor on any device, with gradients or in a half-precision type
    as its values (detached, on the CPU, bfloat16/float16 as float32: numpy has no bfloat16, and refused a tensor of
    a GPU or one that requires grad); a tensor on the ``meta`` device, which holds no values, an :class:`InputError`
    naming the column. torch is not imported here (duck-typed): the table stays light."""
    if not isinstance(values, np.ndarray) and hasattr(values, "detach") and hasattr(values, "is_meta"):  # torch
        if values.is_meta:
            raise InputError(f"column '{name}' is a tensor on the meta device, which holds no values; give a CPU or "
                             "GPU tensor or an array", source=source)
        t = values.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()
        return t.numpy()
    return np.asarray(values)


def as_table(table: Any, *, name: str = "table") -> LocTable:
    """``table`` as a :class:`LocTable`: a LocTable as it is; a dict of columns or a pandas DataFrame converted
    (the required columns checked, as :class:`LocTable` does); anything else a TypeError naming what is accepted
    (for the functions that take tables: an AttributeError from deep inside before). ``name``: what messages call
    it (e.g. ``"truth"``)."""
    if isinstance(table, LocTable):
        return table
    if isinstance(table, Mapping) or (hasattr(table, "columns") and hasattr(table, "keys")):  # dict, DataFrame
        return LocTable(table, source=name)
    raise TypeError(f"{name} must be a LocTable (or a dict or pandas DataFrame of its columns), got {type(table).__name__}")

