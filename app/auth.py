"""Who is calling: `Authorization: Bearer <key>` against the static GATEWAY_API_KEYS (constant time) and
the database's keys (by SHA-256, through a short in-process cache); the admin token for /admin/v1."""
from __future__ import annotations

import hashlib
import hmac
import logging

from flask import current_app, g, request

from app.core.errors import AuthenticationFailed, GatewayError
from app.db import DatabaseUnavailable
from app.keys.cache import MISSING as NOT_CACHED
from app.keys.cache import KeyCache
from app.keys.records import KEY_PREFIX, ClientKey
from app.keys.store import KeyStore, UnknownKey
from app.usage import meter

log = logging.getLogger("gateway")

MISSING = "Missing client key: send Authorization: Bearer <key>"
WRONG = "Incorrect client key"
NO_KEYS = ("Incorrect client key: no GATEWAY_API_KEYS are set and no key made with `image-gateway keys create` "
           "matches")
REVOKED = "This client key was revoked"
EXPIRED = "This client key has expired"
ADMIN_ON_CLIENT_ROUTE = "The admin token is not a client key; use a client key on /v1"
_REFUSALS = {"revoked": REVOKED, "expired": EXPIRED}  # by ClientKey.status


class KeysUnavailable(GatewayError):
    """The key database is down: a key not seen recently cannot be checked, the admin API cannot answer."""

    status = 503
    type = "server_error"
    code = "database_unavailable"


def bearer(authorization: str | None) -> str | None:
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    return presented if scheme.lower() == "bearer" and presented else None


def _refuse_unusable(key: ClientKey) -> None:
    """AuthenticationFailed when the key was revoked or has expired."""
    refusal = _REFUSALS.get(key.status)
    if refusal is not None:
        raise AuthenticationFailed(refusal)


class Authenticator:
    """Turns an Authorization header into the ClientKey of the request, or raises AuthenticationFailed."""

    def __init__(self, static_keys: tuple[str, ...], store: KeyStore | None, cache: KeyCache | None = None,
                 admin_token: str | None = None):
        self._static = [(hashlib.sha256(key.encode()).digest(), ClientKey(id=f"env-{index}", name=f"env-{index}",
                                                                            static=True))
                        for index, key in enumerate(static_keys, start=1)]
        self.store = store
        self.cache = cache or KeyCache()
        self._admin = hashlib.sha256(admin_token.encode()).digest() if admin_token else None

    def authenticate(self, authorization: str | None) -> ClientKey:
        presented = bearer(authorization)
        if presented is None:
            raise AuthenticationFailed(MISSING)
        raw = presented.encode()
        binary = hashlib.sha256(raw).digest()
        found = None
        for known, key in self._static:  # every static key compared, never stopping early
            if hmac.compare_digest(binary, known):
                found = key
        if found is not None:
            return found
        if presented.startswith(KEY_PREFIX) and self.store is not None:
            found = self._stored(binary.hex())
        if found is None:
            if self._admin is not None and hmac.compare_digest(binary, self._admin):
                raise AuthenticationFailed(ADMIN_ON_CLIENT_ROUTE)
            raise AuthenticationFailed(WRONG if self._static else NO_KEYS)
        _refuse_unusable(found)
        return found

    def _stored(self, digest: str) -> ClientKey | None:
        cached = self.cache.get(digest)
        if cached is not NOT_CACHED:
            return cached  # type: ignore[return-value]
        try:
            key = self.store.find(digest)
        except DatabaseUnavailable as exc:
            stale = self.cache.get(digest, stale_ok=True)
            if stale is not NOT_CACHED:
                return stale  # type: ignore[return-value]
            log.warning("cannot check a client key: %s", exc)
            raise KeysUnavailable("The key database is unavailable; try again shortly") from None
        self.cache.put(digest, key)
        return key

    def key_by_id(self, key_id: str) -> ClientKey:
        """The key with this id as it is now (a job runs for the key that made it, which may have changed);
        AuthenticationFailed when it is gone, revoked or expired."""
        for _, key in self._static:
            if key.id == key_id:
                return key
        found = None
        if self.store is not None and not key_id.startswith("env-"):
            try:
                found = self.store.get(key_id)
            except UnknownKey:
                pass
        if found is None:
            raise AuthenticationFailed("The client key that made this job no longer exists")
        _refuse_unusable(found)
        return found

    def forget(self, key_id: str) -> None:
        """A key changed in this process: the next request reads it again."""
        self.cache.forget(key_id)

    def is_admin(self, authorization: str | None) -> bool:
        presented = bearer(authorization)
        if self._admin is None or presented is None:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._admin)


RUN_AS = "run_as_key"  # flask.g: the key a request the gateway makes itself (a job's run) is made as


def authenticate_request() -> ClientKey:
    """The request's ClientKey, authenticated once, kept as `flask.g.client_key` and on the usage meter.

    A job's run carries no secret: it is made as the key that submitted it (`RUN_AS`, set by the runner).
    """
    key = g.get("client_key")
    if key is None:
        run_as = g.get(RUN_AS)
        key = run_as or current_app.extensions["gateway"].auth.authenticate(request.headers.get("Authorization"))
        g.client_key = key
        meter.begin(key=key, request_counted=run_as is not None)
    return key
