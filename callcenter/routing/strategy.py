"""The ACD's decision: ``decide(state, now) -> Decisions``, and the pure moves around it.

Usage::

    decisions = decide(state, now)
    for offer in decisions.offers:          # ring offer.agent (kind "call") or reserve it, then
        ...                                 # dial the citizen (kind "callback")
    state = apply_offers(state, decisions.offers, now=now)

The rule, in one pass: entries are taken in the one order all queues share (priority, higher
first, then the original enqueue time), and each gets the longest-idle ready agent its queue
may use at its current widening step. So an agent serving several queues always gets the
caller who has waited longest among them (after priority), and a callback sits exactly where
its caller would. The pass is greedy: it never moves a caller to a less suitable agent to free
a better one for someone who waited less.

Cost: O((entries + memberships) log n), memberships being (ready agent, queue it serves) pairs.
Ready agents sit in a heap per (queue, level), ordered by idle time; a taken agent is skipped
lazily when it surfaces, so no pair of (caller, agent) is ever compared in a loop.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from operator import attrgetter

from callcenter.errors import NotFound
from callcenter.routing.estimate import expected_wait
from callcenter.routing.model import (
    ANY,
    STAFFED,
    Agent,
    AgentState,
    Announcement,
    Decisions,
    Entry,
    EntryKind,
    Offer,
    Overflowed,
    OverflowReason,
    Queue,
    QueueStats,
    RoutingConfigError,
    RoutingState,
    Selection,
    Skill,
    SkillKind,
    change_state,
    qualifications,
)

# (idle_since, agent id): the heap order, longest idle first, ties by id so decisions repeat.
_Slot = tuple[float, str]


def decide(state: RoutingState, now: float, *, announce: bool = True) -> Decisions:
    """Who is offered to whom, who overflows, and what each waiting caller is told.

    An entry that reaches its queue's ``max_wait`` in the very round an agent frees up is
    offered, not overflowed: the limit is there to end waits, not to turn callers away.
    Callbacks never overflow and are not announced (nobody is on the line). An entry whose
    ``not_before`` is still ahead is skipped altogether, keeping its place for when it is due.

    ``announce=False`` leaves the announcements out (the shared store decides under its lock
    and announces after it, with :func:`announcements` on the state the decision left).
    """
    index = _index(state.queues)
    queues = index.by_id
    waiting = {e.queue for e in state.entries}
    unknown = waiting - queues.keys()
    if unknown:
        raise RoutingConfigError("entries wait in queues the state does not have", queues=sorted(unknown))
    pools, staffed, free = _pools(state.agents, index, waiting)

    offers: list[Offer] = []
    overflows: list[Overflowed] = []
    remaining: list[Entry] = []
    taken: set[str] = set()
    due = [entry for entry in state.entries if entry.not_before <= now]  # the rest keep their place
    # the order matters only to who gets a free agent and to the places announced: with no
    # agent free and nothing to announce, only the overflows are looked for (and put in order)
    in_order = bool(free or announce)
    ordered = _in_order(due) if in_order else due
    rest: list[Entry] = []
    for at, entry in enumerate(ordered):
        if not free and not announce:
            rest = ordered[at:]
            break
        queue = queues[entry.queue]
        waited = now - entry.enqueued_at
        if free:
            found = _pick(pools[entry.queue], queue.level_at(waited), queue.selection, taken)
            if found is not None:
                agent_id, level = found
                taken.add(agent_id)
                free -= 1
                offers.append(Offer(entry.id, agent_id, queue.id, entry.kind, level, max(waited, 0.0)))
                continue
        if entry.kind is EntryKind.CALL and queue.max_wait is not None and waited >= queue.max_wait:
            overflows.append(Overflowed(entry.id, queue.id, queue.on_max_wait, OverflowReason.MAX_WAIT))
            continue
        remaining.append(entry)
    if rest:
        limits = {q.id: q.max_wait for q in queues.values() if q.max_wait is not None}
        past = [
            entry
            for entry in rest
            if entry.queue in limits
            and entry.kind is EntryKind.CALL
            and now - entry.enqueued_at >= limits[entry.queue]
        ]
        for entry in past if in_order else _in_order(past):
            queue = queues[entry.queue]
            overflows.append(Overflowed(entry.id, queue.id, queue.on_max_wait, OverflowReason.MAX_WAIT))
    told = _announce(remaining, queues, staffed, state.stats, now) if announce else ()
    return Decisions(tuple(offers), tuple(overflows), told)


def announcements(state: RoutingState, now: float) -> tuple[Announcement, ...]:
    """What :func:`decide` tells the waiting callers of a state in which it offers and
    overflows nobody, e.g. the state a decision left once its offers and overflows are out
    of the line: ``decide(s, t).announcements == announcements(s', t)`` for that ``s'``."""
    index = _index(state.queues)
    waiting = {e.queue for e in state.entries}
    unknown = waiting - index.by_id.keys()
    if unknown:
        raise RoutingConfigError("entries wait in queues the state does not have", queues=sorted(unknown))
    _, staffed, _ = _pools(state.agents, index, waiting)
    due = [entry for entry in _in_order(state.entries) if entry.not_before <= now]
    return _announce(due, index.by_id, staffed, state.stats, now)


def _in_order(entries: Iterable[Entry]) -> list[Entry]:
    """Priority (higher first), then enqueue time, then id: two stable sorts on C-level keys."""
    ordered = sorted(entries, key=attrgetter("enqueued_at", "id"))
    ordered.sort(key=attrgetter("priority"), reverse=True)  # reverse=True keeps sort stability
    return ordered


class _Index:
    """Queues by id and by service, and each skill set's levels for every queue (its profile).

    Profiles depend only on skills and queue configuration, which change far less often than
    states, so they are kept between rounds for as long as the queue tuple stays the same.
    """

    __slots__ = ("by_id", "by_service", "profiles", "queues")
    _MAX_PROFILES = 4096

    def __init__(self, queues: tuple[Queue, ...]) -> None:
        self.queues = queues
        self.by_id = {q.id: q for q in queues}
        self.by_service: dict[str, list[Queue]] = {}
        for queue in queues:
            self.by_service.setdefault(queue.service, []).append(queue)
        self.profiles: dict[frozenset[Skill], dict[str, int]] = {}

    def profile(self, agent_skills: frozenset[Skill]) -> dict[str, int]:
        found = self.profiles.get(agent_skills)
        if found is None:
            services = {s.value for s in agent_skills if s.kind is SkillKind.SERVICE}
            candidates = (
                self.queues
                if ANY in services
                else [q for service in services for q in self.by_service.get(service, ())]
            )
            found = {q.id: level for q, level in qualifications(agent_skills, candidates)}
            if len(self.profiles) >= self._MAX_PROFILES:
                self.profiles.clear()
            self.profiles[agent_skills] = found
        return found


_last_index: _Index | None = None


def _index(queues: tuple[Queue, ...]) -> _Index:
    """The index of this queue tuple: the last one when it is the same (by identity, else by
    value), so a store that keeps its queue tuple between rounds pays for profiles once. One
    slot, replaced whole: two configurations used in turn only cost recomputation."""
    global _last_index
    last = _last_index
    if last is not None and (last.queues is queues or last.queues == queues):
        return last
    _last_index = _Index(queues)
    return _last_index


def _pools(
    agents: Iterable[Agent], index: _Index, waiting: set[str]
) -> tuple[dict[str, list[list[_Slot]]], dict[str, int], int]:
    """Per waiting queue: a heap of ready agents per level (index 0 = expert), the number of
    agents staffed for it, and how many ready agents serve at least one of them.

    Agents are counted per skill set first (few distinct sets, many agents), so the per-agent
    work is a state test, and a lookup for the ready ones."""
    pools: dict[str, list[list[_Slot]]] = {q: [[], [], []] for q in waiting}
    staffed = dict.fromkeys(waiting, 0)
    agents = agents if isinstance(agents, tuple | list) else list(agents)
    serves_of: dict[frozenset[Skill], list[tuple[str, int]]] = {}
    for agent_skills, count in Counter(a.skills for a in agents if a.state in STAFFED).items():
        profile = index.profile(agent_skills)  # narrowed to the waiting queues
        if len(profile) <= len(waiting):
            serves = [(q, level) for q, level in profile.items() if q in waiting]
        else:
            serves = [(q, profile[q]) for q in waiting if q in profile]
        serves_of[agent_skills] = serves
        for queue_id, _ in serves:
            staffed[queue_id] += count
    free = 0
    for agent in [a for a in agents if a.state is AgentState.READY]:
        serves = serves_of[agent.skills]
        if serves:
            free += 1
            slot = (agent.idle_since, agent.id)
            for queue_id, level in serves:
                pools[queue_id][level - 1].append(slot)
    for levels in pools.values():
        for heap in levels:
            heapq.heapify(heap)
    return pools, staffed, free


def _pick(
    levels: list[list[_Slot]], max_level: int, selection: Selection, taken: set[str]
) -> tuple[str, int] | None:
    """The agent for an entry allowed up to ``max_level``, popped from its heap, with its level."""
    best: list[_Slot] | None = None
    best_level = 0
    for level in range(1, max_level + 1):
        heap = levels[level - 1]
        while heap and heap[0][1] in taken:
            heapq.heappop(heap)  # offered to an earlier entry through another queue
        if not heap:
            continue
        if best is None or heap[0] < best[0]:
            best, best_level = heap, level
        if selection is Selection.BEST_LEVEL:
            break
    if best is None:
        return None
    return heapq.heappop(best)[1], best_level


def _announce(
    remaining: list[Entry],
    queues: Mapping[str, Queue],
    staffed: Mapping[str, int],
    stats: Mapping[str, QueueStats],
    now: float,
) -> tuple[Announcement, ...]:
    positions = dict.fromkeys(staffed, 0)
    # per queue, what the estimate needs (checked once): (agents, aht, share that stays) or None
    shape: dict[str, tuple[int, float, float] | None] = {}
    for queue_id, agents in staffed.items():
        figures = stats.get(queue_id)
        if (
            figures is None
            or expected_wait(position=1, agents=agents, aht=figures.aht, abandon_rate=figures.abandon_rate)
            is None
        ):
            shape[queue_id] = None
        else:
            shape[queue_id] = (agents, figures.aht, 1.0 - figures.abandon_rate)
    out: list[Announcement] = []
    for entry in remaining:  # already in queue order
        positions[entry.queue] += 1
        if entry.kind is not EntryKind.CALL:
            continue  # a callback holds a place (counted above) but has nobody to tell
        queue = queues[entry.queue]
        position = positions[entry.queue]
        found = shape[entry.queue]
        # expected_wait's formula, inline: this runs for every waiting caller every round
        estimate = None if found is None else (1.0 + (position - 1) * found[2]) * found[1] / found[0]
        offer_callback = (
            queue.callback_after is not None
            and not entry.callback_offered
            and now - entry.enqueued_at >= queue.callback_after
        )
        out.append(Announcement(entry.id, queue.id, position, estimate, offer_callback))
    return tuple(out)


# -- moves around the decision --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admission:
    """The state after an arrival; ``refused`` says what to play when the queue is full."""

    state: RoutingState
    refused: Overflowed | None = None


def enqueue(state: RoutingState, entry: Entry) -> Admission:
    """Add a waiting entry unless its queue is full.

    Only callers on the line count towards ``max_size``: a callback holds no channel, and
    turning a caller into a callback must never be refused.
    """
    queue = next((q for q in state.queues if q.id == entry.queue), None)
    if queue is None:
        raise RoutingConfigError(f"no queue {entry.queue!r}", queue=entry.queue)
    if any(e.id == entry.id for e in state.entries):
        raise RoutingConfigError(f"entry {entry.id!r} is already waiting", entry=entry.id)
    if entry.kind is EntryKind.CALL and queue.max_size is not None:
        on_line = sum(1 for e in state.entries if e.queue == queue.id and e.kind is EntryKind.CALL)
        if on_line >= queue.max_size:
            return Admission(state, Overflowed(entry.id, queue.id, queue.on_full, OverflowReason.FULL))
    return Admission(replace(state, entries=(*state.entries, entry)))


def withdraw(state: RoutingState, entry_id: str) -> RoutingState:
    """The entry leaves the queue (the caller hung up, or the callback was cancelled)."""
    _entry(state, entry_id)
    return replace(state, entries=tuple(e for e in state.entries if e.id != entry_id))


def to_callback(state: RoutingState, entry_id: str) -> RoutingState:
    """The caller chose a callback: same entry, same place (enqueue time and priority kept)."""
    entry = _entry(state, entry_id)
    return _put(state, replace(entry, kind=EntryKind.CALLBACK, callback_offered=True))


def mark_callback_offered(state: RoutingState, entry_id: str) -> RoutingState:
    """The caller heard the callback offer: ``decide`` will not ask for it again."""
    return _put(state, replace(_entry(state, entry_id), callback_offered=True))


def apply_offers(state: RoutingState, offers: Iterable[Offer], *, now: float) -> RoutingState:
    """The state once the offers are taken: each agent reserved, each entry out of the queue.

    The store does the same atomically; this is the pure version, for tests and simulations.
    """
    offers = list(offers)
    agents = {offer.agent for offer in offers}
    entries = {offer.entry for offer in offers}
    for entry_id in entries:
        _entry(state, entry_id)
    known = {a.id for a in state.agents}
    if agents - known:
        raise NotFound("no such agent", agents=sorted(agents - known))
    return replace(
        state,
        entries=tuple(e for e in state.entries if e.id not in entries),
        agents=tuple(
            change_state(a, AgentState.RESERVED, now=now) if a.id in agents else a for a in state.agents
        ),
    )


def _entry(state: RoutingState, entry_id: str) -> Entry:
    for entry in state.entries:
        if entry.id == entry_id:
            return entry
    raise NotFound(f"no waiting entry {entry_id!r}", entry=entry_id)


def _put(state: RoutingState, entry: Entry) -> RoutingState:
    return replace(state, entries=tuple(entry if e.id == entry.id else e for e in state.entries))
