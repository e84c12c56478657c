"""Where Idempotency-Key answers and in-flight claims live: files on this machine, or Redis for several."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import stat
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator

from app.redis_link import RedisLink, RedisUnavailable

RECORD_FORMAT = 1
# FileStore names: <key>.record (an answer), <key>.claim (a request in flight), .<...>.tmp (being written)
RECORD_SUFFIX = ".record"
CLAIM_SUFFIX = ".claim"
TEMP_SUFFIX = ".tmp"
ASIDE_SUFFIX = ".stale"
TEMP_MAX_AGE = 3600.0        # a temp file this old was abandoned by a crashed writer
DEFAULT_CLAIM_LIFETIME = 390.0
DIRECTORY_MODE = 0o700       # the answers are other people's images
FILE_MODE = 0o600
_KEY = re.compile(r"[0-9a-f]{16,128}")
# Redis (the link itself: app/redis_link.py)
REDIS_PREFIX = "gateway:idempotency:"


class StoreUnavailable(Exception):
    """The store cannot be used right now (disk, permissions, Redis down). The message holds no secret."""


@dataclass(frozen=True)
class Record:
    """A kept answer: the request's fingerprint, then what is replayed (status, headers, body)."""

    fingerprint: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def to_bytes(self) -> bytes:
        # one JSON line (json.dumps escapes every newline), then the body bytes untouched
        head = json.dumps({"format": RECORD_FORMAT, "fingerprint": self.fingerprint, "status": self.status,
                           "headers": [list(pair) for pair in self.headers]}, separators=(",", ":"))
        return head.encode("ascii") + b"\n" + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> "Record":
        """Parse `to_bytes` output; ValueError when it is not one (torn write, other format)."""
        head, newline, body = data.partition(b"\n")
        if not newline:
            raise ValueError("record has no header line")
        meta = json.loads(head)
        if not isinstance(meta, dict) or meta.get("format") != RECORD_FORMAT:
            raise ValueError("unknown record format")
        return cls(fingerprint=str(meta["fingerprint"]), status=int(meta["status"]),
                   headers=tuple((str(name), str(value)) for name, value in meta["headers"]), body=body)


class IdempotencyStore:
    """The contract both stores keep. `key` is a hex digest (never a raw client or Idempotency-Key value).

    - `get(key)`: the live record, or None (missing or older than the TTL).
    - `claim(key, fingerprint)`: an opaque token when the caller now owns the key (nobody else holds
      a live claim), else None. A claim lives `claim_lifetime` seconds unless put or released first;
      after that it is stale and the next `claim` takes it over.
    - `claimant(key)`: the fingerprint of the live claim on `key`, "" when it is live but unreadable,
      None when there is no live claim.
    - `put(key, token, record)`: keep `record` for the TTL, then release the claim `token` holds.
      A record larger than `max_record_bytes` is not kept (the claim is still released).
    - `release(key, token)`: drop the claim if `token` still holds it.
    - `writer(key, token, head)`: a RecordWriter for an answer whose body arrives in pieces
      (`head` is the record with an empty body); its `commit` is `put`, its `abort` is `release`.

    Every method raises StoreUnavailable, and nothing else, when the backing storage fails.
    """

    ttl: float
    max_record_bytes: int
    claim_lifetime: float

    def get(self, key: str) -> Record | None:
        raise NotImplementedError

    def claim(self, key: str, fingerprint: str) -> str | None:
        raise NotImplementedError

    def claimant(self, key: str) -> str | None:
        raise NotImplementedError

    def put(self, key: str, token: str, record: Record) -> None:
        raise NotImplementedError

    def release(self, key: str, token: str) -> None:
        raise NotImplementedError

    def writer(self, key: str, token: str, head: Record) -> "RecordWriter":
        return RecordWriter(self, key, token, head)


class RecordWriter:
    """A record whose body arrives piece by piece: `write` each piece, then `commit` or `abort`.

    This one gathers the pieces in memory and `put`s them; a piece past `max_record_bytes` makes it
    drop what it has (the answer is then not kept). Both endings release the claim.
    """

    def __init__(self, store: IdempotencyStore, key: str, token: str, head: Record):
        self.store, self.key, self.token, self.head = store, key, token, head
        self.size = len(head.to_bytes())
        self.too_big = False
        self._pieces: list[bytes] = []

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.store.max_record_bytes:
            self.too_big = True
            self._pieces = []
        if not self.too_big:
            self._pieces.append(piece)

    def commit(self) -> None:
        if self.too_big:
            self.abort()
        else:
            self.store.put(self.key, self.token, replace(self.head, body=b"".join(self._pieces)))

    def abort(self) -> None:
        self._pieces = []
        self.store.release(self.key, self.token)


def from_settings(settings, claim_lifetime: float) -> IdempotencyStore:
    """Redis when GATEWAY_REDIS_URL is set (several machines), files under GATEWAY_IDEMPOTENCY_DIR otherwise."""
    if settings.redis_url:
        return RedisStore(settings.redis_url, settings.idempotency_ttl, max_record_bytes=settings.idempotency_max_bytes,
                          claim_lifetime=claim_lifetime)
    return FileStore(settings.idempotency_dir, settings.idempotency_ttl, settings.idempotency_max_bytes,
                     claim_lifetime=claim_lifetime)


class FileStore(IdempotencyStore):
    """Files in one directory, shared by every gunicorn worker (and instance) on this machine.

    Claims are lock files made with O_CREAT | O_EXCL, so exactly one process wins a key; records are
    written to a temp file and os.replace'd, so a reader sees a whole record or none. Expired records
    are ignored on read and swept on write, when the oldest are also evicted to stay under max_bytes.
    """

    def __init__(self, directory: str, ttl: float, max_bytes: int, *, claim_lifetime: float = DEFAULT_CLAIM_LIFETIME):
        self.directory = directory
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_record_bytes = max_bytes
        self.claim_lifetime = claim_lifetime
        self._host = socket.gethostname()

    def describe(self) -> str:
        return f"files in {self.directory}"

    # --- the contract ---

    def get(self, key: str) -> Record | None:
        path = self._path(key, RECORD_SUFFIX)
        with self._failures():
            try:
                with open(path, "rb") as handle:
                    if os.fstat(handle.fileno()).st_mtime + self.ttl <= time.time():
                        _unlink(path)
                        return None
                    data = handle.read()
            except FileNotFoundError:
                return None
        try:
            return Record.from_bytes(data)
        except (ValueError, KeyError, TypeError):
            _unlink(path)  # a torn or foreign file: as good as missing
            return None

    def claim(self, key: str, fingerprint: str) -> str | None:
        path = self._path(key, CLAIM_SUFFIX)
        token = secrets.token_hex(16)
        content = json.dumps({"token": token, "fingerprint": fingerprint, "pid": os.getpid(),
                              "host": self._host}).encode()
        with self._failures():
            self._ensure_directory()
            for _ in range(2):  # a second go after clearing a stale claim
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
                except FileExistsError:
                    if not self._clear_stale(path):
                        return None
                    continue
                try:
                    os.write(fd, content)
                finally:
                    os.close(fd)
                return token
        return None

    def claimant(self, key: str) -> str | None:
        with self._failures():
            held = _read_claim(self._path(key, CLAIM_SUFFIX))
        if held is None or self._is_stale(*held):
            return None
        return str(held[0].get("fingerprint", ""))

    def put(self, key: str, token: str, record: Record) -> None:
        data = record.to_bytes()
        with self._failures():
            try:
                if len(data) <= self.max_record_bytes:
                    self._ensure_directory()
                    self._make_room(len(data))
                    self._write(self._path(key, RECORD_SUFFIX), data)
            finally:
                self.release(key, token)

    def release(self, key: str, token: str) -> None:
        path = self._path(key, CLAIM_SUFFIX)
        with self._failures():
            held = _read_claim(path)
            # Read-then-unlink is not atomic, but a claim is only taken over once it is stale, i.e. once
            # its owner has run past every deadline; by then nobody is releasing it.
            if held is not None and held[0].get("token") == token:
                _unlink(path)

    def writer(self, key: str, token: str, head: Record) -> RecordWriter:
        return _FileRecordWriter(self, key, token, head)

    # --- files ---

    def _path(self, key: str, suffix: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError("store keys are hex digests")
        return os.path.join(self.directory, key + suffix)

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StoreUnavailable(f"{self.describe()}: {exc.strerror or type(exc).__name__}") from exc

    def _ensure_directory(self) -> None:
        os.makedirs(self.directory, mode=DIRECTORY_MODE, exist_ok=True)
        # The default lives in the shared temp directory: refuse one that another user made (or a
        # symlink planted there), which could read or forge the answers kept in it.
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise StoreUnavailable(f"{self.directory} is not a directory owned by this user")

    def _temp_for(self, path: str) -> str:
        return os.path.join(self.directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}{TEMP_SUFFIX}")

    def _write(self, path: str, data: bytes) -> None:
        temp = self._temp_for(path)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        except BaseException:
            _unlink(temp)
            raise

    def _make_room(self, incoming: int) -> None:
        """Sweep expired records and abandoned files, then evict the oldest records until `incoming` fits.

        Several processes may do this at once; each then frees enough for itself, so the directory can
        briefly go over by the records written concurrently, and the next write brings it back.
        """
        now = time.time()
        records = []
        total = 0
        for entry in os.scandir(self.directory):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if entry.name.endswith(RECORD_SUFFIX):
                if info.st_mtime + self.ttl <= now:
                    _unlink(entry.path)
                else:
                    records.append((info.st_mtime, info.st_size, entry.path))
                    total += info.st_size
            elif entry.name.endswith((TEMP_SUFFIX, ASIDE_SUFFIX)) and info.st_mtime + TEMP_MAX_AGE <= now:
                _unlink(entry.path)
            elif entry.name.endswith(CLAIM_SUFFIX) and info.st_mtime + self.claim_lifetime <= now:
                _unlink(entry.path)  # claims for keys nobody retried
        records.sort()
        while records and total + incoming > self.max_bytes:
            _, size, path = records.pop(0)
            _unlink(path)
            total -= size

    def _is_stale(self, info: dict, status: os.stat_result) -> bool:
        if status.st_mtime + self.claim_lifetime <= time.time():
            return True
        # a claim made on this machine by a process that is gone (a killed worker) is stale at once
        pid = info.get("pid")
        return info.get("host") == self._host and isinstance(pid, int) and not _alive(pid)

    def _clear_stale(self, path: str) -> bool:
        """Remove the claim at `path` if it is stale. True when the path may now be free."""
        held = _read_claim(path)
        if held is None:
            return True
        if not self._is_stale(*held):
            return False
        # Rename is atomic, so of several processes clearing the same stale claim one moves it; a
        # loser that moved a fresh claim made in between puts it back (link never overwrites).
        aside = f"{path}.{secrets.token_hex(8)}{ASIDE_SUFFIX}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True
        moved = os.stat(aside)
        if (moved.st_ino, moved.st_dev) != (held[1].st_ino, held[1].st_dev):
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        _unlink(aside)
        return True


class _FileRecordWriter(RecordWriter):
    """Pieces go straight to a temp file, so a multi-megabyte answer is never held in memory twice."""

    def __init__(self, store: FileStore, key: str, token: str, head: Record):
        super().__init__(store, key, token, head)
        self._path = store._path(key, RECORD_SUFFIX)
        self._temp = store._temp_for(self._path)
        with store._failures():
            store._ensure_directory()
            self._file = os.fdopen(os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb")
            try:
                self._file.write(head.to_bytes())  # the header line; the body follows it
            except BaseException:
                self._discard()
                raise

    def write(self, piece: bytes) -> None:
        if self.too_big:
            return
        self.size += len(piece)
        if self.size > self.store.max_record_bytes:
            self.too_big = True
            self._discard()
            return
        with self.store._failures():
            self._file.write(piece)

    def commit(self) -> None:
        store: FileStore = self.store  # type: ignore[assignment]
        with store._failures():
            try:
                if not self.too_big:
                    self._file.close()
                    store._make_room(self.size)
                    os.replace(self._temp, self._path)
            finally:
                self._discard()
                store.release(self.key, self.token)

    def abort(self) -> None:
        with self.store._failures():
            try:
                self._discard()
            finally:
                self.store.release(self.key, self.token)

    def _discard(self) -> None:
        self._file.close()
        _unlink(self._temp)


def _read_claim(path: str) -> tuple[dict, os.stat_result] | None:
    """A claim's content ({} while its creator is still writing it) and its stat, or None when absent."""
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(data)
    except ValueError:
        info = {}
    return (info if isinstance(info, dict) else {}), status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# A record is stored and its claim released in one step, and a claim is only released by its owner.
_PUT_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore(IdempotencyStore):
    """Redis shared by every instance: claims are `SET NX PX`, records expire by themselves (PX).

    The client (and the `redis` import) is made on first use, so creating the app connects to
    nothing and each gunicorn worker gets its own connection pool after the fork. Size is Redis's
    business (maxmemory and an eviction policy); records over `max_record_bytes` are not stored.
    """

    def __init__(self, url: str, ttl: float, *, max_record_bytes: int, claim_lifetime: float = DEFAULT_CLAIM_LIFETIME,
                 prefix: str = REDIS_PREFIX):
        self._link = RedisLink(url)
        self.ttl = ttl
        self.max_record_bytes = max_record_bytes
        self.claim_lifetime = claim_lifetime
        self._prefix = prefix
        self._scripts: dict = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self._link.where

    # --- the contract ---

    def get(self, key: str) -> Record | None:
        with self._session() as client:
            data = client.get(self._key(key, "record"))
        if data is None:
            return None
        try:
            return Record.from_bytes(data)
        except (ValueError, KeyError, TypeError):
            return None

    def claim(self, key: str, fingerprint: str) -> str | None:
        token = f"{secrets.token_hex(16)}:{fingerprint}"
        with self._session() as client:
            won = client.set(self._key(key, "claim"), token, nx=True, px=_ms(self.claim_lifetime))
        return token if won else None

    def claimant(self, key: str) -> str | None:
        with self._session() as client:
            value = client.get(self._key(key, "claim"))
        return None if value is None else value.decode(errors="replace").partition(":")[2]

    def put(self, key: str, token: str, record: Record) -> None:
        data = record.to_bytes()
        if len(data) > self.max_record_bytes:
            self.release(key, token)
            return
        with self._session() as client:
            self._scripts["put"](keys=[self._key(key, "record"), self._key(key, "claim")],
                                 args=[data, _ms(self.ttl), token], client=client)

    def release(self, key: str, token: str) -> None:
        with self._session() as client:
            self._scripts["release"](keys=[self._key(key, "claim")], args=[token], client=client)

    # --- the connection ---

    def _key(self, key: str, kind: str) -> str:
        return f"{self._prefix}{key}:{kind}"

    @contextlib.contextmanager
    def _session(self):
        try:
            with self._link.session() as client:
                with self._lock:
                    if not self._scripts:
                        self._scripts = {"put": client.register_script(_PUT_SCRIPT),
                                         "release": client.register_script(_RELEASE_SCRIPT)}
                yield client
        except RedisUnavailable as exc:
            raise StoreUnavailable(str(exc)) from None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
