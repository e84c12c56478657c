#!/usr/bin/env python3
"""What a limited, budgeted database key adds to a request, next to a static key (GATEWAY_API_KEYS).

    .venv/bin/python bench/keys.py                      # SQLite, limits in the database (the quick start)
    .venv/bin/python bench/keys.py --database-url postgres://... --redis-url redis://...

Starts the gateway as the Procfile does (gunicorn, 2 workers) on a free loopback port with its own data
directory, makes a database key with every limit set high enough never to refuse (rpm, concurrency,
images per day, a budget, a model allow-list), then times POST /v1/images/generations on the local
provider (a 64x64 picture, so the provider's own work is small) with each key, alternating between
them, one client at a time (c=1) and eight at once (c=8). It prints the p50, p95 and the added p50
(limited - static) per concurrency. Everything it starts is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "image-gateway")
ALL_LIMITS = "--rpm 1000000 --concurrency 1000 --images-per-day 1000000000 --budget-usd 1000000 --models local-*"
BODY = {"model": "local-image", "prompt": "a lighthouse", "size": "64x64"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = next(line[4:].strip() for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    proc = subprocess.Popen(["/bin/sh", "-c", "exec " + command], cwd=ROOT, env={**env, "PORT": str(port)},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited early:\n{log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit("the gateway did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def timed(session: requests.Session, url: str, secret: str) -> float:
    start = time.perf_counter()
    answer = session.post(url + "/v1/images/generations", json=BODY, headers={"Authorization": f"Bearer {secret}"},
                          timeout=30)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise SystemExit(f"unexpected answer {answer.status_code}: {answer.text[:300]}")
    return elapsed


def measure(url: str, keys: dict[str, str], requests_per_key: int, clients: int) -> dict[str, list[float]]:
    """Latencies per key; each client alternates the two keys, so drift hits both alike."""
    samples: dict[str, list[float]] = {name: [] for name in keys}
    lock = threading.Lock()
    per_client = max(1, requests_per_key // clients)

    def client() -> None:
        session = requests.Session()
        for _ in range(per_client):
            for name, secret in keys.items():
                elapsed = timed(session, url, secret)
                with lock:
                    samples[name].append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="timed requests per key and concurrency")
    parser.add_argument("--database-url", help="PostgreSQL instead of SQLite (migrated with image-gateway db upgrade)")
    parser.add_argument("--redis-url", help="limits in Redis (GATEWAY_REDIS_URL)")
    parser.add_argument("--limits", default=ALL_LIMITS,
                        help=f"the limited key's `keys create` options, one string (default: every limit, {ALL_LIMITS!r})")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway, repeatable (GATEWAY_WORKER_CLASS=gthread, ...)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gateway-keys-bench-"))
    env = {"PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "WEB_CONCURRENCY": "2",
           "GATEWAY_API_KEYS": "static-bench-key", "GATEWAY_DATA_DIR": str(work / "data")}
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if args.redis_url:
        env["GATEWAY_REDIS_URL"] = args.redis_url
    for setting in args.gateway_env:
        name, _, value = setting.partition("=")
        env[name] = value
    subprocess.run([CLI, "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run([CLI, "keys", "create", "--name", "bench-limited", *args.limits.split(), "--json"],
                             env=env, check=True, capture_output=True, text=True)
    keys = {"static": "static-bench-key", "limited": json.loads(created.stdout)["key"]}
    proc, url = start_gateway(env, work / "gunicorn.log")
    try:
        measure(url, keys, 50, 1)  # warm-up: connections, caches, the database's first pages
        print(f"{'clients':>7} {'key':>8} {'p50 ms':>8} {'p95 ms':>8} {'added p50 ms':>13}")
        for clients in (1, 8):
            samples = measure(url, keys, args.requests, clients)
            p50 = {name: statistics.median(values) * 1000 for name, values in samples.items()}
            for name, values in samples.items():
                added = f"{p50['limited'] - p50['static']:13.2f}" if name == "limited" else f"{'':>13}"
                print(f"{clients:>7} {name:>8} {p50[name]:8.2f} {percentile(values, 0.95) * 1000:8.2f} {added}")
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
