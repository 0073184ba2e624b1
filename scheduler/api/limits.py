"""Bounds on what one request may cost: body size (counted while reading, before parsing) and
per-API-key rate limits (a token bucket in Redis, so every API process shares it)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from shared.errors import ErrorCode, error_body

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: a body past its route's limit is answered 413 before the app parses any of it.

    The body is read here, chunk by chunk, up to the limit, then handed to the app from memory."""

    def __init__(self, app: ASGIApp, default_bytes: int, batch_bytes: int) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.batch_bytes = batch_bytes

    def limit_for(self, path: str) -> tuple[int, str]:
        if path.rstrip("/") == "/v1/batches":
            return self.batch_bytes, "REELFORGE_BATCH_MAX_BODY_BYTES"
        return self.default_bytes, "REELFORGE_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit, setting)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit, setting)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # the app waits for a disconnect after the body: pass it through
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _too_large(send: Send, limit: int, setting: str) -> None:
    body = json.dumps(
        error_body(ErrorCode.PAYLOAD_TOO_LARGE, f"body: larger than {limit} bytes ({setting})", "body")
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Atomically refill by elapsed time, then take one token; answers 0 (allowed) or the ms until one is free.
_TAKE = """
local rate, burst, now_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + (now_ms - at) * rate / 1000)
local wait_ms = 0
if tokens >= 1 then tokens = tokens - 1 else wait_ms = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait_ms
"""


class RateLimiter:
    """A token bucket per key: `burst` at once, then `rate_per_s` sustained."""

    def __init__(self, client: redis.Redis, rate_per_s: float, burst: int) -> None:
        self.r = client
        self.rate_per_s = rate_per_s
        self.burst = burst

    def wait_s(self, key: str) -> float:
        """0 when the call may proceed (a token was taken); else seconds until one is free."""
        if self.rate_per_s <= 0:
            return 0.0
        now_ms = int(time.time() * 1000)
        wait_ms = self.r.eval(_TAKE, 1, key, self.rate_per_s, self.burst, now_ms)
        return math.ceil(int(wait_ms) / 1000) if wait_ms else 0.0
