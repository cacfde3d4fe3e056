"""The life cycle: which moves exist, who may make them, which the citizen is told of, and a
request bounced between bodies more than twice is flagged to the ministry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.errors import InvalidTransition
from callcenter.requests.lifecycle import (
    CITIZEN,
    MOVES,
    OPEN,
    SYSTEM,
    NotAllowed,
    NoteRequired,
    ReopenTooLate,
    Status,
    after_refusal,
    check,
    moves_for,
)

S = Status
NOW = datetime(2026, 3, 15, 10, tzinfo=UTC)
WINDOW = timedelta(days=14)

ALLOWED = [
    (S.NEW, S.SENT, SYSTEM),
    (S.NEW, S.SENT, "supervisor"),
    (S.SENT, S.ACKNOWLEDGED, "officer"),
    (S.ACKNOWLEDGED, S.IN_PROGRESS, "officer"),
    (S.ACKNOWLEDGED, S.ACTION_SCHEDULED, "officer"),
    (S.ACTION_SCHEDULED, S.IN_PROGRESS, "officer"),
    (S.IN_PROGRESS, S.ACTION_SCHEDULED, "officer"),
    (S.IN_PROGRESS, S.RESOLVED, "officer"),
    (S.SENT, S.RESOLVED, "officer"),
    (S.RESOLVED, S.CLOSED, "officer"),
    (S.RESOLVED, S.CLOSED, SYSTEM),
    (S.SENT, S.NOT_RESPONSIBLE, "officer"),
    (S.IN_PROGRESS, S.NOT_RESPONSIBLE, "officer"),
    (S.NOT_RESPONSIBLE, S.SENT, "supervisor"),
    (S.NOT_RESPONSIBLE, S.SENT, "admin"),
    (S.NOT_RESPONSIBLE, S.CLOSED, "supervisor"),
    (S.SENT, S.DUPLICATE, "officer"),
    (S.DUPLICATE, S.SENT, "supervisor"),
    (S.IN_PROGRESS, S.CLOSED, "supervisor"),
    (S.REOPENED, S.ACKNOWLEDGED, "officer"),
    (S.REOPENED, S.RESOLVED, "officer"),
]

FORBIDDEN_ROLE = [
    (S.SENT, S.ACKNOWLEDGED, "agent"),
    (S.SENT, S.ACKNOWLEDGED, "analyst"),
    (S.SENT, S.ACKNOWLEDGED, "operator"),
    (S.SENT, S.ACKNOWLEDGED, CITIZEN),
    (S.NOT_RESPONSIBLE, S.SENT, "officer"),  # only the ministry re-routes
    (S.NOT_RESPONSIBLE, S.CLOSED, "officer"),
    (S.IN_PROGRESS, S.CLOSED, "officer"),  # an officer closes only what is resolved
    (S.NEW, S.SENT, "officer"),
    (S.RESOLVED, S.CLOSED, CITIZEN),
    (S.IN_PROGRESS, S.RESOLVED, SYSTEM),
]

NO_SUCH_MOVE = [
    (S.NEW, S.RESOLVED),
    (S.NEW, S.ACKNOWLEDGED),
    (S.CLOSED, S.IN_PROGRESS),
    (S.CLOSED, S.SENT),
    (S.DUPLICATE, S.RESOLVED),
    (S.RESOLVED, S.IN_PROGRESS),
    (S.NOT_RESPONSIBLE, S.RESOLVED),
    (S.ACKNOWLEDGED, S.ACKNOWLEDGED),
    (S.SENT, S.REOPENED),
    (S.DUPLICATE, S.DUPLICATE),
]


@pytest.mark.parametrize(("source", "target", "role"), ALLOWED)
def test_allowed_moves(source: Status, target: Status, role: str) -> None:
    note = "why" if target is S.NOT_RESPONSIBLE else ""
    move = check(source, target, role, note=note)
    assert (move.source, move.target) == (source, target)


@pytest.mark.parametrize(("source", "target", "role"), FORBIDDEN_ROLE)
def test_a_role_that_may_not_make_a_move_is_refused(source: Status, target: Status, role: str) -> None:
    with pytest.raises(NotAllowed) as refused:
        check(source, target, role, note="x")
    assert refused.value.status_code == 403


@pytest.mark.parametrize(("source", "target"), NO_SUCH_MOVE)
def test_a_move_that_does_not_exist_is_refused_for_everyone(source: Status, target: Status) -> None:
    for role in ("officer", "supervisor", "admin", SYSTEM, CITIZEN):
        with pytest.raises(InvalidTransition):
            check(source, target, role, note="x")


def test_finished_requests_only_reopen() -> None:
    for (source, target), _roles in MOVES.items():
        if source is S.CLOSED:
            assert target is S.REOPENED
        if source is S.DUPLICATE:
            assert target is S.SENT


def test_public_changes_are_those_the_citizen_hears_of() -> None:
    assert check(S.SENT, S.ACKNOWLEDGED, "officer").public
    assert check(S.IN_PROGRESS, S.RESOLVED, "officer").public
    assert check(S.SENT, S.DUPLICATE, "officer").public
    assert not check(S.NEW, S.SENT, SYSTEM).public
    assert not check(S.SENT, S.NOT_RESPONSIBLE, "officer", note="the water company's").public
    assert not check(S.NOT_RESPONSIBLE, S.SENT, "supervisor").public


def test_what_each_move_does_to_the_clocks_and_the_count() -> None:
    refusal = check(S.SENT, S.NOT_RESPONSIBLE, "officer", note="not ours")
    assert refusal.referral and not refusal.resolved
    ack = check(S.SENT, S.ACKNOWLEDGED, "officer")
    assert ack.responded and not ack.resolved and not ack.referral
    done = check(S.IN_PROGRESS, S.RESOLVED, "officer")
    assert done.responded and done.resolved


def test_refusing_needs_a_note() -> None:
    with pytest.raises(NoteRequired):
        check(S.SENT, S.NOT_RESPONSIBLE, "officer", note="  ")


def test_the_citizen_reopens_within_the_window_only() -> None:
    move = check(
        S.RESOLVED, S.REOPENED, CITIZEN, note="still dark", now=NOW, resolved_at=NOW - timedelta(days=13),
        reopen_window=WINDOW,
    )  # fmt: skip
    assert move.public
    with pytest.raises(ReopenTooLate):
        check(
            S.RESOLVED, S.REOPENED, CITIZEN, note="still dark", now=NOW,
            resolved_at=NOW - timedelta(days=15), reopen_window=WINDOW,
        )  # fmt: skip
    with pytest.raises(ValueError):
        check(S.RESOLVED, S.REOPENED, CITIZEN, note="still dark")
    # an agent reopens for the caller, within the window too; the ministry at any time
    check(S.CLOSED, S.REOPENED, "agent", note="caller", now=NOW, resolved_at=NOW, reopen_window=WINDOW)
    check(S.CLOSED, S.REOPENED, "supervisor", note="audit found it broken")
    with pytest.raises(NoteRequired):
        check(S.RESOLVED, S.REOPENED, CITIZEN, now=NOW, resolved_at=NOW, reopen_window=WINDOW)


def test_moves_for_lists_the_buttons_of_a_role() -> None:
    assert set(moves_for(S.SENT, "officer")) == {
        S.ACKNOWLEDGED, S.IN_PROGRESS, S.ACTION_SCHEDULED, S.RESOLVED, S.NOT_RESPONSIBLE, S.DUPLICATE,
    }  # fmt: skip
    assert moves_for(S.SENT, "analyst") == []
    assert set(moves_for(S.NOT_RESPONSIBLE, "supervisor")) == {S.SENT, S.CLOSED, S.DUPLICATE}


def test_every_open_status_can_be_finished_by_the_ministry() -> None:
    for status in OPEN:
        assert S.CLOSED in moves_for(status, "supervisor")


def test_a_request_bounced_more_than_twice_is_flagged() -> None:
    assert after_refusal(0) == (1, False)
    assert after_refusal(1) == (2, False)
    assert after_refusal(2) == (3, True)
    assert after_refusal(0, max_referrals=0) == (1, True)


def test_unknown_statuses_are_refused() -> None:
    with pytest.raises(ValueError):
        check("lost", S.SENT, "supervisor")
