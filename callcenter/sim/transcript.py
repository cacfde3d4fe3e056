"""Recorded Asterisk sessions (``tests/fixtures/asterisk/*.txt``): parsing and normalising.

Format (see ``/work/shared/asterisk/README.md``): one wire line per text line, ``>`` sent by the
client, ``<`` sent by Asterisk. A ``>`` AMI action spans several text lines: the first carries
the ``>``, the following header lines have no prefix. ``< (blank line)`` and a bare ``< `` are
empty lines. AMI lines end in CRLF on the wire, FastAGI lines in LF.

What :func:`normalise_ami` / :func:`normalise_agi` replace, and why (values that depend on the
moment, the socket or a random number, never on protocol behaviour):

* ``ActionID`` values: each client picks its own.
* ``Uniqueid``/``Linkedid`` (any header ending so, ``agi_uniqueid``): the epoch seconds before
  the dot; the per-boot counter after the dot is compared as recorded.
* ``Timestamp`` (Ping), ``EventTV``/``SessionTV``, ``SessionID``, the port of
  ``LocalAddress``/``RemoteAddress``, ``Uptime``/``LastReload``, non-zero
  ``LastPause``/``LoginTime``, ``Duration``, ``CommandId`` (random), ``BridgeUniqueid`` (a UUID),
  ``agi_threadid``, and the FastAGI port in ``agi://host:port/`` (tests listen on a free port,
  the recordings on 4573).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Direction = Literal["<", ">"]


@dataclass(frozen=True, slots=True)
class Turn:
    """Consecutive lines one side sent: a server run of lines, or one client message/command."""

    direction: Direction
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Transcript:
    turns: tuple[Turn, ...]

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def parse(cls, text: str) -> Transcript:
        turns: list[tuple[Direction, list[str]]] = []
        for raw in text.split("\n"):
            line = raw.removesuffix("\r")
            if line.startswith("<"):
                body = line[2:] if line.startswith("< ") else line[1:]
                body = "" if body == "(blank line)" else body
                if turns and turns[-1][0] == "<":
                    turns[-1][1].append(body)
                else:
                    turns.append(("<", [body]))
            elif line.startswith("> "):
                turns.append((">", [line[2:]]))
            elif turns and turns[-1][0] == ">":
                turns[-1][1].append(line)
            elif line:
                raise ValueError(f"transcript line outside any turn: {line!r}")
        result = []
        for direction, lines in turns:
            while direction == ">" and lines and not lines[-1]:
                lines.pop()  # some recordings keep the action's closing empty line
            result.append(Turn(direction, tuple(lines)))
        return cls(tuple(result))

    def client(self) -> list[Turn]:
        return [turn for turn in self.turns if turn.direction == ">"]

    def server_lines(self) -> list[str]:
        return [line for turn in self.turns if turn.direction == "<" for line in turn.lines]

    def server_bytes(self, eol: str) -> bytes:
        return "".join(line + eol for line in self.server_lines()).encode()


def ami_action_bytes(lines: tuple[str, ...] | list[str]) -> bytes:
    """One AMI action as sent on the wire: header lines, CRLF each, then an empty line."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ami_messages(lines: list[str]) -> list[list[str]]:
    """Split server lines into messages at empty lines; the banner is a message of its own."""
    messages: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.startswith("Asterisk Call Manager/") and not current:
            messages.append([line])
        elif line:
            current.append(line)
        else:
            messages.append(current)
            current = []
    if current:
        messages.append(current)
    return messages


_AMI_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(ActionID: ).*$", re.M), r"\1<id>"),
    (re.compile(r"^(\w*(?:Uniqueid|Linkedid): )\d+\.(\d+)$", re.M), r"\1<epoch>.\2"),
    (re.compile(r"^(Timestamp: ).*$", re.M), r"\1<time>"),
    (re.compile(r"^((?:Event|Session)TV: ).*$", re.M), r"\1<time>"),
    (re.compile(r"^(SessionID: ).*$", re.M), r"\1<session>"),
    (re.compile(r"^((?:Local|Remote)Address: .*/)\d+$", re.M), r"\1<port>"),
    (re.compile(r"^((?:Uptime|LastReload): ).*$", re.M), r"\1<seconds>"),
    (re.compile(r"^((?:LastPause|LoginTime): )[1-9]\d*$", re.M), r"\1<epoch>"),
    (re.compile(r"^(Duration: )\d\d:\d\d:\d\d$", re.M), r"\1<hh:mm:ss>"),
    (re.compile(r"^(CommandId: ).*$", re.M), r"\1<random>"),
    (re.compile(r"^(BridgeUniqueid: ).*$", re.M), r"\1<uuid>"),
    (re.compile(r"(agi://[^:/\s]+:)\d+"), r"\1<port>"),
]
_AGI_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(agi_uniqueid: )\d+\.(\d+)$", re.M), r"\1<epoch>.\2"),
    (re.compile(r"^(agi_threadid: ).*$", re.M), r"\1<thread>"),
    (re.compile(r"(agi://[^:/\s]+:)\d+"), r"\1<port>"),
]


def _apply(rules: list[tuple[re.Pattern[str], str]], text: str) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def normalise_ami(text: str) -> str:
    """Normalise AMI text (lines separated by LF or CRLF); see the module docstring."""
    return _apply(_AMI_RULES, text.replace("\r\n", "\n"))


def normalise_agi(text: str) -> str:
    return _apply(_AGI_RULES, text)


def action_id(lines: list[str] | tuple[str, ...]) -> str | None:
    for line in lines:
        key, _, value = line.partition(": ")
        if key.lower() == "actionid":
            return value
    return None
