"""Built-ins come from one registry; the checker's typed tree is what later stages read (内置函数登记表)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from evalkit import by_id, make_policy

from engine.compile.functions import (
    FUNCTIONS,
    Builtin,
    call,
    elementwise_compile,
    register,
    shown_whole,
    unregister,
)
from engine.dsl import typed as T
from engine.dsl.checker import NUMERIC, Checker
from engine.errors import PolicyError
from engine.explain.trace import build_trace
from engine.plan.rounds import aggregations_of
from engine.run.evaluate import evaluate


def _double_check(c: Checker, node, scope: str, in_before: bool) -> T.Call:
    c.arity(node, 1, 1)
    arg = c.typed_arg(node.args[0], scope, in_before, NUMERIC, node.function)
    return call(node, NUMERIC, scope, "elementwise", (arg,), money=arg.money)


@pytest.fixture
def double():
    """A toy built-in, added through the registry alone: double(x) = 2x."""
    entry = register(Builtin("double", _double_check, elementwise_compile(lambda x: x * 2.0),
                             ("twice the value", "两倍的值"), trace=shown_whole))
    yield entry
    unregister("double")


SITUATION = {"period": "2024", "entities": {
    "institution": [{"id": "H1", "level": 1}],
    "claim": [{"id": "c1", "institution": "H1", "total_cost": 1234.56, "admit_date": "2024-03-01"},
              {"id": "c2", "institution": "H1", "total_cost": 0.015, "admit_date": "2024-03-02"}],
}}


def test_a_new_builtin_is_one_registry_entry(double):
    policy = make_policy({
        "claim": {"twice": {"formula": "double(total_cost) - 1", "unit": "yuan"}},
        "institution": {"twice_total": {"formula": "sum(double(claim.total_cost))", "unit": "yuan"}},
    })
    result = evaluate(policy, SITUATION, build_trace)
    twice = by_id(result, "claim", "twice")
    assert twice["c1"] == float(Fraction("1234.56") * 2 - 1)  # 2468.12
    assert twice["c2"] == float(round(Fraction("0.015") * 2 - 1, 2))  # -0.97
    total = float(Fraction("1234.56") * 2 + Fraction("0.015") * 2)  # 2469.15
    assert by_id(result, "institution", "twice_total")["H1"] == pytest.approx(total, abs=0.005)
    step = result["trace"]["claim.c1.twice"]
    assert step["inputs"] == {"double(total_cost)": 2469.12}
    assert step["functions"] == {"double": {"en": "twice the value", "zh": "两倍的值"}}


def test_without_its_entry_the_builtin_is_unknown():
    assert "double" not in FUNCTIONS
    with pytest.raises(PolicyError) as err:
        make_policy({"claim": {"twice": "double(total_cost)"}})
    assert err.value.diagnostics[0].code == "unknown_function"


def test_the_toy_builtin_is_type_checked(double):
    with pytest.raises(PolicyError) as err:
        make_policy({"claim": {"twice": "double(admit_date)"}})
    diag = err.value.diagnostics[0]
    assert diag.code == "type" and "double" in diag.en and "double" in diag.zh


def test_every_builtin_entry_is_complete():
    for name, entry in FUNCTIONS.items():
        assert entry.name == name
        assert entry.explain[0] and entry.explain[1]
    aggregations = {n for n, e in FUNCTIONS.items() if e.partial}
    assert aggregations == {"sum", "count", "mean", "min", "max", "any", "all"}


def test_the_typed_tree_resolves_names_levels_and_money():
    policy = make_policy({
        "claim": {"share": {"formula": "total_cost * rate + institution.level", "unit": "yuan"}},
        "institution": {"spent": {"formula": 'sum(claim.share where claim.setting == "inpatient")',
                                  "unit": "yuan"}},
    }, parameters={"rate": "50%"})
    share = policy.plan.by_key[("claim", "share")].checked.node
    assert isinstance(share, T.Binary) and share.op == "+" and share.entity == "claim"
    product, level = share.left, share.right
    assert isinstance(product.left, T.Var) and product.left.path == () and product.left.money is True
    assert isinstance(product.right, T.Param) and product.right.name == "rate"
    assert product.money is True
    assert isinstance(level, T.Var) and level.owner == "institution" and level.path == ("institution",)
    spent = policy.plan.by_key[("institution", "spent")]
    node = spent.checked.node
    assert isinstance(node, T.Call) and node.kind == "aggregate" and node.child == "claim"
    assert node.path == ("institution",) and node.entity == "institution" and node.money is True
    assert node.args[0].entity == "claim" and isinstance(node.where, T.Compare)
    [agg] = aggregations_of(spent, "claim")
    assert agg.node is node and agg.path == ["institution"]
    assert not any(isinstance(v, dict) for v in vars(spent.checked).values())  # no side table
