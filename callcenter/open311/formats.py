"""GeoReport v2's two formats, written the same way from one shape.

A *document* is a root name, an item name and a list of records (``services`` / ``service``,
``service_requests`` / ``request``, ``errors`` / ``error``, mySociety's
``service_request_updates`` / ``request_update``); the service definition is the one document
that is a single record. Records hold strings, numbers, booleans, ``None`` and lists of records
(``attributes`` of ``attribute``, ``values`` of ``value``).

JSON is the records as they are (a list, or the one record). XML is UTF-8 with its declaration,
one element per field in the record's order, booleans as ``true`` / ``false``, ``None`` as an
empty element, text escaped by ElementTree, and the characters XML 1.0 cannot carry (control
characters but tab and line breaks) dropped so a client's parser never chokes on a citizen's text.
Dates are W3C date-times with the offset (``2026-03-15T08:00:00+02:00``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

Format = Literal["json", "xml"]
FORMATS: Final = ("json", "xml")
CONTENT_TYPES: Final[dict[str, str]] = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
#: the element of one item of a list field
SINGULAR: Final[dict[str, str]] = {"attributes": "attribute", "values": "value"}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

Record = Mapping[str, Any]


def render(fmt: Format, root: str, item: str | None, records: Sequence[Record] | Record) -> str:
    """The document in ``fmt``: a list of ``item`` records under ``root``, or (``item`` None)
    one record as ``root``."""
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, separators=(",", ":"))
    if item is None:
        assert isinstance(records, Mapping)
        element = _element(root, records)
    else:
        assert not isinstance(records, Mapping)
        element = ET.Element(root)
        for record in records:
            element.append(_element(item, record))
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="unicode")


def errors(fmt: Format, problems: Sequence[tuple[int, str]]) -> str:
    """The specification's error document: ``[{code, description}, ...]``."""
    return render(fmt, "errors", "error", [{"code": code, "description": text} for code, text in problems])


def w3c(moment: datetime | None, tz: ZoneInfo) -> str | None:
    """``2026-03-15T08:00:00+02:00`` (the local time of ``tz`` with its offset; no fractions)."""
    if moment is None:
        return None
    return moment.astimezone(tz).isoformat(timespec="seconds")


def _element(name: str, record: Record) -> ET.Element:
    element = ET.Element(name)
    for key, value in record.items():
        child = ET.SubElement(element, key)
        if isinstance(value, list):
            for entry in value:
                child.append(_element(SINGULAR.get(key, "item"), entry))
        else:
            child.text = _text(value)
    return element


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))
