"""The FastAGI scripts the recordings were made with, as engine handlers.

They issue exactly the commands of ``agi-session-1.txt`` / ``agi-session-2.txt`` through the
typed :class:`~callcenter.telephony.agi.AgiChannel` API and note what each call returned or
raised, so a test can replay a recording against the engine (or run the simulator against the
engine) and check both the bytes and the typed results. Also a small demo for the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from callcenter.telephony.agi import AgiChannel, AgiError

T = TypeVar("T")


class RecordedScript:
    """``outcomes`` holds ``(label, value)`` or ``(label, "!ErrorClass")`` per command.

    ``hold`` (set by default) keeps the connection open after the last command until released:
    in ``ami-session-1.txt`` the AGI channel is still up when ``CoreShowChannels`` runs.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.outcomes: list[tuple[str, object]] = []
        self.env: dict[str, str] = {}
        self.finished = asyncio.Event()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def _try(self, label: str, call: Awaitable[T]) -> None:
        try:
            self.outcomes.append((label, await call))
        except AgiError as exc:
            self.outcomes.append((label, f"!{type(exc).__name__}"))

    async def session_1(self, call: AgiChannel) -> None:
        """Answer, talk, read variables, play, time out; the caller hangs up; dead-channel use."""
        self.env = dict(call.env)
        try:
            await self._try("answer", call.answer())
            await self._try("verbose", call.verbose("hello from fastagi", 1))
            await self._try("callerid", call.get_variable("CALLERID(num)"))
            await self._try("nosuchvar", call.get_variable("NOSUCHVAR"))
            await self._try("set", call.set_variable("INQUIRY_ID", "42"))
            await self._try("stream", call.stream_file("silence2"))
            await self._try("stream-missing", call.stream_file("nosuchfile"))
            await self._try("get-data-timeout", call.get_data("beep", 4000, 1))
            await self._try("get-data-hangup", call.get_data("beep", 3000, 2))
            await self._try("wait-after-hangup", call.wait_for_digit(2000))
            await self._try("status", call.command("CHANNEL STATUS"))
            await self._try("bogus", call.command("BOGUS COMMAND here"))
            await self._try("get-data-no-args", call.command("GET DATA"))
            await self._try("exec-dead", call.exec("Wait", "1"))
            await self._try("wait-dead", call.wait_for_digit(15000))
            await self._try("get-data-dead", call.get_data("beep", 2000, 1))
            await self._try("answer-dead", call.answer())
            await self.release.wait()
        finally:
            self.finished.set()

    async def session_2(self, call: AgiChannel) -> None:
        """Keys 3, 12#, 9; say digits; dial an agent; the caller hangs up while we wait."""
        self.env = dict(call.env)
        try:
            await self._try("answer", call.answer())
            await self._try("menu", call.get_data("beep", 3000, 1))
            await self._try("number", call.get_data("beep", 3000, 3))
            await self._try("digit", call.wait_for_digit(3000))
            await self._try("say", call.say_digits("1415"))
            await self._try("dial", call.exec("Dial", "Local/101@agents,10"))
            await self._try("dialstatus", call.get_variable("DIALSTATUS"))
            await self._try("wait-hangup", call.wait_for_digit(20000))
            await self._try("answer-dead", call.answer())
            await self.release.wait()
        finally:
            self.finished.set()
