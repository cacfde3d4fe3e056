"""Who is making a request, once authenticated: a staff member through a session or a token,
or the machine token of ``CALLCENTER_API_TOKEN``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from callcenter.accounts.roles import Role
from callcenter.audit import Actor

Via = Literal["session", "token", "machine"]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int | None
    email: str
    name: str
    role: Role
    #: the municipalities this principal is scoped to; empty: all of them
    municipalities: frozenset[int]
    language: str
    via: Via
    scopes: frozenset[str] = frozenset()  # tokens only; sessions carry the role's rights
    session_id: str | None = None
    csrf_token: str | None = None
    stage: str = "full"  # sessions: full | mfa | enrol
    token_prefix: str | None = None
    totp_enabled: bool = False

    @property
    def actor_name(self) -> str:
        if self.via == "machine":
            return "api"
        if self.via == "token":
            return f"api:{self.token_prefix}"
        return self.email

    def actor(self, address: str = "") -> Actor:
        return Actor(self.actor_name, self.user_id, address)

    @property
    def scoped(self) -> bool:
        """True when this principal sees only some municipalities."""
        return bool(self.municipalities)

    def sees(self, municipality_id: int | None) -> bool:
        """Whether a record of ``municipality_id`` is within this principal's scope."""
        return not self.municipalities or municipality_id in self.municipalities

    def has_scope(self, scope: str) -> bool:
        """Tokens need the scope (``admin`` implies all); sessions and the machine token pass."""
        return self.via != "token" or "admin" in self.scopes or scope in self.scopes
