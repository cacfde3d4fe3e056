"""Scripted citizens: what a simulated caller does, and how a dialled number answers.

A :class:`Caller` is a list of steps. Each step is used by the next command that listens to the
caller (``STREAM FILE``, ``GET DATA``, ``WAIT FOR DIGIT``, ``SAY ...``, ``GET OPTION``): the
caller presses keys during it, stays silent until it times out, or hangs up during it. When the
steps run out the caller stays silent (or hangs up, with ``hang_up_when_done``).

For a ``Local/`` originate the citizen leg runs like the robot dialplan of the recordings
(``capture-extensions.conf``): each step appears on that leg as the application the robot would
run (``SendDTMF``, ``Wait``, ``Hangup``), so the AMI events match the recorded ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Press:
    """Press ``keys`` (``"3"``, ``"12#"``) ``after_ms`` into the command.

    ``wait_before_s`` adds a robot ``Wait`` before the ``SendDTMF`` (dialplan fidelity only).
    """

    keys: str
    after_ms: int = 300
    between_ms: int = 250
    wait_before_s: str | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Press nothing: the command plays out or times out. ``wait_s`` is the robot's ``Wait``."""

    wait_s: str = "10"


@dataclass(frozen=True, slots=True)
class HangUp:
    """Hang up ``after_ms`` into the command."""

    after_ms: int = 0


Step = Press | Silence | HangUp


@dataclass(frozen=True, slots=True)
class Caller:
    """A citizen: number, name and script. ``Caller.keys("3", "12#", None, hang_up=True)``
    presses 3, then 12#, then stays silent once, then hangs up."""

    steps: tuple[Step, ...] = ()
    number: str = "0912345678"
    name: str = "Citizen"
    hang_up_when_done: bool = False
    #: the robot dialplan's first applications on the citizen leg of a Local originate
    prelude: tuple[tuple[str, str], ...] = (("NoOp", "robot"), ("Wait", "1"))

    @classmethod
    def keys(cls, *presses: str | None, hang_up: bool = False, number: str = "0912345678") -> Caller:
        steps: list[Step] = [Silence() if keys is None else Press(keys) for keys in presses]
        if hang_up:
            steps.append(HangUp())
        return cls(tuple(steps), number=number)

    def step(self, index: int) -> Step:
        if index < len(self.steps):
            return self.steps[index]
        return HangUp() if self.hang_up_when_done else Silence()

    def react(self, index: int, *, command: str, duration_ms: int | None, now_ms: float) -> Step:
        """The step for the ``index``-th listening command (a script ignores what plays)."""
        return self.step(index)

    def patience_left_ms(self, now_ms: float) -> float | None:
        """A scripted caller never tires of a ringing phone."""
        return None


class Script(Protocol):
    """Whoever is on a simulated line: a scripted :class:`Caller`, or one that reacts to what
    it hears (:class:`callcenter.sim.waiting.QueueCaller`). The channel asks for a step at
    each command that listens, telling what plays (the AGI command line), for how long
    (``None``: the file is missing) and when (the clock's virtual milliseconds)."""

    @property
    def number(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def prelude(self) -> tuple[tuple[str, str], ...]: ...

    def react(self, index: int, *, command: str, duration_ms: int | None, now_ms: float) -> Step: ...

    def patience_left_ms(self, now_ms: float) -> float | None:
        """How long the caller still holds on while a phone rings for them (``None``: for ever)."""
        ...


Kind = Literal["answer", "busy", "noanswer", "congestion", "failed"]

#: OriginateResponse ``Reason`` and the channel's hangup cause for each outcome.
REASONS: dict[Kind, int] = {"answer": 4, "busy": 5, "noanswer": 3, "congestion": 8, "failed": 0}
CAUSES: dict[Kind, int] = {"answer": 16, "busy": 17, "noanswer": 19, "congestion": 34, "failed": 0}
CAUSE_TEXT: dict[int, str] = {
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    34: "Circuit/channel congestion",
}


def cause_text(cause: int) -> str:
    """``ast_cause2str``: unknown codes (0 included) read ``Unknown``."""
    return CAUSE_TEXT.get(cause, "Unknown")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a dialled number reacts: ring ``after_ms`` then answer / busy / congestion / fail;
    ``noanswer`` rings until the Originate ``Timeout``."""

    kind: Kind = "answer"
    after_ms: int = 0
    caller: Script = field(default_factory=Caller)


class CitizenModel:
    """Decides per number: an explicit table, then ``rule(number)``, then ``default``."""

    def __init__(
        self,
        by_number: Mapping[str, Outcome] | None = None,
        *,
        rule: Callable[[str], Outcome | None] | None = None,
        default: Outcome | None = None,
    ) -> None:
        self.by_number = dict(by_number or {})
        self.rule = rule
        self.default = default or Outcome()

    def decide(self, number: str) -> Outcome:
        if number in self.by_number:
            return self.by_number[number]
        if self.rule is not None and (outcome := self.rule(number)) is not None:
            return outcome
        return self.default


@dataclass
class PromptLibrary:
    """Which prompt files exist and how long they play (8 kHz samples: 8 per ms)."""

    durations_ms: dict[str, int] = field(default_factory=dict)
    missing: set[str] = field(default_factory=lambda: {"nosuchfile"})
    default_ms: int = 2000
    exists: Callable[[str], bool] | None = None

    def duration_ms(self, path: str) -> int | None:
        """None when the file is missing (``STREAM FILE`` answers ``result=-1`` at once)."""
        if path in self.missing or (self.exists is not None and not self.exists(path)):
            return None
        return self.durations_ms.get(path, self.default_ms)

    @classmethod
    def only(cls, names: Iterable[str], default_ms: int = 2000) -> PromptLibrary:
        known = set(names)
        return cls(missing=set(), default_ms=default_ms, exists=known.__contains__)


def robot_apps(step: Step) -> Sequence[tuple[str, str]]:
    """The robot-dialplan applications a step shows on the citizen leg."""
    if isinstance(step, Press):
        apps = [("Wait", step.wait_before_s)] if step.wait_before_s else []
        return [*apps, ("SendDTMF", f"{step.keys},{step.between_ms}")]
    if isinstance(step, Silence):
        return [("Wait", step.wait_s)]
    return [("Hangup", "")]
