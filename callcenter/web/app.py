"""The HTTP application: API, SMS webhooks, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.connections import create_pool
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from callcenter import __version__, metrics
from callcenter.db import make_engine
from callcenter.inquiry.schema import InquiryFileError
from callcenter.open311 import http as open311
from callcenter.redis_conn import arq_settings
from callcenter.settings import Settings, get_settings
from callcenter.sms import kannel_webhooks, webhooks
from callcenter.sms.drain import spooled_webhooks
from callcenter.sms.inbox import Inbox
from callcenter.web import ops, pages
from callcenter.web.api import campaigns, citizens, inquiries
from callcenter.web.api import results as results_api
from callcenter.web.deps import database_scope
from callcenter.web.errors import install_error_pages
from callcenter.web.guard import authorize
from callcenter.web.hotpath import hot
from callcenter.web.pages import open_data
from callcenter.web.request_context import RequestContext
from callcenter.web.security import SecurityHeaders
from callcenter.web.templating import STATIC, render

PAGES = (
    pages.auth,
    pages.account,
    pages.admin_users,
    pages.admin_municipalities,
    pages.admin_audit,
    pages.admin_margins,
    pages.inquiries,
    pages.campaigns,
    pages.prompts,
    pages.results,
    pages.public_results,
    pages.desk,
    pages.desk_call,
    pages.wallboard,
    pages.supervise,
    pages.live,
    pages.requests,
    pages.request_actions,
    pages.admin_catalogue,
    pages.admin_request_texts,
    pages.admin_holidays,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.redis = await create_pool(arq_settings(settings))
        inbox = Inbox(engine, settings, redis=app.state.redis)
        try:
            # while the database is away the webhooks spool; the drainer stores it all later
            async with spooled_webhooks(settings, inbox, engine=engine, redis=app.state.redis) as hooks:
                app.state.inbox = hooks
                metrics.LIVE.spools.add(hooks.spool)
                try:
                    yield
                finally:
                    metrics.LIVE.spools.discard(hooks.spool)
        finally:
            await inbox.aclose()
            await app.state.redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="1415 call centre",
        version=__version__,
        lifespan=lifespan,
        # every route: one database session per request, then its entry in web/policy.py
        dependencies=[Depends(database_scope, scope="function"), Depends(authorize)],
        docs_url=None,  # served below from the vendored Swagger UI (no CDN, under the CSP)
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_middleware(SecurityHeaders, max_body=settings.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in PAGES:
        app.include_router(module.router)
    app.include_router(inquiries.router)
    app.include_router(results_api.router)
    app.include_router(campaigns.router)
    app.include_router(citizens.router)
    app.include_router(open311.router)
    app.include_router(open_data.router)
    app.include_router(webhooks.make_router(settings))
    hot(app, webhooks.hot_handlers(settings))
    app.include_router(kannel_webhooks.make_router(settings))
    app.include_router(ops.router)
    app.add_middleware(RequestContext)  # outermost: the request id and the webhook timings

    install_error_pages(app)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return render(request, "docs.html")

    @app.exception_handler(InquiryFileError)
    async def _bad_yaml(_: Request, exc: InquiryFileError) -> JSONResponse:
        return JSONResponse({"error": "invalid_inquiry", "message": str(exc)}, status_code=422)

    @app.exception_handler(ValueError)
    async def _bad_value(_: Request, exc: ValueError) -> JSONResponse:
        errors: Any = exc.errors() if hasattr(exc, "errors") else str(exc)
        return JSONResponse({"error": "invalid", "message": str(errors)[:2000]}, status_code=422)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        await request.app.state.redis.ping()
        return {"status": "ok", "version": __version__}

    _ = RequestValidationError  # FastAPI's own 422 handler stays in place
    return app
