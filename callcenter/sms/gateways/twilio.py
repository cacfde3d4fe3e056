"""Twilio: messages go out through the official library's REST client, asynchronously.

The library's own ``AsyncTwilioHttpClient`` (aiohttp, which ``twilio`` already depends on)
is used rather than the sync client in threads: a batch of 500 is 500 coroutines sharing
one connection pool, bounded by a semaphore, with no thread per request.

The API host is fixed inside the library (``twilio.rest.api.ApiBase`` passes
``https://api.twilio.com`` to its ``Domain``); ``settings.twilio_api_base`` replaces it by
setting ``client.api.base_url``, the attribute every Messages URL is built from. That is
how the tests reach a fake Twilio on 127.0.0.1.

Failures (status values as Twilio documents them):

* HTTP 429 (rate limited), 5xx, timeouts, refused or dropped connections: temporary,
  retried with back-off.
* any other 4xx (21211 invalid 'To', 21610 recipient replied STOP, 21408 region not
  enabled...): permanent, never retried. Twilio's error code is kept in the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from callcenter.settings import Settings
from callcenter.sms.gateways.base import OutboundSms, SendResult

log = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/sms/twilio/status"
INBOUND_PATH = "/sms/twilio/inbound"


def is_temporary_status(status: int) -> bool:
    """Twilio asks to retry on 429 and on its own failures; other 4xx won't change."""
    return status == 429 or status >= 500


class TwilioGateway:
    """Sends each message with ``Messages.create``; at most ``concurrency`` in flight.

    The aiohttp session is created on first use, inside the running event loop (aiohttp
    binds a session to the loop it is created in), and closed by ``aclose``.
    """

    name = "twilio"

    def __init__(self, settings: Settings, *, concurrency: int = 32) -> None:
        self._settings = settings
        self._timeout = settings.http_timeout_s
        self._concurrency = concurrency
        self._status_callback = settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH
        self._limit = asyncio.Semaphore(concurrency)
        self._client: Any = None  # twilio.rest.Client (untyped library)
        self._http: AsyncTwilioHttpClient | None = None

    def _get_client(self) -> Any:
        if self._client is None:
            http = AsyncTwilioHttpClient(pool_connections=False)
            http.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=self._concurrency),
            )
            s = self._settings
            client = Client(
                s.twilio_account_sid,
                s.twilio_auth_token,
                http_client=http,
                # Not os.environ: TWILIO_EDGE / TWILIO_REGION would silently rewrite the host.
                environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
            )
            if s.twilio_api_base:
                client.api.base_url = s.twilio_api_base.rstrip("/")
            self._http, self._client = http, client
        return self._client

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """All messages concurrently (bounded); one result per message, in order."""
        if not messages:
            return []
        client = self._get_client()
        return list(await asyncio.gather(*(self._send_one(client, m) for m in messages)))

    async def _send_one(self, client: Any, msg: OutboundSms) -> SendResult:
        try:
            async with self._limit, asyncio.timeout(self._timeout):
                created = await client.messages.create_async(
                    to=msg.to,
                    from_=self._settings.twilio_from,
                    body=msg.body,
                    status_callback=self._status_callback,
                )
        except (TwilioRestException, TwilioServiceException) as exc:
            temporary = is_temporary_status(exc.status)
            error = f"twilio HTTP {exc.status} code {exc.code}: {_describe(exc)}"
            return SendResult(ref=msg.ref, error=error, temporary=temporary)
        except TimeoutError:
            error = f"twilio timeout after {self._timeout:g}s"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        except (aiohttp.ClientError, OSError) as exc:
            error = f"twilio connection error: {type(exc).__name__}: {exc}"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        except UnicodeEncodeError as exc:  # a lone surrogate: no retry will help
            return SendResult(ref=msg.ref, error=f"unencodable text: {exc}")
        except Exception as exc:
            # The contract forbids raising for one message; an unexpected failure (a
            # malformed answer) is retried a bounded number of times rather than lost.
            log.exception("unexpected Twilio failure for %s", msg.ref)
            error = f"twilio unexpected {type(exc).__name__}: {exc}"
            return SendResult(ref=msg.ref, error=error, temporary=True)
        return SendResult(ref=msg.ref, gateway_id=str(created.sid))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None


def _describe(exc: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(exc, TwilioServiceException):
        return str(exc.detail or exc.title)
    return str(exc.msg)


def validate_request(settings: Settings, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """Whether ``X-Twilio-Signature`` proves Twilio sent this webhook.

    ``url`` must be the URL Twilio called (the public one, not the one behind the proxy),
    query string included; ``params`` the form fields. Uses the library's validator, which
    also accepts the URL with or without its default port, as Twilio signs either.
    """
    if not signature:
        return False
    validator = RequestValidator(settings.twilio_auth_token)
    return bool(validator.validate(url, params, signature))
