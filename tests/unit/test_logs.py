"""Log lines as an operator reads them: JSON or text, the request id on every line of a request,
and never a citizen's full phone number, wherever in the record it came from."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from callcenter.logs import configure, make_handler, mask_line
from callcenter.settings import Settings
from callcenter.web.request_context import RequestContext

PHONE = "+218912345678"
DIGITS = "912345678"  # the subscriber part: none of a line may carry it whole

log = logging.getLogger("callcenter.test_logs")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON lines of the ``callcenter.test_logs`` logger, in a buffer."""
    out = io.StringIO()
    handler = make_handler(Settings(_env_file=None, log_format="json"), out)  # type: ignore[call-arg]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield out
    log.removeHandler(handler)
    log.propagate = True


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def citizen_page(request: Request) -> PlainTextResponse:
    log.info("reply from %s", PHONE)
    log.warning("step done", extra={"phone": PHONE, "count": 3})
    try:
        raise ValueError(f"no session for {PHONE}")
    except ValueError:
        log.exception("failed")
    return PlainTextResponse("ok")


def app() -> RequestContext:
    return RequestContext(Starlette(routes=[Route("/citizen", citizen_page)]))


async def test_json_lines_carry_the_request_id_and_no_full_phone_number(captured: io.StringIO) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
        response = await client.get("/citizen")
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    found = lines(captured)
    assert [e["level"] for e in found] == ["INFO", "WARNING", "ERROR"]
    assert all(e["request_id"] == request_id for e in found)
    assert found[0]["message"] == "reply from +218*******78"
    assert found[1]["phone"] == "+218*******78" and found[1]["count"] == 3
    assert "ValueError: no session for +218*******78" in str(found[2]["exc"])
    assert DIGITS not in captured.getvalue()


async def test_a_callers_request_id_is_kept_and_a_malformed_one_replaced(captured: io.StringIO) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
        kept = await client.get("/citizen", headers={"X-Request-ID": "gw-abc.123"})
        replaced = await client.get("/citizen", headers={"X-Request-ID": "bad id\r\nwith spaces"})
    assert kept.headers["x-request-id"] == "gw-abc.123"
    assert replaced.headers["x-request-id"] != "bad id\r\nwith spaces"
    assert {e["request_id"] for e in lines(captured)} == {"gw-abc.123", replaced.headers["x-request-id"]}


def test_outside_a_request_lines_have_no_request_id(captured: io.StringIO) -> None:
    log.info("startup")
    (entry,) = lines(captured)
    assert "request_id" not in entry and entry["logger"] == "callcenter.test_logs"


@pytest.mark.parametrize(
    "written",
    [PHONE, "+218 91 234 5678", "+218-91-234-5678", "00218912345678", "218912345678", "0912345678"],
)
def test_the_safety_net_masks_every_way_a_libyan_number_is_written(written: str) -> None:
    masked = mask_line(f"citizen {written} answered")
    assert masked.startswith("citizen ") and masked.endswith(" answered")
    assert "".join(c for c in masked if c.isdigit()) != "".join(c for c in written if c.isdigit())
    assert "2345" not in masked.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    "kept",
    [
        "2026-05-01 12:00:00,123",
        "2026-05-01T12:00:00.123+00:00",
        "campaign 1234567 sent 250",
        "10.0.0.12:5038",
    ],
)
def test_the_safety_net_leaves_timestamps_ids_and_addresses_alone(kept: str) -> None:
    assert mask_line(kept) == kept


def test_text_lines_are_masked_too_even_in_an_extra_field() -> None:
    out = io.StringIO()
    handler = make_handler(Settings(_env_file=None), out)  # type: ignore[call-arg]
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", (PHONE,), None)
    record.exc_text = f"Traceback: KeyError: '{PHONE}'"
    handler.handle(record)
    assert DIGITS not in out.getvalue() and "+218*******78" in out.getvalue()


def test_configure_installs_one_json_handler_on_the_root_logger() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        out = io.StringIO()
        configure(Settings(_env_file=None, log_format="json", log_level="WARNING"), out)  # type: ignore[call-arg]
        logging.getLogger("callcenter.anything").warning("dialled %s", PHONE)
        entry = json.loads(out.getvalue())
        assert entry["message"] == "dialled +218*******78" and root.level == logging.WARNING
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_a_log_format_other_than_text_or_json_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None, log_format="xml")  # type: ignore[call-arg, arg-type]
