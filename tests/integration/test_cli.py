"""`image-gateway` run as users run it: a subprocess, one line per failure, exit 2 for bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "image-gateway")


@pytest.fixture
def cli(tmp_path):
    env = {"PATH": os.environ["PATH"], "GATEWAY_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], env={**env, **extra_env}, capture_output=True, text=True, timeout=60)
    return run


def test_create_json_list_update_revoke(cli):
    created = cli("keys", "create", "--name", "team-a", "--budget-usd", "12.5", "--rpm", "30", "--concurrency", "2",
                  "--images-per-day", "100", "--models", "gpt-image-*,local-*", "--expires-at", "2099-01-01",
                  "--answer-style", "openrouter", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("sk-gw-") and key["id"].startswith("key_")
    assert {k: key[k] for k in ("name", "budget_usd", "rpm", "concurrency", "images_per_day", "models",
                                "expires_at", "answer_style")} == {
        "name": "team-a", "budget_usd": 12.5, "rpm": 30, "concurrency": 2, "images_per_day": 100,
        "models": ["gpt-image-*", "local-*"], "expires_at": "2099-01-01T00:00:00Z", "answer_style": "openrouter"}

    listed = cli("keys", "list")
    assert listed.returncode == 0 and key["id"] in listed.stdout and "team-a" in listed.stdout
    assert key["key"] not in listed.stdout  # the secret is shown once, at creation
    assert json.loads(cli("keys", "list", "--json").stdout)[0]["id"] == key["id"]

    updated = cli("keys", "update", key["id"], "--rpm", "none", "--budget-usd", "20", "--json")
    assert updated.returncode == 0, updated.stderr
    assert (json.loads(updated.stdout)["rpm"], json.loads(updated.stdout)["budget_usd"]) == (None, 20.0)

    revoked = cli("keys", "revoke", key["id"])
    assert revoked.returncode == 0 and revoked.stdout.startswith(f"revoked {key['id']}")
    assert "revoked" in cli("keys", "list").stdout


def test_create_prints_the_secret_once_in_plain_text(cli):
    result = cli("keys", "create", "--name", "plain")
    assert result.returncode == 0
    secret_lines = [line for line in result.stdout.splitlines() if "sk-gw-" in line]
    assert len(secret_lines) == 1 and "shown once" in secret_lines[0]


@pytest.mark.parametrize("args, says", [
    (("keys", "create", "--name", "x", "--colour", "blue"), "unrecognized arguments: --colour"),
    (("keys", "create"), "--name"),
    (("keys", "create", "--name", "x", "--budget-usd", "-1"), "--budget-usd"),
    (("keys", "create", "--name", "x", "--rpm", "0"), "--rpm"),
    (("keys", "create", "--name", "x", "--concurrency", "two"), "--concurrency"),
    (("keys", "create", "--name", "x", "--models", "gpt image"), "--models"),
    (("keys", "create", "--name", "x", "--expires-at", "someday"), "--expires-at"),
    (("keys", "create", "--name", "x", "--answer-style", "html"), "--answer-style"),
    (("keys", "update", "key_0000000000000000", "--rpm", "3"), "key_0000000000000000"),
    (("keys", "revoke", "key_0000000000000000"), "key_0000000000000000"),
    (("keys", "update", "key_0000000000000000"), "give at least one"),
    (("usage", "--by", "colour"), "--by"),
    (("usage", "--since", "yesterday"), "--since"),
    (("frobnicate",), "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, says):
    result = cli(*args)
    assert result.returncode == 2, result
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert says in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_database_url_is_exit_2_naming_it(cli):
    result = cli("keys", "list", DATABASE_URL="postgres//nohost")
    assert result.returncode == 2 and result.stderr.startswith("image-gateway: DATABASE_URL ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_database_that_is_down_is_exit_1_in_one_line(cli):
    result = cli("keys", "list", DATABASE_URL="postgres://gw:secret@127.0.0.1:1/gateway")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "unavailable" in result.stderr and "secret" not in result.stderr


def test_usage_prints_a_readable_table(cli):
    result = cli("usage", "--by", "model", "--since", "7d")
    assert result.returncode == 0
    assert result.stdout.split()[:5] == ["MODEL", "REQUESTS", "IMAGES", "COST", "USD"]
    assert "TOTAL" in result.stdout


def test_images_sweep_deletes_expired_pictures_of_the_directory_store(cli, tmp_path):
    expired = tmp_path / "data" / "images" / "300" / "e4fb2cb9b344fdf959864174"
    expired.mkdir(parents=True)
    (expired / "AAAAAAAAAAAAAAAAAAAAAA.png").write_bytes(b"\x89PNG")
    result = cli("images", "sweep")
    assert result.returncode == 0 and result.stdout.startswith("removed 1 expired pictures")
    assert not expired.exists()
    assert "only a directory store" in cli("images", "sweep", GATEWAY_IMAGE_STORE="s3://bucket/prefix").stdout


def test_the_worker_without_redis_is_one_line_and_exit_2(cli):
    result = cli("worker")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "GATEWAY_REDIS_URL" in result.stderr and result.stdout == ""
