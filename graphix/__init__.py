"""Graphix: Graphix-T5 text-to-SQL with Spider evaluation and model compression."""

__version__ = "0.1.0"
