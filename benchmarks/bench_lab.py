"""The JupyterLab panel on a long history: `python benchmarks/run.py lab` (--quick: 300 commits).

A workspace of 2,000 commits (main, a branch off it and a merge back, a tag), then:

- the panel's history endpoint in Python (txgit.jupyter.api.history): the first page of 100 commits,
  cold (first call) and warm (median of 5), and every page one after another;
- for comparison, the whole graph at once as ``%txgit log`` draws it (txgit.visual.LogView), which is what
  the panel's paging avoids;
- the same first page over HTTP from a real JupyterLab server (median of 5);
- in headless chromium (when /usr/bin/chromium and Playwright are there): the panel's first render (click
  Refresh -> the first 100 rows drawn, through the kernel's status and the endpoint) and the time to
  scroll the whole history in, page by page.

Timings on the shared 2-core machines are noisy: read them as orders of magnitude, run it with nice.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

PAGE = 100


def make_history(root: Path, n: int) -> None:
    """n commits: main, a branch "exp" forked at a third and merged back at two thirds, a tag."""
    from txgit import Workspace

    ws = Workspace.init(root)
    ns: dict = {"__name__": "__main__"}
    made = 0
    fork, merge = n // 3, 2 * n // 3
    while made < n:
        ns["step"] = made
        if made % 10 == 0:
            ns["data"] = list(range(made % 97))
        ws.commit(ns, f"step {made}")
        made += 1
        if made == fork:
            ws.create_tag("v1")
            ws.create_branch("exp")
        if made == fork + (merge - fork) // 2:  # half the way: commits on exp, then back to main
            ws.checkout("exp", ns)
            for j in range(min(40, n - made - 1)):
                ns["exp_value"] = j
                ws.commit(ns, f"exp {j}")
                made += 1
            ws.checkout("main", ns)
            ns.pop("exp_value", None)
        if made == merge:
            ws.merge("exp", ns)
            made += 1


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def main(quick: bool = False) -> dict:
    from txgit import Workspace
    from txgit.jupyter import api
    from txgit.visual import LogView

    n = 300 if quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="txgit-bench-lab-"))
    out: dict = {"commits": n}
    try:
        root = tmp / "project"
        root.mkdir()
        t = time.perf_counter()
        make_history(root, n)
        total = len(Workspace(root).log(None, all_refs=True))
        print(f"history: {total} commits made in {time.perf_counter() - t:.1f} s")
        out["commits"] = total

        t = time.perf_counter()
        first = api.history(str(root), 0, PAGE)
        out["endpoint_first_page_cold_ms"] = _ms(time.perf_counter() - t)
        warm = []
        for _ in range(5):
            t = time.perf_counter()
            api.history(str(root), 0, PAGE)
            warm.append(time.perf_counter() - t)
        out["endpoint_first_page_ms"] = _ms(statistics.median(warm))
        t = time.perf_counter()
        pages = 0
        for start in range(0, total, PAGE):
            api.history(str(root), start, PAGE)
            pages += 1
        out["endpoint_all_pages_ms"] = _ms(time.perf_counter() - t)
        out["page_html_bytes"] = len(first["html"])
        t = time.perf_counter()
        whole = LogView(Workspace(root)).html()
        out["whole_graph_at_once_ms"] = _ms(time.perf_counter() - t)
        out["whole_graph_html_bytes"] = len(whole)
        print(f"endpoint (Python): first page of {PAGE}: {out['endpoint_first_page_cold_ms']} ms cold, "
              f"{out['endpoint_first_page_ms']} ms warm; all {pages} pages: {out['endpoint_all_pages_ms']} ms")
        print(f"the whole graph at once (%txgit log): {out['whole_graph_at_once_ms']} ms, "
              f"{out['whole_graph_html_bytes'] // 1024} KiB of HTML (a page: {out['page_html_bytes'] // 1024} KiB)")

        out.update(_through_lab(root, tmp, total))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _through_lab(root: Path, tmp: Path, total: int) -> dict:
    from labutil import jupyter_lab
    from test_lab_browser import notebook

    out: dict = {}
    notebook(root / "long.ipynb", ["%load_ext txgit"])
    with jupyter_lab(root, tmp / "home") as lab:
        r = quote(str(root))
        times = []
        for _ in range(6):
            t = time.perf_counter()
            status, page = lab.get(f"txgit/history?root={r}&start=0&count={PAGE}")
            times.append(time.perf_counter() - t)
            assert status == 200 and page["total"] == total, (status, page if status != 200 else page["total"])
        out["http_first_page_ms"] = _ms(statistics.median(times[1:]))
        print(f"endpoint over HTTP (JupyterLab server): first page: {out['http_first_page_ms']} ms (median of 5)")

        chromium = os.environ.get("TXGIT_CHROMIUM") or shutil.which("chromium")
        try:
            from playwright.sync_api import expect, sync_playwright
        except ImportError:
            chromium = None
        if not chromium:
            print("no chromium/Playwright: the browser's render times are not measured")
            return out
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                pg = browser.new_page(viewport={"width": 1500, "height": 950})
                pg.goto(f"{lab.url}lab/tree/long.ipynb?reset&token={lab.token}")
                pg.locator("li[data-id='txgit-panel']").click()
                panel = pg.locator("#txgit-panel")
                pg.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
                pg.keyboard.press("Shift+Enter")
                graph = panel.locator(".txgit-lab-graph")
                expect(graph).to_have_attribute("data-total", str(total), timeout=120_000)
                renders = []
                for _ in range(3):
                    pg.evaluate("document.querySelector('#txgit-panel .txgit-lab-graph').dataset.loaded = ''")
                    t = time.perf_counter()
                    panel.locator(".txgit-lab-refresh").click()
                    expect(graph).to_have_attribute("data-loaded", str(min(PAGE, total)), timeout=120_000)
                    renders.append(time.perf_counter() - t)
                out["browser_first_render_ms"] = _ms(statistics.median(renders))
                out["browser_page_fetch_and_insert_ms"] = float(graph.get_attribute("data-render-ms") or "nan")
                t = time.perf_counter()
                while graph.get_attribute("data-loaded") != str(total):
                    graph.evaluate("g => { g.scrollTop = g.scrollHeight; g.dispatchEvent(new Event('scroll')); }")
                    pg.wait_for_timeout(20)
                    if time.perf_counter() - t > 300:
                        raise TimeoutError("the panel did not load the whole history in 5 minutes")
                out["browser_scroll_whole_history_ms"] = _ms(time.perf_counter() - t)
                rows = panel.locator(".txgit-lab-graph .txgit-row").count()
                assert rows == total, (rows, total)
                print(f"browser (headless chromium): first render of {PAGE} rows: {out['browser_first_render_ms']} ms "
                      f"(median of 3; the page's fetch + insert: {out['browser_page_fetch_and_insert_ms']} ms); "
                      f"scrolling all {total} commits in: {out['browser_scroll_whole_history_ms']} ms")
            finally:
                browser.close()
    return out


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
