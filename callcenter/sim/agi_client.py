"""The simulated channel's side of FastAGI: connect, send ``agi_*``, answer like Asterisk 22.

Replies follow res_agi.c and the recordings byte for byte: ``200 result=0`` to ``ANSWER``,
``STREAM FILE`` → ``200 result=0 endpos=16000`` (8 samples per ms) or the escape digit's code,
``GET DATA`` → ``200 result=12`` / ``200 result= (timeout)``, ``WAIT FOR DIGIT`` → the key's
ASCII code, ``510 Invalid or unknown command``, a ``520-`` usage block, and after the caller
hangs up: the ``HANGUP`` line, then ``511 Command Not Permitted on a dead channel or intercept
routine`` for every command that needs a live channel (``EXEC``, ``GET/SET VARIABLE``,
``VERBOSE`` ... still work, as in Asterisk).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import random
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

from callcenter.sim.citizen import HangUp, Press, PromptLibrary, Script, Silence, Step
from callcenter.sim.core import SimChannel, SimClock
from callcenter.telephony.agi_wire import (
    AGI_COMMANDS,
    DEAD_CHANNEL,
    INVALID_COMMAND,
    USAGE_END,
    USAGE_FOLLOWS,
    split_args,
)

log = logging.getLogger(__name__)

SAMPLES_PER_MS = 8
KEY_MS = 100  # SendDTMF's default tone length (DurationMs: 100 in the recordings)
SILENCE_CAP_MS = 60_000  # "wait forever" (-1) while the caller stays silent
_COMMANDS = sorted(AGI_COMMANDS, key=lambda name: -len(name.split()))
_LISTENING = {"STREAM FILE", "CONTROL STREAM FILE", "GET OPTION", "GET DATA", "WAIT FOR DIGIT"}
_SAY = {"SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "SAY PHONETIC", "SAY DATE", "SAY TIME"}
_SAY |= {"SAY DATETIME"}


@dataclass(frozen=True, slots=True)
class Reply:
    lines: tuple[str, ...]
    code: int = 200  # AGIExecEnd ResultCode
    result: str = "Success"  # AGIExecEnd Result


def ok(line: str) -> Reply:
    return Reply((line,))


def failed(line: str) -> Reply:
    """res_agi's RESULT_FAILURE: same reply line, ``ResultCode: -1`` in the AMI event."""
    return Reply((line,), -1, "Failure")


def usage(command: str) -> Reply:
    """The usage text itself is not in the recordings; the command's name stands for it."""
    text = f" Usage: {command} (see 'agi show commands topic {command.lower()}')"
    return Reply((f"520-{USAGE_FOLLOWS}", text, f"520 {USAGE_END}"), 520, "Usage")


class AgiObserver:
    """What the rest of the simulated Asterisk sees of an AGI session; no-ops by default."""

    def command_started(self, command_id: int, line: str) -> None: ...

    def command_ended(self, command_id: int, line: str, code: int, result: str) -> None: ...

    def variable_set(self, name: str, value: str) -> None: ...

    def step_started(self, step: Step) -> None: ...

    def dtmf(self, digit: str) -> None: ...

    def caller_hung_up(self) -> None: ...

    def agi_hung_up(self) -> None: ...

    async def exec_app(self, call: SimAgiChannel, app: str, args: str) -> int:
        return await run_app(call, app, args)


#: applications EXEC knows; any other answers ``200 result=-2`` (no such application)
APPS = {"answer", "background", "dial", "goto", "hangup", "mixmonitor", "noop", "playback",
        "queue", "read", "senddtmf", "set", "wait", "waitexten"}  # fmt: skip


async def run_app(call: SimAgiChannel, app: str, args: str) -> int:
    """``EXEC`` without the rest of a PBX: ``Wait`` waits, ``Dial`` is answered by an agent
    who then hangs up (``DIALSTATUS=ANSWER``, result -1 as Dial without the ``g`` option),
    ``Set`` sets, ``Playback`` plays, other known applications return 0, unknown ones -2."""
    name = app.lower()
    if name not in APPS:
        return -2
    if name == "wait":
        await call.clock.sleep_ms(1000 * _atof(args))
        return 0
    if name == "playback":  # files joined by & play one after the other
        durations = [call.prompts.duration_ms(path) for path in args.split(",", 1)[0].split("&")]
        await call.clock.sleep_ms(sum(d or 0 for d in durations))
        call.set_variable("PLAYBACKSTATUS", "FAILED" if None in durations else "SUCCESS")
        return 0
    if name == "dial":
        if call.dead:
            return -1
        call.set_variable("DIALSTATUS", "ANSWER")
        return -1
    if name == "set" and "=" in args:
        key, _, value = args.partition("=")
        call.set_variable(key, value)
    return 0


class SimAgiChannel:
    """One simulated call's FastAGI session, driven by a :class:`Caller` script (or any
    :class:`~callcenter.sim.citizen.Script`)."""

    def __init__(
        self,
        channel: SimChannel,
        env: list[tuple[str, str]],
        *,
        caller: Script,
        prompts: PromptLibrary | None = None,
        clock: SimClock | None = None,
        observer: AgiObserver | None = None,
    ) -> None:
        self.channel = channel
        self.env = env
        self.caller = caller
        self.prompts = prompts or PromptLibrary()
        self.clock = clock or SimClock(0)
        self.observer = observer or AgiObserver()
        self.dead = False
        self.commands: list[str] = []
        self._steps = 0
        self._needhup = False
        self._line = ""

    async def run(self, host: str, port: int) -> None:
        """Connect, send the environment, answer commands until the engine closes."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            lines = [f"{key}: {value}" for key, value in self.env]
            writer.write(("\n".join(lines) + "\n\n").encode())
            await writer.drain()
            while True:
                if self._needhup:  # res_agi's run_agi loop: HANGUP before reading again
                    self._needhup, self.dead = False, True
                    writer.write(b"HANGUP\n")
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    return
                line = raw[:-1].decode("utf-8", "replace")
                reply = await self.handle(line)
                writer.write("".join(f"{out}\n" for out in reply.lines).encode())
                await writer.drain()
        except ConnectionError as exc:
            log.debug("FastAGI connection of %s lost: %s", self.channel.name, exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def handle(self, line: str) -> Reply:
        self.commands.append(line)
        self._line = line
        command_id = random.randrange(1, 2**31)
        self.observer.command_started(command_id, line)
        args = split_args(line)
        upper = [arg.upper() for arg in args]
        name = next((c for c in _COMMANDS if upper[: len(c.split())] == c.split()), None)
        if name is None:
            reply = Reply((f"510 {INVALID_COMMAND}",), 510, INVALID_COMMAND)
        elif self.dead and not AGI_COMMANDS[name]:
            reply = Reply((f"511 {DEAD_CHANNEL}",), 511, DEAD_CHANNEL)
        else:
            reply = await self._run(name, args)
        self.observer.command_ended(command_id, line, reply.code, reply.result)
        return reply

    async def _run(self, name: str, args: list[str]) -> Reply:
        argc = len(args)
        if name == "ANSWER":
            return ok("200 result=0")
        if name in ("VERBOSE", "SET CALLERID"):
            return usage(name) if argc < 2 else ok("200 result=1")
        if name == "GET VARIABLE":
            if argc != 3:
                return usage(name)
            value = self.channel.lookup(args[2])
            return ok("200 result=0" if value is None else f"200 result=1 ({value})")
        if name == "SET VARIABLE":
            if argc != 4:
                return usage(name)
            self.set_variable(args[2], args[3])
            return ok("200 result=1")
        if name == "EXEC":
            if argc < 2:
                return usage(name)
            data = args[2] if argc > 2 else ""
            self.channel.application, self.channel.app_data = args[1], data
            res = await self.observer.exec_app(self, args[1], data)
            return Reply((f"200 result={res}",), 200, "Success" if res == 0 else "Unknown Result")
        if name == "HANGUP":
            if argc > 2:
                return usage(name)
            if argc == 1:
                self.observer.agi_hung_up()
                self._needhup = True
            return ok("200 result=1")
        if name == "CHANNEL STATUS":
            return usage(name) if argc > 3 else ok(f"200 result={self.channel.state}")
        if name in _LISTENING or name in _SAY:
            return await self._listen(name, args)
        if name == "RECORD FILE":
            return await self._record(args)
        return ok("200 result=0")

    def set_variable(self, name: str, value: str) -> None:
        self.channel.variables[name] = value
        self.observer.variable_set(name, value)

    def _next_step(self, duration_ms: int | None = None) -> Step:
        step = self.caller.react(
            self._steps, command=self._line, duration_ms=duration_ms, now_ms=self.clock.now_ms()
        )
        self._steps += 1
        self.observer.step_started(step)
        if isinstance(step, Press):
            for key in step.keys:
                self.observer.dtmf(key)
        return step

    def _hang_up(self) -> None:
        self.observer.caller_hung_up()
        self._needhup = True

    def hang_up(self) -> None:
        """The caller hangs up now (while an application runs, say a ringing ``Dial``):
        ``HANGUP`` follows the current reply, as res_agi sends it."""
        self._hang_up()

    async def _listen(self, name: str, args: list[str]) -> Reply:
        if name in ("STREAM FILE", "CONTROL STREAM FILE", "GET OPTION"):
            return await self._stream(name, args)
        if name == "GET DATA":
            return await self._get_data(args)
        if name == "WAIT FOR DIGIT":
            if len(args) != 4 or not _is_int(args[3]):
                return usage(name)
            step = self._next_step(SILENCE_CAP_MS if int(args[3]) < 0 else int(args[3]))
            if isinstance(step, HangUp):
                await self.clock.sleep_ms(step.after_ms)
                self._hang_up()
                return failed("200 result=-1")
            if isinstance(step, Press) and step.keys:
                await self.clock.sleep_ms(step.after_ms)
                return ok(f"200 result={ord(step.keys[0])}")
            timeout = int(args[3])
            await self.clock.sleep_ms(SILENCE_CAP_MS if timeout < 0 else timeout)
            return ok("200 result=0")
        return await self._say(name, args)

    async def _stream(self, name: str, args: list[str]) -> Reply:
        if not 4 <= len(args) <= 5 or (len(args) == 5 and not _is_int(args[4])):
            return usage(name)
        offset = int(args[4]) if len(args) == 5 and name == "STREAM FILE" else 0
        duration = self.prompts.duration_ms(args[2])
        if duration is None:
            return failed(f"200 result=-1 endpos={offset}")
        escape = args[3]
        step = self._next_step(duration)
        result, played = 0, duration
        if isinstance(step, HangUp):
            played = min(step.after_ms, duration)
            await self.clock.sleep_ms(played)
            self._hang_up()
            result = -1
        else:
            pressed = _first_escape(step, escape, duration)
            if pressed is not None:
                result, played = ord(pressed[0]), pressed[1]
            await self.clock.sleep_ms(played)
        if name == "STREAM FILE":
            self.set_variable("PLAYBACKSTATUS", "FAILED" if result else "SUCCESS")
        suffix = "" if name == "CONTROL STREAM FILE" else f" endpos={played * SAMPLES_PER_MS}"
        line = f"200 result={result}{suffix}"
        return failed(line) if result < 0 else ok(line)

    async def _get_data(self, args: list[str]) -> Reply:
        if len(args) < 3:
            return usage("GET DATA")
        timeout = _atoi(args[3]) if len(args) > 3 else 0
        timeout = timeout or 2000
        max_digits = _atoi(args[4]) if len(args) > 4 else 1024
        duration = self.prompts.duration_ms(args[2])
        if duration is None:
            return ok("200 result=-1")
        step = self._next_step(duration)
        if isinstance(step, HangUp):
            await self.clock.sleep_ms(step.after_ms)
            self._hang_up()
            return ok("200 result=-1")
        if isinstance(step, Silence) or not step.keys:
            await self.clock.sleep_ms(duration + timeout)
            return ok("200 result= (timeout)")
        digits = ""
        for key in step.keys:
            if key == "#":
                break
            digits += key
            if len(digits) >= max(max_digits, 1):
                break
        else:
            await self.clock.sleep_ms(_key_time(step, len(step.keys)) + timeout)
            return ok(f"200 result={digits} (timeout)")
        await self.clock.sleep_ms(_key_time(step, len(digits)))
        return ok(f"200 result={digits}")

    async def _say(self, name: str, args: list[str]) -> Reply:
        if len(args) < 4 or (name == "SAY DIGITS" and (len(args) != 4 or not _is_int(args[2]))):
            return usage(name)
        duration = 500 * max(1, len(args[2]))
        step = self._next_step(duration)
        if isinstance(step, HangUp):
            await self.clock.sleep_ms(min(step.after_ms, duration))
            self._hang_up()
            return failed("200 result=-1")
        pressed = _first_escape(step, args[3], duration)
        await self.clock.sleep_ms(duration if pressed is None else pressed[1])
        return ok(f"200 result={ord(pressed[0]) if pressed else 0}")

    async def _record(self, args: list[str]) -> Reply:
        """``RECORD FILE <path> <format> <escape> <timeout> [offset] [BEEP] [s=<silence>]`` as
        res_agi answers it, writing the file as Asterisk would (a ``wav`` is 8 kHz mono 16-bit).
        The caller's step says what they do: ``Press`` speaks for ``after_ms`` then presses the
        key (``(dtmf)``; a key that is not an escape is just more speech until the timeout),
        ``Silence`` says nothing until the silence limit or the timeout (``(timeout)``),
        ``HangUp`` speaks for ``after_ms`` then hangs up (``result=-1 (hangup)``)."""
        if len(args) < 6 or not _is_int(args[5]):
            return usage("RECORD FILE")
        path, fmt, escape, timeout = args[2], args[3], args[4], int(args[5])
        silence = next((_atoi(a[2:]) for a in args[6:] if a.startswith("s=")), 0)
        limit = timeout if timeout > 0 else SILENCE_CAP_MS
        step = self._next_step(limit)
        if isinstance(step, HangUp):
            spoken, quiet, line = min(step.after_ms, limit), 0, "200 result=-1 (hangup) endpos={}"
        elif isinstance(step, Press) and step.keys and step.keys[0] in escape and step.after_ms < limit:
            spoken, quiet, line = step.after_ms, 0, f"200 result={ord(step.keys[0])} (dtmf) endpos={{}}"
        elif isinstance(step, Press):
            spoken, quiet, line = limit, 0, "200 result=0 (timeout) endpos={}"
        else:
            spoken, line = 0, "200 result=0 (timeout) endpos={}"
            quiet = min(limit, silence * 1000) if silence else limit
        if not _write_recording(path, fmt, spoken_ms=spoken, silent_ms=quiet):
            return failed("200 result=-1 (writefile)")
        await self.clock.sleep_ms(spoken + quiet)
        reply = line.format((spoken + quiet) * SAMPLES_PER_MS)
        if isinstance(step, HangUp):
            self._hang_up()
            return failed(reply)
        return ok(reply)


def _write_recording(path: str, fmt: str, *, spoken_ms: int, silent_ms: int) -> bool:
    """``path.fmt``: a 440 Hz tone for the speech, then silence (False: cannot be written,
    like Asterisk when the directory is missing)."""
    target = Path(f"{path}.{fmt}")
    if not target.parent.is_dir():
        return False
    tone = [int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8 * spoken_ms)]
    samples = array.array("h", tone + [0] * (8 * silent_ms))
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(samples.tobytes())
    return True


def _key_time(step: Press, count: int) -> int:
    """When the ``count``-th key of a step has been pressed (ms into the command)."""
    return step.after_ms + max(count - 1, 0) * (KEY_MS + step.between_ms) + KEY_MS


def _first_escape(step: Step, escape: str, duration: int) -> tuple[str, int] | None:
    """The first pressed key that interrupts playback, and when; keys after the end don't."""
    if not isinstance(step, Press):
        return None
    for index, key in enumerate(step.keys):
        at = step.after_ms + index * (KEY_MS + step.between_ms)
        if at < duration and key in escape:
            return key, at
    return None


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _atof(text: str) -> float:
    try:
        return float(text.split(",", 1)[0] or 0)
    except ValueError:
        return 0.0


def _atoi(text: str) -> int:
    digits = ""
    for char in text.strip():
        if char.isdigit() or (char == "-" and not digits):
            digits += char
        else:
            break
    return int(digits) if digits.strip("-") else 0
