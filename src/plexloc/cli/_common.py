"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plexloc.errors import InputError
from plexloc.progress import progress  # noqa: F401  (re-exported for the sub-commands)

if TYPE_CHECKING:  # pragma: no cover
    import torch


def poor_model(ji, step) -> bool:
    """:func:`plexloc.infer.readiness.poor_model` (imported when called: it pulls in torch, which building the
    command line does not)."""
    from plexloc.infer.readiness import poor_model as poor

    return poor(ji, step)


# --- argparse types: ``type=positive_float`` etc. turn an impossible value into argparse's one-line usage error
# ("argument --x: must be ..., got '0'", exit code 2) at parse time. NaN and infinities are never accepted.


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _named(func: Callable, name: str) -> Callable:
    func.__name__ = func.__qualname__ = name
    return func


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        value = _parse_int(text)
        if value < low:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return _named(parse, f"int_at_least_{low}")


def float_at_least(low: float) -> Callable[[str], float]:
    """An argparse type: a finite number >= ``low``."""

    def parse(text: str) -> float:
        value = _parse_float(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a number >= {low:g}, got {text!r}")
        return value

    return _named(parse, f"float_at_least_{low:g}")


positive_int = _named(int_at_least(1), "positive_int")
nonnegative_int = _named(int_at_least(0), "nonnegative_int")


def finite_float(text: str) -> float:
    """An argparse type: any finite number (not NaN, not +-inf)."""
    return _parse_float(text)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _parse_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _parse_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """An argparse type: a probability in the closed interval [0, 1]."""
    value = _parse_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}")
    return value


def open_probability(text: str) -> float:
    """An argparse type: a probability in (0, 1] (0 itself excluded)."""
    value = _parse_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1] (0 excluded), got {text!r}")
    return value


def path_with_suffix(*suffixes: str) -> Callable[[str], Path]:
    """An argparse type: a path whose name ends in one of ``suffixes`` (case-insensitive, e.g. ``".yaml", ".yml"``)."""
    allowed = tuple(s.lower() for s in suffixes)

    def parse(text: str) -> Path:
        if not text.lower().endswith(allowed):
            raise argparse.ArgumentTypeError(f"must end in {' or '.join(suffixes)}, got {text!r}")
        return Path(text)

    return _named(parse, "path_" + "_".join(s.strip(".") for s in suffixes))


def colormap_name(text: str) -> str:
    """An argparse type: the name of a matplotlib colormap (accepted unchecked when matplotlib is not installed)."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - the command that needs it says so
        return text
    if text not in matplotlib.colormaps:
        examples = ", ".join(n for n in ("turbo", "viridis", "magma", "plasma", "inferno", "cividis", "hsv", "jet")
                             if n in matplotlib.colormaps)
        raise argparse.ArgumentTypeError(f"must be a matplotlib colormap name (e.g. {examples}), got {text!r}")
    return text


def add_config_argument(p: argparse.ArgumentParser, help: str) -> None:
    """The configuration as ``CONFIG`` (positional) or ``--config CONFIG``, as ``fit``, ``detect`` and
    ``estimate-priors`` take it; :func:`resolve_config` picks the one given."""
    p.add_argument("config", type=Path, nargs="?", default=None, help=f"{help}; or --config CONFIG")
    p.add_argument("--config", dest="config_option", type=Path, default=None, metavar="CONFIG",
                   help="the configuration as an option (the same as the positional CONFIG)")


def resolve_positional_or_option(args: argparse.Namespace, name: str, *, what: str, kind: str) -> Path:
    """``args.<name>`` set to the path given positionally (``args.<name>``) or as ``--<name>``
    (``args.<name>_option``): one of them, or the same one twice; an :class:`InputError` otherwise. ``what``: the
    plural in the message ("configurations"), ``kind``: what the path is ("a YAML file")."""
    positional, option = getattr(args, name, None), getattr(args, f"{name}_option", None)
    flag, meta = f"--{name}", name.upper()
    if positional is None and option is None:
        raise InputError(f"no {what[:-1]} given: {meta} or {flag} {meta} ({kind})")
    if positional is not None and option is not None and Path(positional) != Path(option):
        raise InputError(f"two {what} given: {positional} and {flag} {option}; give one")
    setattr(args, name, Path(positional if positional is not None else option))
    return getattr(args, name)


def resolve_config(args: argparse.Namespace) -> Path:
    """``args.config`` set to the configuration given positionally or as ``--config`` (one of them, not two
    different ones): an :class:`InputError` otherwise."""
    return resolve_positional_or_option(args, "config", what="configurations", kind="a YAML file")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when there is one; 'cuda' without one is an InputError, not a crash."""
    import torch  # kept out of module import: `plexloc evaluate` needs no torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no usable GPU"
        raise InputError(f"--device {name}: no CUDA device is available (torch {torch.__version__}, {why}); use --device "
                         "cpu, and `plexloc doctor` for what is missing")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device; use auto, cpu or cuda") from None


def write_json(data: dict[str, Any], path: str | os.PathLike) -> None:
    """JSON (NaN/inf written as null), atomically: :func:`plexloc.io.jsonfile.write_json`."""
    from plexloc.io.jsonfile import write_json as write  # lazily: `plexloc.io` pulls in torch

    write(data, path)


def check_outputs(*paths: str | os.PathLike | None, table: str | os.PathLike | None = None,
                  px_size_nm: float | None = None) -> None:
    """Refuse, before any work, an output that cannot be written: a folder of that name, a parent path that is a
    file, a folder the user may not create files in; ``table``: also a table name of no format plexloc writes (or
    Picasso .hdf5 without ``px_size_nm``). ``None`` paths (options not given) are skipped. Nothing is created: a
    missing folder is made later, when the output is written (as every command does).

    Without it several commands found out only at the end (detect and estimate-priors after the whole movie, drift
    after the drift estimate) or after writing their main output (an unwritable --json of filter left the table
    written and exited 2)."""
    if table is not None:
        from plexloc.io.formats import FORMATS, format_of

        fmt = format_of(table)
        if not FORMATS[fmt][2]:
            raise InputError(f"plexloc reads {fmt} files but does not write them; choose another suffix", source=table)
        if fmt == "picasso" and px_size_nm is None:
            raise InputError("writing Picasso (.hdf5) needs the camera pixel size: give --camera-px-size NM",
                             source=table)
    for path in (table, *paths):
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            raise InputError("cannot write the output: a folder of that name exists", source=path)
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if folder.exists() and not folder.is_dir():
            raise InputError(f"cannot write the output: {folder} is a file, not a folder", source=path)
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"cannot write the output: cannot create files in {folder} (permission denied or a "
                             "read-only file system)", source=path)
