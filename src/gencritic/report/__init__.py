"""Reports of a results folder: one self-contained HTML page and a Markdown summary."""

from gencritic.report.builder import build_report, load_results, markdown_summary

__all__ = ["build_report", "load_results", "markdown_summary"]
