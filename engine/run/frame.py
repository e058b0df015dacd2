"""The evaluation frame: which entity, which rows, and the run's context (求值框架)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import LimitExceeded
from engine.policy.spec import Parameter, Policy
from engine.run.population import Population


@dataclass
class RunContext:
    """What stays fixed during one run: the policy, parameter overrides, warnings found."""

    policy: Policy
    overrides: dict[str, Any] = field(default_factory=dict)
    warnings: dict[tuple[str, str], dict] = field(default_factory=dict)
    variable: str = ""  # entity.variable being evaluated, for warning paths
    computed: set = field(default_factory=set)  # steps whose formula ran on some row
    precomputed: dict = field(default_factory=dict)  # aggregation key → values computed elsewhere
    key_codes: dict = field(default_factory=dict)  # id(column) → (column, codes, keys): lookups reuse them
    chain_state: dict = field(default_factory=dict)  # chain call → its accumulators, for one step's run only
    deadline: float | None = None  # time.perf_counter() past which the run stops (None: no limit)
    limit: float = 0.0  # the evaluation-time limit in seconds, for the message

    def parameter(self, name: str) -> Parameter:
        return self.policy.parameters[name]

    def versions(self, name: str) -> list[Any]:
        """The parameter's values by version, or the single overriding value of this run."""
        if name in self.overrides:
            return [self.overrides[name]]
        return [v.value for v in self.policy.parameters[name].versions]

    def check_deadline(self) -> None:
        """Stop the run with LimitExceeded (503) once its evaluation-time limit has passed."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise LimitExceeded("MEDPAY_MAX_EVAL_SECONDS",
                                f"the evaluation took longer than {self.limit:g} s; send fewer rows or use batch "
                                "settlement",
                                f"计算超过 {self.limit:g} 秒；请减少行数或使用批量结算", status=503)

    def warn(self, code: str, en: str, zh: str, count: int = 1) -> None:
        key = (code, self.variable)
        entry = self.warnings.setdefault(key, {"code": code, "path": f"variables.{self.variable}",
                                               "message": en, "message_zh": zh, "rows": 0})
        entry["rows"] += count


@dataclass
class Frame:
    """Rows of one entity being evaluated: all of them (`rows` None) or the given row indices."""

    pop: Population
    entity: str
    ctx: RunContext
    rows: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.pop.sizes[self.entity] if self.rows is None else len(self.rows)

    def column(self, name: str) -> np.ndarray:
        col = self.pop.columns[self.entity][name]
        return col if self.rows is None else col[self.rows]

    def subset(self, picked: np.ndarray) -> Frame:
        """A frame over some of these rows (`picked` indexes into this frame's rows)."""
        rows = picked if self.rows is None else self.rows[picked]
        return Frame(self.pop, self.entity, self.ctx, rows)

    def at(self, absolute_rows: np.ndarray) -> Frame:
        return Frame(self.pop, self.entity, self.ctx, absolute_rows)

    def whole(self) -> Frame:
        return Frame(self.pop, self.entity, self.ctx, None)

    def take(self, full: np.ndarray | Any) -> np.ndarray | Any:
        """Slice a whole-entity column down to this frame's rows."""
        if self.rows is None or np.ndim(full) == 0:
            return full
        return full[self.rows]

    def dates(self) -> np.ndarray | np.datetime64:
        """The date that picks parameter values for each row."""
        dates = self.pop.row_dates[self.entity]
        return dates if np.ndim(dates) == 0 else self.take(dates)

    def parent_index(self, path: list[str]) -> np.ndarray:
        return self.pop.parent_index(self.entity, path, self.rows)

    def full(self, value) -> np.ndarray:
        """Broadcast a scalar or array to this frame's length."""
        arr = np.asarray(value)
        if arr.ndim == 0:
            return np.full(self.size, arr.item() if arr.dtype.kind != "M" else arr, dtype=arr.dtype)
        return arr
