"""A TCP proxy that injects faults at chosen moments: pass traffic, black-hole it, answer HTTP 503, or
cut a connection right after the client sent a chosen byte pattern (its reply never arrives)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

WINDOW_BYTES = 256 * 1024
Mode = str
"""`pass`, `blackhole` (accept, forward nothing, answer nothing), `http503`."""


class FaultProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.mode: Mode = "pass"
        self.cut_when: Callable[[bytes], bool] | None = None
        """Armed by `cut_after`: the connection whose client data matches is cut after forwarding it."""
        self.cuts = 0
        self.accepted = 0
        """Connections accepted so far (in any mode): how often clients tried."""
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    def cut_after(self, matches: Callable[[bytes], bool]) -> None:
        """Cut the next connection whose client data `matches`, after the server got that data."""
        self.cut_when = matches

    def set_mode(self, mode: Mode) -> None:
        """Change the mode; connections open in the old mode are closed so the new one applies."""
        self.mode = mode
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def _accept(self) -> None:
        while True:
            client, _ = self.server.accept()
            self.accepted += 1
            with self._lock:
                self._open.append(client)
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: Mode) -> None:
        if mode == "blackhole":
            return  # held open, never answered, until the mode changes
        if mode == "http503":
            with contextlib.suppress(OSError):
                client.recv(65536)
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.append(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()
        self._pipe(client, upstream, upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: socket.socket | None) -> None:
        """Copy src to dst; on client data that matches the armed cut, forward it and cut both sides."""
        recent = b""  # a client's command can span reads: match on what it sent lately, not one read
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
                recent = (recent + data)[-WINDOW_BYTES:]
                check = self.cut_when
                if upstream is not None and check is not None and check(recent):
                    self.cut_when, self.cuts = None, self.cuts + 1
                    break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
