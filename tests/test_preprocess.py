"""Loading Spider-format folders, whole-split preprocessing and the two commands."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from fixtures.builders import create_database, train_sentencepiece
from graphix.cli import main
from graphix.data import load_spider_split, resolve_spider_dir
from graphix.errors import InputError
from graphix.graph import NUM_RELATIONS, collate
from graphix.preprocess import PreprocessConfig, preprocess_split
from graphix.schema import Schema

BAND_DB = [
    "CREATE TABLE band (band_id INTEGER PRIMARY KEY, genre TEXT)",
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, "
    "band_id INTEGER REFERENCES band(band_id))",
    "INSERT INTO band VALUES (1, 'rock'), (2, 'jazz')",
    "INSERT INTO singer VALUES (1, 'Ann', 1), (2, 'Bob', 2)",
]


@pytest.fixture
def spider_folder(tmp_path):
    """A Spider-format folder with one real database and one whose file is missing."""
    root = tmp_path / "spider"
    (root / "database" / "band").mkdir(parents=True)
    path = create_database(root / "database" / "band" / "band.sqlite", BAND_DB)
    band = Schema.from_sqlite(path).to_spider_entry()
    ghost = dict(band, db_id="ghost")
    (root / "tables.json").write_text(json.dumps([band, ghost]))
    dev = [
        {"question": "How many singers play rock?", "db_id": "band",
         "query": "SELECT count(*) FROM singer AS T1 JOIN band AS T2 ON T1.band_id = T2.band_id "
                  "WHERE T2.genre = \"rock\""},
        {"question": "Who is in no band?", "db_id": "ghost", "query": "SELECT 1"},
        {"question": "List every genre.", "db_id": "band", "query": "SELECT genre FROM band"},
    ]
    (root / "dev.json").write_text(json.dumps(dev))
    (root / "train_spider.json").write_text(json.dumps(dev[:1]))
    (root / "train_others.json").write_text(json.dumps(dev[2:]))
    return root


@pytest.fixture
def tokenizer(tmp_path):
    return train_sentencepiece(tmp_path / "tokenizer")


# ---------------------------------------------------------------------- loading


def test_load_split_skips_missing_databases(spider_folder, caplog):
    with caplog.at_level(logging.INFO, logger="graphix.data"):
        dev = load_spider_split(spider_folder, "dev")
    assert [e.question for e in dev.examples] == ["How many singers play rock?", "List every genre."]
    assert dev.skipped == 1
    assert "skipped 1 examples" in caplog.text
    assert "ghost 1" in caplog.text
    assert dev.schemas["band"].path == spider_folder / "database" / "band" / "band.sqlite"
    assert "ghost" not in dev.schemas


def test_train_is_spider_then_others(spider_folder):
    train = load_spider_split(spider_folder, "train")
    assert [e.query for e in train.examples] == [
        json.loads((spider_folder / "train_spider.json").read_text())[0]["query"],
        "SELECT genre FROM band",
    ]


def test_load_errors(spider_folder, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown split"):
        load_spider_split(spider_folder, "test")
    with pytest.raises(InputError, match="no tables.json"):
        resolve_spider_dir(tmp_path)
    monkeypatch.delenv("GRAPHIX_SPIDER_DIR", raising=False)
    with pytest.raises(InputError, match="GRAPHIX_SPIDER_DIR"):
        resolve_spider_dir(None)
    monkeypatch.setenv("GRAPHIX_SPIDER_DIR", str(spider_folder))
    assert resolve_spider_dir(None) == spider_folder


# ---------------------------------------------------------------------- preprocessing


def test_preprocess_split_with_tokenizer(spider_folder, tokenizer, tmp_path):
    config = PreprocessConfig(cache_dir=tmp_path / "cache")
    dataset = preprocess_split(spider_folder, "dev", tokenizer, config, progress=False)
    assert len(dataset) == 2
    record = dataset[0]
    assert record["target"] == ("band | select count ( * ) from singer as t1 join band as t2 "
                                "on t1.band_id = t2.band_id where t2.genre = 'rock'")
    assert record["input_text"] == ("How many singers play rock? | band | band : band_id , "
                                    "genre ( rock ) | singer : singer_id , name , band_id")
    assert record["input_ids"] == tokenizer(record["input_text"])["input_ids"]
    assert record["labels"] == tokenizer(record["target"])["input_ids"]
    assert len(record["node_spans"]) == len(record["node_kind"]) == len(record["node_text"])
    assert len(record["edge_index"]) == 2
    assert len(record["edge_index"][0]) == len(record["edge_type"])
    assert all(0 <= kind < NUM_RELATIONS for kind in record["edge_type"])
    assert max(max(row) for row in record["edge_index"]) < len(record["node_kind"])

    dataset.set_format("torch", columns=["input_ids", "labels", "node_spans", "edge_index",
                                         "edge_type"])
    batch = collate([dataset[0], dataset[1]])
    nodes = len(record["node_kind"]) + len(dataset.with_format(None)[1]["node_kind"])
    assert batch["input_ids"].shape[0] == 2
    assert batch["graph_node_spans"].shape == (nodes, 2)
    assert batch["graph_node_batch"].tolist() == sorted(batch["graph_node_batch"].tolist())
    assert int(batch["graph_edge_index"].max()) < nodes
    assert batch["labels"].dtype == torch.long


def test_preprocess_split_without_tokenizer(spider_folder, tmp_path):
    config = PreprocessConfig(cache_dir=tmp_path / "cache")
    dataset = preprocess_split(spider_folder, "train", None, config, progress=False)
    record = dataset[1]
    assert record["input_text"].startswith("List every genre. | band | band : band_id , genre")
    spans = record["node_char_spans"]
    texts = [record["input_text"][a:b] for a, b in spans]
    assert texts[:5] == ["List", "every", "genre", ".", "band"]
    assert "input_ids" not in dataset.column_names


def test_preprocess_without_value_linking(spider_folder, tmp_path):
    config = PreprocessConfig(cache_dir=tmp_path / "cache", link_values=False)
    dataset = preprocess_split(spider_folder, "dev", None, config, progress=False)
    assert "( rock )" not in dataset[0]["input_text"]
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------- commands


def test_preprocess_command_writes_dataset(spider_folder, tokenizer, tmp_path, capsys):
    from datasets import load_from_disk

    tokenizer.save_pretrained(str(tmp_path / "saved_tokenizer"))
    out = tmp_path / "dev_dataset"
    status = main(["preprocess", "--spider-dir", str(spider_folder), "--split", "dev",
                   "--out", str(out), "--tokenizer", str(tmp_path / "saved_tokenizer"),
                   "--cache-dir", str(tmp_path / "cache")])
    assert status == 0
    assert "wrote 2 dev examples" in capsys.readouterr().out
    loaded = load_from_disk(str(out))
    assert len(loaded) == 2
    assert loaded[1]["input_ids"] == tokenizer(loaded[1]["input_text"])["input_ids"]


def test_preprocess_command_reports_bad_folder(tmp_path, capsys):
    status = main(["preprocess", "--spider-dir", str(tmp_path), "--split", "dev",
                   "--out", str(tmp_path / "out")])
    assert status == 1
    assert "has no tables.json" in capsys.readouterr().err


def test_graph_command_draws_png(spider_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHIX_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "graph.png"
    database = spider_folder / "database" / "band" / "band.sqlite"
    status = main(["graph", "--db", str(database), "Which singers play rock?", "--out", str(out)])
    assert status == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


# ---------------------------------------------------------------------- Spider


@pytest.mark.slow
@pytest.mark.spider
@pytest.mark.parametrize("split, minimum", [("dev", 972), ("train", 8000)])
def test_spider_split_preprocesses(spider, tmp_path_factory, split, minimum):
    from graphix.data import load_spider_split as load
    from graphix.preprocess import preprocess_examples

    tokenizer = train_sentencepiece(tmp_path_factory.mktemp("spider_tokenizer"), vocab_size=300)
    data = load(spider, split)
    config = PreprocessConfig(cache_dir=tmp_path_factory.getbasetemp() / "value_index")
    records = preprocess_examples(data, tokenizer, config, progress=False)
    assert len(records) == len(data.examples) >= minimum
    for record in records:
        assert len(record["input_ids"]) <= 512
        assert len(record["node_spans"]) == len(record["node_kind"])
        assert all(end > start for start, end in record["node_spans"])
