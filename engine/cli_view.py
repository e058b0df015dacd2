"""Terminal views for the command line: result tables and validation summaries (终端显示)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_result(result: dict, console: Console | None = None) -> None:
    """One table per entity: a row per id, a column per variable; then the warnings."""
    console = console or Console()
    policy = result["policy"]
    console.print(f"[bold]{policy['name']['zh']} {policy['name']['en']}[/] — {policy['notice']} "
                  f"(version {policy['version']}), period {result.get('period')}")
    for entity, rows in result["entities"].items():
        if not rows:
            continue
        shown = rows[:MAX_ROWS]
        names = [k for k in rows[0] if k != "id"]
        cells = {n: [_cell(r.get(n)) for r in shown] for n in names}
        ids = [str(r["id"]) for r in shown]
        groups = column_groups(names, cells, ids, console.width)
        for part, group in enumerate(groups, 1):
            table = Table(title=f"{entity}" + (f" ({part}/{len(groups)})" if len(groups) > 1 else ""),
                          title_justify="left")
            table.add_column("id", style="bold", no_wrap=True)
            for name in group:
                table.add_column(name, justify="right", no_wrap=True)
            for i, rid in enumerate(ids):
                table.add_row(rid, *[cells[n][i] for n in group])
            console.print(table)
        if len(rows) > MAX_ROWS:
            console.print(f"… {len(rows) - MAX_ROWS} more {entity} rows (use --json for all)")
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning[/] {w['code']} {w['path']}: {w['message']}")


MAX_ROWS = 200
PADDING = 3  # a column's borders and spaces in a rich table


def _width(text: str) -> int:
    """Display width: CJK characters take two cells."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def column_groups(names: list[str], cells: dict[str, list[str]], ids: list[str], width: int) -> list[list[str]]:
    """The columns split into tables that each fit `width` terminal cells with every number whole
    (a column is never cut or wrapped; one too wide for the terminal gets a table of its own)."""
    first = max([_width(i) for i in ids] + [2]) + PADDING + 1
    groups: list[list[str]] = []
    used = first
    for name in names:
        need = max([_width(name)] + [_width(c) for c in cells[name]]) + PADDING
        if groups and groups[-1] and used + need <= width:
            groups[-1].append(name)
            used += need
        else:
            groups.append([name])
            used = first + need
    return groups


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "[green]true[/]" if value else "[red]false[/]"
    if isinstance(value, float):
        return f"{value:,.2f}" if value == int(value) else f"{value:,.6f}".rstrip("0")
    return str(value)
