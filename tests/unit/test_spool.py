"""The spool file: its line format (property-based), torn and damaged files, the size limit,
a full disk, group commit, the offset and emptying the file."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callcenter.sms import spool as spool_module
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sms.spool import (
    CORRUPT_FILE,
    FAILED_FILE,
    CorruptRecord,
    Spool,
    SpoolFull,
    SpoolRecord,
    decode,
    encode,
    scan,
)

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
texts = st.text(max_size=300)  # any code point, lone surrogates, newlines and NULs included
records = st.one_of(
    st.builds(
        lambda gateway, gid, sender, body, to: SpoolRecord.inbound(
            InboundSms(gateway, gid, sender, body, to)
        ),
        st.sampled_from(["twilio", "kannel", "loopback"]),
        ids,
        texts,
        texts,
        texts,
    ),
    st.builds(
        lambda state, ref, gid, error: SpoolRecord.report(StatusReport("kannel", state, ref, gid, error)),
        st.sampled_from(["sent", "delivered", "failed"]),
        st.none() | ids,
        st.none() | ids,
        st.none() | texts,
    ),
)


AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def record(i: int, body: str = "نعم") -> SpoolRecord:
    return SpoolRecord.inbound(InboundSms("twilio", f"SM{i:032d}", f"+2189100{i:05d}", body, "1415"), AT)


@contextlib.contextmanager
def opened(directory: Path, *, max_bytes: int = 1 << 20) -> Iterator[Spool]:
    spool = Spool(directory, max_bytes=max_bytes)
    spool.open()
    try:
        yield spool
    finally:
        spool.close()


# -- the line format ----------------------------------------------------------------------


@given(records)
def test_a_record_survives_the_round_trip(rec: SpoolRecord) -> None:
    line = encode(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert decode(line[:-1]) == rec


@given(st.lists(records, max_size=12), st.data())
def test_a_file_cut_anywhere_keeps_every_whole_record_before_the_cut(
    recs: list[SpoolRecord], data: st.DataObject
) -> None:
    lines = [encode(r) for r in recs]
    blob = b"".join(lines)
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    batch = scan(blob[:cut])
    ends = [sum(len(x) for x in lines[: i + 1]) for i in range(len(lines))]
    whole = [r for r, end in zip(recs, ends, strict=True) if end <= cut]
    assert batch.records == whole
    assert batch.bad == []
    assert batch.end == max([0, *(e for e in ends if e <= cut)])
    assert batch.torn == blob[batch.end : cut]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=500)
@given(st.lists(records, min_size=1, max_size=8), st.data())
def test_a_damaged_byte_loses_only_its_own_record(recs: list[SpoolRecord], data: st.DataObject) -> None:
    lines = [encode(r) for r in recs]
    blob = bytearray(b"".join(lines))
    pos = data.draw(st.integers(0, len(blob) - 1), label="position")
    new = data.draw(st.integers(0, 255), label="byte")
    assume(new != blob[pos])
    blob[pos] = new
    batch = scan(bytes(blob))
    starts = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    hit = max(i for i, s in enumerate(starts) if s <= pos)
    lost = {hit}
    if pos == starts[hit] + len(lines[hit]) - 1:  # its newline: it runs into the next line
        lost.add(hit + 1)
    # (a byte turned into a newline cuts its line in two halves, both failing their check)
    kept = [r for i, r in enumerate(recs) if i not in lost]
    assert batch.records == kept
    assert batch.bad or batch.torn  # the damage is reported, never passed on


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"00000000",
        b"zzzzzzzz {}",
        b"00000000 {}",
        encode(record(1))[:-2],
        b'%08x {"v":2,"kind":"sms","gateway":"x"}',
    ],
)
def test_what_is_not_a_whole_record_is_refused(line: bytes) -> None:
    with pytest.raises(CorruptRecord):
        decode(line)


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 2, "kind": "sms", "gateway": "twilio"},
        {"v": 1, "kind": "mms", "gateway": "twilio"},
        {"v": 1, "kind": "status", "gateway": "kannel", "state": "lost"},
        {"v": 1, "kind": "sms", "gateway": "twilio", "body": 3},
        {"v": 1, "kind": "sms"},
        [1, 2],
    ],
)
def test_a_checked_line_of_the_wrong_shape_is_refused(payload: object) -> None:
    import zlib

    raw = json.dumps(payload).encode()
    with pytest.raises(CorruptRecord):
        decode(b"%08x %s" % (zlib.crc32(raw), raw))


# -- the file -----------------------------------------------------------------------------


async def test_records_come_back_in_order_and_the_file_empties_when_drained(tmp_path: Path) -> None:
    with opened(tmp_path) as spool:
        assert not spool.has_backlog() and spool.committed() == 0
        for i in range(5):
            await spool.append(record(i))
        assert spool.has_backlog()
        first = spool.read(spool.committed(), max_records=3)
        assert [r.gateway_id for r in first.records] == [record(i).gateway_id for i in range(3)]
        assert spool.depth() == spool.size()
        spool.commit(first.end)
        assert spool.committed() == first.end and spool.has_backlog()
        assert spool.depth() == spool.size() - first.end
        rest = spool.read(spool.committed())
        assert [r.gateway_id for r in rest.records] == [record(i).gateway_id for i in (3, 4)]
        spool.commit(rest.end)
        assert not spool.has_backlog() and spool.committed() == 0 and spool.size() == 0


async def test_concurrent_appends_are_written_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", counting_fsync)
    with opened(tmp_path) as spool:
        await asyncio.gather(*(spool.append(record(i)) for i in range(200)))
        got = spool.read(0, max_records=1000).records
    assert sorted(r.gateway_id or "" for r in got) == sorted(record(i).gateway_id or "" for i in range(200))
    assert len(fsyncs) < 20  # group commit: far fewer than one fsync per record
    assert spool.stats.appended == 200


async def test_a_torn_last_line_is_moved_aside_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = b"".join(encode(record(i)) for i in range(3))
    torn = encode(record(3))[:40]
    (tmp_path / "spool.jsonl").write_bytes(whole + torn)
    with caplog.at_level(logging.ERROR), opened(tmp_path) as spool:
        assert spool.size() == len(whole)
        assert [r.gateway_id for r in spool.read(0).records] == [record(i).gateway_id for i in range(3)]
    [aside] = [json.loads(line) for line in (tmp_path / CORRUPT_FILE).read_text().splitlines()]
    assert aside["offset"] == len(whole) and aside["data"].encode("latin-1") == torn
    assert "torn write" in aside["reason"]
    assert any("damaged record" in r.getMessage() and CORRUPT_FILE in r.getMessage() for r in caplog.records)


async def test_an_append_after_a_torn_write_seals_it_off(tmp_path: Path) -> None:
    with opened(tmp_path) as spool:
        await spool.append(record(1))
        with open(spool.path, "ab") as crashed_writer:
            crashed_writer.write(encode(record(2))[:25])
        await spool.append(record(3))
        batch = spool.read(0)
    assert [r.gateway_id for r in batch.records] == [record(1).gateway_id, record(3).gateway_id]
    assert len(batch.bad) == 1 and batch.bad[0].data == encode(record(2))[:25]


async def test_a_torn_tail_met_while_draining_is_cut_once_no_writer_holds_it(tmp_path: Path) -> None:
    with opened(tmp_path) as spool:
        await spool.append(record(1))
        with open(spool.path, "ab") as f:
            f.write(b"0badf00d {")
        batch = spool.read(0)
        assert batch.records == [record(1)] and batch.torn == b"0badf00d {"
        spool.commit(batch.end)
        assert spool.read(batch.end).torn == b""  # cut and set aside
        assert spool.size() == batch.end
        spool.commit(batch.end)
        assert spool.size() == 0
    assert (tmp_path / CORRUPT_FILE).exists()


async def test_a_full_spool_refuses_whole_records_and_counts_them(tmp_path: Path) -> None:
    line = len(encode(record(1)))
    with opened(tmp_path, max_bytes=2 * line + line // 2) as spool:
        await spool.append(record(1))
        await spool.append(record(2))
        with pytest.raises(SpoolFull, match="limit"):
            await spool.append(record(3))
        assert spool.size() == 2 * line
        assert spool.stats.appended == 2
        spool.commit(spool.read(0).end)  # drained: room again
        await spool.append(record(3))


async def test_a_disk_that_fills_mid_write_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = 0

    def short_then_full(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))  # the disk takes half...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then is full

    with opened(tmp_path) as spool:
        await spool.append(record(1))
        size = spool.size()
        monkeypatch.setattr(spool_module.os, "write", short_then_full)
        with pytest.raises(SpoolFull, match="No space left"):
            await spool.append(record(2))
        monkeypatch.undo()
        assert spool.size() == size
        await spool.append(record(3))
        assert [r.gateway_id for r in spool.read(0).records] == [record(1).gateway_id, record(3).gateway_id]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (needs root and mount rights; skipped without them)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_really_full_disk_answers_spool_full(tiny_disk: Path) -> None:
    with opened(tiny_disk / "spool", max_bytes=10 << 20) as spool:
        with pytest.raises(SpoolFull, match="no room"):
            for i in range(10_000):
                await spool.append(record(i, body="ب" * 200))
        good = spool.read(0, max_records=100_000)
        assert good.bad == [] and good.torn == b""
        assert [r.gateway_id for r in good.records] == [
            record(j).gateway_id for j in range(len(good.records))
        ]


def test_a_damaged_or_stale_offset_drains_from_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with opened(tmp_path) as spool:
        spool.write_lines([encode(record(1))])
        (tmp_path / "offset").write_text("{not json")
        assert spool.committed() == 0
        (tmp_path / "offset").write_text(json.dumps({"offset": 10**9}))
        assert spool.committed() == 0
    assert any("offset" in r.getMessage() for r in caplog.records)


def test_a_crash_while_emptying_the_file_replays_never_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(tmp_path) as spool:
        spool.write_lines([encode(record(i)) for i in range(3)])
        end = spool.read(0).end

        def crash(_fd: int, _size: int) -> None:
            raise KeyboardInterrupt  # the process dies between the two steps

        monkeypatch.setattr(spool_module.os, "ftruncate", crash)
        with pytest.raises(KeyboardInterrupt):
            spool.commit(end)
    monkeypatch.undo()
    with opened(tmp_path) as spool:
        assert spool.committed() == 0  # every record again: the database deduplicates them
        assert len(spool.read(0).records) == 3


def test_one_drainer_per_spool(tmp_path: Path) -> None:
    with opened(tmp_path) as first, opened(tmp_path) as second:
        assert first.try_drain_lock() and first.try_drain_lock()
        assert not second.try_drain_lock()
        first.close()
        assert second.try_drain_lock()


def test_a_refused_record_is_kept_for_a_replay_by_hand(tmp_path: Path) -> None:
    with opened(tmp_path) as spool:
        spool.write_lines([encode(record(7))])
        [entry] = spool.read(0).entries
        spool.set_failed(entry, "ValueError: bad")
    [kept] = [json.loads(line) for line in (tmp_path / FAILED_FILE).read_text().splitlines()]
    assert kept["error"] == "ValueError: bad"
    assert SpoolRecord.from_json(kept["record"]) == record(7)
