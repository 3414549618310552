"""Metrics tables, plots and HTML/Markdown reports."""
