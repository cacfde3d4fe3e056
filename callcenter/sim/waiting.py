"""Callers who react to what they hear: keys by prompt, and callers who wait for an agent.

A :class:`PromptCaller` presses keys according to the prompt being played (the channel tells
it the command line of each command that listens): ``{"greeting": "0"}`` presses 0 during
the first prompt whose path holds "greeting"; a list is used up one item per prompt
(``"hold-music": ["7", "#"]``: 7 during the first hold piece, # during the second); ``None``
is silence, a :class:`~callcenter.sim.citizen.HangUp` hangs up there. Silent otherwise.

A :class:`QueueCaller` keys 0 (an agent) or 2 (a service request) at the menu and then waits
as a person does: through the hold music and the announcements until an agent answers, or
until their patience runs out (they hang up, while holding or while the agent's phone
rings), or, when offered "press 1 to be called back", books the callback if they are of a
mind to; after the call they rate it. Patience counts from the menu key, in the clock's
virtual milliseconds.

Usage::

    callers = [QueueCaller("0", number=f"09100{n:05d}", patience_ms=60_000, books_callback=n % 5 == 0)
               for n in range(100)]
    await sim.run_callers(callers, concurrency=100)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from callcenter.sim.citizen import HangUp, Press, Silence, Step

MENU: Final = "greeting"
HOLD: Final = "hold-music"
CALLBACK_OFFERS: Final = ("callback-keep-place", "callback-press-1")
RATE: Final = "rate-call"
#: prompts a waiting caller hears while still waiting (where patience may run out)
WAITING: Final = (HOLD, "callback-keep-place")

PlanItem = str | Step | None


class PromptCaller:
    """Keys chosen by the prompt being played (see the module's docstring)."""

    prelude: tuple[tuple[str, str], ...] = (("NoOp", "robot"), ("Wait", "1"))

    def __init__(
        self,
        plan: Mapping[str, PlanItem | list[PlanItem]],
        number: str = "0912345678",
        *,
        name: str = "Citizen",
    ) -> None:
        self.plan: dict[str, list[PlanItem]] = {
            k: list(v) if isinstance(v, list) else [v] for k, v in plan.items()
        }
        self.number = number
        self.name = name
        self.playing = ""  # the command line of what plays now

    def step(self, index: int) -> Step:
        for prompt, items in self.plan.items():
            if prompt in self.playing and items:
                item = items.pop(0)
                if item is None:
                    return Silence()
                return item if isinstance(item, (HangUp, Silence, Press)) else Press(item)
        return Silence()

    def react(self, index: int, *, command: str, duration_ms: int | None, now_ms: float) -> Step:
        self.playing = command
        return self.step(index)

    def patience_left_ms(self, now_ms: float) -> float | None:
        return None


class QueueCaller(PromptCaller):
    """A caller for an agent: ``key`` at the menu, then waits (see the module's docstring).

    ``patience_ms``: how long they hold on from the key on (``None``: for ever);
    ``books_callback``: presses 1 when a callback is offered; ``rating``: the key given to
    "rate the call" (``None``: silence). Afterwards ``queued_at_ms``, ``gave_up`` and
    ``booked`` tell what they did.
    """

    def __init__(
        self,
        key: str = "0",
        number: str = "0912345678",
        *,
        patience_ms: float | None = None,
        books_callback: bool = False,
        rating: str | None = "4",
        name: str = "Citizen",
    ) -> None:
        plan: dict[str, PlanItem | list[PlanItem]] = {MENU: Press(key, after_ms=100)}
        if books_callback:
            plan |= {offer: Press("1", after_ms=300) for offer in CALLBACK_OFFERS}
        if rating is not None:
            plan[RATE] = Press(rating, after_ms=300)
        super().__init__(plan, number, name=name)
        self.key = key
        self.patience_ms = patience_ms
        self.books_callback = books_callback
        self.queued_at_ms: float | None = None
        self.gave_up = False
        self.booked = False

    def react(self, index: int, *, command: str, duration_ms: int | None, now_ms: float) -> Step:
        self.playing = command
        if self.queued_at_ms is not None and any(p in command for p in WAITING):
            left = self.patience_left_ms(now_ms)
            wants_callback = self.books_callback and any(p in command for p in CALLBACK_OFFERS)
            if left is not None and not wants_callback and (duration_ms is None or left < duration_ms):
                self.gave_up = True
                return HangUp(after_ms=max(0, int(left)))
        step = self.step(index)
        if isinstance(step, Press):
            if MENU in command and self.queued_at_ms is None:
                self.queued_at_ms = now_ms + step.after_ms
            elif any(p in command for p in CALLBACK_OFFERS):
                self.booked = True
        return step

    def patience_left_ms(self, now_ms: float) -> float | None:
        """While waiting (after the key, before being put through or called back)."""
        if self.patience_ms is None or self.queued_at_ms is None or self.booked or self.gave_up:
            return None
        return max(0.0, self.patience_ms - (now_ms - self.queued_at_ms))
