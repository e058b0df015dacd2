"""The policy officer's workspace (草案工作台):

- `POST /v1/cities/{city}/impact`: a draft (or parameter overrides) against the served policy, over
  the city-year in the server's data folder (MEDPAY_IMPACT_DATA; never a path from the request),
  per institution and fund; JSON or an .xlsx;
- `GET /v1/cities/{city}/source`: the served policy's YAML text, to open as a draft;
- `POST /v1/cities/{city}/draft/evaluate`: a draft tried on a situation beside the served version.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from engine.api.evaluation import HEAVY, check_answer_size, situation_data
from engine.api.limits import WorkerFailed, run_with_deadline
from engine.api.models import ErrorBody, Situation
from engine.batch.impact import Impact, changes, impact, with_overrides, write_xlsx
from engine.batch.settle import folder_period
from engine.compile.build import load_policy_text
from engine.errors import LimitExceeded, PolicyCheckFailed, PolicyError, SituationError
from engine.policy.loader import served_table_reader
from engine.policy.registry import UnknownCity
from engine.run.evaluate import evaluate
from engine.settings import LIMITS

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def data_folder() -> Path | None:
    """The city-year folder impacts run on: MEDPAY_IMPACT_DATA, set by whoever runs the server."""
    given = os.environ.get("MEDPAY_IMPACT_DATA")
    return Path(given) if given else None


def impact_seconds() -> float:
    return float(os.environ.get("MEDPAY_MAX_IMPACT_SECONDS", "300"))


class ImpactRequest(BaseModel):
    """A draft policy text and/or parameter overrides; neither means the served policy against itself."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=2_000_000, description="the draft policy's YAML text")
    file: str = Field("draft.yaml", max_length=200, description="a name to show in diagnostics")
    parameters: dict[str, Any] = Field(default_factory=dict, description="parameter name → value, on every date")
    variable: str | None = Field(None, max_length=200, description="the amount compared (default: the policy's "
                                 "last money formula per institution×fund)")
    version: str | None = Field(None, description="the served version compared (default: the one in force)")


def _job(served, text: str | None, file: str, folder: Path, tables, overrides: dict, variable: str | None,
         data: Path, spreadsheet: bool, work: Path) -> dict:
    """Runs in a worker process: the draft loaded, both settled, compared (faults as data)."""
    try:
        draft = load_policy_text(text, file, folder, tables) if text is not None else served
        draft = with_overrides(draft, overrides)
        result = impact(served, draft, data, folder_period(data, None), variable, work)
    except PolicyError as err:
        return {"fault": "draft_invalid", "detail": [d.to_dict() for d in err.diagnostics]}
    except SituationError as err:
        return {"fault": "invalid_impact", "detail": [f.to_dict() for f in err.faults]}
    except PolicyCheckFailed as err:
        return {"fault": "policy_check_failed", "detail": err.failures}
    answer: dict[str, Any] = {"impact": result.to_dict()}
    if spreadsheet:
        answer["xlsx"] = _xlsx_bytes(result)
    return answer


def _xlsx_bytes(result: Impact) -> bytes:
    with tempfile.TemporaryDirectory(prefix="medpay-xlsx-") as tmp:
        path = Path(tmp) / "impact.xlsx"
        write_xlsx(result, path)
        return path.read_bytes()


def _check_size(text: str, admin: bool) -> None:
    """A draft is held to the size limit of /v1/validate (the publishing limit with the admin token)."""
    most = LIMITS.policy_bytes if admin else LIMITS.validate_bytes
    size = len(text.encode("utf-8"))
    if size > most:
        raise LimitExceeded("MEDPAY_MAX_VALIDATE_BYTES", f"the draft has {size} bytes, more than {most}",
                            f"草案文本 {size} 字节，超过 {most} 字节的限额")


def _refused(status: int, kind: str, path: str, en: str, zh: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind,
                                                     "detail": [{"path": path, "message": en, "message_zh": zh}]})


@router.post("/v1/cities/{city}/impact", summary="a draft's effect on each institution and fund over a city-year",
             responses={404: {"model": ErrorBody, "description": "unknown city or version"},
                        409: {"model": ErrorBody, "description": "no data folder is configured (MEDPAY_IMPACT_DATA)"},
                        422: {"model": ErrorBody, "description": "the draft, an override or the data has faults"}})
async def impact_endpoint(city: str, request: Request, body: Annotated[ImpactRequest, Body()],
                          format: Annotated[str, Query(pattern="^(json|xlsx)$")] = "json",
                          authorization: Annotated[str | None, Header()] = None) -> Any:
    from engine.api.app import has_token
    store = request.app.state.store
    versions = store.registry.cities.get(city)
    if not versions:
        raise UnknownCity(city)
    data = data_folder()
    if data is None or not data.is_dir():
        return _refused(409, "no_impact_data", "MEDPAY_IMPACT_DATA",
                        "the server has no city-year data folder for impacts: set MEDPAY_IMPACT_DATA",
                        "服务器未配置影响测算所用的数据目录：请设置 MEDPAY_IMPACT_DATA")
    served = versions[-1] if body.version is None else next((p for p in versions if p.meta.version == body.version),
                                                            None)
    if served is None:
        known = ", ".join(p.meta.version for p in versions)
        return _refused(404, "unknown_version", "version", f"{city} has no version '{body.version}' "
                        f"(versions: {known})", f"{city} 没有版本“{body.version}”（现有版本：{known}）")
    if body.text is not None:
        _check_size(body.text, has_token(authorization))
    try:
        # the results folder belongs to this process: removed even when the worker is killed on time
        with HEAVY, tempfile.TemporaryDirectory(prefix="medpay-impact-") as work:
            args = (served, body.text, body.file, store.folder, served_table_reader(store.registry.cities),
                    body.parameters, body.variable, data, format == "xlsx", Path(work))
            answer = await run_in_threadpool(run_with_deadline, _job, args, impact_seconds(),
                                             "MEDPAY_MAX_IMPACT_SECONDS")
    except WorkerFailed:
        return _refused(422, "impact_failed", "text", "the impact could not be computed: check the draft",
                        "无法完成影响测算：请检查草案")
    if "fault" in answer:
        return JSONResponse(status_code=422, content={"error": answer["fault"], "detail": answer["detail"]})
    if format == "xlsx":
        name = f"impact-{city}-{answer['impact']['period']}.xlsx"
        return Response(answer["xlsx"], media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return answer["impact"]


@router.get("/v1/cities/{city}/source", summary="the served policy file's YAML text, to open as a draft",
            responses={404: {"model": ErrorBody, "description": "unknown city or version"}})
def source(city: str, request: Request, version: str | None = None) -> Any:
    versions = request.app.state.store.registry.cities.get(city)
    if not versions:
        raise UnknownCity(city)
    policy = versions[-1] if version is None else next((p for p in versions if p.meta.version == version), None)
    if policy is None:
        known = ", ".join(p.meta.version for p in versions)
        return _refused(404, "unknown_version", "version", f"{city} has no version '{version}' (versions: {known})",
                        f"{city} 没有版本“{version}”（现有版本：{known}）")
    path = Path(policy.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return _refused(404, "no_source", "city", f"the file of {city} {policy.meta.version} cannot be read",
                        f"无法读取 {city} {policy.meta.version} 的政策文件")
    return {"city": city, "version": policy.meta.version, "file": path.name, "text": text}


class DraftRun(BaseModel):
    """A draft's YAML text and a situation to evaluate with it (and with the served version)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=2_000_000, description="the draft policy's YAML text")
    file: str = Field("draft.yaml", max_length=200)
    situation: Situation
    version: str | None = Field(None, description="the served version compared (default: the latest)")


def _draft_job(served, text: str, file: str, folder: Path, tables, data: dict) -> dict:
    """Runs in a worker process: the draft loaded and the situation evaluated with it and with the
    served version (a fault of either side is reported as data)."""
    try:
        draft = load_policy_text(text, file, folder, tables)
    except PolicyError as err:
        return {"fault": "draft_invalid", "detail": [d.to_dict() for d in err.diagnostics]}
    return {"draft": _evaluated(draft, data), "served": _evaluated(served, data),
            "changed": changes(served, draft), "warnings": [d.to_dict() for d in draft.warnings],
            "versions": {"served": served.meta.version, "draft": draft.meta.version}}


def _evaluated(policy, data: dict) -> dict:
    try:
        check_answer_size(policy, data)
        return {"ok": True, "result": evaluate(policy, data)}
    except SituationError as err:
        return {"ok": False, "detail": [{**f.to_dict(), "path": f"situation.{f.path}" if f.path else "situation"}
                                        for f in err.faults]}
    except PolicyCheckFailed as err:
        return {"ok": False, "detail": err.failures}
    except LimitExceeded as err:
        return {"ok": False, "detail": [{"path": err.setting, "message": err.en, "message_zh": err.zh}]}


@router.post("/v1/cities/{city}/draft/evaluate", summary="try a draft on a situation, beside the served version",
             responses={404: {"model": ErrorBody, "description": "unknown city or version"},
                        422: {"model": ErrorBody, "description": "the draft does not load"}})
async def draft_evaluate(city: str, request: Request, body: Annotated[DraftRun, Body()],
                         authorization: Annotated[str | None, Header()] = None) -> Any:
    from engine.api.app import has_token
    store = request.app.state.store
    versions = store.registry.cities.get(city)
    if not versions:
        raise UnknownCity(city)
    served = versions[-1] if body.version is None else next((p for p in versions if p.meta.version == body.version),
                                                            None)
    if served is None:
        return _refused(404, "unknown_version", "version", f"{city} has no version '{body.version}'",
                        f"{city} 没有版本“{body.version}”")
    _check_size(body.text, has_token(authorization))
    args = (served, body.text, body.file, store.folder, served_table_reader(store.registry.cities),
            situation_data(body.situation))
    try:
        with HEAVY:
            answer = await run_in_threadpool(run_with_deadline, _draft_job, args,
                                             LIMITS.validate_seconds + LIMITS.eval_seconds,
                                             "MEDPAY_MAX_EVAL_SECONDS")
    except WorkerFailed:
        return _refused(422, "policy_unreadable", "text", "the draft could not be checked: simplify its nesting",
                        "无法校验此草案：请减少嵌套层级")
    if "fault" in answer:
        return JSONResponse(status_code=422, content={"error": answer["fault"], "detail": answer["detail"]})
    return answer
