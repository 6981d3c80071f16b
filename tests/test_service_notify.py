"""E-mail notifications go through the outbox: queued with the job's end, sent later by the
notifier (here to a minimal SMTP server on loopback), at most once, retried after a failure."""

from __future__ import annotations

import socketserver
import threading

from service_support import make_service
from sqlalchemy import select

from plexloc.service import admin
from plexloc.service import jobs as ops
from plexloc.service.db import Outbox
from plexloc.service.notify import send_pending, smtp_sender


class _SMTP(socketserver.StreamRequestHandler):
    def handle(self):
        say = lambda line: self.wfile.write(line.encode() + b"\r\n")  # noqa: E731
        say("220 test")
        data, in_data = [], False
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    self.server.messages.append("\n".join(data))
                    data = []
                    say("250 ok")
                else:
                    data.append(line)
            elif line.upper().startswith(("EHLO", "HELO")):
                say("250 test")
            elif line.upper() == "DATA":
                in_data = True
                say("354 go")
            elif line.upper() == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")


def test_finished_jobs_are_mailed_once_through_the_outbox(tmp_path):
    svc = make_service(tmp_path)
    sessions = svc.sessions()
    with sessions.begin() as s:
        user, _ = admin.create_user(s, "carol", email="carol@lab.example")
        job = ops.submit(s, user, svc.app.state.registry, ops.JobRequest("ticker", entry_point="tick"))
        s.flush()
        ops.cancel(s, job)  # a final state: one notification queued in the same transaction
        job_id = job.id
    with sessions.begin() as s:
        (row,) = s.scalars(select(Outbox)).all()
        assert row.recipient == "carol@lab.example" and job_id in row.subject and row.sent_at is None

    # the SMTP server is down: nothing is lost, the row waits
    def refuse(*_):
        raise ConnectionRefusedError("no SMTP server")

    assert send_pending(sessions, refuse) == 0
    with sessions.begin() as s:
        row = s.scalars(select(Outbox)).one()
        assert row.sent_at is None and row.attempts == 1 and "no SMTP server" in row.last_error

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        send = smtp_sender("127.0.0.1", server.server_address[1], sender="plexloc@lab.example")
        assert send_pending(sessions, send) == 1
        assert send_pending(sessions, send) == 0  # at most once
    finally:
        server.shutdown()
        server.server_close()
    (msg,) = server.messages
    assert "To: carol@lab.example" in msg and f"plexloc job {job_id} cancelled" in msg
    with sessions.begin() as s:
        assert s.scalars(select(Outbox)).one().sent_at > 0
