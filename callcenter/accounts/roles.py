"""The six kinds of staff, what each may do in broad strokes, and where each lands after login."""

from __future__ import annotations

from enum import StrEnum

from callcenter.messages import N_


class Role(StrEnum):
    admin = "admin"  # users, municipalities, audit; everything operators do
    operator = "operator"  # runs inquiries and campaigns, prompts
    supervisor = "supervisor"  # the call centre: wallboard, agents, queues
    agent = "agent"  # the desk
    analyst = "analyst"  # results and exports
    officer = "officer"  # a municipality's service requests


#: What each role is called on screen (message ids: the page shows them translated).
LABELS: dict[str, str] = {
    "admin": N_("Administrator"),
    "operator": N_("Operator"),
    "supervisor": N_("Supervisor"),
    "agent": N_("Agent"),
    "analyst": N_("Analyst"),
    "officer": N_("Municipality officer"),
}

#: Roles that must enrol a second factor before they can do anything else.
MFA_REQUIRED: frozenset[Role] = frozenset({Role.admin, Role.supervisor})

#: The page each role lands on after login (the next issues add /requests, /results).
HOME: dict[Role, str] = {
    Role.admin: "/campaigns",
    Role.operator: "/campaigns",
    Role.supervisor: "/wallboard",
    Role.agent: "/desk",
    Role.analyst: "/results",
    Role.officer: "/requests",
}

#: Scopes an API token can carry. ``admin`` implies every other scope.
SCOPES: tuple[str, ...] = (
    "inquiries:read",
    "inquiries:write",
    "campaigns:read",
    "campaigns:write",
    "citizens:write",
    "results:read",
    "admin",
)

#: The scopes a role may grant to its own tokens.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.admin: frozenset(SCOPES),
    Role.operator: frozenset(
        {
            "inquiries:read",
            "inquiries:write",
            "campaigns:read",
            "campaigns:write",
            "citizens:write",
            "results:read",
        }
    ),
    Role.supervisor: frozenset({"campaigns:read", "inquiries:read", "results:read"}),
    Role.agent: frozenset(),
    Role.analyst: frozenset({"inquiries:read", "results:read"}),
    Role.officer: frozenset(),
}
