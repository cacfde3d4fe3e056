"""The SMS send loop of a campaign lane: claim a page of the outbox, pass the shared rate
limit, hand over to the gateway, record every result.

Several lanes (in one worker or many) run side by side: a claim takes rows with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so no row is claimed twice. A worker killed
mid-batch leaves rows in ``sending``; the reconciler puts them back after a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from redis.asyncio import Redis
from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import metrics, models
from callcenter.campaigns.progress import ProgressPublisher
from callcenter.campaigns.quiet import parse_hhmm, quiet_until
from callcenter.campaigns.ratelimit import TokenBucket
from callcenter.campaigns.service import cached_status, move
from callcenter.inquiries import load_definition
from callcenter.inquiry.definition import Inquiry, Language, QuestionKind
from callcenter.inquiry.order import for_citizen
from callcenter.inquiry.texts import invitation
from callcenter.outages import through_outage, unavailable
from callcenter.settings import Settings
from callcenter.sms.encoding import SmsEncoding, analyse
from callcenter.sms.gateways.base import Gateway, OutboundSms, SendResult

T = TypeVar("T")
log = logging.getLogger(__name__)

D = models.table(models.Delivery)
C = models.table(models.Citizen)
K = models.table(models.Campaign)
# "sent" unless a delivery report overtook the recording (fast gateways report within
# milliseconds): then the row keeps "delivered" / "failed"
SENT = case((D.c.status == "sending", "sent"), else_=D.c.status)
S = models.table(models.InquirySession)


@dataclass
class LaneResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    #: None: the lane has nothing more to do now; a time: call again then (quiet hours, retries)
    resume_at: datetime | None = None
    stopped: str | None = None  # the campaign status that stopped the lane (paused, cancelled)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    attempts: int
    phone: str
    language: str
    opted_out_at: datetime | None
    citizen_id: int


@dataclass(frozen=True, slots=True)
class _Texts:
    body: dict[Language, str]
    encoding: dict[Language, SmsEncoding]
    #: set when the first question's options are randomised: each citizen's invitation lists
    #: them in that citizen's order (the same characters reordered: the encoding and the
    #: segments stay those of ``body``)
    inquiry: Inquiry | None = None
    order_key: str = ""

    def text(self, language: Language, citizen_id: int) -> str:
        if self.inquiry is None:
            return self.body[language]
        seen = for_citizen(self.inquiry, citizen_id, key=self.order_key)
        return invitation(seen, seen.first, language)


class Sender:
    def __init__(self, engine: AsyncEngine, redis: Redis, gateway: Gateway, settings: Settings) -> None:
        self.engine = engine
        self.redis = redis
        self.gateway = gateway
        self.settings = settings
        self.dialect = engine.dialect.name
        self._texts: dict[int, _Texts] = {}
        # rows a lane claimed but never handed to the gateway before the database went away:
        # given back when the lane runs again, not after the reconciler's deadline
        self._unsent: dict[int, set[int]] = {}
        # live progress for the staff pages: throttled per chunk, at once when a lane stops
        self.progress = ProgressPublisher(engine, redis, settings)

    async def run_lane(self, campaign_id: int, *, batch_size: int | None = None) -> LaneResult:
        """Send until the outbox of this campaign is empty, paused, cancelled or quiet."""
        started = time.perf_counter()
        result = LaneResult()
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            campaign = await session.get(models.Campaign, campaign_id)
        if campaign is None:
            result.stopped = "missing"
            return result
        texts = await self._campaign_texts(campaign)
        rate = campaign.rate_per_s if campaign.rate_per_s is not None else self.settings.sms_rate_per_s
        bucket = (
            TokenBucket(
                self.redis,
                f"sms:{campaign.gateway}",
                rate=rate,
                burst=self.settings.sms_burst or None,
            )
            if rate > 0
            else None
        )
        quiet = (
            parse_hhmm(campaign.quiet_start) or self.settings.quiet_start,
            parse_hhmm(campaign.quiet_end) or self.settings.quiet_end,
        )
        size = batch_size or self.settings.sms_batch_size
        if self._unsent.get(campaign_id):
            await self._release(sorted(self._unsent[campaign_id]))
            self._unsent.pop(campaign_id, None)
        while True:
            status = await cached_status(self.engine, self.redis, campaign_id)
            if status != "running":
                result.stopped = status
                break
            until = quiet_until(datetime.now(UTC), *quiet, timezone=self.settings.timezone)
            if until is not None:
                result.resume_at = until
                break
            rows = await self._claim_to_the_end(campaign_id, size)
            if not rows:
                result.resume_at = await self._finish_or_next(campaign_id)
                break
            handed: set[int] = set()
            try:
                stopped = await self._send_rows(campaign, rows, texts, bucket, result, handed)
            except asyncio.CancelledError:
                # A stopping worker: what was not recorded goes back to the outbox now,
                # not after the reconciler's deadline.
                await _to_the_end(self._release([r.id for r in rows]))
                raise
            except Exception as exc:
                if unavailable(exc):  # never handed over: safe to give back once it answers
                    self._unsent.setdefault(campaign_id, set()).update(
                        r.id for r in rows if r.id not in handed
                    )
                raise
            if stopped:
                result.stopped = stopped
                break
        result.seconds = time.perf_counter() - started
        await self.progress.changed(campaign_id)
        return result

    # -- claiming -------------------------------------------------------------------------

    async def _claim_to_the_end(self, campaign_id: int, size: int) -> list[Any]:
        """Claim a chunk; a cancellation that lands while the claim commits (or while its
        connection goes back to the pool) waits for it and gives the rows back, so a stopping
        worker never leaves a claimed chunk for the reconciler's deadline."""
        claim = asyncio.ensure_future(self._claim(campaign_id, size))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            rows = await _to_the_end(claim)
            await _to_the_end(self._release([r.id for r in rows]))
            raise

    async def _claim(self, campaign_id: int, size: int) -> list[Any]:
        due = or_(D.c.next_attempt_at.is_(None), D.c.next_attempt_at <= func.now())
        page = (
            select(D.c.id)
            .where(D.c.campaign_id == campaign_id, D.c.status == "pending", due)
            .order_by(D.c.id)
            .limit(size)
        )
        claim = update(D).values(status="sending", claimed_at=func.now(), attempts=D.c.attempts + 1)
        if self.dialect == "postgresql":
            page = page.with_for_update(skip_locked=True)
            stmt = claim.where(D.c.id.in_(page.scalar_subquery()), D.c.citizen_id == C.c.id).returning(
                D.c.id, D.c.attempts, C.c.phone, C.c.language, C.c.opted_out_at, D.c.citizen_id
            )
            async with self.engine.begin() as conn:
                return list((await conn.execute(stmt)).all())
        # SQLite's RETURNING sees only the target table: claim, then read the citizens.
        async with self.engine.begin() as conn:
            claimed = (
                await conn.execute(
                    claim.where(D.c.id.in_(page.scalar_subquery())).returning(
                        D.c.id, D.c.attempts, D.c.citizen_id
                    )
                )
            ).all()
            if not claimed:
                return []
            people = {
                row.id: row
                for row in await conn.execute(
                    select(C.c.id, C.c.phone, C.c.language, C.c.opted_out_at).where(
                        C.c.id.in_([r.citizen_id for r in claimed])
                    )
                )
            }
        return [
            _Claimed(
                r.id,
                r.attempts,
                people[r.citizen_id].phone,
                people[r.citizen_id].language,
                people[r.citizen_id].opted_out_at,
                r.citizen_id,
            )
            for r in sorted(claimed, key=lambda r: r.id)
        ]

    async def _finish_or_next(self, campaign_id: int) -> datetime | None:
        """Nothing claimable: either retries wait in the future, rows are in flight
        elsewhere, or the campaign is done."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.min(D.c.next_attempt_at).filter(D.c.status == "pending"),
                        func.count().filter(D.c.status.in_(("pending", "sending"))),
                    ).where(D.c.campaign_id == campaign_id)
                )
            ).one()
        next_at, open_rows = row
        if open_rows == 0:
            try:
                await move(self.engine, self.redis, campaign_id, "done", actor="system")
            except Exception:  # another lane finished it first, or it was cancelled
                log.debug("campaign %s already finished", campaign_id)
            return None
        if next_at is not None and next_at.tzinfo is None:
            next_at = next_at.replace(tzinfo=UTC)
        return next_at if isinstance(next_at, datetime) else None

    # -- sending --------------------------------------------------------------------------

    async def _send_rows(
        self,
        campaign: models.Campaign,
        rows: list[Any],
        texts: _Texts,
        bucket: TokenBucket | None,
        result: LaneResult,
        handed: set[int],
    ) -> str | None:
        """Send the claimed rows; ``handed`` gets each row's id as it goes to the gateway."""
        assert campaign.id is not None
        finished = await self._finished(campaign.inquiry_id, [r.id for r in rows])
        skipped = [r.id for r in rows if r.opted_out_at is not None or r.id in finished]
        todo = [r for r in rows if r.opted_out_at is None and r.id not in finished]
        if skipped:
            await self._mark(skipped, status="skipped", error="opted out or completed")
            result.skipped += len(skipped)
        i = 0
        while i < len(todo):
            if bucket is None:
                chunk = todo[i:]
            else:
                status = await cached_status(self.engine, self.redis, campaign.id)
                if status != "running":
                    await self._release([r.id for r in todo[i:]])
                    return status
                granted = await bucket.take(len(todo) - i)
                if not granted:
                    continue
                chunk = todo[i : i + granted]
            i += len(chunk)
            messages = [
                OutboundSms(to=r.phone, body=texts.text(_lang(r.language), r.citizen_id), ref=f"d{r.id}")
                for r in chunk
            ]
            handed.update(r.id for r in chunk)
            results = await self.gateway.send_many(messages)
            await self._record(campaign, chunk, results, texts, result)
            await self.progress.chunk_recorded(campaign.id)
        return None

    async def _record(
        self,
        campaign: models.Campaign,
        chunk: list[Any],
        results: list[SendResult],
        texts: _Texts,
        result: LaneResult,
    ) -> None:
        sent: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for row, res in zip(chunk, results, strict=True):
            enc = texts.encoding[_lang(row.language)]
            if res.ok:
                sent.append(
                    {
                        "b_id": row.id,
                        "b_gid": res.gateway_id,
                        "b_seg": enc.segments,
                        "b_enc": enc.encoding,
                    }
                )
            elif res.temporary and row.attempts < campaign.max_attempts:
                delay = self.settings.sms_retry_base_s * 2 ** (row.attempts - 1)
                retry.append(
                    {
                        "b_id": row.id,
                        "b_err": (res.error or "")[:300],
                        "b_at": now + timedelta(seconds=min(delay, 3600)),
                    }
                )
            else:
                failed.append({"b_id": row.id, "b_err": (res.error or "")[:300]})
                if len(result.errors) < 20:
                    result.errors.append(res.error or "")
        # Gateways without their own ids (Kannel: DLRs come back with our ref) need no row-by-row
        # update: one statement per text shape records a whole chunk.
        plain: dict[tuple[int, str], list[int]] = {}
        for item in [r for r in sent if r["b_gid"] is None]:
            plain.setdefault((item["b_seg"], item["b_enc"]), []).append(item["b_id"])
        sent = [r for r in sent if r["b_gid"] is not None]
        # The gateway has these messages: if PostgreSQL restarts now, the results wait for it
        # (the statements are safe to run twice) rather than leave the chunk to the reconciler,
        # which would send it again. Within half the reconciler's deadline, so that a chunk is
        # never recorded after the reconciler gave it to another lane.
        await through_outage(
            lambda: self._write_results(plain, sent, retry, failed),
            budget_s=max(1.0, self.settings.reconcile_after_s / 2),
            what=f"campaign {campaign.id}: recording a chunk the gateway took",
            logger=log,
        )
        accepted = len(sent) + sum(len(ids) for ids in plain.values())
        result.sent += accepted
        result.retried += len(retry)
        result.failed += len(failed)
        _count_sent(campaign.gateway, accepted, len(retry), len(failed))

    async def _write_results(
        self,
        plain: dict[tuple[int, str], list[int]],
        sent: list[dict[str, Any]],
        retry: list[dict[str, Any]],
        failed: list[dict[str, Any]],
    ) -> None:
        async with self.engine.begin() as conn:
            for (segments, encoding), ids in plain.items():
                await conn.execute(
                    update(D)
                    .where(D.c.id.in_(ids))
                    .values(status=SENT, segments=segments, encoding=encoding, sent_at=func.now(), error=None)
                )
            if sent:
                await conn.execute(
                    update(D)
                    .where(D.c.id == bindparam("b_id"))
                    .values(
                        status=SENT,
                        gateway_id=bindparam("b_gid"),
                        segments=bindparam("b_seg"),
                        encoding=bindparam("b_enc"),
                        sent_at=func.now(),
                        error=None,
                    ),
                    sent,
                )
            if retry:
                await conn.execute(
                    update(D)
                    .where(D.c.id == bindparam("b_id"), D.c.status == "sending")
                    .values(
                        status="pending",
                        error=bindparam("b_err"),
                        next_attempt_at=bindparam("b_at"),
                    ),
                    retry,
                )
            if failed:
                await conn.execute(
                    update(D)
                    .where(D.c.id == bindparam("b_id"), D.c.status == "sending")
                    .values(status="failed", error=bindparam("b_err")),
                    failed,
                )

    async def _finished(self, inquiry_id: int, delivery_ids: list[int]) -> set[int]:
        """Deliveries whose citizen completed (or opted out of) the inquiry since planning, on
        any channel, or reached its contact cap: who answered by voice gets no SMS for it."""
        from callcenter.voice.dial_rules import contacts, finished_session

        inquiries = models.table(models.Inquiry)
        async with self.engine.connect() as conn:
            cap = (
                await conn.execute(select(inquiries.c.max_contacts).where(inquiries.c.id == inquiry_id))
            ).scalar_one()
            rows = await conn.execute(
                select(D.c.id).where(
                    D.c.id.in_(delivery_ids),
                    or_(
                        finished_session(D.c.citizen_id, inquiry_id),
                        # the cap counts SMS, calls and callbacks together
                        contacts(D.c.citizen_id, inquiry_id, besides_delivery=D.c.id) >= cap,
                    ),
                )
            )
            return {int(i) for i in rows.scalars()}

    async def _mark(self, ids: list[int], *, status: str, error: str | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(D).where(D.c.id.in_(ids)).values(status=status, error=error))

    async def _release(self, ids: list[int]) -> None:
        """Paused or cancelled mid-batch: unsent rows go back (the attempt is not counted)."""
        if not ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(D)
                .where(and_(D.c.id.in_(ids), D.c.status == "sending"))
                .values(status="pending", attempts=D.c.attempts - 1, claimed_at=None)
            )

    async def _campaign_texts(self, campaign: models.Campaign) -> _Texts:
        assert campaign.id is not None
        cached = self._texts.get(campaign.id)
        if cached is None:
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                inquiry = await load_definition(session, campaign.inquiry_id)
            body: dict[Language, str] = {
                lang: invitation(inquiry, inquiry.first, lang) for lang in ("ar", "en")
            }
            first = inquiry.first
            shuffled = (
                inquiry.randomise_options and first.kind is QuestionKind.CHOICE and len(first.options) > 1
            )
            cached = _Texts(
                body,
                {lang: analyse(text) for lang, text in body.items()},
                inquiry if shuffled else None,
                self.settings.pseudonym_key,
            )
            self._texts[campaign.id] = cached
        return cached


def _count_sent(gateway: str, sent: int, retried: int, failed: int) -> None:
    """Recorded hand-overs, for the metrics (a chunk at a time: three additions at most)."""
    if sent:
        metrics.SMS_SENT.labels(gateway).inc(sent)
    if retried:
        metrics.SMS_FAILED.labels(gateway, "retry").inc(retried)
    if failed:
        metrics.SMS_FAILED.labels(gateway, "final").inc(failed)


def _lang(value: str) -> Language:
    return "en" if value == "en" else "ar"


async def _to_the_end(work: Awaitable[T]) -> T:
    """Finish ``work`` however often the caller is cancelled meanwhile (arq's close() cancels a
    job again while it winds down); the caller's cancellation is then raised as usual by it."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    return task.result()
