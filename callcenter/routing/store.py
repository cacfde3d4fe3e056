"""The routing state shared by every process, in Redis: agents, waiting entries, offers.

Why Redis and a lock: the routing decision must see one consistent picture of every agent and
every waiting caller across all ``agi`` processes (one per Asterisk server) and ``serve``
processes (the desk changes agent states). Every change runs as *lock, read, pure move, write*:
the lock is one key (``SET NX PX``), the write is one Lua script that applies only while the
lock is still ours (a process paused past the lock's life cannot write over a newer state),
and the clock is Redis' ``TIME``, so processes on different hosts share one clock. One writer
at a time is what makes "no caller to two agents, no agent with two callers" hold by
construction rather than by luck.

Why the lock is held only for the change itself: a change takes two round trips and a pure
call — one MULTI/EXEC that takes the lock and reads the state, one script that writes and
frees it — and between them the process does nothing else. Those two calls go through a
synchronous connection of the store's own, so the event loop never runs another coroutine
(another caller's AGI, another page) while this process holds the shared lock: its hold is
the time the change takes (well under a millisecond for a round over 200 agents and 150
callers), not the time a busy process takes to come back to it. Waiting *for* the lock does
yield (a process's changes queue behind a local lock, so one of them polls Redis at a time),
and a value read is decoded again only when its stored text changed. The garbage collector
is paused for that time too (what the change leaves to collect is collected after it): a
collection of a big heap in the middle would hold every process's changes back.

Why a change reads only what changed: every write also bumps the state's version and logs the
agents and entries it touched, so the script that takes the lock returns, beside the clock,
only the values written since this process last read (its decoded copy of the rest is kept):
a round over 200 agents and 500 callers then moves a few values instead of all of them. A
version this process has never seen (another epoch: Redis restarted or was emptied), a log
that no longer reaches back far enough, or counts that disagree with the copy (a key changed
by hand) make it read everything again, as does every ``FULL_READ_EVERY``-th read. A routing
round first catches up without the lock (the same read, one round trip that yields), so what
other processes changed in the last second, or a read of everything, is decoded before the
lock is taken, and the read under the lock brings only what changed in between.

Redis carries the live state only. Every change returns its events; the caller (``desk.acd``)
appends them to the ``routing_event`` table, from which the state can be rebuilt and from
which the wallboard and the reports are computed.

Usage::

    store = RoutingStore(redis)
    await store.set_queues([settings.queue ...])
    change = await store.agent_state("7", AgentState.READY)
    admission = await store.enqueue(entry, caller)
    decisions, events = await store.round()
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import math
import secrets
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, Final, TypeVar, cast

import redis as sync_redis
import redis.sentinel as sync_sentinel
from redis.asyncio import Redis
from redis.asyncio.sentinel import SentinelConnectionPool

from callcenter import metrics
from callcenter.errors import CallCenterError, NotFound
from callcenter.routing.config import QueueSettings, queue_settings, skills_from_list, skills_to_list
from callcenter.routing.model import (
    STAFFED,
    Agent,
    AgentState,
    Announcement,
    Decisions,
    Entry,
    EntryKind,
    Offer,
    Overflow,
    Overflowed,
    QueueStats,
    RoutingState,
    change_state,
)
from callcenter.routing.strategy import announcements, decide
from callcenter.routing.strategy import enqueue as pure_enqueue

T = TypeVar("T")
_ENTRY: Final = attrgetter("entry")
_AGENT: Final = attrgetter("agent")
_EMPTY_SUM: Final = hashlib.sha1(b"{}").hexdigest()  # a digest, not a secret
log = logging.getLogger(__name__)

LOCK_TTL_MS: Final = 2000
LOCK_WAIT_S: Final = 3.0
#: changes kept in the version log (a process further behind reads everything)
LOG_MAX: Final = 512
#: a read of everything, now and then, whatever the version says
FULL_READ_EVERY: Final = 500

#: what a change reads beside the agents and entries: the outcomes, stats and contact hashes,
#: and the digest of the announcements' text
_CHANGE_READS: Final = "1100"
_ROUND_READS: Final = "0101"  # a round needs no outcomes, but the announcements as stored

#: the announcements' text and its digest, unless a later round's is there already (ARGV[2]:
#: the round's time)
_ANNOUNCE = """
if tonumber(redis.call('GET', KEYS[2]) or '0') > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], redis.sha1hex(ARGV[1]))
return 1
"""

#: take the lock (KEYS[1]) and read under it, in one step: Redis' time, the version (KEYS[2]),
#: the queues' text (KEYS[4]), the agents (KEYS[5]) and entries (KEYS[6]) changed since the
#: version ARGV[3]/ARGV[4] as the log (KEYS[3]) tells (or all of them: mode 'full'), both
#: hashes' sizes, and as ARGV[5] asks the outcomes, stats, contact and announcements' digest
#: (KEYS[7..10]). Nil: the lock is held by someone else. ARGV[7] 'peek': the same read without
#: the lock (a round catching up before it takes the lock).
_ACQUIRE = """
if ARGV[7] ~= 'peek' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
local t = redis.call('TIME')
local version = redis.call('HMGET', KEYS[2], 'epoch', 'n')
local epoch = version[1] or ''
local n = tonumber(version[2] or '0')
local known = tonumber(ARGV[4])
local mode = 'full'
local agents, entries = {}, {}
if ARGV[3] ~= '' and epoch == ARGV[3] and known <= n then
  if known == n then
    mode = 'same'
  elseif n - known <= tonumber(ARGV[6]) then
    local items = redis.call('LRANGE', KEYS[3], 0, n - known - 1)
    local a, e, seen = {}, {}, {}
    local first, last = -1, -1
    for i, item in ipairs(items) do
      local bar = string.find(item, '|', 1, true)
      local m = tonumber(string.sub(item, 1, bar - 1))
      if i == 1 then first = m end
      last = m
      local ids = cjson.decode(string.sub(item, bar + 1))
      for _, id in ipairs(ids[1]) do
        if not seen['a' .. id] then seen['a' .. id] = true; a[#a + 1] = id end
      end
      for _, id in ipairs(ids[2]) do
        if not seen['e' .. id] then seen['e' .. id] = true; e[#e + 1] = id end
      end
    end
    if #items == n - known and first == n and last == known + 1 and #a + #e <= 4000 then
      mode = 'delta'
      if #a > 0 then
        local v = redis.call('HMGET', KEYS[5], unpack(a))
        for i, id in ipairs(a) do agents[#agents + 1] = id; agents[#agents + 1] = v[i] end
      end
      if #e > 0 then
        local v = redis.call('HMGET', KEYS[6], unpack(e))
        for i, id in ipairs(e) do entries[#entries + 1] = id; entries[#entries + 1] = v[i] end
      end
    end
  end
end
if mode == 'full' then
  agents = redis.call('HGETALL', KEYS[5])
  entries = redis.call('HGETALL', KEYS[6])
end
local reads = ARGV[5]
local function hash(i, key)
  if string.sub(reads, i, i) == '1' then return redis.call('HGETALL', key) end
  return {}
end
local sum = false
if string.sub(reads, 4, 4) == '1' then sum = redis.call('GET', KEYS[10]) end
return {t[1], t[2], epoch, n, redis.call('GET', KEYS[4]) or false, mode, agents, entries,
        redis.call('HLEN', KEYS[5]), redis.call('HLEN', KEYS[6]),
        hash(1, KEYS[7]), hash(2, KEYS[8]), hash(3, KEYS[9]), sum}
"""

#: the writes applied only while the lock is still ours; returns Redis' time (0: not ours).
#: ARGV[3]: the agents and entries written (JSON ``[[agent ids], [entry ids]]``, empty: none),
#: logged under the next version (KEYS[2], a new epoch ARGV[4] if there was none) in KEYS[3]
_COMMIT = """
redis.replicate_commands()
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ops = cjson.decode(ARGV[2])
for _, op in ipairs(ops) do
  local name = op[1]
  if name == 'hset' then redis.call('HSET', op[2], op[3], op[4])
  elseif name == 'hdel' then redis.call('HDEL', op[2], op[3])
  elseif name == 'set' then redis.call('SET', op[2], op[3])
  elseif name == 'del' then redis.call('DEL', op[2])
  end
end
if ARGV[3] ~= '' then
  if redis.call('HSETNX', KEYS[2], 'epoch', ARGV[4]) == 1 then
    redis.call('DEL', KEYS[3])
    redis.call('HSET', KEYS[2], 'n', 0)
  end
  local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
  redis.call('LPUSH', KEYS[3], n .. '|' .. ARGV[3])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
return {t[1], t[2]}
"""


class RoundTimes:
    """How long this process's routing rounds held the lock (read, decide, write), in seconds
    on Redis' clock (from taking the lock to the write that releases it): the last ``maxlen``
    rounds that had callers to decide on (a round over an empty line only releases the lock).
    For benchmarks (``scripts/bench/acd_load.py``) and the process's log."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self.samples: deque[float] = deque(maxlen=maxlen)
        #: as this process saw each one: (taking the lock and reading, deciding, writing)
        self.parts: deque[tuple[float, float, float]] = deque(maxlen=maxlen)
        #: this process's CPU time over the same span (the round runs without yielding, so
        #: this is the round's own cost; the wall time above adds the OS's scheduling of a
        #: busy machine and Redis' side)
        self.cpu: deque[float] = deque(maxlen=maxlen)

    def record(
        self, seconds: float, parts: tuple[float, float, float] = (0.0, 0.0, 0.0), cpu: float = 0.0
    ) -> None:
        self.samples.append(seconds)
        self.parts.append(parts)
        self.cpu.append(cpu)
        metrics.ROUTING_ROUND_SECONDS.observe(seconds)

    def percentile(self, q: float) -> float | None:
        """Nearest rank (``q`` in 0..1), or ``None`` without samples."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


#: every round of every store in this process
ROUND_TIMES: Final = RoundTimes()


class RoutingBusy(CallCenterError):
    """The routing lock could not be had in time (a stuck process, or Redis overloaded)."""

    status_code = 503
    error_id = "routing_busy"


class LockLost(CallCenterError):
    """The lock expired before the write: the change was not applied (nothing half-written)."""

    status_code = 503
    error_id = "routing_lock_lost"


# -- what the store keeps beside the core's values ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who waits, for the agent's card and the callback: never read by the decision."""

    phone: str = ""  # E.164
    citizen_id: int | None = None
    language: str = "ar"
    path: tuple[str, ...] = ()  # the menu keys pressed
    call_id: int | None = None  # the Call row
    channel: str = ""  # the Asterisk channel (empty for a callback)
    callback_id: int | None = None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    agent: Agent
    endpoint: str = ""
    name: str = ""
    entry: str | None = None  # the call or callback held (reserved, ringing, on call, wrap-up)
    queue: str | None = None
    caller: Caller | None = None

    @property
    def id(self) -> str:
        return self.agent.id


@dataclass(frozen=True, slots=True)
class Waiting:
    entry: Entry
    caller: Caller


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a waiting entry, for the process that holds its caller: offered to an
    agent, or overflowed (max wait reached)."""

    kind: str  # "offer" | "overflow"
    agent: str | None = None
    endpoint: str | None = None
    queue: str = ""
    outcome: str | None = None  # Overflow value, for an overflow
    reason: str | None = None
    waited: float = 0.0
    at: float = 0.0
    #: the entry as it waited, so an offer that falls through puts it back exactly as it was
    priority: int = 0
    callback_offered: bool = False
    entry_kind: str = "call"


@dataclass(frozen=True, slots=True)
class RoutingEventValue:
    """One event for the log: ``kind`` in ``desk.events``, the subjects, and data."""

    kind: str
    at: float
    agent: str | None = None
    entry: str | None = None
    queue: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    queues: tuple[QueueSettings, ...]
    agents: dict[str, AgentRecord]
    entries: dict[str, Waiting]
    outcomes: dict[str, Outcome]
    stats: dict[str, QueueStats]
    contact: dict[str, float]
    #: the digest of the announcements' text as stored (read by rounds), so a round writes
    #: them only when they changed
    announced: str | None = None

    def state(self) -> RoutingState:
        return RoutingState(
            queues=tuple(q.queue for q in self.queues),
            entries=tuple(map(_ENTRY, self.entries.values())),
            agents=tuple(map(_AGENT, self.agents.values())),
            stats=self.stats,
        )

    def queue(self, key: str) -> QueueSettings:
        for q in self.queues:
            if q.queue.id == key:
                return q
        raise NotFound(f"no queue {key!r}", queue=key)


@dataclass(slots=True)
class _Write:
    """The writes of one change, applied by one script while the lock is still ours."""

    keys: _Keys
    ops: list[list[Any]] = field(default_factory=list)
    events: list[RoutingEventValue] = field(default_factory=list)

    def agent(self, record: AgentRecord) -> None:
        self.ops.append(["hset", self.keys.agents, record.id, _dump_agent(record)])

    def drop_agent(self, agent_id: str) -> None:
        self.ops.append(["hdel", self.keys.agents, agent_id])

    def entry(self, waiting: Waiting) -> None:
        self.ops.append(["hset", self.keys.entries, waiting.entry.id, _dump_waiting(waiting)])

    def drop_entry(self, entry_id: str) -> None:
        self.ops.append(["hdel", self.keys.entries, entry_id])

    def outcome(self, entry_id: str, outcome: Outcome) -> None:
        self.ops.append(["hset", self.keys.outcomes, entry_id, json.dumps(_asdict(outcome))])

    def drop_outcome(self, entry_id: str) -> None:
        self.ops.append(["hdel", self.keys.outcomes, entry_id])

    def event(self, kind: str, at: float, **subjects: Any) -> None:
        data = subjects.pop("data", {})
        self.events.append(RoutingEventValue(kind, at, data=data, **subjects))

    def touched(self) -> str:
        """The agents and entries written, for the version log (empty: none)."""
        agents = [op[2] for op in self.ops if op[1] == self.keys.agents]
        entries = [op[2] for op in self.ops if op[1] == self.keys.entries]
        if not agents and not entries:
            return ""
        return json.dumps([agents, entries], ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Keys:
    prefix: str

    @property
    def lock(self) -> str:
        return f"{self.prefix}:lock"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def agents(self) -> str:
        return f"{self.prefix}:agents"

    @property
    def entries(self) -> str:
        return f"{self.prefix}:entries"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}:outcomes"

    @property
    def announcements(self) -> str:
        return f"{self.prefix}:announced"

    @property
    def announced_at(self) -> str:
        return f"{self.prefix}:announced:at"

    @property
    def announced_sum(self) -> str:
        return f"{self.prefix}:announced:sum"

    @property
    def version(self) -> str:
        return f"{self.prefix}:version"

    @property
    def log(self) -> str:
        return f"{self.prefix}:log"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def contact(self) -> str:
        return f"{self.prefix}:contact"


@dataclass(frozen=True, slots=True)
class Change:
    """The agent before and after a change, and the events to log."""

    before: AgentRecord | None
    after: AgentRecord | None
    events: tuple[RoutingEventValue, ...] = ()


@dataclass(frozen=True, slots=True)
class Enqueued:
    refused: Overflowed | None
    events: tuple[RoutingEventValue, ...] = ()


@dataclass(frozen=True, slots=True)
class Round:
    decisions: Decisions
    events: tuple[RoutingEventValue, ...] = ()
    #: offers by entry, with the agent's endpoint and the caller, for whoever acts on them
    offered: tuple[tuple[Offer, AgentRecord, Caller], ...] = ()


# -- the store ----------------------------------------------------------------------------------


class RoutingStore:
    """Every read and change of the shared routing state."""

    def __init__(self, redis: Redis, *, prefix: str = "acd", lock_ttl_ms: int = LOCK_TTL_MS) -> None:
        self.redis = redis
        self.keys = _Keys(prefix)
        self.lock_ttl_ms = lock_ttl_ms
        self._sync = _sync_twin(redis)
        self._last_read = 0.0  # the last lock-and-read, seconds
        self._cpu_started = 0.0  # thread CPU time as the last lock-and-read began
        self._collecting = True  # whether the collector ran before the lock was taken
        self._announced: tuple[bytes | str | None, dict[str, Any]] = (None, {})
        self._commit = self._sync.register_script(_COMMIT)
        self._take = self._sync.register_script(_ACQUIRE)
        self._peek = redis.register_script(_ACQUIRE)
        self._announce_newer = redis.register_script(_ANNOUNCE)
        self._decoded = _Decoded()

    # -- reading ------------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """Everything, as of Redis' clock, in one round trip (no lock: for pages and tests)."""
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.time()
            pipe.hmget(k.version, ["epoch", "n"])
            pipe.get(k.queues)
            pipe.hgetall(k.agents)
            pipe.hgetall(k.entries)
            pipe.hgetall(k.outcomes)
            pipe.hgetall(k.stats)
            pipe.hgetall(k.contact)
            pipe.get(k.announced_sum)
            clock, (epoch, n), queues, agents, entries, *rest = await pipe.execute()
        return self._decoded.full(clock, (_s(epoch or b""), int(n or 0)), queues, agents, entries, *rest)

    async def outcome(self, entry_id: str) -> Outcome | None:
        raw = await _aw(self.redis.hget(self.keys.outcomes, entry_id))
        return Outcome(**json.loads(raw)) if raw else None

    async def announcement(self, entry_id: str) -> tuple[int, float | None, bool] | None:
        """What the last round would tell this waiting caller: place, expected wait (``None``:
        nobody serves the queue), whether to offer a callback now; ``None`` if it was not among
        the waiting. The text is parsed once per round however many callers read it."""
        raw = await _aw(self.redis.get(self.keys.announcements))
        if not raw:
            return None
        if raw != self._announced[0]:
            self._announced = (raw, json.loads(raw))
        found = self._announced[1].get(entry_id)
        if found is None:
            return None
        position, wait, offer = found
        return int(position), wait, bool(offer)

    async def agent(self, agent_id: str) -> AgentRecord | None:
        raw = await _aw(self.redis.hget(self.keys.agents, agent_id))
        return _load_agent(agent_id, raw) if raw else None

    # -- configuration ------------------------------------------------------------------------

    async def configure(
        self, queues: Sequence[QueueSettings], agents: Mapping[str, tuple[str, str, frozenset[Any]]]
    ) -> tuple[RoutingEventValue, ...]:
        """Set the queues, and the agents' endpoint, name and skills (``id -> (endpoint, name,
        skills)``). An agent's state is kept; an agent no longer listed is dropped when offline
        and taken offline otherwise (an agent mid-call keeps the call)."""
        async with self._locked() as (snap, write):
            write.ops.append(["set", self.keys.queues, json.dumps([_dump_queue(q) for q in queues])])
            for agent_id, (endpoint, name, agent_skills) in agents.items():
                found = snap.agents.get(agent_id)
                agent = found.agent if found else Agent(agent_id, since=snap.now, idle_since=snap.now)
                base = found or AgentRecord(agent)
                write.agent(
                    replace(base, agent=replace(agent, skills=agent_skills), endpoint=endpoint, name=name)
                )
            for agent_id, record in snap.agents.items():
                if agent_id not in agents and record.agent.state in (
                    AgentState.OFFLINE,
                    AgentState.LOST_CONTACT,
                ):
                    write.drop_agent(agent_id)
        return tuple(write.events)

    async def set_stats(self, stats: Mapping[str, QueueStats]) -> None:
        """Recent handling time and abandonment per queue (for wait estimates); no lock needed:
        the decision reads them as a whole and nothing else writes them."""
        if stats:
            await _aw(
                self.redis.hset(
                    self.keys.stats,
                    mapping={q: json.dumps([s.aht, s.abandon_rate]) for q, s in stats.items()},
                )
            )

    async def touch(self, agent_id: str, *, ttl_s: float) -> None:
        """The agent's desk is alive for ``ttl_s`` more seconds (see ``sweep_contact``)."""
        now = await self._now()
        await _aw(self.redis.hset(self.keys.contact, agent_id, str(now + ttl_s)))

    # -- agents -------------------------------------------------------------------------------

    async def agent_state(
        self,
        agent_id: str,
        to: AgentState,
        *,
        reason: str | None = None,
        disposition: str | None = None,
        expect: frozenset[AgentState] | None = None,
        entry: str | None = None,
    ) -> Change:
        """Move an agent (``expect``: only from these states, else ``AgentTransitionError``;
        ``entry``: only while the agent holds this entry — a late event about an older call
        changes nothing)."""
        async with self._locked() as (snap, write):
            before = snap.agents.get(agent_id)
            if before is None:
                raise NotFound(f"no agent {agent_id!r}", agent=agent_id)
            if entry is not None and before.entry != entry:
                return Change(before, before)
            if expect is not None and before.agent.state not in expect:
                return Change(before, before)
            after = self._move(write, snap, before, to, reason=reason, disposition=disposition)
        return Change(before, after, tuple(write.events))

    def _move(
        self,
        write: _Write,
        snap: Snapshot,
        record: AgentRecord,
        to: AgentState,
        *,
        reason: str | None = None,
        disposition: str | None = None,
        requeue: bool = True,
    ) -> AgentRecord:
        """Change the agent's state (and log it). An agent who leaves an offer for anything but
        the call (paused, offline, lost contact) puts the caller back in line at the caller's
        own place, in the same write (``requeue=False``: the caller is gone, or the move does
        that itself)."""
        agent = change_state(record.agent, to, now=snap.now, reason=reason, disposition=disposition)
        offer = snap.outcomes.get(record.entry or "")
        drops_offer = record.agent.state in (AgentState.RESERVED, AgentState.RINGING) and to not in (
            AgentState.RESERVED,
            AgentState.RINGING,
            AgentState.ON_CALL,
        )
        if requeue and drops_offer and offer is not None and offer.agent == record.id and record.entry:
            back = entry_of(record.entry, offer)
            write.drop_outcome(record.entry)
            write.entry(Waiting(back, record.caller or Caller()))
            write.event(
                "entry.requeued", snap.now, entry=record.entry, queue=offer.queue, agent=record.id,
                data={"reason": str(to), "enqueued_at": back.enqueued_at},
            )  # fmt: skip
        keeps_entry = to in (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP)
        if record.agent.state is AgentState.ON_CALL and to is AgentState.LOST_CONTACT:
            keeps_entry = True  # the call goes on without the desk
        after = replace(
            record,
            agent=agent,
            entry=record.entry if keeps_entry else None,
            queue=record.queue if keeps_entry else None,
            caller=record.caller if keeps_entry else None,
        )
        write.agent(after)
        data: dict[str, Any] = {"from": str(record.agent.state), "to": str(to)}
        if reason:
            data["reason"] = reason
        if disposition:
            data["disposition"] = disposition
        write.event(
            "agent.state", snap.now, agent=record.id, entry=record.entry, queue=record.queue, data=data
        )
        return after

    async def sweep_contact(self) -> tuple[RoutingEventValue, ...]:
        """Agents whose desk has not been heard of in time are marked ``lost_contact`` (not
        paused: the wallboard shows what happened); no call is offered to them."""
        snap = await self.snapshot()
        stale = [
            a
            for a, r in snap.agents.items()
            if r.agent.state not in (AgentState.OFFLINE, AgentState.LOST_CONTACT, AgentState.MISSED)
            and snap.contact.get(a, 0.0) < snap.now
        ]
        if not stale:
            return ()
        events: list[RoutingEventValue] = []
        for agent_id in stale:
            change = await self.agent_state(
                agent_id,
                AgentState.LOST_CONTACT,
                expect=frozenset(
                    {AgentState.READY, AgentState.PAUSED, AgentState.WRAP_UP, AgentState.ON_CALL}
                ),
            )
            events.extend(change.events)
        return tuple(events)

    # -- callers ------------------------------------------------------------------------------

    async def enqueue(self, entry: Entry, caller: Caller) -> Enqueued:
        """A caller (or a callback) joins its queue unless the queue is full."""
        async with self._locked() as (snap, write):
            admission = pure_enqueue(snap.state(), entry)
            if admission.refused is not None:
                write.event(
                    "entry.refused", snap.now, entry=entry.id, queue=entry.queue,
                    data={"reason": str(admission.refused.reason), "outcome": str(admission.refused.outcome)},
                )  # fmt: skip
            else:
                write.entry(Waiting(entry, caller))
                write.event(
                    "entry.queued", snap.now, entry=entry.id, queue=entry.queue,
                    data={"kind": str(entry.kind), "priority": entry.priority,
                          "enqueued_at": entry.enqueued_at, "language": caller.language,
                          "callback": caller.callback_id},
                )  # fmt: skip
        return Enqueued(admission.refused, tuple(write.events))

    async def to_callback(self, entry_id: str, callback_id: int) -> tuple[RoutingEventValue, ...]:
        """The caller chose a callback: the same entry, same place, without a channel."""
        async with self._locked() as (snap, write):
            waiting = snap.entries.get(entry_id)
            if waiting is None:
                raise NotFound(f"no waiting entry {entry_id!r}", entry=entry_id)
            entry = replace(waiting.entry, kind=EntryKind.CALLBACK, callback_offered=True)
            write.entry(Waiting(entry, replace(waiting.caller, channel="", callback_id=callback_id)))
            write.event(
                "entry.callback", snap.now, entry=entry_id, queue=entry.queue,
                data={"callback": callback_id, "waited": snap.now - entry.enqueued_at},
            )  # fmt: skip
        return tuple(write.events)

    async def callback_offered(self, entry_id: str) -> None:
        async with self._locked() as (snap, write):
            waiting = snap.entries.get(entry_id)
            if waiting is not None:
                write.entry(Waiting(replace(waiting.entry, callback_offered=True), waiting.caller))

    async def leave(self, entry_id: str, *, reason: str = "abandoned") -> tuple[RoutingEventValue, ...]:
        """The caller is gone (hung up, or ended by the IVR): out of the queue; an agent
        reserved or ringing for them is freed at once (ready again, keeping their idle place)."""
        async with self._locked() as (snap, write):
            waiting = snap.entries.get(entry_id)
            outcome = snap.outcomes.get(entry_id)
            if waiting is not None:
                write.drop_entry(entry_id)
                write.event(
                    "entry.left", snap.now, entry=entry_id, queue=waiting.entry.queue,
                    data={"reason": reason, "waited": snap.now - waiting.entry.enqueued_at,
                          "kind": str(waiting.entry.kind)},
                )  # fmt: skip
            if outcome is not None:
                write.drop_outcome(entry_id)
                agent = snap.agents.get(outcome.agent or "")
                ringing = (AgentState.RESERVED, AgentState.RINGING)
                if agent is not None and agent.entry == entry_id and agent.agent.state in ringing:
                    write.event(
                        "entry.left", snap.now, entry=entry_id, queue=outcome.queue, agent=agent.id,
                        data={"reason": reason, "waited": outcome.waited, "while": str(agent.agent.state)},
                    )  # fmt: skip
                    self._move(write, snap, agent, AgentState.READY, requeue=False)
        return tuple(write.events)

    async def ringing(self, entry_id: str, agent_id: str) -> Change:
        return await self.agent_state(
            agent_id, AgentState.RINGING, entry=entry_id, expect=frozenset({AgentState.RESERVED})
        )

    async def connected(self, entry_id: str, agent_id: str) -> Change:
        """The agent answered: on call; the entry's outcome is done with."""
        async with self._locked() as (snap, write):
            before = snap.agents.get(agent_id)
            if before is None or before.entry != entry_id:
                return Change(before, before)
            outcome = snap.outcomes.get(entry_id)
            write.drop_outcome(entry_id)
            after = self._move(write, snap, before, AgentState.ON_CALL)
            write.event(
                "entry.connected", snap.now, entry=entry_id, agent=agent_id, queue=before.queue,
                data={"waited": outcome.waited + (snap.now - outcome.at) if outcome else None},
            )  # fmt: skip
        return Change(before, after, tuple(write.events))

    async def ended(self, entry_id: str, agent_id: str) -> Change:
        """The call with the agent is over: wrap-up (a disposition needed before the next)."""
        async with self._locked() as (snap, write):
            before = snap.agents.get(agent_id)
            if before is None or before.entry != entry_id or before.agent.state is AgentState.WRAP_UP:
                return Change(before, before)  # (wrap-up: ended already, e.g. by a transfer)
            write.event("entry.ended", snap.now, entry=entry_id, agent=agent_id, queue=before.queue)
            if before.agent.state is AgentState.ON_CALL:
                after = self._move(write, snap, before, AgentState.WRAP_UP)
            else:  # lost contact mid-call: the call is over, the agent stays out of rotation
                after = replace(before, entry=None, queue=None, caller=None)
                write.agent(after)
        return Change(before, after, tuple(write.events))

    async def missed(self, entry_id: str, agent_id: str, *, reason: str) -> Change:
        """The agent let the offer ring out (or the phone is unreachable): the agent is out of
        rotation as ``missed`` with the reason, and the caller goes back to the same place."""
        async with self._locked() as (snap, write):
            before = snap.agents.get(agent_id)
            outcome = snap.outcomes.get(entry_id)
            if before is None or before.entry != entry_id or outcome is None:
                return Change(before, before)
            caller = before.caller or Caller()
            write.drop_outcome(entry_id)
            after = self._move(write, snap, before, AgentState.MISSED, requeue=False)
            write.event("entry.missed", snap.now, entry=entry_id, agent=agent_id, queue=outcome.queue,
                        data={"reason": reason})  # fmt: skip
            entry = entry_of(entry_id, outcome)
            write.entry(Waiting(entry, caller))
        return Change(before, after, tuple(write.events))

    async def defer(
        self, entry_id: str, *, until: float, agent_id: str | None = None, reason: str
    ) -> tuple[RoutingEventValue, ...]:
        """Not before ``until``: a callback outside call hours, or one the citizen did not
        answer. A waiting entry just waits longer; an entry offered to ``agent_id`` goes back
        to its place (the agent ready again, keeping their idle place: nobody's fault)."""
        async with self._locked() as (snap, write):
            waiting = snap.entries.get(entry_id)
            outcome = snap.outcomes.get(entry_id)
            agent = snap.agents.get(agent_id or "")
            if waiting is not None:
                entry, caller = waiting.entry, waiting.caller
            elif outcome is not None and agent is not None and agent.entry == entry_id:
                entry, caller = entry_of(entry_id, outcome), agent.caller or Caller()
                write.drop_outcome(entry_id)
                if agent.agent.state in (AgentState.RESERVED, AgentState.RINGING):
                    self._move(write, snap, agent, AgentState.READY, requeue=False)
            else:
                return ()
            write.entry(Waiting(replace(entry, not_before=until), caller))
            write.event("entry.deferred", snap.now, entry=entry_id, queue=entry.queue, agent=agent_id,
                        data={"until": until, "reason": reason})  # fmt: skip
        return tuple(write.events)

    # -- the decision -------------------------------------------------------------------------

    async def round(self) -> Round:
        """One routing decision over the whole state: offers taken (agents reserved, entries out
        of their queues, outcomes written for the processes holding the callers), overflows
        written, announcements refreshed."""
        locked = self._locked(_ROUND_READS, peek=True)
        async with locked as (snap, write):
            if snap.entries:
                locked.timed = True
            known = {q.queue.id for q in snap.queues}
            for waiting in [w for w in snap.entries.values() if w.entry.queue not in known]:
                # its queue was removed: the caller is told so (never silence), and the other
                # queues go on being served
                gone = waiting.entry
                del snap.entries[gone.id]
                write.drop_entry(gone.id)
                write.outcome(
                    gone.id,
                    Outcome("overflow", queue=gone.queue, outcome=str(Overflow.MESSAGE), reason="closed",
                            waited=snap.now - gone.enqueued_at, at=snap.now),
                )  # fmt: skip
                write.event("entry.overflowed", snap.now, entry=gone.id, queue=gone.queue,
                            data={"reason": "closed", "outcome": str(Overflow.MESSAGE)})  # fmt: skip
            state = snap.state()
            decisions = decide(state, snap.now, announce=False)  # announced once the lock is free
            offered: list[tuple[Offer, AgentRecord, Caller]] = []
            for offer in decisions.offers:
                waiting = snap.entries[offer.entry]
                record = snap.agents[offer.agent]
                write.drop_entry(offer.entry)
                write.outcome(
                    offer.entry,
                    Outcome(
                        "offer", offer.agent, record.endpoint, offer.queue, waited=offer.waited, at=snap.now,
                        priority=waiting.entry.priority, callback_offered=waiting.entry.callback_offered,
                        entry_kind=str(waiting.entry.kind),
                    ),
                )  # fmt: skip
                reserved = replace(record, entry=offer.entry, queue=offer.queue, caller=waiting.caller)
                after = self._move(write, snap, reserved, AgentState.RESERVED)
                write.event(
                    "entry.offered", snap.now, entry=offer.entry, agent=offer.agent, queue=offer.queue,
                    data={"level": offer.level, "waited": offer.waited, "kind": str(offer.kind)},
                )  # fmt: skip
                offered.append((offer, after, waiting.caller))
            for over in decisions.overflows:
                waiting = snap.entries[over.entry]
                write.drop_entry(over.entry)
                write.outcome(
                    over.entry,
                    Outcome("overflow", queue=over.queue, outcome=str(over.outcome), reason=str(over.reason),
                            waited=snap.now - waiting.entry.enqueued_at, at=snap.now),
                )  # fmt: skip
                write.event(
                    "entry.overflowed", snap.now, entry=over.entry, queue=over.queue,
                    data={"reason": str(over.reason), "outcome": str(over.outcome),
                          "waited": snap.now - waiting.entry.enqueued_at},
                )  # fmt: skip
        out = {o.entry for o in decisions.offers} | {o.entry for o in decisions.overflows}
        line = replace(state, entries=tuple(e for e in state.entries if e.id not in out))
        told = announcements(line, snap.now)
        await self._announce(told, snap.now, snap.announced)
        metrics.set_queue_sizes(known, (e.queue for e in line.entries))
        return Round(replace(decisions, announcements=told), tuple(write.events), tuple(offered))

    async def _announce(self, told: Iterable[Announcement], at: float, stored: str | None) -> None:
        """Every waiting caller's announcement as one text (entry -> [position, wait, offer a
        callback]), from a round's decision, written once the lock is free (announcements
        decide nothing) unless ``stored`` already says the same, and never over the text of a
        later round (``at``: this one's Redis time; ``stored``: the stored text's SHA-1). A
        round that moves the line rewrites every place for the cost of one write; one that does
        not, for none."""
        places = {a.entry: [a.position, a.expected_wait, a.offer_callback] for a in told}
        text = json.dumps(places, separators=(",", ":"))
        if hashlib.sha1(text.encode()).hexdigest() != (stored or _EMPTY_SUM):  # a digest, not a secret
            keys = [self.keys.announcements, self.keys.announced_at, self.keys.announced_sum]
            await self._announce_newer(keys=keys, args=[text, repr(at)])

    async def forget(self, entry_id: str) -> None:
        """Drop an entry's outcome once its process has acted on it."""
        await _aw(self.redis.hdel(self.keys.outcomes, entry_id))

    # -- the lock -----------------------------------------------------------------------------

    async def _now(self) -> float:
        seconds, micros = await self.redis.time()
        return float(seconds) + float(micros) / 1e6

    def _locked(self, reads: str = _CHANGE_READS, *, peek: bool = False) -> _Locked:
        return _Locked(self, reads, peek=peek)

    def _state_keys(self) -> list[str]:
        k = self.keys
        return [k.lock, k.version, k.log, k.queues, k.agents, k.entries, k.outcomes, k.stats, k.contact,
                k.announced_sum]  # fmt: skip

    async def _catch_up(self) -> None:
        """Bring the kept copy up to date without the lock (one round trip that yields): what
        changed since the last read is decoded now, so the read under the lock that follows
        finds little or nothing new (a round's hold is then the decision, not the decoding of
        a second's worth of other processes' changes, nor now and then of everything)."""
        decoded = self._decoded
        epoch, known = decoded.version if decoded.fresh() else ("", 0)
        found = await self._peek(keys=self._state_keys(), args=["", 0, epoch, known, "0000", LOG_MAX, "peek"])
        decoded.catch_up(found)

    async def _acquire(
        self, reads: str = _CHANGE_READS, *, deadline: float | None = None
    ) -> tuple[str, Snapshot]:
        """The lock, and the state read under it in the same round trip: one script that reads
        only if it took the lock (``reads``: which of outcomes, stats, contact and the
        announcements' digest; the rest are empty), and of agents and entries only what changed
        since this process's copy (see the module's doc)."""
        token = secrets.token_hex(8)
        deadline = deadline or time.monotonic() + LOCK_WAIT_S
        pause = 0.0002
        keys = self._state_keys()
        decoded = self._decoded
        while True:
            started = time.perf_counter()
            self._cpu_started = time.thread_time()
            self._collecting = gc.isenabled()
            gc.disable()  # until the write: see the module's doc
            found = None
            try:
                epoch, known = decoded.version if decoded.fresh() else ("", 0)
                args: list[str | int] = [token, self.lock_ttl_ms, epoch, known, reads, LOG_MAX]
                found = self._take(keys=keys, args=args)  # blocking: see the module's doc
            finally:
                if found is None and self._collecting:
                    gc.enable()
            if found is not None:
                break
            if time.monotonic() > deadline:
                log.warning("routing lock not had in %.1f s (held by another process)", LOCK_WAIT_S)
                raise RoutingBusy("the routing state is locked by another process for too long")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.005)
        try:
            snap = decoded.read(found, reads)
            if snap is None:  # the copy disagrees with the hashes' sizes: everything again
                snap = self._read_all_locked(found, reads)
        except BaseException:
            self._release_after_error(token)
            raise
        self._last_read = time.perf_counter() - started
        return token, snap

    def _read_all_locked(self, found: Sequence[Any], reads: str) -> Snapshot:
        """Everything, under the lock already held (nobody writes meanwhile)."""
        k = self.keys
        with self._sync.pipeline(transaction=True) as pipe:
            pipe.hmget(k.version, ["epoch", "n"])
            pipe.hgetall(k.agents)
            pipe.hgetall(k.entries)
            (epoch, n), agents, entries = pipe.execute()
        log.info("routing state read again in full: the kept copy disagreed with Redis")
        outcomes, stats, contact, announced = _side(found, reads)
        return self._decoded.full(found[0:2], (_s(epoch or b""), int(n or 0)), found[4], agents, entries,
                                  outcomes, stats, contact, announced)  # fmt: skip

    def _release_after_error(self, token: str) -> None:
        try:
            self._commit(keys=[self.keys.lock, self.keys.version, self.keys.log],
                         args=[token, "[]", "", "", LOG_MAX])  # fmt: skip
        finally:
            if self._collecting:
                gc.enable()

    async def _release(self, token: str, write: _Write | None) -> float | None:
        """Apply the writes and free the lock; Redis' time then (``None``: the lock was gone)."""
        ops = write.ops if write is not None else []
        touched = write.touched() if write is not None else ""
        k = self.keys
        try:
            applied = self._commit(
                keys=[k.lock, k.version, k.log],
                args=[token, json.dumps(ops), touched, secrets.token_hex(8), LOG_MAX],
            )  # blocking, too
        finally:
            if self._collecting:
                gc.enable()
        if not applied and ops:
            log.warning("routing lock expired before a change was written (%d writes dropped)", len(ops))
            raise LockLost("the routing lock expired before the change was written; nothing was applied")
        return float(applied[0]) + float(applied[1]) / 1e6 if applied else None


class _Locked:
    """``async with store._locked() as (snapshot, write)``: the lock held, the state read; the
    writes collected in ``write`` are applied on a clean exit (and nothing on an error)."""

    def __init__(self, store: RoutingStore, reads: str, *, peek: bool = False) -> None:
        self.store = store
        self.reads = reads
        self.peek = peek
        self.token = ""
        self.write: _Write | None = None
        self.timed = False  # a round that decided: its time goes to ROUND_TIMES
        self._taken = 0.0  # Redis' time when the lock was taken

    async def __aenter__(self) -> tuple[Snapshot, _Write]:
        deadline = time.monotonic() + LOCK_WAIT_S
        self.local = _local_lock(self.store.keys.prefix)
        try:
            async with asyncio.timeout(LOCK_WAIT_S):
                await self.local.acquire()
        except TimeoutError:
            log.warning("routing lock not had in %.1f s (this process's changes queue for it)", LOCK_WAIT_S)
            raise RoutingBusy("the routing state is locked for too long") from None
        try:
            if self.peek:
                await self.store._catch_up()
            self.token, snap = await self.store._acquire(self.reads, deadline=deadline)
        except BaseException:
            self.local.release()
            raise
        self._read = (self.store._last_read, time.perf_counter())
        self._taken = snap.now
        self.write = _Write(self.store.keys)
        return snap, self.write

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        writing = time.perf_counter()
        try:
            released = await self.store._release(self.token, self.write if exc_type is None else None)
        finally:
            self.local.release()
        if self.timed and exc_type is None and released is not None:
            read_s, decided = self._read
            parts = (read_s, writing - decided, time.perf_counter() - writing)
            ROUND_TIMES.record(released - self._taken, parts, time.thread_time() - self.store._cpu_started)


#: per event loop and store prefix: the changes of one process take the shared lock one after
#: the other, in the order they came (the others wait here rather than all polling Redis)
_LOCAL: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _local_lock(prefix: str) -> asyncio.Lock:
    locks = _LOCAL.setdefault(asyncio.get_running_loop(), {})
    found = locks.get(prefix)
    if found is None:
        found = locks[prefix] = asyncio.Lock()
    return found


def entry_of(entry_id: str, offer: Outcome) -> Entry:
    """The entry an offer was made for, at its original place."""
    return Entry(
        entry_id, offer.queue, offer.at - offer.waited, priority=offer.priority,
        kind=EntryKind(offer.entry_kind), callback_offered=offer.callback_offered,
    )  # fmt: skip


def staffed(snap: Snapshot) -> int:
    return sum(1 for r in snap.agents.values() if r.agent.state in STAFFED)


# -- (de)serialisation --------------------------------------------------------------------------


class _Decoded:
    """The state's values decoded from their stored text, kept between reads with the version
    they are at: a read brings only the agents and entries changed since (or everything), and
    a value whose text has not changed is not decoded again. Values are frozen, so sharing them
    between snapshots is safe; each snapshot gets dicts of its own."""

    def __init__(self) -> None:
        self.version: tuple[str, int] = ("", 0)
        self.agents: dict[str, tuple[bytes | str, AgentRecord]] = {}
        self.entries: dict[str, tuple[bytes | str, Waiting]] = {}
        self.agent_values: dict[str, AgentRecord] = {}
        self.entry_values: dict[str, Waiting] = {}
        self.outcomes: dict[bytes | str, tuple[str, bytes | str, Outcome]] = {}
        self.reads = 0  # since the last read of everything

    def fresh(self) -> bool:
        """Whether the copy may be brought up to date (else: read everything)."""
        return bool(self.version[0]) and self.reads < FULL_READ_EVERY

    def read(self, found: Sequence[Any], reads: str) -> Snapshot | None:
        """The snapshot of what ``_ACQUIRE`` returned; ``None`` if the copy, brought up to date,
        does not have as many agents and entries as Redis (read everything then)."""
        if not self.catch_up(found):
            return None
        sec, usec, queues = found[0], found[1], found[4]
        return self._snapshot((sec, usec), queues, *_side(found, reads))

    def catch_up(self, found: Sequence[Any]) -> bool:
        """The copy brought to the version ``_ACQUIRE`` returned; ``False`` (and no version
        kept, so the next read is of everything) if it then disagrees with the hashes' sizes."""
        _sec, _usec, epoch, n, _queues, mode, agents, entries, n_agents, n_entries = found[:10]
        version = (_s(epoch or b""), int(n))
        mode = _s(mode)
        if mode == "full":
            self._replace(version, _pairs(agents), _pairs(entries))
            return True
        if mode == "delta":
            _apply(self.agents, self.agent_values, agents, _load_agent)
            _apply(self.entries, self.entry_values, entries, _load_waiting)
        self.version = version
        self.reads += 1
        if len(self.agent_values) != n_agents or len(self.entry_values) != n_entries:
            self.version = ("", 0)
            return False
        return True

    def full(
        self,
        clock: Sequence[Any],
        version: tuple[str, int],
        queues: bytes | str | None,
        agents: Mapping[Any, Any],
        entries: Mapping[Any, Any],
        outcomes: Mapping[Any, Any] | None,
        stats: Mapping[Any, Any] | None,
        contact: Mapping[Any, Any] | None,
        announced: bytes | str | None,
    ) -> Snapshot:
        """The snapshot of everything read at ``version``, which the copy becomes."""
        self._replace(version, agents, entries)
        return self._snapshot(clock, queues, outcomes, stats, contact, announced)

    def _replace(
        self, version: tuple[str, int], agents: Mapping[Any, Any], entries: Mapping[Any, Any]
    ) -> None:
        self.agents, self.agent_values = _replace_all(self.agents, agents, _load_agent)
        self.entries, self.entry_values = _replace_all(self.entries, entries, _load_waiting)
        self.version = version
        self.reads = 0

    def _snapshot(
        self,
        clock: Sequence[Any],
        queues: bytes | str | None,
        outcomes: Mapping[Any, Any] | None,
        stats: Mapping[Any, Any] | None,
        contact: Mapping[Any, Any] | None,
        announced: bytes | str | None,
    ) -> Snapshot:
        self.outcomes, outcome_values = _reuse(self.outcomes, outcomes, _load_outcome)
        return Snapshot(
            now=float(clock[0]) + float(clock[1]) / 1e6,
            queues=_load_queues(queues),
            agents=dict(self.agent_values),
            entries=dict(self.entry_values),
            outcomes=outcome_values,
            stats={_s(q): QueueStats(*json.loads(v)) for q, v in (stats or {}).items()},
            contact={_s(a): float(v) for a, v in (contact or {}).items()},
            announced=_s(announced) if announced else None,
        )


def _side(
    found: Sequence[Any], reads: str
) -> tuple[dict[Any, Any] | None, dict[Any, Any] | None, dict[Any, Any] | None, Any]:
    """What ``_ACQUIRE`` returned after the agents and entries: outcomes, stats, contact and the
    announcements' digest, ``None`` for those ``reads`` did not ask for (not read: the kept
    outcomes stay kept)."""
    outcomes, stats, contact = (_pairs(found[10 + i]) if reads[i] == "1" else None for i in range(3))
    return outcomes, stats, contact, found[13]


def _pairs(flat: Sequence[Any] | Mapping[Any, Any] | None) -> dict[Any, Any]:
    """A hash as a script returns it (a flat list of field, value) as a dict."""
    if flat is None:
        return {}
    if isinstance(flat, Mapping):
        return dict(flat)
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _apply(
    kept: dict[str, tuple[bytes | str, T]],
    values: dict[str, T],
    flat: Sequence[Any],
    load: Callable[[str, bytes | str], T],
) -> None:
    """The changed fields (a flat list of field, text; no text: deleted) applied to the copy."""
    it = iter(flat)
    for key, text in zip(it, it, strict=True):
        name = _s(key)
        if text is None:
            kept.pop(name, None)
            values.pop(name, None)
            continue
        hit = kept.get(name)
        if hit is not None and hit[0] == text:
            continue
        value = load(name, text)
        kept[name] = (text, value)
        values[name] = value


def _replace_all(
    kept: dict[str, tuple[bytes | str, T]],
    raw: Mapping[Any, Any],
    load: Callable[[str, bytes | str], T],
) -> tuple[dict[str, tuple[bytes | str, T]], dict[str, T]]:
    """The copy of a whole hash, reusing the values whose text it holds already."""
    fresh: dict[str, tuple[bytes | str, T]] = {}
    values: dict[str, T] = {}
    for key, text in raw.items():
        name = _s(key)
        hit = kept.get(name)
        value = hit[1] if hit is not None and hit[0] == text else load(name, text)
        fresh[name] = (text, value)
        values[name] = value
    return fresh, values


def _reuse(
    kept: dict[bytes | str, tuple[str, bytes | str, T]],
    raw: Mapping[bytes | str, bytes | str] | None,
    load: Callable[[str, bytes | str], T],
) -> tuple[dict[bytes | str, tuple[str, bytes | str, T]], dict[str, T]]:
    """Values decoded from ``raw`` (key -> text), reusing ``kept`` (key -> (key as text, text,
    value)) for the texts it holds; the new ``kept``. ``raw`` None: not read, ``kept`` kept."""
    if raw is None:
        return kept, {}
    fresh: dict[bytes | str, tuple[str, bytes | str, T]] = {}
    values: dict[str, T] = {}
    for key, text in raw.items():
        hit = kept.get(key)
        if hit is not None and hit[1] == text:
            fresh[key] = hit
            values[hit[0]] = hit[2]
        else:
            name = _s(key)
            value = load(name, text)
            fresh[key] = (name, text, value)
            values[name] = value
    return fresh, values


def _load_outcome(_entry: str, raw: bytes | str) -> Outcome:
    return Outcome(**json.loads(raw))


def _sync_twin(client: Redis) -> sync_redis.Redis:
    """A synchronous client to the same server and database as ``client`` (for the locked
    change only), with timeouts no longer than the lock's life, so a stalled Redis stalls the
    process no longer than the lock would have lasted anyway. Behind Sentinel, a twin that asks
    the same sentinels for the primary: after a failover both clients follow it."""
    pool = client.connection_pool
    kwargs = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if k not in ("parser_class", "redis_connect_func", "connection_class", "retry", "connection_pool")
    }
    limit = LOCK_TTL_MS / 1000
    _cap_timeouts(kwargs, limit)
    if isinstance(pool, SentinelConnectionPool):
        manager = pool.sentinel_manager
        hosts = [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                 for s in manager.sentinels]  # fmt: skip
        asked = _cap_timeouts(dict(manager.sentinel_kwargs), limit)
        sentinel = sync_sentinel.Sentinel(hosts, sentinel_kwargs=asked)  # type: ignore[no-untyped-call]
        twin: sync_redis.Redis = sentinel.master_for(pool.service_name, **kwargs)  # type: ignore[no-untyped-call]
        return twin
    kind = pool.connection_class.__name__
    connection_class: type[sync_redis.Connection] | type[sync_redis.UnixDomainSocketConnection]
    connection_class = sync_redis.Connection
    if kind == "UnixDomainSocketConnection" or "path" in kwargs:
        connection_class = sync_redis.UnixDomainSocketConnection
    elif kind == "SSLConnection":
        connection_class = sync_redis.SSLConnection
    return sync_redis.Redis(
        connection_pool=sync_redis.ConnectionPool(connection_class=connection_class, **kwargs)
    )


def _cap_timeouts(kwargs: dict[str, Any], limit: float) -> dict[str, Any]:
    kwargs["socket_timeout"] = min(kwargs.get("socket_timeout") or limit, limit)
    kwargs["socket_connect_timeout"] = min(kwargs.get("socket_connect_timeout") or limit, limit)
    return kwargs


def _aw(value: Any) -> Awaitable[Any]:
    """redis-py types its commands for both clients; ours is the asyncio one."""
    return cast("Awaitable[Any]", value)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _asdict(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


def _dump_queue(q: QueueSettings) -> dict[str, Any]:
    queue = q.queue
    return {
        "key": queue.id,
        "service": queue.service,
        "municipality": queue.municipality,
        "language": queue.language,
        "name_ar": q.name_ar,
        "name_en": q.name_en,
        "config": q.to_config(),
    }


_QUEUE_CACHE: dict[bytes | str, tuple[QueueSettings, ...]] = {}


def _load_queues(raw: bytes | str | None) -> tuple[QueueSettings, ...]:
    """Queues as stored; the parsed tuple is kept per stored value, so the core's per-queue
    index (built once per queue tuple) is reused between rounds."""
    if not raw:
        return ()
    found = _QUEUE_CACHE.get(raw)
    if found is None:
        found = tuple(
            queue_settings(
                d["key"], service=d["service"], municipality=d["municipality"], language=d["language"],
                config=d["config"], name_ar=d["name_ar"], name_en=d["name_en"],
            )
            for d in json.loads(raw)
        )  # fmt: skip
        if len(_QUEUE_CACHE) > 16:
            _QUEUE_CACHE.clear()
        _QUEUE_CACHE[raw] = found
    return found


_SKILLS_CACHE: dict[str, frozenset[Any]] = {}


def _dump_caller(caller: Caller | None) -> list[Any] | None:
    if caller is None:
        return None
    return [
        caller.phone, caller.citizen_id, caller.language, list(caller.path),
        caller.call_id, caller.channel, caller.callback_id,
    ]  # fmt: skip


def _load_caller(raw: list[Any] | None) -> Caller | None:
    if raw is None:
        return None
    phone, citizen_id, language, path, call_id, channel, callback_id = raw
    return Caller(phone, citizen_id, language, tuple(path), call_id, channel, callback_id)


def _dump_agent(record: AgentRecord) -> str:
    a = record.agent
    return json.dumps(
        {
            "state": str(a.state),
            "skills": skills_to_list(a.skills),
            "since": a.since,
            "idle_since": a.idle_since,
            "pause_reason": a.pause_reason,
            "disposition": a.disposition,
            "endpoint": record.endpoint,
            "name": record.name,
            "entry": record.entry,
            "queue": record.queue,
            "caller": _dump_caller(record.caller),
        },
        ensure_ascii=False,
    )


def _load_agent(agent_id: str, raw: bytes | str) -> AgentRecord:
    d = json.loads(raw)
    key = json.dumps(d["skills"])
    agent_skills = _SKILLS_CACHE.get(key)
    if agent_skills is None:
        agent_skills = skills_from_list(d["skills"])
        if len(_SKILLS_CACHE) > 4096:
            _SKILLS_CACHE.clear()
        _SKILLS_CACHE[key] = agent_skills
    agent = Agent(
        agent_id, AgentState(d["state"]), agent_skills, d["since"], d["idle_since"], d["pause_reason"],
        d["disposition"],
    )  # fmt: skip
    return AgentRecord(agent, d["endpoint"], d["name"], d["entry"], d["queue"], _load_caller(d["caller"]))


def _dump_waiting(w: Waiting) -> str:
    e = w.entry
    return json.dumps(
        [e.queue, e.enqueued_at, e.priority, str(e.kind), e.callback_offered, _dump_caller(w.caller),
         e.not_before],
        ensure_ascii=False,
    )  # fmt: skip


def _load_waiting(entry_id: str, raw: bytes | str) -> Waiting:
    queue, enqueued_at, priority, kind, offered, caller, *rest = json.loads(raw)
    entry = Entry(entry_id, queue, enqueued_at, priority, EntryKind(kind), offered, rest[0] if rest else 0.0)
    return Waiting(entry, _load_caller(caller) or Caller())


def agents_by_state(agents: Iterable[AgentRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for record in agents:
        out[str(record.agent.state)] = out.get(str(record.agent.state), 0) + 1
    return out
