"""Five defects left by earlier sessions (session 47, helper "leftovers"); each test fails on the code before its fix
(the split one counts the configuration's reads: no behaviour changed there)."""

from __future__ import annotations

import pathlib
import sqlite3

import numpy as np
import pytest
import yaml


# --- service: forget_inputs with more ids than an old SQLite's 999 bound variables -----------------------------------

def test_forget_inputs_chunks_its_in_list_under_sqlites_variable_limit(tmp_path):
    """Deleting 1,500 files at once put 1,500 ids in one IN list: an SQLite built with the old limit of 999 variables
    (before 3.32; 32,766 after) refused it ("too many SQL variables") and the deletion failed. Here the limit is set to
    999 on the deleting session's connection, as such a build has it."""
    from sqlalchemy import select

    from plexloc.service import jobs as ops
    from plexloc.service.db import File, Job, JobInput, User, make_engine, session_factory, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        n = 1500
        with sessions.begin() as s:
            user = User(name="alice", token_hash="0" * 64)
            s.add(user)
            s.flush()
            files = [File(user_id=user.id, name=f"movie{i}.tif", size=1, storage_key=f"u/{i}", state="ready")
                     for i in range(n)]
            s.add_all(files)
            job = Job(user_id=user.id, application="a", version="1", entry_point="e", state="succeeded")
            s.add(job)
            s.flush()
            s.add_all([JobInput(job_id=job.id, slot="movies", position=i, file_id=f.id) for i, f in enumerate(files)])
            s.flush()
            job_id = job.id
        with sessions.begin() as s:
            raw = s.connection().connection.dbapi_connection
            old = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            try:
                files = list(s.scalars(select(File)).all())
                assert len(files) == n
                ops.forget_inputs(s, files)
            finally:
                raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, old)
        with sessions.begin() as s:
            rows = s.scalars(select(JobInput).where(JobInput.job_id == job_id).order_by(JobInput.position)).all()
            assert len(rows) == n
            assert all(r.file_id is None for r in rows)
            assert [r.source_name for r in rows] == [f"movie{i}.tif" for i in range(n)]
    finally:
        engine.dispose()


# --- plexloc split: the configuration read once ------------------------------------------------------------------------

def test_split_reads_its_configuration_once(tmp_path, monkeypatch, capsys):
    """``plexloc split`` read its YAML three times (the split_view section, the test for channels, the configuration):
    now once, and the files it writes are the same."""
    import tifffile

    from plexloc.cli.main import main
    from plexloc.config import load_config
    from plexloc.config.examples import example_path
    from plexloc.io.splitview import split_frames

    data = yaml.safe_load(example_path("dual_color_splitview.yaml").read_text())
    data["split_view"]["boxes"] = [[2, 1, 8, 6], [12, 1, 8, 6]]
    cfg = tmp_path / "sv.yaml"
    cfg.write_text(yaml.safe_dump(data))
    frames = np.random.default_rng(0).integers(0, 4000, size=(5, 9, 22)).astype(np.uint16)
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, frames)
    reads = []
    original = pathlib.Path.read_text

    def counting(self, *args, **kwargs):
        if self.resolve() == cfg.resolve():
            reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", counting)
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "cut")]) == 0
    monkeypatch.undo()
    assert len(reads) == 1
    want = split_frames(frames, load_config(cfg).split_view)
    for c in range(2):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "cut" / f"m_ch{c}.tif"), want[:, c])
        assert load_config(tmp_path / "cut" / f"m_ch{c}.yaml").n_channels == 1
    assert "plexloc register" in capsys.readouterr().out
