"""Where Idempotency-Key answers and in-flight claims live: files on this machine, or Redis for several.

Claims are short leases (CLAIM_LEASE seconds) that the request holding them renews while it runs, so
the claim of a worker killed mid-generation frees its key within seconds. Kept answers are never
evicted for another client's: each client key (the first OWNER_CHARS of a store key name it) may
fill CLIENT_SHARE of the store, its own oldest answers making room for its new ones; when the store
as a whole is full, a new answer is not kept (the caller logs it and counts it in a metric).
"""
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
CLAIM_LEASE = 6.0            # seconds a claim lives unless renewed (its owner renews it every CLAIM_LEASE / 4)
DEFAULT_CLAIM_LIFETIME = CLAIM_LEASE
CLIENT_SHARE = 0.25          # of max_bytes, for the answers of one client key
OWNER_CHARS = 16             # a store key starts with this many hex characters naming its client key
NOT_KEPT_TOO_LARGE = "too_large"      # larger than a client's share
NOT_KEPT_STORE_FULL = "store_full"    # would fit only by evicting other clients' answers
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
      a live claim), else None. A claim lives `claim_lifetime` seconds unless renewed, put or
      released first; after that it is stale and the next `claim` takes it over.
    - `renew(key, token)`: extend the claim by `claim_lifetime` from now; False when `token` no
      longer holds it.
    - `claimant(key)`: the fingerprint of the live claim on `key`, "" when it is live but unreadable,
      None when there is no live claim.
    - `put(key, token, record)`: keep `record` for the TTL, then release the claim `token` holds.
      Returns None when kept, else why not (NOT_KEPT_*): larger than `max_record_bytes` (a client's
      share), or no room without evicting another client's answer (the claim is released all the same).
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

    def renew(self, key: str, token: str) -> bool:
        raise NotImplementedError

    def put(self, key: str, token: str, record: Record) -> str | None:
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

    def commit(self) -> str | None:
        """`put` the record; None when kept, else why not."""
        if self.too_big:
            self.abort()
            return NOT_KEPT_TOO_LARGE
        return self.store.put(self.key, self.token, replace(self.head, body=b"".join(self._pieces)))

    def abort(self) -> None:
        self._pieces = []
        self.store.release(self.key, self.token)


def from_settings(settings, claim_lifetime: float = CLAIM_LEASE) -> IdempotencyStore:
    """Redis when GATEWAY_REDIS_URL is set (several machines), files under GATEWAY_IDEMPOTENCY_DIR otherwise."""
    if settings.redis_url:
        return RedisStore(settings.redis_url, settings.idempotency_ttl, max_bytes=settings.idempotency_max_bytes,
                          claim_lifetime=claim_lifetime)
    return FileStore(settings.idempotency_dir, settings.idempotency_ttl, settings.idempotency_max_bytes,
                     claim_lifetime=claim_lifetime)


def owner_of(key: str) -> str:
    """The client key a store key belongs to (the hex digest it starts with)."""
    return key[:OWNER_CHARS]


def client_share(max_bytes: int) -> int:
    return int(max_bytes * CLIENT_SHARE)


class FileStore(IdempotencyStore):
    """Files in one directory, shared by every gunicorn worker (and instance) on this machine.

    Claims are lock files made with O_CREAT | O_EXCL, so exactly one process wins a key, renewed by
    touching them (their mtime is the lease); records are written to a temp file and os.replace'd, so
    a reader sees a whole record or none. Expired records are ignored on read and swept on write.
    """

    def __init__(self, directory: str, ttl: float, max_bytes: int, *, claim_lifetime: float = DEFAULT_CLAIM_LIFETIME):
        self.directory = directory
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_record_bytes = client_share(max_bytes)
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

    def renew(self, key: str, token: str) -> bool:
        path = self._path(key, CLAIM_SUFFIX)
        with self._failures():
            held = _read_claim(path)
            if held is None or held[0].get("token") != token:
                return False
            try:
                os.utime(path)
            except FileNotFoundError:
                return False
        return True

    def put(self, key: str, token: str, record: Record) -> str | None:
        data = record.to_bytes()
        with self._failures():
            try:
                if len(data) > self.max_record_bytes:
                    return NOT_KEPT_TOO_LARGE
                self._ensure_directory()
                refused = self._make_room(owner_of(key), len(data))
                if refused is None:
                    self._write(self._path(key, RECORD_SUFFIX), data)
                return refused
            finally:
                self.release(key, token)

    def release(self, key: str, token: str) -> None:
        path = self._path(key, CLAIM_SUFFIX)
        with self._failures():
            held = _read_claim(path)
            # Read-then-unlink is not atomic, but a claim is only taken over once it is stale, i.e. once
            # its owner stopped renewing it: gone, or stalled for longer than the lease.
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

    def _make_room(self, owner: str, incoming: int) -> str | None:
        """Sweep expired records and abandoned files, then make room for `incoming` bytes of `owner`'s:
        by evicting that client's own oldest records down to its share, never another client's.
        None when the record now fits, else why it is not kept.

        Several processes may do this at once; each then frees enough for itself, so the directory can
        briefly go over by the records written concurrently.
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
        mine = sorted(record for record in records if os.path.basename(record[2]).startswith(owner))
        used = sum(size for _, size, _ in mine)
        share = client_share(self.max_bytes)
        while mine and used + incoming > share:
            _, size, path = mine.pop(0)
            _unlink(path)
            used -= size
            total -= size
        if total + incoming > self.max_bytes:
            return NOT_KEPT_STORE_FULL
        return None

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

    def commit(self) -> str | None:
        store: FileStore = self.store  # type: ignore[assignment]
        with store._failures():
            try:
                if self.too_big:
                    return NOT_KEPT_TOO_LARGE
                self._file.close()
                refused = store._make_room(owner_of(self.key), self.size)
                if refused is None:
                    os.replace(self._temp, self._path)
                return refused
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
# The sizes of live records are indexed (sorted by expiry, member "<size>:<record key>") per client
# and for the whole store, with a running total for the latter: entries past their expiry leave the
# indexes first, then the client's own oldest make room down to its share, and the record is kept
# only if it fits both its share and the store. Returns '' when kept, else why not.
_PUT_SCRIPT = """
local record, claim, mine_index, all_index, all_total = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local data, ttl, token, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local size, share, max_bytes, member = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local function size_of(entry) return tonumber(string.match(entry, '^(%d+):')) end
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', all_index, '-inf', now)) do
  redis.call('DECRBY', all_total, size_of(entry))
end
redis.call('ZREMRANGEBYSCORE', all_index, '-inf', now)
redis.call('ZREMRANGEBYSCORE', mine_index, '-inf', now)
local mine = redis.call('ZRANGE', mine_index, 0, -1)
local used = 0
for _, entry in ipairs(mine) do used = used + size_of(entry) end
local oldest = 1
while used + size > share and oldest <= #mine do
  local entry = mine[oldest]
  redis.call('DEL', string.match(entry, '^%d+:(.*)$'))
  redis.call('ZREM', mine_index, entry)
  if redis.call('ZREM', all_index, entry) == 1 then redis.call('DECRBY', all_total, size_of(entry)) end
  used = used - size_of(entry)
  oldest = oldest + 1
end
local refused = ''
if tonumber(redis.call('GET', all_total) or '0') + size > max_bytes then refused = 'store_full' end
if refused == '' then
  redis.call('SET', record, data, 'PX', ttl)
  redis.call('ZADD', mine_index, now + ttl, member)
  redis.call('ZADD', all_index, now + ttl, member)
  redis.call('INCRBY', all_total, size)
  redis.call('PEXPIRE', mine_index, ttl)
end
if redis.call('GET', claim) == token then redis.call('DEL', claim) end
return refused
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RedisStore(IdempotencyStore):
    """Redis shared by every instance: claims are `SET NX PX` leases renewed with PEXPIRE, records
    expire by themselves (PX), and their sizes are counted in Redis so that the store stays under
    `max_bytes` with each client within its share.

    The client (and the `redis` import) is made on first use, so creating the app connects to
    nothing and each gunicorn worker gets its own connection pool after the fork.
    """

    def __init__(self, url: str, ttl: float, *, max_bytes: int, claim_lifetime: float = DEFAULT_CLAIM_LIFETIME,
                 prefix: str = REDIS_PREFIX):
        self._link = RedisLink(url)
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_record_bytes = client_share(max_bytes)
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

    def renew(self, key: str, token: str) -> bool:
        with self._session() as client:
            return bool(self._scripts["renew"](keys=[self._key(key, "claim")],
                                               args=[token, _ms(self.claim_lifetime)], client=client))

    def put(self, key: str, token: str, record: Record) -> str | None:
        data = record.to_bytes()
        if len(data) > self.max_record_bytes:
            self.release(key, token)
            return NOT_KEPT_TOO_LARGE
        record_key = self._key(key, "record")
        with self._session() as client:
            refused = self._scripts["put"](
                keys=[record_key, self._key(key, "claim"), f"{self._prefix}owner:{owner_of(key)}",
                      f"{self._prefix}index", f"{self._prefix}bytes"],
                args=[data, _ms(self.ttl), token, int(time.time() * 1000), len(data), self.max_record_bytes,
                      self.max_bytes, f"{len(data)}:{record_key}"], client=client)
        return refused.decode() if refused else None

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
                                         "release": client.register_script(_RELEASE_SCRIPT),
                                         "renew": client.register_script(_RENEW_SCRIPT)}
                yield client
        except RedisUnavailable as exc:
            raise StoreUnavailable(str(exc)) from None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
