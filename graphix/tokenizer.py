"""Tokenizers: SentencePiece training for from-scratch models, T5 tokenizers for pretrained ones.

A from-scratch model gets a SentencePiece unigram vocabulary trained on the texts it will
see (questions, serialized schemas, SQL). Ids follow T5's layout, so the model code does not
care where the vocabulary came from: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, no BOS, and
optional sentinel tokens ``<extra_id_*>`` at the end. The trained folder contains ``spiece.model``
plus the Hugging Face files (``tokenizer.json``, ``tokenizer_config.json``), and loads with
``transformers.T5TokenizerFast.from_pretrained(folder)`` or :func:`load_tokenizer`.

T5's stock vocabulary has no piece for ``<`` or curly braces, so pretrained checkpoints map
them to ``<unk>``. A trained vocabulary always contains every printable ASCII character (see
``TokenizerTrainingConfig.required_characters``), so SQL operators such as ``<=`` and ``!=``
survive an encode/decode round trip. A pretrained model keeps its own tokenizer.

Example::

    tokenizer = train_tokenizer(texts, "out/tokenizer", TokenizerTrainingConfig(vocab_size=8000))
    tokenizer = load_tokenizer("out/tokenizer")   # or load_tokenizer("t5-small")
"""

from __future__ import annotations

import io
import logging
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from graphix.errors import CheckpointError, InputError

logger = logging.getLogger(__name__)

SPIECE_FILE = "spiece.model"

# Every printable ASCII character except whitespace: SQL operators, quotes, brackets, digits.
PRINTABLE_ASCII = "".join(c for c in string.printable if not c.isspace())


@dataclass
class TokenizerTrainingConfig:
    """Settings for training a SentencePiece vocabulary."""

    vocab_size: int = field(
        default=8000,
        metadata={"help": "Number of SentencePiece pieces, including <pad>, </s> and <unk>."},
    )
    model_type: str = field(
        default="unigram",
        metadata={"help": "SentencePiece model type: unigram or bpe."},
    )
    character_coverage: float = field(
        default=1.0,
        metadata={"help": "Share of training characters the vocabulary must cover (1.0 = all)."},
    )
    required_characters: str = field(
        default=PRINTABLE_ASCII,
        metadata={"help": "Characters that get a piece even when absent from the training text."},
    )
    num_sentinel_tokens: int = field(
        default=0,
        metadata={"help": "Number of T5 sentinel tokens <extra_id_N> appended after the pieces."},
    )
    max_sentence_bytes: int = field(
        default=1 << 16,
        metadata={"help": "Longest training text in bytes; longer texts are skipped by SentencePiece."},
    )

    def __post_init__(self) -> None:
        if self.model_type not in ("unigram", "bpe"):
            raise InputError(f"model_type must be 'unigram' or 'bpe', got {self.model_type!r}")
        if self.vocab_size < 4:
            raise InputError(f"vocab_size must be at least 4, got {self.vocab_size}")
        if not 0.0 < self.character_coverage <= 1.0:
            raise InputError(
                f"character_coverage must be in (0, 1], got {self.character_coverage}"
            )
        if self.num_sentinel_tokens < 0:
            raise InputError(
                f"num_sentinel_tokens must be non-negative, got {self.num_sentinel_tokens}"
            )


def _clean_texts(texts: Iterable[str]) -> Iterator[str]:
    # SentencePiece reads one sentence per line, so newlines and tabs become spaces.
    for text in texts:
        text = " ".join(text.split())
        if text:
            yield text


def train_tokenizer(
    texts: Iterable[str],
    output_dir: str | Path,
    config: TokenizerTrainingConfig | None = None,
):
    """Train a SentencePiece vocabulary on ``texts`` and save it as a T5 tokenizer folder.

    Returns the loaded ``T5TokenizerFast``. Its length is ``config.vocab_size`` plus
    ``config.num_sentinel_tokens``, and ``len(tokenizer)`` is the model's vocabulary size.
    Raises :class:`InputError` when ``texts`` is empty or too small for the vocabulary size.
    """
    import sentencepiece as spm

    config = config or TokenizerTrainingConfig()
    output_dir = Path(output_dir)

    cleaned = list(_clean_texts(texts))
    if not cleaned:
        raise InputError("cannot train a tokenizer: no non-empty training texts were given")

    model_bytes = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(cleaned),
            model_writer=model_bytes,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            required_chars=config.required_characters,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            max_sentence_length=config.max_sentence_bytes,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as error:
        raise InputError(
            f"SentencePiece training failed on {len(cleaned)} texts with vocab_size="
            f"{config.vocab_size}: {error}. Give more text or a smaller vocab_size."
        ) from error

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / SPIECE_FILE).write_bytes(model_bytes.getvalue())

    # Converting spiece.model to a fast tokenizer needs protobuf. Saving writes tokenizer.json,
    # so later loads skip the conversion.
    from transformers import T5TokenizerFast

    tokenizer = T5TokenizerFast.from_pretrained(
        str(output_dir), extra_ids=config.num_sentinel_tokens
    )
    tokenizer.save_pretrained(str(output_dir))
    logger.info(
        "trained a %s vocabulary of %d pieces on %d texts into %s",
        config.model_type,
        config.vocab_size,
        len(cleaned),
        output_dir,
    )
    return tokenizer


def load_tokenizer(name_or_path: str | Path):
    """Load the fast tokenizer of a trained folder, a pretrained T5 folder or a hub id.

    Raises :class:`CheckpointError` when nothing loadable is found there.
    """
    from transformers import AutoTokenizer, T5Config

    # AutoTokenizer reads config.json to pick a class. A saved Graphix model declares
    # model_type "graphix_t5", which transformers does not know, so its tokenizer is
    # loaded with a T5 configuration instead (it is a T5 tokenizer).
    folder = Path(name_or_path)
    if folder.is_dir() and not any((folder / name).exists()
                                   for name in ("tokenizer.json", SPIECE_FILE)):
        raise CheckpointError(
            f"no tokenizer found in {folder}: it has neither tokenizer.json nor {SPIECE_FILE}. "
            "Copy the tokenizer files of the run into it, or pass a folder saved by graphix train"
        )
    extra = {}
    if _declares_graphix_model(folder):
        extra["config"] = T5Config()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), **extra)
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"no tokenizer found at {str(name_or_path)!r}: {' '.join(str(error).split())}. "
            "Pass a folder made by "
            "train_tokenizer, a saved model folder or a Hugging Face hub id."
        ) from error
    if not tokenizer.is_fast:
        raise CheckpointError(
            f"the tokenizer at {str(name_or_path)!r} has no fast version. Save it with "
            f"tokenizer.json, or install protobuf so spiece.model can be converted"
        )
    return tokenizer


def _declares_graphix_model(folder: Path) -> bool:
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "graphix_t5"
