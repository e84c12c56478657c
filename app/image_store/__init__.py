"""Where pictures delivered as links live (DESIGN §8): a directory, or S3-compatible object storage."""
from __future__ import annotations

from typing import TYPE_CHECKING

from app.image_store.base import ImageStore, StoredImage, StoreUnavailable, StoreUnusable, owner_of

if TYPE_CHECKING:
    from app.config import Settings

__all__ = ["ImageStore", "StoredImage", "StoreUnavailable", "StoreUnusable", "from_settings", "owner_of"]


def from_settings(settings: "Settings") -> ImageStore | None:
    """The store GATEWAY_IMAGE_STORE names (nothing is created or contacted yet), or None when it is off."""
    location = settings.image_store
    if location.kind == "file":
        from app.image_store.directory import DirectoryStore
        return DirectoryStore(location.path, settings.image_url_ttl, settings.url_signing_key,
                              settings.image_sweep_interval)
    if location.kind == "s3":
        from app.image_store.s3 import S3Store
        return S3Store(location.bucket, location.prefix, settings.s3_endpoint_url, settings.image_url_ttl)
    return None
