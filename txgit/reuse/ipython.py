"""Reuse in a kernel: ``%txgit reuse on`` (or ``TXGIT_REUSE=1`` in the kernel's environment).

Before each cell (after the session's own ``pre_run_cell``, which computed
the cell's lookup key), :class:`txgit.reuse.Reuser` looks for a recorded run
and loads its results. If it found one, an AST transformer swaps the cell's
body for a call that puts them in the namespace and replays the output
(what it printed, what it passed to ``display()``, its value), so
the cell's code does not run; IPython still numbers, displays and records it
as usual, and the session commits it as the operation it replayed.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

from txgit.reuse.replay import Reused, Reuser
from txgit.sessions.ipython import IPythonSession

_hook: ReuseHook | None = None


class _Recorded:
    """The cell's value as it was displayed when it ran (display data by mime type)."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return dict(self.data)

    def __repr__(self) -> str:
        return self.data.get("text/plain", "")


class _SwapBody(ast.NodeTransformer):
    def __init__(self, hook: ReuseHook) -> None:
        self.hook = hook

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if self.hook.pending is not None:
            node.body = ast.parse("__import__('txgit.reuse.ipython', fromlist=['_']).replay_pending()").body
        return node


class ReuseHook:
    """Reuse for one shell's session."""

    def __init__(self, ext: IPythonSession) -> None:
        self.ext = ext
        self.reuser = Reuser(ext.session)
        self.pending: Reused | None = None
        self.transformer = _SwapBody(self)

    def pre_run_cell(self, info: Any) -> None:
        self.pending = None
        if self.ext.skipping:
            return
        try:
            self.pending = self.reuser.prepare()
        except Exception as e:  # never in the way of running the cell
            print(f"txgit: reuse: {type(e).__name__}: {e}; running the cell", file=sys.stderr)
        for note in self.reuser.notes():
            print(note, file=sys.stderr)
        if self.pending is None:
            self.reuser.stats.ran += 1


def replay_pending() -> Any:
    """What a reused cell runs instead of its code."""
    hook = _hook
    if hook is None or hook.pending is None:
        return None
    from IPython.display import publish_display_data

    reused, hook.pending = hook.pending, None
    hook.reuser.apply(reused, printed=False)
    op = reused.recorded.op
    done = 0  # printed text and displays in the order the cell showed them
    for shown in op.displays:
        at = min(max(done, shown.get("at", len(op.stdout))), len(op.stdout))
        sys.stdout.write(op.stdout[done:at])
        done = at
        publish_display_data(shown["data"], shown["metadata"])  # (flushes what was written first)
    sys.stdout.write(op.stdout[done:])
    print(hook.reuser.describe(reused), file=sys.stderr)
    result = reused.recorded.op.result
    return _Recorded(result) if result else None


def enable(ext: IPythonSession) -> ReuseHook:
    global _hook
    if _hook is not None and _hook.ext is ext:
        return _hook
    disable()
    hook = ReuseHook(ext)
    ext.shell.events.register("pre_run_cell", hook.pre_run_cell)
    ext.shell.ast_transformers.append(hook.transformer)
    _hook = hook
    return hook


def disable() -> None:
    global _hook
    hook, _hook = _hook, None
    if hook is None:
        return
    try:
        hook.ext.shell.events.unregister("pre_run_cell", hook.pre_run_cell)
    except ValueError:
        pass
    if hook.transformer in hook.ext.shell.ast_transformers:
        hook.ext.shell.ast_transformers.remove(hook.transformer)


def active() -> ReuseHook | None:
    return _hook
