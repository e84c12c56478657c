"""GET /images/<owner>/<name>?expires=&signature=: pictures of the directory store, by signed link.

No Authorization: the signed link is the permission. The gateway checks the link and then sends
the file itself, or, with GATEWAY_ACCEL_REDIRECT_PREFIX set, tells nginx which file to send
(X-Accel-Redirect) so the picture's bytes never pass through Python.
"""
from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, request, send_file

from app.core.errors import GatewayError
from app.image_store.directory import LINK_ROUTE, DirectoryStore, LinkRefused

bp = Blueprint("image_links", __name__)


class LinkError(GatewayError):
    """A picture link that leads nowhere: bad signature or expired (403), or no such picture (404)."""


@bp.get(f"{LINK_ROUTE}/<owner>/<name>")
def picture(owner: str, name: str) -> Response:
    """The picture a valid link names, with its type, length, caching and ETag."""
    gateway = current_app.extensions["gateway"]
    store = gateway.images
    if not isinstance(store, DirectoryStore):
        raise _refused(LinkRefused("No picture at this address", 404, "image_not_found"))
    try:
        found = store.open_link(owner, name, request.args.get("expires"), request.args.get("signature"))
    except LinkRefused as exc:
        raise _refused(exc) from None
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


def _refused(exc: LinkRefused) -> LinkError:
    error = LinkError(exc.message, code=exc.code)
    error.status = exc.status
    error.type = "permission_error" if exc.status == 403 else "invalid_request_error"
    return error
