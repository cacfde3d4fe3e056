"""Faults: one whole inquiry while PostgreSQL, Redis and the engine's processes fail under it.

    python scripts/bench/faults.py --citizens 20000
    python scripts/bench/faults.py --citizens 2000 --faults postgres_restart,kill_serve --keep

A private PostgreSQL cluster and a private Redis are started for the run (``initdb`` in a temp
dir, on free loopback ports; the shared servers are never touched, so ``--database-url`` and
``--redis-url`` are not used), with ``serve``, ``worker`` and ``agi`` as real processes and the
Asterisk simulator in this one (``callcenter/testing/fault_lab.py``). The inquiry: an SMS
campaign to every citizen through the loopback gateway; 1 - ``--voice-share`` of them answer
its three questions by Twilio-signed replies over HTTP (a reply the webhook does not take is
sent again, as a gateway retries), the others stay silent and are called by a voice campaign on
the simulator, where they answer by keypad. Meanwhile each fault of ``--faults`` is injected in
turn, the next one ``--gap`` seconds after the engine recovered from the last:

    kill_worker       SIGKILL of the worker mid-campaign, started again after a second
    postgres_restart  PostgreSQL stopped (fast) for --down seconds under all three roles
    kill_agi          SIGKILL of the telephony process with calls in progress
    kill_serve        SIGKILL of serve with replies in flight
    redis_restart     Redis shut down (saving) for --down seconds
    redis_flush       FLUSHALL: every job, lane, token bucket and cached status gone
    postgres_crash    PostgreSQL killed (immediate: recovery at start), down --down seconds

``recovery_s`` of a fault: from its injection until every role answers ``/readyz`` again, work
moves again (a new answer recorded, or for ``kill_worker`` a new invitation sent, for
``kill_agi`` a new answer by voice; or nothing left to do), and, after a database fault, every
reply taken before the database was back is stored (the spool drained).

Printed (one JSON object), recounted from the database at the end: ``citizens``,
``replies_sent`` (SMS replies the engine acknowledged), ``answers_recorded``, ``lost`` (answers
given — an acknowledged reply, or a key the IVR moved on from — with no answer stored),
``duplicated`` (answers that read anything but what was said to that question, answers to a
question never asked, messages stored twice), ``replies_during_db_outage``, ``sms_sent_twice``
(invitations the gateway took more than once: the chunks in flight), ``recovery_s`` per fault,
``faults``, ``seconds`` (the whole run), and more.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import httpx
from sqlalchemy import func, select

from callcenter import models
from callcenter.testing.fault_lab import FaultLab

FAULTS = (
    "kill_worker",
    "postgres_restart",
    "kill_agi",
    "kill_serve",
    "redis_restart",
    "redis_flush",
    "postgres_crash",
)
DB_FAULTS = ("postgres_restart", "postgres_crash")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--voice-share", type=float, default=0.1, help="citizens who answer by phone")
    parser.add_argument("--rate", type=float, default=300.0, help="the SMS campaign's rate (messages/s)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in this order")
    parser.add_argument("--first-at", type=float, default=2.0, help="seconds before the first fault")
    parser.add_argument(
        "--gap", type=float, default=5.0, help="seconds between a recovery and the next fault"
    )
    parser.add_argument("--down", type=float, default=5.0, help="how long PostgreSQL or Redis stays down")
    parser.add_argument(
        "--reconcile-after", type=float, default=20.0, help="CALLCENTER_RECONCILE_AFTER_S of the roles"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up on the whole run after this")
    parser.add_argument(
        "--patience",
        type=float,
        default=400.0,
        help="recount once nothing moved for this long (replies queued in an outage wait for the "
        "drainer's sweep, every 300 s)",
    )


@dataclass
class Snapshot:
    """Where the work stood when a fault was over."""

    answers: int
    voice_answers: int
    sent: int
    acked: int


class Run:
    def __init__(self, lab: FaultLab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        self.sms_campaign = 0
        self.voice_campaign = 0
        self.recovery: dict[str, float | None] = {}
        self.injected: list[str] = []
        self.outages: list[tuple[float, float]] = []  # database down: (from, until), monotonic

    async def snapshot(self) -> Snapshot:
        A = models.table(models.Answer)
        async with self.lab.engine.connect() as conn:
            answers, voice = (
                await conn.execute(select(func.count(), func.count().filter(A.c.channel == "voice")))
            ).one()
        sent = (await self.lab.progress(self.sms_campaign)).get("sent", 0)
        acked = self.lab.sms.sent if self.lab.sms is not None else 0
        return Snapshot(int(answers), int(voice), sent, acked)

    async def stored(self) -> int:
        M = models.table(models.Message)
        async with self.lab.engine.connect() as conn:
            query = select(func.count()).where(M.c.direction == "in")
            return int((await conn.execute(query)).scalar_one())

    async def all_ready(self) -> bool:
        async with httpx.AsyncClient(timeout=3.0) as http:
            for role in self.lab.roles.values():
                try:
                    if (await http.get(role.base_url + "/readyz")).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
        return True

    async def sms_done(self) -> bool:
        sms = self.lab.sms
        if sms is None or sms.tasks:
            return False
        return all(c.next == 3 for c in sms.by_phone.values()) and await self.lab.finished(self.sms_campaign)

    async def idle(self) -> bool:
        return await self.sms_done() and await self.lab.calls_over(self.voice_campaign)

    async def busy(self) -> bool:
        """Replies in flight or calls to make: work that would record answers now."""
        in_flight = self.lab.sms is not None and bool(self.lab.sms.tasks)
        return in_flight or not await self.lab.calls_over(self.voice_campaign)

    # -- faults -------------------------------------------------------------------------------

    async def inject(self, fault: str) -> None:
        lab, down = self.lab, self.args.down
        if fault in DB_FAULTS:
            began = time.monotonic()
            await lab.restart_postgres(
                down_s=down, mode="fast" if fault == "postgres_restart" else "immediate"
            )
            self.outages.append((began, time.monotonic()))
        elif fault == "redis_restart":
            await lab.restart_redis(down_s=down)
        elif fault == "redis_flush":
            await lab.flush_redis()
        elif fault.startswith("kill_"):
            await lab.kill(fault.removeprefix("kill_"), down_s=1.0)
        else:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")

    def moved(self, fault: str, then: Snapshot) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            if not await self.all_ready():
                return False
            now = await self.snapshot()
            if fault in DB_FAULTS and await self.stored() < then.acked:
                return False  # replies taken during the outage still in the spool
            if fault == "kill_worker":
                return now.sent > then.sent or await self.lab.finished(self.sms_campaign)
            if fault == "kill_agi":
                return now.voice_answers > then.voice_answers or await self.lab.finished(self.voice_campaign)
            return now.answers > then.answers or not await self.busy()

        return check

    async def faults(self, names: list[str]) -> None:
        await asyncio.sleep(self.args.first_at)
        for fault in names:
            started = time.monotonic()
            _common.note(f"fault: {fault}")
            await self.inject(fault)
            self.injected.append(fault)
            then = await self.snapshot()
            try:
                await self.lab.until(self.moved(fault, then), f"recovery from {fault}", timeout_s=300)
                self.recovery[fault] = round(time.monotonic() - started, 2)
            except TimeoutError as exc:
                _common.note(str(exc)[:2000])
                self.recovery[fault] = None
            _common.note(f"  recovered in {self.recovery[fault]} s")
            await asyncio.sleep(self.args.gap)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    names = [f for f in args.faults.split(",") if f]
    unknown = sorted(set(names) - set(FAULTS))
    if unknown:
        raise SystemExit(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    voice = round(args.citizens * args.voice_share)
    workdir = Path(tempfile.mkdtemp(prefix="1415-faults-"))
    env = {
        "CALLCENTER_RECONCILE_AFTER_S": str(args.reconcile_after),
        "CALLCENTER_SMS_BATCH_SIZE": "100",
        "CALLCENTER_VOICE_CHANNELS": "60",
        "CALLCENTER_VOICE_CPS": "20",
    }
    started = time.monotonic()
    try:
        async with FaultLab.running(
            workdir, sms_citizens=args.citizens - voice, voice_citizens=voice, env=env, time_scale=0.02
        ) as lab:
            _common.note(f"roles ready in {time.monotonic() - started:.1f} s; logs in {workdir / 'logs'}")
            run = Run(lab, args)
            sms = lab.answer_by_sms(concurrency=64)
            run.sms_campaign = await lab.sms_campaign(rate_per_s=args.rate or None)
            run.voice_campaign = await lab.voice_campaign() if voice else run.sms_campaign
            injector = asyncio.create_task(run.faults(names))
            deadline = time.monotonic() + args.timeout
            last, still_since = -1, time.monotonic()
            while time.monotonic() < deadline:
                await asyncio.sleep(2.0)
                try:  # the database may be the fault of the moment
                    if injector.done() and await run.idle():
                        break
                    progress = sms.sent + (await run.snapshot()).voice_answers
                except Exception as exc:  # a fault in progress, not the end of the run
                    _common.note(f"  (not counted now: {type(exc).__name__})")
                    continue
                if progress != last:
                    last, still_since = progress, time.monotonic()
                    _common.note(f"  {sms.sent} replies taken, {len(lab.tail.items)} SMS handed over")
                elif injector.done() and time.monotonic() - still_since > args.patience:
                    _common.note(f"no progress for {args.patience:.0f} s: recounting as it stands")
                    break
            await injector
            await sms.settle(30)
            seconds = time.monotonic() - started
            counted = await lab.recount()
            during = sum(1 for t in sms.acked_at for a, b in run.outages if a <= t <= b)
            result: dict[str, Any] = {
                "citizens": args.citizens,
                "sms_citizens": args.citizens - voice,
                "voice_citizens": voice,
                "replies_sent": sms.sent,
                "answers_recorded": counted.answers_recorded,
                "answers_given": counted.given,
                "lost": counted.lost,
                "duplicated": counted.duplicated,
                "replies_during_db_outage": during,
                "sms_sent_twice": lab.tail.invitations_twice(),
                "recovery_s": run.recovery,
                "faults": run.injected,
                "seconds": round(seconds, 1),
                "replies_retried": sms.retried,
                "retried_because": dict(sms.failures),
                "replies_given_up": len(sms.given_up),
                "messages_stored": counted.messages_stored,
                "sessions_completed": counted.sessions_completed,
                # citizens who never got their next question (their answers so far are counted)
                "sms_citizens_unfinished": sum(c.next < 3 for c in sms.by_phone.values()),
                "dialled_twice": lab.dialled_twice(),
                "sms_campaign": await lab.progress(run.sms_campaign),
                "voice_campaign": await lab.progress(run.voice_campaign) if voice else {},
            }
            if counted.lost or counted.duplicated:
                result["examples"] = {
                    "lost": counted.lost_examples,
                    "duplicated": counted.duplicated_examples,
                }
            return result
    finally:
        if args.keep:
            _common.note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    arguments = _common.parse_args(__doc__ or "", options)
    _common.emit(asyncio.run(main(arguments)))
