"""FastAGI server side for the IVR: one async handler per script name, typed commands.

Usage::

    server = AgiServer("127.0.0.1", 4573, on_command=stats.record)

    @server.route("ivr")
    async def ivr(call: AgiChannel) -> None:
        await call.answer()
        choice = await call.get_data("/prompts/ar/menu", 5000, 1)

    await server.start()
    ...
    await server.close()

panoramisk's ``fast_agi`` is not used: its header loop spins forever when Asterisk closes
before the blank line, non-async routes go through ``asyncio.coroutine`` (gone in Python 3.11),
handler errors are caught as ``BaseException`` (swallowing cancellation), connection tasks are
not tracked, and its reply parsing misses the cases listed in :mod:`.agi_wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from callcenter.telephony.agi_channel import (
    AgiChannel,
    AgiEnv,
    CommandHook,
    close_writer,
    script_name,
)
from callcenter.telephony.agi_wire import (
    AgiCommandFailed,
    AgiConnectionLost,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiReply,
    AgiUsageError,
)

__all__ = [
    "AgiChannel",
    "AgiCommandFailed",
    "AgiConnectionLost",
    "AgiDeadChannel",
    "AgiEnv",
    "AgiError",
    "AgiHandler",
    "AgiHangup",
    "AgiInvalidCommand",
    "AgiProtocolError",
    "AgiReply",
    "AgiServer",
    "AgiUsageError",
    "script_name",
]

log = logging.getLogger(__name__)

AgiHandler = Callable[[AgiChannel], Awaitable[None]]
H = TypeVar("H", bound=AgiHandler)


class AgiServer:
    """An asyncio FastAGI server dispatching each call to the handler of its script name.

    ``on_command(name, seconds)`` is called after every command with its round-trip time
    (e.g. :meth:`callcenter.telephony.stats.RttStats.record`).

    ``keepalive_s``: an Asterisk host that dies, or a link that drops packets without a reset,
    says nothing, and the call would wait for its next reply for ever (AGI has no ping). The
    kernel probes a connection idle this long and gives up after :data:`KEEPALIVE_PROBES`
    unanswered probes (or as long with data unacknowledged): the call then ends as
    :class:`AgiConnectionLost`. None: the system's defaults (hours).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        on_command: CommandHook | None = None,
        env_timeout: float = 10.0,
        hangup_grace: float = 0.05,
        close_timeout: float = 10.0,
        keepalive_s: float | None = 30.0,
    ) -> None:
        self.host = host
        self._keepalive_s = keepalive_s
        self._port = port
        self._on_command = on_command
        self._env_timeout = env_timeout
        self._grace = hangup_grace
        self._close_timeout = close_timeout
        self._routes: dict[str, AgiHandler] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._server: asyncio.Server | None = None
        self.calls = 0

    def register(self, name: str, handler: AgiHandler) -> None:
        """Route script ``name`` (``agi://host/name``) to ``handler``, an ``async def``."""
        method = type(handler).__dict__.get("__call__")  # an object with ``async def __call__``
        if not (inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(method)):
            raise TypeError(f"AGI handler for {name!r} must be an async function: {handler!r}")
        key = script_name(name)
        if key in self._routes:
            raise ValueError(f"AGI script {key!r} already has a handler")
        self._routes[key] = handler

    def route(self, name: str) -> Callable[[H], H]:
        """Decorator form of :meth:`register`."""

        def decorate(handler: H) -> H:
            self.register(name, handler)
            return handler

        return decorate

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_calls(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        log.info("FastAGI server listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Stop accepting, let running calls finish (``close_timeout``), then cancel them."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection. The call runs in a task of its own that :meth:`close` may cancel:
        Python 3.11's stream server logs a spurious error when its own task ends cancelled."""
        self.calls += 1
        if self._keepalive_s is not None:
            keep_alive(writer, self._keepalive_s)
        call = asyncio.create_task(self._call(reader, writer), name=f"agi-call-{self.calls}")
        self._tasks.add(call)
        call.add_done_callback(self._tasks.discard)
        try:
            await call
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            log.info("AGI call %s cancelled: the server is closing", call.get_name())
        finally:
            await close_writer(writer)

    async def _call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        channel: AgiChannel | None = None
        try:
            channel = await AgiChannel.accept(
                reader, writer, env_timeout=self._env_timeout, hangup_grace=self._grace,
                on_command=self._on_command,
            )  # fmt: skip
            handler = self._routes.get(channel.env.script)
            if handler is None:
                await self._refuse(channel)
            else:
                await handler(channel)
        except AgiConnectionLost as exc:
            log.warning("FastAGI connection lost mid-call on %s: %s", _who(channel, peer), exc)
        except AgiHangup as exc:
            log.debug("AGI call on %s ended by hangup: %s", _who(channel, peer), exc)
        except AgiProtocolError as exc:
            log.warning("FastAGI protocol error on %s: %s", _who(channel, peer), exc)
        except Exception:
            script = channel.env.script if channel else "?"
            log.exception("AGI handler %r failed on %s", script, _who(channel, peer))

    async def _refuse(self, channel: AgiChannel) -> None:
        script = channel.env.script
        log.error("no AGI handler for script %r (channel %s)", script, _who(channel, None))
        with contextlib.suppress(AgiError, TimeoutError):
            async with asyncio.timeout(5):
                await channel.verbose(f"1415: no AGI script named {script!r}", 1)
                await channel.hangup()


#: unanswered keepalive probes, one every :data:`KEEPALIVE_EVERY_S`, before a connection is dead
KEEPALIVE_PROBES = 3
KEEPALIVE_EVERY_S = 10


def keep_alive(writer: asyncio.StreamWriter, idle_s: float) -> None:
    """TCP keepalive on the connection: probed after ``idle_s`` idle, dead after
    :data:`KEEPALIVE_PROBES` unanswered probes; data unacknowledged as long also ends it."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    idle = max(1, round(idle_s))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's timings
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_EVERY_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            limit_ms = (idle + KEEPALIVE_PROBES * KEEPALIVE_EVERY_S) * 1000
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, limit_ms)
    except OSError as exc:  # not TCP (a test's socket pair), or refused: the call goes on
        log.debug("no TCP keepalive on the FastAGI connection: %s", exc)


def _who(channel: AgiChannel | None, peer: object) -> str:
    if channel is not None and channel.name:
        return f"{channel.name} ({channel.env.uniqueid})"
    return f"connection {peer}"
