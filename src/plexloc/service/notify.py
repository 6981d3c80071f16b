"""Notifications: e-mails queued in the ``outbox`` table (in the same transaction as the job's end)
and sent by a background task, never inside a request. At most once: a row is claimed before it is
sent, so two server processes never send it twice; a failure puts it back for a later try."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from email.message import EmailMessage

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from plexloc.service.db import Outbox, now

log = logging.getLogger("plexloc.service.notify")
MAX_ATTEMPTS = 5

Sender = Callable[[EmailMessage], None]


def smtp_sender(host: str, port: int = 25, *, sender: str, user: str | None = None, password: str | None = None,
                starttls: bool = False, timeout: float = 30.0) -> Callable[[str, str, str], None]:
    """Send one message through an SMTP server."""

    def send(recipient: str, subject: str, body: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, recipient, subject
        msg.set_content(body)
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            if starttls:
                smtp.starttls()
            if user:
                smtp.login(user, password or "")
            smtp.send_message(msg)

    return send


def send_pending(sessions: sessionmaker, send: Callable[[str, str, str], None], *, limit: int = 50) -> int:
    """Send up to ``limit`` queued notifications; returns how many went out."""
    with sessions.begin() as s:
        ids = s.scalars(
            select(Outbox.id).where(Outbox.sent_at.is_(None), Outbox.attempts < MAX_ATTEMPTS).order_by(Outbox.id).limit(limit)
        ).all()
    sent = 0
    for oid in ids:
        with sessions.begin() as s:  # claim: sent_at = 0 marks "being sent"
            claimed = s.execute(
                update(Outbox).where(Outbox.id == oid, Outbox.sent_at.is_(None))
                .values(sent_at=0.0, attempts=Outbox.attempts + 1).execution_options(synchronize_session=False)
            ).rowcount
            row = s.get(Outbox, oid) if claimed else None
            message = (row.recipient, row.subject, row.body) if row else None
        if message is None:
            continue
        try:
            send(*message)
        except Exception as err:  # SMTP down, refused recipient: try again later
            log.warning("notification %s not sent: %s", oid, err)
            with sessions.begin() as s:
                s.execute(update(Outbox).where(Outbox.id == oid).values(sent_at=None, last_error=str(err)[:2000]))
            continue
        with sessions.begin() as s:
            s.execute(update(Outbox).where(Outbox.id == oid).values(sent_at=now()))
        sent += 1
    return sent
