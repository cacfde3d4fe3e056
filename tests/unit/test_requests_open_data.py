"""The open-data export: no personal column exists, dates are days, and rare category ×
municipality cells lose their municipality and body, with enough others that the totals do
not give them away."""

from __future__ import annotations

import csv
import io
from datetime import date

from callcenter.analysis.suppression import find_bridges
from callcenter.requests.open_data import HEADER, Request, anonymise, counts, to_csv


def request(category: str, municipality: str, *, day: int = 1) -> Request:
    return Request(
        category=category, category_ar="فئة", category_en=category.title(), municipality=municipality,
        municipality_ar="بلدية", municipality_en=municipality.title(), body=f"{municipality}_services",
        channel="ivr", status="sent", sla_state="ok", opened_on=date(2026, 3, day),
        first_response_on=None, resolved_on=date(2026, 3, day + 1), closed_on=None,
    )  # fmt: skip


def test_rows_have_no_personal_column_and_dates_are_days() -> None:
    assert not {"phone", "reference", "description", "citizen", "note", "recording"} & set(HEADER)
    data = anonymise([request("water", "benghazi", day=3)] * 6, threshold=5)
    (row, *_) = list(csv.DictReader(io.StringIO(to_csv(data))))
    assert row["opened_on"] == "2026-03-03" and row["resolved_on"] == "2026-03-04" and row["closed_on"] == ""
    assert row["municipality"] == "benghazi" and row["municipality_suppressed"] == "false"


def test_a_rare_cell_is_suppressed_with_a_second_so_the_totals_do_not_give_it_away() -> None:
    requests = (
        [request("water", "benghazi")] * 20 + [request("water", "misrata")] * 2  # rare
        + [request("water", "sirte")] * 9 + [request("lights", "benghazi")] * 30
        + [request("lights", "misrata")] * 8 + [request("lights", "sirte")] * 25
    )  # fmt: skip
    data = anonymise(requests, threshold=5)
    published = counts(data.rows)
    assert ("water", "misrata") not in published  # the rare cell is gone
    assert published[("water", "")] >= 2 + 1  # ... with at least one more of its category
    hidden_rows = [row for row in data.rows if row[6] == "true"]
    assert len(hidden_rows) == data.suppressed and all(row[3:6] == ("", "", "") for row in hidden_rows)
    assert all(row[7] == "" for row in hidden_rows)  # the body would name the municipality
    # every hidden cell lies on a cycle of hidden cells: none is determined by the totals
    cells = sorted({(r.category, r.municipality) for r in requests})
    categories, places = sorted({c for c, _ in cells}), sorted({m for _, m in cells})
    shown = {(row[0], row[3]) for row in data.rows if row[6] == "false"}
    hidden = {(categories.index(c), places.index(m)) for c, m in cells if (c, m) not in shown}
    assert hidden and find_bridges(hidden, len(categories) + 1, len(places) + 1) == set()
    assert len(data.rows) == len(requests)  # nothing dropped: only the place is hidden


def test_nothing_to_export_is_a_header() -> None:
    assert to_csv(anonymise([], threshold=5)) == ",".join(HEADER) + "\n"
