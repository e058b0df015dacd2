"""The parsed-formula cache: hits skip the parser, and only files signed with our key are read."""

from __future__ import annotations

import os
import pickle

import pytest

from engine.dsl import ast
from engine.dsl.formula_cache import FormulaCache
from engine.dsl.parser import _parse_formula
from engine.errors import FormulaError


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, text):
        self.calls += 1
        return _parse_formula(text)


def test_a_formula_parsed_once_is_read_back_in_a_new_process(tmp_path):
    first, parser = FormulaCache(tmp_path), Counting()
    tree = first.parse("max(0, total_cost - 300) * 0.9", parser)
    first.save()
    second, again = FormulaCache(tmp_path), Counting()
    assert second.parse("max(0, total_cost - 300) * 0.9", again) == tree
    assert (parser.calls, again.calls) == (1, 0)
    assert isinstance(tree, ast.Node)


def test_a_file_not_signed_with_our_key_is_never_unpickled(tmp_path):
    cache = FormulaCache(tmp_path)
    cache.parse("1 + 1", Counting())
    cache.save()
    path = cache._path()

    class Bomb:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "owned"),))
    path.write_bytes(b"\0" * 32 + pickle.dumps({"1 + 1": Bomb()}))
    fresh, parser = FormulaCache(tmp_path), Counting()
    assert fresh.parse("1 + 1", parser) == _parse_formula("1 + 1")
    assert parser.calls == 1 and not (tmp_path / "owned").exists()


def test_a_folder_others_can_write_is_not_used(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    cache, parser = FormulaCache(folder), Counting()
    cache.parse("2 * 3", parser)
    cache.save()
    assert parser.calls == 1 and not list(folder.glob("formulas-*"))


def test_errors_are_not_cached(tmp_path):
    cache = FormulaCache(tmp_path)
    for _ in range(2):
        with pytest.raises(FormulaError) as err:
            cache.parse("1 +", Counting())
        assert err.value.offset is not None
    assert cache.entries == {}
