"""Every Prometheus metric of the engine, defined once (``serve`` exports them at ``/metrics``,
``worker`` and ``agi`` on ``CALLCENTER_METRICS_PORT``).

Two kinds live here. Counters and histograms are bumped where the work happens, on hot paths
too, so they cost a lock and an addition: labels are a handful of fixed values (a gateway, a
webhook route, a bucket, an AGI command, a queue), never a phone number or a call's id. Gauges
of state the process already holds (the spool, the AMI connection, calls on the line, the
outbox) are read by :data:`LIVE` when Prometheus scrapes, from objects registered with it:
nothing to keep in step, and an object that goes away stops being reported.

Usage::

    from callcenter import metrics
    metrics.SMS_SENT.labels("twilio").inc(n)
    metrics.LIVE.spools.add(spool)
    text, content_type = await metrics.exposition(engine)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from callcenter.telephony.agi_wire import AGI_COMMANDS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from callcenter.health import Readiness

log = logging.getLogger(__name__)

# -- SMS --------------------------------------------------------------------------------------

SMS_SENT: Final = Counter("callcenter_sms_sent_total", "Campaign messages the gateway accepted", ["gateway"])
SMS_FAILED: Final = Counter(
    "callcenter_sms_send_failures_total",
    "Campaign messages the gateway refused (kind: retry = tried again later, final = given up)",
    ["gateway", "kind"],
)
SMS_REPLIES: Final = Counter(
    "callcenter_sms_replies_received_total",
    "Citizens' replies taken by the webhooks (outcome: stored, spooled, refused = answered 503)",
    ["gateway", "outcome"],
)
SMS_REPORTS: Final = Counter(
    "callcenter_sms_delivery_reports_total",
    "Delivery reports taken by the webhooks (outcome as for replies)",
    ["gateway", "outcome"],
)
WEBHOOK_SECONDS: Final = Histogram(
    "callcenter_webhook_duration_seconds",
    "Time to answer a gateway's webhook call, from the request to the last byte of the answer",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
)
WEBHOOK_RESPONSES: Final = Counter(
    "callcenter_webhook_responses_total",
    "Webhook answers by route and HTTP status class",
    ["route", "status"],
)
RATE_LIMIT_WAITS: Final = Counter(
    "callcenter_ratelimit_waits_total",
    "Times a sender found the shared token bucket empty and waited",
    ["bucket"],
)
RATE_LIMIT_WAIT_SECONDS: Final = Counter(
    "callcenter_ratelimit_wait_seconds_total", "Seconds spent waiting for the token bucket", ["bucket"]
)

# -- voice and routing ------------------------------------------------------------------------

AGI_SECONDS: Final = Histogram(
    "callcenter_agi_command_seconds",
    "FastAGI command round trip as the engine sees it (write to final reply line)",
    ["command"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
)
ROUTING_ROUND_SECONDS: Final = Histogram(
    "callcenter_routing_round_seconds",
    "How long a routing round that had callers held the routing lock (Redis' clock)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
QUEUE_WAITING: Final = Gauge(
    "callcenter_queue_waiting", "Callers and callbacks waiting in each queue, as of the last round", ["queue"]
)


def observe_agi_command(command: str, seconds: float) -> None:
    """``AgiServer(on_command=...)``: one round trip."""
    # command_name() falls back to a line's first word: only known names become labels
    AGI_SECONDS.labels(command if command in AGI_COMMANDS else "other").observe(seconds)


def set_queue_sizes(queues: Iterable[str], waiting: Iterable[str]) -> None:
    """After a round: ``queues`` every known queue (empty ones report 0), ``waiting`` the queue
    of each entry still in line."""
    counts = dict.fromkeys(queues, 0)
    for queue in waiting:
        counts[queue] = counts.get(queue, 0) + 1
    for queue, n in counts.items():
        QUEUE_WAITING.labels(queue).set(n)


# -- state read at scrape time ----------------------------------------------------------------

OUTBOX_CACHE_S: Final = 15.0
OUTBOX_QUERY_TIMEOUT_S: Final = 2.0


class LiveState(Collector):
    """Reads the process's live objects when Prometheus scrapes (weakly held: registering a
    spool, an AMI client, a FastAGI server or a dialer keeps none of them alive)."""

    def __init__(self) -> None:
        self.spools: weakref.WeakSet[Any] = weakref.WeakSet()  # sms.spool.Spool
        self.amis: weakref.WeakSet[Any] = weakref.WeakSet()  # telephony.ami.AmiClient
        self.agi_servers: weakref.WeakSet[Any] = weakref.WeakSet()  # telephony.agi.AgiServer
        self.dialers: weakref.WeakSet[Any] = weakref.WeakSet()  # voice.dialer.Dialer
        #: (campaign id, its status) -> deliveries pending or in flight; when read (monotonic)
        self.outbox: dict[tuple[int, str], int] = {}
        #: the last readiness of this process (as of the last scrape)
        self.readiness: Readiness | None = None
        self.outbox_read_at: float | None = None
        self._outbox_lock = asyncio.Lock()

    def collect(self) -> Iterator[Metric]:
        if self.readiness is not None:
            ready = GaugeMetricFamily(
                "callcenter_ready",
                "1 when the check passed at the last scrape (as /readyz)",
                labels=["check"],
            )
            for check, outcome in sorted(self.readiness.checks.items()):
                ready.add_metric([check], int(outcome == "ok"))
            yield ready
        yield from self._spool()
        yield from self._telephony()
        if self.outbox_read_at is not None:
            pending = GaugeMetricFamily(
                "callcenter_outbox_pending",
                "Deliveries of running or paused campaigns not yet handed to the gateway "
                f"(read at most every {OUTBOX_CACHE_S:.0f} s)",
                labels=["campaign", "status"],
            )
            for (campaign, status), n in sorted(self.outbox.items()):
                pending.add_metric([str(campaign), status], n)
            yield pending
            yield GaugeMetricFamily(
                "callcenter_outbox_read_age_seconds",
                "Age of the outbox figures above",
                value=time.monotonic() - self.outbox_read_at,
            )

    def _spool(self) -> Iterator[Metric]:
        spools = list(self.spools)
        if not spools:
            return
        depth = GaugeMetricFamily(
            "callcenter_spool_depth_bytes", "Spooled webhook calls waiting to be stored"
        )
        limit = GaugeMetricFamily("callcenter_spool_limit_bytes", "The spool's size limit")
        counters = {
            name: CounterMetricFamily(f"callcenter_spool_{name}", text)
            for name, text in (
                ("appended", "Webhook calls written to the spool"),
                ("drained", "Spooled calls stored in the database by the drainer"),
                ("rejected_full", "Webhook calls refused (503) because the spool was full"),
                ("corrupt", "Spool records set aside as unreadable"),
                ("failed", "Spooled calls the database refused (kept in spool.failed)"),
                ("shed", "Webhook calls spooled at once because too many waited on the database"),
            )
        }
        total_depth = total_limit = 0
        totals = dict.fromkeys(counters, 0)
        for spool in spools:
            with contextlib.suppress(OSError):
                total_depth += spool.depth()
            total_limit += spool.max_bytes
            for name in totals:
                totals[name] += getattr(spool.stats, name, 0)
        depth.add_metric([], total_depth)
        limit.add_metric([], total_limit)
        yield depth
        yield limit
        for name, family in counters.items():
            family.add_metric([], totals[name])
            yield family

    def _telephony(self) -> Iterator[Metric]:
        amis = list(self.amis)
        if amis:
            yield GaugeMetricFamily(
                "callcenter_ami_connected",
                "1 while every AMI session of this process is logged in",
                value=int(all(ami.connected for ami in amis)),
            )
            yield CounterMetricFamily(
                "callcenter_ami_reconnects", "AMI re-logins after a lost connection",
                value=sum(ami.reconnects for ami in amis),
            )  # fmt: skip
        servers, dialers = list(self.agi_servers), list(self.dialers)
        if servers or dialers:
            calls = GaugeMetricFamily(
                "callcenter_calls_in_progress",
                "Calls on the line: in a FastAGI script (agi), or dialled and not yet ended (outbound)",
                labels=["kind"],
            )
            calls.add_metric(["agi"], sum(server.active_calls for server in servers))
            calls.add_metric(["outbound"], sum(dialer.book.in_progress for dialer in dialers))
            yield calls

    async def refresh_outbox(self, engine: AsyncEngine, *, max_age_s: float = OUTBOX_CACHE_S) -> None:
        """Read pending deliveries per campaign unless the last read is recent (one grouped
        count over ``ix_delivery_campaign_status``); a failed read keeps the last figures."""
        if self.outbox_read_at is not None and time.monotonic() - self.outbox_read_at < max_age_s:
            return
        async with self._outbox_lock:
            if self.outbox_read_at is not None and time.monotonic() - self.outbox_read_at < max_age_s:
                return
            try:
                async with asyncio.timeout(OUTBOX_QUERY_TIMEOUT_S):
                    self.outbox = await _read_outbox(engine)
                self.outbox_read_at = time.monotonic()
            except Exception as exc:  # the database away: /metrics still answers
                log.warning("outbox figures not read (%s: %s)", type(exc).__name__, exc)


async def _read_outbox(engine: AsyncEngine) -> dict[tuple[int, str], int]:
    from sqlalchemy import func, select

    from callcenter import models

    deliveries, campaigns = models.table(models.Delivery), models.table(models.Campaign)
    open_campaigns = select(campaigns.c.id).where(campaigns.c.status.in_(("running", "paused")))
    query = (
        select(deliveries.c.campaign_id, func.count())
        .where(deliveries.c.campaign_id.in_(open_campaigns), deliveries.c.status.in_(("pending", "sending")))
        .group_by(deliveries.c.campaign_id)
    )
    async with engine.connect() as conn:
        counts = {int(c): int(n) for c, n in (await conn.execute(query)).all()}
        found = (await conn.execute(select(campaigns.c.id, campaigns.c.status).where(
            campaigns.c.id.in_(open_campaigns)))).all()  # fmt: skip
    return {(int(c), str(status)): counts.get(int(c), 0) for c, status in found}


LIVE: Final = LiveState()
REGISTRY.register(LIVE)


async def exposition(
    engine: AsyncEngine | None = None, probe: Callable[[], Awaitable[Readiness]] | None = None
) -> tuple[bytes, str]:
    """The text format of every metric (the outbox read first when ``engine`` is given, the
    readiness checks run when ``probe`` is: alerts then need no second prober)."""
    if engine is not None:
        await LIVE.refresh_outbox(engine)
    if probe is not None:
        LIVE.readiness = await probe()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
