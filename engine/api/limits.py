"""The ASGI guard in front of the app: body size counted as it arrives, the engine version header,
and a request log of sizes and timings only — never ids or amounts (请求体限制与请求日志)."""

from __future__ import annotations

import json
import logging
import time

from engine import __version__
from engine.settings import LIMITS

log = logging.getLogger("medpay.api")
VERSION_HEADER = (b"x-medpay-engine", __version__.encode())


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
        received, started, status = 0, False, 0
        began = time.perf_counter()

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", []), VERSION_HEADER]}
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                status = 413
                await self._refuse(send)
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s %s in=%sB %.1fms", scope["method"], scope["path"], status, received,
                     (time.perf_counter() - began) * 1000)

    async def _refuse(self, send):
        body = json.dumps({"error": "request_too_large", "detail": [{
            "path": "body", "message": f"the request body is larger than {self.limit} bytes (MEDPAY_MAX_BODY_BYTES); "
            "split it or use batch settlement", "message_zh": f"请求体超过 {self.limit} 字节；请拆分或使用批量结算"}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
