"""Filtering localizations by detection probability, uncertainty, photons, z range, the fit's convergence, clipped
pixels in the spot and the MLE fit's spot significance (``p_spot``).

Every criterion is a mask over the rows; the report gives, per criterion, how many rows it fails
on its own (``failed``) and how many it removes that no earlier criterion removed
(``removed``, in the order of :data:`CRITERIA`), so that the ``removed`` counts add up to the total; of the rows it
fails, ``no_value`` counts those without a value (NaN) in a column it reads, which fail every criterion (a column that
only some rows hold, such as ``p_spot`` after ``--refine-mle``, removes the others), and the printed table says so.
A criterion on a column the table lacks is an error, not a silent pass. The uncertainty criteria read the
predicted σ (``sigma_x_nm``, ``sigma_y_nm``, ``sigma_z_nm``: a network's table) and, in a table without them, the
Cramér-Rao bound at the fit (``crlb_x_nm``, ... : the MLE fitter's table), as the report and the renderer do;
:func:`uncertainty_columns` says which.

Example:
    >>> t = LocTable({"frame": [0, 0, 1], "x_nm": [0.0, 1.0, 2.0], "y_nm": [0.0] * 3,
    ...               "z_nm": [0.0, 0.0, 900.0], "photons": [500.0, 2000.0, 3000.0],
    ...               "prob": [0.9, 0.2, 0.95]})
    >>> kept, report = filter_localizations(t, min_prob=0.5, z_range_nm=(-500, 500))
    >>> len(kept), report.removed
    (1, {'min_prob': 1, 'z_range_nm': 1})
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plexloc.errors import InputError
from plexloc.table import UNCERTAINTY_COLUMNS, LocTable
from plexloc.table import uncertainty_columns as table_uncertainty_columns

__all__ = ["CRITERIA", "FilterReport", "filter_localizations", "uncertainty_columns"]

#: criterion -> (column(s), description); the order in which ``removed`` is counted
CRITERIA: dict[str, tuple[tuple[str, ...], str]] = {
    "min_prob": (("prob",), "prob >= P"),
    "max_sigma_nm": (("sigma_x_nm", "sigma_y_nm"), "max(sigma_x_nm, sigma_y_nm) <= S"),
    "max_sigma_z_nm": (("sigma_z_nm",), "sigma_z_nm <= S"),
    "min_photons": (("photons",), "photons >= N"),
    "max_photons": (("photons",), "photons <= N"),
    "z_range_nm": (("z_nm",), "Z0 <= z_nm <= Z1"),
    "max_bg": (("bg",), "bg <= B"),
    "exclude_frames": (("frame",), "frame not in F"),
    "converged": (("converged",), "converged == 1 (the MLE fit converged, on no bound of the fit: at_bound)"),
    "saturated": (("saturated_px",), "saturated_px == 0 (no raw pixel of the spot at the camera's clipping level)"),
    "max_p_spot": (("p_spot",), "p_spot <= P (the MLE fit's spot against background alone: plexloc.mle.fit.spot_pvalue)"),
}

#: the uncertainty criteria's axis (plexloc.table.uncertainty_columns: the predicted σ, else the CRLB)
_UNCERTAINTY = {"max_sigma_nm": "xy", "max_sigma_z_nm": "z"}


def uncertainty_columns(table: LocTable, criterion: str) -> tuple[str, ...]:
    """The columns ``criterion`` (``max_sigma_nm`` or ``max_sigma_z_nm``) reads in ``table``: those of
    :func:`plexloc.table.uncertainty_columns` (the predicted σ, else an MLE fit's CRLB), else the first of them the table
    holds with no value in any row (a 2D MLE fit's ``crlb_z_nm``, NaN throughout: the error says so, where it said the
    table lacked a column it has), else the σ columns (missing: the criterion's error names them)."""
    axis = _UNCERTAINTY[criterion]
    return (table_uncertainty_columns(table, axis)
            or next((cols for cols in UNCERTAINTY_COLUMNS[axis] if all(c in table for c in cols)),
                    UNCERTAINTY_COLUMNS[axis][0]))


#: the bit of ``at_bound`` an MLE fit sets where it held z on its bound (:data:`plexloc.mle.fit.AT_BOUND_BITS` ``["z"]``)
Z_HELD_BIT = 2


def _held_z(table: LocTable) -> np.ndarray:
    """(N,) bool: the rows of an MLE fit whose z was held on its bound (``at_bound & 2``); none without ``at_bound``."""
    if "at_bound" not in table:
        return np.zeros(len(table), bool)
    at = np.asarray(table["at_bound"])
    return (np.nan_to_num(at).astype(np.int64) & Z_HELD_BIT) != 0


@dataclass
class FilterReport:
    n_in: int
    n_out: int
    criteria: dict[str, object] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    #: the columns an uncertainty criterion read (the predicted σ, or an MLE table's CRLB)
    columns: dict[str, list[str]] = field(default_factory=dict)
    #: of the rows a criterion fails, those with no value (NaN) in a column it reads: NaN fails a criterion, so a
    #: column that only some rows have (``p_spot`` of a table refined by ``--refine-mle``: NaN where no refit was
    #: kept; z of a table merged from 2D and 3D fits) removes the others, which the count says
    no_value: dict[str, int] = field(default_factory=dict)
    #: the table has ``refined`` (plexloc fit --refine-mle): its network rows without a kept refit have no p_spot
    refined_table: bool = False
    #: of the rows ``no_value`` counts for ``max_sigma_z_nm``, those of an MLE fit whose z was held on its bound
    #: (``at_bound & 2``: no estimate of z, ``crlb_z_nm`` NaN); only where the table has ``at_bound``
    held_z: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def add(self, other: FilterReport) -> FilterReport:
        """Count ``other``'s rows into this report (the same criteria on another part of a table); returns self."""
        self.n_in += other.n_in
        self.n_out += other.n_out
        for k in other.failed:
            self.failed[k] = self.failed.get(k, 0) + other.failed[k]
            self.removed[k] = self.removed.get(k, 0) + other.removed[k]
        for k, v in other.no_value.items():
            self.no_value[k] = self.no_value.get(k, 0) + v
        for k, v in other.held_z.items():
            self.held_z[k] = self.held_z.get(k, 0) + v
        for k, v in other.columns.items():
            self.columns.setdefault(k, v)
        self.refined_table = self.refined_table or other.refined_table
        return self

    def format_table(self) -> str:
        lines = [f"{'criterion':<16} {'value':>16} {'fails':>10} {'removed':>10}"]
        for name, value in self.criteria.items():
            lines.append(f"{name:<16} {str(value):>16} {self.failed[name]:>10} {self.removed[name]:>10}")
        for name, n in self.no_value.items():
            if n:
                why = (" (a table refined by plexloc fit --refine-mle has none on the network's rows whose refit was not "
                       "kept, refined 0)" if name == "max_p_spot" and self.refined_table else
                       f" ({self.held_z[name]} of them an MLE fit's z held on its bound, at_bound & 2: no estimate of z)"
                       if self.held_z.get(name) else "")
                lines.append(f"{name} failed {n} row(s) with no value (NaN) in {', '.join(self.columns.get(name) or CRITERIA[name][0])}: "
                             f"a row without the value does not pass{why}")
        for name, cols in self.columns.items():
            if cols and cols[0].startswith("crlb_"):  # said: the value is compared with a bound, not a predicted σ
                lines.append(f"{name} read {', '.join(cols)} (the Cramér-Rao bound at the fit: the table has no "
                             "predicted sigma)")
        lines.append(f"kept {self.n_out} of {self.n_in} localizations ({self.n_in - self.n_out} removed)")
        return "\n".join(lines)


def filter_localizations(
    table: LocTable,
    *,
    min_prob: float | None = None,
    max_sigma_nm: float | None = None,
    max_sigma_z_nm: float | None = None,
    min_photons: float | None = None,
    max_photons: float | None = None,
    z_range_nm: tuple[float, float] | None = None,
    max_bg: float | None = None,
    exclude_frames: list[int] | tuple[int, ...] | None = None,
    converged: bool | None = None,
    saturated: bool | None = None,
    max_p_spot: float | None = None,
) -> tuple[LocTable, FilterReport]:
    """Keep the rows that pass every given criterion (None: not applied). NaN fails a criterion.
    ``max_sigma_nm``/``max_sigma_z_nm`` read the predicted σ, else the CRLB (:func:`uncertainty_columns`; the
    report's ``criteria`` keeps the value, ``columns`` names what was read). ``exclude_frames``: frame numbers whose
    rows go (a dropped or saturated frame and, for a network, its neighbours in the temporal window:
    :mod:`plexloc.camera.frames`). ``converged``: True keeps the MLE fits with ``converged`` 1 (those that
    stopped neither at the iteration limit nor on a bound of the fit; False is not a criterion and is refused).
    ``saturated``: False keeps the rows with ``saturated_px`` 0, whose spot holds no pixel at the camera's clipping
    level (:mod:`plexloc.camera.check`: such rows were fitted from clipped light); True is not a criterion and is
    refused. ``max_p_spot``: keeps the MLE fits whose spot is significant against background alone, ``p_spot <= P``
    (the false-alarm probability of the fit's ``spot_llr``, :func:`plexloc.mle.fit.spot_pvalue`; a table without
    ``p_spot``, a network's not refined by ``--refine-mle`` or an older MLE table, is refused; a refined table's rows
    without a kept refit have NaN there and fail it).

    Raises:
        InputError: a criterion on a missing column, or an empty z range.
    """
    given = {
        "min_prob": min_prob,
        "max_sigma_nm": max_sigma_nm,
        "max_sigma_z_nm": max_sigma_z_nm,
        "min_photons": min_photons,
        "max_photons": max_photons,
        "z_range_nm": None if z_range_nm is None else tuple(float(v) for v in z_range_nm),
        "max_bg": max_bg,
        "exclude_frames": None if exclude_frames is None else tuple(exclude_frames),
        "converged": converged,
        "saturated": saturated,
        "max_p_spot": max_p_spot,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if "converged" in given and given["converged"] is not True:
        raise InputError(f"filter converged must be True (keep the converged fits) or None, got {converged!r}")
    if "saturated" in given and given["saturated"] is not False:
        raise InputError(f"filter saturated must be False (keep the rows without clipped pixels) or None, got "
                         f"{saturated!r}")
    columns = {name: (uncertainty_columns(table, name) if name in _UNCERTAINTY else CRITERIA[name][0])
               for name in given}
    if "exclude_frames" in given:
        bad = [f for f in given["exclude_frames"] if isinstance(f, (bool, np.bool_))
               or not isinstance(f, (int, np.integer)) or f < 0]
        if bad:
            raise InputError(f"filter exclude_frames must be frame numbers (integers >= 0), got {bad[0]!r}")
    for name in given:
        missing = [c for c in columns[name] if c not in table]
        if missing:
            alt = (f" (or {list(UNCERTAINTY_COLUMNS[_UNCERTAINTY[name]][1])}, the CRLB of an MLE fit)"
                   if name in _UNCERTAINTY else
                   " (the MLE fitter's spot significance: fit the movie with plexloc fit --method mle, or refit a "
                   "network's localizations with plexloc fit --refine-mle; a network's table without the refinement, "
                   "or an MLE table written before the column existed, has none)" if name == "max_p_spot" else "")
            raise InputError(f"filter {name} needs column(s) {missing}{alt}, which the table lacks "
                             f"(columns: {table.columns})", source=table.source)
        # a column with no value in any row (z_nm NaN throughout: a 2D table, z unknown) is as good as missing: the
        # criterion removed every row (12,000 of 12,000 for --z-range) without saying why
        empty = [c for c in columns[name] if len(table) and bool(np.all(np.isnan(table[c])))]
        if empty and name == "max_sigma_z_nm" and bool(np.all(_held_z(table))):
            empty = []  # a 3D MLE fit whose every row is held on the z bound (no estimate of z), not a 2D table
        if empty:
            raise InputError(f"filter {name} needs column(s) {empty}, which are NaN in every row of the table (no value: "
                             "a 2D table has no z)", source=table.source)
    for name, value in given.items():
        if name in ("exclude_frames", "converged", "saturated"):
            continue  # checked above
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        # numbers of any kind (numpy scalars too), not booleans or strings
        if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                   and np.isfinite(v) for v in values):
            raise InputError(f"filter {name} must be a finite number, got {value!r}")
    for name in ("min_prob", "max_p_spot"):
        if name in given and not 0.0 <= given[name] <= 1.0:
            raise InputError(f"filter {name} must be a probability in [0, 1], got {float(given[name]):g}")
    for name in ("max_sigma_nm", "max_sigma_z_nm"):
        if name in given and not given[name] > 0:
            raise InputError(f"filter {name} must be > 0 nm, got {float(given[name]):g}")
    if "min_photons" in given and "max_photons" in given and given["min_photons"] > given["max_photons"]:
        raise InputError(f"filter min_photons ({float(given['min_photons']):g}) is above max_photons "
                         f"({float(given['max_photons']):g}): "
                         "nothing could pass")
    if "z_range_nm" in given:
        z0, z1 = given["z_range_nm"]  # type: ignore[misc]
        if not z0 <= z1:
            raise InputError(f"z range must be (low, high) with low <= high, got ({z0}, {z1})")
        # a 2D table's z is 0 in every row (plexloc fit of a 2D PSF, 2D drift): a range without 0 removed every row
        # (3471 of 3471 for --z-range 100 200) with only the count to say why, as the NaN z of a 2D table did
        z = table["z_nm"]
        if len(table) and not z0 <= 0.0 <= z1 and bool(np.all(z == 0)):
            raise InputError(f"filter z_range_nm ({z0:g}, {z1:g}) would remove every row: z_nm is 0 in all {len(table)} "
                             "rows of the table (a 2D table has no z); leave the z range out", source=table.source)
    n = len(table)
    keep = np.ones(n, bool)
    report = FilterReport(n_in=n, n_out=n, criteria=dict(given),
                          columns={k: list(v) for k, v in columns.items() if k in _UNCERTAINTY},
                          refined_table="refined" in table)
    with np.errstate(invalid="ignore"):
        for name, value in given.items():
            if name == "min_prob":
                ok = table["prob"] >= value
            elif name == "max_sigma_nm":
                ok = np.maximum(table[columns[name][0]], table[columns[name][1]]) <= value
            elif name == "max_sigma_z_nm":
                ok = table[columns[name][0]] <= value
            elif name == "min_photons":
                ok = table["photons"] >= value
            elif name == "max_photons":
                ok = table["photons"] <= value
            elif name == "z_range_nm":
                ok = (table["z_nm"] >= value[0]) & (table["z_nm"] <= value[1])  # type: ignore[index]
            elif name == "exclude_frames":
                ok = ~np.isin(table["frame"], np.asarray(value, dtype=np.int64))
            elif name == "converged":
                ok = table["converged"] == 1
            elif name == "saturated":
                ok = table["saturated_px"] == 0
            elif name == "max_p_spot":
                ok = table["p_spot"] <= value
            else:
                ok = table["bg"] <= value
            report.failed[name] = int(np.count_nonzero(~ok))
            nan = np.zeros(n, bool)
            for c in columns[name]:
                if np.issubdtype(np.asarray(table[c]).dtype, np.floating):
                    nan |= np.isnan(table[c])
            if nan.any():
                report.no_value[name] = int(np.count_nonzero(nan))
                if name == "max_sigma_z_nm" and "at_bound" in table:
                    report.held_z[name] = int(np.count_nonzero(nan & _held_z(table)))
            report.removed[name] = int(np.count_nonzero(keep & ~ok))
            keep &= ok
    report.n_out = int(keep.sum())
    return table[keep], report
