"""The panel's side inside the notebook's kernel: its status, and actions run through the ``%txgit`` magic.

The panel sends one silent execute request (not recorded as a cell, not committed)::

    __import__("txgit.jupyter.kernel", fromlist=["call"]).call('{"op": "magic", "args": ["checkout", "a1b2"]}')

and reads back one stdout line: :data:`MARK` followed by a JSON object. Nothing is bound in the user's
namespace. Actions are the magic's own code (its verbs ``checkout``, ``branch``, ``commit``, ``pull``,
``push``, ``merge``, ``auto``, ``reuse``), so a checkout that would drop uncommitted changes is refused exactly as
the magic refuses it; the answer then says ``"needs_force": true`` and the panel asks before it
repeats the checkout with ``--force``. A pull (or checkout) of a state from a remote not marked trusted
answers ``"needs_trust": true``: the panel asks, and repeats it with ``--trust`` (this once).
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from txgit.errors import DirtyNamespace, TxgitError
from txgit.sessions import ipython as kernel_side
from txgit.trust import UntrustedState

MARK = "@@txgit-lab@@ "

# what the panel may ask the magic to do; anything else is refused here
# (merge: the panel resolves a pull's conflicts with --ours / --theirs / --abort)
ACTIONS = {"checkout", "branch", "commit", "pull", "push", "merge", "auto", "reuse", "tag"}


def status() -> dict[str, Any]:
    """Whether ``%load_ext txgit`` ran in this kernel, and if so where its session stands."""
    ext = kernel_side.active()
    if ext is None:
        return {"loaded": False}
    s = ext.session
    said = io.StringIO()
    # the last cell's auto-commit is in the history before the panel reads it; had it failed, flush says
    # so on stderr, which a silent request's reader never shows: the answer carries it to the panel
    with contextlib.redirect_stderr(said):
        s.flush()
    from txgit.reuse import ipython as reuse_ipython

    waiting = s.merge_conflicts()
    merging = None
    if waiting is not None:
        # what a gone kernel set waits for `%txgit merge --continue`: the page shows the note, "every conflict
        # is resolved" when it is empty, and had no word of them
        note, held = s.merge_note(*waiting)
        if held:
            note = "; ".join([note or f"merge into {s.branch or 'HEAD'} in progress, no conflict left", *held])
        merging = {"label": waiting[0].label, "unresolved": [c.label for c in waiting[1]], "note": note,
                   "held": held}
    if s.base is not None:
        head, clean = s.base, bool(s.clean)
        unloaded = sorted(n for n in s.unloaded if n not in s.namespace)
    else:
        # a fresh kernel (a restart too) has no commit of its own yet: it stands on its branch's commit
        # and holds none of its values ("no commits yet, cells ran" was said beside a graph of commits)
        st = s.status()
        head, clean, unloaded = st.head, not st.changed_names(), st.unloaded
    return {"loaded": True, "root": str(ext.workspace.root), "branch": s.branch, "head": head,
            "auto": bool(s.auto), "clean": clean, "unloaded": unloaded, "reuse": reuse_ipython.active() is not None,
            "merging": merging, "warning": said.getvalue().strip()}


def run_magic(args: list[str]) -> dict[str, Any]:
    """What ``%txgit ARGS`` does in a cell, and what it printed, or its one-line error."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or kernel_side.active() is None:
        return {"ok": False, "error": "txgit is not loaded in this kernel: run %load_ext txgit"}
    if not args or args[0] not in ACTIONS:
        return {"ok": False, "error": f"the panel cannot run %txgit {' '.join(args)[:60]}"}
    magics = shell.magics_manager.registry.get("TxgitMagics")
    if magics is None:
        return {"ok": False, "error": "txgit's magics are not registered in this kernel: run %load_ext txgit"}
    out = io.StringIO()  # stdout and stderr both: the panel shows what the cell would have
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            # the verb's own code, without the line magic's wrapper: that one spares the *cell* it runs
            # in from rollback when it fails, and a panel request is no cell (the user's next cell
            # would lose its rollback instead)
            magics._dispatch(args)
    except TxgitError as e:
        return {"ok": False, "error": str(e), "output": out.getvalue(), "needs_force": isinstance(e, DirtyNamespace),
                "needs_trust": isinstance(e, UntrustedState)}
    return {"ok": True, "output": out.getvalue()}


def call(request: str) -> None:
    """Answer one request of the panel on stdout (see the module docstring)."""
    try:
        req = json.loads(request)
        op = req.get("op")
        if op == "status":
            answer = status()
        elif op == "magic":
            answer = run_magic([str(a) for a in req.get("args", [])])
        else:
            answer = {"ok": False, "error": f"unknown request {str(op)[:40]!r}"}
    except Exception as e:  # never a traceback in the kernel's output: the panel shows the line
        answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(MARK + json.dumps(answer), flush=True)
