"""The README's quick start as a newcomer runs it: the service on loopback, the curl pipeline that saves
a picture or prints the API's error (never a Python traceback and an empty file), and a start-up log
that says what is live and where to look."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.gateway_process import ROOT, GatewayProcess

README = (ROOT / "README.md").read_text()


def quick_start_blocks() -> list[str]:
    section = README[README.index("## Quick start"):README.index("## Playground")]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def quick_start_gateway(tmp_path_factory):
    """The service as the quick start starts it: the local provider only, the client key dev-key."""
    process = GatewayProcess({"GATEWAY_API_KEYS": "dev-key"}, tmp_path_factory.mktemp("quick-start") / "gunicorn.log")
    process.start()
    yield process
    process.stop()


def run_pipeline(gateway: GatewayProcess, cwd: Path, key: str = "dev-key") -> subprocess.CompletedProcess:
    pipeline = quick_start_blocks()[1].replace("127.0.0.1:8000", f"127.0.0.1:{gateway.port}")
    pipeline = pipeline.replace("Bearer dev-key", f"Bearer {key}")
    return subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_the_first_command_binds_loopback_and_the_procfile_keeps_port():
    first = quick_start_blocks()[0]
    assert "--bind 127.0.0.1:8000" in first and "GATEWAY_API_KEYS=dev-key" in first
    assert "--bind" not in (ROOT / "Procfile").read_text()


def test_the_pipeline_saves_the_picture(quick_start_gateway, tmp_path):
    done = run_pipeline(quick_start_gateway, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "saved image.png"
    assert (tmp_path / "image.png").read_bytes().startswith(b"\x89PNG")


def test_the_pipeline_shows_the_apis_error_and_writes_no_file(quick_start_gateway, tmp_path):
    done = run_pipeline(quick_start_gateway, tmp_path, key="not-the-key")
    assert done.returncode != 0
    assert "the gateway answered:" in done.stderr and "invalid_api_key" in done.stderr
    assert "Traceback" not in done.stderr and "KeyError" not in done.stderr
    assert not (tmp_path / "image.png").exists()


def test_the_start_up_log_says_what_is_live_and_where_the_playground_is(quick_start_gateway):
    log = quick_start_gateway.log()
    assert '"message": "live providers: local"' in log
    assert f"playground at http://127.0.0.1:{quick_start_gateway.port}/" in log
    assert "no client key is configured" not in log


@pytest.mark.parametrize("name, value", [("GATEWAY_LOG_LEVEL", "LOUD"), ("PORT", "99999"), ("GATEWAY_THREADS", "inf")])
def test_a_bad_setting_stops_the_service_with_one_line_naming_it(tmp_path, name, value):
    process = GatewayProcess({"GATEWAY_API_KEYS": "dev-key", name: value}, tmp_path / "gunicorn.log")
    with pytest.raises(RuntimeError, match="exited early"):
        process.start(timeout=15)
    assert process.proc.returncode != 0
    lines = process.log().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"image-gateway: {name} must be "), lines
