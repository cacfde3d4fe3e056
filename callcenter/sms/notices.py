"""Service messages to citizens, outside any inquiry: the confirmation of a booked callback (and
the service requests' updates next). Queued as outbound ``message`` rows keyed by what they
confirm, so a retried booking never texts twice, then sent through the configured gateway; a
temporary gateway failure leaves the row queued for the outbox's sweep.

Service messages are sent to citizens who opted out of polls too: opting out stops inquiries,
not the answer to something the citizen asked for by phone.
"""

from __future__ import annotations

import logging
from typing import Final

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.inquiry.definition import Language
from callcenter.settings import Settings
from callcenter.sms.gateways import make_gateway
from callcenter.sms.replies import ReplyOutbox

log = logging.getLogger(__name__)

TEXTS: Final[dict[str, dict[Language, str]]] = {
    "callback_booked": {
        "ar": "1415: تم حجز معاودة الاتصال بك ودورك محفوظ. الرقم المرجعي {reference}. "
        "سنتصل بك بين الساعة {start} و{end}.",
        "en": "1415: your callback is booked and your place is kept. Reference {reference}. "
        "We will call you between {start} and {end}.",
    },
}


def notice_text(kind: str, language: str, **values: str) -> str:
    texts = TEXTS[kind]
    return texts["en" if language == "en" else "ar"].format(**values)


async def send_notice(
    settings: Settings,
    engine: AsyncEngine,
    redis: Redis,
    *,
    phone: str,
    key: str,
    text: str,
    citizen_id: int | None = None,
) -> bool:
    """Queue and send one service message; False when it is left queued (or failed)."""
    gateway = make_gateway(settings, redis)
    try:
        outbox = ReplyOutbox(engine, gateway)
        message_id = await outbox.queue_text(phone=phone, body=text, key=key, citizen_id=citizen_id)
        if message_id is None:
            return True  # queued and sent before (a retried booking)
        sent = await outbox.send([message_id])
        return sent.sent == 1
    finally:
        await gateway.aclose()
