"""Every name the engine and the dialplan share, in one place (a test checks both ways)."""

from __future__ import annotations

#: FastAGI scripts the engine serves: agi://host:port/<script>
AGI_MAIN = "main"  # inbound 1415: the voice menu
AGI_OUTBOUND = "outbound"  # an answered campaign call: the inquiry by keypad
AGI_SCRIPTS = frozenset({AGI_MAIN, AGI_OUTBOUND})

#: dialplan contexts the engine names (in Originate, in transfers)
CTX_INBOUND = "inbound-1415"
CTX_OUTBOUND = "outbound-campaign"
CTX_AGENTS = "agents"
CTX_CAMPAIGN_DIAL = "campaign-dial"  # dials the trunk, turns 486/congestion into Originate reasons
CONTEXTS = frozenset({CTX_INBOUND, CTX_OUTBOUND, CTX_AGENTS, CTX_CAMPAIGN_DIAL})

#: channel variables an outbound call carries (set by Originate, read over AGI)
VAR_CAMPAIGN = "CC_CAMPAIGN_ID"
VAR_DELIVERY = "CC_DELIVERY_ID"
VAR_CITIZEN = "CC_CITIZEN_PHONE"
