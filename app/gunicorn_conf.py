"""gunicorn settings for the Procfile: `gunicorn -c python:app.gunicorn_conf wsgi:app`.

Threaded workers, because a request spends nearly all its time waiting for a provider; the worker
timeout sits above the upstream timeout so a slow provider is answered with a 504, not a killed
worker; logs go to stdout for PaaS log routers.
"""
from app.config import Settings

_settings = Settings.from_env()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.threads
timeout = int(_settings.upstream_timeout + _settings.connect_timeout + 30)
graceful_timeout = 30
keepalive = 75  # above the idle timeout of common load balancers, so they close first
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
loglevel = _settings.log_level.lower()

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": _settings.log_level, "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gateway": {"handlers": ["stdout"], "level": _settings.log_level, "propagate": False},
    },
}

# gunicorn >= 25 opens a control socket under $HOME by default; this service needs none, and
# several instances on one host (or a read-only home on a PaaS) would trip over it.
control_socket_disable = True
