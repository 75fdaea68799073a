"""The one plain-text table layout: cells padded to their column's width, two spaces apart.

Used by the terminal summary (:func:`~bandit_bench.reporting.tables.text_table`), ``bandit-bench
compare``, ``bandit-bench baselines`` / ``configs`` and the recording bill, so that a change of
layout is made once.
"""

from __future__ import annotations

from collections.abc import Container, Sequence


def column_widths(rows: Sequence[Sequence[str]]) -> list[int]:
    """The width of each column: its longest cell (rows of equal length)."""
    return [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []


def aligned_line(
    cells: Sequence[str], widths: Sequence[int], right: Container[int] = (), sep: str = "  "
) -> str:
    """One row: cell ``i`` right-aligned when ``i`` is in ``right``, else left; no trailing blanks."""
    return sep.join(
        c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


def aligned_table(
    rows: Sequence[Sequence[str]], right: Container[int] = (), rules: Container[int] = (1,)
) -> list[str]:
    """``rows`` (the header first) as aligned lines, with a line of dashes before each row whose
    index is in ``rules`` (by default under the header, even with no row under it)."""
    widths = column_widths(rows)
    rule = aligned_line(["-" * w for w in widths], widths)
    out: list[str] = []
    for i, row in enumerate(rows):
        if i in rules:
            out.append(rule)
        out.append(aligned_line(row, widths, right))
    if len(rows) in rules:
        out.append(rule)
    return out
