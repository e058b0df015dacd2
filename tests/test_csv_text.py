"""CSV files: text fields stay text whatever their cells look like."""

from __future__ import annotations

import pyarrow as pa

from engine.batch.io import read_entity, read_table
from engine.policy.registry import Registry

POLICY = Registry.load().pick("zibo", None)
CLAIM = POLICY.model.entities["claim"]


def test_codes_that_look_like_numbers_are_codes(tmp_path):
    """A procedure column whose cells are single codes such as 32.4101 is a code list, not a number;
    an id 007 and an institution 01 keep their zeros."""
    path = tmp_path / "claim.csv"
    path.write_text("id,institution,procedures,total_cost\n007,01,32.4101,100.5\n008,01,81.5101;81.5201,7\n",
                    encoding="utf-8")
    table = read_table(path, CLAIM)
    assert table["id"].to_pylist() == ["007", "008"]
    assert table["institution"].to_pylist() == ["01", "01"]
    assert table["procedures"].type == pa.string()
    assert table["total_cost"].type == pa.float64()
    codes = read_entity(path, CLAIM).values["procedures"]
    assert codes.to_lists() == [["32.4101"], ["81.5101", "81.5201"]]


def test_without_an_entity_a_csv_is_read_as_arrow_guesses(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,n\n1,2\n", encoding="utf-8")
    assert read_table(path)["id"].type == pa.int64()
