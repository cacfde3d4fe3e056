"""The ``callcenter`` command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.cli_acd import acd_app
from callcenter.cli_common import console, domain, err, run, setup_logging, with_engine
from callcenter.cli_privacy import citizen_app, retention_app
from callcenter.cli_requests import requests_app
from callcenter.cli_users import user_app
from callcenter.db import make_engine
from callcenter.settings import Settings, get_settings

app = typer.Typer(help="1415: IVR and SMS call-centre engine.", no_args_is_help=True)
inquiry_app = typer.Typer(
    help="Define inquiries and move them through their life cycle.", no_args_is_help=True
)
campaign_app = typer.Typer(help="Push an inquiry to citizens by SMS.", no_args_is_help=True)
app.add_typer(inquiry_app, name="inquiry")
app.add_typer(campaign_app, name="campaign")
app.add_typer(user_app, name="user")
municipalities_app = typer.Typer(
    help="The municipalities register (districts, names, aliases) from CSV.", no_args_is_help=True
)
app.add_typer(municipalities_app, name="municipalities")
app.add_typer(acd_app, name="acd")
app.add_typer(requests_app, name="requests")
app.add_typer(citizen_app, name="citizen")
app.add_typer(retention_app, name="retention")
# -- running the engine -------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from callcenter.migrate import upgrade

    run(lambda s: with_engine(s, upgrade))
    console.print("database is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: CALLCENTER_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: CALLCENTER_API_PORT")] = None,
) -> None:
    """Serve the HTTP API and the SMS webhooks."""
    import uvicorn

    from callcenter.web.app import create_app

    settings = get_settings()
    setup_logging(settings)
    app = create_app(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        log_config=None,  # uvicorn's own lines go through ours: JSON, masked, with the request id
        access_log=False,
        # open live-update streams (GET /live) never end by themselves: a stop waits this long
        # for requests in progress, then closes them (browsers reconnect to the next process)
        timeout_graceful_shutdown=10,
    )


def tune_gc() -> None:
    """Freeze the start-up objects out of the collector and collect young objects less often:
    full collections of a big heap were the longest pauses under a reply storm."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


@app.command()
def worker() -> None:
    """Run a worker: campaign planning, send lanes, the reconciler (and, with
    CALLCENTER_METRICS_PORT, its metrics, /healthz and /readyz there)."""
    import signal

    from callcenter.health import ReadinessProbe, database_check, redis_check
    from callcenter.jobs import run_worker
    from callcenter.ops_server import ops_port
    from callcenter.redis_conn import connect

    async def main(settings: Settings) -> None:
        # SIGTERM (systemd's stop) is a clean stop: the jobs in flight give their claimed rows
        # back to the outbox at once, instead of leaving them to the reconciler's deadline
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if settings.metrics_port is None:
            await run_worker(settings, stop=stop)
            return
        engine = make_engine(settings, pool_size=1)  # the probe's and the outbox figures'
        redis = connect(settings)
        probe = ReadinessProbe(
            {"database": database_check(lambda: engine), "redis": redis_check(lambda: redis)}
        )
        try:
            async with ops_port(settings, probe, engine=engine):
                await run_worker(settings, stop=stop)
        finally:
            await redis.aclose()
            await engine.dispose()

    run(main)


@app.command()
def agi(
    dial: Annotated[bool, typer.Option(help="also run the outbound dialer (needs AMI)")] = True,
) -> None:
    """Run the telephony process: the FastAGI IVR (inbound 1415 and answered campaign calls)
    and the outbound-call dialer over AMI."""
    import signal

    from callcenter.voice.service import run_telephony

    async def main(settings: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_telephony(settings, stop, dial=dial)

    tune_gc()  # the routing rounds' pauses, like serve's
    run(main)


@app.command()
def up() -> None:
    """Set up and run everything on one machine: migrate, the starter municipalities register
    (only into an empty register), embedded Redis (unless CALLCENTER_REDIS_URL is set), the API
    with the SMS webhooks, and a worker."""
    import signal

    import uvicorn

    from callcenter.jobs import run_worker
    from callcenter.migrate import upgrade
    from callcenter.redis_conn import redis_url
    from callcenter.web.app import create_app

    async def set_up(engine: AsyncEngine) -> None:
        from callcenter.municipalities import ensure_starter_register

        await upgrade(engine)
        created = await ensure_starter_register(engine)  # only when the register is empty
        if created:
            console.print(f"starter municipalities register loaded ({created} municipalities)")

    async def main(settings: Settings) -> None:
        await with_engine(settings, set_up)
        if not settings.redis_sentinel_hosts:
            redis_url(settings)  # starts the embedded Redis when none is configured
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=10,  # open live-update streams must not hold a stop
            )
        )
        stop = asyncio.Event()
        console.print(
            f"1415 is up: API http://{settings.api_host}:{settings.api_port}/docs, "
            f"gateway {settings.sms_gateway}, database {settings.sqlalchemy_url.split('://')[0]}. "
            "Ctrl-C stops."
        )
        worker_task = asyncio.create_task(run_worker(settings, stop=stop))
        # uvicorn re-raises SIGINT/SIGTERM through the handler it found when it started; this
        # one keeps the process alive long enough to stop the worker and the embedded Redis
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            await server.serve()
        finally:
            stop.set()
            await worker_task
            if settings.redis_url is None:  # the embedded Redis we started goes with us
                from callcenter.redis_conn import stop_embedded

                stop_embedded(settings.data_dir)

    run(main)


# -- inquiries ----------------------------------------------------------------------------


@inquiry_app.command("load")
def inquiry_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML definition")],
    replace: Annotated[bool, typer.Option(help="replace a draft with the same slug")] = False,
) -> None:
    """Load an inquiry from a YAML file (as a draft)."""
    from callcenter.inquiries import create_inquiry
    from callcenter.inquiry.schema import InquiryFileError, parse_inquiry_yaml

    try:
        data = parse_inquiry_yaml(file.read_text(encoding="utf-8"), source=str(file))
    except InquiryFileError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    async def body(engine: AsyncEngine) -> int:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            row = await create_inquiry(session, data, actor="cli", replace_draft=replace)
            return int(row.id or 0)

    inquiry_id = domain(lambda: run(lambda s: with_engine(s, body)))
    console.print(f"inquiry {data.slug} loaded (id {inquiry_id}, draft)")


@inquiry_app.command("list")
def inquiry_list() -> None:
    """List inquiries."""
    from sqlalchemy import select

    from callcenter import models

    async def body(engine: AsyncEngine) -> list[Any]:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            return list((await session.execute(select(models.Inquiry))).scalars())

    table = Table("id", "slug", "status", "title")
    for row in run(lambda s: with_engine(s, body)):
        table.add_row(str(row.id), row.slug, row.status, row.title_ar)
    console.print(table)


@inquiry_app.command("status")
def inquiry_status(
    inquiry: str,
    status: Annotated[str, typer.Argument(help="draft | scheduled | running | paused | closed")],
    at: Annotated[
        str | None, typer.Option(help="for scheduled: start time, e.g. 2026-12-01T09:00 (Tripoli)")
    ] = None,
) -> None:
    """Move an inquiry through draft -> scheduled -> running <-> paused -> closed."""
    from callcenter.inquiries import set_status
    from callcenter.inquiry.definition import InquiryStatus

    when = None
    if at:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        when = datetime.fromisoformat(at)
        if when.tzinfo is None:  # local time in Libya unless an offset is given
            when = when.replace(tzinfo=ZoneInfo(get_settings().timezone))

    async def body(engine: AsyncEngine) -> str:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            row = await set_status(session, inquiry, InquiryStatus(status), actor="cli", at=when)
            return row.status

    console.print(f"{inquiry}: {domain(lambda: run(lambda s: with_engine(s, body)))}")


@app.command("prompts")
def prompts_cmd() -> None:
    """Render every voice prompt (the catalogue and each inquiry's questions) to 8 kHz mono WAV
    with espeak-ng and sox, under CALLCENTER_PROMPTS_DIR/audio (unchanged ones are skipped)."""
    from sqlalchemy import select

    from callcenter import models
    from callcenter.inquiries import load_definition
    from callcenter.prompts import render_all
    from callcenter.requests.store import read_catalogue
    from callcenter.voice.request_prompts import request_prompts

    async def main(settings: Settings) -> Any:
        async def inquiries(engine: AsyncEngine) -> list[Any]:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                slugs = (await session.execute(select(models.table(models.Inquiry).c.slug))).scalars().all()
                return [await load_definition(session, slug) for slug in slugs]

        async def services(engine: AsyncEngine) -> dict[str, Any]:
            async with engine.connect() as conn:
                return request_prompts(await read_catalogue(conn))

        more = await with_engine(settings, services)  # the categories' and bodies' names
        return await render_all(settings, await with_engine(settings, inquiries), more=more)

    report = domain(lambda: run(main))
    console.print(str(report))
    if not report.ok:
        raise typer.Exit(1)


# -- citizens -----------------------------------------------------------------------------


@app.command("import-citizens")
def import_citizens_cmd(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV: phone, municipality, language")
    ],
    errors_to: Annotated[
        Path | None, typer.Option("--errors", help="write the rejected rows' report here (CSV)")
    ] = None,
    create_municipalities: Annotated[
        bool,
        typer.Option(
            "--create-municipalities",
            help="add municipalities the register lacks (default: such rows are rejected)",
        ),
    ] = False,
) -> None:
    """Import the citizen register from CSV (numbers normalised to E.164, duplicates merged,
    municipalities matched against the register by code, name or alias)."""
    from callcenter.citizens.importer import BadHeader, import_citizens

    size = file.stat().st_size

    async def body(engine: AsyncEngine) -> Any:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            TextColumn("{task.fields[rows]} rows"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("import", total=size, rows=0)
            return await import_citizens(
                engine,
                file,
                progress=lambda rows, done: bar.update(task, completed=done, rows=rows),
                create_municipalities=create_municipalities,
            )

    try:
        report = run(lambda s: with_engine(s, body))
    except BadHeader as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"{report.rows} rows: {report.imported} new, {report.updated} updated, "
        f"{report.duplicates} duplicates merged, {report.rejected} rejected ({report.seconds:.1f}s)"
    )
    if report.municipalities_created:
        console.print(f"{report.municipalities_created} municipalities added to the register")
    for e in report.errors[:10]:
        err.print(f"  line {e.line}: {e.reason} ({e.value_masked})")
    if errors_to is not None:
        import csv

        with errors_to.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "reason", "value"])
            writer.writerows([e.line, e.reason, e.value_masked] for e in report.errors)


@municipalities_app.command("load")
def municipalities_load(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV: code,name_ar,name_en,district_code,district_ar,district_en,aliases (a|b)",
        ),
    ],
    replace: Annotated[
        bool,
        typer.Option(
            help="make the register exactly the file: remove the municipalities it does not list "
            "(those citizens, tickets or staff point at are kept and reported)"
        ),
    ] = False,
) -> None:
    """Load the municipalities register; every row is checked first, and a file with any bad
    row changes nothing. Without --replace, the file is merged into the register."""
    from rich.markup import escape

    from callcenter.municipalities import LoadReport, RegisterError, decode_register, load_register

    try:
        text = decode_register(file.read_bytes())
    except RegisterError as exc:
        for problem in exc.problems:
            err.print(escape(problem.text()))
        raise typer.Exit(2) from exc

    async def body(engine: AsyncEngine) -> LoadReport:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            return await load_register(session, text, actor="cli", mode="replace" if replace else "merge")

    report = run(lambda s: with_engine(s, body))
    if report.errors:
        for problem in report.errors:
            err.print(escape(f"line {problem.line}: {problem.text()}" if problem.line else problem.text()))
        err.print(f"{len(report.errors)} errors: nothing was changed")
        raise typer.Exit(2)
    console.print(
        f"{report.rows} rows: {len(report.created)} created, {len(report.updated)} updated, "
        f"{report.unchanged} unchanged, {len(report.removed)} removed, {len(report.kept)} kept"
    )
    for problem in report.kept:
        console.print(escape(f"  {problem.text()}"))


# -- campaigns ----------------------------------------------------------------------------


@campaign_app.command("start")
def campaign_start(
    inquiry: str,
    municipality: Annotated[list[str] | None, typer.Option(help="municipality code (repeatable)")] = None,
    language: Annotated[list[str] | None, typer.Option(help="ar / en (repeatable)")] = None,
    rate: Annotated[float | None, typer.Option(help="messages per second (default: the setting)")] = None,
    channel: Annotated[
        str, typer.Option(help="sms (a worker sends) or voice (`callcenter agi` dials)")
    ] = "sms",
) -> None:
    """Create a campaign for INQUIRY and start it."""
    if channel not in ("sms", "voice"):
        err.print("[red]--channel is sms or voice[/red]")
        raise typer.Exit(2)
    from callcenter.campaigns.service import Audience, create_campaign
    from callcenter.jobs import Runtime, start_campaign

    async def main(settings: Settings) -> tuple[int, int]:
        rt = await Runtime.start(settings)
        try:
            async with AsyncSession(rt.engine, expire_on_commit=False) as session, session.begin():
                campaign = await create_campaign(
                    session,
                    inquiry=inquiry,
                    actor="cli",
                    channel=channel,
                    gateway=settings.sms_gateway if channel == "sms" else "trunk",
                    audience=Audience(tuple(municipality or ()), tuple(language or ())),
                    rate_per_s=rate,
                )
            assert campaign.id is not None
            return campaign.id, await start_campaign(rt, campaign.id, actor="cli")
        finally:
            await rt.close()

    campaign_id, planned = domain(lambda: run(main))
    console.print(f"campaign {campaign_id} running: {planned} citizens planned")


def _campaign_move(campaign_id: int, status: str) -> None:
    from callcenter.campaigns.service import move
    from callcenter.jobs import Runtime, enqueue_lanes

    async def main(settings: Settings) -> str:
        rt = await Runtime.start(settings)
        try:
            campaign = await move(rt.engine, rt.redis, campaign_id, status, actor="cli")
            if status == "running":
                await enqueue_lanes(rt.redis, campaign_id)
            return campaign.status
        finally:
            await rt.close()

    console.print(f"campaign {campaign_id}: {domain(lambda: run(main))}")


@campaign_app.command("pause")
def campaign_pause(campaign_id: int) -> None:
    """Pause sending (takes effect within a second)."""
    _campaign_move(campaign_id, "paused")


@campaign_app.command("resume")
def campaign_resume(campaign_id: int) -> None:
    """Resume a paused campaign."""
    _campaign_move(campaign_id, "running")


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: int) -> None:
    """Cancel: nothing more is sent."""
    _campaign_move(campaign_id, "cancelled")


@campaign_app.command("show")
def campaign_show(campaign_id: int) -> None:
    """Show a campaign's deliveries by status (JSON, on stdout) and its status and why it
    waits (in words, on stderr: the staff page's reason)."""
    from callcenter.campaigns.progress import Progress as Shown
    from callcenter.campaigns.progress import read_progress
    from callcenter.campaigns.service import counts
    from callcenter.redis_conn import connect

    async def main(settings: Settings) -> tuple[dict[str, int], Shown | None]:
        async def body(engine: AsyncEngine) -> tuple[dict[str, int], Shown | None]:
            redis = connect(settings)
            try:
                return await counts(engine, campaign_id), await read_progress(
                    engine, redis, settings, campaign_id
                )
            finally:
                await redis.aclose()

        return await with_engine(settings, body)

    progress, shown = run(main)
    console.print(json.dumps(progress))
    if shown is not None:
        words = f"status: {shown.status}" + (f"; {shown.reason.text()}" if shown.reason else "")
        err.print(words, markup=False, highlight=False, soft_wrap=True)


# -- results ------------------------------------------------------------------------------


@app.command()
def results(
    inquiry: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    by: Annotated[str | None, typer.Option(help="split by: municipality | channel")] = None,
    language: Annotated[str, typer.Option(help="ar | en")] = "ar",
    weighted: Annotated[
        bool, typer.Option("--weighted", help="weighted to the population margins, with n_eff and deff")
    ] = False,
    weights: Annotated[
        list[str] | None,
        typer.Option("--weights", help="weight on: municipality | district | language | sex | age_band"),
    ] = None,
    shares: Annotated[bool, typer.Option("--shares", help="use each margin as shares")] = False,
    municipality: Annotated[str | None, typer.Option(help="only this municipality (a code)")] = None,
) -> None:
    """Results of an inquiry: counts, shares with 95 % Wilson intervals, and the funnel; with
    --weighted, weighted and unweighted shares side by side (small cells hidden)."""
    from callcenter.results import inquiry_results

    if weighted:
        from callcenter.cli_results import print_weighted, weighted_results

        data = domain(
            lambda: run(
                lambda s: with_engine(
                    s,
                    lambda e: weighted_results(
                        e, s, inquiry, weights=weights or ["municipality"], shares=shares,
                        municipality=municipality, language=language,
                    ),
                )
            )
        )  # fmt: skip
        if as_json:
            console.print_json(json.dumps(data, ensure_ascii=False))
        else:
            print_weighted(data)
        return

    from callcenter.cli_results import order_effects, print_order_effects

    res = domain(
        lambda: run(lambda s: with_engine(s, lambda e: inquiry_results(e, inquiry, language=language)))
    )
    order = domain(
        lambda: run(
            lambda s: with_engine(
                s, lambda e: order_effects(e, s, inquiry, municipality=municipality, language=language)
            )
        )
    )
    if as_json:
        console.print_json(json.dumps(res.to_json() | {"order_effects": order}, ensure_ascii=False))
        return
    print_results(res, by=by)
    print_order_effects(order)


def print_results(res: Any, *, by: str | None = None) -> None:
    f = res.funnel
    console.print(
        f"[bold]{res.inquiry}[/bold] ({res.status}) — planned {f.planned}, sent {f.sent}, "
        f"delivered {f.delivered}, started {f.started}, completed {f.completed}, opted out {f.opted_out}"
    )
    for q in res.questions:
        table = Table(
            title=f"{q.key}: {q.text} (n={q.total}{'' if q.mean is None else f', mean {q.mean:.2f}'})"
        )
        groups = {"all": q.shares}
        if by == "municipality":
            groups = q.by_municipality
        elif by == "channel":
            groups = q.by_channel
        table.add_column("group")
        for col in ("answer", "count", "share", "95% CI"):
            table.add_column(col, justify="right" if col != "answer" else "left")
        for group, shares in groups.items():
            for s in shares:
                table.add_row(
                    group,
                    s.label,
                    str(s.count),
                    f"{s.share:.1%}",
                    f"{s.ci_low:.1%}–{s.ci_high:.1%}",
                )
        console.print(table)


@app.command()
def export(
    inquiry: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="the file to write")] = Path("answers.csv"),
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv | csv-plain | xlsx | sav | dta | parquet: one row per respondent"
            " (without it: one CSV row per answer, as before)",
        ),
    ] = None,
    weighted: Annotated[bool, typer.Option("--weighted", help="add each respondent's weight")] = False,
    weights: Annotated[
        list[str] | None,
        typer.Option("--weights", help="weight on: municipality | district | language | sex | age_band"),
    ] = None,
    shares: Annotated[bool, typer.Option("--shares", help="use each margin as shares")] = False,
    municipality: Annotated[str | None, typer.Option(help="only this municipality (a code)")] = None,
    labels: Annotated[str, typer.Option(help="labels in: ar | en")] = "ar",
) -> None:
    """Export answers, citizens pseudonymised (never phone numbers): CSV (UTF-8 with BOM) by
    default, or --format for one row per respondent in CSV, XLSX, SPSS, Stata or Parquet."""
    import csv

    if fmt is not None:
        from callcenter.analysis.exports import FORMATS
        from callcenter.cli_results import export_file

        if fmt not in FORMATS:
            err.print(f"[red]--format is one of {', '.join(FORMATS)}[/red]")
            raise typer.Exit(2)
        chosen = fmt
        written = domain(
            lambda: run(
                lambda s: with_engine(
                    s,
                    lambda e: export_file(
                        e, s, inquiry, fmt=chosen, output=output, weighted=weighted,
                        weights=weights or ["municipality"], shares=shares, municipality=municipality,
                        language="en" if labels == "en" else "ar",
                    ),
                )
            )
        )  # fmt: skip
        console.print(f"{written} respondents written to {output}")
        return

    from callcenter.audit import audit
    from callcenter.results import EXPORT_HEADER, export_rows

    async def main(settings: Settings) -> int:
        engine = make_engine(settings)
        n = 0
        try:
            with output.open("w", encoding="utf-8-sig", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(EXPORT_HEADER)
                async for row in export_rows(engine, inquiry, key=settings.pseudonym_key):
                    writer.writerow(row)
                    n += 1
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                audit(session, actor="cli", action="results.export", target=inquiry, rows=n)
        finally:
            await engine.dispose()
        return n

    console.print(f"{domain(lambda: run(main))} answers written to {output}")


# -- demo ---------------------------------------------------------------------------------


@app.command()
def demo(
    citizens: Annotated[int, typer.Option(help="simulated citizens")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead")] = False,
    seed: Annotated[int, typer.Option(help="random seed")] = 1415,
    scratch: Annotated[
        bool, typer.Option("--scratch", help="run on a throw-away database instead of keeping the run")
    ] = False,
) -> None:
    """Run a whole SMS inquiry on the embedded default with simulated citizens, kept in the
    database under CALLCENTER_DATA_DIR (development only) unless --scratch."""
    from callcenter.demo import DEMO_EMAIL, run_demo

    settings = get_settings()
    setup_logging(settings.model_copy(update={"log_level": "WARNING"}))
    summary, res = domain(
        lambda: asyncio.run(
            run_demo(settings, citizens=citizens, seed=seed, progress=not as_json, scratch=scratch)
        )
    )
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    print_results(res)
    console.print(summary)
    if summary.get("database"):
        console.print(
            f"Kept in {summary['database']}: run [bold]callcenter up[/bold] and open "
            f"{settings.public_base_url}/login"
        )
        if summary.get("demo_account"):
            console.print(f"Log in as {DEMO_EMAIL} with the password {settings.demo_password}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
