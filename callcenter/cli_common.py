"""What every ``callcenter`` command shares: the consoles, logging, the event loop, an engine
on the configured database, and domain errors turned into exit code 2."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.db import make_engine
from callcenter.settings import Settings, get_settings

console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def setup_logging(settings: Settings) -> None:
    """Text or JSON lines on stderr (``CALLCENTER_LOG_FORMAT``), phone numbers masked, with the
    request id inside a request (see ``callcenter.logs``)."""
    from callcenter.logs import configure

    configure(settings)


def run(main: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    settings = get_settings()
    setup_logging(settings)
    return run_async(main(settings))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (it comes with uvicorn[standard]): the engine's processes are
    network-bound, and uvloop's transports cost a fraction of the CPU of asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def with_engine(settings: Settings, body: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    engine = make_engine(settings)
    if settings.database_url is None:
        # the embedded default migrates itself: a newcomer never meets a missing table
        from callcenter.migrate import upgrade

        await upgrade(engine)
    try:
        return await body(engine)
    finally:
        await engine.dispose()


def domain(call: Callable[[], T]) -> T:
    """Domain errors become a clear message and exit code 2, not a traceback."""
    from callcenter.errors import CallCenterError

    try:
        return call()
    except (CallCenterError, ValueError) as exc:
        err.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(2) from exc
