"""Callers to agents under load: N agents at their desks, M simulated callers keying 0 or 2,
two telephony processes sharing one routing store (Redis) and one PostgreSQL.

    python scripts/bench/acd_load.py --agents 200 --callers 500 --agi-processes 2

What runs, each in its own process: ``serve`` (the web app) with one live desk connection per
agent (``GET /live?topic=desk:<agent>``, a logged-in agent session each) and the agents at the
desks clicking Ready, and Ready with a disposition after each call (``_desks.py``); K
telephony processes (``_agi_process.py``: what ``callcenter agi`` runs — the FastAGI IVR with
the ACD, routing rounds every second, the callback dialer on AMI), each in front of its own
simulated Asterisk (in this process), whose agent phones answer after 0.5–1.5 s and talk for a
handling time around ``--talk-s`` (a few ring out, are busy or are not registered), and whose
callers key 0 (70 %) or 2 and then wait: some give up after a patience, some press 1 for a
callback when it is offered (from ``callback_after``, a quarter of ``--talk-s``), the rest hold
on; everyone rates the call. Two teams: 70 % of the agents serve the general queue (key 0), the
rest the services queue (key 2), and a few serve both. Callers arrive first at the agents'
pace (for one handling time the line fills without a queue), then at ``--surge`` times it, so
a queue builds and the wait estimates have something to estimate.

Printed (one JSON object): ``routing_p99_ms`` (a routing round's time holding the lock, as the
store measured it, over rounds with callers to decide on), ``routing_cpu_p99_ms`` (the same
rounds' CPU time in their process: a round runs without yielding, so this is its own cost,
without the OS's scheduling of a busy machine), ``event_to_desk_p99_ms`` (from a
routing event's time on Redis' clock to its bytes read off the agent's desk connection), what
became of the callers recounted from the database (``connected``, ``abandoned``,
``called_back``, ``told_message``, ``lost``: none of these), and from the raw event log
``double_routed`` (an entry offered while still offered, or to an agent still holding a
caller), ``callbacks_out_of_order`` (a callback served while an entry with an earlier place in
its queue was waiting), ``wallboard_matches_recount`` (the wallboard read model's figures of
today against a recount of the log) and each announced wait estimate against the wait until
the caller was connected (``wait_estimate_median_abs_error_s``, ``actual_wait_median_s``).
The settings say what the operator would know beforehand: the default handling time the
estimates start from is ``--talk-s`` plus the wrap-up (until the log has figures of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common
import aiohttp
import redis as sync_redis
import redis.asyncio as aioredis
from _acd_recount import FIGURES, callbacks_out_of_order, double_routed, estimates, fates, read_log, recount
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts.sessions import open_session
from callcenter.demo_agents import hold_library
from callcenter.desk.wallboard import day_bounds, read_wallboard, today
from callcenter.routing.store import RoutingStore
from callcenter.settings import Settings
from callcenter.sim import (
    AgentSpec,
    CitizenModel,
    Outcome,
    PromptCaller,
    QueueCaller,
    SimConfig,
    Simulator,
    engine_dialplan,
)
from callcenter.testing.kannel import _pdeathsig

BENCH = Path(__file__).resolve().parent
GENERAL, SERVICES = "general", "services"
WRAP_S = (1.0, 3.0)  # the agents' wrap-up at the desk, seconds
GENERATOR_NICE = 10


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--callers", type=int, default=500)
    parser.add_argument("--agi-processes", type=int, default=2)
    parser.add_argument("--talk-s", type=float, default=30.0, help="mean talk time with an agent")
    parser.add_argument("--surge", type=float, default=2.5, help="arrivals after the first wave, x capacity")
    parser.add_argument("--give-up", type=float, default=0.25, help="share of callers with a patience")
    parser.add_argument("--book", type=float, default=0.15, help="share pressing 1 for a callback")
    parser.add_argument("--seed", type=int, default=1415)
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on the run after this")


@dataclass(frozen=True, slots=True)
class AgentSeat:
    id: str
    endpoint: str
    token: str
    csrf: str


# -- preparing ---------------------------------------------------------------------------------


async def prepare(engine: Any, args: argparse.Namespace) -> list[AgentSeat]:
    """Two queues, the agents (staff accounts with the agent role, a phone and skills) and a
    logged-in session for each."""
    Q, U, A = (models.table(m) for m in (models.ServiceQueue, models.User, models.AgentProfile))
    queue_config = {
        "steps": [[0, 1]], "callback_after": round(args.talk_s / 4, 1), "ring_timeout_s": 8,
        "sl_threshold_s": 20, "wrap_up_s": 60,
    }  # fmt: skip
    general_team = round(args.agents * 0.7)
    both = max(1, args.agents // 20)
    now = models.utcnow()
    async with engine.begin() as conn:
        queues = [{"key": key, "service": key, "name_ar": key, "name_en": key, "config": queue_config,
                   "active": True, "created_at": now} for key in (GENERAL, SERVICES)]  # fmt: skip
        await conn.execute(insert(Q), queues)
        users = [{"email": f"agent{n}@bench.1415.ly", "name": f"Agent {n}", "role": "agent", "language": "ar",
                  "created_at": now} for n in range(args.agents)]  # fmt: skip
        ids = [int(i) for i in (await conn.execute(insert(U).returning(U.c.id), users)).scalars()]
        profiles = []
        for n, user_id in enumerate(ids):
            serves = [GENERAL] if n < general_team else [SERVICES]
            if n < both or n >= args.agents - both:
                serves = [GENERAL, SERVICES]
            profiles.append({"user_id": user_id, "endpoint": f"PJSIP/{1000 + n}", "active": True,
                             "skills": [["service", s, 1] for s in serves], "created_at": now})  # fmt: skip
        await conn.execute(insert(A), profiles)
    seats = []
    async with AsyncSession(engine) as session, session.begin():
        for n, user_id in enumerate(ids):
            opened = await open_session(
                session, user_id=user_id, stage="full", address="127.0.0.1", user_agent="bench",
                absolute=timedelta(hours=4), now=datetime.now(UTC),
            )  # fmt: skip
            seats.append(AgentSeat(str(user_id), f"PJSIP/{1000 + n}", opened.token, opened.csrf_token))
    return seats


def agent_rule(rng: random.Random, talk_s: float) -> Any:
    """Each ring of a phone: mostly answered after 0.5-1.5 s and talked for 0.6-1.4 x
    ``talk_s``; now and then it rings out, is busy, or the phone is not registered."""

    def rule(_target: str) -> AgentSpec:
        draw = rng.random()
        if draw < 0.02:
            return AgentSpec("noanswer")
        if draw < 0.035:
            return AgentSpec("busy", answer_after_ms=2000)
        if draw < 0.04:
            return AgentSpec("unavailable")
        return AgentSpec(
            "answer",
            answer_after_ms=rng.randint(500, 1500),
            talk_ms=int(1000 * talk_s * rng.uniform(0.6, 1.4)),
        )

    return rule


def callers(args: argparse.Namespace, rng: random.Random) -> list[tuple[float, QueueCaller]]:
    """(arrival second, caller): one handling time at the agents' pace, then a surge."""
    cycle = args.talk_s + sum(WRAP_S) / 2 + 2.0  # talk, wrap-up, ring and the hold piece's lag
    first = min(args.callers, args.agents)
    pace = args.agents / cycle
    out: list[tuple[float, QueueCaller]] = []
    for n in range(args.callers):
        at = n / pace if n < first else first / pace + (n - first) / (pace * args.surge)
        draw = rng.random()
        patience = 1000 * args.talk_s * rng.uniform(0.2, 1.0) if draw < args.give_up else None
        books = args.give_up <= draw < args.give_up + args.book
        key = "0" if rng.random() < 0.7 else "2"
        rating = rng.choice("12345")
        number = f"0913{n:06d}"
        out.append((at, QueueCaller(key, number, patience_ms=patience, books_callback=books, rating=rating)))
    return out


# -- the processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def claim_redis(url: str) -> tuple[str, int | None]:
    """A Redis database of its own: with the default URL, one of 1..15 claimed as the test
    suite claims them (``cc-test-claim:<db>`` in database 0), so a test run beside is never
    flushed; any other URL is used as given."""
    if url != _common.DEFAULT_REDIS_URL:
        return url, None
    base = url.rsplit("/", 1)[0]
    admin = sync_redis.Redis.from_url(f"{base}/0")
    try:
        for db in range(15, 0, -1):
            if admin.set(f"cc-test-claim:{db}", f"bench-{os.getpid()}", nx=True, ex=3600):
                sync_redis.Redis.from_url(f"{base}/{db}").flushdb()
                return f"{base}/{db}", db
    finally:
        admin.close()
    raise RuntimeError("every Redis database 1..15 is claimed")


def release_redis(url: str, db: int | None) -> None:
    """The claimed database emptied (nothing of the run left behind) and given back."""
    if db is None:
        return
    sync_redis.Redis.from_url(url).flushdb()
    base = url.rsplit("/", 1)[0]
    admin = sync_redis.Redis.from_url(f"{base}/0")
    admin.delete(f"cc-test-claim:{db}")
    admin.close()


def spawn(argv: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, cwd=_common.ROOT, preexec_fn=_pdeathsig(), **kw)


def spawn_watched(
    argv: list[str], env: dict[str, str], ready: str
) -> tuple[subprocess.Popen[bytes], threading.Event]:
    """A process whose stderr is passed on to ours; the event is set once a line holds ``ready``."""
    proc = spawn(argv, env, stderr=subprocess.PIPE)
    seen = threading.Event()

    def forward() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            if ready in line:
                seen.set()
            sys.stderr.write(line)

    threading.Thread(target=forward, daemon=True).start()
    return proc, seen


async def wait_ready(
    proc: subprocess.Popen[bytes], seen: threading.Event, what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not seen.is_set():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout:g}s")
        await asyncio.sleep(0.05)


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited ({proc.returncode})")
            with suppress(aiohttp.ClientError):
                async with http.get(base + "/health") as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer /health")
            await asyncio.sleep(0.1)


async def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)
    except TimeoutError:
        proc.kill()


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 3)


# -- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    redis_url, claimed = claim_redis(args.redis_url)
    tmp = Path(tempfile.mkdtemp(prefix="acd-bench-"))
    started = time.perf_counter()
    try:
        async with AsyncExitStack() as stack:
            url = await stack.enter_async_context(_common.scratch_database(args.database_url, keep=args.keep))
            engine = await stack.enter_async_context(_common.engine_for(url))
            seats = await prepare(engine, args)
            settings = Settings(env="test", database_url=url, redis_url=redis_url)
            env = {
                **os.environ, "CALLCENTER_ENV": "test", "CALLCENTER_DATABASE_URL": url,
                "CALLCENTER_REDIS_URL": redis_url, "CALLCENTER_LOG_LEVEL": "WARNING",
                "CALLCENTER_COOKIE_SECURE": "false", "CALLCENTER_QUIET_START": "",
                "PYTHONPATH": str(_common.ROOT),
            }  # fmt: skip
            result = await _run(args, rng, stack, engine, settings, seats, env, tmp)
            result["seconds"] = round(time.perf_counter() - started, 1)
            return result
    finally:
        release_redis(redis_url, claimed)
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()


async def _run(
    args: argparse.Namespace, rng: random.Random, stack: AsyncExitStack, engine: Any, settings: Settings,
    seats: list[AgentSeat], env: dict[str, str], tmp: Path,
) -> dict[str, Any]:  # fmt: skip
    prompts = hold_library(settings, default_ms=600)
    rule = agent_rule(rng, args.talk_s)
    citizens = CitizenModel(
        rule=lambda number: Outcome("answer", 800, PromptCaller({"rate-call": "5"}, number))
    )
    sims: list[Simulator] = []
    agis: list[tuple[subprocess.Popen[bytes], Path]] = []
    starting: list[tuple[subprocess.Popen[bytes], threading.Event]] = []
    for k in range(args.agi_processes):
        port = free_port()
        config = SimConfig(
            agi_port=port, time_scale=1.0, dialplan=engine_dialplan(), prompts=prompts,
            agent_rule=rule, citizens=citizens,
            first_uniqueid=k * 10_000_000,  # two Asterisks never share a uniqueid (their systemname)
        )  # fmt: skip
        sim = Simulator(config)
        await sim.start()
        stack.push_async_callback(sim.close)
        sims.append(sim)
        rounds = tmp / f"rounds-{k}.json"
        agi_env = env | {
            "CALLCENTER_AGI_HOST": "127.0.0.1", "CALLCENTER_AGI_PORT": str(port),
            "CALLCENTER_AMI_HOST": "127.0.0.1", "CALLCENTER_AMI_PORT": str(sim.ami_port),
            "CALLCENTER_AMI_USERNAME": "engine", "CALLCENTER_AMI_SECRET": "s3cret",
            "CALLCENTER_VOICE_DIAL_TEMPLATE": "PJSIP/{number}@trunk",
            "CALLCENTER_CALLBACK_HOURS_START": "00:00", "CALLCENTER_CALLBACK_HOURS_END": "00:00",
            "CALLCENTER_QUEUE_DEFAULT_AHT_S": str(args.talk_s + sum(WRAP_S) / 2),
            # a callback an agent let ring out is dialled again after a tenth of this
            "CALLCENTER_CALLBACK_RETRY_AFTER_S": "20",
        }  # fmt: skip
        proc, listening = spawn_watched(
            [sys.executable, str(BENCH / "_agi_process.py"), str(rounds)], agi_env, "FastAGI IVR listening"
        )
        stack.callback(_kill, proc)
        agis.append((proc, rounds))
        starting.append((proc, listening))
    web_port = free_port()
    serve = spawn([sys.executable, "-m", "callcenter.cli", "serve", "--port", str(web_port)], env)
    stack.callback(_kill, serve)
    for proc, listening in starting:  # all of them start at once
        await wait_ready(proc, listening, "the telephony process")
    # From here on this process (the simulated Asterisks) and the desks it starts (the agents'
    # browsers) run at a lower CPU priority: in production they are other machines, and here
    # they would otherwise take the engine's processes' turn on the two cores
    os.nice(GENERATOR_NICE)
    base = f"http://127.0.0.1:{web_port}"
    await wait_healthy(base, serve)
    agents_file, desks_out = tmp / "agents.json", tmp / "desks.json"
    agents_file.write_text(json.dumps([
        {"agent": s.id, "token": s.token, "csrf": s.csrf, "wrap_min_s": WRAP_S[0], "wrap_max_s": WRAP_S[1]}
        for s in seats
    ]))  # fmt: skip
    desks = spawn(
        [sys.executable, str(BENCH / "_desks.py"), "--base", base, "--agents", str(agents_file),
         "--out", str(desks_out)],
        env, stdout=subprocess.PIPE,
    )  # fmt: skip
    stack.callback(_kill, desks)
    assert desks.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(desks.stdout.readline), 180)
    _common.note(f"desks: {line.decode().strip()} of {len(seats)}")

    plan = callers(args, rng)
    _common.note(f"{len(plan)} callers over {plan[-1][0]:.0f}s on {len(sims)} simulated Asterisks")
    run_started = time.monotonic()

    async def place(n: int, at: float, caller: QueueCaller) -> None:
        delay = run_started + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await sims[n % len(sims)].call(caller)

    async with asyncio.timeout(args.timeout):
        await asyncio.gather(*(place(n, at, caller) for n, (at, caller) in enumerate(plan)))
        _common.note(f"every call ended after {time.monotonic() - run_started:.0f}s; callbacks next")
        await settle(engine, settings, len(seats))
        for sim in sims:
            await sim.wait_idle()
    _common.note(f"done after {time.monotonic() - run_started:.0f}s")

    await stop(desks)
    desk_results = json.loads(desks_out.read_text())
    for proc, _ in agis:
        await stop(proc)
    rounds = [json.loads(path.read_text()) for _, path in agis]
    round_times = [t for r in rounds for t in r["held"]]
    parts = [p for r in rounds for p in r["parts"]]
    for q in (0.5, 0.9, 0.99):
        read, decide, write = (ms(pct([p[i] for p in parts], q)) for i in range(3))
        _common.note(
            f"routing rounds, p{q * 100:g} as their processes saw them: "
            f"read {read}, decide {decide}, write {write} ms"
        )
    await stop(serve)
    result = await figures(engine, settings, plan, round_times, desk_results)
    cpu = [t for r in rounds for t in r["cpu"]]
    result["routing_cpu_p50_ms"] = ms(pct(cpu, 0.50))
    result["routing_cpu_p99_ms"] = ms(pct(cpu, 0.99))
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


async def settle(engine: Any, settings: Settings, agents: int, timeout: float = 300) -> None:
    """Until no callback is left to serve and every agent is ready again."""
    CB = models.table(models.Callback)
    redis = aioredis.from_url(settings.redis_url or "")
    store = RoutingStore(redis)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                live = (
                    await conn.execute(
                        select(CB.c.id).where(CB.c.status.in_(("pending", "reserved", "dialling")))
                    )
                ).all()
            snap = await store.snapshot()
            ready = sum(1 for r in snap.agents.values() if str(r.agent.state) == "ready")
            if not live and not snap.entries and not snap.outcomes and ready == agents:
                return
            await asyncio.sleep(0.5)
        _common.note("gave up waiting for the line to settle")
    finally:
        await redis.aclose()


async def figures(
    engine: Any, settings: Settings, plan: list[tuple[float, QueueCaller]], round_times: list[float],
    desk_results: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    numbers = [f"+218{caller.number[1:]}" for _, caller in plan]
    fate = await fates(engine, numbers)
    events = await read_log(engine)
    examples: list[str] = []
    wrong, served = callbacks_out_of_order(events, examples)
    if wrong:
        _common.note(f"callbacks out of order: {examples}")
        for example in examples[:2]:
            ahead = example.rsplit("['", 1)[-1].split("'", 1)[0]
            history = [(round(e.at, 3), e.kind, e.agent, e.queue, e.data) for e in events if e.entry == ahead]
            _common.note(f"  {ahead}: {history}")
    guess = estimates(events)
    redis = aioredis.from_url(settings.redis_url or "")
    try:
        board = await read_wallboard(engine, RoutingStore(redis), timezone=settings.timezone)
    finally:
        await redis.aclose()
    day_start, _ = day_bounds(today(board.now, settings.timezone), settings.timezone)
    counted = recount(
        events, start=day_start, end=board.now,
        sl_threshold_s={q.key: q.settings.sl_threshold_s for q in board.queues},
        short_abandon_s={q.key: q.settings.short_abandon_s for q in board.queues},
    )  # fmt: skip
    shown = {q.key: {f: int(getattr(q.today, f)) for f in FIGURES} for q in board.queues}
    matches = all(shown.get(key, dict.fromkeys(FIGURES, 0)) == figs for key, figs in counted.items())
    matches = matches and all(key in counted or not any(figs.values()) for key, figs in shown.items())
    if not matches:
        _common.note(f"wallboard {shown}\nrecount   {counted}")
    if fate.lost:
        _common.note(f"lost: {fate.lost_examples}")
        ends = {"entry.connected", "entry.left", "entry.callback", "entry.overflowed", "entry.refused"}
        done = {e.entry for e in events if e.kind in ends}
        stray = [e.entry for e in events if e.kind == "entry.queued" and e.entry not in done][:2]
        for entry in stray:
            history = [(round(e.at, 3), e.kind, e.agent, e.data) for e in events if e.entry == entry]
            _common.note(f"  {entry}: {history}")
    latencies = desk_results["latencies"]
    return {
        "agents": desk_results.get("ready"),
        "callers": fate.callers,
        "connected": fate.connected,
        "abandoned": fate.abandoned,
        "called_back": fate.called_back,
        "told_message": fate.told_message,
        "lost": fate.lost,
        "callbacks_booked": fate.callbacks_booked,
        "double_routed": double_routed(events),
        "callbacks_out_of_order": wrong,
        "callbacks_served": served,
        "wallboard_matches_recount": matches,
        "wait_estimate_median_abs_error_s": guess.median_abs_error_s,
        "actual_wait_median_s": guess.median_actual_s,
        "wait_estimate_median_s": guess.median_estimate_s,
        "wait_estimate_median_abs_error_to_answer_s": guess.median_abs_error_to_answer_s,
        "actual_wait_to_answer_median_s": guess.median_actual_to_answer_s,
        "estimates_compared": guess.pairs,
        "routing_p50_ms": ms(pct(round_times, 0.50)),
        "routing_p99_ms": ms(pct(round_times, 0.99)),
        "routing_rounds": len(round_times),
        "event_to_desk_p50_ms": ms(pct(latencies, 0.50)),
        "event_to_desk_p99_ms": ms(pct(latencies, 0.99)),
        "desk_events": len(latencies),
        "desk_errors": desk_results["errors"],
        "desk_error_statuses": desk_results.get("statuses", {}),
        "events_logged": len(events),
    }


def main() -> None:
    args = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
