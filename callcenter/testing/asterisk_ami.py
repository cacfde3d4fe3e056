"""A small AMI client for the real-Asterisk tests (the engine's own client is tested apart)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Self

from callcenter.testing.asterisk_base import AsteriskError

# -- AMI ----------------------------------------------------------------------------------------

AmiMessage = dict[str, str]


class AmiSession:
    """A bare AMI connection for tests and benchmarks, independent of the engine's client.

    Every message received is kept in :attr:`messages` (a dict per message; a repeated header
    such as ``ChanVariable`` holds its values joined by newlines); :meth:`wait_for` finds one.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.messages: list[AmiMessage] = []
        self._changed = asyncio.Condition()
        self._ids = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, username: str, secret: str, *, events: str = "on"
    ) -> AmiSession:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        session = cls(reader, writer)
        try:
            await asyncio.wait_for(reader.readline(), 10)  # "Asterisk Call Manager/11.0.0"
            session._task = asyncio.create_task(session._read(), name="ami-session-reader")
            reply = await session.action("Login", {"Username": username, "Secret": secret, "Events": events})
            if reply.get("Response") != "Success":
                raise AsteriskError(f"AMI login refused: {reply}")
        except BaseException:
            await session.close()
            raise
        return session

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _read(self) -> None:
        message: AmiMessage = {}
        while line := await self._reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                value = value.strip()
                # Repeated headers (ChanVariable: one per variable) are joined by newlines.
                message[key] = f"{message[key]}\n{value}" if key in message else value
                continue
            if message:
                async with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
                message = {}

    async def send(self, action: str, headers: Mapping[str, str | Sequence[str]] | None = None) -> str:
        """Send an action without waiting; returns its ActionID."""
        self._ids += 1
        action_id = f"t{self._ids}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in (headers or {}).items():
            values = [value] if isinstance(value, str) else list(value)
            lines.extend(f"{key}: {item}" for item in values)
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return action_id

    async def action(
        self,
        action: str,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        *,
        timeout_s: float = 10.0,
    ) -> AmiMessage:
        """Send an action and return its response."""
        action_id = await self.send(action, headers)
        return await self.wait_for(
            lambda m: m.get("ActionID") == action_id and "Response" in m, timeout_s=timeout_s
        )

    async def wait_for(self, match: Callable[[AmiMessage], bool], *, timeout_s: float = 10.0) -> AmiMessage:
        """The first message (since connecting) for which ``match`` is true."""

        def find() -> AmiMessage | None:
            return next((m for m in self.messages if match(m)), None)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: find() is not None), timeout_s)
            except TimeoutError:
                raise AsteriskError(f"no matching AMI message within {timeout_s:g}s") from None
        found = find()
        assert found is not None
        return found

    async def originate(
        self,
        channel: str,
        *,
        context: str,
        exten: str = "s",
        priority: int = 1,
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        timeout_ms: int = 30000,
    ) -> AmiMessage:
        """An async Originate; returns its OriginateResponse event (Reason 4 answered,
        5 busy, 3 no answer, 8 congestion, 0 failed)."""
        headers: dict[str, str | Sequence[str]] = {
            "Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority),
            "Timeout": str(timeout_ms), "Async": "true",
        }  # fmt: skip
        if caller_id:
            headers["CallerID"] = caller_id
        if variables:
            headers["Variable"] = [f"{key}={value}" for key, value in variables.items()]
        reply = await self.action("Originate", headers)
        if reply.get("Response") != "Success":
            raise AsteriskError(f"Originate refused: {reply}")
        action_id = reply["ActionID"]
        return await self.wait_for(
            lambda m: m.get("Event") == "OriginateResponse" and m.get("ActionID") == action_id,
            timeout_s=timeout_ms / 1000 + 10,
        )

    async def close(self) -> None:
        if not self._writer.is_closing():
            with contextlib.suppress(OSError, asyncio.TimeoutError, AsteriskError):
                await asyncio.wait_for(self.send("Logoff"), 2)
            self._writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task
