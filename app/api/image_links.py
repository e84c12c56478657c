"""GET /images/<owner>/<name>?expires=&signature=: pictures of the directory store, by signed link.

No Authorization: the signed link is the permission. The gateway checks the link and then sends
the file itself, or, with GATEWAY_ACCEL_REDIRECT_PREFIX set, tells nginx which file to send
(X-Accel-Redirect) so the picture's bytes never pass through Python.
"""
from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, request, send_file

from app.image_store.directory import LINK_ROUTE, NO_PICTURE, DirectoryStore, LinkNotFound

bp = Blueprint("image_links", __name__)


@bp.get(f"{LINK_ROUTE}/<owner>/<name>")
def picture(owner: str, name: str) -> Response:
    """The picture a valid link names, with its type, length, caching and ETag."""
    gateway = current_app.extensions["gateway"]
    store = gateway.images
    if not isinstance(store, DirectoryStore):
        raise LinkNotFound(NO_PICTURE)
    found = store.open_link(owner, name, request.args.get("expires"), request.args.get("signature"))
    remaining = max(0, math.floor(found.image.expires - store.clock()))
    headers = {
        "Cache-Control": f"private, max-age={remaining}, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    prefix = gateway.settings.accel_redirect_prefix
    if prefix:
        # nginx sends the file (with its own Content-Length and ETag) and keeps these headers
        return Response(status=200, mimetype=found.image.mime,
                        headers={**headers, "X-Accel-Redirect": prefix + found.relative_path})
    response = send_file(found.path, mimetype=found.image.mime, etag=found.image.image_id, conditional=True,
                         max_age=None, last_modified=None)
    response.headers.update(headers)
    return response
