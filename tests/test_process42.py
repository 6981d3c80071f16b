"""plexloc process's drift.png says in its title what was not subtracted (it read "drift (rcc)" above a z curve that
was judged unreliable and kept out of the table)."""

from __future__ import annotations

import pytest
from test_process41 import _table

import plexloc.render.figures as figures
from plexloc.post.drift import UnreliableDriftWarning
from plexloc.workflow import ProcessOptions, _drift


@pytest.fixture
def titles(monkeypatch):
    seen: list[str] = []
    real = figures.drift_figure

    def spy(*args, **kwargs):
        seen.append(kwargs.get("title", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(figures, "drift_figure", spy)
    return seen


def test_the_figure_names_an_unreliable_z_curve(tmp_path, titles):
    with pytest.warns(UnreliableDriftWarning, match="z drift is known to about"):
        _, info = _drift(_table(precision_z=800.0), tmp_path, ProcessOptions(drift_segments=5), progress=False)
    assert info["z_subtracted"] is False
    assert titles == ["drift (rcc); z unreliable, not subtracted"] and (tmp_path / "drift.png").stat().st_size > 0


def test_a_reliable_curve_keeps_the_plain_title(tmp_path, titles):
    _, info = _drift(_table(precision_z=40.0), tmp_path, ProcessOptions(drift_segments=5), progress=False)
    assert info["state"] == "applied" and titles == ["drift (rcc)"]
