"""An ASGI guard on request body size, counted as the body arrives (请求体大小限制)."""

from __future__ import annotations

import json

from engine.settings import LIMITS


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Answers 413 when a request body is larger than the limit, with or without Content-Length."""

    def __init__(self, app, limit: int | None = None):
        self.app, self.limit = app, limit or LIMITS.body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        received, started = 0, False

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send):
        body = json.dumps({"error": "request_too_large", "detail": [{
            "path": "body", "message": f"the request body is larger than {self.limit} bytes (MEDPAY_MAX_BODY_BYTES); "
            "split it or use batch settlement", "message_zh": f"请求体超过 {self.limit} 字节；请拆分或使用批量结算"}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
