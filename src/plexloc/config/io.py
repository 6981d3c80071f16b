"""YAML in/out for the typed configuration, with errors that name the file, field and value."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from plexloc.config.files import PATH_KEYS
from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently: a second
    ``psf:`` section replaced the first without a word)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:  # the mapping's own keys ('<<' merges may be overridden, as YAML allows)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    seen[key] = line
                except TypeError:  # an unhashable key: the base loader's own error
                    continue
                if first is not None:  # the lines are in the message: no parser mark ('in "<unicode string>", ...')
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice (lines {first} and {line}); a YAML reader would "
                        "silently keep only the second: remove one")
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str):
    """``yaml.safe_load`` that refuses a mapping with a key given twice (a :class:`yaml.YAMLError`, which the
    configuration readers turn into an error naming the file): every YAML file plexloc reads goes through it."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def yaml_error_text(err: yaml.YAMLError) -> str:
    """A YAML error on one line, its positions as "line L, column C" (PyYAML names a text it was given as
    '"<unicode string>"', which meant nothing beside the file's name)."""
    return " ".join(str(err).split()).replace('in "<unicode string>", line', "at line")


M = TypeVar("M", bound=BaseModel)


def _is_type_label(p: Any) -> bool:
    """A part of a pydantic error location that names a union member's type ('constrained-float',
    'tuple[constrained-float, constrained-float]', 'function-after[...]'), not a field the user wrote."""
    return isinstance(p, str) and ("[" in p or "-" in p or p in _TYPE_LABELS)


_TYPE_LABELS = {"float", "int", "str", "bool", "none", "list", "tuple", "dict"}


def _field_path(loc: tuple[Any, ...], *, user_key: bool = False) -> str:
    # drop pydantic's union tags (e.g. 'gaussian' in channels.0.psf.gaussian.sigma_nm) and union members' type
    # labels ('constrained-float' in psf.sigma_nm.constrained-float) to keep user paths; ``user_key``: the last part
    # is a key the user wrote (an unknown field: 'sigma-z' is no type label)
    parts: list[str] = []
    for i, p in enumerate(loc):
        if user_key and i == len(loc) - 1:
            parts.append(str(p))
            break
        if parts and parts[-1] in ("psf", "camera") and isinstance(p, str) and p not in ("kind",):
            # a union tag ('gaussian', 'emccd'): not a field the user wrote
            if p in _KIND_TAGS:
                continue
        if _is_type_label(p):
            continue
        parts.append(str(p))
    return ".".join(parts) if parts else "<top level>"


_KIND_TAGS = {"gaussian", "astigmatic", "spline", "emccd", "scmos", "ideal", "additive"}

#: pydantic error types that say only "not this type": for a field that takes one of several types (a number or a
#: pair), such an error of one member is noise beside the other member's error about the value itself
_WRONG_TYPE = {"is_instance_of", "float_parsing", "int_parsing", "bool_parsing", "int_from_float"}


def _wrong_type(e: dict[str, Any]) -> bool:
    return e["type"].endswith("_type") or e["type"] in _WRONG_TYPE


def _user_errors(err: ValidationError, data: Any,
                 relocate: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None) -> list[dict[str, Any]]:
    """pydantic's errors as the user wrote the file: a single-channel file's ``psf`` and ``camera`` (moved into
    ``channels[0]`` by the model) keep their own paths, and of a field that takes one of several types only the errors
    that matter are kept (a -130 given for "a number or a pair of numbers": "must be > 0", not also "not a pair").
    ``relocate = (OLD, NEW)``: locations starting with OLD start with NEW instead (a file whose mapping was wrapped
    before validation: a camera file's top-level ``qe`` validated as ``camera.qe``)."""
    single = isinstance(data, dict) and "channels" not in data and ("psf" in data or "camera" in data)
    errors = []
    for e in err.errors():
        loc = model_loc = tuple(e["loc"])
        if single and loc[:2] == ("channels", 0):
            loc = loc[2:]
        if relocate is not None and loc[:len(relocate[0])] == relocate[0]:
            rest = loc[len(relocate[0]):]
            if not relocate[1] and len(rest) > 1 and rest[0] in _KIND_TAGS:
                rest = rest[1:]  # the union's tag ('emccd' in camera.emccd.qe), dropped after 'camera' elsewhere
            loc = relocate[1] + rest
        errors.append({**e, "loc": loc, "model_loc": model_loc})
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in errors:  # the errors of one field's union members share the location before the first type label
        loc = e["loc"]
        keys = loc[:-1] if e["type"] == "extra_forbidden" else loc  # an unknown field's name is the user's
        cut = next((i for i, p in enumerate(keys) if _is_type_label(p)), None)
        groups.setdefault(loc[:cut] if cut is not None else loc + (id(e),), []).append(e)
    out = []
    for members in groups.values():
        if len(members) > 1:
            about_value = [e for e in members if not _wrong_type(e)]
            if about_value:
                members = about_value
            else:  # wrong for every member: one line, the types it may take
                msgs = list(dict.fromkeys(e["msg"] for e in members))
                members = [{**members[0], "msg": " or ".join(msgs)}]
        out.extend(members)
    return out


def format_validation_error(err: ValidationError, model: type[BaseModel], data: Any = None,
                            relocate: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None) -> str:
    """One line per problem: ``field 'a.b': what is wrong (got VALUE)``; unknown fields list the allowed ones. With
    ``data`` (what was validated), paths are the file's own (see :func:`_user_errors`, also for ``relocate``)."""
    lines = []
    for e in _user_errors(err, data, relocate):
        where = _field_path(e["loc"], user_key=e["type"] == "extra_forbidden")
        if e["type"] == "extra_forbidden":
            parent = _resolve_model(model, e["model_loc"][:-1])
            allowed = f"; allowed: {sorted(parent.model_fields)}" if parent is not None else ""
            # an sCMOS given an EM gain: deleting it alone left an EMCCD's movie read as an sCMOS's
            from plexloc.config.models import SCMOSConfig

            emccd = ("; an sCMOS has no EM gain: an EMCCD's movie needs kind: emccd (with its em_gain, and e_per_adu "
                     "without the gain)" if e["loc"][-1] == "em_gain" and parent is SCMOSConfig else "")
            lines.append(f"unknown field '{where}'{allowed}{emccd}{_unknown_hint(parent, e['loc'][-1], model)}")
        elif e["type"] == "missing":
            lines.append(f"missing field '{where}'")
        elif e["type"] == "union_tag_invalid":
            ctx = e.get("ctx", {})
            where = f"{where}.kind" if e["loc"] else "kind"
            lines.append(f"field '{where}': kind {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            # a section's own check (a model validator: its input is the whole mapping) names the values it is about;
            # the mapping after it was the whole configuration's for a check at the top level
            got = "" if isinstance(e.get("input"), dict) else f" (got {e.get('input')!r})"
            lines.append(f"{msg}{got}" if where == "<top level>" and got == "" else f"field '{where}': {msg}{got}")
    return "; ".join(lines)


#: what a user may write in the training section for a command-line option or another field's name (an unknown
#: field, whose list of the allowed names did not say where the option is)
_TRAINING_HINTS = {
    **dict.fromkeys(("minutes", "max_minutes", "time_minutes", "time_limit", "duration", "time"),
                    "the training time is plexloc train's --minutes M (or --steps S); training.steps is the step budget "
                    "without them"),
    "resume": "resuming is plexloc train CONFIG --out RUN_DIR --resume (it trains on the run's own configuration), "
              "not a configuration field",
    "device": "the device is plexloc train's --device auto|cpu|cuda, not a configuration field",
    "epochs": "every training step draws new simulated samples, so there are no epochs: give training.steps, or "
              "--steps / --minutes to plexloc train",
    "learning_rate": "the learning rate is training.lr", "lr_min": "the smallest rate is training.min_lr",
    "batch": "the batch is training.batch_size", "batchsize": "the batch is training.batch_size",
    "validate_every_steps": "validations by steps are training.validate_every",
    "validate_every_seconds": "validations by time are training.validate_every_s",
}


def _sections(root, *, lists: bool = False) -> dict[str, type[BaseModel]]:
    """The top-level fields of ``root`` that are sections (one model, or one model or None): ``{"emitters":
    EmitterConfig, "model": ModelConfig, ...}``; a union of models is left out, and so is a list of one model
    (``channels``: its entries', ``channels.N.KEY``), which ``lists`` gives instead."""
    import typing

    out = {}
    for name, f in root.model_fields.items():
        listed = typing.get_origin(f.annotation) in (list, tuple)  # list[ChannelConfig]'s args are ChannelConfig too
        if listed != lists:
            continue
        members = [a for a in (typing.get_args(f.annotation) or (f.annotation,)) if a is not type(None)]
        if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
            out[name] = members[0]
    return out


def _moved_hint(parent, key, root) -> str:
    """``; ...`` where an unknown field is a field of another section of ``root`` (or of its top level):
    ``training.window`` is ``model.window``, ``training.density_per_um2`` is ``emitters.density_per_um2``,
    ``batch_size`` at the top level is ``training.batch_size`` (the closest-name hint looked within the section)."""
    if not (isinstance(root, type) and issubclass(root, BaseModel)) or parent is None:
        return ""
    key = str(key)
    if key == "kind":  # every section's own tag (photon_model's, a psf's, a camera's): no one place to move it to
        return ""
    homes = [f"{name}.{key}" for name, sub in _sections(root).items() if sub is not parent and key in sub.model_fields]
    # a list's entries (each channel's, channels.N.KEY: 'channels.transform' is no path; a single channel's psf and
    # camera are also written at the top level)
    for name, sub in _sections(root, lists=True).items():
        if sub is not parent and key in sub.model_fields:
            if name == "channels" and key in ("psf", "camera"):
                homes.append(f"{key} at the top level (one channel)")
            homes.append(f"{name}.N.{key} (in each entry of {name})")
    if parent is not root and key in root.model_fields:
        homes.insert(0, f"{key} at the top level")
    if not homes:
        return ""
    return f"; '{key}' is not a field of this section: did you mean {' or '.join(homes)}? (move it there)"


def _unknown_hint(parent, key, root=None) -> str:
    """``; ADVICE`` for an unknown field: a training-section name that belongs on the command line or is another
    field's, a field of another section of ``root`` (the model validated), else the allowed name it is closest to (a
    typo); empty where there is none."""
    import difflib

    from plexloc.config.training import TrainingConfig

    if parent is TrainingConfig and str(key) in _TRAINING_HINTS:
        return f"; {_TRAINING_HINTS[str(key)]}"
    moved = _moved_hint(parent, key, root)
    if moved:
        return moved
    if parent is not None:
        close = difflib.get_close_matches(str(key), list(parent.model_fields), n=1, cutoff=0.8)
        if close:
            return f"; did you mean '{close[0]}'?"
    return ""


def _resolve_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow a pydantic error location down the model tree (best effort, for error messages)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part in current.model_fields:
                current = current.model_fields[part].annotation
            else:  # a union member tag such as 'gaussian'
                current = _union_member(current, part)
                continue
        else:
            current = _union_member(current, part)
        current = _unwrap(current, typing)
    current = _unwrap(current, typing)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any, typing) -> Any:
    for _ in range(5):
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (list, tuple):
            tp = typing.get_args(tp)[0]
        else:
            break
    return tp


def _union_member(tp: Any, tag: Any) -> Any:
    import typing

    tp = _unwrap(tp, typing)
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            kind = member.model_fields.get("kind")
            if kind is not None and kind.default == tag:
                return member
    return tp


class CameraDefaultsWarning(UserWarning):
    """A camera read from a user's file left fields out, and plexloc's defaults stand in for them."""


#: short units of the camera fields in the defaults note
_UNIT = {"spurious_charge": " e-/px/frame", "e_per_adu": " e-/ADU", "baseline": " ADU", "read_sigma": " e-",
         "noise_rate": " photons/px/frame"}
_ORIGIN = {"emccd": "the SMLM Challenge 2016 EMCCD's", "scmos": "plexloc's generic sCMOS", "additive": "seed 002's"}
_noted: set[str] = set()  # the notes given in this process: each once per command
#: the list the notes go to instead of warnings, inside :func:`collected_notes` (this thread's or task's)
_collector: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("plexloc_config_notes", default=None)


@contextlib.contextmanager
def collected_notes() -> Iterator[list[str]]:
    """Within the block, the notes the loaders give (:func:`note_camera_defaults`: a
    :class:`CameraDefaultsWarning` naming the camera fields a file left out) are appended to the list yielded, as
    text, instead of warned, and are not recorded as given: a load outside the block (of the same file too) warns of
    them as usual. For a caller that loads a file the user will not see under that path (the job server checks a
    scratch copy of a job's configuration: the worker gives the note) or that reports the notes its own way. Local to
    the thread (or asyncio task) that enters it; blocks nest, the innermost collecting::

        with collected_notes() as notes:
            config = load_config(path)
        # notes == ["PATH: camera field(s) not given, defaults used (...): ..."] or []
    """
    notes: list[str] = []
    token = _collector.set(notes)
    try:
        yield notes
    finally:
        _collector.reset(token)


def camera_defaults(camera: BaseModel) -> dict[str, Any]:
    """The fields of a camera configuration that were not given (``model_fields_set``) and hold their defaults,
    with those values: ``{"em_gain": 300.0, ...}``. An sCMOS's ``read_variance`` (an alternative to
    ``read_sigma``, default none) is never listed, nor ``read_sigma`` where ``read_variance`` was given, nor
    ``saturation_adu`` (default none: the file's integer maximum, or a level found in the movie)."""
    given = camera.model_fields_set
    out = {}
    for name in type(camera).model_fields:
        if name == "kind" or name in given or name in ("read_variance", "saturation_adu"):
            continue
        if name == "read_sigma" and getattr(camera, "read_variance", None) is not None:
            continue
        out[name] = getattr(camera, name)
    return out


def note_camera_defaults(cameras: list[tuple[str, BaseModel]], *, source: str | os.PathLike) -> None:
    """A :class:`CameraDefaultsWarning` naming every camera field of ``cameras`` (``(field prefix, camera)``) that
    the file ``source`` left out, with the default used; once per file and fields in a process (a command). Inside
    :func:`collected_notes` the message goes to its list instead (not warned, not recorded as given).

    Leaving out ``baseline`` of a camera with baseline 400 ADU, e_per_adu 12, em_gain 100 took the SMLM Challenge
    camera's 100 ADU: ``fit --method mle`` reported a median bg of 102 photons/px against 62, without a word."""
    parts, kinds = [], set()
    for prefix, camera in cameras:
        missing = camera_defaults(camera)
        if missing:
            kinds.add(getattr(camera, "kind", ""))
            parts += [f"{prefix}{k} {v:g}{_UNIT.get(k, '')}" if isinstance(v, (int, float)) else f"{prefix}{k} {v}"
                      for k, v in missing.items()]
    if not parts:
        return
    origin = ", ".join(_ORIGIN[k] for k in sorted(kinds) if k in _ORIGIN)
    message = (f"{source}: camera field(s) not given, defaults used ({origin}): {', '.join(parts)}; photons and "
               "background are only right with the values of the camera that recorded the movie: write them in")
    _give_note(message, CameraDefaultsWarning)


def _give_note(message: str, category: type[Warning]) -> None:
    """A loader's note: to the list of :func:`collected_notes` where one is collecting (neither warned nor recorded
    as given), else warned as ``category`` once per message in a process (a command)."""
    collecting = _collector.get()
    if collecting is not None:  # the caller's (collected_notes): neither warned nor recorded as given
        collecting.append(message)
    elif message not in _noted:
        _noted.add(message)
        import warnings

        warnings.warn(message, category, stacklevel=4)


class PSFPixelSizeWarning(UserWarning):
    """A configuration's ``psf: PSF.yaml`` was calibrated with another pixel size than the configuration's."""


def _px_pair(value: Any) -> tuple[float, float] | None:
    """A ``px_size_nm`` as (x, y) nm, or None where it is not one (the validation says so)."""
    try:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return float(value[0]), float(value[1])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), float(value)
    except (TypeError, ValueError):
        pass
    return None


def load_config(path: str | os.PathLike, model: type[M] | None = None, *,
                check_within: str | os.PathLike | None = None, data: Any = None) -> M:
    """Read and validate a YAML configuration.

    Relative paths inside the file (a spline calibration, sCMOS maps) are resolved against the
    file's folder. A ``camera`` or ``psf`` may name a file instead of holding the mapping (``camera: camera.yaml``
    from ``plexloc calibrate-camera``, ``psf: PSF.yaml`` or ``psf: PSF.h5`` from ``plexloc calibrate``;
    :func:`_include_files`). A channel's ``transform`` may name the file a plexloc command wrote it to (``{file:
    T.json}``, ``{file: PSF.json, channel: 1}``, ``{file: PSF.h5}``; :mod:`plexloc.config.transforms`): the matrix is
    read in its place, so the configuration holds it and :func:`save_config` writes it (a run folder's config.yaml
    and a model file need no other file). Camera fields the file leaves out are named, with the defaults used, in a
    :class:`CameraDefaultsWarning` (:func:`note_camera_defaults`). A spline ``psf.channel`` that the named plexloc
    calibration file does not hold is refused here, naming the field; with ``check_within`` only calibration files
    inside that folder are opened for it (the job server checks a job's own files, never a path on its own disk).
    ``data``: the file's YAML where the caller read it already (:func:`load_yaml` of its text), not read again; ``path``
    still names the file (its folder places relative paths).

    Raises:
        InputError: missing or unreadable file, invalid YAML, or a field that fails validation; the
            message names the file, the field, the value and what is allowed.
    """
    if model is None:  # the superset: a simulation config, optionally with ``model`` and ``training``
        from plexloc.config.training import TrainConfig

        model = TrainConfig  # type: ignore[assignment]
    path = Path(path)
    if data is None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InputError("configuration file not found", source=path) from None
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read configuration: {err}", source=path) from None
        try:
            data = load_yaml(text)
        except yaml.YAMLError as err:
            raise InputError(f"not valid YAML: {yaml_error_text(err)}", source=path) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping of fields at the top level, got {type(data).__name__}", source=path)
    included = {k: data[k] for k in ("camera",) if isinstance(data.get(k), str)}
    included.update({f"channels.{i}.camera": ch["camera"] for i, ch in enumerate(data.get("channels") or [])
                     if isinstance(ch, dict) and isinstance(ch.get("camera"), str)})
    origins: dict[str, tuple[str, str]] = {}  # the files that 'camera: FILE' named, and the path of its fields there
    data = _include_files(data, path, origins)
    # absolute: a saved model or checkpoint keeps the configuration, and is used from other folders
    data = _resolve_relative_paths(data, path.parent.resolve())
    try:
        config = validate_config(data, model, source=path)  # type: ignore[arg-type]
    except InputError as err:
        raise InputError(_in_included_files(err.reason, origins), source=path) from None
    channels = getattr(config, "channels", None)
    if channels:
        shortcut = "channels" not in data  # a single channel's top-level 'camera'
        _check_calibration_channels(channels, shortcut, path, check_within)
        fields = ["camera" if shortcut else f"channels.{i}.camera" for i in range(len(channels))]
        note_camera_defaults([(f"{f} ({included[f]})." if f in included else f"{f}.", ch.camera)
                              for f, ch in zip(fields, channels)], source=path)
        for f, ch in zip(fields, channels):
            _mark_source(ch.camera, *origins.get(f, (path, f"{f}.")))
    return config


def _in_included_files(message: str, origins: dict[str, tuple[str, str]]) -> str:
    """A validation message whose fields lie in a file that ``camera: FILE`` or ``psf: FILE`` named, each such field
    followed by the file and its name there: ``unknown field 'camera.em_gain' (in camx.yaml as 'em_gain')``. The
    message named the including file's path alone, where the field is not to be found."""
    import re

    for where, (file, prefix) in sorted(origins.items(), key=lambda kv: -len(kv[0])):
        message = re.sub(rf"'{re.escape(where)}\.([^']+)'",
                         lambda m: f"'{where}.{m.group(1)}' (in {file} as '{prefix}{m.group(1)}')", message)
    return message


def _mark_source(camera: BaseModel, file: str | os.PathLike, field: str) -> None:
    """Keep on a camera configuration the file it was read from and the path of its fields there (``""`` for a file
    of the camera's fields alone, ``"camera."``, ``"channels.1.camera."``): the camera check's warnings name them, for
    the user to know what to edit (:func:`plexloc.camera.check.camera_source`). A private attribute: not a field,
    neither validated nor saved."""
    camera._source = (str(file), field)


def _check_calibration_channels(channels: list, shortcut: bool, path: Path,
                                within: str | os.PathLike | None = None) -> None:
    """Refuse a spline ``psf.channel`` beyond the channels of the plexloc calibration file it names (the PSF loader,
    which reads the file later, knows neither the YAML nor the field: it named the .h5 file alone). A file that is
    missing or not a readable plexloc calibration is left to that loader, which says what is wrong with it."""
    from plexloc.calibrate.fileformat import calibration_channel_count
    from plexloc.config.models import SplinePSFConfig

    for c, ch in enumerate(channels):
        psf = ch.psf
        if not isinstance(psf, SplinePSFConfig) or Path(psf.calibration).suffix.lower() not in (".h5", ".hdf5"):
            continue
        if within is not None and Path(within).resolve() not in Path(psf.calibration).resolve().parents:
            continue
        n = calibration_channel_count(psf.calibration)
        if n is not None and psf.channel >= n:
            from plexloc.calibrate.fileformat import channel_out_of_range

            field = "psf.channel" if shortcut else f"channels.{c}.psf.channel"
            text = channel_out_of_range(psf.channel, n, psf.calibration)
            raise InputError(f"field '{field}' = {psf.channel}: {text}", source=path)


#: a ``psf`` given as a file name with one of these suffixes is a spline calibration (``plexloc calibrate``, SMAP)
SPLINE_SUFFIXES = (".h5", ".hdf5", ".mat")

#: the sections a configuration may give as a file name, read in place (top level, or of a channel)
INCLUDE_KEYS = ("camera", "psf")


def included_names(data: Any) -> list[tuple[str, str, str]]:
    """``(where, key, name)`` of each section of a configuration's mapping ``data`` given as a file name (``camera:
    camera.yaml``, ``psf: PSF.yaml`` or ``psf: PSF.h5``; at the top level, ``where`` "", or in channel i,
    ``where`` "channels.i."): the one list of these fields that the loader, ``plexloc submit`` and the service's
    submission check read. A spline file (``psf: PSF.h5``, :data:`SPLINE_SUFFIXES`) is named here too; the loader
    reads it as a calibration, not as a YAML."""
    return [(where, key, node[key]) for where, node in _include_places(data) for key in INCLUDE_KEYS
            if isinstance(node.get(key), str) and node[key].strip()]


def _include_places(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(where, mapping)`` of the top level (``where`` "") and of each channel ``i`` given as a mapping (``where``
    "channels.i."): the places a section may be given as a file name (:data:`INCLUDE_KEYS`)."""
    if not isinstance(data, dict):
        return []
    channels = data.get("channels")
    return [("", data)] + [(f"channels.{i}.", ch) for i, ch in enumerate(channels if isinstance(channels, list)
                                                                          else []) if isinstance(ch, dict)]


def _check_psf_pixel(psf_px: Any, px_size_nm: Any, file: Path, config_path: Path, where: str) -> None:
    """A :class:`PSFPixelSizeWarning` where the configuration file that ``psf: FILE`` names (``plexloc calibrate
    --model astigmatic`` writes the bead stack's ``--pixel-size`` as its ``px_size_nm``) records another pixel size
    than the configuration including it, by more than 1 %: the calibration's widths in nm hold only where the stack's
    pixel size was right, and with one camera one of the two is wrong (a spline file is refused on it instead)."""
    a, b = _px_pair(psf_px), _px_pair(px_size_nm)
    if a is None or b is None or all(abs(u - v) <= 0.01 * v for u, v in zip(a, b)):
        return
    show = lambda p: f"{p[0]:g}" if p[0] == p[1] else f"[{p[0]:g}, {p[1]:g}]"  # noqa: E731
    _give_note(f"{config_path}: field '{where}' names {file}, calibrated with {show(a)} nm pixels, but px_size_nm is "
               f"{show(b)}: set px_size_nm to the camera's pixel, or calibrate the beads again with the right "
               "--pixel-size", PSFPixelSizeWarning)


def _included_mapping(name: str, key: str, config_path: Path, where: str,
                      origins: dict[str, tuple[str, str]] | None = None, px_size_nm: Any = None) -> dict[str, Any]:
    """The ``key`` mapping (``camera`` or ``psf``) of the YAML file ``name`` (relative to ``config_path``'s folder):
    its ``key`` entry (a whole configuration, or what ``plexloc calibrate-camera`` / ``calibrate --model astigmatic``
    write), else the file's own mapping; relative paths in it resolved against that file's folder. ``origins``: the
    file and the path of the mapping's fields in it (``""`` or ``"camera."``) are put there under ``where``."""
    file = Path(name).expanduser()
    file = file if file.is_absolute() else config_path.parent / file
    if key == "psf" and file.suffix.lower() in SPLINE_SUFFIXES:
        if where not in ("psf", "channels.0.psf"):  # a file of several channels: which one is not the file's to say
            raise InputError(f"field '{where}': a spline calibration named by its file alone is taken for channel 0; "
                             f"for this channel write the mapping, e.g. {{kind: spline, calibration: {name}, channel: "
                             f"{where.split('.')[1]}}}", source=config_path)
        return {"kind": "spline", "calibration": str(file.resolve())}
    try:
        data = load_yaml(file.read_text())
    except FileNotFoundError:
        raise InputError(f"field '{where}': the file {name!r} it names was not found (looked for {file})",
                         source=config_path) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        text = yaml_error_text(err) if isinstance(err, yaml.YAMLError) else " ".join(str(err).split())
        raise InputError(f"field '{where}': cannot read the file {name!r} it names: {text}",
                         source=config_path) from None
    nested = isinstance(data, dict) and isinstance(data.get(key), dict)
    if nested and key == "psf" and px_size_nm is not None:
        _check_psf_pixel(data.get("px_size_nm"), px_size_nm, file, config_path, where)
    if nested:
        data = data[key]
    if not isinstance(data, dict) or "kind" not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise InputError(f"field '{where}': the file {name!r} holds no {key} (a mapping with 'kind', or a '{key}' "
                         f"mapping), found {found}", source=config_path)
    if origins is not None:
        origins[where] = (str(file), f"{key}." if nested else "")
    return _resolve_relative_paths(data, file.parent.resolve())


def _include_files(data: dict[str, Any], config_path: Path,
                   origins: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """A configuration whose ``camera`` or ``psf`` (top level, or of a channel) is a file name instead of a mapping:
    ``camera: camera.yaml`` (``plexloc calibrate-camera``'s output, or any configuration: its camera), ``psf:
    PSF.yaml`` (``plexloc calibrate --model astigmatic``) or ``psf: PSF.h5`` (a spline calibration), read in place;
    ``origins``: each file read, by the field that named it (:func:`_included_mapping`)."""
    from plexloc.config.models import SimulationConfig

    default_px = SimulationConfig.model_fields["px_size_nm"].default  # what a file without px_size_nm gets
    data = dict(data)
    channels = data.get("channels")
    if isinstance(channels, list):
        data["channels"] = [dict(ch) if isinstance(ch, dict) else ch for ch in channels]
    for where, node in _include_places(data):
        for key in INCLUDE_KEYS:
            name = node.get(key)
            if isinstance(name, str) and not name.strip():
                raise InputError(f"field '{where}{key}' is blank: give the {key} section itself or the name of the "
                                 "file that holds it", source=config_path)
            if isinstance(name, str):
                node[key] = _included_mapping(name, key, config_path, f"{where}{key}", origins,
                                              px_size_nm=data.get("px_size_nm", default_px))
    if isinstance(channels, list):
        data["channels"] = [
            {**ch, "transform": _included_transform(ch["transform"], i, len(channels), config_path)}
            if isinstance(ch, dict) and isinstance(ch.get("transform"), dict) else ch
            for i, ch in enumerate(data["channels"])]
    return data


#: largest entry of ``|T - I|`` (translation in nm, linear part unitless) of a reference channel's transform read
#: from a file: calibrate's channel 0 is the identity up to rounding
_IDENTITY_TOL = 1e-6


def _included_transform(ref: dict[str, Any], i: int, n: int, config_path: Path) -> list[list[float]]:
    """The matrix of ``channels.<i>.transform: {file: NAME, channel: K}`` (:mod:`plexloc.config.transforms`), ``NAME``
    relative to ``config_path``'s folder and ``K`` by default ``i`` (a file of several channels; a register T.json
    takes none). Errors name the YAML, the field, the file and (for a channel the file lacks) both numbers of
    channels."""
    from plexloc.config.transforms import TRANSFORM_FILE_KEYS, read_transform

    where = f"channels.{i}.transform"
    extra = sorted(str(k) for k in ref if k not in TRANSFORM_FILE_KEYS)
    if extra or "file" not in ref:
        what = f"unknown key(s) {extra}" if extra else "no 'file'"
        raise InputError(f"field '{where}': a 3x3 matrix, or a file that holds one as {{file: T.json}} or {{file: "
                         f"PSF.json, channel: {i}}} (keys {list(TRANSFORM_FILE_KEYS)}); got {what} in {ref!r}",
                         source=config_path)
    name, channel = ref["file"], ref.get("channel")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"field '{where}.file': the path of a transform file (plexloc register's T.json, plexloc "
                         f"calibrate's PSF.json or PSF.h5), got {name!r}", source=config_path)
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
        raise InputError(f"field '{where}.channel': a channel number of the file (>= 0), got {channel!r}",
                         source=config_path)
    file = Path(name).expanduser()
    file = file if file.is_absolute() else config_path.parent.resolve() / file
    if not file.is_file():
        raise InputError(f"field '{where}.file': the file {name!r} it names was not found (looked for {file})",
                         source=config_path)
    try:  # a file of several channels is read at this channel's index unless another is given; a T.json has none
        found = read_transform(file, channel, default_channel=i)
    except InputError as err:
        given = "" if channel is None else f", channel: {channel}"
        raise InputError(f"field '{where}' (channel {i} of a {n}-channel configuration) = {{file: {name}{given}}}: "
                         f"{err}", source=config_path) from None
    from plexloc.config.models import ChannelConfig

    try:  # the model's own check (a transposed matrix), here so that the message names the file
        ChannelConfig._check_transform(found.matrix)
    except ValueError as err:
        raise InputError(f"field '{where}': {file}: {err}", source=config_path) from None
    if i == 0:
        dev = max(abs(found.matrix[r][c] - (1.0 if r == c else 0.0)) for r in range(3) for c in range(3))
        if dev > _IDENTITY_TOL:
            which = "" if found.channel is None else f" (its channel {found.channel})"
            raise InputError(f"field '{where}': channel 0 is the reference (conventions.md), whose transform is the "
                             f"identity; {file}{which} gives {found.matrix}: it belongs to another channel",
                             source=config_path)
    return found.matrix


def load_camera_config(path: str | os.PathLike):
    """A camera YAML (``--camera`` of the commands): the camera's mapping itself, or a mapping whose ``camera``
    key holds it (a whole single-channel configuration may be given: only its camera is read). sCMOS map files
    named relative to the YAML are found next to it, and fields left out are named with their defaults, as in
    :func:`load_config`.

    Raises:
        InputError: missing or unreadable file, invalid YAML, no camera in it, several channels' cameras, or a
            camera field that fails validation (the message names the file, the field and the value).
    """
    cameras = load_camera_configs(path)
    if len(cameras) > 1:
        raise InputError(f"a configuration of {len(cameras)} channels: give one camera (the 'camera' mapping), or "
                         "the configuration itself where the command takes one", source=path)
    return cameras[0]


def read_camera_yaml(path: str | os.PathLike) -> Any:
    """The YAML of a camera file, as read (:func:`load_camera_configs` validates it).

    Raises:
        InputError: a missing or unreadable file, or invalid YAML (naming the file)."""
    path = Path(path)
    try:
        return load_yaml(path.read_text())
    except FileNotFoundError:
        raise InputError("camera file not found", source=path) from None
    except yaml.YAMLError as err:
        raise InputError(f"cannot read camera YAML: {yaml_error_text(err)}", source=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read camera YAML: {' '.join(str(err).split())}", source=path) from None


def load_camera_configs(path: str | os.PathLike, *, data: Any = None) -> list:
    """The cameras of a camera YAML, one per channel: a single camera (as :func:`load_camera_config` reads it), or
    each channel's camera of a multi-channel configuration. ``data``: the file's YAML where the caller read it already
    (:func:`read_camera_yaml`), not read again.

    Raises:
        InputError: as :func:`load_camera_config` (except for several channels)."""
    from pydantic import ConfigDict

    from plexloc.config.models import CameraConfig

    class _CameraFile(BaseModel):
        model_config = ConfigDict(extra="forbid")
        camera: CameraConfig

    path = Path(path)
    if data is None:
        data = read_camera_yaml(path)
    if not isinstance(data, dict):
        raise InputError("expected a mapping with the camera's fields (kind: emccd | scmos | ideal | additive, ...)",
                         source=path)
    if "camera" not in data and "kind" not in data:
        channels = data.get("channels")
        if isinstance(channels, list) and channels and all(isinstance(c, dict) and "camera" in c for c in channels):
            cameras = [c["camera"] for c in channels]
        else:
            raise InputError(f"no camera in it: expected 'kind' (emccd | scmos | ideal | additive) or a 'camera' "
                             f"mapping, found the fields {sorted(data)}", source=path)
        prefixes = [f"channels.{i}.camera." for i in range(len(cameras))]
    else:
        cameras = [data["camera"] if "camera" in data else data]
        prefixes = ["camera." if "camera" in data else ""]
    out = []
    for i, camera in enumerate(cameras):
        one = _resolve_relative_paths({"camera": camera}, path.parent.resolve())
        where = path if len(cameras) == 1 else f"{path} (channel {i})"
        # the file's own field paths: 'qe' in a file of the camera's fields alone, 'channels.1.camera.qe', ...
        own = tuple(int(p) if p.isdigit() else p for p in prefixes[i].rstrip(".").split(".") if p)
        out.append(validate_config(one, _CameraFile, source=where, relocate=(("camera",), own)).camera)
        _mark_source(out[-1], path, prefixes[i])
    note_camera_defaults(list(zip(prefixes, out)), source=path)
    return out


def validate_config(data: dict[str, Any], model: type[M], *, source: str | os.PathLike | None = None,
                    relocate: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None) -> M:
    """Validate a mapping into ``model``; failures become :class:`InputError` (field paths as in
    :func:`format_validation_error`)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError(format_validation_error(err, model, data, relocate), source=source) from None


def validate_section(data: Any, kinds: Any, section: str) -> BaseModel:
    """A configuration section given as a dict (``{"kind": "emccd", ...}``, as a YAML file's ``camera:`` or ``psf:``
    section) validated into the model of its ``kind`` among ``kinds`` (a discriminated union of models,
    :data:`~plexloc.config.models.CameraConfig` or :data:`~plexloc.config.models.PSFConfig`): an :class:`InputError`
    naming ``section`` where the kind is none of them or a field fails validation."""
    from typing import get_args

    models = {get_args(m.model_fields["kind"].annotation)[0]: m for m in get_args(get_args(kinds)[0])}
    kind = data.get("kind")
    if kind not in models:
        raise InputError(f"{section}: field 'kind' must be one of {sorted(models)}, got {kind!r}")
    return validate_config(dict(data), models[kind], source=section)


def names_file(key: Any, value: Any) -> bool:
    """Whether the loader reads the value of the configuration field ``key`` as a file path (one of
    :data:`~plexloc.config.files.PATH_KEYS`): any text of a spline ``calibration`` or a transform's ``file``, and
    text of a camera field (``e_per_adu``, ``baseline``, ``read_sigma``, ``read_variance``) that names a per-pixel map
    (.npy, .tif, .tiff). Other text of a camera field (``"100 ADU"``, ``"45"``) is a value, which validation reads
    as a number or refuses naming the field; ``plexloc submit`` attaches no file for it."""
    from plexloc.config.models import MAP_SUFFIXES

    if key not in PATH_KEYS or not isinstance(value, str):
        return False
    return key in ("calibration", "file") or Path(value.strip()).suffix.lower() in MAP_SUFFIXES


def _resolve_relative_paths(data: Any, base: Path) -> Any:
    """Relative file paths of ``data`` made absolute against ``base``: a spline ``calibration``, a transform's
    ``file``, and camera fields whose text names a map file (.npy, .tif) (:func:`names_file`); other text of a
    camera field (``"100 ADU"``) is left for validation to refuse as it was written."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if names_file(k, v) and not Path(v).expanduser().is_absolute():
                out[k] = str(base / v)
            elif names_file(k, v) and v.startswith("~"):
                out[k] = str(Path(v).expanduser())  # a home folder (~/maps/var.npy) read as the user means it
            else:
                out[k] = _resolve_relative_paths(v, base)
        return out
    if isinstance(data, list):
        return [_resolve_relative_paths(v, base) for v in data]
    return data


def save_config(config: BaseModel, path: str | os.PathLike, *, comment: str | None = None) -> None:
    """Write a configuration as YAML (atomically), under ``comment`` (one ``#`` line) where given."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    if comment is not None:
        text = f"# {comment}\n" + text
    with atomic_path(path) as tmp:
        tmp.write_text(text)
