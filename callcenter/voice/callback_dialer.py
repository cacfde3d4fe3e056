"""The callback dialer: when a callback's turn comes, the router has already reserved an agent
(whose desk shows the citizen's card); this dials the citizen, and the ``callback`` FastAGI
script rings the agent once the citizen answers.

Each second it looks for agents reserved for a callback that no process dials yet (a Redis
claim makes "two processes, one callback" impossible), checks the callback still stands —
not expired, the citizen not opted out, inside call hours — and places the call with a
synchronous ``Originate`` (one task per call, so one slow answer holds nobody up). A citizen
who does not answer is tried again after ``callback_retry_after_s``, ``callback_max_attempts``
times in all; each time the agent is released at once. Outside call hours, callbacks waiting
in line are deferred to the next start (they keep their place and hold nobody back).

Usage::

    dialer = CallbackDialer(settings, engine, acd, ami)
    await dialer.run(stop)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.outages import OutageLog, unavailable
from callcenter.routing.model import AgentState, EntryKind
from callcenter.routing.store import AgentRecord
from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.telephony.ami import AmiError
from callcenter.voice.callbacks import CALLBACK, set_callback_status

log = logging.getLogger(__name__)

CLAIM_S: Final = 300  # a claim outlives any one dialling attempt
LIVE: Final = ("pending", "reserved", "dialling")


class Originator(Protocol):
    async def originate(
        self,
        *,
        channel: str,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        timeout_ms: int | None = None,
        async_: bool = True,
    ) -> str: ...


def next_opening(now: datetime, start: time, end: time, zone: ZoneInfo) -> datetime | None:
    """``None`` inside call hours, else when they next begin (``now`` is aware)."""
    local = now.astimezone(zone)
    moment = local.time()
    inside = start <= moment < end if start < end else moment >= start or moment < end
    if inside:
        return None
    opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opening <= local:
        opening += timedelta(days=1)
    return opening.astimezone(UTC)


class CallbackDialer:
    def __init__(self, settings: Settings, engine: AsyncEngine, acd: Acd, ami: Originator) -> None:
        self.settings = settings
        self.engine = engine
        self.acd = acd
        self.ami = ami
        self.zone = ZoneInfo(settings.timezone)
        self._calls: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event, *, every_s: float = 1.0) -> None:
        outage = OutageLog(log, "callback dialer")  # a restart of Redis or PostgreSQL: one line
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                    outage.recovered()
                except Exception as exc:
                    if unavailable(exc):
                        outage.failed(exc, every_s)
                    else:
                        log.exception("callback dialer tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
        finally:
            for task in self._calls.values():
                task.cancel()
            await asyncio.gather(*self._calls.values(), return_exceptions=True)

    async def tick(self, *, now: datetime | None = None) -> list[str]:
        """Start dialling every callback whose agent is reserved; defer the waiting ones while
        outside call hours. Returns the entries it started dialling."""
        now = now or datetime.now(UTC)
        snap = await self.acd.store.snapshot()
        closed_until = next_opening(
            now, self.settings.callback_hours_start, self.settings.callback_hours_end, self.zone
        )
        if closed_until is not None:
            until = snap.now + (closed_until - now).total_seconds()
            for waiting in snap.entries.values():
                held = waiting.entry
                if held.kind is EntryKind.CALLBACK and held.not_before < until:
                    await self.acd.defer(held.id, until=until, reason="outside_call_hours")
        started: list[str] = []
        for record in snap.agents.values():
            entry = record.entry
            caller = record.caller
            if (
                record.agent.state is not AgentState.RESERVED
                or entry is None
                or caller is None
                or caller.callback_id is None
                or entry in self._calls
            ):
                continue
            if not await self.acd.redis.set(self._claim(record), "1", nx=True, ex=CLAIM_S):
                continue  # another process dials it (or has, and the agent is not rung yet)
            task = asyncio.create_task(self._dial(record, now), name=f"callback-{entry}")
            self._calls[entry] = task
            task.add_done_callback(functools.partial(self._done, entry))
            started.append(entry)
        return started

    def _done(self, entry: str, task: asyncio.Task[None]) -> None:
        self._calls.pop(entry, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("callback %s failed", entry, exc_info=task.exception())

    async def wait(self) -> None:
        """Until every call started so far is over (tests)."""
        await asyncio.gather(*list(self._calls.values()), return_exceptions=True)

    def _claim(self, record: AgentRecord) -> str:
        """One claim per offer (the agent's reservation began at ``since``). An answered call
        keeps its claim until it expires: the agent stays reserved until the ``callback``
        script rings them, and meanwhile no process (this one included) may dial the citizen
        a second time; the callback's next offer, if any, is a new claim."""
        return f"{self.acd.store.keys.prefix}:cbdial:{record.entry}:{record.agent.since!r}"

    async def _dial(self, record: AgentRecord, now: datetime) -> None:
        entry, caller = record.entry or "", record.caller
        assert caller is not None and caller.callback_id is not None
        callback_id = caller.callback_id
        answered = False
        try:
            row = await self._row(callback_id)
            verdict = self._verdict(row, now)
            if row is None or verdict is not None:
                verdict = verdict or ("", "callback_gone")
                status, reason = verdict
                if status:
                    await set_callback_status(self.engine, callback_id, status)
                log.info("callback %s not dialled: %s", callback_id, reason)
                await self.acd.leave(entry, reason=reason)
                return
            attempts = int(row["attempts"]) + 1
            await set_callback_status(
                self.engine, callback_id, "dialling", attempts=attempts, agent=record.id
            )
            answered = await self._originate(record, row)
            if answered:
                return  # the ``callback`` script takes over (rings the agent, marks it done)
            if attempts >= self.settings.callback_max_attempts:
                await set_callback_status(self.engine, callback_id, "failed")
                await self.acd.leave(entry, reason="callback_unanswered")
                return
            retry = now + timedelta(seconds=self.settings.callback_retry_after_s)
            await set_callback_status(self.engine, callback_id, "pending", next_attempt_at=retry)
            snap_now = (await self.acd.store.snapshot()).now
            await self.acd.defer(
                entry, until=snap_now + self.settings.callback_retry_after_s, agent_id=record.id,
                reason="citizen_no_answer",
            )  # fmt: skip
        finally:
            if not answered:
                await self.acd.redis.delete(self._claim(record))

    async def _row(self, callback_id: int) -> dict[str, Any] | None:
        C = CALLBACK
        Z = models.table(models.Citizen)
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(C, Z.c.opted_out_at)
                    .outerjoin(Z, Z.c.id == C.c.citizen_id)
                    .where(C.c.id == callback_id)
                )
            ).one_or_none()
        return None if found is None else dict(found._mapping)

    def _verdict(self, row: dict[str, Any] | None, now: datetime) -> tuple[str, str] | None:
        """Why not to dial (the status to set and the reason), or None to dial."""
        if row is None or row["status"] not in LIVE:
            return ("", "callback_gone")
        expires = row["expires_at"]
        if expires.tzinfo is None:  # SQLite
            expires = expires.replace(tzinfo=UTC)
        if expires <= now:
            return ("expired", "callback_expired")
        if row["opted_out_at"] is not None:  # the citizen said STOP meanwhile: no call
            return ("opted_out", "callback_opted_out")
        return None

    async def _originate(self, record: AgentRecord, row: dict[str, Any]) -> bool:
        phone = str(row["phone"])
        variables = {
            names.VAR_ENTRY: record.entry or "",
            names.VAR_AGENT: record.id,
            names.VAR_CALLBACK: str(row["id"]),
            names.VAR_CITIZEN: phone,
        }
        try:
            await self.ami.originate(
                channel=self.settings.voice_dial_template.format(number=phone),
                context=names.CTX_CALLBACK,
                exten="s",
                variables=variables,
                caller_id=self.settings.voice_caller_id,
                timeout_ms=int(self.settings.originate_timeout_s * 1000),
                async_=False,
            )
        except AmiError as exc:
            log.info("callback %s: the citizen did not answer (%s)", row["id"], exc)
            return False
        return True
