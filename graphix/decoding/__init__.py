"""Decoding helpers: schema-constrained beam search and execution-guided choice."""

from graphix.decoding.prefix_checker import CheckerState, PrefixChecker
from graphix.decoding.sql_grammar import RejectReason, Rejection

__all__ = ["CheckerState", "PrefixChecker", "RejectReason", "Rejection"]
