"""Small valid policies and the exact results they must give (正确政策用例).

tests/good_policies/NAME.yaml is evaluated on the situation of NAME.json; the result's
entities must equal the file's `entities` exactly (money rounded to the fen, everything
else unrounded), and its warnings the file's `warnings` (code, path, rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.compile.build import load_policy_file
from engine.run.evaluate import evaluate

FOLDER = Path(__file__).parent / "good_policies"
POLICIES = sorted(FOLDER.glob("*.yaml"))


def test_enough_policies():
    assert len(POLICIES) >= 3
    assert all(p.with_suffix(".json").is_file() for p in POLICIES)


@pytest.mark.parametrize("file", POLICIES, ids=lambda p: p.stem)
def test_good_policy(file):
    case = json.loads(file.with_suffix(".json").read_text(encoding="utf-8"))
    policy = load_policy_file(file)
    result = evaluate(policy, case["situation"])
    assert result["entities"] == case["entities"]
    warnings = [{k: w[k] for k in ("code", "path", "rows") if k in w} for w in result["warnings"]]
    assert warnings == case["warnings"]
    # the result is plain JSON
    assert json.loads(json.dumps(result["entities"])) == case["entities"]
