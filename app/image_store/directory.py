"""The directory image store: files under one directory, linked with HMAC-signed expiring URLs.

The gateway serves the links itself (app/api/image_links.py), or hands the file to nginx with
X-Accel-Redirect. Several workers and instances can share the directory (a local disk for one
machine, a network file system for several): pictures, the signing key and the sweeper's lock
all live in it.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

from app.core.errors import GatewayError
from app.image_store import signed_links
from app.image_store.base import (NAME_PATTERN, OWNER_PATTERN, ImageStore, StoredImage, StoreUnavailable,
                                  StoreUnusable, new_image)
from app.image_store.sweeper import Sweeper, bucket_of

DIRECTORY_MODE = 0o750  # nginx's user may need to read (X-Accel-Redirect): give it the group
FILE_MODE = 0o640
LINK_ROUTE = "/images"  # the gateway route serving links: /images/<owner>/<name>?expires=&signature=


NO_PICTURE = "No picture at this address"


class LinkRefused(GatewayError):
    """A link that does not lead to a picture: 403 (bad signature, expired) or 404; the link route's answer."""


class LinkNotFound(LinkRefused):
    status = 404
    type = "invalid_request_error"
    code = "image_not_found"


class LinkInvalid(LinkRefused):
    """Incomplete, or signed by another key or for another picture or life."""

    status = 403
    type = "permission_error"
    code = "invalid_signature"


class LinkExpired(LinkRefused):
    status = 403
    type = "permission_error"
    code = "link_expired"


@dataclass(frozen=True)
class Found:
    """A picture a valid link leads to: what it is and where its file lies (also relative to the root)."""

    image: StoredImage
    path: str
    relative_path: str


class DirectoryStore(ImageStore):
    def __init__(self, root: str, ttl: float, signing_key: str | None, sweep_interval: float,
                 clock: Callable[[], float] = time.time):
        self.root = root
        self.ttl = ttl
        self.clock = clock
        self.sweeper = Sweeper(root, sweep_interval, clock)
        self._key = signing_key.encode() if signing_key else None
        self._ready = False
        self._lock = threading.Lock()

    def check(self) -> None:
        """Create the directory and the signing key on first use; StoreUnusable naming the setting if that fails."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                os.makedirs(self.root, mode=DIRECTORY_MODE, exist_ok=True)
                if not os.access(self.root, os.W_OK | os.X_OK):
                    raise PermissionError("not writable")
                if self._key is None:
                    self._key = signed_links.load_or_create_key(self.root)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise StoreUnusable(f"The image directory {self.root} cannot be used ({reason}): set "
                                    "GATEWAY_IMAGE_STORE to a writable file:///dir, or to s3://bucket/prefix") from None
            self._ready = True

    def put(self, owner: str, data: bytes, mime: str) -> StoredImage:
        try:
            self.check()
        except StoreUnusable as exc:
            raise StoreUnavailable(str(exc)) from None
        image = new_image(owner, mime, int(self.clock() + self.ttl))
        relative = self.relative_path(image)
        path = os.path.join(self.root, relative)
        temp = os.path.join(os.path.dirname(path), f".{image.image_id}.{secrets.token_hex(4)}.tmp")
        try:
            os.makedirs(os.path.dirname(path), mode=DIRECTORY_MODE, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)  # a reader sees the whole picture or none
        except OSError as exc:
            _remove(temp)
            raise StoreUnavailable(f"Could not write a picture under {self.root}: {exc.strerror or exc}") from None
        self.sweeper.ensure_running()
        return image

    def link(self, image: StoredImage, base_url: str) -> str:
        self.check()
        signature = signed_links.sign(self._key, image.key, image.expires)
        return f"{base_url}{LINK_ROUTE}/{image.key}?expires={image.expires}&signature={signature}"

    def open_link(self, owner: str, name: str, expires: str | None, signature: str | None) -> Found:
        """The picture a presented link leads to, or LinkRefused saying why not."""
        match = NAME_PATTERN.match(name)
        if not OWNER_PATTERN.match(owner) or match is None:
            raise LinkNotFound(NO_PICTURE)
        if not expires or not expires.isdigit() or not signature:
            raise LinkInvalid("This picture link is incomplete: it needs its expires and signature")
        self.check()
        image = StoredImage(owner=owner, image_id=match.group(1), ext=match.group(2), expires=int(expires))
        if not signed_links.valid(self._key, image.key, image.expires, signature):
            raise LinkInvalid("This picture link's signature is not valid")
        if image.expires <= self.clock():
            raise LinkExpired("This picture link has expired")
        relative = self.relative_path(image)
        path = os.path.join(self.root, relative)
        if not os.path.isfile(path):
            raise LinkNotFound("This picture is no longer stored")
        self.sweeper.ensure_running()
        return Found(image=image, path=path, relative_path=relative)

    @staticmethod
    def relative_path(image: StoredImage) -> str:
        return f"{bucket_of(image.expires)}/{image.owner}/{image.name}"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
