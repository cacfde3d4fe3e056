"""Liveness, readiness, and who may ask: shared by ``serve`` (``/healthz``, ``/readyz``,
``/metrics``) and the metrics port of ``worker`` and ``agi``.

Liveness says only that the process answers (a restart is the cure when it does not);
readiness checks what the process needs to do its work — PostgreSQL, Redis and, where the
process keeps one, the AMI session — each under a short timeout, all at once, so a probe
never waits longer than the slowest timeout. A failed readiness names the checks that failed
(and only the kind of error: the probe may be public).

The probes and the metrics are public by default, like ``/health`` always was. Two settings
narrow them: ``CALLCENTER_OPS_ALLOW_NETWORKS`` (JSON list of networks, e.g.
``["10.0.0.0/8", "127.0.0.1/32"]``: the client's address must be in one) and
``CALLCENTER_OPS_TOKEN`` (the request must carry ``Authorization: Bearer <token>``). With
both set, both must hold. Behind a reverse proxy the address is the proxy's: use the token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from callcenter.settings import Settings

Check = Callable[[], Awaitable[object]]

CHECK_TIMEOUT_S: Final = 2.0
#: a readiness result is reused this long: probes from several balancers cost one check
CACHE_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: dict[str, str]  # name -> "ok" or the kind of failure
    failed: tuple[str, ...] = field(default=())

    @property
    def ready(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "unready",
            "failed": list(self.failed),
            "checks": self.checks,
        }


async def check_all(checks: Mapping[str, Check], *, timeout_s: float = CHECK_TIMEOUT_S) -> Readiness:
    """Run every check at once, each under ``timeout_s``."""

    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                await check()
        except TimeoutError:
            return f"timeout after {timeout_s:g}s"
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    outcome = dict(zip(names, results, strict=True))
    return Readiness(outcome, tuple(name for name in names if outcome[name] != "ok"))


class ReadinessProbe:
    """The checks of one process, with the last result reused for :data:`CACHE_S`."""

    def __init__(self, checks: Mapping[str, Check], *, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.checks = dict(checks)
        self.timeout_s = timeout_s
        self._last: tuple[float, Readiness] | None = None

    async def __call__(self) -> Readiness:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < CACHE_S:
            return self._last[1]
        result = await check_all(self.checks, timeout_s=self.timeout_s)
        self._last = (time.monotonic(), result)
        return result


def database_check(engine: Callable[[], Any]) -> Check:
    """``SELECT 1`` on a pooled connection of ``engine()`` (an ``AsyncEngine``, looked up at
    each check: a process may replace it)."""

    async def check() -> None:
        from sqlalchemy import text

        async with engine().connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def redis_check(redis: Callable[[], Any]) -> Check:
    """``PING`` on ``redis()``."""

    async def check() -> None:
        await redis().ping()

    return check


def ami_check(is_connected: Callable[[], bool]) -> Check:
    async def check() -> None:
        if not is_connected():
            raise AmiDisconnected("AMI is not logged in")

    return check


class AmiDisconnected(ConnectionError):
    """The process's AMI session is down (reconnecting, refused, or not yet up)."""


# -- who may ask ------------------------------------------------------------------------------


def ops_allowed(settings: Settings, *, client: str | None, authorization: str | None) -> bool:
    """Whether a request for the probes or the metrics passes ``ops_allow_networks`` and
    ``ops_token`` (each only when set)."""
    if settings.ops_allow_networks and not _in_networks(client, settings.ops_allow_networks):
        return False
    if settings.ops_token:
        given = (authorization or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), settings.ops_token.encode())
    return True


def _in_networks(client: str | None, networks: list[str]) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)
