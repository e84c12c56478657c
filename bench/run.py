#!/usr/bin/env python3
"""Gateway overhead on image-sized answers: direct vs. through the gateway (vs. LiteLLM proxy).

    .venv/bin/python bench/run.py            # from the repository root: about 3.5 minutes

Needs Debian's nginx and wrk (apt-get install nginx wrk). LiteLLM is optional: `sh
bench/install_litellm.sh` puts it in bench/.venv-litellm, where this script finds it.

What it does, all on 127.0.0.1, every process it starts stopped again at the end (also on errors,
Ctrl-C and SIGTERM):
1. builds a real PNG of noise pixels (incompressible, 2 MiB; --image-mb) with app/png.py and
   pre-built answers in each provider's wire shape: OpenAI Images, Ark (Seedream), OpenRouter chat,
   Gemini generateContent; plus the same answers with an 8 MiB picture for the memory case;
2. serves them from Debian's nginx (static files, config generated into a temp dir): the fake
   upstream, which is never the bottleneck;
3. starts the gateway exactly as the Procfile does (gunicorn, the project's gunicorn config,
   WEB_CONCURRENCY=2) with the provider base URLs pointing at nginx; and LiteLLM proxy when
   installed, with bench/litellm_config.yaml pointing at the same fake;
4. per provider shape and system: checks that the answer really holds the picture (status 200,
   the very data URL), then runs wrk (bench/post.lua) sequentially (-t1 -c1: p50/p95/p99) and
   with 8 connections (-t2 -c8: answers per second), reading the serving processes' CPU time and
   peak RSS (VmHWM, reset before every case);
5. a separate case: 8 concurrent clients on 8 MiB answers, for the memory target;
6. prints one table and writes it as Markdown to bench/results.md.

Useful options: --seconds N (each wrk run), --upstream-gzip 6 (the fake answers gzip, as a
provider may when the client accepts it), --gateway-env NAME=VALUE (try a setting), --litellm-workers 2,
--litellm off, --shapes openai,gemini, --no-big, --keep-tmp (logs and configs). See --help.

Standard library plus `requests` only: runs on the project's virtualenv.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from app.png import encode_png  # noqa: E402  (the project's own encoder, from the repository root)

MB = 1024 * 1024
LUA = BENCH / "post.lua"
LITELLM_VENV = BENCH / ".venv-litellm"
LITELLM_TEMPLATE = BENCH / "litellm_config.yaml"
RESULTS_MD = BENCH / "results.md"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"
BIG_PREFIX, BIG_SUFFIX = "/8mb", "-8mb"   # where the 8 MB answers live on the fake, and LiteLLM's alias
UPSTREAM_KEY = "bench-upstream-key"        # the fake checks no key; providers still send one
DATA_URL_PREFIX = "data:image/png;base64,"


# ----------------------------------------------------------------------------------------------
# provider shapes: the wire request a provider gets, the answer it gives, the gateway's model name
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    model: str                    # the model name a client asks the gateway (and LiteLLM) for
    path: str                     # the provider's path on the fake upstream
    env: str                      # the gateway's *_BASE_URL variable
    base_suffix: str              # what that base URL adds to the fake's address
    wire_headers: tuple[str, ...]
    wire_body: Callable[[], dict]
    answer: Callable[[str, int, int], dict]   # (base64, width, height) -> the provider's answer
    images_api: bool              # the provider's own API is OpenAI's Images API shape


def _openai_answer(b64: str, width: int, height: int) -> dict:
    return {"created": int(time.time()), "background": "opaque", "output_format": "png", "quality": "high",
            "size": f"{width}x{height}", "data": [{"b64_json": b64}],
            "usage": {"input_tokens": 14, "input_tokens_details": {"image_tokens": 0, "text_tokens": 14},
                      "output_tokens": 4160, "total_tokens": 4174}}


def _ark_answer(b64: str, width: int, height: int) -> dict:
    return {"model": "doubao-seedream-4-0-250828", "created": int(time.time()),
            "data": [{"b64_json": b64, "size": f"{width}x{height}"}],
            "usage": {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384}}


def _openrouter_answer(b64: str, width: int, height: int) -> dict:
    return {"id": "gen-bench-1", "provider": "Google", "model": "google/gemini-2.5-flash-image",
            "object": "chat.completion", "created": int(time.time()),
            "choices": [{"logprobs": None, "finish_reason": "stop", "native_finish_reason": "STOP", "index": 0,
                         "message": {"role": "assistant", "content": "", "refusal": None, "reasoning": None,
                                     "images": [{"type": "image_url", "index": 0,
                                                 "image_url": {"url": DATA_URL_PREFIX + b64}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1290, "total_tokens": 1302}}


def _gemini_answer(b64: str, width: int, height: int) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png",
                                                                                  "data": b64}}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1290, "totalTokenCount": 1302,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
                              "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}]},
            "modelVersion": "gemini-2.5-flash-image", "responseId": "bench-response-1"}


BEARER = (f"Authorization: Bearer {UPSTREAM_KEY}", "Content-Type: application/json")
SHAPES = [
    Shape("openai", "OpenAI Images", "gpt-image-1", "/v1/images/generations", "OPENAI_BASE_URL", "/v1", BEARER,
          lambda: {"model": "gpt-image-1", "prompt": PROMPT}, _openai_answer, True),
    Shape("ark", "Ark Seedream", "doubao-seedream-4-0-250828", "/api/v3/images/generations", "ARK_BASE_URL",
          "/api/v3", BEARER,
          lambda: {"model": "doubao-seedream-4-0-250828", "prompt": PROMPT, "sequential_image_generation": "disabled",
                   "stream": False, "response_format": "b64_json", "watermark": False},
          _ark_answer, True),
    Shape("openrouter", "OpenRouter chat", "google/gemini-2.5-flash-image", "/api/v1/chat/completions",
          "OPENROUTER_BASE_URL", "/api/v1", BEARER,
          lambda: {"model": "google/gemini-2.5-flash-image", "modalities": ["image", "text"], "stream": False,
                   "messages": [{"role": "user", "content": PROMPT}]},
          _openrouter_answer, False),
    Shape("gemini", "Gemini generateContent", "gemini-2.5-flash-image",
          "/v1beta/models/gemini-2.5-flash-image:generateContent", "GEMINI_BASE_URL", "",
          (f"x-goog-api-key: {UPSTREAM_KEY}", "Content-Type: application/json"),
          lambda: {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                   "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}},
          _gemini_answer, False),
]


def chat_body(model: str) -> dict:
    return {"model": model, "modalities": ["image", "text"], "messages": [{"role": "user", "content": PROMPT}]}


def images_body(model: str) -> dict:
    # no response_format: GPT image models always answer base64 (and LiteLLM refuses the field for them)
    return {"model": model, "prompt": PROMPT}


# ----------------------------------------------------------------------------------------------
# the picture and the fake upstream
# ----------------------------------------------------------------------------------------------

@dataclass
class Picture:
    png: bytes
    b64: str
    width: int
    height: int


def noise_png(target_bytes: int, seed: int) -> Picture:
    """A valid RGB PNG of about `target_bytes`: noise pixels, stored uncompressed (zlib level 0)."""
    side = max(16, int((target_bytes / 3) ** 0.5))
    rng = random.Random(seed)
    png = encode_png(side, side, (rng.randbytes(side * 3) for _ in range(side)), level=0)
    return Picture(png, base64.b64encode(png).decode("ascii"), side, side)


NGINX_CONF = """\
# generated by bench/run.py: static answers in each provider's wire shape
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    sendfile on;
    tcp_nodelay on;   # no tcp_nopush: with it, small answers stall ~40 ms (cork + delayed ACK)
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_buffer_size 1m;
    client_max_body_size 64m;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
{locations}
        location / {{ return 404 '{{"error":{{"message":"no such path on the bench fake"}}}}'; }}
    }}
}}
"""
# the static module answers POST with 405; the error page turns it into a GET of the same file
LOCATION = '        location = "{path}" {{ alias {file}; error_page 405 =200 $uri;{extra} }}\n'
# --upstream-gzip: a pre-compressed copy (file.gz) for clients that accept gzip, as real providers answer


class Fake:
    """The answer files and the nginx config that serves them (one nginx, both image sizes)."""

    def __init__(self, tmp: Path, port: int, pictures: dict[str, Picture], gzip_level: int = 0):
        self.tmp, self.port = tmp, port
        self.url = f"http://127.0.0.1:{port}"
        self.files: dict[tuple[str, str], Path] = {}
        www = tmp / "www"
        www.mkdir()
        locations = []
        for prefix, picture in pictures.items():
            for shape in SHAPES:
                file = www / f"{shape.key}{prefix.replace('/', '-')}.json"
                answer = json.dumps(shape.answer(picture.b64, picture.width, picture.height), separators=(",", ":"))
                file.write_bytes(answer.encode())
                self.files[(prefix, shape.key)] = file
                extra = ""
                if gzip_level:
                    packed = file.with_name(file.name + ".gz")
                    packed.write_bytes(gzip.compress(answer.encode(), gzip_level, mtime=0))
                    packed.chmod(0o644)
                    extra = " gzip_static on; gzip_vary on;"
                locations.append(LOCATION.format(path=prefix + shape.path, file=file, extra=extra))
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, locations="".join(locations)))
        # nginx's workers drop root for `nobody`: they must be able to read the answers
        for path in (tmp, www, *self.files.values()):
            path.chmod(0o755 if path.is_dir() else 0o644)

    def command(self) -> list[str]:
        return ["nginx", "-p", str(self.tmp), "-c", str(self.conf)]


# ----------------------------------------------------------------------------------------------
# processes: started in their own session, stopped by process group at the end
# ----------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None, cwd: Path, log: Path):
        self.name, self.log_path = name, log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early (rc {self.proc.returncode}):\n{self.tail()}")
            try:
                if probe():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created for it
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._log.close()


def print_tails(services: list[Service]) -> None:
    """What each service logged last, to explain a failed run."""
    for service in services:
        print(f"--- {service.name} log (tail) ---\n{service.tail()}", file=sys.stderr)


def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        service.stop()


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return out


def status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and system CPU time of these processes (all their threads), in seconds."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        user += int(fields[11])     # utime, field 14 of proc(5)
        system += int(fields[12])   # stime, field 15
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def reset_peak_rss(pids: list[int]) -> None:
    """Writing 5 to clear_refs sets VmHWM back to the current RSS (Linux >= 4.0)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# the systems under test
# ----------------------------------------------------------------------------------------------

@dataclass
class Target:
    """One way to get a picture: a URL, a body, headers, and how to find the picture in the answer."""

    system: str                  # direct | gateway | litellm
    route: str                   # what is called, for the table
    url: str
    body: dict
    headers: tuple[str, ...]
    expect: Callable[[requests.Response], str | None]   # None when the answer holds the picture
    workers: Callable[[], list[int]] | None = None     # the serving processes: peak RSS (and CPU time)
    cpu: Callable[[], list[int]] | None = None         # PIDs whose CPU time counts, when not just `workers`


def expect_bytes(expected: bytes) -> Callable[[requests.Response], str | None]:
    def check(response: requests.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        if response.content != expected:
            return f"answer differs from the served file ({len(response.content)} B)"
        return None
    return check


def expect_picture(b64: str) -> Callable[[requests.Response], str | None]:
    """The answer (chat completion or ImagesResponse) must carry exactly this picture."""
    def check(response: requests.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:300]}"
        try:
            answer = response.json()
        except ValueError:
            return "answer is not JSON"
        found = None
        if isinstance(answer.get("data"), list) and answer["data"]:
            found = DATA_URL_PREFIX + (answer["data"][0].get("b64_json") or "")
        elif isinstance(answer.get("choices"), list) and answer["choices"]:
            message = answer["choices"][0].get("message") or {}
            images = message.get("images") or []
            if images:
                found = (images[0].get("image_url") or {}).get("url")
        if found is None:
            return f"no image in the answer: {response.text[:300]}"
        want = DATA_URL_PREFIX + b64
        if found != want:
            return f"image differs: got a data URL of {len(found)} characters, expected {len(want)}"
        return None
    return check


# ----------------------------------------------------------------------------------------------
# wrk
# ----------------------------------------------------------------------------------------------

def run_wrk(target: Target, body_file: Path, threads: int, connections: int, seconds: float) -> dict:
    timeout_s = 60
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout_s}s",
            "-s", str(LUA), target.url, "--", str(body_file), *target.headers]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds + timeout_s + 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"wrk printed no result (rc {proc.returncode}):\n{out[-2000:]}")


# ----------------------------------------------------------------------------------------------
# one case: verify, warm up, sequential, concurrent
# ----------------------------------------------------------------------------------------------

@dataclass
class Result:
    shape: Shape
    target: Target
    note: str = ""               # why there are no numbers, or what the check saw
    seq: dict | None = None
    conc: dict | None = None
    peak_rss_kb: int | None = None
    workers: int = 0
    overhead_ms: float | None = None   # the gateway's own x-gateway-overhead-ms, median of the checks
    answer_bytes: int = 0
    cpu_ms: tuple[float, float] | None = None   # user, system CPU ms of the serving processes per answer


class Bench:
    def __init__(self, args, tmp: Path):
        self.args, self.tmp = args, tmp
        self.counter = 0

    def body_file(self, body: dict) -> Path:
        self.counter += 1
        path = self.tmp / f"body-{self.counter}.json"
        path.write_text(json.dumps(body))
        return path

    def verify(self, target: Target, result: Result, tries: int = 3) -> str | None:
        """Send the case's request a few times; None when every answer holds the picture."""
        headers = dict(h.split(": ", 1) for h in target.headers)
        overheads = []
        for _ in range(tries):
            try:
                response = requests.post(target.url, data=json.dumps(target.body), headers=headers, timeout=120)
            except requests.RequestException as exc:
                return f"{type(exc).__name__}: {exc}"
            problem = target.expect(response)
            if problem:
                return problem
            result.answer_bytes = len(response.content)
            if "x-gateway-overhead-ms" in response.headers:
                overheads.append(float(response.headers["x-gateway-overhead-ms"]))
        result.overhead_ms = statistics.median(overheads) if overheads else None
        return None

    def case(self, shape: Shape, target: Target, *, sequential: bool, seconds: float) -> Result:
        result = Result(shape, target)
        problem = self.verify(target, result)
        if problem:
            result.note = problem
            print(f"  {shape.key:10} {target.system:8} {target.route:24} n/a: {problem[:160]}", flush=True)
            return result
        body = self.body_file(target.body)
        try:
            if self.args.warmup > 0:
                run_wrk(target, body, 2, 8, self.args.warmup)
            pids = target.workers() if target.workers else []
            cpu_pids = target.cpu() if target.cpu else pids
            reset_peak_rss(pids)
            cpu_before = cpu_seconds(cpu_pids)
            if sequential:
                result.seq = run_wrk(target, body, 1, 1, seconds)
            result.conc = run_wrk(target, body, 2, 8, seconds)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result.seq = result.conc = None
            result.note = f"wrk failed: {exc}"
            print(f"  {shape.key:10} {target.system:8} {target.route:24} n/a: {result.note[:300]}", flush=True)
            return result
        answers = result.conc["requests"] + (result.seq["requests"] if result.seq else 0)
        if cpu_pids and answers:
            cpu_after = cpu_seconds(cpu_pids)
            result.cpu_ms = ((cpu_after[0] - cpu_before[0]) * 1000 / answers,
                             (cpu_after[1] - cpu_before[1]) * 1000 / answers)
        if pids:
            pids = target.workers()  # a worker that was replaced counts from its start
            peaks = [p for p in (status_kb(pid, "VmHWM") for pid in pids) if p]
            result.peak_rss_kb = max(peaks) if peaks else None
            result.workers = len(peaks)
        seq = result.seq
        print(f"  {shape.key:10} {target.system:8} {target.route:24} "
              + (f"seq p50 {ms(seq['p50_us'])} p99 {ms(seq['p99_us'])} ms  " if seq else "")
              + f"c8 {result.conc['rps']:.1f}/s  errors {errors(result)}"
              + (f"  CPU {cpu_text(result.cpu_ms)} ms/answer" if result.cpu_ms is not None else "")
              + (f"  peak RSS {result.peak_rss_kb / 1024:.0f} MB" if result.peak_rss_kb else ""), flush=True)
        return result


def cpu_text(cpu: tuple[float, float] | None) -> str:
    """'total (user+system)' CPU ms per answer."""
    return "—" if cpu is None else f"{cpu[0] + cpu[1]:.1f} ({cpu[0]:.1f}+{cpu[1]:.1f})"


def ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def errors(result: Result) -> int:
    total = 0
    for run in (result.seq, result.conc):
        if run:
            total += run["non2xx"] + run["connect_errors"] + run["read_errors"] + run["write_errors"] + run["timeouts"]
    return total


# ----------------------------------------------------------------------------------------------
# gateway and LiteLLM
# ----------------------------------------------------------------------------------------------

def procfile_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line[len("web:"):].strip()
    raise RuntimeError("Procfile has no web: line")


def gateway_env(port: int, key: str, fake_base: str, log_level: str, extra: dict[str, str]) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GATEWAY_API_KEYS": key,
        "GATEWAY_LOG_LEVEL": log_level,
        "OPENAI_API_KEY": UPSTREAM_KEY, "ARK_API_KEY": UPSTREAM_KEY,
        "OPENROUTER_API_KEY": UPSTREAM_KEY, "GEMINI_API_KEY": UPSTREAM_KEY,
    }
    for shape in SHAPES:
        env[shape.env] = fake_base + shape.base_suffix
    env.update(extra)
    return env


def start_gateway(tmp: Path, name: str, fake_base: str, key: str, args) -> tuple[Service, str]:
    port = free_port()
    env = gateway_env(port, key, fake_base, args.log_level, dict(args.gateway_env))
    gunicorn = shutil.which("gunicorn", path=env["PATH"])
    if not gunicorn or Path(gunicorn).parent != Path(sys.executable).parent:
        raise RuntimeError(f"gunicorn not found in {Path(sys.executable).parent}: run with the project's .venv python")
    service = Service(name, ["/bin/sh", "-c", "exec " + procfile_command()], env=env, cwd=ROOT,
                      log=tmp / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    service.wait_ready(lambda: requests.get(url + "/healthz", timeout=1).status_code == 200, 60)
    deadline = time.monotonic() + 30  # every worker up, so the first case does not pay for a boot
    while len(children(service.pid)) < int(env["WEB_CONCURRENCY"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return service, url


def litellm_binary() -> Path | None:
    path = LITELLM_VENV / "bin" / "litellm"
    return path if path.exists() else None


def litellm_version() -> str:
    python = LITELLM_VENV / "bin" / "python"
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or "?"


def start_litellm(tmp: Path, fake_base: str, key: str, workers: int) -> tuple[Service, str]:
    block = LITELLM_TEMPLATE.read_text()
    block = "\n".join(line for line in block.splitlines() if not line.startswith("#")) + "\n"
    conf = "model_list:\n"
    for prefix, suffix in (("", ""), (BIG_PREFIX, BIG_SUFFIX)):
        conf += block.replace("${FAKE}", fake_base).replace("${PREFIX}", prefix).replace("${SUFFIX}", suffix)
    path = tmp / "litellm.yaml"
    path.write_text(conf)
    port = free_port()
    env = {
        "PATH": str(LITELLM_VENV / "bin") + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",   # offline: the bundled price map, no fetch
        "LITELLM_MASTER_KEY": key,
        "DISABLE_SCHEMA_UPDATE": "True",
        "LITELLM_TELEMETRY": "False",
    }
    argv = [str(litellm_binary()), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", str(workers)]
    service = Service("litellm", argv, env=env, cwd=tmp, log=tmp / "litellm.log")
    url = f"http://127.0.0.1:{port}"
    service.wait_ready(lambda: requests.get(url + "/health/liveliness", timeout=2).status_code == 200, 180)
    return service, url


def litellm_serving(pid: int) -> list[int]:
    """LiteLLM's serving processes: itself with one worker; its spawned uvicorn workers with more."""
    spawned = []
    for child in children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    spawned.append(child)
        except OSError:
            pass
    return spawned or [pid]


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children(current))
    return out


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------

def first_line(argv: list[str], cwd: Path = ROOT) -> str:
    """First line a command prints (stdout, else stderr); '' when it cannot run."""
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=20)
        return ((out.stdout or out.stderr).strip().splitlines() or [""])[0]
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(args, litellm: str | None) -> dict[str, str]:
    import gunicorn
    from app.config import Settings

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    settings = Settings.from_env({"WEB_CONCURRENCY": "2", **dict(args.gateway_env)})
    # read-only git: which code was measured
    commit = first_line(["git", "rev-parse", "--short", "HEAD"]) or "?"
    dirty = first_line(["git", "status", "--porcelain", "--untracked-files=no", "--", "app", "wsgi.py", "Procfile",
                        "setup.cfg"])
    return {
        "gateway code": f"{commit}" + (" + uncommitted changes under app/" if dirty else ""),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gunicorn": f"{gunicorn.__version__}, {settings.web_concurrency} workers, " + (
            f"gthread × {settings.threads} threads" if settings.worker_class == "gthread"
            else f"gevent, up to {settings.connections_per_worker} connections each"),
        "gateway log level": args.log_level + "".join(f", {k}={v}" for k, v in args.gateway_env),
        "fake upstream": "nginx static files, " + (f"gzip (level {args.upstream_gzip}) to clients that accept it"
                                                   if args.upstream_gzip else "identity with Content-Length"),
        "nginx": first_line(["nginx", "-v"]).replace("nginx version: ", "") or "?",
        "wrk": first_line(["wrk", "-v"]).split(" Copyright")[0] or "?",
        "litellm": litellm or "not installed (bench/install_litellm.sh)",
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(results: list[Result], *, sequential: bool) -> list[str]:
    if sequential:
        head = ["shape", "system", "route", "answer MiB", "p50 ms", "p95 ms", "p99 ms", "added p50 ms",
                "answers/s c8", "vs direct", "c8 p50 ms", "CPU ms/answer", "errors", "peak RSS/worker MB"]
    else:
        head = ["shape", "system", "route", "answer MiB", "answers/s c8", "vs direct", "c8 p50 ms", "c8 p99 ms",
                "CPU ms/answer", "errors", "peak RSS/worker MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    direct = {r.shape.key: r for r in results if r.target.system == "direct" and r.conc}
    for r in results:
        base = direct.get(r.shape.key)
        rss = f"{r.peak_rss_kb / 1024:.0f} (×{r.workers})" if r.peak_rss_kb else "—"
        if r.conc is None:
            cells = [r.shape.label, r.target.system, r.target.route] + ["n/a"] * (len(head) - 4) + [
                f"n/a: {r.note[:90]}".replace("|", "/").replace("\n", " ")]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ratio = (f"{r.conc['rps'] / base.conc['rps'] * 100:.0f}%" if base and r is not base else "—")
        size = f"{r.answer_bytes / MB:.2f}"
        if sequential:
            added = (r.seq["p50_us"] - base.seq["p50_us"]) / 1000 if base and base.seq and r is not base else None
            cells = [r.shape.label, r.target.system, r.target.route, size, ms(r.seq["p50_us"]), ms(r.seq["p95_us"]),
                     ms(r.seq["p99_us"]), fmt(added), f"{r.conc['rps']:.1f}", ratio, ms(r.conc["p50_us"]),
                     cpu_text(r.cpu_ms), str(errors(r)), rss]
        else:
            cells = [r.shape.label, r.target.system, r.target.route, size, f"{r.conc['rps']:.1f}", ratio,
                     ms(r.conc["p50_us"]), ms(r.conc["p99_us"]), cpu_text(r.cpu_ms), str(errors(r)), rss]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(main: list[Result], big: list[Result]) -> list[str]:
    """The issue's targets, checked per shape on this run's numbers."""
    lines = []

    def find(results, key, system, route_start=""):
        for r in results:
            if (r.shape.key, r.target.system) == (key, system) and r.target.route.startswith(route_start) and r.conc:
                return r
        return None

    for shape in SHAPES:
        direct, gateway = find(main, shape.key, "direct"), find(main, shape.key, "gateway", "chat")
        litellm = find(main, shape.key, "litellm")
        if not (direct and gateway and direct.seq and gateway.seq):
            continue
        added = (gateway.seq["p50_us"] - direct.seq["p50_us"]) / 1000
        share = gateway.conc["rps"] / direct.conc["rps"]
        parts = [f"added p50 {added:.1f} ms (≤ 5: {'yes' if added <= 5 else 'NO'})",
                 f"c8 {share * 100:.0f}% of direct (≥ 25%: {'yes' if share >= 0.25 else 'NO'})"]
        if litellm:
            times = gateway.conc["rps"] / litellm.conc["rps"]
            parts.append(f"{times:.1f}× LiteLLM (≥ 5×: {'yes' if times >= 5 else 'NO'})")
        big_gateway = find(big, shape.key, "gateway")
        if big_gateway and big_gateway.peak_rss_kb:
            mb = big_gateway.peak_rss_kb / 1024
            parts.append(f"memory case peak RSS/worker {mb:.0f} MB (≤ 150: {'yes' if mb <= 150 else 'NO'})")
        lines.append(f"- {shape.label}: " + "; ".join(parts))
    return lines


def report(args, info: dict, main: list[Result], big: list[Result], sizes: dict, load: tuple, elapsed: float,
           dropped: list[Result]) -> str:
    md = ["# Benchmark: gateway overhead on image-sized answers", "",
          f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} with `{' '.join(['.venv/bin/python', *sys.argv])}` "
          f"in {elapsed:.0f} s. Load average before / after: {load[0]} / {load[1]} "
          "(anything else running on the machine shows up in these numbers).", "",
          "| machine | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in info.items()]
    md += ["",
           f"Picture: a {sizes['main_w']}×{sizes['main_w']} noise PNG, {sizes['main_png'] / MB:.2f} MiB "
           f"({sizes['main_b64'] / MB:.2f} MiB of base64); *answer MiB* is what the system sends back per call. "
           f"Sequential: wrk -t1 -c1 for {args.seconds:g} s; concurrent: wrk -t2 -c8 for {args.seconds:g} s, "
           f"after a {args.warmup:g} s warm-up. *added p50* = p50 through the system − p50 direct (sequential); "
           "*vs direct* = answers/s at c8 through the system ÷ direct; *errors* = non-2xx answers plus socket "
           "errors and timeouts over both runs; *CPU ms/answer* = CPU time of the serving processes "
           "(nginx's worker for direct; the gunicorn workers; LiteLLM's processes) over both runs ÷ answers, "
           "as total (user+system): the figure least disturbed by other load on the machine; *peak RSS/worker* "
           "= the largest VmHWM among the serving processes, with their number (reset to the current RSS before "
           "each case: memory the allocator kept from earlier cases still counts).", ""]
    md += table(main, sequential=True)
    if big:
        md += ["", f"## 8 concurrent clients, {sizes['big_png'] / MB:.1f} MiB pictures (memory case)", "",
               f"wrk -t2 -c8 for {args.rss_seconds:g} s on {sizes['big_w']}×{sizes['big_w']} noise PNGs "
               f"({sizes['big_b64'] / MB:.1f} MiB of base64 per picture).", ""]
        md += table(big, sequential=False)
    lines = targets(main, big)
    if lines:
        md += ["", "## Targets on this run", ""] + lines
    overheads = [f"{r.shape.label} {r.target.route}: {r.overhead_ms:.1f} ms"
                 for r in main if r.overhead_ms is not None]
    if overheads:
        md += ["", "The gateway's own `x-gateway-overhead-ms` (median of the 3 checking requests): "
               + "; ".join(overheads) + "."]
    notes, seen = [], set()
    for r in main + big + dropped:
        if r.note and r.conc is None and (r.shape.key, r.target.system, r.target.route) not in seen:
            seen.add((r.shape.key, r.target.system, r.target.route))
            if r in dropped:
                notes.append(f"- {r.shape.label} via {r.target.system} ({r.target.route}): n/a. LiteLLM sends the "
                             "chat completion unchanged to the provider's /chat/completions (it does not turn chat "
                             "with modalities into an Images API call for this model), which the fake does not "
                             "serve, like the real provider for an image model; its Images API row is measured "
                             f"instead. Answer: {r.note}")
            else:
                notes.append(f"- {r.shape.label} via {r.target.system} ({r.target.route}): {r.note}")
    if notes:
        md += ["", "## Not measured", ""] + [n.replace("\n", " ")[:400] for n in notes]
    return "\n".join(md) + "\n"


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------

def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-mb", type=float, default=2,
                   help="picture size of the main cases, MiB (default 2; 8 for large pictures)")
    p.add_argument("--big-mb", type=float, default=8, help="picture size of the memory case, MiB (default 8)")
    p.add_argument("--seconds", type=float, default=4, help="duration of each wrk run (default 4)")
    p.add_argument("--rss-seconds", type=float, default=4, help="duration of each memory-case run (default 4)")
    p.add_argument("--warmup", type=float, default=1, help="unreported wrk warm-up before each case, s (default 1)")
    p.add_argument("--upstream-gzip", type=int, default=0, choices=range(0, 10), metavar="LEVEL",
                   help="the fake answers gzip (pre-compressed at LEVEL 1-9) to clients that accept it, as a "
                        "provider may when asked (requests and httpx ask by default); the gateway and LiteLLM "
                        "then decompress, direct runs stay identity. Default 0: identity, with Content-Length")
    p.add_argument("--shapes", default=",".join(s.key for s in SHAPES), help="comma-separated provider shapes")
    p.add_argument("--log-level", default="INFO", help="GATEWAY_LOG_LEVEL of the gateway (default INFO, as shipped)")
    p.add_argument("--gateway-env", action="append", default=[], type=env_pair, metavar="NAME=VALUE",
                   help="extra environment for the gateway, repeatable (GATEWAY_THREADS=16, WEB_CONCURRENCY=3, ...)")
    p.add_argument("--litellm", choices=("auto", "off"), default="auto",
                   help="auto: run LiteLLM when bench/.venv-litellm has it (default); off: skip it")
    p.add_argument("--litellm-workers", type=int, default=1, help="LiteLLM --num_workers (default 1, its default)")
    p.add_argument("--no-images-route", action="store_true",
                   help="skip the gateway's /v1/images/generations rows (OpenAI and Ark shapes)")
    p.add_argument("--no-big", action="store_true", help="skip the 8 MB memory case")
    p.add_argument("--output", type=Path, default=RESULTS_MD, help="Markdown file to write (default bench/results.md)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, configs) for inspection")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path("/usr/sbin/" + tool).exists():
            sys.exit(f"{tool} not found: apt-get install nginx-light wrk (or nginx)")
    os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin"
    shapes = [s for s in SHAPES if s.key in args.shapes.split(",")]
    started = time.monotonic()
    load_before = os.getloadavg()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops everything
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    services: list[Service] = []
    try:
        print("building pictures and answers ...", flush=True)
        main_pic = noise_png(int(args.image_mb * MB), seed=1)
        big_pic = noise_png(int(args.big_mb * MB), seed=8)
        fake = Fake(tmp, free_port(), {"": main_pic, BIG_PREFIX: big_pic}, args.upstream_gzip)
        nginx = Service("nginx", fake.command(), env=None, cwd=tmp, log=tmp / "nginx.log")
        services.append(nginx)
        probe = fake.url + SHAPES[0].path
        nginx.wait_ready(lambda: requests.post(probe, data=b"{}", timeout=2).status_code == 200, 20)

        key = "bench-" + secrets.token_urlsafe(16)
        litellm_bin = litellm_binary() if args.litellm == "auto" else None
        litellm_label = None
        if litellm_bin:
            litellm_label = f"{litellm_version()}, {args.litellm_workers} worker(s) (uvicorn), separate venv"
        elif args.litellm == "auto":
            print("LiteLLM not installed (sh bench/install_litellm.sh): running without it", flush=True)
        info = machine_info(args, litellm_label)
        for k, v in info.items():
            print(f"  {k}: {v}")

        bench = Bench(args, tmp)
        print("starting the gateway (Procfile command) ...", flush=True)
        gateway, gateway_url = start_gateway(tmp, "gateway", fake.url, key, args)
        services.append(gateway)
        gateway_workers = lambda: children(gateway.pid)  # noqa: E731
        litellm = litellm_url = None
        if litellm_bin:
            print("starting LiteLLM proxy ...", flush=True)
            try:
                litellm, litellm_url = start_litellm(tmp, fake.url, key, args.litellm_workers)
                services.append(litellm)
            except RuntimeError as exc:
                print(f"LiteLLM did not start, running without it: {exc}", flush=True)
                litellm_label = f"installed but did not start: {str(exc).splitlines()[0]}"
                info["litellm"] = litellm_label
        auth = (f"Authorization: Bearer {key}", "Content-Type: application/json")
        litellm_tree = (lambda: process_tree(litellm.pid)) if litellm else None
        litellm_workers = (lambda: litellm_serving(litellm.pid)) if litellm else None

        def targets_for(shape: Shape, picture: Picture, prefix: str, suffix: str, url_gateway: str,
                        workers_gateway, litellm_workers) -> list[Target]:
            out = [Target("direct", "provider API", fake.url + prefix + shape.path, shape.wire_body(),
                          shape.wire_headers, expect_bytes(fake.files[(prefix, shape.key)].read_bytes()),
                          cpu=lambda: children(nginx.pid))]
            out.append(Target("gateway", "chat (modalities)", url_gateway + "/v1/chat/completions",
                              chat_body(shape.model), auth, expect_picture(picture.b64), workers_gateway))
            if shape.images_api and not args.no_images_route:
                out.append(Target("gateway", "images/generations", url_gateway + "/v1/images/generations",
                                  images_body(shape.model), auth, expect_picture(picture.b64), workers_gateway))
            if litellm_url:
                # the chat route with modalities, as through the gateway, and for Images-API providers
                # LiteLLM's /v1/images/generations too. The Images API goes first: a failed chat call
                # puts LiteLLM's deployment in cooldown (429 for the next calls to the same model).
                if shape.images_api:
                    out.append(Target("litellm", "images/generations", litellm_url + "/v1/images/generations",
                                      images_body(shape.model + suffix), auth, expect_picture(picture.b64),
                                      litellm_workers, litellm_tree))
                out.append(Target("litellm", "chat (modalities)", litellm_url + "/v1/chat/completions",
                                  chat_body(shape.model + suffix), auth, expect_picture(picture.b64),
                                  litellm_workers, litellm_tree))
            return out

        print(f"\nmain cases: {main_pic.width}x{main_pic.height} PNG, {len(main_pic.png) / MB:.2f} MiB", flush=True)
        main_results: list[Result] = []
        for shape in shapes:
            for target in targets_for(shape, main_pic, "", "", gateway_url, gateway_workers, litellm_workers):
                result = bench.case(shape, target, sequential=True, seconds=args.seconds)
                main_results.append(result)
        main_results, dropped = drop_failed_alternatives(main_results)

        big_results: list[Result] = []
        if not args.no_big:
            print(f"\nmemory case: 8 concurrent clients, {big_pic.width}x{big_pic.height} PNG, "
                  f"{len(big_pic.png) / MB:.2f} MiB", flush=True)
            gateway.stop()
            services.remove(gateway)
            big_gateway, big_url = start_gateway(tmp, "gateway-8mb", fake.url + BIG_PREFIX, key, args)
            services.append(big_gateway)
            big_workers = lambda: children(big_gateway.pid)  # noqa: E731
            for shape in shapes:
                for target in targets_for(shape, big_pic, BIG_PREFIX, BIG_SUFFIX, big_url, big_workers,
                                          litellm_workers):
                    if target.route == "images/generations" and target.system == "gateway":
                        continue
                    big_results.append(bench.case(shape, target, sequential=False, seconds=args.rss_seconds))
            big_results, _ = drop_failed_alternatives(big_results)

        sizes = {"main_png": len(main_pic.png), "main_b64": len(main_pic.b64), "main_w": main_pic.width,
                 "big_png": len(big_pic.png), "big_b64": len(big_pic.b64), "big_w": big_pic.width}
        md = report(args, info, main_results, big_results, sizes, (fmt_load(load_before), fmt_load(os.getloadavg())),
                    time.monotonic() - started, dropped)
        args.output.write_text(md)
        print("\n" + md)
        print(f"written to {args.output}")
        return 0
    except Exception:
        print_tails(services)
        raise
    finally:
        stop_all(services)
        if args.keep_tmp:
            print(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def drop_failed_alternatives(results: list[Result]) -> tuple[list[Result], list[Result]]:
    """For LiteLLM both routes are tried; a failed one stays in the table only when no route worked."""
    kept, dropped = [], []
    for r in results:
        if r.target.system == "litellm" and r.conc is None:
            worked = any(o.shape.key == r.shape.key and o.target.system == "litellm" and o.conc for o in results)
            if worked:
                dropped.append(r)
                continue
        kept.append(r)
    return kept, dropped


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
