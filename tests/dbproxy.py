"""A TCP proxy in front of PostgreSQL that a test can cut and restore: a database outage as
the engine meets it (connections reset mid-query, new connections refused), without stopping
the PostgreSQL every other test session on the machine shares.

Usage::

    async with DbProxy(5432) as proxy:
        url = proxy.url(pg_url)      # the same database, through the proxy
        await proxy.cut()            # every open connection reset, new ones refused
        await proxy.stall()          # ... or connections taken and never answered
        await proxy.restore()        # accepting again, on the same port
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType
from typing import Self

from sqlalchemy.engine import make_url


class DbProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        sock.close()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled: socket.socket | None = None

    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the proxy's."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    async def restore(self) -> None:
        if self._stalled is not None:
            self._stalled.close()
            self._stalled = None
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def cut(self) -> None:
        """Refuse new connections and reset every open one (RST, as a crashed server's host)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close() sends a reset, not a FIN
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def stall(self) -> None:
        """A database that stops answering (a failover, a black-holed route): open connections
        are reset, new ones are taken by the kernel and then nothing, no greeting, ever."""
        await self.cut()
        self._stalled = socket.socket()
        self._stalled.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._stalled.bind(("127.0.0.1", self.port))
        self._stalled.listen(128)  # never accepted

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(dst)
            dst.transport.abort()

    async def __aenter__(self) -> Self:
        await self.restore()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.cut()
        if self._stalled is not None:
            self._stalled.close()
            self._stalled = None
