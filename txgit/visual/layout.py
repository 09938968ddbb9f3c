"""Where each commit and each parent edge of a commit graph goes, for drawing it as a picture.

Pure: takes ``[(commit id, parent ids)]`` in display order (newest first,
children before parents, as :meth:`txgit.Workspace.log` returns them) and
returns a commit's row and lane, and for every edge the lane it runs in at each
row down to its parent. Lanes are assigned as in ``txgit log --graph`` (a
commit takes the lane that expects it, its first parent continues there, a
merge's other parents open lanes beside it, lanes close up leftwards), so the
HTML graph and the terminal graph agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    """One commit: its row (0 = top) and lane (0 = left)."""

    id: str
    row: int
    lane: int


@dataclass
class Edge:
    """A line from a commit down to one of its parents.

    ``points``: (row, lane) from the child to the parent, one per row; the lane
    changes where the line bends. ``parent_shown`` is False for a parent outside
    the commits laid out (a log cut by ``-n``): the line runs out at the bottom.
    """

    child: str
    parent: str
    points: list[tuple[int, int]] = field(default_factory=list)
    parent_shown: bool = True


@dataclass
class Layout:
    nodes: list[Node]
    edges: list[Edge]

    @property
    def lanes(self) -> int:
        """How many lanes wide the picture is."""
        used = [n.lane for n in self.nodes] + [lane for e in self.edges for _, lane in e.points]
        return max(used, default=-1) + 1

    @property
    def rows(self) -> int:
        return len(self.nodes)


def layout(commits: Sequence[tuple[str, Sequence[str]]]) -> Layout:
    """Rows, lanes and edge paths of a commit graph (see the module docstring)."""
    ids = [c for c, _ in commits]
    row_of = {c: i for i, c in enumerate(ids)}
    nodes: list[Node] = []
    lanes: list[str] = []  # the commit each lane expects next
    # lane of each expected commit before each row: lanes_before[r][commit] = lane
    lanes_before: list[dict[str, int]] = []
    for commit, parents in commits:
        lanes_before.append({c: i for i, c in enumerate(lanes)})
        if commit in lanes:
            col = lanes.index(commit)
        else:
            lanes.append(commit)
            col = len(lanes) - 1
        nodes.append(Node(commit, len(nodes), col))
        parents = list(dict.fromkeys(parents))
        fresh = parents[:1] + [p for p in parents[1:] if p not in lanes]
        lanes = list(dict.fromkeys(lanes[:col] + fresh + lanes[col + 1:]))
    lanes_before.append({c: i for i, c in enumerate(lanes)})  # below the last row

    edges: list[Edge] = []
    for node, (_, parents) in zip(nodes, commits):
        for parent in dict.fromkeys(parents):
            end = row_of.get(parent)
            shown = end is not None and end > node.row
            last = end if shown else len(nodes)
            points = [(node.row, node.lane)]
            for r in range(node.row + 1, last + 1):
                lane = lanes_before[r].get(parent)
                if lane is None:  # cannot happen for well-ordered input; draw straight rather than fail
                    lane = points[-1][1]
                points.append((r, lane))
            if shown:
                points[-1] = (end, nodes[end].lane)
            edges.append(Edge(node.id, parent, points, shown))
    return Layout(nodes, edges)
