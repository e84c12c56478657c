"""gunicorn settings for the Procfile: `gunicorn -c python:app.gunicorn_conf wsgi:app`.

Threaded workers, because a request spends nearly all its time waiting for a provider; the worker
timeout sits above the upstream timeout so a slow provider is answered with a 504, not a killed
worker; JSON logs go to stdout for PaaS log routers (the app writes one line per request, so
gunicorn's own access log is off).
"""
import os
import shutil
import tempfile

# Metrics from several workers are summed through files in one directory (prometheus-client's
# multiprocess mode). It must be set before anything imports prometheus_client, so first here.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

from app.config import Settings  # noqa: E402  (after the metrics directory is set)

_settings = Settings.from_env()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.threads
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


def child_exit(server, worker):
    """A worker ended: its live metric files are retired (counters it recorded still count)."""
    from app.metrics import worker_exited
    worker_exited(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
