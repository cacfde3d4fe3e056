"""What an inquiry is, as plain immutable values: the input of the pure engine.

The database rows (``models.Inquiry`` / ``models.Question``) and YAML files are both
turned into these; the engine never sees an ORM object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Language = Literal["ar", "en"]
LANGUAGES: tuple[Language, ...] = ("ar", "en")


class QuestionKind(StrEnum):
    CHOICE = "choice"
    RATING = "rating"
    YES_NO = "yes_no"
    NUMBER = "number"
    TEXT = "text"


class InquiryStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CLOSED = "closed"


#: Allowed status moves; anything else is refused with a clear error.
STATUS_MOVES: dict[InquiryStatus, frozenset[InquiryStatus]] = {
    InquiryStatus.DRAFT: frozenset({InquiryStatus.SCHEDULED, InquiryStatus.RUNNING, InquiryStatus.CLOSED}),
    InquiryStatus.SCHEDULED: frozenset({InquiryStatus.DRAFT, InquiryStatus.RUNNING, InquiryStatus.CLOSED}),
    InquiryStatus.RUNNING: frozenset({InquiryStatus.PAUSED, InquiryStatus.CLOSED}),
    InquiryStatus.PAUSED: frozenset({InquiryStatus.RUNNING, InquiryStatus.CLOSED}),
    InquiryStatus.CLOSED: frozenset(),
}


class DefinitionError(ValueError):
    """An inquiry definition that cannot run (bad kind, dangling skip target, ...)."""


@dataclass(frozen=True, slots=True)
class Text:
    """A text in Arabic and English; English falls back to Arabic when missing."""

    ar: str
    en: str = ""

    def get(self, language: Language) -> str:
        return self.en if language == "en" and self.en else self.ar


@dataclass(frozen=True, slots=True)
class Option:
    """One choice of a choice question: its stored value, its labels, extra words."""

    value: str
    label: Text
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    kind: QuestionKind
    text: Text
    options: tuple[Option, ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    retries: int = 2
    #: skip logic: answer value -> key of the next question ("end" finishes); "*" = any other
    next: dict[str, str] = field(default_factory=dict)
    id: int | None = None  # database id, when loaded from the database
    #: the options as one citizen sees them, when their order is randomised (inquiry/order.py):
    #: the 1-based positions in the definition, in the order shown; None: as defined
    order: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind is QuestionKind.CHOICE and not self.options:
            raise DefinitionError(f"question {self.key!r}: a choice question needs options")
        if self.kind is QuestionKind.RATING:
            lo, hi = self.bounds
            if lo >= hi:
                raise DefinitionError(f"question {self.key!r}: rating range {lo}..{hi} is empty")
        if self.retries < 0:
            raise DefinitionError(f"question {self.key!r}: retries must be >= 0")

    @property
    def bounds(self) -> tuple[int, int]:
        """(min, max) of a rating or number question (rating defaults to 1..5)."""
        if self.kind is QuestionKind.RATING:
            return (
                self.min_value if self.min_value is not None else 1,
                self.max_value if self.max_value is not None else 5,
            )
        return (
            self.min_value if self.min_value is not None else -(10**9),
            self.max_value if self.max_value is not None else 10**9,
        )


@dataclass(frozen=True, slots=True)
class Inquiry:
    slug: str
    title: Text
    questions: tuple[Question, ...]
    intro: Text = Text("")
    thanks: Text = Text("شكراً لمشاركتكم.", "Thank you for taking part.")
    status: InquiryStatus = InquiryStatus.DRAFT
    id: int | None = None
    #: each citizen sees a choice question's options in their own order (inquiry/order.py)
    randomise_options: bool = False

    def __post_init__(self) -> None:
        if not self.questions:
            raise DefinitionError(f"inquiry {self.slug!r} has no questions")
        keys = [q.key for q in self.questions]
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"inquiry {self.slug!r}: question keys repeat")
        known = set(keys) | {"end"}
        for q in self.questions:
            for target in q.next.values():
                if target not in known:
                    raise DefinitionError(f"question {q.key!r}: skip target {target!r} is not a question")

    def question(self, key: str) -> Question:
        for q in self.questions:
            if q.key == key:
                return q
        raise KeyError(key)

    @property
    def first(self) -> Question:
        return self.questions[0]
