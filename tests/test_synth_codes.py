"""Synthetic code lists at any size: Arrow may hand a long text column back in pieces."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.batch import synth
from engine.policy.registry import Registry


def test_code_lists_are_built_when_arrow_returns_text_in_pieces(monkeypatch):
    """Above about 2 GB of text `pa.array` returns a ChunkedArray; the code lists still come out
    whole, each claim with the codes its group is made from."""
    policy = Registry.load().pick("zibo", None)
    grouping = next(iter(synth.grouped_variables(policy).values()))
    real = pa.array

    def in_pieces(values, *args, **kwargs):
        out = real(values, *args, **kwargs)
        if isinstance(values, np.ndarray) and values.dtype.kind == "U" and len(out) > 1:
            return pa.chunked_array([out.slice(0, 1), out.slice(1)])
        return out

    keys = np.array(["K35.8+47.0901", "J18.9", "C34.9+32.4901", "J18.9"])  # groups of the Zibo table
    monkeypatch.setattr(synth.pa, "array", in_pieces)
    made = synth.claim_codes(grouping, keys, np.random.default_rng(1))
    monkeypatch.setattr(synth.pa, "array", real)
    procedures = made[grouping.fields["procedures"]].to_pylist()
    assert procedures[1] == procedures[3] == []  # J18.9: conservative treatment, no procedure
    assert procedures[0] and procedures[0][0] in ("47.0901", "47.0100X001")
    assert procedures[2] and procedures[2][0] in ("32.4901", "32.4100X001")
    assert made[grouping.fields["diagnosis"]].tolist()[1].startswith("J18")
