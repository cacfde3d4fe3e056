"""``callcenter citizen erase`` and ``callcenter retention``: a citizen's data erased on request,
and the retention job by hand (``--dry-run`` shows what it would do). Numbers are masked in
everything printed; the audit log names citizens by their pseudonym only."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.cli_common import console, domain, err, run, with_engine
from callcenter.settings import Settings

citizen_app = typer.Typer(help="A citizen's personal data: erasure on request.", no_args_is_help=True)
retention_app = typer.Typer(
    help="Retention: answers keep only the pseudonym after an inquiry closes; unused numbers go.",
    no_args_is_help=True,
)


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table("", title)
    for name, value in counts.items():
        table.add_row(name.replace("_", " "), str(value))
    return table


@citizen_app.command("erase")
def citizen_erase(
    phone: Annotated[str, typer.Argument(help="the number, in E.164 (+218912345678)")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Erase one citizen's personal data on request: the number everywhere (an irreversible
    tombstone instead), message bodies, call recordings, live callbacks, the number on their
    service requests and in Redis. Answers stay, pseudonymous: results and exports count the
    same. Audited under the pseudonym."""
    from callcenter.citizens.erasure import AlreadyErased, Target, erase, find
    from callcenter.phones import mask_phone
    from callcenter.redis_conn import connect

    async def look(settings: Settings) -> Target | str:
        try:
            return await with_engine(settings, lambda engine: find(engine, settings, phone))
        except AlreadyErased as exc:  # a second request: nothing to do, and that is no error
            return exc.message

    target = domain(lambda: run(look))
    if isinstance(target, str):
        console.print(target)
        return
    shown = mask_phone(target.person.phone)
    console.print(_counts_table(f"to erase for {shown}", target.found.as_dict()))
    if not yes and not typer.confirm(f"Erase {shown}? This cannot be undone", default=False):
        err.print("nothing erased")
        raise typer.Exit(1)

    async def act(settings: Settings) -> dict[str, Any]:
        async def body(engine: AsyncEngine) -> dict[str, Any]:
            redis = connect(settings)
            try:
                return (await erase(engine, redis, settings, target, actor="cli")).as_dict()
            finally:
                await redis.aclose()

        return await with_engine(settings, body)

    done = domain(lambda: run(act))
    console.print(_counts_table(f"erased ({shown})", done))


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would change, change nothing")
    ] = False,
) -> None:
    """What the worker does daily: inquiries closed longer than their retention keep only the
    pseudonym; citizens inactive longer than CALLCENTER_CITIZEN_INACTIVE_DAYS lose their
    number (unless a service request is open or a callback live)."""
    from callcenter import retention
    from callcenter.redis_conn import connect

    async def act(settings: Settings) -> retention.Report:
        async def body(engine: AsyncEngine) -> retention.Report:
            redis = connect(settings)
            try:
                return await retention.run(engine, redis, settings, dry_run=dry_run)
            finally:
                await redis.aclose()

        return await with_engine(settings, body)

    report = domain(lambda: run(act))
    verb = "dry run: nothing changed" if report.dry_run else "done"
    table = Table("inquiry", "closed", "days", "citizens", "answers", "sessions", "deliveries", "calls",
                  "messages", "redacted", title=f"answers keep only the pseudonym ({verb})")  # fmt: skip
    for inquiry, done in report.inquiries:
        table.add_row(
            inquiry.slug, f"{inquiry.closed_at:%Y-%m-%d}", str(inquiry.days), str(done.citizens),
            str(done.answers), str(done.sessions), str(done.deliveries), str(done.calls),
            str(done.messages), str(done.redacted),
        )  # fmt: skip
    console.print(table if report.inquiries else "no inquiry is due for retention")
    if report.inactive_days:
        title = f"numbers unused for {report.inactive_days} days, erased ({verb})"
        console.print(_counts_table(title, report.inactive.as_dict()))
    else:
        console.print("inactive numbers are kept (CALLCENTER_CITIZEN_INACTIVE_DAYS=0)")


@retention_app.command("set")
def retention_set(
    inquiry: Annotated[str, typer.Argument(help="the inquiry's slug or id")],
    days: Annotated[int | None, typer.Argument(help="days after closing; 0: keep for ever")] = None,
    default: Annotated[
        bool, typer.Option("--default", help="back to CALLCENTER_ANSWER_RETENTION_DAYS")
    ] = False,
) -> None:
    """One inquiry's retention, instead of CALLCENTER_ANSWER_RETENTION_DAYS (audited)."""
    from callcenter.retention import set_retention

    if (days is None) == (not default):
        err.print("[red]give the days, or --default (not both)[/red]")
        raise typer.Exit(2)

    async def act(settings: Settings) -> str:
        async def body(engine: AsyncEngine) -> str:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                slug = await set_retention(session, inquiry, None if default else days, actor="cli")
            return f"{slug}: " + (
                f"the setting ({settings.answer_retention_days} days)" if default else f"{days} days"
            )

        return await with_engine(settings, body)

    console.print(domain(lambda: run(act)))
