"""``/public/results/{slug}``: an inquiry's results for everyone, off by default (the
``public_results`` setting, and each inquiry's switch on its results page). Aggregated and
suppressed as on the staff pages (without saying which hidden cells were the small ones),
Arabic first, no login, no cookie, cacheable."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select, update

from callcenter import models
from callcenter.analysis import read
from callcenter.analysis.margin_store import stored_tables
from callcenter.analysis.read import Scope
from callcenter.audit import audit
from callcenter.errors import NotFound
from callcenter.inquiry.definition import Language
from callcenter.messages import N_
from callcenter.web.deps import ReaderDep, SessionDep, SettingsDep
from callcenter.web.i18n import DIRECTION, current_language
from callcenter.web.pages import results_view as view
from callcenter.web.pages.common import CurrentActor, form_text, redirect
from callcenter.web.templating import environment, static_url

router = APIRouter(include_in_schema=False)
INQ = models.table(models.Inquiry)
MAX_AGE = 300


@router.get("/public/results/{slug}")
async def public_results(
    request: Request, slug: str, reader: ReaderDep, settings: SettingsDep, lang: str = "ar"
) -> Response:
    language: Language = "en" if lang == "en" else "ar"
    current_language.set(language)
    async with reader.connect() as conn:
        shown = (await conn.execute(select(INQ.c.results_public).where(INQ.c.slug == slug[:100]))).scalar()
        if not settings.public_results or not shown:
            raise NotFound(N_("There is no such inquiry."))
        definition = await read.load_inquiry(conn, slug)
        tables = await stored_tables(conn)
        variables = ("municipality",) if any("municipality" in t.variables for t in tables) else ()
        weighting = await read.weigh(
            conn, definition, variables, scope=Scope(), tables=tables, trim_ratio=settings.weight_trim_ratio
        )
        estimates = await read.estimates(
            conn, definition, weighting, scope=Scope(), threshold=settings.suppression_threshold
        )
        namer = view.Namer(definition, await read.places(conn))
    questions = [
        view.question_view(q, namer, weighted=weighting.active, index=i)
        for i, q in enumerate(estimates.questions)
    ]
    html = (
        environment()
        .get_template("results/public.html")
        .render(
            lang=language,
            dir=DIRECTION[language],
            static=static_url,
            title=definition.title.get(language),
            slug=definition.slug,
            questions=questions,
            weighted=weighting.active,
            threshold=settings.suppression_threshold,
            pct=view.pct,
            interval=view.interval,
        )
    )
    return HTMLResponse(
        html, headers={"Cache-Control": f"public, max-age={MAX_AGE}", "Vary": "Accept-Encoding"}
    )


@router.post("/results/{slug}/public")
async def switch(
    request: Request, slug: str, actor: CurrentActor, session: SessionDep, settings: SettingsDep
) -> Response:
    """Admins publish an inquiry's results page, or take it down again (audited); only where
    public pages are enabled at all."""
    if not settings.public_results:
        raise NotFound(N_("Public results pages are not enabled on this server."))
    wanted = await form_text(request, "public", limit=3) == "on"
    found = (
        await session.execute(select(INQ.c.id, INQ.c.results_public).where(INQ.c.slug == slug[:100]))
    ).one_or_none()
    if found is None:
        raise NotFound(N_("There is no such inquiry."))
    if bool(found.results_public) != wanted:
        await session.execute(update(INQ).where(INQ.c.id == found.id).values(results_public=wanted))
        audit(
            session,
            actor=actor,
            action="results.public",
            target=f"inquiry:{slug[:100]}",
            before={"public": bool(found.results_public)},
            after={"public": wanted},
        )
    return redirect(f"/results/{slug}")
