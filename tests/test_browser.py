"""`txgit serve` in a real headless browser: Debian's chromium driven by Playwright.

The browser clicks through the page as a person would: the graph, a commit,
the diff form. It is skipped only where no browser can be installed (no
/usr/bin/chromium, or Playwright missing); `.ci/run` installs both.
"""

from __future__ import annotations

import pytest

from browserutil import browser_page
from test_visual import served  # noqa: F401  (the fixture: `txgit serve` on a fresh history)


@pytest.fixture
def page():
    with browser_page(1200, 900) as pg:
        yield pg


def test_browser_graph_commit_and_diff(served, page, tmp_path):  # noqa: F811
    url, ids = served
    page.goto(url)
    # the graph: one dot per commit, drawn (non-zero size) and lined up with its row of text
    dots = page.locator("svg circle.txgit-node")
    assert dots.count() == 3
    for i in range(3):
        commit = dots.nth(i).get_attribute("data-commit")
        dot, row = dots.nth(i).bounding_box(), page.locator(f".txgit-row[data-commit='{commit}']").bounding_box()
        assert dot["width"] > 0 and row["y"] <= dot["y"] + dot["height"] / 2 <= row["y"] + row["height"]
    assert page.locator("svg path.txgit-edge").count() == 2
    assert "HEAD -> main" in page.locator(".txgit-log").inner_text()
    page.screenshot(path=str(tmp_path / "graph.png"), full_page=True)

    # click a commit id: its page lists the variables
    page.locator(f"a.txgit-id[data-commit='{ids['c2']}']").first.click()
    page.wait_for_url(f"**/commit/{ids['c2']}")
    assert page.locator("table.txgit-vars tr[data-var='df'] td").nth(1).inner_text() == "DataFrame 1000x14"
    # and from there, its diff with the parent
    page.locator("a.txgit-diff-parent").click()
    page.wait_for_url("**/diff?*")
    df = page.locator(".txgit-var[data-var='df']").inner_text()
    assert "shape 1000x12 -> 1000x14" in df and "columns added: g (float64), h" in df
    assert "max abs difference 0.125" in page.locator(".txgit-var[data-var='arr']").inner_text()
    assert page.locator(".txgit-var[data-var='model'] tr[data-param='C']").inner_text().split() == ["C", "1.0", "0.05"]

    # the form on the first page: pick two commits, submit
    page.goto(url)
    page.select_option("select[name='a']", ids["c1"])
    page.select_option("select[name='b']", ids["c3"])
    page.click("form.txgit-diff-form button[type='submit']")
    page.wait_for_url("**/diff?*")
    assert [v.get_attribute("data-var") for v in page.locator(".txgit-var").all()] == ["y2"]
    assert "1 added, 0 removed, 0 changed" in page.locator(".txgit-diff").inner_text()
