"""The FastAPI application: cities, evaluate, validate, health, reload (接口)."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import __version__, settings
from engine.api import contract, describe
from engine.api.evaluation import HEAVY, evaluated, evaluated_many, situation_data
from engine.api.explanation import router as explain_router
from engine.api.impact import router as impact_router
from engine.api.limits import RETRY_AFTER_SECONDS, BodyLimit, HostCheck, WorkerFailed, run_with_deadline
from engine.api.models import (
    ErrorBody,
    ManyResults,
    Result,
    Situation,
    Situations,
    ValidateRequest,
    ValidateResponse,
    demo_examples,
)
from engine.api.statements import router as statements_router
from engine.compile.build import load_policy_text
from engine.errors import Diagnostic, LimitExceeded, PolicyCheckFailed, PolicyError, SituationError
from engine.period import parse_period
from engine.policy.loader import served_table_reader
from engine.policy.publish import audit, audit_entries, now_text, publish
from engine.policy.registry import POLICY_DIR, UnknownCity
from engine.policy.store import PolicyStore
from engine.policy.values import TableReader
from engine.settings import LIMITS

log = logging.getLogger("medpay.api")
COMMON_ERRORS = {
    422: {"model": ErrorBody, "description": "the request has faults; each names its JSON path"},
    400: {"model": ErrorBody, "description": "the Host header is not one of MEDPAY_ALLOWED_HOSTS"},
    413: {"model": ErrorBody, "description": "the request or its answer is larger than a limit (MEDPAY_MAX_BODY_BYTES, "
                                             "MEDPAY_MAX_ROWS, MEDPAY_MAX_RESPONSE_VALUES, MEDPAY_MAX_VALIDATE_BYTES)"},
    503: {"model": ErrorBody, "description": "busy (MEDPAY_MAX_HEAVY_REQUESTS) or over a time budget "
                                             "(MEDPAY_MAX_EVAL_SECONDS, MEDPAY_MAX_VALIDATE_SECONDS); retry later"},
}
PUBLISH_PREFIX = "/v1/admin/policies/"
ERRORS = {404: {"model": ErrorBody, "description": "unknown city"},
          422: {"model": ErrorBody, "description": "the situation has faults; each names its JSON path"}}


def _path(loc: tuple) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class Forbidden(Exception):
    """An admin endpoint was called without the admin token (the attempt is audited)."""


def _brief(name: str, d: Diagnostic) -> str:
    """A diagnostic in one line, without the excerpt of the file (health is public)."""
    loc = d.location
    where = f"{name}:{loc.line}:{loc.column or 1}" if loc.line else name
    return f"{where}: {d.severity}[{d.code}]: {d.en} / {d.zh}"


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


class RefusalLog:
    """At most `per_minute` refused admin calls are written to the audit log each minute; the
    number left out is written with the next one (a flood cannot fill the disk)."""

    def __init__(self, per_minute: int = 120):
        self.per_minute, self.window, self.written, self.left_out = per_minute, 0, 0, 0
        self._lock = threading.Lock()

    def admit(self, entry: dict) -> bool:
        with self._lock:
            minute = int(time.monotonic() // 60)
            if minute != self.window:
                self.window, self.written = minute, 0
            if self.written >= self.per_minute:
                self.left_out += 1
                return False
            self.written += 1
            if self.left_out:
                entry["not_logged_before"], self.left_out = self.left_out, 0
            return True


def _error(status: int, kind: str, faults: list[dict], headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "detail": faults}, headers=headers)


def validation(text: str, file: str, folder: Path, tables: TableReader) -> dict:
    """The /v1/validate answer for one policy text (run in a worker process with a deadline); a draft
    may use only the tables the served policies loaded (`tables`): no file is read for it."""
    try:
        policy = load_policy_text(text, file, folder, tables)
    except PolicyError as err:
        return {"valid": False, "policy": None, "diagnostics": [d.to_dict() for d in err.diagnostics],
                "assumed": [], "warnings": [d.to_dict() for d in getattr(err, "warnings", [])]}
    return {"valid": True, "policy": policy.meta.to_dict(), "diagnostics": [], "assumed": policy.assumed,
            "warnings": [d.to_dict() for d in policy.warnings]}


def has_token(authorization: str | None) -> bool:
    """Whether the Authorization header carries the configured admin token (MEDPAY_ADMIN_TOKEN)."""
    token = os.environ.get("MEDPAY_ADMIN_TOKEN")
    given = (authorization or "").removeprefix("Bearer ").strip()
    return bool(token) and secrets.compare_digest(given.encode(), token.encode())


def create_app(policy_dir: Path | str | None = None, watch: bool | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """Build the app over a policy folder; with `watch`, changed files are reloaded by themselves.
    `allowed_hosts` (default MEDPAY_ALLOWED_HOSTS) are the Host names answered, with any port."""
    store = PolicyStore(Path(policy_dir or POLICY_DIR))
    if watch if watch is not None else os.environ.get("MEDPAY_WATCH", "1") == "1":
        store.watch(float(os.environ.get("MEDPAY_WATCH_INTERVAL", "1.0")))
    app = FastAPI(title="medpay", version=__version__, responses=COMMON_ERRORS, docs_url=None, redoc_url=None,
                  description="Medical-insurance payment rules engine — 医保支付规则引擎. "
                              "Policies are data; every value can be explained with its clause.")
    app.state.store = store
    app.add_middleware(GZipMiddleware, minimum_size=LIMITS.gzip_min_bytes)
    origins = settings.cors_origins()
    if origins:  # default: none — the page and the API share one origin
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], expose_headers=["X-Medpay-Policy"], max_age=600)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts() if allowed_hosts is None else allowed_hosts)
    app.add_middleware(BodyLimit)  # outermost: it logs every request, refused or not, and catches the unexpected

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        faults = [{"path": _path(tuple(e.get("loc", ()))) or "body", "message": e.get("msg", "invalid"),
                   "message_zh": "请求格式不正确"} for e in exc.errors()]
        return _error(422, "invalid_request", faults)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # a body that is not even text: same answer as any unreadable body
            return _error(422, "invalid_request", [{"path": "body", "message": "the body is not valid UTF-8 JSON",
                                                    "message_zh": "请求体不是有效的 UTF-8 JSON"}])
        return _error(exc.status_code, "http_error", [{"path": request.url.path, "message": str(exc.detail),
                                                       "message_zh": "请求无法处理"}], headers=exc.headers)

    @app.exception_handler(SituationError)
    async def bad_situation(request: Request, exc: SituationError):
        return _error(422, "invalid_situation", [f.to_dict() for f in exc.faults])

    @app.exception_handler(PolicyCheckFailed)
    async def check_failed(request: Request, exc: PolicyCheckFailed):
        return _error(422, "policy_check_failed", exc.failures)

    @app.exception_handler(UnknownCity)
    async def unknown_city(request: Request, exc: UnknownCity):
        known = ", ".join(sorted(store.registry.cities))
        return _error(404, "unknown_city", [{"path": "city", "message": f"no policy '{exc.args[0]}' (known: {known})",
                                             "message_zh": f"没有政策“{exc.args[0]}”"}])

    @app.exception_handler(LimitExceeded)
    async def over_limit(request: Request, exc: LimitExceeded):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        return _error(exc.status, "limit_exceeded", [{"path": exc.setting, "message": exc.en, "message_zh": exc.zh}],
                      headers=headers)

    # an unexpected exception is answered and logged (type and frames only) by BodyLimit

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden):
        return _error(403, "forbidden", [{"path": "authorization",
                                          "message": "this needs the admin token (MEDPAY_ADMIN_TOKEN) as a Bearer token",
                                          "message_zh": "此操作需要管理令牌（MEDPAY_ADMIN_TOKEN）"}])


    @app.get("/healthz", summary="liveness and the policy versions served")
    def healthz() -> dict:
        reg = store.registry
        return {"status": "ok", "engine": __version__,
                "policies": {c: [p.meta.version for p in v] for c, v in sorted(reg.cities.items())},
                "refused_files": sorted(Path(f).name for f in reg.problems),
                "refused": {Path(f).name: [_brief(Path(f).name, d) for d in diags[:5]]
                            for f, diags in sorted(reg.problems.items())},
                "fallbacks": dict(sorted(store.fallbacks.items())),
                "skipped": store.skipped}

    @app.get("/v1/cities", summary="policies loaded, with their versions")
    def cities() -> list[dict]:
        return [describe.city_summary(v) for _, v in sorted(store.registry.cities.items())]

    def chosen_policy(city: str, version: str | None) -> Any:
        """The latest version of a city's policy, or the one named; an unknown version is a 404 answer."""
        versions = store.registry.cities.get(city)
        if not versions:
            raise UnknownCity(city)
        if version is None:
            return versions[-1]
        chosen = next((p for p in versions if p.meta.version == version), None)
        if chosen is None:
            known = ", ".join(p.meta.version for p in versions)
            return _error(404, "unknown_version", [{"path": "version",
                                                    "message": f"{city} has no version '{version}' (versions: {known})",
                                                    "message_zh": f"{city} 没有版本“{version}”（现有版本：{known}）"}])
        return chosen

    @app.get("/v1/cities/{city}", summary="one policy: parameters, variables, tables", responses=ERRORS)
    def city(city: str, version: str | None = None) -> Any:
        chosen = chosen_policy(city, version)
        return chosen if isinstance(chosen, JSONResponse) else describe.policy_detail(chosen)

    @app.get("/v1/cities/{city}/entities", responses=ERRORS,
             summary="the input contract: each entity's fields, types, allowed values, defaults, required-ness, links")
    def entities(city: str, version: str | None = None) -> Any:
        chosen = chosen_policy(city, version)
        if isinstance(chosen, JSONResponse):
            return chosen
        return {"policy": chosen.meta.to_dict(), "entities": contract.describe_entities(chosen)}

    schema_answer = {200: {"description": "a JSON Schema (draft 2020-12)",
                           "content": {"application/schema+json": {"schema": {"type": "object"}}}}}

    @app.get("/v1/cities/{city}/schema", responses={**ERRORS, **schema_answer}, response_class=JSONResponse,
             summary="a JSON Schema of a situation for this city, to validate a request before sending it")
    def schema(city: str, version: str | None = None) -> Any:
        chosen = chosen_policy(city, version)
        if isinstance(chosen, JSONResponse):
            return chosen
        return JSONResponse(contract.situation_schema(chosen), media_type="application/schema+json")

    @app.post("/v1/cities/{city}/evaluate", summary="evaluate a situation", response_model=Result,
              responses=ERRORS)
    async def evaluate_city(city: str,
                            situation: Annotated[Situation, Body(openapi_examples=demo_examples())],
                            trace: Annotated[bool, Query(description="explain every value")] = False) -> Any:
        data = situation_data(situation)
        return await evaluated(store.registry.pick(city, parse_period(data.get("period"))), data, trace)

    @app.post("/v1/cities/{city}/evaluate-many", response_model=ManyResults, responses=ERRORS,
              summary="evaluate many situations in one call: one answer per situation, in order")
    async def evaluate_many(city: str, body: Situations,
                            trace: Annotated[bool, Query(description="explain every value")] = False) -> Any:
        if city not in store.registry.cities:
            raise UnknownCity(city)
        items = [situation_data(s) for s in body.situations]
        return await evaluated_many(lambda data: store.registry.pick(city, parse_period(data.get("period"))),
                                    items, trace)

    @app.post("/v1/validate", summary="check a policy's YAML text (nothing is loaded)",
              response_model=ValidateResponse)
    async def validate(request_body: ValidateRequest,
                       authorization: Annotated[str | None, Header()] = None) -> dict:
        most = LIMITS.policy_bytes if has_token(authorization) else LIMITS.validate_bytes
        size = len(request_body.text.encode("utf-8"))
        if size > most:
            raise LimitExceeded("MEDPAY_MAX_VALIDATE_BYTES", f"the policy text has {size} bytes, more than {most} "
                                "(MEDPAY_MAX_VALIDATE_BYTES without the admin token, MEDPAY_MAX_POLICY_BYTES with it)",
                                f"政策文本 {size} 字节，超过 {most} 字节的限额")
        try:
            with HEAVY:
                return await run_in_threadpool(run_with_deadline, validation,
                                               (request_body.text, request_body.file, store.folder,
                                                served_table_reader(store.registry.cities)),
                                               LIMITS.validate_seconds, "MEDPAY_MAX_VALIDATE_SECONDS")
        except WorkerFailed as err:  # the checker itself gave up (e.g. nesting too deep): the text's fault
            log.warning("validate: the check failed with %s (text %s bytes)", err.args[0], size)
            return _error(422, "policy_unreadable", [{
                "path": "text", "message": "the policy text could not be checked: simplify its nesting and anchors",
                "message_zh": "无法校验此政策文本：请减少嵌套层级与锚点引用"}])

    def admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        """Let the admin token through; audit every other attempt (never the token given)."""
        if has_token(authorization):
            return
        token = os.environ.get("MEDPAY_ADMIN_TOKEN")
        given = (authorization or "").removeprefix("Bearer ").strip()
        route = request.scope.get("route")
        entry = {"time": now_text(), "action": "auth", "endpoint": f"{request.method} {getattr(route, 'path', '?')}",
                 "outcome": "forbidden", "client": _client(request),
                 "reason": "no admin token configured" if not token else "wrong token" if given else "no token"}
        if refusals.admit(entry):
            try:
                audit(store.folder, entry)
            except OSError as err:
                log.error("cannot audit a refused admin call: %s", type(err).__name__)
        raise Forbidden

    refusals = RefusalLog()

    admin_only = {"dependencies": [Depends(admin)], "responses": {403: {"model": ErrorBody}}}

    @app.post("/v1/admin/reload", summary="re-check changed policy files and serve those that load", **admin_only)
    def reload() -> Any:
        return store.reload()

    def table_files() -> frozenset[str]:
        """Names of files in the policy folder that served policies read as tables."""
        folder = store.folder.resolve()
        return frozenset(path.name for versions in store.registry.cities.values() for p in versions
                         for t in p.tables.values() if (path := (folder / t.file).resolve()).parent == folder)

    @app.put(PUBLISH_PREFIX + "{file_name:path}", summary="publish a policy file: checked, archived, then served",
             dependencies=[Depends(admin)],
             responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    def publish_policy(file_name: str, request_body: ValidateRequest, request: Request,
                       replace: Annotated[bool, Query(description="replace the version this same file serves")] = False
                       ) -> Any:
        # the route's pattern stops before a trailing newline: judge the name as it was sent
        file_name = request.scope.get("path", "").partition(PUBLISH_PREFIX)[2] or file_name
        entry = publish(store.folder, file_name, request_body.text, replace=replace, served=store.served,
                        protected=table_files(), client=_client(request))
        if entry["outcome"] != "accepted":
            status = {"conflict": 409, "write_failed": 503}.get(entry["outcome"], 422)
            return JSONResponse(status_code=status, content={"error": f"policy_{entry['outcome']}", "detail": [
                {"path": d.get("path") or "text", "message": d["message"], "message_zh": d.get("message_zh"),
                 "line": d.get("line"), "column": d.get("column")} for d in entry["diagnostics"]]})
        store.reload()
        return entry

    @app.get("/v1/admin/audit", summary="the publishing log: every attempt with its hash, time and diagnostics",
             **admin_only)
    def audit_log(last: int = 100) -> Any:
        return {"entries": audit_entries(store.folder, max(1, min(last, 10_000))), "events": store.events[-100:],
                "skipped": store.skipped}

    vendor = "/static/vendor"

    @app.get("/docs", include_in_schema=False)
    def swagger_page() -> HTMLResponse:
        """Swagger UI from the app's own copy (no CDN: it works offline)."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="medpay — API",
                                   swagger_js_url=f"{vendor}/swagger-ui/swagger-ui-bundle.js",
                                   swagger_css_url=f"{vendor}/swagger-ui/swagger-ui.css",
                                   swagger_favicon_url=f"{vendor}/swagger-ui/favicon-32x32.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        """ReDoc from the app's own copy, without web fonts (it works offline)."""
        return get_redoc_html(openapi_url=app.openapi_url, title="medpay — API",
                              redoc_js_url=f"{vendor}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{vendor}/swagger-ui/favicon-32x32.png", with_google_fonts=False)

    # the web page for policy staff at /, with its demo endpoints (engine/api/web.py)
    from engine.api import web
    app.include_router(web.router)
    app.include_router(explain_router)
    app.include_router(statements_router)
    app.include_router(impact_router)

    return app
