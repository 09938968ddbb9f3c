"""``txgit run script.py``: run a script as ``__main__``, committing after each top-level statement.

A crashed script's state up to the last statement that finished is in
history; ``resume`` checks HEAD out into a fresh ``__main__`` and goes on
with the statement after the last one that finished (the script may have been
fixed in between: statements are matched by position). A statement that
changed no variable makes no commit: the run notes its progress in
``.txgit/runs/`` so that resuming does not run it again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from txgit.errors import TxgitError
from txgit.merging import ref_label
from txgit.packs import write_atomic
from txgit.sessions.session import NamespaceSession, _first_line, register, unregister
from txgit.workspace import Workspace


class ScriptFailed(TxgitError):
    """The script raised; its state up to the failure is committed."""


class CannotResume(TxgitError):
    """HEAD was not made by a run of this script."""


@dataclass
class ScriptResult:
    commits: int
    statements: int
    exit_code: int = 0
    last_commit: str | None = None
    # --resume of a run that had finished (HEAD's statement was the last): the commit it finished at
    finished_at: str | None = None


def _blocks(source: str, path: Path) -> list[tuple[int, str, types.CodeType]]:
    """(first line, source, code) of each top-level statement, decorators included; statements
    sharing a line (``a = 1; b = 2``) are one block, so that a block's code is its source's."""
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError as e:
        raise ScriptFailed(f"{path.name}:{e.lineno}: syntax error: {e.msg}") from e
    lines = source.splitlines(keepends=True)
    groups: list[tuple[int, int, list[ast.stmt]]] = []  # (first line, last line, statements)
    for stmt in tree.body:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        end = stmt.end_lineno or stmt.lineno
        if groups and start <= groups[-1][1]:
            first, _, stmts = groups[-1]
            groups[-1] = (first, end, [*stmts, stmt])
        else:
            groups.append((start, end, [stmt]))
    return [(first, "".join(lines[first - 1 : last]),
             compile(ast.Module(body=stmts, type_ignores=[]), str(path), "exec"))
            for first, last, stmts in groups]


def _script_key(ws: Workspace, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ws.root))
    except ValueError:
        return str(path.resolve())


def _progress_file(ws: Workspace, key: str) -> Path:
    """Where a run of ``key`` notes the last statement it finished, and the commit that was then."""
    return ws.dir / "runs" / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".json")


def _read_progress(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_progress(path: Path, doc: dict) -> None:
    path.parent.mkdir(exist_ok=True)
    write_atomic(str(path), json.dumps(doc).encode())


def run_script(ws: Workspace, path: str | os.PathLike[str], args: list[str] | None = None, *,
               resume: bool = False, replay: Callable[[NamespaceSession], bool] | None = None) -> ScriptResult:
    """Run ``path`` with ``args`` as ``__main__`` under ``ws``; see the module doc.

    ``replay``: asked before each statement runs (after the session has its operation); when it
    returns True it has put the statement's results in place instead (``txgit run --reuse``)."""
    path = Path(path)
    try:
        source = path.read_text()
    except OSError as e:
        raise TxgitError(f"cannot read {path}: {e.strerror or e}") from e
    blocks = _blocks(source, path)
    key = _script_key(ws, path)
    merging = ws.merge_in_progress()
    if merging is not None:  # its commits would be that merge's, its values held for it: git refuses too
        raise TxgitError(f"cannot run {key} now: the merge of {merging.label} into {ref_label(merging.ref)} waits "
                         "for its conflicts (`txgit status` lists them; resolve them, or give it up with "
                         "`txgit merge --abort`)")
    module = types.ModuleType("__main__")
    module.__file__ = str(path.resolve())
    ns = module.__dict__
    ns["__builtins__"] = __builtins__
    session = NamespaceSession(ws, ns, kind="script")
    session.atomic = False
    start = 0
    progress = _progress_file(ws, key)
    if resume:
        head = ws.head()
        meta = ws.state("HEAD").meta if head is not None else {}
        info = meta.get("script") or {}
        if info.get("path") != key:
            raise CannotResume(f"HEAD ({head.short_id if head else 'no commits'}) was not made by `txgit run {key}`: "
                               "nothing to resume")
        session.checkout("HEAD")
        start = int(info["stmt"]) + 1
        done = _read_progress(progress)  # statements that changed no variable made no commit
        if done.get("commit") == session.base and isinstance(done.get("stmt"), int):
            start = max(start, done["stmt"] + 1)
    saved = sys.argv, sys.modules.get("__main__"), list(sys.path)
    sys.argv = [str(path), *(args or [])]
    sys.modules["__main__"] = module
    sys.path.insert(0, str(path.resolve().parent))
    register(session)
    result = ScriptResult(commits=0, statements=len(blocks))
    if resume and start >= len(blocks):
        result.finished_at = session.base
    sha = hashlib.sha1(source.encode()).hexdigest()
    try:
        for i in range(start, len(blocks)):
            line, text, code = blocks[i]
            session.before_cell(text)
            label = f"{path.name}:{line}"
            try:
                if replay is None or not replay(session):
                    exec(code, ns)
            except SystemExit as e:
                result.exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code not in (None, 0) and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
                meta = {"script": {"path": key, "sha1": sha, "stmt": i, "line": line, "args": list(args or [])}}
                outcome = session.after_cell(label=label, message=f"run {label}: {_first_line(text)} (exit)", meta=meta)
                result.commits += 1 if outcome is not None and outcome.commit is not None else 0
                break
            except BaseException as e:
                session.abandon_cell()  # its partial effects are not committed
                tb = e.__traceback__.tb_next if e.__traceback__ is not None else None  # drop our exec frame
                traceback.print_exception(type(e), e, tb, file=sys.stderr)
                last = ws.head()
                done = f"its state up to the previous statement is {last.short_id}" if last else "nothing was committed"
                raise ScriptFailed(f"{label} raised {type(e).__name__}: {e}; {done} "
                                   f"(fix it and `txgit run --resume {key}`)") from None
            meta = {"script": {"path": key, "sha1": sha, "stmt": i, "line": line, "args": list(args or [])}}
            outcome = session.after_cell(label=label, message=f"run {label}: {_first_line(text)}", meta=meta)
            if outcome is not None and outcome.commit is not None:
                result.commits += 1
                result.last_commit = outcome.commit.info.id
            session.flush()
            _write_progress(progress, {"commit": session.base, "stmt": i})
    finally:
        sys.argv, main, sys.path[:] = saved[0], saved[1], saved[2]
        if main is not None:
            sys.modules["__main__"] = main
        unregister(session)
    return result
