"""Benchmark reports: JSON (the contract), Markdown, self-contained HTML and a latency/accuracy plot.

Example:
    >>> from tfkit.report import write_report
    >>> write_report(results, "out/09-report", notes={"dataset": "synthetic"}).html
"""
from tfkit.report.render import ReportPaths, write_report

__all__ = ["ReportPaths", "write_report"]
