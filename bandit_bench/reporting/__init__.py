"""Case records, tables, the HTML page and comparisons of two runs."""
