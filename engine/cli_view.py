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
        names = [k for k in rows[0] if k != "id"]
        for start in range(0, len(names), 6):
            table = Table(title=f"{entity}" + (f" ({start // 6 + 1})" if len(names) > 6 else ""),
                          title_justify="left")
            table.add_column("id", style="bold")
            for name in names[start:start + 6]:
                table.add_column(name, justify="right")
            for row in rows[:200]:
                table.add_row(str(row["id"]), *[_cell(row[n]) for n in names[start:start + 6]])
            console.print(table)
        if len(rows) > 200:
            console.print(f"… {len(rows) - 200} more {entity} rows (use --json for all)")
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning[/] {w['code']} {w['path']}: {w['message']}")


def _cell(value) -> str:
    if isinstance(value, bool):
        return "[green]true[/]" if value else "[red]false[/]"
    if isinstance(value, float):
        return f"{value:,.2f}" if value == int(value) else f"{value:,.6f}".rstrip("0")
    return str(value)
