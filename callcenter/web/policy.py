"""Who may call which route: one table for the whole application.

Every route is listed here, by method and path. A route that is missing is refused to
everybody (and ``tests/integration/test_access_policy.py`` fails), so a new route cannot
ship without a declared policy. The guard that enforces the table is ``web.guard.authorize``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from callcenter.accounts.roles import Role

Kind = Literal["public", "webhook", "pending", "staff"]


@dataclass(frozen=True, slots=True)
class Policy:
    """``public``: anyone (forms still carry CSRF); ``webhook``: anyone, no CSRF (the route
    checks the gateway's signature); ``pending``: a session between password and second
    factor; ``staff``: a full session or a token, of one of ``roles`` (empty: any role),
    whose token carries ``scope``."""

    kind: Kind
    roles: frozenset[Role] = field(default_factory=frozenset)
    scope: str | None = None
    stages: frozenset[str] = frozenset({"full"})

    def allows(self, role: Role) -> bool:
        return not self.roles or role in self.roles


PUBLIC: Final = Policy("public")
WEBHOOK: Final = Policy("webhook")
MFA_STEP: Final = Policy("pending", stages=frozenset({"mfa"}))
ENROL_STEP: Final = Policy("staff", stages=frozenset({"full", "enrol"}))
ANY_STAFF: Final = Policy("staff")
#: liveness, readiness and metrics: public as far as the guard goes; the routes themselves
#: refuse callers outside ``ops_allow_networks`` or without ``ops_token`` when those are set
PROBES: Final = Policy("public")
#: Open311 clients: anyone as far as the guard goes, no CSRF; the routes refuse a request
#: without a valid ``api_key`` (callcenter/open311/clients.py)
OPEN311_CLIENT: Final = Policy("webhook")


def staff(*roles: Role, scope: str | None = None) -> Policy:
    return Policy("staff", frozenset(roles), scope)


A, OP, S, AN, AG = Role.admin, Role.operator, Role.supervisor, Role.analyst, Role.agent
RUNNERS = (A, OP)  # run inquiries and campaigns
WATCHERS = (A, OP, S, AN)  # read inquiries and campaigns
CALL_CENTRE = (A, S)  # watch the queues and agents
MINISTRY = (A, S)  # route service requests, rank the municipalities
REQUEST_STAFF = (A, S, Role.officer)  # work service requests

#: (method, path) -> policy. HEAD is checked as GET.
POLICIES: Final[dict[tuple[str, str], Policy]] = {
    # the platform
    ("GET", "/health"): PUBLIC,
    # probes and metrics: public unless CALLCENTER_OPS_ALLOW_NETWORKS / CALLCENTER_OPS_TOKEN
    # narrow them (the handlers check: callcenter.health.ops_allowed)
    ("GET", "/healthz"): PROBES,
    ("GET", "/readyz"): PROBES,
    ("GET", "/metrics"): PROBES,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    # SMS gateways (each verifies its own signature or secret)
    ("POST", "/sms/twilio/inbound"): WEBHOOK,
    ("POST", "/sms/twilio/status"): WEBHOOK,
    ("GET", "/sms/kannel/inbound"): WEBHOOK,
    ("POST", "/sms/kannel/inbound"): WEBHOOK,
    ("GET", "/sms/kannel/dlr"): WEBHOOK,
    ("POST", "/sms/kannel/dlr"): WEBHOOK,
    ("POST", "/sms/loopback/inbound"): WEBHOOK,  # the development gateway (simulated phones)
    ("POST", "/sms/loopback/status"): WEBHOOK,
    # the JSON API (tokens need the scope)
    ("POST", "/api/inquiries"): staff(*RUNNERS, scope="inquiries:write"),
    ("GET", "/api/inquiries"): staff(*WATCHERS, scope="inquiries:read"),
    ("GET", "/api/inquiries/{ref}"): staff(*WATCHERS, scope="inquiries:read"),
    ("POST", "/api/inquiries/{ref}/status"): staff(*RUNNERS, scope="inquiries:write"),
    ("GET", "/api/inquiries/{ref}/results"): staff(A, OP, AN, scope="results:read"),
    ("GET", "/api/inquiries/{ref}/export.csv"): staff(A, AN, scope="results:read"),
    ("GET", "/api/inquiries/{ref}/estimates"): staff(A, OP, AN, scope="results:read"),
    ("POST", "/api/campaigns"): staff(*RUNNERS, scope="campaigns:write"),
    ("GET", "/api/campaigns/{campaign_id}"): staff(*WATCHERS, scope="campaigns:read"),
    ("POST", "/api/campaigns/{campaign_id}/start"): staff(*RUNNERS, scope="campaigns:write"),
    ("POST", "/api/campaigns/{campaign_id}/pause"): staff(*RUNNERS, scope="campaigns:write"),
    ("POST", "/api/campaigns/{campaign_id}/resume"): staff(*RUNNERS, scope="campaigns:write"),
    ("POST", "/api/campaigns/{campaign_id}/cancel"): staff(*RUNNERS, scope="campaigns:write"),
    ("POST", "/api/citizens/import"): staff(*RUNNERS, scope="citizens:write"),
    # Open311 GeoReport v2 (callcenter/open311/http.py): the catalogue is public; the rest needs
    # a client's api_key, which the routes check (clients send no cookies, so no CSRF)
    ("GET", "/open311/v2/services.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/requests.{fmt}"): OPEN311_CLIENT,
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): OPEN311_CLIENT,
    ("GET", "/open311/v2/servicerequestupdates.{fmt}"): OPEN311_CLIENT,
    ("POST", "/open311/v2/requests.{fmt}"): OPEN311_CLIENT,
    ("POST", "/open311/v2/servicerequestupdates.{fmt}"): OPEN311_CLIENT,
    # the anonymised open-data export of service requests (audited)
    ("GET", "/open-data/requests.csv"): staff(A, S),
    # login and the account
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/login/totp"): MFA_STEP,
    ("POST", "/login/totp"): MFA_STEP,
    ("POST", "/logout"): Policy("staff", stages=frozenset({"full", "mfa", "enrol"})),
    ("POST", "/language"): PUBLIC,
    ("GET", "/account"): ENROL_STEP,
    ("POST", "/account/password"): ENROL_STEP,
    ("POST", "/account/language"): ENROL_STEP,
    ("GET", "/account/totp"): ENROL_STEP,
    ("POST", "/account/totp"): ENROL_STEP,
    ("POST", "/account/tokens"): ANY_STAFF,
    ("POST", "/account/tokens/{token_id}/revoke"): ANY_STAFF,
    ("GET", "/invite/{token}"): PUBLIC,  # set a password from an invitation or reset link
    ("POST", "/invite/{token}"): PUBLIC,
    # administration
    ("GET", "/admin/users"): staff(A),
    ("POST", "/admin/users"): staff(A),
    ("GET", "/admin/users/{user_id}"): staff(A),
    ("POST", "/admin/users/{user_id}"): staff(A),
    ("POST", "/admin/users/{user_id}/disable"): staff(A),
    ("POST", "/admin/users/{user_id}/enable"): staff(A),
    ("POST", "/admin/users/{user_id}/reset"): staff(A),
    ("GET", "/admin/municipalities"): staff(A),
    ("POST", "/admin/municipalities"): staff(A),
    ("POST", "/admin/municipalities/upload"): staff(A),
    ("GET", "/admin/municipalities/{municipality_id}"): staff(A),
    ("POST", "/admin/municipalities/{municipality_id}"): staff(A),
    ("GET", "/admin/audit"): staff(A),
    ("GET", "/admin/audit.csv"): staff(A),
    ("GET", "/admin/margins"): staff(A),
    ("POST", "/admin/margins"): staff(A),
    ("POST", "/admin/margins/delete"): staff(A),
    # the analysts' workspace (the handlers narrow every read to the reader's municipalities)
    ("GET", "/results"): staff(A, AN),
    ("GET", "/results/{slug}"): staff(A, AN),
    ("GET", "/results/{slug}/rates"): staff(A, AN),
    ("GET", "/results/{slug}/export"): staff(A, AN),
    ("POST", "/results/{slug}/exports"): staff(A, AN),  # a large export, as a job of the worker
    ("GET", "/results/{slug}/exports/{job_id}"): staff(A, AN),  # its progress (only its owner)
    ("GET", "/results/{slug}/exports/{job_id}/file"): staff(A, AN),  # its file (only its owner)
    ("POST", "/results/{slug}/public"): staff(A),  # publish the public results page (if enabled)
    ("GET", "/public/results/{slug}"): PUBLIC,  # 404 unless enabled and published
    # inquiries and campaigns
    ("GET", "/inquiries"): staff(*WATCHERS),
    ("GET", "/inquiries/new"): staff(*RUNNERS),
    ("POST", "/inquiries"): staff(*RUNNERS),
    ("GET", "/inquiries/{slug}"): staff(*WATCHERS),
    ("POST", "/inquiries/{slug}/status"): staff(*RUNNERS),
    ("GET", "/campaigns"): staff(*WATCHERS),
    ("GET", "/campaigns/new"): staff(*RUNNERS),
    ("POST", "/campaigns"): staff(*RUNNERS),
    ("GET", "/campaigns/{campaign_id}"): staff(*WATCHERS),
    ("GET", "/campaigns/{campaign_id}/progress"): staff(*WATCHERS),
    ("POST", "/campaigns/{campaign_id}/start"): staff(*RUNNERS),
    ("POST", "/campaigns/{campaign_id}/pause"): staff(*RUNNERS),
    ("POST", "/campaigns/{campaign_id}/resume"): staff(*RUNNERS),
    ("POST", "/campaigns/{campaign_id}/cancel"): staff(*RUNNERS),
    # the call centre: the agent's desk, the supervisors' wallboard and interval reports
    ("GET", "/desk"): staff(AG),
    ("GET", "/desk/state"): staff(AG),
    ("GET", "/desk/card"): staff(AG),
    ("POST", "/desk/state"): staff(AG),
    ("POST", "/desk/notes"): staff(AG),  # during a call, and after it (the handlers check the
    ("POST", "/desk/transfer"): staff(AG),  # call is the agent's own, now)
    ("POST", "/desk/call-back"): staff(AG),
    ("POST", "/desk/ticket"): staff(AG),
    ("GET", "/wallboard"): staff(*CALL_CENTRE),
    ("GET", "/wallboard/figures"): staff(*CALL_CENTRE),
    ("GET", "/wallboard/report"): staff(*CALL_CENTRE),
    ("GET", "/wallboard/report.csv"): staff(*CALL_CENTRE),
    ("POST", "/wallboard/agents/{agent_id}/spy"): staff(*CALL_CENTRE),  # listen, whisper, barge
    ("GET", "/wallboard/recordings/{entry}"): staff(*CALL_CENTRE),  # every playback audited
    # live updates (Server-Sent Events); the handler checks each topic against the role
    ("GET", "/live"): ANY_STAFF,
    # service requests: officers work their municipalities' (the handlers narrow every read
    # and 404 another municipality's request); the ministry (supervisors, admins) sees all,
    # re-routes refused requests and ranks the municipalities
    ("GET", "/requests"): staff(*REQUEST_STAFF),
    ("GET", "/requests/municipalities"): staff(*MINISTRY),
    ("GET", "/requests/{reference}"): staff(*REQUEST_STAFF),
    ("GET", "/requests/{reference}/recording"): staff(*REQUEST_STAFF),  # every playback audited
    ("POST", "/requests/{reference}/reveal"): staff(*REQUEST_STAFF),  # the reporter's number, audited
    ("POST", "/requests/{reference}/status"): staff(*REQUEST_STAFF),
    ("POST", "/requests/{reference}/assign"): staff(*REQUEST_STAFF),
    ("POST", "/requests/{reference}/duplicate"): staff(*REQUEST_STAFF),
    ("POST", "/requests/{reference}/refuse"): staff(*REQUEST_STAFF),
    ("POST", "/requests/{reference}/reroute"): staff(*MINISTRY),
    # the service catalogue (categories, responsible bodies, per-municipality overrides)
    ("GET", "/admin/catalogue"): staff(A),
    ("POST", "/admin/catalogue/categories"): staff(A),
    ("GET", "/admin/catalogue/categories/{category_id}"): staff(A),
    ("POST", "/admin/catalogue/categories/{category_id}"): staff(A),
    ("POST", "/admin/catalogue/categories/{category_id}/overrides"): staff(A),
    ("POST", "/admin/catalogue/bodies"): staff(A),
    ("GET", "/admin/catalogue/bodies/{body_id}"): staff(A),
    ("POST", "/admin/catalogue/bodies/{body_id}"): staff(A),
    # the citizens' SMS texts of service requests (edits win over request_texts.yaml; audited)
    ("GET", "/admin/requests/texts"): staff(A),
    ("GET", "/admin/requests/texts/{text_id}"): staff(A),
    ("POST", "/admin/requests/texts/{text_id}"): staff(A),
    ("POST", "/admin/requests/texts/{text_id}/default"): staff(A),
    # the ministry's corrections of the holiday calendar (the SLA clocks are recomputed; audited)
    ("GET", "/admin/requests/holidays"): staff(*MINISTRY),
    ("POST", "/admin/requests/holidays"): staff(*MINISTRY),
    ("POST", "/admin/requests/holidays/drop"): staff(*MINISTRY),
    # voice prompts
    ("GET", "/prompts"): staff(*RUNNERS),
    ("GET", "/prompts/audio/{language}/{prompt_id}"): staff(*RUNNERS),
    ("POST", "/prompts/{language}/{prompt_id}/recording"): staff(*RUNNERS),
    ("POST", "/prompts/{language}/{prompt_id}/recording/delete"): staff(*RUNNERS),
}

#: Mounted applications (not routes): static assets are public.
MOUNTS: Final[dict[str, Policy]] = {"/static": PUBLIC}
