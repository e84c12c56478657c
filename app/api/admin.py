"""/admin/v1: keys and usage for operators, behind GATEWAY_ADMIN_TOKEN (without it the routes do not exist)."""
from __future__ import annotations

from flask import Blueprint, current_app, request
from werkzeug.exceptions import NotFound

from app.auth import KeysUnavailable
from app.request_body import read_json_body
from app.db import DatabaseUnavailable
from app.core.errors import AuthenticationFailed, GatewayError, InvalidRequest
from app.errors import render
from app.jsonio import json_response
from app.keys.records import KeyFieldError, parse_key_fields
from app.keys.store import UnknownKey
from app.usage.report import BadReportQuery, parse_moment, summarize

bp = Blueprint("admin", __name__, url_prefix="/admin/v1")

ADMIN_ONLY = "The admin API needs Authorization: Bearer <GATEWAY_ADMIN_TOKEN>; client keys are refused here"
USAGE_PARAMS = ("key_id", "model", "since", "until", "group_by")


class KeyNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "key_not_found"


@bp.before_request
def require_admin_token() -> None:
    gateway = current_app.extensions["gateway"]
    if not gateway.settings.admin_token:
        raise NotFound()  # answered like any unknown path (app/errors.py)
    if not gateway.auth.is_admin(request.headers.get("Authorization")):
        raise AuthenticationFailed(ADMIN_ONLY)


def _fields(creating: bool) -> dict:
    try:
        return parse_key_fields(read_json_body(), creating=creating)
    except KeyFieldError as exc:
        raise InvalidRequest(str(exc), param=exc.field, code="invalid_key_field") from None


def _key_or_404(action):
    try:
        return action()
    except UnknownKey as exc:
        raise KeyNotFound(f"No key has the id {exc.key_id!r}", param="id") from None


@bp.post("/keys")
def create_key():
    """201 with the secret in `key`: the only time it is shown."""
    key, secret = current_app.extensions["gateway"].key_store.create(_fields(creating=True))
    return json_response({**key.to_dict(), "key": secret}, status=201)


@bp.get("/keys")
def list_keys():
    keys = current_app.extensions["gateway"].key_store.list()
    return json_response({"object": "list", "data": [key.to_dict() for key in keys]})


@bp.get("/keys/<key_id>")
def get_key(key_id: str):
    store = current_app.extensions["gateway"].key_store
    return json_response(_key_or_404(lambda: store.get(key_id)).to_dict())


@bp.patch("/keys/<key_id>")
def update_key(key_id: str):
    gateway = current_app.extensions["gateway"]
    fields = _fields(creating=False)
    key = _key_or_404(lambda: gateway.key_store.update(key_id, fields) if fields else gateway.key_store.get(key_id))
    gateway.auth.forget(key_id)
    return json_response(key.to_dict())


@bp.delete("/keys/<key_id>")
def revoke_key(key_id: str):
    """Revokes (the key stays listed with its usage); it stops working within seconds everywhere."""
    gateway = current_app.extensions["gateway"]
    key = _key_or_404(lambda: gateway.key_store.revoke(key_id))
    gateway.auth.forget(key_id)
    return json_response(key.to_dict())


@bp.get("/usage")
def usage():
    """Requests, images, cost and errors from the ledger, grouped (`group_by` key|model|provider|day)."""
    unknown = sorted(set(request.args) - set(USAGE_PARAMS))
    if unknown:
        raise InvalidRequest(f"Unknown query parameter {unknown[0]!r} (known: {', '.join(USAGE_PARAMS)})",
                             param=unknown[0])
    args = request.args
    try:
        since = parse_moment(args["since"], "since") if args.get("since") else None
        until = parse_moment(args["until"], "until") if args.get("until") else None
        report = summarize(current_app.extensions["gateway"].db, group_by=args.get("group_by") or "key",
                           key_id=args.get("key_id") or None, model=args.get("model") or None,
                           since=since, until=until)
    except BadReportQuery as exc:
        raise InvalidRequest(str(exc), param=exc.field) from None
    return json_response(report)



@bp.errorhandler(DatabaseUnavailable)
def database_down(exc: DatabaseUnavailable):
    """The database failing is a 503 naming it, not a 500."""
    return render(KeysUnavailable("The database is unavailable; try again shortly"))
