"""Every name the engine and the dialplan share, in one place (a test checks both ways)."""

from __future__ import annotations

#: FastAGI scripts the engine serves: agi://host:port/<script>
AGI_MAIN = "main"  # inbound 1415: the voice menu
AGI_OUTBOUND = "outbound"  # an answered campaign call: the inquiry by keypad
AGI_AGENT_ANSWERED = "agent_answered"  # run on an agent's channel as it answers: agent on call
AGI_CALLBACK = "callback"  # a citizen called back answered: put through to the reserved agent
AGI_TRANSFER = "transfer"  # a caller an agent transferred: waits in the other queue
AGI_SCRIPTS = frozenset({AGI_MAIN, AGI_OUTBOUND, AGI_AGENT_ANSWERED, AGI_CALLBACK, AGI_TRANSFER})

#: dialplan contexts the engine names (in Originate, in transfers)
CTX_INBOUND = "inbound-1415"
CTX_OUTBOUND = "outbound-campaign"
CTX_AGENTS = "agents"
CTX_CAMPAIGN_DIAL = "campaign-dial"  # dials the trunk, turns 486/congestion into Originate reasons
#: Dial's U() gosub on the agent's channel when the agent answers: ARG1 the entry, ARG2 the agent
CTX_AGENT_ANSWERED = "agent-answered"
#: where an answered callback goes (Originate's context): the ``callback`` AGI
CTX_CALLBACK = "callback-connect"
#: where the desk's AMI Redirect sends a caller an agent transfers (the exten: the transfer's id)
CTX_AGENT_TRANSFER = "agent-transfer"
CONTEXTS = frozenset(
    {CTX_INBOUND, CTX_OUTBOUND, CTX_AGENTS, CTX_CAMPAIGN_DIAL, CTX_AGENT_ANSWERED, CTX_CALLBACK,
     CTX_AGENT_TRANSFER}
)  # fmt: skip

#: channel variables an outbound call carries (set by Originate, read over AGI)
VAR_CAMPAIGN = "CC_CAMPAIGN_ID"
VAR_DELIVERY = "CC_DELIVERY_ID"
VAR_CITIZEN = "CC_CITIZEN_PHONE"
#: a callback's call: the routing entry, the reserved agent and the callback row
VAR_ENTRY = "CC_ENTRY"
VAR_AGENT = "CC_AGENT"
VAR_CALLBACK = "CC_CALLBACK_ID"
