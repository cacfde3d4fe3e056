"""SIPp for the real-Asterisk tests: RFC 2833 DTMF pcaps, scenario templates, the process."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from callcenter.testing.asterisk_base import (
    _DTMF_EVENTS,
    _KEY_GAP_MS,
    _KEY_MS,
    _PAUSES_MS,
    SIPP_TEMPLATES_DIR,
    Toolchain,
    _pdeathsig,
    _tail,
    free_port,
)

# -- SIPp ---------------------------------------------------------------------------------------


class UasBehaviour(StrEnum):
    """What the SIPp UAS behind the ``trunk`` endpoint does with an INVITE."""

    ANSWER = "answer"  # 200 OK, waits DELAY_MS, plays the keys, waits for Asterisk's BYE
    BUSY = "busy"  # 486 Busy Here (OriginateResponse Reason 5)
    NO_ANSWER = "no_answer"  # 180 Ringing until CANCEL (Reason 3 on the Originate timeout)
    HANGUP = "hangup"  # 200 OK, plays the keys, sends BYE after HANGUP_AFTER_MS


def dtmf_xml(keys: str, directory: Path) -> str:
    """SIPp steps that press ``keys`` (0-9 * #; ``w``/``W`` pause 0.5/1 s like SendDTMF).

    The keys go into one pcap written to ``directory`` (:func:`write_dtmf_pcap`) and played
    with ``play_pcap_audio`` by absolute path (SIPp cannot take a variable there), followed by
    a pause as long as the pcap. SIPp's own ``dtmf_2833_<key>.pcap`` files cannot be chained:
    they were cut from one recording, so replaying ``4`` then ``2`` sends sequence numbers and
    timestamps that go backwards, and Asterisk drops the second key.
    """
    if not keys:
        return ""
    body = keys.lstrip("wW")
    lead_ms = _pause_ms(keys[: len(keys) - len(body)])
    steps = [f'<pause milliseconds="{lead_ms}"/>'] if lead_ms else []
    if body.strip("wW"):
        digest = hashlib.sha1(body.encode()).hexdigest()[:12]
        pcap = (directory / f"dtmf-{digest}.pcap").resolve()
        length_ms = write_dtmf_pcap(pcap, body)
        steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        steps.append(f'<pause milliseconds="{length_ms}"/>')
    else:
        steps.append(f'<pause milliseconds="{_pause_ms(body)}"/>')
    return "\n  ".join(steps)


def _pause_ms(pauses: str) -> int:
    return sum(_PAUSES_MS[p] for p in pauses)


def write_dtmf_pcap(path: Path, keys: str, *, payload_type: int = 101) -> int:
    """Write RFC 4733 telephone-events for ``keys`` as a pcap SIPp can replay; returns its
    length in ms. Each key: a 160 ms event (a packet every 20 ms, the end packet three
    times), then 300 ms of silence; ``w``/``W`` add 0.5/1 s. One SSRC, rising sequence
    numbers and timestamps, so Asterisk takes every key, repeated ones included."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    now_ms = seq = 0
    ssrc = 0x1415_0000

    def packet(at_ms: int, rtp: bytes) -> None:
        udp = struct.pack(">HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                   bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])))  # fmt: skip
        ip[10:12] = struct.pack(">H", _ip_checksum(bytes(ip)))
        frame = bytes(12) + b"\x08\x00" + bytes(ip) + udp
        out.extend(struct.pack("<IIII", at_ms // 1000, at_ms % 1000 * 1000, len(frame), len(frame)))
        out.extend(frame)

    for key in keys:
        if key in _PAUSES_MS:
            now_ms += _PAUSES_MS[key]
            continue
        if key not in _DTMF_EVENTS:
            raise ValueError(f"cannot press {key!r}: keys are 0-9 * # (w, W pause)")
        timestamp = now_ms * 8  # 8 kHz clock
        steps = _KEY_MS // 20
        for i in range(1, steps + 1):
            end = i == steps
            for _ in range(3 if end else 1):  # the end packet three times, same sequence
                header = struct.pack(">BBHII", 0x80, (0x80 if i == 1 else 0) | payload_type,
                                     seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)  # fmt: skip
                event = struct.pack(">BBH", _DTMF_EVENTS[key], (0x80 if end else 0) | 10, i * 160)
                packet(now_ms + (i - 1) * 20, header + event)
            seq += 1
        now_ms += _KEY_MS + _KEY_GAP_MS
    path.write_bytes(bytes(out))
    return now_ms


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def render_scenario(template: str, values: Mapping[str, str], *, templates: Path = SIPP_TEMPLATES_DIR) -> str:
    """``tests/sipp/<template>`` with every ``@NAME@`` replaced (ValueError if one is left)."""
    text = (templates / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"{template}: no value for {', '.join(sorted(set(left)))}")
    return text


_COUNTER = re.compile(r"^\s*(Successful|Failed) call\s*\|\s*\d+\s*\|\s*(\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SippResult:
    """How a SIPp run ended: exit code 0 = every call went through its scenario."""

    returncode: int
    successful: int
    failed: int
    output: str = field(repr=False)
    errors: str = field(repr=False, default="")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class SippProcess:
    """A running ``sipp`` (UAC or UAS) on 127.0.0.1, killed with its test."""

    def __init__(self, proc: asyncio.subprocess.Process, error_file: Path, timeout_s: float) -> None:
        self._proc = proc
        self._error_file = error_file
        self._timeout = timeout_s
        self._result: SippResult | None = None

    @classmethod
    async def spawn(
        cls, tools: Toolchain, argv: Sequence[str], workdir: Path, *, timeout_s: float
    ) -> SippProcess:
        error_file = Path(tempfile.mkstemp(prefix="sipp-errors-", suffix=".log", dir=workdir)[1])
        proc = await asyncio.create_subprocess_exec(
            str(tools.sipp), *argv, "-i", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM)),
            "-ci", "127.0.0.1", "-cp", str(free_port(socket.SOCK_DGRAM)), "-nostdin",
            "-timeout", f"{timeout_s:g}s", "-timeout_error",
            "-trace_err", "-error_file", str(error_file),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig(), cwd=workdir,
        )  # fmt: skip
        return cls(proc, error_file, timeout_s)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> SippResult:
        """Wait for SIPp to finish (its own ``-timeout`` plus 10 s, then it is killed)."""
        if self._result is None:
            done = False
            try:
                output, _ = await asyncio.wait_for(self._proc.communicate(), self._timeout + 10)
                done = True
            finally:
                if not done:
                    await self.stop()
            text = output.decode(errors="replace")
            counts = {kind: int(n) for kind, n in _COUNTER.findall(text)}
            self._result = SippResult(
                returncode=self._proc.returncode if self._proc.returncode is not None else -1,
                successful=counts.get("Successful", 0),
                failed=counts.get("Failed", 0),
                output=text,
                errors=_tail(self._error_file, 60),
            )
        return self._result

    async def stop(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
