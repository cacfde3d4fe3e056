"""``/results``: the analysts' workspace. The inquiries; an inquiry's shares with 95 %
intervals, unweighted and weighted side by side, a crosstab by municipality, district,
channel, language or another question, the difference between two groups; the AAPOR outcome
rates; the exports.

A municipality-scoped reader sees the citizens of their municipalities only, and asking for
another municipality is answered 404 (as if it did not exist). Small cells are hidden the
same way on every table (``analysis.read.assemble``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter.accounts.principal import Principal
from callcenter.analysis import export_jobs, exports, read
from callcenter.analysis.aapor import DISPOSITIONS, eligibility_rate
from callcenter.analysis.margin_store import stored_tables
from callcenter.analysis.margins import VARIABLES
from callcenter.analysis.read import Scope
from callcenter.audit import audit
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.web.deps import EngineDep, ReaderDep, RedisDep, SessionDep, SettingsDep
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _
from callcenter.web.pages import results_view as view
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_list, form_text, redirect
from callcenter.web.policy import POLICIES
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

View = Literal["both", "weighted", "unweighted"]


@dataclass(frozen=True, slots=True)
class Options:
    """What the reader asked for, checked: unknown values fall back to the defaults."""

    weights: tuple[str, ...]
    shares: bool
    view: View
    by: str | None
    a: str | None
    b: str | None
    municipality: str | None

    def query(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "w": list(self.weights),
            "set": "1",
            "shares": "1" if self.shares else "",
            "view": self.view,
            "by": self.by or "",
            "a": self.a or "",
            "b": self.b or "",
            "municipality": self.municipality or "",
        } | changes
        return urlencode({k: v for k, v in values.items() if v not in ("", None, [])}, doseq=True)


async def _scope(conn: AsyncConnection, user: Principal, municipality: str | None) -> Scope:
    """The reader's scope, narrowed to one municipality when asked (404 outside the scope)."""
    if not municipality:
        return Scope(user.municipalities)
    found = await read.municipality_id(conn, municipality)
    if found is None or not user.sees(found):
        raise NotFound(N_("There is no such municipality."))
    return Scope(frozenset({found}))


def _clean(value: str | None, limit: int = 100) -> str | None:
    return value[:limit] if value else None


async def _options(
    conn: AsyncConnection,
    inquiry: Any,
    *,
    w: list[str],
    chosen: bool,
    shares: str | None,
    view_: str | None,
    by: str | None,
    a: str | None,
    b: str | None,
    municipality: str | None,
) -> Options:
    if chosen:
        weights = tuple(v for v in dict.fromkeys(w) if v in VARIABLES)
    else:  # the default: municipality, sex and age band, those whose margins are loaded
        weights = await read.default_variables(conn, inquiry, await stored_tables(conn))
    return Options(
        weights=weights,
        shares=shares == "1",
        view=view_ if view_ in ("weighted", "unweighted") else "both",  # type: ignore[arg-type]
        by=read.check_dimension(inquiry, by),
        a=_clean(a),
        b=_clean(b),
        municipality=_clean(municipality, 64),
    )


def _may(user: Principal, path: str, method: str = "GET") -> bool:
    policy = POLICIES.get((method, path))
    return policy is not None and policy.allows(user.role)


@router.get("/results")
async def inquiries(request: Request, user: CurrentUser, reader: ReaderDep) -> Response:
    async with reader.connect() as conn:
        listed = await read.list_inquiries(conn, Scope(user.municipalities))
    english = current_language.get() == "en"
    rows = [{"item": i, "title": i.title_en if english and i.title_en else i.title_ar} for i in listed]
    return render(request, "results/list.html", {"rows": rows, "scoped": user.scoped})


@router.get("/results/{slug}")
async def inquiry(
    request: Request,
    slug: str,
    user: CurrentUser,
    reader: ReaderDep,
    settings: SettingsDep,
    w: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies the default)
    set_: Annotated[str | None, Query(alias="set")] = None,
    shares: str | None = None,
    view_: Annotated[str | None, Query(alias="view")] = None,
    by: str | None = None,
    a: str | None = None,
    b: str | None = None,
    municipality: str | None = None,
    trend: str | None = None,
) -> Response:
    async with reader.connect() as conn:
        definition = await read.load_inquiry(conn, slug)
        options = await _options(
            conn, definition, w=w, chosen=set_ == "1", shares=shares, view_=view_, by=by, a=a, b=b,
            municipality=municipality,
        )  # fmt: skip
        scope = await _scope(conn, user, options.municipality)
        weighting = await read.weigh(
            conn,
            definition,
            options.weights,
            scope=scope,
            trim_ratio=settings.weight_trim_ratio,
            normalise=options.shares,
        )
        estimates = await read.estimates(
            conn, definition, weighting, scope=scope, by=options.by, threshold=settings.suppression_threshold
        )
        channels = await read.channel_comparison(
            conn,
            definition,
            weighting,
            scope=scope,
            threshold=settings.suppression_threshold,
            trim_ratio=settings.weight_trim_ratio,
        )
        followed = next((q for q in definition.questions if q.key == trend), definition.questions[0])
        over_time = await read.trend(conn, definition, followed, weighting, scope=scope)
        order = await read.order_effects(
            conn, definition, scope=scope, threshold=settings.suppression_threshold
        )
        namer = view.Namer(definition, await read.places(conn))
        available = {v for t in await stored_tables(conn) for v in t.variables}
        public = await read.is_public(conn, definition.slug)
        choices = await _municipality_choices(conn, user, namer)
    weighted = weighting.active and options.view != "unweighted"
    questions = [
        view.question_view(q, namer, weighted=weighted, index=i) for i, q in enumerate(estimates.questions)
    ]
    crosstabs: list[dict[str, Any]] = []
    if options.by is not None:
        for i, (q, shown) in enumerate(zip(estimates.questions, questions, strict=True)):
            entry = {
                "question": shown,
                "groups": view.crosstab_view(q, namer, options.by),
                "comparison": None,
                "ranked": view.ranked_chart(q, namer, options.by, weighted=weighted, chart_id=f"ranked-{i}")
                if options.by in ("municipality", "district")
                else None,
            }
            if options.a and options.b:
                entry["comparison"] = view.comparison_view(
                    read.compare(q, options.a, options.b),
                    q.question,
                    namer,
                    namer.group(options.by, options.a),
                    namer.group(options.by, options.b),
                )
            crosstabs.append(entry)
    english = current_language.get() == "en"
    return render(
        request,
        "results/inquiry.html",
        {
            "inquiry": definition,
            "title": definition.title.get("en" if english else "ar"),
            "options": options,
            "weighting": weighting,
            "weighting_error": view.weighting_error(weighting.error, namer),
            "report": view.weighting_report(weighting, namer),
            "show_weighted": weighting.active and options.view != "unweighted",
            "show_unweighted": not weighting.active or options.view != "weighted",
            "questions": questions,
            "crosstabs": crosstabs,
            "by_label": namer.dimension(options.by) if options.by else "",
            "dimensions": [(d, namer.dimension(d)) for d in read.DIMENSIONS]
            + [(f"q:{q.key}", q.text.get("en" if english else "ar")) for q in definition.questions],
            "variables": [(v, namer.dimension(v), v in available) for v in VARIABLES],
            "group_choices": view.group_choices(estimates, namer),
            "municipalities": choices,
            "threshold": settings.suppression_threshold,
            "formats": exports.FORMATS,
            "background_export": max((q.overall.table.n for q in estimates.questions), default=0)
            >= export_jobs.BACKGROUND_FROM,
            "pct": view.pct,
            "interval": view.interval,
            "points": view.points,
            "heat": view.heat,
            "can_rates": _may(user, "/results/{slug}/rates"),
            "public_switch": settings.public_results and _may(user, "/results/{slug}/public", "POST"),
            "is_public": public,
            "channels": view.channel_view(channels, namer),
            "trend": view.trend_view(over_time, namer),
            "order": view.order_view(order, namer),
            "trend_questions": [(q.key, q.text.get("en" if english else "ar")) for q in definition.questions],
        },
    )


async def _municipality_choices(
    conn: AsyncConnection, user: Principal, namer: view.Namer
) -> list[tuple[str, str]]:
    allowed = None
    if user.scoped:
        allowed = (await read.scope_codes(conn, Scope(user.municipalities)))[0]
    return sorted(
        (
            (code, namer.group("municipality", code))
            for code in namer.places
            if allowed is None or code in allowed
        ),
        key=lambda kv: kv[1],
    )


@router.get("/results/{slug}/rates")
async def outcome_rates(
    request: Request,
    slug: str,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    e: str | None = None,
    municipality: str | None = None,
) -> Response:
    chosen_e, e_error = _eligibility(e, settings.aapor_e)
    # the cases are read as a stream: a server-side cursor, in a transaction (not the reader)
    async with engine.connect() as conn:
        definition = await read.load_inquiry(conn, slug)
        scope = await _scope(conn, user, _clean(municipality, 64))
        found = await read.outcome_rates(
            conn, definition, scope=scope, e=chosen_e, threshold=settings.suppression_threshold
        )
        if chosen_e is None:  # AAPOR's proportional allocation from the cases of known eligibility
            chosen_e = eligibility_rate(found.overall.counts)
            found = await read.outcome_rates(
                conn, definition, scope=scope, e=chosen_e, threshold=settings.suppression_threshold
            )
        namer = view.Namer(definition, await read.places(conn))
    english = current_language.get() == "en"
    return render(
        request,
        "results/rates.html",
        {
            "inquiry": definition,
            "title": definition.title.get("en" if english else "ar"),
            "rates": found,
            "e": chosen_e,
            "e_given": e or "",
            "e_error": e_error,
            "groups": [
                (_("Channel"), [(namer.group("channel", g.key), g) for g in found.by_channel]),
                (_("Municipality"), [(namer.group("municipality", g.key), g) for g in found.by_municipality]),
            ],
            "mapping": DISPOSITIONS,
            "threshold": settings.suppression_threshold,
            "pct": view.pct,
            "municipality": municipality or "",
        },
    )


def _eligibility(value: str | None, default: float | None) -> tuple[float | None, str | None]:
    if not value:
        return default, None
    try:
        number = float(value.replace(",", ".").replace("٫", "."))
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        return default, _("e is a share between 0 and 1 (for example 0.8).")
    return number, None


@router.get("/results/{slug}/export")
async def export(
    slug: str,
    user: CurrentUser,
    actor: CurrentActor,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
    format_: Annotated[str, Query(alias="format")] = "xlsx",
    weighted: str | None = None,
    w: Annotated[list[str], Query()] = [],  # noqa: B006
    shares: str | None = None,
    municipality: str | None = None,
    labels: str = "ar",
) -> Response:
    """The respondents' answers in one of the export formats; audited, streamed."""
    if format_ not in exports.FORMATS:
        raise NotFound(N_("There is no such export format."))
    fmt: exports.Format = format_
    language = "en" if labels == "en" else "ar"
    with_weights = weighted == "1"
    async with engine.connect() as conn:
        definition = await read.load_inquiry(conn, slug)
        scope = await _scope(conn, user, _clean(municipality, 64))
        variables = tuple(v for v in dict.fromkeys(w) if v in VARIABLES) or ("municipality",)
        weighting = (
            await read.weigh(
                conn,
                definition,
                variables,
                scope=scope,
                trim_ratio=settings.weight_trim_ratio,
                normalise=shares == "1",
            )
            if with_weights
            else read.Weighting()
        )
        if with_weights and not weighting.active:
            raise exports.ExportError(
                N_("The weights cannot be computed: see the weighting note on the results page.")
            )
    columns = exports.layout(definition, weighted=with_weights, language=language)
    audit(
        session,
        actor=actor,
        action="results.export",
        target=definition.slug,
        format=fmt,
        weighted=with_weights,
        weights=list(weighting.variables),
        municipalities=sorted(scope.municipalities),
    )
    filename = f"{definition.slug}-answers.{exports.EXTENSION[fmt]}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    key = settings.pseudonym_key

    if fmt in ("csv", "csv-plain"):

        async def body() -> AsyncIterator[bytes]:
            async with engine.connect() as conn:
                rows = exports.respondents(
                    conn, definition, columns, scope=scope, weighting=weighting, key=key, coded=False
                )
                async for chunk in exports.csv_stream(columns, rows, bom=fmt == "csv"):
                    yield chunk

        return StreamingResponse(body(), media_type=exports.MEDIA[fmt], headers=headers)

    path = exports.temporary_path(
        exports.EXTENSION[fmt], settings.data_dir if settings.data_dir.is_dir() else None
    )
    wanted = export_jobs.ExportRequest(
        definition.slug,
        fmt,
        with_weights,
        variables,
        shares == "1",
        tuple(sorted(scope.municipalities)),
        language,
        user.user_id or 0,
    )
    try:
        await export_jobs.write_export(engine, settings, wanted, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StreamingResponse(exports.file_chunks(path), media_type=exports.MEDIA[fmt], headers=headers)


# -- large exports, as a job of the worker (analysis/export_jobs.py) ------------------------------


@router.post("/results/{slug}/exports")
async def start_export(
    request: Request, slug: str, user: CurrentUser, actor: CurrentActor, session: SessionDep, redis: RedisDep
) -> Response:
    """Queue the export for the worker and show its progress; audited as any export."""
    format_ = await form_text(request, "format", limit=20)
    if format_ not in exports.FORMATS:
        raise NotFound(N_("There is no such export format."))
    conn = await session.connection()
    definition = await read.load_inquiry(conn, slug)
    scope = await _scope(conn, user, _clean(await form_text(request, "municipality", limit=64), 64))
    weighted = await form_text(request, "weighted", limit=2) == "1"
    weights = tuple(v for v in dict.fromkeys(await form_list(request, "w")) if v in VARIABLES) or (
        "municipality",
    )
    assert user.user_id is not None
    wanted = export_jobs.ExportRequest(
        slug=definition.slug,
        fmt=format_,
        weighted=weighted,
        weights=weights,
        shares=await form_text(request, "shares", limit=2) == "1",
        municipalities=tuple(sorted(scope.municipalities)),
        language="en" if await form_text(request, "labels", limit=2) == "en" else "ar",
        user_id=user.user_id,
    )
    job_id = await export_jobs.create(redis, wanted)
    await redis.enqueue_job("export_results", job_id, _job_id=export_jobs.key(job_id))
    audit(
        session,
        actor=actor,
        action="results.export",
        target=definition.slug,
        format=format_,
        weighted=weighted,
        weights=list(weights) if weighted else [],
        municipalities=sorted(scope.municipalities),
        job=job_id,
    )
    return redirect(f"/results/{definition.slug}/exports/{job_id}")


async def _job(redis: RedisDep, user: Principal, slug: str, job_id: str) -> export_jobs.JobState:
    """The reader's own job for this inquiry (404 for anybody else's, or an expired one)."""
    found = await export_jobs.state(redis, job_id, user_id=user.user_id or -1)
    if found is None or found.request.slug != slug[:100]:
        raise NotFound(N_("There is no such export: it may have expired after a day."))
    return found


@router.get("/results/{slug}/exports/{job_id}")
async def export_progress(
    request: Request, slug: str, job_id: str, user: CurrentUser, redis: RedisDep, part: str | None = None
) -> Response:
    """The job's progress; ``part=1``: only the part htmx swaps in every second."""
    found = await _job(redis, user, slug, job_id)
    template = "results/export_progress.html" if part == "1" else "results/export_job.html"
    return render(request, template, {"job": found, "slug": slug, "error": found.error and _(found.error)})


@router.get("/results/{slug}/exports/{job_id}/file")
async def export_download(
    slug: str, job_id: str, user: CurrentUser, actor: CurrentActor, session: SessionDep, redis: RedisDep
) -> Response:
    """The finished file (kept for a day, downloadable again meanwhile); every download audited."""
    found = await _job(redis, user, slug, job_id)
    if found.status != "done" or found.path is None or not await asyncio.to_thread(Path(found.path).is_file):
        raise NotFound(N_("The export is not ready yet."))
    audit(session, actor=actor, action="results.export.download", target=found.request.slug, job=job_id)
    headers = {"Content-Disposition": f'attachment; filename="{found.filename}"'}
    chunks = exports.file_chunks(Path(found.path), remove=False)
    return StreamingResponse(chunks, media_type=exports.MEDIA[found.request.fmt], headers=headers)
