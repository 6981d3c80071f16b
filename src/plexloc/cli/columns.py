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
    p.add_argument("locs", type=Path, nargs="?", default=None, help=f"localization table: {FORMATS_HELP}")
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
    from plexloc.cli._common import write_json

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
