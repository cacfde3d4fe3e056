"""The ACD at its edges: the routing store's changes appended to the event log and announced
to the desks and the wallboard.

Every process that changes routing state (``agi`` for callers and phones, ``serve`` for the
desk's buttons) goes through :class:`Acd`, so no change escapes the log: the store returns
the events of each change, and they are written to ``routing_event`` (PostgreSQL, the source
of truth for history) and published on the live bus (``desk:<agent>`` and ``wallboard``).

Usage::

    acd = Acd(engine, redis)
    await acd.load()                      # queues and agents from the database
    await acd.agent_state("7", AgentState.READY)
    enqueued = await acd.enqueue(entry, caller)
    routed = await acd.round()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.estimates import estimate_stats
from callcenter.desk.wallboard import read_events
from callcenter.live import AGENT_STATUS, WALLBOARD_CHANGED, publish
from callcenter.routing.config import QueueSettings, queue_settings, skills_from_list
from callcenter.routing.model import AgentState, Entry, QueueStats
from callcenter.routing.store import (
    AgentRecord,
    Caller,
    Change,
    Enqueued,
    Round,
    RoutingEventValue,
    RoutingStore,
)

log = logging.getLogger(__name__)

WALLBOARD_TOPIC: Final = "wallboard"
#: the wait estimates' handling time and abandonment: from the log's last hour (and the
#: quarter of an hour before it, for calls that began then), every 15 s
STATS_WINDOW_S: Final = 3600.0
STATS_CONTEXT_S: Final = 900.0
STATS_EVERY_S: Final = 15.0


def desk_topic(agent_id: str) -> str:
    return f"desk:{agent_id}"


class Acd:
    """The routing store, with every change logged and announced."""

    def __init__(self, engine: AsyncEngine, redis: Redis, *, store: RoutingStore | None = None) -> None:
        self.engine = engine
        self.redis = redis
        self.store = store or RoutingStore(redis)

    # -- configuration ------------------------------------------------------------------------

    async def load(self) -> tuple[QueueSettings, ...]:
        """Queues and agents from the database into the shared state (agents' states kept)."""
        queues, agents = await read_configuration(self.engine)
        events = await self.store.configure(queues, agents)
        await self._after(events)
        return queues

    # -- agents -------------------------------------------------------------------------------

    async def agent_state(
        self,
        agent_id: str,
        to: AgentState,
        *,
        reason: str | None = None,
        disposition: str | None = None,
        expect: frozenset[AgentState] | None = None,
    ) -> Change:
        """``expect``: only from these states (else nothing changes: ``change.events`` is empty),
        so a desk's button acts on the state the agent saw."""
        change = await self.store.agent_state(
            agent_id, to, reason=reason, disposition=disposition, expect=expect
        )
        await self._after(change.events, change.after)
        return change

    async def sweep_contact(self) -> None:
        events = await self.store.sweep_contact()
        await self._after(events)

    # -- callers ------------------------------------------------------------------------------

    async def enqueue(self, entry: Entry, caller: Caller) -> Enqueued:
        enqueued = await self.store.enqueue(entry, caller)
        await self._after(enqueued.events)
        return enqueued

    async def leave(self, entry_id: str, *, reason: str = "abandoned") -> None:
        await self._after(await self.store.leave(entry_id, reason=reason))

    async def to_callback(self, entry_id: str, callback_id: int) -> None:
        await self._after(await self.store.to_callback(entry_id, callback_id))

    async def ringing(self, entry_id: str, agent_id: str) -> Change:
        change = await self.store.ringing(entry_id, agent_id)
        await self._after(change.events, change.after)
        return change

    async def connected(self, entry_id: str, agent_id: str) -> Change:
        change = await self.store.connected(entry_id, agent_id)
        await self._after(change.events, change.after)
        return change

    async def ended(self, entry_id: str, agent_id: str) -> Change:
        change = await self.store.ended(entry_id, agent_id)
        await self._after(change.events, change.after)
        return change

    async def missed(self, entry_id: str, agent_id: str, *, reason: str) -> Change:
        change = await self.store.missed(entry_id, agent_id, reason=reason)
        await self._after(change.events, change.after)
        return change

    async def defer(self, entry_id: str, *, until: float, agent_id: str | None = None, reason: str) -> None:
        """Not before ``until`` (see ``RoutingStore.defer``), logged: a deferred callback holds
        nobody back meanwhile, and the log must say why it was passed over."""
        events = await self.store.defer(entry_id, until=until, agent_id=agent_id, reason=reason)
        await self._after(events)

    async def round(self) -> Round:
        routed = await self.store.round()
        await self._after(routed.events, *(record for _, record, _ in routed.offered))
        return routed

    async def record(self, kind: str, *, entry: str | None = None, agent: str | None = None,
                     queue: str | None = None, data: dict[str, Any] | None = None,
                     live: bool = True) -> None:  # fmt: skip
        """An event that changes no routing state (a rating, a disposition's notes, a transfer);
        ``live=False``: logged only, nothing the desks or the wallboard show (an announcement)."""
        now = await self.store._now()
        value = RoutingEventValue(kind, now, agent, entry, queue, data or {})
        if live:
            await self._after((value,))
        else:
            await append_events(self.engine, (value,))

    async def refresh_stats(
        self, *, prior_aht: float, window_s: float = STATS_WINDOW_S
    ) -> dict[str, QueueStats]:
        """Each queue's recent occupancy per call and abandonment (:mod:`.estimates`) from the
        log's last ``window_s`` into the store, where the routing rounds' wait estimates read
        them; ``prior_aht``: the configured handling time they start from. One process
        refreshes per ``STATS_EVERY_S`` (a Redis claim), however many call this."""
        claim = f"{self.store.keys.prefix}:stats:claim"
        if not await self.redis.set(claim, "1", nx=True, px=int(STATS_EVERY_S * 1000)):
            return {}
        now = await self.store._now()
        events = await read_events(self.engine, now - window_s - STATS_CONTEXT_S, now + 1)
        stats = estimate_stats(events, start=now - window_s, end=now, prior_aht=prior_aht)
        await self.store.set_stats(stats)
        return stats

    # -- the log and the bus ------------------------------------------------------------------

    async def _after(self, events: Sequence[RoutingEventValue], *records: AgentRecord | None) -> None:
        if not events:
            return
        await append_events(self.engine, events)
        try:
            await self._announce(events, records)
        except RedisError:  # the log has it; desks re-read their state when they reconnect
            log.warning("routing events logged but not announced (Redis unavailable)")

    async def _announce(
        self, events: Sequence[RoutingEventValue], records: Iterable[AgentRecord | None]
    ) -> None:
        known = {r.id: r for r in records if r is not None}
        touched = {e.agent for e in events if e.agent}
        for agent_id in sorted(touched):
            record = known.get(agent_id) or await self.store.agent(agent_id)
            if record is None:
                continue
            last = [e for e in events if e.agent == agent_id][-1]
            await publish(self.redis, desk_topic(agent_id), AGENT_STATUS, agent_status(record, last))
        await publish(
            self.redis, WALLBOARD_TOPIC, WALLBOARD_CHANGED,
            {"kinds": sorted({e.kind for e in events}), "at": events[-1].at},
        )  # fmt: skip


def agent_status(record: AgentRecord, event: RoutingEventValue | None = None) -> dict[str, Any]:
    agent = record.agent
    return {
        "agent": agent.id,
        "state": str(agent.state),
        "since": agent.since,
        "pause_reason": agent.pause_reason,
        "entry": record.entry,
        "queue": record.queue,
        "event": event.kind if event else "",
        "at": event.at if event else agent.since,
    }


async def append_events(engine: AsyncEngine, events: Sequence[RoutingEventValue]) -> None:
    """Append to the event log (never updated, never deleted)."""
    rows = [
        {
            "at": datetime.fromtimestamp(e.at, UTC),
            "kind": e.kind,
            "agent": e.agent,
            "entry": e.entry,
            "queue": e.queue,
            "data": dict(e.data),
        }
        for e in events
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(models.table(models.RoutingEvent)), rows)


async def read_configuration(
    engine: AsyncEngine,
) -> tuple[tuple[QueueSettings, ...], dict[str, tuple[str, str, frozenset[Any]]]]:
    """Active queues, and active agents of enabled users: ``id -> (endpoint, name, skills)``."""
    q = models.table(models.ServiceQueue)
    a = models.table(models.AgentProfile)
    u = models.table(models.User)
    async with engine.connect() as conn:
        queue_rows = (await conn.execute(select(q).where(q.c.active).order_by(q.c.key))).all()
        agent_rows = (
            await conn.execute(
                select(a.c.user_id, a.c.endpoint, a.c.skills, u.c.name, u.c.email)
                .join(u, u.c.id == a.c.user_id)
                .where(a.c.active, u.c.disabled_at.is_(None))
            )
        ).all()
    queues = tuple(
        queue_settings(
            r.key, service=r.service, municipality=r.municipality, language=r.language,
            config=r.config, name_ar=r.name_ar, name_en=r.name_en,
        )
        for r in queue_rows
    )  # fmt: skip
    agents = {str(r.user_id): (r.endpoint, r.name or r.email, skills_from_list(r.skills)) for r in agent_rows}
    return queues, agents
