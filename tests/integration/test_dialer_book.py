"""The dialer's call book on its own (no I/O): AMI events shaped like Asterisk 22's (Local
channels, ``ChanVariable`` headers from manager.conf's channelvars, the AMD UserEvent) and
the re-synchronisation after a dropped connection."""

from __future__ import annotations

from datetime import UTC, datetime

from callcenter.telephony import names
from callcenter.telephony.ami_message import AmiMessage
from callcenter.voice.dial_calls import Call, CallBook, Record, Release
from callcenter.voice.dial_store import CampaignInfo
from callcenter.voice.outcomes import Outcome

CAMPAIGN = CampaignInfo(id=7, inquiry_id=1, max_attempts=3, max_contacts=3, quiet=(None, None))
PHONE = "+218910000001"
DIAL = f"Local/{PHONE}@campaign-dial"


def msg(*pairs: tuple[str, str]) -> AmiMessage:
    return AmiMessage.from_pairs(pairs)


def new_call(book: CallBook, delivery_id: int = 42, *, started: float = 0.0, phone: str = PHONE) -> Call:
    call = Call(
        delivery_id=delivery_id,
        citizen_id=9,
        phone=phone,
        dial=f"Local/{phone}@campaign-dial",
        action_id=f"cc-d{delivery_id}-a1-abc",
        attempt=1,
        campaign=CAMPAIGN,
        started=started,
        dialled_at=datetime.now(UTC),
    )
    book.add(call)
    book.accepted(call)
    return call


def hangup(uid: str, *, delivery: int | None = 42, cause: str = "16", leg: str = ";1") -> AmiMessage:
    pairs = [
        ("Event", "Hangup"),
        ("Channel", f"{DIAL}-00000000{leg}"),
        ("Uniqueid", uid),
        ("Linkedid", "100.0"),
    ]
    if delivery is not None:
        pairs += [("ChanVariable", "CC_CAMPAIGN_ID=7"), ("ChanVariable", f"CC_DELIVERY_ID={delivery}")]
    return msg(*pairs, ("Cause", cause))


def response(reason: str, *, action: str = "cc-d42-a1-abc", uid: str = "100.0") -> AmiMessage:
    return msg(
        ("Event", "OriginateResponse"),
        ("ActionID", action),
        ("Response", "Success" if reason == "4" else "Failure"),
        ("Channel", f"{DIAL}-00000000;1"),
        ("Reason", reason),
        ("Uniqueid", uid if reason == "4" else "<unknown>"),
    )


def show(
    uid: str, *, context: str, state: str = "6", delivery: int | None = None, name: str = ""
) -> AmiMessage:
    pairs = [
        ("Event", "CoreShowChannel"),
        ("Channel", name or f"PJSIP/trunk-{uid}"),
        ("ChannelState", state),
        ("Context", context),
        ("Uniqueid", uid),
        ("Linkedid", uid.split("/")[0]),
    ]
    if delivery is not None:
        pairs.append(("ChanVariable", f"CC_DELIVERY_ID={delivery}"))
    return msg(*pairs)


def test_a_busy_local_call_whose_leg_hangs_up_before_the_response() -> None:
    book = CallBook()
    call = new_call(book)
    assert book.on_event(hangup("100.1", cause="17", leg=";2")) == []  # ;2 Busy(), then the response
    assert book.on_event(response("5")) == [Record(call, Outcome.BUSY, "Originate reason 5"), Release(call)]
    assert book.in_progress == 0 and call.ended
    assert book.on_event(hangup("100.0")) == []  # the ;1 leg afterwards: nothing more


def test_an_answered_call_holds_its_channel_until_its_hangup() -> None:
    book = CallBook()
    call = new_call(book)
    assert book.on_event(response("4")) == [Record(call, Outcome.ANSWERED)]
    assert book.in_progress == 1
    # a machine, said by the dialplan's UserEvent: recorded once
    amd = msg(
        ("Event", "UserEvent"), ("UserEvent", "CallCenterAMD"), ("Delivery", "42"), ("Status", "MACHINE")
    )
    assert book.on_event(amd) == [Record(call, Outcome.MACHINE, "AMD: machine")]
    assert book.on_event(amd) == []
    human = msg(
        ("Event", "UserEvent"), ("UserEvent", "CallCenterAMD"), ("Delivery", "42"), ("Status", "HUMAN")
    )
    assert book.on_event(human) == []
    # the Hangup is matched by the channelvars header even on a leg never seen before
    assert book.on_event(hangup("100.1", leg=";2")) == [Release(call)]
    assert book.in_progress == 0


def test_events_are_matched_by_varset_uniqueid_when_nothing_else_names_the_call() -> None:
    book = CallBook()
    call = new_call(book)
    varset = msg(("Event", "VarSet"), ("Uniqueid", "5.1"), ("Variable", names.VAR_DELIVERY), ("Value", "42"))
    book.on_event(varset)
    book.on_event(response("4", action="someone-else", uid="5.1"))  # matched by Uniqueid
    assert call.answered
    assert book.on_event(msg(("Event", "Hangup"), ("Uniqueid", "5.1"), ("Cause", "16"))) == [Release(call)]


def test_a_hangup_that_overtakes_the_answer_releases_on_the_answer() -> None:
    book = CallBook()
    call = new_call(book)
    assert book.on_event(hangup("100.0")) == []
    assert book.on_event(response("4")) == [Record(call, Outcome.ANSWERED), Release(call)]


def test_a_refused_originate_is_a_failed_try_and_not_a_contact() -> None:
    book = CallBook()
    call = new_call(book)
    effects = book.refused(call, "Invalid channel")
    assert effects == [
        Record(call, Outcome.FAILED, "Originate refused: Invalid channel", contact=False),
        Release(call),
    ]
    assert book.refused(call, "again") == []


def test_resync_after_a_drop_tracks_live_calls_and_settles_the_others() -> None:
    book = CallBook()
    ringing = new_call(book, 1, phone="+218910000001")
    answered_live = new_call(book, 2, phone="+218910000002")
    answered_gone = new_call(book, 3, phone="+218910000003")
    gone = new_call(book, 4, phone="+218910000004")
    young = new_call(book, 5, started=9.5, phone="+218910000005")
    for call in (answered_live, answered_gone):
        book.on_event(response("4", action=call.action_id, uid=f"{call.delivery_id}.0"))
    book.disconnected()
    assert all(call.lost for call in book.calls.values())
    listing = [
        # still ringing: known by its Local channel's name
        show(
            "1.0",
            context=names.CTX_CAMPAIGN_DIAL,
            state="5",
            name="Local/+218910000001@campaign-dial-0000000a;1",
        ),
        # answered before the drop, still talking (known Uniqueid)
        show("2.0", context=names.CTX_OUTBOUND),
    ]
    effects, settle = book.resync(listing, now=10.0, grace_s=2.0, ring_s=35.0)
    assert effects == [Release(answered_gone)]  # its Hangup was missed
    assert settle == [gone]  # channels gone, outcome unknown: the caller looks for evidence
    assert not ringing.lost and not answered_live.lost and young.lost  # young: next resync
    assert book.settle(gone, answered=False) == [
        Record(gone, Outcome.NO_ANSWER, "outcome missed: the AMI connection dropped"),
        Release(gone),
    ]
    # answered while we were away: the listing shows its leg up in [outbound-campaign]
    up = show("1.0", context=names.CTX_OUTBOUND, delivery=1)
    effects, settle = book.resync([up, listing[1]], now=20.0, grace_s=2.0, ring_s=35.0)
    assert effects == [Record(ringing, Outcome.ANSWERED)]
    assert ringing.answered and settle == [young]  # old enough by now, and not on a channel


def test_an_unconfirmed_originate_waits_out_the_ring_time_while_orphans_are_up() -> None:
    book = CallBook()
    call = new_call(book, 1)
    book.unconfirmed(call)  # the connection dropped before the response
    orphan = show("77.0", context=names.CTX_OUTBOUND, state="5")  # nobody's: maybe that call
    inbound = show("88.0", context=names.CTX_INBOUND)  # a citizen calling 1415: not ours
    effects, settle = book.resync([orphan, inbound], now=10.0, grace_s=2.0, ring_s=35.0)
    assert (effects, settle) == ([], [])
    assert book.orphans == {"77.0": {"77.0"}}
    assert book.in_progress == 2  # the orphan holds a channel too
    assert book.on_event(msg(("Event", "Hangup"), ("Uniqueid", "77.0"))) == [Release(None)]
    assert book.in_progress == 1
    effects, settle = book.resync([], now=10.5, grace_s=2.0, ring_s=35.0)
    assert settle == [call]
    assert book.settle(call, answered=True) == [Record(call, Outcome.ANSWERED), Release(call)]


def test_a_lost_call_is_settled_late_only_when_orphans_could_be_it() -> None:
    book = CallBook()
    call = new_call(book, 1)
    book.unconfirmed(call)
    orphan = show("77.0", context=names.CTX_CAMPAIGN_DIAL, state="5")
    assert book.resync([orphan], now=30.0, grace_s=2.0, ring_s=35.0) == ([], [])
    assert book.resync([orphan], now=40.0, grace_s=2.0, ring_s=35.0) == ([], [call])


def test_a_long_call_found_on_its_channel_is_not_checked_again_at_once() -> None:
    book = CallBook()
    call = new_call(book, 1)
    book.on_event(response("4", action=call.action_id, uid="1.0"))
    book.mark_overdue(130.0, ring_s=35.0, talk_s=120.0)
    assert book.needs_resync  # answered two minutes ago: is it still up?
    book.resync([show("1.0", context=names.CTX_OUTBOUND)], now=131.0, grace_s=2.0, ring_s=35.0)
    book.mark_overdue(200.0, ring_s=35.0, talk_s=120.0)
    assert not book.needs_resync  # confirmed at 131: next look after 251
    book.mark_overdue(252.0, ring_s=35.0, talk_s=120.0)
    assert book.needs_resync
