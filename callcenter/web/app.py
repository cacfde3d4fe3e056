"""The HTTP application: API, SMS webhooks, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.connections import RedisSettings, create_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from callcenter import __version__
from callcenter.db import make_engine
from callcenter.errors import CallCenterError
from callcenter.inquiry.schema import InquiryFileError
from callcenter.redis_conn import redis_url
from callcenter.settings import Settings, get_settings
from callcenter.sms import kannel_webhooks, webhooks
from callcenter.sms.inbox import Inbox
from callcenter.web.api import campaigns, citizens, inquiries
from callcenter.web.hotpath import hot


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.redis = await create_pool(RedisSettings.from_dsn(redis_url(settings)))
        app.state.inbox = Inbox(engine, settings)
        await app.state.inbox.store.warm()
        try:
            yield
        finally:
            await app.state.inbox.aclose()
            await app.state.redis.aclose()
            await engine.dispose()

    app = FastAPI(title="1415 call centre", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.include_router(inquiries.router)
    app.include_router(campaigns.router)
    app.include_router(citizens.router)
    app.include_router(webhooks.make_router(settings))
    hot(app, webhooks.hot_handlers(settings))
    app.include_router(kannel_webhooks.make_router(settings))

    @app.exception_handler(CallCenterError)
    async def _domain_error(_: Request, exc: CallCenterError) -> JSONResponse:
        return JSONResponse(
            {"error": exc.error_id, "message": exc.message, "details": exc.details},
            status_code=exc.status_code,
        )

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
