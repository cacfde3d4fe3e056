"""The values of the routing core: queues, agents and their skills, waiting entries, decisions.

Everything is a frozen value and every time is a number of seconds on one clock the caller
chooses (the store's epoch seconds): the core never reads a clock. The agent state machine
lives here too, because which moves are legal is part of what an agent state *is*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import pairwise
from operator import attrgetter
from typing import Final, NamedTuple

from callcenter.errors import CallCenterError, InvalidTransition

#: Skill levels: 1 = expert, 2 = skilled, 3 = can help. A lower number is a better match.
EXPERT: Final = 1
SKILLED: Final = 2
CAN_HELP: Final = 3
LEVELS: Final = (EXPERT, SKILLED, CAN_HELP)
#: A skill value that matches any service, municipality or language (a national agent).
ANY: Final = "*"
_NONE: Final = CAN_HELP + 1  # "no such skill": worse than any level


class RoutingConfigError(CallCenterError):
    """A queue, step or skill that cannot route (bad level, steps out of order, unknown queue)."""

    error_id = "routing_config"


class AgentTransitionError(InvalidTransition):
    """An agent state change the state machine refuses; ``details`` say from, to and what is allowed."""

    error_id = "agent_transition"


class AgentState(StrEnum):
    OFFLINE = "offline"
    READY = "ready"  # the only state that is offered calls
    RESERVED = "reserved"  # chosen by decide(); for a callback, before the citizen is dialled
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after a call: needs a disposition before taking the next one
    PAUSED = "paused"  # always with a reason (break, training, meeting ...)
    MISSED = "missed"  # let an offer ring out: out of rotation until the agent comes back
    LOST_CONTACT = "lost_contact"  # endpoint unregistered or desk gone


#: Where each state may go. Reserved/ringing -> ready is an offer withdrawn (the caller hung up).
TRANSITIONS: Final[Mapping[AgentState, frozenset[AgentState]]] = {
    AgentState.OFFLINE: frozenset({AgentState.READY, AgentState.PAUSED}),
    AgentState.READY: frozenset(
        {AgentState.RESERVED, AgentState.PAUSED, AgentState.OFFLINE, AgentState.LOST_CONTACT}
    ),
    AgentState.RESERVED: frozenset(
        {
            AgentState.RINGING,
            AgentState.ON_CALL,  # auto-answer endpoints, a callback bridged to a waiting agent
            AgentState.READY,
            AgentState.MISSED,
            AgentState.OFFLINE,
            AgentState.LOST_CONTACT,
        }
    ),
    AgentState.RINGING: frozenset(
        {AgentState.ON_CALL, AgentState.MISSED, AgentState.READY, AgentState.LOST_CONTACT}
    ),
    AgentState.ON_CALL: frozenset({AgentState.WRAP_UP, AgentState.LOST_CONTACT}),
    AgentState.WRAP_UP: frozenset(
        {AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE, AgentState.LOST_CONTACT}
    ),
    AgentState.PAUSED: frozenset(
        {AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE, AgentState.LOST_CONTACT}
    ),
    AgentState.MISSED: frozenset({AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE}),
    AgentState.LOST_CONTACT: frozenset({AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE}),
}
#: Logged in and serving: the agents a wait estimate counts on (paused, missed and lost are not).
STAFFED: Final = frozenset(
    {AgentState.READY, AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP}
)
#: Leaving wrap-up for work again needs the last call's disposition.
_NEEDS_DISPOSITION: Final = frozenset({AgentState.READY, AgentState.PAUSED})
#: Back to ready from a withdrawn offer keeps the agent's place in the longest-idle order.
_KEEPS_IDLE_PLACE: Final = frozenset({AgentState.RESERVED, AgentState.RINGING})


class SkillKind(StrEnum):
    SERVICE = "service"
    MUNICIPALITY = "municipality"
    LANGUAGE = "language"


@dataclass(frozen=True, slots=True)
class Skill:
    """One thing an agent can handle, and how well (``value`` may be ``ANY``)."""

    kind: SkillKind
    value: str
    level: int = EXPERT

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise RoutingConfigError(f"skill level must be 1, 2 or 3, not {self.level!r}", skill=self.value)


def skills(
    *,
    services: Mapping[str, int] | None = None,
    municipalities: Mapping[str, int] | None = None,
    languages: Mapping[str, int] | None = None,
) -> frozenset[Skill]:
    """Skills from plain mappings: ``skills(services={"water": 1}, languages={"ar": 1, "en": 3})``."""
    out: set[Skill] = set()
    for kind, given in (
        (SkillKind.SERVICE, services),
        (SkillKind.MUNICIPALITY, municipalities),
        (SkillKind.LANGUAGE, languages),
    ):
        out.update(Skill(kind, value, level) for value, level in (given or {}).items())
    return frozenset(out)


class Overflow(StrEnum):
    """What a caller hears when the queue cannot keep them: never silence."""

    CALLBACK = "callback"  # offer to call back, keeping their place
    MESSAGE = "message"  # play a message (call later, office hours, another channel)


class OverflowReason(StrEnum):
    MAX_WAIT = "max_wait"
    FULL = "full"


class Selection(StrEnum):
    """Which agent among those a queue may use takes the call."""

    LONGEST_IDLE = "longest_idle"  # the longest-idle agent at any allowed level
    BEST_LEVEL = "best_level"  # the best level first, longest idle within it (app_queue penalties)


@dataclass(frozen=True, slots=True)
class Step:
    """From ``after`` seconds of waiting on, agents up to ``max_level`` may take the call."""

    after: float
    max_level: int

    def __post_init__(self) -> None:
        if self.max_level not in LEVELS:
            raise RoutingConfigError(f"a step's level must be 1, 2 or 3, not {self.max_level!r}")
        if self.after < 0:
            raise RoutingConfigError(f"a step starts after a wait of 0 s or more, not {self.after!r}")


ANY_LEVEL_AT_ONCE: Final = (Step(0, CAN_HELP),)


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue per service, optionally narrowed to a municipality and a language.

    ``steps`` widen the target to less skilled agents as the wait grows, like TaskRouter's
    workflow timeouts or app_queue's penalty rules: ``(Step(0, 1), Step(30, 2), Step(90, 3))``.
    ``max_wait`` and ``max_size`` each end in ``on_max_wait`` / ``on_full``; ``callback_after``
    is when a waiting caller is first offered a callback while still holding.
    """

    id: str
    service: str
    municipality: str | None = None
    language: str | None = None
    steps: tuple[Step, ...] = ANY_LEVEL_AT_ONCE
    max_wait: float | None = None
    max_size: int | None = None
    callback_after: float | None = None
    on_max_wait: Overflow = Overflow.CALLBACK
    on_full: Overflow = Overflow.CALLBACK
    selection: Selection = Selection.LONGEST_IDLE

    def __post_init__(self) -> None:
        steps = self.steps
        if not steps or steps[0].after != 0:
            raise RoutingConfigError("a queue's first step starts at 0 s", queue=self.id)
        for before, after in pairwise(steps):
            if after.after <= before.after or after.max_level < before.max_level:
                raise RoutingConfigError(
                    "steps must start later and reach the same or wider levels", queue=self.id
                )
        for name, value in (("max_wait", self.max_wait), ("callback_after", self.callback_after)):
            if value is not None and value < 0:
                raise RoutingConfigError(f"{name} must be 0 s or more", queue=self.id)
        if self.max_size is not None and self.max_size < 0:
            raise RoutingConfigError("max_size must be 0 or more", queue=self.id)

    @property
    def widest_level(self) -> int:
        """The widest level the queue ever reaches: who counts as serving it."""
        return self.steps[-1].max_level

    def level_at(self, waited: float) -> int:
        """The widest level allowed after ``waited`` seconds."""
        for step in reversed(self.steps):
            if waited >= step.after:
                return step.max_level
        return self.steps[0].max_level  # a negative wait (clocks apart): the first step


def skill_level(agent_skills: Iterable[Skill], queue: Queue) -> int | None:
    """An agent's level for ``queue``: the worst of its levels for the queue's service,
    municipality and language (each the best matching skill, ``ANY`` included); ``None``
    when the agent does not serve the queue: a skill is missing, or its level is one the
    queue never widens to."""
    found = qualifications(agent_skills, (queue,))
    return found[0][1] if found else None


def qualifications(agent_skills: Iterable[Skill], queues: Iterable[Queue]) -> list[tuple[Queue, int]]:
    """The queues among ``queues`` the skills serve, each with the level (see ``skill_level``);
    queues past their widest step's level are left out, since they would never offer."""
    best: dict[tuple[SkillKind, str], int] = {}
    for skill in agent_skills:
        key = (skill.kind, skill.value)
        best[key] = min(best.get(key, _NONE), skill.level)
    out: list[tuple[Queue, int]] = []
    for queue in queues:
        level = 0
        for kind, wanted in (
            (SkillKind.SERVICE, queue.service),
            (SkillKind.MUNICIPALITY, queue.municipality),
            (SkillKind.LANGUAGE, queue.language),
        ):
            if wanted is not None:
                level = max(level, min(best.get((kind, wanted), _NONE), best.get((kind, ANY), _NONE)))
        if level <= queue.widest_level:
            out.append((queue, level))
    return out


class EntryKind(StrEnum):
    CALL = "call"  # a caller on the line
    CALLBACK = "callback"  # a caller who chose to be called back: no channel, same place


@dataclass(frozen=True, slots=True)
class Entry:
    """A waiting caller, or a callback keeping a caller's place.

    A callback carries the caller's original ``enqueued_at`` and ``priority``, so it is
    ordered exactly as the caller would have been had they held on.
    """

    id: str
    queue: str
    enqueued_at: float
    priority: int = 0  # higher first
    kind: EntryKind = EntryKind.CALL
    callback_offered: bool = False  # already heard the "press 1 to be called back" offer
    #: not offered before this time (a callback outside call hours, or to retry after no
    #: answer): it keeps its place and is served first once due, but holds nobody back meanwhile
    not_before: float = 0.0

    @property
    def order(self) -> tuple[int, float, str]:
        """The one order every decision follows: priority (higher first), then wait, then id."""
        return (-self.priority, self.enqueued_at, self.id)


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as the router sees it.

    ``idle_since`` orders the longest-idle agent first; ``since`` is when the current state
    began. Use ``change_state`` rather than ``replace`` so the state machine is kept.
    """

    id: str
    state: AgentState = AgentState.OFFLINE
    skills: frozenset[Skill] = frozenset()
    since: float = 0.0
    idle_since: float = 0.0
    pause_reason: str | None = None
    disposition: str | None = None  # of the last call; wrap-up clears it until given


def change_state(
    agent: Agent,
    to: AgentState,
    *,
    now: float,
    reason: str | None = None,
    disposition: str | None = None,
) -> Agent:
    """The agent after a legal state change, or ``AgentTransitionError`` saying why not.

    Usage: ``agent = change_state(agent, AgentState.READY, now=t, disposition="resolved")``.
    A pause needs a reason; leaving wrap-up for work needs the call's disposition.
    """
    allowed = TRANSITIONS[agent.state]
    if to not in allowed:
        raise AgentTransitionError(
            f"an agent cannot go from {agent.state} to {to}",
            agent=agent.id,
            from_state=str(agent.state),
            to_state=str(to),
            allowed=sorted(str(s) for s in allowed),
        )
    if to is AgentState.PAUSED and not reason:
        raise AgentTransitionError(
            "a pause needs a reason", agent=agent.id, from_state=str(agent.state), to_state=str(to)
        )
    given = disposition or agent.disposition
    if agent.state is AgentState.WRAP_UP and to in _NEEDS_DISPOSITION and not given:
        raise AgentTransitionError(
            f"wrap-up needs the call's disposition before {to}",
            agent=agent.id,
            from_state=str(agent.state),
            to_state=str(to),
        )
    idle_since = agent.idle_since
    if to is AgentState.READY and agent.state not in _KEEPS_IDLE_PLACE:
        idle_since = now
    return replace(
        agent,
        state=to,
        since=now,
        idle_since=idle_since,
        pause_reason=reason if to is AgentState.PAUSED else None,
        disposition=None if to is AgentState.WRAP_UP else given,
    )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Recent figures for a queue's wait estimate (the store computes them from its events)."""

    aht: float  # mean handling time, talk + wrap-up, seconds
    abandon_rate: float = 0.0  # share of recent callers who hung up while waiting, 0..1


@dataclass(frozen=True, slots=True)
class RoutingState:
    """Everything ``decide`` looks at: queues with their configuration, waiting entries, agents."""

    queues: tuple[Queue, ...] = ()
    entries: tuple[Entry, ...] = ()
    agents: tuple[Agent, ...] = ()
    stats: Mapping[str, QueueStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_id = attrgetter("id")  # a state is made every round: the check stays at C speed
        for what, values in (("queue", self.queues), ("entry", self.entries), ("agent", self.agents)):
            if len(set(map(by_id, values))) != len(values):
                raise RoutingConfigError(f"{what} ids must be unique", kind=what)


# -- decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """Entry -> agent. For a call: ring the agent. For a callback: reserve the agent, then dial
    the citizen (``kind`` says which)."""

    entry: str
    agent: str
    queue: str
    kind: EntryKind
    level: int  # the agent's level for the queue
    waited: float  # seconds since the original enqueue


@dataclass(frozen=True, slots=True)
class Overflowed:
    """A caller the queue cannot keep (max wait reached, or full on arrival) and what to do."""

    entry: str
    queue: str
    outcome: Overflow
    reason: OverflowReason


class Announcement(NamedTuple):
    """What to tell a waiting caller: their place in the queue (1 = next) and the expected wait
    in seconds (``None`` when nobody serves the queue, so no honest figure exists). A named
    tuple rather than a frozen dataclass: a round makes one for every waiting caller, and a
    tuple is made several times faster."""

    entry: str
    queue: str
    position: int
    expected_wait: float | None
    offer_callback: bool = False  # waited past callback_after and not yet offered


@dataclass(frozen=True, slots=True)
class Decisions:
    offers: tuple[Offer, ...] = ()
    overflows: tuple[Overflowed, ...] = ()
    announcements: tuple[Announcement, ...] = ()
