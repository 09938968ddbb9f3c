"""``%load_ext txgit`` and ``%txgit <verb>``: a thin shell over the session API, like the CLI.

Live verbs (``commit``, ``checkout``, ``status``, ``rollback``, ``auto``) act
on this kernel's namespace through :mod:`txgit.sessions`. ``log``, ``show`` and
``diff`` display the views of :mod:`txgit.visual` (HTML in a notebook: the commit
graph, variable tables, semantic diffs; text in a terminal). Other read-only
verbs go to the CLI command of the same name.

A verb that fails raises :class:`MagicError`, so its cell fails and a notebook's
"Run All" stops there instead of running later cells on the wrong state. IPython
shows it as one line (``txgit: error: …``), not a traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any, Iterator

from IPython.core.magic import Magics, line_magic, magics_class, needs_local_scope, no_var_expand
from IPython.utils.text import DollarFormatter

from txgit.errors import MergeInProgress, NothingToCommit, TxgitError, disk_full
from txgit.history import RevRange
from txgit.reuse import ipython as reuse_ipython
from txgit.sessions import ipython as kernel_side
from txgit.sessions.words import notebook_words
from txgit.sessions.session import conflict_note
from txgit.visual.text import (
    held_line,
    left_behind_warning,
    not_loaded_line,
    not_restored_line,
    plural,
    unmerged_line,
    unpublished_line,
    upstream_line,
)

USAGE = """usage: %txgit VERB [ARGS]
  commit -m MSG [--allow-empty]
                         commit the namespace now (nothing changed: says so)
  checkout REV [--force] [--trust|--safe] [-b BRANCH]
                         make the namespace equal REV (loads only what differs)
  merge REV | --ours [VAR...] | --theirs [VAR...] | --abort
                         merge REV into this kernel's branch, variable by variable;
                         --ours/--theirs with no VAR: every conflict left
  pull [REMOTE [BRANCH]] fetch and merge (the namespace follows)
  reset REV [--force]    point this kernel's branch at REV (the namespace follows)
  status                 variables changed since this kernel's last commit; ahead/behind its upstream
  log [REV | A..B | A...B] [--all] [-n N]
                         history (A..B: what B has and A lacks, as origin/main.. what a push sends;
                         --all: every branch's; always a graph: --graph, --oneline change nothing)
  show [REV]             one commit
  diff [A [B] | A...B]   variables that differ (B omitted: the live namespace; A too: against HEAD;
                         A...B: from the merge base of A and B to B, what merging B brings in)
  branch [NAME [REV]]    list or create branches; -m [OLD] NEW renames (this kernel follows)
  serve [--port N]       the web view of the history, on 127.0.0.1, served by this kernel
  auto on|off            auto-commit after every cell (now: {auto})
  rollback on|off        roll a failed cell back to the last commit (now: {atomic})
  reuse on|off           load a cell's recorded results instead of running it again (now: {reuse})
  any other CLI verb (push, pull, tag, …) runs as `txgit VERB …` would"""

_LIVE = {"commit", "checkout", "status", "auto", "rollback", "reuse", "help"}


class MagicError(TxgitError):
    """A ``%txgit`` verb that failed: fails its cell, shown as one line. ``__cause__`` is the original error."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback (the kernel's error output, a terminal's too).
        return [f"txgit: error: {self}"]


def _spare_namespace_on_failure(shell: Any, session: Any) -> None:
    """Keep the session from rolling this cell back because the magic failed.

    A failed cell is rolled back to the last commit, and a cell with a line magic may have touched
    anything, so in a cell that mixes code and ``%txgit`` the whole namespace would go back: with
    auto-commit off, work not yet committed. A failed verb changed nothing (each refuses before it
    moves anything), so the cell is recorded as failed but not rolled back. Rollback is off until
    this cell's post_run_cell, then restored. (A cell of ``%txgit`` lines only is not tracked.)
    """
    if not session.atomic:
        return

    def restore(*_: Any) -> None:
        session.atomic = True
        try:
            shell.events.unregister("post_run_cell", restore)
        except ValueError:
            pass

    session.atomic = False
    shell.events.register("post_run_cell", restore)  # after the session's own hook, registered at load


def _opt(args: list[str], *flags: str, default: str | None = None) -> str | None:
    for flag in flags:
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                raise TxgitError(f"{flag} needs a value")
            value = args[i + 1]
            del args[i : i + 2]
            return value
    return default


def _flag(args: list[str], *flags: str) -> bool:
    found = False
    for flag in flags:
        while flag in args:
            args.remove(flag)
            found = True
    return found


def _no_other_options(args: list[str]) -> None:
    """What is left once a verb took its options holds revisions and names, never an option: a wrong
    one is refused as the CLI refuses it (it was read as a revision, or ignored)."""
    for a in args:
        if a.startswith("-") and len(a) > 1:
            raise TxgitError(f"No such option: {a} (see %txgit help)")


def _on_off(args: list[str], verb: str) -> bool:
    if len(args) != 1 or args[0] not in ("on", "off"):
        raise TxgitError(f"usage: %txgit {verb} on|off")
    return args[0] == "on"


def _print_commit(s: Any, r: Any) -> None:
    print(f"[{s.branch or 'detached'} {r.info.short_id}] {r.info.summary}: "
          f"{plural(r.variables, 'variable')}, {len(r.serialized_names)} serialized, {r.bytes_written} bytes written")
    for name, why in r.skipped.items():
        print(f"  not saved: {name} ({why})")


@contextmanager
def _cwd(path: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextmanager
def _keeping_random() -> Iterator[None]:
    """Imports made for the user inside the kernel leave its global random generator where it was:
    rich draws ``random.getrandbits`` when first imported, which moved a notebook's seeded stream."""
    import random

    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def _at_session_head(args: list[str], s: Any) -> list[str]:
    """`tag`/`branch` arguments with HEAD as this kernel's position: a revision written HEAD… becomes
    the session's, and NAME alone (create it) gets the session's position as its REV."""
    if s.holds_head() or s.base is None:
        return args
    out, positional, skip = [], 0, False
    for a in args:
        if skip:
            out.append(a)
            skip = False
            continue
        if a in ("-m", "--message"):
            skip = True
        elif a.startswith("-"):
            pass
        else:
            positional += 1
            if positional == 2:
                a = s.rev_here(a)
        out.append(a)
    if positional == 1 and not {"-d", "--delete"} & set(args):
        out.append(s.rev_here("HEAD"))
    return out


def _cli_commands() -> set[str]:
    with _keeping_random():
        from txgit.cli.app import app
        import txgit.cli  # noqa: F401  (registers the commands)

    return {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback}


# git's reflog selectors (main@{1}, @{-1}, HEAD@{yesterday}): IPython's expansion would read {1} as the number 1
_REFLOG_SELECTOR = re.compile(r"@\{([^{}]*)\}")


def _expanded(line: str, user_ns: dict[str, Any], local_ns: dict[str, Any] | None) -> str:
    """``line`` with ``$name`` and ``{expr}`` expanded as IPython does for any line magic (a line it cannot
    expand is left as it is), except git's ``@{...}``."""
    try:
        return DollarFormatter().vformat(_REFLOG_SELECTOR.sub(r"@{{\1}}", line), args=[],
                                         kwargs={**user_ns, **(local_ns or {})})
    except Exception:
        return line


@magics_class
class TxgitMagics(Magics):
    @no_var_expand
    @needs_local_scope
    @line_magic("txgit")
    def txgit(self, line: str, local_ns: dict[str, Any] | None = None) -> Any:
        """Version this kernel's state: %txgit commit -m MSG | log | diff | show | branch | checkout | status | auto | rollback."""
        try:
            line = _expanded(line, self.shell.user_ns, local_ns)
            try:
                args = shlex.split(line)
            except ValueError as e:  # unbalanced quotes
                raise TxgitError(f"cannot parse {line.strip()[:80]!r}: {e}") from e
            try:
                self._dispatch(args)
            except (TxgitError, MagicError):
                raise
            except Exception as e:  # a full disk: the user's situation, one line (the values stay here)
                ext = kernel_side.active()
                where = ext.session.workspace.dir if ext is not None else os.getcwd()
                full = disk_full(e, f"%txgit {args[0] if args else ''}".strip(), where,
                                 outcome="the values stay in this kernel")
                if full is None:
                    raise
                raise full from e
        except MagicError:
            raise
        except TxgitError as e:
            ext = kernel_side.active()
            if ext is not None:
                _spare_namespace_on_failure(self.shell, ext.session)
            raise MagicError(notebook_words(str(e))) from e

    def _dispatch(self, args: list[str]) -> None:
        ext = _attach(self.shell)
        s = ext.session
        s.flush()  # every verb sees the last cell's commit
        if not args or args[0] in ("help", "-h", "--help"):
            print(USAGE.format(auto="on" if s.auto else "off", atomic="on" if s.atomic else "off",
                               reuse="on" if reuse_ipython.active() else "off"))
            return
        verb, rest = args[0], args[1:]
        if verb == "commit":
            message = _opt(rest, "-m", "--message", default="")
            allow_empty = _flag(rest, "--allow-empty")
            if rest:
                raise TxgitError(f"unexpected arguments: {' '.join(rest)}")
            try:
                r = s.commit(message or "commit from %txgit", allow_empty=allow_empty)
            except NothingToCommit as e:
                print(e)
                return
            _print_commit(s, r)
        elif verb == "checkout":
            force = _flag(rest, "--force", "-f")
            trust, safe = _flag(rest, "--trust"), _flag(rest, "--safe")
            new_branch = _opt(rest, "-b")
            if new_branch is not None and not rest:
                rest = ["HEAD"]  # `checkout -b NEW` forks where we are, as in git
            if len(rest) != 1:
                raise TxgitError("usage: %txgit checkout REV [--force] [--trust|--safe] [-b BRANCH]")
            r = s.checkout(rest[0], force=force, new_branch=new_branch, trust=trust, safe=safe)
            where = f"branch {r.branch}" if r.branch else f"{r.info.short_id} (detached)"
            print(f"checked out {where}: loaded {len(r.loaded)}, kept {len(r.kept)}, removed {len(r.removed)}")
            if r.upstream is not None:
                print(f"  branch '{r.branch}' set up to track '{r.upstream[0]}/{r.upstream[1]}'")
            if r.left_behind and r.left_from:
                print("  " + left_behind_warning(r.left_behind, r.left_from, "%txgit"))
            if r.loaded and len(r.loaded) <= 12:
                print(f"  loaded: {', '.join(r.loaded)}")
            if r.recomputed:
                print(f"  recomputed by re-running the code that made them: {', '.join(r.recomputed)}")
            for name, why in r.not_restored.items():
                print("  " + not_restored_line(name, why, r.branch, "%txgit"))
            for line in r.drift:
                print(f"  warning: recorded under other versions: {line}")
        elif verb == "status":
            _no_other_options(rest)
            st = s.status()
            print(f"on {'branch ' + st.branch if st.branch else 'detached HEAD'}"
                  f"{', at ' + st.head[:8] if st.head else ', no commits yet'}")
            merging = s.merging()
            if st.branch is not None:  # what is not pushed or not pulled yet, as the terminal's status says
                line = (upstream_line(s.workspace, st.branch, merging=merging is not None)
                        or unpublished_line(s.workspace, st.branch))
                if line:
                    print(notebook_words(line))
            if merging is not None:
                plan = s.workspace.merge_plan(merging)
                print(f"merging {merging.label}: unresolved: {', '.join(c.label for c in plan.conflicts) or 'none'}")
                for held in s.workspace.merge_held(merging):  # a kernel gone before the merge commit
                    print("  " + held.describe("%txgit"))
            if s.unmerged() is not None:
                print(unmerged_line(s.unmerged(), st.branch))
            for ref, commit in s.workspace.history.unmerged().items():
                if ref != s.held():
                    print(held_line(ref, commit, "%txgit"))
            if st.clean:
                print("nothing to commit")
            for label, names in (("added", st.added), ("modified", st.modified), ("removed", st.removed)):
                for n in names:
                    print(f"  {label}: {n}")
            for n, why in s.not_restored().items():  # not removed: the next commit keeps them as they are
                print("  " + not_restored_line(n, why, st.branch, "%txgit"))
            if st.unloaded:  # a fresh kernel's: in the branch, not in the kernel (commits carry them over)
                print("  " + not_loaded_line(st.unloaded, st.branch, "%txgit", merging=merging is not None))
        elif verb == "auto":
            committed = s.set_auto(_on_off(rest, verb))  # on again: what the cells did meanwhile is committed
            print(f"auto-commit {'on' if s.auto else 'off'}")
            if committed is not None:
                _print_commit(s, committed)
        elif verb == "rollback":
            s.atomic = _on_off(rest, verb)
            print(f"rollback of failed cells {'on' if s.atomic else 'off'}")
        elif verb == "reuse":
            if _on_off(rest, verb):
                if not s.auto or not s.recording:
                    raise TxgitError("reuse needs auto-commit (`%txgit auto on`): results are reused from commits")
                reuse_ipython.enable(ext)
            else:
                reuse_ipython.disable()
            print(f"reuse {'on' if reuse_ipython.active() else 'off'}")
        elif verb in ("log", "show", "diff") and not (verb == "show" and len(rest) > 1):
            self._display(verb, rest, s)
        elif verb == "serve":
            self._serve(ext, rest)
        elif verb in _cli_commands():
            if verb == "tag" or (verb == "branch" and not {"-m", "--move", "-M"} & set(rest)):  # a rename names no REV
                args = [verb, *_at_session_head(rest, s)]
            elif verb == "reflog" and not s.holds_head() and (s.branch or s.own_head) is not None and \
                    not [a for a in rest if not a.startswith("-") and not a.isdigit()]:
                args = [verb, *rest, s.branch or s.own_head]  # this kernel's branch (or own HEAD), not the folder's
            self._run_cli(ext, args)
        else:
            raise TxgitError(f"unknown verb {verb!r} (see %txgit help)")

    def _display(self, verb: str, args: list[str], s: Any) -> None:
        """log, show, diff as rich output: HTML in a notebook, the same text in a terminal."""
        from IPython.display import display

        from txgit.visual import CommitView, DiffView, LogView

        ws = s.workspace
        n = _opt(args, "-n", "--max-count") if verb == "log" else None
        all_refs = _flag(args, "--all") if verb == "log" else False
        if verb == "log":
            _flag(args, "--graph", "--oneline")  # the view is always a graph, one line per commit
        _no_other_options(args)
        # HEAD is where this kernel is: the second kernel of a folder is on a branch of its own
        base = s.base if s.base is not None else s.tip()  # a fresh kernel is where its branch is
        here = None if s.holds_head() or base is None else (s.branch, base)
        if verb == "log":
            if len(args) > 1 or (n is not None and not n.isdigit()):
                raise TxgitError("usage: %txgit log [REV | A..B | A...B] [--all] [-n N]")
            if args and all_refs:  # as `txgit log REV --all` refuses it, rather than drop REV unsaid
                raise TxgitError("give either REV or --all, not both")
            if ws.head() is None and not args:
                raise TxgitError(f"no commits yet on branch {ws.branch or '?'}")
            start = _here(s, args[0]) if args else (None if here is None else s.rev_here("HEAD"))
            view: Any = LogView(ws, start, all_refs=all_refs, max_count=int(n) if n is not None else None, here=here)
        elif verb == "show":
            view = CommitView(ws, s.rev_here(args[0] if args else "HEAD"), here=here)
        else:
            if len(args) == 1 and RevRange.parse(args[0]) is not None:  # two commits, not this namespace
                display(DiffView(ws, _here(s, args[0])))
                return
            if len(args) > 2:
                raise TxgitError("usage: %txgit diff [A [B] | A..B | A...B]  (B omitted: this namespace; A too: "
                                 "against HEAD)")
            args = [s.rev_here(a) for a in args or ["HEAD"]]
            live = None if len(args) == 2 else {n: v for n, v in s.namespace.items() if s.is_variable(n)}
            # the records the next commit would make: re-pickling all would show untouched figures changed
            records = None if live is None else {n: r for n, r in s.live_records().items() if n in live}
            unloaded = s.status().unloaded if records is not None else []
            carried = s.base or s.tip()
            if unloaded:  # what this kernel never loaded is not removed: its commits carry it over, as status says
                at = ws.state(carried).variables
                records |= {n: at[n] for n in unloaded if n in at}
            view = DiffView(ws, args[0], args[1] if len(args) == 2 else None, namespace=live, live=records,
                            carried=carried if unloaded else None)
        display(view)

    _server: Any = None

    def _serve(self, ext: kernel_side.IPythonSession, args: list[str]) -> None:
        """`txgit serve` would block the kernel: serve from a background thread of it instead."""
        from txgit.visual.server import VisualServer
        from txgit.workspace import Workspace

        port = _opt(args, "--port", "-p", default="0")
        if args or not (port or "").isdigit():
            raise TxgitError("usage: %txgit serve [--port N]")
        if TxgitMagics._server is None:
            # its own Workspace (and pygit2 repository): requests never share the session's objects
            TxgitMagics._server = VisualServer(Workspace(ext.workspace.root), int(port)).start()
        print(f"txgit: serving {ext.workspace.root} at {TxgitMagics._server.url}")

    def _run_cli(self, ext: kernel_side.IPythonSession, args: list[str]) -> None:
        """The CLI verb in this kernel's workspace; verbs that act on a kernel act on this one."""
        from txgit.cli import invoke

        old = os.environ.get("TXGIT_KERNEL")
        os.environ["TXGIT_KERNEL"] = str(os.getpid())
        # the command's advice names the magic, which a cell runs, not the terminal command
        with _cwd(str(ext.workspace.root)), redirect_stdout(_NotebookWords(sys.stdout)), \
                redirect_stderr(_NotebookWords(sys.stderr)):
            try:
                code = invoke(args)  # a TxgitError propagates: the cell fails with its one line
            except TxgitError as e:
                e.message = notebook_words(e.message)
                raise
            except SystemExit as e:  # `txgit run`'s script called sys.exit(N)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            finally:
                if old is None:
                    del os.environ["TXGIT_KERNEL"]
                else:
                    os.environ["TXGIT_KERNEL"] = old
        if code:
            waiting = ext.session.merge_conflicts() if args[0] in ("pull", "merge") else None
            if waiting is not None and waiting[1]:
                # the conflicts were printed above; the error line says what is left and what to type
                # (the panel shows this line: "exited with status 1" told its user nothing)
                raise MergeInProgress(f"`%txgit {args[0]}` stopped on conflicts: "
                                      + conflict_note(waiting[1], ext.session.branch or "HEAD"))
            raise TxgitError(f"`%txgit {' '.join(args)[:80]}` exited with status {code}")


def _here(s: Any, rev: str) -> str:
    """``rev`` as this kernel means it: HEAD is where it is, also as a side of a range (``origin/main..``)."""
    rng = RevRange.parse(rev)
    return s.rev_here(rev) if rng is None else str(rng.map(s.rev_here))


class _NotebookWords:
    """A text stream that words the advice written to it for a notebook (see :func:`notebook_words`)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(notebook_words(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _attach(shell: Any) -> kernel_side.IPythonSession:
    """The extension in ``shell``, attached now if it was not: then said in a line (which workspace, where),
    with a closed kernel's commits that never reached their branch (not silently left there), and why
    this kernel took a branch of its own, if it did."""
    was = kernel_side.active()
    ext = kernel_side.attach(shell)
    if ext is not was:
        print(kernel_side.opened_line(ext))
        waiting = ext.session.merge_conflicts()  # a kernel restarted during a merge: where it stands
        if waiting is not None:
            note, held = ext.session.merge_note(*waiting)
            for line in ([note] if note else []) + held:
                print(f"txgit: {line}")
        for ref, commit in ext.session.workspace.history.unmerged().items():
            print(f"txgit: {held_line(ref, commit, '%txgit')}")
        if ext.note:
            print(f"txgit: {ext.note}")
    return ext


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext txgit``: open (or create) the workspace of the kernel's folder and start tracking; says
    which in one line. Refused (the cell fails with one line, the extension is not loaded, so `%load_ext
    txgit` can be run again): a new workspace in a home folder or ``/``, a workspace that cannot be opened,
    a full disk."""
    try:
        ext = _attach(ip)
    except TxgitError as e:
        raise MagicError(str(e)) from e
    except Exception as e:  # a full disk (the kernel's record could not be written): one line too
        full = disk_full(e, "%load_ext txgit", os.getcwd(), outcome="nothing was changed, the values stay",
                         retry="run `%load_ext txgit` again")
        if full is None:
            raise
        raise MagicError(str(full)) from e
    ip.register_magics(TxgitMagics)
    if os.environ.get("TXGIT_REUSE", "0") not in ("", "0"):
        reuse_ipython.enable(ext)


def unload_ipython_extension(ip: Any) -> None:
    reuse_ipython.disable()
    kernel_side.detach(ip)
