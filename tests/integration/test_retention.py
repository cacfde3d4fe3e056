"""Retention on the real databases: an inquiry closed past its retention keeps only the
pseudonym (same results, same export rows, the same pseudonyms), identifying message bodies
go; a dry run changes nothing; an inquiry's own retention wins over the setting; numbers
unused for long are erased unless a request is open or a callback live; audit rows carry
counts, never a number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models, retention
from callcenter.phones import pseudonym
from callcenter.settings import Settings
from callcenter.sms.inbox import Inbox
from tests.factories import make_citizens
from tests.privacy_data import FREE_TEXT, SLUG, answered_inquiry, close, figures, tables_holding

AUDIT = models.table(models.AuditLog)
C = models.table(models.Citizen)
A = models.table(models.Answer)
M = models.table(models.Message)


async def _audits(engine: AsyncEngine, prefix: str) -> list[object]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(AUDIT).where(AUDIT.c.action.startswith(prefix)))).all())


async def test_an_inquiry_closed_long_ago_keeps_only_the_pseudonym_and_every_figure(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await answered_inquiry(engine, inbox)
    await close(engine, days_ago=settings.answer_retention_days + 1)
    before = await figures(engine, settings.pseudonym_key)

    report = await retention.run(engine, redis, settings)

    [(inquiry, done)] = report.inquiries
    assert inquiry.slug == SLUG and done.citizens == 4 and done.answers == 5 and done.deliveries == 4
    assert done.redacted == 1  # the free text with a number; "1", "نعم" stay
    assert await figures(engine, settings.pseudonym_key) == before  # the same pseudonyms, row for row
    async with engine.connect() as conn:
        linked = (await conn.execute(select(C.c.phone).join(A, A.c.citizen_id == C.c.id))).scalars().all()
        bodies = set((await conn.execute(select(M.c.body).where(M.c.direction == "in"))).scalars())
        registered = set((await conn.execute(select(C.c.phone).where(C.c.phone.startswith("+")))).scalars())
    assert linked and all(p.startswith("p:") for p in linked)
    assert {pseudonym(p, "any key") for p in linked} == {pseudonym(p, settings.pseudonym_key) for p in phones}
    assert FREE_TEXT not in bodies and {"1", "2", "3", "4", "نعم"} <= bodies
    assert registered == set(phones)  # the citizens themselves stay reachable (they are active)
    for phone in phones:  # nothing of the inquiry leads to their numbers any more
        assert set(await tables_holding(engine, phone[1:])) == {"citizen"}
    [row] = await _audits(engine, "retention.")
    assert row.target == f"inquiry:{SLUG}" and row.details["answers"] == 5  # type: ignore[attr-defined]

    again = await retention.run(engine, redis, settings)
    assert again.inquiries == [] and len(await _audits(engine, "retention.")) == 1


async def test_a_dry_run_counts_and_changes_nothing(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    await answered_inquiry(engine, inbox)
    await close(engine, days_ago=400)
    async with engine.begin() as conn:  # and one citizen nobody has heard of for three years
        await conn.execute(
            insert(C).values(phone="+218919999999", created_at=datetime.now(UTC) - timedelta(days=1100))
        )
    before = await figures(engine, settings.pseudonym_key)

    dry = await retention.run(engine, redis, settings, dry_run=True)

    assert dry.dry_run and dry.inquiries[0][1].citizens == 4 and dry.inactive.citizens == 1
    assert await figures(engine, settings.pseudonym_key) == before
    assert await tables_holding(engine, "218919999999") == {"citizen": 1}
    assert await _audits(engine, "retention.") == []
    real = await retention.run(engine, redis, settings)
    assert real.inquiries[0][1] == dry.inquiries[0][1] and real.inactive.citizens == 1


async def test_an_inquiry_s_own_retention_wins_over_the_setting(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    await answered_inquiry(engine, inbox)
    await close(engine, days_ago=40)  # the setting (365 days) is not reached
    assert (await retention.run(engine, redis, settings, dry_run=True)).inquiries == []
    async with AsyncSession(engine) as session, session.begin():
        await retention.set_retention(session, SLUG, 30, actor="cli")
    assert len((await retention.run(engine, redis, settings, dry_run=True)).inquiries) == 1
    async with AsyncSession(engine) as session, session.begin():
        await retention.set_retention(session, SLUG, 0, actor="cli")  # kept for ever
    await close(engine, days_ago=5000)
    assert (await retention.run(engine, redis, settings, dry_run=True)).inquiries == []
    changes = await _audits(engine, "inquiry.retention")
    assert [r.after for r in changes] == [{"retention_days": 30}, {"retention_days": 0}]  # type: ignore[attr-defined]


async def test_numbers_unused_for_long_are_erased_unless_a_request_is_open_or_a_callback_live(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings
) -> None:
    idle, with_callback, recent = await make_citizens(engine, 3)
    long_ago = datetime.now(UTC) - timedelta(days=settings.citizen_inactive_days + 10)
    async with engine.begin() as conn:
        await conn.execute(update(C).values(created_at=long_ago))
        await conn.execute(
            insert(models.table(models.Callback)).values(
                entry="cb1", queue="services", phone=with_callback, status="pending",
                expires_at=datetime.now(UTC) + timedelta(hours=2), updated_at=long_ago,
            )
        )  # fmt: skip
        await conn.execute(
            insert(M).values(direction="in", gateway="loopback", gateway_id="m1", phone=recent, body="hi")
        )

    report = await retention.run(engine, redis, settings)

    assert report.inactive.citizens == 1
    async with engine.connect() as conn:
        left = set((await conn.execute(select(C.c.phone))).scalars())
    assert {with_callback, recent} <= left and idle not in left
    assert any(p.startswith("erased:") for p in left)
    [row] = await _audits(engine, "retention.erase_inactive")
    assert row.details["citizens"] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["call me on 0923456789", "my name is Ali Ben Omar"])
def test_free_text_and_numbers_count_as_identifying(text: str) -> None:
    assert retention.identifying(text)


@pytest.mark.parametrize("text", ["1", "نعم", " yes ", "٣", None, ""])
def test_short_answers_do_not(text: str | None) -> None:
    assert not retention.identifying(text)


async def test_audit_rows_of_retention_and_erasure_carry_no_number(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await answered_inquiry(engine, inbox)
    await close(engine, days_ago=4000)
    await retention.run(engine, redis, settings, now=datetime.now(UTC) + timedelta(days=3000))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(AUDIT).where(AUDIT.c.actor == "retention"))).all()
        n = (
            await conn.execute(select(func.count()).select_from(C).where(C.c.phone.startswith("erased:")))
        ).scalar()
    assert {r.action for r in rows} == {"retention.pseudonymise", "retention.erase_inactive"}
    assert n == 4  # three years on, nobody was active any more
    for phone in phones:
        assert not any(phone[4:] in repr(tuple(r)) for r in rows)


async def test_the_worker_runs_it_daily(engine: AsyncEngine, inbox: Inbox, settings: Settings) -> None:
    from arq.cron import CronJob

    from callcenter.jobs import Runtime, apply_retention, make_worker

    worker = make_worker(settings, burst=True)
    [job] = [c for c in worker.cron_jobs if c.name == "cron:apply_retention"]
    assert isinstance(job, CronJob) and job.hour == {2} and job.minute == {43}
    await worker.close()
    await answered_inquiry(engine, inbox)
    await close(engine, days_ago=1000)
    rt = await Runtime.start(settings)
    try:
        assert await apply_retention({"rt": rt}) == {"inquiries": 1, "erased": 0}
    finally:
        await rt.close()
        await rt.redis.aclose()
