"""One FastAGI call as the engine sees it: the ``agi_*`` environment and typed commands.

Replaces panoramisk's ``fast_agi.Request``: see :mod:`.agi_wire` for what its reply parsing
misses (``HANGUP`` between a command and its reply, multi-line ``520``, end of stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from callcenter.telephony.agi_wire import (
    AgiCommandFailed,
    AgiConnectionLost,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiReply,
    AgiUsageError,
    app_args,
    check_text,
    command_name,
    parse_result,
    quote,
    split_code,
    word,
)

log = logging.getLogger(__name__)

CommandHook = Callable[[str, float], None]

_DIGITS = frozenset("0123456789*#")
_MAX_USAGE_LINES = 500


@dataclass(frozen=True, slots=True)
class Recorded:
    """How ``RECORD FILE`` ended: the key pressed (``dtmf``), or ``timeout`` (the time limit
    or the silence), and the samples written (``endpos``; 8 per ms at 8 kHz)."""

    key: str | None
    reason: str
    endpos: int


def script_name(value: str) -> str:
    """``"/main?x=1"`` or ``"agi://host:4573/main"`` → ``"main"``."""
    if "://" in value:
        value = urlsplit(value).path
    return value.split("?", 1)[0].strip("/")


class AgiEnv(Mapping[str, str]):
    """The ``agi_*`` variables Asterisk sends first, keyed as sent (``env["agi_channel"]``)."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._vars = dict(variables)

    def __getitem__(self, key: str) -> str:
        return self._vars[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def __repr__(self) -> str:
        return f"AgiEnv({self._vars!r})"

    def _known(self, key: str) -> str | None:
        """Asterisk writes ``unknown`` for an unset caller id, DNID or RDNIS."""
        value = self._vars.get(key, "")
        return None if value in ("", "unknown") else value

    @property
    def script(self) -> str:
        """The route name: ``agi_network_script`` without leading ``/`` or query arguments."""
        raw = self._vars.get("agi_network_script") or self._vars.get("agi_request", "")
        return script_name(raw)

    @property
    def network_script(self) -> str:
        return self._vars.get("agi_network_script", "")

    @property
    def request(self) -> str:
        return self._vars.get("agi_request", "")

    @property
    def channel(self) -> str:
        return self._vars.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self._vars.get("agi_uniqueid", "")

    @property
    def callerid(self) -> str | None:
        return self._known("agi_callerid")

    @property
    def calleridname(self) -> str | None:
        return self._known("agi_calleridname")

    @property
    def dnid(self) -> str | None:
        return self._known("agi_dnid")

    @property
    def rdnis(self) -> str | None:
        return self._known("agi_rdnis")

    @property
    def context(self) -> str:
        return self._vars.get("agi_context", "")

    @property
    def extension(self) -> str:
        return self._vars.get("agi_extension", "")

    @property
    def priority(self) -> str:
        return self._vars.get("agi_priority", "")

    @property
    def language(self) -> str:
        return self._vars.get("agi_language", "")

    @property
    def arguments(self) -> list[str]:
        """``agi_arg_1`` .. ``agi_arg_N`` in order (the ``AGI(url,a,b)`` arguments)."""
        args: list[str] = []
        while (value := self._vars.get(f"agi_arg_{len(args) + 1}")) is not None:
            args.append(value)
        return args


class AgiChannel:
    """One FastAGI connection: the call's environment and its commands.

    Commands are serialised (AGI is strictly request/reply). ``200 result=-1`` from a command
    that listens to the caller is ambiguous (hangup or e.g. a missing prompt); Asterisk writes
    ``HANGUP`` right after such a reply when the caller has gone, so the channel waits up to
    ``hangup_grace`` seconds for it and raises :class:`AgiHangup` or :class:`AgiCommandFailed`.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: AgiEnv,
        *,
        hangup_grace: float = 0.05,
        on_command: CommandHook | None = None,
        encoding: str = "utf-8",
    ) -> None:
        self.env = env
        self.hung_up = False
        self._reader = reader
        self._writer = writer
        self._grace = hangup_grace
        self._on_command = on_command
        self._encoding = encoding
        self._lock = asyncio.Lock()

    @classmethod
    async def accept(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        env_timeout: float | None = 10.0,
        hangup_grace: float = 0.05,
        on_command: CommandHook | None = None,
        encoding: str = "utf-8",
    ) -> AgiChannel:
        """Read the ``agi_*`` environment (up to the blank line) and wrap the connection."""
        channel = cls(
            reader, writer, AgiEnv({}), hangup_grace=hangup_grace, on_command=on_command,
            encoding=encoding,
        )  # fmt: skip
        variables: dict[str, str] = {}
        try:
            async with asyncio.timeout(env_timeout):
                while line := await channel._readline():
                    key, sep, value = line.partition(":")
                    if not sep or not key.startswith("agi_"):
                        raise AgiProtocolError(f"not an AGI environment line: {line[:200]!r}")
                    variables[key] = value.removeprefix(" ")
        except TimeoutError:
            raise AgiProtocolError(f"no AGI environment within {env_timeout}s") from None
        except AgiHangup:
            raise AgiProtocolError("connection closed before the end of the environment") from None
        channel.env = AgiEnv(variables)
        return channel

    @property
    def name(self) -> str:
        return self.env.channel

    # -- the generic command ------------------------------------------------------------------

    async def command(self, line: str) -> AgiReply:
        """Send one command line; return the ``200`` reply, whatever its result.

        Raises :class:`AgiHangup` if ``HANGUP`` arrived during the command,
        :class:`AgiDeadChannel` (511), :class:`AgiInvalidCommand` (510),
        :class:`AgiUsageError` (520) or :class:`AgiProtocolError`.
        """
        return await self._execute(line, checked=False)

    async def _execute(self, line: str, *, checked: bool) -> AgiReply:
        check_text(line)
        async with self._lock:
            started = time.perf_counter()
            await self._write(line)
            reply, hangup = await self._read_reply(line)
            self._report(line, time.perf_counter() - started)
            self._raise_for(line, reply, hangup)
            if checked and reply.result_text == "-1":
                await self._failed(line, reply)
            return reply

    async def _write(self, line: str) -> None:
        if self._writer.is_closing():  # reset or closed while we were not reading
            raise self._lost("the FastAGI connection is closed", command=line)
        self._writer.write(line.encode(self._encoding) + b"\n")
        try:
            await self._writer.drain()
        except OSError as exc:  # reset, or timed out (keepalive, TCP_USER_TIMEOUT)
            raise self._lost(f"connection lost: {exc}", command=line) from exc

    async def _readline(self) -> str:
        try:
            raw = await self._reader.readline()
        except ValueError as exc:  # longer than the StreamReader limit
            raise AgiProtocolError(f"FastAGI line too long: {exc}") from exc
        except OSError as exc:  # reset, or timed out (keepalive, TCP_USER_TIMEOUT)
            raise self._lost(f"connection lost: {exc}") from exc
        if not raw.endswith(b"\n"):
            raise self._lost("Asterisk closed the FastAGI connection")
        return raw[:-1].decode(self._encoding, "replace").removesuffix("\r")

    def _lost(self, message: str, *, command: str = "") -> AgiHangup:
        """The connection is gone: after a ``HANGUP`` (or ours) that is the call's end as
        expected; before it, :class:`AgiConnectionLost` (Asterisk or the link failed)."""
        known, self.hung_up = self.hung_up, True
        if known:
            return AgiHangup(message, command=command)
        return AgiConnectionLost(message, command=command)

    async def _read_reply(self, command: str) -> tuple[AgiReply, bool]:
        """Read up to the final reply line, skipping ``100 Trying`` and noting ``HANGUP``."""
        hangup, known = False, self.hung_up
        while True:
            line = await self._readline()
            if line == "HANGUP":  # news only if we did not know yet (e.g. after our HANGUP)
                hangup, self.hung_up = not known, True
                continue
            code, sep, rest = split_code(line)
            if code == 100:
                continue
            if code == 200:
                return parse_result(line, code=code, rest=rest), hangup
            if code == 520 and sep == "-":
                lines = [line]
                while not lines[-1].startswith("520 "):
                    if len(lines) > _MAX_USAGE_LINES:
                        raise AgiProtocolError(f"520 usage reply to {command!r} never ends")
                    lines.append(await self._readline())
                return AgiReply(520, lines=tuple(lines)), hangup
            if code in (510, 511, 520) and sep == " ":
                return AgiReply(code, lines=(line,)), hangup
            raise AgiProtocolError(f"unexpected FastAGI reply to {command!r}: {line[:200]!r}")

    def _raise_for(self, command: str, reply: AgiReply, hangup: bool) -> None:
        where = f"{command!r} on {self.name or 'an AGI channel'}"
        if reply.code == 510:
            raise AgiInvalidCommand(f"unknown AGI command {where}", reply=reply, command=command)
        if reply.code == 520:
            usage = "\n".join(reply.lines[1:-1])
            raise AgiUsageError(f"bad usage of {where}", usage=usage, reply=reply, command=command)
        if reply.code == 511:
            self.hung_up = True
            raise AgiDeadChannel(f"dead channel: {where}", reply=reply, command=command)
        if hangup:
            raise AgiHangup(f"caller hung up during {where}", reply=reply, command=command)

    async def _failed(self, command: str, reply: AgiReply) -> NoReturn:
        if not self.hung_up:
            try:
                async with asyncio.timeout(self._grace):
                    line = await self._readline()
            except TimeoutError:
                raise AgiCommandFailed(
                    f"{command!r} failed (result=-1)", reply=reply, command=command
                ) from None
            if line != "HANGUP":
                raise AgiProtocolError(f"unexpected line after {command!r}: {line[:200]!r}")
            self.hung_up = True
        raise AgiHangup(f"caller hung up during {command!r}", reply=reply, command=command)

    def _report(self, line: str, seconds: float) -> None:
        if self._on_command is None:
            return
        try:
            self._on_command(command_name(line), seconds)
        except Exception:
            log.exception("AGI on_command hook failed")

    # -- typed commands -----------------------------------------------------------------------

    async def answer(self) -> None:
        await self._execute("ANSWER", checked=True)

    async def hangup(self) -> None:
        """Hang the call up (the AGI ``HANGUP`` command); later commands run in dead mode."""
        await self._execute("HANGUP", checked=True)
        self.hung_up = True

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._execute(f"VERBOSE {quote(message)} {int(level)}", checked=False)

    async def stream_file(self, path: str, escape_digits: str = "") -> str | None:
        """Play a prompt (path without extension); the escape digit pressed, or None."""
        reply = await self._execute(f"STREAM FILE {word(path)} {quote(_digits(escape_digits))}", checked=True)
        return self._digit(reply)

    async def get_data(self, path: str, timeout_ms: int | None = None, max_digits: int | None = None) -> str:
        """Play a prompt and collect digits: the digits (``'#'`` ends input), ``''`` on timeout."""
        line = f"GET DATA {word(path)}"
        if timeout_ms is not None or max_digits is not None:
            line += f" {int(timeout_ms or 0)}"
        if max_digits is not None:
            line += f" {int(max_digits)}"
        reply = await self._execute(line, checked=True)
        return reply.result_text

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one key (``-1`` waits forever); the key, or None on timeout."""
        reply = await self._execute(f"WAIT FOR DIGIT {int(timeout_ms)}", checked=True)
        return self._digit(reply)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        if not digits.isdigit() or not digits.isascii():
            raise ValueError(f"SAY DIGITS takes decimal digits, not {digits!r}")
        reply = await self._execute(f"SAY DIGITS {digits} {quote(_digits(escape_digits))}", checked=True)
        return self._digit(reply)

    async def record_file(
        self,
        path: str,
        *,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = -1,
        beep: bool = True,
        silence_s: int | None = None,
    ) -> Recorded:
        """Record the caller to ``path.fmt`` (Asterisk writes the file: ``path`` is as the
        Asterisk host sees it, without extension) until a key of ``escape_digits``,
        ``timeout_ms`` (-1: none) or ``silence_s`` seconds of silence. A hang-up raises
        :class:`AgiHangup`; a file Asterisk cannot write, :class:`AgiCommandFailed`."""
        line = f"RECORD FILE {word(path)} {word(fmt)} {quote(_digits(escape_digits))} {int(timeout_ms)}"
        if beep:
            line += " BEEP"
        if silence_s:
            line += f" s={int(silence_s)}"
        reply = await self._execute(line, checked=True)
        key = self._digit(reply) if reply.data == "dtmf" else None
        endpos = reply.extra.get("endpos", "0")
        return Recorded(key, reply.data or "", int(endpos) if endpos.isdigit() else 0)

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or function (``CALLERID(num)``); None when unset."""
        reply = await self._execute(f"GET VARIABLE {word(name)}", checked=False)
        return (reply.data or "") if reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> None:
        await self._execute(f"SET VARIABLE {word(name)} {quote(value)}", checked=False)

    async def exec(self, application: str, args: str = "") -> int:
        """Run a dialplan application; its return value (``-2``: no such application)."""
        line = f"EXEC {word(application)}" + (f" {app_args(args)}" if args else "")
        reply = await self._execute(line, checked=False)
        if reply.result is None:
            raise AgiProtocolError(f"EXEC reply without a number: {reply.lines}", reply=reply)
        return reply.result

    def _digit(self, reply: AgiReply) -> str | None:
        """``result`` is the key's ASCII code (``57`` → ``'9'``), 0 for none."""
        code = reply.result
        if code is None or not 0 <= code < 128:
            raise AgiProtocolError(f"not a key code: {reply.lines}", reply=reply)
        return chr(code) if code else None

    async def close(self) -> None:
        await close_writer(self._writer)


def _digits(value: str) -> str:
    if not set(value) <= _DIGITS:
        raise ValueError(f"escape digits must be among 0-9 * #, not {value!r}")
    return value


async def close_writer(writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(2):
            await writer.wait_closed()
