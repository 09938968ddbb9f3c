"""Debian's chromium driven by Playwright, shared by the browser tests (`txgit serve`, the JupyterLab panel).

Importing this module skips the importing test module where no browser can run: no chromium (Playwright's
own browser downloads cannot be reached here) or no Playwright. `.ci/run` installs both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("TXGIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
if not CHROMIUM:
    pytest.skip("no chromium on this machine (apt-get install chromium); Playwright's own browser downloads "
                "cannot be reached here", allow_module_level=True)


@contextmanager
def browser_page(width: int, height: int, timeout_ms: float | None = None) -> Iterator[Any]:
    """A page in headless chromium; fails the test if the page raised a JavaScript error."""
    with sync_api.sync_playwright() as p:
        # without --disable-background-networking chromium keeps dialling Google's hosts, refused here
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            if timeout_ms is not None:
                page.set_default_timeout(timeout_ms)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page
            assert not errors, errors
        finally:
            browser.close()
