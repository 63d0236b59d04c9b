"""Decoding helpers: schema-constrained beam search and execution-guided choice.

`PrefixChecker` checks whether decoded ``db_id | sql`` text can still become a valid
query for a schema. `graphix.decoding.logits.SchemaConstrainedLogitsProcessor` applies
it inside Hugging Face ``generate`` (imported from its module, because it needs torch).
`choose_executable` picks the best finished beam that runs on the database.
"""

from graphix.decoding.execution_guided import (
    BeamVerdict, ExecutionChoice, choose_executable, strip_db_id,
)
from graphix.decoding.prefix_checker import CheckerState, PrefixChecker
from graphix.decoding.sql_grammar import NUMBERED_ALIASES, NewNames, RejectReason, Rejection

__all__ = [
    "NUMBERED_ALIASES", "BeamVerdict", "CheckerState", "ExecutionChoice", "NewNames",
    "PrefixChecker", "RejectReason", "Rejection", "choose_executable", "strip_db_id",
]
