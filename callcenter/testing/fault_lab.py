"""A whole inquiry on the real processes, for the fault tests and ``scripts/bench/faults.py``:
a private PostgreSQL and Redis (so they can be restarted, crashed and flushed), ``serve``,
``worker`` and ``agi`` as subprocesses (so they can be killed with SIGKILL), the Asterisk
simulator in this process, and simulated citizens who answer by SMS (Twilio-signed webhooks,
retried like a gateway retries) or by keypad, then a recount from the database.

What counts as an answer given: an SMS reply the engine acknowledged (HTTP 200, stored or
spooled), or a key pressed on a call after which the IVR moved on (asked the next question or
said thanks). ``lost``: answers given that are not in the database at the end. ``duplicated``:
answers that read anything but what the citizen said to that question, answers for questions
the citizen was never asked, and inbound messages stored more than once.

Usage::

    async with FaultLab.running(tmp_path, roles=("serve", "worker")) as lab:
        campaign = await lab.sms_campaign(rate_per_s=200)
        await lab.restart_postgres(down_s=2)
        await lab.until(lambda: lab.all_sent(campaign), "every invitation sent")
        assert (await lab.recount()).lost == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from twilio.request_validator import RequestValidator

from callcenter import models
from callcenter.campaigns.service import Audience, counts, create_campaign, move, plan
from callcenter.db import make_engine
from callcenter.inquiries import create_inquiry, set_status
from callcenter.inquiry.definition import InquiryStatus
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.migrate import upgrade
from callcenter.settings import Settings
from callcenter.sim import Caller, CitizenModel, Outcome, SimConfig, Simulator, engine_dialplan
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sms.gateways.loopback import DEFAULT_STREAM
from callcenter.telephony import names
from callcenter.testing.kannel import free_ports
from callcenter.testing.postgres import PrivatePostgres
from callcenter.testing.redis_server import PrivateRedis
from callcenter.testing.roles import Role, RoleName
from callcenter.voice.dial_lab import OriginateProbe

log = logging.getLogger(__name__)

SLUG = "faults"
INQUIRY = f"""
slug: {SLUG}
title: {{ar: استبيان الأعطال, en: Faults inquiry}}
questions:
  - {{key: q1, kind: rating, text: {{ar: السؤال الأول, en: First question}}}}
  - {{key: q2, kind: yes_no, text: {{ar: السؤال الثاني, en: Second question}}}}
  - {{key: q3, kind: rating, min: 1, max: 3, text: {{ar: السؤال الثالث, en: Third question}}}}
"""
KEYS = ("q1", "q2", "q3")
SMS_REPLIES = ("٣", "نعم", "2")  # what an SMS citizen texts to each question
VOICE_KEYS = ("3", "1", "2")  # what a voice citizen presses
EXPECTED = {"q1": "3", "q2": "yes", "q3": "2"}  # what the answer must read, either way
_ASKS = (
    ("السؤال الأول", "First question"),
    ("السؤال الثاني", "Second question"),
    ("السؤال الثالث", "Third question"),
)
TOKEN = "fault-lab-twilio-auth-token-0123456789"
SMS_MUNICIPALITY, VOICE_MUNICIPALITY = "SMS", "VOICE"
TWILIO_PATH = "/sms/twilio/inbound"
_MESSAGE = re.compile(r"<Message[^>]*>(.*?)</Message>", re.S)
_QUESTION_PROMPT = re.compile(rf"q-{SLUG}-(q\d)\b")


def question_in(body: str) -> int | None:
    """Which question (0-based) a text asks, by its wording in either language."""
    for index, words in enumerate(_ASKS):
        if any(w in body for w in words):
            return index
    return None


# -- citizens by SMS --------------------------------------------------------------------------


@dataclass
class SmsCitizen:
    phone: str
    index: int
    next: int = 0  # the question they will answer next
    acked: set[int] = field(default_factory=set)


class SmsCitizens:
    """Citizens who answer each question as it reaches them (inline TwiML, or an SMS the
    engine sent through the loopback gateway), over Twilio-signed webhooks. A reply the
    webhook does not take (no connection, a 5xx, no answer within 15 s) is sent again, with
    the same MessageSid, as Twilio does with connection overrides and Kannel with
    ``http-request-retry`` — for up to ``give_up_s``."""

    def __init__(
        self, phones: Sequence[str], base_url: str, *, concurrency: int = 64, give_up_s: float = 300.0
    ) -> None:
        self.by_phone = {p: SmsCitizen(p, i) for i, p in enumerate(phones)}
        self.url = base_url + TWILIO_PATH
        self.validator = RequestValidator(TOKEN)
        self.limit = asyncio.Semaphore(concurrency)
        self.give_up_s = give_up_s
        self.concurrency = concurrency
        self._http: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0  # replies acknowledged
        self.retried = 0  # POSTs tried again
        self.given_up: list[tuple[str, int]] = []
        self.failures: Counter[str] = Counter()  # why a POST was tried again: "503", "ConnectError"
        self.acked_at: list[float] = []  # monotonic time of each acknowledgement

    def heard(self, to: str, body: str) -> None:
        """An SMS reached ``to``: answer the question it asks, if it is the one they are at."""
        citizen = self.by_phone.get(to)
        asked = question_in(body)
        if citizen is None or asked is None or asked != citizen.next:
            return
        citizen.next += 1
        task = asyncio.create_task(self._reply(citizen, asked))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, citizen: SmsCitizen, k: int) -> None:
        params = {
            "MessageSid": f"SM{citizen.index:012d}{k:02d}",
            "AccountSid": "AC" + "0" * 32,
            "From": citizen.phone,
            "To": "1415",
            "Body": SMS_REPLIES[k],
            "NumMedia": "0",
        }
        headers = {
            "X-Twilio-Signature": self.validator.compute_signature(self.url, params),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        body = urlencode(params).encode()
        started = time.monotonic()
        delay = 0.5
        while True:
            try:
                async with self.limit, self.http.post(self.url, data=body, headers=headers) as response:
                    answer = await response.text()
                    status = response.status
                if status == 200:
                    break
                self.failures[str(status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.failures[type(exc).__name__] += 1
            if time.monotonic() - started > self.give_up_s:
                self.given_up.append((citizen.phone, k))
                return
            self.retried += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        citizen.acked.add(k)
        self.sent += 1
        self.acked_at.append(time.monotonic())
        for inline in _MESSAGE.findall(answer):
            self.heard(citizen.phone, html.unescape(inline))

    @property
    def http(self) -> aiohttp.ClientSession:
        """Made on first use, in the running loop (Twilio waits 15 s for an answer)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=15.0),
            )
        return self._http

    async def settle(self, timeout_s: float) -> None:
        """Until no reply is in flight (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self.tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self.tasks), timeout=max(0.1, deadline - time.monotonic()))

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()


# -- the loopback gateway's outbox, kept across flushes --------------------------------------


@dataclass(frozen=True, slots=True)
class Handed:
    to: str
    body: str
    ref: str


class OutboxTail:
    """Every message the loopback gateway took, read as it comes and kept here, so a Redis
    flush (see :meth:`flush_all`) loses none of them from the count."""

    def __init__(self, redis: aioredis.Redis, on_message: Callable[[Handed], None]) -> None:
        self.redis = redis
        self.on_message = on_message
        self.items: list[Handed] = []
        self.last_id = "0-0"
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="outbox-tail")

    async def _run(self) -> None:
        while True:
            try:
                async with self.lock:
                    reply = await self.redis.xread({DEFAULT_STREAM: self.last_id}, count=2000, block=100)
                self._take(reply[0][1] if reply else [])
            except (RedisError, OSError):
                await asyncio.sleep(0.2)  # Redis restarting: read again when it is back
            except Exception:  # a reader that dies quietly would make every count wrong
                log.exception("reading the loopback outbox failed; reading on")
                await asyncio.sleep(0.2)
            await asyncio.sleep(0)

    def _take(self, entries: Sequence[Any]) -> None:
        for raw_id, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            item = Handed(f["to"], f["body"], f["ref"])
            self.items.append(item)
            self.last_id = raw_id.decode()
            self.on_message(item)

    async def flush_all(self) -> None:
        """FLUSHALL, reading what the stream got since the last read in the same transaction
        (MULTI/EXEC: nothing can slip in between)."""
        async with self.lock:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xrange(DEFAULT_STREAM, f"({self.last_id}", "+")
                pipe.flushall()
                entries, _ = await pipe.execute()
            self._take(entries)

    def invitations_twice(self) -> int:
        """Invitations (refs ``d<delivery id>``) the gateway took more than once, extra copies."""
        refs = Counter(item.ref for item in self.items if item.ref.startswith("d"))
        return sum(n - 1 for n in refs.values() if n > 1)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


# -- the recount ------------------------------------------------------------------------------


@dataclass
class Recount:
    answers_recorded: int
    given: int  # answers given (acknowledged)
    lost: int
    duplicated: int
    lost_examples: list[tuple[str, str]]
    duplicated_examples: list[str]
    messages_stored: int
    sessions_completed: int


def voice_answers_given(
    sessions: Sequence[SimAgiChannel],
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """From the simulator's calls: (phone, question) pairs whose key the IVR took (it asked a
    later question or said thanks after it), and every (phone, question) it asked at all."""
    acked: set[tuple[str, str]] = set()
    asked_any: set[tuple[str, str]] = set()
    for session in sessions:
        phone = session.channel.variables.get(names.VAR_CITIZEN)
        if not phone:
            continue
        asked: list[int] = []
        thanked = False
        for line in session.commands:
            if "thank-you-answering" in line:
                thanked = True
            for key in _QUESTION_PROMPT.findall(line):
                index = KEYS.index(key) if key in KEYS else -1
                if index >= 0 and (not asked or asked[-1] != index):
                    asked.append(index)
        for position, index in enumerate(asked):
            asked_any.add((phone, KEYS[index]))
            later = any(other > index for other in asked[position + 1 :])
            if later or (thanked and position == len(asked) - 1):
                acked.add((phone, KEYS[index]))
    return acked, asked_any


def _given_and_asked(
    sms: SmsCitizens | None, voice_sessions: Sequence[SimAgiChannel]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(phone, question) pairs answered and acknowledged, and those asked (answered or not)."""
    given: set[tuple[str, str]] = set()
    asked: set[tuple[str, str]] = set()
    if sms is not None:
        for citizen in sms.by_phone.values():
            given |= {(citizen.phone, KEYS[k]) for k in citizen.acked}
            asked |= {(citizen.phone, KEYS[k]) for k in range(citizen.next)}
    voice_acked, voice_asked = voice_answers_given(voice_sessions)
    return given | voice_acked, asked | voice_asked | voice_acked


async def recount(
    engine: AsyncEngine,
    sms: SmsCitizens | None,
    voice_sessions: Sequence[SimAgiChannel] = (),
) -> Recount:
    """Answers given are taken before the database is read and questions asked after it, so a
    reply or a call still in progress counts neither as lost nor as a stray answer."""
    A, C, Q, M = (models.table(t) for t in (models.Answer, models.Citizen, models.Question, models.Message))
    S = models.table(models.InquirySession)
    given, _ = _given_and_asked(sms, voice_sessions)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(C.c.phone, Q.c.key, A.c.value).select_from(
                    A.join(C, C.c.id == A.c.citizen_id).join(Q, Q.c.id == A.c.question_id)
                )
            )
        ).all()
        stored, distinct = (
            await conn.execute(
                select(func.count(), func.count(func.distinct(M.c.gateway_id))).where(M.c.direction == "in")
            )
        ).one()
        completed = (
            await conn.execute(select(func.count()).select_from(S).where(S.c.status == "completed"))
        ).scalar_one()
    recorded = {(phone, key): value for phone, key, value in rows}
    _, asked = _given_and_asked(sms, voice_sessions)
    lost = sorted(given - set(recorded))
    wrong = [
        f"{p} {k}={v!r}" for (p, k), v in recorded.items() if v != EXPECTED.get(k) or (p, k) not in asked
    ]
    return Recount(
        answers_recorded=len(rows),
        given=len(given),
        lost=len(lost),
        duplicated=len(wrong) + int(stored) - int(distinct),
        lost_examples=lost[:10],
        duplicated_examples=wrong[:10],
        messages_stored=int(stored),
        sessions_completed=int(completed),
    )


# -- the lab ----------------------------------------------------------------------------------


async def migrated_template(pg: PrivatePostgres, name: str = "faults_template") -> str:
    """A migrated database to copy (``CREATE DATABASE ... TEMPLATE``): a fresh one per test
    costs a copy, not a migration."""
    engine = make_engine(Settings(env="test", database_url=pg.url("postgres")))
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    engine = make_engine(Settings(env="test", database_url=pg.url(name)))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return name


async def fresh_database(pg: PrivatePostgres, name: str, *, template: str | None = None) -> str:
    """``name`` made afresh (from ``template``, else migrated); its URL."""
    engine = make_engine(Settings(env="test", database_url=pg.url("postgres")))
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            suffix = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    finally:
        await engine.dispose()
    if template is None:
        engine = make_engine(Settings(env="test", database_url=pg.url(name)))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
    return pg.url(name)


def keypad_citizens(voice_phones: Sequence[str], *, ring_ms: int = 300) -> CitizenModel:
    """Who answers a call: the voice citizens, pressing :data:`VOICE_KEYS`; nobody else."""
    wanted = set(voice_phones)
    caller = Caller.keys(*VOICE_KEYS)

    def decide(number: str) -> Outcome:
        if number in wanted:
            return Outcome("answer", ring_ms, caller)
        return Outcome("noanswer")

    return CitizenModel(rule=decide)


class FaultLab:
    """The processes and services of one run; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        *,
        pg: PrivatePostgres,
        redis: PrivateRedis,
        database_url: str,
        roles: Sequence[RoleName],
        env: Mapping[str, str],
        sim: Simulator | None,
        agi_port: int,
    ) -> None:
        self.workdir = workdir
        self.pg = pg
        self.redis_server = redis
        self.database_url = database_url
        self.sim = sim
        self.probe = OriginateProbe(sim) if sim is not None else None
        self.engine = make_engine(Settings(env="test", database_url=database_url), pool_size=4)
        self.redis = aioredis.Redis.from_url(redis.url(0))
        self.roles: dict[str, Role] = {}
        serve_port = free_ports(1)[0]
        self.base_url = f"http://127.0.0.1:{serve_port}"
        self.env = {
            "CALLCENTER_ENV": "test",
            "CALLCENTER_DATABASE_URL": database_url,
            "CALLCENTER_REDIS_URL": redis.url(0),
            "CALLCENTER_DATA_DIR": str(workdir / "data"),
            "CALLCENTER_QUIET_START": "",
            "CALLCENTER_QUIET_END": "",
            "CALLCENTER_LOG_LEVEL": "WARNING",
            "CALLCENTER_SMS_GATEWAY": "loopback",
            "CALLCENTER_TWILIO_AUTH_TOKEN": TOKEN,
            "CALLCENTER_PUBLIC_BASE_URL": self.base_url,
            "CALLCENTER_SMS_SPOOL_DIR": str(workdir / "spool"),
            "CALLCENTER_SMS_WEBHOOK_DB_TIMEOUT_S": "2",
            "CALLCENTER_RECONCILE_AFTER_S": "20",
            "CALLCENTER_AMI_PORT": str(sim.ami_port if sim is not None else 1),
            "CALLCENTER_AMI_USERNAME": "engine",
            "CALLCENTER_AMI_SECRET": "s3cret",
            "CALLCENTER_AGI_PORT": str(agi_port),
            "CALLCENTER_VOICE_DIAL_TEMPLATE": "PJSIP/{number}@trunk",
            "CALLCENTER_VOICE_CHANNELS": "40",
            "CALLCENTER_VOICE_CPS": "20",
            "CALLCENTER_VOICE_RETRY_AFTER_S": "5",
            "CALLCENTER_ORIGINATE_TIMEOUT_S": "5",
            **env,
        }
        for name in roles:
            port = serve_port if name == "serve" else None
            self.roles[name] = Role(name, self.env, log_dir=workdir / "logs", port=port)
        self.sms: SmsCitizens | None = None
        self.tail = OutboxTail(self.redis, self._heard)
        self.sms_phones: list[str] = []
        self.voice_phones: list[str] = []

    # -- setting up -----------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        workdir: Path,
        *,
        roles: Sequence[RoleName] = ("serve", "worker", "agi"),
        pg: PrivatePostgres | None = None,
        redis: PrivateRedis | None = None,
        database: str = "faults",
        template: str | None = None,
        env: Mapping[str, str] | None = None,
        sms_citizens: int = 0,
        voice_citizens: int = 0,
        time_scale: float = 0.02,
        start: bool = True,
    ) -> AsyncIterator[Self]:
        """Services (made here unless given), the citizens and the inquiry, the roles started
        and ready (``start``), the outbox read; everything stopped at the end."""
        async with contextlib.AsyncExitStack() as stack:
            if pg is None:
                pg = stack.enter_context(PrivatePostgres())
            if redis is None:
                redis = stack.enter_context(PrivateRedis(workdir / "redis"))
            url = await fresh_database(pg, database, template=template)
            sms_phones, voice_phones = await seed(url, sms_citizens, voice_citizens)
            agi_port = free_ports(1)[0]
            sim = None
            if "agi" in roles:
                config = SimConfig(
                    agi_port=agi_port,
                    time_scale=time_scale,
                    dialplan=engine_dialplan(),
                    citizens=keypad_citizens(voice_phones),
                )
                sim = await stack.enter_async_context(Simulator(config))
            lab = cls(
                workdir, pg=pg, redis=redis, database_url=url, roles=roles, env=env or {}, sim=sim,
                agi_port=agi_port,
            )  # fmt: skip
            lab.sms_phones, lab.voice_phones = sms_phones, voice_phones
            stack.push_async_callback(lab.close)
            lab.tail.start()
            if start:
                await lab.start_all()
            yield lab

    async def start_all(self) -> None:
        for role in self.roles.values():
            role.start()
        for role in self.roles.values():
            await role.wait_ready(90)

    def role(self, name: str) -> Role:
        return self.roles[name]

    def _heard(self, item: Handed) -> None:
        if self.sms is not None:
            self.sms.heard(item.to, item.body)

    def answer_by_sms(self, *, concurrency: int = 64) -> SmsCitizens:
        """From now on the SMS citizens answer every question that reaches them."""
        self.sms = SmsCitizens(self.sms_phones, self.base_url, concurrency=concurrency)
        for item in self.tail.items:  # what reached them already
            self.sms.heard(item.to, item.body)
        return self.sms

    async def sms_campaign(self, *, rate_per_s: float | None = None) -> int:
        """An SMS campaign to every citizen, planned and run by the worker (``plan_campaign``)."""
        from arq.connections import RedisSettings, create_pool

        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            row = await create_campaign(
                session, inquiry=SLUG, audience=Audience(), actor="faults", rate_per_s=rate_per_s
            )
        assert row.id is not None
        arq = await create_pool(RedisSettings.from_dsn(self.redis_server.url(0)))
        try:
            await arq.enqueue_job("plan_campaign", row.id, "faults", _job_id=f"plan:{row.id}")
        finally:
            await arq.aclose()
        return row.id

    async def voice_campaign(self) -> int:
        """A voice campaign to the voice citizens, running: the ``agi`` process dials it."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            row = await create_campaign(
                session, inquiry=SLUG, audience=Audience(municipalities=(VOICE_MUNICIPALITY,)),
                actor="faults", channel="voice", max_attempts=6,
            )  # fmt: skip
        assert row.id is not None
        await plan(self.engine, row.id)
        await move(self.engine, self.redis, row.id, "running", actor="faults")
        return row.id

    # -- faults ---------------------------------------------------------------------------

    async def restart_postgres(self, *, down_s: float = 2.0, mode: str = "fast") -> float:
        """Stop PostgreSQL (``fast``: a planned restart; ``immediate``: a crash), keep it down
        ``down_s``, start it (after a crash it recovers first); the seconds it was away."""
        assert mode in ("fast", "immediate", "smart")
        started = time.monotonic()
        await asyncio.to_thread(self.pg.stop, mode=mode)  # type: ignore[arg-type]
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.pg.start)
        return time.monotonic() - started

    async def restart_redis(self, *, down_s: float = 2.0) -> float:
        """``SHUTDOWN SAVE``, down ``down_s``, started again with its data (a planned restart)."""
        started = time.monotonic()
        await asyncio.to_thread(self.redis_server.shutdown, save=True)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.redis_server.start)
        return time.monotonic() - started

    async def flush_redis(self) -> None:
        """FLUSHALL: every job, lane, token bucket and cache gone (the outbox counted first)."""
        await self.tail.flush_all()

    async def kill(self, name: str, *, down_s: float = 1.0) -> float:
        """SIGKILL ``name`` mid-work, start it again after ``down_s``; seconds until ready."""
        role = self.roles[name]
        role.kill()
        await asyncio.sleep(down_s)
        role.start()
        return await role.wait_ready(90)

    # -- waiting and counting -------------------------------------------------------------

    async def until(self, check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0) -> float:
        """Seconds until ``check()`` holds (its database errors count as "not yet")."""
        started = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                if await check():
                    return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                logs = {n: r.log(2000) for n, r in self.roles.items()}
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; logs: {logs}")
            await asyncio.sleep(0.2)

    async def progress(self, campaign_id: int) -> dict[str, int]:
        return await counts(self.engine, campaign_id)

    async def finished(self, campaign_id: int) -> bool:
        """Nothing left to send or dial (an answered call's delivery is final at once: see
        :meth:`calls_over` for the calls themselves)."""
        now = await counts(self.engine, campaign_id)
        return bool(now) and not now.get("pending") and not now.get("sending")

    async def calls_over(self, campaign_id: int) -> bool:
        """The voice campaign finished and no call is up on the simulator any more."""
        return await self.finished(campaign_id) and (self.probe is None or self.probe.active == 0)

    async def recount(self) -> Recount:
        sessions = self.sim.calls.agi_sessions if self.sim is not None else []
        return await recount(self.engine, self.sms, sessions)

    def dialled_twice(self) -> int:
        return len(self.probe.dialled_twice()) if self.probe is not None else 0

    async def close(self) -> None:
        for role in self.roles.values():
            role.stop(grace_s=20)
        if self.sms is not None:
            await self.sms.aclose()
        await self.tail.stop()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()
        await self.engine.dispose()


async def seed(database_url: str, sms: int, voice: int) -> tuple[list[str], list[str]]:
    """The inquiry (running) and the citizens: ``sms`` who answer by SMS, then ``voice`` who
    stay silent on SMS and answer the call (each group in its own municipality)."""
    engine = make_engine(Settings(env="test", database_url=database_url))
    M, C = models.table(models.Municipality), models.table(models.Citizen)
    phones = [f"+2189{1 + i % 2}{i // 2:07d}" for i in range(sms + voice)]
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            await create_inquiry(session, parse_inquiry_yaml(INQUIRY), actor="faults")
            await set_status(session, SLUG, InquiryStatus.RUNNING, actor="faults")
        async with engine.begin() as conn:
            ids = {}
            for code in (SMS_MUNICIPALITY, VOICE_MUNICIPALITY):
                ids[code] = (
                    await conn.execute(
                        M.insert().values(code=code, name_ar=code, name_en=code).returning(M.c.id)
                    )
                ).scalar_one()
            rows = [
                {
                    "phone": phone,
                    "language": "en" if n % 5 == 0 else "ar",
                    "municipality_id": ids[SMS_MUNICIPALITY if n < sms else VOICE_MUNICIPALITY],
                }
                for n, phone in enumerate(phones)
            ]
            for start in range(0, len(rows), 5000):
                await conn.execute(C.insert(), rows[start : start + 5000])
    finally:
        await engine.dispose()
    return phones[:sms], phones[sms:]
