"""A webhook receiver for the fault suite: verifies every signature with the reference package,
records each delivery by its `webhook-id`, and can be down (not listening) then up on the same port."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.secret: str | None = None
        self.completed: dict[str, set[str]] = defaultdict(set)
        """job id -> the distinct webhook-ids of its job.completed events."""
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.record(dict(self.headers.items()), body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def record(self, headers: dict[str, str], body: bytes) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            Webhook(str(self.secret)).verify(body, lowered)
        except Exception:
            with self.lock:
                self.bad_signatures += 1
            return
        event = json.loads(body)
        if event["type"] == "job.completed":
            with self.lock:
                self.completed[event["data"]["id"]].add(lowered["webhook-id"])
