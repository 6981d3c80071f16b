"""Localization tables on disk: plexloc's own CSV and HDF5 formats.

Columns and units are those of ``docs/conventions.md`` (see :mod:`plexloc.table`); no unit is
converted here. Exports to other programs live in :mod:`plexloc.io.thunderstorm` and
:mod:`plexloc.io.picasso`.

CSV (``.csv``)
    One header row of column names (read with or without double quotes), then one comma-separated
    row per localization. Integer columns
    (``frame, id, color``) are written as integers, all others with ``'%.10g'`` (10 significant
    digits: 0.0001 nm resolution for positions below 1 mm; ``float_format`` changes it). Missing
    optional values are written as ``nan``. A line of blanks is an empty line (skipped); a first line that is a
    comment (``#``) is refused saying so. Reading uses numpy's C parser; a malformed row (wrong number of values,
    a value that is not a number) raises :class:`InputError` naming the line number and the value.

    Spreadsheets and other writers: the separator is the one of the header (``,``, ``;`` or a tab, whichever
    splits it into most names); numbers may be quoted (``"12.5"``, as writers that quote every field save them);
    a ``;``-separated file may use decimal commas (``12,5``: a spreadsheet in a European locale, which writes ``;``
    between values because ``,`` is its decimal mark), and so may a tab-separated one where some value cannot be a
    thousands separator (``12,5``; ``1,234`` alone could be 1234). Each is translated to plain comma-separated text and
    parsed by numpy in chunks (line by line in Python only where that fails, to name what is wrong), with one
    :class:`CsvDialectWarning` line naming the file and what was done. Where the meaning cannot be told the file is
    refused naming the line, column and value: a comma inside a (quoted) value of a comma-separated file (a decimal
    comma, or a thousands separator?), decimal commas and points in one file, a value with both (``1.234,5``), a
    tab-separated file whose only commas could be thousands separators. A file that starts with a UTF-16 byte-order
    mark (a spreadsheet's "Unicode text", tab-separated) is read as UTF-16, any other as UTF-8; one that is not UTF-8 but reads as Windows-1252 (Latin-1:
    a spreadsheet's "CSV" saved on Windows, with a ``µ`` or ``°`` in a header or comment) is read as Windows-1252, with
    the warning naming the encoding and the first such byte, while a file with control characters (binary, damaged,
    UTF-16 without its mark) is refused naming both bytes. A table without a ``z_nm`` column is a 2D table: read with
    ``z_nm`` NaN and a :class:`TwoDTableWarning`; a missing ``frame`` (or x, y, photons) is refused. An empty cell, or
    ``NA``, ``N/A``, ``null``, ``None`` (how pandas, R and others write a missing value), is read as NaN in an optional
    float column and in ``z_nm``; in another required or an integer column it is that error.
    NaN/inf are refused in the required columns and allowed in optional ones, except that ``z_nm`` may be NaN (z
    unknown: a 2D table, in some rows or all; ``inf`` is refused there too, see :mod:`plexloc.table`). A header-only file
    gives an empty table. Columns the conventions do not know are kept. Integer columns
    (:data:`plexloc.table.INTEGER_COLUMNS`) are int64 and read exactly over its whole range: a column with a
    value beyond 2**53 (where float64 no longer tells neighbouring integers apart) is read a second time as
    int64 text; a value beyond int64 is refused naming its line.

HDF5 (``.h5``, ``.hdf5``)
    Group ``/locs`` with one 1-D dataset per column (int64 for integer columns, float64 otherwise).
    Group attributes: ``format = 'plexloc-locs'``, ``version = 1``, ``columns`` (the column order).
    A dataset is named as its column, except that ``%``, ``/`` (HDF5's path separator) and a name
    ``.`` are written ``%25``, ``%2F`` and ``%2E`` (the ``columns`` attribute holds the names as they are).
    Each dataset documented in :data:`plexloc.table.COLUMN_DOCS` carries ``unit`` and
    ``description`` attributes. Reading refuses a file whose ``columns`` attribute names a column it holds no dataset
    for (damaged or edited: the column would be lost without a word), and a ``uint64`` integer column with a value
    beyond int64 (the cast would wrap it round to a negative number).

Frames are numbered from 0 (``docs/conventions.md``): every reader and writer here refuses a negative
``frame`` (or ``frame_last``), naming the file, the column, the first such row (the 1-based line of a CSV)
and the value; a frame of 0 is valid.

Both writers are atomic (temporary file, then rename).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> t = LocTable({"frame": [0, 1], "x_nm": [50.0, 150.25], "y_nm": [50.0, 50.0],
    ...               "z_nm": [0.0, -20.0], "photons": [1000.0, 2000.0]})
    >>> write_table(t, d / "locs.csv")
    >>> print((d / "locs.csv").read_text().splitlines()[2])
    1,150.25,50,-20,2000
    >>> read_table(d / "locs.csv") == t, read_table(d / "locs.csv").source == str(d / "locs.csv")
    (True, True)
"""

from __future__ import annotations

import ast
import contextlib
import csv
import decimal
import io
import itertools
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path, naming_disk_full
from plexloc.io._readers import check_uint64, hdf5_errors
from plexloc.table import COLUMN_DOCS, INTEGER_COLUMNS, NAN_ALLOWED_COLUMNS, REQUIRED_COLUMNS, LocTable

__all__ = [
    "CsvDialectWarning",
    "HDF5_FORMAT",
    "HDF5_VERSION",
    "TABLE_SUFFIXES",
    "TableWriter",
    "TwoDTableWarning",
    "column_description",
    "describe_columns",
    "column_unit",
    "read_csv",
    "read_hdf5",
    "read_table",
    "write_csv",
    "write_hdf5",
    "write_table",
]

#: Suffix -> format of :func:`read_table` / :func:`write_table`.
TABLE_SUFFIXES: dict[str, str] = {".csv": "csv", ".h5": "hdf5", ".hdf5": "hdf5"}
HDF5_FORMAT = "plexloc-locs"
HDF5_VERSION = 1
DEFAULT_FLOAT_FORMAT = "%.10g"
_CHUNK_ROWS = 100_000
_TEXT_CHUNK = 1 << 22  # characters of a CSV that numpy parses at once where the text is translated first
#: columns that hold frame numbers (0-based, never negative)
FRAME_COLUMNS: tuple[str, ...] = ("frame", "frame_last")
_PHOTONS_CH = re.compile(r"^photons_ch(\d+)$")


def column_unit(name: str) -> str | None:
    """Unit of a documented column (``'nm'``, ``'photons'``, ...), ``'1'`` for dimensionless, else None."""
    if name.endswith("_nm"):
        return "nm"
    per_channel = _PER_CHANNEL.match(name)
    if name in ("photons", "sigma_photons", "crlb_photons") or (per_channel and per_channel.group(1) in ("photons", "sigma_photons")):
        return "photons"
    if name in ("bg", "crlb_bg", "sigma_bg") or (per_channel and per_channel.group(1) == "bg"):
        return "photons/pixel/frame"
    if name in ("frame", "id", "color", "prob", "color_prob", "frame_last", "n_merged", "n_channels_seen", "refined",
                "iterations", "converged", "at_bound", "loglik", "llr", "spot_llr", "p_spot"):
        return "1"
    if name in ("roi_px", "saturated_px"):
        return "px"
    return None


_PER_CHANNEL = re.compile(r"^(\w+)_ch(\d+)$")


def describe_columns(table: LocTable) -> list[dict[str, Any]]:
    """One dict per column of ``table``: ``column``, ``unit`` and ``description`` (None where the conventions do not
    document it), ``non_finite`` (count), ``min``, ``median``, ``max`` of the finite values (None if there are none).
    What ``plexloc columns`` prints and the report's column table shows."""
    rows = []
    for name in table.columns:
        values = np.asarray(table[name], dtype=np.float64)
        finite = values[np.isfinite(values)]
        rows.append({
            "column": name, "unit": column_unit(name), "description": column_description(name),
            "non_finite": int(values.size - finite.size),
            "min": float(finite.min()) if finite.size else None,
            "median": float(np.median(finite)) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
        })
    return rows


def column_description(name: str) -> str | None:
    """Description from :data:`plexloc.table.COLUMN_DOCS` (per-channel columns such as ``photons_ch1``,
    ``bg_ch0`` or ``sigma_photons_ch1`` from their ``_chN`` entry, with the channel's number)."""
    m = _PER_CHANNEL.match(name)
    if m and f"{m.group(1)}_chN" in COLUMN_DOCS:
        return COLUMN_DOCS[f"{m.group(1)}_chN"].replace("channel N", f"channel {m.group(2)}").replace("_chN", f"_ch{m.group(2)}")
    return COLUMN_DOCS.get(name)


def _suffix_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    try:
        return TABLE_SUFFIXES[suffix]
    except KeyError:
        raise InputError(
            f"unknown table suffix '{Path(path).suffix}'; allowed are {', '.join(TABLE_SUFFIXES)}", source=path
        ) from None


# --- CSV ------------------------------------------------------------------------------------------


class _CsvData:
    """Header names and numeric values of a comma-separated file (internal, shared by the readers)."""

    def __init__(self, path: Path, names: list[str], values: np.ndarray, *, sep: str = ",", decimal: str = ".",
                 encoding: str = "utf-8-sig"):
        self.path = path
        self.encoding = encoding  # (:func:`_encoding`, found once)
        self.names = names
        self.values = values  # (n_rows, n_cols) float64
        self.sep = sep  # the separator of values
        self.decimal = decimal  # the decimal mark
        self.exact: dict[str, np.ndarray] = {}  # integer columns with values beyond 2**53, re-read as int64

    def text(self, line: str, i: int) -> str:
        """The text of value ``i`` of data line ``line`` (unquoted, ``.`` as the decimal mark)."""
        v = _split(line, self.sep)[i]
        return v.replace(",", ".") if self.decimal == "," else v

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def integers(self, name: str) -> np.ndarray:
        """Integer column ``name`` as int64, exactly as written (once :func:`_check_integers` has checked it)."""
        return self.exact[name] if name in self.exact else self.column(name).astype(np.int64)

    def line_of_row(self, row: int) -> int:
        """Physical 1-based line number of data row ``row`` (blank lines are skipped by the parser)."""
        with open(self.path, encoding=self.encoding) as f:
            f.readline()
            k = -1
            for ln, line in enumerate(f, start=2):
                if line.strip():
                    k += 1
                    if k == row:
                        return ln
        return row + 2  # pragma: no cover - row beyond the file

    def fail_row(self, row: int, message: str) -> InputError:
        return InputError(f"line {self.line_of_row(row)}: {message}", source=self.path)


def _encoding(path: Path) -> str:
    """``'utf-16'`` for a file that starts with a UTF-16 byte-order mark (a spreadsheet's "Unicode text": UTF-16,
    tab-separated), else ``'utf-8-sig'`` (UTF-8, with or without its mark)."""
    with open(path, "rb") as f:
        return "utf-16" if f.read(2) in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


class TwoDTableWarning(UserWarning):
    """A CSV table without a ``z_nm`` column was read as a 2D table, ``z_nm`` NaN (z unknown)."""


class CsvDialectWarning(UserWarning):
    """A CSV table was read with another separator than ``,``, with decimal commas or with quoted numbers (module
    docstring); the message names the file and what was done."""


#: separators a header may use, the first one winning ties
_SEPARATORS = (",", ";", "\t")


def _split(line: str, sep: str) -> list[str]:
    """The fields of one line (double quotes removed, as CSV quotes them), stripped of blanks."""
    return [v.strip() for v in next(csv.reader([line.rstrip("\r\n")], delimiter=sep, skipinitialspace=True))]


def _parse_header(line: str, *, source: Path) -> tuple[list[str], str]:
    """The header's column names and the separator: the one of ``,``, ``;`` and a tab that splits it into most."""
    if not line.strip():
        raise InputError("empty file; expected a header row of column names", source=source)
    if "\x00" in line:  # valid UTF-8, but no text table: each name would hold NULs ('f\x00r\x00a\x00...')
        raise InputError("line 1 holds NUL characters (byte 0x00): UTF-16 text without its byte-order mark, or a "
                         "binary file; save the table as UTF-8", source=source)
    splits = {sep: _split(line, sep) for sep in _SEPARATORS}
    sep = max(_SEPARATORS, key=lambda c: len(splits[c]))  # max keeps the first of equals: ','
    names = splits[sep]
    if names[0].startswith("#"):  # '# made by ...': the comment was taken for the header, every row then "too long"
        raise InputError(f"line 1 is a comment ({line.strip()[:60]!r}); the file must start with its header row of "
                         "column names: remove the comment lines", source=source)
    empty = [i for i, n in enumerate(names) if not n]
    if empty:
        raise InputError(f"line 1: column {empty[0] + 1} of the header has no name", source=source)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"line 1: duplicate column name(s) {dup}", source=source)
    return names, sep


#: cells read as a missing value (NaN): empty (pandas' to_csv), NA (R's write.csv), N/A, null, None
_MISSING = frozenset({"", "na", "n/a", "null", "none"})


def _may_be_missing(name: str) -> bool:
    """Columns whose empty or NA cells read as NaN: not the required ones (but ``z_nm``: z unknown) nor the integer
    ones, where an empty cell stays the error it was ("value '' is not a number")."""
    return (name not in REQUIRED_COLUMNS or name in NAN_ALLOWED_COLUMNS) and name not in INTEGER_COLUMNS


#: a value that may be an integer written with thousands separators: 1,234 or -12,345,678
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")
_SEP_NAME = {",": "','", ";": "';'", "\t": "tabs"}


class _Irregular(Exception):
    """A chunk that :func:`_read_translated` leaves to the line-by-line reader (which names what is wrong); ``line``:
    the physical line from which on numpy's parser refused the rows (every row before it was taken), None where
    the whole file is in doubt (its decimal mark)."""

    def __init__(self, line: int | None = None):
        super().__init__(line)
        self.line = line


def _missing_as_nan(text: str) -> float:
    if text.strip().lower() in _MISSING:
        return np.nan
    if "_" in text:  # Python's float() takes '1_000', numpy's parser does not
        raise ValueError(text)
    return float(text)


#: numpy's message for a value its parser does not take (the value as Python writes it)
_NOT_CONVERTED = re.compile(r"could not convert string (.*) to float64 at row \d+, column \d+\.?$", re.DOTALL)


def _may_be_missing_value(message: str) -> bool:
    """Whether the value numpy's parser refused (its error ``message``) may be one :func:`_missing_as_nan` reads: not
    where it names another value (``'abc'``) or lines of different lengths."""
    if "number of columns changed" in message:
        return False
    m = _NOT_CONVERTED.match(message)
    if m is None:
        return True
    try:
        _missing_as_nan(ast.literal_eval(m.group(1)))
    except (ValueError, SyntaxError):
        return False
    return True


def _parse_chunk(text: str, n: int, required: np.ndarray) -> np.ndarray:
    """Comma-separated ``text`` (double quotes allowed) parsed by numpy; empty or NA cells NaN where the column
    allows them. Anything else is :class:`_Irregular`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
        try:
            values = np.loadtxt(io.StringIO(text), delimiter=",", quotechar='"', dtype=np.float64, ndmin=2,
                                comments=None)
        except ValueError as err:
            if not _may_be_missing_value(str(err)):  # no second parse (in Python, 5x the time of the first) in vain
                raise _Irregular from None
            try:
                values = np.loadtxt(io.StringIO(text), delimiter=",", quotechar='"', dtype=np.float64, ndmin=2,
                                    comments=None, converters=_missing_as_nan)
            except ValueError:
                raise _Irregular from None
            if values.shape[1] == n and np.isnan(values[:, required]).any():  # a missing value where none may be
                raise _Irregular from None
    if values.shape[1] != n:
        raise _Irregular
    return values


def _read_translated(path: Path, names: list[str], sep: str, encoding: str, *,
                     start: tuple[int, list[np.ndarray]] | None = None) -> tuple[np.ndarray, bool, bool]:
    """The data lines of ``path`` in chunks, each turned into plain comma-separated text with '.' decimals by a
    character translation and parsed by numpy; :class:`_Irregular` where a chunk is not that simple or the decimal
    mark is in doubt. Returns the values, whether there were decimal commas and quotes. ``start``: of a
    comma-separated file (nothing to translate), the first line to read and the values of the lines before it (which
    hold no quotes: numpy took them as they are)."""
    n = len(names)
    required = np.array([not _may_be_missing(c) for c in names])
    table = str.maketrans({",": ".", sep: ","}) if sep != "," else None
    comma = point = quoted = False
    # a tab-separated file's commas are decimal commas only where some value cannot be a thousands separator (12,5)
    told = sep != "\t"
    first_comma = None  # (line number, line) of the first line with a comma
    line_no = 2  # physical line number of the chunk's first line
    chunks = []
    with open(path, encoding=encoding) as f:
        f.readline()
        if start is not None and sep == ",":
            line_no, chunks = start[0], list(start[1])
            next(itertools.islice(f, line_no - 2, line_no - 2), None)  # the lines before it, read already
        while lines := f.readlines(_TEXT_CHUNK):
            text = "".join([line for line in lines if not line.isspace()])
            quoted = quoted or '"' in text
            if table is not None:
                if first_comma is None and "," in text:
                    first_comma = next((line_no + k, line) for k, line in enumerate(lines) if "," in line)
                comma = comma or "," in text
                point = point or "." in text
                if comma and point:
                    raise _Irregular  # which is the decimal mark: the line-by-line reader names the values
                if not told and "," in text:
                    told = _not_thousands(text)
                text = text.translate(table)
            try:
                chunks.append(_parse_chunk(text, n, required))
            except _Irregular:
                raise _Irregular(_first_refused(lines, line_no, n, required, table)) from None
            line_no += len(lines)
    if comma and not told:  # every comma could be a thousands separator: refused naming the first, as _read_lines
        ln, line = first_comma
        values = _split(line, sep)
        column = next(i for i, v in enumerate(values) if "," in v)
        raise _ambiguous_thousands(path, ln, names[column], values[column])
    values = np.concatenate(chunks) if chunks else np.zeros((0, n))
    return values, comma, quoted


_BLOCK_LINES = 4096  # lines of a chunk numpy refused that :func:`_first_refused` parses at once


def _first_refused(lines: list[str], line_no: int, n: int, required: np.ndarray, table: dict | None) -> int:
    """The physical line (``lines`` start at ``line_no``) of the first block of :data:`_BLOCK_LINES` lines of a chunk
    numpy's parser refused that it refuses on its own: the line-by-line reader looks from there on, not over the
    whole file (9 s per million rows in Python to name a value near the end)."""
    for start in range(0, len(lines), _BLOCK_LINES):
        text = "".join([line for line in lines[start:start + _BLOCK_LINES] if not line.isspace()])
        try:
            _parse_chunk(text.translate(table) if table is not None else text, n, required)
        except _Irregular:
            return line_no + start
    return line_no


#: a comma of tab-separated text (lines ending in ``\n``) in a value that may not be a plain integer with thousands
#: separators (``[+-]?\d{1,3}(,\d{3})+``, :data:`_THOUSANDS`): not followed by three digits and the end of the value
#: or a comma; after four digits; after no digit; after 1-3 digits that do not start the value (or follow its sign).
#: Every comma of a value that is not such an integer is found (and some of one with blanks or quotes around it, which
#: :func:`_not_thousands` then looks at in Python); a search that starts with the comma, which the regular expression
#: engine looks for without trying every character.
_MAYBE_DECIMAL_COMMA = re.compile(
    r",(?:(?!\d{3}(?:[,\t\n]|\Z))|(?<=\d{4},)|(?<!\d,)"
    + "".join(rf"|(?<=[^\t\n\d,+-]\d{{{k}}},)|(?<=[^\t\n][+-]\d{{{k}}},)" for k in (1, 2, 3)) + ")")


def _not_thousands(text: str) -> bool:
    """Whether tab-separated ``text`` (lines ending in ``\\n``) holds a comma value that cannot be an integer with
    thousands separators (``12,5``; not ``1,234``), as :func:`_read_lines` tells it value by value (blanks and double
    quotes around it stripped); the search stops at the first."""
    for m in _MAYBE_DECIMAL_COMMA.finditer(text):
        at = m.start()
        start = max(text.rfind("\t", 0, at), text.rfind("\n", 0, at)) + 1
        ends = [e for e in (text.find("\t", at), text.find("\n", at)) if e >= 0]
        value = text[start:min(ends, default=len(text))]
        if not _THOUSANDS.match(value.strip().strip('"').strip()):
            return True
    return False


def _read_text(path: Path, names: list[str], sep: str, encoding: str, *, legacy: str | None = None,
               start: tuple[int, list[np.ndarray]] | None = None) -> tuple[np.ndarray, str]:
    """The data of a file numpy's parser does not take as it is (another separator, quoted numbers, decimal commas,
    missing values, a malformed line): translated and parsed by numpy where that is plain, else line by line in
    Python, where the first malformed line is an :class:`InputError` naming it. Returns the values and the decimal
    mark. ``start``: of a comma-separated file, the line from which :func:`_read_plain` did not take it and the
    values before it."""
    try:
        values, comma, quoted = _read_translated(path, names, sep, encoding, start=start)
    except _Irregular as irregular:
        if irregular.line is not None:  # numpy took every row before it: a malformed line is named from there on
            _read_lines(path, names, sep, encoding, start=irregular.line)
        values, comma, quoted = _read_lines(path, names, sep, encoding)  # (nothing malformed: e.g. a NaN x_nm)
    done = ([] if encoding == "utf-8-sig" else [_encoding_said(encoding, legacy)]) + (
        [] if sep == "," else [f"separated by {_SEP_NAME[sep]}"]) + (
        ["with decimal commas (read as points)"] if comma else []) + (["with quoted numbers"] if quoted else [])
    if done:
        warnings.warn(f"{path}: read as a table {', '.join(done)}", CsvDialectWarning, stacklevel=5)
    return values, "," if comma else "."


def _ambiguous_thousands(path: Path, line: int, name: str, value: str) -> InputError:
    """The refusal of a tab-separated file whose every comma could be a thousands separator (``1,234``)."""
    return InputError(f"line {line}, column '{name}': value {value!r} in a tab-separated file may be a decimal comma "
                      "or a thousands separator, and no value of the file tells which; save the table with '.' as the "
                      "decimal point", source=path)


def _read_lines(path: Path, names: list[str], sep: str, encoding: str, *,
                start: int | None = None) -> tuple[np.ndarray, bool, bool]:
    """:func:`_read_text` line by line in Python. ``start``: only the lines from this physical line on are looked at,
    for one that is malformed in itself (every line before it is known to be well formed), and what they hold is not
    returned; what is wrong only of the whole file (its decimal mark) is left to the read of all lines."""
    n = len(names)
    missing_ok = [_may_be_missing(c) for c in names]
    chunks: list[np.ndarray] = []
    rows: list[list[float]] = []
    comma = point = None  # the first value with a decimal comma, with a decimal point: (line, column, text)
    not_thousands = None  # the first comma value that cannot be an integer with thousands separators
    quoted = False
    with open(path, encoding=encoding) as f:
        f.readline()
        first = 2
        if start is not None:
            first = start
            next(itertools.islice(f, start - 2, start - 2), None)  # the lines before it, skipped unparsed
        for ln, line in enumerate(f, start=first):
            if not line.strip():
                continue
            quoted = quoted or '"' in line
            values = _split(line, sep)
            if len(values) != n:
                raise InputError(f"line {ln}: {len(values)} value(s), expected {n} (one per header column: "
                                 f"{', '.join(names)})", source=path)
            row = []
            for column, (name, ok, v) in enumerate(zip(names, missing_ok, values)):
                if v.lower() in _MISSING:
                    if ok:
                        row.append(np.nan)
                        continue
                    kind = "an integer" if name in INTEGER_COLUMNS else "a required"
                    raise InputError(f"line {ln}, column '{name}': value {v!r} is not a number (a missing value, "
                                     f"which {kind} column cannot hold)", source=path)
                text = v
                if "," in v:
                    if sep == ",":
                        raise InputError(f"line {ln}, column '{name}': value {v!r} holds a comma in a comma-separated "
                                         "file: a decimal comma and a thousands separator (12,5 or 1,234) cannot be "
                                         "told apart; save the table with '.' as the decimal point, or with ';' "
                                         "between values", source=path)
                    if "." in v:
                        raise InputError(f"line {ln}, column '{name}': value {v!r} holds both ',' and '.', one of them "
                                         "a thousands separator; save the table without thousands separators",
                                         source=path)
                    comma = comma or (ln, column, name, v)
                    if not_thousands is None and not _THOUSANDS.match(v):
                        not_thousands = (ln, name, v)
                    text = v.replace(",", ".")
                elif "." in v and sep != ",":
                    point = point or (ln, column, name, v)
                try:
                    if "_" in text:  # Python's float() takes '1_000', numpy's parser does not
                        raise ValueError(text)
                    row.append(float(text))
                except ValueError:
                    raise InputError(f"line {ln}, column '{name}': value {v!r} is not a number", source=path) from None
            if start is not None:
                continue
            rows.append(row)
            if len(rows) == _CHUNK_ROWS:
                chunks.append(np.array(rows, dtype=np.float64))
                rows = []
    chunks.append(np.array(rows, dtype=np.float64).reshape(len(rows), n))
    if start is not None:
        return chunks[0], comma is not None, quoted
    if comma and point:
        first, second = sorted([comma, point])  # in file order: by line, then by column
        raise InputError(f"line {first[0]}, column '{first[2]}' holds {first[3]!r} and line {second[0]}, column "
                         f"'{second[2]}' holds {second[3]!r}: decimal commas and decimal points in one file, so one of "
                         "them may be a thousands separator; save the table with one decimal mark", source=path)
    if comma and sep == "\t" and not_thousands is None:
        raise _ambiguous_thousands(path, comma[0], comma[2], comma[3])
    return np.concatenate(chunks), comma is not None, quoted


def _read_csv(path: str | os.PathLike) -> _CsvData:
    """Read a numeric CSV with a header row; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "is not a file", source=path)
    encoding = _encoding(path)
    try:
        return _read_csv_as(path, encoding)
    except UnicodeError as err:  # UnicodeDecodeError; a UTF-16 file cut short: 'UTF-16 stream does not start with BOM'
        if not isinstance(err, UnicodeDecodeError):
            raise InputError(f"not a UTF-16 text file ({err})", source=path) from None
        reason, at, line = _undecodable_at(path, encoding)
    where = f" ({reason} at byte {at}" + ("" if line is None else f", line {line}") + ")" if reason else ""
    if encoding == "utf-16":
        raise InputError(f"not a UTF-16 text file{where}", source=path) from None
    with open(path, "rb") as f:
        bom = f.read(3) == b"\xef\xbb\xbf"
    if bom:  # declared UTF-8: read as Windows-1252, the mark became 'ï»¿' in the first column's name
        raise InputError(f"not UTF-8{where}, though it starts with UTF-8's byte-order mark: a damaged file, "
                         "or text of another encoding added to it; save it as UTF-8 again", source=path)
    why_not = _not_legacy_text(path)
    if why_not:
        raise InputError(f"not a text file: not UTF-8{where}, nor Windows-1252 ({why_not}); a binary or damaged file?",
                         source=path)
    with open(path, "rb") as f:  # the first byte that is not UTF-8, as Windows-1252 reads it
        f.seek(at)
        char = f.read(1).decode(_LEGACY)
    return _read_csv_as(path, _LEGACY, legacy=f"byte {at}, line {line}, read as {char!r}")


#: the encoding of a CSV that is neither UTF-8 nor UTF-16 (module docstring): Windows-1252, a superset of Latin-1's
#: printable characters
_LEGACY = "cp1252"
#: bytes that are control characters in Windows-1252, in no text table (a tab, CR and LF are text)
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _not_legacy_text(path: Path) -> str:
    """Why ``path`` is no Windows-1252 text (``'byte 0x81 at 1234 is not Windows-1252'``, ``'byte 0x00 at 12 is a
    control character'``: binary data, or UTF-16 without its byte-order mark); ``''`` where it is."""
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            bad = _CONTROL_BYTES.search(chunk)
            if bad:
                return f"byte 0x{chunk[bad.start()]:02x} at {offset + bad.start()} is a control character"
            try:
                chunk.decode(_LEGACY)
            except UnicodeDecodeError as err:
                return f"byte 0x{chunk[err.start]:02x} at {offset + err.start} is not Windows-1252"
            offset += len(chunk)
    return ""


def _read_plain(path: Path, n: int, encoding: str) -> tuple[np.ndarray | None, tuple[int, list[np.ndarray]] | None]:
    """The data lines of comma-separated ``path`` that numpy's parser did not take at once (a missing value, quotes, a
    malformed line), parsed as they are in chunks of ``_CHUNK_ROWS`` lines to find where: None and the first
    physical line of the chunk it refuses with the values of the chunks before it, from which the other readers take
    the file up (the values and None where it refuses none)."""
    chunks: list[np.ndarray] = []
    line_no = 2  # physical line number of the chunk's first line
    with open(path, encoding=encoding) as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data" for blank lines
        f.readline()
        while first := f.readline():
            lines = itertools.chain((first,), itertools.islice(f, _CHUNK_ROWS - 1))
            try:
                chunk = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
            except UnicodeDecodeError:  # (a ValueError too) not this encoding: the translated read would fail again
                raise
            except ValueError:
                return None, (line_no, chunks)
            if chunk.size:
                if chunk.shape[1] != n:
                    return None, (line_no, chunks)
                chunks.append(chunk)
            line_no += _CHUNK_ROWS
    return (np.concatenate(chunks) if chunks else np.zeros((0, n))), None


def _read_csv_as(path: Path, encoding: str, *, legacy: str | None = None) -> _CsvData:
    """:func:`_read_csv` in ``encoding``; ``legacy``: the first byte that is not UTF-8, for the warning of a file read
    as Windows-1252."""
    with open(path, encoding=encoding) as f:
        names, sep = _parse_header(f.readline(), source=path)
        values = start = None
        if sep == ",":  # the common case, numpy's C parser (on the whole file at once: fastest)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data" for header-only files
                try:
                    values = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
                except UnicodeDecodeError:  # (a ValueError too) not this encoding: the translated read would fail again
                    raise
                except ValueError:  # a missing value, quotes or a malformed line: read on from where it is
                    values, start = _read_plain(path, len(names), encoding)
    if values is not None and values.size == 0:
        values = np.zeros((0, len(names)))
    decimal = "."
    if values is None or values.shape[1] != len(names):
        values, decimal = _read_text(path, names, sep, encoding, legacy=legacy, start=start)
    elif encoding != "utf-8-sig":  # read as it is, but say so as the other variants are said
        warnings.warn(f"{path}: read as a table {_encoding_said(encoding, legacy)}", CsvDialectWarning, stacklevel=5)
    return _CsvData(path, names, values, sep=sep, decimal=decimal, encoding=encoding)


def _encoding_said(encoding: str, legacy: str | None) -> str:
    """How the warning names an encoding other than UTF-8 (``legacy``: the first byte that is not UTF-8)."""
    if encoding == "utf-16":
        return "in UTF-16"
    return f"in Windows-1252 (Latin-1), not UTF-8 ({legacy}; save it as UTF-8 to be sure of its characters)"


def _undecodable_at(path: Path, encoding: str) -> tuple[str, int, int | None]:
    """Where ``path`` stops being ``encoding`` text: the reason, the byte and its 1-based line (None for UTF-16); the
    file's own byte offset, where a decode error's ``start`` counts from the chunk the reader was decoding (it named
    byte 3901 for byte 388925). ``('', 0, None)`` where the whole file decodes."""
    import codecs

    utf16 = encoding == "utf-16"
    decoder = codecs.getincrementaldecoder("utf-16" if utf16 else "utf-8")()  # UTF-8's mark is 3 bytes of text here
    offset = newlines = 0  # the bytes before this chunk, and their newlines
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = len(decoder.getstate()[0])  # bytes of the last chunk the decoder holds (part of a character)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                at = offset - pending + err.start
                if utf16:
                    return err.reason, at, None
                return err.reason, at, newlines + chunk[:max(err.start - pending, 0)].count(b"\n") + 1
            if not chunk:
                return "", 0, None
            offset += len(chunk)
            newlines += chunk.count(b"\n")


_INT64_RANGE = "int64: -2**63 .. 2**63 - 1"


def _exact_integer(data: _CsvData, name: str, text: str, line: int) -> int:
    """The integer that the text ``text`` of column ``name`` names, exactly (``'9007199254740993'``, ``'3.0'``,
    ``'1.5e16'``); an InputError naming ``line`` for a fraction or a value beyond int64."""
    try:
        d = decimal.Decimal(text)
    except decimal.InvalidOperation:
        d = decimal.Decimal("nan")
    if not d.is_finite() or d != d.to_integral_value():
        raise InputError(f"line {line}: column '{name}' must hold integers, found {text!r}", source=data.path)
    value = int(d) if d.adjusted() < 20 else 2**64  # (no 10**1000-digit int for a 1e1000)
    if not -(2**63) <= value < 2**63:
        shown = text if text.lstrip("+-").isdigit() else repr(float(d))  # all the digits of an integer as written
        raise InputError(f"line {line}: column '{name}' holds {shown}, beyond the range of an integer column "
                         f"({_INT64_RANGE})", source=data.path)
    return value


def _read_exact_integers(data: _CsvData, name: str, rows: np.ndarray) -> np.ndarray:
    """Column ``name`` as int64, exactly as written: float64 names every integer up to 2**53 but not all beyond, so
    the column is read again as text where ``rows`` hold values beyond 2**53 (only then: a C parse of the column as
    int64, else, for integers written like ``3.0``, the rows beyond 2**53 one by one)."""
    i = data.names.index(name)
    col = data.column(name)
    try:
        if data.sep != ",":
            raise ValueError(data.sep)  # numpy's parser reads ',' only
        with open(data.path, encoding=data.encoding) as f:
            f.readline()
            exact = np.loadtxt(f, delimiter=",", usecols=[i], dtype=np.int64, ndmin=1, comments=None)
        if exact.shape == col.shape and np.array_equal(exact.astype(np.float64), col):
            return exact
    except ValueError:  # '3.0', '1e16', a value beyond int64 or quotes somewhere in the column
        pass
    exact = np.zeros(len(col), np.int64)
    small = np.abs(col) < 2.0**53
    exact[small] = col[small]
    wanted = set(rows.tolist())
    with open(data.path, encoding=data.encoding) as f:
        f.readline()
        row = -1
        for line_no, line in enumerate(f, start=2):
            if not line.strip():
                continue
            row += 1
            if row in wanted:
                exact[row] = _exact_integer(data, name, data.text(line, i), line_no)
    return exact


def _check_integers(data: _CsvData, columns: Iterable[str]) -> None:
    """Integer columns hold integers; those with values beyond 2**53 (which float64 cannot all tell apart) are read
    again exactly as int64 (:meth:`_CsvData.integers`)."""
    for name in columns:
        if name not in data.names:
            continue
        col = data.column(name)
        bad = np.flatnonzero(~np.isfinite(col) | (col != np.round(col)))
        if bad.size:
            raise data.fail_row(int(bad[0]), f"column '{name}' must hold integers, found {float(col[bad[0]])!r}")
        big = np.flatnonzero(np.abs(col) >= 2.0**53)  # 2**53 + 1 parses as 2**53
        if big.size:
            data.exact[name] = _read_exact_integers(data, name, big)


def _check_frames(data: _CsvData, columns: Iterable[str] = FRAME_COLUMNS) -> None:
    """Frame numbers are 0-based: the first negative one is named with its line (after :func:`_check_integers`)."""
    for name in columns:
        if name not in data.names:
            continue
        bad = np.flatnonzero(data.column(name) < 0)
        if bad.size:
            raise data.fail_row(int(bad[0]), f"column '{name}' is {int(data.integers(name)[bad[0]])}; frames are "
                                             f"numbered from 0 ({bad.size} negative value(s) in this column)")


def _check_finite(data: _CsvData, columns: Iterable[str], allow_nan: Iterable[str] = NAN_ALLOWED_COLUMNS) -> None:
    """NaN/inf in ``columns`` refused naming the line; in those of ``allow_nan`` (``z_nm``: z unknown) only inf."""
    for name in columns:
        if name not in data.names:
            continue
        col = data.column(name)
        bad = np.flatnonzero(np.isinf(col) if name in allow_nan else ~np.isfinite(col))
        if bad.size:
            raise data.fail_row(
                int(bad[0]),
                f"column '{name}' is {float(col[bad[0]])!r}; required columns must be finite "
                f"({bad.size} non-finite value(s) in this column)",
            )


def _format_header(names: Sequence[str], *, quote_all: bool = False) -> str:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\n").writerow(names)
    return buf.getvalue()


def _write_csv_lines(f, columns: Sequence[np.ndarray], fmt: str, *, java: Sequence[str] | None = None) -> None:
    """Rows of ``columns`` to the open text file ``f``, ``_CHUNK_ROWS`` at a time (bounded temporaries). ``java``: the
    %-format of each column (``fmt`` joins them), to write NaN and infinities ``NaN``, ``Infinity``, ``-Infinity``, as
    Java's ``Double.parseDouble`` reads them (it refuses the ``nan`` and ``inf`` of Python's %-formats; plexloc's
    readers take both)."""
    n = len(columns[0]) if columns else 0
    for start in range(0, n, _CHUNK_ROWS):
        chunk = [c[start : start + _CHUNK_ROWS] for c in columns]
        if java is None:
            f.write("\n".join([fmt % row for row in zip(*[c.tolist() for c in chunk])]))
        else:
            f.write(_java_lines(chunk, java))
        f.write("\n")


def _java_lines(chunk: list[np.ndarray], formats: Sequence[str]) -> str:
    """The lines of :func:`_write_csv_lines` with ``java`` (without the last newline). A column of NaN only is the
    text ``NaN`` in every line; the lines holding other NaN or infinities are written anew one by one (0.2 us a line:
    1 % of the time for NaN in 10 % of the rows, none for a table without them)."""
    formats = list(formats)
    odd = np.zeros(len(chunk[0]), bool)
    cols = []
    for k, c in enumerate(chunk):
        if c.dtype.kind == "f":
            bad = ~np.isfinite(c)
            if bad.all() and np.isnan(c).all():
                formats[k] = "NaN"  # (no '%' in it: a constant of the row's format)
                continue
            odd |= bad
        cols.append(c)
    fmt = ",".join(formats)
    lines = [fmt % row for row in zip(*[c.tolist() for c in cols])] if cols else [fmt] * len(odd)
    upper = any(f != f.lower() for f in formats if f != "NaN")  # '%G', '%E': 'NAN', 'INF'
    for i in np.flatnonzero(odd).tolist():
        lines[i] = _java_number(lines[i], upper)
    return "\n".join(lines)


def _java_number(text: str, upper: bool) -> str:
    """%-formatted NaN and infinities (``nan``, ``-inf``; ``NAN``, ``INF`` where ``upper``: of ``%G``) in the line
    ``text`` as Java's ``Double.parseDouble`` reads them: ``NaN``, ``-Infinity`` (no other %-formatted number holds
    those letters)."""
    text = text.replace("nan", "NaN")
    if "inf" in text:
        text = text.replace("inf", "Infinity")
    return text.replace("NAN", "NaN").replace("INF", "Infinity") if upper else text


def _write_csv_rows(
    path: str | os.PathLike,
    header: str,
    columns: Sequence[np.ndarray],
    formats: Sequence[str],
    *,
    java: bool = False,
) -> None:
    """Write ``header`` then rows of ``columns`` with per-column %-formats, atomically (``java``: NaN and infinities
    as Java reads them, :func:`_write_csv_lines`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(header)
            _write_csv_lines(f, columns, ",".join(formats), java=formats if java else None)


def _csv_formats(columns: Sequence[np.ndarray], float_format: str) -> list[str]:
    return ["%d" if c.dtype.kind in "iu" else float_format for c in columns]


def _check_float_format(float_format: str) -> None:
    try:
        float_format % 1.5
    except (TypeError, ValueError):
        raise InputError(f"float_format must be a %-format for one number like '%.10g', got {float_format!r}") from None


def check_frames(table: LocTable, *, source: str | os.PathLike | None = None) -> None:
    """Raise :class:`InputError` naming the first row (0-based, as :meth:`LocTable.check_finite`) with a negative
    ``frame`` (or ``frame_last``): frames are numbered from 0 (``docs/conventions.md``)."""
    for name in FRAME_COLUMNS:
        if name not in table:
            continue
        bad = np.flatnonzero(table[name] < 0)
        if bad.size:
            raise InputError(f"column '{name}' has {bad.size} negative value(s), first at row {bad[0]} "
                             f"({int(table[name][bad[0]])}); frames are numbered from 0",
                             source=table.source if source is None else source)


def check_writable(table: LocTable, path: str | os.PathLike) -> None:
    """Refuse, before anything is written, a table that no plexloc reader would take back: NaN or inf in a required
    column (every reader refuses those rows, so the file would be written and then unreadable), or a negative frame
    (frames are 0-based; the readers refuse them too).

    ``z_nm`` NaN in every row (a 2D table: z unknown) is written, and read back as NaN (Picasso: written as a 2D file
    without z, which reads back as z 0, Picasso's own 2D convention). A table with z NaN in some rows only (a 3D table some of whose z are missing) is not written: filter those
    rows, or set z to NaN in every row for a 2D table."""
    z = table["z_nm"]
    try:
        table.check_finite(REQUIRED_COLUMNS, allow_nan=NAN_ALLOWED_COLUMNS if bool(np.all(np.isnan(z))) else ())
    except InputError as err:
        hint = ("; z_nm NaN in every row (a 2D table) is written, a z_nm NaN in some rows only is not"
                if "'z_nm'" in err.reason and bool(np.any(np.isnan(z))) else "")
        raise InputError(f"not written: {err.reason} (required columns must be finite to be read back; filter or "
                         f"drop those rows first{hint})", source=path) from None
    try:
        check_frames(table, source=path)
    except InputError as err:
        raise InputError(f"not written: {err.reason}", source=path) from None


def write_csv(table: LocTable, path: str | os.PathLike, *, float_format: str = DEFAULT_FLOAT_FORMAT) -> None:
    """Write ``table`` as plexloc CSV (see the module docstring), atomically."""
    _check_float_format(float_format)
    check_writable(table, path)
    cols = [table[c] for c in table.columns]
    _write_csv_rows(path, _format_header(table.columns), cols, _csv_formats(cols, float_format))


def read_csv(path: str | os.PathLike) -> LocTable:
    """Read a plexloc CSV table (see the module docstring)."""
    data = _read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in data.names]
    two_d = missing == ["z_nm"]  # a 2D table: z unknown, z_nm NaN (module docstring)
    if missing and not two_d:
        hint = ""
        if "frame" in missing:
            hint = ("; frame numbers (0-based) order the rows in time for drift correction, merging, linking and "
                    "per-frame evaluation, so they are not made up: add a column 'frame' (all 0 for a table of one "
                    "frame or of a summed image)")
        if any(n.startswith(("x [", "y [", "intensity [", "uncertainty")) for n in data.names):
            p = Path(path)
            if p.name.lower().endswith(".thunderstorm.csv"):  # named right, but given to the plexloc CSV reader
                hint = ("; its columns are ThunderSTORM's: read it with plexloc.io.read_locs, which picks the reader by "
                        "the file name (units from the headers, px_size_nm / --camera-px-size for [px])")
            else:
                hint = (f"; its columns are ThunderSTORM's: name the file "
                        f"{p.name[:-4] if p.suffix == '.csv' else p.name}.thunderstorm.csv to import it (units from the "
                        "headers, --camera-px-size for [px])")
        raise InputError(
            f"missing required column(s) {missing}; required are {list(REQUIRED_COLUMNS)}, found {data.names}{hint}",
            source=path,
        )
    _check_finite(data, REQUIRED_COLUMNS)
    _check_integers(data, INTEGER_COLUMNS)
    _check_frames(data)
    columns = {name: data.integers(name) if name in INTEGER_COLUMNS else data.values[:, i]
               for i, name in enumerate(data.names)}
    if two_d:
        columns["z_nm"] = np.full(len(data.values), np.nan)
        # a column named like z ('z', 'Z [nm]', 'z_um') is kept under its name, not read as z: said, not left unseen
        like_z = [name for name in data.names if re.match(r"z(?![a-z0-9])", name, flags=re.IGNORECASE)]
        fix = (f"its column {like_z[0]!r} is not read as z: rename it z_nm (in nm) if it holds z" if like_z else
               "add a z_nm column if the localizations have z")
        warnings.warn(f"{path}: no column 'z_nm', so the table is read as 2D (z_nm NaN: z unknown); {fix}",
                      TwoDTableWarning, stacklevel=2)
    return LocTable(columns, source=str(path))


# --- HDF5 -----------------------------------------------------------------------------------------


def _open_h5(path: Path) -> h5py.File:
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "is not a file", source=path)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err})", source=path) from None


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dataset_name(column: str) -> str:
    """The HDF5 dataset name of a column: ``%``, ``/`` and a name ``.`` escaped (module docstring)."""
    name = column.replace("%", "%25").replace("/", "%2F")
    return "%2E" if name == "." else name


def _column_name(dataset: str) -> str:
    """Inverse of :func:`_dataset_name`."""
    return "." if dataset == "%2E" else dataset.replace("%2F", "/").replace("%25", "%")


def read_hdf5(path: str | os.PathLike) -> LocTable:
    """Read a plexloc HDF5 table (group ``/locs``, see the module docstring)."""
    path = Path(path)
    with _open_h5(path) as f, hdf5_errors(path):
        if "locs" not in f:
            raise InputError(f"no group '/locs' (found {sorted(f.keys())}); not a plexloc table", source=path)
        g = f["locs"]
        if isinstance(g, h5py.Dataset):
            raise InputError(
                "'/locs' is a dataset, as in Picasso files; read it with plexloc.io.import_picasso", source=path
            )
        fmt = g.attrs.get("format")
        if fmt is not None and _attr_str(fmt) != HDF5_FORMAT:
            raise InputError(f"'/locs' has format '{_attr_str(fmt)}', expected '{HDF5_FORMAT}'", source=path)
        version = g.attrs.get("version")
        if version is not None and int(version) > HDF5_VERSION:
            raise InputError(
                f"format version {int(version)} is newer than this plexloc reads ({HDF5_VERSION}); update plexloc",
                source=path,
            )
        order = [_attr_str(c) for c in g.attrs.get("columns", [])]
        keys = {}  # column -> dataset
        for c in order:
            for key in (_dataset_name(c), c):  # escaped (this version), or as written by an older one
                if "/" not in key and key in g:
                    keys[c] = key
                    break
        absent = [c for c in order if c not in keys]
        if absent:  # a column the file says it holds is not there: read without it, it would be lost without a word
            raise InputError(f"'/locs' lists column(s) {absent} in its 'columns' attribute but holds no dataset for "
                             f"them (datasets: {sorted(g)}); the file is damaged or was edited", source=path)
        for key in sorted(set(g) - set(keys.values())):
            keys.setdefault(_column_name(key), key)
        columns: dict[str, np.ndarray] = {}
        for name, key in keys.items():
            ds = g[key]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "biuf":
                what = "a group" if not isinstance(ds, h5py.Dataset) else f"shape {ds.shape}, dtype {ds.dtype}"
                raise InputError(f"'/locs/{name}' must be a 1-D numeric dataset, got {what}", source=path)
            columns[name] = ds[()]
            if name in INTEGER_COLUMNS:  # int64 in the table: a uint64 value beyond it would wrap round
                check_uint64(columns[name], f"column '{name}' ('/locs/{key}', uint64)", source=path)
    table = LocTable(columns, source=str(path))
    table.check_readable()
    check_frames(table)
    return table


def _init_hdf5_group(f: h5py.File, names: Sequence[str]) -> h5py.Group:
    g = f.create_group("locs")
    g.attrs["format"] = HDF5_FORMAT
    g.attrs["version"] = HDF5_VERSION
    g.attrs["columns"] = list(names)
    return g


def _document_dataset(ds: h5py.Dataset, name: str) -> None:
    unit, desc = column_unit(name), column_description(name)
    if unit is not None:
        ds.attrs["unit"] = unit
    if desc is not None:
        ds.attrs["description"] = desc


def write_hdf5(table: LocTable, path: str | os.PathLike) -> None:
    """Write ``table`` as plexloc HDF5 (see the module docstring), atomically."""
    check_writable(table, path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            g = _init_hdf5_group(f, table.columns)
            for name in table.columns:
                _document_dataset(g.create_dataset(_dataset_name(name), data=table[name]), name)


# --- streamed writing -----------------------------------------------------------------------------


class TableWriter:
    """Write a localization table in parts, as they are made, without holding it whole.

    The file appears (renamed from a temporary next to it) only when the writer is closed without an
    error; on an error nothing is left behind and an existing file of that name is untouched. The
    result is the same file :func:`write_table` writes for the concatenated parts (HDF5 datasets are
    chunked and resizable). Every part must have the columns of the first part, in any order; parts
    with no rows may lack some of them (they add nothing). Rows are buffered up to ``buffer_rows``.

    ``background=True`` formats and writes each full buffer in a worker thread while the caller makes the
    next parts (CSV formatting is Python work, ~0.4 million rows/s; a GPU fit can make rows faster), one
    buffer at a time, so memory stays bounded; an error in the worker is raised by a later ``append`` or by
    ``close``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> part = LocTable({"frame": [0], "x_nm": [1.5], "y_nm": [2.0], "z_nm": [0.0], "photons": [900.0]})
        >>> with TableWriter(d / "locs.h5") as w:
        ...     w.append(part)
        ...     w.append(part)
        >>> len(read_table(d / "locs.h5")), w.rows
        (2, 2)
    """

    def __init__(self, path: str | os.PathLike, *, float_format: str = DEFAULT_FLOAT_FORMAT,
                 buffer_rows: int = 32_768, background: bool = False):
        self.path = Path(path)
        self.format = _suffix_format(self.path)
        if self.format == "csv":
            _check_float_format(float_format)
        self.float_format = float_format
        self.buffer_rows = max(int(buffer_rows), 1)
        self.rows = 0  #: rows appended so far
        self.columns: list[str] | None = None
        self._pending: list[LocTable] = []
        self._pending_rows = 0
        self._empty: LocTable | None = None  # an empty part's columns, for a table that stays empty
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._file: Any = None
        self._closed = False
        self._worker = None
        self._in_flight = None  # the worker's current write (a Future)
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plexloc-table-writer")

    def append(self, table: LocTable) -> None:
        """Add the rows of ``table`` (after those appended before)."""
        if self._closed:
            raise RuntimeError(f"TableWriter for {self.path} is closed")
        if not isinstance(table, LocTable):
            raise InputError(f"expected a LocTable, got {type(table).__name__}", source=self.path)
        check_writable(table, self.path)
        if self._in_flight is not None and self._in_flight.done():
            self._wait()  # the worker's error, if it had one
        if self.columns is None:
            if not len(table):
                if self._empty is None:
                    self._empty = table
                return
            self.columns = table.columns
            self._open()
        elif set(table.columns) != set(self.columns):
            if not len(table):
                return
            raise InputError(f"a part has columns {table.columns}, the table has {self.columns}", source=self.path)
        if not len(table):
            return
        self._pending.append(table)
        self._pending_rows += len(table)
        self.rows += len(table)
        if self._pending_rows >= self.buffer_rows:
            self._flush()

    def _open(self) -> None:
        with naming_disk_full(self.path):  # a full disk names the table being written
            self._open_file()

    def _open_file(self) -> None:
        cols = self.columns
        if self.format == "csv":
            self._file = open(self._tmp, "w", encoding="utf-8", newline="\n")
            self._file.write(_format_header(cols))
            return
        self._file = h5py.File(self._tmp, "w")
        g = _init_hdf5_group(self._file, cols)
        for name in cols:
            dtype = np.int64 if name in INTEGER_COLUMNS else np.float64
            _document_dataset(g.create_dataset(_dataset_name(name), shape=(0,), maxshape=(None,), dtype=dtype,
                                               chunks=(min(self.buffer_rows, 65536),)), name)

    def _flush(self) -> None:
        if not self._pending:
            return
        cols = [np.concatenate([t[c] for t in self._pending]) for c in self.columns]
        self._pending, self._pending_rows = [], 0
        if self._worker is None:
            self._write(cols)
            return
        self._wait()  # one buffer in the worker at a time; its error, if any, surfaces here
        self._in_flight = self._worker.submit(self._write, cols)

    def _wait(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            future.result()

    def _write(self, cols: list[np.ndarray]) -> None:
        with naming_disk_full(self.path):  # a full disk names the table being written
            self._write_columns(cols)

    def _write_columns(self, cols: list[np.ndarray]) -> None:
        names = self.columns
        if self.format == "csv":
            _write_csv_lines(self._file, cols, ",".join(_csv_formats(cols, self.float_format)))
            return
        g = self._file["locs"]
        for name, col in zip(names, cols):
            ds = g[_dataset_name(name)]
            start = ds.shape[0]
            ds.resize((start + len(col),))
            ds[start:] = col

    def close(self) -> None:
        """Write what is buffered and put the file in place."""
        if self._closed:
            return
        try:
            if self.columns is None:  # no rows at all: the header / datasets of the empty parts' columns
                self.columns = (self._empty if self._empty is not None else LocTable.empty()).columns
                self._open()
            self._flush()
            self._wait()
            with naming_disk_full(self.path):  # the last buffered bytes reach the disk here
                self._file.close()
            self._file = None
            if self._worker is not None:
                self._worker.shutdown()
        except BaseException as err:
            self.abort(err)
            raise
        self._closed = True
        self._atomic.__exit__(None, None, None)

    def abort(self, err: BaseException | None = None) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:  # the write in progress finishes (a thread cannot be stopped), the rest is dropped
            self._worker.shutdown(wait=True, cancel_futures=True)
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        err = err or RuntimeError("aborted")
        with contextlib.suppress(BaseException):
            self._atomic.__exit__(type(err), err, None)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


# --- dispatch -------------------------------------------------------------------------------------

_READERS: dict[str, Callable[[str | os.PathLike], LocTable]] = {"csv": read_csv, "hdf5": read_hdf5}


def read_table(path: str | os.PathLike) -> LocTable:
    """Read a localization table; the format follows the suffix (``.csv``, ``.h5``, ``.hdf5``).

    Args:
        path: the file.

    Returns:
        the table, with ``source`` set to ``path``.

    Raises:
        InputError: unknown suffix, missing/unreadable file, malformed row (with its line number),
            missing required column, NaN/inf in a required column (``z_nm`` may be NaN: a 2D table),
            non-integer frame/id/color, an integer
            beyond int64, a negative frame.
    """
    return _READERS[_suffix_format(path)](path)


def write_table(table: LocTable, path: str | os.PathLike, *, float_format: str = DEFAULT_FLOAT_FORMAT) -> None:
    """Write a localization table atomically; the format follows the suffix (``.csv``, ``.h5``, ``.hdf5``).

    Args:
        table: the table.
        path: target file; its folder is created if missing.
        float_format: %-format of float values in CSV (ignored for HDF5, which stores binary values).
    """
    if not isinstance(table, LocTable):
        raise InputError(f"expected a LocTable, got {type(table).__name__}", source=path)
    if _suffix_format(path) == "csv":
        write_csv(table, path, float_format=float_format)
    else:
        write_hdf5(table, path)
