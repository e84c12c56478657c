"""GET /: the playground page — one template, one static script, one stylesheet.

The page needs no key and holds no secret: the client key is typed into it and kept in the
browser's sessionStorage, and the script sends it only as `Authorization: Bearer` on its own
calls to this origin's API. A strict Content-Security-Policy allows nothing but this origin's
script and stylesheet, images from this origin or data:/blob: URLs, and fetches to this origin.
"""
from flask import Blueprint, Response, render_template, request

bp = Blueprint("playground", __name__)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@bp.get("/")
def page() -> Response:
    """The playground; everything it does happens in the browser, through the public API."""
    response = Response(render_template("playground.html"), mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


@bp.after_app_request
def nosniff_static(response: Response) -> Response:
    """The page's script and stylesheet must be taken for exactly what their Content-Type says."""
    if request.endpoint == "static":
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
