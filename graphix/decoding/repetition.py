"""Token-level loop guard: bans next tokens that would extend a repeating stretch.

A small model that loses track of a query tends to loop: ``t1.name, t1.name, ...`` or
``min(age), min(age), avg(age), min(age), ...`` until the length limit cuts the query
off, and a query cut off does not run. Valid SQL rarely repeats itself. Three limits,
each checked on the generated token ids, stop a loop within a few periods:

- a single token may follow itself at most `max_token_run` times in a row;
- a span of two or more tokens may occur at most `max_span_repeats` times in a row;
- an n-gram of `ngram_size` tokens may occur at most `max_ngram_count` times in all.

The defaults are above what Spider's gold queries need. Tokenized with the bundled
model's tokenizer, the train and dev gold queries have at most 4 equal tokens in a row
(``) ) ) )``). They have at most 2 copies of a longer span in a row (``t1.date ,
t1.date``) and at most 3 occurrences of any 10-gram (nested ``in ( select state_name
from``). A 2,000-piece tokenizer splits long names into more pieces: with it, the
10-gram count is still at most 3, while an 8-gram can occur 5 times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from graphix.errors import InputError


class RepetitionGuard:
    """Repetition limits on generated token ids. `banned` returns the tokens that would break one.

    Args:
        max_token_run: maximum copies of one token in a row (default 6).
        max_span_repeats: maximum copies in a row of a span of 2 to `max_span` tokens
            (default 2).
        max_span: maximum span length checked for repeats in a row (default 16).
        ngram_size: n-gram length of the overall count limit (default 10).
        max_ngram_count: maximum occurrences of one n-gram in a sequence (default 4).

    >>> guard = RepetitionGuard()
    >>> sorted(guard.banned([5, 7, 9, 5, 7, 9, 5, 7]))
    [9]
    >>> sorted(guard.banned([5, 7, 9, 5, 7]))
    []
    """

    def __init__(self, *, max_token_run: int = 6, max_span_repeats: int = 2, max_span: int = 16,
                 ngram_size: int = 10, max_ngram_count: int = 4):
        for name, value in (("max_token_run", max_token_run),
                            ("max_span_repeats", max_span_repeats), ("max_span", max_span),
                            ("ngram_size", ngram_size), ("max_ngram_count", max_ngram_count)):
            if value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        self.max_token_run = max_token_run
        self.max_span_repeats = max_span_repeats
        self.max_span = max_span
        self.ngram_size = ngram_size
        self.max_ngram_count = max_ngram_count

    def banned(self, tokens: Sequence[int]) -> set[int]:
        """Return the token ids that must not follow `tokens`."""
        tokens = tuple(tokens)
        banned: set[int] = set()
        self._ban_run(tokens, banned)
        self._ban_span_repeat(tokens, banned)
        self._ban_frequent_ngram(tokens, banned)
        return banned

    def _ban_run(self, tokens: tuple[int, ...], banned: set[int]) -> None:
        run = self.max_token_run
        if len(tokens) >= run and len(set(tokens[-run:])) == 1:
            banned.add(tokens[-1])

    def _ban_span_repeat(self, tokens: tuple[int, ...], banned: set[int]) -> None:
        # Appending token t completes copy number `copies` of the last `span` tokens when
        # t equals the token `span` places back and the copies before it match.
        copies = self.max_span_repeats + 1
        length = len(tokens) + 1
        for span in range(2, self.max_span + 1):
            if copies * span > length:
                break
            candidate = tokens[-span]
            # Only the last `copies` spans matter, so the whole sequence is not copied.
            extended = tokens[len(tokens) + 1 - copies * span:] + (candidate,)
            last = extended[-span:]
            if len(set(last)) == 1:
                continue  # a run of one token: `max_token_run` covers it
            if all(extended[-(k + 1) * span:-k * span] == last for k in range(1, copies)):
                banned.add(candidate)

    def _ban_frequent_ngram(self, tokens: tuple[int, ...], banned: set[int]) -> None:
        # The n-gram a next token t would complete is the last n-1 tokens plus t, so count
        # the tokens that followed each earlier occurrence of those n-1 tokens.
        head = self.ngram_size - 1
        if len(tokens) < head + self.max_ngram_count:
            return
        suffix = tokens[-head:] if head else ()
        followers: Counter[int] = Counter()
        for start in range(len(tokens) - head):
            if tokens[start:start + head] == suffix:
                followers[tokens[start + head]] += 1
        banned.update(token for token, count in followers.items()
                      if count >= self.max_ngram_count)
