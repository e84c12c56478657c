"""What every image store offers: keep a client's picture until it expires, and give a link to it."""
from __future__ import annotations

import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

from app.media import EXTENSION_OF_MIME

MIME_OF_EXTENSION = {ext: mime for mime, ext in EXTENSION_OF_MIME.items()}
OWNER_PATTERN = re.compile(r"^[0-9a-f]{24}$")
NAME_PATTERN = re.compile(r"^([A-Za-z0-9_-]{22})\.(png|jpg|webp|gif)$")


class StoreUnavailable(Exception):
    """Storing a picture failed just now (disk full, bucket unreachable); the message holds no secret."""


class StoreUnusable(Exception):
    """The configured store cannot work at all; the message says which setting to change."""


@dataclass(frozen=True)
class StoredImage:
    """A kept picture: whose it is, its name, and when it (and every link to it) expires."""

    owner: str
    image_id: str
    ext: str
    expires: int  # unix seconds

    @property
    def name(self) -> str:
        return f"{self.image_id}.{self.ext}"

    @property
    def key(self) -> str:
        """`owner/name`: the picture's address inside the store, and what a link signs."""
        return f"{self.owner}/{self.name}"

    @property
    def mime(self) -> str:
        return MIME_OF_EXTENSION[self.ext]


class ImageStore(ABC):
    """A place for delivered pictures; one per app, shared by its threads."""

    ttl: float

    @abstractmethod
    def check(self) -> None:
        """Raise StoreUnusable when the store cannot work (checked before a picture is paid for)."""

    @abstractmethod
    def put(self, owner: str, data: bytes, mime: str) -> StoredImage:
        """Keep `data` for `owner` until now + ttl; StoreUnavailable when that fails."""

    @abstractmethod
    def link(self, image: StoredImage, base_url: str) -> str:
        """A URL anyone holding it can fetch the picture with, until the picture expires."""


def owner_of(client_id: str) -> str:
    """The store's name for a client key: a digest of its id, safe in paths and object keys."""
    return hashlib.sha256(b"image-owner\0" + client_id.encode()).hexdigest()[:24]


def new_image(owner: str, mime: str, expires: int) -> StoredImage:
    """A fresh, unguessable name for a picture of this type."""
    return StoredImage(owner=owner, image_id=secrets.token_urlsafe(16), ext=EXTENSION_OF_MIME[mime], expires=expires)
