"""What a client asks, checked: the filters of ``GET requests`` and ``servicerequestupdates``,
and the fields of ``POST requests``. Pure: a mapping of parameters in, values or an
``Open311Error`` (an HTTP status and the specification's description) out.

The limits, which the errors name:

* ``description`` at most 2,000 characters (the specification allows servers 4,000; 1415
  keeps what the SMS and desk intakes keep, ``requests.service.DESCRIPTION_LIMIT``): a longer
  one is refused with 400, never cut, so the client can tell its user;
* a location is required, as the specification says: ``lat`` and ``long`` (decimal degrees,
  -90..90 and -180..180), ``address_string`` (at most 250 characters) or ``address_id``;
* ``page`` from 1, ``page_size`` from 1 to 1,000 (100 by default); without dates, the last 90
  days (the specification's default span);
* an update (mySociety's POST ``servicerequestupdates``): ``update_id`` at most 100 characters,
  ``description`` at most 2,000 (``requests.service.NOTE_LIMIT``), ``status`` one of
  ``UPDATE_STATUSES``, ``updated_datetime`` a W3C date-time with its zone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from callcenter.errors import CallCenterError
from callcenter.open311.statuses import EXTENDED, STANDARD, statuses_for
from callcenter.requests.reference import BadReference, Reference, parse
from callcenter.requests.service import DESCRIPTION_LIMIT, NOTE_LIMIT

DEFAULT_SPAN: Final = timedelta(days=90)
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
ADDRESS_LIMIT: Final = 250
ADDRESS_ID_LIMIT: Final = 100
MEDIA_URL_LIMIT: Final = 500
ATTRIBUTE_LIMIT: Final = 300
MAX_IDS: Final = 100
LOCALES: Final = ("ar", "en")
UPDATE_ID_LIMIT: Final = 100
#: the statuses POST servicerequestupdates takes: mySociety's extended ones that GET gives, and
#: REOPEN (FixMyStreet's word for a reporter's reopening)
UPDATE_STATUSES: Final = (*dict.fromkeys(EXTENDED.values()), "REOPEN")


class Open311Error(CallCenterError):
    """An answer in the specification's error format: ``code`` is the HTTP status."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.status_code = code
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class Page:
    number: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """GET requests: ``references`` (when given) override every other filter, as the
    specification says of ``service_request_id``."""

    references: tuple[Reference, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()  # 1415 statuses (lifecycle.Status values)
    page: Page = field(default_factory=Page)


@dataclass(frozen=True, slots=True)
class Submission:
    """POST requests, checked."""

    service_code: str
    jurisdiction: str
    description: str = ""
    lat: float | None = None
    long: float | None = None
    address: str = ""
    address_id: str = ""
    phone: str = ""
    media_url: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    locale: str = "ar"


@dataclass(frozen=True, slots=True)
class UpdateSubmission:
    """POST servicerequestupdates, checked: ``status`` in upper case (one of ``UPDATE_STATUSES``),
    ``update_id`` the client's own id of the update."""

    reference: Reference
    update_id: str
    status: str
    updated: datetime
    description: str = ""
    media_url: str = ""
    jurisdiction: str = ""


def locale(params: Mapping[str, str]) -> str:
    """``locale=en`` for English names (GeoReport v2.1's parameter); Arabic otherwise."""
    return "en" if params.get("locale", "").lower().startswith("en") else "ar"


def request_filter(params: Mapping[str, str], *, now: datetime) -> RequestFilter:
    page = page_of(params)
    ids = _list(params.get("service_request_id", ""))
    if ids:
        if len(ids) > MAX_IDS:
            raise Open311Error(400, f"at most {MAX_IDS} service_request_id at once")
        return RequestFilter(references=tuple(reference(i) for i in ids), page=page)
    statuses: list[str] = []
    for status in _list(params.get("status", "").lower()):
        if status not in STANDARD:
            raise Open311Error(400, f"status is open or closed (comma-separated), not {status!r}")
        statuses += statuses_for(status)
    start, end = dates(params, now=now)
    return RequestFilter(
        service_codes=tuple(_list(params.get("service_code", ""))), start=start, end=end,
        statuses=tuple(sorted(set(statuses))), page=page,
    )  # fmt: skip


def dates(params: Mapping[str, str], *, now: datetime) -> tuple[datetime, datetime]:
    """``start_date`` and ``end_date`` (W3C date-times with their zone); 90 days up to now, or
    90 days from the one given."""
    start, end = _date(params, "start_date"), _date(params, "end_date")
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - DEFAULT_SPAN
    if end is None:
        end = start + DEFAULT_SPAN
    if start > end:
        raise Open311Error(400, "start_date is after end_date")
    return start, end


def page_of(params: Mapping[str, str]) -> Page:
    number = _integer(params, "page", 1)
    size = _integer(params, "page_size", DEFAULT_PAGE_SIZE)
    if number < 1:
        raise Open311Error(400, "page counts from 1")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise Open311Error(400, f"page_size is from 1 to {MAX_PAGE_SIZE}")
    return Page(number, size)


def reference(text: str) -> Reference:
    """A service_request_id: a 1415 reference (``1415-4217-0393``, with or without the dashes)."""
    try:
        return parse(text[:40])
    except BadReference as exc:
        raise Open311Error(404, f"service_request_id {text[:40]!r} was not found ({exc.message})") from exc


def submission(form: Mapping[str, str]) -> Submission:
    """The fields of POST requests (``api_key`` is checked before, by the router)."""
    code = form.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code was not provided")
    jurisdiction = form.get("jurisdiction_id", "").strip()
    if not jurisdiction:
        raise Open311Error(400, "jurisdiction_id was not provided (the municipality's code)")
    description = form.get("description", "").strip()
    if len(description) > DESCRIPTION_LIMIT:
        raise Open311Error(
            400,
            f"description is limited to {DESCRIPTION_LIMIT} characters; this one has "
            f"{len(description)}: shorten it",
        )
    lat, long = _coordinate(form, "lat", 90.0), _coordinate(form, "long", 180.0)
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long go together: give both or neither")
    address = _bounded(form, "address_string", ADDRESS_LIMIT)
    address_id = _bounded(form, "address_id", ADDRESS_ID_LIMIT)
    if lat is None and not address and not address_id:
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    media_url = _bounded(form, "media_url", MEDIA_URL_LIMIT)
    if media_url and not media_url.startswith(("https://", "http://")):
        raise Open311Error(400, "media_url is an http or https address")
    attributes: dict[str, str] = {}
    for name, value in form.items():
        if name.startswith("attribute[") and name.endswith("]"):
            key = name[len("attribute[") : -1]
            if len(value) > ATTRIBUTE_LIMIT:
                raise Open311Error(400, f"attribute[{key[:48]}] is limited to {ATTRIBUTE_LIMIT} characters")
            attributes[key] = value.strip()
    return Submission(
        service_code=code, jurisdiction=jurisdiction, description=description, lat=lat, long=long,
        address=address, address_id=address_id, phone=form.get("phone", "").strip()[:40],
        media_url=media_url, attributes=attributes, locale=locale(form),
    )  # fmt: skip


def update_submission(form: Mapping[str, str]) -> UpdateSubmission:
    """The fields of POST servicerequestupdates (``api_key`` is checked before, by the router).
    ``update_id_ext`` is taken for ``update_id`` (older FixMyStreet releases send it); the
    commenter's name, e-mail and phone are not kept, as for POST requests."""
    text = form.get("service_request_id", "").strip()
    if not text:
        raise Open311Error(400, "service_request_id was not provided")
    ref = reference(text)
    update_id = (form.get("update_id") or form.get("update_id_ext") or "").strip()
    if not update_id:
        raise Open311Error(
            400, "update_id was not provided (the client's own id of the update: sent again, it is "
            "recorded once)",
        )  # fmt: skip
    if len(update_id) > UPDATE_ID_LIMIT:
        raise Open311Error(400, f"update_id is limited to {UPDATE_ID_LIMIT} characters")
    said = form.get("status", "").strip()
    status = said.upper().replace(" ", "_")
    if not said:
        raise Open311Error(400, f"status was not provided (one of {', '.join(UPDATE_STATUSES)})")
    if status not in UPDATE_STATUSES:
        raise Open311Error(400, f"status is one of {', '.join(UPDATE_STATUSES)}, not {said[:40]!r}")
    updated = _date(form, "updated_datetime")
    if updated is None:
        raise Open311Error(400, "updated_datetime was not provided (a W3C date-time with its zone)")
    description = form.get("description", "").strip()
    if len(description) > NOTE_LIMIT:
        raise Open311Error(
            400,
            f"description is limited to {NOTE_LIMIT} characters; this one has {len(description)}: shorten it",
        )
    media_url = _bounded(form, "media_url", MEDIA_URL_LIMIT)
    if media_url and not media_url.startswith(("https://", "http://")):
        raise Open311Error(400, "media_url is an http or https address")
    return UpdateSubmission(
        reference=ref, update_id=update_id, status=status, updated=updated, description=description,
        media_url=media_url, jurisdiction=form.get("jurisdiction_id", "").strip(),
    )  # fmt: skip


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _date(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Open311Error(
            400, f"{name} is a W3C date-time with its zone, e.g. 2026-03-15T08:00:00+02:00 or ...Z"
        )
    return moment


def _integer(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise Open311Error(400, f"{name} is a whole number")
    return int(text)


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text) if len(text) <= 32 and text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise Open311Error(400, f"{name} is a decimal number of degrees from {-bound:g} to {bound:g}")
    return value


def _bounded(form: Mapping[str, str], name: str, limit: int) -> str:
    value = form.get(name, "").strip()
    if len(value) > limit:
        raise Open311Error(400, f"{name} is limited to {limit} characters")
    return value
