"""The AMI client when things go wrong: refused logins, dropped and silent connections,
``Response: Error`` to actions, failing event callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from callcenter.sim import SimConfig, Simulator
from callcenter.telephony.ami import (
    AmiActionError,
    AmiClient,
    AmiConnectionError,
    AmiLoginError,
    AmiMessage,
)

#: what a booted Asterisk sends right after a successful login
BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(time_scale=0))
    await simulator.start()
    yield simulator
    await simulator.close()


def client_for(sim: Simulator, secret: str = "s3cret", **kwargs: object) -> AmiClient:
    options: dict[str, object] = {"ping_interval": None, "reconnect_delay": 0.02}
    options.update(kwargs)
    return AmiClient("127.0.0.1", sim.ami_port, "engine", secret, **options)  # type: ignore[arg-type]


async def test_refused_login_is_not_retried(sim: Simulator) -> None:
    client = client_for(sim, "wrong")
    with pytest.raises(AmiLoginError, match="refused: Authentication failed") as caught:
        await client.connect()
    assert caught.value.response is not None and caught.value.response.response == "Error"
    assert client.state == "failed" and not client.connected
    await asyncio.sleep(0.1)
    assert not sim.ami.sessions  # Asterisk closed it; nobody tried again
    await client.close()


async def test_unreachable_server() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None)
    with pytest.raises(AmiConnectionError, match="cannot reach AMI"):
        await client.connect()
    await client.close()


async def test_dropped_connection_reconnects_and_logs_in_again(sim: Simulator) -> None:
    states: list[str] = []
    reconnected = asyncio.Event()

    async def on_reconnect(client: AmiClient) -> None:
        states.append(f"reconnect:{client.state}")
        reconnected.set()

    client = client_for(sim, on_reconnect=on_reconnect)
    client.on_disconnect(lambda c: states.append(f"disconnect:{c.state}"))
    await client.connect()
    first = next(iter(sim.ami.sessions))
    sim.drop_ami_connections()
    await asyncio.wait_for(reconnected.wait(), 5)
    assert states == ["disconnect:reconnecting", "reconnect:connected"]
    assert client.connected and client.reconnects == 1
    (second,) = sim.ami.sessions
    assert second is not first and second.authenticated
    assert (await client.ping())["Ping"] == "Pong"
    await client.close()
    assert client.state == "closed"


async def test_actions_in_flight_fail_and_are_not_resent() -> None:
    """An action sent just before the drop fails with AmiConnectionError; after reconnecting
    it is not sent again (an Originate sent twice would ring a citizen twice)."""
    received: list[bytes] = []
    connections = 0

    async def asterisk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                received.append(raw)
                action_id = raw.split(b"ActionID: ")[1].split(b"\r\n")[0]
                if raw.startswith(b"Action: Login"):
                    writer.write(b"Response: Success\r\nActionID: " + action_id +
                                 b"\r\nMessage: Authentication accepted\r\n\r\n" + BOOTED)  # fmt: skip
                elif connections == 1:
                    writer.close()  # drop it without answering
                    return

    server = await asyncio.start_server(asterisk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None,
                       reconnect_delay=0.02)  # fmt: skip
    reconnected = asyncio.Event()
    client.on_reconnect(lambda c: reconnected.set())
    try:
        await client.connect()
        with pytest.raises(AmiConnectionError, match="lost"):
            await client.originate(channel="PJSIP/0912345678@trunk", context="c", exten="s")
        await asyncio.wait_for(reconnected.wait(), 5)
        await asyncio.sleep(0.05)
    finally:
        await client.close(logoff=False)
        server.close()
        await server.wait_closed()
    actions = [raw.split(b"\r\n")[0] for raw in received]
    assert actions == [b"Action: Login", b"Action: Originate", b"Action: Login"]


async def test_silent_connection_is_dropped_by_keepalive() -> None:
    """A half-open connection (pings unanswered) is aborted, then the client reconnects."""
    connections = 0

    async def asterisk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action_id = raw.split(b"ActionID: ")[1].split(b"\r\n")[0]
                if raw.startswith(b"Action: Login") or connections > 1:
                    writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\n\r\n")
                if raw.startswith(b"Action: Login"):
                    writer.write(BOOTED)

    server = await asyncio.start_server(asterisk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=0.05,
                       ping_timeout=0.1, reconnect_delay=0.02)  # fmt: skip
    reconnected = asyncio.Event()
    client.on_reconnect(lambda c: reconnected.set())
    try:
        await client.connect()
        await asyncio.wait_for(reconnected.wait(), 5)
        assert client.connected and connections == 2
    finally:
        await client.close(logoff=False)
        server.close()
        await server.wait_closed()


async def test_relogin_refused_after_drop_gives_up(sim: Simulator) -> None:
    client = client_for(sim)
    dropped = asyncio.Event()
    client.on_disconnect(lambda c: dropped.set())
    await client.connect()
    sim.config.accounts["engine"] = "rotated"
    sim.drop_ami_connections()
    await asyncio.wait_for(dropped.wait(), 5)
    with pytest.raises(AmiLoginError):
        await asyncio.wait_for(client.wait_connected(), 5)
    assert client.state == "failed" and isinstance(client.failure, AmiLoginError)
    await asyncio.sleep(0.1)
    assert not sim.ami.sessions
    await client.close()


async def test_error_response_to_originate(sim: Simulator) -> None:
    async with client_for(sim) as client:
        with pytest.raises(AmiActionError, match="Originate failed: Invalid channel") as caught:
            await client.originate(channel="nonsense", context="inbound-1415", exten="1415")
        assert caught.value.response["Message"] == "Invalid channel"
        assert caught.value.action == "Originate"
        with pytest.raises(AmiActionError, match="Invalid/unknown command: NoSuchAction"):
            await client.send_action({"Action": "NoSuchAction"})
        with pytest.raises(AmiActionError, match="No such queue"):
            await client.send_action({"Action": "QueueAdd", "Queue": "nosuch",
                                      "Interface": "Local/1@agents"})  # fmt: skip
        assert (await client.ping()).success  # the session is still usable


async def test_failing_event_callbacks_are_logged_not_lost(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def broken(event: AmiMessage) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("callback bug")

    def plain(event: AmiMessage) -> None:
        seen.append(event["Status"])

    client = client_for(sim)
    client.on("FullyBooted", broken)
    client.on("fullybooted", plain)
    with caplog.at_level(logging.ERROR, "callcenter.telephony.ami"):
        await client.connect()
        await client.close()  # waits for the callback tasks it started
    assert seen == ["Fully Booted"]
    assert "AMI task ami-callback-broken failed" in caplog.text
    assert "RuntimeError: callback bug" in caplog.text


async def test_reconnect_backs_off_until_asterisk_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = Simulator(SimConfig(time_scale=0))
    await first.start()
    port = first.ami_port
    reconnected = asyncio.Event()
    client = AmiClient("127.0.0.1", port, "engine", "s3cret", ping_interval=None,
                       reconnect_delay=0.01, reconnect_max_delay=0.08,
                       on_reconnect=lambda c: reconnected.set())  # fmt: skip
    await client.connect()
    with caplog.at_level(logging.WARNING, "callcenter.telephony.ami"):
        await first.close()  # Asterisk goes away: the connection drops, the port is closed
        await asyncio.sleep(0.4)
        assert client.state == "reconnecting"
        second = Simulator(SimConfig(time_scale=0))
        await second.start(ami_port=port)
        try:
            await asyncio.wait_for(reconnected.wait(), 5)
            assert client.connected and (await client.ping()).success
        finally:
            await client.close()
            await second.close()
    delays = [float(r.getMessage().rsplit(" ", 1)[1][:-1]) for r in caplog.records
              if "next try in" in r.getMessage()]  # fmt: skip
    assert len(delays) >= 3
    assert delays == sorted(delays) and delays[-1] == 0.08 and delays[0] < 0.08
