"""The database layer for real: migrations from empty on SQLite and PostgreSQL, `image-gateway db upgrade`,
start-up checks under gunicorn (one line and a non-zero exit when the database cannot be used), /readyz."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import inspect

from app.db import Database, migrate
from app.db.urls import database_url
from tests.support.gateway_process import GatewayProcess

CLI = os.path.join(os.path.dirname(sys.executable), "image-gateway")
TABLES = {"alembic_version", "api_keys", "budget_reservations", "concurrency_leases", "rate_windows",
          "usage_records", "image_jobs", "webhook_deliveries"}


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True,
                          timeout=60)


def tables(url: str) -> set[str]:
    db = Database(url)
    try:
        return set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_sqlite_upgrades_from_empty_and_again_is_a_no_op(tmp_path):
    url = database_url("", str(tmp_path / "data"))
    db = Database(url)
    assert migrate.current(db) is None
    assert migrate.upgrade(db) == migrate.head()
    assert migrate.upgrade(db) == migrate.head()
    db.dispose()
    assert tables(url) == TABLES


def test_workers_preparing_sqlite_at_once_all_succeed(tmp_path):
    url = database_url("", str(tmp_path))

    def prepare_as_a_worker(_):
        db = Database(url)
        try:
            migrate.prepare(db)
            return migrate.current(db)
        finally:
            db.dispose()
    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(prepare_as_a_worker, range(6))) == {migrate.head()}


def test_db_upgrade_on_an_empty_postgresql_from_the_heroku_style_url(postgres):
    url = postgres.database().replace("postgresql://", "postgres://")
    result = run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert f"is at revision {migrate.head()}" in result.stdout
    assert tables(database_url(url, ".")) == TABLES
    again = run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert again.returncode == 0, again.stderr


def test_gunicorn_refuses_an_outdated_postgresql_schema_in_one_line(postgres, tmp_path):
    process = GatewayProcess({"DATABASE_URL": postgres.database(), "GATEWAY_API_KEYS": "k"}, tmp_path / "log")
    with pytest.raises(RuntimeError, match="gunicorn exited early"):
        process.start()
    assert process.proc.returncode != 0
    lines = [line for line in process.log().splitlines() if "image-gateway:" in line]
    assert len(lines) == 1 and "image-gateway db upgrade" in lines[0]
    assert "Traceback" not in process.log()


@pytest.mark.parametrize("url, says", [("mysql://u:p@h/db", "DATABASE_URL has an unsupported scheme"),
                                       ("postgres://gw:pw@127.0.0.1:1/db", "cannot use the database")])
def test_gunicorn_stops_with_one_line_when_the_database_is_unusable(tmp_path, url, says):
    process = GatewayProcess({"DATABASE_URL": url, "GATEWAY_API_KEYS": "k"}, tmp_path / "log")
    with pytest.raises(RuntimeError, match="gunicorn exited early"):
        process.start()
    assert process.proc.returncode != 0
    log = process.log()
    assert "Traceback" not in log and says in log and ":pw@" not in log


def test_readyz_answers_for_postgresql_and_healthz_never_touches_it(postgres, tmp_path):
    url = postgres.database()
    assert run_cli("db", "upgrade", env={"DATABASE_URL": url}).returncode == 0
    process = GatewayProcess({"DATABASE_URL": url, "GATEWAY_API_KEYS": "k"}, tmp_path / "log").start()
    try:
        ready = requests.get(process.url + "/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": {"database": "ok"}}
        import psycopg
        with psycopg.connect(postgres.url(), autocommit=True) as admin:  # the database goes away
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (url.rsplit("/", 1)[1],))
            admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" ALLOW_CONNECTIONS false')
        down = requests.get(process.url + "/readyz", timeout=15)
        assert down.status_code == 503
        assert down.json()["status"] == "not_ready" and down.json()["checks"]["database"].startswith("unavailable")
        assert requests.get(process.url + "/healthz", timeout=5).status_code == 200
    finally:
        process.stop()


def test_the_quick_start_makes_its_sqlite_database_by_itself(tmp_path):
    process = GatewayProcess({"GATEWAY_API_KEYS": "k", "GATEWAY_DATA_DIR": str(tmp_path / "data")},
                             tmp_path / "log").start()
    try:
        assert requests.get(process.url + "/readyz", timeout=5).json()["status"] == "ready"
    finally:
        process.stop()
    assert tables(database_url("", str(tmp_path / "data"))) == TABLES


def test_the_master_checks_the_database_without_importing_the_driver(postgres, tmp_path):
    """psycopg picks its wait function on import: the gunicorn master must leave that to the (gevent) workers."""
    url = postgres.database()
    assert run_cli("db", "upgrade", env={"DATABASE_URL": url}).returncode == 0
    probe = ("import sys, app.gunicorn_conf as conf; conf.on_starting(None); "
             "print('psycopg' in sys.modules, 'sqlalchemy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "DATABASE_URL": url,
                                 "GATEWAY_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
