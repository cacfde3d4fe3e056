"""Inbound SMS through the inbox, on PostgreSQL and SQLite: store first, answer once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.inquiry.definition import InquiryStatus
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.sms.inbox import Inbox
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry

A, M, C, D, S = (
    models.Answer.__table__,
    models.Message.__table__,
    models.Citizen.__table__,
    models.Delivery.__table__,
    models.InquirySession.__table__,
)


def sms(phone: str, body: str, gid: str) -> InboundSms:
    return InboundSms(gateway="loopback", gateway_id=gid, sender=phone, body=body)


async def count(engine: AsyncEngine, table: object, *where: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
async def invited(engine: AsyncEngine) -> tuple[int, list[str]]:
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(engine, 3)
    await invite(engine, inquiry_id, phones)
    return inquiry_id, phones


async def test_a_reply_records_the_answer_and_asks_the_next_question(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    _, phones = invited
    reply = await inbox.receive(sms("0" + phones[0][4:], "٤", "g1"))  # national format, Arabic digit
    assert reply is not None and "السؤال الثاني" in reply
    async with engine.connect() as conn:
        value = (await conn.execute(select(A.c.value, A.c.channel, A.c.raw))).one()
    assert tuple(value) == ("4", "sms", "٤")


async def test_a_whole_inquiry_completes_with_thanks(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][1]
    await inbox.receive(sms(phone, "5", "a"))
    await inbox.receive(sms(phone, "نعم", "b"))
    reply = await inbox.receive(sms(phone, "۳", "c"))
    assert reply is not None and "شكراً" in reply
    assert await count(engine, A) == 3
    assert await count(engine, S, S.c.status == "completed") == 1
    late = await inbox.receive(sms(phone, "1", "d"))
    assert late is not None and "أكملت" in late
    assert await count(engine, A) == 3


async def test_a_duplicate_webhook_records_nothing_new(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][0]
    first = await inbox.handle(sms(phone, "3", "same-id"))
    second = await inbox.handle(sms(phone, "3", "same-id"))
    assert first.answer_recorded and second.event == "duplicate" and second.reply is None
    assert await count(engine, A) == 1
    assert await count(engine, M) == 1


async def test_a_gateway_retry_whose_answer_was_lost_gets_the_same_reply_and_records_nothing_new(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    """serve killed after the step, before its HTTP answer: the gateway sends the message
    again, and the citizen must still be asked the next question (once recorded)."""
    phone = invited[1][0]
    first = await inbox.receive(sms(phone, "3", "lost-answer"))
    again = await inbox.receive(sms(phone, "3", "lost-answer"))
    assert first is not None and "السؤال الثاني" in first
    assert again == first
    assert await count(engine, A) == 1 and await count(engine, M) == 1


async def test_a_gateway_retry_of_a_message_stored_but_never_processed_processes_it_once(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][1]
    message = sms(phone, "4", "killed-after-store")
    await inbox.store.save(message, phone)  # serve killed between the store and the step
    reply = await inbox.receive(message)  # the gateway's retry
    assert reply is not None and "السؤال الثاني" in reply
    assert await count(engine, A) == 1
    assert await inbox.reprocess_stuck(datetime.now(UTC) + timedelta(seconds=5)) == []


async def test_invalid_replies_are_reprompted_politely(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][0]
    for i, body in enumerate(["", "🙂🙂", "x" * 2000, "خمسة و 4"]):
        outcome = await inbox.handle(sms(phone, body, f"bad{i}"))
        assert outcome.answer_recorded is False
        assert outcome.reply
    assert await count(engine, A) == 0
    stored = await count(engine, M, M.c.status == "processed")
    assert stored == 4


async def test_stop_opts_out_everywhere_and_start_rejoins(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    inquiry_id, phones = invited
    async with engine.begin() as conn:  # a pending delivery of another campaign
        cid = (await conn.execute(select(C.c.id).where(C.c.phone == phones[2]))).scalar_one()
        k = models.Campaign.__table__
        other = (
            await conn.execute(k.insert().values(inquiry_id=inquiry_id, audience={}).returning(k.c.id))
        ).scalar_one()
        await conn.execute(D.insert().values(campaign_id=other, citizen_id=cid, status="pending"))
    reply = await inbox.receive(sms(phones[2], "إلغاء", "s1"))
    assert reply is not None and "ابدأ" in reply
    assert await count(engine, C, C.c.opted_out_at.is_not(None)) == 1
    assert await count(engine, D, D.c.status == "skipped") == 1
    assert await inbox.receive(sms(phones[2], "5", "s2")) is None  # silence while opted out
    back = await inbox.receive(sms(phones[2], "start", "s3"))
    assert back is not None and "مرحباً" in back
    assert await count(engine, C, C.c.opted_out_at.is_not(None)) == 0
    assert await count(engine, models.OptOut.__table__) == 2


async def test_unknown_senders_and_out_of_turn_replies_get_a_polite_answer(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    unknown = await inbox.handle(sms("+218925555555", "3", "u1"))
    assert unknown.event == "unknown_sender" and "غير مسجل" in (unknown.reply or "")
    not_a_number = await inbox.handle(sms("VODAFONE", "hello", "u2"))
    assert not_a_number.event == "unknown_sender"
    await make_citizens(engine, 1, start=500, language="en")
    stray = await inbox.handle(sms("+218910000500", "3", "u3"))
    assert stray.event == "no_inquiry" and "no open inquiry" in (stray.reply or "")
    stop = await inbox.handle(sms("+218926666666", "STOP", "u4"))  # remembered for later
    assert stop.event == "opted_out"
    assert await count(engine, C, C.c.phone == "+218926666666", C.c.opted_out_at.is_not(None)) == 1
    assert await count(engine, A) == 0


async def test_replies_to_a_closed_inquiry_are_told_it_is_closed(engine: AsyncEngine, inbox: Inbox) -> None:
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(engine, 1)
    await invite(engine, inquiry_id, phones)
    await inbox.receive(sms(phones[0], "2", "c1"))
    async with engine.begin() as conn:
        i = models.Inquiry.__table__
        await conn.execute(i.update().values(status=InquiryStatus.CLOSED.value))
    outcome = await inbox.handle(sms(phones[0], "نعم", "c2"))
    assert outcome.event == "closed" and not outcome.answer_recorded


async def test_a_message_stored_before_a_crash_is_processed_by_the_reconciler(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][0]
    message = sms(phone, "2", "crash-1")
    await inbox.store.save(message, phone)  # the process dies right after the store
    assert await count(engine, A) == 0
    later = datetime.now(UTC) + timedelta(seconds=5)
    done = await inbox.reprocess_stuck(later)
    assert [o.answer_recorded for _, _, o in done] == [True]
    assert await inbox.reprocess_stuck(later) == []
    again = await inbox.handle(message)  # the gateway retries the webhook too
    assert again.event == "duplicate"
    assert await count(engine, A) == 1


async def test_concurrent_replies_of_one_citizen_open_one_session(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][0]
    outcomes = await asyncio.gather(*(inbox.handle(sms(phone, "4", f"race{i}")) for i in range(5)))
    assert sum(o.answer_recorded for o in outcomes) == 1
    assert await count(engine, S) == 1
    assert await count(engine, A) == 1


async def test_delivery_reports_update_the_outbox(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    async with engine.connect() as conn:
        first = (await conn.execute(select(D.c.id).order_by(D.c.id))).scalars().first()
    await inbox.status(StatusReport(gateway="kannel", state="delivered", ref=f"d{first}"))
    await inbox.status(StatusReport(gateway="kannel", state="sent", ref=f"d{first}"))  # late, ignored
    async with engine.connect() as conn:
        status = (await conn.execute(select(D.c.status).where(D.c.id == first))).scalar_one()
    assert status == "delivered"


async def test_a_reply_that_overtakes_the_recorded_send_still_counts(
    engine: AsyncEngine, inbox: Inbox
) -> None:
    """The gateway delivered and the citizen answered before the worker marked the row sent."""
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(engine, 1)
    await invite(engine, inquiry_id, phones)
    async with engine.begin() as conn:
        await conn.execute(D.update().values(status="sending", sent_at=None))
    outcome = await inbox.handle(sms(phones[0], "3", "fast"))
    assert outcome.answer_recorded and outcome.event == "ask"


async def test_a_message_processed_twice_at_once_counts_once(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    """The reconciler and the spool's drainer may both pick up a message stored before a crash:
    only one processing records an answer and a reply."""
    phone = invited[1][0]
    message_id, _ = await inbox.store.save(sms(phone, "4", "both"), phone)
    assert message_id is not None
    outcomes = await asyncio.gather(*(inbox.process(message_id, phone, "4") for _ in range(4)))
    assert sorted(o.event for o in outcomes) == ["ask", "duplicate", "duplicate", "duplicate"]
    assert await count(engine, A) == 1
    again = await inbox.process(message_id, phone, "4")  # and later, once it is done
    assert again.event == "duplicate" and again.reply is None
    async with engine.connect() as conn:
        question = (await conn.execute(select(S.c.question_key))).scalar_one()
    assert question == "q2"


async def test_resume_finishes_a_message_stored_before_an_outage(
    engine: AsyncEngine, inbox: Inbox, invited: tuple[int, list[str]]
) -> None:
    phone = invited[1][1]
    message = sms(phone, "2", "cut-short")
    await inbox.store.save(message, phone)  # the database went away before the step
    assert (await inbox.handle(message)).event == "duplicate"
    resumed = await inbox.resume(message)
    assert resumed is not None and resumed.answer_recorded and resumed.reply
    assert await inbox.resume(message) is None  # processed now
    assert await inbox.resume(sms(phone, "2", "never-stored")) is None
