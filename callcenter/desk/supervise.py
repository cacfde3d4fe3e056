"""Supervisors listen to, whisper to or barge into an agent's call: ``ChanSpy`` on the agent's
channel, started by an AMI ``Originate`` that rings the supervisor's own phone first.

Usage::

    action_id = await spy(ami, store, agent_id="7", supervisor_endpoint="PJSIP/sup201",
                          mode=SpyMode.LISTEN)

The call must be in progress *now*: a supervisor who clicks as the call ends is told so, and no
phone rings for nothing. ChanSpy's prefix ends with ``-`` so ``PJSIP/agent10`` never spies on
``PJSIP/agent101``; ``E`` ends the spy when the agent's call ends, ``q`` spares the beep, and
``S`` ends it when there is nothing to spy on: a call that ended on Asterisk just before the
supervisor answered (the engine still had it on call) hangs the supervisor's phone up, rather
than leaving it in silence until the agent's next call, which ChanSpy would then join unasked.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, Protocol

from callcenter.errors import Conflict, NotFound
from callcenter.messages import N_
from callcenter.routing.model import AgentState
from callcenter.routing.store import RoutingStore

#: ChanSpy options per mode: listen only, talk to the agent only, talk to both.
_OPTIONS: Final = {"listen": "qES", "whisper": "qESw", "barge": "qESB"}
RING_SUPERVISOR_MS: Final = 20_000


class SpyMode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


class NoCallToSpy(Conflict):
    """The agent is not on a call (it has just ended, or never began)."""

    error_id = "no_call_to_spy"


class Originator(Protocol):
    async def originate(
        self,
        *,
        channel: str,
        application: str | None = None,
        data: str | None = None,
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        timeout_ms: int | None = None,
    ) -> str: ...


async def spy(
    ami: Originator, store: RoutingStore, *, agent_id: str, supervisor_endpoint: str, mode: SpyMode
) -> str:
    """Ring the supervisor's phone; on answer it joins the agent's call in ``mode``. Returns the
    Originate's ActionID."""
    record = await store.agent(agent_id)
    if record is None:
        raise NotFound(N_("There is no such agent."), agent=agent_id)
    if record.agent.state is not AgentState.ON_CALL or not record.endpoint:
        raise NoCallToSpy(N_("This agent is not on a call any more."), agent=agent_id)
    return await ami.originate(
        channel=supervisor_endpoint,
        application="ChanSpy",
        data=f"{record.endpoint}-,{_OPTIONS[mode]}",
        variables={"CC_SPY_AGENT": agent_id, "CC_SPY_MODE": str(mode)},
        caller_id=f'"1415 {mode}" <1415>',
        timeout_ms=RING_SUPERVISOR_MS,
    )
