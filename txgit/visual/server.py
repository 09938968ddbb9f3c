"""``txgit serve``: a small local web page over a workspace, on 127.0.0.1 only.

Pages (server-rendered HTML, the same fragments as the notebook views):

    /                      the commit graph of every branch, remote-tracking branch and tag, and a form
                           to diff two commits
    /commit/<rev>          one commit: its variables, what was not saved, its code
    /diff?a=<rev>&b=<rev>  what changed inside each variable from a to b

Read-only: it never writes to the workspace. It answers only requests whose
Host header names the loopback address it listens on, so a web page elsewhere
cannot read it through DNS rebinding.
"""

from __future__ import annotations

import sys
import threading
import traceback
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from txgit.errors import TxgitError
from txgit.visual.views import CSS, CommitView, DiffView, LogView
from txgit.workspace import Workspace

HOST = "127.0.0.1"


def _href(commit_id: str) -> str:
    return f"/commit/{commit_id}"


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · txgit</title><style>{CSS}"
        " body { margin: 16px 24px; } h1 { font-size: 18px; } h2 { font-size: 15px; margin-top: 18px; }"
        " nav a { margin-right: 12px; } form select { max-width: 420px; }</style></head>"
        f"<body class='txgit-view'><nav><a href='/'>graph</a></nav>{body}</body></html>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: VisualServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        host = (self.headers.get("Host") or "").lower()
        if host not in self.server.allowed_hosts:
            self._send(HTTPStatus.MISDIRECTED_REQUEST, _page("wrong host", "<p>wrong host</p>"))
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            with self.server.lock:  # one pygit2 repository, one request at a time
                status, body = self._route(url.path, query)
        except TxgitError as e:  # a typo'd revision in the URL: one line, like the CLI
            status, body = HTTPStatus.NOT_FOUND, _page("error", f"<p class='txgit-error'>{escape(str(e))}</p>")
        except Exception as e:  # a bug: say so on the page and keep serving
            traceback.print_exc(file=sys.stderr)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, _page(
                "error", f"<p class='txgit-error'>internal error: {escape(type(e).__name__)}: {escape(str(e))}</p>")
        self._send(status, body)

    def _send(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _route(self, path: str, query: dict[str, str]) -> tuple[HTTPStatus, bytes]:
        ws = self.server.workspace
        if path == "/":
            return HTTPStatus.OK, self._index(ws)
        if path.startswith("/commit/"):
            rev = path[len("/commit/"):]
            view = CommitView(ws, rev, href=_href)
            links = "".join(f" <a class='txgit-diff-parent' href='/diff?a={quote(p)}&b={quote(view.info.id)}'>"
                            f"diff with parent {escape(p[:8])}</a>" for p in view.info.parents)
            return HTTPStatus.OK, _page(f"commit {view.info.short_id}",
                                        f"<h1>commit {escape(view.info.short_id)}</h1><div>{links}</div>{view.html()}")
        if path == "/diff":
            a, b = query.get("a") or "HEAD~1", query.get("b") or "HEAD"
            view = DiffView(ws, a, b, href=_href)
            return HTTPStatus.OK, _page(f"diff {a} {b}", f"<h1>diff</h1>{view.html()}")
        return HTTPStatus.NOT_FOUND, _page("not found", f"<p>no page {escape(path)}</p>")

    def _index(self, ws: Workspace) -> bytes:
        log = LogView(ws, href=_href)
        head = ws.head()
        where = f"on branch {ws.branch}" if ws.branch else "HEAD detached"
        if not log.commits:
            return _page("graph", f"<h1>{escape(str(ws.root))}</h1><p>{where}: no commits yet</p>")
        default_b = head.id if head is not None else log.commits[0].id
        default_a = head.parents[0] if head is not None and head.parents else default_b

        def options(selected: str) -> str:
            out = []
            for c in log.commits:
                refs = f" ({', '.join(log.refs[c.id])})" if log.refs[c.id] else ""
                label = f"{c.short_id}{refs} {c.summary}"
                sel = " selected" if c.id == selected else ""
                out.append(f"<option value='{c.id}'{sel}>{escape(label)}</option>")
            return "".join(out)

        form = (f"<form action='/diff' method='get' class='txgit-diff-form'>compare "
                f"<select name='a'>{options(default_a)}</select> with "
                f"<select name='b'>{options(default_b)}</select> <button type='submit'>diff</button></form>")
        return _page("graph", f"<h1>{escape(str(ws.root))}</h1><p>{where}, {len(log.commits)} commits</p>"
                              f"{form}<h2>history</h2>{log.html()}")


class VisualServer(ThreadingHTTPServer):
    """The web view of one workspace, listening on 127.0.0.1 (``port=0``: any free port)."""

    daemon_threads = True

    def __init__(self, workspace: Workspace, port: int = 0, *, verbose: bool = False) -> None:
        self.workspace = workspace
        self.verbose = verbose
        self.lock = threading.Lock()
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as e:
            raise TxgitError(f"cannot listen on {HOST}:{port}: {e.strerror or e}") from e
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> VisualServer:
        """Serve in a background thread (for notebooks and tests); :meth:`stop` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, name="txgit-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> VisualServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(workspace: Workspace, port: int = 0, *, verbose: bool = False) -> VisualServer:
    """A :class:`VisualServer` for ``workspace``, bound but not yet serving (``.start()`` or ``serve_forever()``)."""
    return VisualServer(workspace, port, verbose=verbose)
