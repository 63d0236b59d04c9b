"""Schema-constrained beam search: a logits processor that masks invalid continuations.

At every generation step, for each running sequence, the processor takes the `top_k`
highest-scoring next tokens and appends each token's text to the sequence's checker
state. It keeps the tokens the `PrefixChecker` accepts and gives every other token a
score of -inf. Checking only the top candidates, not the whole vocabulary, is what
PICARD calls lazy checking (Scholak et al., 2021). The end-of-sequence token is kept only when the
text so far is a complete query.

Checker states are cached by token-id prefix, so a step costs one `feed` of a few
characters per candidate: the state of a running sequence was stored when its last
token was checked one step earlier.

When all `top_k` candidates of a sequence are rejected, the processor goes on down
the sequence's ranking, through at most `fallback_k` more tokens, and keeps the first
token the checker accepts. When none of those is valid either, and at once inside the
``db_id |`` header and inside a name that is not yet a whole word (``c`` of
``concert``), where the few pieces that can go on may rank anywhere, the whole
vocabulary is searched, through a character trie of the pieces. A small model often
ranks no valid token in its top few, most often in the header of an unseen database,
and without this fallback the whole query would be lost. A sequence with no valid token
is ended: only EOS stays, with score `dead_end_score`, so beam search ranks it below
every valid hypothesis. Such sequences are recorded in `dead_ends`.

A `RepetitionGuard` also bans tokens that would extend a loop (the same span over and
over), which a weak model otherwise writes until the length limit cuts the query off.

Where EOS ranks among a sequence's candidates but its query is not complete (``select
t1.name from singer`` with ``t1`` never bound), the sequence may end there, with EOS's
own score (`stop_early`). Forcing it on makes a weak model write on for a hundred tokens
or more, mostly loops; the unfinished query is instead completed by the grammar after
the search (`graphix.decoding.completion`), which takes milliseconds.
"""

from __future__ import annotations

import functools
import heapq
import logging
import re
import time
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from graphix.decoding import sql_lexer
from graphix.decoding.prefix_checker import CheckerState, PrefixChecker
from graphix.decoding.repetition import RepetitionGuard
from graphix.errors import InputError
from graphix.schema import Schema

logger = logging.getLogger(__name__)

SENTENCEPIECE_SPACE = "\u2581"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
DEFAULT_REPETITION_GUARD = RepetitionGuard()


def piece_texts(tokenizer) -> list[str | None]:
    """Return the text each token id adds to a decoded sequence; None for special tokens.

    SentencePiece marks a word start with ``▁``, which becomes a space. Byte-fallback
    pieces (``<0x41>``) of ASCII bytes become their character; other byte pieces,
    ``<unk>`` and special tokens map to None, and the checker never accepts them.
    """
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    texts: list[str | None] = []
    for token_id, piece in enumerate(pieces):
        if piece is None or token_id in special:
            texts.append(None)
            continue
        byte = _BYTE_PIECE.fullmatch(piece)
        if byte is not None:
            value = int(byte.group(1), 16)
            texts.append(chr(value) if value < 128 else None)
            continue
        texts.append(piece.replace(SENTENCEPIECE_SPACE, " "))
    return texts


class _TrieNode:
    __slots__ = ("children", "token_ids")

    def __init__(self):
        self.children: dict[str, _TrieNode] = {}
        self.token_ids: list[int] = []


@functools.lru_cache(maxsize=4)
def piece_trie(texts: tuple[str | None, ...]) -> _TrieNode:
    """Return a character trie of the piece texts. Each node lists the ids whose text ends there."""
    root = _TrieNode()
    for token_id, text in enumerate(texts):
        if not text:
            continue
        node = root
        for char in text:
            node = node.children.setdefault(char, _TrieNode())
        node.token_ids.append(token_id)
    return root


class _Sequence:
    """One running sequence during a step: its row, prefix, total score and checker state."""

    __slots__ = ("row", "prefix", "total", "state", "ends_with_space", "banned", "accepted",
                 "exhausted")

    def __init__(self, row: int, prefix: tuple[int, ...], total: float, state: CheckerState,
                 ends_with_space: bool):
        self.row = row
        self.prefix = prefix
        self.total = total
        self.state = state
        self.ends_with_space = ends_with_space
        self.banned: set[int] | None = None
        self.accepted = 0
        self.exhausted = False


class _Step:
    """The inputs of one processor call and the decisions taken so far."""

    def __init__(self, prefixes: list[list[int]], top_ids: list[list[int]],
                 top_scores: list[list[float]], scores: torch.Tensor, beams: int):
        self.prefixes = prefixes
        self.top_ids = top_ids
        self.top_scores = top_scores
        self.scores = scores
        self.beams = beams
        """Sequences per example; the next step continues this many of them."""
        self.continuations = max(2, 2 * beams)
        """Valid continuations to find per example: beam search keeps 2 x beams of them."""
        self.keep_rows: list[int] = []
        self.keep_ids: list[int] = []
        self.forced: list[int] = []
        self.states: dict[tuple[int, ...], tuple[CheckerState, bool]] = {}
        self.totals: dict[tuple[int, ...], float] = {}

    def keep(self, row: int, token_id: int) -> None:
        self.keep_rows.append(row)
        self.keep_ids.append(token_id)

    def force_end(self, row: int) -> None:
        self.forced.append(row)


class SchemaConstrainedLogitsProcessor(LogitsProcessor):
    """Masks next tokens that would make the decoded ``db_id | sql`` text invalid.

    Args:
        tokenizer: the model's SentencePiece tokenizer (a ``T5TokenizerFast``).
        schemas: one schema (or ready `PrefixChecker`) per example of the batch, in order;
            the running sequences of example ``i`` are rows ``i * n`` to ``i * n + n - 1``,
            where ``n`` (the number of beams) is inferred from the batch.
        top_k: how many of the best next tokens to check per sequence (default 8).
        fallback_k: how many further tokens, in score order, to check for a sequence
            whose `top_k` candidates are all rejected (default 256; 0 turns the fallback
            off). When none of them is valid, and inside the header or a partly written
            name, the whole vocabulary is checked.
        repetition: the loop guard (default: `RepetitionGuard()` with its defaults);
            None turns it off.
        with_db_id: whether targets start with ``db_id |`` (default True).
        dead_end_score: the EOS score given to a sequence with no accepted candidate
            (default -1e4).
        stop_early: whether a sequence may end, where EOS ranks among its candidates,
            although its query is not complete (default True), once its first result
            column has begun. Such a sequence is a valid prefix, and
            `graphix.decoding.completion` finishes it after the search.
    """

    def __init__(self, tokenizer, schemas: Sequence[Schema | PrefixChecker], *, top_k: int = 8,
                 fallback_k: int = 256, with_db_id: bool = True, dead_end_score: float = -1e4,
                 repetition: RepetitionGuard | None = DEFAULT_REPETITION_GUARD,
                 stop_early: bool = True):
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        if fallback_k < 0:
            raise InputError(f"fallback_k must be 0 or more, got {fallback_k}")
        if not schemas:
            raise InputError("schemas is empty; pass one schema per example of the batch")
        if tokenizer.eos_token_id is None:
            raise InputError("the tokenizer has no EOS token; constrained decoding needs one")
        self.checkers = [
            item if isinstance(item, PrefixChecker) else PrefixChecker(item, with_db_id=with_db_id)
            for item in schemas
        ]
        self.top_k = top_k
        self.fallback_k = fallback_k
        self.dead_end_score = dead_end_score
        self.repetition = repetition
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.texts = piece_texts(tokenizer)
        self._trie = piece_trie(tuple(self.texts))
        self.dead_ends: set[tuple[int, ...]] = set()
        """Token-id prefixes (with the decoder start token) that were ended by force."""
        self._states: dict[tuple[int, ...], tuple[CheckerState, bool]] = {}
        self._totals: dict[tuple[int, ...], float] = {}
        self.calls = 0
        """Decoding steps processed."""
        self.rebuilt_states = 0
        """Checker states read from the whole prefix because no cached state existed."""
        self.elapsed_s = 0.0
        """Seconds spent in this processor, summed over calls."""
        self.fallbacks = 0
        """Sequence steps where no top-k candidate was valid but a lower-ranked token was."""
        self.repetition_bans = 0
        """Candidate tokens rejected by the repetition guard."""
        self.stop_early = stop_early
        self.early_stops: set[tuple[int, ...]] = set()
        """Token-id prefixes (with the decoder start token) after which EOS was allowed
        although the query was not complete."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows, vocabulary = scores.shape
        if rows % len(self.checkers):
            raise InputError(
                f"{rows} sequences do not split evenly over {len(self.checkers)} schemas; pass "
                "one schema per example"
            )
        per_example = rows // len(self.checkers)
        self.calls += 1
        start = time.perf_counter()

        k = min(self.top_k, vocabulary)
        top_scores, top_ids = scores.topk(k, dim=-1)
        step = _Step(input_ids.tolist(), top_ids.tolist(), top_scores.tolist(), scores,
                     per_example)
        for example, checker in enumerate(self.checkers):
            self._select(checker, range(example * per_example, (example + 1) * per_example),
                         step)
        # States and totals of the next step are those of this step's accepted tokens.
        self._states = step.states
        self._totals = step.totals

        keep = torch.zeros_like(scores, dtype=torch.bool)
        if step.keep_rows:
            keep[torch.tensor(step.keep_rows), torch.tensor(step.keep_ids)] = True
        masked = scores.masked_fill(~keep, float("-inf"))
        if step.forced:
            masked[torch.tensor(step.forced), self.eos_token_id] = self.dead_end_score
        self.elapsed_s += time.perf_counter() - start
        return masked

    def _select(self, checker: PrefixChecker, rows: range, step: _Step) -> None:
        """Accept the best `step.continuations` valid continuations of one example's sequences.

        Beam search keeps the 2 x beams best continuations by total score (the sequence's
        log-probability so far plus the token's), so candidates are checked in that order
        across the example's sequences, and checking stops once enough are valid. A
        sequence whose top `top_k` tokens are all invalid is searched further only while
        its best possible total can still beat the continuations already accepted.
        """
        live = []
        seen = set()
        for row in rows:
            prefix = tuple(step.prefixes[row])
            if prefix in seen:
                continue  # at the first step every beam contains only the start token
            seen.add(prefix)
            if self.eos_token_id in prefix[1:]:
                # A finished sequence in greedy search is padded until the batch is done.
                step.keep(row, self.pad_token_id)
                continue
            total = self._totals.get(prefix)
            if total is None:
                if self._totals:
                    continue  # a filler beam that no accepted token made: never chosen
                total = 0.0
            state, ends_with_space = self._state(checker, prefix)
            if not state.ok:
                step.force_end(row)
                self.dead_ends.add(prefix)
                continue
            live.append(_Sequence(row, prefix, total, state, ends_with_space))
        if not live:
            return

        accepted: list[tuple[float, _Sequence, int]] = []
        queue = [(-(sequence.total + step.top_scores[sequence.row][0]), position, 0)
                 for position, sequence in enumerate(live)]
        heapq.heapify(queue)
        while queue and len(accepted) < step.continuations:
            negative, position, rank = heapq.heappop(queue)
            sequence = live[position]
            if rank + 1 < len(step.top_ids[sequence.row]):
                following = sequence.total + step.top_scores[sequence.row][rank + 1]
                heapq.heappush(queue, (-following, position, rank + 1))
            else:
                sequence.exhausted = True
            if negative == float("inf"):
                continue
            token_id = step.top_ids[sequence.row][rank]
            if self._check(checker, sequence, token_id, step):
                accepted.append((-negative, sequence, token_id))
                sequence.accepted += 1

        # The next step continues the best `beams` sequences, so a token found further
        # down a ranking matters only when it beats the `beams`-th accepted one.
        full = len(accepted) >= step.beams
        threshold = accepted[step.beams - 1][0] if full else float("-inf")
        for sequence in live:
            if sequence.accepted or not sequence.exhausted:
                continue
            lowest = sequence.total + step.top_scores[sequence.row][-1]
            if lowest <= threshold:
                continue  # nothing further down this sequence's ranking can be kept
            best = self._best_valid_token(checker, sequence, step, threshold)
            if best is None:
                if not full:
                    step.force_end(sequence.row)
                    self.dead_ends.add(sequence.prefix)
                continue
            self.fallbacks += 1
            accepted.append((sequence.total + float(step.scores[sequence.row, best]), sequence,
                             best))
        for total, sequence, token_id in accepted:
            step.keep(sequence.row, token_id)
            step.totals[sequence.prefix + (token_id,)] = total

    def _check(self, checker: PrefixChecker, sequence: _Sequence, token_id: int,
               step: _Step) -> bool:
        """Check one candidate token, counting repetition bans."""
        if token_id in self._banned(sequence):
            self.repetition_bans += 1
            return False
        return self._accepts(checker, sequence.state, sequence.ends_with_space,
                             sequence.prefix, token_id, step.states)

    def _banned(self, sequence: _Sequence) -> set[int]:
        if sequence.banned is None:
            body = sequence.prefix[1:]
            sequence.banned = self.repetition.banned(body) if self.repetition else set()
        return sequence.banned

    def _accepts(self, checker: PrefixChecker, state: CheckerState, ends_with_space: bool,
                 prefix: tuple[int, ...], token_id: int, states: dict) -> bool:
        """Check one next token; store the extended state in `states` when it is valid."""
        if token_id == self.eos_token_id:
            if checker.is_complete(state):
                return True
            if self.stop_early and checker.has_started(state):
                # The model may end an unfinished query: grammar completion finishes it
                # after the search, rather than the model being forced to go on.
                self.early_stops.add(prefix)
                return True
            return False
        text = self.texts[token_id]
        if text is None or (ends_with_space and text[0] == " ") or "  " in text:
            # Targets are normalized to single spaces; a second one only pads.
            return False
        extended = checker.feed(state, text)
        if not extended.ok:
            return False
        states[prefix + (token_id,)] = (extended, text[-1] == " ")
        return True

    def _best_valid_token(self, checker: PrefixChecker, sequence: _Sequence, step: _Step,
                          threshold: float) -> int | None:
        """Return the best valid token of a sequence whose top `top_k` are all invalid.

        The search goes down the ranking from `top_k` through `fallback_k` more tokens,
        then over the whole vocabulary. Tokens whose total cannot pass `threshold` are
        not checked. Returns None when no such token is valid.
        """
        if not self.fallback_k:
            return None
        state, row_scores = sequence.state, step.scores[sequence.row]
        banned = self._banned(sequence)
        # Inside the header or a name that is not yet a whole word (``c`` of ``concert``),
        # the pieces that can finish the name may rank anywhere, so the ranked search is
        # skipped there.
        in_name = state.header is not None or (
            state.lexer.mode == sql_lexer.IN_WORD and not checker.feed(state, " ").ok)
        if not in_name:
            skip = len(step.top_ids[sequence.row])
            count = min(skip + self.fallback_k, row_scores.numel())
            ranked_scores, ranking = row_scores.topk(count)
            for token_id, score in zip(ranking[skip:].tolist(), ranked_scores[skip:].tolist()):
                if sequence.total + score <= threshold:
                    return None
                if token_id not in banned and self._accepts(
                        checker, state, sequence.ends_with_space, sequence.prefix, token_id,
                        step.states):
                    return token_id
        # When few tokens are valid (only ``.`` after ``t1``), none may rank near the top.
        best = self._best_piece(checker, state, sequence.ends_with_space, sequence.prefix,
                                row_scores, step.states, banned)
        if best is None or sequence.total + float(row_scores[best]) <= threshold:
            return None
        return best

    def _best_piece(self, checker: PrefixChecker, state: CheckerState, ends_with_space: bool,
                    prefix: tuple[int, ...], row_scores: torch.Tensor, states: dict,
                    banned: set[int]) -> int | None:
        """Return the best-scoring valid token of the whole vocabulary, or None.

        The search walks the piece trie one character at a time while the checker accepts
        the text. A rejected character rules out every piece that starts with it at once.
        """
        scores = row_scores.tolist()
        best_id, best_score, best_state = None, float("-inf"), None
        pending = [(self._trie, state, ends_with_space)]
        while pending:
            node, node_state, after_space = pending.pop()
            for char, child in node.children.items():
                if char == " " and after_space:
                    continue  # normalized targets contain no double spaces
                child_state = checker.feed(node_state, char)
                if not child_state.ok:
                    continue
                for token_id in child.token_ids:
                    score = scores[token_id]
                    if score > best_score and token_id not in banned:
                        best_id, best_score, best_state = token_id, score, child_state
                if child.children:
                    pending.append((child, child_state, char == " "))
        if best_id is None or best_score == float("-inf"):
            return None
        states[prefix + (best_id,)] = (best_state, self.texts[best_id][-1] == " ")
        return best_id

    def _state(self, checker: PrefixChecker, prefix: tuple[int, ...]) -> tuple[CheckerState, bool]:
        """Return the checker state after `prefix` and whether its text ends with a space."""
        cached = self._states.get(prefix)
        if cached is not None:
            return cached
        # Not checked at the previous step (the first step, or a token chosen outside the
        # checked candidates): read the whole prefix, skipping the decoder start token.
        self.rebuilt_states += 1
        texts = [self.texts[token_id] for token_id in prefix[1:]]
        if None in texts:
            return checker.feed(checker.initial(), "\x00"), False
        text = "".join(texts)
        return checker.feed(checker.initial(), text), text.endswith(" ")

    def is_valid_output(self, example: int, token_ids: Sequence[int]) -> bool:
        """Check whether generated ids (decoder start first, EOS and padding allowed) form a query."""
        checker = self.checkers[example]
        state = checker.initial()
        for token_id in list(token_ids)[1:]:
            if token_id in (self.eos_token_id, self.pad_token_id):
                break
            text = self.texts[token_id]
            if text is None:
                return False
            state = checker.feed(state, text)
        return checker.is_complete(state)
