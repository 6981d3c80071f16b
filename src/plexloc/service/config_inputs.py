"""Submission-time checks of the plexloc configurations a job takes.

An input slot with ``check: plexloc-config`` (or ``plexloc-camera``) holds a YAML that the program loads on the worker
with :func:`plexloc.config.load_config` (or :func:`plexloc.config.load_camera_configs`). A file that cannot load there
(not YAML, not a mapping, an unknown field, a value of the wrong type, a file it names by relative path that the job
does not carry) would fail the job only after it waited in the queue and its inputs were fetched; here it is refused
at submission with :class:`InputError` (a 422) that names the slot, the file and the field.

The check runs the library's own loader on the files laid out as the worker lays them out: the configuration in its
slot's folder under its own name, the files of the slots ``beside`` it next to it under theirs: with their content
those the loader reads (a YAML included as ``camera: camera.yaml`` or ``psf: PSF.yaml``, a channel transform's
``{file: T.json}``, ``PSF.json`` or ``PSF.h5``), the others empty (a spline calibration or an sCMOS map is named by the
configuration, not read by the loader). What the server cannot see is not refused:

- a configuration larger than :data:`MAX_CONFIG_BYTES`, or one given as the output of a job still to run;
- one whose loader would read a file by absolute path, by ``~`` or from outside its slot's folder, or one still to
  come from another job or larger than :data:`MAX_INCLUDED_BYTES`: only the worker has it (the server never reads a
  path a user names on its own disk), so the configuration is checked as YAML and a mapping, not field by field;
- a file (a calibration, a map) named by absolute path: the worker's disk may hold it (nor is a spline
  calibration's number of channels, which the loader checks psf.channel against, read from the server's disk).

A file named by relative path must be one of the job's inputs beside the configuration: on the worker it is looked for
there, and nowhere else.
"""

from __future__ import annotations

import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from plexloc.errors import InputError
from plexloc.service.apps import EntryPoint
from plexloc.service.db import File, Job, JobInput

#: the largest configuration read at submission (a configuration is a few kB; larger ones are left to the worker)
MAX_CONFIG_BYTES = 1 << 20
#: the largest file a configuration includes that is read at submission (a YAML, a transform's T.json, or the
#: calibration PSF.h5 a transform is read from: tens of MB); larger ones are left to the worker
MAX_INCLUDED_BYTES = 64 << 20
_YAML_SUFFIXES = (".yaml", ".yml")

#: warnings.catch_warnings (other modules' warnings silenced) changes process-wide state: one check at a time
_LOCK = threading.Lock()


def check_config_inputs(session: Session, storage, job: Job, ep: EntryPoint) -> None:
    """:class:`InputError` (source ``inputs.SLOT``, naming the file and the field) for the first input of a ``check``
    slot of ``ep`` that cannot load on the worker; nothing for those the server cannot judge (module docstring)."""
    by_slot: dict[str, list[JobInput]] = {}
    for ji in sorted(job.inputs, key=lambda x: (x.slot, x.position)):
        by_slot.setdefault(ji.slot, []).append(ji)
    for slot, spec in ep.inputs.items():
        if spec.check is None:
            continue
        for ji in by_slot.get(slot, []):
            f = session.get(File, ji.file_id) if ji.file_id else None
            if f is None:  # a job output still to come: the worker loads it
                continue
            folder = ep.input_folder(slot)
            beside = [(x, session.get(File, x.file_id) if x.file_id else None)
                      for other, items in by_slot.items() if ep.input_folder(other) == folder
                      for x in items if x is not ji]
            beside_slots = sorted({name for name, s in ep.inputs.items() if s.beside == folder and name != slot})
            _check_one(storage, f, slot=slot, kind=spec.check, folder=folder, beside=beside, beside_slots=beside_slots)


def _read(storage, f: File, limit: int) -> bytes | None:
    """The file's bytes, None when it is larger than ``limit``."""
    if f.size > limit:
        return None
    return storage.head(f.storage_key, f.size) if f.size else b""


def _check_one(storage, f: File, *, slot: str, kind: str, folder: str, beside: list[tuple[JobInput, File | None]],
               beside_slots: list[str]) -> None:
    text = _read(storage, f, MAX_CONFIG_BYTES)
    if text is None:
        return
    with tempfile.TemporaryDirectory(prefix="plexloc-check-") as tmp:
        root = Path(tmp).resolve()
        where = root / "in" / folder
        path = where / f.name
        path.parent.mkdir(parents=True, exist_ok=True)
        needed: set[str] = set()  # files beside it that the loader reads (names relative to the slot's folder)
        if kind == "plexloc-config":
            checkable, needed = _included_files(text, path.parent, where)
            if not checkable:
                return
        for ji, other in beside:
            name = other.name if other is not None else (ji.source_name or "")
            if not name:
                continue
            content = b""  # a calibration or a map: named, not read, by the loaders
            if name in needed:
                content = _read(storage, other, MAX_INCLUDED_BYTES) if other is not None else None
                if content is None:  # a job output still to come, or too large to read here: only the worker can
                    return
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            (where / name).write_bytes(content)
        path.write_bytes(text)

        def refuse(message: str) -> InputError:
            # the server's scratch folder is no name the user knows: paths in it are given relative to the slot's
            # folder, as the user named them
            for base, by in ((str(where) + "/", ""), (str(where), "."), (str(root), ".")):
                message = message.replace(base, by)
            message = message.removeprefix(f"{f.name}: ")  # the loader's own prefix, said once
            return InputError(f"file {f.id} ({f.name}): {message}", source=f"inputs.{slot}")

        from plexloc.config import load_camera_configs, load_config
        from plexloc.config.files import referenced_files
        from plexloc.config.io import collected_notes

        # the notes (camera fields left out, far transforms) are the worker's to give, naming the file where it runs:
        # the loader's own notes are collected here, neither warned nor recorded as given once in this process (each
        # names a scratch path: kept, they would grow with every submission for the server's lifetime); the warnings
        # of other modules are silenced, and warnings.catch_warnings changes process-wide state: one check at a time
        with _LOCK, warnings.catch_warnings(), collected_notes():
            warnings.simplefilter("ignore")
            try:
                if kind == "plexloc-config":
                    # the loader's psf.channel check opens spline calibrations: only the job's own (one named by
                    # absolute path or out of the job's files is the worker's; the server's file there is not read)
                    loaded = [load_config(path, check_within=where).model_dump(mode="json")]
                else:
                    loaded = [c.model_dump(mode="json") for c in load_camera_configs(path)]
            except InputError as err:
                raise refuse(str(err) + _hint(str(err), beside_slots)) from None
        for config in loaded:
            for field, named in referenced_files(config):
                p = Path(named)
                if where in p.parents and not p.exists():  # named by relative path, and the job does not carry it
                    rel = p.relative_to(where)
                    raise refuse(f"field '{field}' names the file {str(rel)!r}, which is not among the job's inputs: "
                                 f"on the worker it is looked for next to the configuration"
                                 + _where_to_give(beside_slots))


def _where_to_give(beside_slots: list[str]) -> str:
    if beside_slots:
        return f" (give it in input slot {' or '.join(repr(s) for s in beside_slots)})"
    return " (this entry point takes no files beside its configuration: write the value in the YAML)"


def _hint(message: str, beside_slots: list[str]) -> str:
    return ("; a file the configuration names travels as an input of the job" + _where_to_give(beside_slots)
            if "was not found" in message else "")


def _included_files(text: bytes, folder: Path, where: Path) -> tuple[bool, set[str]]:
    """``(checkable, needed)`` of a configuration (in ``folder``): the files the loader reads besides it, relative to
    its slot's folder ``where`` (a YAML it includes as its ``camera`` or ``psf``, a channel transform's ``{file:
    ...}``), and False where one of them is out of the server's reach: named by absolute path or ``~``, or outside
    ``where`` (on the worker: another slot's folder, or beyond the job's). Text that is not a YAML mapping is checkable
    with nothing needed: the loader says what is wrong with it."""
    from plexloc.config.io import SPLINE_SUFFIXES, included_names, load_yaml

    try:
        data = load_yaml(text.decode())
    except (UnicodeDecodeError, yaml.YAMLError):
        return True, set()
    if not isinstance(data, dict):
        return True, set()
    # a spline file named alone (psf: PSF.h5) is named, not read; a transform's file is read
    named: list[Any] = [name for _, _, name in included_names(data) if Path(name).suffix.lower() not in SPLINE_SUFFIXES]
    channels = data.get("channels")
    named += [ch["transform"].get("file") for ch in (channels if isinstance(channels, list) else [])
              if isinstance(ch, dict) and isinstance(ch.get("transform"), dict)]
    needed: set[str] = set()
    for name in named:
        if not isinstance(name, str) or not name.strip():
            continue  # not a file name: the loader says what is wrong
        if name.startswith("~") or Path(name).is_absolute():
            return False, set()
        target = (folder / name).resolve()
        if where not in target.parents:
            return False, set()
        needed.add(target.relative_to(where).as_posix())
    return True, needed
