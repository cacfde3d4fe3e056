"""AMI client for the dialer, around ``panoramisk.Manager``.

Usage::

    ami = AmiClient("127.0.0.1", 5038, "engine", secret, on_reconnect=dialer.resync)
    ami.on("OriginateResponse", dialer.on_originate_response)   # async or plain callbacks
    await ami.connect()                                          # AmiLoginError if refused
    action_id = await ami.originate(channel="PJSIP/0912345678@trunk", context="callback-1415",
                                    exten="s", variables={"INQUIRY_ID": "42"}, timeout_ms=30000)
    await ami.close()

Kept from panoramisk: the protocol (message framing, matching responses and event lists to
actions by ActionID: ``AMIProtocol``/``Action``) and the event registry of ``Manager``.
Replaced, and why:

* the login (``Manager.connection_made``): panoramisk always adds ``Events: on`` and only sets
  ``authenticated = False`` on a refused login, then reconnects forever with the same secret;
* reconnection: a fixed delay from ``loop.call_later`` whose task is dropped; here a supervised
  task with exponential back-off, ``connected`` state and ``on_disconnect``/``on_reconnect``;
* re-sending queued actions on ``FullyBooted`` after a reconnect: an Originate sent twice rings
  a citizen twice, so actions in flight fail with :class:`AmiConnectionError` instead;
* a session counted as up once logged in: Asterisk takes logins while it still boots, before
  its dialplan and channel drivers are loaded, and refuses an Originate then ("Extension does
  not exist"), a citizen's try spent on a restart. Here the session is up at ``FullyBooted``
  (sent right after the login once booted, else when the boot ends);
* event dispatch: ``asyncio.ensure_future`` without keeping the task (errors unobserved);
* serialisation: ``Action.__str__`` sorts headers; Asterisk keeps order (``Variable`` lines);
* an ``Error`` response to an event-list action never resolved its future;
* decoding: each TCP chunk was decoded with ``errors="ignore"``, dropping a UTF-8 character
  (an Arabic caller name) split across two reads.
"""

from __future__ import annotations

import asyncio
import codecs
import fnmatch
import inspect
import itertools
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from panoramisk import Manager, actions
from panoramisk.ami_protocol import AMIProtocol

from callcenter.aio import wait_any
from callcenter.telephony.ami_message import (
    AmiActionError,
    AmiConnectionError,
    AmiError,
    AmiLoginError,
    AmiMessage,
    AmiTimeout,
)

__all__ = [
    "AmiActionError",
    "AmiClient",
    "AmiConnectionError",
    "AmiError",
    "AmiLoginError",
    "AmiMessage",
    "AmiTimeout",
]

log = logging.getLogger(__name__)

EventCallback = Callable[[AmiMessage], Awaitable[None] | None]
StateCallback = Callable[["AmiClient"], Awaitable[None] | None]
State = Literal["disconnected", "connecting", "connected", "reconnecting", "failed", "closed"]
ActionValue = str | int | Sequence[str]


class _Action(actions.Action):  # type: ignore[misc]
    """Headers in the order given (panoramisk sorts them); an ``Error`` to a list action
    resolves at once (panoramisk waited for a list that never comes)."""

    def __str__(self) -> str:
        lines: list[str] = []
        for key, value in self.items():
            values = value if isinstance(value, list | tuple) else [value]
            lines.extend(f"{key}: {item}" for item in values)
        return "\r\n".join(lines) + "\r\n\r\n"

    def add_message(self, message: Any) -> bool | None:
        if not self.responses and self.as_list and message.get("Response") == "Error":
            self.responses.append(message)
            if not self.future.done():
                self.future.set_result([message])
            return True
        return super().add_message(message)  # type: ignore[no-any-return]


#: headers panoramisk matches on, which must hold one value
_SINGLE_HEADERS = frozenset({"actionid", "commandid", "event"})


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, fed whole UTF-8 characters."""

    def __init__(self, manager: _Manager) -> None:
        super().__init__()
        self._manager = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._manager.attach(self)

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if text:
            super().data_received(text.encode("utf-8"))

    def handle_message(self, message: Any) -> None:
        """A repeated ``ActionID`` or ``Event`` header keeps its first value (as
        :class:`AmiMessage` reads it): panoramisk looked the list up as a key and raised
        ``TypeError``, which closed the connection and failed every action in flight."""
        for name, value in list(message.items()):
            if isinstance(value, list) and name.lower() in _SINGLE_HEADERS:
                message[name] = value[0]
        super().handle_message(message)


class _Manager(Manager):  # type: ignore[misc]
    """``Manager`` without its own login, pinger and reconnect: :class:`AmiClient` runs those."""

    def __init__(self, client: AmiClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(host=client.host, port=client.port, loop=loop, forgetable_actions=())
        self.callbacks.clear()  # drop the FullyBooted → re-send-queued-actions hook
        self.patterns.clear()
        self._client = client
        self.booted = asyncio.Event()  # this connection saw FullyBooted
        self.lost = asyncio.Event()  # this connection ended

    def attach(self, protocol: _Protocol) -> None:
        protocol.factory = self
        protocol.log = self.log
        protocol.config = self.config
        protocol.encoding = self.encoding = "utf-8"
        self.protocol = protocol
        self.responses = protocol.responses

    def dispatch(self, event: Any) -> list[str]:
        message = AmiMessage.from_panoramisk(event)
        if (message.event or "").lower() == "fullybooted":
            self.booted.set()
        self._client._dispatch(message)
        return []

    def connection_lost(self, exc: object) -> None:
        self.awaiting_actions.clear()  # failed by the client, never re-sent
        self.lost.set()
        self._client._connection_lost(self, exc)


class AmiClient:
    """One logged-in AMI session that reconnects by itself (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        events: str | None = None,
        action_timeout: float = 10.0,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 5.0,
        boot_timeout: float | None = 60.0,
        on_reconnect: StateCallback | None = None,
        on_disconnect: StateCallback | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.username, self._secret = username, secret
        self.events = events
        self.action_timeout = action_timeout
        self.reconnect_delay, self.reconnect_max_delay = reconnect_delay, reconnect_max_delay
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        #: after the login, how long to wait for ``FullyBooted`` (None: not at all); only when
        #: the session receives ``system`` events (``events`` None, ``on``, or naming them)
        self.boot_timeout = boot_timeout if _sees_system_events(events) else None
        self.state: State = "disconnected"
        self.failure: AmiError | None = None
        self.reconnects = 0
        self._on_reconnect = [on_reconnect] if on_reconnect else []
        self._on_disconnect = [on_disconnect] if on_disconnect else []
        self._subscriptions: list[tuple[str, EventCallback]] = []
        self._manager: _Manager | None = None
        self._inflight: dict[str, _Action] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._ids = itertools.count(1)
        self._id_prefix = f"1415-{secrets.token_hex(3)}"

    # -- state --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def on_reconnect(self, callback: StateCallback) -> StateCallback:
        """Called after every successful re-login (not the first): re-sync state from here."""
        self._on_reconnect.append(callback)
        return callback

    def on_disconnect(self, callback: StateCallback) -> StateCallback:
        self._on_disconnect.append(callback)
        return callback

    async def wait_connected(self) -> None:
        """Until logged in again (wrap in ``asyncio.timeout``); raises once the client failed."""
        await self._connected.wait()
        if self.state != "connected":
            raise self.failure or AmiConnectionError(f"AMI client is {self.state}")

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and log in. AmiConnectionError if unreachable, AmiLoginError if refused."""
        if self.state not in ("disconnected", "failed"):
            raise AmiError(f"AMI client is already {self.state}")
        self.state, self.failure = "connecting", None
        try:
            await self._open()
        except AmiError as exc:
            self.state, self.failure = "failed", exc
            raise
        self._become_connected()
        self._supervisor = self._spawn(self._keepalive(), "ami-keepalive")

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        manager = _Manager(self, loop)
        try:
            await loop.create_connection(lambda: _Protocol(manager), self.host, self.port)
        except OSError as exc:
            raise AmiConnectionError(f"cannot reach AMI at {self.host}:{self.port}: {exc}") from exc
        self._manager = manager
        login: dict[str, ActionValue] = {"Action": "Login", "ActionID": self._next_id()}
        login |= {"Username": self.username, "Secret": self._secret}
        if self.events is not None:
            login["Events"] = self.events
        try:
            (reply,) = await self._send(login, as_list=False, reply_timeout=self.action_timeout)
        except AmiError:
            manager.close()
            raise
        if reply.response != "Success":
            manager.close()
            text = reply.get("Message") or reply.response
            raise AmiLoginError(f"AMI login as {self.username!r} refused: {text}", response=reply)
        if self.boot_timeout is not None and not manager.booted.is_set():
            await self._wait_booted(manager, self.boot_timeout)

    async def _wait_booted(self, manager: _Manager, within_s: float) -> None:
        """Until this connection sees ``FullyBooted`` (Asterisk still booting: its dialplan
        and channel drivers may not be loaded yet); AmiConnectionError if it ends or times out."""
        log.info("AMI logged in to %s:%d; waiting for Asterisk to finish booting", self.host, self.port)
        await wait_any(manager.booted, manager.lost, seconds=within_s)
        if manager.booted.is_set() and not manager.lost.is_set():
            return
        manager.close()
        if manager.lost.is_set():
            raise AmiConnectionError(f"AMI connection to {self.host}:{self.port} lost while Asterisk booted")
        raise AmiConnectionError(
            f"no FullyBooted from Asterisk at {self.host}:{self.port} within {within_s:g}s of the login "
            "(still booting, or the AMI user may not read 'system' events: see read= in manager.conf)"
        )

    def _become_connected(self) -> None:
        self.state = "connected"
        self._connected.set()
        log.info("AMI connected to %s:%d as %s", self.host, self.port, self.username)

    def _connection_lost(self, manager: _Manager, exc: object) -> None:
        if manager is not self._manager:
            return  # an earlier connection, already given up
        self._fail_inflight(AmiConnectionError(f"AMI connection lost: {exc or 'closed'}"))
        if self.state != "connected":
            return  # a login attempt failing (its caller retries or fails), or our close()
        log.warning("AMI connection to %s:%d lost: %s", self.host, self.port, exc or "closed")
        self.state = "reconnecting"
        self._connected.clear()
        for callback in self._on_disconnect:
            self._call(callback, self)
        if self._supervisor is not None:
            self._supervisor.cancel()
        self._supervisor = self._spawn(self._reconnect(), "ami-reconnect")

    async def _reconnect(self) -> None:
        delay = self.reconnect_delay
        while True:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                await self._open()
            except AmiLoginError as exc:
                log.error("AMI reconnect refused, giving up: %s", exc)
                self.state, self.failure = "failed", exc
                self._connected.set()  # wake waiters; they see the failure
                return
            except Exception as exc:  # unreachable, timed out, reset: try again later
                delay = min(delay * 2, self.reconnect_max_delay)
                log.warning("AMI reconnect failed (%s); next try in %.2fs", exc, delay)
                continue
            self.reconnects += 1
            self._become_connected()
            for callback in self._on_reconnect:
                self._call(callback, self)
            self._supervisor = self._spawn(self._keepalive(), "ami-keepalive")
            return

    async def _keepalive(self) -> None:
        """Ping now and then; a silent (half-open) connection is aborted, which reconnects."""
        if self.ping_interval is None:
            return
        while self.state == "connected":
            await asyncio.sleep(self.ping_interval)
            try:
                await self.send_action({"Action": "Ping"}, reply_timeout=self.ping_timeout)
            except AmiTimeout:
                log.warning("AMI ping unanswered for %.1fs; dropping it", self.ping_timeout)
                if self._manager is not None and self._manager.protocol is not None:
                    self._manager.protocol.transport.abort()
                return
            except AmiError:
                return

    async def close(self, *, logoff: bool = True) -> None:
        """Log off (when connected), stop reconnecting, wait for event callbacks."""
        if self.state == "closed":
            return
        was_connected, self.state = self.state == "connected", "closed"
        if self._supervisor is not None:
            self._supervisor.cancel()
        if was_connected and logoff:
            try:
                await self._send({"Action": "Logoff"}, as_list=False, reply_timeout=2.0)
            except AmiError as exc:
                log.debug("AMI logoff: %s", exc)
        if self._manager is not None:
            self._manager.close()
        self._fail_inflight(AmiConnectionError("AMI client closed"))
        self._connected.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- actions ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    async def send_action(
        self, action: Mapping[str, ActionValue], *, reply_timeout: float | None = None
    ) -> AmiMessage:
        """Send an action (an ``ActionID`` is added when missing); its response message.
        ``Response: Error`` raises :class:`AmiActionError`."""
        (reply,) = await self._send(action, as_list=False, reply_timeout=reply_timeout)
        if reply.response in ("Error", "Failure"):
            name = str(action.get("Action", "?"))
            text = reply.get("Message") or reply.response
            raise AmiActionError(f"AMI {name} failed: {text}", action=name, response=reply)
        return reply

    async def send_list(
        self, action: Mapping[str, ActionValue], *, reply_timeout: float | None = None
    ) -> list[AmiMessage]:
        """An action answered by an event list (``QueueStatus``, ``CoreShowChannels``):
        the response followed by every event up to the ``...Complete`` one."""
        replies = await self._send(action, as_list=True, reply_timeout=reply_timeout)
        first = replies[0]
        if first.response in ("Error", "Failure"):
            name = str(action.get("Action", "?"))
            text = first.get("Message") or first.response
            raise AmiActionError(f"AMI {name} failed: {text}", action=name, response=first)
        return replies

    async def _send(
        self, action: Mapping[str, ActionValue], *, as_list: bool, reply_timeout: float | None
    ) -> list[AmiMessage]:
        """The response, or (``as_list``) the response and its event list."""
        manager = self._manager
        if manager is None or manager.protocol is None or manager.protocol.closed:
            raise AmiConnectionError(f"not connected to AMI ({self.state})")
        fields: dict[str, Any] = {"Action": action.get("Action", "")}
        fields["ActionID"] = action.get("ActionID") or self._next_id()
        for key, value in action.items():
            if key not in ("Action", "ActionID"):
                fields[key] = list(value) if isinstance(value, list | tuple) else str(value)
        request = _Action(fields, as_list=as_list)
        self._inflight[fields["ActionID"]] = request
        try:
            manager.protocol.send(request, as_list=as_list)
            async with asyncio.timeout(reply_timeout or self.action_timeout):
                result = await request.future
        except TimeoutError:
            raise AmiTimeout(f"no AMI response to {fields['Action']} in time") from None
        finally:
            self._inflight.pop(fields["ActionID"], None)
            manager.responses.pop(request.id, None)
        items = result if as_list else [result]
        return [AmiMessage.from_panoramisk(item) for item in items]

    def _fail_inflight(self, error: AmiError) -> None:
        for request in list(self._inflight.values()):
            if not request.future.done():
                request.future.set_exception(error)
        self._inflight.clear()

    async def ping(self) -> AmiMessage:
        return await self.send_action({"Action": "Ping"})

    async def originate(
        self,
        *,
        channel: str,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str | None = None,
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        timeout_ms: int | None = None,
        async_: bool = True,
        action_id: str | None = None,
    ) -> str:
        """Place a call; returns the ActionID that its ``OriginateResponse`` event will carry.

        With ``async_`` (the default) Asterisk answers at once ("successfully queued") and the
        outcome arrives as ``OriginateResponse`` (``Reason`` 4 answered, 5 busy, 3 no answer,
        8 congestion, 0 failed).
        """
        action: dict[str, ActionValue] = {"Action": "Originate"}
        action["ActionID"] = action_id or self._next_id()
        action["Channel"] = channel
        if application is not None:
            action["Application"] = application
            if data is not None:
                action["Data"] = data
        else:
            if context is None or exten is None:
                raise ValueError("originate needs context and exten, or an application")
            action |= {"Context": context, "Exten": exten, "Priority": str(priority)}
        if caller_id is not None:
            action["CallerID"] = caller_id
        if variables:
            action["Variable"] = [f"{key}={value}" for key, value in variables.items()]
        if timeout_ms is not None:
            action["Timeout"] = str(int(timeout_ms))
        action["Async"] = "true" if async_ else "false"
        wait = self.action_timeout + (0 if async_ else (timeout_ms or 30000) / 1000)
        await self.send_action(action, reply_timeout=wait)
        return str(action["ActionID"])

    async def redirect(self, *, channel: str, context: str, exten: str, priority: int = 1) -> None:
        """Send a channel elsewhere in the dialplan (the application it runs ends: an AGI
        session hears ``HANGUP``; a channel in a Dial leaves it and the other leg hangs up).
        A channel that no longer exists raises :class:`AmiActionError` ("Channel does not
        exist")."""
        await self.send_action(
            {"Action": "Redirect", "Channel": channel, "Context": context, "Exten": exten,
             "Priority": str(priority)}
        )  # fmt: skip

    # -- events -------------------------------------------------------------------------------

    def on(self, pattern: str, callback: EventCallback) -> EventCallback:
        """Call ``callback(event)`` for events whose name matches ``pattern`` (``"Hangup"``,
        ``"Queue*"``, ``"*"``). Async callbacks run as tasks the client keeps and whose
        exceptions it logs."""
        self._subscriptions.append((pattern.lower(), callback))
        return callback

    def off(self, pattern: str, callback: EventCallback) -> None:
        self._subscriptions.remove((pattern.lower(), callback))

    def _dispatch(self, event: AmiMessage) -> None:
        name = (event.event or "").lower()
        for pattern, callback in list(self._subscriptions):
            if fnmatch.fnmatchcase(name, pattern):
                self._call(callback, event)

    def _call(self, callback: Callable[[Any], Awaitable[None] | None], arg: Any) -> None:
        try:
            result = callback(arg)
        except Exception:
            log.exception("AMI callback %r failed", callback)
            return
        if inspect.isawaitable(result):
            self._spawn(result, f"ami-callback-{getattr(callback, '__name__', 'callback')}")

    def _spawn(self, awaitable: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(awaitable)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("AMI task %s failed", task.get_name(), exc_info=exc)


def _sees_system_events(events: str | None) -> bool:
    """Whether a login with this ``Events`` header receives ``FullyBooted`` (class ``system``):
    no header or ``on`` means every class the user may read (manager.conf ``read=``)."""
    if events is None:
        return True
    classes = {part.strip().lower() for part in events.split(",")}
    return bool(classes & {"on", "yes", "true", "all", "system"})
