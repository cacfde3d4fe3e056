"""HTML pages of the staff web app: thin handlers (guard by policy, ask a domain module, render)."""

from callcenter.web.pages import (
    account,
    admin_audit,
    admin_margins,
    admin_municipalities,
    admin_users,
    auth,
    campaigns,
    desk,
    desk_call,
    inquiries,
    live,
    prompts,
    public_results,
    results,
    supervise,
    wallboard,
)

__all__ = [
    "account",
    "admin_audit",
    "admin_margins",
    "admin_municipalities",
    "admin_users",
    "auth",
    "campaigns",
    "desk",
    "desk_call",
    "inquiries",
    "live",
    "prompts",
    "public_results",
    "results",
    "supervise",
    "wallboard",
]
