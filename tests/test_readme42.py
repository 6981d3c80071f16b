"""README.md kept honest (session 42's audit): every ``plexloc COMMAND`` it names exists, every ``--option`` it shows
for a command is one that command's parser accepts, and every sub-command of the parser is named in it; plus the
defects found by running its commands as written."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from plexloc.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


COMMANDS = _subparsers(build_parser())


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its own sub-commands (``plexloc admin create-user --email``)."""
    opts = {o for a in parser._actions for o in a.option_strings}
    for sub in _subparsers(parser).values():
        opts |= _options(sub)
    return opts


def _readme_command_lines() -> list[str]:
    """The README's command lines: inline code spans that hold ``plexloc COMMAND``, and indented code lines."""
    spans = re.findall(r"`([^`\n]*plexloc [a-z][^`\n]*)`", README)
    spans += [line.strip() for line in README.splitlines() if line.startswith("    plexloc ")]
    return spans


def _invocations() -> list[tuple[str, str, str]]:
    """(command, the text that follows it up to the next ``plexloc``, the whole line) for every command named."""
    out = []
    for span in _readme_command_lines():
        # "plexloc" as a word of its own: not /srv/plexloc, plexloc-detect or plexloc.mle
        for m in re.finditer(r"(?<![\w/.-])plexloc ([a-z][a-z-]*)((?:(?!(?<![\w/.-])plexloc ).)*)", span):
            out.append((m.group(1), m.group(2), span))
    return out


INVOCATIONS = _invocations()


def test_the_readme_names_commands_at_all():
    named = {cmd for cmd, _, _ in INVOCATIONS}
    assert {"simulate", "train", "fit", "process", "drift", "serve", "worker"} <= named


@pytest.mark.parametrize("cmd", sorted({cmd for cmd, _, _ in INVOCATIONS}))
def test_every_command_the_readme_names_exists(cmd):
    lines = [span for c, _, span in INVOCATIONS if c == cmd]
    assert cmd in COMMANDS, f"README names `plexloc {cmd}` (e.g. {lines[0]!r}), which is no sub-command"


@pytest.mark.parametrize("cmd", sorted({cmd for cmd, _, _ in INVOCATIONS if cmd in COMMANDS}))
def test_every_option_the_readme_shows_for_a_command_is_accepted(cmd):
    accepted = _options(COMMANDS[cmd])
    unknown = []
    for c, rest, span in INVOCATIONS:
        if c != cmd:
            continue
        # --[no-]channels-last shows both spellings
        rest = re.sub(r"--\[no-\]([a-z][a-z0-9-]*)", r"--\1 --no-\1", rest)
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
            if opt not in accepted:
                unknown.append((opt, span))
    assert not unknown, f"options the README shows for `plexloc {cmd}` that its parser does not have: {unknown}"


def test_every_sub_command_is_named_in_the_readme_with_what_it_is_for():
    """A sub-command of `plexloc --help` missing from the README is one a reader never learns of. The command table
    (or the job service's code block) is where each one says what it is for."""
    named = {cmd for cmd, _, _ in INVOCATIONS}
    assert set(COMMANDS) - named == set()
    table_rows = re.findall(r"^\| `plexloc ([a-z][a-z-]*)", README, flags=re.M)
    service = {"serve", "worker", "admin", "submit", "status", "download"}  # the Job service section's code block
    assert set(COMMANDS) - set(table_rows) - service == set()


def test_the_readme_parses_as_shown():
    """A few full command lines of the README parse (only parse) as written, placeholders filled in."""
    parser = build_parser()
    lines = [
        "simulate CONFIG --frames 10 --out DIR --seed 1 --density 1 --frame-size 32 32 --margin-px 0 "
        "--drift-nm 10 0 0 --blinks-per-molecule 5 --device cpu",
        "train train.yaml --out run --minutes 30 --device cuda",
        "fit movie.tif --model run --out locs.csv --camera camera.yaml",
        "calibrate-camera --dark DARK.tif --flat FLAT1.tif FLAT2.tif --kind scmos --qe 0.8 --out camera.yaml",
        "calibrate BEADS.tif --z-step 50 --pixel-size 100 --camera microscope.yaml --out PSF.h5",
        "estimate-priors movie.tif --config microscope.yaml --out train.yaml",
        "process movie1.tif movie2.tif --model run --out results",
        "report locs_dc.csv --out report.html --camera-px-size 100",
        "evaluate T.csv P.csv --voxel-ji 192 192 400 --voxel-shape 64 64 4",
        "crlb CONFIG --photons 865,4135 --bg 20",
    ]
    for line in lines:
        assert line.split()[0] in README
        parser.parse_args(line.split())


def test_a_relative_work_dir_runs_jobs(tmp_path, monkeypatch):
    """`plexloc worker --work-dir wk` (a relative folder) failed every job: the job's command runs inside its own
    folder, where the paths 'wk/plexloc-job-.../in/...' and '.../out' named nothing ('configuration file not
    found'). The worker makes the folder absolute."""
    pytest.importorskip("fastapi")
    from service_support import LiveServer, make_service

    from plexloc.service.client import Client

    svc = make_service(tmp_path / "svc")
    monkeypatch.chdir(tmp_path)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        job = client.submit("ticker", entry_point="tick", config={"n": 1, "dt": 0})
        assert main(["worker", "--server", live.url, "--token", svc.worker_token, "--work-dir", "wk", "--once",
                     "--gpus", "0", "--container-runtime", "none", "--poll", "0.05", "--ping", "0.2"]) in (0, None)
        end = client.wait(job["id"], timeout=60)
        assert end["state"] == "succeeded", end
