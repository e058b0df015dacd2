"""Memory of chunked runs: chunk results wait on disk, a chunk's caches leave with it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from engine.batch.partition import chunk_caches
from engine.batch.spill import Spill
from engine.policy.registry import Registry
from engine.run.frame import RunContext


def test_spilled_columns_come_back_equal_and_the_folder_goes(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    columns = {"amount": pa.chunked_array([[1.25, None, -0.005]]), "kind": pa.array(["a", "", "住院"]),
               "flag": pa.array([True, False, None])}
    with Spill(stage) as spill:
        back = spill.keep(columns)
        assert spill.folder.parent == tmp_path and spill.folder.name.startswith(".medpay-spill-")
        assert {k: v.to_pylist() for k, v in back.items()} == \
            {"amount": [1.25, None, -0.005], "kind": ["a", "", "住院"], "flag": [True, False, None]}
        assert back["kind"].type == pa.string() and back["amount"].type == pa.float64()
        assert spill.keep({}) == {}
    assert not spill.folder.exists()


def test_spill_folder_goes_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError), Spill(tmp_path / "stage") as spill:
        spill.keep({"x": pa.array([1.0])})
        raise RuntimeError("a check failed")
    assert not list(tmp_path.glob(".medpay-spill-*"))


def test_a_chunks_cache_entries_leave_with_it_and_earlier_ones_stay():
    ctx = RunContext(Registry.load().pick("tianjin", None))
    ctx.key_codes["driver"] = "kept"
    with chunk_caches(ctx):
        ctx.key_codes[("grouping", "dip", 1)] = "chunk one"
    assert ctx.key_codes == {"driver": "kept"}
    with pytest.raises(ValueError), chunk_caches(ctx):
        ctx.key_codes["other"] = "chunk two"
        raise ValueError
    assert ctx.key_codes == {"driver": "kept"}
