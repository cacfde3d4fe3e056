"""Queues and agent skills from their stored form (a JSON ``config`` column, a YAML file) to the
routing core's values, checked once so the router never meets a bad queue.

Usage::

    queue = queue_from_config("services", service="services", config={"steps": [[0, 1], [30, 3]]})
    agent_skills = skills_from_list([["service", "services", 1], ["language", "ar", 1]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from callcenter.routing.model import (
    LEVELS,
    Overflow,
    Queue,
    RoutingConfigError,
    Selection,
    Skill,
    SkillKind,
    Step,
)

#: What a queue's config may hold besides routing: the wallboard's service level.
DEFAULT_SL_THRESHOLD_S: Final = 20.0
DEFAULT_SL_TARGET: Final = 0.8
DEFAULT_SHORT_ABANDON_S: Final = 5.0
_KNOWN: Final = frozenset(
    {
        "steps",
        "max_wait",
        "max_size",
        "callback_after",
        "on_max_wait",
        "on_full",
        "selection",
        "sl_threshold_s",
        "sl_target",
        "short_abandon_s",
        "ring_timeout_s",
        "wrap_up_s",
        "priority",
    }
)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's routing values and what the telephony and the wallboard need beside them."""

    queue: Queue
    name_ar: str = ""
    name_en: str = ""
    sl_threshold_s: float = DEFAULT_SL_THRESHOLD_S  # answered within this counts for the service level
    sl_target: float = DEFAULT_SL_TARGET  # the share to reach (staffing "needed" aims at it)
    short_abandon_s: float = DEFAULT_SHORT_ABANDON_S  # hang-ups sooner are counted apart
    ring_timeout_s: float = 20.0  # an agent's phone rings this long before "missed"
    wrap_up_s: float = 60.0  # wrap-up ends by itself after this (a disposition still needed)
    priority: int = 0  # callers of this queue come before those of lower priority

    def to_config(self) -> dict[str, Any]:
        q = self.queue
        return {
            "steps": [[s.after, s.max_level] for s in q.steps],
            "max_wait": q.max_wait,
            "max_size": q.max_size,
            "callback_after": q.callback_after,
            "on_max_wait": str(q.on_max_wait),
            "on_full": str(q.on_full),
            "selection": str(q.selection),
            "sl_threshold_s": self.sl_threshold_s,
            "sl_target": self.sl_target,
            "short_abandon_s": self.short_abandon_s,
            "ring_timeout_s": self.ring_timeout_s,
            "wrap_up_s": self.wrap_up_s,
            "priority": self.priority,
        }


def queue_settings(
    key: str,
    *,
    service: str,
    municipality: str | None = None,
    language: str | None = None,
    config: Mapping[str, Any] | None = None,
    name_ar: str = "",
    name_en: str = "",
) -> QueueSettings:
    """A checked queue from its stored config (``RoutingConfigError`` names the bad field)."""
    config = dict(config or {})
    unknown = set(config) - _KNOWN
    if unknown:
        raise RoutingConfigError(f"unknown queue settings: {', '.join(sorted(unknown))}", queue=key)
    try:
        raw_steps = config.get("steps") or [[0, LEVELS[-1]]]
        steps = tuple(Step(float(after), int(level)) for after, level in raw_steps)
        queue = Queue(
            id=key,
            service=service,
            municipality=municipality or None,
            language=language or None,
            steps=steps,
            max_wait=_seconds(config.get("max_wait")),
            max_size=None if config.get("max_size") is None else int(config["max_size"]),
            callback_after=_seconds(config.get("callback_after")),
            on_max_wait=Overflow(config.get("on_max_wait", Overflow.CALLBACK)),
            on_full=Overflow(config.get("on_full", Overflow.CALLBACK)),
            selection=Selection(config.get("selection", Selection.LONGEST_IDLE)),
        )
        out = QueueSettings(
            queue,
            name_ar=name_ar,
            name_en=name_en,
            sl_threshold_s=float(config.get("sl_threshold_s", DEFAULT_SL_THRESHOLD_S)),
            sl_target=float(config.get("sl_target", DEFAULT_SL_TARGET)),
            short_abandon_s=float(config.get("short_abandon_s", DEFAULT_SHORT_ABANDON_S)),
            ring_timeout_s=float(config.get("ring_timeout_s", 20.0)),
            wrap_up_s=float(config.get("wrap_up_s", 60.0)),
            priority=int(config.get("priority", 0)),
        )
    except (TypeError, ValueError) as exc:
        raise RoutingConfigError(f"queue {key!r}: {exc}", queue=key) from exc
    if not 0 < out.sl_target <= 1 or out.sl_threshold_s <= 0 or out.ring_timeout_s <= 0:
        raise RoutingConfigError("sl_target is within (0, 1], thresholds and timeouts above 0", queue=key)
    return out


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def skills_from_list(items: Sequence[Sequence[Any]]) -> frozenset[Skill]:
    """``[["service", "water", 1], ["language", "ar", 1]]`` -> skills (a bad item is refused)."""
    out: set[Skill] = set()
    for item in items:
        if len(item) not in (2, 3):
            raise RoutingConfigError(f"a skill is [kind, value, level], not {list(item)!r}")
        kind, value = item[0], item[1]
        level = int(item[2]) if len(item) == 3 else LEVELS[0]
        try:
            out.add(Skill(SkillKind(kind), str(value), level))
        except ValueError as exc:
            raise RoutingConfigError(f"unknown skill kind {kind!r}") from exc
    return frozenset(out)


def skills_to_list(agent_skills: frozenset[Skill]) -> list[list[Any]]:
    return sorted([str(s.kind), s.value, s.level] for s in agent_skills)
