"""Seeing history: the commit graph, commits and semantic diffs as text and HTML, and ``txgit serve``.

Sits above the workspace (it loads values through :class:`txgit.Workspace`) and
below the CLI and the magics, which only display what it builds.
"""

from txgit.visual.diffs import SemanticDiff, ValueDiff, VariableChange, compare_values, semantic_diff
from txgit.visual.views import CommitView, DiffView, LogView

__all__ = ["CommitView", "DiffView", "LogView", "SemanticDiff", "ValueDiff", "VariableChange", "compare_values",
           "semantic_diff"]
