"""Client authentication: `Authorization: Bearer <key>` against GATEWAY_API_KEYS, in constant time."""
from __future__ import annotations

import hashlib
import hmac

from app.core.errors import AuthenticationFailed

NO_KEYS = "No client keys are configured: set GATEWAY_API_KEYS (comma-separated) to enable the API"
MISSING = "Missing client key: send Authorization: Bearer <key>"
WRONG = "Incorrect client key"


class KeyChecker:
    """Compares digests of the presented key with every configured key, never stopping early."""

    def __init__(self, keys: tuple[str, ...]):
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def check(self, authorization: str | None) -> None:
        if not self._digests:
            raise AuthenticationFailed(NO_KEYS)
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthenticationFailed(MISSING)
        digest = hashlib.sha256(presented.strip().encode()).digest()
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise AuthenticationFailed(WRONG)
