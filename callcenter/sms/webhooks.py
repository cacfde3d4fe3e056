"""Where gateways call us back: inbound replies and delivery reports.

Every route only translates: it checks the caller, turns the request into an
``InboundSms`` or ``StatusReport`` and hands it to the engine's ``SmsInbox``
(``request.app.state.inbox``), which stores first and decides the reply.

The Twilio inbound route is the hot path of a poll (thousands of replies a second in the
minutes after a send), so it reads the body once, parses it with ``parse_qsl`` instead of
the general multipart machinery, validates once and awaits nothing but the inbox.

While the database is unreachable, ``app.state.inbox`` (a ``SpoolingInbox``) spools what
the engine cannot store and answers as if there were no reply (empty TwiML); the reply goes
out through the gateway once the spool is drained. A wrong signature is refused first,
outage or not. Only when the spool cannot take it either is the answer 503.

Usage: ``app.include_router(make_router(settings))`` with ``app.state.inbox`` set.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from twilio.twiml.messaging_response import MessagingResponse

from callcenter.settings import Settings
from callcenter.sms.gateways.base import DeliveryState, InboundSms, SmsInbox, StatusReport
from callcenter.sms.gateways.twilio import INBOUND_PATH, STATUS_CALLBACK_PATH, validate_request
from callcenter.sms.spool import SpoolError
from callcenter.web.api.responses import HttpErrorOut

log = logging.getLogger(__name__)

# Twilio's MessageStatus values. Intermediate ones only confirm the hand-over; the final
# ones (delivered/read, failed/undelivered/canceled) are not followed by another report.
TWILIO_STATES: dict[str, DeliveryState] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}

_XML = "application/xml"


class LoopbackInbound(BaseModel):
    """A reply injected by the simulator or a test, as a real operator would send it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    sender: str = Field(alias="from")
    to: str = ""
    body: str


class LoopbackStatus(BaseModel):
    ref: str | None = None
    id: str | None = None
    state: DeliveryState
    error: str | None = None

    @model_validator(mode="after")
    def _names_a_message(self) -> LoopbackStatus:
        if self.ref is None and self.id is None:
            raise ValueError("give ref or id")
        return self


class WebhookError(BaseModel):
    """A refused webhook call: ``error`` is a stable id, ``detail`` says why."""

    error: str
    detail: str


# What the routes answer besides their success, for the OpenAPI schema.
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": WebhookError, "description": "Neither the database nor the spool can take it: retry"},
}
_LOOPBACK: dict[int | str, dict[str, Any]] = {
    400: {"model": HttpErrorOut, "description": "The body is not JSON"},
    **_UNAVAILABLE,
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": WebhookError, "description": "MessageSid (or From) is missing"},
    403: {"model": WebhookError, "description": "X-Twilio-Signature is missing or wrong"},
    **_UNAVAILABLE,
}
_TWIML: dict[int | str, dict[str, Any]] = {
    200: {"description": "TwiML with the reply, if any", "content": {_XML: {"schema": {"type": "string"}}}},
    **_REFUSALS,
}


def _inbox(request: Request) -> SmsInbox:
    inbox: SmsInbox = request.app.state.inbox
    return inbox


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def _spool_refused(exc: SpoolError) -> JSONResponse:
    """Neither the database nor the spool could take it: 503, the gateway's cue to retry."""
    return _error(503, exc.error_id, str(exc))


async def _signed_form(request: Request, settings: Settings) -> dict[str, str] | None:
    """The form fields of a request Twilio signed, or None when the signature is wrong.

    The signed URL is the public one (``settings.public_base_url``): behind a proxy the
    URL this process sees has another scheme, host or port.
    """
    body = await request.body()
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    url = settings.public_base_url.rstrip("/") + request.scope["path"]
    query: bytes = request.scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("latin-1")
    signature = request.headers.get("x-twilio-signature")
    return params if validate_request(settings, url, params, signature) else None


_EMPTY_TWIML = MessagingResponse().to_xml()
_TWIML_HEAD = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
_EMPTY_MESSAGE = '<?xml version="1.0" encoding="UTF-8"?><Response><Message /></Response>'


def _twiml(reply: str | None) -> Response:
    """TwiML with the reply; the same bytes ``MessagingResponse`` writes (tested), without
    building an ElementTree per reply on the hot path."""
    if reply is None:
        return Response(content=_EMPTY_TWIML, media_type=_XML)
    if not reply:
        return Response(content=_EMPTY_MESSAGE, media_type=_XML)
    body = _TWIML_HEAD + escape(reply) + "</Message></Response>"
    return Response(content=body, media_type=_XML)


def make_twilio_inbound(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """The Twilio reply handler, shared by the router (for the docs) and the hot path."""

    async def twilio_inbound(request: Request) -> Response:
        """A citizen's reply; the TwiML answer carries the inline reply, if any."""
        form = await _signed_form(request, settings)
        if form is None:
            return _error(403, "invalid_signature", "X-Twilio-Signature missing or wrong")
        sid = form.get("MessageSid") or form.get("SmsSid")
        sender = form.get("From")
        if not sid or not sender:
            return _error(400, "bad_request", "MessageSid and From are required")
        sms = InboundSms(
            gateway="twilio",
            gateway_id=sid,
            sender=sender,
            body=form.get("Body", ""),
            to=form.get("To", ""),
        )
        try:
            reply = await _inbox(request).receive(sms)
        except SpoolError as exc:
            return _spool_refused(exc)
        return _twiml(reply)

    return twilio_inbound


def hot_handlers(
    settings: Settings,
) -> dict[tuple[str, str], Callable[[Request], Awaitable[Response]]]:
    """Routes served by ``web.hotpath.HotPath`` in front of the framework (see there why)."""
    return {("POST", INBOUND_PATH): make_twilio_inbound(settings)}


def make_router(settings: Settings) -> APIRouter:
    """The webhook routes; the loopback ones only where the loopback gateway may be used."""
    router = APIRouter(tags=["sms webhooks"])
    router.add_api_route(
        INBOUND_PATH,
        make_twilio_inbound(settings),
        methods=["POST"],
        response_class=Response,
        responses=_TWIML,
    )

    @router.post(STATUS_CALLBACK_PATH, status_code=204, response_class=Response, responses=_REFUSALS)
    async def twilio_status(request: Request) -> Response:
        """A delivery report for a message we sent (``status_callback`` of ``create``)."""
        form = await _signed_form(request, settings)
        if form is None:
            return _error(403, "invalid_signature", "X-Twilio-Signature missing or wrong")
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        if not sid:
            return _error(400, "bad_request", "MessageSid is required")
        state = TWILIO_STATES.get(status)
        if state is None:
            # A status Twilio added later: acknowledge it, or Twilio keeps calling.
            log.warning("ignoring Twilio status %r for %s", status, sid)
            return Response(status_code=204)
        error = None
        if state == "failed":
            error = form.get("ErrorCode") or status
        report = StatusReport(gateway="twilio", state=state, gateway_id=sid, error=error)
        try:
            await _inbox(request).status(report)
        except SpoolError as exc:
            return _spool_refused(exc)
        return Response(status_code=204)

    if settings.sms_gateway == "loopback" or settings.env != "production":

        @router.post("/sms/loopback/inbound", response_model=None, responses=_LOOPBACK)
        async def loopback_inbound(
            payload: LoopbackInbound, request: Request
        ) -> dict[str, str | None] | Response:
            """A simulated reply; the inline reply comes back as JSON."""
            sms = InboundSms(
                gateway="loopback",
                gateway_id=payload.id,
                sender=payload.sender,
                body=payload.body,
                to=payload.to,
            )
            try:
                return {"reply": await _inbox(request).receive(sms)}
            except SpoolError as exc:
                return _spool_refused(exc)

        @router.post("/sms/loopback/status", status_code=204, response_class=Response, responses=_LOOPBACK)
        async def loopback_status(payload: LoopbackStatus, request: Request) -> Response:
            """A simulated delivery report."""
            report = StatusReport(
                gateway="loopback",
                state=payload.state,
                ref=payload.ref,
                gateway_id=payload.id,
                error=payload.error,
            )
            try:
                await _inbox(request).status(report)
            except SpoolError as exc:
                return _spool_refused(exc)
            return Response(status_code=204)

    return router
