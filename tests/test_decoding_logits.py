"""Tests of the constrained-decoding logits processor on a tiny T5 and a trained tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LogitsProcessorList, T5Config, T5ForConditionalGeneration

from graphix.decoding import PrefixChecker
from graphix.decoding.benchmark import time_constrained_generation
from graphix.decoding.logits import SchemaConstrainedLogitsProcessor, piece_texts
from graphix.tokenizer import TokenizerTrainingConfig, train_tokenizer

from test_decoding_checker import MUSIC, VALID, normalize_gold

QUESTIONS = ["how many singers are there", "names of concerts in 2014",
             "which stadium is the largest", "singers older than 30"]


def music_training_texts() -> list[str]:
    texts = [f"music | {sql}" for sql in VALID] + QUESTIONS
    for table, columns in {"singer": ["name", "country", "age"],
                           "stadium": ["name", "capacity", "location"],
                           "concert": ["concert_name", "year"]}.items():
        for column in columns:
            texts.append(f"music | select {column} from {table} where {column} = 'x'")
            texts.append(f"show the {column} of every {table}")
    return texts


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    return train_tokenizer(music_training_texts(), folder, TokenizerTrainingConfig(vocab_size=150))


def tiny_t5(vocabulary: int, seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocabulary, d_model=32, d_ff=64, num_layers=1,
                      num_decoder_layers=1, num_heads=2, d_kv=16, decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config).eval()


def ids_of(tokenizer, text: str) -> list[int]:
    """Decoder input for `text`: the start token, then the pieces without EOS."""
    return [0] + tokenizer(text, add_special_tokens=False).input_ids


def scores_favoring(vocabulary: int, favored: list[int]) -> torch.Tensor:
    """Log-probabilities where `favored` tokens rank first, in order."""
    scores = torch.full((1, vocabulary), -20.0)
    for rank, token_id in enumerate(favored):
        scores[0, token_id] = -1.0 - rank
    return scores


def token_with_text(tokenizer, text: str) -> int:
    texts = piece_texts(tokenizer)
    return texts.index(text)


# ---------------------------------------------------------------------------- piece texts


def test_piece_texts_rebuild_decoded_text(tokenizer):
    texts = piece_texts(tokenizer)
    sql = "music | select t1.name , count ( * ) from singer as t1 where name = 'Ab c'"
    pieces = tokenizer(sql, add_special_tokens=False).input_ids
    assert "".join(texts[i] for i in pieces).strip() == sql


def test_piece_texts_exclude_special_tokens(tokenizer):
    texts = piece_texts(tokenizer)
    assert texts[tokenizer.pad_token_id] is None
    assert texts[tokenizer.eos_token_id] is None
    assert texts[tokenizer.unk_token_id] is None
    assert texts[tokenizer.convert_tokens_to_ids("\u2581")] == " "


# ---------------------------------------------------------------------------- masking


def test_processor_masks_invalid_candidates(tokenizer):
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=4, stop_early=False)
    prefix = ids_of(tokenizer, "music | select name from")
    space, comma, star = (token_with_text(tokenizer, t) for t in (" ", ",", "*"))
    singer = tokenizer(" singer", add_special_tokens=False).input_ids[-1]
    favored = [comma, tokenizer.eos_token_id, space, star]
    scores = scores_favoring(len(tokenizer), favored + [singer])

    masked = processor(torch.tensor([prefix]), scores)

    # Only the space survives: ',' and '*' cannot follow FROM, the query is incomplete
    # so EOS is masked, and 'singer' is valid but outside the top 4.
    surviving = torch.isfinite(masked[0]).nonzero().flatten().tolist()
    assert surviving == [space]
    assert masked[0, space] == scores[0, space]


def test_processor_allows_eos_after_complete_query(tokenizer):
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=3)
    prefix = ids_of(tokenizer, "music | select name from singer")
    closing = token_with_text(tokenizer, ")")
    scores = scores_favoring(len(tokenizer), [tokenizer.eos_token_id, closing])
    masked = processor(torch.tensor([prefix]), scores)
    assert torch.isfinite(masked[0, tokenizer.eos_token_id])
    assert not torch.isfinite(masked[0, closing])


def test_processor_allows_early_eos(tokenizer):
    eos = tokenizer.eos_token_id
    prefix = ids_of(tokenizer, "music | select name from")
    scores = scores_favoring(len(tokenizer), [eos])
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2)
    masked = processor(torch.tensor([prefix]), scores)
    assert masked[0, eos] == scores[0, eos]
    assert processor.early_stops == {tuple(prefix)}

    strict = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2, stop_early=False)
    assert not torch.isfinite(strict(torch.tensor([prefix]), scores)[0, eos])
    assert not strict.early_stops

    # Not before the first result column: nothing would be left to complete.
    for text in ("music |", "music | select"):
        prefix = ids_of(tokenizer, text)
        masked = processor(torch.tensor([prefix]), scores)
        assert not torch.isfinite(masked[0, eos]), text


def test_processor_falls_back_to_best_valid_token(tokenizer):
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2)
    prefix = ids_of(tokenizer, "music | select name from")
    comma, star = token_with_text(tokenizer, ","), token_with_text(tokenizer, "*")
    closing, space = token_with_text(tokenizer, ")"), token_with_text(tokenizer, " ")
    scores = scores_favoring(len(tokenizer), [comma, star, closing, space])
    masked = processor(torch.tensor([prefix]), scores)
    # ',' and '*' (the top 2) and ')' cannot follow FROM; the space, ranked fourth, is
    # the best valid token, so it alone is kept with its own score.
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [space]
    assert masked[0, space] == scores[0, space]
    assert processor.fallbacks == 1
    assert not processor.dead_ends

    # When the valid token ranks past the fallback, the whole vocabulary is searched.
    short = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2, fallback_k=1)
    masked = short(torch.tensor([prefix]), scores)
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [space]
    assert short.fallbacks == 1

    # Without the fallback, the sequence ends.
    strict = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2, fallback_k=0)
    masked = strict(torch.tensor([prefix]), scores)
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [tokenizer.eos_token_id]
    assert strict.dead_ends == {tuple(prefix)}
    assert strict.fallbacks == 0


def valid_next_tokens(tokenizer, text: str) -> list[int]:
    """Ids of the pieces that can follow `text` for MUSIC, in id order."""
    checker = PrefixChecker(MUSIC)
    state = checker.check(text)
    return [token_id for token_id, piece in enumerate(piece_texts(tokenizer))
            if piece and "  " not in text + piece and checker.feed(state, piece).ok]


def test_processor_checks_in_beam_order(tokenizer):
    vocabulary = len(tokenizer)
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=8)
    start = ids_of(tokenizer, "music | select")
    first, second = valid_next_tokens(tokenizer, "music | select")[:2]
    # Step one: both beams contain the same prefix, and two valid tokens lead, at -1 and -2.
    processor(torch.tensor([start, start]), scores_favoring(vocabulary, [first, second]))

    # Step two: the beam with total -1 has four valid tokens at -1 to -4, enough for the
    # 2 x 2 continuations beam search keeps. The other beam (total -2) ranks its tokens
    # at -15 and below, so none of them is checked or kept.
    ahead = start + [first]
    ahead_text = tokenizer.decode(ahead[1:])
    row_scores = scores_favoring(vocabulary, valid_next_tokens(tokenizer, ahead_text)[:4])
    behind_scores = torch.full((1, vocabulary), -15.0)
    masked = processor(torch.tensor([ahead, start + [second]]),
                       torch.cat([row_scores, behind_scores]))
    assert torch.isfinite(masked[0]).sum() == 4
    assert not torch.isfinite(masked[1]).any()
    assert processor.fallbacks == 0
    assert not processor.dead_ends


def test_processor_ends_dead_sequence(tokenizer):
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2,
                                                 dead_end_score=-5000.0)
    # The prefix is already invalid (a token chosen outside the checked candidates).
    prefix = ids_of(tokenizer, "music | select name from singer where )")
    masked = processor(torch.tensor([prefix]), scores_favoring(len(tokenizer), []))
    assert masked[0, tokenizer.eos_token_id] == -5000.0
    assert torch.isfinite(masked[0]).sum() == 1
    assert processor.dead_ends == {tuple(prefix)}


def test_processor_maps_beams_to_examples(tokenizer):
    other = PrefixChecker(MUSIC.__class__("shop", MUSIC.tables))
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC, other.index.schema], top_k=5)
    prefix = ids_of(tokenizer, "music | select")
    rows = torch.tensor([prefix] * 4)
    scores = scores_favoring(len(tokenizer), [token_with_text(tokenizer, " ")]).repeat(4, 1)
    masked = processor(rows, scores)
    # Two beams per example: rows 0-1 decode for music, rows 2-3 for shop. Beams with
    # the same prefix are one sequence, checked once, as at the first step of beam search.
    assert torch.isfinite(masked[0]).any()
    assert not torch.isfinite(masked[1]).any()
    assert processor.dead_ends == {tuple(prefix)}
    assert masked[2, tokenizer.eos_token_id] == processor.dead_end_score
    assert not torch.isfinite(masked[3]).any()


def test_processor_rejects_uneven_batch(tokenizer):
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC, MUSIC])
    with pytest.raises(ValueError, match="split evenly"):
        processor(torch.zeros((3, 1), dtype=torch.long), torch.zeros((3, len(tokenizer))))


def test_processor_rejects_double_space(tokenizer):
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC], top_k=2)
    prefix = ids_of(tokenizer, "music | select") + [token_with_text(tokenizer, " ")]
    space = token_with_text(tokenizer, " ")
    name = tokenizer("name", add_special_tokens=False).input_ids[-1]
    masked = processor(torch.tensor([prefix]), scores_favoring(len(tokenizer), [space, name]))
    assert not torch.isfinite(masked[0, space])


# ---------------------------------------------------------------------------- generation


def finished_and_valid(processor, example: int, row: list[int], eos: int) -> bool:
    if eos in row[1:]:
        end = row.index(eos, 1)
        prefix = tuple(row[:end])
        if prefix in processor.early_stops:
            # Ended unfinished where EOS was the model's choice: a valid prefix.
            checker, texts = processor.checkers[example], processor.texts
            return checker.check("".join(texts[i] for i in prefix[1:])).ok
        return processor.is_valid_output(example, row) or prefix in processor.dead_ends
    return False


@pytest.mark.parametrize("num_beams", [1, 4])
def test_random_model_outputs_only_valid_text(tokenizer, num_beams):
    model = tiny_t5(len(tokenizer))
    inputs = tokenizer(QUESTIONS[:2], return_tensors="pt", padding=True)
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC, MUSIC],
                                                 top_k=len(tokenizer))
    with torch.inference_mode():
        output = model.generate(**inputs, num_beams=num_beams, num_return_sequences=num_beams,
                                max_new_tokens=20, do_sample=False,
                                logits_processor=LogitsProcessorList([processor]))
    checker = PrefixChecker(MUSIC)
    texts = piece_texts(tokenizer)
    for index, row in enumerate(output.tolist()):
        example = index // num_beams
        if tokenizer.eos_token_id in row[1:]:
            assert finished_and_valid(processor, example, row, tokenizer.eos_token_id), row
        else:
            # Stopped by max_new_tokens: a valid prefix of a query.
            text = "".join(texts[i] for i in row[1:] if i != tokenizer.pad_token_id)
            assert checker.check(text).ok, text


def test_random_model_without_constraints_is_invalid(tokenizer):
    model = tiny_t5(len(tokenizer))
    inputs = tokenizer(QUESTIONS[:2], return_tensors="pt", padding=True)
    with torch.inference_mode():
        output = model.generate(**inputs, num_beams=4, max_new_tokens=30, do_sample=False)
    checker = PrefixChecker(MUSIC)
    decoded = tokenizer.batch_decode(output, skip_special_tokens=True)
    # An empty output (EOS first) is a valid prefix but never a complete query.
    assert not any(checker.is_complete(checker.check(text)) for text in decoded), decoded


@pytest.fixture(scope="module")
def trained_model(tokenizer):
    """A tiny T5 fitted for a few seconds to map questions to music queries."""
    pairs = []
    for table, columns in {"singer": ["name", "country", "age"],
                           "stadium": ["name", "capacity", "location"],
                           "concert": ["concert_name", "year"]}.items():
        for column in columns:
            pairs.append((f"show the {column} of every {table}",
                          f"music | select {column} from {table} where {column} = 'x'"))
    model = tiny_t5(len(tokenizer), seed=1).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inputs = tokenizer([q for q, _ in pairs], return_tensors="pt", padding=True)
    labels = tokenizer([t for _, t in pairs], return_tensors="pt", padding=True).input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    for _ in range(80):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.mark.slow
def test_trained_model_beams_are_complete_queries(tokenizer, trained_model):
    inputs = tokenizer(["show the age of every singer", "show the year of every concert",
                        "which singers are older than 30"], return_tensors="pt", padding=True)
    processor = SchemaConstrainedLogitsProcessor(tokenizer, [MUSIC] * 3, top_k=8)
    with torch.inference_mode():
        output = trained_model.generate(**inputs, num_beams=4, num_return_sequences=4,
                                        max_new_tokens=48,
                                        logits_processor=LogitsProcessorList([processor]))
    checker = PrefixChecker(MUSIC)
    texts = piece_texts(tokenizer)
    for index, row in enumerate(output.tolist()):
        if tokenizer.eos_token_id in row[1:]:
            assert finished_and_valid(processor, index // 4, row, tokenizer.eos_token_id), row
        else:
            assert checker.check("".join(texts[i] for i in row[1:])).ok, row
    complete = [processor.is_valid_output(i // 4, row) for i, row in enumerate(output.tolist())]
    assert sum(complete) >= 6

    with torch.inference_mode():
        plain = trained_model.generate(**inputs, num_beams=4, num_return_sequences=4,
                                       max_new_tokens=48)
    plain_complete = [checker.accepts_query(text)
                      for text in tokenizer.batch_decode(plain, skip_special_tokens=True)]
    assert sum(complete) > sum(plain_complete)


@pytest.mark.slow
def test_constrained_generation_timing(tokenizer, trained_model):
    inputs = tokenizer(["show the age of every singer", "show the year of every concert"],
                       return_tensors="pt", padding=True)
    timing = time_constrained_generation(trained_model, tokenizer, inputs, [MUSIC, MUSIC],
                                         num_beams=4, max_new_tokens=48, repeats=3)
    print(f"plain {timing.plain_s * 1000:.1f} ms / {timing.plain_steps} steps, constrained "
          f"{timing.constrained_s * 1000:.1f} ms / {timing.constrained_steps} steps, ratio "
          f"{timing.ratio:.2f} per call, {timing.step_ratio:.2f} per step, "
          f"dead ends {timing.dead_ends}, processor {timing.processor_s * 1000:.1f} ms")
    assert timing.plain_s > 0
    assert timing.constrained_steps > 0


# ---------------------------------------------------------------------------- Spider gold


@pytest.fixture(scope="module")
def spider_tokenizer(spider, tmp_path_factory):
    train = json.loads((spider / "train_spider.json").read_text())
    texts = [f"{e['db_id']} | {normalize_gold(e['query'])}" for e in train]
    texts += [e["question"] for e in train]
    folder = tmp_path_factory.mktemp("spider_tokenizer")
    return train_tokenizer(texts, folder, TokenizerTrainingConfig(vocab_size=2000))


def gold_tokens_masked(spider, tokenizer, limit: int | None) -> list:
    """Teacher-force dev gold queries; return those whose gold token the processor masks."""
    from graphix.schema import Schema

    schemas = Schema.load_spider_tables(spider / "tables.json")
    dev = json.loads((spider / "dev.json").read_text())[:limit]
    checkers = {db_id: PrefixChecker(schema) for db_id, schema in schemas.items()}
    vocabulary = len(tokenizer)
    failures = []
    for position, example in enumerate(dev):
        target = f"{example['db_id']} | {normalize_gold(example['query'])}"
        gold = tokenizer(target).input_ids
        processor = SchemaConstrainedLogitsProcessor(
            tokenizer, [checkers[example["db_id"]]], top_k=4)
        prefix = [0]
        for token_id in gold:
            scores = scores_favoring(vocabulary, [token_id])
            masked = processor(torch.tensor([prefix]), scores)
            if not torch.isfinite(masked[0, token_id]) or processor.dead_ends:
                failures.append((position, tokenizer.decode(prefix + [token_id])))
                break
            prefix.append(token_id)
    return failures


@pytest.mark.spider
def test_processor_keeps_dev_gold_tokens(spider, spider_tokenizer):
    assert gold_tokens_masked(spider, spider_tokenizer, limit=150) == []


@pytest.mark.slow
@pytest.mark.spider
def test_processor_keeps_all_dev_gold_tokens(spider, spider_tokenizer):
    assert gold_tokens_masked(spider, spider_tokenizer, limit=None) == []
