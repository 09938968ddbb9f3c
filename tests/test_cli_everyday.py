"""Everyday use as a git user expects it (issue 21): init twice, `.txgit/` inside a git work tree,
--version, -h, completion, the pager, colour, and the wording of branch -f, checkout and help.
Run as a user types it: the real `txgit` in a subprocess (a pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from cliutil import assert_one_line_error
from conftest import session_namespace
from txgit import Workspace
from txgit.errors import WorkspaceExists
from txgit.history import CommitInfo


def fingerprint(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: path -> content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


# -- init on an existing workspace --------------------------------------------------------------

def test_init_again_says_reinitialized_and_changes_nothing(tmp_path, run_txgit):
    out = run_txgit("init", "proj", cwd=tmp_path, check=True).stdout
    proj = tmp_path / "proj"
    assert out == f"Initialized empty txgit workspace in {proj / '.txgit'}\n"
    Workspace.open(proj).commit(session_namespace("x = 1"), "one")
    before = fingerprint(proj)
    for args, cwd in ((("init", "proj"), tmp_path), (("init",), proj), (("init", "."), proj)):
        proc = run_txgit(*args, cwd=cwd)
        assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
        assert proc.stdout == f"Reinitialized existing txgit workspace in {proj / '.txgit'}\n"
    assert fingerprint(proj) == before
    assert run_txgit("log", "--oneline", cwd=proj, check=True).stdout.count("\n") == 1
    # clone still refuses a folder that is a workspace
    src = Workspace.init(tmp_path / "src")
    src.commit(session_namespace("y = 2"), "theirs")
    src.remotes.add("origin", str(tmp_path / "r.git"))
    src.push()
    assert_one_line_error(run_txgit("clone", str(tmp_path / "r.git"), "proj", cwd=tmp_path), "already a txgit workspace")
    assert fingerprint(proj) == before


def test_open_or_init_for_code_that_runs_twice(tmp_path):
    first = Workspace.open_or_init(tmp_path / "p")
    first.commit(session_namespace("x = 1"), "one")
    again = Workspace.open_or_init(tmp_path / "p")
    assert again.root == first.root and again.head().summary == "one"
    (tmp_path / "p" / "sub").mkdir()
    nested = Workspace.open_or_init(tmp_path / "p" / "sub")  # its own folder, not the parent's workspace
    assert nested.root == tmp_path / "p" / "sub" and nested.head() is None
    with pytest.raises(WorkspaceExists, match="open_or_init"):  # init itself stays strict
        Workspace.init(tmp_path / "p")


# -- .txgit/ stays out of the user's own git repository ---------------------------------------

@pytest.mark.parametrize("where", [".", "notebooks"])
def test_a_workspace_inside_a_git_work_tree_is_not_in_git_status(tmp_path, run_txgit, where):
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "analysis.py").write_text("x = 1\n")
    (tmp_path / "notebooks").mkdir()
    run_txgit("init", where, cwd=tmp_path, check=True)
    ws = Workspace.open(tmp_path / where)
    ws.commit(session_namespace("x = 1\ny = list(range(100))"), "one")  # objects, refs, reflogs
    assert git("status", "--porcelain", "--untracked-files=all", cwd=tmp_path) == "?? analysis.py\n"
    git("add", "-A", cwd=tmp_path)
    assert git("diff", "--cached", "--name-only", cwd=tmp_path) == "analysis.py\n"


def test_clones_and_older_workspaces_are_ignored_too(tmp_path, run_txgit):
    git("init", "-q", cwd=tmp_path)
    src = Workspace.init(tmp_path / "src")
    src.commit(session_namespace("x = 1"), "one")
    src.remotes.add("origin", str(tmp_path / "r.git"))
    src.push()
    (tmp_path / "r.git" / ".gitignore").write_text("*\n")  # (the bare remote is not what this test is about)
    out = run_txgit("clone", str(tmp_path / "r.git"), "bob", "--trusted", cwd=tmp_path, check=True).stdout
    assert ": 1 branch (main), on main" in out  # (not "1 branches")
    (tmp_path / "src" / ".txgit" / ".gitignore").unlink()  # as a workspace made before txgit wrote one
    assert git("status", "--porcelain", cwd=tmp_path) == "?? src/\n"
    run_txgit("init", "src", cwd=tmp_path, check=True)  # reinitializing adds it
    assert git("status", "--porcelain", cwd=tmp_path) == ""
    assert pygit2.Repository(str(tmp_path / "src" / ".txgit" / "repo.git")).is_bare


# -- --version, -h, shell completion ------------------------------------------------------------

def all_commands() -> list[str]:
    import typer.main

    from txgit.cli import app

    return sorted(typer.main.get_command(app).commands)


def test_version(tmp_path, run_txgit):
    from txgit._version import __version__

    proc = run_txgit("--version", cwd=tmp_path, check=True)
    assert proc.stdout == f"txgit version {__version__}\n" and proc.stderr == ""


def test_dash_h_is_help_for_txgit_and_every_command(tmp_path, run_txgit):
    top = run_txgit("-h", cwd=tmp_path, check=True).stdout
    assert top == run_txgit("--help", cwd=tmp_path, check=True).stdout and "Usage: txgit [OPTIONS] COMMAND" in top
    assert run_txgit("log", "-h", cwd=tmp_path, check=True).stdout == run_txgit("log", "--help", cwd=tmp_path).stdout
    for command in all_commands():  # (outside a workspace: help needs none)
        proc = run_txgit(command, "-h", cwd=tmp_path)
        assert proc.returncode == 0 and f"Usage: txgit {command} " in proc.stdout, (command, proc.stdout, proc.stderr)


def test_shell_completion_installs_the_typer_way(tmp_path, run_txgit):
    """`txgit --install-completion` in bash writes the script and sources it from ~/.bashrc; the script
    then completes commands and options by asking txgit."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    shim = bin_dir / "txgit"  # `txgit` on PATH is this checkout's
    shim.write_text(f"#!/bin/sh\nexec {subprocess.list2cmdline([sys.executable])} -m txgit \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    shown = run_txgit("--show-completion", "bash", cwd=tmp_path, env={"HOME": str(home)}, check=True).stdout
    assert "_TXGIT_COMPLETE=complete_bash" in shown and "complete -o default -F _txgit_completion txgit" in shown
    proc = subprocess.run(["bash", "-c", "txgit --install-completion"], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "bash completion installed in" in proc.stdout, proc.stdout + proc.stderr
    script = home / ".bash_completions" / "txgit.sh"
    assert f"source '{script}'" in (home / ".bashrc").read_text()
    complete = (f"source '{script}'\n"
                "COMP_WORDS=(txgit lo); COMP_CWORD=1; _txgit_completion txgit; echo \"${COMPREPLY[@]}\"\n"
                "COMP_WORDS=(txgit log --on); COMP_CWORD=2; _txgit_completion txgit; echo \"${COMPREPLY[@]}\"\n")
    proc = subprocess.run(["bash", "-c", complete], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stdout.splitlines() == ["log", "--oneline"], proc.stdout + proc.stderr


# -- the pager, and colour only on a terminal -------------------------------------------------

def on_a_terminal(args: list[str], cwd: Path, env: dict | None = None) -> tuple[int, str]:
    """Run `txgit ARGS` with a pseudo-terminal as stdin, stdout and stderr: (exit status, what the terminal got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "txgit", *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, **(env or {})}, close_fds=True)
    os.close(slave)
    got = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other side closed: txgit has exited
                break
            if not chunk:
                break
            got += chunk
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, got.decode().replace("\r\n", "\n")


@pytest.fixture(scope="module")
def long_history(tmp_path_factory) -> Path:
    """40 commits: more than a screenful of `txgit log`."""
    root = tmp_path_factory.mktemp("long")
    ws = Workspace.init(root)
    ns = session_namespace("import threading\nlock = threading.Lock()")
    for i in range(40):
        ns["step"] = i
        ws.commit(ns, f"step {i}")
    return root


@pytest.fixture
def recording_pager(tmp_path) -> tuple[dict, Path, Path]:
    """A pager that records it ran (with $LESS) and what it was given."""
    ran, got = tmp_path / "pager-ran", tmp_path / "pager-got"
    script = tmp_path / "pager.sh"
    script.write_text(f"#!/bin/sh\necho \"LESS=$LESS\" >> '{ran}'\ncat > '{got}'\n")
    script.chmod(0o755)
    return {"TXGIT_PAGER": str(script), "PAGER_IS_NOT": "used"}, ran, got


def test_log_show_diff_on_a_terminal_go_through_the_pager(long_history, recording_pager, run_txgit):
    env, ran, got = recording_pager
    code, screen = on_a_terminal(["log"], long_history, env)
    assert code == 0 and ran.read_text() == "LESS=FRX\n"  # less, if it is the pager, runs as git runs it
    assert screen == ""  # all of it went to the pager ...
    paged = got.read_text()
    assert colours(paged)  # ... in colour: the pager is on the terminal (less -R shows it)
    plain = run_txgit("log", cwd=long_history, check=True).stdout
    assert re.sub(r"\x1b\[[0-9;]*m", "", paged) == plain and plain.count("Author: ") == 40
    for args in (["show"], ["diff", "HEAD~3"], ["log", "--oneline", "--graph"]):
        ran.unlink()
        code, screen = on_a_terminal(args, long_history, env)
        assert code == 0 and ran.exists() and screen == "", args
    ran.unlink()
    for args in (["status"], ["branch"]):  # short output: no pager, as git's status
        code, screen = on_a_terminal(args, long_history, env)
        assert code == 0 and screen and not ran.exists(), args


def test_no_pager_when_told_or_not_on_a_terminal(long_history, recording_pager, run_txgit):
    env, ran, got = recording_pager
    code, screen = on_a_terminal(["--no-pager", "log"], long_history, env)
    assert code == 0 and "step 0" in screen and "step 39" in screen
    code, screen = on_a_terminal(["-P", "log", "--oneline"], long_history, env)
    assert code == 0 and screen.count("step ") == 40
    for off in ("", "cat"):  # a pager set to nothing, or to cat: none, as in git
        code, screen = on_a_terminal(["log", "-n", "2"], long_history, {**env, "TXGIT_PAGER": off})
        assert code == 0 and "step 39" in screen, off
    proc = run_txgit("log", cwd=long_history, env=env, check=True)  # stdout a pipe
    assert proc.stdout.count("step ") == 40
    assert not ran.exists()


def test_pager_choice_and_a_pager_quit_early(long_history, recording_pager, tmp_path):
    env, ran, got = recording_pager
    pager_env = {"PAGER": env["TXGIT_PAGER"], "LESS": "-i"}  # $PAGER when $TXGIT_PAGER is not set; $LESS kept
    code, screen = on_a_terminal(["log", "-n", "1"], long_history, {**pager_env, "TXGIT_PAGER": ""})
    assert code == 0 and not ran.exists()  # $TXGIT_PAGER wins
    clean = {k: v for k, v in os.environ.items() if k != "TXGIT_PAGER"}
    code = subprocess.run([sys.executable, "-c", "import os, sys, pty; sys.exit(os.waitstatus_to_exitcode("
                           "pty.spawn([sys.executable, '-m', 'txgit', 'log', '-n', '1'])))"],
                          cwd=long_history, env={**clean, **pager_env}, capture_output=True).returncode
    assert code == 0 and ran.read_text() == "LESS=-i\n"
    # the user quits the pager after one line (or it never reads): no error, exit 0
    for quitter in ("head -n 1", "true"):
        code, screen = on_a_terminal(["log", "--graph"], long_history, {"TXGIT_PAGER": quitter})
        assert code == 0 and "Traceback" not in screen and "error" not in screen, screen
    # an error before anything is printed shows no pager
    code, screen = on_a_terminal(["log", "nope"], long_history, env)
    assert code == 1 and screen == "txgit: error: unknown revision 'nope'\n"


def colours(text: str) -> set[str]:
    """The colour codes (SGR 30-39, 90-97) in ``text``; bold and dim are not colours."""
    found = set()
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        found |= {p for p in params.split(";") if p.isdigit() and (30 <= int(p) <= 39 or 90 <= int(p) <= 97)}
    return found


def test_colour_only_on_a_terminal(long_history, run_txgit):
    for args in (["log", "-n", "3"], ["log", "--graph", "--oneline"], ["show"], ["diff", "HEAD~2"], ["branch"],
                 ["status"]):
        piped = run_txgit(*args, cwd=long_history, check=True).stdout
        assert "\x1b" not in piped, args  # no escape code at all in a pipe or file
    code, screen = on_a_terminal(["--no-pager", "log", "-n", "3"], long_history)
    assert code == 0 and colours(screen)
    code, screen = on_a_terminal(["--no-pager", "log", "-n", "3"], long_history, {"NO_COLOR": "1"})
    assert code == 0 and "step 39" in screen and not colours(screen)


# -- wording ---------------------------------------------------------------------------------------

def test_no_help_shows_a_flag_as_taking_a_value(tmp_path, run_txgit):
    """`--force <bool>` read as if --force took a value; flags show no type (options with values keep theirs)."""
    for command in ["", *all_commands()]:
        out = run_txgit(*filter(None, [command]), "--help", cwd=tmp_path, check=True).stdout
        assert "<bool>" not in out, (command, out)
    out = run_txgit("log", "--help", cwd=tmp_path, check=True).stdout
    assert re.search(r"--oneline +One line per commit", out) and re.search(r"--max-count +-n +N ", out), out


def two_commits(root: Path) -> tuple[Workspace, CommitInfo, CommitInfo]:
    """A workspace at ``root`` with commits "one" (x = 1) and "two" (x = 2)."""
    ws = Workspace.init(root)
    ns = session_namespace("x = 1")
    one = ws.commit(ns, "one").info
    ns["x"] = 2
    return ws, one, ws.commit(ns, "two").info


def test_branch_f_on_an_existing_branch_says_reset(tmp_path, run_txgit):
    ws, one, two = two_commits(tmp_path)
    out = run_txgit("branch", "-f", "exp", "HEAD~1", cwd=tmp_path, check=True).stdout
    assert out == f"Created branch exp at {one.short_id} one\n"  # -f on a new name creates it
    out = run_txgit("branch", "-f", "exp", cwd=tmp_path, check=True).stdout
    assert out == f"Reset branch exp to {two.short_id} two (was {one.short_id})\n"
    assert ws.branches()["exp"] == two.id
    assert "      1 variable, committed " in run_txgit("status", cwd=tmp_path, check=True).stdout  # not "1 variables"


def test_tag_f_on_an_existing_tag_says_updated(tmp_path, run_txgit):
    ws, one, two = two_commits(tmp_path)
    out = run_txgit("tag", "v1", "HEAD~1", cwd=tmp_path, check=True).stdout
    assert out == f"Tagged {one.short_id} one as v1\n"
    assert_one_line_error(run_txgit("tag", "v1", cwd=tmp_path), "v1")  # exists: -f needed
    out = run_txgit("tag", "-f", "v1", cwd=tmp_path, check=True).stdout
    assert out == f"Updated tag v1 (was {one.short_id}): now {two.short_id} two\n"
    assert ws.tags()["v1"] == two.id


def test_oneline_colours_the_id_not_the_message(long_history):
    code, screen = on_a_terminal(["--no-pager", "log", "--oneline", "-n", "2"], long_history)
    assert code == 0 and "33" in colours(screen)  # the ids are yellow ...
    before = screen[:screen.index("step 38")]
    last = re.findall(r"\x1b\[([0-9;]*)m", before)[-1]
    assert "33" not in last.split(";"), repr(screen)  # ... the message is not


def test_checkout_counts_every_name_it_kept(tmp_path):
    """Imports the namespace already has, and unpicklable values it holds, stay: they are kept, not
    left out of the count (and not reported as not restored)."""
    ws = Workspace.init(tmp_path / "ws")
    ns = session_namespace("import json\nimport os.path as osp\nimport threading\nlock = threading.Lock()\n"
                           "x = 1\ny = [1, 2]\nz = 3")
    first = ws.commit(ns, "one").info.id
    ns.update(z=4, w=5)
    ws.commit(ns, "two")
    live_lock = ns["lock"]
    r = ws.checkout(first, ns)
    assert (r.loaded, r.removed, r.not_restored) == (["z"], ["w"], {})
    assert r.kept == ["json", "lock", "osp", "threading", "x", "y"]
    assert ns["lock"] is live_lock and ns["z"] == 3 and "w" not in ns
    assert len(r.loaded) + len(r.kept) == len(ws.state(first).variables)


@pytest.mark.timeout(300)
def test_magic_checkout_report_counts_right(tmp_path):
    """What `%txgit checkout` says, in a real kernel, against what happened."""
    from kernelutil import Kernel

    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import json\nimport threading\nlock = threading.Lock()\nx = 1\ny = [1, 2]\nz = 3")
        first = ws.head().id
        k.ok("z = 4\nw = 5")
        out = k.ok(f"%txgit checkout {first}").stdout
        # z loaded; json, threading, lock, x, y kept; w removed; nothing left out
        assert f"checked out {first[:8]} (detached): loaded 1, kept 5, removed 1" in out, out
        assert "not restored" not in out and "loaded: z" in out, out
        assert k.value("(z, 'w' in globals(), type(lock).__name__)") == (3, False, "lock")
    finally:
        k.shutdown()


def test_ci_run_says_when_it_installs_chromium(tmp_path):
    """`.ci/run` is quiet for a minute or two while apt-get installs chromium: it says so first. Run here
    with apt-get, id and the virtual environment's python stubbed (nothing is installed or tested)."""
    import shutil

    from conftest import ROOT

    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    venv_bin, stubs, calls = tmp_path / ".venv" / "bin", tmp_path / "stubs", tmp_path / "calls"
    venv_bin.mkdir(parents=True)
    stubs.mkdir()

    def stub(path: Path, body: str) -> None:
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    stub(venv_bin / "python", f"echo \"python $*\" >> '{calls}'")
    stub(tmp_path / ".ci" / "wheel_smoke.sh", f"echo wheel_smoke >> '{calls}'")  # .ci/run's last step
    (venv_bin / "activate").write_text(f"PATH='{venv_bin}':\"$PATH\"\n")
    stub(stubs / "apt-get", f"echo \"apt-get $*\" >> '{calls}'")
    stub(stubs / "id", "echo 0")  # as root, as in CI
    stub(stubs / "npm", f"echo \"npm $*\" >> '{calls}'")  # the JupyterLab extension's build
    (tmp_path / "labextension").mkdir()
    for tool in ("dirname", "grep"):
        (stubs / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(stubs), "HOME": str(tmp_path)}  # no chromium on it
    proc = subprocess.run([shutil.which("bash"), str(tmp_path / ".ci" / "run")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(".ci/run: installing chromium for the browser tests"), proc.stdout
    assert "apt-get install -y -q chromium" in calls.read_text() and "python -m pytest" in calls.read_text()
    assert "npm run build" in calls.read_text()
    calls.unlink()
    stub(stubs / "chromium", "exit 0")  # already there: nothing said, nothing installed
    proc = subprocess.run([shutil.which("bash"), str(tmp_path / ".ci" / "run")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "" and "apt-get" not in calls.read_text(), proc.stdout
