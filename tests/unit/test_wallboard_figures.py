"""The wallboard's figures from a hand-made event log: the service level formula (short abandons
apart), ASA, AHT with wrap-up, callbacks, time paused cut at the windows' edges, staffing now —
and the live wallboard and the 15-minute report agreeing on the same events."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from callcenter.desk.wallboard import (
    QueueTally,
    Thresholds,
    day_bounds,
    fold,
    report_csv,
    report_from,
    tally,
    wallboard_from,
)
from callcenter.routing import AgentState, Entry
from callcenter.routing.config import queue_settings, skills_from_list
from callcenter.routing.model import Agent
from callcenter.routing.staffing import agents_needed
from callcenter.routing.store import AgentRecord, Caller, RoutingEventValue, Snapshot, Waiting

TZ = "Africa/Tripoli"
DAY = date(2026, 12, 5)
MIDNIGHT, _ = day_bounds(DAY, TZ)
T = MIDNIGHT + 8 * 3600 + 7 * 60  # 08:07, within the 08:00 interval
Q = queue_settings("q", service="q", config={"sl_threshold_s": 20, "short_abandon_s": 5, "sl_target": 0.8})
LIMITS = {"q": Thresholds(sl_threshold_s=20, short_abandon_s=5)}


def ev(
    what: str, at: float, *, entry: str | None = None, agent: str | None = None, **data: Any
) -> RoutingEventValue:
    return RoutingEventValue(what, T + at, agent=agent, entry=entry, queue="q", data=data)


def state(
    agent: str, at: float, before: str, after: str, entry: str | None = None, **data: Any
) -> RoutingEventValue:
    return ev("agent.state", at, agent=agent, entry=entry, **({"from": before, "to": after} | data))


#: e1 answered within 20 s; e2 hangs up after 3 s (a short abandon); e3 after 40 s; e4 answered
#: after 50 s; e5 books a callback after 60 s, served later; e6 finds the queue full. Agent a1
#: takes e1 (60 s talk, 30 s wrap-up) and the callback e5 (60 s), misses a call and pauses
#: 600 s across 08:15; a2 takes e4 (120 s talk, 10 s wrap-up).
EVENTS = [
    state("a1", -600, "offline", "ready"),
    state("a2", -600, "offline", "ready"),
    ev("entry.queued", 0, entry="e1", kind="call"),
    ev("entry.queued", 5, entry="e2", kind="call"),
    ev("entry.left", 8, entry="e2", reason="abandoned", waited=3.0, kind="call"),
    ev("entry.offered", 10, entry="e1", agent="a1", kind="call", waited=10.0, level=1),
    state("a1", 10, "ready", "reserved", "e1"),
    state("a1", 12, "reserved", "on_call", "e1"),
    ev("entry.connected", 12, entry="e1", agent="a1", waited=12.0),
    ev("entry.queued", 20, entry="e3", kind="call"),
    ev("entry.queued", 30, entry="e4", kind="call"),
    ev("entry.queued", 40, entry="e5", kind="call"),
    ev("entry.refused", 50, entry="e6", reason="full", outcome="callback"),
    ev("entry.left", 60, entry="e3", reason="abandoned", waited=40.0, kind="call"),
    ev("entry.ended", 72, entry="e1", agent="a1"),
    state("a1", 72, "on_call", "wrap_up", "e1"),
    state("a2", 78, "ready", "reserved", "e4"),
    ev("entry.connected", 80, entry="e4", agent="a2", waited=50.0),
    state("a2", 80, "reserved", "on_call", "e4"),
    ev("entry.callback", 100, entry="e5", callback=7, waited=60.0),
    state("a1", 102, "wrap_up", "ready", "e1", disposition="resolved"),
    ev("entry.ended", 200, entry="e4", agent="a2"),
    state("a2", 200, "on_call", "wrap_up", "e4"),
    state("a2", 210, "wrap_up", "ready", "e4", disposition="resolved"),
    ev("entry.offered", 290, entry="e5", agent="a1", kind="callback", waited=250.0, level=1),
    state("a1", 290, "ready", "reserved", "e5"),
    ev("entry.connected", 300, entry="e5", agent="a1", waited=260.0),
    state("a1", 300, "reserved", "on_call", "e5"),
    ev("entry.ended", 360, entry="e5", agent="a1"),
    state("a1", 360, "on_call", "wrap_up", "e5"),
    state("a1", 370, "wrap_up", "ready", "e5", disposition="resolved"),
    ev("entry.missed", 380, entry="e7", agent="a1", reason="no_answer"),
    state("a1", 380, "ready", "missed", "e7"),
    state("a1", 400, "missed", "paused", reason="break"),
    state("a1", 1000, "paused", "ready"),
]


def test_the_figures_of_a_hand_made_log() -> None:
    q = tally(EVENTS, thresholds=LIMITS, start=MIDNIGHT, end=T + 2000).queues["q"]
    assert (q.offered, q.refused) == (6, 1)  # five callers queued and one refused
    assert (q.answered, q.answered_within) == (2, 1)  # the callback is not an answered call
    assert (q.abandoned, q.short_abandoned) == (1, 1)
    assert (q.callbacks, q.callbacks_connected) == (1, 1)
    # service level: within 20 s over answered plus abandoned after 5 s (the 3 s hang-up apart)
    assert q.service_level == pytest.approx(1 / 3)
    assert q.abandon_rate == pytest.approx(1 / 3)
    assert q.asa == pytest.approx((12 + 50) / 2)
    # handling: talk 60 + 120 + 60, wrap-up 30 + 10 + 10, over three calls handled
    assert q.handled == 3 and q.talk == pytest.approx(240) and q.wrap == pytest.approx(50)
    assert q.aht == pytest.approx(290 / 3)
    # patience: every wait (answered 12 + 50, abandoned 3 + 40, callback 60) over two abandons
    assert q.patience == pytest.approx(165 / 2)


def test_agents_figures_and_time_paused_cut_at_the_edges() -> None:
    day = tally(EVENTS, thresholds=LIMITS, start=MIDNIGHT, end=T + 2000)
    a1, a2 = day.agents["a1"], day.agents["a2"]
    assert (a1.handled, a1.talk, a1.wrap, a1.missed) == pytest.approx((2, 120, 40, 1))
    assert (a2.handled, a2.talk, a2.wrap, a2.missed) == pytest.approx((1, 120, 10, 0))
    assert a1.paused == pytest.approx(600) and a2.paused == 0
    quarter = MIDNIGHT + 8 * 3600 + 15 * 60  # the pause (08:13:47 to 08:23:47) spans 08:15
    before, after = fold(EVENTS, thresholds=LIMITS, edges=(MIDNIGHT, quarter, T + 2000))
    assert before.agents["a1"].paused == pytest.approx(quarter - (T + 400))
    assert after.agents["a1"].paused == pytest.approx(T + 1000 - quarter)
    # a pause still going on counts up to the end of the window
    still = tally(EVENTS[:-1], thresholds=LIMITS, start=MIDNIGHT, end=T + 700)
    assert still.agents["a1"].paused == pytest.approx(300)


def test_events_before_the_window_are_context_never_counted() -> None:
    later = tally(EVENTS, thresholds=LIMITS, start=T + 70, end=T + 2000).queues["q"]
    assert later.offered == 0 and later.refused == 0  # every caller came before the window
    assert later.answered == 1 and later.abandoned == 0  # e4, connected at 80 s
    assert later.handled == 3 and later.talk == pytest.approx(240)  # connected before: still known
    assert later.wrap == pytest.approx(50)


def test_the_wallboard_and_the_report_agree_on_the_same_events() -> None:
    now = T + 2000
    report = report_from(EVENTS, day=DAY, by="queue", timezone=TZ, queues=[Q], now=now)
    assert [(r.start - MIDNIGHT) / 900 for r in report.rows] == [32]  # every call in 08:00–08:15
    summed = QueueTally()
    for row in report.rows:
        assert row.queue is not None
        summed = summed + row.queue
    snap = Snapshot(now, (Q,), {}, {}, {}, {}, {})
    board = wallboard_from(snap, EVENTS, queues=[Q], day_start=MIDNIGHT)
    (line,) = board.queues
    for name in ("offered", "answered", "answered_within", "abandoned", "short_abandoned", "handled"):
        assert getattr(line.today, name) == getattr(summed, name) == getattr(report.totals["q"], name), name
    for name in ("service_level", "asa", "aht", "abandon_rate", "talk", "wrap"):
        assert getattr(line.today, name) == pytest.approx(getattr(summed, name)), name
    agents = report_from(EVENTS, day=DAY, by="agent", timezone=TZ, queues=[Q], now=now, names={"a1": "Amal"})
    assert [(r.subject, (r.start - MIDNIGHT) / 900) for r in agents.rows] == [
        ("a1", 32), ("a1", 33), ("a2", 32),
    ]  # fmt: skip
    assert {k: (v.handled, round(v.paused)) for k, v in agents.totals.items()} == {  # type: ignore[union-attr]
        "a1": (2, 600),
        "a2": (1, 0),
    }
    text = report_csv(agents)
    assert text.splitlines()[0].startswith("agent,name,interval_start")
    assert "a1,Amal,2026-12-05 08:00,2026-12-05 08:15,2," in text
    queue_csv = report_csv(report).splitlines()
    assert queue_csv[1].startswith("q,2026-12-05 08:00,2026-12-05 08:15,6,2,1,1,1,1,0.3333,31.0,")


def test_staffing_now_uses_erlang_a_once_callers_abandon_and_counts_the_staffed() -> None:
    now = T + 2000
    expert = skills_from_list([["service", "q", 1]])
    other = skills_from_list([["service", "elsewhere", 1]])
    agents = {
        "a1": AgentRecord(Agent("a1", AgentState.READY, expert, since=now - 5)),
        "a2": AgentRecord(Agent("a2", AgentState.ON_CALL, expert, since=now - 50)),
        "a3": AgentRecord(Agent("a3", AgentState.PAUSED, expert, since=now - 9, pause_reason="break")),
        "a4": AgentRecord(Agent("a4", AgentState.READY, other, since=now - 1)),
    }
    waiting = {"w1": Waiting(Entry("w1", "q", now - 42), Caller())}
    snap = Snapshot(now, (Q,), agents, waiting, {}, {}, {})
    board = wallboard_from(snap, EVENTS, queues=[Q], day_start=MIDNIGHT, callbacks={"q": (2, now - 300)})
    (line,) = board.queues
    assert line.waiting == 1 and line.longest_wait == pytest.approx(42)
    assert line.callbacks_pending == 2 and line.oldest_callback == pytest.approx(300)
    staffing = line.staffing
    assert staffing.staffed == 2  # ready and on a call, serving the queue (not paused, not elsewhere)
    # the last 60 minutes saw 6 callers, the last 15 none: the higher rate is 6 an hour
    assert staffing.arrivals_per_hour == pytest.approx(6)
    assert staffing.model == "erlang_a" and staffing.patience == pytest.approx(82.5)
    assert staffing.needed == agents_needed(
        arrival_rate=6 / 3600, aht=290 / 3, target_sl=0.8, threshold_s=20, patience=82.5
    )
    assert board.by_state == {"ready": 2, "on_call": 1, "paused": 1} and board.staffed == 3
    assert [a.pause_reason for a in board.agents if a.state == "paused"] == ["break"]


def test_without_abandons_staffing_is_erlang_c_and_without_handling_time_it_is_unknown() -> None:
    now = T + 2000
    answered_only = [e for e in EVENTS if e.kind != "entry.left"]
    snap = Snapshot(now, (Q,), {}, {}, {}, {}, {})
    (line,) = wallboard_from(snap, answered_only, queues=[Q], day_start=MIDNIGHT).queues
    assert line.staffing.model == "erlang_c" and line.staffing.patience is None
    assert line.staffing.needed == agents_needed(
        arrival_rate=6 / 3600, aht=290 / 3, target_sl=0.8, threshold_s=20
    )
    quiet = [e for e in EVENTS if e.kind in ("entry.queued",)]
    (line,) = wallboard_from(snap, quiet, queues=[Q], day_start=MIDNIGHT).queues
    assert line.staffing.aht is None and line.staffing.needed is None
    assert line.today.service_level is None and line.today.asa is None  # nothing to divide
