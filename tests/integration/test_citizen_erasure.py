"""A citizen's data erased on request: the number gone from every table, Redis and the
recordings; results and exports the same before and after; a second request a clear no-op;
bad numbers refused with a clear error; the audit row names the pseudonym only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from click.testing import Result
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner

from callcenter import models
from callcenter.citizens.erasure import AlreadyErased, check_phone, erase, find
from callcenter.errors import NotFound
from callcenter.phones import InvalidPhone, pseudonym
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.notify import FIXED_KEY
from callcenter.requests.read import lookup_status
from callcenter.requests.service import Intake, create_request
from callcenter.requests.sms_intake import INTAKE_KEY
from callcenter.requests.store import load
from callcenter.settings import Settings, get_settings
from callcenter.sms.gateways.base import OutboundSms
from callcenter.sms.gateways.loopback import LoopbackGateway, read_outbox
from callcenter.sms.inbox import Inbox
from callcenter.sms.replies import ReplyOutbox
from tests.integration.test_requests_catalogue_store import SAMPLE, add_municipalities
from tests.privacy_data import answered_inquiry, citizen_id, figures, tables_holding

A = models.table(models.AuditLog)


async def _everything_about(
    engine: AsyncEngine, redis: aioredis.Redis, settings: Settings, phone: str
) -> str:
    """Beside the answers: a call with a recording, a live callback, a ticket, a service
    request, a service message, Redis keys and an outbox entry; returns the request's reference."""
    cid = await citizen_id(engine, phone)
    now = models.utcnow()
    async with engine.begin() as conn:
        call = (
            await conn.execute(
                insert(models.table(models.Call))
                .values(direction="in", caller=phone, citizen_id=cid, channel=f"Local/{phone}@in-0001;1")
                .returning(models.table(models.Call).c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(models.table(models.RoutingEvent)).values(
                at=now,
                kind="call.recording",
                entry="e1",
                queue="services",
                data={"file": "e1.wav", "call": call},
            )
        )
        ticket = (
            await conn.execute(
                insert(models.table(models.Ticket))
                .values(kind="callback", phone=phone, citizen_id=cid, callback=True, notes=f"call {phone}")
                .returning(models.table(models.Ticket).c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(models.table(models.Callback)).values(
                entry="cb1", queue="services", phone=phone, citizen_id=cid, status="pending",
                ticket_id=ticket, expires_at=now + timedelta(hours=4),
            )
        )  # fmt: skip
    settings.recordings_path.mkdir(parents=True, exist_ok=True)
    (settings.recordings_path / "e1.wav").write_bytes(b"RIFF")
    await load(engine, SAMPLE.read_text(encoding="utf-8"), actor="test")
    async with AsyncSession(engine) as session, session.begin():
        made = await create_request(
            session,
            Intake(category="waste_collection", channel="desk", municipality="benghazi", phone=phone,
                   citizen_id=cid, description="rubbish not collected"),
            actor="agent@1415.local", calendar=WorkingCalendar(), settings=settings,
        )  # fmt: skip
    gateway = LoopbackGateway(redis)
    await ReplyOutbox(engine, gateway).queue_text(
        phone=phone, body="1415: noted", key=f"request:1:v1:{phone}"
    )
    await gateway.send_many(
        [OutboundSms(to=phone, body="hello", ref="x"), OutboundSms(to="+218920000000", body="other", ref="y")]
    )
    await redis.set(FIXED_KEY + phone, "{}")
    await redis.set(INTAKE_KEY + phone, "{}")
    return made.reference or ""


async def test_erasure_removes_the_number_everywhere_and_keeps_every_figure(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    await add_municipalities(engine)
    phones = await answered_inquiry(engine, inbox, municipality="benghazi")
    phone = phones[0]
    reference = await _everything_about(engine, redis, settings, phone)
    before = await figures(engine, settings.pseudonym_key)
    holding = await tables_holding(engine, phone[1:])  # the scan finds it before
    assert {"citizen", "message", "call", "callback", "ticket", "service_request"} <= set(holding)

    target = await find(engine, settings, phone)
    assert target.found.citizens == 1 and target.found.messages >= 3 and target.found.recordings == 1
    assert target.found.callbacks_cancelled == 1 and target.found.requests == 1 and target.found.tickets == 1
    done = await erase(engine, redis, settings, target, actor="cli")

    assert await tables_holding(engine, phone[1:]) == {}
    after = await figures(engine, settings.pseudonym_key)
    assert {k: v for k, v in after.items() if k not in ("export", "microdata")} == {
        k: v for k, v in before.items() if k not in ("export", "microdata")
    }
    assert len(after["export"]) == len(before["export"]) and len(after["microdata"]) == len(
        before["microdata"]
    )
    # the others keep their pseudonyms; the erased citizen's is no longer the number's
    others = {pseudonym(p, settings.pseudonym_key) for p in phones[1:]}
    assert others <= {row[0] for row in after["export"]}
    assert pseudonym(phone, settings.pseudonym_key) not in {row[0] for row in after["export"]}

    assert done.recordings == 1 and not (settings.recordings_path / "e1.wav").exists()
    assert done.redis_keys == 2 and await redis.exists(FIXED_KEY + phone, INTAKE_KEY + phone) == 0
    assert done.outbox_entries == 1
    outbox, _ = await read_outbox(redis)
    assert [sms.to for _, sms, _ in outbox] == ["+218920000000"]
    async with engine.connect() as conn:
        cb = models.table(models.Callback)
        assert (await conn.execute(select(cb.c.status))).scalar_one() == "cancelled"
        c = models.table(models.Citizen)
        erased = (await conn.execute(select(c).where(c.c.id == target.person.citizen_id))).one()
        assert erased.phone.startswith("erased:") and len(erased.phone) <= 20 and erased.opted_out_at
        assert erased.municipality_id is not None  # the weighting still needs it
        # the request stays; a status lookup from the number now finds nothing to tell it
        lookup = await lookup_status(conn, reference, phone)
        assert lookup is not None and not lookup.for_reporter and lookup.reporter_phone == ""
        audits = (await conn.execute(select(A).where(A.c.action == "citizen.erase"))).all()
    assert len(audits) == 1 and audits[0].target == f"citizen:{target.pseudonym}"
    assert audits[0].details["citizens"] == 1 and audits[0].details["recordings"] == 1


async def test_erasing_twice_is_a_clear_no_op(
    engine: AsyncEngine, inbox: Inbox, redis: aioredis.Redis, settings: Settings
) -> None:
    phones = await answered_inquiry(engine, inbox)
    await erase(engine, redis, settings, await find(engine, settings, phones[1]), actor="cli")
    with pytest.raises(AlreadyErased, match="nothing is left to erase"):
        await find(engine, settings, phones[1])
    async with engine.connect() as conn:
        n = (await conn.execute(select(A.c.id).where(A.c.action == "citizen.erase"))).all()
    assert len(n) == 1


@pytest.mark.parametrize("raw", ["0912345678", "218912345678", "+21891", "+2189123456789999", "call me", ""])
def test_a_number_not_in_e164_is_refused_clearly(raw: str) -> None:
    with pytest.raises(InvalidPhone, match=r"E\.164|not a valid number"):
        check_phone(raw)


async def test_an_unknown_number_is_an_error_not_a_silent_success(
    engine: AsyncEngine, settings: Settings
) -> None:
    with pytest.raises(NotFound, match=r"\+218\*+99"):
        await find(engine, settings, "+218911234599")


@pytest.fixture
def cli_env(
    pg: AsyncEngine, tmp_path: Path, redis_db: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    from tests.conftest import REDIS_URL

    for key in [k for k in os.environ if k.startswith("CALLCENTER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", pg.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CALLCENTER_REDIS_URL", f"{REDIS_URL}/{redis_db}")
    monkeypatch.setenv("CALLCENTER_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_the_command_asks_first_erases_with_yes_and_refuses_bad_numbers(
    cli_env: CliRunner, pg: AsyncEngine, redis: aioredis.Redis
) -> None:
    import asyncio

    from callcenter.cli import app
    from tests.factories import make_citizens

    phone = (await make_citizens(pg, 1))[0]

    def invoke(*args: str, stdin: str = "") -> Result:
        return cli_env.invoke(app, list(args), input=stdin)

    declined = await asyncio.to_thread(invoke, "citizen", "erase", phone, stdin="n\n")
    assert declined.exit_code == 1 and await citizen_id(pg, phone) is not None
    assert phone not in declined.output
    done = await asyncio.to_thread(invoke, "citizen", "erase", phone, "--yes")
    assert done.exit_code == 0, done.output
    assert await citizen_id(pg, phone) is None and phone not in done.output
    again = await asyncio.to_thread(invoke, "citizen", "erase", phone, "--yes")
    assert again.exit_code == 0 and "nothing is left to erase" in again.output
    bad = await asyncio.to_thread(invoke, "citizen", "erase", "0912345678", "--yes")
    assert bad.exit_code == 2 and "E.164" in bad.output
    unknown = await asyncio.to_thread(invoke, "citizen", "erase", "+218911234599", "--yes")
    assert unknown.exit_code == 2 and "no citizen" in unknown.output
    assert await tables_holding(pg, phone[1:]) == {}


async def test_the_retention_command_dry_run_prints_what_it_would_do_and_set_is_checked(
    cli_env: CliRunner, pg: AsyncEngine, redis: aioredis.Redis
) -> None:
    import asyncio
    from datetime import UTC, datetime

    from callcenter.cli import app
    from tests.factories import make_citizens

    phone = (await make_citizens(pg, 1))[0]
    async with pg.begin() as conn:
        c = models.table(models.Citizen)
        await conn.execute(c.update().values(created_at=datetime(2001, 1, 1, tzinfo=UTC)))
    dry = await asyncio.to_thread(cli_env.invoke, app, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing changed" in dry.output and "no inquiry is due" in dry.output
    assert re.search(r"citizens\s+│\s+1\s", dry.output)
    assert await citizen_id(pg, phone) is not None and phone not in dry.output
    both = await asyncio.to_thread(cli_env.invoke, app, ["retention", "set", "x", "5", "--default"])
    assert both.exit_code == 2 and "not both" in both.output
    unknown = await asyncio.to_thread(cli_env.invoke, app, ["retention", "set", "nope", "5"])
    assert unknown.exit_code == 2 and "no inquiry" in unknown.output
    negative = await asyncio.to_thread(cli_env.invoke, app, ["retention", "set", "nope", "--", "-3"])
    assert negative.exit_code == 2
