"""The campaigns as staff see them: counts, status and why each waits; who may see which.

The counts come from two aggregate queries (the outbox by status on the
``(campaign_id, status)`` index; the replies through the citizens' inquiry sessions), so a
page, a live event and the CLI read the same numbers the same way. The worker publishes a
``campaign.progress`` event after its chunks (throttled) and on every status change.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from time import monotonic
from typing import Any, Final

from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, bindparam, false, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from callcenter import models
from callcenter.campaigns.quiet import parse_hhmm
from callcenter.campaigns.waiting import Backlog, Reason, reason
from callcenter.live import CAMPAIGN_PROGRESS, publish, tip
from callcenter.settings import Settings

log = logging.getLogger(__name__)

D = models.table(models.Delivery)
C = models.table(models.Citizen)
S = models.table(models.InquirySession)
K = models.table(models.Campaign)
I = models.table(models.Inquiry)  # noqa: E741
MU = models.table(models.Municipality)

PER_PAGE: Final = 50
#: the worker publishes a campaign's progress at most this often (besides status changes)
PUBLISH_EVERY_S: Final = 0.5


def topic(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def plan_job_id(campaign_id: int) -> str:
    """The arq job id of a campaign's planning (one at a time; its presence means planning)."""
    return f"plan:{campaign_id}"


# -- counts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    planned: int = 0
    sent: int = 0  # handed to the gateway (or dialled), whatever came after
    delivered: int = 0
    failed: int = 0
    replied: int = 0  # citizens of the audience with a session in the inquiry
    completed: int = 0
    opted_out: int = 0
    backlog: Backlog = field(default_factory=Backlog)

    @property
    def remaining(self) -> int:
        return self.backlog.remaining

    @property
    def processed(self) -> int:
        return max(0, self.planned - self.remaining)

    @property
    def percent(self) -> int:
        return math.floor(100 * self.processed / self.planned) if self.planned else 0

    def to_json(self) -> dict[str, int]:
        return {
            "planned": self.planned,
            "sent": self.sent,
            "delivered": self.delivered,
            "replied": self.replied,
            "completed": self.completed,
            "opted_out": self.opted_out,
            "failed": self.failed,
            "remaining": self.remaining,
        }


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# The statements of the pages, built once (building one costs more than running it on a
# small table) with their values as parameters.
_WAITS = and_(D.c.status == "pending", D.c.next_attempt_at > bindparam("now"), D.c.error.is_not(None))
_OUTBOX = (
    select(
        D.c.campaign_id,
        func.count(),
        func.count().filter(D.c.sent_at.is_not(None)),
        func.count().filter(D.c.status == "delivered"),
        func.count().filter(D.c.status == "failed"),
        func.count().filter(D.c.status.in_(("pending", "sending"))),
        func.count().filter(_WAITS),
        func.min(D.c.next_attempt_at).filter(_WAITS),
    )
    .where(D.c.campaign_id.in_(bindparam("campaign_ids", expanding=True)))
    .group_by(D.c.campaign_id)
)
_REPLIES = (
    select(
        func.count(S.c.id),
        func.count(S.c.id).filter(S.c.status == "completed"),
        func.count().filter(or_(S.c.status == "opted_out", C.c.opted_out_at.is_not(None))),
    )
    .select_from(
        D.join(C, C.c.id == D.c.citizen_id).outerjoin(
            S, and_(S.c.citizen_id == D.c.citizen_id, S.c.inquiry_id == bindparam("inquiry_id"))
        )
    )
    .where(D.c.campaign_id == bindparam("campaign_id"))
)


async def outbox_counts(
    conn: AsyncConnection, campaign_ids: Sequence[int], *, now: datetime
) -> dict[int, Counts]:
    """The outbox of each campaign by state, in one grouped query."""
    if not campaign_ids:
        return {}
    rows = await conn.execute(_OUTBOX, {"campaign_ids": list(campaign_ids), "now": now})
    out: dict[int, Counts] = {}
    for cid, planned, sent, delivered, failed, remaining, retrying, next_at in rows:
        out[int(cid)] = Counts(
            planned=int(planned),
            sent=int(sent),
            delivered=int(delivered),
            failed=int(failed),
            backlog=Backlog(int(remaining), int(retrying), _aware(next_at)),
        )
    return out


async def reply_counts(conn: AsyncConnection, campaign_id: int, inquiry_id: int) -> tuple[int, int, int]:
    """(replied, completed, opted out) among the campaign's citizens, in one query."""
    row = (await conn.execute(_REPLIES, {"campaign_id": campaign_id, "inquiry_id": inquiry_id})).one()
    return int(row[0]), int(row[1]), int(row[2])


# -- why it waits -------------------------------------------------------------------------


def _hhmm(value: str | None) -> time | None:
    try:
        return parse_hhmm(value)
    except ValueError:  # a stored value the forms would refuse ("25:00" through the API)
        return None


def quiet_hours(campaign: Any, settings: Settings) -> tuple[time | None, time | None]:
    """The campaign's own quiet hours, else the settings' (the sender reads them the same way)."""
    return (
        _hhmm(campaign.quiet_start) or settings.quiet_start,
        _hhmm(campaign.quiet_end) or settings.quiet_end,
    )


def rate_of(campaign: Any, settings: Settings) -> float:
    if campaign.rate_per_s is not None:
        return float(campaign.rate_per_s)
    return settings.sms_rate_per_s if campaign.channel == "sms" else settings.voice_cps


async def planning(redis: Redis, campaign_ids: Iterable[int]) -> set[int]:
    """The campaigns whose planning job is queued or running."""
    ids = list(campaign_ids)
    if not ids:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for cid in ids:
            job = plan_job_id(cid)
            pipe.exists(job_key_prefix + job, in_progress_key_prefix + job)
        found = await pipe.execute()
    return {cid for cid, n in zip(ids, found, strict=True) if n}


def why(row: Any, counts: Counts, settings: Settings, *, now: datetime, is_planning: bool) -> Reason | None:
    """The waiting reason of a campaign row joined with its inquiry's status and schedule."""
    return reason(
        status=row.status,
        backlog=counts.backlog,
        now=now,
        quiet=quiet_hours(row, settings),
        rate_per_s=rate_of(row, settings),
        inquiry_status=row.inquiry_status,
        scheduled_at=_aware(row.scheduled_at),
        planning=is_planning,
        timezone=settings.timezone,
    )


_COLUMNS = (
    K.c.id,
    K.c.inquiry_id,
    K.c.channel,
    K.c.status,
    K.c.audience,
    K.c.rate_per_s,
    K.c.quiet_start,
    K.c.quiet_end,
    K.c.created_at,
    K.c.gateway,
    K.c.max_attempts,
    K.c.started_at,
    K.c.finished_at,
    I.c.slug.label("inquiry_slug"),
    I.c.title_ar,
    I.c.title_en,
    I.c.status.label("inquiry_status"),
    I.c.scheduled_at,
)
#: one campaign with its inquiry's columns
_CAMPAIGN = select(*_COLUMNS).join(I, I.c.id == K.c.inquiry_id).where(K.c.id == bindparam("campaign_id"))
#: a page of the campaigns list, newest first (every campaign: an unscoped principal)
_COUNT_ALL = select(func.count()).select_from(K)
_PAGE_ALL = (
    select(*_COLUMNS)
    .join(I, I.c.id == K.c.inquiry_id)
    .order_by(K.c.created_at.desc(), K.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


@dataclass(frozen=True, slots=True)
class Progress:
    campaign_id: int
    status: str
    counts: Counts
    reason: Reason | None
    at: datetime

    def event(self) -> dict[str, Any]:
        """The data of a ``campaign.progress`` event."""
        return {
            "campaign_id": self.campaign_id,
            "status": self.status,
            "counts": self.counts.to_json(),
            "reason": self.reason.to_json() if self.reason else None,
            "at": self.at,
        }


async def read_progress(
    engine: AsyncEngine,
    redis: Redis,
    settings: Settings,
    campaign_id: int,
    *,
    now: datetime | None = None,
    row: Any | None = None,
) -> Progress | None:
    """The campaign's counts (both queries) and its waiting reason; None if there is no such
    campaign. ``row``: the campaign as :func:`visible_campaign` read it, when the caller has it."""
    now = now or datetime.now(UTC)
    async with engine.connect() as conn:
        if row is None:
            row = (await conn.execute(_CAMPAIGN, {"campaign_id": campaign_id})).one_or_none()
            if row is None:
                return None
        counts = (await outbox_counts(conn, [campaign_id], now=now)).get(campaign_id, Counts())
        replied, completed, opted_out = await reply_counts(conn, campaign_id, row.inquiry_id)
    counts = Counts(
        planned=counts.planned,
        sent=counts.sent,
        delivered=counts.delivered,
        failed=counts.failed,
        replied=replied,
        completed=completed,
        opted_out=opted_out,
        backlog=counts.backlog,
    )
    is_planning = row.status == "draft" and bool(await planning(redis, [campaign_id]))
    return Progress(
        campaign_id, row.status, counts, why(row, counts, settings, now=now, is_planning=is_planning), now
    )


async def publish_progress(
    engine: AsyncEngine, redis: Redis, settings: Settings, campaign_id: int
) -> str | None:
    """Publish the campaign's progress now; returns the event id. Live updates never stop
    the work that triggers them: a Redis failure is logged, not raised."""
    try:
        progress = await read_progress(engine, redis, settings, campaign_id)
        if progress is None:
            return None
        return await publish(redis, topic(campaign_id), CAMPAIGN_PROGRESS, progress.event())
    except RedisError as exc:
        log.warning("campaign %s: progress not published (%s)", campaign_id, exc)
        return None


class RecentProgress:
    """The last progress read of each campaign, shared by everyone watching it through one
    ``serve`` process: each live event makes every open page fetch its cards, and without
    this a crowd of viewers would run the count queries once each. A read is reused only
    while no newer event has been published and for at most ``fresh_s`` seconds."""

    def __init__(self, *, fresh_s: float = PUBLISH_EVERY_S, size: int = 1000) -> None:
        self.fresh_s = fresh_s
        self.size = size
        self._seen: dict[tuple[int, int, str], tuple[float, str, Progress]] = {}

    async def get(self, engine: AsyncEngine, redis: Redis, settings: Settings, row: Any) -> Progress | None:
        """``row``: the campaign (from :func:`visible_campaign`), whose creation time tells
        a campaign apart from an older one of the same id in another database."""
        latest = await tip(redis, topic(row.id))
        key = (id(engine), int(row.id), str(row.created_at))
        clock = monotonic()
        hit = self._seen.get(key)
        if hit is not None and hit[1] == latest and clock - hit[0] < self.fresh_s:
            return hit[2]
        progress = await read_progress(engine, redis, settings, int(row.id), row=row)
        if progress is not None:
            if len(self._seen) >= self.size:
                self._seen.clear()
            self._seen[key] = (clock, latest, progress)
        return progress


class ProgressPublisher:
    """The worker's side: progress after its chunks, at most every ``every`` seconds per
    campaign across all lanes and workers (a Redis key holds the turn), and at once when
    the lane stops (paused, cancelled, done, quiet hours), so the last state always goes out.

    A chunk's publish runs beside the lane, one at a time per campaign: the counts take
    seconds on a big campaign while replies pour in, and a lane that waited for them sent
    twenty times slower (measured by ``scripts/bench/faults.py``: 15 instead of 300 a second)."""

    def __init__(
        self, engine: AsyncEngine, redis: Redis, settings: Settings, *, every: float = PUBLISH_EVERY_S
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.settings = settings
        self.every = every
        self._last: dict[int, float] = {}
        self._running: dict[int, asyncio.Task[None]] = {}

    async def chunk_recorded(self, campaign_id: int) -> None:
        clock = monotonic()
        if clock - self._last.get(campaign_id, -math.inf) < self.every:
            return  # this process published a moment ago: no Redis round trip either
        running = self._running.get(campaign_id)
        if running is not None and not running.done():
            return  # the last counts are still being read: no pile-up of them
        self._last[campaign_id] = clock
        try:
            turn = await self.redis.set(
                f"live:turn:{topic(campaign_id)}", b"1", nx=True, px=max(1, int(self.every * 1000))
            )
        except RedisError:
            return
        if turn:
            self._running[campaign_id] = asyncio.create_task(
                self._publish(campaign_id), name=f"progress of campaign {campaign_id}"
            )

    async def _publish(self, campaign_id: int) -> None:
        try:
            await publish_progress(self.engine, self.redis, self.settings, campaign_id)
        except Exception as exc:  # the database away, say: the next chunk publishes again
            log.warning("campaign %s: progress not published (%s: %s)", campaign_id, type(exc).__name__, exc)

    async def idle(self) -> None:
        """Until the publishes in flight are out (tests; a lane stopping waits for its own)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._running = {k: t for k, t in self._running.items() if not t.done()}

    async def changed(self, campaign_id: int) -> None:
        self._last[campaign_id] = monotonic()
        running = self._running.pop(campaign_id, None)
        if running is not None:  # an older state must not land after this one
            await asyncio.gather(running, return_exceptions=True)
        await publish_progress(self.engine, self.redis, self.settings, campaign_id)


# -- who sees which campaign --------------------------------------------------------------


async def scope_codes(conn: AsyncConnection, municipalities: frozenset[int]) -> list[str]:
    """The codes of a scoped principal's municipalities (audiences name municipalities by code)."""
    if not municipalities:
        return []
    rows = await conn.execute(select(MU.c.code).where(MU.c.id.in_(sorted(municipalities))))
    return sorted(str(code) for code in rows.scalars())


def within_scope(audience: dict[str, Any], codes: Sequence[str] | None) -> bool:
    """Whether an audience lies within the municipalities ``codes`` (None: unscoped). An
    audience of every municipality (none named) is beyond any scope."""
    if codes is None:
        return True
    named = audience.get("municipalities") or []
    return bool(named) and set(named) <= set(codes)


def _within_sql(dialect: str, codes: Sequence[str]) -> ColumnElement[bool]:
    """``within_scope`` as SQL on ``campaign.audience`` (JSON), for the paginated list."""
    if not codes:
        return false()
    if dialect == "postgresql":
        clause = text(
            "json_array_length(campaign.audience -> 'municipalities') > 0 AND NOT EXISTS ("
            "SELECT 1 FROM json_array_elements_text(campaign.audience -> 'municipalities') AS m(code) "
            "WHERE m.code NOT IN :scope_codes)"
        )
    else:
        clause = text(
            "json_array_length(campaign.audience, '$.municipalities') > 0 AND NOT EXISTS ("
            "SELECT 1 FROM json_each(campaign.audience, '$.municipalities') AS m "
            "WHERE m.value NOT IN :scope_codes)"
        )
    bound = clause.bindparams(bindparam("scope_codes", value=list(codes), expanding=True))
    return bound  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Line:
    """One row of the campaigns list."""

    row: Any  # the campaign's columns and its inquiry's (``_COLUMNS``)
    counts: Counts
    reason: Reason | None


@dataclass(frozen=True, slots=True)
class Listing:
    lines: list[Line]
    total: int
    page: int
    pages: int


async def list_campaigns(
    engine: AsyncEngine,
    redis: Redis,
    settings: Settings,
    *,
    municipalities: frozenset[int],
    page: int = 1,
    per_page: int = PER_PAGE,
    now: datetime | None = None,
) -> Listing:
    """A page of the campaigns the principal may see, newest first, with their outbox counts
    (one grouped query for the whole page) and waiting reasons."""
    now = now or datetime.now(UTC)
    async with engine.connect() as conn:
        count, page_query = _COUNT_ALL, _PAGE_ALL
        if municipalities:
            within = _within_sql(engine.dialect.name, await scope_codes(conn, municipalities))
            count, page_query = count.where(within), page_query.where(within)
        total = int((await conn.execute(count)).scalar_one())
        pages = max(1, math.ceil(total / per_page))
        page = min(max(1, page), pages)
        window = {"limit": per_page, "offset": (page - 1) * per_page}
        rows = (await conn.execute(page_query, window)).all()
        counts = await outbox_counts(conn, [r.id for r in rows], now=now)
    drafts = await planning(redis, [r.id for r in rows if r.status == "draft"])
    lines = []
    for r in rows:
        c = counts.get(r.id, Counts())
        lines.append(Line(r, c, why(r, c, settings, now=now, is_planning=r.id in drafts)))
    return Listing(lines, total, page, pages)


async def visible_campaign(
    engine: AsyncEngine, campaign_id: int, municipalities: frozenset[int]
) -> Any | None:
    """The campaign row (with its inquiry's columns) if it exists and the principal may see
    it; None otherwise, the same answer either way (a scoped user learns nothing)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_CAMPAIGN, {"campaign_id": campaign_id})).one_or_none()
        if row is None:
            return None
        codes = await scope_codes(conn, municipalities) if municipalities else None
    return row if within_scope(row.audience or {}, codes) else None
