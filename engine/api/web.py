"""The web page for policy staff, and the small endpoints it uses (网页与演示数据).

`/` serves engine/api/static/index.html; `/static/…` its CSS and JavaScript (no build step, nothing
fetched from elsewhere). `/v1/demo` lists the demo situations (the worked examples in docs/demo/),
`/v1/demo/{name}` returns one, ready to post to /v1/cities/{city}/evaluate.
`/v1/cities/{city}/versions/{version}/evaluate` evaluates with one named version of a policy, so that
two versions can be compared on the same situation (the plain evaluate endpoint picks the version by
the situation's period).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from engine.api.evaluation import evaluated, situation_data
from engine.api.models import DEMO_DIR, ErrorBody, Result, Situation
from engine.policy.registry import UnknownCity

STATIC_DIR = Path(__file__).resolve().parent / "static"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ROW = re.compile(r"^\|\s*`([^`]+)\.json`\s*\|\s*([^|]*)\|\s*([^|]*)\|\s*([^|]*)\|")

router = APIRouter()
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _not_found(kind: str, path: str, en: str, zh: str) -> JSONResponse:
    return JSONResponse(status_code=404, content={"error": kind,
                                                  "detail": [{"path": path, "message": en, "message_zh": zh}]})


def _readme_rows(folder: Path) -> dict[str, dict]:
    """city, title and clauses of each demo, from the table in docs/demo/README.md."""
    readme = folder / "README.md"
    rows: dict[str, dict] = {}
    if not readme.is_file():
        return rows
    for line in readme.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line.strip())
        if m:
            clauses = [c.strip() for c in m.group(4).split(",") if c.strip()]
            rows[m.group(1)] = {"city": m.group(2).strip(), "title": m.group(3).strip(), "clauses": clauses}
    return rows


def demo_list(folder: Path = DEMO_DIR, cities: list[str] | None = None) -> list[dict]:
    """Every demo situation: name, city, title, clauses, period."""
    if not folder.is_dir():
        return []
    described = _readme_rows(folder)
    known = sorted(cities or [], key=len, reverse=True)
    out = []
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        row = described.get(file.stem, {})
        city = row.get("city") or next((c for c in known if file.stem.startswith(c + "-")), file.stem.split("-")[0])
        period = data.get("period") if isinstance(data, dict) else None
        title = re.sub(rf"\s*\({re.escape(file.stem)}\)$", "", row.get("title") or "") or file.stem
        out.append({"name": file.stem, "city": city, "title": title,
                    "clauses": row.get("clauses", []), "period": period if isinstance(period, str) else None,
                    "entities": sorted((data.get("entities") or {}) if isinstance(data, dict) else {})})
    return out


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/v1/demo", summary="demo situations (the worked examples), by name", tags=["web"])
def demos(request: Request) -> list[dict]:
    return demo_list(DEMO_DIR, list(request.app.state.store.registry.cities))


@router.get("/v1/demo/{name}", summary="one demo situation, ready to evaluate", tags=["web"],
            responses={404: {"model": ErrorBody, "description": "no such demo"}})
def demo(name: str) -> Any:
    file = DEMO_DIR / f"{name}.json"
    if len(name) > 200 or not NAME.match(name) or not file.is_file():  # a longer name is no file (not an OSError)
        return _not_found("unknown_demo", "name", f"no demo situation '{name}'", f"没有演示数据“{name}”")
    return JSONResponse(json.loads(file.read_text(encoding="utf-8")))


@router.post("/v1/cities/{city}/versions/{version}/evaluate", tags=["web"], response_model=Result,
             summary="evaluate a situation with one named version of the policy (for comparing versions)",
             responses={404: {"model": ErrorBody, "description": "unknown city or version"},
                        422: {"model": ErrorBody, "description": "the situation has faults"}})
async def evaluate_version(city: str, version: str, situation: Annotated[Situation, Body()], request: Request,
                           trace: Annotated[bool, Query(description="explain every value")] = False) -> Any:
    versions = request.app.state.store.registry.cities.get(city)
    if not versions:
        raise UnknownCity(city)
    policy = next((p for p in versions if p.meta.version == version), None)
    if policy is None:
        known = ", ".join(p.meta.version for p in versions)
        return _not_found("unknown_version", "version", f"{city} has no version '{version}' (versions: {known})",
                          f"{city} 没有版本“{version}”（现有版本：{known}）")
    return await evaluated(policy, situation_data(situation), trace)
