"""An ASGI middleware that rejects request bodies over a size limit with 413."""

from __future__ import annotations

import json


class BodySizeLimit:
    """Read each request body up to `max_bytes` before the app sees it; reject larger ones.

    The declared Content-Length is checked first; a body sent without one (chunked) is
    counted as it arrives, so neither kind can make the server buffer more than the limit.
    """

    def __init__(self, app, max_bytes: int):
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reject(send, 400, "the Content-Length header is not a number")
                return
            if int(declared) > self.max_bytes:
                await _reject(send, 413, self._too_large(int(declared)))
                return

        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _reject(send, 413, self._too_large(size, at_least=True))
                return
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        amount = f"at least {size}" if at_least else str(size)
        return f"the request body has {amount} bytes; the limit is {self.max_bytes}"


async def _reject(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
