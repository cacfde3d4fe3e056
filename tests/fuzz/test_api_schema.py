"""Schemathesis against the application's own OpenAPI schema, on the real app (uvicorn, on
PostgreSQL and Redis): no 500s, every response as the schema declares it, authentication on.

The API calls carry a valid machine token (the admin scope); the SMS webhooks get none of the
gateways' signatures or secrets, so every generated call to them must be refused with 403.
Bounded for CI: a few examples per operation, derandomised (see ``budget``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.specs.openapi import checks as openapi_checks
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.settings import Settings
from callcenter.testing.webserver import LiveServer
from callcenter.web.app import create_app
from tests.conftest import make_settings
from tests.fuzz.strategies import budget
from tests.fuzz.targets import SAMPLE

API_TOKEN = "fuzz-machine-token-0123456789abcdef"
#: the API and the webhooks; the ops probes (/healthz, /readyz, /metrics) are another module's
#: and answer 503 by design when a dependency is down
FUZZED = r"^/(api|sms)/|^/health$"
SIGNED = re.compile(r"^/sms/(twilio|kannel)/")


class LiveApi:
    def __init__(self, server: LiveServer, schema: dict[str, object]) -> None:
        self.server = server
        self.schema = schema


@pytest.fixture(scope="module")
def live_api(
    pg_engine: AsyncEngine, redis_db: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    settings = make_settings(
        tmp_path_factory.mktemp("api-fuzz"),
        pg_engine.url.render_as_string(hide_password=False),
        redis_db,
        api_token=API_TOKEN,
        public_base_url="https://sms.example.ly",
    )
    app = create_app(settings)
    with LiveServer(app) as server:
        _seed(server.base_url)
        yield LiveApi(server, app.openapi())


def _seed(base_url: str) -> None:
    """An inquiry and a campaign, so generated ids sometimes name something real."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers) as client:
        yaml = SAMPLE.read_bytes()
        created = client.post("/api/inquiries", content=yaml, headers={"content-type": "application/yaml"})
        assert created.status_code in (201, 409), created.text
        campaign = client.post("/api/campaigns", json={"inquiry": "return-of-life-roads"})
        assert campaign.status_code == 201, campaign.text


def _settings(**extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        api_token=API_TOKEN,
        public_base_url="https://sms.example.ly",
        **extra,  # type: ignore[arg-type]
    )


# Loaded when the module is collected (schemathesis' lazy ``from_fixture`` does not work with
# pytest 9): the schema does not depend on the database, only on the routes.
schema = schemathesis.openapi.from_dict(create_app(_settings()).openapi()).include(path_regex=FUZZED)

CHECKS = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]


@schema.parametrize()
@hypothesis_settings(budget(8))
def test_api_answers_as_its_schema_says_and_never_500(case: Case, live_api: LiveApi) -> None:
    headers = {} if case.path.startswith("/sms/") else {"Authorization": f"Bearer {API_TOKEN}"}
    response = case.call(base_url=live_api.server.base_url, headers=headers, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
    if SIGNED.match(case.path) and case.method.upper() == case.operation.method.upper():
        assert response.status_code == 403, f"an unsigned {case.path} got {response.status_code}"
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic YWRtaW46YWRtaW4="])
def test_every_api_operation_refuses_a_call_without_a_valid_token(
    live_api: LiveApi, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, methods in live_api.schema["paths"].items()  # type: ignore[attr-defined]
        if path.startswith("/api/")
        for method in methods
    ]
    assert len(operations) > 10
    with httpx.Client(base_url=live_api.server.base_url) as client:
        for method, path in operations:
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["error"] == "not_authenticated"
