"""Log lines: readable text or one JSON object per line (``CALLCENTER_LOG_FORMAT``), each with
the request id of the HTTP request it belongs to, and never a citizen's full phone number.

Phone numbers are masked twice. :class:`~callcenter.phones.MaskPhonesFilter` masks what looks
like a number in the message (the broad pattern, digits with spaces or dashes); then the
formatter masks the finished line — extra fields, tracebacks, a number an exception carried —
with a narrower pattern that cannot take a timestamp for a phone number: ``+`` and 8 to 15
digits (E.164, spaces or dashes allowed between digits), or a Libyan number written without
the plus (``00218…``, ``218…``, ``09…``).

Usage: ``configure(settings)`` once per process (``cli_common.setup_logging`` does), and
``REQUEST_ID.set(...)`` where a request starts (``web.request_context`` does).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from callcenter.phones import MaskPhonesFilter, mask_phone
from callcenter.settings import Settings

#: the id of the HTTP request being served ("" outside one)
REQUEST_ID: Final[ContextVar[str]] = ContextVar("request_id", default="")

_PHONE_IN_LINE: Final = re.compile(
    r"\+\d(?:[ -]?\d){7,14}(?!\d)"  # E.164, maybe grouped: +218 91 234 5678
    r"|(?<![\d.:/-])(?:00218|218)\d{9}(?!\d)"  # Libya without the plus
    r"|(?<![\d.:/-])09[1-5]\d{7}(?!\d)"  # Libyan mobile, national form
)

#: attributes every LogRecord has: anything else on a record came as ``extra=``
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
}


def mask_line(text: str) -> str:
    """``text`` with every phone number masked (the formatters' safety net)."""
    return _PHONE_IN_LINE.sub(lambda m: mask_phone(m.group(0)), text)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", "")
        if request_id:
            line = f"{line} [request {request_id}]"
        return mask_line(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, ``request_id``
    (when in a request), ``exc`` (a traceback), and any ``extra=`` fields. Arabic stays
    readable (not ``\\u`` escaped), so the masking sees every digit as written."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return mask_line(json.dumps(entry, ensure_ascii=False, default=str))


def make_handler(settings: Settings, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(MaskPhonesFilter())
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    return handler


def configure(settings: Settings, stream: Any = None) -> logging.Handler:
    """The root logger, for the whole process; returns its handler."""
    handler = make_handler(settings, stream)
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler
