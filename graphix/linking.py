"""Schema linking: which question tokens name a table, a column or a cell value.

Name linking compares question n-grams, longest first, with the lemmatized natural names
of tables and columns (Spider's ``table_names`` / ``column_names``):

- exact match: the n-gram's lemmas equal the whole name, as "singers" and ``singer``;
- partial match: the n-gram is a contiguous part of a longer name, as "name" and
  ``song name``. N-grams made only of stopwords and punctuation never match.

Value linking looks the same n-grams up in a `ValueIndex` of the database: exact (after
lowercasing, or after lemmatizing), else a near miss whose rapidfuzz ratio reaches
`LinkingConfig.value_threshold`. Tokens covered by a longer value match are not looked up
again inside shorter n-grams. The values found become the ``( value , value )`` lists of
the serialized input.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum

from graphix.schema import Schema
from graphix.text import Token, normalize_phrase, tokenize
from graphix.value_index import ValueIndex


class Match(str, Enum):
    """Kind of reference from a question span to a schema item, strongest first."""

    EXACT = "exact"
    PARTIAL = "partial"
    VALUE = "value"


_PRIORITY = {Match.EXACT: 0, Match.PARTIAL: 1, Match.VALUE: 2}


@dataclass(frozen=True)
class LinkingConfig:
    """Settings of name and value linking."""

    max_ngram: int = 6
    """Maximum n-gram length, in tokens, compared with names and values."""
    value_threshold: float = 90.0
    """Smallest rapidfuzz ``fuzz.ratio`` (0..100) for a near-miss value match."""
    near_misses: bool = True
    """Look for near-miss values when an n-gram has no exact value match."""
    max_fuzzy_ngram: int = 4
    """Maximum n-gram length, in tokens, searched for near misses."""
    values_per_column: int = 2
    """Maximum number of cell values kept per column for the serialized input."""


@dataclass(frozen=True)
class Link:
    """Question tokens ``[start, end)`` refer to one table or column."""

    start: int
    end: int
    kind: str
    """``"table"`` or ``"column"``."""
    index: int
    """Table position in `Schema.tables`, or Spider column index."""
    match: Match
    value: str | None = None
    """The cell value, for value matches."""
    score: float = 100.0


@dataclass
class Linking:
    """The tokens of one question and every link found between them and the schema."""

    question: str
    tokens: list[Token]
    links: list[Link]
    column_values: dict[int, list[str]] = field(default_factory=dict)
    """Best cell values per Spider column index, best first, at most k per column."""

    def token_relations(self) -> dict[tuple[int, str, int], Match]:
        """Return the strongest match per (token position, kind, item index)."""
        best: dict[tuple[int, str, int], Match] = {}
        for link in self.links:
            for position in range(link.start, link.end):
                key = (position, link.kind, link.index)
                current = best.get(key)
                if current is None or _PRIORITY[link.match] < _PRIORITY[current]:
                    best[key] = link.match
        return best

    def linked_items(self) -> tuple[set[int], set[int]]:
        """Return the table positions and the column indices that any link names."""
        tables = {link.index for link in self.links if link.kind == "table"}
        columns = {link.index for link in self.links if link.kind == "column"}
        return tables, columns


class SchemaLinker:
    """Links questions to one schema; build it once per database and reuse it."""

    def __init__(self, schema: Schema, value_index: ValueIndex | None = None,
                 config: LinkingConfig = LinkingConfig()):
        self.schema = schema
        self.value_index = value_index
        self.config = config
        self._exact: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
        self._partial: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
        for position, table in enumerate(schema.tables):
            self._add_name(table.text, ("table", position))
        for index, column in enumerate(schema.columns):
            if index:
                self._add_name(column.text, ("column", index))
        # No n-gram longer than the longest name can match one.
        self._longest_name = max((len(words) for words in self._exact), default=0)

    def _add_name(self, text: str, item: tuple[str, int]) -> None:
        words = normalize_phrase(text)
        if not words:
            return
        self._exact[words].append(item)
        parts = {
            words[i:j]
            for i in range(len(words))
            for j in range(i + 1, len(words) + 1)
            if j - i < len(words)
        }
        for part in parts:
            self._partial[part].append(item)

    def link(self, question: str) -> Linking:
        """Tokenize `question` and link its n-grams to names and values."""
        tokens = tokenize(question)
        links = self._link_names(tokens)
        column_values: dict[int, list[str]] = {}
        if self.value_index is not None:
            value_links = self._link_values(tokens)
            links.extend(value_links)
            column_values = self._choose_values(value_links)
        return Linking(question, tokens, links, column_values)

    # ------------------------------------------------------------------ names

    def _link_names(self, tokens: list[Token]) -> list[Link]:
        links = []
        lemmas_of = [token.lemma for token in tokens]
        longest = min(self.config.max_ngram, self._longest_name, len(tokens))
        for n in range(longest, 0, -1):
            for start in range(len(tokens) - n + 1):
                window = tokens[start:start + n]
                if not all(token.is_word for token in window):
                    continue
                if all(token.is_stopword for token in window):
                    continue
                lemmas = tuple(lemmas_of[start:start + n])
                for kind, index in self._exact.get(lemmas, ()):
                    links.append(Link(start, start + n, kind, index, Match.EXACT))
                for kind, index in self._partial.get(lemmas, ()):
                    links.append(Link(start, start + n, kind, index, Match.PARTIAL))
        return links

    # ------------------------------------------------------------------ values

    def _link_values(self, tokens: list[Token]) -> list[Link]:
        covered = [False] * len(tokens)
        links = []
        # Word counts before each position; windows with more words than any value are skipped.
        words_before = [0]
        for token in tokens:
            words_before.append(words_before[-1] + token.is_word)
        max_words = self.value_index.max_words
        for n in range(min(self.config.max_ngram, len(tokens)), 0, -1):
            for start in range(len(tokens) - n + 1):
                end = start + n
                if words_before[end] - words_before[start] > max_words or any(covered[start:end]):
                    continue
                hits = self._lookup_value(tokens[start:end])
                if not hits:
                    continue
                covered[start:end] = [True] * n
                best: dict[int, tuple[float, str]] = {}
                for hit in hits:
                    if hit.column not in best or hit.score > best[hit.column][0]:
                        best[hit.column] = (hit.score, hit.value)
                for column, (score, value) in best.items():
                    links.append(Link(start, end, "column", column, Match.VALUE, value, score))
        return links

    def _lookup_value(self, window: list[Token]):
        first, last = window[0], window[-1]
        if not first.is_word or not last.is_word:
            return []
        words = [token for token in window if token.is_word]
        if all(token.is_stopword for token in words):
            return []
        key = " ".join(token.lower.replace("_", " ") for token in words)
        lemma_key = " ".join(token.lemma for token in words)
        hits = self.value_index.exact(key, lemma_key)
        if hits or not self.config.near_misses or len(window) > self.config.max_fuzzy_ngram:
            return hits
        if first.is_stopword or last.is_stopword or key.replace(" ", "").isdigit():
            return []
        return self.value_index.near(key, self.config.value_threshold)

    def _choose_values(self, links: list[Link]) -> dict[int, list[str]]:
        ranked: dict[int, list[tuple[float, int, str]]] = defaultdict(list)
        for order, link in enumerate(links):
            ranked[link.index].append((-link.score, order, link.value))
        chosen = {}
        for column, entries in ranked.items():
            values: list[str] = []
            for _, _, value in sorted(entries):
                if value not in values:
                    values.append(value)
            chosen[column] = values[: self.config.values_per_column]
        return chosen
