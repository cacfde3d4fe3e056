"""The fuzzing targets: each reader that takes input from outside, with the contract it must keep.

A target is a plain function of its (hostile) input that returns when the contract holds and
raises ``AssertionError`` (or the unexpected exception itself) when it does not. The contract is
more than "does not crash": only the documented error types, results of the documented shape,
and the work done within a time bound. The Hypothesis tests beside this module call them with
generated input (a small budget in CI); ``scripts/fuzz/`` runs the same tests under atheris,
coverage-guided, for as long as one likes.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from callcenter.citizens.importer import BadHeader, _Reader, import_citizens
from callcenter.db import make_engine
from callcenter.inquiry.definition import Inquiry, InquiryStatus, Question, QuestionKind
from callcenter.inquiry.engine import Event, State, advance, start
from callcenter.inquiry.parser import (
    MAX_TEXT_CHARS,
    Invalid,
    Keyword,
    Keywords,
    Parsed,
    Reason,
    keyword,
    normalize,
    parse_answer,
)
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.inquiry.texts import reply_for
from callcenter.settings import Settings
from callcenter.sms import kannel_webhooks, webhooks
from callcenter.sms.gateways.base import InboundSms, StatusReport
from callcenter.telephony.agi_channel import AgiChannel
from callcenter.telephony.agi_wire import (
    AgiError,
    AgiReply,
    command_name,
    parse_result,
    split_args,
    split_code,
)
from callcenter.telephony.ami import AmiClient, AmiMessage, _Action, _Manager, _Protocol

T = TypeVar("T")

SAMPLE = Path(__file__).parents[2] / "callcenter" / "samples" / "return-of-life.yaml"
#: Generous for a busy 2-core CI machine: the readers are linear, a blow-up is seconds.
TIME_LIMIT_S = 2.0


@contextmanager
def bounded(what: str, seconds: float = TIME_LIMIT_S) -> Iterator[None]:
    """Fail when the block takes longer than ``seconds`` (a quadratic path, a hang)."""
    started = time.perf_counter()
    yield
    took = time.perf_counter() - started
    assert took < seconds, f"{what} took {took:.2f} s (limit {seconds} s)"


def utf8_clean(value: str) -> bool:
    """Text that PostgreSQL can store: valid UTF-8 (no lone surrogates) and no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


# --- the answer parser and the engine -------------------------------------------------------


def _sample() -> Inquiry:
    definition = parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8"), source=str(SAMPLE))
    return definition.definition(InquiryStatus.RUNNING)


INQUIRY = _sample()
KEYWORDS = Keywords.default()
REASONS = frozenset(Reason)


def answer_parser(question: Question, text: str) -> None:
    """Any reply to any question is an answer of the question's shape or a known reason."""
    with bounded(f"parse_answer of {len(text)} characters"):
        parsed = parse_answer(question, text)
        norm = normalize(text)
        command = keyword(text, KEYWORDS)
    assert normalize(norm) == norm, "normalize is idempotent"
    assert command is None or isinstance(command, Keyword)
    if isinstance(parsed, Invalid):
        assert parsed.reason in REASONS, parsed
        return
    assert isinstance(parsed, Parsed), parsed
    value = parsed.value
    if question.kind is QuestionKind.TEXT:
        assert value and len(value) <= MAX_TEXT_CHARS and utf8_clean(value), value
    elif question.kind is QuestionKind.CHOICE:
        assert value in {option.value for option in question.options}, value
    elif question.kind is QuestionKind.YES_NO:
        assert (value, parsed.number) in {("yes", 1.0), ("no", 0.0)}, parsed
    else:
        low, high = question.bounds
        assert parsed.number is not None and low <= parsed.number <= high, parsed


def engine_step(answered: int, text: str) -> None:
    """The whole SMS/keypad path of the pure engine: a reply at any point of the sample
    inquiry gives a step whose reply text can be sent."""
    step = start(INQUIRY)
    for _ in range(answered):
        if step.question is None:
            break
        step = advance(INQUIRY, step.state, _an_answer(step.question), keywords=KEYWORDS)
    state: State = step.state
    with bounded(f"advance over {len(text)} characters"):
        after = advance(INQUIRY, state, text, keywords=KEYWORDS)
        for language in ("ar", "en"):
            reply = reply_for(INQUIRY, after, language)
            assert reply is None or (isinstance(reply, str) and utf8_clean(reply)), reply
    assert isinstance(after.event, Event)
    if after.answer is not None:
        assert after.answer.raw == text


def _an_answer(question: Question) -> str:
    if question.kind is QuestionKind.CHOICE:
        return "1"
    if question.kind is QuestionKind.YES_NO:
        return "نعم"
    if question.kind is QuestionKind.TEXT:
        return "شكرا"
    return str(question.bounds[0])


# --- FastAGI ---------------------------------------------------------------------------------


class _Sink:
    """The writer half of a FastAGI connection: keeps what the engine wrote."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


def _stream(data: bytes, limit: int = 2**16) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def agi_wire_lines(line: str) -> None:
    """The pure line readers: a reply line parses or is an ``AgiProtocolError``."""
    with bounded("the AGI line parsers"):
        try:
            code, _, rest = split_code(line)
            reply = parse_result(line, code=code, rest=rest)
        except AgiError:
            reply = None
        split_args(line)
        command_name(line)
    if reply is not None:
        assert isinstance(reply.result, int | None) and isinstance(reply.timed_out, bool)


async def agi_session(data: bytes) -> list[object]:
    """A FastAGI connection whose bytes are ``data``: the environment, then the replies to a
    call's commands. Returns what each command returned; raises only ``AgiError``."""
    sink = _Sink()
    channel = await AgiChannel.accept(
        _stream(data), cast(asyncio.StreamWriter, sink), env_timeout=1, hangup_grace=0.001
    )
    env = channel.env
    for name in ("script", "channel", "callerid", "dnid", "language", "arguments", "uniqueid"):
        value = getattr(env, name)
        assert value is None or isinstance(value, str | list), (name, value)
    results: list[object] = []
    commands: Sequence[Callable[[], Any]] = (
        channel.answer,
        lambda: channel.get_data("ar/welcome", 3000, 2),
        lambda: channel.stream_file("ar/q1", "123#"),
        lambda: channel.get_variable("CALLERID(num)"),
        lambda: channel.wait_for_digit(5000),
        lambda: channel.exec("Wait", "1"),
        lambda: channel.command("NOOP"),
    )
    for command in commands:
        results.append(await command())
    return results


def agi(data: bytes) -> None:
    """``agi_session`` keeps its contract: AgiError or results of the documented types."""
    with bounded(f"a FastAGI session of {len(data)} bytes"):
        try:
            results = run(agi_session(data))
        except AgiError:
            return
    answer, digits, key, variable, pressed, code, reply = results
    assert answer is None and isinstance(digits, str) and isinstance(code, int)
    for one in (key, pressed):
        assert one is None or (isinstance(one, str) and len(one) == 1), one
    assert variable is None or isinstance(variable, str)
    assert isinstance(reply, AgiReply)


# --- AMI -------------------------------------------------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def ami_feed(chunks: Sequence[bytes]) -> tuple[list[tuple[tuple[str, str], ...]], object]:
    """Feed ``chunks`` to the AMI client's protocol as TCP reads; the events it dispatched
    (headers) and what became of an action waiting for its response."""
    client = AmiClient("127.0.0.1", 5038, "engine", "secret", ping_interval=None)
    events: list[AmiMessage] = []
    client.on("*", events.append)
    manager = _Manager(client, asyncio.get_running_loop())
    protocol = _Protocol(manager)
    protocol.connection_made(_Transport())
    client._manager = manager
    action = _Action({"Action": "Ping", "ActionID": "fuzz-1"}, as_list=False)
    protocol.send(action)
    for chunk in chunks:
        protocol.data_received(chunk)
    for event in events:
        assert isinstance(event, AmiMessage)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.headers), event
    outcome: object = None
    if action.future.done() and action.future.exception() is None:
        outcome = AmiMessage.from_panoramisk(action.future.result()).headers
    return [event.headers for event in events], outcome


def ami(stream: bytes, cuts: Sequence[int]) -> None:
    """The AMI reader never raises, and a stream read in pieces (cut anywhere, even inside a
    UTF-8 character) gives the same messages as read at once."""
    pieces = [stream[a:b] for a, b in zip((0, *cuts), (*cuts, len(stream)), strict=True)]
    with bounded(f"an AMI stream of {len(stream)} bytes"):
        whole = run(ami_feed([stream]))
        split = run(ami_feed(pieces))
    assert whole == split, "framing depends on how TCP cut the stream"


# --- the citizen register (CSV) -------------------------------------------------------------


def csv_register(data: bytes) -> None:
    """Any file is refused as a whole (``BadHeader``) or read row by row: each row is either
    kept (a valid E.164 phone) or rejected with its line and a reason; nothing else."""
    with bounded(f"a register of {len(data)} bytes"):
        try:
            reader = _Reader.open(io.BytesIO(data), region="LY", batch_size=50, error_limit=1000)
        except BadHeader as exc:
            assert exc.message, "a refused file says why"
            return
        rows = kept = duplicates = rejected = 0
        try:
            while (batch := reader.next_batch()) is not None:
                rows += batch.rows
                kept += len(batch.citizens)
                duplicates += batch.duplicates - batch.repeats
                rejected += batch.rejected
                for phone, (municipality, language, _, _) in batch.citizens.items():
                    assert phone.startswith("+") and phone[1:].isdigit() and phone.isascii(), phone
                    assert municipality is None or utf8_clean(municipality), municipality
                    assert language in (None, "ar", "en"), language
        finally:
            reader.close()
    assert rows == kept + duplicates + rejected, (rows, kept, duplicates, rejected)
    assert len(reader.errors) == rejected
    for error in reader.errors:
        assert error.line >= 2 and error.reason, error


async def _import(database_url: str, data: bytes, *, create_municipalities: bool) -> None:
    engine = make_engine(Settings(_env_file=None, env="test", database_url=database_url))  # type: ignore[call-arg]
    try:
        report = await import_citizens(
            engine, io.BytesIO(data), batch_size=7, create_municipalities=create_municipalities
        )
    except BadHeader as exc:
        assert exc.message
        return
    finally:
        await engine.dispose()
    assert report.rows == report.imported + report.updated + report.duplicates + report.rejected, report


def full_import(database_url: str, data: bytes, *, create_municipalities: bool) -> None:
    """``csv_register``'s files through the whole import into a real database."""
    with bounded(f"importing {len(data)} bytes", seconds=10):
        run(_import(database_url, data, create_municipalities=create_municipalities))


# --- the SMS webhooks ------------------------------------------------------------------------

TWILIO_TOKEN = "fuzz-twilio-token-0123456789abcdef"
KANNEL_SECRET = "fuzz-kannel-secret"
PUBLIC = "https://sms.example.ly"


@dataclass
class RecordingInbox:
    """The engine side of the webhooks, keeping what the decoders handed over."""

    received: list[InboundSms] = field(default_factory=list)
    reports: list[StatusReport] = field(default_factory=list)

    async def receive(self, sms: InboundSms) -> str | None:
        self.received.append(sms)
        return "شكراً" if len(self.received) % 2 else None

    async def status(self, report: StatusReport) -> None:
        self.reports.append(report)


@functools.cache
def _webhook_app() -> FastAPI:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        sms_gateway="twilio",
        twilio_auth_token=TWILIO_TOKEN,
        kannel_secret=KANNEL_SECRET,
        public_base_url=PUBLIC,
    )
    app = FastAPI()
    app.include_router(webhooks.make_router(settings))
    app.include_router(kannel_webhooks.make_router(settings))
    return app


def webhook_app() -> tuple[FastAPI, RecordingInbox]:
    """Both gateways' webhook routes (built once), with a fresh recording inbox."""
    app = _webhook_app()
    inbox = RecordingInbox()
    app.state.inbox = inbox
    return app, inbox


async def _call(app: FastAPI, method: str, url: str, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
        return await client.request(method, url, **kw)


def _handed_over(inbox: RecordingInbox) -> None:
    """What reaches the engine is text the database can store."""
    for sms in inbox.received:
        for value in (sms.gateway_id, sms.sender, sms.body, sms.to):
            assert utf8_clean(value), sms
        assert sms.gateway_id and sms.sender.strip(), sms
    for report in inbox.reports:
        for value in (report.ref, report.gateway_id, report.error):
            assert value is None or utf8_clean(value), report


def _clear_4xx(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.status_code in (400, 403, 422), response.status_code
        assert len(response.text.strip()) > 10, "a refusal says why"


def kannel(method: str, path: str, query: bytes, body: bytes, content_type: str, with_secret: bool) -> None:
    """Kannel's calls with any parameters: 200, or a 4xx that says why; never a 500."""
    app, inbox = webhook_app()
    secret = b"secret=" + KANNEL_SECRET.encode() + b"&" if with_secret else b""
    url = f"{path}?{(secret + query).decode('latin-1')}"
    headers = {"content-type": content_type} if content_type else {}
    with bounded("a Kannel webhook call"):
        response = run(_call(app, method, url, content=body if method == "POST" else None, headers=headers))
    _clear_4xx(response)
    if not with_secret:
        assert response.status_code == 403, response.status_code
    _handed_over(inbox)


def twilio(path: str, fields: Sequence[tuple[str, str]], signed: bool) -> None:
    """Twilio's signed form posts with any fields: TwiML (or 204), or a 4xx JSON error."""
    app, inbox = webhook_app()
    params = dict(fields)
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, params) if signed else "x"
    body = httpx.QueryParams(params).__str__().encode()
    headers = {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature}
    with bounded("a Twilio webhook call"):
        response = run(_call(app, "POST", path, content=body, headers=headers))
    _clear_4xx(response)
    if not signed:
        assert response.status_code == 403, response.status_code
    if response.status_code >= 400:
        assert response.json()["error"] in ("invalid_signature", "bad_request"), response.text
    _handed_over(inbox)


def kannel_text(data: bytes, charset: str, coding: str) -> None:
    """The message bytes with any charset and coding Kannel (or a forger) names: text."""
    with bounded(f"decoding {len(data)} bytes as {charset[:40]!r}"):
        text = kannel_webhooks.decode_text(data, charset=charset, coding=coding)
    assert isinstance(text, str)
    text.encode("utf-8", "surrogatepass")
    if charset.strip().lower() in ("", "utf-8") and coding.strip() != "2":
        assert text == data.decode("utf-8", "replace")


# --- running coroutines from synchronous tests ----------------------------------------------

_RUNNER: asyncio.Runner | None = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on one loop kept for all examples (a fresh loop each costs more than
    most examples)."""
    global _RUNNER
    if _RUNNER is None:
        # with a loop factory the runner leaves the thread's current loop (pytest-asyncio's) alone
        _RUNNER = asyncio.Runner(loop_factory=asyncio.new_event_loop)
    return _RUNNER.run(coro)


def close_loop() -> None:
    global _RUNNER
    if _RUNNER is not None:
        _RUNNER.close()
        _RUNNER = None


__all__ = [
    "INQUIRY",
    "agi",
    "agi_wire_lines",
    "ami",
    "answer_parser",
    "bounded",
    "csv_register",
    "engine_step",
    "full_import",
    "kannel",
    "kannel_text",
    "twilio",
    "utf8_clean",
]
