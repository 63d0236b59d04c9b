"""Tests of the loop guard that constrained decoding applies to generated token ids."""

from __future__ import annotations

import json

import pytest
import torch

from graphix.decoding.logits import SchemaConstrainedLogitsProcessor
from graphix.decoding.repetition import RepetitionGuard
from graphix.errors import InputError

from test_decoding_checker import MUSIC, normalize_gold
from test_decoding_logits import ids_of, scores_favoring, token_with_text, tokenizer  # noqa: F401


def test_token_run_capped():
    guard = RepetitionGuard(max_token_run=3)
    assert guard.banned([4, 7, 7]) == set()
    assert guard.banned([4, 7, 7, 7]) == {7}


@pytest.mark.parametrize("span", [2, 3, 5, 16])
def test_span_repeat_capped(span):
    guard = RepetitionGuard(max_span_repeats=2)
    pattern = list(range(10, 10 + span))
    two_copies_and_most_of_a_third = pattern * 2 + pattern[:-1]
    assert pattern[-1] in guard.banned(two_copies_and_most_of_a_third)
    assert guard.banned(pattern + pattern[:-1]) == set()


def test_span_over_limit_unchecked():
    guard = RepetitionGuard(max_span=3, ngram_size=50)
    pattern = [1, 2, 3, 4]
    assert guard.banned(pattern * 2 + pattern[:-1]) == set()


def test_ngram_count_capped():
    guard = RepetitionGuard(ngram_size=3, max_ngram_count=2)
    # (5, 6, 7) occurs twice, apart. A third 5, 6 may not be followed by 7 again.
    tokens = [5, 6, 7, 1, 5, 6, 7, 2, 5, 6]
    assert guard.banned(tokens) == {7}
    assert guard.banned(tokens[:-4] + [2, 5]) == set()


def test_no_repeats_bans_nothing():
    assert RepetitionGuard().banned(list(range(300))) == set()
    assert RepetitionGuard().banned([]) == set()


def test_limits_must_be_positive():
    with pytest.raises(InputError, match="max_span_repeats"):
        RepetitionGuard(max_span_repeats=0)


def test_processor_stops_a_loop(tokenizer):  # noqa: F811
    # Two copies of " or age = 1" follow "where age = 1", so the token that ends the next
    # " or" would complete a third copy. The grammar itself accepts it.
    looping = ids_of(tokenizer, "music | select name from singer where age = 1 or age = 1 "
                                "or age = 1 or")
    prefix, name = looping[:-1], looping[-1]
    space = token_with_text(tokenizer, " ")
    scores = scores_favoring(len(tokenizer), [name, space])

    guarded = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2)
    masked = guarded(torch.tensor([prefix]), scores)
    assert not torch.isfinite(masked[0, name])
    assert torch.isfinite(masked[0, space])
    assert guarded.repetition_bans == 1

    unguarded = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2, repetition=None)
    assert torch.isfinite(unguarded(torch.tensor([prefix]), scores)[0, name])


@pytest.mark.spider
def test_guard_keeps_gold_tokens(spider):
    from graphix.api import Text2SQL

    tokenizer = Text2SQL.from_pretrained(None).tokenizer
    guard = RepetitionGuard()
    banned_in = []
    for file_name in ("train_spider.json", "train_others.json", "dev.json"):
        for position, example in enumerate(json.loads((spider / file_name).read_text())):
            ids = tokenizer(f"{example['db_id']} | {normalize_gold(example['query'])}").input_ids
            if any(ids[end] in guard.banned(ids[:end]) for end in range(len(ids))):
                banned_in.append((file_name, position))
    assert banned_in == []
