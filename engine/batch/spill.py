"""Claim results of a chunked run kept on disk between rounds (中间结果落盘).

A run in several chunks keeps each chunk's results for the rounds after it, the claim checks and
the final write. Held in memory they grow with the claims (ten million claims: gigabytes); here
each chunk's columns of a round go to an Arrow IPC file in a temporary folder beside the output
and come back memory-mapped, so the operating system pages them in when a later round reads them
and out again under pressure. The folder is removed when the run ends, whether it succeeds or not.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa


class Spill:
    """Temporary Arrow files of chunk results, next to `beside` (the run's staging folder)."""

    def __init__(self, beside: Path):
        self.folder = Path(tempfile.mkdtemp(prefix=".medpay-spill-", dir=beside.parent))
        self.files = 0

    def keep(self, columns: dict[str, pa.ChunkedArray | pa.Array]) -> dict[str, pa.ChunkedArray]:
        """The columns written to a file and read back memory-mapped (same values, same types)."""
        if not columns:
            return {}
        table = pa.table(columns)
        path = self.folder / f"{self.files}.arrow"
        self.files += 1
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        mapped = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        return {name: mapped[name] for name in mapped.column_names}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
