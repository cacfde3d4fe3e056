"""The shape of an inquiry as people write it (YAML file, HTTP body), checked with clear errors."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callcenter.inquiry.definition import (
    DefinitionError,
    Inquiry,
    InquiryStatus,
    Option,
    Question,
    QuestionKind,
    Text,
)


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ar: str = Field(min_length=1, max_length=1000)
    en: str = Field(default="", max_length=1000)

    def text(self) -> Text:
        return Text(self.ar.strip(), self.en.strip())


class TitleIn(TextIn):
    """A title: the ``inquiry.title_*`` columns hold 300 characters."""

    ar: str = Field(min_length=1, max_length=300)
    en: str = Field(default="", max_length=300)


class OptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=64)
    ar: str = Field(min_length=1, max_length=200)
    en: str = Field(default="", max_length=200)
    synonyms: list[str] = Field(default_factory=list)


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    kind: QuestionKind
    text: TextIn
    options: list[OptionIn] = Field(default_factory=list)
    min: int | None = None
    max: int | None = None
    retries: int = Field(default=2, ge=0, le=5)
    next: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options_only_for_choice(self) -> QuestionIn:
        if self.options and self.kind is not QuestionKind.CHOICE:
            raise ValueError(f"question {self.key!r}: only choice questions take options")
        return self

    def question(self) -> Question:
        return Question(
            key=self.key,
            kind=self.kind,
            text=self.text.text(),
            options=tuple(Option(o.value, Text(o.ar, o.en), tuple(o.synonyms)) for o in self.options),
            min_value=self.min,
            max_value=self.max,
            retries=self.retries,
            next=dict(self.next),
        )


class InquiryIn(BaseModel):
    """An inquiry definition; ``definition()`` also checks skip targets and ranges."""

    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")
    title: TitleIn
    intro: TextIn | None = None
    thanks: TextIn | None = None
    questions: list[QuestionIn] = Field(min_length=1, max_length=50)
    #: mode switch: who has not answered on one channel within this many hours is contacted
    #: on ``switch_to`` (voice: called; sms: texted)
    switch_after_hours: float | None = Field(default=None, gt=0, le=24 * 30)
    switch_to: Literal["voice", "sms"] | None = None
    #: contacts per citizen for this inquiry, SMS, calls and callbacks together
    max_contacts: int = Field(default=3, ge=1, le=20)
    #: each citizen sees a choice question's options in their own order (order effects)
    randomise_options: bool = False

    @field_validator("slug")
    @classmethod
    def _not_all_digits(cls, slug: str) -> str:
        """The API takes an inquiry's id or its slug in the same place: ``2025`` would be an id."""
        if slug.isdigit():
            raise ValueError("a slug needs at least one letter or dash (all digits reads as an id)")
        return slug

    @model_validator(mode="after")
    def _switch_is_complete(self) -> InquiryIn:
        if (self.switch_after_hours is None) != (self.switch_to is None):
            raise ValueError("give both switch_after_hours and switch_to, or neither")
        return self

    @model_validator(mode="after")
    def _definition_is_sound(self) -> InquiryIn:
        try:
            self.definition()
        except DefinitionError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def definition(self, status: InquiryStatus = InquiryStatus.DRAFT) -> Inquiry:
        default = Inquiry.__dataclass_fields__["thanks"].default
        return Inquiry(
            slug=self.slug,
            title=self.title.text(),
            questions=tuple(q.question() for q in self.questions),
            intro=self.intro.text() if self.intro else Text(""),
            thanks=self.thanks.text() if self.thanks else default,  # type: ignore[arg-type]
            status=status,
            randomise_options=self.randomise_options,
        )


class InquiryFileError(ValueError):
    """A YAML inquiry file that cannot be loaded; the message says where and why."""


def parse_inquiry_yaml(text: str, *, source: str = "<yaml>") -> InquiryIn:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InquiryFileError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InquiryFileError(f"{source}: expected a mapping with slug, title, questions")
    try:
        return InquiryIn.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'inquiry'}: {e['msg']}" for e in exc.errors()
        )
        raise InquiryFileError(f"{source}: {details}") from exc
