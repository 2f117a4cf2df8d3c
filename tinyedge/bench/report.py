"""Results of a benchmark run: tables of numbers, rendered as text, Markdown or JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Cell = float | int | str | None


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = "{:.2f}"  # applied to numbers; strings are shown as they are


@dataclass(frozen=True)
class Table:
    """One section of the benchmark: titled rows of named cells, and notes under it."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Cell], ...]
    notes: tuple[str, ...] = ()

    def cell(self, row: dict[str, Cell], col: Column) -> str:
        value = row.get(col.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, str):
            return value
        return col.fmt.format(value)

    def grid(self) -> list[list[str]]:
        return [[self.cell(r, c) for c in self.columns] for r in self.rows]


@dataclass(frozen=True)
class Report:
    machine: dict[str, Any]
    command: str
    tables: tuple[Table, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        data = {
            "machine": self.machine,
            "command": self.command,
            "tables": [
                {"title": t.title, "rows": list(t.rows), "notes": list(t.notes)}
                for t in self.tables
            ],
        }
        return json.dumps(data, indent=1)


def _widths(headers: Sequence[str], grid: list[list[str]]) -> list[int]:
    return [
        max(len(h), *(len(r[i]) for r in grid)) if grid else len(h) for i, h in enumerate(headers)
    ]


def render_text(report: Report) -> str:
    out = [f"tinyedge bench — {_machine_line(report.machine)}", ""]
    for t in report.tables:
        headers = [c.header for c in t.columns]
        grid = t.grid()
        widths = _widths(headers, grid)
        out.append(t.title)
        if t.columns:
            out.append(
                "  ".join(
                    h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(headers, widths, strict=True))
                )
            )
            out.append("  ".join("-" * w for w in widths))
        for row in grid:
            out.append(
                "  ".join(
                    v.ljust(w) if i == 0 else v.rjust(w)
                    for i, (v, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        out.extend(f"  * {n}" for n in t.notes)
        out.append("")
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    out = [f"Machine: {_machine_line(report.machine)}  ", f"Command: `{report.command}`", ""]
    for t in report.tables:
        out.append(f"### {t.title}")
        out.append("")
        if t.columns:
            out.append("| " + " | ".join(c.header for c in t.columns) + " |")
            out.append(
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.columns))) + "|"
            )
            out.extend("| " + " | ".join(row) + " |" for row in t.grid())
        if t.notes:
            out.append("")
            out.extend(f"- {n}" for n in t.notes)
        out.append("")
    return "\n".join(out)


def _machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('arch', '?')}, "
        f"Python {m.get('python', '?')}, {m.get('runtime', '?')}, numpy {m.get('numpy', '?')}; "
        f"load average at start {m.get('load', '?')}"
    )
