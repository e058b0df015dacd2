"""The claim stages on Spark (local[2]) give the local engine's results: to the fen for money,
to 1e-9 (summation order) for other numbers — on the worked examples and on a 200,000-claim
synthetic city-year of every city. Skipped when pyspark or Java is missing (pip install '.[spark]')."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)

from engine.batch.settle import folder_period, settle  # noqa: E402
from engine.batch.synth import synthesize  # noqa: E402
from engine.policy.registry import Registry  # noqa: E402
from engine.spark.runner import settle_spark  # noqa: E402

ROOT = Path(__file__).resolve().parent
REGISTRY = Registry.load()
CITIES = sorted(c for c in REGISTRY.cities if not c.startswith("_"))
WORKED = sorted((ROOT / "worked_examples").glob("*.json"))
CLAIMS = 200_000


def write_situation(situation: dict, folder: Path) -> None:
    """A JSON situation as one Parquet file per entity (an empty claim file when it has none)."""
    folder.mkdir(parents=True)
    entities = situation["entities"]
    for name, rows in entities.items():
        names = sorted({k for r in rows for k in r})
        pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in names} for r in rows]), folder / f"{name}.parquet")
    if "claim" not in entities:
        pq.write_table(pa.table({"id": pa.array([], pa.string())}), folder / "claim.parquet")
    (folder / "meta.json").write_text(json.dumps({"period": situation["period"]}), encoding="utf-8")


def assert_same(policy, local: Path, spark: Path) -> int:
    compared = 0
    for file in sorted(local.glob("*.parquet")):
        entity = file.stem
        a = pq.read_table(file).sort_by("id")
        b = pq.read_table(spark / file.name).sort_by("id")
        assert a.column("id").to_pylist() == b.column("id").to_pylist(), entity
        for name in a.column_names[1:]:
            var = policy.model.entities[entity].variables[name]
            x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
            if var.type == "number" and not var.is_money:
                np.testing.assert_allclose(np.array(x, float), np.array(y, float), rtol=1e-9, atol=1e-9,
                                           err_msg=f"{entity}.{name}")
            else:
                assert x == y, f"{entity}.{name}"
            compared += 1
    return compared


# A worked example supplies the inputs of its `outputs` (C2); a settlement computes every output,
# so the community figures its outputs do not need are given explicitly here (none reads 0 unasked).
BATCH_INPUTS = {"jingdezhen-primary-share": {"community": {"last_year_out_of_county": 0}},
                "jingdezhen-referral-deductible": {"community": {"actual_out_of_county": 0, "primary_spending": 0,
                                                                 "last_year_out_of_county": 0}}}


def with_batch_inputs(name: str, situation: dict) -> dict:
    """The situation with the inputs only a settlement of every output needs (BATCH_INPUTS)."""
    entities = dict(situation["entities"])
    for entity, values in BATCH_INPUTS.get(name, {}).items():
        entities[entity] = [{**values, **row} for row in entities[entity]]
    return {**situation, "entities": entities}


@pytest.mark.parametrize("example", WORKED, ids=[w.stem for w in WORKED])
def test_worked_examples_on_spark(example, tmp_path):
    case = json.loads(example.read_text(encoding="utf-8"))
    policy = REGISTRY.pick(case["city"], None)
    data = tmp_path / "data"
    write_situation(with_batch_inputs(example.stem, case["situation"]), data)
    period = folder_period(data, None)
    settle(policy, data, tmp_path / "local", period)
    settle_spark(policy, data, tmp_path / "spark", period)
    assert assert_same(policy, tmp_path / "local", tmp_path / "spark") > 0
    for entity, rows in case["expected"].items():
        table = pq.read_table(tmp_path / "spark" / f"{entity}.parquet").to_pylist()
        got = {r["id"]: r for r in table}
        for rid, values in rows.items():
            for name, want in values.items():
                value = got[rid][name]
                assert value == want if isinstance(want, (bool, str)) else abs(value - want) <= 0.0051, \
                    f"{entity}.{rid}.{name}: {value} != {want}"


@pytest.mark.parametrize("city", CITIES)
def test_city_year_on_spark_equals_local(city, tmp_path):
    policy = REGISTRY.pick(city, None)
    data = tmp_path / "data"
    synthesize(policy, CLAIMS, data, seed=11)
    period = folder_period(data, None)
    local = settle(policy, data, tmp_path / "local", period)
    spark = settle_spark(policy, data, tmp_path / "spark", period)
    assert spark.rows["claim"] == local.rows["claim"] == CLAIMS
    assert assert_same(policy, tmp_path / "local", tmp_path / "spark") > 20


def test_bad_claims_are_refused_on_spark_and_earlier_results_kept(tmp_path):
    """The value checks of a local run hold on Spark too (a 1e300 cost, a claim id used twice),
    and a refused run leaves the earlier results as they were."""
    from test_data_attacks import ATTACKS, POLICY, h1_payment, outputs, write_basics

    from engine.errors import SituationError
    from engine.run.situation import parse_period
    write_basics(tmp_path / "good")
    settle_spark(POLICY, tmp_path / "good", tmp_path / "out", parse_period("2024"), master="local[2]")
    h1 = pq.read_table(tmp_path / "out" / "institution.parquet").to_pydict()
    assert h1["points_payment"][h1["id"].index("H1")] == float(h1_payment())
    before = outputs(tmp_path / "out")
    for attack, path in (("huge_cost", "claim.parquet:total_cost"), ("duplicate_claim", "claim.parquet:id")):
        write_basics(tmp_path / attack, ATTACKS[attack][0])
        with pytest.raises(SituationError) as err:
            settle_spark(POLICY, tmp_path / attack, tmp_path / "out", parse_period("2024"), master="local[2]")
        assert [f.path for f in err.value.faults] == [path]
    assert outputs(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["duplicate_claim", "good", "huge_cost", "out"]
