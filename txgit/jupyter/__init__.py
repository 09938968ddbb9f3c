"""txgit in JupyterLab: a side panel with the notebook's history, diffs and actions.

Two halves, both in the txgit wheel (``pip install 'txgit[jupyter]'``, no npm step):

- the lab extension (prebuilt JavaScript in ``share/jupyter/labextensions/txgit-labextension``, built from
  ``labextension/`` of the source tree) draws the panel for the active notebook;
- this server extension answers its read-only questions (``<base_url>txgit/history``, ``commit``,
  ``diff``, ``variable``, and ``refs``: whether anything moved since it drew) through :mod:`txgit.jupyter.api`.

Actions (checkout, branch, commit, pull, push, auto-commit) run in the notebook's own kernel through
the ``%txgit`` magic (:mod:`txgit.jupyter.kernel`), so they follow the magic's rules exactly.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "txgit.jupyter"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from txgit.jupyter.handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("txgit: the panel's handlers are at %stxgit/", server_app.web_app.settings["base_url"])
