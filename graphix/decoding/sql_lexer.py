"""An incremental SQL lexer that is fed characters and emits tokens as they complete.

Decoding produces SQL a few characters at a time, so the lexer keeps the partial token
between calls: a word, number, quoted string or operator that the next character may
still extend. A token is emitted only once a later character (or the end of the text)
shows it is complete. Spacing does not matter: ``t1.name``, ``t1 . name`` and
``count(*)`` lex to the same tokens.

Tokens are ``(kind, text)`` pairs. Words are lowercased because SQL keywords and
SQLite identifiers ignore case; string literals keep their text (quotes removed,
doubled quotes undone).
"""

from __future__ import annotations

from dataclasses import dataclass

WORD, NUMBER, STRING, SYMBOL, END = range(5)
"""Token kinds. END is the end of the query, fed by the checker, never by the lexer."""

KIND_NAMES = ("word", "number", "string", "symbol", "end")

Token = tuple[int, str]

# Lexer modes: between tokens, or inside a token of one kind.
IDLE, IN_WORD, IN_NUMBER, IN_STRING, AFTER_QUOTE, IN_OPERATOR = range(6)

SINGLE_SYMBOLS = frozenset("(),.*+-/%")
OPERATOR_STARTS = frozenset("<>!=|")
TWO_CHAR_OPERATORS = frozenset({"<=", ">=", "<>", "!=", "==", "||", "<<", ">>"})
WHITESPACE = frozenset(" \t\n\r")


class LexError(ValueError):
    """A character that cannot occur at this point of a SQL query."""


@dataclass(frozen=True, slots=True)
class LexerState:
    """The partial token between two calls: its mode, text so far and quote character."""

    mode: int = IDLE
    text: str = ""
    quote: str = ""


def _is_word_start(char: str) -> bool:
    return char.isalpha() or char == "_"


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def lex(state: LexerState, text: str, emit) -> LexerState:
    """Feed `text` to the lexer in `state`, call ``emit(token)`` per completed token.

    Returns the new state. Raises LexError for a character no SQL token can contain
    here; `emit` may raise to stop early.
    """
    mode, buffer, quote = state.mode, state.text, state.quote
    for char in text:
        # A character that ends the current token is processed again in IDLE mode.
        if mode == IN_WORD:
            if _is_word_char(char):
                buffer += char
                continue
            emit((WORD, buffer.lower()))
            mode, buffer = IDLE, ""
        elif mode == IN_NUMBER:
            if char.isdigit() or (char == "." and "." not in buffer):
                buffer += char
                continue
            if _is_word_char(char):
                raise LexError(f"number {buffer!r} followed by {char!r}")
            emit((NUMBER, buffer))
            mode, buffer = IDLE, ""
        elif mode == IN_STRING:
            if char == quote:
                mode = AFTER_QUOTE
            else:
                buffer += char
            continue
        elif mode == AFTER_QUOTE:
            if char == quote:
                # A doubled quote stands for one quote character inside the string.
                buffer += char
                mode = IN_STRING
                continue
            emit((STRING, buffer))
            mode, buffer, quote = IDLE, "", ""
        elif mode == IN_OPERATOR:
            if buffer + char in TWO_CHAR_OPERATORS:
                emit((SYMBOL, buffer + char))
                mode, buffer = IDLE, ""
                continue
            if buffer == "!":
                raise LexError("'!' must be followed by '='")
            emit((SYMBOL, buffer))
            mode, buffer = IDLE, ""

        if char in WHITESPACE:
            continue
        if _is_word_start(char):
            mode, buffer = IN_WORD, char
        elif char.isdigit():
            mode, buffer = IN_NUMBER, char
        elif char == "'" or char == '"':
            mode, buffer, quote = IN_STRING, "", char
        elif char in SINGLE_SYMBOLS:
            emit((SYMBOL, char))
        elif char in OPERATOR_STARTS:
            mode, buffer = IN_OPERATOR, char
        else:
            raise LexError(f"unexpected character {char!r}")
    return LexerState(mode, buffer, quote)


def finish(state: LexerState, emit) -> None:
    """Emit the partial token as complete. Raises LexError for an unclosed string or ``!``."""
    if state.mode == IN_WORD:
        emit((WORD, state.text.lower()))
    elif state.mode == IN_NUMBER:
        emit((NUMBER, state.text))
    elif state.mode == AFTER_QUOTE:
        emit((STRING, state.text))
    elif state.mode == IN_STRING:
        raise LexError(f"unclosed string {state.quote}{state.text}")
    elif state.mode == IN_OPERATOR:
        if state.text == "!":
            raise LexError("'!' must be followed by '='")
        emit((SYMBOL, state.text))
