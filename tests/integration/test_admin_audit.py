"""The audit log page and its CSV export: filters, keyset pages, escaping, who may read it,
and the database's refusal to change a row (PostgreSQL's trigger)."""

from __future__ import annotations

import csv
import io
import re
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import audit_query, models
from tests.integration.test_admin_users import admin_client, mfa_client
from tests.webapp import logged_in

_ROW = re.compile(r'<tr id="audit-(\d+)">')


async def add_audit(engine: AsyncEngine, *rows: dict[str, Any]) -> list[int]:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        made = [models.AuditLog(**row) for row in rows]
        session.add_all(made)
        await session.flush()
        return [int(m.id or 0) for m in made]


async def exported(engine: AsyncEngine) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        query = select(models.AuditLog).where(models.AuditLog.action == "audit.export")  # type: ignore[arg-type]
        return list((await session.execute(query.order_by(models.AuditLog.id))).scalars())  # type: ignore[arg-type]


def shown(page: str) -> list[int]:
    return [int(i) for i in _ROW.findall(page)]


async def test_the_log_shows_newest_first_with_before_and_after_escaped(
    web: FastAPI, engine: AsyncEngine
) -> None:
    older, newer = await add_audit(
        engine,
        {"actor": "cli", "action": "test.first", "target": "user:7", "address": "10.0.0.1"},
        {
            "actor": "<script>alert(1)</script>@x.ly",
            "action": "test.second",
            "target": "campaign:3",
            "before": {"name": "<script>alert(1)</script>"},
            "after": {"name": "نص عربي", "n": 2},
            "details": {"why": "<b>x</b>"},
        },
    )
    admin, _ = await admin_client(web, engine)
    page = await admin.get("/admin/audit?action=test.")
    assert page.status_code == 200
    assert shown(page.text) == [newer, older]
    assert (
        "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    )
    assert "<b>x</b>" not in page.text
    assert "{&#34;n&#34;:2,&#34;name&#34;:&#34;نص عربي&#34;}" in page.text  # compact, sorted, escaped
    assert '<a href="/admin/users/7">user:7</a>' in page.text and "10.0.0.1" in page.text
    await admin.http.aclose()


async def test_filters_by_actor_action_target_and_days_in_tripoli(web: FastAPI, engine: AsyncEngine) -> None:
    late_march_30_utc = datetime(2026, 3, 30, 22, 30, tzinfo=UTC)  # 00:30 on 31 March in Tripoli
    ids = await add_audit(
        engine,
        {"actor": "Huda@Misrata.ly", "action": "login.failed", "created_at": late_march_30_utc},
        {"actor": "huda@misrata.ly", "action": "login", "created_at": late_march_30_utc - timedelta(hours=1)},
        {"actor": "cli", "action": "logout", "target": "user:12"},
        {"actor": "cli", "action": "user.create", "target": "user:120"},
        {"actor": "api:cc_ab12", "action": "campaign.start", "target": "campaign:1"},
        {"actor": "100%_x", "action": "test.like"},
    )
    failed, login, logout, create, start, like = ids
    admin, _ = await admin_client(web, engine)

    async def only(query: str) -> list[int]:
        page = await admin.get("/admin/audit?" + query)
        assert page.status_code == 200, (query, page.text)
        return [i for i in shown(page.text) if i in ids]

    assert await only("actor=HUDA") == [login, failed]  # newest (highest id) first
    assert await only("actor=huda&action=login.") == [failed]
    assert await only("action=login") == [login, failed]  # a prefix: not logout
    assert await only("action=login.") == [failed]
    assert await only("target=user:12") == [logout]  # exact, not user:120
    assert await only("target=user") == [create, logout]
    assert await only("target=campaign:") == [start]
    assert await only("actor=%25_") == [like]  # LIKE wildcards are plain characters
    assert await only("from=2026-03-31&to=2026-03-31") == [failed]
    assert await only("to=2026-03-30") == [login]
    assert await only("from=٢٠٢٦-٠٣-٣٠&to=2026-03-30") == [login]  # Arabic-Indic digits
    assert await only("actor=nobody") == []
    await admin.http.aclose()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=31/03/2026", "Enter a date like 2026-03-31."),
        ("to=2026-13-45", "Enter a date like 2026-03-31."),
        ("from=9999-12-31&to=9999-12-31", "Enter a date like 2026-03-31."),
        ("from=<script>alert(1)</script>", "Enter a date like 2026-03-31."),
        ("from=2026-04-02&to=2026-04-01", "The end date is before the start date."),
        ("actor=" + "x" * 101, "This filter is too long."),
        ("before=abc", "The page link is not valid."),
        ("before=-5", "The page link is not valid."),
        ("before=" + "9" * 30, "The page link is not valid."),
    ],
)
async def test_bad_filters_are_reported_clearly_not_as_a_server_error(
    web: FastAPI, engine: AsyncEngine, query: str, message: str
) -> None:
    admin, _ = await admin_client(web, engine)
    page = await admin.get("/admin/audit?" + query)
    assert page.status_code == 400 and message in page.text and 'class="error-summary"' in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert shown(page.text) == []
    if "before=" not in query:
        export = await admin.get("/admin/audit.csv?" + query)
        assert export.status_code == 400 and message in export.text
    await admin.http.aclose()


async def test_pages_go_back_in_time_by_keyset_links(web: FastAPI, engine: AsyncEngine) -> None:
    ids = await add_audit(engine, *({"actor": "cli", "action": f"test.row{i}"} for i in range(60)))
    admin, _ = await admin_client(web, engine)
    first = await admin.get("/admin/audit?action=test.")
    assert shown(first.text) == ids[::-1][:50]
    found = re.search(r'href="(/admin/audit\?[^"]*before=(\d+))" rel="next"', first.text)
    assert found and int(found.group(2)) == ids[10] and "action=test." in found.group(1)
    second = await admin.get(found.group(1).replace("&amp;", "&"))
    assert shown(second.text) == ids[::-1][50:]
    assert 'rel="next"' not in second.text and "Newest entries" in second.text
    await admin.http.aclose()


async def test_the_csv_export_has_the_bom_the_header_the_filtered_rows_and_is_audited(
    web: FastAPI, engine: AsyncEngine
) -> None:
    await add_audit(
        engine,
        {"actor": '=HYPERLINK("http://evil")', "action": "login.failed", "address": "198.51.100.4"},
        {
            "actor": "cli",
            "action": "user.create",
            "target": "user:5",
            "after": {"name": "سالم", "role": "agent"},
        },
        {"actor": "cli", "action": "campaign.start", "target": "campaign:1"},
    )
    admin, me = await admin_client(web, engine)
    response = await admin.get("/admin/audit.csv?action=user.")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="audit-')
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == list(audit_query.CSV_HEADER)
    assert [r[4] for r in rows[1:]] == ["user.create"]
    assert rows[1][5] == "user:5" and rows[1][7] == '{"name":"سالم","role":"agent"}'
    assert rows[1][1].endswith("+02:00")  # Tripoli time

    spreadsheet = await admin.get("/admin/audit.csv?action=login.failed")
    cells = list(csv.reader(io.StringIO(spreadsheet.content.decode("utf-8-sig"))))[1]
    assert cells[2] == '\'=HYPERLINK("http://evil")'  # not a formula in a spreadsheet

    exports = await exported(engine)
    assert [e.details for e in exports] == [
        {"filters": {"action": "user."}},
        {"filters": {"action": "login.failed"}},
    ]
    assert exports[0].actor == me.email and exports[0].actor_id == me.id

    page = await admin.get("/admin/audit?action=user.&actor=cli")
    assert 'href="/admin/audit.csv?actor=cli&amp;action=user."' in page.text
    await admin.http.aclose()


@pytest.mark.parametrize("role", ["operator", "supervisor", "analyst", "agent", "officer"])
async def test_only_admins_read_or_export_the_log(web: FastAPI, engine: AsyncEngine, role: str) -> None:
    if role == "supervisor":  # supervisors must pass a second factor first
        client, _ = await mfa_client(web, engine, role)
    else:
        client, _ = await logged_in(web, engine, role)
    for path in ("/admin/audit", "/admin/audit.csv", "/admin/audit?action=login"):
        response = await client.get(path)
        assert response.status_code == 403, path
    assert await exported(engine) == []
    await client.http.aclose()


async def test_the_database_refuses_to_update_or_delete_audit_rows(pg: AsyncEngine) -> None:
    [row_id] = await add_audit(pg, {"actor": "cli", "action": "test.keep"})
    for statement in (
        "UPDATE auditlog SET action = 'test.changed' WHERE id = :id",
        "DELETE FROM auditlog WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with pg.begin() as conn:
                await conn.execute(text(statement), {"id": row_id})
    async with pg.connect() as conn:
        action = (
            await conn.execute(text("SELECT action FROM auditlog WHERE id = :id"), {"id": row_id})
        ).scalar()
    assert action == "test.keep"


@pytest.mark.slow
async def test_the_export_of_100k_rows_streams_in_chunks_with_bounded_memory(pg: AsyncEngine) -> None:
    async with pg.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO auditlog (actor, action, target, details, address, created_at) "
                "SELECT 'user' || g || '@example.ly', 'test.bulk', 'user:' || g, "
                "'{\"n\": 1}'::json, '10.0.0.1', now() - g * interval '1 second' "
                "FROM generate_series(1, 100000) AS g"
            )
        )
    flt = audit_query.parse_filter(action="test.bulk")
    pieces = 0
    lines = 0
    size = 0
    started = time.monotonic()
    tracemalloc.start()
    try:
        async for piece in audit_query.csv_chunks(pg, flt):
            pieces += 1
            lines += piece.count(b"\n")
            size += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == 100_001 and pieces == 1 + 100  # the header, then 1,000 rows a piece
    assert size > 5_000_000
    assert peak < 8_000_000, peak  # a few chunks' worth, not the whole 6 MB file and its rows
    assert time.monotonic() - started < 60
