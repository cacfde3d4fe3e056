"""POST requests: a client's submission becomes a 1415 request like any other intake's
(``requests.service.create_request``, channel ``open311``: routed, timed, its first event and
audit row written by the service), and what the service has no column for (the location,
the media's address, the client) goes to ``open311_request``.

The reporter's ``phone`` is kept (E.164) so the citizen gets the SMS updates and can ask for
the status by phone; ``first_name``, ``last_name``, ``email``, ``device_id`` and ``account_id``
are not kept (1415 reaches citizens by phone, and keeps no more than it needs).
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.open311.clients import Client
from callcenter.open311.params import Open311Error, Submission
from callcenter.open311.read import municipality_id
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.read import RequestView
from callcenter.requests.service import BadIntake, Intake, create_request
from callcenter.settings import Settings

CATEGORY = models.table(models.ServiceCategory)
O311 = models.table(models.Open311Request)


async def submit(
    session: AsyncSession,
    client: Client,
    sent: Submission,
    *,
    calendar: WorkingCalendar,
    settings: Settings,
) -> RequestView:
    """Make the request, or ``Open311Error``: 403 outside the key's jurisdictions, 404 for an
    unknown jurisdiction, 400 for an unknown service_code, an attribute the service does not
    ask, or a phone number that is not one."""
    if not client.reaches(sent.jurisdiction):
        raise Open311Error(403, f"this api_key does not reach jurisdiction_id {sent.jurisdiction[:64]!r}")
    conn = await session.connection()
    await municipality_id(conn, sent.jurisdiction)
    questions = (
        await conn.execute(
            select(CATEGORY.c.questions).where(
                CATEGORY.c.key == sent.service_code[:48], CATEGORY.c.active.is_(True)
            )
        )
    ).scalar()
    if questions is None:
        raise Open311Error(
            400, f"service_code {sent.service_code[:48]!r} is not a service of 1415 (see services.json)"
        )
    asked = {q["key"] for q in questions}
    unknown = sorted(set(sent.attributes) - asked)
    if unknown:
        raise Open311Error(
            400, f"attribute[{unknown[0][:48]}] is not a question of service {sent.service_code!r}"
        )
    try:
        made = await create_request(
            session,
            Intake(
                category=sent.service_code, channel="open311", description=sent.description,
                municipality=sent.jurisdiction, phone=sent.phone, language=sent.locale,
                details={k: v for k, v in sent.attributes.items() if v},
            ),
            actor=client.actor, calendar=calendar, settings=settings,
        )  # fmt: skip
    except BadIntake as exc:
        field = str(exc.details.get("field", ""))
        raise Open311Error(400, f"{field}: {exc.message}" if field else exc.message) from exc
    await conn.execute(
        insert(O311).values(
            request_id=made.id, client_id=client.id, lat=sent.lat, long=sent.long,
            address=sent.address, address_id=sent.address_id, media_url=sent.media_url,
        )
    )  # fmt: skip
    return made
