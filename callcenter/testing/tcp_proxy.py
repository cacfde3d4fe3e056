"""A TCP proxy a test can cut: the AMI or FastAGI link between the engine and Asterisk failing
as a firewall, a NAT timeout or a dead switch would fail it, while both ends keep running.

Usage::

    async with TcpProxy(pbx.ami_port) as proxy:     # the engine connects to proxy.port
        await proxy.cut()                           # open connections reset, new ones refused
        await proxy.stall()                         # ... or connections taken, never answered
        await proxy.restore()                       # accepting again, on the same port
        tripped = proxy.trip(b"Action: Originate")  # the next Originate reaches Asterisk, its
        await tripped.wait()                        # answer is dropped, then everything is cut
        proxy.trip(b"EXEC Dial", from_upstream=True)   # (FastAGI) the engine's Dial never arrives

A reset (RST, ``SO_LINGER`` 0) rather than a clean close: the engine must cope with the worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from callcenter.testing.asterisk_base import free_port

_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True, eq=False)
class _Trip:
    marker: bytes
    done: asyncio.Event
    from_upstream: bool


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    muted: bool = False  # upstream's bytes are dropped (a trip is under way)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class TcpProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        #: connections accepted so far (each reached upstream)
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._trip: _Trip | None = None
        self._springs: set[asyncio.Task[None]] = set()
        self._stalled: socket.socket | None = None

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def restore(self) -> None:
        """Accept connections (again) on :attr:`port`."""
        self._unstall()
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def cut(self) -> None:
        """Refuse new connections and reset every open one, both ways."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.reset_open()

    async def stall(self) -> None:
        """A peer that stops answering (a failover, a black-holed route): open connections are
        reset, new ones are taken by the kernel and then nothing, no greeting, ever."""
        await self.cut()
        self._stalled = socket.socket()
        self._stalled.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._stalled.bind(("127.0.0.1", self.port))
        self._stalled.listen(128)  # never accepted

    def _unstall(self) -> None:
        if self._stalled is not None:
            self._stalled.close()
            self._stalled = None

    async def reset_open(self) -> None:
        """Reset every open connection, both ways; new ones are still accepted."""
        links, self._links = list(self._links), set()
        for link in links:
            for writer in (link.client, link.upstream):
                _reset(writer)
        tasks = [task for link in links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def trip(self, marker: bytes, *, from_upstream: bool = False) -> asyncio.Event:
        """When a client next sends ``marker``, pass those bytes on, drop upstream's reply and,
        once upstream has answered (or after a second), :meth:`cut`: upstream acted on the
        request, the client never learns how it went. ``from_upstream``: when upstream next
        sends ``marker``, drop those bytes and cut. The event is set after the cut."""
        self._trip = _Trip(marker, asyncio.Event(), from_upstream)
        return self._trip.done

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        link = _Link(writer, up_writer)
        self._links.add(link)
        for task in (
            asyncio.create_task(self._upward(link, reader)),
            asyncio.create_task(self._downward(link, up_reader)),
        ):
            link.tasks.add(task)
            task.add_done_callback(link.tasks.discard)

    async def _upward(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                link.upstream.write(data)
                await link.upstream.drain()
                trip = self._trip
                if trip is not None and not trip.from_upstream and trip.marker in data:
                    link.muted = True
                    asyncio.get_running_loop().call_later(1.0, self._spring, trip)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._close(link)

    async def _downward(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                trip = self._trip
                if trip is not None and trip.from_upstream and trip.marker in data:
                    link.muted = True
                if link.muted:  # upstream answered the tripping request: nobody hears it
                    if trip is not None:
                        self._spring(trip)
                    continue
                link.client.write(data)
                await link.client.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._close(link)

    def _spring(self, trip: _Trip) -> None:
        if self._trip is not trip:
            return  # sprung already
        self._trip = None

        async def cut() -> None:
            await self.cut()
            trip.done.set()

        task = asyncio.ensure_future(cut())
        self._springs.add(task)
        task.add_done_callback(self._springs.discard)

    def _close(self, link: _Link) -> None:
        """One side ended: end the other as it ended (a close, unless it was reset)."""
        if link in self._links:
            self._links.discard(link)
            for writer in (link.client, link.upstream):
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()

    async def __aenter__(self) -> Self:
        await self.restore()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.cut()
        self._unstall()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: the close sends RST, not FIN
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()
