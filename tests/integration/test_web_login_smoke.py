"""Logging in through the pages: the path every staff member takes first."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.webapp import logged_in


async def test_an_operator_logs_in_and_lands_on_the_campaigns(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await logged_in(web, engine, "operator")
    response = await client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/campaigns"
    page = await client.get("/account")
    assert page.status_code == 200 and 'dir="rtl"' in page.text
    await client.http.aclose()
