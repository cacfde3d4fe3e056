"""Replies that cannot go back inline: queued as ``message`` rows, sent through the gateway.

A reply normally rides on the webhook's answer (TwiML, Kannel's get-url body). A message
that waited in the spool has no webhook left to answer, so its reply goes out through the
gateway's REST/sendsms path, and the database remembers it as an outbound ``message`` row:

    queued -> sending -> sent (final) | failed (final; temporary failures go back to queued)

The row's ``(gateway, gateway_id)`` is ``(<sending gateway>, "reply:<inbound message id>")``,
unique like every message's, so queueing the reply of one inbound message twice (a drain
replayed after a crash, the same SMS spooled twice) queues it once. The reconciler
answers the messages it recovers the same way, so it and a drainer never both answer one.
A row is claimed
(``queued`` -> ``sending``) by a conditional UPDATE before it is sent, so two processes never
send it both; one stuck in ``sending`` (its sender died) is put back after ``STUCK_AFTER``.
The window left: a process killed after the gateway took the message and before the row
says ``sent`` sends it again once put back; neither sendsms nor Twilio has an idempotency key.

Usage: ``ids = await outbox.queue([("twilio", "SM…")])``; ``await outbox.send(ids)``;
``await outbox.sweep()`` from time to time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, cast, func, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.sms.encoding import analyse
from callcenter.sms.gateways.base import Gateway, OutboundSms
from callcenter.sql import insert

log = logging.getLogger(__name__)

M = models.table(models.Message)
PREFIX = "reply:"
SERVICE_PREFIX = "svc:"  # service messages (queue_text): callbacks, service requests
STUCK_AFTER = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=24)
#: messages by their gateway's ids, one unique-index lookup each (see ``ReplyOutbox._ids_of``)
BY_GATEWAY_ID = (
    "SELECT m.id FROM unnest(CAST(:ids AS varchar[])) AS k(gid) CROSS JOIN LATERAL "
    "(SELECT id FROM message WHERE gateway = :gateway AND gateway_id = k.gid OFFSET 0) AS m"
)


@dataclass(frozen=True, slots=True)
class Sent:
    sent: int = 0
    retry: int = 0  # temporary failures, queued again
    failed: int = 0


class ReplyOutbox:
    def __init__(self, engine: AsyncEngine, gateway: Gateway) -> None:
        self.engine = engine
        self.gateway = gateway
        self.dialect = engine.dialect.name

    async def queue(self, inbound: Sequence[tuple[str, str]]) -> list[int]:
        """Queue the stored replies of these inbound messages, given by (gateway, gateway id);
        returns the ids of their replies still waiting to be sent (queued now, or by a drain
        that died before sending them), in inbound order.

        Only processed messages with a reply count: one without a reply needs none, one
        still ``received`` is answered by whoever processes it (the drainer resumes it).
        """
        by_gateway: dict[str, list[str]] = defaultdict(list)
        for gateway, gateway_id in inbound:
            by_gateway[gateway].append(gateway_id[:100])
        waiting: list[int] = []
        async with self.engine.begin() as conn:
            for gateway, ids in by_gateway.items():
                found = await self._ids_of(conn, gateway, ids)
                if found:
                    waiting += await self._queue(conn, M.c.id.in_(found))
        return sorted(waiting)

    async def _ids_of(self, conn: AsyncConnection, gateway: str, gateway_ids: Sequence[str]) -> list[int]:
        """The ids of these messages, found by their gateway's ids: on PostgreSQL one lookup
        of the unique index each, whatever the statistics say. An ``IN`` list was planned on
        the table's statistics, and a table that grows by hundreds of thousands of rows in an
        hour (a national inquiry's first) has stale ones: the planner then read every row of
        the gateway for each batch (2 s a batch at 800,000 rows, a drain at 30 records/s)."""
        if not gateway_ids:
            return []
        if self.dialect != "postgresql":
            found = await conn.execute(
                select(M.c.id).where(M.c.gateway == gateway, M.c.gateway_id.in_(list(gateway_ids)))
            )
        else:  # OFFSET 0: the lookup stays a nested loop, not a join planned on statistics
            found = await conn.execute(text(BY_GATEWAY_ID), {"ids": list(gateway_ids), "gateway": gateway})
        return [int(i) for i in found.scalars()]

    async def queue_text(
        self, *, phone: str, body: str, key: str, citizen_id: int | None = None
    ) -> int | None:
        """Queue one service message (a callback's confirmation, a request's update) keyed
        ``svc:<key>``: queueing the same key twice queues it once. Its id while still queued."""
        gateway_id = (SERVICE_PREFIX + key)[:100]
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(self.dialect, M)
                .values(
                    direction="out", gateway=self.gateway.name, gateway_id=gateway_id, phone=phone,
                    citizen_id=citizen_id, body=body[:2000], status="queued", created_at=func.now(),
                )
                .on_conflict_do_nothing(index_elements=["gateway", "gateway_id"])
            )  # fmt: skip
            found = await conn.execute(
                select(M.c.id).where(
                    M.c.gateway == self.gateway.name, M.c.gateway_id == gateway_id, M.c.status == "queued"
                )
            )
            return found.scalar_one_or_none()

    async def queue_messages(self, message_ids: Sequence[int]) -> list[int]:
        """:meth:`queue` for inbound messages given by their ids (the reconciler's)."""
        if not message_ids:
            return []
        async with self.engine.begin() as conn:
            return await self._queue(conn, M.c.id.in_(list(message_ids)))

    async def _queue(self, conn: AsyncConnection, *which: ColumnElement[bool]) -> list[int]:
        answered = (
            await conn.execute(
                select(M.c.id).where(
                    M.c.direction == "in",
                    *which,
                    M.c.status == "processed",
                    M.c.reply.is_not(None),
                    M.c.reply != "",
                )
            )
        ).scalars()
        ids = [int(i) for i in answered]
        if not ids:
            return []
        replies = (
            select(
                literal("out"),
                literal(self.gateway.name),
                literal(PREFIX).concat(cast(M.c.id, String)),
                M.c.phone,
                M.c.citizen_id,
                M.c.session_id,
                M.c.reply,
                literal("queued"),
                func.now(),
            )
            .where(M.c.id.in_(ids))
            .order_by(M.c.id)
        )  # in the inbound order: a citizen's replies get ids, and so go out, in that order
        columns = ["direction", "gateway", "gateway_id", "phone", "citizen_id", "session_id", "body"]
        await conn.execute(
            insert(self.dialect, M)
            .from_select([*columns, "status", "created_at"], replies)
            .on_conflict_do_nothing(index_elements=["gateway", "gateway_id"])
        )
        reply_ids = await self._ids_of(conn, self.gateway.name, [f"{PREFIX}{i}" for i in ids])
        waiting = await conn.execute(
            select(M.c.id).where(M.c.id.in_(reply_ids), M.c.status == "queued").order_by(M.c.id)
        )
        return [int(i) for i in waiting.scalars()]

    async def send(self, ids: Sequence[int] | None = None, *, limit: int = 500) -> Sent:
        """Claim queued replies (those of ``ids``, or the oldest ``limit``) and send them."""
        if ids is not None and not ids:
            return Sent()
        pick = select(M.c.id).where(M.c.direction == "out", M.c.status == "queued")
        pick = pick.where(M.c.id.in_(ids)) if ids is not None else pick.order_by(M.c.id).limit(limit)
        async with self.engine.begin() as conn:
            claimed = (
                await conn.execute(
                    update(M)
                    .where(M.c.id.in_(pick.scalar_subquery()), M.c.status == "queued")
                    .values(status="sending", processed_at=func.now())
                    .returning(M.c.id, M.c.phone, M.c.body, M.c.gateway_id)
                )
            ).all()
        if not claimed:
            return Sent()
        rows = sorted(claimed, key=lambda r: int(r.id))
        messages = [
            OutboundSms(to=r.phone, body=r.body, ref="m" + str(r.gateway_id).removeprefix(PREFIX))
            for r in rows
        ]
        try:
            results = await self.gateway.send_many(messages)
        except Exception as exc:  # the contract says never; a bug must not strand the rows
            log.exception("gateway %s failed on %s replies", self.gateway.name, len(rows))
            results = []
            error = f"unexpected {type(exc).__name__}: {exc}"[:300]
            updates = [{"_id": r.id, "_status": "queued", "_error": error} for r in rows]
        else:
            updates = []
            for row, result in zip(rows, results, strict=True):
                status = "sent" if result.ok else ("queued" if result.temporary else "failed")
                updates.append({"_id": row.id, "_status": status, "_error": (result.error or None)})
        encodings = {r.id: analyse(r.body) for r in rows}
        params: list[dict[str, Any]] = [
            {**u, "_encoding": encodings[u["_id"]].encoding, "_segments": encodings[u["_id"]].segments}
            for u in updates
        ]
        async with self.engine.begin() as conn:
            await conn.execute(
                update(M)
                .where(M.c.id == bindparam("_id"))
                .values(
                    status=bindparam("_status"),
                    error=bindparam("_error"),
                    encoding=bindparam("_encoding"),
                    segments=bindparam("_segments"),
                    processed_at=func.now(),
                ),
                params,
            )
        counts = Sent(
            sent=sum(u["_status"] == "sent" for u in updates),
            retry=sum(u["_status"] == "queued" for u in updates),
            failed=sum(u["_status"] == "failed" for u in updates),
        )
        if counts.retry or counts.failed:
            log.warning(
                "replies through %s: %s sent, %s to retry, %s failed (%s)",
                self.gateway.name,
                counts.sent,
                counts.retry,
                counts.failed,
                next((u["_error"] for u in updates if u["_error"]), ""),
            )
        return counts

    async def sweep(self, *, now: datetime | None = None, limit: int = 500) -> Sent:
        """Put back replies stuck in ``sending``, give up on day-old ones, send the queued."""
        now = now or datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(M)
                .where(
                    M.c.direction == "out",
                    M.c.status == "sending",
                    M.c.processed_at < now - STUCK_AFTER,
                    or_(
                        M.c.gateway_id.startswith(PREFIX, autoescape=True),
                        M.c.gateway_id.startswith(SERVICE_PREFIX, autoescape=True),
                    ),
                )
                .values(status="queued")
            )
            await conn.execute(
                update(M)
                .where(
                    and_(M.c.direction == "out", M.c.status == "queued", M.c.created_at < now - GIVE_UP_AFTER)
                )
                .values(
                    status="failed", error="gave up: not handed over within 24 h", processed_at=func.now()
                )
            )
        return await self.send(limit=limit)
