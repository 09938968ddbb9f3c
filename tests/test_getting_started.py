"""docs/getting-started.md, walked through exactly as written, in order, from a fresh copy of the repository.

The page's blocks, as a user meets them:

* ```bash: typed in one terminal. Each line runs in turn and must succeed; `cd` and
  `. .venv/bin/activate` carry over to the next block, as in a terminal that stays open.
* ```ipython: the cells of one notebook. Its kernel is started (at the first cell) in the terminal's
  folder, with the python of the terminal's environment: the one the page's install step made.
* ```python: a program, run with the terminal's python in its folder; after ``<!-- file: NAME -->``,
  the file NAME written there instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kernelutil import Kernel, silent_eval

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "getting-started.md"
BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\s*)?```(?P<lang>bash|ipython|python)\n(?P<code>.*?)```", re.S)

pytestmark = pytest.mark.timeout(900)

# Runs a block's lines one by one in one bash, stopping at the first that fails; then keeps where the
# terminal is (its folder, its environment) for the next block.
TERMINAL = r"""
while IFS= read -r -u 3 __line || [ -n "$__line" ]; do
    case "$__line" in ''|'#'*) continue ;; esac
    printf '\n@@@ %s\n' "$__line"
    eval "$__line" </dev/null 2>&1 || { __rc=$?; printf '\n@@@ exit %s\n' "$__rc"; exit "$__rc"; }
done 3< "$1"
pwd > "$2.cwd"
env -0 > "$2.env"
"""


def blocks() -> list[tuple[str, str, str | None]]:
    return [(m["lang"], m["code"], m["file"]) for m in BLOCK.finditer(PAGE.read_text())]


def fresh_copy(dest: Path) -> None:
    """The repository as a clone has it: the files git knows (tracked, or new and not ignored)."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: what installing needs
        files = ["pyproject.toml", "README.md", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "txgit").rglob("*")
                                                  if "__pycache__" not in p.parts)]
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


class Terminal:
    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.cwd, self.env, self.scratch = cwd, env, scratch
        self.said: dict[str, str] = {}  # each line typed -> what it printed (the last time)
        self.n = 0

    def type(self, block: str) -> None:
        self.n += 1
        script, state = self.scratch / f"block{self.n}.sh", self.scratch / f"state{self.n}"
        script.write_text(block)
        proc = subprocess.run(["bash", "-c", TERMINAL, "terminal", str(script), str(state)], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=600)
        out = proc.stdout + proc.stderr
        for chunk in out.split("\n@@@ ")[1:]:
            line, _, said = chunk.partition("\n")
            self.said[line] = said
        assert proc.returncode == 0, f"in {self.cwd}:\n{out[-6000:]}"
        assert "Traceback" not in out, out[-6000:]
        self.cwd = Path(state.with_suffix(".cwd").read_text().strip())
        self.env = dict(kv.split("=", 1) for kv in state.with_suffix(".env").read_text().split("\0") if "=" in kv)

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.env.get("PATH"))

    def output(self, line: str) -> str:
        """What the line starting with ``line`` printed."""
        found = [said for typed, said in self.said.items() if typed.startswith(line)]
        assert found, f"no line {line!r} was typed: {list(self.said)}"
        return found[-1]


class EnvKernel(Kernel):
    """A kernel of another environment's python (jupyter_client would run its own python for "python")."""

    def __init__(self, cwd: Path, env: dict[str, str], python: str, specs: Path) -> None:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        (specs / "fresh").mkdir(parents=True)
        (specs / "fresh" / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "the fresh environment", "language": "python"}))
        self.cwd = Path(cwd)
        self.km = KernelManager(kernel_name="fresh", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))
        self.km.start_kernel(cwd=str(cwd), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)


def test_getting_started_runs_as_written(tmp_path):
    clone = tmp_path / "txgit"
    clone.mkdir()
    fresh_copy(clone)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # a new terminal: none of the test environment (its venv, this checkout on PYTHONPATH)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != Path(sys.prefix, "bin").resolve())
    terminal = Terminal(clone, env, scratch)
    kernel: Kernel | None = None
    cells: list[tuple[str, str]] = []
    programs: list[str] = []
    steps = blocks()
    assert [lang for lang, _, _ in steps].count("ipython") >= 5 and steps[0][0] == "bash"
    try:
        for lang, code, file in steps:
            if lang == "bash":
                terminal.type(code)
            elif lang == "ipython":
                if kernel is None:
                    python = terminal.which("python")
                    # the page's install step made the environment the notebook runs in
                    assert python is not None and Path(python).is_relative_to(clone / ".venv"), python
                    kernel = EnvKernel(terminal.cwd, terminal.env, python, scratch / "kernels")
                r = kernel.run(code)
                assert r.status == "ok", f"{code}\n{r.error}\n{r.stderr}"
                cells.append((code, r.stdout))
            elif file is not None:
                (terminal.cwd / file).write_text(code)
            else:
                proc = subprocess.run([terminal.which("python"), "-c", code], cwd=terminal.cwd, env=terminal.env,
                                      capture_output=True, text=True, timeout=120)
                assert proc.returncode == 0, f"{code}\n{proc.stdout}\n{proc.stderr}"
                programs.append(proc.stdout)
            if lang == "ipython" and code.startswith("prices.append"):
                assert kernel is not None and silent_eval(kernel, "total") == 19.75
        # what the page says happens
        churn = (tmp_path / "churn").resolve()
        assert Path(terminal.which("txgit")).is_relative_to(clone / ".venv")
        assert cells[0][1] == f"txgit: created workspace {churn}, on branch main, no commits yet\n"
        assert "[3.5, 2.0, 4.25]" in terminal.output("txgit show HEAD~1 prices")
        assert "prices" in terminal.output("txgit diff main exp") and "total" in terminal.output("txgit diff main exp")
        assert "checked out branch exp" in terminal.output("txgit checkout exp")
        assert "added: discount" in terminal.output("txgit status")
        assert "+ discount  float 0.1" in terminal.output("txgit diff  ")  # the bare one, against the kernel
        assert "committed" in terminal.output('txgit commit -m "checkpoint"')
        assert "pushed to origin" in terminal.output("txgit push")
        assert "total 90" in terminal.output("txgit run train.py")
        assert programs[-1].strip() == "['first']"
    finally:
        if kernel is not None:
            kernel.shutdown()
    assert kernel is not None
