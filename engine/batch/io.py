"""Entity files (Parquet or CSV) ↔ typed numpy columns, without a loop over rows (文件读写)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.errors import InputFault, SituationError
from engine.model.spec import Entity, Variable
from engine.run.columns import EntityColumns
from engine.run.money import round_half_up

SUFFIXES = (".parquet", ".csv")


def entity_file(folder: Path, entity: str) -> Path | None:
    for suffix in SUFFIXES:
        path = folder / f"{entity}{suffix}"
        if path.is_file():
            return path
    return None


def read_table(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).read()  # (pq.read_table would import pyarrow.dataset and pandas)
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))


def _numpy(array: pa.ChunkedArray, var: Variable, path: str) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow column as the variable's numpy type, with the mask of non-null cells."""
    given = ~array.is_null().to_numpy(zero_copy_only=False)
    default = var.default_value()
    try:
        if var.type == "number":
            return pc.fill_null(pc.cast(array, pa.float64()), float(default)).to_numpy(), given
        if var.type == "bool":
            return pc.fill_null(pc.cast(array, pa.bool_()), bool(default)).to_numpy(zero_copy_only=False), given
        if var.type == "date":
            values = array if pa.types.is_date(array.type) or pa.types.is_timestamp(array.type) \
                else pc.cast(array, pa.date32())
            return values.to_numpy(zero_copy_only=False).astype("datetime64[D]"), given
        text = pc.cast(array, pa.string())
        if var.values:
            bad = pc.unique(pc.filter(text, pc.invert(pc.fill_null(pc.is_in(text, pa.array(var.values)), True))))
            if len(bad):
                raise SituationError([InputFault(path, f"'{bad[0].as_py()}' is not one of {', '.join(var.values)}",
                                                 f"“{bad[0].as_py()}”不是允许的取值（{', '.join(var.values)}）")])
        return pc.fill_null(text, str(default)).to_numpy(zero_copy_only=False).astype(str), given
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise SituationError([InputFault(path, f"column cannot be read as {var.type}: {err}",
                                         f"该列无法按{var.type}读取")]) from None


def read_entity(path: Path, entity: Entity) -> EntityColumns:
    """Read one entity's file; unknown columns are faults naming the file and column."""
    return entity_columns(read_table(path), entity, path.name)


def entity_columns(table: pa.Table, entity: Entity, source: str) -> EntityColumns:
    """An Arrow table of one entity as typed engine columns (links stay in Arrow)."""
    if "id" not in table.column_names:
        raise SituationError([InputFault(source, "the file needs an 'id' column", "文件缺少 id 列")])
    unknown = [c for c in table.column_names if c != "id" and c not in entity.variables]
    if unknown:
        raise SituationError([InputFault(f"{source}:{c}", f"{entity.name} has no field '{c}'",
                                         f"{entity.name} 没有字段“{c}”") for c in unknown])
    cols = EntityColumns(pc.cast(table["id"], pa.string()))
    for name in table.column_names:
        if name == "id":
            continue
        var = entity.variables[name]
        if name in entity.links:
            cols.links[name] = table[name]  # kept in Arrow; resolved through dictionary codes
            continue
        cols.values[name], cols.given[name] = _numpy(table[name], var, f"{source}:{name}")
    return cols


def read_entities(model, folder: Path, skip: tuple[str, ...] = ()) -> dict[str, EntityColumns]:
    """Every entity file present in the folder (but those in `skip`); a file for an entity that
    is made from another's rows (accounts, episodes) is a fault."""
    data = {}
    for name, entity in model.entities.items():
        path = entity_file(folder, name)
        if path is None or name in skip:
            continue
        if entity.derived:
            raise SituationError([InputFault(path.name, f"{name} rows are made from the {entity.derived.source} "
                                             "rows; remove this file", f"{name} 由数据自动生成，请删除此文件")])
        data[name] = read_entity(path, entity)
    return data


def write_entity(path: Path, ids: np.ndarray, columns: dict[str, np.ndarray], money: set[str]) -> None:
    """Write id + computed columns as Parquet; money rounded half-up to the fen."""
    arrays = {"id": ids if isinstance(ids, pa.ChunkedArray) else pa.array(list(ids), pa.string())}
    for name, col in columns.items():
        if col.dtype.kind == "f" and name in money:
            col = round_half_up(col)
        arrays[name] = pa.array(col)
    pq.write_table(pa.table(arrays), path, compression="zstd")
