"""Fixtures shared by unit and integration tests: apps built from dicts, client keys, request bodies."""
from __future__ import annotations

import shutil

import pytest
from hypothesis import settings as hypothesis_settings

from app import create_app

# no example database in the working tree: the suite writes only into its own temporary directories
hypothesis_settings.register_profile("gateway", database=None)
hypothesis_settings.load_profile("gateway")


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin has made the session's directory factory
def pytest_configure(config):
    """hypothesis keeps caches (constants, unicode tables) in ./.hypothesis unless told otherwise: they go
    into the session's temporary directory, before collection writes the first of them."""
    import hypothesis.configuration
    hypothesis.configuration.set_hypothesis_home_dir(config._tmp_path_factory.mktemp("hypothesis"))

CLIENT_KEY = "gw-client-key-4f1b2c"
OPENAI_KEY = "sk-test-provider-secret-9a8b7c6d5e"
OPENAI_BASE = "https://openai.test/v1"
ARK_KEY = "ark-test-provider-secret-1f2e3d4c"
OPENROUTER_KEY = "sk-or-v1-test-provider-secret-5b6a"
GEMINI_KEY = "AIzaSyTest-provider-secret-7c8d9e0f1a2b"
ARK_BASE = "https://ark.test/api/v3"
OPENROUTER_BASE = "https://openrouter.test/api/v1"
GEMINI_BASE = "https://gemini.test"
BFL_KEY = "bfl-test-provider-secret-0a1b2c3d"
XAI_KEY = "xai-test-provider-secret-4e5f6a7b"


def chat_body(prompt: str = "a paper lantern shaped like a fox", *, model: str = "local-image",
              modalities=("image", "text"), tool: dict | None = None, **extra) -> dict:
    """A chat-completions body asking for an image: modalities form, tool form, or both."""
    body: dict = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if modalities:
        body["modalities"] = list(modalities)
    if tool is not None:
        body["tools"] = [{"type": "image_generation", "image_generation": tool}]
    body.update(extra)
    return body


@pytest.fixture(scope="session")
def database_template(tmp_path_factory) -> str:
    """A SQLite file migrated once per session; each app gets a copy (migrating costs ~0.3 s, copying ~1 ms)."""
    from app.db import Database, migrate

    path = tmp_path_factory.mktemp("database-template") / "gateway.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return str(path)


@pytest.fixture
def database_url(database_template, tmp_path) -> str:
    """A fresh, migrated SQLite database of this test's own."""
    path = tmp_path / "gateway.db"
    shutil.copyfile(database_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings_env(tmp_path, database_url) -> dict:
    return {"GATEWAY_DATA_DIR": str(tmp_path / "data"),  # the app's files (pictures...) never land in the repo
            "GATEWAY_IDEMPOTENCY_DIR": str(tmp_path / "idempotency"),  # nor in the shared temp directory
            "DATABASE_URL": database_url,
            "GATEWAY_API_KEYS": CLIENT_KEY, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": OPENAI_BASE,
            "ARK_API_KEY": ARK_KEY, "ARK_BASE_URL": ARK_BASE, "OPENROUTER_API_KEY": OPENROUTER_KEY,
            "OPENROUTER_BASE_URL": OPENROUTER_BASE, "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": GEMINI_BASE,
            # one attempt per call unless a test is about retries: every other test counts exact calls
            "GATEWAY_MAX_ATTEMPTS": "1"}


@pytest.fixture
def make_app(settings_env):
    def _make(**overrides):
        return create_app({**settings_env, **overrides})
    return _make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth() -> dict:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture
def post_chat(client, auth):
    def _post(body, path="/v1/chat/completions", headers=None):
        return client.post(path, json=body, headers={**auth, **(headers or {})})
    return _post
