"""Pure pieces of call handling: callers' ratings and transfers in the one fold (the wallboard
and the interval report agree on them, and only a whole 1 to 5 is a rating), the transferred
caller's place, pending transfers' ids, and the strict path check of recordings (``../``, a
slash, another extension and a symlink pointing out are all refused)."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from callcenter.desk.call_control import TRANSFER_ID, PendingTransfer, _dump, _load, transfer_place
from callcenter.desk.recordings import NAME, asterisk_file, expired, recording_name, resolve
from callcenter.desk.wallboard import (
    AgentTally,
    QueueTally,
    Thresholds,
    day_bounds,
    fold,
    report_csv,
    report_from,
    tally,
)
from callcenter.routing.config import queue_settings
from callcenter.routing.store import Caller, RoutingEventValue
from callcenter.settings import Settings

TZ = "Africa/Tripoli"
DAY = date(2026, 12, 5)
MIDNIGHT, _ = day_bounds(DAY, TZ)
T = MIDNIGHT + 8 * 3600 + 7 * 60  # 08:07
Q = queue_settings("q", service="q", config={"sl_threshold_s": 20, "short_abandon_s": 5})
LIMITS = {"q": Thresholds(20, 5), "r": Thresholds(20, 5)}


def ev(what: str, at: float, *, agent: str | None = None, queue: str = "q", **data: Any) -> RoutingEventValue:
    return RoutingEventValue(what, T + at, agent=agent, entry=f"e{at:g}", queue=queue, data=data)


RATED = [
    ev("call.rated", 0, agent="a1", rating=5),
    ev("call.rated", 10, agent="a1", rating=4),
    ev("call.rated", 20, agent="a2", rating=2),
    ev("call.rated", 30, agent="a2", rating="3"),  # as JSON may carry it
    ev("call.rated", 40, agent="a2", rating=9),  # not a rating
    ev("call.rated", 50, agent="a2", rating=0),
    ev("call.rated", 60, agent="a2", rating=2.5),
    ev("call.rated", 70, agent="a2", rating=True),
    ev("call.rated", 80, agent="a2", rating=None),
    ev("call.rated", 90, agent="a2", rating="five"),
    ev("call.rated", 900, agent="a1", rating=1),  # 08:22: the next interval
    ev("entry.transferred", 100, agent="a1", to="r", entry="x", waited=30.0),
]


def test_ratings_per_queue_and_agent_are_the_mean_and_count_of_whole_1_to_5_ratings() -> None:
    day = tally(RATED, thresholds=LIMITS, start=MIDNIGHT, end=MIDNIGHT + 86400)
    q = day.queues["q"]
    assert (q.rated, q.rating_total) == (5, 15.0) and q.rating == 3.0
    a1, a2 = day.agents["a1"], day.agents["a2"]
    assert (a1.rated, a1.rating) == (3, pytest.approx(10 / 3))
    assert (a2.rated, a2.rating) == (2, 2.5)
    assert q.transferred == 1 and a1.transferred == 1 and a2.transferred == 0
    assert QueueTally().rating is None and AgentTally().rating is None  # nobody rated: no figure


def test_ratings_add_up_across_intervals_and_the_report_agrees_with_the_day() -> None:
    edges = [MIDNIGHT + 8 * 3600, MIDNIGHT + 8 * 3600 + 900, MIDNIGHT + 8 * 3600 + 1800]
    first, second = fold(RATED, thresholds=LIMITS, edges=edges)
    assert (first.queues["q"].rated, second.queues["q"].rated) == (4, 1)
    whole = tally(RATED, thresholds=LIMITS, start=edges[0], end=edges[-1])
    assert (first + second).queues["q"] == whole.queues["q"]
    report = report_from(RATED, day=DAY, by="queue", timezone=TZ, queues=[Q], now=MIDNIGHT + 86400)
    total = report.totals["q"]
    assert isinstance(total, QueueTally) and (total.rated, total.rating) == (5, 3.0)
    lines = report_csv(report).splitlines()
    assert lines[0].endswith(",ratings,rating_mean,transferred")
    assert lines[1].endswith(",4,3.50,1")  # 08:00-08:15: 5, 4, 2, 3 and the transfer
    by_agent = report_from(RATED, day=DAY, by="agent", timezone=TZ, queues=[Q], now=MIDNIGHT + 86400)
    assert report_csv(by_agent).splitlines()[0].endswith(",missed,ratings,rating_mean,transferred")


def test_a_rating_without_a_queue_or_agent_counts_only_where_it_has_one() -> None:
    events = [RoutingEventValue("call.rated", T, agent=None, entry="e", queue=None, data={"rating": 4})]
    day = tally(events, thresholds=LIMITS, start=MIDNIGHT, end=MIDNIGHT + 86400)
    assert day.queues == {} and day.agents == {}


def test_a_transferred_caller_keeps_the_time_they_waited_not_the_time_they_talked() -> None:
    assert transfer_place(1000.0, 42.0) == 958.0
    assert transfer_place(1000.0, None) == 1000.0  # unknown wait: from now
    assert transfer_place(1000.0, -5.0) == 1000.0  # never ahead of now by a bad figure


def test_a_pending_transfer_round_trips_and_its_id_fits_the_dialplan_pattern() -> None:
    pending = PendingTransfer(
        "0" * 31 + "a", "e1", "7", "general", "services", 958.0,
        Caller("+218912345678", 3, "ar", ("0",), 12, "PJSIP/citizen-00000001", None),
    )  # fmt: skip
    assert _load(_dump(pending)) == pending
    assert TRANSFER_ID.fullmatch(pending.id)
    for bad in ("../x", "0" * 33, "G" * 32, "", "0" * 31 + "\n"):
        assert not TRANSFER_ID.fullmatch(bad)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="test", data_dir=tmp_path / "data", recordings_dir=tmp_path / "recordings")


def test_recording_names_are_entry_ids_only(settings: Settings) -> None:
    assert recording_name("0f3c") == "0f3c.wav"
    for bad in ("../etc/passwd", "a/b", "a.b", "", "x" * 65):
        with pytest.raises(ValueError):
            recording_name(bad)
    assert asterisk_file(settings, "0f3c.wav") == str(settings.recordings_path.absolute() / "0f3c.wav")
    other = settings.model_copy(update={"asterisk_recordings_dir": Path("/var/spool/asterisk/1415")})
    assert asterisk_file(other, "0f3c.wav") == "/var/spool/asterisk/1415/0f3c.wav"
    with pytest.raises(ValueError):
        asterisk_file(settings, "../0f3c.wav")


def test_resolve_refuses_everything_but_a_recording_file_in_the_directory(
    settings: Settings, tmp_path: Path
) -> None:
    base = settings.recordings_path
    base.mkdir(parents=True)
    (base / "good.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (base / "sub").mkdir()
    (base / "sub" / "inner.wav").write_bytes(b"RIFF")
    os.symlink(tmp_path / "secret.wav", base / "link.wav")
    (base / "notes.txt").write_text("x")
    assert resolve(settings, "good.wav") == (base / "good.wav").resolve()
    for bad in ("../secret.wav", "..", "sub/inner.wav", "link.wav", "notes.txt", "missing.wav", "/etc/passwd",
                "good.wav/..", "%2e%2e/secret.wav", "good.WAV.txt", ""):  # fmt: skip
        assert resolve(settings, bad) is None, bad
    assert not NAME.fullmatch("..") and not NAME.fullmatch("../secret.wav")


def test_only_recordings_past_the_retention_time_are_due(settings: Settings) -> None:
    base = settings.recordings_path
    base.mkdir(parents=True)
    now = time.time()
    for name, age_days in (("old.wav", 91), ("new.wav", 1), ("old.txt", 200)):
        path = base / name
        path.write_bytes(b"RIFF")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    assert [p.name for p in expired(base, older_than_s=90 * 86400, now=now)] == ["old.wav"]
    assert expired(base / "absent", older_than_s=1, now=now) == []
