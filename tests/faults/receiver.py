"""A webhook receiver for the fault suite: verifies every signature with the reference package,
records each delivery by its `webhook-id`, and can be down (not listening) then up on the same port."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler

from standardwebhooks import Webhook

from tests.loopback import LoopbackServer


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.secret: str | None = None
        self.completed: dict[str, set[str]] = defaultdict(set)
        """job id -> the distinct webhook-ids of its job.completed events."""
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        self.server = LoopbackServer(self._answer, self.port)

    def down(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _answer(self, request: BaseHTTPRequestHandler, body: bytes) -> int:
        self.record(dict(request.headers.items()), body)
        return 200

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
