"""HMAC-signed, expiring picture links for the directory store: the signature covers the picture and the expiry."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

KEY_FILE = ".url-signing-key"
KEY_FILE_MODE = 0o600


def sign(key: bytes, path: str, expires: int) -> str:
    """base64url of HMAC-SHA256 over `owner/name` and the expiry (unix seconds)."""
    mac = hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def valid(key: bytes, path: str, expires: int, signature: str) -> bool:
    """Constant-time check of a presented signature."""
    return hmac.compare_digest(sign(key, path, expires).encode(), signature.encode("utf-8", "replace"))


def load_or_create_key(directory: str) -> bytes:
    """The key kept in the store's own directory, made once by whichever process comes first.

    Every worker and every instance that shares the directory (and so can serve its pictures)
    reads the same key; the file is created complete or not at all (written aside, then linked).
    """
    path = os.path.join(directory, KEY_FILE)
    if not os.path.exists(path):
        temp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another process won: use its key
        finally:
            os.unlink(temp)
    with open(path, encoding="ascii") as handle:
        key = handle.read().strip()
    if len(key) < 32:
        raise OSError(f"{path} holds no usable key")
    return key.encode("ascii")
