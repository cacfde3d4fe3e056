"""Large exports as a background job: the page asks, the arq worker writes the file, the page
shows the progress and then a download link.

A request over the web would hold a connection and a worker of the web server for as long as
a file of half a million respondents takes to write; as a job, the file is written by the arq
worker (``jobs.export_results``) into ``<data_dir>/exports/``, and its state lives in Redis
under ``export:<id>`` (queued -> running -> done | failed, with the respondents written so far
and the total expected), for a day. Only the user who asked sees the job and downloads the
file: anybody else gets 404, as for an export outside their scope.

Both the direct download and the job write files through :func:`write_export`, so a file is
the same whichever way it was made. Starting a job and downloading its file are audited by
the page (``results.export``, ``results.export.download``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, cast

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.analysis import exports, read
from callcenter.analysis.read import Scope
from callcenter.messages import N_
from callcenter.settings import Settings

#: from this many respondents the page prepares the export as a job instead of on the spot
BACKGROUND_FROM: Final = 50_000
#: how long a job's state and file are kept
KEEP_S: Final = 24 * 3600
#: progress is written to Redis at most this often
PROGRESS_EVERY_S: Final = 0.5
A = models.table(models.Answer)
C = models.table(models.Citizen)
FAILED: Final = N_("The export failed: try again, or ask an administrator to look at the worker's log.")


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export, checked by the page (the scope is the reader's)."""

    slug: str
    fmt: exports.Format
    weighted: bool
    weights: tuple[str, ...]
    shares: bool
    municipalities: tuple[int, ...]  # the reader's scope; empty: all
    language: str
    user_id: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExportRequest:
        data = json.loads(text)
        data["weights"], data["municipalities"] = tuple(data["weights"]), tuple(data["municipalities"])
        return cls(**data)

    @property
    def scope(self) -> Scope:
        return Scope(frozenset(self.municipalities))


@dataclass(frozen=True, slots=True)
class JobState:
    id: str
    status: str  # queued | running | done | failed
    request: ExportRequest
    rows: int
    total: int
    error: str | None
    path: str | None

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return min(99, int(100 * self.rows / self.total)) if self.total else 0

    @property
    def filename(self) -> str:
        return f"{self.request.slug}-answers.{exports.EXTENSION[self.request.fmt]}"


def key(job_id: str) -> str:
    return f"export:{job_id}"


def export_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


async def write_export(
    engine: AsyncEngine,
    settings: Settings,
    request: ExportRequest,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the respondents of ``request`` to ``path``; returns how many. Raises
    ``exports.ExportError`` when the weights were asked for and cannot be computed."""
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, request.slug)
        scope = request.scope
        weighting = read.Weighting()
        if request.weighted:
            weighting = await read.weigh(
                conn,
                inquiry,
                request.weights,
                scope=scope,
                trim_ratio=settings.weight_trim_ratio,
                normalise=request.shares,
            )
            if not weighting.active:
                reason = str(weighting.error) if weighting.error else "no weighting variables: pass --weights"
                raise exports.ExportError(
                    N_("The weights cannot be computed: see the weighting note on the results page."),
                    reason=reason,
                )
        estimates = None
        if request.fmt == "xlsx":
            estimates = await read.estimates(
                conn, inquiry, weighting, scope=scope, threshold=settings.suppression_threshold
            )
        columns = exports.layout(inquiry, weighted=request.weighted, language=request.language)
        rows = exports.respondents(
            conn,
            inquiry,
            columns,
            scope=scope,
            weighting=weighting,
            key=settings.pseudonym_key,
            coded=request.fmt in ("sav", "dta"),
        )
        return await exports.write_file(
            request.fmt,
            path,
            inquiry,
            columns,
            rows,
            language=request.language,
            estimates=estimates,
            progress=progress,
        )


async def respondents(engine: AsyncEngine, request: ExportRequest) -> int:
    """How many rows the export will have (for the progress bar)."""
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, request.slug)
        query = (
            select(func.count(func.distinct(A.c.citizen_id)))
            .select_from(A.join(C, C.c.id == A.c.citizen_id))
            .where(A.c.inquiry_id == inquiry.id, *request.scope.where())
        )
        return int((await conn.execute(query)).scalar_one())


async def _load(redis: Redis, job_id: str) -> dict[str, Any] | None:
    raw = await redis.get(key(job_id))
    return None if raw is None else cast(dict[str, Any], json.loads(raw))


async def _save(redis: Redis, job_id: str, **changes: Any) -> None:
    """Only the worker changes a job after it is created: a read and a write are enough."""
    data = await _load(redis, job_id) or {}
    await redis.set(key(job_id), json.dumps(data | changes), ex=KEEP_S)


async def create(redis: Redis, request: ExportRequest) -> str:
    """A new job, queued (the caller enqueues ``export_results`` with its id)."""
    job_id = secrets.token_urlsafe(12)
    await _save(redis, job_id, status="queued", request=request.to_json(), rows=0, total=0)
    return job_id


async def state(redis: Redis, job_id: str, *, user_id: int) -> JobState | None:
    """The job, if it exists and belongs to ``user_id``."""
    data = await _load(redis, job_id[:40])
    if data is None:
        return None
    request = ExportRequest.from_json(data["request"])
    if request.user_id != user_id:
        return None
    return JobState(
        job_id[:40],
        str(data.get("status", "queued")),
        request,
        int(data.get("rows") or 0),
        int(data.get("total") or 0),
        data.get("error") or None,
        data.get("path") or None,
    )


async def run(engine: AsyncEngine, redis: Redis, settings: Settings, job_id: str) -> None:
    """The job's body (run by the worker): write the file, publishing the progress."""
    data = await _load(redis, job_id)
    if data is None:
        return  # expired or never created: nothing to do
    request = ExportRequest.from_json(data["request"])
    folder = export_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_old(folder)
    path = folder / f"{job_id}.{exports.EXTENSION[request.fmt]}"
    await _save(redis, job_id, status="running", total=await respondents(engine, request))
    written = [0]

    def progress(rows: int) -> None:
        written[0] = rows

    async def publish() -> None:
        await _save(redis, job_id, rows=written[0])

    try:
        count = await _with_progress(
            write_export(engine, settings, request, path, progress=progress), publish
        )
    except exports.ExportError as exc:
        path.unlink(missing_ok=True)
        await _save(redis, job_id, status="failed", error=exc.message)
        return
    except BaseException:
        path.unlink(missing_ok=True)
        await _save(redis, job_id, status="failed", error=FAILED)
        raise
    await _save(redis, job_id, status="done", rows=count, path=str(path))


async def _with_progress(work: Any, publish: Callable[[], Any]) -> int:
    """Run ``work``, calling ``publish`` every :data:`PROGRESS_EVERY_S` until it ends."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
        await publish()
    return int(task.result())


def _remove_old(folder: Path) -> None:
    """Files of jobs older than :data:`KEEP_S` (their state has expired from Redis too)."""
    cutoff = time.time() - KEEP_S
    for old in folder.glob("*"):
        if old.is_file() and old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
