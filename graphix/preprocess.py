"""Turn examples into model inputs: linking, graph, serialization, tokenization.

`Preprocessor` keeps one `SchemaLinker` (with its value index) per database, so a split
is linked with one index load per database and dictionary lookups per question.
`preprocess_split` writes a whole Spider split as a Hugging Face `datasets.Dataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from graphix.data import Example, SpiderSplit, load_spider_split
from graphix.errors import InputError
from graphix.graph import DependencyArc, build_graph
from graphix.linking import LinkingConfig, SchemaLinker
from graphix.schema import Schema
from graphix.serialization import SerializationConfig, encode_many, serialize, target_text
from graphix.text import Token
from graphix.value_index import ValueIndex, ValueIndexConfig

logger = logging.getLogger(__name__)

DependencyParser = Callable[[list[Token]], list[DependencyArc]]
"""Returns modifier/argument arcs between question tokens; optional."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of every preprocessing step."""

    linking: LinkingConfig = field(default_factory=LinkingConfig)
    serialization: SerializationConfig = field(default_factory=SerializationConfig)
    value_index: ValueIndexConfig = field(default_factory=ValueIndexConfig)
    cache_dir: Path | None = None
    """Folder of value index caches; None means `value_index.default_cache_dir()`."""
    link_values: bool = True
    """Link question n-grams to cell values (needs the database file)."""


class Preprocessor:
    """Builds model records for examples; reuses per-database linkers across calls.

    Without a tokenizer, records hold the input text and each node's character span;
    with a fast tokenizer they also hold ``input_ids``, ``node_spans`` and ``labels``.
    """

    def __init__(self, tokenizer=None, config: PreprocessConfig = PreprocessConfig(),
                 dependency_parser: DependencyParser | None = None):
        if tokenizer is not None and not getattr(tokenizer, "is_fast", False):
            raise InputError("node spans need a fast tokenizer (offset mappings); load it with "
                             "AutoTokenizer.from_pretrained(..., use_fast=True)")
        self.tokenizer = tokenizer
        self.config = config
        self.dependency_parser = dependency_parser
        self._linkers: dict[str, SchemaLinker] = {}

    def linker(self, schema: Schema) -> SchemaLinker:
        """Return the linker of `schema`, loading or building its value index once."""
        linker = self._linkers.get(schema.db_id)
        if linker is None or linker.schema is not schema:
            index = None
            if self.config.link_values and schema.path is not None:
                index = ValueIndex.load_or_build(schema.path, schema,
                                                 cache_dir=self.config.cache_dir,
                                                 config=self.config.value_index)
            linker = SchemaLinker(schema, index, self.config.linking)
            self._linkers[schema.db_id] = linker
        return linker

    def process(self, example: Example, schema: Schema) -> dict:
        """Return the record of one example (see `record_features` for its fields)."""
        return self.process_many([(example, schema)])[0]

    def process_many(self, items: list[tuple[Example, Schema]]) -> list[dict]:
        """Return the records of many examples; tokenization runs as one batch."""
        records, graphs, linkings = [], [], []
        for example, schema in items:
            linking = self.linker(schema).link(example.question)
            dependencies = self.dependency_parser(linking.tokens) if self.dependency_parser else None
            linkings.append(linking)
            graphs.append(build_graph(linking, schema, dependencies))
            target = None if example.query is None else \
                target_text(schema.db_id, example.query, schema)
            records.append({"db_id": example.db_id, "question": example.question,
                            "query": example.query, "target": target})

        if self.tokenizer is None:
            for record, linking, graph, (_, schema) in zip(records, linkings, graphs, items):
                serialized = serialize(linking, schema, graph)
                record.update(input_text=serialized.text, node_char_spans=serialized.char_spans,
                              cut_items=0)
        else:
            encoded = encode_many(
                [(linking, schema, graph) for linking, graph, (_, schema)
                 in zip(linkings, graphs, items)],
                self.tokenizer, self.config.serialization,
            )
            labels = self._tokenize_targets([record["target"] for record in records])
            for number, (record, entry) in enumerate(zip(records, encoded)):
                graphs[number] = entry.graph
                record.update(input_text=entry.text, input_ids=entry.input_ids,
                              node_spans=entry.node_spans.tolist(), labels=labels[number],
                              cut_items=entry.cut_items)

        for record, graph in zip(records, graphs):
            record.update(node_kind=graph.node_kind, node_index=graph.node_index,
                          node_text=graph.node_text, edge_index=graph.edge_index.tolist(),
                          edge_type=graph.edge_type.tolist())
        return records

    def _tokenize_targets(self, targets: list[str | None]) -> list[list[int] | None]:
        present = [target for target in targets if target is not None]
        if not present:
            return [None] * len(targets)
        ids = iter(self.tokenizer(present, truncation=True,
                                  max_length=self.config.serialization.max_target_tokens)["input_ids"])
        return [None if target is None else list(next(ids)) for target in targets]


def record_features(with_tokenizer: bool):
    """Return the `datasets.Features` of preprocessed records."""
    from datasets import Features, Sequence, Value

    fields = {
        "db_id": Value("string"),
        "question": Value("string"),
        "query": Value("string"),
        "target": Value("string"),
        "input_text": Value("string"),
        "cut_items": Value("int32"),
        "node_kind": Sequence(Value("int8")),
        "node_index": Sequence(Value("int32")),
        "node_text": Sequence(Value("string")),
        "edge_index": Sequence(Sequence(Value("int32"))),
        "edge_type": Sequence(Value("int8")),
    }
    if with_tokenizer:
        fields.update(input_ids=Sequence(Value("int32")), labels=Sequence(Value("int32")),
                      node_spans=Sequence(Sequence(Value("int32"))))
    else:
        fields["node_char_spans"] = Sequence(Sequence(Value("int32")))
    return Features(fields)


def preprocess_split(spider_dir: str | Path | None, split: str, tokenizer=None,
                     config: PreprocessConfig = PreprocessConfig(), *, progress: bool = True,
                     limit: int | None = None):
    """Preprocess a Spider split into a `datasets.Dataset` (one record per example)."""
    from datasets import Dataset

    data = load_spider_split(spider_dir, split)
    records = preprocess_examples(data, tokenizer, config, progress=progress, limit=limit)
    return Dataset.from_list(records, features=record_features(tokenizer is not None))


def preprocess_examples(data: SpiderSplit, tokenizer=None,
                        config: PreprocessConfig = PreprocessConfig(), *, progress: bool = True,
                        limit: int | None = None, preprocessor: Preprocessor | None = None,
                        batch_size: int = 256) -> list[dict]:
    """Preprocess the examples of `data` into records, `batch_size` at a time, with a progress bar."""
    from tqdm.auto import tqdm

    preprocessor = preprocessor or Preprocessor(tokenizer, config)
    examples = data.examples if limit is None else data.examples[:limit]
    records: list[dict] = []
    with tqdm(total=len(examples), desc=f"preprocess {data.name}", unit="example",
              disable=not progress) as bar:
        for first in range(0, len(examples), batch_size):
            chunk = examples[first:first + batch_size]
            records.extend(preprocessor.process_many(
                [(example, data.schemas[example.db_id]) for example in chunk]
            ))
            bar.update(len(chunk))
    cut = sum(1 for record in records if record["cut_items"])
    if cut:
        logger.info("%s: %d of %d inputs had schema items cut to fit %d tokens (%d items in all)",
                    data.name, cut, len(records), config.serialization.max_input_tokens,
                    sum(record["cut_items"] for record in records))
    return records


def build_value_indexes(data: SpiderSplit, config: PreprocessConfig = PreprocessConfig(), *,
                        progress: bool = True) -> int:
    """Build (or load) the value index of every database of `data`; return how many."""
    from tqdm.auto import tqdm

    for schema in tqdm(list(data.schemas.values()), desc=f"value indexes {data.name}",
                       unit="db", disable=not progress):
        ValueIndex.load_or_build(schema.path, schema, cache_dir=config.cache_dir,
                                 config=config.value_index)
    return len(data.schemas)
