"""What the service says once it listens: the providers that are live, where the playground is, and
a warning when no client key can call the API (the first thing a newcomer trips over)."""
from __future__ import annotations

import logging
from typing import Iterable

from app.config import Settings
from app.providers.registry import PROVIDERS

log = logging.getLogger("gateway")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def live_providers(settings: Settings) -> list[str]:
    """Providers with a channel that can be called (a key, or none needed), routing-file channels included."""
    live = {name for name, cls in PROVIDERS.items()
            if name in settings.providers and cls.is_live(settings.providers[name])}
    live |= {spec.provider for spec in settings.routing.channels.values()} if settings.routing else set()
    return [name for name in PROVIDERS if name in live]


def playground_urls(addresses: Iterable) -> list[str]:
    """http URLs of the page for the TCP addresses gunicorn listens on (a unix socket has none)."""
    urls = []
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host = "127.0.0.1" if address[0] in ANY_ADDRESS else address[0]
            urls.append(f"http://{f'[{host}]' if ':' in host else host}:{address[1]}/")
    return urls


def announce(settings: Settings, addresses: Iterable, database_keys: int | None) -> None:
    """Log the start-up summary; `database_keys` is the number of usable database keys (None: unknown)."""
    log.info("live providers: %s", ", ".join(live_providers(settings)))
    for url in playground_urls(addresses):
        log.info("playground at %s; the API at %sv1", url, url)
    if not settings.api_keys and not database_keys:
        log.warning("no client key is configured: every /v1 call will be answered 401. Set GATEWAY_API_KEYS "
                    "(comma-separated) or create a key with `image-gateway keys create --name NAME`")


def usable_database_keys(settings: Settings) -> int | None:
    """How many database keys can call the API now; None when the database cannot say."""
    from app.db import Database
    from app.keys.store import KeyStore
    db = Database(settings.database_url)
    try:
        return sum(1 for key in KeyStore(db).list() if key.status == "active")
    except Exception:  # the summary must never stop the service; the database check is on_starting's job
        return None
    finally:
        db.dispose()
