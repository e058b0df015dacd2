"""The FastAPI application: cities, evaluate, validate, health, reload (接口)."""

from __future__ import annotations

import logging
import os
import secrets
import traceback
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import __version__
from engine.api import describe
from engine.api.evaluation import evaluated, situation_data
from engine.api.limits import BodyLimit
from engine.api.models import ErrorBody, Result, Situation, ValidateRequest, ValidateResponse, demo_examples
from engine.compile.build import load_policy_text
from engine.errors import LimitExceeded, PolicyCheckFailed, PolicyError, SituationError
from engine.period import parse_period
from engine.policy.publish import audit_entries, publish
from engine.policy.registry import POLICY_DIR, UnknownCity
from engine.policy.store import PolicyStore

log = logging.getLogger("medpay.api")
COMMON_ERRORS = {
    422: {"model": ErrorBody, "description": "the request has faults; each names its JSON path"},
    413: {"model": ErrorBody, "description": "the request is larger than a limit (MEDPAY_MAX_BODY_BYTES, MEDPAY_MAX_ROWS)"},
    503: {"model": ErrorBody, "description": "the evaluation took longer than MEDPAY_MAX_EVAL_SECONDS"},
}
ERRORS = {404: {"model": ErrorBody, "description": "unknown city"},
          422: {"model": ErrorBody, "description": "the situation has faults; each names its JSON path"}}


def _path(loc: tuple) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _error(status: int, kind: str, faults: list[dict], headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "detail": faults}, headers=headers)


def create_app(policy_dir: Path | str | None = None, watch: bool | None = None) -> FastAPI:
    """Build the app over a policy folder; with `watch`, changed files are reloaded by themselves."""
    store = PolicyStore(Path(policy_dir or POLICY_DIR))
    if watch if watch is not None else os.environ.get("MEDPAY_WATCH", "1") == "1":
        store.watch(float(os.environ.get("MEDPAY_WATCH_INTERVAL", "1.0")))
    app = FastAPI(title="medpay", version=__version__, responses=COMMON_ERRORS,
                  description="Medical-insurance payment rules engine — 医保支付规则引擎. "
                              "Policies are data; every value can be explained with its clause.")
    app.state.store = store
    app.add_middleware(BodyLimit)


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
        return _error(exc.status, "limit_exceeded", [{"path": exc.setting, "message": exc.en, "message_zh": exc.zh}])

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # the exception's message may quote input values: log its type and frames only
        log.error("unexpected %s on %s\n%s", type(exc).__name__, request.url.path,
                  "".join(traceback.format_tb(exc.__traceback__)))
        return _error(500, "internal_error", [{"path": "", "message": "an internal error occurred; it has been logged",
                                               "message_zh": "服务内部错误，已记录"}])

    @app.get("/healthz", summary="liveness and the policy versions served")
    def healthz() -> dict:
        reg = store.registry
        return {"status": "ok", "engine": __version__,
                "policies": {c: [p.meta.version for p in v] for c, v in sorted(reg.cities.items())},
                "refused_files": sorted(Path(f).name for f in reg.problems),
                "refused": {Path(f).name: [d.render() for d in diags[:5]] for f, diags in sorted(reg.problems.items())}}

    @app.get("/v1/cities", summary="policies loaded, with their versions")
    def cities() -> list[dict]:
        return [describe.city_summary(v) for _, v in sorted(store.registry.cities.items())]

    @app.get("/v1/cities/{city}", summary="one policy: parameters, variables, tables", responses=ERRORS)
    def city(city: str, version: str | None = None) -> dict:
        versions = store.registry.cities.get(city)
        if not versions:
            raise UnknownCity(city)
        chosen = next((p for p in versions if p.meta.version == version), versions[-1])
        return describe.policy_detail(chosen)

    @app.post("/v1/cities/{city}/evaluate", summary="evaluate a situation", response_model=Result,
              responses=ERRORS)
    async def evaluate_city(city: str,
                            situation: Annotated[Situation, Body(openapi_examples=demo_examples())],
                            trace: Annotated[bool, Query(description="explain every value")] = False) -> Any:
        data = situation_data(situation)
        return await evaluated(store.registry.pick(city, parse_period(data.get("period"))), data, trace)

    @app.post("/v1/validate", summary="check a policy's YAML text (nothing is loaded)",
              response_model=ValidateResponse)
    def validate(request_body: ValidateRequest) -> dict:
        try:
            policy = load_policy_text(request_body.text, request_body.file, store.folder)
        except PolicyError as err:
            return {"valid": False, "policy": None, "diagnostics": [d.to_dict() for d in err.diagnostics],
                    "assumed": []}
        return {"valid": True, "policy": policy.meta.to_dict(), "diagnostics": [], "assumed": policy.assumed}

    def forbidden(authorization: str | None) -> JSONResponse | None:
        token = os.environ.get("MEDPAY_ADMIN_TOKEN")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if token and secrets.compare_digest(given.encode(), token.encode()):
            return None
        return _error(403, "forbidden", [{"path": "authorization",
                                          "message": "this needs the admin token (MEDPAY_ADMIN_TOKEN) as a Bearer token",
                                          "message_zh": "此操作需要管理令牌（MEDPAY_ADMIN_TOKEN）"}])

    @app.post("/v1/admin/reload", summary="re-check changed policy files and serve those that load",
              responses={403: {"model": ErrorBody}})
    def reload(authorization: Annotated[str | None, Header()] = None) -> Any:
        return forbidden(authorization) or store.reload()

    @app.put("/v1/admin/policies/{file_name}", summary="publish a policy file: checked, archived, then served",
             responses={403: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    def publish_policy(file_name: str, request_body: ValidateRequest,
                       authorization: Annotated[str | None, Header()] = None) -> Any:
        refused = forbidden(authorization)
        if refused:
            return refused
        entry = publish(store.folder, file_name, request_body.text)
        if not entry["accepted"]:
            return JSONResponse(status_code=422, content={"error": "policy_refused", "detail": [
                {"path": d.get("path") or "text", "message": d["message"], "message_zh": d.get("message_zh"),
                 "line": d.get("line"), "column": d.get("column")} for d in entry["diagnostics"]]})
        store.reload()
        return entry

    @app.get("/v1/admin/audit", summary="the publishing log: every attempt with its hash, time and diagnostics",
             responses={403: {"model": ErrorBody}})
    def audit_log(authorization: Annotated[str | None, Header()] = None, last: int = 100) -> Any:
        return forbidden(authorization) or {"entries": audit_entries(store.folder, max(1, min(last, 10_000))),
                                            "events": store.events[-100:]}

    # the web page for policy staff at /, with its demo endpoints (engine/api/web.py)
    from engine.api import web
    app.include_router(web.router)

    return app
