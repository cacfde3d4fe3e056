"""TOTP second factor (RFC 6238, 30 s steps, 6 digits) with replay protection: a code once
accepted is refused again, so a code seen over a shoulder is worth nothing."""

from __future__ import annotations

import time

import pyotp
import segno

from callcenter.inquiry.parser import normalize

ISSUER = "1415"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as an inline SVG (no image request, nothing for the CSP to allow)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#0b0c0c", light="#ffffff"))


def verify(secret: str, code: str, *, last_step: int | None, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to (one step of drift either way), or None.

    Arabic-Indic digits and spaces are accepted; a step at or before ``last_step`` is refused.
    """
    digits = "".join(ch for ch in normalize(code) if ch.isdigit())
    if len(digits) != 6:
        return None
    totp = pyotp.TOTP(secret)
    at = time.time() if now is None else now
    step = int(at // totp.interval)
    for candidate in (step, step - 1, step + 1):
        if last_step is not None and candidate <= last_step:
            continue
        if totp.verify(digits, for_time=candidate * totp.interval):
            return candidate
    return None
