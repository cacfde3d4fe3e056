"""The spool: replies and delivery reports kept on local disk while the database is away.

An append-only file of JSON lines, each ``<crc32, 8 hex digits> <json>\\n``. The JSON is
ASCII-only (``ensure_ascii``), so a line never holds a raw newline and a reader can always
find the next record after a bad one. Beside it, in the spool directory:

* ``offset``: ``{"offset": N}``, every byte before N is stored in the database. Replaced
  atomically (write, fsync, rename) *after* the database commit, so a drainer killed at any
  moment replays at most one batch, which the gateway's id deduplicates.
* ``spool.corrupt``: lines that failed their check (a torn write at a crash, a bad disk),
  moved aside with a note; ``spool.failed``: records the engine refused (a bug, not an
  outage), kept for a replay by hand. Neither is ever read back by the engine.
* ``drain.lock``: held by the one process that drains.

Appends from any number of requests (and processes) are serialised by a thread lock and an
exclusive ``flock``; concurrent appends in one process are written together, one
``os.write`` and one ``fsync`` for the lot (group commit), in a worker thread so the event
loop never waits on the disk. When the file would pass ``max_bytes``, or the disk is full,
the append raises :class:`SpoolFull` and nothing of it stays in the file. Once everything
is drained the file is emptied (offset set to 0 first, then truncated: a crash between the
two replays, never skips).

Usage::

    spool = Spool(settings.data_dir / "spool", max_bytes=256 * 2**20)
    spool.open()
    await spool.append(SpoolRecord.inbound(sms))
    batch = spool.read(spool.committed())
    ...store batch.records...
    spool.commit(batch.end)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from callcenter.sms.gateways.base import DeliveryState, InboundSms, StatusReport

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.jsonl"
OFFSET_FILE = "offset"
CORRUPT_FILE = "spool.corrupt"
FAILED_FILE = "spool.failed"
DRAIN_LOCK = "drain.lock"
VERSION = 1
READ_CHUNK = 1 << 20  # bytes read per batch, at most (a record is a few hundred bytes)

Kind = Literal["sms", "status"]


class SpoolError(Exception):
    """The spool cannot take a record; the webhook answers 503 so the gateway retries."""

    error_id = "spool_unavailable"


class SpoolFull(SpoolError):
    """The spool reached ``max_bytes``, or the disk under it is full."""

    error_id = "spool_full"


class CorruptRecord(ValueError):
    """A line that is not a whole, checked record."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One webhook call, normalised: what the engine needs to store it later."""

    kind: Kind
    gateway: str
    received_at: str  # ISO 8601, UTC: when the webhook got it
    gateway_id: str | None = None
    sender: str = ""
    to: str = ""
    body: str = ""
    state: DeliveryState | None = None  # delivery reports
    ref: str | None = None
    error: str | None = None

    @classmethod
    def inbound(cls, sms: InboundSms, received_at: datetime | None = None) -> SpoolRecord:
        return cls(
            kind="sms",
            gateway=sms.gateway,
            received_at=_iso(received_at),
            gateway_id=sms.gateway_id,
            sender=sms.sender,
            to=sms.to,
            body=sms.body,
        )

    @classmethod
    def report(cls, report: StatusReport, received_at: datetime | None = None) -> SpoolRecord:
        return cls(
            kind="status",
            gateway=report.gateway,
            received_at=_iso(received_at),
            gateway_id=report.gateway_id,
            state=report.state,
            ref=report.ref,
            error=report.error,
        )

    @property
    def order_key(self) -> str:
        """Records with one key are stored in arrival order: a citizen's messages, or the
        delivery reports of one outbound message (a late "sent" must not undo "delivered")."""
        return self.sender if self.kind == "sms" else f"status:{self.gateway}:{self.ref or self.gateway_id}"

    def to_sms(self) -> InboundSms:
        return InboundSms(self.gateway, self.gateway_id or "", self.sender, self.body, self.to)

    def to_report(self) -> StatusReport:
        assert self.state is not None
        return StatusReport(self.gateway, self.state, self.ref, self.gateway_id, self.error)

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, **{k: v for k, v in asdict(self).items() if v is not None}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpoolRecord:
        if data.get("v") != VERSION:
            raise CorruptRecord(f"unknown record version {data.get('v')!r}")
        kind, state = data.get("kind"), data.get("state")
        if kind not in ("sms", "status") or (
            kind == "status" and state not in ("sent", "delivered", "failed")
        ):
            raise CorruptRecord(f"unknown record kind {kind!r} / state {state!r}")
        texts = ("gateway", "received_at", "gateway_id", "sender", "to", "body", "ref", "error")
        if not all(isinstance(data.get(k, ""), str) for k in texts) or not data.get("gateway"):
            raise CorruptRecord("a field has the wrong type")
        return cls(
            kind=cast(Kind, kind),
            gateway=data["gateway"],
            received_at=data.get("received_at", ""),
            gateway_id=data.get("gateway_id"),
            sender=data.get("sender", ""),
            to=data.get("to", ""),
            body=data.get("body", ""),
            state=cast("DeliveryState | None", state),
            ref=data.get("ref"),
            error=data.get("error"),
        )


def _iso(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds")


# -- the line format (pure) ---------------------------------------------------------------


def encode(record: SpoolRecord) -> bytes:
    """One line: the CRC-32 of the JSON, a space, the JSON (ASCII), a newline."""
    payload = json.dumps(record.to_json(), ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode(line: bytes) -> SpoolRecord:
    """A line (without its newline) back to the record; :class:`CorruptRecord` if it is not one."""
    if len(line) < 10 or line[8:9] != b" ":
        raise CorruptRecord("too short or no checksum")
    payload = line[9:]
    if line[:8] != b"%08x" % zlib.crc32(payload):  # byte for byte: "ABCD" is not "abcd"
        raise CorruptRecord("checksum mismatch")
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise CorruptRecord(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CorruptRecord("not a JSON object")
    return SpoolRecord.from_json(data)


@dataclass(frozen=True, slots=True)
class Entry:
    start: int  # file offsets of the line, its newline included
    end: int
    record: SpoolRecord


@dataclass(frozen=True, slots=True)
class Bad:
    start: int
    end: int
    data: bytes
    reason: str


@dataclass
class Batch:
    """What a read found from ``start``: whole records, bad lines, and where it stopped."""

    start: int
    end: int  # the offset after the last whole line read (== start: nothing whole)
    entries: list[Entry] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)
    torn: bytes = b""  # bytes after the last newline: a write in progress, or torn

    @property
    def records(self) -> list[SpoolRecord]:
        return [e.record for e in self.entries]


def scan(data: bytes, base: int = 0, *, max_records: int | None = None) -> Batch:
    """Split ``data`` (read at file offset ``base``) into whole records and bad lines.

    Pure: the reader, the recovery and the property tests share it.
    """
    batch = Batch(start=base, end=base)
    pos = 0
    while max_records is None or len(batch.entries) < max_records:
        newline = data.find(b"\n", pos)
        if newline < 0:
            break
        line = data[pos:newline]
        start, end = base + pos, base + newline + 1
        try:
            batch.entries.append(Entry(start, end, decode(line)))
        except CorruptRecord as exc:
            batch.bad.append(Bad(start, end, line, str(exc)))
        pos = newline + 1
        batch.end = end
    if max_records is None or len(batch.entries) < max_records:
        batch.torn = data[pos:]
    return batch


# -- the file -----------------------------------------------------------------------------


@dataclass
class SpoolStats:
    """Counters since this process started, ready for a metrics exporter."""

    appended: int = 0
    rejected_full: int = 0  # webhook calls answered 503: neither the database nor the spool took them
    shed: int = 0  # webhook calls spooled because too many were already waiting on the database
    drained: int = 0
    corrupt: int = 0
    failed: int = 0


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.path = directory / SPOOL_FILE
        self.max_bytes = max_bytes
        self.stats = SpoolStats()
        self._fd = -1
        # flock is per open file, so threads need a lock of their own; every use of the file
        # descriptor from a thread holds it, so close() never pulls it from under one
        self._lock = threading.RLock()
        self._queue: list[tuple[bytes, asyncio.Future[None], str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._drain_fd = -1
        self.appended = asyncio.Event()  # set on every append: wakes the drainer
        # order key -> end offset of its last record waiting; valid for a file of _known_size
        # bytes (another process's append or drain makes it stale: then read again)
        self._waiting: dict[str, int] = {}
        self._known_size = -1

    # -- life cycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and file if needed, and cut a torn last line (a crash)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._fsync_directory()  # the file itself must survive a power cut, not only its data
        with self._locked():
            self._cut_torn_tail()

    def close(self) -> None:
        """Close the files, once no thread is using them (blocking; an abandoned drain step's
        thread finishes first)."""
        with self._lock:
            for fd in (self._fd, self._drain_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._drain_fd = -1

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def depth(self) -> int:
        """Bytes waiting to be drained (for a metrics exporter)."""
        return max(0, self.size() - self.committed()) if self._fd >= 0 else 0

    def has_backlog(self) -> bool:
        """Whether records wait to be drained (the file is emptied once all are stored)."""
        return self._fd >= 0 and self.size() > 0

    def has_backlog_for(self, key: str) -> bool:
        """Whether a record with this :attr:`SpoolRecord.order_key` waits to be drained: the
        next one with that key must then queue behind it (blocking; cheap — an ``fstat`` and a
        lookup — unless another process changed the file, when the waiting part is read again)."""
        with self._lock:
            if self._fd < 0:
                return False
            size = self.size()
            if size == 0:
                self._waiting.clear()
                self._known_size = 0
                return False
            if size != self._known_size:
                self._index_waiting(size)
            end = self._waiting.get(key)
            if end is None:
                return False
            if end <= self.committed():  # drained meanwhile (by another process)
                del self._waiting[key]
                return False
            return True

    def _index_waiting(self, size: int) -> None:
        """(Under ``_lock``.) Which keys have records after the committed offset."""
        waiting: dict[str, int] = {}
        offset = self.committed()
        while offset < size:
            batch = scan(os.pread(self._fd, READ_CHUNK * 4, offset), offset)
            for entry in batch.entries:
                waiting[entry.record.order_key] = entry.end
            if batch.end == offset:
                break  # a torn tail: a write in progress, or cut on the next read
            offset = batch.end
        self._waiting, self._known_size = waiting, size

    # -- appending ------------------------------------------------------------------------

    async def append(self, record: SpoolRecord) -> None:
        """Write ``record`` durably (fsync'd) before returning; :class:`SpoolFull` if it cannot."""
        line = encode(record)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((line, done, record.order_key))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="spool-flush")
        await done

    async def _flush(self) -> None:
        """Write what the requests queued, batch after batch, one write + fsync per batch."""
        while self._queue:
            batch, self._queue = self._queue, []
            error: SpoolError | None = None
            try:
                accepted = await asyncio.to_thread(
                    self.write_lines, [line for line, _, _ in batch], [key for _, _, key in batch]
                )
            except SpoolError as exc:
                accepted, error = 0, exc
            except Exception as exc:  # a bug must not leave the requests waiting forever
                log.exception("spool write failed")
                accepted, error = 0, SpoolError(f"spool write failed: {exc}")
            if accepted < len(batch) and error is None:
                error = SpoolFull(f"the spool reached its limit of {self.max_bytes} bytes")
            for i, (_, done, _) in enumerate(batch):
                if done.done():  # the request went away; its record is written all the same
                    continue
                if i < accepted:
                    done.set_result(None)
                else:
                    done.set_exception(error or SpoolError("not written"))
            if accepted:
                self.stats.appended += accepted
                self.appended.set()

    def write_lines(self, lines: list[bytes], keys: list[str] | None = None) -> int:
        """Append as many of ``lines`` as fit under ``max_bytes``; returns how many (blocking).
        ``keys``: the lines' order keys, for :meth:`has_backlog_for`.

        Nothing of a failed write stays: the file is cut back to where it was.
        """
        with self._locked():
            before = self.size()
            room = self.max_bytes - before
            data = bytearray()
            if before and os.pread(self._fd, 1, before - 1) != b"\n":
                data += b"\n"  # seal a torn line a crashed writer left: it fails its check alone
            accepted = 0
            ends: list[int] = []
            for line in lines:
                if len(data) + len(line) > room:
                    break
                data += line
                accepted += 1
                ends.append(before + len(data))
            if not accepted:
                return 0
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                os.fsync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, before)
                    os.fsync(self._fd)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise SpoolFull(f"no room on the spool's disk ({exc.strerror})") from exc
                raise SpoolError(f"cannot write the spool: {exc}") from exc
            if keys is not None and self._known_size == before:  # else stale: read again when asked
                self._waiting.update(zip(keys, ends, strict=False))
                self._known_size = before + len(data)
            return accepted

    # -- draining -------------------------------------------------------------------------

    def try_drain_lock(self) -> bool:
        """Become the one drainer of this spool (non-blocking; kept until :meth:`close`)."""
        if self._drain_fd >= 0:
            return True
        fd = os.open(self.directory / DRAIN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._drain_fd = fd
        return True

    def committed(self) -> int:
        """The offset before which everything is stored (0 when never committed)."""
        try:
            data = json.loads((self.directory / OFFSET_FILE).read_text(encoding="ascii"))
            offset = int(data["offset"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            log.error("spool offset file %s is unreadable; draining from the start (deduplicated)", self.path)
            return 0
        with self._lock:
            size = self.size()
        if offset > size:
            log.error("spool offset %s is past the end (%s bytes); draining from the start", offset, size)
            return 0
        return offset

    def read(self, offset: int, *, max_records: int = 100, chunk: int = READ_CHUNK) -> Batch:
        """Whole records after ``offset`` (at most ``max_records``) and the bad lines among them.

        A torn last line (no newline, and no writer holds the lock) is moved to
        ``spool.corrupt`` and cut off, so the records after it can be drained.
        """
        with self._lock:
            data = os.pread(self._fd, chunk, offset)
            batch = scan(data, offset, max_records=max_records)
            if not batch.entries and not batch.bad and batch.torn:
                if len(batch.torn) >= chunk:  # one line longer than a chunk: read it whole
                    return self.read(offset, max_records=max_records, chunk=chunk * 4)
                with self._locked():  # writers write whole lines under this lock
                    self._cut_torn_tail()
                batch = scan(os.pread(self._fd, chunk, offset), offset, max_records=max_records)
            return batch

    def commit(self, offset: int) -> None:
        """Everything before ``offset`` is stored; empties the file when nothing is left."""
        with self._lock:
            self._write_offset(offset)
            self._waiting = {key: end for key, end in self._waiting.items() if end > offset}
            if offset and offset >= self.size():
                with self._locked():
                    if self.size() == offset:  # no append since: empty the file
                        self._write_offset(0)  # first: a crash before the truncate replays, never skips
                        os.ftruncate(self._fd, 0)
                        os.fsync(self._fd)
                        self._waiting.clear()
                        self._known_size = 0

    def _write_offset(self, offset: int) -> None:
        tmp = self.directory / (OFFSET_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps({"offset": offset}).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / OFFSET_FILE)
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def set_aside(self, bad: list[Bad]) -> None:
        """Keep bad lines in ``spool.corrupt`` (with where they were and why), and log them."""
        if not bad:
            return
        lines = [
            json.dumps({"offset": b.start, "reason": b.reason, "data": b.data.decode("latin-1")}).encode()
            + b"\n"
            for b in bad
        ]
        self._append_to(CORRUPT_FILE, lines)
        self.stats.corrupt += len(bad)
        log.error(
            "spool %s: %s damaged record(s) at offset(s) %s moved to %s (%s)",
            self.path,
            len(bad),
            ", ".join(str(b.start) for b in bad[:10]),
            self.directory / CORRUPT_FILE,
            bad[0].reason,
        )

    def set_failed(self, entry: Entry, error: str) -> None:
        """Keep a record the engine refused (a bug, not an outage) in ``spool.failed``."""
        line = {"offset": entry.start, "error": error[:500], "record": entry.record.to_json()}
        self._append_to(FAILED_FILE, [json.dumps(line).encode() + b"\n"])
        self.stats.failed += 1

    def _append_to(self, name: str, lines: list[bytes]) -> None:
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _cut_torn_tail(self) -> None:
        """(Under the lock.) Move bytes after the last newline to ``spool.corrupt`` and cut them."""
        size = self.size()
        if not size:
            return
        tail_start = size
        step = 4096
        while tail_start > 0:
            start = max(0, tail_start - step)
            data = os.pread(self._fd, tail_start - start, start)
            newline = data.rfind(b"\n")
            if newline >= 0:
                tail_start = start + newline + 1
                break
            tail_start = start
            step *= 2
        if tail_start == size:
            return
        torn = os.pread(self._fd, size - tail_start, tail_start)
        self.set_aside([Bad(tail_start, size, torn, "torn write: the line has no end")])
        os.ftruncate(self._fd, tail_start)
        os.fsync(self._fd)
