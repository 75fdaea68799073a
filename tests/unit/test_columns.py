"""The one plain-text table layout every text table of the package is printed with."""

from __future__ import annotations

from bandit_bench.reporting.columns import aligned_line, aligned_table


def test_a_table_aligns_text_left_numbers_right_with_a_rule_under_the_header() -> None:
    lines = aligned_table([["name", "n"], ["ucb", "12"], ["thompson", "3"]], right={1})
    assert lines == ["name       n", "--------  --", "ucb       12", "thompson   3"]


def test_a_rule_can_stand_above_a_total_and_an_empty_table_keeps_its_rule() -> None:
    assert aligned_table([["case", "cost"], ["a", "1"], ["total", "1"]], right={1}, rules={2}) == [
        "case   cost",
        "a         1",
        "-----  ----",
        "total     1",
    ]
    assert aligned_table([["run", "OLD"]]) == ["run  OLD", "---  ---"]


def test_a_line_has_no_trailing_blanks_and_takes_its_separator() -> None:
    assert aligned_line(["a", ""], [3, 4]) == "a"
    assert aligned_line(["a", "7"], [3, 2], right={1}, sep=" ") == "a    7"
