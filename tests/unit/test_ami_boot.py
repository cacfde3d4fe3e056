"""The AMI client and an Asterisk that is still booting: Asterisk accepts logins before its
dialplan and channel drivers are loaded (an Originate then fails: "Extension does not exist"),
so a session is up only once ``FullyBooted`` came, on the first connect and on a reconnect."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from callcenter.telephony.ami import AmiClient, AmiConnectionError

BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"


class BootingAsterisk:
    """Answers Login and Ping; sends ``FullyBooted`` after the login once :meth:`boot` was
    called, and to every logged-in session at that moment (as Asterisk does)."""

    def __init__(self, *, booted: bool = False) -> None:
        self.booted = booted
        self.logins: list[bytes] = []
        self.actions: list[bytes] = []
        self._sessions: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, reuse_address=True)
        return int(self._server.sockets[0].getsockname()[1])

    def boot(self) -> None:
        self.booted = True
        for writer in self._sessions:
            writer.write(BOOTED)

    def drop(self) -> None:
        for writer in list(self._sessions):
            writer.transport.abort()

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action_id = raw.split(b"ActionID: ")[1].split(b"\r\n")[0]
                reply = b"Response: Success\r\nActionID: " + action_id
                if raw.startswith(b"Action: Login"):
                    self.logins.append(raw)
                    writer.write(reply + b"\r\nMessage: Authentication accepted\r\n\r\n")
                    self._sessions.add(writer)
                    if self.booted:
                        writer.write(BOOTED)
                else:
                    self.actions.append(raw.split(b"\r\n")[0])
                    writer.write(reply + b"\r\n\r\n")
        self._sessions.discard(writer)


@pytest.fixture
async def asterisk() -> BootingAsterisk:
    return BootingAsterisk()


async def test_the_first_connect_waits_until_asterisk_has_booted(asterisk: BootingAsterisk) -> None:
    port = await asterisk.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None)
    try:
        connecting = asyncio.create_task(client.connect())
        await asyncio.sleep(0.2)
        assert len(asterisk.logins) == 1 and not connecting.done() and not client.connected
        asterisk.boot()
        await asyncio.wait_for(connecting, 5)
        assert client.connected
        assert (await client.ping()).success
    finally:
        await client.close()
        await asterisk.close()


async def test_a_reconnect_into_a_booting_asterisk_is_up_only_once_it_has_booted(
    asterisk: BootingAsterisk,
) -> None:
    """Asterisk restarted: the re-login succeeds at once, but the dialer (which dials only while
    ``connected``) and the resync of ``on_reconnect`` wait for the end of the boot."""
    asterisk.booted = True
    port = await asterisk.start()
    reconnected = asyncio.Event()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None, reconnect_delay=0.02,
                       on_reconnect=lambda c: reconnected.set())  # fmt: skip
    try:
        await client.connect()
        asterisk.booted = False  # restarted: logins are taken, the boot is not over
        asterisk.drop()
        async with asyncio.timeout(5):
            while len(asterisk.logins) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert client.state == "reconnecting" and not reconnected.is_set()
        asterisk.boot()
        await asyncio.wait_for(reconnected.wait(), 5)
        assert client.connected and client.reconnects == 1
    finally:
        await client.close()
        await asterisk.close()


async def test_a_connection_lost_during_the_boot_is_retried(asterisk: BootingAsterisk) -> None:
    asterisk.booted = True
    port = await asterisk.start()
    reconnected = asyncio.Event()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None, reconnect_delay=0.02,
                       on_reconnect=lambda c: reconnected.set())  # fmt: skip
    try:
        await client.connect()
        asterisk.booted = False
        asterisk.drop()
        async with asyncio.timeout(5):
            while len(asterisk.logins) < 2:
                await asyncio.sleep(0.01)
        asterisk.drop()  # Asterisk dies again mid-boot
        async with asyncio.timeout(5):
            while len(asterisk.logins) < 3:
                await asyncio.sleep(0.01)
        asterisk.boot()
        await asyncio.wait_for(reconnected.wait(), 5)
        assert client.connected and client.reconnects == 1
    finally:
        await client.close()
        await asterisk.close()


async def test_no_fullybooted_in_time_fails_the_connect_and_says_why(asterisk: BootingAsterisk) -> None:
    port = await asterisk.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None, boot_timeout=0.2)
    try:
        with pytest.raises(AmiConnectionError, match=r"no FullyBooted .* 0.2s .*read= in manager.conf"):
            await client.connect()
        assert client.state == "failed"
    finally:
        await client.close()
        await asterisk.close()


async def test_the_connection_dying_during_the_first_boot_fails_the_connect(
    asterisk: BootingAsterisk,
) -> None:
    port = await asterisk.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None)
    try:
        connecting = asyncio.create_task(client.connect())
        async with asyncio.timeout(5):
            while not asterisk.logins:
                await asyncio.sleep(0.01)
        asterisk.drop()
        with pytest.raises(AmiConnectionError, match="lost while Asterisk booted"):
            await asyncio.wait_for(connecting, 5)
    finally:
        await client.close()
        await asterisk.close()


@pytest.mark.parametrize("events", ["off", "call,agent,dtmf"])
async def test_a_session_without_system_events_does_not_wait_for_the_boot(
    asterisk: BootingAsterisk, events: str
) -> None:
    """Such a session never receives ``FullyBooted``: it is up once logged in (the desk's
    short-lived connections use ``events="off"``)."""
    port = await asterisk.start()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", events=events, ping_interval=None)
    try:
        await asyncio.wait_for(client.connect(), 2)
        assert client.connected
    finally:
        await client.close()
        await asterisk.close()
