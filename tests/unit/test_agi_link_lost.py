"""A FastAGI connection that ends before Asterisk said ``HANGUP`` (Asterisk killed, the link
reset) is :class:`AgiConnectionLost`: still a hangup for every handler, but one the citizen did
not make, so the IVR can record it as a failure on our side rather than an abandonment."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from callcenter.telephony.agi import (
    KEEPALIVE_EVERY_S,
    KEEPALIVE_PROBES,
    AgiChannel,
    AgiConnectionLost,
    AgiEnv,
    AgiHangup,
    AgiServer,
)
from tests.unit.test_agi_errors import ENV, FakeAsterisk, capture


@pytest.fixture
async def server() -> AsyncIterator[AgiServer]:
    srv = AgiServer("127.0.0.1", 0, hangup_grace=0.05, close_timeout=2)
    await srv.start()
    yield srv
    await srv.close()


async def test_a_connection_closed_mid_command_before_any_hangup_is_a_lost_link(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    results, done, route = capture(server)
    route(lambda call: call.get_data("/prompts/ar/q1", 6000, 1))
    with caplog.at_level(logging.WARNING, "callcenter.telephony.agi"):
        await FakeAsterisk(server.port, []).run()  # reads the command, then closes
        await asyncio.wait_for(done.wait(), 3)
        await asyncio.sleep(0.05)
    assert isinstance(results[0], AgiConnectionLost) and isinstance(results[0], AgiHangup)
    assert "Asterisk closed the FastAGI connection" in str(results[0])
    assert "FastAGI connection lost mid-call on PJSIP/citizen-00000001" in caplog.text
    assert server.active_calls == 0


async def test_a_reset_connection_is_a_lost_link(server: AgiServer) -> None:
    results, done, route = capture(server)
    route(lambda call: call.get_data("/prompts/ar/q1", 6000, 1))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(("\n".join(ENV).format(script="ivr") + "\n\n").encode())
    assert (await asyncio.wait_for(reader.readline(), 3)).startswith(b"GET DATA")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST, as a firewall or a dead switch would
    await asyncio.wait_for(done.wait(), 3)
    assert isinstance(results[0], AgiConnectionLost)


async def test_a_connection_reset_between_commands_is_a_lost_link(server: AgiServer) -> None:
    """The reset comes while the handler works (the database, say) and nothing reads: the
    next command finds the connection closed."""
    results, done, route = capture(server)
    reset = asyncio.Event()

    async def body(call: AgiChannel) -> object:
        await call.answer()
        await asyncio.wait_for(reset.wait(), 3)
        await asyncio.sleep(0.1)
        return await call.get_variable("CC_DELIVERY_ID")

    route(body)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(("\n".join(ENV).format(script="ivr") + "\n\n").encode())
    assert await asyncio.wait_for(reader.readline(), 3) == b"ANSWER\n"
    writer.write(b"200 result=0\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    reset.set()
    await asyncio.wait_for(done.wait(), 3)
    assert isinstance(results[0], AgiConnectionLost)


async def test_a_connection_closed_after_hangup_is_an_ordinary_hangup(server: AgiServer) -> None:
    """After ``HANGUP`` Asterisk may close at any time: that is the caller's hangup."""
    results, done, route = capture(server)

    async def body(call: AgiChannel) -> list[str]:
        seen: list[str] = []
        with contextlib.suppress(AgiHangup):
            await call.stream_file("welcome")
        seen.append("hangup")
        try:
            await call.get_variable("CC_DELIVERY_ID")  # Asterisk has closed meanwhile
        except AgiHangup as exc:
            seen.append(type(exc).__name__)
        return seen

    route(body)
    await FakeAsterisk(server.port, ["HANGUP\n200 result=-1 endpos=0\n"]).run()
    await asyncio.wait_for(done.wait(), 3)
    assert results == [["hangup", "AgiHangup"]]


async def test_a_connection_the_kernel_timed_out_is_a_lost_link() -> None:
    """A dead Asterisk host or a link dropping packets says nothing; TCP keepalive (or
    TCP_USER_TIMEOUT) ends the connection with ETIMEDOUT, which reaches the call as a lost link."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    reader = asyncio.StreamReader()
    reader.set_exception(TimeoutError(errno.ETIMEDOUT, "Connection timed out"))
    call = AgiChannel(reader, writer, AgiEnv({"agi_channel": "PJSIP/citizen-00000001"}))
    try:
        with pytest.raises(AgiConnectionLost, match="Connection timed out"):
            await call.get_data("/prompts/ar/q1", 6000, 1)
        assert call.hung_up
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_the_server_probes_idle_connections_so_a_silent_link_ends_the_call() -> None:
    options: list[tuple[int, ...]] = []

    async def ivr(call: AgiChannel) -> None:
        sock = call._writer.get_extra_info("socket")
        tcp = socket.IPPROTO_TCP
        options.append(
            (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
                sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
                sock.getsockopt(tcp, socket.TCP_KEEPCNT),
                sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
            )
        )

    async with AgiServer("127.0.0.1", 0, keepalive_s=20) as srv:
        srv.register("ivr", ivr)
        await FakeAsterisk(srv.port, []).run()
        async with asyncio.timeout(3):
            while srv.active_calls or not options:
                await asyncio.sleep(0.01)
    limit_ms = (20 + KEEPALIVE_PROBES * KEEPALIVE_EVERY_S) * 1000
    assert options == [(1, 20, KEEPALIVE_EVERY_S, KEEPALIVE_PROBES, limit_ms)]
