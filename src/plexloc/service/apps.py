"""Applications: one YAML file each, validated at start-up (DECODE-OpenCloud's algorithm definition).

An application has versions; a version has entry points; an entry point says how to run it::

    name: plexloc-simulate
    description: simulate a movie and its ground truth
    versions:
      "0.1":
        entry_points:
          simulate:
            command: [plexloc, simulate, "{input.config}", --frames, "{param.frames}", --out, "{output_dir}",
                      {if: density, args: [--density, "{param.density}"]}]
            inputs:  {config: {kind: config, suffixes: [.yaml, .yml]}}
            outputs: [{path: "movie*.tif"}, {path: truth.csv}]
            params:  {frames: {type: integer, default: 100, minimum: 1}, density: {type: number, required: false}}
            hardware: {cpus: 1, memory_mb: 2000, gpus: 0}
            timeout_s: 3600

Placeholders (never a shell; each list item is one argument): ``{input.SLOT}`` the local path of the
slot's file (an item that is exactly ``{input.SLOT}`` of a ``multiple`` slot becomes one argument
per file), ``{param.NAME}``, ``{output_dir}``, ``{work_dir}``, ``{device}`` (``cuda`` when the job has
GPUs, else ``cpu``), ``{stem}`` (with ``foreach``). ``{if: NAME, args: [...]}`` adds ``args`` only when
parameter NAME is set (or, where NAME is an input slot, when the job gives that slot a file). ``foreach: SLOT`` runs the command once per file of that slot, each into
``output_dir/STEM`` (many acquisitions in one job). ``requires`` lists executables or Python modules a
worker must have to claim the entry point.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from plexloc.config.io import load_yaml
from plexloc.errors import InputError

BUILTIN_DIR = Path(__file__).parent / "apps"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([A-Za-z0-9_]+))?\}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_MAX_COUNT = 2**31 - 1  # beyond any machine, and within every database's integer column


class Hardware(_Strict):
    cpus: int = Field(1, ge=1, le=_MAX_COUNT)
    memory_mb: int = Field(1000, ge=0, le=_MAX_COUNT)
    gpus: int = Field(0, ge=0, le=_MAX_COUNT)
    gpu_memory_mb: int = Field(0, ge=0, le=_MAX_COUNT)


class Slot(_Strict):
    kind: Literal["data", "config", "artifact"] = "data"
    required: bool = True
    multiple: bool = False
    suffixes: list[str] = Field(default_factory=list)
    description: str = ""
    #: another slot whose folder this slot's files share on the worker: the files a configuration names by
    #: relative path (a spline calibration, sCMOS maps) next to the configuration, under their own names
    beside: str | None = None
    #: what the server loads the slot's file as at submission (a file that cannot load is refused with a 422 naming
    #: the field, not found by the program on a worker after the job waited in the queue): ``plexloc-config`` (a
    #: microscope configuration, :func:`plexloc.config.load_config`) or ``plexloc-camera`` (a camera YAML,
    #: :func:`plexloc.config.load_camera_configs`); see :mod:`plexloc.service.config_inputs`
    check: Literal["plexloc-config", "plexloc-camera"] | None = None
    #: the header columns a ``.csv`` file of this slot must have (a table of another program's columns is refused at
    #: submission, naming those missing, instead of failing on a worker after its wait: a plexloc table given to
    #: COMET, which reads ThunderSTORM's), and what to do when they are missing. The server's own (as ``messages``)
    columns: list[str] = Field(default_factory=list, exclude=True)
    columns_hint: str = Field("", exclude=True)


class Output(_Strict):
    path: str  # a glob relative to the output folder
    kind: Literal["output", "log", "artifact"] = "output"
    required: bool = False
    #: the header columns a ``.csv`` output has, where the application says: a job that takes it as an input
    #: (``job:ID/locs.csv``) before it exists is checked against them at submission, as an uploaded table is against
    #: its slot's ``columns``. The server's own (never sent: an older worker's strict model would refuse the key)
    columns: list[str] = Field(default_factory=list, exclude=True)
    #: a regular expression the other columns the output may have match (plexloc's tables: bg, prob, sigma_x_nm, ...
    #: where known, all lower-case names): a slot's column that matches it is not refused at submission (its header is
    #: read when the output is made). Empty: ``columns`` are all the output has. The server's own, as ``columns``
    other_columns: str = Field("", exclude=True)

    @field_validator("other_columns")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as err:
            raise ValueError(f"other_columns {v!r} is not a regular expression ({err}): write one such as "
                             "'[a-z][a-z0-9_]*'") from None
        return v

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or ".." in Path(v).parts:
            raise ValueError(f"output path {v!r} must stay inside the output folder")
        return v


class Param(_Strict):
    type: Literal["integer", "number", "string", "boolean"]
    default: Any = None
    required: bool | None = None  # default: required when there is no default
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None
    description: str = ""

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class Conditional(_Strict):
    if_: str = Field(alias="if")
    args: list[str]


class EntryPoint(_Strict):
    command: list[str | Conditional] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, Slot] = Field(default_factory=dict)
    outputs: list[Output] = Field(default_factory=list)
    params: dict[str, Param] = Field(default_factory=dict)
    hardware: Hardware = Field(default_factory=Hardware)
    timeout_s: float = Field(3600.0, gt=0)
    foreach: str | None = None
    image: str | None = None  # a container image: the command runs in it (a worker with podman, docker or apptainer)
    requires: list[str] = Field(default_factory=list)
    #: groups of parameters of which a job may give at most one (options the program refuses together)
    exclusive: list[list[str]] = Field(default_factory=list)
    #: options the program's messages name that no input or parameter of the command fills, and how a job gets the
    #: same (``--resume: "--input init_from=job:{job}/model.pt"``; ``{job}`` is the job's id): the server says them so
    #: in a job's error and warnings (:func:`plexloc.service.words.service_flags`). The server's own: never sent (an
    #: older worker's or client's strict model would refuse the key)
    messages: dict[str, str] = Field(default_factory=dict, exclude=True)
    description: str = ""
    _config_model: type[BaseModel] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _placeholders(self) -> "EntryPoint":
        items: list[str] = []
        for item in self.command:
            if isinstance(item, Conditional):
                if item.if_ not in self.params and item.if_ not in self.inputs:
                    raise ValueError(f"command: 'if: {item.if_}' names no parameter or input slot")
                items.extend(item.args)
            else:
                items.append(item)
        for item in items:
            for kind, name in _PLACEHOLDER.findall(item):
                if kind == "input" and name not in self.inputs:
                    raise ValueError(f"command: {{input.{name}}} names no input slot (have {sorted(self.inputs)})")
                if kind == "param" and name not in self.params:
                    raise ValueError(f"command: {{param.{name}}} names no parameter (have {sorted(self.params)})")
                if kind not in ("input", "param") and (name or kind not in ("output_dir", "work_dir", "device", "stem")):
                    raise ValueError(f"command: unknown placeholder {{{kind}{'.' + name if name else ''}}}")
                if kind == "stem" and not self.foreach:
                    raise ValueError("command: {stem} needs foreach")
        if self.foreach is not None and self.foreach not in self.inputs:
            raise ValueError(f"foreach: {self.foreach!r} names no input slot")
        for group in self.exclusive:
            unknown = [name for name in group if name not in self.params]
            if unknown or len(group) < 2:
                raise ValueError(f"exclusive: {group} must name two or more parameters"
                                 + (f" ({unknown} are not parameters; have {sorted(self.params)})" if unknown else ""))
        for name, slot in self.inputs.items():
            if slot.beside is None:
                continue
            target = self.inputs.get(slot.beside)
            if target is None or slot.beside == name:
                raise ValueError(f"inputs.{name}.beside: {slot.beside!r} names no other input slot (have {sorted(self.inputs)})")
            if target.beside is not None or target.multiple:
                raise ValueError(f"inputs.{name}.beside: slot {slot.beside!r} must hold one file in its own folder")
        return self

    def input_folder(self, slot: str) -> str:
        """The folder (under the job's ``in/``) that a slot's files are downloaded into: its own, or its
        ``beside`` slot's."""
        spec = self.inputs.get(slot)
        return spec.beside if spec is not None and spec.beside else slot

    def shared_input_folders(self) -> set[str]:
        """Input folders that several slots' files share (a ``beside`` slot's): file names there must be unique,
        since a configuration names its files by them."""
        return {self.input_folder(name) for name, spec in self.inputs.items() if spec.beside}

    def config_model(self) -> type[BaseModel]:
        """A pydantic model of this entry point's parameters (unknown fields rejected); built once."""
        if self._config_model is None:
            self._config_model = self._build_config_model()
        return self._config_model

    def _build_config_model(self) -> type[BaseModel]:
        types = {"integer": int, "number": float, "string": str, "boolean": bool}
        fields: dict[str, Any] = {}
        for name, p in self.params.items():
            kw: dict[str, Any] = {}
            if p.minimum is not None:
                kw["ge"] = p.minimum
            if p.maximum is not None:
                kw["le"] = p.maximum
            typ: Any = types[p.type]
            if p.choices:
                typ = Literal[tuple(p.choices)]
            if p.is_required:
                fields[name] = (typ, Field(..., **kw))
            else:
                fields[name] = (typ | None, Field(p.default, **kw))
        # strict: true is not 1 and "7" is not 7 (the CLI and the web page send typed values); finite numbers only
        return create_model("Config", __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False),
                            **fields)

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The configuration with defaults filled in; :class:`InputError` names the first bad field."""
        try:
            values = self.config_model()(**config).model_dump()
        except ValidationError as err:
            e = err.errors()[0]
            field = ".".join(str(x) for x in e["loc"]) or "config"
            if e["type"] == "extra_forbidden":  # was "Extra inputs are not permitted": which are, and the one meant
                import difflib

                close = difflib.get_close_matches(field, list(self.params), n=1)
                raise InputError(f"no such parameter (got {e.get('input')!r}); "
                                 + (f"did you mean {close[0]}? " if close else "")
                                 + f"the parameters are: {', '.join(self.params) or 'none'}", source=f"config.{field}") from None
            raise InputError(f"{e['msg']} (got {e.get('input')!r})", source=f"config.{field}") from None
        for group in self.exclusive:  # refused here, not by the program on a worker after the inputs were fetched
            given = [name for name in group if values.get(name) not in (None, False)]
            if len(given) > 1:
                raise InputError(f"give at most one of {', '.join(group)}; got "
                                 + ", ".join(f"{name}={values[name]!r}" for name in given), source=f"config.{given[1]}")
        return values

    def render(
        self,
        *,
        config: dict[str, Any],
        inputs: dict[str, list[str]],
        output_dir: str,
        work_dir: str,
        device: str,
        stem: str | None = None,
    ) -> list[str]:
        """The argument list of one run (no shell involved)."""

        def one(item: str) -> list[str]:
            m = _PLACEHOLDER.fullmatch(item)
            if m and m.group(1) == "input" and self.inputs[m.group(2)].multiple:
                return list(inputs.get(m.group(2), []))

            def sub(m: re.Match) -> str:
                kind, name = m.group(1), m.group(2)
                if kind == "input":
                    files = inputs.get(name) or []
                    return files[0] if files else ""
                if kind == "param":
                    value = config.get(name)
                    return str(value).lower() if isinstance(value, bool) else str(value)
                return {"output_dir": output_dir, "work_dir": work_dir, "device": device, "stem": stem or ""}[kind]

            return [_PLACEHOLDER.sub(sub, item)]

        argv: list[str] = []
        for item in self.command:
            if isinstance(item, Conditional):
                if (config.get(item.if_) not in (None, False)) if item.if_ in self.params else bool(inputs.get(item.if_)):
                    for a in item.args:
                        argv.extend(one(a))
            else:
                argv.extend(one(item))
        return argv


class Version(_Strict):
    entry_points: dict[str, EntryPoint] = Field(min_length=1)


class Application(_Strict):
    name: str = Field(pattern=_NAME)
    description: str = ""
    versions: dict[str, Version] = Field(min_length=1)

    def entry(self, version: str | None, entry_point: str | None) -> tuple[str, str, EntryPoint]:
        """Resolve a version (default: the newest) and an entry point (default: the only one)."""
        if version is None:
            version = sorted(self.versions, key=_version_key)[-1]
        if version not in self.versions:
            raise InputError(f"no version {version!r} (have {sorted(self.versions)})", source=f"application {self.name}")
        eps = self.versions[version].entry_points
        if entry_point is None:
            if len(eps) != 1:
                raise InputError(f"choose an entry point: {sorted(eps)}", source=f"application {self.name} {version}")
            entry_point = next(iter(eps))
        if entry_point not in eps:
            raise InputError(f"no entry point {entry_point!r} (have {sorted(eps)})", source=f"application {self.name} {version}")
        return version, entry_point, eps[entry_point]


def _version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-_]", v))


def parse_application(data: Any, *, source: str) -> Application:
    """Validate one application; :class:`InputError` names the file and the field."""
    try:
        return Application.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        field = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-")) or "(top)"
        raise InputError(f"field {field}: {e['msg']}", source=source) from None


def load_application(path: str | Path) -> Application:
    path = Path(path)
    try:
        data = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read application YAML: {err}", source=path) from None
    return parse_application(data, source=str(path))


class Registry:
    """All applications by name, from the built-in folder and any extra folders (later ones win)."""

    def __init__(self, apps: dict[str, Application]):
        self.apps = apps
        self._tag: str | None = None

    @property
    def tag(self) -> str:
        """A digest of every application as the workers read them (16 hex digits): a server restarted with another
        registry (an application added, a version removed) answers its workers with another tag, and each reads what
        it can run again at its next pull (a worker busy through the restart kept the list of before for 5 min)."""
        if self._tag is None:
            import hashlib
            import json

            dumped = [self.apps[name].model_dump(by_alias=True) for name in sorted(self.apps)]
            self._tag = hashlib.sha256(json.dumps(dumped, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self._tag

    @classmethod
    def load(cls, extra_dirs: list[Path] | tuple = ()) -> "Registry":
        apps: dict[str, Application] = {}
        for folder in [BUILTIN_DIR, *map(Path, extra_dirs)]:
            for path in sorted(folder.glob("*.y*ml")):
                app = load_application(path)
                apps[app.name] = app
        return cls(apps)

    def get(self, name: str) -> Application:
        if name not in self.apps:
            raise KeyError(name)
        return self.apps[name]

    def offers(self, name: str, version: str, entry_point: str) -> bool:
        """Whether the registry has this application, version and entry point."""
        app = self.apps.get(name)
        ver = app.versions.get(version) if app is not None else None
        return ver is not None and entry_point in ver.entry_points

    def resolve(self, name: str, version: str | None, entry_point: str | None) -> tuple[str, str, EntryPoint]:
        if name not in self.apps:
            raise InputError(f"no application {name!r} (have {sorted(self.apps)})", source="application")
        return self.apps[name].entry(version, entry_point)
