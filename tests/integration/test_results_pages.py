"""The analysts' pages over HTTP: the list, an inquiry's shares unweighted and weighted, the
crosstab with its difference, the AAPOR rates, the margins page, the exports in every format,
the scope of a municipality's analyst, and the bad input of the issue."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pyreadstat
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.analysis.margin_store import load_file
from callcenter.phones import pseudonym
from callcenter.settings import Settings
from tests.analysis_data import MARGINS_CSV, seed
from tests.integration.test_admin_municipalities import admin_client
from tests.webapp import StaffClient, logged_in

AUDIT = models.table(models.AuditLog)


@pytest.fixture
async def analyst(web: FastAPI, engine: AsyncEngine) -> AsyncIterator[StaffClient]:
    client, _ = await logged_in(web, engine, "analyst", language="en")
    yield client
    await client.http.aclose()


async def _margins(engine: AsyncEngine, text: str = MARGINS_CSV) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await load_file(session, text, source="test.csv", actor="test")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_the_analyst_lands_on_the_results_and_reads_shares_unweighted(
    engine: AsyncEngine, analyst: StaffClient
) -> None:
    await seed(engine)
    listed = await analyst.get("/results")
    assert listed.status_code == 200 and 'href="/results/roads"' in listed.text
    page = await analyst.get("/results/roads")
    assert page.status_code == 200
    text = _text(page.text)
    assert "Unweighted: the shares are those of the people who answered" in text
    assert "58.0%" in text  # 29 of 50 said yes
    assert "Weighted share" not in text
    assert '<svg class="chart"' in page.text and '<title id="chart-0-t">' in page.text


async def test_weighted_and_unweighted_side_by_side_with_the_weighting_report(
    engine: AsyncEngine, analyst: StaffClient
) -> None:
    await seed(engine)
    await _margins(engine)
    page = await analyst.get("/results/roads")  # weighted on municipality by default
    text = _text(page.text)
    assert "Weighted share" in text and "Share" in text
    assert "Post-stratification" in text and "Design effect (Kish)" in text
    weighted = 20 / 30 / 2 + 3 / 12 / 3 + 6 / 8 / 6
    assert f"{weighted * 100:.1f}%" in text
    only = _text((await analyst.get("/results/roads?set=1&w=municipality&view=weighted")).text)
    assert "Weighted share" in only and "58.0%" not in only
    plain = _text((await analyst.get("/results/roads?set=1&view=both")).text)
    assert "Weighted share" not in plain and "Unweighted" in plain


async def test_crosstab_with_suppression_and_a_difference_in_plain_words(
    engine: AsyncEngine, analyst: StaffClient
) -> None:
    await seed(engine)
    page = await analyst.get("/results/roads?set=1&by=channel&a=sms&b=voice")
    assert page.status_code == 200
    text = _text(page.text)
    assert "By Channel" in text and 'data-crosstab="priority"' in page.text
    assert "Higher in SMS than in Voice: the interval excludes zero." in text
    by_municipality = _text((await analyst.get("/results/roads?set=1&by=municipality")).text)
    assert "fewer than 5 answers" in by_municipality
    # a group of one answer, or a group that does not exist: no difference, said in words
    nothing = _text((await analyst.get("/results/roads?set=1&by=channel&a=sms&b=fax")).text)
    assert "Hidden: too few answers." in nothing
    other = await analyst.get("/results/roads?set=1&by=q:priority")
    assert other.status_code == 200 and "By What comes first?" in _text(other.text)
    odd = await analyst.get("/results/roads?set=1&by=nonsense&view=odd")
    assert odd.status_code == 200  # unknown choices fall back to the defaults


async def test_weighting_errors_are_reported_in_words(engine: AsyncEngine, analyst: StaffClient) -> None:
    await seed(engine)
    await _margins(engine, "municipality,population\ntripoli,100\nmisrata,50\n")
    text = _text((await analyst.get("/results/roads")).text)
    assert "The margins do not list Sabha" not in text  # post-stratification names the cell
    assert "The margins do not list sabha, where 8 people answered" in text
    assert "Weighted share" not in text
    await _margins(engine, MARGINS_CSV)
    await _margins(engine, "district,population\nwest,1200000\nsouth,1200000\n")
    text = _text((await analyst.get("/results/roads?set=1&w=municipality&w=district")).text)
    assert "Raking did not converge" in text
    missing = _text((await analyst.get("/results/roads?set=1&w=language")).text)
    assert "No population margin for Language" in missing


async def test_outcome_rates_show_the_mapping_and_take_e(engine: AsyncEngine, analyst: StaffClient) -> None:
    await seed(engine)
    page = await analyst.get("/results/roads/rates?e=0.5")
    assert page.status_code == 200
    text = _text(page.text)
    assert "RR1" in text and f"{50 / 56 * 100:.1f}%" in text and f"{50 / 53 * 100:.1f}%" in text
    assert "sms_delivered" in text and "e in use: 0.500" in text
    bad = _text((await analyst.get("/results/roads/rates?e=7")).text)
    assert "e is a share between 0 and 1" in bad


async def test_exports_in_every_format_are_audited_and_carry_pseudonyms_and_weights(
    engine: AsyncEngine, analyst: StaffClient, settings: Settings, tmp_path: Path
) -> None:
    await seed(engine)
    await _margins(engine)
    async with engine.connect() as conn:
        phone = (await conn.execute(select(models.table(models.Citizen).c.phone).limit(1))).scalar_one()
    files = {}
    for fmt in ("csv", "csv-plain", "xlsx", "sav", "dta", "parquet"):
        response = await analyst.get(f"/results/roads/export?format={fmt}&weighted=1&w=municipality")
        assert response.status_code == 200, (fmt, response.text[:300])
        assert phone[1:].encode() not in response.content and phone[-8:].encode() not in response.content
        path = tmp_path / f"roads.{fmt}"
        path.write_bytes(response.content)
        files[fmt] = path
    rows = list(csv.DictReader(io.StringIO(files["csv"].read_bytes().decode("utf-8-sig"))))
    assert files["csv"].read_bytes().startswith(b"\xef\xbb\xbfcitizen,")
    assert not files["csv-plain"].read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(rows) == 50 and {r["satisfied"] for r in rows} == {"yes", "no"}
    assert pseudonym(phone, settings.pseudonym_key) in {r["citizen"] for r in rows} | {""}
    assert {r["municipality"] for r in rows} == {"tripoli", "misrata", "sabha"}
    tripoli_weight = next(float(r["weight"]) for r in rows if r["municipality"] == "tripoli")
    assert tripoli_weight == pytest.approx((1 / 2) / (30 / 50), rel=1e-4)

    book = openpyxl.load_workbook(files["xlsx"], read_only=False)
    assert book["respondents"].sheet_view.rightToLeft is True
    assert book["satisfied"].sheet_view.rightToLeft is True
    assert book["respondents"].max_row == 51

    frame, meta = pyreadstat.read_sav(str(files["sav"]), output_format="polars")
    assert frame.height == 50
    assert meta.column_names_to_labels["satisfied"] == "هل أنت راضٍ عن أعمال صيانة الطرق في بلديتك؟"
    assert meta.variable_value_labels["satisfied"] == {1.0: "نعم", 0.0: "لا"}
    assert meta.variable_value_labels["priority"][1.0] == "الطرق"
    stata, stata_meta = pyreadstat.read_dta(str(files["dta"]), output_format="polars")
    assert files["dta"].read_bytes().startswith(b"<stata_dta><header><release>118</release>")
    assert stata_meta.variable_value_labels["priority"] == {1: "الطرق", 2: "المياه", 3: "الكهرباء"}
    assert stata.height == 50
    table = pq.read_table(files["parquet"])
    assert table.num_rows == 50 and "weight" in table.column_names

    async with engine.connect() as conn:
        audited = (
            (await conn.execute(select(AUDIT.c.details).where(AUDIT.c.action == "results.export")))
            .scalars()
            .all()
        )
    assert sorted(d["format"] for d in audited) == sorted(
        ["csv", "csv-plain", "xlsx", "sav", "dta", "parquet"]
    )
    assert all(d["weighted"] for d in audited)


async def test_an_export_of_an_inquiry_without_answers_has_a_header_only(
    engine: AsyncEngine, analyst: StaffClient, tmp_path: Path
) -> None:
    await seed(engine, plan={})
    for fmt in ("csv", "xlsx", "sav", "dta", "parquet"):
        response = await analyst.get(f"/results/roads/export?format={fmt}")
        assert response.status_code == 200, (fmt, response.text[:300])
        (tmp_path / f"e.{fmt}").write_bytes(response.content)
    assert (tmp_path / "e.csv").read_bytes().decode("utf-8-sig").splitlines() == [
        "citizen,municipality,district,language,channel,satisfied,priority"
    ]
    assert pyreadstat.read_sav(str(tmp_path / "e.sav"), output_format="polars")[0].height == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    # weights asked for where nothing can be weighed: a clear refusal, not a broken file
    refused = await analyst.get("/results/roads/export?format=csv&weighted=1")
    assert refused.status_code == 422 and "weights cannot be computed" in refused.text
    assert (await analyst.get("/results/roads/export?format=pdf")).status_code == 404


async def test_a_municipality_analyst_sees_their_own_and_gets_404_for_another(
    web: FastAPI, engine: AsyncEngine
) -> None:
    seeded = await seed(engine)
    client, _ = await logged_in(
        web, engine, "analyst", language="en", municipalities=[seeded.municipality_ids["tripoli"]]
    )
    try:
        listed = _text((await client.get("/results")).text)
        assert "You see the answers of your municipalities only." in listed
        page = _text((await client.get("/results/roads?set=1&by=municipality")).text)
        assert "Tripoli" in page and "Misrata" not in page.split("Municipality")[-1].split("Download")[0]
        assert (await client.get("/results/roads?municipality=misrata")).status_code == 404
        assert (await client.get("/results/roads/export?format=csv&municipality=misrata")).status_code == 404
        assert (await client.get("/results/roads/rates?municipality=sabha")).status_code == 404
        own = await client.get("/results/roads/export?format=csv")
        rows = list(csv.DictReader(io.StringIO(own.content.decode("utf-8-sig"))))
        assert len(rows) == 30 and {r["municipality"] for r in rows} == {"tripoli"}
    finally:
        await client.http.aclose()


async def test_admins_load_margins_on_the_page_and_bad_files_are_explained(
    web: FastAPI, engine: AsyncEngine
) -> None:
    await seed(engine)
    admin = await admin_client(web, engine)
    try:
        page = await admin.get("/admin/margins")
        assert page.status_code == 200 and "No table is loaded" in _text(page.text)
        files = {"file": ("margins.csv", MARGINS_CSV.encode(), "text/csv")}
        response = await admin.http.post("/admin/margins", data={"csrf_token": admin.csrf}, files=files)
        assert response.status_code == 303
        listed = _text((await admin.get("/admin/margins")).text)
        assert "Municipality" in listed and "2,400,000" in listed
        bad = {"file": ("bad.csv", b"municipality,population\nnowhere,5\n", "text/csv")}
        response = await admin.http.post("/admin/margins", data={"csrf_token": admin.csrf}, files=bad)
        assert response.status_code == 400 and "is not a known municipality" in _text(response.text)
        response = await admin.post("/admin/margins/delete", {"table": "municipality"})
        assert response.status_code == 303
        async with engine.connect() as conn:
            actions = (
                await conn.execute(select(AUDIT.c.action).where(AUDIT.c.action.like("margins.%")))
            ).all()
        assert sorted(a for (a,) in actions) == ["margins.delete", "margins.load"]
    finally:
        await admin.http.aclose()


async def test_the_public_page_is_off_until_enabled_and_published(
    settings: Settings, engine: AsyncEngine, redis: object
) -> None:
    from tests.webapp import running_app, staff_client

    await seed(engine)
    for enabled in (False, True):
        settings.public_results = enabled
        async with running_app(settings) as app, staff_client(app) as anonymous:
            assert (await anonymous.get("/public/results/roads")).status_code == 404
            admin = await admin_client(app, engine)
            try:
                page = await admin.get("/results/roads")
                assert ("Publish the public results page" in page.text) is enabled
                response = await admin.post("/results/roads/public", {"public": "on"})
                assert response.status_code == (303 if enabled else 404)
            finally:
                await admin.http.aclose()
            shown = await anonymous.get("/public/results/roads")
            if not enabled:
                assert shown.status_code == 404
                continue
            assert shown.status_code == 200 and "public" in shown.headers["cache-control"]
            assert "set-cookie" not in shown.headers and 'dir="rtl"' in shown.text
            assert "58.0%" in _text(shown.text) and "csrf" not in shown.text
            english = await anonymous.get("/public/results/roads?lang=en")
            assert "Satisfaction with the roads" in english.text
    async with engine.connect() as conn:
        changes = (await conn.execute(select(AUDIT.c.action).where(AUDIT.c.action == "results.public"))).all()
    assert len(changes) == 1


async def test_the_results_api_reads_estimates_with_a_scoped_token(web: FastAPI, engine: AsyncEngine) -> None:
    from datetime import UTC, datetime, timedelta

    import httpx

    from callcenter.accounts.roles import Role
    from callcenter.accounts.tokens import create_token
    from tests.webapp import make_user

    seeded = await seed(engine)
    await _margins(engine)
    analyst = await make_user(engine, "analyst", municipalities=[seeded.municipality_ids["tripoli"]])
    assert analyst.id is not None
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session, session.begin():
        _, token = await create_token(
            session, user_id=analyst.id, role=Role.analyst, name="bi", scopes=["results:read"],
            expires_at=now + timedelta(days=1), now=now,
        )  # fmt: skip
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="https://1415.test") as client:
        headers = {"Authorization": f"Bearer {token}"}
        data = (
            await client.get("/api/inquiries/roads/estimates?weights=municipality", headers=headers)
        ).json()
        assert data["weighted"] is True and data["weighting"]["n"] == 30  # Tripoli's respondents only
        satisfied = data["questions"][0]
        assert satisfied["n"] == 30 and {a["value"] for a in satisfied["answers"]} == {"yes", "no"}
        split = await client.get("/api/inquiries/roads/estimates?by=channel", headers=headers)
        assert split.json()["questions"][0]["groups"][0]["group"] in ("sms", "voice")
        other = await client.get("/api/inquiries/roads/estimates?municipality=misrata", headers=headers)
        assert other.status_code == 404


async def test_by_municipality_the_groups_are_ranked_by_the_leading_answer_in_a_bar_chart(
    engine: AsyncEngine, analyst: StaffClient
) -> None:
    """No district boundaries are shipped, so ranked bars stand in for the map: each
    municipality's share of the answer most given overall, highest first."""
    await seed(engine)
    page = await analyst.get("/results/roads?set=1&by=municipality")
    assert page.status_code == 200
    figure = page.text.split('data-ranked="', 1)[1].split("</figure>", 1)[0]
    assert '<svg class="chart"' in figure and 'id="ranked-0-t"' in figure
    shares = [float(s) for s in re.findall(r">(\d+\.\d)\s?%<", figure)]
    assert shares and shares == sorted(shares, reverse=True)
    # groups under the suppression threshold come last, without a bar
    marks = re.findall(r'class="chart__(value|hidden)"', figure)
    assert "hidden" in marks and marks == sorted(marks, key=lambda m: m == "hidden")
    by_channel = await analyst.get("/results/roads?set=1&by=channel")
    assert "data-ranked=" not in by_channel.text  # channels are not places
