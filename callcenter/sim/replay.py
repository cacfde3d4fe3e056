"""A fake Asterisk that plays a recorded transcript's ``<`` side and records what the engine
sends, so tests compare the engine's ``>`` lines with the recording byte for byte.

* :func:`replay_agi` connects to the engine's FastAGI server like Asterisk: sends the recorded
  environment, then after each command line it reads, the recorded reply lines.
* :class:`AmiReplayServer` listens like Asterisk's manager: the banner on connect, then after
  each action it reads, the recorded lines up to the next action. ActionIDs differ between the
  recording and the engine: each recorded ActionID is replaced by the one the engine used for the
  matching action (both in what is compared and in what is played back). Nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from callcenter.sim.transcript import Transcript, action_id, ami_action_bytes, ami_messages


@dataclass
class Replay:
    """What the engine sent, what the recording says it should have sent, and anything after."""

    expected: list[bytes] = field(default_factory=list)
    actual: list[bytes] = field(default_factory=list)
    extra: bytes = b""

    @property
    def matched(self) -> bool:
        return self.actual == self.expected and not self.extra


async def _read_until_eof(reader: asyncio.StreamReader, idle: float) -> bytes:
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(idle):
            while chunk := await reader.read(65536):
                data += chunk
    return data


async def replay_agi(transcript: Transcript, host: str, port: int, *, idle_timeout: float = 5.0) -> Replay:
    """Play a FastAGI transcript against the engine at host:port; stop at the first mismatch."""
    result = Replay()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for turn in transcript.turns:
            if turn.direction == "<":
                writer.write("".join(f"{line}\n" for line in turn.lines).encode())
                await writer.drain()
                continue
            expected = f"{turn.lines[0]}\n".encode()
            result.expected.append(expected)
            async with asyncio.timeout(idle_timeout):
                line = await reader.readline()
            result.actual.append(line)
            if line != expected:
                return result
        result.extra = await _read_until_eof(reader, idle_timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return result


class AmiReplayServer:
    """Serves one AMI transcript per connection (``transcripts[i]`` for the i-th client)."""

    def __init__(self, *transcripts: Transcript, idle_timeout: float = 5.0) -> None:
        self.transcripts = list(transcripts)
        self.replays: list[Replay] = []
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.done = asyncio.Event()  # every expected connection ended
        self.played = asyncio.Event()  # the last transcript's turns were all played

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        index = len(self.replays)
        result = Replay()
        self.replays.append(result)
        try:
            if index < len(self.transcripts):
                await self._play(self.transcripts[index], result, reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if len(self.replays) >= len(self.transcripts):
                self.done.set()

    async def _play(
        self,
        transcript: Transcript,
        result: Replay,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        ids: dict[str, str] = {}
        turns = list(transcript.turns)
        banner = next(line for line in transcript.server_lines() if line.startswith("Asterisk"))
        writer.write(f"{banner}\r\n".encode())
        for turn in turns:
            if turn.direction == "<":
                lines = [_swap_id(line, ids) for line in turn.lines if line != banner]
                writer.write("".join(f"{line}\r\n" for line in lines).encode())
                await writer.drain()
                continue
            async with asyncio.timeout(self.idle_timeout):
                raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode().split("\r\n")[:-2]
            recorded, used = action_id(turn.lines), action_id(lines)
            if recorded is not None and used is not None:
                ids[recorded] = used
            expected = [_swap_id(line, ids) for line in turn.lines]
            result.expected.append(("\r\n".join(expected) + "\r\n\r\n").encode())
            result.actual.append(raw)
            if raw != result.expected[-1]:
                return
        if transcript is self.transcripts[-1]:
            self.played.set()
        result.extra = await _read_until_eof(reader, self.idle_timeout)


def _swap_id(line: str, ids: dict[str, str]) -> str:
    key, sep, value = line.partition(": ")
    if sep and key.lower() == "actionid" and value in ids:
        return f"{key}: {ids[value]}"
    return line


# -- the other direction: drive the simulator with a transcript's client side ---------------------


class AgiCommandServer:
    """A stand-in for the engine's FastAGI server: to the (simulated) channel that connects it
    sends a transcript's ``>`` commands, reading as many lines as were recorded after each;
    ``received`` is everything the channel sent. Holds the connection until ``release``."""

    def __init__(self, transcript: Transcript, *, idle_timeout: float = 10.0) -> None:
        self.transcript = transcript
        self.idle_timeout = idle_timeout
        self.received = b""
        self.finished = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            for turn in self.transcript.turns:
                if turn.direction == ">":
                    writer.write(f"{turn.lines[0]}\n".encode())
                    continue
                async with asyncio.timeout(self.idle_timeout):
                    for _ in turn.lines:
                        self.received += await reader.readline()
            self.finished.set()
            await self.release.wait()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            self.finished.set()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def drive_ami(
    transcript: Transcript,
    host: str,
    port: int,
    *,
    idle_timeout: float = 10.0,
) -> list[tuple[str, str]]:
    """Send a transcript's actions (as recorded, ActionIDs included) to an AMI server; after
    each run of actions read as many messages as were recorded. Returns, per server run,
    ``(expected, actual)`` texts (LF line ends) for comparison after normalisation."""
    runs: list[tuple[str, str]] = []
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(idle_timeout):
            banner = (await reader.readline()).decode()
        for turn in transcript.turns:
            if turn.direction == ">":
                writer.write(ami_action_bytes(turn.lines))
                continue
            messages = ami_messages(list(turn.lines))
            actual = ""
            if messages and messages[0][0].startswith("Asterisk Call Manager/"):
                actual, messages = banner, messages[1:]
            async with asyncio.timeout(idle_timeout):
                for _ in messages:
                    actual += (await reader.readuntil(b"\r\n\r\n")).decode()
            expected = "".join(f"{line}\n" for line in turn.lines)
            runs.append((expected, actual.replace("\r\n", "\n")))
    except (TimeoutError, asyncio.IncompleteReadError) as exc:
        runs.append(("<the rest of the transcript>", f"<stopped: {exc!r}>"))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return runs
