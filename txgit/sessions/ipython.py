"""The kernel side: a :class:`NamespaceSession` over an IPython shell's ``user_ns``.

Hooks ``pre_run_cell`` / ``post_run_cell`` (track, roll back, auto-commit),
records the kernel in ``.txgit/kernels/`` for terminal commands, and answers
their requests (:func:`remote`). The magics are in :mod:`txgit.magics`.
"""

from __future__ import annotations

import ast
import atexit
import functools
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from txgit.errors import MergeInProgress, NotAWorkspace, TxgitError, disk_full
from txgit.state import VarRecord
from txgit.sessions.kernel import (
    branch_for,
    claiming,
    live_kernels,
    notebook_name,
    register_kernel,
    unregister_kernel,
    update_kernel,
)
from txgit.sessions.session import CellOutcome, NamespaceSession, register, unregister
from txgit.sessions.words import notebook_words
from txgit.workspace import Workspace

_FIXED_HIDDEN = frozenset({"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_oh", "_ih", "_dh",
                           "exit", "quit", "get_ipython"})
_NUMBERED = re.compile(r"_i?\d+$")  # _3 (output 3), _i3 (input 3)
_PROMPT = re.compile(r"^\s*(>>>|\.\.\.|In \[)", re.M)  # what IPython's prompt strippers look for
_OWN_CELL = re.compile(r"^\s*(%%?txgit\b|%(re)?load_ext\s+txgit\b|%unload_ext\s+txgit\b)")

_active: IPythonSession | None = None


def active() -> IPythonSession | None:
    """The session of this process's shell, if the extension is loaded."""
    return _active


ALLOW_HOME = "TXGIT_ALLOW_HOME"


def broad_folder(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is if a workspace there would hold every kernel started below it: "your home folder",
    "the root folder" or "a folder above your home folder"; None for any other folder."""
    folder = Path(path).resolve()
    home = Path.home().resolve()
    if folder == home:
        return "your home folder"
    if folder == Path(folder.anchor):
        return "the root folder"
    if folder in home.parents:
        return "a folder above your home folder"
    return None


def open_workspace(path: str) -> tuple[Workspace, bool]:
    """The workspace of ``path`` (or of a folder above it), else a new one at ``path``; and whether it
    was created. Never created in a home folder, ``/`` or a folder above home (every kernel started
    below would be versioned there) unless ``TXGIT_ALLOW_HOME=1``: `txgit init` there creates one."""
    try:
        return Workspace.open(path), False
    except NotAWorkspace:
        what = broad_folder(path)
        if what is not None and os.environ.get(ALLOW_HOME, "") in ("", "0"):
            raise TxgitError(f"not creating a workspace in {what} {Path(path).resolve()} (every kernel started "
                             "below it would be versioned there): start the kernel in a project folder, or `%cd` "
                             "to one and `%load_ext txgit` again; to version this folder, `txgit init` it or "
                             f"`%env {ALLOW_HOME}=1` first") from None
        return Workspace.init(path), True


def opened_line(ext: IPythonSession) -> str:
    """What ``%load_ext txgit`` says first: the workspace, the kernel's branch and where it is, on one line."""
    s = ext.session
    where = f"on branch {s.branch}" if s.branch is not None else "HEAD detached"
    tip = s.workspace.history.tip(s.ref)
    if tip is None:
        at = "no commits yet"
    else:
        info = s.workspace.history.info(tip)
        summary = info.summary if len(info.summary) <= 60 else info.summary[:59] + "…"
        at = f"at {info.short_id} ({summary})"
    return f"txgit: {'created' if ext.created else 'opened'} workspace {s.workspace.root}, {where}, {at}"


@functools.lru_cache(maxsize=1 << 16)
def _ipython_name(name: str) -> bool:
    """IPython's own names (In, Out, _, _i3, _3 ...), remembered: asked for every name after every cell."""
    return name in _FIXED_HIDDEN or _NUMBERED.match(name) is not None


class IPythonSession:
    """The extension's state in one shell."""

    def __init__(self, shell: Any, workspace: Workspace) -> None:
        self.shell = shell
        hidden_ns = dict(getattr(shell, "user_ns_hidden", {}))

        def hidden(name: str) -> bool:
            if _ipython_name(name):
                return True
            # IPython's own `open` etc., unless the user rebound the name
            return name in hidden_ns and shell.user_ns.get(name) is hidden_ns[name]

        self.session = NamespaceSession(workspace, shell.user_ns, kind="ipython", hidden=hidden,
                                        always_hidden=_ipython_name, hidden_names=hidden_ns.keys())
        # Another live kernel on HEAD's branch: this one commits to a branch of its own (and says so).
        self.notebook = notebook_name()
        self.kernel_record: str | None = None
        self.created = False  # whether attaching made the workspace (what %load_ext says)
        with claiming(workspace):  # the record says which branch it holds before the next kernel looks
            self.session.branch, self.note = branch_for(workspace, self.notebook)
            self.register_kernel()
        self.session.claim_branch = self._claim_branch
        self.session.on_move = lambda s: update_kernel(s.workspace, s.branch)
        # Each cell's commit is written while the next cell runs (or the user reads the output):
        # see NamespaceSession._commit and docs/notebooks.md for what that means for durability.
        self.session.background = os.environ.get("TXGIT_BACKGROUND_COMMITS", "1") != "0"
        if self.session.background:
            self.session.start_writer()  # its git helper starts while the user types the first cell
        register(self.session)
        atexit.register(self.session.close)
        self._skip = False
        # seconds txgit's hooks took around each tracked cell (pre + post): what a user waits for
        self.hook_seconds: list[float] = []
        self._pre_seconds = 0.0
        self._display: dict[str, str] | None = None  # the cell's value as IPython displayed it
        self._displays: list[dict[str, Any]] = []  # what the cell passed to display() (plots, tables)
        self._watch_display()
        self._watch_publish()

    @property
    def workspace(self) -> Workspace:
        return self.session.workspace

    @contextmanager
    def _claim_branch(self, branch: str) -> Iterator[None]:
        # the check and the record that says this kernel holds the branch (written at the end of the
        # checkout) under one claim: two kernels checking it out at once both found it free
        with claiming(self.workspace):
            for k in live_kernels(self.workspace):
                if k.pid != os.getpid() and k.branch == branch:
                    raise TxgitError(f"{k.describe()} holds branch '{branch}': two kernels never commit to one "
                                     f"branch (`%txgit checkout {branch}~0` looks at it detached; `-b NEW {branch}` "
                                     "forks it)")
            yield

    @property
    def skipping(self) -> bool:
        """The running cell only talks to txgit (or is empty): it is not part of the history."""
        return self._skip

    def _watch_display(self) -> None:
        """Keep the text and HTML the display hook shows for a cell's value, to record it with the cell
        (a reused cell shows it again) without formatting the value a second time."""
        hook = getattr(self.shell, "displayhook", None)
        write = getattr(hook, "write_format_data", None)
        if write is None or getattr(write, "_txgit", False):
            return

        def write_format_data(format_dict: Any, md_dict: Any = None) -> Any:
            try:
                self._display = {k: v for k, v in format_dict.items()
                                 if k in ("text/plain", "text/html") and isinstance(v, str) and len(v) < 65536}
            except Exception:
                self._display = None
            return write(format_dict, md_dict)

        write_format_data._txgit = True  # type: ignore[attr-defined]
        hook.write_format_data = write_format_data

    def _watch_publish(self) -> None:
        """Keep what a cell shows through ``display()`` (inline plots included: matplotlib's backend
        shows its figures before ``post_run_cell``), so a reused cell shows it again."""
        pub = getattr(self.shell, "display_pub", None)
        publish = getattr(pub, "publish", None)
        if publish is None or getattr(publish, "_txgit", False):
            return

        def publish_and_keep(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not self._skip:
                transient = kwargs.get("transient")
                self._displays.append({"data": data, "metadata": metadata or {}, "at": self.session.printed(),
                                       "update": bool(kwargs.get("update")),
                                       "display_id": transient.get("display_id") if isinstance(transient, dict)
                                       else None})
            return publish(data, metadata, *args, **kwargs)

        publish_and_keep._txgit = True  # type: ignore[attr-defined]
        pub.publish = publish_and_keep

    # -- events --------------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        started = time.perf_counter()
        self._display = None
        self._displays = []
        raw = getattr(info, "raw_cell", "") or ""
        lines = [ln for ln in raw.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        # Cells that only talk to txgit are not part of the program's history.
        self._skip = bool(lines) and all(_OWN_CELL.match(ln) for ln in lines)
        if self._skip or not raw.strip():
            self._skip = True
            return
        try:
            self.session.follow()  # the branch moved outside this kernel: be in step before the cell runs
        except TxgitError as e:
            print(f"txgit: {notebook_words(str(e))}", file=sys.stderr)
        code, tree = plain_python(raw)
        if code is None:
            try:
                code = self.shell.transform_cell(raw)
            except Exception:
                code = raw
        self.session.before_cell(code, source=raw, tree=tree)
        self._pre_seconds = time.perf_counter() - started

    def post_run_cell(self, result: Any) -> None:
        if self._skip:
            return
        started = time.perf_counter()
        try:
            self._post_run_cell(result)
        finally:
            self.hook_seconds.append(self._pre_seconds + time.perf_counter() - started)
            del self.hook_seconds[:-1000]  # a bounded record

    def _post_run_cell(self, result: Any) -> None:
        if getattr(result, "error_before_exec", None) is not None:
            self.session.abandon_cell()  # nothing ran
            return
        try:
            outcome = self.session.after_cell(error=getattr(result, "error_in_exec", None),
                                              execution_count=getattr(result, "execution_count", None),
                                              result=self._display or None, displays=self._displays)
        except MergeInProgress as e:  # says itself what happened and what to type
            print(f"txgit: {notebook_words(str(e))}", file=sys.stderr)
            return
        except TxgitError as e:
            print(f"txgit: auto-commit failed: {notebook_words(str(e))}", file=sys.stderr)
            return
        except Exception as e:  # a full disk: one line; the cell's values stay, the next cell commits them
            full = disk_full(e, "auto-commit failed", self.session.workspace.dir,
                             outcome="what the cells set stays in memory", retry="the next commit takes it")
            if full is None:
                raise
            print(f"txgit: {full}", file=sys.stderr)
            return
        if outcome is not None:
            report_outcome(outcome)

    # -- kernel record ---------------------------------------------------------------
    def register_kernel(self) -> None:
        try:
            from ipykernel.connect import get_connection_file

            connection_file = get_connection_file()
        except Exception:  # a terminal IPython has no kernel to attach to
            return
        if connection_file and os.path.isfile(connection_file):
            self.kernel_record = str(register_kernel(self.workspace, connection_file, branch=self.session.branch,
                                                     notebook=self.notebook))
            atexit.register(self.unregister_kernel)

    def unregister_kernel(self) -> None:
        if self.kernel_record is not None:
            unregister_kernel(self.workspace)
            self.kernel_record = None


def plain_python(raw: str) -> tuple[str | None, ast.Module | None]:
    """``raw`` and its AST when it is plain Python that IPython runs as typed; else (None, None).

    IPython's own syntax (magics, ``!cmd``, ``x?``, indented pastes) never parses as Python;
    pasted prompts (``In [3]: x``, ``>>> x``, ``... x``) can, and IPython strips them: such cells,
    and any that do not parse, go through ``transform_cell``, which costs more than the parse.
    """
    if _PROMPT.search(raw):
        return None, None
    try:
        return raw, ast.parse(raw)
    except (SyntaxError, ValueError):
        return None, None


def report_outcome(outcome: CellOutcome) -> None:
    """Tell the user what happened to a failed cell; a successful one stays quiet."""
    rb = outcome.rollback
    if rb is None:
        return
    parts = []
    if rb.restored:
        parts.append("restored " + ", ".join(rb.restored))
    if rb.removed:
        parts.append("removed " + ", ".join(rb.removed))
    if rb.not_restored:
        parts.append("could not restore " + ", ".join(f"{n} ({why})" for n, why in rb.not_restored.items()))
    text = "; ".join(parts) if parts else "nothing to undo"
    print(f"txgit: cell failed, rolled back to the last commit: {text}", file=sys.stderr)


def attach(shell: Any, path: str | None = None) -> IPythonSession:
    """Open (or create) the workspace of ``path`` (default: the kernel's cwd) and hook the shell."""
    global _active
    if _active is not None and _active.shell is shell:
        return _active
    workspace, created = open_workspace(path or os.getcwd())
    ext = IPythonSession(shell, workspace)
    ext.created = created
    shell.events.register("pre_run_cell", ext.pre_run_cell)
    shell.events.register("post_run_cell", ext.post_run_cell)
    _active = ext
    return ext


def detach(shell: Any) -> None:
    global _active
    if _active is None or _active.shell is not shell:
        return
    for event, fn in (("pre_run_cell", _active.pre_run_cell), ("post_run_cell", _active.post_run_cell)):
        try:
            shell.events.unregister(event, fn)
        except ValueError:
            pass
    _active.session.close()
    _active.unregister_kernel()
    unregister(_active.session)
    _active = None


def remote(request: str) -> str:
    """Answer a terminal's request (JSON in, JSON out); runs in the kernel's main thread."""
    req: Any = None
    try:
        req = json.loads(request)
        ext = _active
        if ext is None:
            raise TxgitError("the txgit extension is not loaded in this kernel")
        return json.dumps({"ok": True, **handle(ext.session, req)})
    except TxgitError as e:
        return json.dumps({"ok": False, "error": str(e), "kind": type(e).__name__})
    except Exception as e:  # the terminal gets one line; the kernel keeps running
        where = _active.session.workspace.dir if _active is not None else None
        op = req.get("op") if isinstance(req, dict) else None
        full = disk_full(e, f"kernel {os.getpid()}'s {op or 'answer'}", where, outcome="the kernel keeps its values")
        if full is not None:
            return json.dumps({"ok": False, "error": str(full), "kind": type(full).__name__})
        return json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})


def handle(s: NamespaceSession, req: dict[str, Any]) -> dict[str, Any]:
    """One request on a session: what terminal commands (and magics through them) ask of a kernel."""
    op = req.get("op")
    s.flush()
    trust, safe = bool(req.get("trust")), bool(req.get("safe"))
    if op == "commit":
        r = s.commit(req.get("message") or "commit from terminal", meta={"from": "terminal"},
                     allow_empty=bool(req.get("allow_empty")))
        return {"commit": r.info.id, "variables": r.variables, "serialized": r.serialized_names, "skipped": r.skipped,
                "branch": s.branch}
    if op in ("checkout", "reset"):
        if op == "checkout":
            c = s.checkout(req["rev"], force=bool(req.get("force")), new_branch=req.get("new_branch"), trust=trust,
                           safe=safe)
        else:
            c = s.reset(req["rev"], force=bool(req.get("force")), trust=trust, safe=safe)
        return {"commit": c.info.id, "branch": c.branch, "loaded": c.loaded, "kept": c.kept, "removed": c.removed,
                "not_restored": c.not_restored, "recomputed": c.recomputed, "drift": c.drift,
                "left_behind": c.left_behind, "left_from": c.left_from, "upstream": c.upstream}
    if op == "status":
        st = s.status()
        merging = s.merging()
        return {"added": st.added, "removed": st.removed, "modified": st.modified, "branch": s.branch,
                "base": s.base, "merging": merging.label if merging is not None else None,
                "not_restored": s.not_restored(), "unloaded": st.unloaded, "unmerged": s.unmerged(), "held": s.held()}
    if op == "rename_branch":  # `txgit branch -m` of the branch this kernel commits to
        return {"moved": s.rename_branch(req["old"], req["new"], force=bool(req.get("force"))), "branch": s.branch}
    if op == "diff":  # `txgit diff` with no revision: the records of what status lists
        d = s.diff()

        def rec(r: VarRecord) -> str:
            return r.to_line().decode()

        merging = s.merging()  # then the changes are against the merge's state, not the last commit's
        return {"base": d.a, "merging": merging.label if merging is not None else None,
                "added": {n: rec(r) for n, r in d.added.items()},
                "removed": {n: rec(r) for n, r in d.removed.items()},
                "changed": {n: [rec(o), rec(r)] for n, (o, r) in d.changed.items()}}
    if op == "merge":
        action = req.get("action")
        if action == "abort":
            m = s.merge_abort(force=bool(req.get("force")))
            # what the abort left as the user set it (not the merge's): said, so that no one thinks it gone
            return m.to_json() | {"branch": s.branch, "kept": s.status().changed_names()}
        elif action == "continue":
            m = s.merge_continue()
        elif action in ("ours", "theirs"):
            m = s.merge_resolve(req.get("names"), action, trust=trust, safe=safe,  # names None: every conflict left
                                force=bool(req.get("force")))
        else:
            m = s.merge(req["rev"], label=req.get("label"), message=req.get("message"), trust=trust, safe=safe)
        # a fresh kernel (restarted during the merge) holds only what it loaded: the rest is named
        return m.to_json() | {"branch": s.branch, "unloaded": s.not_loaded()}
    raise TxgitError(f"unknown request {op!r}")


