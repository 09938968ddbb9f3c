"""The lane graph now lives in :mod:`txgit.visual.graph` (the notebook and web views draw it too)."""

from txgit.visual.graph import COMMIT, LANE, LEFT, RIGHT, GraphRow, render_graph  # noqa: F401
