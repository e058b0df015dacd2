"""Entity files (Parquet or CSV) ↔ typed numpy columns, without a loop over rows (文件读写)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.errors import InputFault, SituationError
from engine.model.codelists import SEPARATOR, CodeLists
from engine.model.spec import Entity, Variable
from engine.run.checks import Problem, duplicate_rows, id_faults, joined_links, number_faults
from engine.run.columns import EntityColumns
from engine.run.money import round_half_up
from engine.run.situation import MAX_CODES

SUFFIXES = (".parquet", ".csv")
SHOWN_ROWS = 5  # bad rows named in a fault


def entity_file(folder: Path, entity: str) -> Path | None:
    for suffix in SUFFIXES:
        path = folder / f"{entity}{suffix}"
        if path.is_file():
            return path
    return None


def read_table(path: Path, entity: Entity | None = None) -> pa.Table:
    """A Parquet or CSV file as Arrow. In a CSV file the entity's text fields (id, links, text and
    code-list fields) are read as text, so that "01" stays "01" and a single code "32.4101" is not
    taken for a number."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).read()  # (pq.read_table would import pyarrow.dataset and pandas)
    text = {} if entity is None else {name: pa.string() for name in text_fields(entity)}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True, column_types=text))


def text_fields(entity: Entity) -> list[str]:
    """The fields of an entity whose cells are text in any file: id, links, text and code lists."""
    return ["id", *entity.links, *(n for n, v in entity.variables.items()
                                   if n not in entity.links and v.type in ("string", "codes"))]


def read_column(array: pa.ChunkedArray, var: Variable, path: str) -> tuple[np.ndarray, np.ndarray]:
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
        if var.type == "codes":
            return read_codes(array), given
        text = pc.cast(array, pa.string())
        return pc.fill_null(text, str(default)).to_numpy(zero_copy_only=False).astype(str), given
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise SituationError([InputFault(path, f"column cannot be read as {var.type}: {err}",
                                         f"该列无法按{var.type}读取")]) from None


def read_codes(array: pa.ChunkedArray | pa.Array) -> CodeLists:
    """A list column (Parquet: list<string>) or a text column of codes joined by ';' (CSV) as
    offsets + flat codes; a null cell is an empty list."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        array = pc.split_pattern(pc.fill_null(pc.cast(array, pa.string()), ""), SEPARATOR)
    array = pc.if_else(array.is_null(), pa.scalar([], array.type), array) if array.null_count else array
    flat = pc.fill_null(pc.cast(array.flatten(), pa.string()), "")
    offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    start = offsets[0]
    return CodeLists.from_flat(offsets - start, flat.to_numpy(zero_copy_only=False).astype(str))


def read_entity(path: Path, entity: Entity, joined: frozenset = frozenset()) -> EntityColumns:
    """Read one entity's file, checked (`check_table`); faults name the file, column and rows."""
    table = read_table(path, entity)
    check_table(table, entity, path.name, joined)
    return entity_columns(table, entity, path.name)


def row_fault(source: str, column: str, rows: np.ndarray, problem: Problem, offset: int = 0) -> InputFault:
    """A fault naming the file, the column and the first bad rows (counted from 0, header excluded)."""
    shown = ", ".join(str(int(r) + offset) for r in rows[:SHOWN_ROWS])
    more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
    more_zh = f" 等共 {len(rows)} 行" if len(rows) > SHOWN_ROWS else ""
    return InputFault(f"{source}:{column}", f"rows {shown}{more} (from 0): {problem[0]}",
                      f"第 {shown} 行{more_zh}（从 0 起）：{problem[1]}")


def table_faults(table: pa.Table, entity: Entity, source: str, joined: frozenset = frozenset(),
                 offset: int = 0, unique: bool = True) -> list[InputFault]:
    """Every value check the JSON reader makes, vectorised over a table of one entity: ids
    (printable, unique), link values, numbers (finite, MEDPAY_MAX_AMOUNT, minimum), types and
    allowed values. `offset`: the table's first row in the file; `joined`: the (entity, link)
    pairs joined into derived ids."""
    faults = _layout_faults(table, entity, source)
    if faults:
        return faults
    faults += [row_fault(source, "id", rows, (f"the id {p[0]}", f"id {p[1]}"), offset)
               for rows, p in id_faults(table["id"])]
    if unique:
        dup = duplicate_rows(table["id"])
        if len(dup):
            faults.append(row_fault(source, "id", dup, ("the id is already used by an earlier row",
                                                        "id 与前面的行重复"), offset))
    for name in table.column_names:
        if name in entity.links:
            faults += [row_fault(source, name, rows, (f"the link {p[0]}", f"链接 {p[1]}"), offset)
                       for rows, p in id_faults(table[name], (entity.name, name) in joined, optional=True)]
        elif name != "id":
            faults += _column_faults(table[name], entity.variables[name], source, name, offset)
    return faults


def check_table(table: pa.Table, entity: Entity, source: str, joined: frozenset = frozenset()) -> None:
    """`table_faults`, raised as one SituationError."""
    faults = table_faults(table, entity, source, joined)
    if faults:
        raise SituationError(faults)


def _layout_faults(table: pa.Table, entity: Entity, source: str) -> list[InputFault]:
    if "id" not in table.column_names:
        return [InputFault(source, "the file needs an 'id' column", "文件缺少 id 列")]
    return [InputFault(f"{source}:{c}", f"{entity.name} has no field '{c}'", f"{entity.name} 没有字段“{c}”")
            for c in table.column_names if c != "id" and c not in entity.variables]


def _column_faults(array: pa.ChunkedArray, var: Variable, source: str, name: str,
                   offset: int) -> list[InputFault]:
    """Type, finiteness, amount limit, minimum and allowed values of one column's given cells."""
    if var.type == "codes":
        return _code_faults(array, source, name, offset)
    if var.type == "string":
        return _value_faults(array, var, source, name, offset) if var.values else []
    try:
        values, given = read_column(array, var, f"{source}:{name}")
    except SituationError as err:
        return err.faults
    if var.type == "number":
        return [row_fault(source, name, rows, p, offset) for rows, p in number_faults(var, values, given)]
    return []


def _value_faults(array: pa.ChunkedArray, var: Variable, source: str, name: str, offset: int) -> list[InputFault]:
    """Text cells that are not one of the field's allowed values (the distinct values, then their rows)."""
    text = pc.cast(array, pa.string())
    allowed = pa.array(var.values, pa.string())
    distinct = pc.unique(pc.drop_null(text))
    unknown = pc.filter(distinct, pc.invert(pc.is_in(distinct, allowed)))
    if not len(unknown):
        return []
    rows = np.flatnonzero(pc.fill_null(pc.is_in(text, unknown), False).to_numpy(zero_copy_only=False))
    value = text[int(rows[0])].as_py()
    return [row_fault(source, name, rows, (f"'{value}' is not one of {', '.join(var.values)}",
                                           f"“{value}”不是允许的取值（{', '.join(var.values)}）"), offset)]


def _code_faults(array: pa.ChunkedArray, source: str, name: str, offset: int) -> list[InputFault]:
    """A code list column is a list of texts (Parquet) or texts joined by ';' (CSV)."""
    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type) \
                or pa.types.is_null(kind.value_type):
            lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(lengths > MAX_CODES)
            return [row_fault(source, name, rows, (f"more than {MAX_CODES} codes in one list",
                                                   f"一个列表超过 {MAX_CODES} 个编码"), offset)] if len(rows) else []
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return []
    return [InputFault(f"{source}:{name}", f"a list of codes is a list<string> column (or, in CSV, codes joined "
                                           f"by '{SEPARATOR}'), not {kind}",
                       f"编码列表应为 list<string> 列（CSV 中以“{SEPARATOR}”连接），而不是 {kind}")]


def entity_columns(table: pa.Table, entity: Entity, source: str) -> EntityColumns:
    """An Arrow table of one entity as typed engine columns (links stay in Arrow); values are
    checked by `check_table` before."""
    layout = _layout_faults(table, entity, source)
    if layout:
        raise SituationError(layout)
    cols = EntityColumns(pc.cast(table["id"], pa.string()))
    for name in table.column_names:
        if name == "id":
            continue
        var = entity.variables[name]
        if name in entity.links:
            cols.links[name] = table[name]  # kept in Arrow; resolved through dictionary codes
            continue
        cols.values[name], cols.given[name] = read_column(table[name], var, f"{source}:{name}")
    return cols


def read_entities(model, folder: Path, skip: tuple[str, ...] = ()) -> dict[str, EntityColumns]:
    """Every entity file present in the folder (but those in `skip`). A file of an entity made
    from the claims (account.csv) supplies the inputs of the rows it names; its ids follow the
    entity's key ("H1|resident") and are checked when the population is built."""
    data = {}
    for name, entity in model.entities.items():
        path = entity_file(folder, name)
        if path is None or name in skip:
            continue
        data[name] = read_entity(path, entity, frozenset(joined_links(model)))
    return data


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` to write into; moved into place only when the block ends
    without an error, so a failed run leaves earlier outputs untouched and no partial files."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _move_into_place(stage, out)


def _move_into_place(stage: Path, out: Path) -> None:
    """The whole folder by one rename when `out` is new; else each result by a rename (files the
    run did not write stay)."""
    if not out.exists():
        stage.rename(out)
        return
    for item in stage.iterdir():
        target = out / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # a Spark result folder: replaced whole
        os.replace(item, target)
    stage.rmdir()


def write_entity(path: Path, ids: np.ndarray, columns: dict[str, np.ndarray], money: set[str],
                 metadata: dict[bytes, bytes] | None = None) -> int:
    """Write id + computed columns as Parquet; money rounded half-up to the fen; a value with no
    value (pending review, NaN) is written as null; `metadata` in the schema (provenance). Returns
    the rows written."""
    arrays = {"id": ids if isinstance(ids, pa.ChunkedArray) else pa.array(list(ids), pa.string())}
    for name, col in columns.items():
        if col.dtype.kind == "f" and name in money:
            col = round_half_up(col)
        arrays[name] = pa.array(col, from_pandas=col.dtype.kind == "f")
    table = pa.table(arrays)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows
