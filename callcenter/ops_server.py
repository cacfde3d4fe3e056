"""The metrics port of ``worker`` and ``agi``: ``GET /metrics``, ``/healthz`` and ``/readyz``
on ``CALLCENTER_METRICS_HOST:CALLCENTER_METRICS_PORT``, the same answers ``serve`` gives.

A few lines of HTTP/1.1 on the process's own event loop rather than prometheus_client's
threaded server: the readiness checks are coroutines on the process's own connections, and
the outbox figures are read with its engine. One request per connection, bounded in size and
time; the access rule is :func:`callcenter.health.ops_allowed`.

Usage::

    async with ops_port(settings, probe, engine=engine) as port:
        ...  # the process's work; the port is served meanwhile (None when not configured)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from callcenter import metrics
from callcenter.health import ReadinessProbe, ops_allowed
from callcenter.settings import Settings

log = logging.getLogger(__name__)

MAX_HEAD: Final = 8192
READ_TIMEOUT_S: Final = 5.0
_REASONS: Final = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    503: "Service Unavailable",
}  # fmt: skip


class OpsServer:
    def __init__(self, settings: Settings, probe: ReadinessProbe, *, engine: Any = None) -> None:
        self.settings = settings
        self.probe = probe
        self.engine = engine
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        port = self.settings.metrics_port or 0
        self._server = await asyncio.start_server(self._serve, self.settings.metrics_host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, content_type = await self._answer(head, writer.get_extra_info("peername"))
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            status, body, content_type = 400, b'{"error":"bad_request"}', "application/json"
        try:
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, head: bytes, peer: Any) -> tuple[int, bytes, str]:
        if len(head) > MAX_HEAD:
            return 400, b'{"error":"bad_request"}', "application/json"
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return 400, b'{"error":"bad_request"}', "application/json"
        method, target, _ = parts
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/healthz", "/readyz"):
            return 404, b'{"error":"not_found"}', "application/json"
        if method != "GET":
            return 405, b'{"error":"method_not_allowed"}', "application/json"
        client = peer[0] if isinstance(peer, tuple) and peer else None
        if not ops_allowed(self.settings, client=client, authorization=headers.get("authorization")):
            return 403, b'{"error":"forbidden"}', "application/json"
        if path == "/healthz":
            return 200, b'{"status":"alive"}', "application/json"
        if path == "/readyz":
            ready = await self.probe()
            return (200 if ready.ready else 503), json.dumps(ready.to_json()).encode(), "application/json"
        text, content_type = await metrics.exposition(self.engine, self.probe)
        return 200, text, content_type


@asynccontextmanager
async def ops_port(
    settings: Settings, probe: ReadinessProbe, *, engine: Any = None
) -> AsyncIterator[int | None]:
    """Serve the port while the body runs (the bound port; None when ``metrics_port`` is unset)."""
    if settings.metrics_port is None:
        yield None
        return
    server = OpsServer(settings, probe, engine=engine)
    await server.start()
    log.info("metrics and health on %s:%s", settings.metrics_host, server.port)
    try:
        yield server.port
    finally:
        await server.close()
