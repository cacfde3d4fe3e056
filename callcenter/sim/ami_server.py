"""The simulated Asterisk's manager interface (AMI), byte for byte as recorded.

Banner ``Asterisk Call Manager/<version>``; Login (``Authentication accepted``, then
``FullyBooted`` to this session and a ``SuccessfulAuth`` security event; a second Login answers
``Already authenticated``); Ping (``Ping: Pong`` + ``Timestamp``); Logoff (``Goodbye`` /
``Thanks for all the fish.``, then the socket closes); Originate (``Originate successfully
queued``, the call's events follow); QueueAdd/QueuePause/QueueRemove/QueueStatus;
CoreShowChannels; anything else: ``Invalid/unknown command: X. Use Action: ListCommands to show
available commands.`` plus a ``RequestBadFormat`` security event.

Not in the recordings, taken from Asterisk's manager.c: a refused login answers
``Response: Error`` / ``Message: Authentication failed`` and closes the connection; actions
before login answer ``Permission denied``.

Originate with ``Application``/``Data`` (ChanSpy for supervisors, Dial for a call back) is
accepted like any Originate (``Originate successfully queued``); the simulated call ignores
the application. Every action received is kept in :attr:`AmiServer.received` (the last 1,000)
for tests to read.

Events go only to logged-in sessions whose ``Events:`` classes include the event's class
(no header or ``on``: all; ``off``: none). Like Asterisk, a session receives events raised while
it handles an action after that action's response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from datetime import UTC, datetime

from callcenter.sim.calls import Calls, OriginateRequest
from callcenter.sim.config import SimConfig
from callcenter.sim.core import AmiEvent, Pairs, SimAsterisk, event, render
from callcenter.sim.queues import Queues

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]


def header(headers: Headers, name: str, default: str = "") -> str:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), default)


class AmiSession:
    def __init__(self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.authenticated = False
        self.username = ""
        self.classes: set[str] | None = None  # None: every class
        self.session_id = f"0x{secrets.randbits(44):x}"
        self.started = server.hub.clock.wall()
        self._busy = False
        self._held: list[bytes] = []
        local, remote = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
        self.local = f"IPV4/TCP/{local[0]}/{local[1]}"
        self.remote = f"IPV4/TCP/{remote[0]}/{remote[1]}"

    def wants(self, item: AmiEvent) -> bool:
        if not self.authenticated:
            return False
        return self.classes is None or item.category in self.classes

    def deliver(self, item: AmiEvent) -> None:
        if self.wants(item):
            if self._busy:
                self._held.append(item.data)
            else:
                self.write(item.data)

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def respond(
        self,
        request: Headers,
        status: str,
        message: str | None,
        *extra: Pairs,
        lead: Pairs | None = None,
    ) -> None:
        """``Response``, ``ActionID``, ``lead`` (``EventList: start``), ``Message``, ``extra``."""
        pairs: Pairs = [("Response", status)]
        if action_id := header(request, "ActionID"):
            pairs.append(("ActionID", action_id))
        pairs.extend(lead or [])
        if message is not None:
            pairs.append(("Message", message))
        for part in extra:
            pairs.extend(part)
        self.write(render(pairs))

    def security(self, name: str, severity: str, *parts: Pairs) -> AmiEvent:
        stamp = _event_tv(self.server.hub.clock.wall())
        head = [("EventTV", stamp), ("Severity", severity), ("Service", "AMI")]
        return event(name, "security", head, [("EventVersion", "1")], *parts)

    async def run(self) -> None:
        self.write(f"Asterisk Call Manager/{self.server.config.ami_version}\r\n".encode())
        while True:
            try:
                raw = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            headers: Headers = []
            for line in raw.decode("utf-8", "replace").split("\r\n"):
                key, sep, value = line.partition(":")
                if sep:
                    headers.append((key.strip(), value.strip()))
            self._busy = True
            try:
                keep_open = await self.server.handle(self, headers)
            finally:
                self._busy = False
                held, self._held = self._held, []
                for data in held:
                    self.write(data)
            await self.writer.drain()
            if not keep_open:
                return


class AmiServer:
    def __init__(self, hub: SimAsterisk, calls: Calls, queues: Queues, config: SimConfig) -> None:
        self.hub, self.calls, self.queues, self.config = hub, calls, queues, config
        self.sessions: set[AmiSession] = set()
        self.received: deque[Headers] = deque(maxlen=1000)  # every action, as its headers
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        hub.listeners.append(self._broadcast)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    def drop_sessions(self) -> None:
        """Close every client connection abruptly (a network drop or an Asterisk restart)."""
        for session in list(self.sessions):
            session.writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_sessions()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _broadcast(self, item: AmiEvent) -> None:
        for session in list(self.sessions):
            session.deliver(item)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        except Exception:
            log.exception("simulated AMI session failed")
        finally:
            self.sessions.discard(session)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # -- actions --------------------------------------------------------------------------------

    async def handle(self, session: AmiSession, request: Headers) -> bool:
        """Answer one action; False closes the session."""
        self.received.append(request)
        action = header(request, "Action")
        name = action.lower()
        if not action:
            session.respond(request, "Error", "Missing action in request")
            return True
        if name == "login":
            return await self._login(session, request)
        if name == "logoff":
            session.respond(request, "Goodbye", "Thanks for all the fish.")
            return False
        if not session.authenticated:
            session.respond(request, "Error", "Permission denied")
            return True
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            session.respond(
                request, "Error",
                f"Invalid/unknown command: {action}. Use Action: ListCommands to show available "
                "commands.",
            )  # fmt: skip
            self.hub.publish(self._bad_format(session, action), deferred=True)
            return True
        await handler(session, request)
        return True

    def _bad_format(self, session: AmiSession, action: str) -> AmiEvent:
        where = [("SessionID", session.session_id), ("LocalAddress", session.local)]
        where += [("RemoteAddress", session.remote), ("RequestType", f"Action: {action}")]
        tail = [("SessionTV", _event_tv(session.started)), ("AccountID", session.username)]
        return session.security("RequestBadFormat", "Error", where, tail)

    async def _login(self, session: AmiSession, request: Headers) -> bool:
        if session.authenticated:
            session.respond(request, "Success", "Already authenticated")
            return True
        username, secret = header(request, "Username"), header(request, "Secret")
        if self.config.accounts.get(username) != secret or not username:
            await asyncio.sleep(self.config.auth_fail_delay)
            session.respond(request, "Error", "Authentication failed")
            return False
        session.authenticated, session.username = True, username
        session.classes = _classes(header(request, "Events", "on"))
        session.respond(request, "Success", "Authentication accepted")
        if session.classes is None or "system" in session.classes:
            uptime = str(int(self.hub.clock.wall() - self.hub.started))
            pairs = [("Uptime", uptime), ("LastReload", uptime), ("Status", "Fully Booted")]
            session.write(event("FullyBooted", "system", pairs).data)
        who = [("AccountID", username), ("SessionID", session.session_id)]
        who += [("LocalAddress", session.local), ("RemoteAddress", session.remote)]
        tail = [("UsingPassword", "0"), ("SessionTV", _event_tv(session.started))]
        self.hub.publish(session.security("SuccessfulAuth", "Informational", who, tail), deferred=True)
        return True

    async def _action_ping(self, session: AmiSession, request: Headers) -> None:
        stamp = f"{self.hub.clock.wall():.6f}"
        session.respond(request, "Success", None, [("Ping", "Pong"), ("Timestamp", stamp)])

    async def _action_originate(self, session: AmiSession, request: Headers) -> None:
        channel = header(request, "Channel")
        if not channel:
            session.respond(request, "Error", "Channel not specified")
            return
        if "/" not in channel:
            session.respond(request, "Error", "Invalid channel")
            return
        variables = []
        for key, value in request:
            if key.lower() == "variable" and "=" in value:
                name, _, content = value.partition("=")
                variables.append((name, content))
        priority = header(request, "Priority", "1")
        timeout = header(request, "Timeout", "30000")
        originate = OriginateRequest(
            action_id=header(request, "ActionID") or None, channel=channel,
            context=header(request, "Context", "default"), exten=header(request, "Exten", "s"),
            priority=int(priority) if priority.isdigit() else 1, variables=tuple(variables),
            caller_id=header(request, "CallerID"),
            timeout_ms=int(timeout) if timeout.isdigit() else 30000,
        )  # fmt: skip
        if header(request, "Async").lower() in ("true", "yes", "1", "on"):
            session.respond(request, "Success", "Originate successfully queued")
            self.hub.spawn(self.calls.originate(originate), f"originate-{channel}")
            return
        outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.hub.spawn(self.calls.originate(originate, outcome), f"originate-{channel}")
        with contextlib.suppress(TimeoutError):  # answers once the call is up or failed
            async with asyncio.timeout(originate.timeout_ms / 1000 + 5):
                await asyncio.shield(outcome)
        if outcome.done() and outcome.result() == 4:
            session.respond(request, "Success", "Originate successfully queued")
        else:
            session.respond(request, "Error", "Originate failed")

    async def _action_queueadd(self, session: AmiSession, request: Headers) -> None:
        penalty = header(request, "Penalty", "0")
        error = self.queues.add(
            header(request, "Queue"), header(request, "Interface"),
            header(request, "MemberName"), int(penalty) if penalty.isdigit() else 0,
            header(request, "Paused").lower() in ("true", "yes", "1"),
        )  # fmt: skip
        session.respond(request, "Error" if error else "Success", error or "Added interface to queue")

    async def _action_queueremove(self, session: AmiSession, request: Headers) -> None:
        error = self.queues.remove(header(request, "Queue"), header(request, "Interface"))
        text = error or "Removed interface from queue"
        session.respond(request, "Error" if error else "Success", text)

    async def _action_queuepause(self, session: AmiSession, request: Headers) -> None:
        paused = header(request, "Paused").lower() in ("true", "yes", "1")
        error = self.queues.pause(
            header(request, "Queue") or None, header(request, "Interface"), paused,
            header(request, "Reason"),
        )  # fmt: skip
        text = f"Interface {'paused' if paused else 'unpaused'} successfully"
        session.respond(request, "Error" if error else "Success", error or text)

    async def _action_queuestatus(self, session: AmiSession, request: Headers) -> None:
        action_id = header(request, "ActionID") or None
        listing = self.queues.status(action_id, header(request, "Queue") or None)
        session.respond(request, "Success", "Queue status will follow", lead=[("EventList", "start")])
        self._list(session, listing, "QueueStatusComplete", action_id)

    async def _action_coreshowchannels(self, session: AmiSession, request: Headers) -> None:
        action_id = header(request, "ActionID") or None
        tail: Pairs = [("ActionID", action_id)] if action_id else []
        now = time.monotonic()
        listing = []
        for ch in sorted(self.hub.channels.values(), key=lambda c: c.created):
            seconds = int((now - ch.created) / (self.hub.clock.time_scale or 1))
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            info = [("Application", ch.application), ("ApplicationData", ch.app_data)]
            info += [("Duration", duration), ("BridgeId", "")]
            listing.append([("Event", "CoreShowChannel"), *tail, *ch.block(), *info])
        session.respond(request, "Success", "Channels will follow", lead=[("EventList", "start")])
        self._list(session, listing, "CoreShowChannelsComplete", action_id)

    def _list(self, session: AmiSession, items: list[Pairs], end: str, action_id: str | None) -> None:
        """Write a response's event list and its ``...Complete`` event."""
        for pairs in items:
            session.write(render(pairs))
        tail: Pairs = [("ActionID", action_id)] if action_id else []
        complete = [
            ("Event", end),
            *tail,
            ("EventList", "Complete"),
            ("ListItems", str(len(items))),
        ]
        session.write(render(complete))


def _classes(events: str) -> set[str] | None:
    value = events.strip().lower()
    if value in ("on", "yes", "true", "1", "all"):
        return None
    if value in ("off", "no", "false", "0", ""):
        return set()
    return {part.strip() for part in value.split(",") if part.strip()}


def _event_tv(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
