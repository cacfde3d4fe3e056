"""Service requests on the voice line, end to end: the engine's FastAGI server, simulated
callers (keys, speech and silence into RECORD FILE, hang-ups), the real databases and the
loopback SMS gateway. Option 2 makes a request with a spoken description; option 3 tells
the status only to the reporter's number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.requests.read import RequestView
from callcenter.requests.reference import parse
from callcenter.requests.service import Intake, create_request
from callcenter.requests.store import load, load_calendar
from callcenter.settings import Settings
from callcenter.sim import Caller, Press, Silence, SimConfig, Simulator, engine_dialplan
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sms.gateways.base import OutboundSms
from callcenter.sms.gateways.loopback import read_outbox
from callcenter.voice.ivr import make_agi_server
from tests.factories import make_citizens
from tests.integration.test_ivr import played
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities

pytestmark = pytest.mark.timeout(60)

PHONE = "+218912345678"  # the simulated caller's 0912345678
OTHER = "+218923456789"
R = models.table(models.ServiceRequest)
SPEAK = Press("#", after_ms=5000)  # five seconds of speech, then #


@dataclass
class Lab:
    sim: Simulator
    engine: AsyncEngine
    settings: Settings
    redis: Redis
    municipalities: dict[str, int]

    async def call(self, *steps: Press | Silence | str | None) -> SimAgiChannel:
        made = tuple(Silence() if s is None else Press(s) if isinstance(s, str) else s for s in steps)
        return await self.sim.call(Caller(made))

    async def requests(self) -> list[RequestView]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(R).order_by(R.c.id))).mappings().all()
        return [RequestView.of(row) for row in rows]

    async def recording(self) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(R.c.recording_path))).scalar_one()

    async def texted(self) -> list[OutboundSms]:
        items, _ = await read_outbox(self.redis)
        return [sms for _, sms, _ in items]


@pytest.fixture
async def lab(engine: AsyncEngine, settings: Settings, redis: Redis) -> AsyncIterator[Lab]:
    municipalities = await add_municipalities(engine)
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    server = make_agi_server(settings, engine, host="127.0.0.1", port=0, redis=redis)
    async with server:
        config = SimConfig(agi_port=server.port, time_scale=0, dialplan=engine_dialplan())
        async with Simulator(config) as sim:
            yield Lab(sim, engine, settings, redis, municipalities)
    async with engine.begin() as conn:  # conftest's TABLES does not know these yet
        await conn.execute(delete(models.table(models.Ticket)))
        await conn.execute(delete(models.table(models.Call)))


async def make(lab: Lab, phone: str) -> RequestView:
    async with AsyncSession(lab.engine) as session, session.begin():
        intake = Intake(category="waste_collection", channel="desk", municipality="benghazi", phone=phone)
        calendar = await load_calendar(lab.engine, lab.settings)
        return await create_request(
            session, intake, actor="agent@1415.local", calendar=calendar, settings=lab.settings
        )


def spoken(reference: str) -> list[str]:
    """The prompts that read a reference out: 1415, then its groups, a pause after each."""
    ids: list[str] = []
    for group in ["1415", *parse(reference).groups]:
        ids += [f"num-{d}" for d in group] + ["ref-pause"]
    return ids


def commands(session: SimAgiChannel, prefix: str) -> list[str]:
    return [line for line in session.commands if line.startswith(prefix)]


# -- option 2: the caller makes the request -----------------------------------------------------


async def test_option_2_records_category_municipality_and_description(lab: Lab) -> None:
    session = await lab.call("2", "1", f"{lab.municipalities['misrata']}#", SPEAK)
    [made] = await lab.requests()
    assert (made.channel, made.phone, made.status) == ("ivr", PHONE, "sent")
    [record] = commands(session, "RECORD FILE")
    assert record.endswith(' wav "#" 60000 s=4')  # no BEEP: the tone is our own prompt
    assert "record-request record-tone" in played(session)
    recording = await lab.recording()
    assert recording is not None and recording.startswith("requests/req-")
    assert (lab.settings.recordings_path / recording).is_file()
    assert played(session)[-3:] == [
        " ".join(["request-recorded", *spoken(made.reference)]), "svc-sms-sent", "goodbye",
    ]  # fmt: skip
    [sms] = await lab.texted()
    assert sms.to == PHONE and made.reference in sms.body and "إنارة" in sms.body
    assert made.resolution_due_at is not None
    assert made.resolution_due_at.astimezone().strftime("%Y") in sms.body  # the expected date
    C, M = models.table(models.ServiceCategory), models.table(models.Municipality)
    async with lab.engine.connect() as conn:
        category = (await conn.execute(select(C.c.key).where(C.c.id == made.category_id))).scalar()
        code = (await conn.execute(select(M.c.code).where(M.c.id == made.municipality_id))).scalar()
    assert (category, code) == ("street_lighting", "misrata")
    CALL = models.table(models.Call)
    async with lab.engine.connect() as conn:
        outcome = (await conn.execute(select(CALL.c.outcome))).scalar()
    assert outcome == "callback"  # a request stored


async def test_the_registers_municipality_is_not_asked(lab: Lab) -> None:
    await make_citizens(lab.engine, 1, start=2345678, municipality="benghazi")  # +218912345678
    session = await lab.call("2", "3", SPEAK)
    [made] = await lab.requests()
    assert made.municipality_id == lab.municipalities["benghazi"] and made.citizen_id is not None
    assert not any("svc-enter-municipality" in line for line in session.commands)


async def test_an_unknown_municipality_number_is_asked_again_then_left_to_the_ministry(lab: Lab) -> None:
    session = await lab.call("2", "6", "999#", "998#", SPEAK)
    [made] = await lab.requests()
    assert made.municipality_id is None  # GECOL by default: routed without one
    assert played(session)[:2] == ["svc-municipality-unknown", "svc-municipality-unknown"]


async def test_a_silent_recording_is_asked_again_then_saved_without_one(lab: Lab) -> None:
    session = await lab.call("2", "1", "#", Silence(), Silence())
    [made] = await lab.requests()
    assert await lab.recording() is None and made.description.startswith("(لا يوجد وصف")
    assert len(commands(session, "RECORD FILE")) == 2
    assert "svc-recording-silent record-request record-tone" in played(session)
    assert "svc-saved-without-recording" in played(session)
    async with lab.engine.connect() as conn:
        details = (await conn.execute(select(R.c.details))).scalar()
    assert details == {"recording": "silent"}
    assert list((lab.settings.recordings_path / "requests").iterdir()) == []  # nothing kept
    [sms] = await lab.texted()
    assert made.reference in sms.body and "دون وصف صوتي" in sms.body


async def test_a_too_short_recording_is_asked_again_and_the_second_kept(lab: Lab) -> None:
    session = await lab.call("2", "1", "#", Press("#", after_ms=400), SPEAK)
    assert len(await lab.requests()) == 1
    assert "svc-recording-too-short record-request record-tone" in played(session)
    assert await lab.recording() is not None
    assert len(list((lab.settings.recordings_path / "requests").iterdir())) == 1


async def test_0_in_the_category_menu_reaches_an_agent(lab: Lab) -> None:
    await lab.call("2", "0")
    assert await lab.requests() == []
    T = models.table(models.Ticket)
    async with lab.engine.connect() as conn:
        kind = (await conn.execute(select(T.c.kind))).scalar()
    assert kind == "service"  # no routing in this lab: a callback ticket, as option 2 did


async def test_invalid_category_keys_end_with_goodbye(lab: Lab) -> None:
    session = await lab.call("2", "9", "8", "7")
    assert await lab.requests() == []
    assert played(session)[-2:] == ["invalid-input too-many-attempts", "goodbye"]


# -- option 3: the status, only to the reporter -------------------------------------------------


async def test_the_reporter_hears_state_body_and_date_and_gets_the_note_by_sms(lab: Lab) -> None:
    made = await make(lab, PHONE)
    session = await lab.call("3", parse(made.reference).digits + "#")
    assert made.resolution_due_at is not None
    due = made.resolution_due_at.astimezone(ZoneInfo(lab.settings.timezone))
    heard = played(session)[0].split()
    assert heard[:4] == ["request-status-is", "svc-status-sent", "svc-responsible-is",
                         "svc-body-benghazi_public_services"]  # fmt: skip
    assert heard[4] == "svc-expected-by" and heard[-1] == f"month-{due.month}"
    assert played(session)[1:] == ["svc-details-by-sms", "goodbye"]
    [sms] = await lab.texted()
    assert sms.to == PHONE and made.reference in sms.body and "شركة الخدمات العامة بنغازي" in sms.body


async def test_someone_elses_reference_is_sent_to_the_reporter_not_told(lab: Lab) -> None:
    made = await make(lab, OTHER)
    session = await lab.call("3", "1415" + parse(made.reference).digits)
    assert played(session) == ["svc-status-sent-to-reporter", "goodbye"]
    [sms] = await lab.texted()
    assert sms.to == OTHER and made.reference in sms.body


async def test_a_wrong_check_digit_is_told_at_once_and_asked_again(lab: Lab) -> None:
    made = await make(lab, PHONE)
    digits = parse(made.reference).digits
    wrong = digits[:3] + str((int(digits[3]) + 1) % 10) + digits[4:]
    session = await lab.call("3", wrong + "#", "1234#", digits + "#")
    assert played(session)[:2] == [
        "svc-reference-wrong-digit please-try-again",
        "svc-reference-incomplete please-try-again",
    ]
    assert played(session)[2].startswith("request-status-is")


async def test_an_unknown_reference_three_times_ends_with_goodbye(lab: Lab) -> None:
    session = await lab.call("3", "00000000#", None, "141500000000#")
    assert played(session) == [
        "reference-not-found please-try-again",
        "no-input",
        "reference-not-found too-many-attempts",
        "goodbye",
    ]
