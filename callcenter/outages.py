"""Living through PostgreSQL or Redis going away for a while (a restart, a failover): telling
an outage from a bug, backing off, and saying so in the log once rather than every second.

A long-running role (the worker's lanes, the dialer, the IVR) that meets an outage waits and
tries again with a growing delay; it does not exit (under systemd a process that exits while
its database restarts comes back into the same outage: a crash loop) and it does not retry a
bug (a constraint, bad data), which only an operator can fix.

Usage::

    backoff = Backoff(first_s=0.5, max_s=10.0)
    try:
        await work()
        backoff.reset()
    except Exception as exc:
        if not unavailable(exc):
            raise
        await asyncio.sleep(backoff.next())

    row = await through_outage(lambda: store.read(...), budget_s=20.0, what="the IVR")

    @outage_tolerant(budget_s=20.0, outage=OutageLog(log, "IVR"))  # every call of a method
    async def read(self, ...) -> Row: ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callcenter.sms.spooling import is_database_unavailable

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger(__name__)


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means PostgreSQL or Redis cannot be reached now (see
    :func:`callcenter.sms.spooling.is_database_unavailable` for the database's cases)."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return True
    return is_database_unavailable(error)


class Backoff:
    """Delays that double from ``first_s`` up to ``max_s``; :meth:`reset` after a success."""

    def __init__(self, *, first_s: float = 0.5, max_s: float = 10.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.tries = 0

    def next(self) -> float:
        delay = min(self.max_s, self.first_s * 2.0**self.tries)
        self.tries += 1
        return delay

    def reset(self) -> None:
        self.tries = 0


class OutageLog:
    """One warning when an outage begins (then one a minute while it lasts), one when it ends,
    with how long it lasted: ``what`` names the work that waits ("the dialer")."""

    def __init__(self, logger: logging.Logger, what: str, *, every_s: float = 60.0) -> None:
        self.logger = logger
        self.what = what
        self.every_s = every_s
        self.since: float | None = None
        self._last = 0.0
        self.failures = 0

    def failed(self, error: BaseException, retry_in_s: float) -> None:
        now = time.monotonic()
        self.failures += 1
        if self.since is None:
            self.since, self._last = now, now
            self.logger.warning(
                "%s: database or Redis unreachable (%s: %s); retrying in %.1fs",
                self.what, type(error).__name__, error, retry_in_s,
            )  # fmt: skip
        elif now - self._last >= self.every_s:
            self._last = now
            self.logger.warning(
                "%s: still unreachable after %.0fs (%d tries; %s)",
                self.what, now - self.since, self.failures, type(error).__name__,
            )  # fmt: skip

    def recovered(self) -> None:
        if self.since is not None:
            self.logger.warning(
                "%s: working again after %.1fs (%d failed tries)",
                self.what, time.monotonic() - self.since, self.failures,
            )  # fmt: skip
        self.since, self.failures = None, 0


async def through_outage(
    op: Callable[[], Awaitable[T]],
    *,
    budget_s: float,
    what: str,
    backoff: Backoff | None = None,
    logger: logging.Logger = log,
    outage: OutageLog | None = None,
) -> T:
    """``op()``, tried again while the database or Redis is unreachable, for at most
    ``budget_s`` seconds in all; then (or at once for any other error) the error is raised.
    ``op`` must be safe to run twice: a commit whose answer was lost may have happened.
    ``outage``: a log shared by many such calls (one line per outage, not one per call)."""
    backoff = backoff or Backoff(first_s=0.2, max_s=2.0)
    deadline = time.monotonic() + budget_s
    outage = outage or OutageLog(logger, what)
    while True:
        try:
            result = await op()
        except Exception as exc:
            delay = backoff.next()
            if not unavailable(exc) or time.monotonic() + delay > deadline:
                raise
            outage.failed(exc, delay)
            await asyncio.sleep(delay)
            continue
        outage.recovered()
        return result


def outage_tolerant(
    *, budget_s: float, outage: OutageLog
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """A coroutine function whose every call goes :func:`through_outage` (it must be safe to
    run twice, as there), all logging to ``outage``."""

    def wrap(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return await through_outage(
                lambda: fn(*args, **kwargs), budget_s=budget_s, what=outage.what, outage=outage
            )

        return run

    return wrap
