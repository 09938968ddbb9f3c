"""The docs' examples run: every ```python block in docs/*.md, in a fresh folder.

A block is skipped only if it is marked ``<!-- not-run: reason -->`` on the line
before it (for examples that need a cloud account).

And the `txgit` commands the pages show (typed in console/bash blocks, or named in
the prose) are ones txgit takes, and each of their verbs mistyped gives one error line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cliutil import run_cli

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- not-run:[^>]*-->\s*)?```python\n(.*?)```", re.S)


def _blocks() -> list:
    params = []
    for page in sorted(DOCS.glob("*.md")):
        for i, m in enumerate(BLOCK.finditer(page.read_text())):
            if m.group(1):
                continue
            params.append(pytest.param(m.group(2), id=f"{page.stem}-{i}"))
    return params


@pytest.mark.parametrize("code", _blocks())
def test_doc_example_runs(code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"


def test_docs_have_examples():
    assert len(_blocks()) >= 5


# -- the txgit commands the pages show ----------------------------------------------------------------

SHOWN = re.compile(r"```(?:console|bash)\n(.*?)```", re.S)  # typed: a prompt (`$ `, `alice$ `) or none
NAMED = re.compile(r"`(txgit [^`\n]+)`")  # named in the prose: `txgit push --force`
# options that act when parsed (write a completion script into $HOME, print and exit): never parsed here
EAGER = ("--install-completion", "--show-completion", "--help", "-h", "--version")


def _page_commands() -> list:
    """(page, argv, typed): every txgit command line of the pages; ``typed``: in a block, whole (a
    command named in the prose may leave out what it needs: `txgit run`, `txgit gc --budget`)."""
    import shlex

    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        lines = [(line, True) for block in SHOWN.findall(text) for line in block.splitlines()]
        lines += [(span, False) for span in NAMED.findall(text)]
        for line, typed in lines:
            line = re.sub(r"^\S*\$ ", "", line.strip())
            if not line.startswith("txgit ") or any(c in line for c in "[]|<>…") or re.search(r"\.\.\.(?![\w/~^])", line):
                continue  # not a command, or a synopsis: `txgit push [REMOTE]`, `--kernel PID|NOTEBOOK`, `VAR...`
            argv = shlex.split(re.split(r"\s(?:&&|;)\s", line)[0], comments=True)[1:]
            if argv and not any(a in EAGER for a in argv):
                found.append((page.stem, argv, typed))
    return found


def _parse(argv: list[str]) -> None:
    """What the command line would run, parsed as `txgit` parses it, without running it."""
    import typer.main

    from txgit.cli import app

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("txgit", list(argv))
    args = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []), *ctx.args]
    while hasattr(cmd, "resolve_command") and args:  # the group, then the command it names
        name, cmd, args = cmd.resolve_command(ctx, args)
        ctx = cmd.make_context(name, list(args), parent=ctx)
        args = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args] if hasattr(cmd, "resolve_command") else []


def test_every_command_the_pages_show_is_one_txgit_takes():
    """A renamed verb or option leaves the pages stale without a word: each command line they show parses
    (the verb and every option exist, values are of the right type); one named in the prose may leave out
    its required arguments."""
    from typer._click.exceptions import MissingParameter, UsageError

    commands = _page_commands()
    assert len(commands) > 150 and {"getting-started", "notebooks", "collaboration", "remotes"} <= {p for p, _, _ in commands}
    wrong = []
    for page, argv, typed in commands:
        try:
            _parse(argv)
        except MissingParameter:
            if typed:
                wrong.append((page, argv, "missing argument"))
        except UsageError as e:
            if typed or "requires an argument" not in e.format_message():
                wrong.append((page, argv, e.format_message()))
    assert not wrong, wrong




# A verb of the pages that takes a revision or a remote: the same command with a typo in it.
TYPO_REV = {"show": ["show", "HEAD~9"], "diff": ["diff", "main", "mian"], "log": ["log", "mian"],
            "checkout": ["checkout", "mian"], "merge": ["merge", "mian"], "reset": ["reset", "HEAD~9"],
            "branch": ["branch", "new", "mian"], "tag": ["tag", "v9", "mian"],
            "lineage": ["lineage", "--rev", "mian"]}
NO_REMOTE = {"push": ["push", "orign"], "pull": ["pull", "orign"], "fetch": ["fetch", "orign"],
             "fsck": ["fsck", "--remote", "orign"], "remote": ["remote", "trust", "orign"],
             "clone": ["clone", "no-such-remote.git", "copy"]}


def test_the_pages_verbs_refuse_a_typo_in_one_line(tmp_path, monkeypatch):
    """Every verb the pages show, mistyped as a new user mistypes it (a wrong option; a revision or remote
    that does not exist): one `txgit: error:` line on stderr, a non-zero exit, and nothing changed."""
    from txgit import Workspace

    ws = Workspace.init(tmp_path / "w")
    ws.commit({"__name__": "__main__", "x": 1}, "one")
    (tmp_path / "w" / "train.py").write_text("x = 2\n")
    monkeypatch.chdir(tmp_path / "w")
    monkeypatch.setenv("HOME", str(tmp_path))  # nothing here may write there; if it does, not in yours
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    verbs = sorted({argv[0] for _, argv, _ in _page_commands()})
    assert {"checkout", "clone", "commit", "diff", "log", "merge", "pull", "push", "run", "show"} <= set(verbs)
    for verb in verbs:
        for argv, code in (([verb, "--no-such-option"], 2), (TYPO_REV.get(verb), 1), (NO_REMOTE.get(verb), 1)):
            if argv is None:
                continue
            got, out, err = run_cli(argv)
            assert got == code and err.startswith("txgit: error: ") and err.count("\n") == 1, (argv, got, out, err)
            assert "Traceback" not in out + err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert ws.log()[0].summary == "one" and ws.fsck().ok


def test_every_magic_verb_the_pages_use_is_one_the_magic_knows():
    """`%txgit VERB` on a page is a verb `%txgit` runs (its own, or the CLI's), not one it would refuse
    with `unknown verb` (a verb renamed in the magic leaves the pages stale)."""
    from txgit import magics

    known = magics._LIVE | magics._cli_commands() | {"log", "show", "diff", "serve"}
    used = {(page.stem, verb) for page in DOCS.glob("*.md") for verb in re.findall(r"%txgit ([a-z-]+)", page.read_text())}
    assert len({v for _, v in used}) >= 15 and not {(p, v) for p, v in used if v not in known}


def test_before_you_pull_or_push_prints_what_the_page_shows(tmp_path):
    """collaboration.md's "Before you pull or push" run for real: its Python example up to the fetch makes
    the state, then each command of its console block prints what the page shows (commit ids aside)."""
    import os

    section = (DOCS / "collaboration.md").read_text().split("### Before you pull or push\n", 1)[1].split("\n## ", 1)[0]
    setup = BLOCK.search(section).group(2).split("\nalice.fetch()", 1)[0]
    subprocess.run([sys.executable, "-c", setup], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    shown = SHOWN.search(section).group(1)
    runs = re.split(r"^alice\$ txgit (.*)\n", shown, flags=re.M)[1:]
    assert len(runs) >= 10 and {"fetch", "log --oneline origin/main..", "diff main...origin/main"} <= set(runs[::2])
    ids = re.compile(r"\b[0-9a-f]{8}\b")
    for command, want in zip(runs[::2], runs[1::2]):
        proc = subprocess.run([sys.executable, "-m", "txgit", *command.split()], cwd=tmp_path / "alice",
                              capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        got = proc.stdout + proc.stderr
        assert proc.returncode == 0 and ids.sub("<id>", got) == ids.sub("<id>", want), (command, got)
