"""Settings: named defaults, read once from the environment (or a dict in tests), here only."""
from __future__ import annotations

import base64
import binascii
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping

from app import routing_config, thought_signatures
from app.answer_options import ANSWER_STYLES, DEFAULT_ANSWER_STYLE
from app.core.settings import ConfigError, ProviderSettings, parse_flag
from app.providers.registry import PROVIDERS

DEFAULT_PORT = 8000
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_WEB_CONCURRENCY = 2
DEFAULT_THREADS = 64
DEFAULT_UPSTREAM_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = 30.0
DEFAULT_FANOUT_THREADS = 4
DEFAULT_STREAM_KEEPALIVE = 5.0
DEFAULT_IMAGE_MODEL = "gpt-image-2.6-flare"  # OpenAI's recommended replacement for its retired image models
# resilience
DEFAULT_MAX_ATTEMPTS = 3           # per channel, first try included
DEFAULT_RETRY_BACKOFF = 0.5        # seconds; doubled each retry, with full jitter
DEFAULT_RETRY_MAX_WAIT = 8.0
DEFAULT_REQUEST_DEADLINE = 360.0   # a whole request, every retry and fallback included
DEFAULT_COOLDOWN_FAILURES = 3
DEFAULT_COOLDOWN_SECONDS = 30.0
DEFAULT_MAX_UPSTREAM_BYTES = 128 * 1024 * 1024
# no lost images
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0
DEFAULT_IDEMPOTENCY_MAX_BYTES = 1024 * 1024 * 1024
# limits on what a client may send
DEFAULT_MAX_MESSAGES = 256
DEFAULT_MAX_INPUT_IMAGES = 16
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PROMPT_CHARS = 32000
# delivery (issue 12): image store, signed links, webhooks
DEFAULT_DATA_DIR = "./var"
DEFAULT_IMAGE_URL_TTL = 3600.0
MAX_IMAGE_URL_TTL = 7 * 24 * 3600.0   # S3 presigned URLs (SigV4) live at most 7 days
DEFAULT_IMAGE_SWEEP_SECONDS = 300.0
MIN_URL_SIGNING_KEY_CHARS = 32
MIN_WEBHOOK_SECRET_BYTES = 24         # the Standard Webhooks recommendation (24 to 64 bytes)
WEBHOOK_SECRET_PREFIX = "whsec_"
NO_IMAGE_STORE = ("none", "off")
# worker model and load shedding (issue 15): sized in bench/ (README "Benchmark")
WORKER_CLASSES = ("gevent", "gthread")
DEFAULT_WORKER_CLASS = "gevent"
DEFAULT_MAX_INFLIGHT = 3000        # generations per instance, all workers together
DEFAULT_BODY_TIMEOUT = 60.0        # seconds a client may take to send its request body
CONNECTION_HEADROOM = 256          # gevent: connections per worker beyond GATEWAY_MAX_INFLIGHT

@dataclass(frozen=True)
class ImageStoreLocation:
    """Where pictures delivered as URLs are kept: a directory, an S3 bucket and prefix, or nowhere."""

    kind: str              # "file", "s3" or "none"
    path: str = ""         # file: an absolute directory
    bucket: str = ""       # s3
    prefix: str = ""       # s3: key prefix without leading or trailing slashes

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file://{self.path}"
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return "none"
# keys, limits, budgets and the usage ledger (GATEWAY_DATA_DIR is shared with delivery)
DEFAULT_DB_POOL_SIZE = 5
# hardening (issue 14): what one request may make the gateway hold or wait for
DEFAULT_MAX_TOTAL_IMAGE_BYTES = 64 * 1024 * 1024   # every input image of a request, downloads included
DEFAULT_DOWNLOAD_CONCURRENCY = 16                   # client image downloads at once, per worker process
# Gemini thought signatures kept between turns (app/thought_signatures.py says why this long)
DEFAULT_SIGNATURE_TTL = thought_signatures.DEFAULT_TTL
# jobs (issue 12 items 3 and 5)
DEFAULT_JOB_THREADS = 4
DEFAULT_JOB_TTL = 24 * 3600.0       # a finished job without links is kept this long
DEFAULT_JOB_LEASE = 30.0            # a job runner silent this long is taken for dead
MIN_JOB_LEASE = 1.0


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; built once, then only read.

    A secret setting is named `*_key`, `*_keys`, `*_token`, `*_secret` (or is the password of a
    `*_url`): app/core/redaction.py finds it by that name and keeps it out of answers and logs.
    """

    api_keys: tuple[str, ...] = ()
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_private_urls: bool = False
    download_max_bytes: int = DEFAULT_DOWNLOAD_MAX_BYTES
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT
    fanout_threads: int = DEFAULT_FANOUT_THREADS
    stream_keepalive: float = DEFAULT_STREAM_KEEPALIVE
    default_image_model: str = DEFAULT_IMAGE_MODEL
    log_prompts: bool = False
    metrics_token: str | None = None
    routing: routing_config.RoutingConfig | None = None   # from GATEWAY_CONFIG
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    retry_max_wait: float = DEFAULT_RETRY_MAX_WAIT
    retry_read_timeouts: bool = False
    request_deadline: float = DEFAULT_REQUEST_DEADLINE
    cooldown_failures: int = DEFAULT_COOLDOWN_FAILURES
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    max_upstream_bytes: int = DEFAULT_MAX_UPSTREAM_BYTES
    idempotency_dir: str = ""
    idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL
    idempotency_max_bytes: int = DEFAULT_IDEMPOTENCY_MAX_BYTES
    redis_url: str | None = None
    keepalive_seconds: float = 0.0
    max_messages: int = DEFAULT_MAX_MESSAGES
    max_input_images: int = DEFAULT_MAX_INPUT_IMAGES
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    trusted_proxies: int = 0
    port: int = DEFAULT_PORT
    web_concurrency: int = DEFAULT_WEB_CONCURRENCY
    threads: int = DEFAULT_THREADS
    log_level: str = "INFO"
    # answer styles (i11)
    answer_style: str = DEFAULT_ANSWER_STYLE
    # Gemini thought signatures kept between turns (i11-models)
    signature_ttl: float = DEFAULT_SIGNATURE_TTL
    # delivery (issue 12): image store, signed links, webhooks
    data_dir: str = DEFAULT_DATA_DIR
    image_store: ImageStoreLocation = ImageStoreLocation("none")
    s3_endpoint_url: str | None = None
    image_url_ttl: float = DEFAULT_IMAGE_URL_TTL
    url_signing_key: str | None = None
    public_url: str | None = None
    accel_redirect_prefix: str | None = None
    image_sweep_interval: float = DEFAULT_IMAGE_SWEEP_SECONDS
    webhook_secret: bytes | None = None
    # keys, limits, budgets and the usage ledger (i10-keys; the database defaults to SQLite in data_dir)
    database_url: str = ""              # normalised SQLAlchemy URL: DATABASE_URL, else SQLite under data_dir
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    admin_token: str | None = None
    # hardening (issue 14)
    max_total_image_bytes: int = DEFAULT_MAX_TOTAL_IMAGE_BYTES
    download_concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY
    # jobs (issue 12 items 3 and 5): in the web process, or on a queue worker when redis_url is set
    job_threads: int = DEFAULT_JOB_THREADS
    job_ttl: float = DEFAULT_JOB_TTL
    job_lease: float = DEFAULT_JOB_LEASE
    # worker model and load shedding (issue 15)
    worker_class: str = DEFAULT_WORKER_CLASS
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    @property
    def connections_per_worker(self) -> int:
        """Requests one worker serves at once: its threads (gthread), or as many as the instance may hold (gevent).

        Under gevent a waiting request costs a greenlet, so one worker may hold every generation the
        instance admits (the kernel does not spread connections evenly), plus room for probes, scrapes
        and requests about to be shed.
        """
        if self.worker_class == "gthread":
            return self.threads
        return self.max_inflight + CONNECTION_HEADROOM

    def __repr__(self) -> str:  # never print client keys
        return f"Settings(api_keys=<{len(self.api_keys)} keys>, providers={list(self.providers)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, object] | None = None) -> "Settings":
        """Parse settings from an environment-like mapping (os.environ by default).

        Tests pass a plain dict with the same variable names, so there is one parsing path.
        """
        mapping = os.environ if environ is None else environ
        env = _Env(mapping)
        data_dir = os.path.abspath(env.text("GATEWAY_DATA_DIR") or DEFAULT_DATA_DIR)
        timeout = env.number("GATEWAY_UPSTREAM_TIMEOUT", DEFAULT_UPSTREAM_TIMEOUT, minimum=1)
        providers = {name: _provider(name, cls.env_prefix, cls.default_base_url, env, timeout)
                     for name, cls in PROVIDERS.items()}
        return cls(
            api_keys=env.words("GATEWAY_API_KEYS"),
            providers=providers,
            upstream_timeout=timeout,
            connect_timeout=env.number("GATEWAY_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, minimum=0.1),
            max_body_bytes=int(env.number("GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024)),
            allow_private_urls=env.flag("GATEWAY_ALLOW_PRIVATE_URLS", False),
            download_max_bytes=int(env.number("GATEWAY_DOWNLOAD_MAX_BYTES", DEFAULT_DOWNLOAD_MAX_BYTES, minimum=1024)),
            download_timeout=env.number("GATEWAY_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT, minimum=0.1),
            fanout_threads=int(env.number("GATEWAY_FANOUT_THREADS", DEFAULT_FANOUT_THREADS, minimum=1)),
            stream_keepalive=env.number("GATEWAY_STREAM_KEEPALIVE_SECONDS", DEFAULT_STREAM_KEEPALIVE, minimum=0.05),
            default_image_model=env.text("GATEWAY_DEFAULT_IMAGE_MODEL") or DEFAULT_IMAGE_MODEL,
            log_prompts=env.flag("GATEWAY_LOG_PROMPTS", False),
            metrics_token=env.text("GATEWAY_METRICS_TOKEN") or None,
            routing=_routing(env.text("GATEWAY_CONFIG"), mapping),
            max_attempts=int(env.number("GATEWAY_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, minimum=1)),
            retry_backoff=env.number("GATEWAY_RETRY_BACKOFF_SECONDS", DEFAULT_RETRY_BACKOFF, minimum=0),
            retry_max_wait=env.number("GATEWAY_RETRY_MAX_WAIT_SECONDS", DEFAULT_RETRY_MAX_WAIT, minimum=0),
            retry_read_timeouts=env.flag("GATEWAY_RETRY_READ_TIMEOUTS", False),
            request_deadline=env.number("GATEWAY_REQUEST_DEADLINE", DEFAULT_REQUEST_DEADLINE, minimum=1),
            cooldown_failures=int(env.number("GATEWAY_COOLDOWN_FAILURES", DEFAULT_COOLDOWN_FAILURES, minimum=1)),
            cooldown_seconds=env.number("GATEWAY_COOLDOWN_SECONDS", DEFAULT_COOLDOWN_SECONDS, minimum=0),
            max_upstream_bytes=int(env.number("GATEWAY_MAX_UPSTREAM_BYTES", DEFAULT_MAX_UPSTREAM_BYTES,
                                              minimum=1024)),
            idempotency_dir=env.text("GATEWAY_IDEMPOTENCY_DIR")
            or os.path.join(tempfile.gettempdir(), "image-gateway-idempotency"),
            idempotency_ttl=env.number("GATEWAY_IDEMPOTENCY_TTL_SECONDS", DEFAULT_IDEMPOTENCY_TTL, minimum=1),
            idempotency_max_bytes=int(env.number("GATEWAY_IDEMPOTENCY_MAX_BYTES", DEFAULT_IDEMPOTENCY_MAX_BYTES,
                                                 minimum=1024)),
            redis_url=env.text("GATEWAY_REDIS_URL") or None,
            keepalive_seconds=env.number("GATEWAY_KEEPALIVE_SECONDS", 0, minimum=0),
            max_messages=int(env.number("GATEWAY_MAX_MESSAGES", DEFAULT_MAX_MESSAGES, minimum=1)),
            max_input_images=int(env.number("GATEWAY_MAX_INPUT_IMAGES", DEFAULT_MAX_INPUT_IMAGES, minimum=1)),
            max_image_bytes=int(env.number("GATEWAY_MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES, minimum=1024)),
            max_prompt_chars=int(env.number("GATEWAY_MAX_PROMPT_CHARS", DEFAULT_MAX_PROMPT_CHARS, minimum=1)),
            trusted_proxies=int(env.number("GATEWAY_TRUSTED_PROXIES", 0, minimum=0)),
            port=env.whole("PORT", DEFAULT_PORT, minimum=1, maximum=65535),
            web_concurrency=env.whole("WEB_CONCURRENCY", DEFAULT_WEB_CONCURRENCY, minimum=1),
            threads=env.whole("GATEWAY_THREADS", DEFAULT_THREADS, minimum=1),
            log_level=env.choice("GATEWAY_LOG_LEVEL", LOG_LEVELS, "info").upper(),
            answer_style=env.choice("GATEWAY_ANSWER_STYLE", ANSWER_STYLES, DEFAULT_ANSWER_STYLE),
            signature_ttl=env.number("GATEWAY_SIGNATURE_TTL_SECONDS", DEFAULT_SIGNATURE_TTL, minimum=1),
            # delivery (issue 12)
            data_dir=data_dir,
            image_store=_image_store(env.text("GATEWAY_IMAGE_STORE"), data_dir),
            s3_endpoint_url=_http_url(env.text("GATEWAY_S3_ENDPOINT_URL"), "GATEWAY_S3_ENDPOINT_URL"),
            image_url_ttl=_at_most(env.number("GATEWAY_IMAGE_URL_TTL", DEFAULT_IMAGE_URL_TTL, minimum=1),
                                   MAX_IMAGE_URL_TTL, "GATEWAY_IMAGE_URL_TTL"),
            url_signing_key=_signing_key(env.text("GATEWAY_URL_SIGNING_KEY")),
            public_url=_http_url(env.text("GATEWAY_PUBLIC_URL"), "GATEWAY_PUBLIC_URL"),
            accel_redirect_prefix=_accel_prefix(env.text("GATEWAY_ACCEL_REDIRECT_PREFIX")),
            image_sweep_interval=env.number("GATEWAY_IMAGE_SWEEP_SECONDS", DEFAULT_IMAGE_SWEEP_SECONDS, minimum=1),
            webhook_secret=_webhook_secret(env.text("GATEWAY_WEBHOOK_SECRET")),
            database_url=_database_url(env, data_dir),
            db_pool_size=int(env.number("GATEWAY_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE, minimum=1)),
            admin_token=env.text("GATEWAY_ADMIN_TOKEN") or None,
            # hardening (issue 14)
            max_total_image_bytes=int(env.number("GATEWAY_MAX_TOTAL_IMAGE_BYTES", DEFAULT_MAX_TOTAL_IMAGE_BYTES,
                                                 minimum=1024)),
            download_concurrency=int(env.number("GATEWAY_DOWNLOAD_CONCURRENCY", DEFAULT_DOWNLOAD_CONCURRENCY,
                                                minimum=1)),
            # jobs (issue 12)
            job_threads=int(env.number("GATEWAY_JOB_THREADS", DEFAULT_JOB_THREADS, minimum=1)),
            job_ttl=env.number("GATEWAY_JOB_TTL_SECONDS", DEFAULT_JOB_TTL, minimum=60),
            job_lease=env.number("GATEWAY_JOB_LEASE_SECONDS", DEFAULT_JOB_LEASE, minimum=MIN_JOB_LEASE),
            # worker model and load shedding (issue 15)
            worker_class=env.choice("GATEWAY_WORKER_CLASS", WORKER_CLASSES, DEFAULT_WORKER_CLASS),
            max_inflight=int(env.number("GATEWAY_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT, minimum=1)),
            body_timeout=env.number("GATEWAY_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT, minimum=1),
        )


def _database_url(env: "_Env", data_dir: str) -> str:
    from app.db.urls import BadDatabaseUrl, database_url
    try:
        return database_url(env.text("DATABASE_URL"), data_dir)
    except BadDatabaseUrl as exc:
        raise ConfigError(f"DATABASE_URL {exc}") from None


def _provider(name: str, prefix: str, default_base: str, env: "_Env", timeout: float) -> ProviderSettings:
    """A provider's account from <PREFIX>_API_KEY, _BASE_URL, _MODELS; any other <PREFIX>_X is option `x`."""
    own = (f"{prefix}_API_KEY", f"{prefix}_BASE_URL", f"{prefix}_MODELS")
    options = {key[len(prefix) + 1:].lower(): value for key, value in env.items()
               if key.startswith(prefix + "_") and key not in own}
    return ProviderSettings(
        name=name,
        api_key=env.text(f"{prefix}_API_KEY") or None,
        base_url=(env.text(f"{prefix}_BASE_URL") or default_base).rstrip("/"),
        timeout=timeout,
        extra_models=env.words(f"{prefix}_MODELS"),
        options=options,
        key_env=f"{prefix}_API_KEY",
    )


def _routing(path: str, environ: Mapping[str, object]) -> routing_config.RoutingConfig:
    if not path:
        return routing_config.RoutingConfig()
    return routing_config.load(path, environ, providers=tuple(PROVIDERS))


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _image_store(raw: str, data_dir: str) -> ImageStoreLocation:
    """GATEWAY_IMAGE_STORE: file:///dir (default $GATEWAY_DATA_DIR/images), s3://bucket/prefix, or none."""
    name = "GATEWAY_IMAGE_STORE"
    if not raw:
        return ImageStoreLocation("file", path=os.path.join(data_dir, "images"))
    if raw.lower() in NO_IMAGE_STORE:
        return ImageStoreLocation("none")
    if raw.startswith("file:"):
        rest = raw[len("file:"):]
        if rest.startswith("//"):  # file:///abs or file://localhost/abs
            host, slash, path = rest[2:].partition("/")
            if host not in ("", "localhost") or not slash:
                raise ConfigError(f"{name} must be file:///absolute/dir, got {raw!r}")
            rest = "/" + path
        if not rest.strip("/"):
            raise ConfigError(f"{name} names no directory: {raw!r}")
        return ImageStoreLocation("file", path=os.path.abspath(rest))
    if raw.startswith("s3://"):
        bucket, _, prefix = raw[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket):
            raise ConfigError(f"{name} must be s3://bucket/prefix with a valid bucket name, got {raw!r}")
        return ImageStoreLocation("s3", bucket=bucket, prefix=prefix.strip("/"))
    raise ConfigError(f"{name} must be file:///dir, s3://bucket/prefix or none, got {raw!r}")


def _http_url(raw: str, name: str) -> str | None:
    """A base URL (scheme and host, maybe a path), without a trailing slash."""
    if not raw:
        return None
    if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", raw):
        raise ConfigError(f"{name} must be an http(s) URL without query or fragment, got {raw!r}")
    return raw.rstrip("/")


def _at_most(value: float, maximum: float, name: str) -> float:
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:g}, got {value:g}")
    return value


def _signing_key(raw: str) -> str | None:
    if raw and len(raw) < MIN_URL_SIGNING_KEY_CHARS:
        raise ConfigError(f"GATEWAY_URL_SIGNING_KEY must be at least {MIN_URL_SIGNING_KEY_CHARS} characters "
                          "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return raw or None


def _accel_prefix(raw: str) -> str | None:
    """The internal nginx location pictures are handed to, e.g. /_gateway_images/."""
    if not raw:
        return None
    if not re.match(r"^/[A-Za-z0-9._~/-]*$", raw):
        raise ConfigError(f"GATEWAY_ACCEL_REDIRECT_PREFIX must be a path starting with /, got {raw!r}")
    return raw.rstrip("/") + "/"


def _webhook_secret(raw: str) -> bytes | None:
    """GATEWAY_WEBHOOK_SECRET in the Standard Webhooks form: whsec_ + base64 (the prefix may be left out)."""
    if not raw:
        return None
    text = raw.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        secret = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) < MIN_WEBHOOK_SECRET_BYTES:
        raise ConfigError(f"GATEWAY_WEBHOOK_SECRET must be whsec_ followed by the base64 of at least "
                          f"{MIN_WEBHOOK_SECRET_BYTES} random bytes (e.g. python3 -c 'import base64, secrets; "
                          "print(\"whsec_\" + base64.b64encode(secrets.token_bytes(32)).decode())')")
    return secret


class _Env:
    """Typed reads from an environment mapping; every error names the variable."""

    def __init__(self, mapping: Mapping[str, object]):
        self._mapping = mapping

    def items(self):
        return ((str(k), self.text(str(k))) for k in self._mapping)

    def text(self, name: str) -> str:
        value = self._mapping.get(name)
        return "" if value is None else str(value).strip()

    def words(self, name: str) -> tuple[str, ...]:
        value = self._mapping.get(name)
        if isinstance(value, (list, tuple)):
            return tuple(str(v).strip() for v in value if str(v).strip())
        return tuple(part.strip() for part in self.text(name).split(",") if part.strip())

    def number(self, name: str, default: float, minimum: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
        return value

    def whole(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        """A whole number within [minimum, maximum] (gunicorn's own settings: workers, threads, port)."""
        raw = self.text(name)
        if not raw:
            return default
        if not re.fullmatch(r"[0-9]{1,9}", raw):
            raise ConfigError(f"{name} must be a whole number, got {raw!r}")
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{name} must be {bounds}, got {raw!r}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.text(name)
        if not raw:
            return default
        if raw.lower() not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw.lower()

    def flag(self, name: str, default: bool) -> bool:
        return parse_flag(self._mapping.get(name), name, default)
