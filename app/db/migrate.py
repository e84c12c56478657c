"""Schema migrations through Alembic, configured in code (no alembic.ini): `image-gateway db upgrade`,
and at start-up (SQLite upgrades itself; PostgreSQL must already be at the current revision)."""
from __future__ import annotations

from app.db import Database, DatabaseUnavailable

SCRIPT_LOCATION = "app.db:migrations"
_ADVISORY_LOCK = 7_400_210_001  # serialises two `db upgrade` runs on one PostgreSQL database


class SchemaOutdated(Exception):
    """PostgreSQL is reachable but its schema is not the one this version needs."""


def _config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head() -> str:
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext
    with db.read() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database) -> str:
    """Apply every migration not yet applied; returns the revision now in place. Safe to run concurrently."""
    from alembic import command
    from sqlalchemy import text

    config = _config()
    with db.write() as connection:  # SQLite: BEGIN IMMEDIATE makes a second migrator wait, then find nothing to do
        if db.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head()


def prepare(db: Database) -> None:
    """At start-up: SQLite is brought to the current schema; PostgreSQL is checked (reachable, current).

    Raises DatabaseUnavailable or SchemaOutdated with a message fit for one log line.
    """
    wanted = head()
    found = current(db)
    if found == wanted:
        return
    if db.dialect == "sqlite":
        upgrade(db)
        return
    raise SchemaOutdated(f"the database schema is at {found or 'nothing'} but this version needs {wanted}: "
                         "run `image-gateway db upgrade` (the Procfile's release phase does)")


def startup_problem(database_url: str) -> str | None:
    """gunicorn's master, before any worker starts: None when the database is ready, else one line saying why.

    Run once there, so several workers never race to migrate SQLite (they would be safe anyway).
    """
    from app.db.urls import describe

    db = Database(database_url, pool_size=1)
    try:
        prepare(db)
    except (DatabaseUnavailable, SchemaOutdated) as exc:
        return f"cannot use the database {describe(database_url)}: {exc}"
    finally:
        db.dispose()  # no connection may cross the fork into the workers
    return None


def main() -> int:
    """`python -m app.db.migrate`: the start-up check gunicorn's master runs in a child process.

    A child, because the check imports the database driver, and psycopg 3 chooses how it waits for
    the server when it is imported: imported in the master before the workers fork and patch for
    gevent, it would block their event loop. One line on stderr and exit 1 when not ready.
    """
    import sys

    from app.config import ConfigError, Settings

    try:
        problem = startup_problem(Settings.from_env().database_url)
    except ConfigError as exc:
        problem = str(exc)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["DatabaseUnavailable", "SchemaOutdated", "head", "current", "upgrade", "prepare"]
