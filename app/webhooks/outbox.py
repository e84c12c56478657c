"""Pending webhook deliveries, kept on disk so a restart loses none.

The `Outbox` contract is what the dispatcher needs; `DirectoryOutbox` keeps it with files (one per
delivery, moved between `pending/`, `sending/` and `failed/` by atomic renames), shared by every
worker and instance that shares the directory. A database table can keep the same contract.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Protocol

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
SENDING_LEASE = 120.0          # a claim older than this belonged to a process that died mid-send
FAILED_KEPT_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Delivery:
    """One webhook message to one URL; the same `id` (the webhook-id header) on every attempt."""

    id: str
    url: str
    body: bytes
    attempts: int = 0        # attempts made so far
    due: float = 0.0         # unix seconds of the next attempt
    created: float = 0.0
    last_error: str | None = None

    @classmethod
    def new(cls, url: str, body: bytes, now: float) -> "Delivery":
        return cls(id="msg_" + secrets.token_urlsafe(18), url=url, body=body, due=now, created=now)

    def to_bytes(self) -> bytes:
        fields = asdict(self)
        fields["body"] = self.body.decode("utf-8")
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Delivery":
        fields = json.loads(data)
        fields["body"] = fields["body"].encode("utf-8")
        return cls(**fields)


class Outbox(Protocol):
    """Where deliveries wait. A claimed delivery is invisible to other dispatchers until it is
    finished, rescheduled or given up — or until its claim is older than the lease (a dead sender)."""

    def add(self, delivery: Delivery) -> None: ...

    def claim_due(self, now: float, limit: int) -> list[Delivery]: ...

    def finish(self, delivery: Delivery) -> None: ...

    def reschedule(self, delivery: Delivery, due: float, error: str) -> None: ...

    def give_up(self, delivery: Delivery, error: str) -> None: ...

    def next_due(self) -> float | None: ...


class DirectoryOutbox:
    """pending/<due-ms>_<id>.json -> sending/<id>.json -> (deleted | pending again | failed/<id>.json)."""

    def __init__(self, root: str, lease: float = SENDING_LEASE):
        self.root = root
        self.lease = lease
        self.pending = os.path.join(root, "pending")
        self.sending = os.path.join(root, "sending")
        self.failed = os.path.join(root, "failed")

    def add(self, delivery: Delivery) -> None:
        for directory in (self.pending, self.sending, self.failed):
            os.makedirs(directory, mode=DIRECTORY_MODE, exist_ok=True)
        self._write(os.path.join(self.pending, _pending_name(delivery)), delivery)

    def claim_due(self, now: float, limit: int) -> list[Delivery]:
        self._recover_abandoned(now)
        claimed = []
        for name in sorted(_listing(self.pending)):
            due, _, message_id = name.partition("_")
            if not due.isdigit() or not name.endswith(".json"):
                continue
            if int(due) / 1000 > now or len(claimed) >= limit:
                break
            target = os.path.join(self.sending, message_id)
            try:
                os.rename(os.path.join(self.pending, name), target)  # only one claimant succeeds
            except FileNotFoundError:
                continue
            try:
                with open(target, "rb") as handle:
                    claimed.append(Delivery.from_bytes(handle.read()))
            except (OSError, ValueError, TypeError, KeyError):
                os.replace(target, os.path.join(self.failed, message_id))  # unreadable: set aside, not retried forever
        return claimed

    def finish(self, delivery: Delivery) -> None:
        _remove(self._sending_path(delivery))

    def reschedule(self, delivery: Delivery, due: float, error: str) -> None:
        updated = replace(delivery, attempts=delivery.attempts + 1, due=due, last_error=error)
        sending = self._sending_path(delivery)
        self._write(sending, updated)  # a crash from here on leaves it claimed: recovered after the lease
        os.rename(sending, os.path.join(self.pending, _pending_name(updated)))

    def give_up(self, delivery: Delivery, error: str) -> None:
        updated = replace(delivery, attempts=delivery.attempts + 1, last_error=error)
        sending = self._sending_path(delivery)
        self._write(sending, updated)
        os.rename(sending, os.path.join(self.failed, f"{delivery.id}.json"))

    def next_due(self) -> float | None:
        dues = [int(name.partition("_")[0]) for name in _listing(self.pending) if name.partition("_")[0].isdigit()]
        return min(dues) / 1000 if dues else None

    def _recover_abandoned(self, now: float) -> None:
        """Claims held longer than the lease go back to pending, due now; old failures are dropped."""
        for name in _listing(self.sending):
            path = os.path.join(self.sending, name)
            try:
                # ctime: a rename sets it, so it is when the claim was taken
                if name.endswith(".json") and now - os.stat(path).st_ctime > self.lease:
                    os.rename(path, os.path.join(self.pending, f"{int(now * 1000):013d}_{name}"))
            except FileNotFoundError:
                continue
        for name in _listing(self.failed):
            path = os.path.join(self.failed, name)
            try:
                if now - os.stat(path).st_mtime > FAILED_KEPT_SECONDS:
                    os.unlink(path)
            except FileNotFoundError:
                continue

    def _sending_path(self, delivery: Delivery) -> str:
        return os.path.join(self.sending, f"{delivery.id}.json")

    @staticmethod
    def _write(path: str, delivery: Delivery) -> None:
        temp = f"{path}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(delivery.to_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)


def _pending_name(delivery: Delivery) -> str:
    return f"{int(delivery.due * 1000):013d}_{delivery.id}.json"


def _listing(directory: str) -> list[str]:
    try:
        return [name for name in os.listdir(directory) if not name.endswith(".tmp")]
    except FileNotFoundError:
        return []


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
