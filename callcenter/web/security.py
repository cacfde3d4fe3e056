"""Security headers on every response, and a cap on request bodies, as plain ASGI middleware
(no per-request task or body copy: the SMS webhooks share this stack).

The Content-Security-Policy allows scripts, styles, fonts and media from this origin only:
no inline script or style, no CDN (the API's /docs is the vendored Swagger UI). Swagger UI
sets element styles from its script, so /docs alone allows inline styles.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; media-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), geolocation=(), microphone=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").encode()


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _too_large(send)
            return
        extra = _HEADERS if path != "/docs" else [(b"content-security-policy", _DOCS_CSP), *_HEADERS[1:]]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, _capped(receive, self.max_body), send_with_headers)


def _capped(receive: Receive, limit: int) -> Receive:
    """Refuse a body (sent without Content-Length, chunked) that grows past the limit."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return wrapped


class BodyTooLarge(Exception):
    """A request body past ``max_upload_bytes`` (answered 413 by the app's handler)."""


async def _too_large(send: Send) -> None:
    body = b'{"error":"too_large","message":"the request body is too large"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
