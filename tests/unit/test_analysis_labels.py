"""Labels cut to SPSS's and Stata's limits on a letter boundary; names the formats accept;
the margins file parser; the server-drawn charts read right to left in Arabic."""

from __future__ import annotations

import re
import unicodedata

import pytest

from callcenter.analysis import labels
from callcenter.analysis.margins import MarginFileError, NoMargin, Table, parse, plan
from callcenter.web.charts import Bar, bars, with_id

QUESTION = "هل أنتَ راضٍ عن أعمالِ صيانةِ الطرقِ في بلديتك؟ " * 12  # ~600 bytes, with harakat


def test_a_label_that_fits_is_kept_whole() -> None:
    assert labels.fit("نعم", max_bytes=labels.SAV_VALUE_LABEL) == "نعم"


@pytest.mark.parametrize("limit", range(20, 260, 7))
def test_an_arabic_label_is_cut_within_the_byte_limit_on_a_letter_boundary(limit: int) -> None:
    cut = labels.fit(QUESTION, max_bytes=limit)
    data = cut.encode("utf-8")
    assert len(data) <= limit
    assert data.decode("utf-8") == cut  # never a broken UTF-8 sequence
    body = cut.removesuffix(labels.ELLIPSIS)
    assert QUESTION.strip().startswith(body)
    following = QUESTION.strip()[len(body)]
    # the next character is never a mark of the last kept letter
    assert not unicodedata.combining(following)


def test_stata_counts_characters() -> None:
    cut = labels.fit(QUESTION, max_chars=labels.DTA_VARIABLE_LABEL)
    assert len(cut) <= 80 and cut.endswith(labels.ELLIPSIS)


def test_a_tiny_limit_gives_the_mark_or_nothing() -> None:
    assert labels.fit(QUESTION, max_bytes=3) == labels.ELLIPSIS
    assert labels.fit(QUESTION, max_bytes=2) == ""


def test_variable_names_are_valid_and_unique() -> None:
    taken: list[str] = []
    for key in ("q1", "1st", "with", "رضا", "q1", "a b-c", "x" * 80):
        name = labels.variable_name(key, taken, limit=labels.DTA_NAME)
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name), name
        assert name.casefold() not in {t.casefold() for t in taken}
        taken.append(name)
    assert taken[:3] == ["q1", "q_1st", "q_with"]


def _places(name: str) -> str | None:
    return {"tripoli": "tripoli", "طرابلس": "tripoli", "misrata": "misrata"}.get(name)


def test_a_margins_file_with_arabic_headers_digits_and_names() -> None:
    table = parse(
        "\ufeffالبلدية;السكان\nطرابلس;١٢٠٠\nmisrata;800.5\n", municipality=_places, district=lambda _: None
    )
    assert table.variables == ("municipality",) and table.cells == {("tripoli",): 1200, ("misrata",): 800.5}


def test_every_problem_of_a_bad_file_is_reported_with_its_line() -> None:
    with pytest.raises(MarginFileError) as caught:
        parse(
            "municipality,population\nnowhere,1\ntripoli,x\ntripoli,1\ntripoli,2\n",
            municipality=_places,
            district=lambda _: None,
        )
    assert [p.line for p in caught.value.problems] == [2, 3, 5]


def test_the_plan_post_stratifies_on_a_full_table_and_rakes_on_margins() -> None:
    cross = Table(("district", "language"), {("w", "ar"): 5, ("w", "en"): 1, ("s", "ar"): 4})
    municipality = Table(("municipality",), {("tripoli",): 3, ("sabha",): 1})
    assert plan(("language", "district"), [cross, municipality]).method == "post_stratification"
    raking = plan(("municipality", "language"), [cross, municipality])
    assert raking.method == "raking" and raking.margins["language"] == {"ar": 9, "en": 1}
    assert raking.sources == {"municipality": "municipality", "language": "district,language"}
    with pytest.raises(NoMargin):
        plan(("municipality", "district"), [municipality])


def test_bars_read_right_to_left_in_arabic_and_left_to_right_in_english() -> None:
    items = [Bar("نعم", 0.6, 0.5, 0.7, "60.0%"), Bar("لا", 0.4, 0.3, 0.5, "40.0%"), Bar("—", None)]
    arabic = str(with_id(bars(items, title="هل أنت راضٍ؟", rtl=True, width=600), "c1"))
    english = str(with_id(bars(items, title="Satisfied?", rtl=False, width=600), "c1"))
    assert 'direction="rtl"' in arabic and 'id="c1-t"' in arabic
    # the Arabic labels are real text, in reading order, at the right-hand edge
    assert arabic.index(">نعم<") < arabic.index(">لا<")
    label = re.search(r'<text class="chart__label" x="([\d.]+)"[^>]*text-anchor="start"[^>]*>نعم<', arabic)
    assert label is not None and float(label.group(1)) > 500
    # bars grow from the right in Arabic, from the left in English
    rtl_bar = re.search(r'<rect class="chart__bar" x="([\d.]+)"[^>]*width="([\d.]+)"', arabic)
    ltr_bar = re.search(r'<rect class="chart__bar" x="([\d.]+)"[^>]*width="([\d.]+)"', english)
    assert rtl_bar and ltr_bar
    assert float(rtl_bar.group(1)) + float(rtl_bar.group(2)) == pytest.approx(600 - 190)
    assert float(ltr_bar.group(1)) == pytest.approx(190)
    assert "<script" not in arabic and "style=" not in arabic
