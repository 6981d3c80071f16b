"""The SMLM Challenge 2016's CSV tables (Sage et al. 2019), read for evaluation.

The challenge's ground truth (``activations.csv``) and the localization files scored against it share one column
order: an index, the frame (numbered from 1), x, y, z (nm) and the intensity (photons). The ground truth has the
header ``Ground-truth,frame,xnano,ynano,znano,intensity``; localization files come with it, with short names
(``id,frame,x,y,z,intensity``) or without a header. Such a file read as plexloc's CSV was refused for its missing
``x_nm`` column, so a method developer could not score against the challenge's own files.

:func:`challenge_layout` tells such a file from a plexloc CSV (which has ``x_nm``), :func:`read_challenge_csv`
reads it as a :class:`~plexloc.table.LocTable` (frames from 0, as everywhere in plexloc: ``frame - 1``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["CHALLENGE_COLUMNS", "challenge_layout", "read_challenge_csv"]

#: the challenge's columns, in order, and the plexloc column each is read as
CHALLENGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Ground-truth", "id"), ("frame", "frame"), ("xnano", "x_nm"), ("ynano", "y_nm"), ("znano", "z_nm"),
    ("intensity", "photons"),
)
#: header names taken for each column of the challenge's order (lower case, blanks removed); the first, an index,
#: may be named anything
_NAMES: tuple[frozenset[str] | None, ...] = (
    None, frozenset({"frame"}), frozenset({"xnano", "x"}), frozenset({"ynano", "y"}), frozenset({"znano", "z"}),
    frozenset({"intensity", "photons", "i"}),
)


def _fields(line: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in line.strip().split(",")]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    return line
    except (OSError, UnicodeError):  # not this reader's to say: the plexloc reader names what is wrong
        return ""
    return ""


def challenge_layout(path: str | os.PathLike) -> str | None:
    """``'header'`` where ``path``'s first line is a header in the challenge's column order (index, ``frame``,
    ``xnano``/``x``, ``ynano``/``y``, ``znano``/``z``, ``intensity``), ``'bare'`` where it is six numbers (the
    challenge's order without a header), else ``None`` (a plexloc CSV, with its ``x_nm``, is never taken)."""
    fields = _fields(_first_line(Path(path)))
    if len(fields) != len(CHALLENGE_COLUMNS):
        return None
    if all(_number(f) for f in fields):
        return "bare"
    names = [f.lower().replace(" ", "") for f in fields]
    if all(ok is None or name in ok for name, ok in zip(names, _NAMES)):
        return "header"
    return None


def read_challenge_csv(path: str | os.PathLike, *, frame_origin: int = 1) -> LocTable:
    """Read an SMLM Challenge CSV (module docstring) as a plexloc table: ``frame`` from 0 (``frame - frame_origin``),
    ``x_nm, y_nm, z_nm`` (nm, as the challenge's), ``photons`` (its intensity) and ``id`` (its index, where it holds
    whole numbers). Errors name the file, line, column and value: a value that is no number, NaN or inf, a frame that
    is not a whole number or is below ``frame_origin`` (a table numbering its frames from 0: ``frame_origin=0``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "is not a file", source=p)
    if frame_origin not in (0, 1):
        raise InputError(f"frame_origin must be 0 or 1, got {frame_origin!r}", source=p)
    layout = challenge_layout(p)
    if layout is None:
        raise InputError("not in the SMLM Challenge's column order (an index, frame, x, y, z in nm, intensity; with "
                         "the header Ground-truth,frame,xnano,ynano,znano,intensity or none)", source=p)
    values, names = _parse_fast(p, layout)
    lines = None
    if values is None:  # the numbers as they are written: the line, column and value that is wrong is said
        values, names, lines = _parse_lines(p, layout)
    frame = values[:, 1]
    bad = np.flatnonzero((frame != np.round(frame)) | (frame < frame_origin) | (np.abs(frame) > 2.0**53))
    if bad.size:
        k = int(bad[0])
        v = frame[k]
        why = (f"below {frame_origin}, the first frame number of the challenge's tables; a table numbering its frames "
               f"from 0 is read with frame_origin=0 (plexloc evaluate --truth-frame-origin 0 / --pred-frame-origin 0)"
               if v == np.round(v) and v < frame_origin else "not a whole number")
        if lines is None:
            lines = _parse_lines(p, layout)[2]
        raise InputError(f"line {lines[k]}, column '{names[1]}': frame {v:g} is {why}", source=p)
    columns: dict[str, np.ndarray] = {"frame": frame.astype(np.int64) - frame_origin}
    for i, (_, col) in enumerate(CHALLENGE_COLUMNS):
        if col == "frame":
            continue
        if col == "id":
            ids = values[:, 0]
            if np.all(ids == np.round(ids)) and np.all(np.abs(ids) <= 2.0**53):  # an index; left out where it is not
                columns["id"] = ids.astype(np.int64)
            continue
        columns[col] = values[:, i]
    return LocTable(columns, source=str(p))


def _parse_fast(p: Path, layout: str) -> tuple[np.ndarray | None, list[str]]:
    """numpy's parser on the whole file: the values (rows, 6) and the column names, or ``None`` for the values where
    it refuses a line or a value is NaN or inf (:func:`_parse_lines` then says which)."""
    import warnings

    names = _fields(_first_line(p)) if layout == "header" else [c for c, _ in CHALLENGE_COLUMNS]
    with open(p, encoding="utf-8-sig") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": a header alone
        if layout == "header":
            for line in f:  # up to the header (blank lines before it)
                if line.strip():
                    break
        try:
            values = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            return None, names
    if values.size == 0:
        return np.zeros((0, len(CHALLENGE_COLUMNS))), names
    if values.shape[1] != len(CHALLENGE_COLUMNS) or not np.isfinite(values).all():
        return None, names
    return values, names


def _parse_lines(p: Path, layout: str) -> tuple[np.ndarray, list[str], list[int]]:
    """The values (rows, 6), column names and each row's 1-based line, line by line; an
    :class:`~plexloc.errors.InputError` names the line, column and value that is not a finite number."""
    names = [c for c, _ in CHALLENGE_COLUMNS]
    rows: list[list[float]] = []
    lines: list[int] = []
    with open(p, encoding="utf-8-sig") as f:
        skip_header = layout == "header"
        for ln, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if skip_header:
                names = _fields(line)
                skip_header = False
                continue
            fields = _fields(line)
            if len(fields) != len(names):
                raise InputError(f"line {ln} has {len(fields)} values where the challenge's table has "
                                 f"{len(names)} ({', '.join(names)})", source=p)
            row = []
            for name, text in zip(names, fields):
                try:
                    v = float(text)
                except ValueError:
                    raise InputError(f"line {ln}, column '{name}': value {text!r} is not a number", source=p) from None
                if not np.isfinite(v):
                    raise InputError(f"line {ln}, column '{name}' is {text!r}; the challenge's columns must be finite "
                                     "(drop the rows without a position)", source=p)
                row.append(v)
            rows.append(row)
            lines.append(ln)
    return np.asarray(rows, float).reshape(-1, len(CHALLENGE_COLUMNS)), names, lines
