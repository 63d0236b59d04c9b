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
token the checker accepts. Inside the ``db_id |`` header and inside a name that is not
yet a whole word (``c`` of ``concert``), the few pieces that can go on may rank anywhere,
so there the whole vocabulary is searched, through a character trie of the pieces. A
small model often ranks no valid token in its top few, most often in the header of an
unseen database, and without this fallback the whole query would be lost. A sequence
with no valid token is ended: only EOS stays, with score `dead_end_score`, so beam
search ranks it below every valid hypothesis. Such sequences are recorded in
`dead_ends`.

A `RepetitionGuard` also bans tokens that would extend a loop (the same span over and
over), which a weak model otherwise writes until the length limit cuts the query off.
"""

from __future__ import annotations

import functools
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


class SchemaConstrainedLogitsProcessor(LogitsProcessor):
    """Masks next tokens that would make the decoded ``db_id | sql`` text invalid.

    Args:
        tokenizer: the model's SentencePiece tokenizer (a ``T5TokenizerFast``).
        schemas: one schema (or ready `PrefixChecker`) per example of the batch, in order;
            the running sequences of example ``i`` are rows ``i * n`` to ``i * n + n - 1``,
            where ``n`` (the number of beams) is inferred from the batch.
        top_k: how many of the best next tokens to check per sequence (default 8).
        fallback_k: how many further tokens, in score order, to check for a sequence
            whose `top_k` candidates are all rejected (default 256; 0 turns this off).
            Inside the header or a partly written name, the whole vocabulary is checked.
        repetition: the loop guard (default: `RepetitionGuard()` with its defaults);
            None turns it off.
        with_db_id: whether targets start with ``db_id |`` (default True).
        dead_end_score: the EOS score given to a sequence with no accepted candidate
            (default -1e4).
    """

    def __init__(self, tokenizer, schemas: Sequence[Schema | PrefixChecker], *, top_k: int = 8,
                 fallback_k: int = 256, with_db_id: bool = True, dead_end_score: float = -1e4,
                 repetition: RepetitionGuard | None = DEFAULT_REPETITION_GUARD):
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
        top_ids = top_ids.tolist()
        finite = torch.isfinite(top_scores).tolist()
        prefixes = input_ids.tolist()

        keep_rows: list[int] = []
        keep_ids: list[int] = []
        states: dict[tuple[int, ...], tuple[CheckerState, bool]] = {}
        forced: list[int] = []
        for row in range(rows):
            prefix = tuple(prefixes[row])
            checker = self.checkers[row // per_example]
            accepted = self._accepted_tokens(checker, prefix, top_ids[row], finite[row],
                                             scores[row], states)
            if accepted is None:
                forced.append(row)
                self.dead_ends.add(prefix)
                continue
            keep_rows.extend([row] * len(accepted))
            keep_ids.extend(accepted)
        # States of the next step are the accepted extensions of this one.
        self._states = states

        keep = torch.zeros_like(scores, dtype=torch.bool)
        if keep_rows:
            keep[torch.tensor(keep_rows), torch.tensor(keep_ids)] = True
        masked = scores.masked_fill(~keep, float("-inf"))
        if forced:
            masked[torch.tensor(forced), self.eos_token_id] = self.dead_end_score
        self.elapsed_s += time.perf_counter() - start
        return masked

    def _accepted_tokens(self, checker: PrefixChecker, prefix: tuple[int, ...],
                         candidates: list[int], finite: list[bool], row_scores: torch.Tensor,
                         states: dict) -> list[int] | None:
        """Return the accepted next-token ids of one sequence, or None when none is valid.

        These are the valid ids among `candidates` (the top k), else the best valid id
        further down `row_scores`.
        """
        body = prefix[1:]
        if self.eos_token_id in body:
            # A finished sequence in greedy search is padded until the batch is done.
            return [self.pad_token_id]
        state, ends_with_space = self._state(checker, prefix)
        if not state.ok:
            return None
        banned = self.repetition.banned(body) if self.repetition is not None else set()
        accepted = []
        for token_id, is_finite in zip(candidates, finite):
            if not is_finite:
                continue
            if token_id in banned:
                self.repetition_bans += 1
                continue
            if self._accepts(checker, state, ends_with_space, prefix, token_id, states):
                accepted.append(token_id)
        if accepted:
            return accepted
        best = self._best_valid_token(checker, state, ends_with_space, prefix, row_scores,
                                      len(candidates), states, banned)
        if best is None:
            return None
        self.fallbacks += 1
        return [best]

    def _accepts(self, checker: PrefixChecker, state: CheckerState, ends_with_space: bool,
                 prefix: tuple[int, ...], token_id: int, states: dict) -> bool:
        """Check one next token; store the extended state in `states` when it is valid."""
        if token_id == self.eos_token_id:
            return checker.is_complete(state)
        text = self.texts[token_id]
        if text is None or (ends_with_space and text[0] == " ") or "  " in text:
            # Targets are normalized to single spaces; a second one only pads.
            return False
        extended = checker.feed(state, text)
        if not extended.ok:
            return False
        states[prefix + (token_id,)] = (extended, text[-1] == " ")
        return True

    def _best_valid_token(self, checker: PrefixChecker, state: CheckerState,
                          ends_with_space: bool, prefix: tuple[int, ...],
                          row_scores: torch.Tensor, skip: int, states: dict,
                          banned: set[int]) -> int | None:
        """Return the best valid token ranked from `skip` to `skip + fallback_k`, or None."""
        if not self.fallback_k:
            return None
        # Inside the header or a name that is not yet a whole word (``c`` of ``concert``),
        # the pieces that can finish the name may rank anywhere. So the whole vocabulary
        # is searched there.
        in_name = state.header is not None or (
            state.lexer.mode == sql_lexer.IN_WORD and not checker.feed(state, " ").ok)
        if in_name:
            return self._best_name_piece(checker, state, ends_with_space, prefix, row_scores,
                                         states, banned)
        count = min(skip + self.fallback_k, row_scores.numel())
        ranking = row_scores.topk(count).indices[skip:]
        finite = torch.isfinite(row_scores[ranking]).tolist()
        for token_id, is_finite in zip(ranking.tolist(), finite):
            if not is_finite:
                break
            if token_id in banned:
                continue
            if self._accepts(checker, state, ends_with_space, prefix, token_id, states):
                return token_id
        return None

    def _best_name_piece(self, checker: PrefixChecker, state: CheckerState,
                         ends_with_space: bool, prefix: tuple[int, ...],
                         row_scores: torch.Tensor, states: dict,
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
