#!/usr/bin/env python3
"""Slow clients straight to gunicorn: does the instance still answer while they trickle?

    .venv/bin/python bench/slow_clients.py                 # both worker classes, about 2 minutes

For each worker class, the gateway starts as the Procfile starts it (2 workers, the local provider),
then for --seconds: --bodies connections send a chat request's headers and then its body one byte
every --drip seconds, and --headers connections send a request's headers one byte every --drip
seconds. Meanwhile a probe asks GET /healthz every 0.5 s (5 s timeout) and, every 2 s, makes a real
generation (local provider). Prints, per class: probe latencies (p50, p99, max), probes that failed,
and how the slow connections ended (answered with which status, or still open at the end).
Standard library plus `requests`, run from the repository root with the project's virtualenv.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as common  # noqa: E402  (bench/run.py: processes and the Procfile start-up)

KEY = "slow-clients-key"
GENERATION = (b'{"model": "local-image", "modalities": ["image"], '
              b'"messages": [{"role": "user", "content": "a lighthouse"}]}')


async def slow_body(port: int, drip: float, until: float) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(GENERATION))
    return await _trickle(reader, writer, GENERATION, drip, until)


async def slow_headers(port: int, drip: float, until: float) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 4000 + b"\r\n\r\n"
    return await _trickle(reader, writer, head, drip, until)


async def _trickle(reader, writer, data: bytes, drip: float, until: float) -> str:
    """One byte every `drip` s until the server answers, closes, or the attack ends."""
    answer = asyncio.ensure_future(reader.read(200))
    try:
        for byte in data:
            if time.monotonic() > until:
                return "still open at the end"
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            done, _ = await asyncio.wait({answer}, timeout=drip)
            if done:
                break
        head = await asyncio.wait_for(answer, timeout=max(0.1, until - time.monotonic()))
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "closed"
        return f"answered {status}" if status != "closed" else "closed by the server"
    except (asyncio.TimeoutError, ConnectionError):
        return "still open at the end"
    finally:
        answer.cancel()
        writer.close()


async def probe(port: int, path: bytes, body: bytes | None, timeout: float) -> float | None:
    """Seconds to a complete answer, or None when it failed or took longer than `timeout`."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        try:
            method = b"POST" if body else b"GET"
            head = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " \
                + KEY.encode() + b"\r\n"
            if body:
                head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
            writer.write(head + b"\r\n" + (body or b""))
            answer = await asyncio.wait_for(reader.read(), timeout - (time.monotonic() - started))
        finally:
            writer.close()
        return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None
    except (asyncio.TimeoutError, OSError):
        return None


async def attack(port: int, args) -> dict:
    until = time.monotonic() + args.seconds
    attackers = [asyncio.ensure_future(slow_body(port, args.drip, until)) for _ in range(args.bodies)]
    attackers += [asyncio.ensure_future(slow_headers(port, args.drip, until)) for _ in range(args.headers)]
    health, generations = [], []
    await asyncio.sleep(1)  # the slow clients are connected and holding
    next_generation = time.monotonic()
    while time.monotonic() < until:
        health.append(await probe(port, b"/healthz", None, 5))
        if time.monotonic() >= next_generation:
            generations.append(await probe(port, b"/v1/chat/completions", GENERATION, 10))
            next_generation = time.monotonic() + 2
        await asyncio.sleep(0.5)
    outcomes: dict[str, int] = {}
    for result in await asyncio.gather(*attackers, return_exceptions=True):
        label = result if isinstance(result, str) else f"error {type(result).__name__}"
        outcomes[label] = outcomes.get(label, 0) + 1
    return {"health": health, "generations": generations, "outcomes": outcomes}


def summary(values: list[float | None]) -> str:
    ok = sorted(v for v in values if v is not None)
    failed = len(values) - len(ok)
    if not ok:
        return f"all {failed} failed"
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
    return (f"p50 {statistics.median(ok) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ok[-1] * 1000:.0f} ms, "
            f"{failed} of {len(values)} failed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", default="gevent,gthread", help="worker classes to try (default both)")
    p.add_argument("--bodies", type=int, default=200, help="slow-body connections (default 200)")
    p.add_argument("--headers", type=int, default=130, help="slow-header connections (default 130)")
    p.add_argument("--drip", type=float, default=2, help="seconds between two bytes of a slow client (default 2)")
    p.add_argument("--seconds", type=float, default=40, help="length of the attack (default 40)")
    p.add_argument("--gateway-env", action="append", default=[], type=common.env_pair, metavar="NAME=VALUE")
    args = p.parse_args()
    args.log_level = "INFO"
    tmp = Path(tempfile.mkdtemp(prefix="gateway-slow-"))
    print(f"{args.bodies} slow-body and {args.headers} slow-header connections, one byte every {args.drip:g} s, "
          f"for {args.seconds:g} s; load average {common.fmt_load(os.getloadavg())}")
    extra = list(args.gateway_env)
    for worker_class in args.classes.split(","):
        args.gateway_env = extra + [("GATEWAY_WORKER_CLASS", worker_class)]
        service, url = common.start_gateway(tmp, f"gateway-{worker_class}", "http://127.0.0.1:9", KEY, args)
        try:
            result = asyncio.run(attack(int(url.rsplit(":", 1)[1]), args))
        finally:
            service.stop()
        settings = ", ".join(f"{k}={v}" for k, v in args.gateway_env)
        print(f"\n{settings}\n  /healthz during the attack: {summary(result['health'])}"
              f"\n  generations during the attack: {summary(result['generations'])}"
              f"\n  slow connections: " + ", ".join(f"{n} {label}" for label, n in sorted(result["outcomes"].items())),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
