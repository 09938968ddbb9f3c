"""jupyter_server handlers of the panel: ``GET <base_url>txgit/<what>?root=...``, JSON answers.

Thin: each parses its query and calls :mod:`txgit.jupyter.api` in a worker thread (git reads do not
block the server); a :class:`TxgitError` (a typo'd revision, a folder that is no workspace) answers
400 with its one line as ``{"error": ...}``. Authenticated like every Jupyter API (token or cookie), and
authorized as reading files (``contents``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from txgit.errors import TxgitError
from txgit.jupyter import api


class _TxgitHandler(APIHandler):
    # reading a workspace is reading files: a server that limits who may read its contents limits this too
    auth_resource = "contents"

    def answer(self) -> Callable[[], dict[str, Any]]:
        raise NotImplementedError

    def arg(self, name: str, default: str | None = None) -> str:
        value = self.get_query_argument(name, default)
        if value is None:
            raise TxgitError(f"missing query argument {name!r}")
        return value

    def int_arg(self, name: str, default: int) -> int:
        value = self.get_query_argument(name, str(default))
        try:
            return int(value)
        except ValueError:
            raise TxgitError(f"{name} must be a number, not {value[:40]!r}") from None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            call = self.answer()
            body = await asyncio.get_running_loop().run_in_executor(None, call)
        except TxgitError as e:
            self.set_status(400)
            body = {"error": str(e)}
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


class HistoryHandler(_TxgitHandler):
    def answer(self) -> Callable[[], dict[str, Any]]:
        root, start, count = self.arg("root"), self.int_arg("start", 0), self.int_arg("count", api.PAGE_SIZE)
        branch, head = self.arg("branch", ""), self.arg("head", "")  # the kernel's (empty: HEAD's)
        return lambda: api.history(root, start, count, branch=branch or None, head=head or None)


class CommitHandler(_TxgitHandler):
    def answer(self) -> Callable[[], dict[str, Any]]:
        root, rev = self.arg("root"), self.arg("rev", "HEAD")
        return lambda: api.commit(root, rev)


class DiffHandler(_TxgitHandler):
    def answer(self) -> Callable[[], dict[str, Any]]:
        root, a, b = self.arg("root"), self.arg("a"), self.arg("b")
        return lambda: api.diff(root, a, b)


class VariableHandler(_TxgitHandler):
    def answer(self) -> Callable[[], dict[str, Any]]:
        root, name = self.arg("root"), self.arg("name")
        return lambda: api.variable(root, name)


class RefsHandler(_TxgitHandler):
    def answer(self) -> Callable[[], dict[str, Any]]:
        root = self.arg("root")
        return lambda: api.refs(root)


class CssHandler(_TxgitHandler):
    def answer(self) -> Callable[[], dict[str, Any]]:
        return lambda: {"css": api.css()}


ROUTES = {"history": HistoryHandler, "commit": CommitHandler, "diff": DiffHandler, "variable": VariableHandler,
          "refs": RefsHandler, "css": CssHandler}


def setup_handlers(web_app: Any) -> None:
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, "txgit", name), handler)
                                 for name, handler in ROUTES.items()])
