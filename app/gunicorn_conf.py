"""gunicorn settings for the Procfile: `gunicorn -c python:app.gunicorn_conf wsgi:app`.

gevent workers by default (GATEWAY_WORKER_CLASS), because a request spends nearly all its time
waiting for a provider and a waiting greenlet costs little: one instance holds thousands of
generations (bench/). The worker timeout sits above the upstream timeout so a slow provider is
answered with a 504, not a killed worker; JSON logs go to stdout for PaaS log routers (the app
writes one line per request, so gunicorn's own access log is off).

This module runs in the master, before the fork: nothing it imports opens a socket or starts a thread.
"""
import os
import resource
import shutil
import signal
import sys
import tempfile

# Metrics from several workers are summed through files in one directory (prometheus-client's
# multiprocess mode). It must be set before anything imports prometheus_client, so first here.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

# gevent must patch the standard library before anything imports code that uses ssl or sockets
# (requests, urllib3, redis, boto3): a module that took `ssl.SSLContext` before the patch recurses
# forever on its first TLS connection. The settings below import the provider modules, so with gevent
# the master patches here, before any import of the app, and the workers inherit patched modules
# (gunicorn's gevent worker patches again at start, which then changes nothing). This peek only
# decides whether to patch: Settings reads and checks GATEWAY_WORKER_CLASS below.
if os.environ.get("GATEWAY_WORKER_CLASS", "").strip().lower() in ("", "gevent"):
    from gevent import monkey
    monkey.patch_all()

from app import shedding, workers as _workers  # noqa: E402  (after the metrics directory is set)
from app.config import ConfigError, Settings  # noqa: E402

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    sys.exit(f"image-gateway: {exc}")  # one line naming the variable, not gunicorn's traceback

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = _workers.worker_class(_settings.worker_class)
threads = _settings.threads                                 # gthread only
worker_connections = _settings.connections_per_worker     # gevent: greenlets per worker
timeout = int(_settings.upstream_timeout + _settings.connect_timeout + 30)
graceful_timeout = 30
keepalive = 75  # above the idle timeout of common load balancers, so they close first
accesslog = None
# X-Forwarded-* are believed in one place only: the app's ProxyFix, when GATEWAY_TRUSTED_PROXIES is set
# (gunicorn would otherwise take X-Forwarded-Proto from any local peer)
forwarded_allow_ips = ""
loglevel = _settings.log_level.lower()

# gunicorn >= 25 opens a control socket under $HOME by default; this service needs none, and
# several instances on one host (or a read-only home on a PaaS) would trip over it.
control_socket_disable = True

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "app.observability.RequestIdFilter"}},
    "formatters": {"json": {"()": "app.observability.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"],
                            "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": _settings.log_level, "propagate": False},
        "gateway": {"handlers": ["stdout"], "level": _settings.log_level, "propagate": False},
    },
}


# generations in flight, counted across the workers (app/shedding.py): made here, shared by fork
_inflight = shedding.InflightTable()


def _raise_open_files_limit(needed: int) -> None:
    """Each generation in flight holds two sockets (client, provider): lift the soft limit (often 1024) to
    what GATEWAY_MAX_INFLIGHT needs, within the hard limit; the workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < needed:
        print(f"image-gateway: warning: the open-files limit ({hard}) is below the {needed} that "
              f"GATEWAY_MAX_INFLIGHT={_settings.max_inflight} needs; raise it (ulimit -n)", file=sys.stderr)


if _settings.worker_class == "gevent":
    _raise_open_files_limit(2 * _settings.connections_per_worker + 256)


def on_starting(server):
    """Before any worker: the database is reachable and at the current schema (SQLite: brought up to date).

    A database that cannot be used stops the service with one line and a non-zero exit.
    """
    import subprocess

    # in a child process: the database driver must not be imported here before workers fork (app/db/migrate.py)
    check = subprocess.run([sys.executable, "-m", "app.db.migrate"], capture_output=True, text=True)
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines() or [f"the database check failed (exit {check.returncode})"]
        sys.exit(f"image-gateway: {lines[-1]}")


def when_ready(server):
    """Listening: say which providers are live, where the playground is, and whether any client key exists."""
    from app.startup import announce, usable_database_keys
    announce(_settings, server.cfg.address, None if _settings.api_keys else usable_database_keys(_settings))


def pre_fork(server, worker):
    worker.inflight_slot = _inflight.assign(worker)


def child_exit(server, worker):
    """A worker ended: what it had in flight is gone, and its live metric files are retired."""
    _inflight.free(worker)
    from app.metrics import worker_exited
    worker_exited(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def post_fork(server, worker):
    """A booting worker dies on SIGTERM, counts its generations in its slot, and tunes its allocator."""
    # Until gunicorn installs the worker's own handlers, the worker runs the arbiter's, which only
    # queue a signal for the arbiter: a platform's SIGTERM to the process group (every restart)
    # reaching a worker still loading the app was lost, and shutdown waited graceful_timeout.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    shedding.use_shared_slot(_inflight, worker.inflight_slot)
    _tune_malloc()


def _tune_malloc():
    """Pictures over 4 MB get their own memory mappings, handed back to the system when freed.

    glibc otherwise raises its mmap threshold after the first large free, so later pictures land in
    per-thread heaps that keep their size after the request: with 64 threads, RSS drifts up (8 MB
    pictures: 142-154 MB per worker, 110 MB with this; bench/). Smaller buffers stay on the heap,
    and the heap is not trimmed below 64 MB, so everyday 2 MB pictures pay no page faults for it.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
