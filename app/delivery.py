"""Pictures delivered as links instead of base64 (DESIGN §8): stored for the client key that asked.

The view decides once per request (`for_request`); `deliver` then stores each finished picture
and gives it its `url`, which the answer renderers print in place of the base64. Streams store
each picture as its generation call finishes (`storing`); preview frames stay inline.
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from flask import current_app, request

from app.core import context
from app.core.errors import InvalidRequest
from app.core.result import GeneratedImage, ImageEvents, ImageResult
from app.image_store import ImageStore, StoreUnavailable, StoreUnusable, owner_of

log = logging.getLogger("gateway")

URL = "url"
B64_JSON = "b64_json"
INLINE_HEADER = "x-gateway-image-delivery"  # set to b64_json when pictures asked as links came inline
NO_STORE = ("URL delivery is off on this gateway: set GATEWAY_IMAGE_STORE to file:///dir or s3://bucket/prefix, "
            "or ask for b64_json")


@dataclass(frozen=True)
class LinkDelivery:
    """Where and for whom this request's pictures are stored, and the base their links start with."""

    store: ImageStore
    owner: str
    base_url: str

    def deliver(self, result: ImageResult) -> ImageResult:
        """Store every picture not stored yet and give it its link; a failed store leaves it inline."""
        for image in result.images:
            if image.url is None:
                self._store(image)
        return result

    def storing(self, events: ImageEvents) -> ImageEvents:
        """Events that store each finished call's pictures before the stream writes them."""
        return _StoringEvents(self, events)

    def _store(self, image: GeneratedImage) -> None:
        try:
            stored = self.store.put(self.owner, base64.b64decode(str(image.b64)), image.mime)
            image.url = self.store.link(stored, self.base_url)
        except StoreUnavailable as exc:
            # the picture is paid for: it goes out inline rather than being lost
            log.warning("image store unavailable, picture sent inline: %s", exc)


class _StoringEvents(ImageEvents):
    def __init__(self, delivery: LinkDelivery, events: ImageEvents):
        self._delivery = delivery
        self._events = events

    def partial(self, slot: int, partial_index: int, image: GeneratedImage) -> None:
        self._events.partial(slot, partial_index, image)

    def finished(self, slot: int, result: ImageResult) -> None:
        self._delivery.deliver(result)
        self._events.finished(slot, result)


def for_request(image_format: str | None, param: str, *, links_if_stored: bool = False) -> LinkDelivery | None:
    """None for base64 answers; for `url`, the delivery (400 naming the setting when no store can serve).

    `links_if_stored` (a job's run: its result is kept, and links keep it small) gives links whenever
    a usable store is configured, and base64 otherwise, whatever the request asked.
    """
    if image_format != URL and not links_if_stored:
        return None
    gateway = current_app.extensions["gateway"]
    store: ImageStore | None = gateway.images
    if store is None:
        if image_format != URL:
            return None
        raise InvalidRequest(NO_STORE, param=param, code="image_store_not_configured")
    try:
        store.check()
    except StoreUnusable as exc:
        if image_format != URL:
            return None
        raise InvalidRequest(str(exc), param=param, code="image_store_not_configured") from None
    base_url = gateway.settings.public_url or request.url_root.rstrip("/")
    return LinkDelivery(store=store, owner=owner_of(context.client_id()), base_url=base_url)


def inline_fallback_headers(delivery: LinkDelivery | None, result: ImageResult) -> dict[str, str]:
    """Say so when pictures asked for as links had to come inline (the store failed)."""
    if delivery is not None and any(image.url is None for image in result.images):
        return {INLINE_HEADER: B64_JSON}
    return {}
