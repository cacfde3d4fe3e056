"""Every HTTP request gets an id, and every webhook call a time.

The id is the caller's ``X-Request-ID`` when it is a sane token (a proxy or a gateway that
sets one keeps its own), else a new one; it is on every log line written while the request
is served (``callcenter.logs.REQUEST_ID``) and echoed in the answer's ``X-Request-ID``. The
gateways' webhook routes (those of kind ``webhook`` in ``web.policy``) are timed from the
request to the last byte of the answer, by route and status class: the figure a gateway's
timeout is measured against. Plain ASGI, outermost, so the hot path is timed too.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter import metrics
from callcenter.logs import REQUEST_ID
from callcenter.web.policy import POLICIES

_SANE_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
#: webhook paths have no parameters: the path itself is a bounded label
WEBHOOK_PATHS: Final = frozenset(path for (_, path), policy in POLICIES.items() if policy.kind == "webhook")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    given = next((v for k, v in headers if k == b"x-request-id"), None)
    if given is not None and _SANE_ID.fullmatch(given):
        return given.decode("ascii")
    return os.urandom(16).hex()  # as random as uuid4, a third of its cost


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # the labelled children, looked up once: a reply pays for two additions, not two lookups
        self._timers = {path: metrics.WEBHOOK_SECONDS.labels(path) for path in WEBHOOK_PATHS}
        self._answers: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        header = (b"x-request-id", request_id.encode("ascii"))
        path: str = scope["path"]
        timer = self._timers.get(path)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            if timer is not None:
                timer.observe(time.perf_counter() - started)
                self._answered(path, status // 100).inc()

    def _answered(self, path: str, status_class: int) -> Any:
        key = (path, status_class)
        counter = self._answers.get(key)
        if counter is None:
            counter = self._answers[key] = metrics.WEBHOOK_RESPONSES.labels(path, f"{status_class}xx")
        return counter
