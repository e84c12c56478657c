"""`image-gateway`: keys (create, list, update, revoke), usage reports, database migrations, the queue
worker of jobs, and sweeping expired pictures.

Every failure is one line on stderr: exit 2 for a usage error (bad flag, bad value, unknown key id),
1 when the database cannot be used.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from app.config import ConfigError, Settings

EXIT_USAGE = 2
EXIT_FAILURE = 1
NONE_WORD = "none"  # `keys update ID --rpm none` removes a limit


class UsageError(Exception):
    """Bad command-line input: one line, exit 2."""


class Failure(Exception):
    """The command could not run (database down, schema outdated): one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints the whole usage; we print one line
        raise UsageError(message)


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-usd", dest="budget_usd", metavar="X")
    parser.add_argument("--rpm", metavar="N")
    parser.add_argument("--concurrency", metavar="N")
    parser.add_argument("--images-per-day", dest="images_per_day", metavar="N")
    parser.add_argument("--models", metavar="PATTERNS", help="comma-separated, e.g. 'gpt-image-*,local-*'")
    parser.add_argument("--expires-at", dest="expires_at", metavar="ISO8601")
    parser.add_argument("--answer-style", dest="answer_style", metavar="parts|openrouter")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="image-gateway", description="Manage the image gateway's client keys, usage and database.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keys = commands.add_parser("keys", help="client keys").add_subparsers(dest="action", required=True,
                                                                        parser_class=_Parser)
    create = keys.add_parser("create", help="make a key; its secret is printed once")
    create.add_argument("--name", required=True)
    _limit_flags(create)
    create.add_argument("--json", action="store_true")
    listing = keys.add_parser("list", help="every key, with its limits and spend")
    listing.add_argument("--json", action="store_true")
    change = keys.add_parser("update", help=f"change a key's name or limits ('{NONE_WORD}' removes a limit)")
    change.add_argument("id")
    change.add_argument("--name")
    _limit_flags(change)
    change.add_argument("--json", action="store_true")
    revoke = keys.add_parser("revoke", help="stop a key from working (within seconds, everywhere)")
    revoke.add_argument("id")
    revoke.add_argument("--json", action="store_true")

    usage = commands.add_parser("usage", help="requests, images and cost from the ledger")
    usage.add_argument("--by", default="key", choices=("key", "model", "provider", "day"))
    usage.add_argument("--since", default="7d", help="7d, 24h, 30m or an ISO 8601 date/time (default 7d)")
    usage.add_argument("--until", help="same forms as --since (default now)")
    usage.add_argument("--key", dest="key_id", metavar="ID")
    usage.add_argument("--model")
    usage.add_argument("--json", action="store_true")

    db = commands.add_parser("db", help="the database schema").add_subparsers(dest="action", required=True,
                                                                             parser_class=_Parser)
    db.add_parser("upgrade", help="apply the migrations this version needs (the Procfile's release phase)")

    commands.add_parser("worker", help="run jobs from the Redis queue (GATEWAY_REDIS_URL): the Procfile's worker")
    images = commands.add_parser("images", help="the picture store").add_subparsers(dest="action", required=True,
                                                                                  parser_class=_Parser)
    images.add_parser("sweep", help="delete expired pictures from a directory store now (cron)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = Settings.from_env()
        output = _run(args, settings)
    except UsageError as exc:
        print(f"image-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"image-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Failure as exc:
        print(f"image-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if output:
        print(output)
    return 0


def _database(settings: Settings, *, prepare: bool = True):
    from app.db import Database, DatabaseUnavailable
    from app.db import migrate

    db = Database(settings.database_url, pool_size=1)
    if prepare:
        try:
            migrate.prepare(db)
        except (DatabaseUnavailable, migrate.SchemaOutdated) as exc:
            raise Failure(str(exc)) from None
    return db


def _run(args: argparse.Namespace, settings: Settings) -> str:
    from app.db import DatabaseUnavailable

    if args.command == "images":
        from app.image_store.sweeper import sweep_configured
        return sweep_configured(settings.image_store)
    try:
        if args.command == "db":
            return _db_upgrade(settings)
        if args.command == "worker":
            return _worker(settings)
        db = _database(settings)
        try:
            if args.command == "usage":
                return _usage(db, args)
            return _keys(db, args)
        finally:
            db.dispose()
    except DatabaseUnavailable as exc:
        raise Failure(str(exc)) from None


def _db_upgrade(settings: Settings) -> str:
    from app.db import migrate
    from app.db.urls import describe

    db = _database(settings, prepare=False)
    try:
        revision = migrate.upgrade(db)
    finally:
        db.dispose()
    return f"database {describe(settings.database_url)} is at revision {revision}"


def _worker(settings: Settings) -> str:
    from app.jobs import worker

    if not settings.redis_url:
        raise UsageError("worker needs GATEWAY_REDIS_URL: without Redis, jobs run inside the web process "
                         "and no worker is needed")
    _database(settings).dispose()  # reachable and current (SQLite: brought up to date), or one line and exit 1
    worker.run(settings)
    return ""


def _key_fields(args: argparse.Namespace, creating: bool) -> dict[str, Any]:
    from app.keys.records import KeyFieldError, parse_key_fields

    names = ("name", "budget_usd", "rpm", "concurrency", "images_per_day", "models", "expires_at", "answer_style")
    raw = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        raw[name] = None if (not creating and name != "name" and value.strip().lower() == NONE_WORD) else value
    try:
        return parse_key_fields(raw, creating=creating)
    except KeyFieldError as exc:
        flag = "--" + exc.field.replace("_", "-") if exc.field else "the key"
        raise UsageError(f"{flag}: {exc.message}") from None


def _keys(db, args: argparse.Namespace) -> str:
    from app.keys.store import KeyStore, UnknownKey

    store = KeyStore(db)
    try:
        if args.action == "create":
            key, secret = store.create(_key_fields(args, creating=True))
            if args.json:
                return json.dumps({**key.to_dict(), "key": secret})
            return (f"created {key.id} ({key.name}){_limits_text(key)}\n"
                    f"secret (shown once, keep it now): {secret}")
        if args.action == "list":
            keys = store.list()
            if args.json:
                return json.dumps([key.to_dict() for key in keys])
            return _keys_table(keys)
        if args.action == "update":
            fields = _key_fields(args, creating=False)
            if not fields:
                raise UsageError("keys update: give at least one of --name, --budget-usd, --rpm, --concurrency, "
                                 "--images-per-day, --models, --expires-at, --answer-style")
            key = store.update(args.id, fields)
        else:
            key = store.revoke(args.id)
    except UnknownKey as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        return json.dumps(key.to_dict())
    verb = "revoked" if args.action == "revoke" else "updated"
    return f"{verb} {key.id} ({key.name}){_limits_text(key)}"


def _limits_text(key) -> str:
    limits = key.limits
    parts = [f"{name}={value}" for name, value in (
        ("budget_usd", _money(limits.budget_usd)), ("rpm", limits.rpm), ("concurrency", limits.concurrency),
        ("images_per_day", limits.images_per_day),
        ("models", ",".join(limits.models) or None),
        ("expires_at", limits.expires_at.isoformat() + "Z" if limits.expires_at else None),
        ("answer_style", key.answer_style)) if value is not None]
    return ": " + " ".join(parts) if parts else ": no limits"


def _money(amount) -> str | None:
    return None if amount is None else format(amount.normalize(), "f")


def _keys_table(keys) -> str:
    if not keys:
        return "no keys yet: image-gateway keys create --name NAME"
    rows = [("ID", "NAME", "KEY", "STATUS", "SPENT USD", "LIMITS")]
    for key in keys:
        rows.append((key.id, key.name, key.hint or "", key.status, f"{key.spent_usd:.4f}",
                     _limits_text(key).removeprefix(": ")))
    return _table(rows)


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _usage(db, args: argparse.Namespace) -> str:
    from app.usage.report import GROUPS, BadReportQuery, parse_moment, summarize

    try:
        since = parse_moment(args.since, "--since") if args.since else None
        until = parse_moment(args.until, "--until") if args.until else None
    except BadReportQuery as exc:
        raise UsageError(str(exc)) from None
    report = summarize(db, group_by=args.by, key_id=args.key_id, model=args.model, since=since, until=until)
    if args.json:
        return json.dumps(report)
    column = GROUPS[args.by]
    rows = [(column.upper(), "REQUESTS", "IMAGES", "COST USD", "ERRORS")]
    for item in report["data"]:
        rows.append((item[column] if item[column] is not None else "-", item["requests"], item["images"],
                     f"{item['cost_usd']:.4f}", item["errors"]))
    total = report["total"]
    rows.append(("TOTAL", total["requests"], total["images"], f"{total['cost_usd']:.4f}", total["errors"]))
    note = f"\n{total['unpriced']} request(s) made pictures at an unknown price (not in COST)" if total["unpriced"] else ""
    return _table(rows) + note


if __name__ == "__main__":
    sys.exit(main())
