"""The JupyterLab panel in a real JupyterLab (started here on 127.0.0.1 with a token) and headless Debian
chromium, driven by Playwright as a person would use it: open a notebook, run its cells, watch the panel
fill, check out an earlier commit into the kernel (confirming the loss of an uncommitted change), make a
branch, search a variable's history, and read a DataFrame's diff.

It also takes the panel's screenshots; with TXGIT_UPDATE_SCREENSHOTS=1 they replace the ones in docs/images/
that docs/visual.md shows (a plain test run leaves the tree as it was: ids and times differ on every run).
Skipped only where no browser can run (no chromium, or Playwright missing); `.ci/run` installs both.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from browserutil import browser_page, sync_api
from conftest import clone_change_push
from labutil import SOURCE, jupyter_lab
from servers import git_daemon, init_bare
from txgit import Workspace

expect = sync_api.expect

DOC_IMAGES = SOURCE / "docs" / "images"
CELLS = ["x = 1", "x = 2", "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})", "df['b'] = df['a'] * 2"]
WAIT = 90_000  # ms: a kernel start and a cell's commit on a busy 2-core machine


def notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def page():
    with browser_page(1500, 950, timeout_ms=WAIT) as pg:  # WAIT: JupyterLab's first load on a busy machine
        yield pg


def run_new_cell(page, code: str) -> str:
    """Type ``code`` into the notebook's last cell (the empty one after the last run), run it, return its output."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    n = cells.count()
    last = cells.nth(n - 1)
    last.locator(".jp-InputArea-editor").click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
    outputs = last.locator(".jp-OutputArea-output")
    expect(outputs).not_to_have_count(0, timeout=WAIT)
    # stdout, and stderr where txgit says something (during a merge: that the cell was not committed)
    return "\n".join(o.inner_text() for o in outputs.all())


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Where screenshots go: docs/images/ when asked to refresh them, else a temporary folder."""
    if os.environ.get("TXGIT_UPDATE_SCREENSHOTS") == "1":
        return DOC_IMAGES
    (tmp_path / "images").mkdir()
    return tmp_path / "images"


def test_panel_history_checkout_branch_search_and_diff(tmp_path, page, images):
    root = tmp_path / "project"
    root.mkdir()
    notebook(root / "analysis.ipynb", CELLS)
    with jupyter_lab(root, tmp_path / "home") as lab:
        page.goto(f"{lab.url}lab/tree/analysis.ipynb?reset&token={lab.token}")
        page.locator("li[data-id='txgit-panel']").click()
        panel = page.locator("#txgit-panel")
        _widen(page, panel, 560)
        # before %load_ext txgit: the panel says how to start, and its button puts the line on top
        expect(panel.locator(".txgit-lab-enable")).to_contain_text("Run %load_ext txgit", timeout=WAIT)
        panel.locator(".txgit-lab-insert").click()
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(CELLS) + 1)
        expect(cells.first.locator(".jp-InputArea-editor")).to_have_text("%load_ext txgit")

        # run the cells one by one: one commit per cell, in the panel
        cells.first.locator(".jp-InputPrompt").click()
        for _ in range(len(CELLS) + 1):
            page.keyboard.press("Shift+Enter")
        rows = panel.locator(".txgit-lab-graph .txgit-row")
        expect(rows).to_have_count(len(CELLS), timeout=WAIT)  # the %load_ext cell defines nothing to commit
        ws = Workspace(root)
        log = ws.log()
        assert len(log) == len(CELLS)
        assert [r.get_attribute("data-commit") for r in rows.all()] == [c.id for c in log]
        first = next(c.id for c in log if "x" in ws.state(c.id).variables and ws.load("x", c.id) == 1)

        # auto-commit off from the panel, then a change no commit holds
        panel.locator(".txgit-lab-auto").uncheck()
        expect(panel.locator(".txgit-lab-message")).to_have_text("auto-commit off", timeout=WAIT)
        assert "x is 99" in run_new_cell(page, "x = 99\nprint('x is', x)")
        expect(panel.locator(".txgit-lab-status")).to_contain_text("cells ran since the last commit", timeout=WAIT)

        # click the earlier commit, check it out: the panel asks before the change is lost
        rows.locator(f"xpath=self::*[@data-commit='{first}']").locator(".txgit-msg").click()
        expect(panel.locator(".txgit-lab-commit-view .txgit-commit")).to_have_attribute("data-commit", first)
        page.screenshot(path=str(images / "lab-panel.png"), clip=_box(page, panel))
        panel.locator(".txgit-lab-checkout").click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("Discard uncommitted changes?", timeout=WAIT)
        expect(dialog).to_contain_text("x")
        dialog.locator(".jp-mod-accept").click()
        expect(panel.locator(".txgit-lab-message")).to_contain_text("checked out", timeout=WAIT)
        assert "x is 1" in run_new_cell(page, "print('x is', x)")

        # a new branch from the selected commit
        panel.locator(".txgit-lab-branch").click()
        page.locator(".jp-Dialog input").fill("from-panel")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        expect(panel.locator(".txgit-lab-graph .txgit-ref", has_text="from-panel")).to_have_count(1, timeout=WAIT)
        assert Workspace(root).branches()["from-panel"] == first

        # search by variable: df was added, then changed; the change's diff shows the added column
        panel.locator(".txgit-lab-search").fill("df")
        panel.locator(".txgit-lab-search").press("Enter")
        hits = panel.locator(".txgit-varhistory .txgit-hit")
        expect(hits).to_have_count(2, timeout=WAIT)
        assert [h.get_attribute("data-status") for h in hits.all()] == ["changed", "added"]
        page.screenshot(path=str(images / "lab-search.png"), clip=_box(page, panel))
        hits.first.locator("a.txgit-id").click()
        # a commit opens with what changed inside each variable since its parent
        expect(panel.locator(".txgit-lab-parent-diff .txgit-var[data-var='df']")).to_contain_text(
            "columns added: b (int64)", timeout=WAIT)
        panel.locator(".txgit-lab-diff-parent").click()
        df = panel.locator(".txgit-lab-diff-view .txgit-var[data-var='df']")
        expect(df).to_contain_text("columns added: b (int64)", timeout=WAIT)
        expect(df).to_contain_text("shape 3x1 -> 3x2")
        page.screenshot(path=str(images / "lab-diff.png"), clip=_box(page, panel))

        # compare any two commits: mark one, open another, compare
        rows.locator(f"xpath=self::*[@data-commit='{first}']").locator(".txgit-msg").click()
        panel.locator(".txgit-lab-mark").click()
        rows.locator(f"xpath=self::*[@data-commit='{log[0].id}']").locator(".txgit-msg").click()
        panel.locator(".txgit-lab-compare").click()
        diff = panel.locator(".txgit-lab-diff-view .txgit-diff")
        expect(diff).to_contain_text("2 added, 0 removed, 1 changed", timeout=WAIT)
        assert {v.get_attribute("data-var") for v in diff.locator(".txgit-var").all()} == {"x", "pd", "df"}
        assert "int 1 → int 2" in diff.locator(".txgit-var[data-var='x']").inner_text()


def _open_and_run_cells(page, lab, name: str, cells: int):
    """Open notebook ``name`` (its first cell %load_ext txgit) with the txgit panel, run its first
    ``cells`` cells once the panel has reached the kernel, and wait for their commits; the panel."""
    page.goto(f"{lab.url}lab/tree/{name}?reset&token={lab.token}")
    page.locator("li[data-id='txgit-panel']").click()
    panel = page.locator("#txgit-panel")
    # keys sent while the notebook still loads were lost on a busy machine
    expect(panel.locator(".txgit-lab-enable")).to_contain_text("Run %load_ext txgit", timeout=WAIT)
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
    for _ in range(cells):
        page.keyboard.press("Shift+Enter")
    expect(panel.locator(".txgit-lab-graph .txgit-row")).to_have_count(cells - 1, timeout=WAIT)
    return panel


def _widen(page, panel, width: int) -> None:
    """Drag the handle at the right sidebar's left edge, as a person makes the panel wider."""
    expect(panel).to_be_visible(timeout=WAIT)
    box = panel.bounding_box()
    handles = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)")
    handle = min((h.bounding_box() for h in handles.all()), key=lambda b: abs(b["x"] - box["x"]))
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + 300
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - (width - box["width"]), y, steps=5)
    page.mouse.up()


def _box(page, locator) -> dict:
    b = locator.bounding_box()
    return {"x": b["x"], "y": b["y"], "width": b["width"], "height": b["height"]}


def test_panel_follows_the_active_notebook_and_its_kernel_only(tmp_path, page):
    """Two notebooks in two folders (two workspaces, two kernels): the panel shows the history of the
    notebook in front, and a checkout from it moves that notebook's kernel, not the other's."""
    root = tmp_path / "project"
    for name, value in (("one", 1), ("two", 2)):
        (root / name).mkdir(parents=True)
        notebook(root / name / f"{name}.ipynb", ["%load_ext txgit", f"{name} = {value}", f"{name} = {value * 10}"])
    with jupyter_lab(root, tmp_path / "home") as lab:
        page.goto(f"{lab.url}lab/tree/one/one.ipynb?reset&token={lab.token}")
        page.locator("li[data-id='txgit-panel']").click()
        panel = page.locator("#txgit-panel")
        rows = panel.locator(".txgit-lab-graph .txgit-row")
        for name in ("one", "two"):
            if name == "two":  # the second notebook's URL: JupyterLab keeps the first open in its own tab
                page.goto(f"{lab.url}lab/tree/two/two.ipynb?token={lab.token}")
                tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
                expect(tabs.filter(has_text="one.ipynb")).to_have_count(1, timeout=WAIT)
                expect(tabs.filter(has_text="two.ipynb")).to_have_class(re.compile("lm-mod-current"), timeout=WAIT)
                if not panel.is_visible():
                    page.locator("li[data-id='txgit-panel']").click()
            # the panel has reached this notebook's kernel (not yet running txgit) before any key is
            # pressed: keys sent while the notebook still loads were lost on a busy machine
            expect(panel.locator(".txgit-lab-enable")).to_contain_text("Run %load_ext txgit", timeout=WAIT)
            nb = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
            nb.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()
            for _ in range(3):
                page.keyboard.press("Shift+Enter")
            expect(rows).to_have_count(2, timeout=WAIT)
            expect(rows.first).to_contain_text(f"{name} = ", timeout=WAIT)
        # back to the first notebook's tab: the panel shows its history again
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="one.ipynb").click()
        expect(rows.first).to_contain_text("one = 10", timeout=WAIT)
        one = Workspace(root / "one")
        older = one.log()[1].id
        rows.locator(f"xpath=self::*[@data-commit='{older}']").locator(".txgit-msg").click()
        panel.locator(".txgit-lab-checkout").click()
        expect(panel.locator(".txgit-lab-message")).to_contain_text("checked out", timeout=WAIT)
        assert one.head().id == older
        two = Workspace(root / "two")
        assert two.load("two", two.head().id) == 20 and two.branch == "main"  # the other kernel's workspace did not move


def test_alice_pulls_a_conflict_resolves_it_and_pushes_from_the_panel_beside_a_terminal(tmp_path, page, run_txgit):
    """Alice in the lab, Bob in a clone, the remote a bare repository under git daemon on 127.0.0.1. What
    her terminal moves (a remote's branch after a push, a checkout) shows in the panel without a click on
    Refresh (it showed the old picture); a Pull that conflicts says which variable waits, keeps her
    value, and offers the ways out (it said only "`txgit pull` exited with status 1"); Take theirs
    resolves it and Push publishes the merge."""
    alice = tmp_path / "alice"
    alice.mkdir()
    notebook(alice / "a.ipynb", ["%load_ext txgit", "x = 1"])
    init_bare(tmp_path / "served" / "team.git")
    asked: list[float] = []  # when the page asked the kernel for txgit's status (its websocket frames)

    def frame_sent(frame: str | bytes) -> None:
        data = frame if isinstance(frame, bytes) else frame.encode()
        if b"txgit.jupyter.kernel" in data and b"status" in data:
            asked.append(time.time())

    page.on("websocket", lambda ws: ws.on("framesent", frame_sent))
    with git_daemon(tmp_path / "served") as daemon, jupyter_lab(alice, tmp_path / "home") as lab:
        url = f"{daemon}/team.git"
        panel = _open_and_run_cells(page, lab, "a.ipynb", 2)
        message, status = panel.locator(".txgit-lab-message"), panel.locator(".txgit-lab-status")

        # her terminal publishes: the remote's branch appears in the panel by itself
        run_txgit("remote", "add", "origin", url, "--storage", str(tmp_path / "blobs"), "--trusted", cwd=alice,
                  check=True)
        run_txgit("push", cwd=alice, check=True)
        expect(panel.locator(".txgit-lab-graph .txgit-ref.remote", has_text="origin/main")).to_have_count(
            1, timeout=20_000)

        clone_change_push(url, tmp_path / "bob", "bob: x = 200", {"x": 200}, storage=str(tmp_path / "blobs"),
                          trusted=True)
        assert "x is 100" in run_new_cell(page, "x = 100\nprint('x is', x)")

        panel.locator(".txgit-lab-pull").click()
        expect(message).to_contain_text("stopped on conflicts", timeout=WAIT)
        expect(message).to_contain_text("unresolved: x")
        expect(message).to_contain_text("CONFLICT (changed on both sides): x")  # the output, below the line
        merge = panel.locator(".txgit-lab-merge")
        expect(merge).to_contain_text("unresolved: x", timeout=WAIT)
        assert "x is 100" in run_new_cell(page, "print('x is', x)")  # hers, still in the kernel
        # auto-commit off, x set again: Take theirs asks before it drops that value; Cancel keeps it
        panel.locator(".txgit-lab-auto").uncheck()
        expect(message).to_have_text("auto-commit off", timeout=WAIT)
        assert "x is 150" in run_new_cell(page, "x = 150\nprint('x is', x)")
        merge.locator(".txgit-lab-theirs").click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("uncommitted changes to x would be overwritten by taking theirs", timeout=WAIT)
        dialog.locator(".jp-mod-reject").click()
        assert "x is 150" in run_new_cell(page, "print('x is', x)")
        merge.locator(".txgit-lab-theirs").click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        expect(message).to_contain_text("resolved: x (theirs)", timeout=WAIT)
        expect(merge).to_be_hidden()
        assert "x is 200" in run_new_cell(page, "print('x is', x)")
        panel.locator(".txgit-lab-push").click()
        expect(message).to_contain_text("main -> origin/main", timeout=WAIT)
        ws = Workspace(alice)
        assert ws.load("x", ws.head().parents[0]) == 100 and ws.remote_branches()["origin/main"] == ws.head().id

        # a checkout in her terminal moves the kernel: the panel follows
        run_txgit("checkout", "-b", "side", cwd=alice, check=True)
        expect(status).to_contain_text("on side", timeout=20_000)

        # a ref moves while a long cell runs: the panel's status request waits behind the cell, and
        # the polls meanwhile send no more of them (they queued one every 3 s in the kernel)
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(cells.count() - 1).locator(".jp-InputArea-editor").click()
        page.keyboard.type("import time\ntime.sleep(15)")
        page.keyboard.press("Shift+Enter")
        time.sleep(1)
        since = len(asked)
        run_txgit("branch", "other", cwd=alice, check=True)
        expect(panel.locator(".txgit-lab-graph .txgit-ref", has_text="other")).to_have_count(1, timeout=WAIT)
        assert len(asked) - since <= 2, asked[since:]  # the poll's, and the one after the cell ran


def test_a_pull_from_a_remote_not_trusted_asks_to_trust_it_once(tmp_path, page, run_txgit):
    """Bob pushes to a remote Alice added without --trusted: her Pull was refused with "load with --trust
    (this once)", which no button could pass. The panel now asks Trust this remote once?; Cancel leaves
    her kernel as it was, Trust once pulls with --trust and leaves the remote not trusted."""
    alice = tmp_path / "alice"
    alice.mkdir()
    notebook(alice / "a.ipynb", ["%load_ext txgit", "x = 1"])
    init_bare(tmp_path / "served" / "team.git")
    with git_daemon(tmp_path / "served") as daemon, jupyter_lab(alice, tmp_path / "home") as lab:
        url = f"{daemon}/team.git"
        run_txgit("init", cwd=alice, check=True)
        run_txgit("remote", "add", "origin", url, "--storage", str(tmp_path / "blobs"), cwd=alice, check=True)
        panel = _open_and_run_cells(page, lab, "a.ipynb", 2)
        message = panel.locator(".txgit-lab-message")
        panel.locator(".txgit-lab-push").click()
        expect(message).to_contain_text("main -> origin/main", timeout=WAIT)

        clone_change_push(url, tmp_path / "bob", "bob: y = 200", {"y": 200}, storage=str(tmp_path / "blobs"),
                          trusted=True)

        dialog = page.locator(".jp-Dialog")
        panel.locator(".txgit-lab-pull").click()
        expect(dialog).to_contain_text("Trust this remote once?", timeout=WAIT)
        expect(dialog).to_contain_text("which is not trusted")
        dialog.locator(".jp-mod-reject").click()
        expect(message).to_contain_text("which is not trusted")
        assert "False 1" in run_new_cell(page, "print('y' in globals(), x)")
        panel.locator(".txgit-lab-pull").click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        expect(message).to_contain_text("loaded y", timeout=WAIT)
        assert "200 1" in run_new_cell(page, "print(y, x)")
        assert not Workspace(alice).remotes.get("origin").trusted


def test_a_kernel_restarted_mid_merge_redraws_the_panel_and_says_what_is_not_loaded(tmp_path, page, run_txgit):
    """A pull stops on x; Alice restarts the kernel. The panel kept the old kernel's picture, its merge
    bar and its error (its buttons then answered "txgit is not loaded"), and once %load_ext ran said
    "no commits yet · cells ran since the last commit". Now it redraws when the kernel is back (asking
    for %load_ext), then says the commit it stands on and what is not loaded, and Take theirs resolves."""
    alice = tmp_path / "alice"
    alice.mkdir()
    notebook(alice / "a.ipynb", ["%load_ext txgit", "x = 1", "y = 10"])
    team = tmp_path / "team.git"
    with jupyter_lab(alice, tmp_path / "home") as lab:
        panel = _open_and_run_cells(page, lab, "a.ipynb", 3)
        message, status, merge = (panel.locator(c) for c in (".txgit-lab-message", ".txgit-lab-status",
                                                             ".txgit-lab-merge"))
        run_txgit("remote", "add", "origin", str(team), "--trusted", cwd=alice, check=True)
        run_txgit("push", cwd=alice, check=True)
        clone_change_push(str(team), tmp_path / "bob", "bob: x = 200", {"x": 200}, trusted=True)
        run_new_cell(page, "x = 100\nprint('x is', x)")
        panel.locator(".txgit-lab-pull").click()
        expect(merge).to_contain_text("unresolved: x", timeout=WAIT)

        page.locator(".jp-Notebook").click()
        page.keyboard.press("Escape")
        page.keyboard.press("0")
        page.keyboard.press("0")
        page.locator(".jp-Dialog .jp-mod-accept").click()  # Restart Kernel?
        expect(panel.locator(".txgit-lab-enable")).to_contain_text("Run %load_ext txgit", timeout=30_000)
        expect(merge).to_be_hidden()
        expect(message).to_have_text("")
        run_new_cell(page, "%load_ext txgit")
        expect(status).to_contain_text("not loaded: x, y", timeout=WAIT)
        expect(status).not_to_contain_text("no commits yet")
        expect(status).not_to_contain_text("cells ran")
        expect(merge).to_contain_text("unresolved: x", timeout=WAIT)
        merge.locator(".txgit-lab-theirs").click()
        expect(message).to_contain_text("resolved: x (theirs)", timeout=WAIT)
        expect(status).to_contain_text("not loaded: y", timeout=WAIT)
        assert "x is 200" in run_new_cell(page, "print('x is', x)")


def test_the_second_kernel_of_a_folder_sees_head_on_its_own_branch(tmp_path, page):
    """Two notebooks in one folder: the second kernel commits to a branch of its own (b) while the
    folder's HEAD stays on main. Its panel said "on b" above a graph that marked "HEAD -> main"."""
    root = tmp_path / "project"
    root.mkdir()
    notebook(root / "a.ipynb", ["%load_ext txgit", "x = 1"])
    notebook(root / "b.ipynb", ["%load_ext txgit", "z = 7"])
    with jupyter_lab(root, tmp_path / "home") as lab:
        panel = page.locator("#txgit-panel")
        heads = panel.locator(".txgit-lab-graph .txgit-ref.head")
        for name in ("a", "b"):
            page.goto(f"{lab.url}lab/tree/{name}.ipynb?{'reset&' if name == 'a' else ''}token={lab.token}")
            if name == "b":
                tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
                expect(tabs.filter(has_text="b.ipynb")).to_have_class(re.compile("lm-mod-current"), timeout=WAIT)
            if not panel.is_visible():
                page.locator("li[data-id='txgit-panel']").click()
            expect(panel.locator(".txgit-lab-enable")).to_contain_text("Run %load_ext txgit", timeout=WAIT)
            nb = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
            nb.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()
            page.keyboard.press("Shift+Enter")
            page.keyboard.press("Shift+Enter")
            expect(panel.locator(".txgit-lab-status")).to_contain_text(f"on {'main' if name == 'a' else 'b'} at",
                                                                      timeout=WAIT)
        expect(panel.locator(".txgit-lab-graph .txgit-row").first).to_contain_text("z = 7", timeout=WAIT)
        expect(heads).to_have_text(["HEAD -> b"], timeout=WAIT)
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="a.ipynb").click()
        expect(panel.locator(".txgit-lab-status")).to_contain_text("on main at", timeout=WAIT)
        expect(heads).to_have_text(["HEAD -> main"], timeout=WAIT)
