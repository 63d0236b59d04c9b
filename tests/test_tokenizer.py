"""SentencePiece training and T5 tokenizer loading."""

from __future__ import annotations

import itertools

import pytest
import sentencepiece as spm
from transformers import T5TokenizerFast

from graphix.errors import CheckpointError, InputError
from graphix.tokenizer import TokenizerTrainingConfig, load_tokenizer, train_tokenizer

QUESTION_WORDS = ["how", "many", "students", "are", "older", "than", "list", "the", "names", "of"]
TABLES = ["student", "course", "teacher", "enrollment"]
COLUMNS = ["age", "name", "grade", "id", "title", "credits"]
OPERATORS = ["<", "<=", ">", ">=", "=", "!="]


def _training_texts() -> list[str]:
    """Questions, serialized schemas and SQL made from small word lists, without braces."""
    texts = []
    for index, (table, column, operator) in enumerate(
        itertools.product(TABLES, COLUMNS, OPERATORS)
    ):
        words = QUESTION_WORDS[index % 5 :] + [table, column]
        texts.append(" ".join(words) + "?")
        texts.append(f"school | {table} : {column} , {COLUMNS[index % 6]} ( {index} )")
        texts.append(
            f"select count(*) from {table} as T1 where T1.{column} {operator} {index} "
            f"and T1.name like '%a%'"
        )
    return texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer = train_tokenizer(_training_texts(), folder, TokenizerTrainingConfig(vocab_size=140))
    return folder, tokenizer


def test_special_ids_follow_t5_layout(trained):
    _, tokenizer = trained
    assert tokenizer.pad_token_id == 0
    assert tokenizer.eos_token_id == 1
    assert tokenizer.unk_token_id == 2
    assert tokenizer.bos_token_id is None
    assert tokenizer("age").input_ids[-1] == 1


def test_length_is_vocab_size(trained):
    _, tokenizer = trained
    assert len(tokenizer) == 140


def test_sentinel_tokens_appended(tmp_path):
    config = TokenizerTrainingConfig(vocab_size=140, num_sentinel_tokens=3)
    tokenizer = train_tokenizer(_training_texts(), tmp_path, config)
    assert len(tokenizer) == 143
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == 142
    assert tokenizer.convert_tokens_to_ids("<extra_id_2>") == 140


@pytest.mark.parametrize(
    "sql",
    [
        "select name from student where age < 20",
        "select name from student where age <= 20",
        "select name from student where age != 20",
        "select name from student where age >= 20 and grade > 3",
        "select count(*) from student as T1 where T1.name like '%a%'",
    ],
)
def test_sql_round_trip(trained, sql):
    _, tokenizer = trained
    ids = tokenizer(sql).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == sql


def test_required_characters_absent_from_text(trained):
    _, tokenizer = trained
    text = "{ x } ~ ^ [ y ]"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_ids_match_sentencepiece(trained):
    folder, tokenizer = trained
    processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    text = "how many students are older than 20? | school | student : age , name"
    assert tokenizer(text, add_special_tokens=False).input_ids == processor.encode(text)


def test_folder_loads_with_transformers(trained):
    folder, tokenizer = trained
    text = "select title from course where credits >= 3"
    for loaded in (T5TokenizerFast.from_pretrained(str(folder)), load_tokenizer(folder)):
        assert loaded.is_fast
        assert loaded(text).input_ids == tokenizer(text).input_ids


def test_newlines_in_training_text(tmp_path):
    texts = [text.replace(" ", "\n", 1) for text in _training_texts()]
    tokenizer = train_tokenizer(texts, tmp_path, TokenizerTrainingConfig(vocab_size=120))
    assert "\n" not in "".join(tokenizer.convert_ids_to_tokens(range(len(tokenizer))))


def test_training_is_deterministic(tmp_path, trained):
    folder, _ = trained
    train_tokenizer(_training_texts(), tmp_path, TokenizerTrainingConfig(vocab_size=140))
    assert (tmp_path / "spiece.model").read_bytes() == (folder / "spiece.model").read_bytes()


def test_empty_texts_rejected(tmp_path):
    with pytest.raises(InputError, match="no non-empty"):
        train_tokenizer(["", "  \n"], tmp_path)


def test_vocab_too_large_rejected(tmp_path):
    with pytest.raises(InputError, match="smaller vocab_size"):
        train_tokenizer(["select a from b"], tmp_path, TokenizerTrainingConfig(vocab_size=5000))


def test_invalid_config_rejected():
    with pytest.raises(InputError, match="model_type"):
        TokenizerTrainingConfig(model_type="word-level")


def test_missing_folder_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no tokenizer found"):
        load_tokenizer(tmp_path / "absent")
