"""``plexloc examples [NAME ...] [--copy DIR]``: the example configurations installed with plexloc."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "examples",
        help="list the example configurations installed with plexloc, or copy them to start your own",
        description="The example configurations (microscope, camera, PSF, emitters, and for training the model and "
        "training sections) that the README and `plexloc demo` use. Without --copy, lists them with their first "
        "comment line; with --copy DIR, writes them (all, or the NAMEs given) into DIR to edit.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="example names (default: all), e.g. 2d_gaussian")
    p.add_argument("--copy", type=Path, default=None, metavar="DIR", help="copy the examples into this folder")
    p.add_argument("--overwrite", action="store_true", help="replace files of the same name in DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.config.examples import copy_examples, example_names, example_path

    if args.copy is not None:
        for path in copy_examples(args.copy, args.names or None, overwrite=args.overwrite):
            print(f"wrote {path}")
        return 0
    for name in args.names or example_names():
        path = example_path(name)
        first = next((line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
        print(f"{name:28s} {first}")
    return 0
