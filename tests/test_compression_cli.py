"""`graphix compress` and the compression benchmark, end to end on a tiny model."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from graphix.api import Text2SQL
from graphix.cli import main
from graphix.schema import Schema

REPO = Path(__file__).resolve().parent.parent
DEMO_DB = REPO / "data" / "demo" / "bookshop.sqlite"
QUESTIONS = json.loads((DEMO_DB.parent / "questions.json").read_text())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def spider_folder(tmp_path_factory) -> Path:
    """A Spider-format folder whose only database is the demo bookshop."""
    root = tmp_path_factory.mktemp("spider")
    (root / "database" / "bookshop").mkdir(parents=True)
    shutil.copyfile(DEMO_DB, root / "database" / "bookshop" / "bookshop.sqlite")
    entry = Schema.from_sqlite(root / "database" / "bookshop" / "bookshop.sqlite")
    (root / "tables.json").write_text(json.dumps([entry.to_spider_entry()]))
    examples = [{"question": item["question"], "query": item["query"], "db_id": "bookshop"}
                for item in QUESTIONS]
    (root / "train_spider.json").write_text(json.dumps(examples[:12]))
    (root / "train_others.json").write_text(json.dumps(examples[12:]))
    (root / "dev.json").write_text(json.dumps(examples))
    return root


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny Graphix model with a tokenizer trained on the demo questions."""
    from graphix.data import Example
    from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration
    from graphix.preprocess import Preprocessor
    from graphix.tokenizer import TokenizerTrainingConfig, train_tokenizer

    folder = tmp_path_factory.mktemp("tiny_model")
    schema = Schema.from_sqlite(DEMO_DB)
    texts = []
    for item in QUESTIONS:
        record = Preprocessor().process(Example(item["question"], "bookshop", item["query"]),
                                        schema)
        texts += [record["input_text"], record["target"]]
    tokenizer = train_tokenizer(texts, folder, TokenizerTrainingConfig(vocab_size=200))
    torch.manual_seed(0)
    config = GraphixT5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8,
                             num_layers=3, num_decoder_layers=3, num_heads=2, graph_num_heads=2,
                             graph_head_dim=8, pad_token_id=0, eos_token_id=1,
                             decoder_start_token_id=0)
    GraphixT5ForConditionalGeneration(config).save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps(
        {"config": {"max_input_tokens": 256, "max_target_tokens": 16}}))
    return folder


def _compress(*args, model, spider) -> int:
    return main(["compress", *args, "--model", str(model), "--spider-dir", str(spider),
                 "--examples", "6", "--batch-size", "3"])


def _logits(text2sql: Text2SQL, questions: list[str]) -> torch.Tensor:
    from graphix.data import Example
    from graphix.inference import model_inputs

    schema, preprocessor = text2sql._schema_and_preprocessor(DEMO_DB)
    records = [preprocessor.process(Example(q, "bookshop"), schema) for q in questions]
    inputs = model_inputs(records, use_graph=True)
    decoder_input_ids = torch.zeros(len(questions), 4, dtype=torch.long)
    with torch.no_grad():
        return text2sql.model(**inputs, decoder_input_ids=decoder_input_ids).logits


def test_analyze_prints_table_and_saves_heat_maps(tiny_model_dir, spider_folder, tmp_path,
                                                   capsys):
    out = tmp_path / "analysis"
    assert _compress("analyze", "--out", str(out), model=tiny_model_dir,
                     spider=spider_folder) == 0
    printed = capsys.readouterr().out
    assert "input-output cosine similarity per sublayer (6 examples)" in printed
    assert "cross_attention" in printed and "graph" in printed
    assert "attention-map similarity, decoder.cross_attention" in printed
    pictures = ["sublayers.png", "attention_encoder_self_attention.png",
                "attention_decoder_self_attention.png", "attention_decoder_cross_attention.png"]
    for name in pictures:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    saved = json.loads((out / "similarities.json").read_text())
    assert len(saved["sublayer_similarity"]) == 3 * 4 + 3 * 4  # encoder and decoder sublayers
    assert all(0 < score <= 1 for score in saved["sublayer_similarity"].values())


def test_drop_writes_a_loadable_smaller_model(tiny_model_dir, spider_folder, tmp_path, capsys):
    out = tmp_path / "dropped"
    assert _compress("drop", "--kind", "attention", "--stack", "decoder", "--count", "2",
                     "--fine-tune-steps", "2", "--train-examples", "6", "--out", str(out),
                     model=tiny_model_dir, spider=spider_folder) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "compression.json").read_text())
    assert len(summary["dropped"]) == 2
    assert all(name.startswith("decoder.") for name in summary["dropped"])
    assert summary["fine_tune"]["steps"] == 2
    assert f"{summary['parameters_before']:,} -> {summary['parameters_after']:,}" in printed
    assert summary["parameters_before"] - summary["parameters_after"] == 2 * (4 * 32 * 16 + 32)

    loaded = Text2SQL.from_pretrained(out)
    assert loaded.max_new_tokens == 16  # training.json came along
    assert loaded.model.config.dropped_sublayers == summary["dropped"]
    assert sum(p.numel() for p in loaded.model.parameters()) == summary["parameters_after"]
    answer = loaded.ask(QUESTIONS[0]["question"], DEMO_DB, num_beams=2)
    assert len(answer.beams) == 2


def test_iterative_block_drop(tiny_model_dir, spider_folder, tmp_path):
    out = tmp_path / "blocks"
    assert _compress("drop", "--kind", "block", "--stack", "both", "--count", "2",
                     "--iterative", "--out", str(out), model=tiny_model_dir,
                     spider=spider_folder) == 0
    summary = json.loads((out / "compression.json").read_text())
    assert summary["iterative"] and len(summary["dropped"]) == 2
    assert "fine_tune" not in summary
    Text2SQL.from_pretrained(out).ask(QUESTIONS[1]["question"], DEMO_DB)


def test_share_above_one_keeps_the_model(tiny_model_dir, spider_folder, tmp_path, capsys):
    out = tmp_path / "unshared"
    assert _compress("share", "--threshold", "1.5", "--out", str(out), model=tiny_model_dir,
                     spider=spider_folder) == 0
    assert "shared groups: none" in capsys.readouterr().out
    questions = [item["question"] for item in QUESTIONS[:3]]
    original, copied = Text2SQL.from_pretrained(tiny_model_dir), Text2SQL.from_pretrained(out)
    assert not copied.model.config.shared_attention
    assert torch.equal(_logits(copied, questions), _logits(original, questions))


def test_share_with_distillation(tiny_model_dir, spider_folder, tmp_path):
    out = tmp_path / "shared"
    assert _compress("share", "--threshold", "0", "--distill-steps", "2", "--hidden-weight",
                     "0.5", "--train-examples", "6", "--out", str(out), model=tiny_model_dir,
                     spider=spider_folder) == 0
    summary = json.loads((out / "compression.json").read_text())
    # Threshold 0 puts every layer of each attention kind into one group.
    assert summary["groups"] == ["encoder.self_attention.0-2", "decoder.self_attention.0-2",
                                 "decoder.cross_attention.0-2"]
    assert summary["distillation"]["steps"] == 2
    assert summary["parameters_before"] - summary["parameters_after"] == 3 * 2 * 2 * 32 * 16
    loaded = Text2SQL.from_pretrained(out)
    assert loaded.model.config.shared_attention == summary["groups"]
    answers = loaded.ask_many([item["question"] for item in QUESTIONS[:3]], DEMO_DB)
    assert len(answers) == 3


def test_drop_too_many_is_an_error(tiny_model_dir, spider_folder, tmp_path, capsys):
    code = _compress("drop", "--kind", "graph", "--stack", "encoder", "--count", "4", "--out",
                     str(tmp_path / "none"), model=tiny_model_dir, spider=spider_folder)
    assert code == 1
    assert "graph sublayers of the encoder stack can be dropped, asked for 4" in \
        capsys.readouterr().err
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_benchmark_end_to_end(tiny_model_dir, spider_folder, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "bench_compression", REPO / "evaluation" / "bench_compression.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "compression.md"
    assert bench.main([
        "--model", str(tiny_model_dir), "--spider-dir", str(spider_folder), "--examples", "5",
        "--settings", "drop:attention:decoder:1", "share:0", "--calibration-examples", "5",
        "--train-examples", "5", "--fine-tune-steps", "1", "--distill-steps", "1",
        "--batch-size", "4", "--rounds", "1", "--decode-tokens", "4",
        "--report", str(report)]) == 0

    rows = [line for line in report.read_text().splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| setting", "| ---", "| baseline", "| drop 1 decoder attention", "| share at 0"]
    assert "at most 1 point of EX lost" in report.read_text()
    results = json.loads(report.with_suffix(".json").read_text())
    assert [r["name"] for r in results] == ["baseline", "drop 1 decoder attention", "share at 0"]
    assert results[0]["parameters"] > results[1]["parameters"]
    assert results[0]["parameters"] > results[2]["parameters"]
    assert len(results[1]["changed"]) == 1
    for result in results:
        assert result["dev_examples"] == 5
        assert 0 <= result["ex"] <= 1 and 0 <= result["em"] <= 1
        for key in ("ask_ms", "ask_tokens", "encoder_ms", "decode_ms", "train_step_ms"):
            assert result[key] > 0, key
