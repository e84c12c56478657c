#!/usr/bin/env python3
"""Held generations: how many slow generations one instance carries at once, gevent vs gthread vs LiteLLM.

    .venv/bin/python bench/held.py           # from the repository root: about 12 minutes

A fake provider (bench/slow_upstream.py) answers every call after 10 s (--delay) with a 1 MiB
picture (--image-mb) in OpenAI's Images shape. wrk keeps N clients busy in a closed loop on
POST /v1/images/generations (--route chat: /v1/chat/completions), for N in --clients; the ideal
rate is N / delay answers per second. Systems, one after the other on the same fake: the gateway
as the Procfile starts it (2 workers, default settings) with each worker class, and LiteLLM proxy
when bench/install_litellm.sh installed it.

Per system and N: answers/s (clients ÷ mean latency: a closed loop), answers counted by the fake over a window (--window s after --warmup s,
what it answered, whatever the client), the share of the ideal rate, wrk's p50/p99 latency over the
whole run, errors (non-2xx, socket errors, timeouts), the most generations seen waiting at the
fake at once, and the peak of the summed RSS of every process of the system (master and workers).
Prints one table and writes it as Markdown (--output). Every process started is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as common  # noqa: E402  (bench/run.py: processes, pictures, wrk, gateway and LiteLLM start-up)

RESULTS_MD = BENCH / "held-results.md"
ROUTES = {"images": ("/v1/images/generations", common.images_body),
          "chat": ("/v1/chat/completions", common.chat_body)}
SHAPE = common.SHAPES[0]  # OpenAI Images: what the issue measured


def status_kb(pid: int, key: str) -> int:
    return common.status_kb(pid, key) or 0


class Sampler:
    """Every 0.5 s: the summed RSS of a process tree, and the fake's count of waiting calls (peaks kept)."""

    def __init__(self, pids, fake_url: str):
        self.pids, self.fake_url = pids, fake_url
        self.peak_rss_kb = self.peak_waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(0.5):
            rss = sum(status_kb(pid, "VmRSS") for pid in self.pids())
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            try:
                self.peak_waiting = max(self.peak_waiting, fake_count(self.fake_url)["waiting"])
            except requests.RequestException:
                pass


def fake_count(url: str) -> dict:
    return requests.get(url + "/count", timeout=5).json()


def wait_drained(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while fake_count(url)["waiting"] and time.monotonic() < deadline:
        time.sleep(0.5)


def measure(args, system: str, url: str, route: str, body_file: Path, headers, clients: int, fake_url: str,
            pids) -> dict:
    """One closed-loop wrk run of `clients` connections; the rate is read from the fake over a steady window."""
    wait_drained(fake_url, args.delay * 3)
    seconds = args.warmup + args.window + 2
    argv = ["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", f"--timeout={args.delay * 6:g}s", "-s", str(common.LUA),
            url + route, "--", str(body_file), *headers]
    env = dict(os.environ)
    if args.start == "staggered":  # each client's first request at a random moment of the first wait
        env.update(BENCH_RAMP_MS=str(int(args.delay * 1000)), BENCH_RAMP_FIRST=str(-(-clients // 2)))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=env)
    try:
        with Sampler(pids, fake_url) as sampler:
            time.sleep(args.warmup)
            first, cpu_first = fake_count(fake_url)["answered"], sum(common.cpu_seconds(pids()))
            time.sleep(args.window)
            last, cpu_last = fake_count(fake_url)["answered"], sum(common.cpu_seconds(pids()))
            out, _ = proc.communicate(timeout=seconds + args.delay * 6 + 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = next((json.loads(line[len("BENCH_RESULT "):]) for line in out.splitlines()
                   if line.startswith("BENCH_RESULT ")), None)
    if result is None:
        raise RuntimeError(f"wrk printed no result:\n{out[-2000:]}")
    window_rate = (last - first) / args.window
    # every client is always waiting for its next answer (a closed loop): answers/s = clients / mean latency
    # (Little's law), which synchronised waves of answers cannot bias as a short count window can
    rate = clients / (result["mean_us"] / 1e6) if result["mean_us"] else 0.0
    errors = sum(result[k] for k in ("non2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
    row = {"system": system, "start": args.start, "clients": clients, "rate": rate, "window_rate": window_rate, "ideal": clients / args.delay,
           "p50_s": result["p50_us"] / 1e6, "p99_s": result["p99_us"] / 1e6, "errors": errors,
           "answers": result["requests"], "waiting": sampler.peak_waiting, "rss_mb": sampler.peak_rss_kb / 1024,
           "cpu_ms": (cpu_last - cpu_first) * 1000 / max(1, last - first)}
    print(f"  {system:18} {args.start:9} c={clients:<5} {rate:7.1f}/s ({rate / row['ideal'] * 100:3.0f}% of ideal; "
          f"window {window_rate:.1f}/s)  "
          f"p50 {row['p50_s']:.2f} s  p99 {row['p99_s']:.2f} s  errors {errors}  waiting max {row['waiting']}  "
          f"RSS {row['rss_mb']:.0f} MB  CPU {row['cpu_ms']:.1f} ms/answer", flush=True)
    return row


def table(rows: list[dict]) -> list[str]:
    head = ["system", "start", "clients", "answers/s", "% of ideal", "answered in window /s", "p50 s", "p99 s", "errors",
            "held at upstream (max)",
            "RSS total MB (peak)", "CPU ms/answer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["system"], r["start"], str(r["clients"]), f"{r['rate']:.1f}", f"{r['rate'] / r['ideal'] * 100:.0f}%",
            f"{r['window_rate']:.1f}",
            f"{r['p50_s']:.2f}", f"{r['p99_s']:.2f}", str(r["errors"]), str(r["waiting"]), f"{r['rss_mb']:.0f}",
            f"{r['cpu_ms']:.1f}"]) + " |")
    return lines


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="128,512,1024,2000", help="concurrent clients, comma-separated")
    p.add_argument("--delay", type=float, default=10, help="seconds the fake waits before answering (default 10)")
    p.add_argument("--image-mb", type=float, default=1, help="picture size, MiB (default 1)")
    p.add_argument("--warmup", type=float, default=15, help="seconds before the counting window (default 15)")
    p.add_argument("--window", type=float, default=30, help="counting window, s (default 30: three waits)")
    p.add_argument("--systems", default="gevent,gthread,litellm",
                   help="gateway worker classes and/or litellm, comma-separated (default all three)")
    p.add_argument("--route", choices=sorted(ROUTES), default="images", help="gateway route (default images)")
    p.add_argument("--start", choices=("staggered", "together"), default="staggered",
                   help="staggered (default): each client's first request at a random moment of the first wait, "
                        "as independent clients arrive; together: all clients at the same instant, which makes "
                        "every answer of a wave arrive at once, forever (a closed loop keeps the waves)")
    p.add_argument("--gateway-env", action="append", default=[], type=common.env_pair, metavar="NAME=VALUE",
                   help="extra environment for the gateway, repeatable")
    p.add_argument("--litellm-workers", type=int, default=1, help="LiteLLM --num_workers (default 1)")
    p.add_argument("--output", type=Path, default=RESULTS_MD, help="Markdown file (default bench/held-results.md)")
    args = p.parse_args()
    args.log_level, args.upstream_gzip = "INFO", 0   # what bench/run.py's helpers read
    return args


def main() -> int:
    args = parse_args()
    for tool in ("wrk",):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install {tool}")
    clients = [int(c) for c in args.clients.split(",")]
    started, load_before = time.monotonic(), os.getloadavg()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="gateway-held-"))
    services: list[common.Service] = []
    rows: list[dict] = []
    try:
        picture = common.noise_png(int(args.image_mb * common.MB), seed=1)
        answer = tmp / "answer.json"
        answer.write_text(json.dumps(SHAPE.answer(picture.b64, picture.width, picture.height), separators=(",", ":")))
        port = common.free_port()
        fake = common.Service("slow-upstream", [sys.executable, str(BENCH / "slow_upstream.py"), "--port", str(port),
                                                "--delay", str(args.delay), "--answer", str(answer)],
                              env=None, cwd=tmp, log=tmp / "slow-upstream.log")
        services.append(fake)
        fake_url = f"http://127.0.0.1:{port}"
        fake.wait_ready(lambda: fake_count(fake_url) is not None, 20)
        key = "bench-" + os.urandom(8).hex()
        headers = (f"Authorization: Bearer {key}", "Content-Type: application/json")
        path, make_body = ROUTES[args.route]
        extra_env = list(args.gateway_env)
        for system in args.systems.split(","):
            if system == "litellm":
                if not common.litellm_binary():
                    print("LiteLLM not installed (sh bench/install_litellm.sh): skipped", flush=True)
                    continue
                service, url = common.start_litellm(tmp, fake_url, key, args.litellm_workers)
                route = "/v1/images/generations"   # LiteLLM makes OpenAI pictures on its Images API only
                label = f"litellm ({args.litellm_workers} worker)"
                pids = lambda service=service: common.process_tree(service.pid)  # noqa: E731
            else:
                args.gateway_env = extra_env + [("GATEWAY_WORKER_CLASS", system)]
                service, url = common.start_gateway(tmp, f"gateway-{system}", fake_url, key, args)
                route, label = path, f"gateway {system}"
                pids = lambda service=service: common.process_tree(service.pid)  # noqa: E731
            services.append(service)
            body = make_body(SHAPE.model)
            body_file = tmp / f"body-{system}.json"
            body_file.write_text(json.dumps(body))
            check = requests.post(url + route, json=body, headers=dict(h.split(": ", 1) for h in headers),
                                  timeout=args.delay * 3)
            problem = common.expect_picture(picture.b64)(check)
            if problem:
                raise RuntimeError(f"{label}: the answer does not hold the picture: {problem}")
            print(f"\n{label} on {url}{route}", flush=True)
            for n in clients:
                rows.append(measure(args, label, url, route, body_file, headers, n, fake_url, pids))
            service.stop()
            services.remove(service)
        args.gateway_env = extra_env
        info = common.machine_info(args, None)
        md = ["# Held generations: slow upstream, many clients", "",
              f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} with `{' '.join(['.venv/bin/python', *sys.argv])}` in "
              f"{time.monotonic() - started:.0f} s. Load average before / after: {common.fmt_load(load_before)} / "
              f"{common.fmt_load(os.getloadavg())}.", "",
              f"Upstream: bench/slow_upstream.py, {args.delay:g} s wait, a {picture.width}×{picture.height} noise PNG "
              f"({len(picture.png) / common.MB:.2f} MiB, {len(picture.b64) / common.MB:.2f} MiB of base64) in OpenAI's "
              f"Images shape. Clients: wrk -t2 in a closed loop on {path} (LiteLLM: /v1/images/generations); "
              "start: staggered = each client's first request at a random moment of the first wait (not counted in "
              "any latency), together = every client at once. "
              "answers/s = clients ÷ wrk's mean latency (every client always waits for its next answer); "
              f"answered in window = answers the fake sent during {args.window:g} s after {args.warmup:g} s (a check: "
              "clients that started together answer in waves, so a short window over- or under-counts); "
              f"ideal = clients / {args.delay:g} s; p50/p99 = wrk over the whole run; RSS = peak of the summed RSS "
              "of every process of the system; CPU = user+system time of those processes in the window ÷ its "
              "answers.", "",
              f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, Python {info['python']}, "
              f"gunicorn {info['gunicorn'].split(',')[0]}, {info['wrk']}, gateway code {info['gateway code']}"
              + "".join(f", {k}={v}" for k, v in extra_env) + ".", ""]
        md += table(rows)
        text = "\n".join(md) + "\n"
        args.output.write_text(text)
        print("\n" + text)
        print(f"written to {args.output}")
        return 0
    except Exception:
        common.print_tails(services)
        raise
    finally:
        common.stop_all(services)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
