"""A tiny random Graphix model with a tokenizer trained on the demo questions, for tests."""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DB = Path(__file__).resolve().parent.parent / "data" / "demo" / "bookshop.sqlite"


def build_tiny_model(folder: Path, *, max_target_tokens: int = 24) -> Path:
    """Save an untrained 2+2-layer model of width 32 and its 200-piece tokenizer in `folder`."""
    import torch

    from graphix.data import Example
    from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration
    from graphix.preprocess import Preprocessor
    from graphix.schema import Schema
    from graphix.tokenizer import TokenizerTrainingConfig, train_tokenizer

    questions = json.loads((DEMO_DB.parent / "questions.json").read_text())
    schema = Schema.from_sqlite(DEMO_DB)
    preprocessor = Preprocessor()
    texts = []
    for item in questions:
        record = preprocessor.process(Example(item["question"], "bookshop", item["query"]), schema)
        texts += [record["input_text"], record["target"]]
    tokenizer = train_tokenizer(texts, folder, TokenizerTrainingConfig(vocab_size=200))

    torch.manual_seed(0)
    config = GraphixT5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_layers=2,
                             num_decoder_layers=2, num_heads=2, graph_num_heads=2,
                             graph_head_dim=8, pad_token_id=0, eos_token_id=1,
                             decoder_start_token_id=0)
    GraphixT5ForConditionalGeneration(config).save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps(
        {"config": {"max_input_tokens": 256, "max_target_tokens": max_target_tokens}}))
    return folder
