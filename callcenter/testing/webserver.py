"""The app served for real, on a free 127.0.0.1 port, by uvicorn in a background thread.

A browser (the Playwright tests) or a load generator (a benchmark) needs a real socket, not
an ASGI transport. The server gets its own thread and event loop, so the caller's loop stays
free to drive the browser and the database; the app's lifespan (its engine, Redis pool and
SMS inbox) runs in that loop and is torn down when the server stops.

    with LiveServer(create_app(settings)) as server:
        page.goto(server.url("/login"))
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: a request with this header is answered as the app sends it, never held (see HoldResponses)
UNHELD_HEADER = "x-live-server-unheld"


class ServerDidNotStart(RuntimeError):
    """The server thread died, or /health did not answer in time (the message says which)."""


class HoldResponses:
    """Release each response only once the app has returned from its request.

    FastAPI closes a route's ``yield`` dependencies (and so commits the database session)
    after the response has gone out; a browser that follows a redirect at once can then read
    the state from before the commit. Holding the response until the app is done takes that
    race out of tests that are about something else. Event streams (``text/event-stream``)
    pass straight through, and a request with the :data:`UNHELD_HEADER` header is not held,
    so a test can still show the race itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unheld = UNHELD_HEADER.encode()
        if scope["type"] != "http" or any(name == unheld for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        streaming = False

        async def hold(message: Message) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                streaming = content_type.startswith(b"text/event-stream")
            if streaming:
                await send(message)
            else:
                held.append(message)

        try:
            await self.app(scope, receive, hold)
        finally:
            for message in held:
                await send(message)


class LiveServer:
    """Serve ``app`` on 127.0.0.1 at a port chosen by the kernel (no race: the socket is bound
    before uvicorn gets it). ``host`` is the name in :attr:`base_url`: ``localhost`` by default,
    a name browsers treat as a secure context, so ``Secure`` cookies work over plain http.
    ``hold_responses``: see :class:`HoldResponses`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "localhost",
        hold_responses: bool = False,
        health_path: str = "/health",
        startup_timeout_s: float = 20.0,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        self.app: ASGIApp = HoldResponses(app) if hold_responses else app
        self.host = host
        self.health_path = health_path
        self.startup_timeout_s = startup_timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            # open Server-Sent Event streams must not hold the shutdown for long
            timeout_graceful_shutdown=max(1, int(self.shutdown_timeout_s / 2)),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"live-server:{self.port}", daemon=True)
        self._thread.start()
        self._wait_until_healthy()

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except Exception as exc:  # kept for the starting thread, which reports it
            self._error = exc

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last = "no answer yet"
        # ask 127.0.0.1 directly: the server listens on IPv4 only, whatever ``host`` says
        probe = f"http://127.0.0.1:{self.port}{self.health_path}"
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                self.stop()
                raise ServerDidNotStart(f"the server thread stopped: {self._error!r}")
            try:
                with urllib.request.urlopen(probe, timeout=2) as answer:
                    if answer.status == 200:
                        return
                    last = f"HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.05)
        self.stop()
        raise ServerDidNotStart(f"{probe} did not answer 200 in {self.startup_timeout_s:.0f} s ({last})")

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the lifespan to close; force it if it takes too long."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.shutdown_timeout_s)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(self.shutdown_timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
