"""The Kannel lab's fakesmsc log reader reports a message only once it is whole."""

from __future__ import annotations

from pathlib import Path

from callcenter.testing.fakesmsc import TEXT_SETTLE_S, FakeSmscMessage, _Collector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _log_line(n: int, content: str) -> bytes:
    return f"2026-12-04 02:00:00 [1] [0] INFO: Got message {n}: <{content}>\n".encode()


def _collector(tmp_path: Path, clock: Clock) -> tuple[_Collector, Path, list[FakeSmscMessage]]:
    path = tmp_path / "fakesmsc-mt.log"
    path.write_bytes(b"")
    messages: list[FakeSmscMessage] = []
    return _Collector("mt", path, messages, clock=clock), path, messages


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_first_line_of_a_two_line_text_is_not_reported_as_the_message(tmp_path: Path) -> None:
    clock = Clock()
    collector, path, messages = _collector(tmp_path, clock)
    _append(path, _log_line(1, "1415 +218910001002 text Reply 1 for yes,"))
    collector.poll()
    assert messages == []  # the second line may still come
    clock.now += TEXT_SETTLE_S / 5
    _append(path, _log_line(2, "2 for no."))
    collector.poll()
    assert messages == []
    clock.now += TEXT_SETTLE_S
    collector.poll()
    assert [m.text for m in messages] == ["Reply 1 for yes,\n2 for no."]


def test_a_text_is_released_as_soon_as_the_next_message_starts(tmp_path: Path) -> None:
    clock = Clock()
    collector, path, messages = _collector(tmp_path, clock)
    _append(path, _log_line(1, "1415 +218910001002 text first"))
    _append(path, _log_line(2, "1415 +218910001003 text second"))
    collector.poll()
    assert [m.text for m in messages] == ["first"]
    clock.now += TEXT_SETTLE_S
    collector.poll()
    assert [(m.to, m.text) for m in messages] == [("+218910001002", "first"), ("+218910001003", "second")]


def test_a_line_cut_mid_write_waits_for_its_end(tmp_path: Path) -> None:
    clock = Clock()
    collector, path, messages = _collector(tmp_path, clock)
    line = _log_line(1, "1415 +218910001004 text whole line")
    _append(path, line[:30])
    clock.now += 10 * TEXT_SETTLE_S
    collector.poll()
    assert messages == []
    _append(path, line[30:])
    collector.poll()
    clock.now += TEXT_SETTLE_S
    collector.poll()
    assert [m.text for m in messages] == ["whole line"]


def test_ucs2_messages_are_reported_at_once(tmp_path: Path) -> None:
    clock = Clock()
    collector, path, messages = _collector(tmp_path, clock)
    _append(path, _log_line(1, "1415 +218910001005 ucs-2 %06%46%06%39%06%45"))
    collector.poll()
    assert [(m.text, m.coding) for m in messages] == [("نعم", "ucs-2")]
