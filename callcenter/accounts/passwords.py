"""Password hashing (Argon2id) and the password policy.

Parameters are argon2-cffi's RFC 9106 "low memory" profile (t=3, m=64 MiB, p=4): one
verification costs about 100–120 ms on this project's 2-core machine (120–150 ms while other
work runs; pages run it in a worker thread), which bounds guessing without making login slow.
Hashes made with older parameters are re-hashed at the next login.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from callcenter.messages import N_

MIN_LENGTH = 12
MAX_LENGTH = 256  # Argon2 takes any length; this keeps a form post from costing minutes

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


class WeakPassword(ValueError):
    """The password is refused; ``reason`` is a message-catalogue id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@cache
def _common() -> frozenset[str]:
    text = files("callcenter.accounts").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_policy(password: str, *, email: str = "", name: str = "") -> None:
    """Raise WeakPassword unless ``password`` is long enough and not a common or personal one."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(N_("The password must have at least 12 characters."))
    if len(password) > MAX_LENGTH:
        raise WeakPassword(N_("The password must have at most 256 characters."))
    folded = password.casefold()
    if folded in _common() or len(set(folded)) <= 3:
        raise WeakPassword(N_("This password is too common. Choose another one."))
    personal = {email.casefold(), email.split("@")[0].casefold(), name.casefold()} - {""}
    if any(part and (folded == part or (len(part) >= 4 and part in folded)) for part in personal):
        raise WeakPassword(N_("The password must not contain your e-mail address or name."))
    stripped = folded.rstrip("0123456789!@#$%^&*.?")
    if stripped in _common() and len(stripped) >= 6:
        raise WeakPassword(N_("This password is too common. Choose another one."))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("an unknown user's password is never this one")


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches. With no stored hash (unknown user, unused invite) a dummy
    hash is verified anyway, so the answer takes as long as for a wrong password."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
