"""Typed AMI messages and errors, independent of panoramisk's untyped ``Message``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from callcenter.errors import CallCenterError


class AmiError(CallCenterError):
    status_code = 502
    error_id = "ami_error"


class AmiConnectionError(AmiError):
    """No connection to Asterisk, or it dropped while an action waited for its response."""

    error_id = "ami_connection"


class AmiTimeout(AmiError):
    error_id = "ami_timeout"


class AmiLoginError(AmiError):
    """Asterisk refused the username/secret. Not retried: a wrong secret stays wrong."""

    error_id = "ami_login_refused"

    def __init__(self, message: str, *, response: AmiMessage | None = None) -> None:
        super().__init__(message, asterisk=response.get("Message") if response else None)
        self.response = response


class AmiActionError(AmiError):
    """``Response: Error`` (or ``Failure``) to an action; ``response`` is the whole message."""

    error_id = "ami_action_error"

    def __init__(self, message: str, *, action: str, response: AmiMessage) -> None:
        super().__init__(message, action=action, asterisk=response.get("Message"))
        self.action = action
        self.response = response


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI response or event: its headers in wire order (repeated keys kept).

    ``msg["uniqueid"]`` and ``msg.get("Uniqueid")`` are case-insensitive, first value wins.
    """

    headers: tuple[tuple[str, str], ...]
    content: str = ""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], content: str = "") -> AmiMessage:
        return cls(tuple(pairs), content)

    @classmethod
    def from_panoramisk(cls, message: Any) -> AmiMessage:
        pairs: list[tuple[str, str]] = []
        for key, value in message.items():
            values = value if isinstance(value, list) else [value]
            pairs.extend((str(key), str(item)) for item in values)
        return cls(tuple(pairs), str(getattr(message, "content", "") or ""))

    def get(self, key: str, default: str | None = None) -> str | None:
        wanted = key.lower()
        for name, value in self.headers:
            if name.lower() == wanted:
                return value
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        wanted = key.lower()
        return [value for name, value in self.headers if name.lower() == wanted]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def success(self) -> bool:
        return self.response in ("Success", "Follows", "Goodbye")

    def to_dict(self) -> dict[str, str]:
        """Headers as a dict (first value of a repeated key)."""
        result: dict[str, str] = {}
        for name, value in self.headers:
            result.setdefault(name, value)
        return result
