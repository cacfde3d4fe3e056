"""FastAGI on the wire: reply lines, argument quoting, the command table, and the errors.

Shared by the engine (:mod:`callcenter.telephony.agi`) and the simulator
(:mod:`callcenter.sim.agi_client`), so both sides agree byte for byte.

Written here rather than taken from panoramisk: ``panoramisk.utils.parse_agi_result`` raises a
bare ``ValueError`` on an empty or non-numeric line (end of stream, garbage), drops the data of
``result=-1`` replies, turns ``(timeout)`` into an error key, and its ``Request.send_command``
reads exactly one extra line for a ``520`` usage reply (Asterisk sends many) and does not expect
the ``HANGUP`` line that Asterisk writes between a command and its reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callcenter.errors import CallCenterError

#: Reply text Asterisk sends for these codes (res_agi.c ``agi_handle_command``).
INVALID_COMMAND = "Invalid or unknown command"
DEAD_CHANNEL = "Command Not Permitted on a dead channel or intercept routine"
USAGE_FOLLOWS = "Invalid command syntax.  Proper usage follows:"
USAGE_END = "End of proper usage."
USAGE_MISSING = "Invalid command syntax.  Proper usage not available."

#: AGI commands Asterisk 22 knows, and whether each runs on a dead (hung-up) channel.
#: Multi-word names are matched longest first (``GET FULL VARIABLE`` before ``GET``).
AGI_COMMANDS: dict[str, bool] = {
    "ANSWER": False, "ASYNCAGI BREAK": True, "CHANNEL STATUS": False,
    "DATABASE DEL": True, "DATABASE DELTREE": True, "DATABASE GET": True,
    "DATABASE PUT": True, "EXEC": True, "GET DATA": False, "GET FULL VARIABLE": True,
    "GET OPTION": False, "GET VARIABLE": True, "HANGUP": False, "NOOP": True,
    "RECEIVE CHAR": False, "RECEIVE TEXT": False, "RECORD FILE": False,
    "SAY ALPHA": False, "SAY DIGITS": False, "SAY NUMBER": False, "SAY PHONETIC": False,
    "SAY DATE": False, "SAY TIME": False, "SAY DATETIME": False, "SEND IMAGE": False,
    "SEND TEXT": False, "SET AUTOHANGUP": False, "SET CALLERID": False,
    "SET CONTEXT": False, "SET EXTENSION": False, "SET MUSIC": False,
    "SET PRIORITY": False, "SET VARIABLE": True, "STREAM FILE": False,
    "CONTROL STREAM FILE": False, "TDD MODE": False, "VERBOSE": True,
    "WAIT FOR DIGIT": False, "SPEECH CREATE": False, "SPEECH SET": False,
    "SPEECH DESTROY": True, "SPEECH LOAD GRAMMAR": False, "SPEECH UNLOAD GRAMMAR": True,
    "SPEECH ACTIVATE GRAMMAR": False, "SPEECH DEACTIVATE GRAMMAR": False,
    "SPEECH RECOGNIZE": False,
}  # fmt: skip
_BY_LENGTH = sorted(AGI_COMMANDS, key=lambda name: -len(name.split()))


class AgiError(CallCenterError):
    """Base of every FastAGI failure; ``reply`` is the parsed reply when there was one."""

    status_code = 502
    error_id = "agi_error"

    def __init__(self, message: str, *, reply: AgiReply | None = None, command: str = "") -> None:
        super().__init__(message, command=command)
        self.reply = reply
        self.command = command


class AgiHangup(AgiError):
    """The caller hung up: the ``HANGUP`` line arrived, or a command failed on a hung-up channel.

    Handlers let it propagate; the server ends the call quietly.
    """

    error_id = "agi_hangup"


class AgiConnectionLost(AgiHangup):
    """The FastAGI connection ended (reset, or closed) before Asterisk said ``HANGUP``:
    Asterisk died, or the link between it and the engine failed. Nothing more reaches the
    caller (Asterisk hangs up a call whose AGI ended); the citizen did not hang up."""

    error_id = "agi_connection_lost"


class AgiDeadChannel(AgiHangup):
    """``511``: the command is not permitted on a dead channel (a hangup, seen from the reply)."""

    error_id = "agi_dead_channel"


class AgiInvalidCommand(AgiError):
    """``510``: Asterisk does not know the command."""

    error_id = "agi_invalid_command"


class AgiUsageError(AgiError):
    """``520``: wrong arguments; ``usage`` holds the usage text Asterisk sent (may be empty)."""

    error_id = "agi_usage"

    def __init__(self, message: str, *, usage: str, reply: AgiReply, command: str) -> None:
        super().__init__(message, reply=reply, command=command)
        self.usage = usage


class AgiCommandFailed(AgiError):
    """``200 result=-1`` on a live channel: a missing prompt file, a failed application."""

    error_id = "agi_command_failed"


class AgiProtocolError(AgiError):
    """A line that is not a FastAGI reply (or the environment is malformed): the call is dropped."""

    error_id = "agi_protocol"


#: a result Asterisk can send (a C int): ASCII digits only, as ``int()`` took "²" for a digit and
#: refused thousands of them with ValueError
_INTEGER = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One parsed reply. ``result_text`` is kept as sent (``GET DATA`` digits keep leading zeros);
    ``result`` is its integer value, or None when it is not a number (``''``, ``'12*3'``).
    ``data`` is the parenthesised part (``(timeout)``, a variable's value); ``extra`` holds
    ``key=value`` words such as ``endpos``; ``lines`` are the raw lines (several for ``520``)."""

    code: int
    result_text: str = ""
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    @property
    def result(self) -> int | None:
        text = self.result_text
        return int(text) if _INTEGER.fullmatch(text) else None

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"


_STATUS = re.compile(r"(\d{3})([ -])(.*)\Z", re.DOTALL)
_RESULT = re.compile(r"result=(\S*)(.*)\Z", re.DOTALL)


def split_code(line: str) -> tuple[int, str, str]:
    """``"520-Invalid ..."`` → ``(520, "-", "Invalid ...")``; AgiProtocolError otherwise."""
    match = _STATUS.match(line)
    if match is None:
        raise AgiProtocolError(f"not a FastAGI reply line: {line[:200]!r}")
    return int(match.group(1)), match.group(2), match.group(3)


def parse_result(line: str, *, code: int, rest: str, lines: tuple[str, ...] = ()) -> AgiReply:
    """Parse the ``result=...`` part of a ``200``/``100`` line."""
    match = _RESULT.match(rest)
    if match is None:
        raise AgiProtocolError(f"FastAGI reply without result=: {line[:200]!r}")
    text, tail = match.group(1), match.group(2)
    data: str | None = None
    if tail.startswith(" ("):
        # A GET VARIABLE value may itself hold ") " or spaces: when the line ends with ")",
        # everything up to it is data; otherwise the data is one word, extras follow.
        if tail.endswith(")"):
            data, tail = tail[2:-1], ""
        else:
            close = tail.find(") ", 2)
            if close < 0:
                raise AgiProtocolError(f"unbalanced parenthesis in FastAGI reply: {line[:200]!r}")
            data, tail = tail[2:close], tail[close + 1 :]
    extra = dict(word.split("=", 1) for word in tail.split() if "=" in word)
    return AgiReply(code, text, data, extra, lines or (line,))


def command_name(line: str) -> str:
    """The AGI command a line invokes (``"GET VARIABLE"``), or its first word if unknown."""
    words = line.split(None, 3)
    upper = [word.upper() for word in words]
    for name in _BY_LENGTH:
        parts = name.split()
        if upper[: len(parts)] == parts:
            return name
    return upper[0] if upper else ""


_BARE = re.compile(r"[^\s\"\\]+")
_SIMPLE = re.compile(r"[A-Za-z0-9_.]+")


def check_text(value: str) -> str:
    """Refuse text that would break the line protocol (a newline would start a new command)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"AGI arguments cannot contain newlines or NUL: {value!r}")
    return value


def quote(value: str) -> str:
    """Always quote: ``"a \\"b\\""``. Asterisk's parse_args unescapes ``\\x`` to ``x``."""
    check_text(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def word(value: str) -> str:
    """Bare when it is one plain token (``silence2``, ``/p/ar/welcome``), quoted otherwise."""
    check_text(value)
    return value if _BARE.fullmatch(value) else quote(value)


def app_args(value: str) -> str:
    """EXEC arguments: a simple token stays bare (``Wait 1``); anything with punctuation is
    quoted (``Dial "Local/101@agents,10"``) so commas and spaces stay one AGI argument."""
    check_text(value)
    return value if _SIMPLE.fullmatch(value) else quote(value)


def split_args(line: str) -> list[str]:
    """Split a command line the way Asterisk's ``parse_args`` (res_agi.c) does: whitespace
    separates, double quotes group (``""`` is an empty argument), backslash escapes one char."""
    args: list[list[str]] = []
    quoted = escaped = False
    whitespace = True
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                args.append([])
                whitespace = False
            continue
        if char in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            args.append([])
            whitespace = False
        args[-1].append(char)
        escaped = False
    return ["".join(chars) for chars in args]
