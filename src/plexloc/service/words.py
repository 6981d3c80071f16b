"""What a job's program said, in the service's words: the warnings of a job that ran (they were only in its log), and
the command line's options that its messages name, as a submission gives them.

A job's program is a command line (``plexloc fit MOVIE --model M --camera C``); its warnings and errors name that
command's options ("give the movie's camera with --camera CAMERA.yaml"). A user of the service gives no such option:
the entry point's ``command`` maps an input slot onto it (``{if: camera, args: [--camera, "{input.camera}"]}``), or a
parameter (``[--threshold, "{param.threshold}"]``). :func:`service_flags` rewrites each such option into how a job
gets it (``--input camera=CAMERA.yaml``, ``--set threshold=VALUE``), from the entry point's own command, so that any
application's messages are translated, not only plexloc's.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, object_session

from plexloc.service.db import File, JobLog
from plexloc.service.states import JobState

#: a plexloc command's own warning (``plexloc fit: warning: ...``, :func:`plexloc.cli.main._show_warning`), one it
#: prints as a line of its report (``warning: noise: ...``, the fit's check of the movie against the training), and
#: Python's format of any other (``/path/module.py:12: UserWarning: ...``): LIKE patterns, then the exact forms
_LIKE = ("plexloc %: warning: %", "%.py:%: %Warning: %")
_PREFIX = "warning: "
_PLEXLOC = re.compile(r"^(?:plexloc [\w-]+: )?warning: (?P<text>.*)$")
_PYTHON = re.compile(r"^\S+\.py:\d+: (?P<text>\w*Warning: .*)$")
#: the start of the log line the server writes as an attempt begins (:func:`plexloc.service.api_worker.pull`)
CLAIMED = "[service] claimed by worker "
#: texts of warnings a job's answer carries (the count says how many there are; the log has them all)
MAX_TEXTS = 5


def _like():
    # "warning: " compared as it is (LIKE ignores case in SQLite: "WARNING: ..." of a logger is not one of these)
    return or_(*(JobLog.line.like(p) for p in _LIKE), func.substr(JobLog.line, 1, len(_PREFIX)) == _PREFIX)


def warning_text(line: str, job_id: str = "") -> str | None:
    """The warning that the log ``line`` says, without its ``plexloc COMMAND: warning:`` prefix or the source file
    and line of a Python warning, a worker's job folder cut from the paths it names; None for any other line."""
    m = _PLEXLOC.match(line) or _PYTHON.match(line)
    if m is None:
        return None
    text = m.group("text")
    if job_id:  # ".../plexloc-job-ID-xyz/in/movie/a.tif" -> "movie/a.tif" (as a failed job's error names it)
        text = re.sub(rf"(?:/[^/\s]+)*?/plexloc-job-{re.escape(job_id)}-[^/\s]+/(?:in/)?", "", text)
    return text


def warning_counts(conn, job_ids: list[str] | None = None) -> dict[str, int]:
    """Warnings in the log of each job's last attempt (jobs without any are left out; ``job_ids`` None: every job), as
    :func:`plexloc.service.jobs.add_log` counts them when it stores a line (:func:`warning_text`, the count started
    again when an attempt begins); migration 0006 counted the jobs of before with it until session 51 and now holds
    its own copy of these rules (a change here does not change old upgrades). ``conn``: a session or a
    connection. It counted every attempt's lines with the LIKE patterns alone, which also take ``plexloc a b: warning:``
    and, in SQLite, ``plexloc fit: WARNING:``: an old job's count and a new one's disagreed."""
    q = (select(JobLog.job_id, JobLog.line).where(or_(_like(), JobLog.line.like(CLAIMED + "%")))
         .order_by(JobLog.job_id, JobLog.id))
    if job_ids is not None:
        if not job_ids:
            return {}
        q = q.where(JobLog.job_id.in_(job_ids))
    out: dict[str, int] = {}
    for job_id, line in conn.execute(q):
        if line.startswith(CLAIMED):  # an attempt begins: the lines before it are an earlier attempt's
            out[job_id] = 0
        elif warning_text(line) is not None:
            out[job_id] = out.get(job_id, 0) + 1
    return {job_id: n for job_id, n in out.items() if n}


def job_warnings(session: Session, job_id: str, *, limit: int = MAX_TEXTS) -> list[str]:
    """The texts of the first ``limit`` warnings of the job's last attempt in its log, each once, in the order said
    (those of an attempt that lapsed, its worker lost, were told with the attempt that succeeded)."""
    out: list[str] = []
    start = session.scalar(select(func.max(JobLog.id)).where(JobLog.job_id == job_id, JobLog.line.like(CLAIMED + "%")))
    q = select(JobLog.line).where(JobLog.job_id == job_id, _like())
    if start is not None:
        q = q.where(JobLog.id > start)
    for line in session.scalars(q.order_by(JobLog.id).limit(20 * limit)):
        text = warning_text(line, job_id)
        if text is not None and text not in out:
            out.append(text)
            if len(out) >= limit:
                break
    return out


#: a placeholder or value an option takes in a message: ``CAMERA.yaml``, ``NM``, ``0.5``, ``camera.yaml``
_ARG = r"(?P<arg>[A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9]+)?|[-+]?\d[\d.eE+-]*|[\w./-]+\.(?:ya?ml|json|tiff?|npy|h5|pt))"


def option_map(command: list[Any]) -> dict[str, tuple[str, str]]:
    """``--option`` -> ``(kind, name)`` for the options of ``command`` (an entry point's, :class:`plexloc.service.apps
    .EntryPoint`'s ``command``) that an input slot or a parameter fills: kind ``input`` (``--option "{input.SLOT}"``),
    ``param`` (``--option "{param.NAME}"``) or ``flag`` (``{if: NAME, args: [--option]}``: a boolean parameter)."""
    out: dict[str, tuple[str, str]] = {}

    def walk(items: list[Any], cond: str | None) -> None:
        for i, item in enumerate(items):
            if isinstance(item, dict):  # {if: NAME, args: [...]}, as dumped or as the model holds it
                walk(list(item.get("args") or []), item.get("if"))
                continue
            if hasattr(item, "args") and hasattr(item, "if_"):
                walk(list(item.args), item.if_)
                continue
            if not isinstance(item, str) or not item.startswith("--"):
                continue
            nxt = items[i + 1] if i + 1 < len(items) and isinstance(items[i + 1], str) else None
            m = re.fullmatch(r"\{(input|param)\.(\w+)\}", nxt or "")
            if m:
                out.setdefault(item, (m.group(1), m.group(2)))
            elif cond is not None and nxt is None and len(items) == 1:
                out.setdefault(item, ("flag", cond))

    walk(list(command), None)
    return out


def job_words(registry, job) -> dict[str, Any]:
    """The keyword arguments of :func:`service_flags` for ``job`` (its entry point's command and messages, its id):
    ``service_flags(text, **job_words(registry, job))``. No registry, or one that no longer offers the job's entry
    point: ``{"command": None}`` (the text is left as it is)."""
    if registry is None or not registry.offers(job.application, job.version, job.entry_point):
        return {"command": None}
    ep = registry.apps[job.application].versions[job.version].entry_points[job.entry_point]
    words: dict[str, Any] = {"command": ep.command, "messages": ep.messages, "job_id": job.id}
    session = object_session(job)
    if ep.messages and session is not None and (job.error or job.warning_count):
        # read only when a message is said (a list of jobs translates each failed job's error)
        words["inputs"] = lambda: _input_refs(session, job)
        if JobState(job.state).terminal:  # what it kept: a cancelled training uploads no model.pt to continue from
            words["kept"] = lambda: set(session.scalars(select(File.name).where(File.job_id == job.id,
                                                                                  File.state == "ready")))
    return words


#: of a slot's several files, how many a message names (the rest counted)
_NAMED_FILES = 4


def _input_refs(session: Session, job) -> dict[str, str]:
    """Each input slot's file as a submission names it again: ``job:ID/NAME`` for another job's output, ``file:ID``
    for an upload. A slot with several files: ``SLOT (one of A, B, C)`` (the first :data:`_NAMED_FILES`, the rest
    counted), since a message cannot tell which of them its advice is about; only the first was named, as if it were
    the job's only one."""
    refs: dict[str, list[str]] = {}
    for ji in sorted(job.inputs, key=lambda ji: (ji.slot, ji.position)):
        f = session.get(File, ji.file_id) if ji.file_id is not None else None
        if f is not None and f.job_id is not None:
            ref = f"job:{f.job_id}/{f.name}"
        elif f is not None:
            ref = f"file:{f.id}"
        elif ji.source_job_id is not None:
            ref = f"job:{ji.source_job_id}/{ji.source_name}"
        else:
            continue
        if ref not in refs.setdefault(ji.slot, []):
            refs[ji.slot].append(ref)
    out: dict[str, str] = {}
    for slot, names in refs.items():
        if len(names) == 1:
            out[slot] = names[0]
            continue
        more = len(names) - _NAMED_FILES
        out[slot] = (f"{slot.upper()} (one of {', '.join(names[:_NAMED_FILES])}"
                     + (f" and {more} more" if more > 0 else "") + ")")
    return out


def service_flags(text: str | None, command: list[Any] | None, *, messages: dict[str, str] | None = None,
                  job_id: str = "JOB", inputs=None, kept=None) -> str | None:
    """``text`` with each option of ``command`` that an input or a parameter fills named as a submission gives it:
    ``--camera CAMERA.yaml`` -> ``--input camera=CAMERA.yaml``, ``--threshold`` -> ``--set threshold=VALUE``, a flag
    ``--refine-mle`` -> ``--set refine_mle=true``; and each option of ``messages`` (the entry point's own words for
    options no input or parameter fills, ``{job}`` the job's id ``job_id``) as it says. Options the service sets itself
    (``--out``, ``--device``) and any other text are left as they are. In a message, ``{input.SLOT}`` is the job's
    input of that slot as ``inputs`` names it (``job:TRAIN/model.pt``; not given: ``SLOT``); one that names an output
    of this job (``job:{job}/model.pt``) that the ended job did not keep (``kept``, the names of its files: a cancelled
    training keeps none) says a new job instead, which is what the user can do. ``inputs`` and ``kept`` may be
    functions that return them (asked only when a message is said)."""
    if not text or not command:
        return text
    options = option_map(command)
    for option, words in (messages or {}).items():
        options.setdefault(option, ("words", words))
    if not options:
        return text
    names = "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))

    def swap(m: re.Match) -> str:
        kind, name = options[m.group("opt")]
        arg = m.group("arg")
        if kind == "words":
            said = _message(name, job_id, inputs, kept)
            if said.endswith(_NEW_JOB_WITH) and not arg and not m.string[m.end():].startswith(" --"):
                said = said[:-len(_NEW_JOB_WITH)]  # nothing follows that the new job is given
            return said + (f" {arg}" if arg else "")
        if kind == "input":
            return f"--input {name}={arg or 'FILE'}"
        if kind == "param":
            return f"--set {name}={arg or 'VALUE'}"
        return f"--set {name}=true" + (f" {arg}" if arg else "")

    return re.sub(rf"(?<![\w-])(?P<opt>{names})(?![\w-])(?: {_ARG}(?![\w-]))?", swap, text)


def _message(words: str, job_id: str, inputs: dict[str, str] | None, kept: set[str] | None) -> str:
    """An entry point's ``messages`` value for job ``job_id`` (:func:`service_flags`)."""
    inputs = inputs() if callable(inputs) else inputs
    kept = kept() if callable(kept) else kept
    words = re.sub(r"\{input\.(\w+)\}", lambda m: (inputs or {}).get(m.group(1), m.group(1).upper()), words)
    m = re.search(r"--input \w+=job:\{job\}/(?P<name>[^\s)]+)", words)
    if m is not None and kept is not None and m.group("name") not in kept:
        # the advice to start from this job's output, which it does not have (cancelled, failed before writing it)
        # ("train on (a new job, as job C kept no model.pt to continue from, with --set minutes=M), on a GPU")
        return f"a new job, as job {job_id} kept no {m.group('name')} to continue from{_NEW_JOB_WITH}"
    return words.replace("{job}", job_id)


#: the end of a message that advises a new job, before the options that follow it (dropped where none does)
_NEW_JOB_WITH = ", with"
