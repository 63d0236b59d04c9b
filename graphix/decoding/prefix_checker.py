"""Checks whether decoded text can still grow into a valid query for a schema.

The decoded target is ``db_id | sql``. `PrefixChecker` feeds it character by character:
first the ``db_id |`` header, then the SQL through the incremental lexer
(`graphix.decoding.sql_lexer`) into the schema-aware parser
(`graphix.decoding.sql_grammar`). A state is rejected as soon as no continuation can
make the query valid. A partial last word (``sing`` while typing ``singer``) stays
accepted while some keyword, function, schema name or new alias starts with it.

>>> from graphix.schema import Column, Schema, Table
>>> singer = Table("singer", "singer", (Column("name", "name", "text", "singer"),))
>>> checker = PrefixChecker(Schema("music", (singer,)))
>>> checker.check("music | select name from sing").ok
True
>>> checker.check("music | select age from singer").rejection.reason.value
'unknown_column'
>>> checker.is_complete(checker.check("music | select name from singer"))
True
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from graphix.decoding import sql_lexer
from graphix.decoding.sql_grammar import (
    DEFAULT_MAX_RESULT_COLUMNS, NUMBERED_ALIASES, Grammar, NewNames, RejectReason, Rejection,
    S_ITEM, S_QUANTIFIER, S_SELECT, SchemaIndex, SelectFrame,
)
from graphix.decoding.sql_lexer import END, NUMBER, STRING, SYMBOL, WORD, LexerState
from graphix.schema import Schema

_EMPTY_LEXER = LexerState()
_NOT_STARTED = (S_SELECT, S_QUANTIFIER, S_ITEM)
_MAX_MEMOIZED_WORDS = 50_000


@dataclass(frozen=True, slots=True)
class CheckerState:
    """The checker's position in a decoded text. States are immutable and cheap to keep."""

    header: str | None
    """The ``db_id`` header read so far, or None once its ``|`` has been read."""
    lexer: LexerState
    stack: tuple
    rejection: Rejection | None = None

    @property
    def ok(self) -> bool:
        return self.rejection is None


class PrefixChecker:
    """Incremental validity checks of ``db_id | sql`` texts for one schema.

    `with_db_id=False` checks bare SQL without the header. `implicit_aliases=True` also
    accepts table aliases without ``as`` (``from singer s``). They are off by default
    because normalized targets always write ``as``. Without that rule, any word after a
    table name would pass as an alias. `strict` (the default) adds the rules that keep a
    decoding model on the form of the training targets (see `Grammar.strict`); checks
    of finished SQL turn it off. Under them, `new_names` sets which aliases a query may
    introduce: by default ``t1`` to ``t9`` (`NUMBERED_ALIASES`), and None accepts any.
    `max_result_columns` caps the result columns of one SELECT (default 8); None lifts
    the cap.
    """

    def __init__(self, schema: Schema, *, with_db_id: bool = True,
                 implicit_aliases: bool = False, strict: bool = True,
                 new_names: NewNames | None = NUMBERED_ALIASES,
                 max_result_columns: int | None = DEFAULT_MAX_RESULT_COLUMNS):
        self.index = SchemaIndex(schema)
        self.grammar = Grammar(self.index, implicit_aliases=implicit_aliases, strict=strict,
                               new_names=new_names, max_result_columns=max_result_columns)
        self.db_id = schema.db_id.lower()
        self.with_db_id = with_db_id
        self._word_outcomes: dict[tuple[str, int], tuple[tuple, Rejection | None]] = {}
        self._word_accepted: dict[tuple[str, int], tuple[tuple, bool]] = {}
        self._initial = CheckerState("" if with_db_id else None, _EMPTY_LEXER,
                                     self.grammar.initial())

    def initial(self) -> CheckerState:
        return self._initial

    def check(self, text: str) -> CheckerState:
        """Return the state after reading `text` from the start."""
        return self.feed(self._initial, text)

    def feed(self, state: CheckerState, text: str) -> CheckerState:
        """Return the state after reading `text` from `state`; a rejected state stays rejected."""
        if state.rejection is not None or not text:
            return state
        header, lexer, stack = state.header, state.lexer, state.stack
        try:
            if header is not None:
                header, text = self._read_header(header, text)
                if header is not None:
                    return CheckerState(header, lexer, stack)

            tokens = []
            lexer = sql_lexer.lex(lexer, text, tokens.append)
            feed = self.grammar.feed
            for token in tokens:
                stack = feed(stack, token)
            self._check_partial_token(lexer, stack)
        except Rejection as rejection:
            return CheckerState(header, lexer, stack, rejection)
        except sql_lexer.LexError as error:
            return CheckerState(header, lexer, stack,
                                Rejection(RejectReason.BAD_CHARACTER, str(error)))
        return CheckerState(header, lexer, stack)

    def is_complete(self, state: CheckerState) -> bool:
        """Check whether the text read so far is a whole valid query, so the end may come here."""
        if state.rejection is not None or state.header is not None:
            return False
        tokens = []
        try:
            sql_lexer.finish(state.lexer, tokens.append)
            stack = state.stack
            for token in tokens:
                stack = self.grammar.feed(stack, token)
            return self.grammar.is_complete(stack)
        except (Rejection, sql_lexer.LexError):
            return False

    def has_started(self, state: CheckerState) -> bool:
        """Check whether the SQL read so far has begun its first result column."""
        if state.rejection is not None or state.header is not None:
            return False
        stack = state.stack
        return len(stack) > 1 or stack[0].state not in _NOT_STARTED

    def accepts_prefix(self, text: str) -> bool:
        return self.check(text).ok

    def accepts_query(self, text: str) -> bool:
        return self.is_complete(self.check(text))

    # ------------------------------------------------------------------ header

    def _read_header(self, header: str, text: str) -> tuple[str | None, str]:
        """Consume the ``db_id |`` header; return the header left open and the rest of `text`."""
        bar = text.find("|")
        if bar >= 0:
            name = (header + text[:bar]).strip().lower()
            if name != self.db_id:
                raise Rejection(RejectReason.DB_ID,
                                f"the query names database {name!r}, expected {self.db_id!r}")
            return None, text[bar + 1:]
        header += text
        name = header.lstrip().lower()
        trimmed = name.rstrip()
        if trimmed != name:
            viable = trimmed == self.db_id
        else:
            viable = self.db_id.startswith(name)
        if not viable:
            raise Rejection(RejectReason.DB_ID,
                            f"{header.strip()!r} does not start database name {self.db_id!r}")
        return header, ""

    # ------------------------------------------------------------------ partial tokens

    def _check_partial_token(self, lexer: LexerState, stack: tuple) -> None:
        """Raise Rejection unless the unfinished token can be completed into a valid one."""
        mode = lexer.mode
        if mode == sql_lexer.IDLE:
            return
        feed = self.grammar.feed
        if mode == sql_lexer.IN_WORD:
            self._check_partial_word(lexer.text.lower(), stack)
        elif mode == sql_lexer.IN_NUMBER:
            feed(stack, (NUMBER, lexer.text))
        elif mode in (sql_lexer.IN_STRING, sql_lexer.AFTER_QUOTE):
            feed(stack, (STRING, lexer.text))
        elif mode == sql_lexer.IN_OPERATOR:
            completions = [lexer.text + c for c in "=>|<"
                           if lexer.text + c in sql_lexer.TWO_CHAR_OPERATORS]
            if lexer.text != "!":
                completions.insert(0, lexer.text)
            self._first_accepted(stack, [(SYMBOL, c) for c in completions])

    def _check_partial_word(self, prefix: str, stack: tuple) -> None:
        # Candidates that extend the same partial word share the parse stack object, and a
        # probe costs many token feeds, so outcomes are memoized by stack identity. The
        # entry keeps the stack alive, so its id cannot be reused while the entry exists.
        key = (prefix, id(stack))
        entry = self._word_outcomes.get(key)
        if entry is None or entry[0] is not stack:
            try:
                self._probe_partial_word(prefix, stack)
                outcome = None
            except Rejection as rejection:
                outcome = rejection
            if len(self._word_outcomes) >= _MAX_MEMOIZED_WORDS:
                self._word_outcomes.clear()
            entry = (stack, outcome)
            self._word_outcomes[key] = entry
        if entry[1] is not None:
            raise entry[1]

    def _probe_partial_word(self, prefix: str, stack: tuple) -> None:
        try:
            self.grammar.feed(stack, (WORD, prefix))
            return
        except Rejection as rejection:
            first = rejection
        words = self.index.words
        start = bisect_left(words, prefix)
        candidates = []
        for word in words[start:]:
            if not word.startswith(prefix):
                break
            if word != prefix:
                candidates.append(word)
        for frame in stack:
            if isinstance(frame, SelectFrame):
                scope = frame.scope
                names = [source.key for source in scope.sources] + sorted(scope.aliases)
                for source in scope.sources:
                    names.extend(sorted(source.columns or ()))
                candidates.extend(name for name in names
                                  if name.startswith(prefix) and name != prefix)
        # A word no keyword or schema name starts with may still be a new alias.
        candidates.extend(self.grammar.new_name_completions(prefix))
        if not any(self._accepts_word(stack, word) for word in candidates):
            raise Rejection(first.reason,
                            f"no valid word starts with {prefix!r} here ({first.message})")

    def _accepts_word(self, stack: tuple, word: str) -> bool:
        # The partial words ``l``, ``la``, ``las`` of one word probe the same candidates
        # (``last_name``) against the same stack, so each outcome is memoized once.
        key = (word, id(stack))
        entry = self._word_accepted.get(key)
        if entry is None or entry[0] is not stack:
            try:
                self.grammar.feed(stack, (WORD, word))
                accepted = True
            except Rejection:
                accepted = False
            if len(self._word_accepted) >= _MAX_MEMOIZED_WORDS:
                self._word_accepted.clear()
            entry = (stack, accepted)
            self._word_accepted[key] = entry
        return entry[1]

    def _first_accepted(self, stack: tuple, tokens: list) -> None:
        error = None
        for token in tokens:
            try:
                self.grammar.feed(stack, token)
                return
            except Rejection as rejection:
                error = error or rejection
        raise error or Rejection(RejectReason.SYNTAX, "no token can follow here")
