"""Kannel: messages go out through smsbox's HTTP ``sendsms`` interface.

Libyan operators are reached over SMPP through Kannel; the engine only talks to smsbox's
``/cgi-bin/sendsms`` (one GET per message, there is no batch call) and receives replies and
delivery reports on the routes of :mod:`callcenter.sms.kannel_webhooks`.

What each request says, and why:

* ``text`` is always UTF-8 with ``charset=UTF-8``; when the text is not GSM-7 (Arabic,
  emoji) ``coding=2`` makes Kannel convert it to UCS-2 itself. Without ``coding=2`` Kannel
  would try to squeeze Arabic into GSM-7 and send question marks.
* ``dlr-mask=31`` asks for every report (delivered, failed, buffered, SMSC submit, SMSC
  reject) at ``dlr-url``. Kannel returns no message id from sendsms, so the URL carries our
  own ``ref``; Kannel fills in ``%d`` (the report type) and ``%A`` (the SMSC's answer).
  Our literal values in that URL have every ``%`` doubled (see :func:`kannel_literal`).
* ``to`` keeps its leading ``+`` (Kannel's default ``sendsms-chars`` allow it, and SMPP
  sets the international TON from it).

Answers (``gw/smsbox.c``):

* 202 ``0: Accepted for delivery`` / ``3: Queued for later delivery``: handed over.
* 403 ``Authorization failed for sendsms`` or ``Not routable. Do not try again.``, 400
  (a missing or malformed field) and other 4xx: permanent, a retry sends the same request.
* 5xx (``Sending failed.``, 503 ``Temporal failure``), 408/429, timeouts, refused or dropped
  connections: temporary. A timeout after Kannel read the request may have queued it: the
  retry can then send twice; sendsms has no idempotency key to prevent that.

Throughput: one aiohttp session with a bounded connector (see ``KannelGateway``).

Usage: ``gw = KannelGateway(settings)``; ``await gw.send_many(batch)``; ``await gw.aclose()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from callcenter.settings import Settings
from callcenter.sms.encoding import analyse
from callcenter.sms.gateways.base import OutboundSms, SendResult

log = logging.getLogger(__name__)

INBOUND_PATH = "/sms/kannel/inbound"
DLR_PATH = "/sms/kannel/dlr"
DLR_MASK = 31  # 1 delivered + 2 failed + 4 buffered + 8 SMSC submit + 16 SMSC reject

# The answers Kannel gives with 202; anything else with a 2xx is accepted too (a
# ``Sent.`` from smsbox with ``immediate-sendsms-reply``).
ACCEPTED_PREFIXES = ("0:", "3:")


def kannel_literal(text: str) -> str:
    """``text`` (already URL-encoded) as a literal inside a URL pattern Kannel fills in.

    Kannel replaces ``%`` followed by a letter (``%d``, ``%A``, ``%C``...) in ``dlr-url``
    and ``get-url``; URL-encoding a non-ASCII secret gives ``%C3``, which Kannel would turn
    into the message's charset. ``%%`` is Kannel's escape for a literal ``%``.
    """
    return text.replace("%", "%%")


def dlr_url(settings: Settings, ref: str) -> str:
    """The ``dlr-url`` for one message: our secret and ref, Kannel's ``%d`` and ``%A``."""
    ours = urlencode({"secret": settings.kannel_secret, "ref": ref}, quote_via=quote)
    base = settings.public_base_url.rstrip("/")
    return f"{base}{DLR_PATH}?{kannel_literal(ours)}&status=%d&answer=%A"


def is_temporary_status(status: int) -> bool:
    """Kannel's 5xx are its own or its SMSC's trouble; 408/429 are load. Other 4xx stay."""
    return status >= 500 or status in (408, 429)


class KannelGateway:
    """Sends each message with one sendsms GET; at most ``concurrency`` in flight.

    aiohttp, not httpx: httpx's connection-pool bookkeeping capped a 2-core machine at about
    700 requests/s, below what one Kannel accepts (~3,800/s through aiohttp, measured).
    The session is made on first use, inside the running loop (aiohttp requires it).
    """

    name = "kannel"

    def __init__(self, settings: Settings, *, concurrency: int = 64, pools: int = 1) -> None:
        if concurrency < 1 or pools < 1:
            raise ValueError("concurrency and pools must be at least 1")
        self._settings = settings
        self._url = settings.kannel_sendsms_url
        self._timeout = settings.http_timeout_s
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._fixed: str | None = None
        self._dlr_head = ""
        self._texts: dict[str, str] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # trust_env=False: an HTTP(S)_PROXY meant for the internet must not see the
            # sendsms password nor reroute traffic to the operator's Kannel.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._concurrency),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                trust_env=False,
            )
        return self._session

    def params(self, msg: OutboundSms) -> dict[str, str]:
        """The sendsms query parameters for ``msg`` (public for the tests and benchmarks)."""
        s = self._settings
        params = {
            "username": s.kannel_username,
            "password": s.kannel_password,
            "from": s.kannel_from,
            "to": msg.to,
            "text": msg.body,
            "charset": "UTF-8",
            "dlr-mask": str(DLR_MASK),
            "dlr-url": dlr_url(s, msg.ref),
        }
        if analyse(msg.body).encoding != "gsm7":
            params["coding"] = "2"
        if s.kannel_smsc:
            params["smsc"] = s.kannel_smsc
        return params

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """All messages concurrently (bounded by the connector); one result per message, in order."""
        if not messages:
            return []
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    def query(self, msg: OutboundSms) -> str:
        """The encoded query string of ``msg``, equal to ``urlencode(params(msg))``; a campaign
        sends one text to many numbers, so the encoded text, its coding and the fixed
        parameters are computed once, not once per message (a third of the CPU per send)."""
        s = self._settings
        if self._fixed is None:
            fixed = {"username": s.kannel_username, "password": s.kannel_password, "from": s.kannel_from}
            self._fixed = urlencode(fixed, quote_via=quote)
            empty = dlr_url(s, "")
            self._dlr_head = empty[: empty.index("&status=%d")]  # ends with "ref="
        text = self._texts.get(msg.body)
        if text is None:
            text = "text=" + quote(msg.body, safe="") + "&charset=UTF-8"
            if analyse(msg.body).encoding != "gsm7":
                text += "&coding=2"
            if len(self._texts) < 64:
                self._texts[msg.body] = text
        dlr = self._dlr_head + kannel_literal(quote(msg.ref, safe="")) + "&status=%d&answer=%A"
        query = (
            f"{self._fixed}&to={quote(msg.to, safe='')}&{text}"
            f"&dlr-mask={DLR_MASK}&dlr-url={quote(dlr, safe='')}"
        )
        if s.kannel_smsc:
            query += "&smsc=" + quote(s.kannel_smsc, safe="")
        return query

    async def _send_one(self, msg: OutboundSms) -> SendResult:
        try:
            query = self.query(msg)
            async with self._client().get(URL(f"{self._url}?{query}", encoded=True)) as response:
                status, answer = response.status, (await response.text()).strip()
        except TimeoutError:
            error = f"kannel timeout after {self._timeout:g}s"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        except (aiohttp.ClientError, OSError) as exc:
            error = f"kannel connection error: {type(exc).__name__}: {exc}"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        except UnicodeEncodeError as exc:  # a lone surrogate: no retry will help
            return SendResult(ref=msg.ref, error=f"unencodable text: {exc}")
        except Exception as exc:
            # The contract forbids raising for one message; an unexpected failure is
            # retried a bounded number of times rather than lost.
            log.exception("unexpected Kannel failure for %s", msg.ref)
            error = f"kannel unexpected {type(exc).__name__}: {exc}"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        if 200 <= status < 300:
            if not answer.startswith(ACCEPTED_PREFIXES):
                log.debug("kannel accepted %s with an unusual answer %r", msg.ref, answer)
            return SendResult(ref=msg.ref)
        error = f"kannel HTTP {status}: {answer[:200]}"
        return SendResult(ref=msg.ref, error=error, temporary=is_temporary_status(status))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
