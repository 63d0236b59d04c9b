"""The relation vocabulary, graph construction and batching into one disjoint graph."""

from __future__ import annotations

import pytest
import torch

from fixtures.builders import create_database
from graphix.graph import (
    NUM_RELATIONS,
    DependencyArc,
    NodeKind,
    Relation,
    build_graph,
    collate,
)
from graphix.linking import SchemaLinker
from graphix.schema import Schema

# Node layout for the question "singers of rock" on this schema:
#   0 singers, 1 of, 2 rock | 3 band, 4 singer | 5 *, 6 band.band_id, 7 band.genre,
#   8 singer.singer_id, 9 singer.name, 10 singer.band_id
BAND_DB = [
    "CREATE TABLE band (band_id INTEGER PRIMARY KEY, genre TEXT)",
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, "
    "band_id INTEGER REFERENCES band(band_id))",
    "INSERT INTO band VALUES (1, 'rock')",
]


@pytest.fixture
def band_graph(tmp_path):
    from graphix.value_index import ValueIndex

    path = create_database(tmp_path / "band.sqlite", BAND_DB)
    schema = Schema.from_sqlite(path)
    index = ValueIndex.load_or_build(path, schema, cache_dir=tmp_path)
    linking = SchemaLinker(schema, index).link("singers of rock")
    return schema, linking, build_graph(linking, schema)


def test_relation_vocabulary():
    assert NUM_RELATIONS == 25
    assert [int(r) for r in Relation] == list(range(25))
    descriptions = [r.description for r in Relation]
    assert all(descriptions)
    assert len(set(descriptions)) == 25


def test_nodes_in_layout_order(band_graph):
    _, _, graph = band_graph
    assert graph.node_kind == [NodeKind.QUESTION] * 3 + [NodeKind.TABLE] * 2 + [NodeKind.COLUMN] * 6
    assert graph.node_index == [0, 1, 2, 0, 1, 0, 1, 2, 3, 4, 5]
    assert graph.node_text[5] == "*"
    assert graph.node_text[10] == "singer.band_id"
    assert graph.edge_index.dtype == torch.long
    assert graph.edge_index.shape == (2, graph.edge_type.numel())


def test_question_edges(band_graph):
    _, _, graph = band_graph
    edges = graph.edges()
    question_relations = {
        (s, t, r) for s, t, r in edges
        if r not in _SCHEMA_ONLY
    }
    expected = {
        # dist-1 in both directions
        (0, 1, Relation.QUESTION_QUESTION_DIST1), (1, 0, Relation.QUESTION_QUESTION_DIST1),
        (1, 2, Relation.QUESTION_QUESTION_DIST1), (2, 1, Relation.QUESTION_QUESTION_DIST1),
        # "singers" -> table singer (exact) and singer.singer_id (partial)
        (0, 4, Relation.QUESTION_TABLE_EXACTMATCH), (4, 0, Relation.TABLE_QUESTION_EXACTMATCH),
        (0, 8, Relation.QUESTION_COLUMN_PARTIALMATCH), (8, 0, Relation.COLUMN_QUESTION_PARTIALMATCH),
        # "rock" is a value of band.genre
        (2, 7, Relation.QUESTION_COLUMN_VALUEMATCH), (7, 2, Relation.COLUMN_QUESTION_VALUEMATCH),
        # "of" links to nothing, so it bridges to *
        (1, 5, Relation.QUESTION_COLUMN_STAR), (5, 1, Relation.COLUMN_QUESTION_STAR),
    }
    assert question_relations == expected


_SCHEMA_ONLY = {
    Relation.TABLE_COLUMN_HAS, Relation.TABLE_COLUMN_PK, Relation.COLUMN_TABLE_HAS,
    Relation.COLUMN_TABLE_PK, Relation.COLUMN_COLUMN_SAMETABLE, Relation.COLUMN_COLUMN_FK,
    Relation.COLUMN_COLUMN_FKR, Relation.TABLE_TABLE_FK, Relation.TABLE_TABLE_FKR,
    Relation.COLUMN_COLUMN_STAR,
}


def test_schema_edges(band_graph):
    _, _, graph = band_graph
    edges = graph.edges()
    schema_edges = {(s, t, r) for s, t, r in edges if r in _SCHEMA_ONLY}
    expected = {
        (3, 6, Relation.TABLE_COLUMN_PK), (6, 3, Relation.COLUMN_TABLE_PK),
        (3, 7, Relation.TABLE_COLUMN_HAS), (7, 3, Relation.COLUMN_TABLE_HAS),
        (4, 8, Relation.TABLE_COLUMN_PK), (8, 4, Relation.COLUMN_TABLE_PK),
        (4, 9, Relation.TABLE_COLUMN_HAS), (9, 4, Relation.COLUMN_TABLE_HAS),
        (4, 10, Relation.TABLE_COLUMN_HAS), (10, 4, Relation.COLUMN_TABLE_HAS),
        (6, 7, Relation.COLUMN_COLUMN_SAMETABLE), (7, 6, Relation.COLUMN_COLUMN_SAMETABLE),
        (8, 9, Relation.COLUMN_COLUMN_SAMETABLE), (9, 8, Relation.COLUMN_COLUMN_SAMETABLE),
        (8, 10, Relation.COLUMN_COLUMN_SAMETABLE), (10, 8, Relation.COLUMN_COLUMN_SAMETABLE),
        (9, 10, Relation.COLUMN_COLUMN_SAMETABLE), (10, 9, Relation.COLUMN_COLUMN_SAMETABLE),
        # singer.band_id references band.band_id: fk from the referencing side
        (10, 6, Relation.COLUMN_COLUMN_FK), (6, 10, Relation.COLUMN_COLUMN_FKR),
        (4, 3, Relation.TABLE_TABLE_FK), (3, 4, Relation.TABLE_TABLE_FKR),
    }
    expected |= {(5, c, Relation.COLUMN_COLUMN_STAR) for c in range(6, 11)}
    expected |= {(c, 5, Relation.COLUMN_COLUMN_STAR) for c in range(6, 11)}
    assert schema_edges == expected


def test_no_duplicate_edges(band_graph):
    _, _, graph = band_graph
    assert len(graph.edges()) == graph.edge_type.numel()


def test_dependency_arcs_optional(band_graph):
    schema, linking, graph = band_graph
    assert not (graph.edge_type == Relation.QUESTION_QUESTION_MODIFIER).any()
    arcs = [DependencyArc(0, 2, Relation.QUESTION_QUESTION_MODIFIER),
            DependencyArc(0, 1, Relation.QUESTION_QUESTION_ARGUMENT)]
    parsed = build_graph(linking, schema, arcs)
    added = parsed.edges() - graph.edges()
    assert added == {(0, 2, Relation.QUESTION_QUESTION_MODIFIER),
                     (0, 1, Relation.QUESTION_QUESTION_ARGUMENT)}
    with pytest.raises(ValueError, match="modifier or argument"):
        build_graph(linking, schema, [DependencyArc(0, 1, Relation.COLUMN_COLUMN_FK)])


def test_subgraph_renumbers_and_drops_edges(band_graph):
    _, _, graph = band_graph
    keep = [0, 1, 2, 3, 4, 5, 8]  # drop band.band_id, band.genre, singer.name, singer.band_id
    sub = graph.subgraph(keep)
    assert sub.node_text == [graph.node_text[i] for i in keep]
    expected = {
        (keep.index(s), keep.index(t), r) for s, t, r in graph.edges() if s in keep and t in keep
    }
    assert sub.edges() == expected
    assert (6, 4, Relation.COLUMN_TABLE_PK) in sub.edges()  # singer.singer_id -> singer


# ---------------------------------------------------------------------- collate


def _feature(num_nodes, edges, ids, labels=None):
    source, target, kinds = zip(*edges)
    return {
        "input_ids": ids,
        "node_spans": [[i, i + 1] for i in range(num_nodes)],
        "edge_index": [list(source), list(target)],
        "edge_type": list(kinds),
        "labels": labels,
    }


@pytest.mark.parametrize("as_tensors", [False, True])
def test_collate_offsets_and_padding(as_tensors):
    first = _feature(2, [(0, 1, 0), (1, 0, 0)], [5, 6, 1], labels=[7, 1])
    second = _feature(3, [(0, 2, 22), (2, 0, 23), (1, 2, 3)], [8, 9, 10, 11, 1], labels=[4, 4, 4, 1])
    features = [first, second]
    if as_tensors:
        features = [{k: torch.tensor(v) for k, v in f.items()} for f in features]
    batch = collate(features)

    assert batch["input_ids"].tolist() == [[5, 6, 1, 0, 0], [8, 9, 10, 11, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[7, 1, -100, -100], [4, 4, 4, 1]]
    # The second example's nodes start at 2.
    assert batch["graph_edge_index"].tolist() == [[0, 1, 2, 4, 3], [1, 0, 4, 2, 4]]
    assert batch["graph_edge_type"].tolist() == [0, 0, 22, 23, 3]
    assert batch["graph_node_batch"].tolist() == [0, 0, 1, 1, 1]
    assert batch["graph_node_spans"].tolist() == [[0, 1], [1, 2], [0, 1], [1, 2], [2, 3]]
    for key in ("graph_edge_index", "graph_edge_type", "graph_node_batch", "input_ids"):
        assert batch[key].dtype == torch.long


def test_collate_pads_to_multiple():
    first = _feature(2, [(0, 1, 0)], [5, 6, 1], labels=[7, 1])
    second = _feature(1, [(0, 0, 0)], [8, 9, 10, 11, 1], labels=[4, 4, 4, 1])
    batch = collate([first, second], pad_to_multiple=4)
    assert batch["input_ids"].tolist() == [[5, 6, 1, 0, 0, 0, 0, 0], [8, 9, 10, 11, 1, 0, 0, 0]]
    assert batch["attention_mask"].sum(dim=1).tolist() == [3, 5]
    assert batch["labels"].tolist() == [[7, 1, -100, -100], [4, 4, 4, 1]]
    # Graph tensors are not padded.
    assert batch["graph_node_batch"].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="pad_to_multiple"):
        collate([first], pad_to_multiple=0)


def test_collate_without_labels():
    batch = collate([_feature(1, [(0, 0, 0)], [3, 1])])
    assert "labels" not in batch
    assert batch["graph_edge_index"].tolist() == [[0], [0]]


def test_collate_real_graphs(band_graph):
    _, _, graph = band_graph
    feature = {"input_ids": list(range(1, 12)), "node_spans": [[i, i + 1] for i in range(11)],
               "edge_index": graph.edge_index, "edge_type": graph.edge_type}
    batch = collate([feature, feature, feature])
    num_edges = graph.edge_type.numel()
    assert batch["graph_edge_index"].shape == (2, 3 * num_edges)
    for example in range(3):
        part = batch["graph_edge_index"][:, example * num_edges:(example + 1) * num_edges]
        assert torch.equal(part, graph.edge_index + 11 * example)
    assert batch["graph_node_batch"].tolist() == [0] * 11 + [1] * 11 + [2] * 11
