"""The gateway's tables as SQLAlchemy 2 models; the schema itself is made by the Alembic migrations."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# USD amounts: 8 decimals keep per-token prices (a few millionths of a dollar) exact
Money = Numeric(18, 8, asdecimal=True)


class Base(DeclarativeBase):
    """Every timestamp is naive UTC (the same on SQLite and PostgreSQL)."""


class ApiKey(Base):
    """A client key made with `image-gateway keys create` or the admin API; the secret is kept as SHA-256."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hint: Mapped[str] = mapped_column(String(20))  # "sk-gw-AbCd…": enough to recognise, not to use
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    images_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_usd: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    spent_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    models: Mapped[str | None] = mapped_column(Text, nullable=True)  # comma-separated fnmatch patterns
    answer_style: Mapped[str | None] = mapped_column(String(20), nullable=True)


class BudgetReservation(Base):
    """The most a request in flight may cost, held against its key's budget until it settles or expires."""

    __tablename__ = "budget_reservations"
    __table_args__ = (Index("ix_budget_reservations_key", "key_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id", ondelete="CASCADE"))
    amount_usd: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    expires_at: Mapped[datetime] = mapped_column(DateTime())


class ConcurrencyLease(Base):
    """A generation in flight for a key with a concurrency limit (without Redis); expires if its worker dies."""

    __tablename__ = "concurrency_leases"
    __table_args__ = (Index("ix_concurrency_leases_key", "key_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime())


class RateWindow(Base):
    """One fixed window's count of a sliding-window-counter limit (rpm, images per day), without Redis."""

    __tablename__ = "rate_windows"

    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id", ondelete="CASCADE"),
                                        primary_key=True)
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch seconds
    count: Mapped[int] = mapped_column(Integer, default=0)


class UsageRecord(Base):
    """The ledger: one row per request (DESIGN §7), written off the request path, idempotent by `id`."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_time", "created_at"),
                      Index("ix_usage_records_key_time", "key_id", "created_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    key_id: Mapped[str] = mapped_column(String(40))  # no foreign key: env-1... keys and deleted keys stay
    entry_point: Mapped[str] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(80), nullable=True)
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size: Mapped[str | None] = mapped_column(String(20), nullable=True)
    quality: Mapped[str | None] = mapped_column(String(20), nullable=True)
    images: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    replayed: Mapped[bool] = mapped_column(Boolean, default=False)


class ImageJob(Base):
    """An asynchronous generation (DESIGN §9): the request as it was sent, then its answer or error.

    The request (`request_body`) is kept until the job ends, so a runner that dies mid-job leaves
    enough to run it again; `runner` and `lease_expires_at` say who runs it and until when it is
    taken as alive (renewed while it works).
    """

    __tablename__ = "image_jobs"
    __table_args__ = (Index("ix_image_jobs_status_lease", "status", "lease_expires_at"),
                      Index("ix_image_jobs_expires", "expires_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))  # no foreign key: env-1... keys have no row
    status: Mapped[str] = mapped_column(String(20))   # queued, in_progress, succeeded, failed, cancelled
    mode: Mapped[str] = mapped_column(String(10))     # "process" (the web process runs it) or "queue" (a worker)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)  # deleted after this
    request_id: Mapped[str] = mapped_column(String(128))
    request_path: Mapped[str] = mapped_column(String(200))
    request_headers: Mapped[str] = mapped_column(Text)          # JSON: the headers the answer depends on
    request_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    base_url: Mapped[str] = mapped_column(Text)                 # where links in the result start
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)   # runs started
    runner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)  # queue mode: message sent
    result: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # the JSON answer
    error: Mapped[str | None] = mapped_column(Text, nullable=True)            # JSON: the OpenAI error object


class WebhookDelivery(Base):
    """A webhook message waiting to be delivered (or given up), shared by every process of the deployment."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_state_due", "state", "due_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(10))    # pending, sending, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(DateTime())
    created_at: Mapped[datetime] = mapped_column(DateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
