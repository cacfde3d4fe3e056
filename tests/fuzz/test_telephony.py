"""Fuzzing the FastAGI and AMI wire readers: Asterisk's bytes, garbled, cut and overlong."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.fuzz.strategies import any_char, budget

_ENV_LINES = (
    b"agi_network: yes", b"agi_network_script: ivr", b"agi_request: agi://127.0.0.1/ivr?x=1",
    b"agi_channel: PJSIP/citizen-00000001", b"agi_callerid: 0912345678", b"agi_callerid: unknown",
    b"agi_language: ar", b"agi_arg_1: main", b"agi_arg_2:", b"agi_calleridname: \xd9\x85\xd8\xad",
    b"agi_uniqueid: 1795531437.1", b"agi_x", b"not_agi: 1", b"agi_dnid: \xff\xfe",
)  # fmt: skip
_REPLIES = (
    b"200 result=0", b"200 result=1", b"200 result=-1", b"200 result=49", b"200 result=1 (value)",
    b"200 result=1 (a) b) endpos=12", b"200 result= (timeout)", b"200 result=12*3#",
    b"200 result=\xc2\xb2", b"200 result=-" + b"9" * 5000, b"200 result=1 (unbalanced",
    b"200 result=", b"200 nothing", b"100 result=0 Trying...", b"HANGUP",
    b"510 Invalid or unknown command", b"511 Command Not Permitted on a dead channel",
    b"520 Invalid command syntax.  Proper usage not available.",
    b"520-Invalid command syntax.  Proper usage follows:", b"Usage: GET DATA", b"520 End of proper usage.",
    b"", b"\r", b"2000 result=1", b"abc", b"\x00\xff", b"200-result=1", b"200 result=1\r",
)  # fmt: skip

_GOOD_REPLIES = (
    b"200 result=0",
    b"200 result=1",
    b"200 result=49",
    b"200 result=1 (value)",
    b"200 result=0 endpos=8",
)
#: what a live call mostly sends: a hangup, progress, a failure, a result that is no digit
_LIKELY = (*_GOOD_REPLIES, b"HANGUP", b"100 result=0 Trying...", b"200 result=-1", b"200 result=\xc2\xb2")
line = st.one_of(
    st.sampled_from(_GOOD_REPLIES),
    st.sampled_from(_GOOD_REPLIES),
    st.sampled_from(_REPLIES),
    st.binary(max_size=40),
    st.builds(lambda head, n: head * n, st.sampled_from((b"2", b"a", b"\xd9")), st.integers(1, 70_000)),
)
#: an environment (almost always well formed), then the replies, the stream maybe cut short
session = st.builds(
    lambda env, end, replies, cut: (b"\n".join(env) + end + b"".join(r + b"\n" for r in replies))[:cut],
    st.lists(st.sampled_from(_ENV_LINES[:11]), max_size=6)
    | st.lists(st.sampled_from(_ENV_LINES), max_size=6),
    st.sampled_from((b"\n\n", b"\n\n", b"\n\n", b"\r\n\r\n", b"\n", b"")),
    st.lists(line, max_size=12) | st.lists(st.sampled_from(_LIKELY), min_size=7),
    st.just(1 << 20) | st.integers(0, 200_000),
)


@budget(150)
@given(st.one_of(session, st.binary(max_size=400)))
def test_fastagi_session_raises_only_agi_errors(data: bytes) -> None:
    targets.agi(data)


@budget(200)
@given(st.one_of(st.sampled_from(_REPLIES).map(lambda b: b.decode("utf-8", "replace")), st.text(any_char)))
def test_fastagi_reply_lines_parse_or_are_protocol_errors(text: str) -> None:
    targets.agi_wire_lines(text)


_MESSAGES = (
    b"Asterisk Call Manager/7.0.3\r\n", b"Response: Success\r\nActionID: fuzz-1\r\nPing: Pong\r\n\r\n",
    b"Response: Error\r\nActionID: fuzz-1\r\nMessage: Permission denied\r\n\r\n",
    b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n",
    b"Event: Newchannel\r\nCallerIDName: \xd9\x85\xd8\xad\xd9\x85\xd8\xaf\r\n\r\n",
    b"Event: VarSet\r\nVariable: A\r\nValue: 1\r\nValue: 2\r\n\r\n",
    b"Event: Dup\r\nActionID: a\r\nActionID: b\r\n\r\n", b"Event: A\r\nEvent: B\r\n\r\n",
    b"Response: Follows\r\nActionID: fuzz-1\r\nline one\nline two\r\n--END COMMAND--\r\n\r\n",
    b"Event: Shutdown\r\nShutdown: Cleanly\r\n\r\n", b"Response: Success\r\nActionID: \r\n\r\n",
    b"Event: FullyBooted\r\n\r\n", b"garbage without colon\r\n\r\n", b"\r\n\r\n", b"\n",
    b"Response: Goodbye\r\n\r\n", b"Event: x\r\nResult: %ZZ%e2%82\r\n\r\n", b"\xff\xfe\x00",
    b"Event: Long\r\nValue: " + b"x" * 100_000 + b"\r\n\r\n",
)  # fmt: skip
stream = st.lists(st.one_of(st.sampled_from(_MESSAGES), st.binary(max_size=30)), max_size=10).map(b"".join)


@budget(200)
@given(stream, st.lists(st.integers(0, 1 << 20), max_size=6))
def test_ami_reader_never_raises_and_framing_ignores_tcp_cuts(data: bytes, cuts: list[int]) -> None:
    targets.ami(data, sorted({min(cut, len(data)) for cut in cuts}))
