"""The job service walked as a lab user and an admin (session 49): each test fails on the code before its fix."""

from __future__ import annotations

import re
import sys
import textwrap
import threading
import time

import pytest
from service_support import AgentThread, LiveServer, make_service, postgres_server  # noqa: F401

from plexloc.cli.main import main
from plexloc.service.client import Client

#: a program that warns as plexloc's commands do (one line, naming its own --camera and --threshold), warns as Python
#: does (file, line, category), and succeeds; with ``fail`` it stops as ``plexloc fit`` does on a wrong option
WARNER = """
import pathlib, sys, warnings
out, mode = pathlib.Path(sys.argv[1]), sys.argv[2]
if mode == "fail":
    print("plexloc fit: error: the camera's baseline is above every pixel: give the movie's camera with "
          "--camera CAMERA.yaml", file=sys.stderr)
    sys.exit(2)
print("plexloc fit: warning: " + str(out / "movie.tif") + ": the movie looks dim: check the camera (--camera, or "
      "the model's) and the detection --threshold", file=sys.stderr, flush=True)
warnings.warn("a Python warning", UserWarning)
print("plexloc fit: warning: the movie looks dim again", file=sys.stderr, flush=True)
print("warning: noise: the pixel noise is 84x what the camera settings predict: check the camera (" + str(out) + "/a.yaml)", flush=True)
print("WARNING: a logger's line, not a warning of the program's", flush=True)
(out / "locs.csv").write_text("frame,x_nm,y_nm,z_nm,photons\\n")
"""


def warner_app(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "warner.py").write_text(WARNER)
    (folder / "warner.yaml").write_text(textwrap.dedent(f"""
        name: warner
        versions:
          "1":
            entry_points:
              run:
                command: ["{sys.executable}", "{folder / 'warner.py'}", "{{output_dir}}", "{{param.mode}}",
                          {{if: camera, args: [--camera, "{{input.camera}}"]}},
                          {{if: threshold, args: [--threshold, "{{param.threshold}}"]}}]
                inputs: {{camera: {{kind: config, required: false}}}}
                params:
                  mode: {{type: string, default: ok}}
                  threshold: {{type: number, required: false}}
                outputs: [{{path: locs.csv}}]
                hardware: {{cpus: 1, memory_mb: 10}}
                timeout_s: 60
              absent:
                command: ["{sys.executable}", "{folder / 'warner.py'}", "{{output_dir}}", ok]
                requires: [a-program-no-worker-has-49]
                hardware: {{cpus: 1, memory_mb: 10}}
        """))
    return folder


@pytest.fixture
def quick_stop(monkeypatch):
    """--wait stops once the note has held 1 s (30 s by default: a worker started with the job is seen at its first
    pull)."""
    monkeypatch.setattr("plexloc.cli.submit.STOP_AFTER_S", 1.0)


@pytest.fixture
def svc(tmp_path):
    service = make_service(tmp_path, apps_dirs=[tmp_path / "apps", warner_app(tmp_path / "warner")])
    yield service
    service.app.state.engine.dispose()


def test_a_job_that_succeeded_with_warnings_says_them_in_the_service_words(svc, capsys):
    """``plexloc fit`` warned of a dim movie and of the camera in a job that succeeded: ``plexloc status`` said
    "succeeded", the web page and the API too; the warnings were only in the log. Now the job's answer counts them and
    gives their texts (the job folder cut from the paths), status and submit --wait print "succeeded with 4 warnings",
    the list names the count; the advice names the service's way to give a camera, not ``plexloc fit``'s --camera."""
    with LiveServer(svc.app) as live, AgentThread(live.url, svc.worker_token):
        common = ["--server", live.url, "--token", svc.user_token]
        assert main(["submit", "warner", *common, "--entry", "run", "--wait"]) == 0
        cap = capsys.readouterr()
        job_id, state = cap.out.splitlines()  # stdout as before: the id, the state (scripts read them)
        assert state == "succeeded"
        out = cap.err.splitlines()
        assert out == [f"plexloc submit: job {job_id} succeeded with 4 warnings:",
                       "  warning: out/movie.tif: the movie looks dim: check the camera (--input camera=FILE, or the "
                       "model's) and the detection --set threshold=VALUE",
                       "  warning: UserWarning: a Python warning",
                       "  warning: the movie looks dim again",
                       "  warning: noise: the pixel noise is 84x what the camera settings predict: check the camera (out/a.yaml)"], out
        with Client(live.url, svc.user_token) as c:
            job = c.job(job_id)
            assert job["warning_count"] == 4 and len(job["warnings"]) == 4, job
            listed = c.jobs()[0]
            assert listed["warning_count"] == 4 and listed["warnings"] == [], listed
        assert main(["status", job_id, *common]) == 0
        cap = capsys.readouterr()
        assert cap.out == "succeeded\n"
        assert cap.err.splitlines() == [f"plexloc status: job {job_id} succeeded with 4 warnings:", *out[1:]], cap.err
        assert main(["status", *common]) == 0
        listing = capsys.readouterr().out.rstrip()
        assert re.search(r"warner run +succeeded 100% +[\d.]+ [KM]?i?B  4 warnings \(plexloc status JOB\)$", listing), listing
        # a failure's error: the option as the service takes it
        assert main(["submit", "warner", *common, "--entry", "run", "--set", "mode=fail", "--wait"]) == 1
        failed = capsys.readouterr().out.splitlines()[1]
        assert failed.startswith("failed: ") and failed.endswith(
            "give the movie's camera with --input camera=CAMERA.yaml"), failed
        assert "--camera" not in failed


def test_submit_wait_stops_when_no_worker_present_can_take_the_job(svc, capsys, quick_stop):
    """``plexloc submit ... --wait`` waited for ever on a job no worker could take (here: a worker is present, but
    the program the entry point requires is on no worker), saying nothing. Now the server's note says that no worker
    present can run the entry point, naming the workers, and --wait stops (exit 3), the job left queued;
    --wait-queued waits on (the note said once), until the job ends."""
    with LiveServer(svc.app) as live:
        common = ["--server", live.url, "--token", svc.user_token]
        with AgentThread(live.url, svc.worker_token):
            _pulled(svc, "w1")
            done: list[int] = []
            t = threading.Thread(target=lambda: done.append(main(["submit", "warner", *common, "--entry", "absent",
                                                                  "--wait"])), daemon=True)
            t.start()
            t.join(timeout=30)
            assert done == [3], done
            cap = capsys.readouterr()
            job_id = cap.out.strip()
            assert ("no worker seen in the last 10 min can run warner 1 absent (w1: its program, or what its "
                    "'requires:' lists, is not installed there") in cap.err, cap.err
            assert f"Stopped waiting; the job stays queued (plexloc status {job_id} --wait" in cap.err, cap.err
            with Client(live.url, svc.user_token) as c:
                assert c.job(job_id)["state"] == "queued"
                threading.Timer(1.5, lambda: c.cancel(job_id)).start()
                assert main(["status", job_id, *common, "--wait-queued"]) == 1
            cap = capsys.readouterr()
            assert cap.out.strip() == "cancelled", cap.out
            assert cap.err.count("can run warner 1 absent") == 1 and "waiting (--wait-queued)" in cap.err, cap.err
            # a job the worker can run: --wait waits for it as before
            assert main(["submit", "warner", *common, "--entry", "run", "--wait"]) == 0
            capsys.readouterr()


def _pulled(svc, name: str, timeout: float = 10.0) -> None:
    """Wait until worker ``name`` has pulled (the server has seen it, and what it can run)."""
    from plexloc.service.db import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with svc.sessions().begin() as s:
            if s.query(Worker).filter_by(name=name).one().last_seen is not None:
                return
        time.sleep(0.05)
    raise AssertionError(f"worker {name} did not pull")


def test_submit_without_any_worker_stops_waiting_at_once(svc, capsys, quick_stop):
    """No worker has ever asked (a server just started): ``submit --wait`` said nothing and waited; now it says so and
    stops (exit 3)."""
    with LiveServer(svc.app) as live:
        done: list[int] = []
        t = threading.Thread(target=lambda: done.append(main(["submit", "ticker", "--server", live.url, "--token",
                                                              svc.user_token, "--entry", "tick", "--wait"])), daemon=True)
        t.start()
        t.join(timeout=30)
        assert done == [3], done
        err = capsys.readouterr().err
        assert "no worker has asked for jobs in the last 10 min" in err and "Stopped waiting" in err, err


def test_a_configuration_is_uploaded_once_and_used_again(svc, tmp_path, capsys):
    """Each ``plexloc submit --input config=cfg.yaml`` stored the configuration again (ten jobs, ten copies in the
    user's space and quota). Now a file of the same name and SHA-256 that is already there is used, not sent; a changed
    file or another name is uploaded; --no-reuse uploads again."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("a: 1\n")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        common = ["--server", live.url, "--token", svc.user_token]
        for _ in range(3):
            assert main(["submit", "warner", *common, "--entry", "run", "--input", f"camera={cfg}"]) == 0
        cap = capsys.readouterr()
        assert cap.err.count("already on the server") == 2, cap.err
        assert len(cap.out.split()) == 3, cap.out  # stdout: the job ids alone (J=$(plexloc submit ...))
        uploads = c.files(kind="upload")
        assert len(uploads) == 1, uploads
        assert {j["inputs"]["camera"][0] for j in c.jobs()} == {uploads[0]["id"]}
        assert main(["submit", "warner", *common, "--entry", "run", "--input", f"camera={cfg}", "--no-reuse"]) == 0
        cfg.write_text("a: 2\n")
        assert main(["submit", "warner", *common, "--entry", "run", "--input", f"camera={cfg}"]) == 0
        assert "already on the server" not in capsys.readouterr().err
        assert len(c.files(kind="upload")) == 3


def test_the_training_advice_names_a_new_job_from_the_model():
    """``plexloc train`` ends a short run with "train on (--resume --minutes M)": a job has no --resume (nor
    --minutes). Its entry point's ``messages`` say how a job does it, a new job from this one's model; they stay on the
    server (an older worker's strict model of an entry point refuses an unknown key)."""
    from plexloc.service.apps import Registry
    from plexloc.service.words import service_flags

    ep = Registry.load().resolve("plexloc-train", None, "train")[2]
    said = "it is not ready to fit movies: train on (--resume --minutes M), on a GPU"
    assert service_flags(said, ep.command, messages=ep.messages, job_id="J1") == (
        "it is not ready to fit movies: train on (--input init_from=job:J1/model.pt --set minutes=M), on a GPU")
    assert "messages" not in ep.model_dump(by_alias=True)


def test_wait_says_when_the_job_goes_back_to_the_queue(tmp_path, capsys):
    """The only worker died while it ran the job (kill -9): ``plexloc status JOB --wait`` waited on without a word
    while the job went back to the queue. Now it says so once, with the attempt, and waits on."""
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    svc = make_service(tmp_path, lease_s=1.0, sweep_interval_s=0.2)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            job = c.submit("ticker", entry_point="tick")
            agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000))
            assert agent.pull()["job_id"] == job["id"]  # claimed, then never a ping: a worker that died
            agent.close()
            threading.Timer(4.0, lambda: c.cancel(job["id"])).start()
            assert main(["status", job["id"], "--server", live.url, "--token", svc.user_token, "--wait"]) == 1
            cap = capsys.readouterr()
            assert cap.out == "cancelled\n", cap.out
            assert cap.err.count("is queued again") == 1, cap.err
            assert f"job {job['id']} is queued again: attempt 1 of 3 ended without a result" in cap.err, cap.err
    finally:
        svc.app.state.engine.dispose()


def test_a_running_worker_takes_an_application_added_after_it_started(tmp_path, svc):
    """The admin added an application (a YAML in ``plexloc serve --apps DIR``, a restart of the server): the worker
    that had started before read what it can run once, at its first pull, and never took the new application's jobs
    (the job waited, its note said no worker can run it). Now the worker reads the server's applications again
    (every ``can_run_refresh_s``, and after an outage)."""
    from service_support import script_app

    from plexloc.service.apps import Registry

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        with AgentThread(live.url, svc.worker_token) as agent:
            agent.can_run_refresh_s = 0.3
            _pulled(svc, "w1")
            apps = script_app(tmp_path / "later", "import sys; open(sys.argv[2] + '/a.txt', 'w').write('a')", name="later")
            svc.app.state.registry = Registry.load(list(svc.settings.apps_dirs) + [apps])
            job = c.submit("later", entry_point="run", config={"mode": "x"})
            assert c.wait(job["id"], timeout=30)["state"] == "succeeded"


def test_a_plexloc_table_given_to_comet_is_refused_at_submission_naming_the_conversion(svc, tmp_path):
    """A fit job's locs.csv (plexloc's columns) submitted to COMET waited in the queue, ran, and failed with a pandas
    traceback's last lines ("KeyError: 'x [nm]'"). Now the slot's ``columns`` refuse it at submission (422), naming
    the columns missing, those the file has, and the conversion; a ThunderSTORM table is accepted."""
    from plexloc.service.client import ServiceError

    plexloc_table = tmp_path / "locs.csv"
    plexloc_table.write_text("frame,x_nm,y_nm,z_nm,photons\n0,1,2,0,100\n")
    ts_table = tmp_path / "locs.thunderstorm.csv"
    ts_table.write_text('"frame","x [nm]","y [nm]","intensity [photon]"\n1,1,2,100\n')
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        with pytest.raises(ServiceError) as err:
            c.submit("comet", inputs={"locs": [c.upload(plexloc_table)["id"]]})
        detail = str(err.value.detail)
        assert err.value.status == 422 and detail.startswith("inputs.locs: file "), detail
        assert ("(locs.csv) lacks the column(s) 'x [nm]', 'y [nm]' that comet drift reads (its header: frame, x_nm, "
                "y_nm, z_nm, photons); COMET reads ThunderSTORM's CSV: write a plexloc table (frame, x_nm, y_nm) as one "
                "with plexloc convert locs.csv locs.thunderstorm.csv, and submit that") in detail, detail
        assert c.submit("comet", inputs={"locs": [c.upload(ts_table)["id"]]})["state"] == "queued"


def test_status_log_wait_prints_the_log_as_it_grows(svc, capsys):
    """Watching a job: ``plexloc status JOB --log`` printed the log once; with --wait (new) it printed nothing until
    the end. Now ``--log --wait`` prints each line as it comes (the first before the job ends), then the state."""
    with LiveServer(svc.app) as live, AgentThread(live.url, svc.worker_token), Client(live.url, svc.user_token) as c:
        job = c.submit("ticker", entry_point="tick", config={"n": 6, "dt": 0.4})
        seen: list[tuple[float, str]] = []
        import io

        class Tee(io.StringIO):
            def write(self, text):
                seen.append((time.monotonic(), text))
                return super().write(text)

        out = Tee()
        from contextlib import redirect_stdout
        with redirect_stdout(out):
            assert main(["status", job["id"], "--server", live.url, "--token", svc.user_token, "--log", "--wait"]) == 0
        end = c.job(job["id"])["finished_at"]
        lines = out.getvalue().splitlines()
        assert lines[-1] == "succeeded" and lines.count("tick 0") == 1 and lines.index("tick 5") < len(lines) - 1, lines
        first_tick = next(t for t, text in seen if "tick 0" in text)
        last = seen[-1][0]
        assert last - first_tick > 1.0, (first_tick, last, end)  # printed while it ran, not all at the end


def test_the_mail_of_a_job_that_succeeded_with_warnings_says_them(tmp_path):
    """A user created with --email got "Job ... succeeded." for a job whose program warned; now the subject counts the
    warnings and the body lists them."""
    from sqlalchemy import select

    from plexloc.service import admin
    from plexloc.service.db import Outbox

    service = make_service(tmp_path, apps_dirs=[tmp_path / "apps", warner_app(tmp_path / "warner")])
    try:
        with service.sessions().begin() as s:
            _, token = admin.create_user(s, "carol", email="carol@example.org")
        with LiveServer(service.app) as live, AgentThread(live.url, service.worker_token), Client(live.url, token) as c:
            job = c.submit("warner", entry_point="run")
            assert c.wait(job["id"], timeout=30)["state"] == "succeeded"
        with service.sessions().begin() as s:
            row = s.scalars(select(Outbox)).one()
            assert row.subject == f"plexloc job {job['id']} succeeded with 4 warnings", row.subject
            assert f"Its program warned 4 times (plexloc status {job['id']} --log has them all):\n- " in row.body
            assert "\n- UserWarning: a Python warning\n" in row.body, row.body
    finally:
        service.app.state.engine.dispose()


def test_wait_stops_when_the_job_a_pipeline_waits_for_cannot_be_taken(svc, capsys, quick_stop):
    """``train`` (a GPU job) then ``fit --input model=job:TRAIN/model.pt --wait`` on CPU workers: the fit waited for its
    source, which no worker could take, and --wait waited for ever (the fit had no note: it was waiting, not queued
    for a worker). Now its note names the source and why, and --wait stops."""
    with LiveServer(svc.app) as live:
        common = ["--server", live.url, "--token", svc.user_token]
        with AgentThread(live.url, svc.worker_token):
            _pulled(svc, "w1")
            with Client(live.url, svc.user_token) as c:
                gpu = c.submit("ticker", entry_point="gpu")
            done: list[int] = []
            t = threading.Thread(target=lambda: done.append(main(
                ["submit", "warner", *common, "--entry", "run", "--input", f"camera=job:{gpu['id']}/ticks.txt",
                 "--wait"])), daemon=True)
            t.start()
            t.join(timeout=30)
            assert done == [3], done
            err = capsys.readouterr().err
            assert (f"is queued, but it waits for job {gpu['id']} (ticker gpu, its input camera), which is queued, but "
                    "no worker seen in the last 10 min has the hardware this job asks (1 GPU(s)") in err, err


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_warnings_and_what_workers_run_on_both_databases(db, request, tmp_path):
    """The warnings' query (LIKE, and "warning: " compared as it is: SQLite's LIKE ignores case, PostgreSQL's does not)
    and the workers' can_run (a JSON column) give the same on SQLite and PostgreSQL."""
    from service_support import fresh_postgres_db
    from sqlalchemy import select

    from plexloc.service import jobs as ops
    from plexloc.service.db import Job, JobLog, User, Worker
    from plexloc.service.words import job_warnings, warning_counts

    db_url = fresh_postgres_db(request.getfixturevalue("postgres_server")) if db == "postgresql" else None
    service = make_service(tmp_path, db_url=db_url)
    try:
        with service.sessions().begin() as s:
            user = s.scalar(select(User).where(User.name == "alice"))
            job = ops.submit(s, user, service.app.state.registry, ops.JobRequest("ticker", entry_point="tick"))
            s.flush()
            lines = ["tick 0", "plexloc fit: warning: a", "WARNING: a logger's", "x/y.py:3: UserWarning: b",
                     "warning: c", "Warning: d", "[worker] plexloc fit: warning: e", "plexloc fit: warning: a"]
            ops.add_log(s, job, lines)  # counted as stored
            assert job.warning_count == 4
            job_id = job.id
            job = ops.submit(s, user, service.app.state.registry, ops.JobRequest("ticker", entry_point="tick"))
            s.flush()
            for line in lines:  # a log stored before the count (migration 0006): counted in the log
                s.add(JobLog(job_id=job.id, line=line))
            w = s.scalar(select(Worker).where(Worker.name == "w1"))
            w.can_run, w.last_seen = [["other", "1", "x"]], ops.now()
        with service.sessions().begin() as s:
            assert warning_counts(s, [job.id, job_id]) == {job.id: 4, job_id: 4}
            assert job_warnings(s, job.id) == job_warnings(s, job_id) == ["a", "UserWarning: b", "c"]
            note = ops.queue_note(s, s.get(Job, job.id), registry=service.app.state.registry)
            assert note.startswith("no worker seen in the last 10 min can run ticker 1.0 tick (w1: "), note
    finally:
        service.app.state.engine.dispose()


def test_admin_jobs_lists_every_users_open_jobs_with_why_one_waits(svc, capsys):
    """A lab admin asked why nothing ran had no view of the queue (``plexloc admin`` listed users, workers and
    usage; each job's note only in its user's ``plexloc status -v``). ``plexloc admin jobs`` lists the jobs not ended,
    every user's, oldest first, with the note of those no worker takes."""
    from sqlalchemy import select

    from plexloc.service.db import Worker

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c, Client(live.url, svc.other_token) as b:
        gpu = c.submit("ticker", entry_point="gpu")
        tick = b.submit("ticker", entry_point="tick")
        with svc.sessions().begin() as s:
            w = s.scalar(select(Worker).where(Worker.name == "w1"))
            w.hardware, w.last_seen = {"cpus": 2, "memory_mb": 8000, "gpus": 0}, time.time()
        assert main(["admin", "--data-dir", str(svc.settings.data_dir), "jobs"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split("\t")[:4] for line in lines] == [[gpu["id"], "alice", "ticker 1.0 gpu", "queued"],
                                                             [tick["id"], "bob", "ticker 1.0 tick", "queued"]], lines
        assert lines[0].split("\t")[-1].startswith("no worker seen in the last 10 min has the hardware this job asks "
                                                   "(1 GPU(s)"), lines[0]
        assert len(lines[1].split("\t")) == 7, lines[1]  # a job a worker can take: no note


def test_the_upgrade_counts_the_warnings_of_the_jobs_before_it(tmp_path):
    """Migration 0006 counts the warnings of the jobs already in the database (their logs), so that the list of jobs,
    which reads the count, names them too."""
    from alembic import command
    from sqlalchemy import text

    from service_support import database_at_0005

    engine, cfg = database_at_0005(tmp_path / "old.db", {
        "a": ["plexloc fit: warning: a", "tick", "warning: b", "x.py:1: UserWarning: c"], "b": []})
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        counts = dict(conn.execute(text("SELECT id, warning_count FROM jobs")).all())
    engine.dispose()
    assert counts == {"a": 3, "b": 0}
