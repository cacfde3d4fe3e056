"""The dialer's book of calls in progress: which Originate became which channels, what each
AMI event means for its delivery, and how to re-synchronise after the AMI connection dropped.

Synchronous and free of I/O: the AMI callbacks feed it events in wire order and it answers
with effects (:class:`Record` an outcome, :class:`Release` a channel) that the dialer writes.

A call is *in progress* from its Originate until its Hangup (answered) or its failed
``OriginateResponse``. Events are matched to a call by ActionID, by the ``CC_DELIVERY_ID``
variable (``VarSet`` events, or the ``ChanVariable`` headers manager.conf's ``channelvars``
adds to Hangup and friends), or by a Uniqueid learnt from either.

When the connection drops, every call is marked *lost*: its events may never come. After the
re-login, :meth:`CallBook.resync` compares the book with ``CoreShowChannels``: a lost call
still on a channel is tracked again; one whose channels are gone ended unseen and is settled
(answered if the IVR left evidence, else as a retry). Live campaign channels that belong to
no known call (an Originate whose response was lost) are kept as *orphans* and still count
against the channel limit until they hang up. A lost call is never dialled again before it
is settled, so nobody is rung twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from callcenter.telephony import names
from callcenter.telephony.ami_message import AmiMessage
from callcenter.voice.dial_store import CampaignInfo
from callcenter.voice.outcomes import Outcome, from_amd, from_reason

#: contexts whose channels are campaign calls (the answered leg, and the dialling leg)
CAMPAIGN_CONTEXTS = frozenset({names.CTX_OUTBOUND, names.CTX_CAMPAIGN_DIAL})
UP = "6"  # ChannelState of an answered channel
AMD_EVENT = "CallCenterAMD"


@dataclass(eq=False)
class Call:
    delivery_id: int
    citizen_id: int
    phone: str
    dial: str  # the Originate's Channel ("Local/+21891...@campaign-dial")
    action_id: str
    attempt: int  # this try's number: the delivery's attempts once it is dialled
    campaign: CampaignInfo
    started: float  # monotonic seconds, when the Originate was sent
    dialled_at: datetime
    accepted: bool | None = False  # None: the response was lost, the call may have gone out
    answered: bool = False
    machine: bool = False
    hung_up: bool = False  # a Hangup was seen before the OriginateResponse
    cause: str | None = None
    lost: bool = False  # its events may have been missed: resync decides
    ended: bool = False
    seen_live: float | None = None  # monotonic: when a resync last found it on a channel
    uniqueids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Record:
    """Write ``outcome`` for the call's delivery."""

    call: Call
    outcome: Outcome
    error: str | None = None
    contact: bool = True  # False: Asterisk refused the Originate, nobody was rung


@dataclass(frozen=True, slots=True)
class Release:
    """A channel is free again (``call`` None: an orphan channel hung up)."""

    call: Call | None


Effect = Record | Release


def delivery_var(msg: AmiMessage) -> int | None:
    """The ``CC_DELIVERY_ID`` an event carries (VarSet, or channelvars' ``ChanVariable``)."""
    if msg.event == "VarSet" and msg.get("Variable") == names.VAR_DELIVERY:
        return _int(msg.get("Value"))
    prefix = f"{names.VAR_DELIVERY}="
    for name, value in msg.headers:
        if name.lower().startswith("chanvariable") and value.startswith(prefix):
            return _int(value[len(prefix) :])
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _uid(msg: AmiMessage) -> str | None:
    value = msg.get("Uniqueid")
    return value if value and value != "<unknown>" else None


class CallBook:
    def __init__(self) -> None:
        self.calls: dict[int, Call] = {}  # by delivery id
        self._by_action: dict[str, Call] = {}
        self._by_uid: dict[str, Call] = {}
        self._by_phone: dict[str, Call] = {}
        #: live campaign calls nobody claims, by Linkedid -> their channels' Uniqueids
        self.orphans: dict[str, set[str]] = {}

    # -- the book -----------------------------------------------------------------------------

    @property
    def in_progress(self) -> int:
        return len(self.calls) + len(self.orphans)

    def busy(self, phone: str) -> bool:
        """The citizen is on one of our calls right now (another campaign, say)."""
        return phone in self._by_phone

    def add(self, call: Call) -> None:
        self.calls[call.delivery_id] = call
        self._by_action[call.action_id] = call
        self._by_phone[call.phone] = call

    def _forget(self, call: Call) -> None:
        call.ended = True
        self.calls.pop(call.delivery_id, None)
        self._by_action.pop(call.action_id, None)
        self._by_phone.pop(call.phone, None)
        for uid in call.uniqueids:
            self._by_uid.pop(uid, None)

    def _learn(self, call: Call, uid: str | None) -> None:
        if uid is not None and not call.ended:
            call.uniqueids.add(uid)
            self._by_uid[uid] = call

    def _match(self, msg: AmiMessage) -> Call | None:
        action_id = msg.action_id
        if action_id and (call := self._by_action.get(action_id)) is not None:
            return call
        uid = _uid(msg)
        if uid and (call := self._by_uid.get(uid)) is not None:
            return call
        delivery = delivery_var(msg)
        return self.calls.get(delivery) if delivery is not None else None

    # -- the dialer's side --------------------------------------------------------------------

    def accepted(self, call: Call) -> bool:
        """ "Originate successfully queued"; False when the call already ended meanwhile."""
        if call.ended:
            return False
        call.accepted = True
        return True

    def refused(self, call: Call, error: str) -> list[Effect]:
        """``Response: Error``: no call was placed; a failed try nobody heard."""
        if call.ended:
            return []
        self._forget(call)
        return [Record(call, Outcome.FAILED, f"Originate refused: {error}", contact=False), Release(call)]

    def unconfirmed(self, call: Call) -> None:
        """The connection went before the Originate's response: it may have gone out."""
        if not call.ended:
            call.accepted = None
            call.lost = True

    def disconnected(self) -> None:
        for call in self.calls.values():
            call.lost = True

    def mark_overdue(self, now: float, *, ring_s: float, talk_s: float) -> None:
        """Calls silent for too long are checked by the next resync: ringing past the
        Originate timeout (plus a margin), or answered long ago (a Hangup missed); a call a
        resync found on a channel waits as long again before the next check."""
        for call in self.calls.values():
            limit = talk_s if call.answered else ring_s
            if now - max(call.started, call.seen_live or 0.0) > limit:
                call.lost = True

    @property
    def needs_resync(self) -> bool:
        return bool(self.orphans) or any(call.lost for call in self.calls.values())

    # -- events -------------------------------------------------------------------------------

    def on_event(self, msg: AmiMessage) -> list[Effect]:
        name = msg.event or ""
        if name == "OriginateResponse":
            return self._originate_response(msg)
        if name == "Hangup":
            return self._hangup(msg)
        if name == "UserEvent":
            return self._user_event(msg)
        call = self._match(msg)
        if call is not None:
            self._learn(call, _uid(msg))
        return []

    def _originate_response(self, msg: AmiMessage) -> list[Effect]:
        call = self._match(msg)
        if call is None or call.ended:
            return []
        call.accepted, call.lost = True, False
        outcome = from_reason(msg.get("Reason"))
        if outcome is not Outcome.ANSWERED:
            self._forget(call)
            error = f"Originate reason {msg.get('Reason')}"
            return [Record(call, outcome, error), Release(call)]
        self._learn(call, _uid(msg))
        effects: list[Effect] = []
        if not call.answered and not call.machine:
            effects.append(Record(call, Outcome.ANSWERED))
        call.answered = True
        if call.hung_up:  # the Hangup overtook the response
            self._forget(call)
            effects.append(Release(call))
        return effects

    def _hangup(self, msg: AmiMessage) -> list[Effect]:
        uid = _uid(msg)
        for linkedid, uids in list(self.orphans.items()):
            if uid in uids:
                del self.orphans[linkedid]
                return [Release(None)]
        call = self._match(msg)
        if call is None or call.ended:
            return []
        call.cause = msg.get("Cause") or call.cause
        if call.answered:
            self._forget(call)
            return [Release(call)]
        call.hung_up = True  # not answered yet: the OriginateResponse says how it ended
        self._learn(call, uid)
        return []

    def _user_event(self, msg: AmiMessage) -> list[Effect]:
        if msg.get("UserEvent") != AMD_EVENT:
            return []
        delivery = _int(msg.get("Delivery"))
        call = self.calls.get(delivery) if delivery is not None else None
        if call is None or call.machine or from_amd(msg.get("Status")) is None:
            return []
        call.machine = True
        return [Record(call, Outcome.MACHINE, f"AMD: {msg.get('Cause') or 'machine'}")]

    # -- re-synchronisation -------------------------------------------------------------------

    def resync(
        self, channels: Iterable[AmiMessage], now: float, *, grace_s: float, ring_s: float
    ) -> tuple[list[Effect], list[Call]]:
        """Compare the book with a ``CoreShowChannels`` listing.

        Returns effects, and the lost calls whose channels are gone: the caller looks for
        evidence that they were answered and settles them (:meth:`settle`). Lost calls
        younger than ``grace_s`` wait for the next resync (their channel may not exist yet);
        while orphans are up (one may be such a call, ringing still), they wait ``ring_s``.
        """
        groups: dict[str, list[AmiMessage]] = {}
        for msg in channels:
            groups.setdefault(msg.get("Linkedid") or msg.get("Uniqueid") or "", []).append(msg)
        effects: list[Effect] = []
        seen: set[int] = set()
        orphans: dict[str, set[str]] = {}
        by_dial = {call.dial: call for call in self.calls.values()}
        for linkedid, legs in groups.items():
            call = next((c for leg in legs if (c := self._owner(leg, by_dial)) is not None), None)
            if call is None or call.ended:
                if any(self._campaign_leg(leg) for leg in legs):
                    orphans[linkedid] = {uid for leg in legs if (uid := _uid(leg))}
                continue
            seen.add(call.delivery_id)
            call.lost, call.seen_live = False, now
            for leg in legs:
                self._learn(call, _uid(leg))
            up = any(
                leg.get("ChannelState") == UP and leg.get("Context") == names.CTX_OUTBOUND for leg in legs
            )
            if up and not call.answered:  # answered while we were not listening
                call.answered, call.accepted = True, True
                if not call.machine:
                    effects.append(Record(call, Outcome.ANSWERED))
        self.orphans = orphans
        patience = max(grace_s, ring_s) if orphans else grace_s
        gone: list[Call] = []
        for call in list(self.calls.values()):
            if call.delivery_id in seen or not call.lost:
                continue
            if call.answered:  # it ended unseen; its outcome is written already
                self._forget(call)
                effects.append(Release(call))
            elif now - call.started >= patience:
                gone.append(call)
        return effects, gone

    def _owner(self, leg: AmiMessage, by_dial: dict[str, Call]) -> Call | None:
        uid = _uid(leg)
        if uid and (call := self._by_uid.get(uid)) is not None:
            return call
        delivery = delivery_var(leg)
        if delivery is not None and (call := self.calls.get(delivery)) is not None:
            return call
        name = leg.get("Channel") or ""
        base = name.rsplit("-", 1)[0] if name.startswith("Local/") else None
        return by_dial.get(base) if base else None

    def _campaign_leg(self, leg: AmiMessage) -> bool:
        return leg.get("Context") in CAMPAIGN_CONTEXTS or delivery_var(leg) is not None

    def settle(self, call: Call, *, answered: bool) -> list[Effect]:
        """A lost call whose channels are gone: answered (the IVR left evidence), or a try
        whose outcome nobody saw, retried like an unanswered call."""
        if call.ended:
            return []
        self._forget(call)
        if answered:
            return [Record(call, Outcome.ANSWERED), Release(call)]
        what = "Originate unconfirmed" if call.accepted is None else "outcome missed"
        return [Record(call, Outcome.NO_ANSWER, f"{what}: the AMI connection dropped"), Release(call)]
