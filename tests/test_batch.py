"""Batch settlement gives the same numbers as `medpay run` on the same data, for every city."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.batch.settle import folder_period, settle
from engine.batch.synth import synthesize
from engine.policy.registry import Registry
from engine.run.evaluate import evaluate

REGISTRY = Registry.load()
CITIES = sorted(c for c in REGISTRY.cities if not c.startswith("_"))


def as_situation(folder, period: str) -> dict:
    """The Parquet files of a synthetic city-year as a JSON situation (nulls left out)."""
    entities = {}
    for name in ("fund", "community", "institution", "account", "claim"):
        if not (folder / f"{name}.parquet").is_file():  # account rows only where the policy has account inputs
            continue
        rows = pq.read_table(folder / f"{name}.parquet").to_pylist()
        entities[name] = [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items() if v is not None}
                          for r in rows]
    return {"period": period, "entities": entities}


@pytest.mark.parametrize("city", CITIES)
def test_batch_equals_run(city, tmp_path):
    policy = REGISTRY.pick(city, None)
    data, out = tmp_path / "data", tmp_path / "out"
    meta = synthesize(policy, 3000, data, seed=7)
    summary = settle(policy, data, out, folder_period(data, None))
    assert summary.rows["claim"] == 3000
    result = evaluate(policy, json.loads(json.dumps(as_situation(data, meta["period"]))))
    compared = 0
    for entity, rows in result["entities"].items():
        batch = pq.read_table(out / f"{entity}.parquet").to_pydict()
        assert batch["id"] == [r["id"] for r in rows], entity
        for name in rows[0]:
            if name == "id":
                continue
            got, want = batch[name], [r[name] for r in rows]
            if isinstance(want[0], float):
                np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float),
                                           rtol=0, atol=1e-9, err_msg=f"{entity}.{name}")
            else:
                assert got == want, f"{entity}.{name}"
            compared += 1
    assert compared > 30


@pytest.mark.parametrize("city", CITIES)
def test_chunks_give_the_same_results(city, tmp_path):
    """Claims settled in five chunks (chains kept whole) equal one chunk, value for value."""
    policy = REGISTRY.pick(city, None)
    data = tmp_path / "data"
    synthesize(policy, 3000, data, seed=5)
    period = folder_period(data, None)
    whole = settle(policy, data, tmp_path / "one", period)
    parts = settle(policy, data, tmp_path / "five", period, chunk_rows=700)
    assert whole.rows == parts.rows
    assert not list(tmp_path.glob(".medpay-spill-*")), "the chunks' spilled results are removed"
    for file in sorted((tmp_path / "one").glob("*.parquet")):
        a = pq.read_table(file).sort_by("id").to_pydict()
        b = pq.read_table(tmp_path / "five" / file.name).sort_by("id").to_pydict()
        assert a.keys() == b.keys()
        for name in a:
            assert a[name] == b[name], f"{file.stem}.{name}"


FILTER_ON_A_PARENT_FORMULA = """
policy:
  id: filter_on_parent
  name: {zh: 测试市, en: Testville}
  notice: 测〔2024〕1号
  issuer: 测试市医疗保障局
  effective: {from: 2024-01-01}
variables:
  institution:
    holder: {label: {zh: 持有, en: holder}, type: bool, formula: level == 1, source: 一}
    signed_visits:
      label: {zh: 签约就诊, en: signed visits}
      formula: count(claim where claim.signed_institution.holder, via=signed_institution)
      source: 一
"""


@pytest.mark.parametrize("chunk", [None, 2])
def test_an_aggregation_filtering_on_a_parent_formula_waits_for_it(tmp_path, chunk):
    """A count of claims whose signed institution is a holder (a formula of the institution) needs
    `holder` before the claim pass: H1 is a holder and two claims name it (a KeyError before)."""
    import pyarrow as pa

    from engine.compile.build import load_policy_text
    policy = load_policy_text(FILTER_ON_A_PARENT_FORMULA, "filter_on_parent.yaml")
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": ["H1", "H2"], "level": [1.0, 3.0]}), data / "institution.parquet")
    pq.write_table(pa.table({"id": ["c1", "c2", "c3"], "institution": ["H1", "H2", "H2"],
                             "signed_institution": ["H1", "H1", None], "total_cost": [100.0, 200.0, 300.0],
                             "discharge_date": pa.array([dt.date(2024, 3, 1)] * 3)}), data / "claim.parquet")
    settle(policy, data, tmp_path / "out", folder_period(data, "2024"), chunk_rows=chunk)
    got = pq.read_table(tmp_path / "out" / "institution.parquet").to_pydict()
    assert got["signed_visits"] == [2.0, 0.0] and got["holder"] == [True, False]
