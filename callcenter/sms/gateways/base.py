"""What every SMS gateway offers the engine, and what the engine offers every webhook.

A gateway hands messages over (``send_many``) and says per message whether the hand-over
worked; a failure is ``temporary`` (retried with back-off) or permanent (never retried).
Inbound messages and delivery reports are parsed by each gateway's webhook into
``InboundSms`` / ``StatusReport`` and given to the ``SmsInbox`` (the engine side).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class OutboundSms:
    to: str  # E.164
    body: str
    ref: str  # our reference ("d123" for a delivery, "m456" for a message): DLRs come back with it


@dataclass(frozen=True, slots=True)
class SendResult:
    ref: str
    gateway_id: str | None = None  # the gateway's id, when it gives one
    error: str | None = None  # None: handed over
    temporary: bool = False  # for an error: retry later?

    @property
    def ok(self) -> bool:
        return self.error is None


class GatewayError(Exception):
    """A hand-over that failed; ``temporary`` ones are retried with back-off."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


class Gateway(Protocol):
    name: str

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """Hand messages over; one result per message, in order. Never raises for one message."""
        ...

    async def aclose(self) -> None: ...


#: what PostgreSQL text cannot hold: NUL, and lone surrogates (not UTF-8)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(record: object, names: tuple[str, ...]) -> None:
    """Put U+FFFD where a gateway's text holds NUL or a lone surrogate (a UTF-7 or escaped
    charset can decode to one): the database would refuse the text, the webhook would answer
    500, and the reply (or a spooled record, drained forever) would be lost."""
    for name in names:
        value = getattr(record, name)
        if value is not None and _UNSTORABLE.search(value):
            object.__setattr__(record, name, _UNSTORABLE.sub("\ufffd", value))


@dataclass(frozen=True, slots=True)
class InboundSms:
    gateway: str
    gateway_id: str  # dedupe key: the same id twice is the same message
    sender: str  # as the gateway gave it (normalised by the inbox)
    body: str
    to: str = ""

    def __post_init__(self) -> None:
        _storable(self, ("gateway_id", "sender", "body", "to"))


DeliveryState = Literal["sent", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class StatusReport:
    gateway: str
    state: DeliveryState
    ref: str | None = None  # our reference, when the gateway echoes it (Kannel dlr-url)
    gateway_id: str | None = None  # the gateway's id (Twilio MessageSid)
    error: str | None = None

    def __post_init__(self) -> None:
        _storable(self, ("ref", "gateway_id", "error"))


class SmsInbox(Protocol):
    """The engine side of the webhooks."""

    async def receive(self, sms: InboundSms) -> str | None:
        """Store, then process; return the reply text to send back inline (None: no reply)."""
        ...

    async def status(self, report: StatusReport) -> None: ...
