"""The Procfile as a Heroku-style platform runs it: an environment of PORT and the config vars, nothing else."""
from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import CLIENT_KEY, chat_body
from tests.support.gateway_process import GatewayProcess

VENV_BIN = os.path.dirname(sys.executable)  # where the platform's build would have put gunicorn


def start_on_platform(directory: Path, **config_vars: str) -> GatewayProcess:
    """The Procfile's web command with exactly PORT, GATEWAY_API_KEYS, PATH, HOME and `config_vars`."""
    home = directory / "home"
    home.mkdir()
    process = GatewayProcess({}, directory / "gunicorn.log")
    process.env = {  # replaces GatewayProcess's test defaults (WEB_CONCURRENCY, PYTHONUNBUFFERED) entirely
        "PORT": str(process.port),
        "GATEWAY_API_KEYS": CLIENT_KEY,
        "PATH": os.pathsep.join([VENV_BIN, "/usr/bin", "/bin"]),
        "HOME": str(home),
        **config_vars,
    }
    return process.start()


def booted_workers(process: GatewayProcess, expected: int) -> int:
    """Workers that logged their boot, waiting a moment for the last ones (healthy means one is up)."""
    deadline = time.monotonic() + 10
    while process.log().count("Booting worker") < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.log().count("Booting worker")


@pytest.fixture(scope="module")
def dyno(tmp_path_factory):
    process = start_on_platform(tmp_path_factory.mktemp("dyno"))
    yield process
    process.stop()


@pytest.fixture
def headers() -> dict:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


def test_the_environment_is_only_port_and_keys(dyno):
    assert set(dyno.env) == {"PORT", "GATEWAY_API_KEYS", "PATH", "HOME"}
    log = dyno.log()
    assert f"Listening at: http://0.0.0.0:{dyno.port}" in log  # all interfaces: the platform's router connects
    assert booted_workers(dyno, 2) == 2  # the built-in default of WEB_CONCURRENCY
    assert "Traceback" not in log


def test_healthz_answers_without_a_key(dyno):
    response = requests.get(dyno.url + "/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_models_are_the_local_provider_only(dyno, headers):
    response = requests.get(dyno.url + "/v1/models", headers=headers, timeout=10)
    assert response.status_code == 200
    models = response.json()["data"]
    assert "local-image" in {m["id"] for m in models}
    assert {m["owned_by"] for m in models} == {"local"}  # no provider key set: no other provider is live
    assert requests.get(dyno.url + "/v1/models", timeout=10).status_code == 401


def test_an_image_from_the_local_provider(dyno, headers):
    response = requests.post(dyno.url + "/v1/chat/completions", json=chat_body(tool={"size": "64x64"}),
                             headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    url = response.json()["choices"][0]["message"]["images"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")


def test_web_concurrency_sets_the_workers_and_sigterm_stops_cleanly(tmp_path, headers):
    process = start_on_platform(tmp_path, WEB_CONCURRENCY="3")
    try:
        assert requests.get(process.url + "/v1/models", headers=headers, timeout=10).status_code == 200
        assert booted_workers(process, 3) == 3
    finally:
        started = time.monotonic()
        process.stop()  # SIGTERM, as the platform sends on every restart and deploy
    assert process.proc.returncode == 0
    assert time.monotonic() - started < 30  # the platform's grace period before SIGKILL
