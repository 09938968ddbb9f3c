"""A commit graph as text lanes, the way ``git log --graph`` draws it.

Pure: it takes ``[(commit id, parent ids)]`` in display order (newest first,
children before parents) and returns rows of lane drawing; the caller puts the
commit's text beside each commit row. Knows nothing of workspaces or rich.

    * c3 merge           <- commit row
    |\\                   <- connector rows: lanes fork, join or shift
    | * c2 on exp
    * | c1 on main
    |/
    * c0 root
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COMMIT, LANE, LEFT, RIGHT = "*", "|", "/", "\\"


@dataclass(frozen=True)
class GraphRow:
    """One line of graph. ``commit`` is set on commit rows, None on connector rows.

    ``continuation``: on commit rows, the lanes to draw before further lines of
    the same commit's text (author, message…), so they line up with the graph.
    """

    graph: str
    commit: str | None = None
    continuation: str = ""


def _lanes_row(cells: dict[int, str]) -> str:
    """Characters at lane positions (lane i at column 2*i), right-stripped."""
    if not cells:
        return ""
    width = max(cells) + 1
    return "".join(cells.get(i, " ") for i in range(width)).rstrip()


def render_graph(commits: Sequence[tuple[str, Sequence[str]]]) -> list[GraphRow]:
    """Lay commits out in lanes: one commit row each, plus connector rows where lanes move.

    Each lane holds the id of the commit expected next in it. A commit takes the
    lane that expects it (a new lane at the right when none does, e.g. a branch
    tip); its first parent continues in that lane, further parents (merges) open
    lanes right beside it unless a lane already expects them. Lanes that come to
    expect the same commit join, and lanes close up leftwards when one ends.
    Parents missing from ``commits`` (a log cut by ``-n``) simply leave their lane open.
    """
    rows: list[GraphRow] = []
    lanes: list[str] = []
    for commit, parents in commits:
        if commit in lanes:
            col = lanes.index(commit)
        else:
            lanes.append(commit)
            col = len(lanes) - 1
        rows.append(GraphRow(
            graph=_lanes_row({2 * i: (COMMIT if i == col else LANE) for i in range(len(lanes))}),
            commit=commit,
            continuation=_lanes_row({2 * i: LANE for i in range(len(lanes)) if i != col or parents}),
        ))

        # The next lanes: the commit's lane goes on with its parents; then join duplicates.
        # A first parent that another lane expects too joins the leftmost of them;
        # a merge's other parents open lanes only when no lane expects them yet.
        parents = list(dict.fromkeys(parents))
        fresh = parents[:1] + [p for p in parents[1:] if p not in lanes]
        expanded = lanes[:col] + fresh + lanes[col + 1:]
        new_lanes = list(dict.fromkeys(expanded))
        position = {c: i for i, c in enumerate(new_lanes)}
        # Edges from each old lane position to its new position (several from a merge).
        edges: list[list[int]] = []  # [current position, target]
        for i, c in enumerate(lanes):
            if i == col:
                edges.extend([i, position[p]] for p in parents)
            else:
                edges.append([i, position[c]])
        lanes = new_lanes
        rows.extend(_connectors(edges))
    return rows


def _connectors(edges: list[list[int]]) -> list[GraphRow]:
    """Rows that move each edge one lane per row toward its target; none when all go straight down.

    Where an edge going left would share its cell with one going right
    (``\\`` and ``/`` in one character, hiding a line), it waits a row.
    """
    out: list[GraphRow] = []
    while any(pos != target for pos, target in edges):
        cells: dict[int, str] = {}
        for edge in sorted(edges, key=lambda e: (e[1] <= e[0], e[1] < e[0])):  # right-movers first
            pos, target = edge
            if target > pos:
                cells.setdefault(2 * pos + 1, RIGHT)
                edge[0] += 1
            elif target < pos and cells.get(2 * pos - 1, LEFT) == LEFT:
                cells[2 * pos - 1] = LEFT
                edge[0] -= 1
            else:
                cells.setdefault(2 * pos, LANE)
        out.append(GraphRow(graph=_lanes_row(cells)))
    return out
