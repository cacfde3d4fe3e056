"""The pure ACD core: queues, skills, the routing decision, wait estimates and staffing.

``decide(state, now)`` takes values (queues, waiting entries, agents, the clock) and returns
values (offers, overflows, announcements); the IVR, callbacks, transfers and the desk are
adapters around it, and the shared store keeps the state between rounds. Wait estimates
(``estimate``) and staffing (``staffing``: Erlang C, Erlang A, agents needed) are functions of
values too; Arabic announcements of positions and waits are in ``callcenter.arabic_numbers``.
"""

from callcenter.routing.estimate import expected_wait, minutes_to_announce
from callcenter.routing.model import (
    ANY,
    CAN_HELP,
    EXPERT,
    SKILLED,
    Agent,
    AgentState,
    AgentTransitionError,
    Announcement,
    Decisions,
    Entry,
    EntryKind,
    Offer,
    Overflow,
    Overflowed,
    OverflowReason,
    Queue,
    QueueStats,
    RoutingConfigError,
    RoutingState,
    Selection,
    Skill,
    SkillKind,
    Step,
    change_state,
    skill_level,
    skills,
)
from callcenter.routing.strategy import (
    Admission,
    apply_offers,
    decide,
    enqueue,
    mark_callback_offered,
    to_callback,
    withdraw,
)

__all__ = [
    "ANY",
    "CAN_HELP",
    "EXPERT",
    "SKILLED",
    "Admission",
    "Agent",
    "AgentState",
    "AgentTransitionError",
    "Announcement",
    "Decisions",
    "Entry",
    "EntryKind",
    "Offer",
    "Overflow",
    "OverflowReason",
    "Overflowed",
    "Queue",
    "QueueStats",
    "RoutingConfigError",
    "RoutingState",
    "Selection",
    "Skill",
    "SkillKind",
    "Step",
    "apply_offers",
    "change_state",
    "decide",
    "enqueue",
    "expected_wait",
    "mark_callback_offered",
    "minutes_to_announce",
    "skill_level",
    "skills",
    "to_callback",
    "withdraw",
]
