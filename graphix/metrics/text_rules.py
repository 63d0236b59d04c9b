"""Text-level limits of the official Spider parser.

The official parser (``taoyds/spider`` ``process_sql.py``) does not read SQL with a SQL
tokenizer. It turns every ``'`` into ``"``, pairs the quote characters in order of
appearance, replaces each pair by one placeholder token, and splits the rest with
NLTK's ``word_tokenize``. That tokenizer splits at whitespace, brackets, ``< >``,
``; @ # $ % & ? ! *`` and at commas not followed by a digit, but not at ``= + - /``.
So ``a=1`` or ``T1.id=T2.id`` becomes one token that names no column, and the query
fails to parse there. `check_text` finds these cases on the raw text so that the
evaluator scores them as the official one does; sqlglot reads all of them fine.
"""

from __future__ import annotations

import re

_QUOTES = "'\""
_PLACEHOLDER = "__value__"
# Characters that NLTK's tokenizer always splits off, and commas/colons not followed by
# a digit.
_SPLIT_ALWAYS = re.compile(r"([;@#$%&?!*()\[\]{}<>])")
_SPLIT_COMMA = re.compile(r"([:,])(?=\D|$)")
_COMPARISON_PREFIXES = ("!", ">", "<")
_COMPARISONS = {"=", "!=", ">=", "<="}
_CLAUSE_RANK = {"select": 0, "from": 1, "where": 2, "group": 3, "having": 4, "order": 5,
                "limit": 6}
_SET_OPERATORS = ("intersect", "union", "except")
_NUMBER_LIST = re.compile(r"^[\d.,]+$")


def normalize_operators(sql: str) -> str:
    """Join ``> =``, ``< =`` and ``! =``, as both official evaluators do before parsing."""
    return sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


def check_text(sql: str) -> str | None:
    """Return why the official parser cannot tokenize `sql`, or None if it can."""
    masked, reason = _mask_strings(sql)
    if reason is not None:
        return reason
    tokens = _tokenize(masked)
    reason = _check_clause_order(tokens)
    if reason is not None:
        return reason
    for position, token in enumerate(tokens):
        following = tokens[position + 1] if position + 1 < len(tokens) else None
        reason = _check_token(token, following)
        if reason is not None:
            return reason
    return None


def _mask_strings(sql: str) -> tuple[str, str | None]:
    """Replace quoted strings by a placeholder the way the official tokenizer pairs quotes."""
    positions = [i for i, char in enumerate(sql) if char in _QUOTES]
    if len(positions) % 2:
        return sql, "an odd number of quote characters (a quote inside a string?)"
    pieces = []
    previous_end = 0
    for start, end in zip(positions[::2], positions[1::2]):
        if sql[start] != sql[end]:
            return sql, "a string that contains the other kind of quote character"
        if start == previous_end and start > 0:
            return sql, "adjacent quoted strings (an escaped quote inside a string?)"
        pieces.append(sql[previous_end:start])
        pieces.append(_PLACEHOLDER)
        previous_end = end + 1
    pieces.append(sql[previous_end:])
    return "".join(pieces), None


def _tokenize(text: str) -> list[str]:
    text = _SPLIT_ALWAYS.sub(r" \1 ", text.lower())
    text = _SPLIT_COMMA.sub(r" \1 ", text)
    tokens = text.split()
    merged: list[str] = []
    for token in tokens:
        if token == "=" and merged and merged[-1] in _COMPARISON_PREFIXES:
            merged[-1] += "="
        else:
            merged.append(token)
    return merged


def _check_clause_order(tokens: list[str]) -> str | None:
    """Reject clauses out of SQL order inside one query block, e.g. GROUP BY before WHERE.

    The official parser reads the clauses in their SQL order and ignores the rest of the
    text; sqlglot accepts some clauses out of order.
    """
    last_rank = [-1]  # one entry per bracket depth
    for position, token in enumerate(tokens):
        if token == "(":
            last_rank.append(-1)
        elif token == ")":
            if len(last_rank) > 1:
                last_rank.pop()
        elif token in _SET_OPERATORS:
            last_rank[-1] = -1
        elif token in _CLAUSE_RANK:
            following = tokens[position + 1] if position + 1 < len(tokens) else None
            if token in ("group", "order") and following != "by":
                continue
            rank = _CLAUSE_RANK[token]
            if rank < last_rank[-1]:
                return f"the {token.upper()} clause comes after a clause that must follow it"
            last_rank[-1] = rank
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_token(token: str, following: str | None) -> str | None:
    if "=" in token and token not in _COMPARISONS:
        return f"the token {token!r} joins '=' to a name or value (spaces are missing)"
    if token == "=" and following == "=":
        return "'==' is outside the Spider subset"
    if token == "<" and following == ">":
        return "'<>' is outside the Spider subset (write '!=')"
    if token == "!":
        return "'!' without '=' is outside the Spider subset"
    if any(char in token for char in "+-/|") and len(token) > 1 and not _is_number(token):
        return f"the token {token!r} joins an operator to a name (spaces are missing)"
    if "," in token and len(token) > 1 and not _NUMBER_LIST.match(token):
        return f"the token {token!r} joins a comma to a name (a space is missing)"
    if token.count(".") > 1 and not _is_number(token):
        return f"the name {token!r} has more than one dot"
    if token == "not" and following not in ("in", "like", "between"):
        return "NOT is read only in NOT IN, NOT LIKE and NOT BETWEEN"
    return None
