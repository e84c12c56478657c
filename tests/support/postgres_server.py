"""A real, throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port, for database tests.

initdb refuses to run as root: when the tests run as root (CI), the cluster is made and run as the
`postgres` system user that Debian's package creates, through runuser. Nothing is kept: the cluster
lives in a temporary directory removed at stop.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from tests.support.gateway_process import free_port
from tests.support.system import require_program

SYSTEM_USER = "postgres"
START_ATTEMPTS = 3
SUPERUSER = "gateway"


def _program(name: str) -> str:
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return require_program(name, *installed[-1:])


class PostgresServer:
    """`start()` makes and starts the cluster; `database()` makes an empty database; `stop()` removes it all."""

    def __init__(self):
        self.initdb = _program("initdb")
        self.pg_ctl = _program("pg_ctl")
        self.port = 0
        self.root = tempfile.mkdtemp(prefix="gateway-pg-")
        self.data = os.path.join(self.root, "data")
        self.running = False
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", SYSTEM_USER, "--"]

    def _run(self, *command: str, timeout: float = 60) -> None:
        subprocess.run([*self._as_user, *command], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> "PostgresServer":
        self._run(self.initdb, "-D", self.data, "-U", SUPERUSER, "-A", "trust", "--no-sync", "-E", "UTF8",
                  "--locale=C")
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run(self.pg_ctl, "-D", self.data, "-o", options, "-l", os.path.join(self.root, "log"),
                          "-w", "-t", "30", "start")
                self.running = True
                return self
            except subprocess.CalledProcessError:
                time.sleep(0.2)  # the port was taken in between: choose another
        raise RuntimeError(f"PostgreSQL did not start: {self.log()}")

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "log")) as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def url(self, database: str = "postgres", scheme: str = "postgresql") -> str:
        return f"{scheme}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL (postgresql://...)."""
        import psycopg

        name = "db_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.running:
            try:
                self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop", timeout=30)
            finally:
                self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """For fixtures: a started cluster, stopped and removed afterwards; skipped (dev) or failed (CI) without it."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
