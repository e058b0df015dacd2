"""A policy described as JSON for the API: metadata, parameters, variables, tables (政策说明)."""

from __future__ import annotations

from engine.model.spec import text_dict
from engine.policy.spec import Policy


def city_summary(versions: list[Policy]) -> dict:
    latest = versions[-1]
    return {"id": latest.id, "name": {"zh": latest.meta.name.zh, "en": latest.meta.name.en},
            "notice": latest.meta.notice, "issuer": latest.meta.issuer,
            "versions": [{"version": p.meta.version, "notice": p.meta.notice,
                          "effective": p.meta.to_dict()["effective"]} for p in versions]}


def policy_detail(policy: Policy) -> dict:
    """Everything the policy page shows; every note and assumption reason as `{zh, en}`, and the
    assumed values again as `assumptions` (`assumed` keeps the one-line texts of `validate`)."""
    params = {}
    for name, p in policy.parameters.items():
        params[name] = {"label": vars(p.label), "unit": p.unit, "kind": p.kind,
                        "values": [{"from": v.start.isoformat(), "value": v.value, "source": v.source}
                                   for v in p.versions],
                        "source": p.source, "assumed": text_dict(p.assumed), "note": text_dict(p.note)}
    variables = []
    for entity in policy.model.entities.values():
        for v in entity.variables.values():
            if v.name in entity.links:
                continue
            variables.append({"entity": entity.name, "name": v.name, "label": vars(v.label), "type": v.type,
                              "unit": v.unit, "input": v.is_input,
                              "formula": " ".join(v.formula.split()) if v.formula else None,
                              "source": v.source, "assumed": text_dict(v.assumed), "note": text_dict(v.note)})
    tables = {name: {"label": vars(t.label), "key": t.key, "columns": list(t.columns), "file": t.file,
                     "rows": len(t.index), "source": t.source, "assumed": text_dict(t.assumed),
                     "note": text_dict(t.note)}
              for name, t in policy.tables.items()}
    checks = [c.describe() for c in policy.checks]
    return {"policy": policy.meta.to_dict(), "parameters": params, "variables": variables, "tables": tables,
            "checks": checks, "readings": [r.describe() for r in policy.readings],
            "stages": [{"entity": e, "variables": names} for e, names in policy.plan.stages()],
            "assumed": policy.assumed, "assumptions": [{"name": where, "reason": text_dict(why)}
                                                     for where, why in policy.assumptions],
            "digest": policy.digest, "statements": list(policy.statements)}
