"""Where Kannel calls us back: citizens' replies (sms-service ``get-url``) and DLRs.

Kannel signs nothing, so both URLs carry ``kannel_secret`` as a query parameter; Kannel
and the engine talk over the operator's private network.

Inbound (``GET`` or ``POST /sms/kannel/inbound``), the URL Kannel's ``sms-service`` calls;
:func:`sms_service_get_url` builds it. Its parameters are Kannel escapes:

* ``from`` = ``%p``, ``to`` = ``%P``, ``id`` = ``%I`` (Kannel's message UUID, our dedupe
  key), ``time`` = ``%T``.
* ``text`` = ``%b``, the whole message as bytes (``%a`` would re-join the words with single
  spaces and split UCS-2 on 0x20 bytes), with ``charset`` = ``%C`` and ``coding`` = ``%c``
  saying how to read them. With ``mo-recode = true`` in smsbox, Kannel turns a UCS-2 reply
  into UTF-8 (``charset=UTF-8``); without it ``charset=UTF-16BE`` and the bytes are UCS-2.
  Both are decoded here, so Arabic arrives intact either way.

The answer body is the reply SMS: Kannel sends it back to the citizen (``text/plain``),
converting it to UCS-2 when we say ``X-Kannel-Coding: 2`` (the sms-service needs
``accept-x-kannel-headers = true``; without it Kannel squeezes Arabic into GSM-7 and sends
question marks). No reply is an empty body, which ``omit-empty = true`` turns into nothing.

DLR (``GET /sms/kannel/dlr``), the ``dlr-url`` :func:`callcenter.sms.gateways.kannel.dlr_url`
builds for each message: our ``ref``, ``status`` = ``%d``, ``answer`` = ``%A``.

While the database is unreachable both are spooled (:mod:`callcenter.sms.spooling`) and
answered 200 as usual, the inbound one with an empty body: its reply follows by sendsms once
the spool is drained. Only when the spool cannot take them either is the answer 503, which
smsbox retries (``http-request-retry``, ``http-queue-delay``).

Usage: ``app.include_router(make_router(settings))`` with ``app.state.inbox`` set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from callcenter.settings import Settings
from callcenter.sms.encoding import analyse
from callcenter.sms.gateways.base import DeliveryState, InboundSms, SmsInbox, StatusReport
from callcenter.sms.gateways.kannel import DLR_PATH, INBOUND_PATH, kannel_literal
from callcenter.sms.spool import SpoolError

log = logging.getLogger(__name__)

# Kannel's DLR types (%d). Only 1, 2 and 16 are final.
KANNEL_DLR_STATES: dict[int, DeliveryState] = {
    1: "delivered",  # the phone has it: final
    2: "failed",  # the SMSC gave up on the phone: final
    4: "sent",  # buffered at the SMSC (phone off): still trying
    8: "sent",  # the SMSC accepted the submission
    16: "failed",  # the SMSC rejected it: final
}

_TEXT = "text/plain; charset=utf-8"
_UCS2_CHARSETS = frozenset({"utf-16be", "utf-16", "ucs-2", "ucs2", "iso-10646-ucs-2"})
_FORM = "application/x-www-form-urlencoded"


def sms_service_get_url(public_base_url: str, secret: str) -> str:
    """The ``get-url`` for Kannel's ``sms-service``: our secret plus Kannel's escapes."""
    ours = kannel_literal(urlencode({"secret": secret}, quote_via=quote))
    escapes = "from=%p&to=%P&text=%b&charset=%C&coding=%c&id=%I&time=%T"
    return f"{public_base_url.rstrip('/')}{INBOUND_PATH}?{ours}&{escapes}"


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


# Every answer is plain text (Kannel sends a 200's body to the phone), for the OpenAPI schema.
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _text("Inbound: the reply SMS (empty: none). DLR: empty"),
    400: _text("A required parameter is missing or wrong"),
    403: _text("The secret is missing or wrong"),
    503: _text("Neither the database nor the spool can take it: smsbox retries"),
}


def _raw_params(query: bytes) -> dict[str, bytes]:
    """Query or form parameters as bytes: ``text`` may be UCS-2, not UTF-8.

    Latin-1 maps each percent-decoded byte to one character and back, losslessly.
    """
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return {k: v.encode("latin-1") for k, v in pairs}


def _str(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def decode_text(data: bytes, *, charset: str = "", coding: str = "") -> str:
    """A message's bytes as Kannel described them (``%C`` charset, ``%c`` coding).

    The charset wins; the coding (2 = UCS-2) is the fallback when a gateway gives none.
    Unknown charsets are read as UTF-8, replacing what does not decode.
    """
    name = charset.strip().lower()
    if name in _UCS2_CHARSETS or (not name and coding.strip() == "2"):
        return data.decode("utf-16-be", "replace")
    if name in ("", "8-bit"):
        return data.decode("utf-8", "replace")
    try:
        return data.decode(name, "replace")
    except (LookupError, ValueError):
        # no such codec, one that is no text encoding ("base64"), or one that refuses to
        # replace (``idna``): a 500 here would lose the reply
        return data.decode("utf-8", "replace")


def fallback_id(sender: str, time: str, text: str) -> str:
    """A dedupe key when Kannel gives no ``%I``: the same (sender, time, text) is one SMS."""
    digest = hashlib.sha256("\x00".join((sender, time, text)).encode()).hexdigest()
    return f"h-{digest[:32]}"


def _inbox(request: Request) -> SmsInbox:
    inbox: SmsInbox = request.app.state.inbox
    return inbox


def _forbidden() -> Response:
    return PlainTextResponse("forbidden: wrong or missing secret\n", status_code=403)


def _bad_request(detail: str) -> Response:
    return PlainTextResponse(f"bad request: {detail}\n", status_code=400)


def _spool_refused(exc: SpoolError) -> Response:
    """503: smsbox retries (``http-request-retry``); the body is never sent to the phone."""
    return PlainTextResponse(f"unavailable: {exc}\n", status_code=503)


async def _inbound_params(request: Request) -> tuple[dict[str, bytes], bytes | None]:
    """The parameters (query, plus a form body) and, for a ``post-url``, the raw body text.

    Kannel's ``post-url`` sends the message itself as the body, its sender and receiver in
    ``X-Kannel-From`` / ``X-Kannel-To`` and its charset in the ``Content-Type``.
    """
    params = _raw_params(request.scope.get("query_string", b""))
    if request.method != "POST":
        return params, None
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == _FORM:
        return {**params, **_raw_params(body)}, None
    for header, name in (("x-kannel-from", "from"), ("x-kannel-to", "to")):
        if name not in params and header in request.headers:
            params[name] = request.headers[header].encode()
    if "charset" not in params and "charset=" in content_type.lower():
        charset = content_type.lower().split("charset=", 1)[1].split(";")[0].strip(' "')
        params["charset"] = charset.encode()
    return params, body


def make_router(settings: Settings) -> APIRouter:
    """The Kannel routes: inbound SMS (the reply is the answer body) and DLRs."""
    router = APIRouter(tags=["sms webhooks"])
    secret = settings.kannel_secret.encode()

    def secret_ok(params: dict[str, bytes]) -> bool:
        given = params.get("secret")
        return given is not None and hmac.compare_digest(given, secret)

    async def kannel_inbound(request: Request) -> Response:
        """A citizen's SMS; the answer body is the reply Kannel sends back (empty: none)."""
        params, body = await _inbound_params(request)
        if not secret_ok(params):
            return _forbidden()
        sender = _str(params.get("from")).strip()
        if not sender:
            return _bad_request("'from' (%p) is required")
        raw = params.get("text", body or b"")
        text = decode_text(raw, charset=_str(params.get("charset")), coding=_str(params.get("coding")))
        gateway_id = _str(params.get("id")).strip()
        if not gateway_id:
            gateway_id = fallback_id(sender, _str(params.get("time")), text)
        sms = InboundSms(
            gateway="kannel",
            gateway_id=gateway_id,
            sender=sender,
            body=text,
            to=_str(params.get("to")).strip(),
        )
        try:
            reply = await _inbox(request).receive(sms)
        except SpoolError as exc:
            return _spool_refused(exc)
        if not reply:  # none, or spooled while the database is away: the reply comes by sendsms
            return Response(status_code=200, content=b"", media_type=_TEXT)
        headers = {"X-Kannel-Coding": "2"} if analyse(reply).encoding != "gsm7" else None
        return PlainTextResponse(reply, headers=headers)

    async def kannel_dlr(request: Request) -> Response:
        """A delivery report for a message we sent with ``dlr-url``.

        Answered 200 with an empty body: smsbox counts anything but 200 and 202 as a failed
        call and, with ``http-request-retry`` set, calls again (a 204 was retried every time).
        """
        params = _raw_params(request.scope.get("query_string", b""))
        if not secret_ok(params):
            return _forbidden()
        ref = _str(params.get("ref")).strip()
        if not ref:
            return _bad_request("'ref' is required")
        status = _str(params.get("status")).strip()
        # (int() refuses thousands of digits with ValueError: a 500)
        state = KANNEL_DLR_STATES.get(int(status)) if status.isdecimal() and len(status) < 10 else None
        if state is None:
            return _bad_request(f"unknown DLR status {status!r} (want 1, 2, 4, 8 or 16)")
        error = None
        if state == "failed":
            answer = _str(params.get("answer")).strip()
            kind = "SMSC reject" if status == "16" else "undelivered"
            error = f"{kind}: {answer}" if answer else kind
        report = StatusReport(gateway="kannel", state=state, ref=ref, error=error)
        try:
            await _inbox(request).status(report)
        except SpoolError as exc:
            return _spool_refused(exc)
        return Response(status_code=200, content=b"", media_type=_TEXT)

    # One route per method: a route with two methods gets one operation id in the OpenAPI
    # schema for both, which FastAPI warns about and schema tools refuse.
    for path, handler in ((INBOUND_PATH, kannel_inbound), (DLR_PATH, kannel_dlr)):
        for method in ("GET", "POST"):
            router.add_api_route(
                path,
                handler,
                methods=[method],
                response_class=Response,
                responses=_RESPONSES,
                operation_id=f"{handler.__name__}_{method.lower()}",
            )
    return router
