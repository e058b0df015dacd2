"""The ASGI guards in front of the app and the budgets of heavy requests (请求体限制、主机校验与资源预算).

- `BodyLimit`: body size counted as it arrives, the engine version header, a request log of route,
  status, sizes and timings only, and the last word on an unexpected error (a 500 whose log holds
  the exception's type and frames, never its message, which may quote the request).
- `HostCheck`: only the configured Host names (MEDPAY_ALLOWED_HOSTS) are answered (DNS rebinding).
- `HeavySlots`: at most MEDPAY_MAX_HEAVY_REQUESTS heavy requests at once; the next one gets a 503.
- `run_with_deadline`: a function in a forked process, killed when its time is up.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable
from typing import Any

from engine import __version__
from engine.errors import LimitExceeded
from engine.settings import LIMITS

log = logging.getLogger("medpay.api")
VERSION_HEADER = (b"x-medpay-engine", __version__.encode())
RETRY_AFTER_SECONDS = 2


class _TooLarge(Exception):
    pass


def error_body(kind: str, path: str, en: str, zh: str) -> bytes:
    """The project's error shape as JSON bytes."""
    return json.dumps({"error": kind, "detail": [{"path": path, "message": en, "message_zh": zh}]},
                      ensure_ascii=False).encode()


async def send_json(send, status: int, body: bytes, headers: list | None = None) -> None:
    """A whole JSON answer from an ASGI guard."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            VERSION_HEADER, *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def route_of(scope: dict) -> str:
    """The route template (`/v1/cities/{city}/evaluate`), never the path as sent, which is request content."""
    route = scope.get("route")
    return getattr(route, "path", None) or "(no route)"


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
        received, started, status, sent = 0, False, 0, 0
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
            nonlocal started, status, sent
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", []), VERSION_HEADER]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                status = 413
                await self._refuse(send)
        except Exception as exc:  # noqa: BLE001 - the last word: a 500, logged without the message
            log.error("unexpected %s on %s %s\n%s", type(exc).__name__, scope.get("method"), route_of(scope),
                      "".join(traceback.format_tb(exc.__traceback__)))
            if not started:
                status = 500
                await send_json(send, 500, error_body("internal_error", "", "an internal error occurred; it has been logged",
                                                      "服务内部错误，已记录"))
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s %s in=%sB out=%sB %.1fms", scope["method"], route_of(scope), status, received, sent,
                     (time.perf_counter() - began) * 1000)

    async def _refuse(self, send):
        await send_json(send, 413, error_body(
            "request_too_large", "body", f"the request body is larger than {self.limit} bytes (MEDPAY_MAX_BODY_BYTES); "
            "split it or use batch settlement", f"请求体超过 {self.limit} 字节；请拆分或使用批量结算"))


def host_name(value: bytes) -> str:
    """`example.org:8000` → `example.org`; `[::1]:8000` → `::1`."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class HostCheck:
    """Answers 400 to a request whose Host header is not one of the allowed names (any port)."""

    def __init__(self, app, allowed: list[str]):
        self.app, self.allowed = app, {h.lower().strip("[]") for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or "*" in self.allowed:
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"")
        if host_name(host) in self.allowed:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await send_json(send, 400, error_body(
            "host_not_allowed", "headers.host",
            "this Host is not served here; add it to MEDPAY_ALLOWED_HOSTS to allow it",
            "不接受此 Host；如需访问请将其加入 MEDPAY_ALLOWED_HOSTS"))


class HeavySlots:
    """A count of heavy requests in progress (used on the event loop only, so no lock)."""

    def __init__(self, most: int | None = None):
        self.most, self.busy = most or LIMITS.heavy_requests, 0

    def __enter__(self) -> HeavySlots:
        if self.busy >= self.most:
            raise LimitExceeded(
                "MEDPAY_MAX_HEAVY_REQUESTS",
                f"{self.most} large requests are already being computed (MEDPAY_MAX_HEAVY_REQUESTS); "
                f"retry in {RETRY_AFTER_SECONDS} s, or use batch settlement",
                f"已有 {self.most} 个大请求正在计算；请 {RETRY_AFTER_SECONDS} 秒后重试或使用批量结算", status=503)
        self.busy += 1
        return self

    def __exit__(self, *exc) -> None:
        self.busy -= 1


def _child(conn, fn: Callable, args: tuple) -> None:
    """In the worker process: the function's answer, or the type of its exception (never its message)."""
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as a type name
        conn.send(("error", type(exc).__name__))
    finally:
        conn.close()


def _context():
    """Worker processes are forked: they start in milliseconds with the engine already imported, run
    only the loader, and end with os._exit (no server state is touched or flushed)."""
    return multiprocessing.get_context("fork")


class WorkerFailed(Exception):
    """The worker process died or raised; the argument is a type name, never a message."""


def run_with_deadline(fn: Callable, args: tuple, seconds: float, setting: str) -> Any:
    """fn(*args) in a separate process; past `seconds` the process is killed and a 503 names `setting`.
    Blocking: call it from a worker thread."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(sender, fn, args), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise LimitExceeded(setting, f"the check took longer than {seconds:g} s ({setting}) and was stopped",
                                f"校验超过 {seconds:g} 秒，已停止", status=503)
        try:
            kind, value = receiver.recv()
        except EOFError:
            raise WorkerFailed(f"exit code {process.exitcode}") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
    if kind == "error":
        raise WorkerFailed(value)
    return value
