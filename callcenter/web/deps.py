"""Typed dependencies, declared once (the guards live here, not in each route)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.audit import Actor
from callcenter.desk.call_control import AmiOpener, ami_opener
from callcenter.settings import Settings

# async, all of them: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop
# per dependency per request


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_reader(request: Request) -> AsyncEngine:
    """The engine in autocommit, for reads: each statement runs on its own, without the BEGIN and
    COMMIT round trips of a transaction. Under READ COMMITTED every statement of a transaction
    takes its own snapshot anyway, so reads see the same data. Writes use the engine or the
    request's session."""
    reader: AsyncEngine = request.app.state.reader
    return reader


async def get_redis(request: Request) -> ArqRedis:
    redis: ArqRedis = request.app.state.redis
    return redis


async def request_db(request: Request) -> AsyncSession:
    """The request's one database session (opened on first use, in a transaction), for the
    page's work; ``database_scope`` commits or rolls it back. (The guard reads the login
    session before, on a connection of its own from ``get_reader``.)"""
    session: AsyncSession | None = getattr(request.state, "db", None)
    if session is None:
        session = AsyncSession(request.app.state.engine, expire_on_commit=False)
        await session.begin()
        request.state.db = session
    return session


async def database_scope(request: Request) -> AsyncIterator[None]:
    """Around every route: the request's session, if one was opened, commits when the handler
    returns and rolls back when it raises — before the answer is sent (scope="function"), so a
    browser following a redirect reads what the form wrote."""
    done = False
    try:
        yield
        done = True
    finally:
        session: AsyncSession | None = getattr(request.state, "db", None)
        if session is not None:
            request.state.db = None
            try:
                await (session.commit() if done else session.rollback())
            finally:
                await session.close()


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for a page that only reads: on the reader (autocommit, see ``get_reader``),
    so it costs no BEGIN or COMMIT round trip; closed when the route returns."""
    async with AsyncSession(request.app.state.reader, expire_on_commit=False) as session:
        yield session


async def get_session(request: Request) -> AsyncSession:
    """The request's session (see ``request_db``); it commits when the route returns without error."""
    return await request_db(request)


async def get_actor(request: Request) -> Actor:
    """Who is acting (for the audit log): the guard has authenticated the request already."""
    from callcenter.web.guard import NotAuthenticated, authenticate, client_address

    principal = await authenticate(request)
    if principal is None:
        raise NotAuthenticated("a valid bearer token is required")
    return principal.actor(client_address(request))


async def get_ami(request: Request) -> AmiOpener:
    """A short-lived AMI connection with the settings, opened when a page acts on a call (the
    desk's transfer and call back, the wallboard's listen / whisper / barge)."""
    return ami_opener(request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
ReaderDep = Annotated[AsyncEngine, Depends(get_reader)]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(read_session, scope="function")]
ActorDep = Annotated[Actor, Depends(get_actor)]
AmiDep = Annotated[AmiOpener, Depends(get_ami)]
