"""Small-cell suppression: primary cells under the threshold, secondary cells so that no
hidden value can be solved for from the published totals, checked by linear algebra."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from callcenter.analysis.suppression import (
    CannotProtect,
    Mark,
    Suppressed,
    SuppressionError,
    find_bridges,
    suppress,
)

Position = tuple[int, int]


def _rank(matrix: list[list[Fraction]]) -> int:
    """Gaussian elimination over the rationals."""
    rows = [row[:] for row in matrix]
    rank = 0
    columns = len(rows[0]) if rows else 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][column] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for r in range(len(rows)):
            if r != rank and rows[r][column] != 0:
                factor = rows[r][column] / rows[rank][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def determined(hidden: set[Position], rows: int, columns: int) -> set[Position]:
    """The hidden entries of the bordered table ((rows+1) x (columns+1), totals last) that the
    published values fix: x_k is determined when the unit vector e_k lies in the row space of
    the equations' coefficients on the hidden entries (rank does not grow when it is added).
    Independent of the module's graph argument."""
    unknowns = sorted(hidden)
    index = {p: k for k, p in enumerate(unknowns)}
    equations: list[list[Fraction]] = []
    for i in range(rows + 1):  # each row of the bordered table: its cells minus its total
        equation = [Fraction(0)] * len(unknowns)
        for j in range(columns + 1):
            if (i, j) in index:
                equation[index[(i, j)]] = Fraction(-1 if j == columns else 1)
        equations.append(equation)
    for j in range(columns + 1):  # and each column
        equation = [Fraction(0)] * len(unknowns)
        for i in range(rows + 1):
            if (i, j) in index:
                equation[index[(i, j)]] = Fraction(-1 if i == rows else 1)
        equations.append(equation)
    base = _rank(equations)
    found = set()
    for k, position in enumerate(unknowns):
        unit = [Fraction(1 if m == k else 0) for m in range(len(unknowns))]
        if _rank([*equations, unit]) == base:
            found.add(position)
    return found


def lines_with_one_hidden(result: Suppressed, rows: int, columns: int) -> list[str]:
    hidden = result.hidden
    bad = [f"row {i}" for i in range(rows + 1) if sum((i, j) in hidden for j in range(columns + 1)) == 1]
    bad += [f"column {j}" for j in range(columns + 1) if sum((i, j) in hidden for i in range(rows + 1)) == 1]
    return bad


def published(result: Suppressed) -> list[list[int | None]]:
    out = [[*row, total] for row, total in zip(result.cells, result.row_totals, strict=True)]
    return [*out, [*result.column_totals, result.total]]


# --- worked examples -------------------------------------------------------------------

TABLE = [
    [20, 3, 15],
    [12, 8, 9],
    [30, 25, 40],
]


def test_a_small_cell_is_hidden_with_the_cheapest_cells_that_protect_it() -> None:
    result = suppress(TABLE)
    assert result.primary == {(0, 1)}
    # the cheapest cycle through (0, 1): 15 and 9 and 8 (costs 16 + 10 + 9) beats any using 20 or 12
    assert result.secondary == {(0, 2), (1, 1), (1, 2)}
    assert result.cells == ((20, None, None), (12, None, None), (30, 25, 40))
    assert (result.row_totals, result.column_totals, result.total) == ((38, 29, 95), (62, 36, 64), 162)
    assert determined(set(result.hidden), 3, 3) == set()
    assert result.mark(0, 1) is Mark.PRIMARY and result.mark(1, 1) is Mark.SECONDARY
    assert result.mark(0, 0) is Mark.SHOWN


def test_without_secondary_suppression_the_cell_would_be_recovered_by_subtraction() -> None:
    assert determined({(0, 1)}, 3, 3) == {(0, 1)}  # 38 - 20 - 15


def test_two_hidden_cells_in_every_line_are_not_always_enough() -> None:
    """Two 2x2 blocks of hidden cells joined by one more: every row and column has two or
    three hidden cells, yet the joining cell is fixed by the totals (its edge is a bridge)."""
    hidden = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)}
    assert determined(hidden, 4, 4) == {(1, 2)}
    assert find_bridges(hidden, 5, 5) == {(1, 2)}
    table = [[2, 2, 9, 9], [2, 2, 2, 9], [9, 9, 2, 2], [9, 9, 2, 2]]
    assert determined(set(suppress(table).hidden), 4, 4) == set()


def test_zeros_are_shown_by_default_and_hidden_when_asked() -> None:
    table = [[0, 10, 12], [7, 11, 13]]
    assert suppress(table).hidden == frozenset()
    hidden_zeros = suppress(table, suppress_zeros=True)
    assert (0, 0) in hidden_zeros.primary
    assert determined(set(hidden_zeros.hidden), 2, 3) == set()


def test_a_table_without_small_cells_is_published_whole() -> None:
    result = suppress([[5, 6], [7, 8]])
    assert result.hidden == frozenset()
    assert published(result) == [[5, 6, 11], [7, 8, 15], [12, 14, 26]]


def test_a_one_row_table_needs_its_column_totals_hidden() -> None:
    result = suppress([[3, 10, 12]])
    assert result.primary == {(0, 0)}
    assert result.cells == ((None, None, 12),)
    assert result.column_totals == (None, None, 12)  # a column total of one row is its cell
    assert result.row_totals == (25,) and result.total == 25
    assert determined(set(result.hidden), 1, 3) == set()


def test_a_one_row_table_cannot_be_protected_when_totals_must_stay() -> None:
    with pytest.raises(CannotProtect) as caught:
        suppress([[3, 10, 12]], allow_total_suppression=False)
    assert caught.value.error_id == "suppression_cannot_protect"
    assert caught.value.details == {"row": 0, "column": 0}


def test_interior_cells_are_preferred_to_totals() -> None:
    result = suppress([[1, 50, 60], [40, 70, 80]])
    assert all(i < 2 and j < 3 for i, j in result.hidden)


def test_the_threshold_is_a_parameter() -> None:
    assert suppress(TABLE, threshold=10).primary == {(0, 1), (1, 1), (1, 2)}
    assert suppress(TABLE, threshold=1).hidden == frozenset()


def test_the_public_form_does_not_say_which_cells_were_primary() -> None:
    result = suppress(TABLE)
    assert "primary" not in result.to_json(with_marks=False)
    assert result.to_json()["primary"] == [[0, 1]]
    assert result.to_json(with_marks=False)["cells"][0] == [20, None, None]


@pytest.mark.parametrize(
    ("table", "threshold"),
    [([], 5), ([[]], 5), ([[1, 2], [3]], 5), ([[1, -2]], 5), ([[1.5, 2]], 5), ([[1, 2]], 0)],
)
def test_tables_that_are_not_counts_are_refused(table: list[list[int]], threshold: int) -> None:
    with pytest.raises(SuppressionError) as caught:
        suppress(table, threshold=threshold)
    assert caught.value.error_id == "suppression_bad_table"


# --- properties ----------------------------------------------------------------------

tables = st.integers(1, 5).flatmap(
    lambda columns: st.lists(
        st.lists(st.integers(0, 12), min_size=columns, max_size=columns), min_size=1, max_size=5
    )
)


@hsettings(max_examples=150, deadline=None)
@given(tables, st.booleans())
def test_no_hidden_value_can_be_solved_for_from_the_published_ones(
    table: list[list[int]], zeros: bool
) -> None:
    rows, columns = len(table), len(table[0])
    result = suppress(table, suppress_zeros=zeros)
    assert determined(set(result.hidden), rows, columns) == set()
    assert lines_with_one_hidden(result, rows, columns) == []


@hsettings(max_examples=150, deadline=None)
@given(tables)
def test_exactly_the_small_cells_are_primary_and_everything_shown_is_true(table: list[list[int]]) -> None:
    rows, columns = len(table), len(table[0])
    result = suppress(table)
    small = {(i, j) for i in range(rows) for j in range(columns) if 0 < table[i][j] < 5}
    assert result.primary == small
    assert not result.primary & result.secondary
    full = [[*row, sum(row)] for row in table]
    full.append([sum(column) for column in zip(*full, strict=True)])
    for i, row in enumerate(published(result)):
        for j, value in enumerate(row):
            assert value == (None if (i, j) in result.hidden else full[i][j])
    assert suppress(table) == result  # deterministic: the screen, the export and the page agree
