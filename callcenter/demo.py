"""``callcenter demo``: a whole SMS inquiry on the embedded default, end to end.

N simulated citizens get the invitation through the loopback gateway (a Redis stream),
read it as a person would (which question is this?), and reply through the real webhook:
in Arabic or English, with Arabic-Indic digits or words, some with bad answers first, some
opting out, some silent; a few replies are delivered twice, as gateways do on retries. The
silent ones then answer by phone on the Asterisk simulator, and a few citizens key 0 or 2
for a person: the demo's agents take them, some give up waiting, some are called back
(:mod:`callcenter.demo_agents`). At the end the numbers are recounted from the database.

By default the run is kept in the embedded SQLite database under ``data_dir`` (the one
``callcenter up`` serves), so that a newcomer can open the app and see its inquiry,
campaign and results, logged in as the demo operator ``demo@1415.local`` (development
only). Each run adds a new inquiry (``return-of-life-roads``, then ``-2``, ``-3``...) and
closes the previous demo ones, reusing the same simulated register. ``scratch=True`` runs on
a throw-away database instead. Redis is always a throw-away embedded one: it only carries
this run's jobs and outbox.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts.passwords import hash_password
from callcenter.accounts.roles import Role
from callcenter.accounts.service import find_user, user_view
from callcenter.accounts.sessions import revoke_all
from callcenter.audit import audit
from callcenter.citizens.importer import import_citizens
from callcenter.db import make_engine
from callcenter.errors import CallCenterError
from callcenter.inquiries import create_inquiry, load_definition, set_status
from callcenter.inquiry.definition import Inquiry, InquiryStatus, Language, Question, QuestionKind
from callcenter.inquiry.engine import next_question
from callcenter.inquiry.schema import InquiryIn, parse_inquiry_yaml
from callcenter.jobs import run_worker
from callcenter.migrate import upgrade
from callcenter.models import utcnow
from callcenter.municipalities import ensure_starter_register
from callcenter.redis_conn import stop_embedded
from callcenter.results import Results, inquiry_results
from callcenter.settings import Settings
from callcenter.sms.gateways.loopback import read_outbox
from callcenter.web.app import create_app

SAMPLE = Path(__file__).parent / "samples" / "return-of-life.yaml"
MUNICIPALITIES = ["طرابلس المركز", "بنغازي", "مصراتة", "سبها", "الزاوية", "درنة", "غريان", "سرت"]
ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
BAD = ["🙂", "banana", "ممتاز جدا!!", "9", "???", "لا أعرف ربما"]
#: The account a newcomer logs in with after the demo (development only; see ensure_demo_account).
DEMO_EMAIL = "demo@1415.local"
DEMO_NAME = "Demo operator"
#: citizens who then ask for a person (keys 0 and 2), taken by the demo's agents
AGENT_CALLERS = 12


class DemoRefused(CallCenterError):
    """The demo would keep its fake citizens in a database that is not a development one."""

    error_id = "demo_refused"


@dataclass
class Citizen:
    phone: str
    language: str
    persona: str  # good | confused | stubborn | stop | silent
    rng: random.Random
    bad_left: int = 0
    intended: dict[str, str] = field(default_factory=dict)


def _digits(n: int, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.3:
        return "".join(ARABIC_DIGITS[int(d)] for d in str(n))
    if style < 0.4:
        return "".join(PERSIAN_DIGITS[int(d)] for d in str(n))
    return f" {n} " if style < 0.5 else str(n)


def _answer(citizen: Citizen, question: Question) -> tuple[str, str]:
    """A valid reply and the value the engine should store for it."""
    rng = citizen.rng
    if question.kind is QuestionKind.RATING:
        lo, hi = question.bounds
        value = rng.randint(lo, hi)
        return _digits(value, rng), str(value)
    if question.kind is QuestionKind.YES_NO:
        yes = rng.random() < 0.7
        words = ["نعم", "ايوه", "yes", "1"] if yes else ["لا", "no", "2"]
        return rng.choice(words), "yes" if yes else "no"
    if question.kind is QuestionKind.CHOICE:
        index = rng.randrange(len(question.options))
        option = question.options[index]
        reply = (
            _digits(index + 1, rng)
            if rng.random() < 0.7
            else option.label.get("en" if citizen.language == "en" else "ar")
        )
        return reply, option.value
    value = rng.randint(0, 100)
    return str(value), str(value)


def _question_in(inquiry: Inquiry, text: str, language: str) -> Question | None:
    lang: Language = "en" if language == "en" else "ar"
    for question in inquiry.questions:
        if question.text.get(lang) in text:
            return question
    return None


async def run_demo(
    settings: Settings,
    *,
    citizens: int = 2000,
    seed: int = 1415,
    progress: bool = True,
    scratch: bool = False,
) -> tuple[dict[str, Any], Results]:
    """Run the demo; kept in ``<data_dir>/1415.db`` unless ``scratch`` (development only, as
    it fills the database with simulated citizens: :class:`DemoRefused` elsewhere)."""
    database: Path | None = None
    if not scratch:
        if settings.env != "development":
            raise DemoRefused(
                f"the demo keeps its simulated citizens only in development (CALLCENTER_ENV is "
                f"{settings.env}); run it with --scratch for a throw-away database",
                env=settings.env,
            )
        database = settings.data_dir.resolve() / "1415.db"
        database.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="1415-demo-"))
    demo = settings.model_copy(
        update={
            "data_dir": workdir,  # the throw-away embedded Redis and the register file
            "database_url": None if database is None else f"sqlite:///{database}",
            "redis_url": None,
            "sms_gateway": "loopback",
            "quiet_start": None,
            "quiet_end": None,
            "env": "development",
            "sms_rate_per_s": 0.0,
        }
    )
    try:
        summary, res = await _run(
            demo,
            citizens=citizens,
            seed=seed,
            progress=progress,
            account=settings.env == "development",  # the settings as given, not the demo's copy
        )
    finally:
        await _stop_redis(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    summary["database"] = str(database) if database is not None else None
    return summary, res


async def _stop_redis(workdir: Path) -> None:
    """Stop the run's embedded Redis and wait for it to go: it writes its log while exiting,
    which would otherwise leave a ``1415-demo-*`` folder behind."""
    try:
        pid = int((workdir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        pid = 0
    stop_embedded(workdir)
    for _ in range(100):  # two seconds at most
        if not pid or not _running(pid):
            return
        await asyncio.sleep(0.02)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def ensure_demo_account(engine: Any, settings: Settings) -> int | None:
    """Create the demo operator (or reset its password, role and access) in development; its
    id, or None elsewhere, where it is never created. Its password is the published
    ``demo_password``, so the password policy (which refuses "demo" in it) is not applied."""
    if settings.env != "development":
        return None
    hashed = await asyncio.to_thread(hash_password, settings.demo_password)
    now = utcnow()
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        user = await find_user(session, DEMO_EMAIL)
        if user is None:
            user = models.User(email=DEMO_EMAIL, name=DEMO_NAME, role=Role.operator.value, created_at=now)
            session.add(user)
            action = "user.create"
        else:
            action = "user.password_change"
            assert user.id is not None
            await revoke_all(session, user.id, now=now)
        user.role = Role.operator.value
        user.password_hash = hashed
        user.password_changed_at = now
        user.disabled_at = None
        user.invite_hash = user.invite_expires_at = None
        await session.flush()
        assert user.id is not None
        audit(session, actor="demo", action=action, target=f"user:{user.id}", after=user_view(user, []))
        return user.id


async def _fresh_slug(session: AsyncSession, data: InquiryIn) -> InquiryIn:
    """The sample inquiry under a slug no run has used (``<slug>``, ``<slug>-2``, ...); the
    earlier demo inquiries still open are closed, so callers and replies reach the new one."""
    pattern = re.compile(rf"^{re.escape(data.slug)}(-[0-9]+)?$")
    inquiries = models.table(models.Inquiry)
    found = await session.execute(
        select(inquiries.c.slug, inquiries.c.status).where(
            inquiries.c.slug.startswith(data.slug, autoescape=True)
        )
    )
    rows = found.all()
    used = [(slug, status) for slug, status in rows if pattern.match(slug)]
    for slug, status in used:
        if status != InquiryStatus.CLOSED:
            await set_status(session, slug, InquiryStatus.CLOSED, actor="demo")
    taken = {slug for slug, _ in used}
    slug, n = data.slug, 1
    while slug in taken:
        n += 1
        slug = f"{data.slug}-{n}"
    return data.model_copy(update={"slug": slug})


async def _run(
    settings: Settings, *, citizens: int, seed: int, progress: bool, account: bool
) -> tuple[dict[str, Any], Results]:
    started = time.perf_counter()
    rng = random.Random(seed)
    # migrated before the app starts: its spool drainer reads the tables at once
    schema = make_engine(settings, pool_size=1)
    try:
        await upgrade(schema)
    finally:
        await schema.dispose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        await ensure_starter_register(engine)  # the register names the citizens' municipalities
        demo_user = await ensure_demo_account(engine, settings) if account else None
        data = parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8"), source=str(SAMPLE))
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            data = await _fresh_slug(session, data)
            await create_inquiry(session, data, actor="demo")
        async with AsyncSession(engine, expire_on_commit=False) as session:
            inquiry = await load_definition(session, data.slug)

        people = _people(citizens, rng)
        register = settings.data_dir / "citizens.csv"
        with register.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["phone", "municipality", "language"])
            for p in people.values():
                writer.writerow(["0" + p.phone[4:], rng.choice(MUNICIPALITIES), p.language])
        await import_citizens(engine, register)
        for phone in await _opted_out(engine, people):  # by an earlier run: not invited again
            people[phone].persona = "opted_out"

        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop=stop))
        transport = httpx.ASGITransport(app=app)
        token = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://demo", headers=token) as client:
            response = await client.post("/api/campaigns", json={"inquiry": data.slug, "start": True})
            response.raise_for_status()
            campaign_id = int(response.json()["id"])
            tag = f"demo{inquiry.id}-"  # gateway ids unique across runs kept in one database
            stats = await _converse(app, client, inquiry, people, tag=tag, progress=progress)
        stop.set()
        await worker
        voice = await _voice(settings, engine, inquiry, people, progress=progress)
        agents = await _agents(settings, engine, app.state.redis, people, seed=seed)
        summary = await _recount(engine, inquiry, people, stats, campaign_id=campaign_id, tag=tag)
        summary |= voice
        summary["to_agents"] = agents
        summary["inquiry"] = data.slug
        summary["demo_account"] = DEMO_EMAIL if demo_user is not None else None
        summary["seconds"] = round(time.perf_counter() - started, 2)
        res = await inquiry_results(engine, data.slug)
    return summary, res


async def _opted_out(engine: Any, people: dict[str, Citizen]) -> list[str]:
    C = models.table(models.Citizen)
    phones = list(people)
    found: list[str] = []
    async with engine.connect() as conn:
        for i in range(0, len(phones), 500):
            rows = await conn.execute(
                select(C.c.phone).where(C.c.phone.in_(phones[i : i + 500]), C.c.opted_out_at.is_not(None))
            )
            found += [str(phone) for phone in rows.scalars()]
    return found


def _people(n: int, rng: random.Random) -> dict[str, Citizen]:
    personas = ["good"] * 70 + ["confused"] * 10 + ["stubborn"] * 4 + ["stop"] * 6 + ["silent"] * 10
    people: dict[str, Citizen] = {}
    numbers = rng.sample(range(10_000_000), n)
    for i, number in enumerate(numbers):
        phone = f"+2189{rng.choice('1245')}{number:07d}"
        persona = rng.choice(personas)
        people[phone] = Citizen(
            phone=phone,
            language="en" if rng.random() < 0.2 else "ar",
            persona=persona,
            rng=random.Random(i),
            bad_left={"confused": 1, "stubborn": 9}.get(persona, 0),
        )
    return people


async def _converse(
    app: Any,
    client: httpx.AsyncClient,
    inquiry: Inquiry,
    people: dict[str, Citizen],
    *,
    tag: str,
    progress: bool,
) -> dict[str, int]:
    """Read the loopback outbox and let every invited citizen answer, one conversation each."""
    from rich.progress import Progress

    stats = {"replies": 0, "resent": 0, "messages_received": 0, "webhook_errors": 0}
    errors: list[str] = []
    expected = sum(1 for p in people.values() if p.persona not in ("silent", "opted_out"))
    done = 0
    sem = asyncio.Semaphore(64)
    counter = iter(range(10**9))

    async def post(payload: dict[str, str]) -> httpx.Response:
        """Deliver like a gateway does: a failed webhook is retried with the same id."""
        for attempt in range(5):
            try:
                response = await client.post("/sms/loopback/inbound", json=payload)
                if response.status_code < 500:
                    return response
            except Exception as exc:  # the in-process app raised: a 500 on the wire
                stats["webhook_errors"] += 1
                if attempt == 4:
                    raise
                errors.append(repr(exc))
            await asyncio.sleep(0.05 * (attempt + 1))
        return response

    async def say(citizen: Citizen, body: str) -> str | None:
        gateway_id = f"{tag}{next(counter)}"
        payload = {"id": gateway_id, "from": citizen.phone, "body": body}
        async with sem:
            response = await post(payload)
            response.raise_for_status()
            stats["replies"] += 1
            if citizen.rng.random() < 0.03:  # a gateway retry: the same message again
                again = await post(payload)
                again.raise_for_status()
                stats["resent"] += 1
        reply: str | None = response.json().get("reply")
        return reply

    async def conversation(citizen: Citizen, first: str) -> None:
        nonlocal done
        text: str | None = first
        if citizen.persona == "stop":
            await say(citizen, citizen.rng.choice(["STOP", "توقف", "إلغاء", "stop please"]))
            done += 1
            return
        for _ in range(20):
            if text is None:
                break
            stats["messages_received"] += 1
            question = _question_in(inquiry, text, citizen.language)
            if question is None:
                break  # thanks, or a closing message
            if citizen.bad_left > 0:
                citizen.bad_left -= 1
                text = await say(citizen, citizen.rng.choice(BAD))
                continue
            reply, value = _answer(citizen, question)
            citizen.intended[question.key] = value
            text = await say(citizen, reply)
        done += 1

    redis = app.state.redis
    tasks: set[asyncio.Task[None]] = set()
    last_id = "0"
    deadline = time.monotonic() + max(120.0, len(people) / 20)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("citizens answering", total=expected)
        while done < expected and time.monotonic() < deadline:
            batch, last_id = await read_outbox(redis, last_id, 1000, 200)
            for _stream_id, sms, _gid in batch:
                stats["messages_received"] += 0
                citizen = people.get(sms.to)
                if citizen is None or citizen.persona in ("silent", "opted_out"):
                    continue
                t = asyncio.create_task(conversation(citizen, sms.body))
                tasks.add(t)
            bar.update(task, completed=done)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)  # re-raises what a conversation could not survive
    if errors:
        import logging

        logging.getLogger(__name__).warning("%d webhook errors, e.g. %s", len(errors), errors[0])
    return stats


async def _voice(
    settings: Settings, engine: Any, inquiry: Inquiry, people: dict[str, Citizen], *, progress: bool
) -> dict[str, Any]:
    """The voice line on the Asterisk simulator: the citizens who never answered the SMS dial
    1415 and answer by keypad (menu 1), through the real FastAGI IVR; a few hang up half-way."""
    from callcenter.sim import Caller, SimConfig, Simulator, engine_dialplan
    from callcenter.voice.ivr import make_agi_server

    silent = [p for p in people.values() if p.persona == "silent"]
    callers = []
    for citizen in silent:
        keys: list[str] = ["9"] if citizen.language == "en" else []
        keys.append("1")
        question: Question | None = inquiry.first
        while question is not None:  # the path the IVR will take, skip logic included
            pressed = _keypad(question, citizen)
            if pressed is None:
                break
            keys.append(pressed[0])
            citizen.intended[question.key] = pressed[1]
            question = next_question(inquiry, question, pressed[1])
        hang_up = citizen.rng.random() < 0.1
        if hang_up:  # gives the first answer, then hangs up
            keys = keys[: keys.index("1") + 2]
            citizen.intended = {inquiry.first.key: citizen.intended[inquiry.first.key]}
        callers.append(Caller.keys(*keys, hang_up=hang_up, number="0" + citizen.phone[4:]))
    server = make_agi_server(settings, engine, host="127.0.0.1", port=0)
    async with server:
        config = SimConfig(agi_port=server.port, time_scale=0, dialplan=engine_dialplan())
        async with Simulator(config) as sim:
            await sim.run_callers(callers, concurrency=100)
    return {"voice_calls": len(callers)}


async def _agents(
    settings: Settings, engine: Any, redis: Any, people: dict[str, Citizen], *, seed: int
) -> dict[str, Any]:
    """Then some citizens (never one who opted out: no callback would be made) key 0 or 2
    for a person: the demo's agents take them (:mod:`callcenter.demo_agents`)."""
    from callcenter.demo_agents import run_agents

    callers = [p for p in people.values() if p.persona not in ("stop", "opted_out")][:AGENT_CALLERS]
    return await run_agents(settings, engine, redis, ["0" + p.phone[4:] for p in callers], seed=seed)


def _keypad(question: Question, citizen: Citizen) -> tuple[str, str] | None:
    """A key that answers the question, and the value it records."""
    rng = citizen.rng
    if question.kind is QuestionKind.RATING:
        lo, hi = question.bounds
        value = rng.randint(lo, min(hi, 9))
        return str(value), str(value)
    if question.kind is QuestionKind.YES_NO:
        return ("1", "yes") if rng.random() < 0.7 else ("2", "no")
    if question.kind is QuestionKind.CHOICE and len(question.options) <= 9:
        index = rng.randrange(len(question.options))
        return str(index + 1), question.options[index].value
    return None


async def _recount(
    engine: Any,
    inquiry: Inquiry,
    people: dict[str, Citizen],
    stats: dict[str, int],
    *,
    campaign_id: int,
    tag: str,
) -> dict[str, Any]:
    """Recount from the database: every intended answer stored once, nothing twice. Only this
    run's rows count (its inquiry, campaign, gateway ids and people): earlier runs may be kept
    in the same database."""
    A, C, Q, M = (
        models.table(models.Answer),
        models.table(models.Citizen),
        models.table(models.Question),
        models.table(models.Message),
    )
    D, S = models.table(models.Delivery), models.table(models.InquirySession)
    async with engine.connect() as conn:
        stored = {
            (phone, key): value
            for phone, key, value in (
                await conn.execute(
                    select(C.c.phone, Q.c.key, A.c.value)
                    .join(C, C.c.id == A.c.citizen_id)
                    .join(Q, Q.c.id == A.c.question_id)
                    .where(A.c.inquiry_id == inquiry.id)
                )
            ).all()
        }
        mine = A.c.inquiry_id == inquiry.id
        answer_rows = (await conn.execute(select(func.count()).where(mine))).scalar_one()
        by_voice = (await conn.execute(select(func.count()).where(mine, A.c.channel == "voice"))).scalar_one()
        inbound = (M.c.direction == "in", M.c.gateway_id.startswith(tag, autoescape=True))
        message_rows = (await conn.execute(select(func.count()).where(*inbound))).scalar_one()
        distinct_ids = (
            await conn.execute(select(func.count(func.distinct(M.c.gateway_id))).where(*inbound))
        ).scalar_one()
        sent = (
            await conn.execute(
                select(func.count()).where(
                    D.c.campaign_id == campaign_id, D.c.status.in_(("sent", "delivered"))
                )
            )
        ).scalar_one()
        replies_sent = (
            await conn.execute(select(func.count()).where(*inbound, M.c.reply.is_not(None)))
        ).scalar_one()
        completed = (
            await conn.execute(
                select(func.count()).where(S.c.inquiry_id == inquiry.id, S.c.status == "completed")
            )
        ).scalar_one()
    opted_out = len(await _opted_out(engine, people))
    intended = {(p.phone, k): v for p in people.values() for k, v in p.intended.items()}
    lost = sum(1 for key, value in intended.items() if stored.get(key) != value)
    duplicated = (answer_rows - len(stored)) + (message_rows - distinct_ids)
    return {
        "citizens": len(people),
        "messages_sent": int(sent) + int(replies_sent),
        "replies": stats["replies"] + stats["resent"],
        "answers": int(answer_rows),
        "completed": int(completed),
        "opted_out": int(opted_out),
        "lost": lost,
        "duplicated": int(duplicated),
        "intended_answers": len(intended),
        "webhook_retries": stats["resent"],
        "voice_answers": int(by_voice),
    }
