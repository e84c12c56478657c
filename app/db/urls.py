"""DATABASE_URL in the forms people paste (Heroku's postgres://) turned into the URL SQLAlchemy needs."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

DEFAULT_FILE = "gateway.db"
POSTGRES_DRIVER = "postgresql+psycopg"
_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")


class BadDatabaseUrl(ValueError):
    """DATABASE_URL cannot be used; the message says why without repeating any password."""


def database_url(raw: str, data_dir: str) -> str:
    """The SQLAlchemy URL: `raw` normalised, or SQLite at `<data_dir>/gateway.db` when `raw` is empty."""
    if not raw:
        return "sqlite:///" + os.path.abspath(os.path.join(data_dir, DEFAULT_FILE))
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise BadDatabaseUrl(f"is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        if not parts.hostname and "host=" not in parts.query:
            raise BadDatabaseUrl("names no host (expected postgres://user:password@host:5432/database)")
        if not parts.path.strip("/"):
            raise BadDatabaseUrl("names no database (expected postgres://user:password@host:5432/database)")
        del port
        return POSTGRES_DRIVER + raw[len(parts.scheme):]
    if scheme == "sqlite":
        if not raw.startswith("sqlite:///"):
            raise BadDatabaseUrl("a SQLite URL is sqlite:////absolute/path.db or sqlite:///relative/path.db")
        return raw
    shown = scheme or raw.split(":", 1)[0][:20]
    raise BadDatabaseUrl(f"has an unsupported scheme {shown!r} (use postgres://... or sqlite:///...)")


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def sqlite_path(url: str) -> str:
    """The database file of a sqlite:/// URL."""
    return url[len("sqlite:///"):].split("?", 1)[0]
