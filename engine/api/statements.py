"""`POST /v1/cities/{city}/statement`: the clearing statements (清算单) of a situation — one
statement as printable HTML or .xlsx, or every statement and the fund summary in one zip.

The situation is evaluated as by /evaluate (same limits); the statements are made from its result.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from engine.api.evaluation import HEAVY, INLINE_ROWS, check_answer_size, situation_data
from engine.api.models import ErrorBody, Situation
from engine.period import parse_period
from engine.policy.spec import Policy
from engine.report.files import file_stem, statement_files, zipped
from engine.report.results import from_result
from engine.run.evaluate import evaluate

router = APIRouter()
MEDIA = {"html": "text/html; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "zip": "application/zip"}


@router.post("/v1/cities/{city}/statement", summary="clearing statements of a situation (HTML, .xlsx or a zip)",
             responses={200: {"content": {m: {} for m in MEDIA.values()},
                              "description": "the statement file (or a zip of every statement)"},
                        404: {"model": ErrorBody, "description": "unknown city, or no statement for this entity or id"},
                        422: {"model": ErrorBody, "description": "the situation has faults; each names its JSON path"}})
async def statement(city: str, request: Request, situation: Annotated[Situation, Body()],
                    entity: Annotated[str | None, Query(max_length=100, description="e.g. institution")] = None,
                    id: Annotated[str | None, Query(max_length=1000, description="the row's id")] = None,  # noqa: A002
                    format: Annotated[Literal["html", "xlsx", "zip"], Query()] = "zip") -> Any:  # noqa: A002
    data = situation_data(situation)
    policy = request.app.state.store.registry.pick(city, parse_period(data.get("period")))
    refused = _refusal(policy, entity, id, format)
    if refused is not None:
        return refused
    check_answer_size(policy, data)
    if sum(len(v) for v in data.get("entities", {}).values()) <= INLINE_ROWS:
        files = _files(policy, data, entity, id)
    else:
        with HEAVY:
            files = await run_in_threadpool(_files, policy, data, entity, id)
    return _answer(policy, files, entity, id, format)


def statement_outputs(policy: Policy, entity: str | None = None) -> list[str]:
    """Every computed value a statement of the policy shows or adds up (entity.variable): what a
    statement asks of a situation, whatever `outputs` the situation itself names."""
    wanted: set[str] = set()
    for spec in policy.statements.values():
        if entity is not None and spec.entity != entity:
            continue
        for section in spec.sections:
            for line in section.lines:
                if line.variable:
                    wanted.add(f"{spec.entity}.{line.variable}")
                if line.children:
                    wanted.add(".".join(line.children))
                for _, names in line.adds:
                    wanted.update(n if "." in n else f"{spec.entity}.{n}" for n in names)
                if line.bands:
                    wanted.update(f"{spec.entity}.{n}" for n in (line.bands.amount, line.bands.base) if n)
    computed = {f"{e.name}.{n}" for e in policy.model.entities.values() for n, v in e.variables.items()
                if not v.is_input}  # an input is shown as given (or left blank), never demanded
    return sorted(wanted & computed)


def _files(policy: Policy, data: dict, entity: str | None, row_id: str | None) -> dict[str, bytes] | None:
    """The statement files of the evaluated situation; None when the row is not in the result."""
    data = {**data, "outputs": statement_outputs(policy, entity if row_id is not None else None)}
    results = from_result(policy, evaluate(policy, data), data)
    if entity is not None and row_id is not None and row_id not in results.rows.get(entity, {}):
        return None
    return statement_files(results, entity, row_id)


def _answer(policy: Policy, files: dict[str, bytes] | None, entity: str | None, row_id: str | None,
            fmt: str) -> Response:
    if files is None:
        return _refused(404, "unknown_row", "query.id", f"the situation has no {entity} with id '{row_id}'",
                        f"情形中没有 id 为“{row_id}”的{entity}")
    headers = {"X-Medpay-Policy": f"{policy.id}@{policy.meta.version}"}
    if fmt == "zip":
        headers["Content-Disposition"] = f'attachment; filename="{policy.id}-statements.zip"'
        return Response(zipped(files), media_type=MEDIA["zip"], headers=headers)
    stem = file_stem(entity, row_id)
    if fmt == "xlsx":
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(stem)}.xlsx"
    return Response(files[f"{entity}/{stem}.{fmt}"], media_type=MEDIA[fmt], headers=headers)


def _refusal(policy: Policy, entity: str | None, row_id: str | None, fmt: str) -> JSONResponse | None:
    """A 4xx naming the query parameter at fault, before anything is computed."""
    if not policy.statements:
        return _refused(404, "no_statement", "city", f"{policy.id} declares no statement (statement:)",
                        f"{policy.id} 未定义清算单（statement）")
    if entity is not None and entity not in policy.statements:
        known = ", ".join(policy.statements)
        return _refused(404, "no_statement", "query.entity", f"{policy.id} has no statement per '{entity[:100]}' "
                        f"(statements: {known})", f"{policy.id} 没有按“{entity[:100]}”出具的清算单（现有：{known}）")
    if fmt != "zip" and (entity is None or row_id is None):
        return _refused(422, "invalid_request", "query.id" if entity else "query.entity",
                        "give entity and id for one statement as html or xlsx (or format=zip for every statement)",
                        "单张清算单（html 或 xlsx）需同时给出 entity 与 id；全部清算单请用 format=zip")
    return None


def _refused(status: int, kind: str, path: str, en: str, zh: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind,
                                                     "detail": [{"path": path, "message": en, "message_zh": zh}]})
