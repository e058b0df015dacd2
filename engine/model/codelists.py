"""A column of code lists (a claim's procedures, its secondary diagnoses): offsets + flat codes (编码列表列).

Row i holds `vocab[codes[offsets[i]:offsets[i + 1]]]`. The distinct codes (`vocab`) are normalised
once (full-width → half-width, trimmed, upper case), so matching runs once per distinct code.
A column selects rows like a numpy array (`col[mask]`, `col[rows]`); one row (`col[i]`) is a tuple.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

SEPARATOR = ";"  # codes of one cell of a CSV file: "47.0901;54.2101"


def normalise(code: str) -> str:
    """The form codes are matched in: NFKC (full-width ． → .), no spaces, upper case."""
    return unicodedata.normalize("NFKC", str(code)).strip().replace(" ", "").upper()


class CodeLists:
    """Lists of codes, one per row, stored as offsets into flat dictionary codes."""

    ndim = 1
    dtype = np.dtype(object)

    def __init__(self, offsets: np.ndarray, codes: np.ndarray, vocab: Sequence[str]):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.vocab = list(vocab)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def empty(cls, n: int) -> CodeLists:
        return cls(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), [])

    @classmethod
    def from_lists(cls, lists: Iterable[Iterable[str] | None]) -> CodeLists:
        """From Python lists (a JSON situation); None is an empty list; '' codes are dropped."""
        vocab: dict[str, int] = {}
        codes: list[int] = []
        offsets = [0]
        for items in lists:
            for item in items or ():
                code = normalise(item)
                if code:
                    codes.append(vocab.setdefault(code, len(vocab)))
            offsets.append(len(codes))
        return cls(np.array(offsets), np.array(codes, dtype=np.int64), list(vocab))

    @classmethod
    def from_flat(cls, offsets: np.ndarray, flat_text: Sequence[str] | np.ndarray) -> CodeLists:
        """From offsets and the flat codes as text (an Arrow list column); codes normalised per
        distinct value and '' dropped."""
        uniq, inverse = np.unique(np.asarray(flat_text, dtype=str), return_inverse=True)
        normal = [normalise(u) for u in uniq.tolist()]
        vocab_index: dict[str, int] = {}
        remap = np.array([vocab_index.setdefault(c, len(vocab_index)) if c else -1 for c in normal] + [-1],
                         dtype=np.int64)
        codes = remap[inverse.reshape(-1)] if len(inverse) else np.zeros(0, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
        if (codes < 0).any():  # drop empty codes, keeping each row's others
            keep = codes >= 0
            kept = np.concatenate([[0], np.cumsum(keep)])
            offsets, codes = kept[offsets - offsets[0]], codes[keep]
        return cls(offsets - offsets[0], codes, list(vocab_index))

    # ---- array behaviour ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row_of_flat(self) -> np.ndarray:
        """The row of each flat code."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            i = int(index) % len(self) if len(self) else int(index)
            return tuple(self.vocab[c] for c in self.codes[self.offsets[i]:self.offsets[i + 1]])
        rows = np.arange(len(self))[index]
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        starts = np.repeat(self.offsets[rows] - offsets[:-1], lengths)
        return CodeLists(offsets, self.codes[starts + np.arange(offsets[-1])], self.vocab)

    def to_lists(self) -> list[list[str]]:
        return [list(self[i]) for i in range(len(self))]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(len(self), dtype=object)
        for i in range(len(self)):
            out[i] = self[i]
        return out

    def __repr__(self) -> str:
        return f"CodeLists({self.to_lists()[:5]}{'…' if len(self) > 5 else ''})"


def concat(parts: Sequence[CodeLists]) -> CodeLists:
    """Rows of several columns one after another (chunks of a batch)."""
    vocab: dict[str, int] = {}
    codes, offsets, base = [], [np.zeros(1, dtype=np.int64)], 0
    for part in parts:
        remap = np.array([vocab.setdefault(v, len(vocab)) for v in part.vocab] + [-1], dtype=np.int64)
        codes.append(remap[part.codes])
        offsets.append(part.offsets[1:] + base)
        base += int(part.offsets[-1])
    return CodeLists(np.concatenate(offsets), np.concatenate(codes) if codes else np.zeros(0, np.int64), list(vocab))
