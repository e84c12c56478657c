"""/admin/v1: keys made, listed, changed and revoked by the operator; usage read from the ledger."""
import pytest

from tests.conftest import CLIENT_KEY, chat_body

ADMIN_TOKEN = "admin-token-for-tests-77f1"


@pytest.fixture
def admin_app(make_app):
    return make_app(GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN)


@pytest.fixture
def admin(admin_app):
    client = admin_app.test_client()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    class Admin:
        def __getattr__(self, method):
            return lambda path, **kwargs: getattr(client, method)(path, headers=headers, **kwargs)
    return Admin()


def test_without_the_admin_token_setting_the_routes_do_not_exist(client):
    response = client.get("/admin/v1/keys", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("header", [f"Bearer {CLIENT_KEY}", None, "Bearer wrong"])
def test_client_keys_and_strangers_are_refused_with_401(admin_app, header):
    headers = {"Authorization": header} if header else {}
    response = admin_app.test_client().get("/admin/v1/keys", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_api_key"
    assert "GATEWAY_ADMIN_TOKEN" in response.json["error"]["message"]


def test_the_admin_token_is_refused_on_v1(admin_app):
    response = admin_app.test_client().get("/v1/models", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_api_key"
    assert "admin token" in response.json["error"]["message"]


def test_create_shows_the_secret_once_and_the_key_works_on_v1(admin, admin_app):
    response = admin.post("/admin/v1/keys", json={"name": "alice", "rpm": 5, "budget_usd": "2.50",
                                                   "models": ["local-*"], "answer_style": "openrouter"})
    assert response.status_code == 201
    created = response.json
    assert created["key"].startswith("sk-gw-") and created["id"].startswith("key_")
    assert (created["name"], created["rpm"], created["budget_usd"], created["models"], created["answer_style"]) == (
        "alice", 5, 2.5, ["local-*"], "openrouter")
    listed = admin.get("/admin/v1/keys").json["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in str(listed) and created["key"] not in admin.get(f"/admin/v1/keys/{created['id']}").text
    client = admin_app.test_client()
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 200


def test_the_secret_is_stored_as_sha256_only(admin, admin_app):
    import hashlib

    from sqlalchemy import text
    secret = admin.post("/admin/v1/keys", json={"name": "bob"}).json["key"]
    with admin_app.extensions["gateway"].db.read() as connection:
        row = connection.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert secret not in str(dict(row))
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


def test_patch_changes_limits_and_null_clears_one(admin):
    key_id = admin.post("/admin/v1/keys", json={"name": "carol", "rpm": 5, "concurrency": 2}).json["id"]
    changed = admin.patch(f"/admin/v1/keys/{key_id}", json={"rpm": None, "images_per_day": 40}).json
    assert (changed["rpm"], changed["concurrency"], changed["images_per_day"]) == (None, 2, 40)
    assert admin.get(f"/admin/v1/keys/{key_id}").json["images_per_day"] == 40


def test_delete_revokes_at_once_in_this_process(admin, admin_app):
    created = admin.post("/admin/v1/keys", json={"name": "dave"}).json
    client = admin_app.test_client()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/v1/models", headers=headers).status_code == 200
    revoked = admin.delete(f"/admin/v1/keys/{created['id']}")
    assert revoked.status_code == 200 and revoked.json["revoked"] is True
    response = client.get("/v1/models", headers=headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_api_key"
    assert "revoked" in response.json["error"]["message"]


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": "x", "budget_usd": -1}, "budget_usd"),
    ({"name": "x", "budget_usd": "lots"}, "budget_usd"),
    ({"name": "x", "rpm": 0}, "rpm"),
    ({"name": "x", "concurrency": 1.5}, "concurrency"),
    ({"name": "x", "images_per_day": "many"}, "images_per_day"),
    ({"name": "x", "models": "gpt image"}, "models"),
    ({"name": "x", "models": []}, "models"),
    ({"name": "x", "expires_at": "next week"}, "expires_at"),
    ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "x", "answer_style": "html"}, "answer_style"),
    ({"name": "x", "colour": "blue"}, "colour"),
    ({"name": "   "}, "name"),
])
def test_bad_fields_are_400_naming_the_field(admin, body, field):
    response = admin.post("/admin/v1/keys", json=body)
    assert response.status_code == 400
    error = response.json["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == field and field in error["message"]


def test_an_unknown_field_is_answered_with_every_known_one(admin):
    response = admin.post("/admin/v1/keys", json={"name": "x", "colour": "blue"})
    assert response.json["error"]["message"] == ("colour: is not a key field (known: name, rpm, concurrency, "
                                                 "images_per_day, budget_usd, models, expires_at, answer_style)")


def test_a_body_that_is_not_an_object_is_400(admin):
    response = admin.post("/admin/v1/keys", json=["name"])
    assert response.status_code == 400 and response.json["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_an_unknown_key_id_is_404(admin, method):
    kwargs = {"json": {"rpm": 3}} if method == "patch" else {}
    response = getattr(admin, method)("/admin/v1/keys/key_0000000000000000", **kwargs)
    assert response.status_code == 404 and response.json["error"]["code"] == "key_not_found"


def test_usage_is_empty_then_refuses_bad_parameters(admin):
    empty = admin.get("/admin/v1/usage?group_by=model&since=7d").json
    assert empty == {"data": [], "total": {"requests": 0, "images": 0, "cost_usd": 0.0, "errors": 0, "unpriced": 0}}
    for query, param in (("group_by=colour", "group_by"), ("since=yesterday", "since"), ("until=soon", "until"),
                         ("colour=blue", "colour")):
        response = admin.get(f"/admin/v1/usage?{query}")
        assert response.status_code == 400 and response.json["error"]["param"] == param


def test_static_keys_are_env_1_env_2_without_limits(make_app):
    from flask import g
    app = make_app(GATEWAY_API_KEYS="first, second")
    seen = []

    @app.after_request
    def remember(response):
        seen.append(g.get("client_key"))
        return response
    client = app.test_client()
    client.post("/v1/chat/completions", json=chat_body(), headers={"Authorization": "Bearer second"})
    client.get("/v1/models", headers={"Authorization": "Bearer first"})
    assert [(k.id, k.static, k.limits.counted) for k in seen] == [("env-2", True, False), ("env-1", True, False)]
