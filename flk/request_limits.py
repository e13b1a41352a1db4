"""Bounded request bodies for every flk HTTP API: an oversized body is refused (413) before it is read
to the end, and a JSON body nested deeper than any contract needs is refused (400) before a JSON
parser recurses into it (Python's parser raises RecursionError near 1 000 levels: a 500).

A pure ASGI middleware (no body is parsed here, only scanned), installed by
``flk.api.install_platform`` on every service; limits from ``PlatformSettings``
(``FLK_HTTP_MAX_BODY_BYTES``, ``FLK_HTTP_MAX_JSON_DEPTH``).
"""
from __future__ import annotations

import re

import orjson

#: the bytes that matter for nesting: brackets, quotes, and the backslash that can escape a quote
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def json_nesting_depth(body: bytes, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays/objects in ``body`` (brackets inside strings do not count); stops
    counting once ``stop_above`` is exceeded. Malformed JSON is measured as far as it goes (the parser
    then rejects it)."""
    depth = deepest = 0
    in_string = False
    skip = -1
    for match in _STRUCTURE.finditer(body):
        at = match.start()
        if at == skip:  # the character after a backslash in a string
            continue
        char = body[at]
        if in_string:
            if char == 0x5C:  # backslash
                skip = at + 1
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif char in (0x5D, 0x7D):
            depth -= 1
    return deepest


class RequestLimits:
    """ASGI middleware: 413 for a body over ``max_body_bytes`` (by Content-Length, or while it streams),
    400 for a JSON body nested deeper than ``max_json_depth``; other requests pass untouched."""

    def __init__(self, app, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        #: an oversized body up to this size is read and dropped before the 413, so that a client that
        #: sends it whole reads the answer; a larger one gets the answer at once and a closed connection
        self.drain_bytes = max(8 * 1024 * 1024, 4 * max_body_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > self.max_body_bytes:
            # read (and drop) a moderately oversized body so that the client, still sending, gets the
            # answer; beyond the drain limit answer at once and close the connection
            if declared <= self.drain_bytes:
                await _drain(receive)
            await _refuse(send, 413, "payload_too_large",
                          f"the request body is {declared} bytes; at most {self.max_body_bytes} are accepted",
                          close=declared > self.drain_bytes)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE") and length is None \
                and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                more = message.get("more_body", False)
                drained = await _drain(receive, self.drain_bytes - size) if more else True
                await _refuse(send, 413, "payload_too_large",
                              f"the request body exceeds {self.max_body_bytes} bytes", close=not drained)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (content_type == b"application/json" or content_type.endswith(b"+json")):
            depth = json_nesting_depth(body, stop_above=self.max_json_depth)
            if depth > self.max_json_depth:
                await _refuse(send, 400, "bad_request",
                              f"the JSON body is nested deeper than {self.max_json_depth} levels")
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _drain(receive, budget: int | None = None) -> bool:
    """Read and drop the rest of the body; False if it goes beyond ``budget`` bytes (or disconnects)."""
    read = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        read += len(message.get("body", b""))
        if budget is not None and read > budget:
            return False
        if not message.get("more_body", False):
            return True


async def _refuse(send, status: int, error: str, detail: str, close: bool = False) -> None:
    body = orjson.dumps({"error": error, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
