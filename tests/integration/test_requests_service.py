"""Service requests on the real databases: made with a reference, routed and timed; moved
through their life cycle by the roles that may; two officers saving at once never overwrite
each other; refusals counted and flagged; duplicates reach their reporters; reopening only
from the reporter's number and in time; status told only to the reporter; SLA recomputed
for every open request after a calendar change."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.errors import NotFound
from callcenter.requests.calendar import HolidayCorrection, WorkingCalendar
from callcenter.requests.lifecycle import CITIZEN, NotAllowed, ReopenTooLate, Status
from callcenter.requests.read import RequestView, find_by_reference, history, lookup_status, phones_to_notify
from callcenter.requests.recompute import recompute_sla
from callcenter.requests.reference import BadReference, Problem, parse
from callcenter.requests.service import (
    BadIntake,
    Intake,
    StaleRequest,
    add_note,
    assign,
    change_status,
    create_request,
    mark_duplicate,
    refuse,
    reopen,
    reroute,
    wait_on_citizen,
)
from callcenter.requests.store import load
from callcenter.settings import Settings
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

TRIPOLI = ZoneInfo("Africa/Tripoli")
SUNDAY = datetime(2026, 3, 15, 8, tzinfo=TRIPOLI)  # a working Sunday, 08:00
REPORTER = "+218912345678"
NEIGHBOUR = "+218923456789"
OFFICER = Actor("officer@benghazi.ly", None)
SUPERVISOR = Actor("supervisor@ministry.ly", None)
WEEK = WorkingCalendar()  # the Libyan week, no holidays: the dates below are easy to check


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="test", data_dir=tmp_path)


@pytest.fixture
async def seeded(engine: AsyncEngine) -> AsyncEngine:
    await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    return engine


async def make(
    engine: AsyncEngine, settings: Settings, *, phone: str = REPORTER, category: str = "waste_collection",
    municipality: str | None = "benghazi", now: datetime = SUNDAY, **fields: object,
) -> RequestView:  # fmt: skip
    async with AsyncSession(engine) as session, session.begin():
        return await create_request(
            session,
            Intake(category=category, channel="desk", municipality=municipality, phone=phone,
                   description="rubbish not collected for a week", **fields),  # type: ignore[arg-type]
            actor="agent@1415.local", calendar=WEEK, settings=settings, now=now,
        )  # fmt: skip


async def move(
    engine: AsyncEngine, settings: Settings, made: RequestView, to: Status, *, role: str = "officer",
    note: str = "", version: int | None = -1, now: datetime = SUNDAY + timedelta(hours=1),
    actor: Actor = OFFICER,
) -> RequestView:  # fmt: skip
    async with AsyncSession(engine) as session, session.begin():
        return await change_status(
            session, made.id, to, expected_version=made.version if version == -1 else version, actor=actor,
            role=role, note=note, calendar=WEEK, settings=settings, now=now,
        )  # fmt: skip


async def test_a_request_gets_its_reference_body_clock_and_first_event(
    seeded: AsyncEngine, settings: Settings
) -> None:
    made = await make(seeded, settings, details={"neighbourhood": "الصابري"})

    assert parse(made.reference).display == made.reference and made.reference.startswith("1415-")
    assert made.status is Status.SENT and made.version == 1 and made.channel == "desk"
    async with seeded.connect() as conn:
        body = (
            await conn.execute(select(models.table(models.ResponsibleBody).c.key).where(
                models.table(models.ResponsibleBody).c.id == made.body_id))
        ).scalar()  # fmt: skip
        events = await history(conn, made.id)
        audit = (await conn.execute(select(models.table(models.AuditLog).c.action))).scalars().all()
        found = await find_by_reference(
            conn, made.reference.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        )
    assert body == "benghazi_public_services"  # the override for Benghazi
    # waste collection: first response 7 working hours, resolution 21 (three working days)
    assert made.first_response_due_at == SUNDAY.replace(hour=15)
    assert made.resolution_due_at == datetime(2026, 3, 17, 15, tzinfo=TRIPOLI)
    assert made.sla_state == "ok"
    assert [(e["kind"], e["from_status"], e["to_status"], e["public"]) for e in events] == [
        ("created", None, "sent", False)
    ]
    assert "requests.create" in audit
    assert found is not None and found.id == made.id


async def test_the_default_body_serves_a_municipality_without_an_override(
    seeded: AsyncEngine, settings: Settings
) -> None:
    made = await make(seeded, settings, municipality="misrata")
    other = await make(seeded, settings, municipality=None, category="electricity_outage")
    b = models.table(models.ResponsibleBody)
    async with seeded.connect() as conn:
        keys = dict((row.id, row.key) for row in await conn.execute(select(b.c.id, b.c.key)))
    assert keys[made.body_id] == "municipal_services"
    assert keys[other.body_id] == "gecol"
    assert made.reference != other.reference


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"category": "parking"}, "unknown service category"),
        ({"municipality": "atlantis"}, "unknown municipality"),
        ({"description": "x" * 10_000}, "at most 2000 characters"),
        ({"phone": "12"}, "not a"),
        ({"channel": "fax"}, "the channel is one of"),
    ],
)
async def test_bad_intake_is_refused_and_nothing_is_written(
    seeded: AsyncEngine, settings: Settings, fields: dict[str, str], says: str
) -> None:
    intake = {
        "category": "water_leak",
        "channel": "sms",
        "municipality": "benghazi",
        "phone": REPORTER,
    } | fields
    with pytest.raises(BadIntake, match=says):
        async with AsyncSession(seeded) as session, session.begin():
            await create_request(session, Intake(**intake), actor="t", calendar=WEEK, settings=settings)  # type: ignore[arg-type]
    async with seeded.connect() as conn:
        assert (await conn.execute(select(models.table(models.ServiceRequest).c.id))).first() is None


async def test_an_officer_works_a_request_to_resolution_with_public_and_internal_notes(
    seeded: AsyncEngine, settings: Settings
) -> None:
    made = await make(seeded, settings)
    acked = await move(seeded, settings, made, Status.ACKNOWLEDGED, note="we will send a truck")
    async with AsyncSession(seeded) as session, session.begin():
        noted = await add_note(
            session, made.id, note="truck 4 assigned", public=False, expected_version=acked.version,
            actor=OFFICER, role="officer", now=SUNDAY + timedelta(hours=1, minutes=30),
        )  # fmt: skip
    scheduled = await move(
        seeded,
        settings,
        noted,
        Status.ACTION_SCHEDULED,
        note="tomorrow morning",
        now=SUNDAY + timedelta(hours=2),
    )
    done = await move(seeded, settings, scheduled, Status.RESOLVED, note="collected",
                      now=SUNDAY + timedelta(hours=30))  # fmt: skip

    assert acked.version == 2 and done.version == 5
    assert done.status is Status.RESOLVED and done.resolved_at == SUNDAY + timedelta(hours=30)
    assert done.sla_state == "ok"
    async with seeded.connect() as conn:
        events = await history(conn, made.id)
        public = await history(conn, made.id, public_only=True)
        seen = await lookup_status(conn, made.reference, REPORTER)
    assert [e["kind"] for e in events] == ["created", "status", "note", "status", "status"]
    assert [e["note"] for e in public] == ["we will send a truck", "tomorrow morning", "collected"]
    assert seen is not None and seen.for_reporter and seen.last_public_note == "collected"


async def test_two_officers_saving_at_once_the_second_is_told(
    seeded: AsyncEngine, settings: Settings
) -> None:
    made = await make(seeded, settings)
    first = await move(seeded, settings, made, Status.ACKNOWLEDGED, note="mine")
    with pytest.raises(StaleRequest) as stale:
        await move(seeded, settings, made, Status.IN_PROGRESS, note="also mine")  # made.version is 1
    assert stale.value.status_code == 409 and stale.value.details == {"version": first.version}
    async with seeded.connect() as conn:
        events = await history(conn, made.id)
    assert [e["note"] for e in events] == ["", "mine"]  # nothing of the second was written


async def test_concurrent_saves_on_postgresql_one_wins_one_is_stale(pg: AsyncEngine, tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path)
    await add_municipalities(pg)
    await load(pg, SAMPLE.read_text(encoding="utf-8"), actor="test")
    made = await make(pg, settings)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> RequestView:
        async with AsyncSession(pg) as session, session.begin():
            view = await change_status(
                session, made.id, Status.ACKNOWLEDGED, expected_version=1, actor=OFFICER, role="officer",
                calendar=WEEK, settings=settings, now=SUNDAY,
            )  # fmt: skip
            holding.set()
            await release.wait()  # the row stays locked, uncommitted
            return view

    async def second() -> RequestView:
        await holding.wait()
        async with AsyncSession(pg) as session, session.begin():
            return await change_status(
                session, made.id, Status.IN_PROGRESS, expected_version=1, actor=Actor("other@benghazi.ly"),
                role="officer", calendar=WEEK, settings=settings, now=SUNDAY,
            )  # fmt: skip

    winner = asyncio.create_task(first())
    loser = asyncio.create_task(second())
    await holding.wait()
    await asyncio.sleep(0.2)  # the second waits on the first's row lock
    release.set()
    assert (await winner).status is Status.ACKNOWLEDGED
    with pytest.raises(StaleRequest):
        await loser


async def test_roles_and_moves_are_checked(seeded: AsyncEngine, settings: Settings) -> None:
    made = await make(seeded, settings)
    with pytest.raises(NotAllowed):
        await move(seeded, settings, made, Status.ACKNOWLEDGED, role="agent")
    with pytest.raises(NotAllowed):
        await move(seeded, settings, made, Status.CLOSED, role="officer")
    with pytest.raises(NotFound):
        async with AsyncSession(seeded) as session, session.begin():
            await change_status(session, 999_999, Status.ACKNOWLEDGED, expected_version=None, actor=OFFICER,
                                role="officer", calendar=WEEK, settings=settings)  # fmt: skip


async def test_a_request_bounced_more_than_twice_is_flagged_to_the_ministry(
    seeded: AsyncEngine, settings: Settings
) -> None:
    current = await make(seeded, settings, category="water_leak")
    bodies = ["municipal_services", "gecol", "gcww"]
    for n, body in enumerate(bodies, 1):
        async with AsyncSession(seeded) as session, session.begin():
            current = await refuse(
                session, current.id, expected_version=current.version, actor=OFFICER, role="officer",
                note=f"not ours ({n})", calendar=WEEK, settings=settings,
            )  # fmt: skip
        assert current.status is Status.NOT_RESPONSIBLE and current.referrals == n
        assert current.flagged is (n > 2)
        with pytest.raises(NotAllowed):  # only the ministry re-routes
            async with AsyncSession(seeded) as session, session.begin():
                await reroute(session, current.id, body=body, expected_version=current.version, actor=OFFICER,
                              role="officer", calendar=WEEK, settings=settings)  # fmt: skip
        async with AsyncSession(seeded) as session, session.begin():
            current = await reroute(
                session, current.id, body=body, expected_version=current.version, actor=SUPERVISOR,
                role="supervisor", note="try them", calendar=WEEK, settings=settings,
            )  # fmt: skip
        assert current.status is Status.SENT
    assert current.flagged and current.referrals == 3
    async with seeded.connect() as conn:
        events = await history(conn, current.id)
        public = await history(conn, current.id, public_only=True)
    assert [e["to_status"] for e in events[1:]] == ["not_responsible", "sent"] * 3
    assert public == []  # the citizen is not told of the ministry's internal referrals
    with pytest.raises(BadIntake, match="unknown responsible body"):
        async with AsyncSession(seeded) as session, session.begin():
            await reroute(session, current.id, body="nasa", expected_version=None, actor=SUPERVISOR,
                          role="supervisor", calendar=WEEK, settings=settings)  # fmt: skip


async def test_a_duplicates_reporter_hears_of_the_originals_updates(
    seeded: AsyncEngine, settings: Settings
) -> None:
    original = await make(seeded, settings, phone=REPORTER)
    duplicate = await make(seeded, settings, phone=NEIGHBOUR)
    third = await make(seeded, settings, phone="+218934567890")
    async with AsyncSession(seeded) as session, session.begin():
        marked = await mark_duplicate(
            session, duplicate.id, original=original.reference, expected_version=duplicate.version,
            actor=OFFICER, role="officer", calendar=WEEK, settings=settings,
        )  # fmt: skip
    assert marked.status is Status.DUPLICATE and marked.duplicate_of == original.id
    async with AsyncSession(seeded) as session, session.begin():
        # marking a duplicate of the duplicate links to the original itself
        chained = await mark_duplicate(
            session, third.id, original=duplicate.reference, expected_version=None, actor=OFFICER,
            role="officer", calendar=WEEK, settings=settings,
        )  # fmt: skip
    assert chained.duplicate_of == original.id
    async with seeded.connect() as conn:
        assert await phones_to_notify(conn, original.id) == [REPORTER, NEIGHBOUR, "+218934567890"]
    with pytest.raises(BadIntake, match="itself"):
        async with AsyncSession(seeded) as session, session.begin():
            await mark_duplicate(session, original.id, original=original.reference, expected_version=None,
                                 actor=OFFICER, role="officer", calendar=WEEK, settings=settings)  # fmt: skip
    with pytest.raises(BadReference):
        async with AsyncSession(seeded) as session, session.begin():
            await mark_duplicate(session, original.id, original="1415-0000-0001", expected_version=None,
                                 actor=OFFICER, role="officer", calendar=WEEK, settings=settings)  # fmt: skip
    with pytest.raises(NotFound, match="no request has that reference"):
        async with AsyncSession(seeded) as session, session.begin():
            await mark_duplicate(session, original.id, original="1415-0000-0000", expected_version=None,
                                 actor=OFFICER, role="officer", calendar=WEEK, settings=settings)  # fmt: skip


async def test_the_citizen_reopens_from_their_number_within_the_window(
    seeded: AsyncEngine, settings: Settings
) -> None:
    made = await make(seeded, settings)
    done = await move(seeded, settings, made, Status.RESOLVED, note="fixed")
    later = SUNDAY + timedelta(days=3)

    with pytest.raises(NotAllowed, match="reporter"):
        async with AsyncSession(seeded) as session, session.begin():
            await reopen(session, made.id, note="not fixed", actor="sms", role=CITIZEN, phone=NEIGHBOUR,
                         calendar=WEEK, settings=settings, now=later)  # fmt: skip
    async with AsyncSession(seeded) as session, session.begin():
        again = await reopen(session, made.id, note="still there", actor="sms", role=CITIZEN, phone=REPORTER,
                             calendar=WEEK, settings=settings, now=later)  # fmt: skip
    assert again.status is Status.REOPENED and again.resolved_at is None and again.version == done.version + 1
    fixed = await move(seeded, settings, again, Status.RESOLVED, note="now fixed", now=later)
    with pytest.raises(ReopenTooLate):
        async with AsyncSession(seeded) as session, session.begin():
            await reopen(session, made.id, note="broken again", actor="sms", role=CITIZEN, phone=REPORTER,
                         calendar=WEEK, settings=settings, now=later + timedelta(days=15))  # fmt: skip
    assert fixed.status is Status.RESOLVED


async def test_assigning_to_a_colleague_and_not_to_an_agent(seeded: AsyncEngine, settings: Settings) -> None:
    u = models.table(models.User)
    async with seeded.begin() as conn:
        ids = {}
        for email, role in (("o2@benghazi.ly", "officer"), ("agent@1415.local", "agent")):
            made = await conn.execute(
                insert(u).values(email=email, role=role, created_at=models.utcnow()).returning(u.c.id)
            )
            ids[role] = made.scalar_one()
    made = await make(seeded, settings)
    async with AsyncSession(seeded) as session, session.begin():
        given = await assign(session, made.id, user_id=ids["officer"], expected_version=1, actor=OFFICER,
                             role="officer")  # fmt: skip
    assert given.assigned_to == ids["officer"] and given.version == 2
    with pytest.raises(BadIntake):
        async with AsyncSession(seeded) as session, session.begin():
            await assign(
                session, made.id, user_id=ids["agent"], expected_version=2, actor=OFFICER, role="officer"
            )
    with pytest.raises(NotAllowed):
        async with AsyncSession(seeded) as session, session.begin():
            await assign(session, made.id, user_id=None, expected_version=2, actor=OFFICER, role="analyst")


async def test_waiting_on_the_citizen_moves_the_due_dates(seeded: AsyncEngine, settings: Settings) -> None:
    made = await make(seeded, settings)
    async with AsyncSession(seeded) as session, session.begin():
        waiting = await wait_on_citizen(
            session, made.id, waiting=True, expected_version=1, actor=OFFICER, role="officer",
            note="which street exactly?", calendar=WEEK, settings=settings, now=SUNDAY + timedelta(hours=1),
        )  # fmt: skip
    async with AsyncSession(seeded) as session, session.begin():
        resumed = await wait_on_citizen(
            session, made.id, waiting=False, expected_version=waiting.version, actor="sms", role=CITIZEN,
            calendar=WEEK, settings=settings, now=SUNDAY + timedelta(days=1, hours=1),  # Monday 09:00
        )  # fmt: skip
    assert waiting.paused_since == SUNDAY + timedelta(hours=1)
    assert resumed.paused_since is None
    # paused 7 working hours (Sunday 09:00 to Monday 09:00): every due date is 7 working hours later
    assert resumed.resolution_due_at == datetime(2026, 3, 18, 15, tzinfo=TRIPOLI)
    assert resumed.first_response_due_at == datetime(2026, 3, 16, 15, tzinfo=TRIPOLI)
    with pytest.raises(Exception, match="not waiting"):
        async with AsyncSession(seeded) as session, session.begin():
            await wait_on_citizen(session, made.id, waiting=False, expected_version=None, actor=OFFICER,
                                  role="officer", calendar=WEEK, settings=settings)  # fmt: skip


async def test_the_status_is_told_only_to_the_reporters_number(
    seeded: AsyncEngine, settings: Settings
) -> None:
    made = await make(seeded, settings)
    async with seeded.connect() as conn:
        mine = await lookup_status(conn, made.reference, REPORTER)
        theirs = await lookup_status(conn, made.reference, NEIGHBOUR)
        unknown = await lookup_status(conn, "1415-8806-3867" if made.id != 1 else "1415-6197-7431", REPORTER)
        with pytest.raises(BadReference) as wrong:
            digits = parse(made.reference).digits
            await lookup_status(conn, digits[:-1] + str((int(digits[-1]) + 1) % 10), REPORTER)
    assert mine is not None and mine.for_reporter and mine.request is not None
    assert theirs is not None and not theirs.for_reporter and theirs.request is None
    assert theirs.reporter_phone == REPORTER  # the channel sends the status there instead
    assert unknown is None
    assert wrong.value.problem is Problem.BAD_CHECK_DIGIT


async def test_recomputing_after_a_holiday_correction_moves_every_open_due_date(
    seeded: AsyncEngine, settings: Settings
) -> None:
    open_one = await make(seeded, settings)
    other = await make(seeded, settings, category="water_leak")
    await move(seeded, settings, await make(seeded, settings), Status.RESOLVED, note="done")  # not recomputed
    # the ministry declares Monday 16 March a holiday
    corrected = WorkingCalendar(corrections=[HolidayCorrection(date(2026, 3, 16), "add")])
    done = await recompute_sla(seeded, corrected, now=SUNDAY + timedelta(hours=2))
    assert (done.open, done.changed) == (2, 2)
    async with seeded.connect() as conn:
        r = models.table(models.ServiceRequest)
        rows = {
            row.id: row for row in await conn.execute(select(r.c.id, r.c.resolution_due_at, r.c.sla_state))
        }
    due = rows[open_one.id].resolution_due_at
    assert due.replace(tzinfo=due.tzinfo or UTC) == datetime(2026, 3, 18, 15, tzinfo=TRIPOLI)
    # hours later the water leak's first response (4 working hours) is overdue
    late = await recompute_sla(seeded, corrected, now=SUNDAY + timedelta(hours=5))
    assert late.newly_breached == [other.id] and late.changed >= 1
    again = await recompute_sla(seeded, corrected, now=SUNDAY + timedelta(hours=5))
    assert again.changed == 0 and again.newly_breached == []


async def test_the_history_is_append_only_on_postgresql(pg: AsyncEngine, tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path)
    await add_municipalities(pg)
    await load(pg, SAMPLE.read_text(encoding="utf-8"), actor="test")
    await make(pg, settings)
    with pytest.raises(DBAPIError, match="append-only"):
        async with pg.begin() as conn:
            await conn.execute(text("UPDATE request_event SET note = 'rewritten'"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with pg.begin() as conn:
            await conn.execute(text("DELETE FROM request_event"))


async def test_the_workers_hourly_job_escalates_requests_that_became_overdue(
    seeded: AsyncEngine, settings: Settings
) -> None:
    """The worker's cron (``recompute_requests``) runs the recompute on the real clock: a
    request made weeks ago in working time is overdue now and counted as escalated once."""
    from types import SimpleNamespace

    from callcenter.jobs import recompute_requests

    made = await make(seeded, settings, now=SUNDAY)  # March 2026: long overdue by today
    rt = SimpleNamespace(engine=seeded, settings=settings)
    assert await recompute_requests({"rt": rt}) == 1
    assert await recompute_requests({"rt": rt}) == 0  # escalated once, not every hour
    async with seeded.connect() as conn:
        r = models.table(models.ServiceRequest)
        state = (await conn.execute(select(r.c.sla_state).where(r.c.id == made.id))).scalar_one()
    assert state == "breached"
