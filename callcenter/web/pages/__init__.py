"""HTML pages of the staff web app: thin handlers (guard by policy, ask a domain module, render)."""

from callcenter.web.pages import (
    account,
    admin_audit,
    admin_municipalities,
    admin_users,
    auth,
    campaigns,
    inquiries,
    live,
    prompts,
)

__all__ = [
    "account",
    "admin_audit",
    "admin_municipalities",
    "admin_users",
    "auth",
    "campaigns",
    "inquiries",
    "live",
    "prompts",
]
