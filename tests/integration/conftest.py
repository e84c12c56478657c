"""Integration fixtures: fake upstreams on 127.0.0.1 and the real service under gunicorn (Procfile)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ARK_KEY, BFL_KEY, CLIENT_KEY, GEMINI_KEY, OPENAI_KEY, OPENROUTER_KEY, XAI_KEY
from tests.support.ark_fake import ark_images
from tests.support.bfl_fake import bfl_tasks
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.support.gemini_fake import gemini_generate
from tests.support.openai_fake import openai_images
from tests.support.openrouter_fake import openrouter_chat
from tests.support.xai_fake import xai_images

UPSTREAM_TIMEOUT = 3
STREAM_KEEPALIVE = 0.5
# base-URL paths the fakes are mounted under, as in production (".../v1", ".../api/v3", ...)
OPENAI_PATH, ARK_PATH, OPENROUTER_PATH = "/v1", "/api/v3", "/api/v1"


def _serve(handler):
    fake = FakeUpstream(default=handler).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def openai_server():
    yield from _serve(openai_images)


@pytest.fixture(scope="session")
def ark_server():
    yield from _serve(ark_images)


@pytest.fixture(scope="session")
def openrouter_server():
    yield from _serve(openrouter_chat)


@pytest.fixture(scope="session")
def gemini_server():
    yield from _serve(gemini_generate)


@pytest.fixture(scope="session")
def bfl_server():
    yield from _serve(bfl_tasks)


@pytest.fixture(scope="session")
def xai_server():
    yield from _serve(xai_images)


@pytest.fixture(scope="session")
def more_providers(bfl_server, xai_server) -> dict:
    """Environment of the providers that only the main service below needs."""
    return {"BFL_API_KEY": BFL_KEY, "BFL_BASE_URL": bfl_server.url,
            "XAI_API_KEY": XAI_KEY, "XAI_BASE_URL": xai_server.url + "/v1"}


def gateway_env(openai_server, ark_server, openrouter_server, gemini_server, **overrides) -> dict:
    """Every provider configured against its fake; private URLs allowed (the fakes are on loopback)."""
    return {
        "GATEWAY_API_KEYS": CLIENT_KEY,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": openai_server.url + OPENAI_PATH,
        "ARK_API_KEY": ARK_KEY,
        "ARK_BASE_URL": ark_server.url + ARK_PATH,
        "OPENROUTER_API_KEY": OPENROUTER_KEY,
        "OPENROUTER_BASE_URL": openrouter_server.url + OPENROUTER_PATH,
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": gemini_server.url,
        "GATEWAY_UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
        "GATEWAY_STREAM_KEEPALIVE_SECONDS": str(STREAM_KEEPALIVE),
        "GATEWAY_ALLOW_PRIVATE_URLS": "true",
        "GATEWAY_MAX_ATTEMPTS": "1",  # the fault tests here count single calls; retries have their own tests
        **overrides,
    }


@contextmanager
def running_gateway(log_path: Path, *servers, **overrides) -> Iterator[GatewayProcess]:
    """A service like the session's (every fake configured), with `overrides` in its environment; stopped after."""
    process = GatewayProcess(gateway_env(*servers, **overrides), log_path).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def gateway(openai_server, ark_server, openrouter_server, gemini_server, more_providers, tmp_path_factory):
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server, **more_providers)
    process = GatewayProcess(env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def strict_gateway(openai_server, ark_server, openrouter_server, gemini_server, tmp_path_factory):
    """A second service with GATEWAY_ALLOW_PRIVATE_URLS off, for download-guard tests."""
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server,
                      GATEWAY_ALLOW_PRIVATE_URLS="false")
    process = GatewayProcess(env, tmp_path_factory.mktemp("gunicorn-strict") / "gunicorn.log").start()
    yield process
    process.stop()


@pytest.fixture
def upstream(openai_server):
    """The fake OpenAI server, with nothing queued and nothing recorded."""
    openai_server.reset()
    return openai_server


@pytest.fixture
def ark(ark_server):
    ark_server.reset()
    return ark_server


@pytest.fixture
def openrouter(openrouter_server):
    openrouter_server.reset()
    return openrouter_server


@pytest.fixture
def gemini(gemini_server):
    gemini_server.reset()
    return gemini_server


@pytest.fixture
def flux(bfl_server):
    bfl_server.reset()
    return bfl_server


@pytest.fixture
def xai(xai_server):
    xai_server.reset()
    return xai_server


@pytest.fixture
def headers() -> dict:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture
def sdk(gateway):
    """The official OpenAI SDK pointed at the gateway (no SDK retries: each test sees one attempt)."""
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the session; `postgres.database()` gives an empty database."""
    from tests.support.postgres_server import running_postgres
    with running_postgres() as server:
        yield server
