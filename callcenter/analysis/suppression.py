"""Small-cell suppression of a 2-D table of counts published with its row and column totals.

Pure: values in, values out; the same call serves the screen, the exports and the public
page, so a table is protected the same way wherever it appears.

**Primary suppression**: a cell with ``0 < count < threshold`` (5 by default) is hidden. A
count of 0 is not hidden by default: it names nobody, and hiding every zero would blank out
most of a sparse table. ``suppress_zeros=True`` hides zeros too, for tables where "nobody in
this group said X" is itself sensitive.

**Secondary suppression**: hiding a cell is useless if the totals give it back. With the row
and column totals published, a row with exactly one hidden cell gives it away by
subtraction; so does a subtler pattern where every line has two hidden cells but a hidden
cell is the only link between two groups of them. The exact rule, used here: think of the
table bordered by its totals as one (rows+1) x (columns+1) table in which every row and
every column adds up (the totals with a minus sign), and of the hidden entries as edges of
a bipartite graph between its rows and its columns. The equations of the published values
determine a hidden entry exactly when its edge is a *bridge* of that graph (lies on no
cycle): the null space of a bipartite incidence matrix is spanned by its cycles, so only
edges on a cycle can move while every line keeps its sum. Hence the invariant: **every
hidden entry lies on a cycle of hidden entries**, which implies in particular that no row
or column (totals included) has exactly one hidden entry.

The algorithm is greedy and iterated until stable: while some hidden entry is a bridge,
hide the cheapest path of further entries that closes a cycle through it (a shortest path
by Dijkstra between the bridge's two ends, where hidden entries cost nothing and a visible
cell costs its count plus one, so small cells go first and fewer cells beat more). Totals
are hidden only when no path through the interior cells exists (a table of one row or
one column), and the grand total last; ``allow_total_suppression=False`` refuses instead.
Each step removes a bridge and creates none, so the loop ends.

What this does not do: it protects against exact recovery by linear equations, not against
bounds (a hidden cell's range can still be narrow when its neighbours are small), and it
does not coordinate across several tables cut from the same data. Publish the same table
with the same totals everywhere, and do not say on a public page which hidden cells were
primary.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from callcenter.errors import CallCenterError

DEFAULT_THRESHOLD = 5

Position = tuple[int, int]


class SuppressionError(CallCenterError):
    error_id = "suppression_bad_table"


class CannotProtect(SuppressionError):
    """No way to protect a cell without hiding totals, and hiding totals was not allowed."""

    status_code = 422
    error_id = "suppression_cannot_protect"


class Mark(StrEnum):
    SHOWN = "shown"
    PRIMARY = "primary"  # under the threshold
    SECONDARY = "secondary"  # hidden so that a primary cell cannot be recovered from the totals


@dataclass(frozen=True, slots=True)
class Suppressed:
    """The table to publish: ``None`` where a value is hidden.

    Positions are ``(row, column)`` in the bordered table: ``(i, columns)`` is the total of
    row ``i``, ``(rows, j)`` the total of column ``j`` and ``(rows, columns)`` the grand total.
    """

    cells: tuple[tuple[int | None, ...], ...]
    row_totals: tuple[int | None, ...]
    column_totals: tuple[int | None, ...]
    total: int | None
    primary: frozenset[Position]
    secondary: frozenset[Position]
    threshold: int

    @property
    def hidden(self) -> frozenset[Position]:
        return self.primary | self.secondary

    def mark(self, row: int, column: int) -> Mark:
        if (row, column) in self.primary:
            return Mark.PRIMARY
        if (row, column) in self.secondary:
            return Mark.SECONDARY
        return Mark.SHOWN

    def to_json(self, *, with_marks: bool = True) -> dict[str, Any]:
        """Plain data; ``with_marks=False`` for a public page (which hidden cells were primary
        narrows them down)."""
        data: dict[str, Any] = {
            "cells": [list(row) for row in self.cells],
            "row_totals": list(self.row_totals),
            "column_totals": list(self.column_totals),
            "total": self.total,
            "threshold": self.threshold,
        }
        if with_marks:
            data["primary"] = sorted(list(p) for p in self.primary)
            data["secondary"] = sorted(list(p) for p in self.secondary)
        return data


def suppress(
    table: Sequence[Sequence[int]],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    suppress_zeros: bool = False,
    allow_total_suppression: bool = True,
) -> Suppressed:
    """Hide the cells under ``threshold`` and enough others that none can be recovered from
    the published totals (see the module docstring)."""
    rows, columns = _check(table, threshold)
    bordered = _bordered(table)
    primary = {
        (i, j)
        for i in range(rows)
        for j in range(columns)
        if table[i][j] < threshold and (table[i][j] > 0 or suppress_zeros)
    }
    hidden = set(primary)
    while True:
        bridges = find_bridges(hidden, rows + 1, columns + 1)
        if not bridges:
            break
        bridge = min(bridges)
        path = _cheapest_path(bridge, hidden, bordered, rows, columns, allow_total_suppression)
        if path is None:
            raise CannotProtect(
                f"the cell {bridge} can only be protected by hiding totals",
                row=bridge[0],
                column=bridge[1],
            )
        hidden.update(path)
    secondary = hidden - primary

    def shown(i: int, j: int) -> int | None:
        return None if (i, j) in hidden else bordered[i][j]

    return Suppressed(
        cells=tuple(tuple(shown(i, j) for j in range(columns)) for i in range(rows)),
        row_totals=tuple(shown(i, columns) for i in range(rows)),
        column_totals=tuple(shown(rows, j) for j in range(columns)),
        total=shown(rows, columns),
        primary=frozenset(primary),
        secondary=frozenset(secondary),
        threshold=threshold,
    )


def find_bridges(hidden: set[Position] | frozenset[Position], rows: int, columns: int) -> set[Position]:
    """The hidden entries that lie on no cycle of hidden entries (Tarjan's bridge-finding, on
    the bipartite graph of row nodes ``0..rows-1`` and column nodes ``rows..rows+columns-1``):
    exactly those the published values determine."""
    adjacent: dict[int, list[tuple[int, Position]]] = {}
    for i, j in hidden:
        adjacent.setdefault(i, []).append((rows + j, (i, j)))
        adjacent.setdefault(rows + j, []).append((i, (i, j)))
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    bridges: set[Position] = set()
    for root in sorted(adjacent):
        if root in order:
            continue
        order[root] = low[root] = len(order)
        # iterative DFS: (node, the edge we came by, iterator over its neighbours)
        stack: list[tuple[int, Position | None, Iterator[tuple[int, Position]]]] = [
            (root, None, iter(adjacent[root]))
        ]
        while stack:
            node, via, neighbours = stack[-1]
            advanced = False
            for other, edge in neighbours:
                if edge == via:
                    continue
                if other in order:
                    low[node] = min(low[node], order[other])
                else:
                    order[other] = low[other] = len(order)
                    stack.append((other, edge, iter(adjacent[other])))
                    advanced = True
                    break
            if advanced:
                continue
            stack.pop()
            if stack:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[node])
                if low[node] > order[parent]:
                    assert via is not None
                    bridges.add(via)
    return bridges


def _check(table: Sequence[Sequence[int]], threshold: int) -> tuple[int, int]:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise SuppressionError(f"threshold must be a positive count, not {threshold!r}", threshold=threshold)
    rows = len(table)
    columns = len(table[0]) if rows else 0
    if rows == 0 or columns == 0:
        raise SuppressionError("the table is empty")
    for i, row in enumerate(table):
        if len(row) != columns:
            raise SuppressionError(f"row {i} has {len(row)} cells, not {columns}", row=i)
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SuppressionError(f"cell ({i}, {j}) is not a count: {value!r}", row=i, column=j)
    return rows, columns


def _bordered(table: Sequence[Sequence[int]]) -> list[list[int]]:
    """The table with its row totals as a last column and its column totals as a last row."""
    out = [[*row, sum(row)] for row in table]
    out.append([sum(column) for column in zip(*out, strict=True)])
    return out


def _cheapest_path(
    bridge: Position,
    hidden: set[Position],
    bordered: list[list[int]],
    rows: int,
    columns: int,
    allow_totals: bool,
) -> list[Position] | None:
    """The visible entries to hide so that ``bridge`` lies on a cycle: the cheapest path from
    its row to its column not using it (Dijkstra on rows ``0..rows`` and columns
    ``0..columns`` of the bordered table)."""
    interior = sum(bordered[rows][:columns]) + rows * columns + 1  # more than any interior path
    margin_cost = interior * (rows + columns + 3)  # more than any path through one total more

    def cost(i: int, j: int) -> int | None:
        if (i, j) in hidden:
            return 0
        if i < rows and j < columns:
            return bordered[i][j] + 1
        if not allow_totals:
            return None
        if i == rows and j == columns:
            return margin_cost * (rows + columns + 3)
        return margin_cost + bordered[i][j]

    # nodes: ("r", i) for i in 0..rows, ("c", j) for j in 0..columns
    start, goal = ("r", bridge[0]), ("c", bridge[1])
    best: dict[tuple[str, int], int] = {start: 0}
    back: dict[tuple[str, int], tuple[tuple[str, int], Position]] = {}
    queue: list[tuple[int, tuple[str, int]]] = [(0, start)]
    done: set[tuple[str, int]] = set()
    while queue:
        distance, node = heapq.heappop(queue)
        if node in done:
            continue
        done.add(node)
        if node == goal:
            break
        kind, index = node
        for other_index in range((columns if kind == "r" else rows) + 1):
            position = (index, other_index) if kind == "r" else (other_index, index)
            if position == bridge:
                continue
            step = cost(*position)
            if step is None:
                continue
            other = ("c" if kind == "r" else "r", other_index)
            if distance + step < best.get(other, distance + step + 1):
                best[other] = distance + step
                back[other] = (node, position)
                heapq.heappush(queue, (distance + step, other))
    if goal not in done:
        return None
    path: list[Position] = []
    node = goal
    while node != start:
        node, position = back[node]
        if position not in hidden:
            path.append(position)
    return path
