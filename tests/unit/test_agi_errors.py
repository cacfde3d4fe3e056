"""Bad input on the FastAGI side: unknown scripts, malformed or error replies, hangups in the
middle of a command, crashing handlers; plus argument quoting and server lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from callcenter.telephony.agi import (
    AgiChannel,
    AgiCommandFailed,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiServer,
    AgiUsageError,
    script_name,
)
from callcenter.telephony.agi_wire import command_name, parse_result, quote, split_args, word

ENV = [
    "agi_network: yes",
    "agi_network_script: {script}",
    "agi_request: agi://127.0.0.1:4573/{script}",
    "agi_channel: PJSIP/citizen-00000001",
    "agi_language: ar",
    "agi_uniqueid: 1795531437.1",
    "agi_callerid: 0912345678",
    "agi_calleridname: unknown",
    "agi_dnid: 1415",
    "agi_context: inbound-1415",
    "agi_extension: 1415",
    "agi_accountcode: ",
    "agi_arg_1: main",
    "agi_arg_2: with space",
]


class FakeAsterisk:
    """Connects like Asterisk; answers each command line with the next scripted reply."""

    def __init__(self, port: int, replies: list[str], script: str = "ivr") -> None:
        self.port, self.replies, self.script = port, list(replies), script
        self.received: list[str] = []

    async def run(self, *, idle: float = 5.0) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            env = "\n".join(ENV).format(script=self.script)
            writer.write(f"{env}\n\n".encode())
            async with asyncio.timeout(idle):
                while line := await reader.readline():
                    self.received.append(line.decode())
                    if not self.replies:
                        break
                    writer.write(self.replies.pop(0).encode())
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return self.received


@pytest.fixture
async def server() -> AsyncIterator[AgiServer]:
    srv = AgiServer("127.0.0.1", 0, hangup_grace=0.05, close_timeout=2)
    await srv.start()
    yield srv
    await srv.close()


def capture(server: AgiServer) -> tuple[list[object], asyncio.Event, Callable[..., None]]:
    results: list[object] = []
    done = asyncio.Event()

    def route(body: Callable[[AgiChannel], Awaitable[object]]) -> None:
        async def handler(call: AgiChannel) -> None:
            try:
                results.append(await body(call))
            except Exception as exc:
                results.append(exc)
                raise
            finally:
                done.set()

        server.register("ivr", handler)

    return results, done, route


async def test_environment_is_parsed(server: AgiServer) -> None:
    results, done, route = capture(server)
    route(lambda call: asyncio.sleep(0, call.env))
    await FakeAsterisk(server.port, []).run()
    await done.wait()
    env = results[0]
    assert env.script == "ivr" and env.channel == "PJSIP/citizen-00000001"  # type: ignore[attr-defined]
    assert env.callerid == "0912345678" and env.calleridname is None  # type: ignore[attr-defined]
    assert env.dnid == "1415" and env.language == "ar"  # type: ignore[attr-defined]
    assert env.arguments == ["main", "with space"]  # type: ignore[attr-defined]
    assert env["agi_accountcode"] == ""  # type: ignore[index]


async def test_unknown_script_gets_verbose_and_hangup(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    results, done, route = capture(server)
    route(lambda call: call.answer())
    received = await FakeAsterisk(server.port, ["200 result=1\n", "200 result=1\n"], "nosuch").run()
    assert received == ["VERBOSE \"1415: no AGI script named 'nosuch'\" 1\n", "HANGUP\n"]
    assert "no AGI handler for script 'nosuch'" in caplog.text
    # the server is still serving
    assert await FakeAsterisk(server.port, ["200 result=0\n"]).run() == ["ANSWER\n"]
    await done.wait()
    assert results == [None]


@pytest.mark.parametrize("line", ["garbage\n", "200 foo=1\n", "300 result=0\n", "20 result=0\n"])
async def test_malformed_reply_raises_protocol_error(server: AgiServer, line: str) -> None:
    results, done, route = capture(server)
    route(lambda call: call.answer())
    received = await FakeAsterisk(server.port, [line]).run(idle=3)
    await asyncio.wait_for(done.wait(), 3)
    assert received == ["ANSWER\n"]
    assert isinstance(results[0], AgiProtocolError)
    assert repr(line.strip())[1:-1] in str(results[0])


async def test_eof_mid_command_is_a_hangup(server: AgiServer) -> None:
    results, done, route = capture(server)
    route(lambda call: call.stream_file("welcome", "12"))
    await FakeAsterisk(server.port, []).run()
    await asyncio.wait_for(done.wait(), 3)
    assert isinstance(results[0], AgiHangup)


async def test_error_codes(server: AgiServer) -> None:
    results, done, route = capture(server)

    async def body(call: AgiChannel) -> list[object]:
        got: list[object] = []
        for line in ("BOGUS", "GET DATA", "GET DATA", "CHANNEL STATUS"):
            try:
                await call.command(line)
            except (AgiInvalidCommand, AgiUsageError, AgiDeadChannel) as exc:
                got.append(exc)
        return got

    route(body)
    usage = (
        "520-Invalid command syntax.  Proper usage follows:\n"
        "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
        " Stream the given file.\n"
        "520 End of proper usage.\n"
    )
    replies = [
        "510 Invalid or unknown command\n",
        usage,
        "520 Invalid command syntax.  Proper usage not available.\n",
        "511 Command Not Permitted on a dead channel or intercept routine\n",
    ]
    await FakeAsterisk(server.port, replies).run()
    await done.wait()
    invalid, multi, single, dead = cast(list[object], results[0])
    assert isinstance(invalid, AgiInvalidCommand)
    assert invalid.reply is not None and invalid.reply.code == 510
    assert isinstance(multi, AgiUsageError)
    usage_text = "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n Stream the given file."
    assert multi.usage == usage_text
    assert isinstance(single, AgiUsageError) and single.usage == ""
    assert isinstance(dead, AgiDeadChannel) and isinstance(dead, AgiHangup)


async def test_hangup_line_between_command_and_reply(server: AgiServer) -> None:
    results, done, route = capture(server)

    async def body(call: AgiChannel) -> list[object]:
        got: list[object] = []
        try:
            await call.stream_file("welcome")
        except AgiHangup as exc:
            got.append(("hangup", exc.reply.lines if exc.reply else None))
        got.append(call.hung_up)
        got.append(await call.get_variable("INQUIRY_ID"))  # allowed on a dead channel
        try:
            await call.get_data("menu", 1000, 1)
        except AgiHangup as exc:  # -1 on a channel known to be hung up: no grace wait
            got.append(type(exc).__name__)
        return got

    route(body)
    replies = ["HANGUP\n200 result=-1 endpos=1200\n", "200 result=1 (42)\n", "200 result=-1\n"]
    await FakeAsterisk(server.port, replies).run()
    await done.wait()
    assert results[0] == [("hangup", ("200 result=-1 endpos=1200",)), True, "42", "AgiHangup"]


async def test_minus_one_then_hangup_line_is_a_hangup(server: AgiServer) -> None:
    results, done, route = capture(server)

    async def body(call: AgiChannel) -> object:
        try:
            return await call.get_data("menu", 3000, 1)
        except (AgiHangup, AgiCommandFailed) as exc:
            return type(exc).__name__

    route(body)
    # Asterisk writes HANGUP right after the -1 reply when the caller has gone
    await FakeAsterisk(server.port, ["200 result=-1\nHANGUP\n"]).run()
    await done.wait()
    assert results == ["AgiHangup"]


async def test_minus_one_without_hangup_is_a_failure(server: AgiServer) -> None:
    results, done, route = capture(server)

    async def body(call: AgiChannel) -> object:
        try:
            return await call.stream_file("/prompts/ar/missing")
        except AgiCommandFailed as exc:
            return exc.reply.extra if exc.reply else None

    route(body)
    await FakeAsterisk(server.port, ["200 result=-1 endpos=0\n"]).run()
    await done.wait()
    assert results == [{"endpos": "0"}]


async def test_handler_crash_is_logged_with_channel(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(call: AgiChannel) -> None:
        await call.answer()
        raise RuntimeError("boom")

    server.register("ivr", crash)
    with caplog.at_level(logging.ERROR, "callcenter.telephony.agi"):
        await FakeAsterisk(server.port, ["200 result=0\n"]).run()
        await asyncio.sleep(0.05)
    assert "AGI handler 'ivr' failed on PJSIP/citizen-00000001 (1795531437.1)" in caplog.text
    assert "RuntimeError: boom" in caplog.text
    assert server.active_calls == 0


async def test_handler_hangup_ends_quietly(server: AgiServer, caplog: pytest.LogCaptureFixture) -> None:
    async def ivr(call: AgiChannel) -> None:
        await call.wait_for_digit(5000)

    server.register("ivr", ivr)
    with caplog.at_level(logging.WARNING):
        await FakeAsterisk(server.port, ["HANGUP\n511 Command Not Permitted\n"]).run()
        await asyncio.sleep(0.05)
    assert caplog.records == []


async def test_silent_client_times_out(caplog: pytest.LogCaptureFixture) -> None:
    srv = AgiServer("127.0.0.1", 0, env_timeout=0.1)
    await srv.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"agi_network: yes\n")
        assert await asyncio.wait_for(reader.read(), 2) == b""  # the server hung up
        writer.close()
        assert "no AGI environment within 0.1s" in caplog.text
    finally:
        await srv.close()


async def test_bad_environment_line(server: AgiServer, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\n\n")
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert "not an AGI environment line" in caplog.text


def test_registration_rules() -> None:
    srv = AgiServer()

    def not_async(call: AgiChannel) -> None:
        return None

    with pytest.raises(TypeError):
        srv.register("main", not_async)  # type: ignore[arg-type]

    @srv.route("/main")
    async def main(call: AgiChannel) -> None:
        return None

    with pytest.raises(ValueError, match="already"):
        srv.register("main", main)

    class Handler:
        async def __call__(self, call: AgiChannel) -> None:
            return None

    srv.register("object", Handler())
    assert script_name("agi://127.0.0.1:4573/main?lang=ar") == "main"
    assert script_name("/ivr/") == "ivr"


async def test_close_waits_then_cancels() -> None:
    srv = AgiServer("127.0.0.1", 0, close_timeout=0.2)
    cancelled, started = asyncio.Event(), asyncio.Event()

    @srv.route("ivr")
    async def ivr(call: AgiChannel) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await srv.start()
    fake = asyncio.ensure_future(FakeAsterisk(srv.port, []).run(idle=5))
    await asyncio.wait_for(started.wait(), 5)
    await srv.close()
    assert cancelled.is_set() and srv.active_calls == 0
    await fake


async def test_commands_on_the_wire(server: AgiServer) -> None:
    results, done, route = capture(server)

    async def body(call: AgiChannel) -> list[object]:
        await call.set_variable("NOTE", 'say "hi" \\ bye')
        await call.verbose("مرحبا", 3)
        await call.stream_file("/prompts/ar/menu", "123#")
        await call.get_data("/prompts/ar/id")
        await call.exec("Dial", "PJSIP/101,20")
        await call.exec("Hangup")
        return [await call.wait_for_digit(-1)]

    route(body)
    replies = ["200 result=1\n"] * 2 + ["200 result=0 endpos=100\n", "200 result=0123\n"]
    replies += ["200 result=0\n"] * 2 + ["200 result=42\n"]
    received = await FakeAsterisk(server.port, replies).run()
    await done.wait()
    assert received == [
        'SET VARIABLE NOTE "say \\"hi\\" \\\\ bye"\n',
        'VERBOSE "مرحبا" 3\n',
        'STREAM FILE /prompts/ar/menu "123#"\n',
        "GET DATA /prompts/ar/id\n",
        'EXEC Dial "PJSIP/101,20"\n',
        "EXEC Hangup\n",
        "WAIT FOR DIGIT -1\n",
    ]
    assert results == [["*"]]


def test_argument_rules() -> None:
    for value in ["", "a b", 'q"uote', "back\\slash", "Local/101@agents,10", "مرحبا"]:
        assert split_args(f"SET VARIABLE X {quote(value)}") == ["SET", "VARIABLE", "X", value]
        assert split_args(f'STREAM FILE {word(value)} ""')[2] == value
    with pytest.raises(ValueError):
        quote("two\nlines")
    assert command_name("get full variable ${X}") == "GET FULL VARIABLE"
    assert command_name("EXEC Dial x") == "EXEC"
    reply = parse_result("200 result=1 (a (b) c)", code=200, rest="result=1 (a (b) c)")
    assert reply.data == "a (b) c" and reply.result == 1
    reply = parse_result("x", code=200, rest="result=12 (timeout)")
    assert reply.result_text == "12" and reply.timed_out
    reply = parse_result("x", code=200, rest="result=0 (hangup) endpos=400")
    assert reply.data == "hangup" and reply.extra == {"endpos": "400"}
    assert parse_result("x", code=200, rest="result=0123").result_text == "0123"
