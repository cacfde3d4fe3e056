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

Throughput: httpcore's connection pool scans all of its connections on every request, so
one pool of 64 connections spends more CPU on bookkeeping than on HTTP. The gateway
spreads the in-flight requests over several small pools (16 pools of 4 connections by
default), which measured about three times the rate of a single 64-connection pool
against a real smsbox.

Usage: ``gw = KannelGateway(settings)``; ``await gw.send_many(batch)``; ``await gw.aclose()``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from urllib.parse import quote, urlencode

import httpx

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

    The in-flight slots are spread over ``pools`` HTTP clients (see the module docstring);
    a slot is a client taken from a queue, so a free slot always has a free connection.
    """

    name = "kannel"

    def __init__(self, settings: Settings, *, concurrency: int = 64, pools: int = 16) -> None:
        if concurrency < 1 or pools < 1:
            raise ValueError("concurrency and pools must be at least 1")
        self._settings = settings
        self._url = settings.kannel_sendsms_url
        self._timeout = settings.http_timeout_s
        pools = min(pools, concurrency)
        per_pool = math.ceil(concurrency / pools)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        # trust_env=False: an HTTP(S)_PROXY meant for the internet must not see the
        # sendsms password nor reroute traffic to the operator's Kannel.
        self._clients = [
            httpx.AsyncClient(limits=limits, timeout=self._timeout, trust_env=False) for _ in range(pools)
        ]
        self._slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for i in range(concurrency):
            self._slots.put_nowait(self._clients[i % pools])

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
        """All messages concurrently (bounded); one result per message, in order."""
        if not messages:
            return []
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def _send_one(self, msg: OutboundSms) -> SendResult:
        client = await self._slots.get()
        try:
            query = urlencode(self.params(msg), quote_via=quote)
            response = await client.get(f"{self._url}?{query}")
        except httpx.TimeoutException:
            error = f"kannel timeout after {self._timeout:g}s"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        except (httpx.TransportError, OSError) as exc:
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
        finally:
            self._slots.put_nowait(client)
        if response.is_success:
            answer = response.text.strip()
            if not answer.startswith(ACCEPTED_PREFIXES):
                log.debug("kannel accepted %s with an unusual answer %r", msg.ref, answer)
            return SendResult(ref=msg.ref)
        error = f"kannel HTTP {response.status_code}: {response.text.strip()[:200]}"
        return SendResult(ref=msg.ref, error=error, temporary=is_temporary_status(response.status_code))

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))
