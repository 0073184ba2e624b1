"""A loopback HTTP server for the tests that play a webhook receiver (or any peer that is POSTed to).

Each POST's body is read and handed, with the request handler, to the test's function: it returns the
status to answer with an empty body, or None when it wrote the whole response itself."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OnPost = Callable[[BaseHTTPRequestHandler, bytes], int | None]


class LoopbackServer:
    """Serves POSTs on 127.0.0.1 from a thread until `stop()`; port 0 picks a free one."""

    def __init__(self, on_post: OnPost, port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = on_post(self, body)
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
