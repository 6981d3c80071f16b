"""``plexloc columns [LOCS] [--json OUT]``: what every column of a localization table means, its unit and its values."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import positive_float
from plexloc.cli._locs import FORMATS_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "columns",
        help="the meaning, unit and range of every column of a table (or every column plexloc writes)",
        description="For each column of LOCS: its unit and meaning (conventions.md), the count of non-finite "
        "values, and the minimum, median and maximum. Columns plexloc does not document (kept from another "
        "program's file) are marked. Without LOCS, every column plexloc writes.",
    )
    p.add_argument("locs", type=Path, nargs="?", default=None,
                   help=f"localization table: {FORMATS_HELP}; or a training run's log.csv")
    p.add_argument("--camera-px-size", type=positive_float, default=None, metavar="NM",
                   help="camera pixel size in nm, for tables in pixels (as for the other commands)")
    p.add_argument("--frame-origin", type=int, choices=[0, 1], default=None, help="first frame number of a .smlm file")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.io.tables import column_description, column_unit, describe_columns
    from plexloc.table import COLUMN_DOCS

    if args.locs is None:
        for name in COLUMN_DOCS:
            unit = column_unit(name.replace("_chN", "_ch0"))
            print(f"{name:<18} {('[' + unit + ']') if unit else '':<22} {column_description(name) or COLUMN_DOCS[name]}")
        return 0
    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, write_json

    check_outputs(args.json)
    if args.locs.suffix.lower() == ".csv" and _training_log(args):
        return 0
    table = _locs.read(args)
    rows = describe_columns(table)
    print(f"{args.locs}: {len(table)} rows, {len(rows)} columns")

    def num(v):
        return "-" if v is None else f"{v:.6g}"

    for r in rows:
        unit = f"[{r['unit']}]" if r["unit"] else ""
        bad = f", {r['non_finite']} not finite" if r["non_finite"] else ""
        print(f"{r['column']:<18} {unit:<22} {num(r['min'])} .. {num(r['median'])} .. {num(r['max'])}{bad}")
        print(f"{'':<18} {r['description'] or 'not a plexloc column (kept from the file as it was)'}")
    if args.json is not None:
        write_json({"locs": str(args.locs), "rows": len(table), "columns": rows}, args.json)
    return 0


def _training_log(args: argparse.Namespace) -> bool:
    """A run's ``log.csv`` described with :mod:`plexloc.train.log_columns`; False when the file is not one."""
    import csv

    import numpy as np

    from plexloc.cli._common import write_json
    from plexloc.errors import InputError
    from plexloc.train.log_columns import is_training_log, log_column_doc

    # the header first: a localization table is not read here (reading every row as text to look at the header took
    # 6.0 GB for 10^7 rows, the table itself 1.2 GB)
    try:
        with open(args.locs, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or not is_training_log(header):
                return False
            rows = [header, *reader]
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", source=args.locs) from None
    except (UnicodeDecodeError, csv.Error):  # not a text log: the table readers say what is wrong with it
        return False
    names, body = rows[0], rows[1:]
    print(f"{args.locs}: a training log, {len(body)} validation rows, {len(names)} columns")
    out = []
    for i, name in enumerate(names):
        vals = np.array([float(r[i]) if i < len(r) and r[i] not in ("", "nan") else np.nan for r in body], dtype=float)
        fin = vals[np.isfinite(vals)]
        unit, text = log_column_doc(name) or ("", None)
        row = {"column": name, "unit": unit, "description": text, "non_finite": int(vals.size - fin.size),
               "first": float(fin[0]) if fin.size else None, "last": float(fin[-1]) if fin.size else None,
               "min": float(fin.min()) if fin.size else None, "max": float(fin.max()) if fin.size else None}
        out.append(row)

        def num(v):
            return "-" if v is None else f"{v:.6g}"

        print(f"{name:<18} {('[' + unit + ']') if unit else '':<8} first {num(row['first'])}, last {num(row['last'])}, "
              f"range {num(row['min'])} .. {num(row['max'])}")
        print(f"{'':<18} {text or 'not a column plexloc writes'}")
    if args.json is not None:
        write_json({"log": str(args.locs), "rows": len(body), "columns": out}, args.json)
    return True
