"""SIPp for the real-Asterisk tests: RTP pcaps (RFC 2833 keys and µ-law audio), scenario templates,
the process."""

from __future__ import annotations

import array
import asyncio
import hashlib
import math
import re
import socket
import struct
import subprocess
import sys
import tempfile
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
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


@dataclass(frozen=True, slots=True)
class Audio:
    """Sound the caller sends between keys (what they say after the tone, or a silence that
    still flows as RTP, as a phone's does): 8 kHz mono 16-bit PCM, sent as G.711 µ-law (RTP
    payload 0) in the same stream as the keys."""

    pcm: bytes = field(repr=False)

    @classmethod
    def silence(cls, ms: int) -> Audio:
        return cls(bytes(2 * 8 * ms))

    @classmethod
    def tone(cls, ms: int, *, hz: float = 440.0, amplitude: int = 8000) -> Audio:
        """A sine: a cough or a breath as far as a loudness check can tell."""
        samples = array.array(
            "h", (round(amplitude * math.sin(2 * math.pi * hz * n / 8000)) for n in range(8 * ms))
        )
        if sys.byteorder == "big":
            samples.byteswap()
        return cls(samples.tobytes())

    @classmethod
    def from_wav(cls, path: Path) -> Audio:
        """An 8 kHz mono 16-bit WAV (what ``callcenter.prompts.render`` makes)."""
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (8000, 1, 2):
                raise ValueError(f"{path}: not 8 kHz mono 16-bit")
            return cls(wav.readframes(wav.getnframes()))

    @property
    def ms(self) -> int:
        return len(self.pcm) // 16


#: What a SIPp caller sends after the answer: keys (0-9 * #, ``w``/``W`` pauses) and audio.
Media = str | Sequence[str | Audio]


def dtmf_xml(keys: Media, directory: Path) -> str:
    """SIPp steps that press ``keys`` (0-9 * #; ``w``/``W`` pause 0.5/1 s like SendDTMF) and
    send :class:`Audio` between them, in order.

    Everything goes into one pcap written to ``directory`` (:func:`write_rtp_pcap`) and played
    with ``play_pcap_audio`` by absolute path (SIPp cannot take a variable there), followed by
    a pause as long as the pcap. SIPp's own ``dtmf_2833_<key>.pcap`` files cannot be chained:
    they were cut from one recording, so replaying ``4`` then ``2`` sends sequence numbers and
    timestamps that go backwards, and Asterisk drops the second key.
    """
    parts: list[str | Audio] = [keys] if isinstance(keys, str) else list(keys)
    lead_ms = 0
    if parts and isinstance(parts[0], str):  # SIPp replays a pcap from its first packet
        body = parts[0].lstrip("wW")
        lead_ms = _pause_ms(parts[0][: len(parts[0]) - len(body)])
        parts[0] = body
    parts = [part for part in parts if isinstance(part, Audio) or part]
    steps = [f'<pause milliseconds="{lead_ms}"/>'] if lead_ms else []
    if any(isinstance(part, Audio) or part.strip("wW") for part in parts):
        digest = hashlib.sha1()
        for part in parts:
            digest.update(part.encode() if isinstance(part, str) else b"\0audio" + part.pcm)
        pcap = (directory / f"rtp-{digest.hexdigest()[:12]}.pcap").resolve()
        length_ms = write_rtp_pcap(pcap, parts)
        steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        steps.append(f'<pause milliseconds="{length_ms}"/>')
    elif parts:
        steps.append(f'<pause milliseconds="{sum(_pause_ms(str(part)) for part in parts)}"/>')
    return "\n  ".join(steps)


def _pause_ms(pauses: str) -> int:
    return sum(_PAUSES_MS[p] for p in pauses)


def write_dtmf_pcap(path: Path, keys: str, *, payload_type: int = 101) -> int:
    """:func:`write_rtp_pcap` of keys alone."""
    return write_rtp_pcap(path, [keys], payload_type=payload_type)


def write_rtp_pcap(path: Path, parts: Sequence[str | Audio], *, payload_type: int = 101) -> int:
    """Write one RTP stream as a pcap SIPp can replay; returns its length in ms.

    Keys are RFC 4733 telephone-events: each a 160 ms event (a packet every 20 ms, the end
    packet three times), then 300 ms of silence; ``w``/``W`` add 0.5/1 s. Audio is PCMU, a
    packet every 20 ms, the first marked (a talkspurt). One SSRC, rising sequence numbers and
    timestamps, so Asterisk takes every key, repeated ones included, and every frame."""
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

    def audio(sound: Audio) -> None:
        nonlocal now_ms, seq
        payload = _ulaw(sound.pcm)
        for n, offset in enumerate(range(0, len(payload), 160)):
            chunk = payload[offset : offset + 160].ljust(160, b"\xff")  # 0xFF: µ-law silence
            header = struct.pack(">BBHII", 0x80, (0x80 if n == 0 else 0) | 0,  # PCMU
                                 seq & 0xFFFF, (now_ms * 8 + n * 160) & 0xFFFFFFFF, ssrc)  # fmt: skip
            packet(now_ms + n * 20, header + chunk)
            seq += 1
        now_ms += -(-len(payload) // 160) * 20

    def keys(pressed: str) -> None:
        nonlocal now_ms, seq
        for key in pressed:
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

    for part in parts:
        if isinstance(part, Audio):
            audio(part)
        else:
            keys(part)
    path.write_bytes(bytes(out))
    return now_ms


def _ulaw_sample(sample: int) -> int:
    """G.711 µ-law of one 16-bit sample (ITU-T G.711, as Sun's g711.c)."""
    mask = 0xFF
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 33
    segment = (value >> 6).bit_length()
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0xF)) ^ mask


@cache
def _ulaw_table() -> bytes:
    """µ-law of every 16-bit sample, indexed by the sample's unsigned value."""
    return bytes(_ulaw_sample(s - 65536 if s >= 32768 else s) for s in range(65536))


def _ulaw(pcm: bytes) -> bytes:
    samples = array.array("H", pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    table = _ulaw_table()
    return bytes(table[s] for s in samples)


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
