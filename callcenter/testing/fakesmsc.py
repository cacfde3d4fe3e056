"""fakesmsc's wire format: the MO lines we inject, the MT lines it prints (UCS-2, GSM,
concatenated parts reassembled)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

from callcenter.sms.encoding import analyse

FAKESMSC_LINE_MAX = 255  # bytes, the newline included
# Bytes fakesmsc's URL decoding leaves alone: keeping them literal makes a UCS-2 line shorter.
_LITERAL = b"!\"#$&'()*,-./:;<=>?@[\\]^_`{|}~"

_GOT = re.compile(rb"Got message \d+: <(.*)>\s*$")
_SENT = re.compile(rb"fakesmsc: sent message (\d+)")
# fakesmsc prints a GSM-7 text's line break as is, so its later lines come as lines of their
# own; a text is only known to be whole once another line follows it or the log has been
# quiet this long (fakesmsc writes the lines of one message back to back).
TEXT_SETTLE_S = 0.5


@dataclass(frozen=True, slots=True)
class FakeSmscMessage:
    """An MT message as fakesmsc received it (reassembled when it came in parts)."""

    sender: str  # Kannel's "from"
    to: str
    text: str
    coding: str  # "text" (GSM-7), "ucs-2", "data" (8-bit) or "udh" (concatenated parts)
    parts: int = 1
    smsc: str = "mt"  # which fakesmsc got it (always "mt": the "mo" SMSC sends nothing)


def mo_line(sender: str, to: str, text: str) -> bytes:
    """The stdin line that makes fakesmsc send ``text`` from ``sender`` to ``to``.

    GSM-7 text without line breaks goes as ``text``; anything else as ``ucs2`` (what a
    phone does with Arabic), URL-encoded UTF-16BE.
    """
    for number in (sender, to):
        if not number or any(ch.isspace() for ch in number):
            raise ValueError(f"a number without spaces is needed, got {number!r}")
    if analyse(text).encoding == "gsm7" and "\n" not in text and "\r" not in text and text:
        line = f"{sender} {to} text {text}\n".encode()
    else:
        data = quote_from_bytes(text.encode("utf-16-be"), safe=_LITERAL)
        line = f"{sender} {to} ucs2 {data}\n".encode()
    if len(line) > FAKESMSC_LINE_MAX:
        raise ValueError(
            f"fakesmsc reads at most {FAKESMSC_LINE_MAX} bytes per line, this MO needs "
            f"{len(line)} (about 55 Arabic or 200 GSM characters fit)"
        )
    return line


def _url_decode(data: bytes) -> bytes:
    """Kannel's octstr_url_decode: '+' is a space, %XX a byte."""
    return unquote_to_bytes(data.replace(b"+", b" "))


def _decode_payload(data: bytes) -> str:
    """8-bit or concatenated data, whose coding fakesmsc does not print: UCS-2 or UTF-8.

    UCS-2 of Latin or Arabic text has high bytes below 0x20 (0x00, 0x06); UTF-8 text has
    almost none.
    """
    highs = data[0::2]
    if data and len(data) % 2 == 0 and sum(1 for b in highs if b < 0x20) * 2 >= len(highs):
        return data.decode("utf-16-be", "replace")
    return data.decode("utf-8", "replace")


def _concat_info(udh: bytes) -> tuple[int, int, int] | None:
    """(reference, total, sequence) from a concatenation header (IEI 0x00 or 0x08)."""
    pos, end = 1, min(len(udh), 1 + (udh[0] if udh else 0))
    while pos + 2 <= end:
        iei, length = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + length]
        if iei == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4:
            return value[0] << 8 | value[1], value[2], value[3]
        pos += 2 + length
    return None


@dataclass
class _Collector:
    """Turns one fakesmsc's log into messages, incrementally.

    A GSM-7 text is held back (``held``) until it is known to be whole, so that a reader
    never sees the first line of a two-line message as the message.
    """

    smsc: str
    path: Path
    messages: list[FakeSmscMessage]
    offset: int = 0
    partial: bytes = b""
    sent: int = 0  # MO lines fakesmsc confirmed ("sent message N")
    parts: dict[tuple[str, str, int, int], dict[int, bytes]] = field(default_factory=dict)
    held: FakeSmscMessage | None = None
    held_at: float = 0.0  # when the held text last grew
    clock: Callable[[], float] = time.monotonic

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self._line(line)
        if self.held is not None and not self.partial and self.clock() - self.held_at >= TEXT_SETTLE_S:
            self._release()

    def _release(self) -> None:
        if self.held is not None:
            self.messages.append(self.held)
            self.held = None

    def _line(self, line: bytes) -> None:
        got = _GOT.search(line)
        if got is None:
            if sent := _SENT.search(line):
                self.sent = max(self.sent, int(sent.group(1)))
            return
        fields = got.group(1).split(b" ", 3)
        kind = fields[2] if len(fields) == 4 else b""
        if kind not in (b"text", b"ucs-2", b"ucs2", b"data", b"udh"):
            self._continuation(got.group(1))
            return
        self._release()  # a new message: the held text is whole
        sender, to = fields[0].decode(errors="replace"), fields[1].decode(errors="replace")
        rest = fields[3]
        if kind == b"text":
            self.held = FakeSmscMessage(sender, to, rest.decode("utf-8", "replace"), "text", smsc=self.smsc)
            self.held_at = self.clock()
            return
        if kind == b"data":
            text = _decode_payload(_url_decode(rest))
        elif kind == b"udh":
            self._part(sender, to, rest)
            return
        else:
            text = _url_decode(rest).decode("utf-16-be", "replace")
        self.messages.append(FakeSmscMessage(sender, to, text, kind.decode(), smsc=self.smsc))

    def _continuation(self, content: bytes) -> None:
        """A GSM-7 text with a line break arrives as two lines; glue the second one on."""
        if self.held is not None:
            last = self.held
            text = last.text + "\n" + content.decode("utf-8", "replace")
            self.held = FakeSmscMessage(last.sender, last.to, text, "text", 1, self.smsc)
            self.held_at = self.clock()

    def _part(self, sender: str, to: str, rest: bytes) -> None:
        udh_enc, _, tail = rest.partition(b" ")
        _, _, data_enc = tail.partition(b" ")  # "data <payload>"
        udh, data = _url_decode(udh_enc), _url_decode(data_enc)
        info = _concat_info(udh)
        if info is None:
            text = _decode_payload(data)
            self.messages.append(FakeSmscMessage(sender, to, text, "udh", smsc=self.smsc))
            return
        ref, total, seq = info
        key = (sender, to, ref, total)
        got = self.parts.setdefault(key, {})
        got[seq] = data
        if len(got) == total:
            del self.parts[key]
            payload = b"".join(got[i] for i in sorted(got))
            text = _decode_payload(payload)
            self.messages.append(FakeSmscMessage(sender, to, text, "udh", total, self.smsc))
