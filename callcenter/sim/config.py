"""What a simulated Asterisk is configured with (dialplan, citizens, agents, queues, timing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from callcenter.sim.citizen import CitizenModel, PromptLibrary


@dataclass(frozen=True, slots=True)
class ContextSpec:
    """A dialplan context: applications before the ``AGI()``, the AGI script and arguments,
    then ``Hangup()``. The default is ``[inbound-1415]`` of ``capture-extensions.conf``."""

    before: tuple[tuple[str, str], ...] = (("NoOp", "citizen call"), ("Answer", ""))
    script: str = "ivr"
    args: tuple[str, ...] = ("main",)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """What a phone dialled with ``EXEC Dial`` does with one call (see :mod:`.agents`):
    ``answer`` rings ``answer_after_ms``, answers (running ``Dial``'s ``U()`` gosub on its
    channel), talks ``talk_ms`` and hangs up; ``busy`` declines after ``answer_after_ms``
    (486: ``BUSY``); ``noanswer`` rings until Dial's timeout (``NOANSWER``); ``unavailable``
    is a phone that is not registered (``CHANUNAVAIL`` at once, no channel)."""

    kind: Literal["answer", "busy", "noanswer", "unavailable"] = "answer"
    answer_after_ms: int = 1000
    talk_ms: int = 2000
    answer_priority: int = 3  # where [agents] runs Answer() and Hangup()
    hangup_priority: int = 5


def _default_dialplan() -> dict[str, ContextSpec]:
    return {"inbound-1415": ContextSpec()}


@dataclass
class SimConfig:
    """Defaults reproduce the recorded rig: AMI user ``engine``/``s3cret``, banner
    ``Asterisk Call Manager/11.0.0``, FastAGI server at 127.0.0.1:4573."""

    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    accounts: dict[str, str] = field(default_factory=lambda: {"engine": "s3cret"})
    ami_version: str = "11.0.0"
    agi_version: str = "UNKNOWN__and_probably_unsupported"
    dialplan: dict[str, ContextSpec] = field(default_factory=_default_dialplan)
    citizens: CitizenModel = field(default_factory=CitizenModel)
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    #: asked for each ring of a phone not in ``agents`` (``None``: ``default_agent``), so a
    #: phone may behave differently from one call to the next
    agent_rule: Callable[[str], AgentSpec | None] | None = None
    default_agent: AgentSpec = field(default_factory=AgentSpec)
    queues: dict[str, str] = field(default_factory=lambda: {"services": "leastrecent"})
    prompts: PromptLibrary = field(default_factory=PromptLibrary)
    #: virtual milliseconds (prompt lengths, waits, rings) → real time; 0 runs flat out
    time_scale: float = 1.0
    #: Asterisk sleeps 1 s before refusing a login; tests use 0
    auth_fail_delay: float = 0.0
    first_uniqueid: int = 0
    first_channel: int = 0
    wall: Callable[[], float] = time.time


def engine_dialplan() -> dict[str, ContextSpec]:
    """Contexts named like the engine's (:mod:`callcenter.telephony.names`, as in
    ``dialplans/extensions.conf``): inbound 1415 runs the ``main`` script, an answered campaign
    call the ``outbound`` script, an answered callback the ``callback`` script, and the ``U()``
    gosub of a Dial to an agent ``agent_answered`` on the agent's channel. Use as
    ``SimConfig(dialplan=engine_dialplan())``; the default follows the recordings instead
    (script ``ivr`` with argument ``main``)."""
    from callcenter.telephony import names  # owned by the dialplan side; imported on use

    return {
        names.CTX_INBOUND: ContextSpec(script=names.AGI_MAIN, args=()),
        names.CTX_OUTBOUND: ContextSpec((("NoOp", "campaign call"),), names.AGI_OUTBOUND, ()),
        names.CTX_CALLBACK: ContextSpec((("NoOp", "1415: callback"),), names.AGI_CALLBACK, ()),
        names.CTX_AGENT_ANSWERED: ContextSpec(
            (("NoOp", "1415: agent ${ARG2} answered entry ${ARG1}"),),
            names.AGI_AGENT_ANSWERED,
            ("${ARG1}", "${ARG2}"),
        ),
    }
