"""``plexloc admin create-user NAME`` / ``create-worker NAME [--group G]`` / ``list`` / ``usage`` / ``jobs`` / ``disable`` /
``enable`` / ``rotate``."""

from __future__ import annotations

import argparse
import sys

from plexloc.cli.serve import add_server_options, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "admin",
        help="manage the job service's users and workers",
        description="Create users and workers of a plexloc service (each new token is printed once; only its "
        "hash is stored), list, disable or give them a new token. Works on the service's database directly.",
    )
    add_server_options(p)
    cmds = p.add_subparsers(dest="admin_command", metavar="ACTION")
    cmds.required = True
    u = cmds.add_parser("create-user", help="a new user; prints the token")
    u.add_argument("name", help="the user's name (unique)")
    u.add_argument("--email", default=None, help="for notifications")
    u.add_argument("--group", default=None, help="workers of this group take the user's jobs first")
    w = cmds.add_parser("create-worker", help="a new worker; prints the token")
    w.add_argument("name", help="the worker's name (unique)")
    w.add_argument("--group", default=None, help="this worker takes its group's users' jobs first")
    w.add_argument("--tags", default="", help="comma-separated labels (e.g. gpu,a100)")
    cmds.add_parser("list", help="users and workers")
    cmds.add_parser("usage", help="jobs and compute (CPU/GPU seconds) by user and by worker")
    cmds.add_parser("jobs", help="every user's jobs not ended yet, oldest first, with why a queued one is not taken")
    for action in ("disable", "enable", "rotate"):
        a = cmds.add_parser(action, help=f"{action} a user or a worker" + (" (prints the new token)" if action == "rotate" else ""))
        a.add_argument("kind", choices=("user", "worker"), help="user or worker")
        a.add_argument("name", help="its name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from sqlalchemy import select

    from plexloc.service import admin
    from plexloc.service.db import User, Worker, open_database

    settings = settings_from(args)
    engine, sessions = open_database(settings.database_url)
    try:
        with sessions.begin() as session:
            if args.admin_command == "create-user":
                _, token = admin.create_user(session, args.name, email=args.email, group=args.group)
                print(token)
            elif args.admin_command == "create-worker":
                tags = [t for t in args.tags.split(",") if t]
                _, token = admin.create_worker(session, args.name, group=args.group, tags=tags)
                print(token)
            elif args.admin_command == "rotate":
                token, released = admin.rotate_token(session, args.kind, args.name)
                print(token)
                if released:  # on stderr: the worker's jobs, which its process (with the old token) cannot finish
                    print(f"worker {args.name}: its job(s) {', '.join(released)} go back to the queue", file=sys.stderr)
            elif args.admin_command == "usage":
                for kind, table in admin.usage(session).items():
                    for name, u in sorted(table.items()):
                        print(f"{kind[:-1]}\t{name}\t{u['jobs']} jobs\t{u['cpu_seconds']:.1f} CPU s\t{u['gpu_seconds']:.1f} GPU s")
            elif args.admin_command == "jobs":
                rows = admin.open_jobs(session)
                if not rows:
                    print("no jobs queued or running")
                for j in rows:
                    age = f"{j['age_s'] / 3600:.1f} h" if j["age_s"] >= 3600 else f"{j['age_s'] / 60:.0f} min"
                    print(f"{j['id']}\t{j['user']}\t{j['application']} {j['version']} {j['entry_point']}\t{j['state']}\t"
                          f"worker {j['worker']}\tattempts {j['attempts']}\t{age} old" + (f"\t{j['note']}" if j["note"] else ""))
            elif args.admin_command in ("disable", "enable"):
                released = admin.set_active(session, args.kind, args.name, args.admin_command == "enable")
                if released:  # on stderr: the worker's jobs, which it cannot finish any more
                    print(f"{args.kind} {args.name} disabled; its job(s) {', '.join(released)} go back to the queue (the "
                          "worker stops them at its next ping)", file=sys.stderr)
            else:
                for u in session.scalars(select(User).order_by(User.name)):
                    print(f"user\t{u.name}\t{u.group or '-'}\t{'active' if u.active else 'disabled'}")
                for w in session.scalars(select(Worker).order_by(Worker.name)):
                    hw = w.hardware or {}
                    seen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w.last_seen)) + " UTC" if w.last_seen else "never"
                    print(f"worker\t{w.name}\t{w.group or '-'}\t{'active' if w.active else 'disabled'}\t{','.join(w.tags)}\t"
                          f"{hw.get('cpus', '?')} CPUs, {hw.get('memory_mb', '?')} MB, {hw.get('gpus', '?')} GPUs\tlast seen {seen}")
    finally:
        engine.dispose()
    return 0
