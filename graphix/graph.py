"""The Graphix relation vocabulary, the question-schema graph and its batching.

Nodes are the question tokens, then the tables, then the columns in Spider order (the
special column ``*`` first). Edges are directed and typed by `Relation`; a message flows
from ``edge_index[0]`` (source) to ``edge_index[1]`` (target), as in PyTorch Geometric.
Pairs that do not match get no edge: the ``*`` column connects every question token that
links to nothing with the schema instead.

Shapes: N nodes, E edges, B examples, T input tokens, L target tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from itertools import chain

import torch

from graphix.linking import Linking, Match
from graphix.schema import Schema


class Relation(IntEnum):
    """The 25 directed relation types of Graphix; the value is the ``edge_type`` id."""

    QUESTION_QUESTION_DIST1 = 0
    QUESTION_QUESTION_MODIFIER = 1
    QUESTION_QUESTION_ARGUMENT = 2
    QUESTION_TABLE_EXACTMATCH = 3
    QUESTION_TABLE_PARTIALMATCH = 4
    TABLE_QUESTION_EXACTMATCH = 5
    TABLE_QUESTION_PARTIALMATCH = 6
    QUESTION_COLUMN_EXACTMATCH = 7
    QUESTION_COLUMN_PARTIALMATCH = 8
    QUESTION_COLUMN_VALUEMATCH = 9
    COLUMN_QUESTION_EXACTMATCH = 10
    COLUMN_QUESTION_PARTIALMATCH = 11
    COLUMN_QUESTION_VALUEMATCH = 12
    TABLE_COLUMN_HAS = 13
    TABLE_COLUMN_PK = 14
    COLUMN_TABLE_HAS = 15
    COLUMN_TABLE_PK = 16
    COLUMN_COLUMN_SAMETABLE = 17
    COLUMN_COLUMN_FK = 18
    COLUMN_COLUMN_FKR = 19
    TABLE_TABLE_FK = 20
    TABLE_TABLE_FKR = 21
    QUESTION_COLUMN_STAR = 22
    COLUMN_QUESTION_STAR = 23
    COLUMN_COLUMN_STAR = 24

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Relation.QUESTION_QUESTION_DIST1: "the two question tokens are adjacent (both directions)",
    Relation.QUESTION_QUESTION_MODIFIER:
        "the target token modifies the source token in a dependency parse; no edges without a parser",
    Relation.QUESTION_QUESTION_ARGUMENT:
        "the target token is an argument of the source token in a dependency parse; "
        "no edges without a parser",
    Relation.QUESTION_TABLE_EXACTMATCH: "the question n-gram with this token is the table's whole name",
    Relation.QUESTION_TABLE_PARTIALMATCH: "the question n-gram with this token is part of the table's name",
    Relation.TABLE_QUESTION_EXACTMATCH: "reverse of question-table-exactmatch",
    Relation.TABLE_QUESTION_PARTIALMATCH: "reverse of question-table-partialmatch",
    Relation.QUESTION_COLUMN_EXACTMATCH: "the question n-gram with this token is the column's whole name",
    Relation.QUESTION_COLUMN_PARTIALMATCH: "the question n-gram with this token is part of the column's name",
    Relation.QUESTION_COLUMN_VALUEMATCH: "the question n-gram with this token is a cell value of the column",
    Relation.COLUMN_QUESTION_EXACTMATCH: "reverse of question-column-exactmatch",
    Relation.COLUMN_QUESTION_PARTIALMATCH: "reverse of question-column-partialmatch",
    Relation.COLUMN_QUESTION_VALUEMATCH: "reverse of question-column-valuematch",
    Relation.TABLE_COLUMN_HAS: "the table contains the column, which is not its primary key",
    Relation.TABLE_COLUMN_PK: "the column is (part of) the table's primary key",
    Relation.COLUMN_TABLE_HAS: "reverse of table-column-has",
    Relation.COLUMN_TABLE_PK: "reverse of table-column-pk",
    Relation.COLUMN_COLUMN_SAMETABLE: "two different columns of the same table (both directions)",
    Relation.COLUMN_COLUMN_FK: "the source column is a foreign key referencing the target column",
    Relation.COLUMN_COLUMN_FKR: "the target column is a foreign key referencing the source column",
    Relation.TABLE_TABLE_FK: "a column of the source table references a column of the target table",
    Relation.TABLE_TABLE_FKR: "a column of the target table references a column of the source table",
    Relation.QUESTION_COLUMN_STAR: "a question token that links to no table or column, to the * column",
    Relation.COLUMN_QUESTION_STAR: "the * column, to a question token that links to nothing",
    Relation.COLUMN_COLUMN_STAR: "the * column and another column (both directions)",
}

NUM_RELATIONS = len(Relation)

_NAME_RELATIONS = {
    ("table", Match.EXACT): (Relation.QUESTION_TABLE_EXACTMATCH, Relation.TABLE_QUESTION_EXACTMATCH),
    ("table", Match.PARTIAL): (Relation.QUESTION_TABLE_PARTIALMATCH,
                               Relation.TABLE_QUESTION_PARTIALMATCH),
    ("column", Match.EXACT): (Relation.QUESTION_COLUMN_EXACTMATCH,
                              Relation.COLUMN_QUESTION_EXACTMATCH),
    ("column", Match.PARTIAL): (Relation.QUESTION_COLUMN_PARTIALMATCH,
                                Relation.COLUMN_QUESTION_PARTIALMATCH),
    ("column", Match.VALUE): (Relation.QUESTION_COLUMN_VALUEMATCH,
                              Relation.COLUMN_QUESTION_VALUEMATCH),
}


class NodeKind(IntEnum):
    QUESTION = 0
    TABLE = 1
    COLUMN = 2


@dataclass(frozen=True)
class DependencyArc:
    """A dependency-parse arc between question tokens, from an optional parser."""

    head: int
    dependent: int
    relation: Relation
    """QUESTION_QUESTION_MODIFIER or QUESTION_QUESTION_ARGUMENT; the edge runs head -> dependent."""


@dataclass
class Graph:
    """One example's question-schema graph."""

    node_kind: list[int]
    """`NodeKind` value per node."""
    node_index: list[int]
    """Token position, table position or Spider column index, per node."""
    node_text: list[str]
    """Token text, table name or ``table.column`` (``*`` for the star column), per node."""
    edge_index: torch.Tensor
    """[2, E] long: row 0 source node, row 1 target node."""
    edge_type: torch.Tensor
    """[E] long: `Relation` values."""

    @property
    def num_nodes(self) -> int:
        return len(self.node_kind)

    def edges(self) -> set[tuple[int, int, Relation]]:
        """Return the edges as (source, target, relation) triples."""
        rows = zip(self.edge_index[0].tolist(), self.edge_index[1].tolist(), self.edge_type.tolist())
        return {(source, target, Relation(kind)) for source, target, kind in rows}

    def subgraph(self, keep: list[int]) -> Graph:
        """Return the graph on nodes `keep` (ascending), renumbered 0..len(keep)-1."""
        new_id = torch.full((self.num_nodes,), -1, dtype=torch.long)
        new_id[torch.as_tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
        mapped = new_id[self.edge_index]  # [2, E]
        alive = (mapped >= 0).all(dim=0)
        return Graph(
            node_kind=[self.node_kind[i] for i in keep],
            node_index=[self.node_index[i] for i in keep],
            node_text=[self.node_text[i] for i in keep],
            edge_index=mapped[:, alive],
            edge_type=self.edge_type[alive],
        )


def build_graph(linking: Linking, schema: Schema,
                dependencies: list[DependencyArc] | None = None) -> Graph:
    """Build the graph of one linked question; `dependencies` add modifier/argument edges."""
    num_tokens = len(linking.tokens)
    num_tables = len(schema.tables)
    table_node = num_tokens
    column_node = num_tokens + num_tables
    edges: dict[tuple[int, int, int], None] = {}

    def add(source: int, target: int, relation: Relation) -> None:
        edges[(source, target, int(relation))] = None

    # Neighbouring question tokens, and dependency arcs when a parser supplied them.
    for position in range(num_tokens - 1):
        add(position, position + 1, Relation.QUESTION_QUESTION_DIST1)
        add(position + 1, position, Relation.QUESTION_QUESTION_DIST1)
    for arc in dependencies or ():
        if arc.relation not in (Relation.QUESTION_QUESTION_MODIFIER,
                                Relation.QUESTION_QUESTION_ARGUMENT):
            raise ValueError(f"dependency arc {arc} must use a modifier or argument relation")
        if not (0 <= arc.head < num_tokens and 0 <= arc.dependent < num_tokens):
            raise ValueError(f"dependency arc {arc} names a token outside 0..{num_tokens - 1}")
        add(arc.head, arc.dependent, arc.relation)

    # Name and value links in both directions; a token without any link goes to `*`.
    linked_tokens = set()
    for (position, kind, index), match in linking.token_relations().items():
        forward, backward = _NAME_RELATIONS[(kind, match)]
        node = table_node + index if kind == "table" else column_node + index
        add(position, node, forward)
        add(node, position, backward)
        linked_tokens.add(position)
    for position in range(num_tokens):
        if position not in linked_tokens:
            add(position, column_node, Relation.QUESTION_COLUMN_STAR)
            add(column_node, position, Relation.COLUMN_QUESTION_STAR)

    node_kind = [NodeKind.QUESTION] * num_tokens + [NodeKind.TABLE] * num_tables \
        + [NodeKind.COLUMN] * len(schema.columns)
    node_index = list(range(num_tokens)) + list(range(num_tables)) + list(range(len(schema.columns)))
    node_text = [token.text for token in linking.tokens] + [table.name for table in schema.tables] \
        + ["*"] + [f"{column.table}.{column.name}" for column in schema.columns[1:]]

    # Schema edges are built once per schema with the first table at node 0.
    question_edges = torch.tensor(list(edges), dtype=torch.long).reshape(-1, 3)  # [E_q, 3]
    schema_edges = schema_edge_triples(schema).clone()  # [E_s, 3]
    schema_edges[:, :2] += num_tokens
    triples = torch.cat([question_edges, schema_edges])  # [E, 3]
    return Graph(
        node_kind=[int(kind) for kind in node_kind],
        node_index=node_index,
        node_text=node_text,
        edge_index=triples[:, :2].t().contiguous(),
        edge_type=triples[:, 2].contiguous(),
    )


@lru_cache(maxsize=256)
def schema_edge_triples(schema: Schema) -> torch.Tensor:
    """Return the schema-only edges as [E, 3] (source, target, relation), tables from node 0.

    Tables take nodes ``0..T-1`` and columns ``T..T+C-1`` (``*`` at T). These are the
    membership, key, same-table and ``*``-to-column edges; they do not depend on the question.
    """
    edges: dict[tuple[int, int, int], None] = {}

    def add(source: int, target: int, relation: Relation) -> None:
        edges[(source, target, int(relation))] = None

    _add_schema_edges(schema, 0, len(schema.tables), add)
    return torch.tensor(list(edges), dtype=torch.long).reshape(-1, 3)


def _add_schema_edges(schema: Schema, table_node: int, column_node: int, add) -> None:
    """Add the edges that depend only on the schema: keys, membership and the `*` bridge."""
    primary_keys = set(schema.primary_key_indices)
    columns_of_table: list[list[int]] = [[] for _ in schema.tables]
    for index in range(1, len(schema.columns)):
        table = schema.column_table_index(index)
        columns_of_table[table].append(index)
        is_key = index in primary_keys
        add(table_node + table, column_node + index,
            Relation.TABLE_COLUMN_PK if is_key else Relation.TABLE_COLUMN_HAS)
        add(column_node + index, table_node + table,
            Relation.COLUMN_TABLE_PK if is_key else Relation.COLUMN_TABLE_HAS)
        add(column_node, column_node + index, Relation.COLUMN_COLUMN_STAR)
        add(column_node + index, column_node, Relation.COLUMN_COLUMN_STAR)

    for members in columns_of_table:
        for a in members:
            for b in members:
                if a != b:
                    add(column_node + a, column_node + b, Relation.COLUMN_COLUMN_SAMETABLE)

    for source, target in schema.foreign_key_pairs:
        add(column_node + source, column_node + target, Relation.COLUMN_COLUMN_FK)
        add(column_node + target, column_node + source, Relation.COLUMN_COLUMN_FKR)
        source_table = schema.column_table_index(source)
        target_table = schema.column_table_index(target)
        if source_table != target_table:
            add(table_node + source_table, table_node + target_table, Relation.TABLE_TABLE_FK)
            add(table_node + target_table, table_node + source_table, Relation.TABLE_TABLE_FKR)


def collate(features: list[dict], pad_to_multiple: int = 1) -> dict[str, torch.Tensor]:
    """Batch encoded examples into padded token tensors and one disjoint graph.

    Each feature has ``input_ids`` [T_i], ``node_spans`` [N_i, 2], ``edge_index``
    [2, E_i], ``edge_type`` [E_i] and optionally ``labels`` [L_i], as lists or tensors.
    Returns ``input_ids`` / ``attention_mask`` [B, T] (pad id 0), ``labels`` [B, L]
    (pad -100, only when every feature has labels), ``graph_edge_index`` [2, E] with node
    ids offset into the batch, ``graph_edge_type`` [E], ``graph_node_batch`` [N] (the
    example of each node, ascending) and ``graph_node_spans`` [N, 2] (spans inside each
    example's own ``input_ids``).

    ``pad_to_multiple`` rounds T and L up, so that training sees few distinct tensor
    shapes (each new shape costs oneDNN a kernel build and cache memory on CPU).
    """
    if not features:
        raise ValueError("collate needs at least one example")
    batch = {}
    input_ids, attention_mask = _pad([f["input_ids"] for f in features], 0, pad_to_multiple)
    batch["input_ids"] = input_ids
    batch["attention_mask"] = attention_mask
    if all(f.get("labels") is not None for f in features):
        batch["labels"], _ = _pad([f["labels"] for f in features], -100, pad_to_multiple)

    node_spans = [torch.as_tensor(f["node_spans"], dtype=torch.long).reshape(-1, 2) for f in features]
    edge_index = [torch.as_tensor(f["edge_index"], dtype=torch.long).reshape(2, -1) for f in features]
    edge_type = [torch.as_tensor(f["edge_type"], dtype=torch.long).reshape(-1) for f in features]
    num_nodes = torch.tensor([spans.shape[0] for spans in node_spans])
    num_edges = torch.tensor([edges.shape[1] for edges in edge_index])

    # Shift each example's node ids by the number of nodes before it.
    node_offset = torch.cumsum(num_nodes, 0) - num_nodes  # [B]
    batch["graph_edge_index"] = torch.cat(edge_index, dim=1) + torch.repeat_interleave(
        node_offset, num_edges
    )
    batch["graph_edge_type"] = torch.cat(edge_type)
    batch["graph_node_batch"] = torch.repeat_interleave(torch.arange(len(features)), num_nodes)
    batch["graph_node_spans"] = torch.cat(node_spans)
    return batch


def _pad(sequences: list, pad_value: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad 1-d sequences into [B, width] without a loop over tensor elements.

    ``width`` is the longest length rounded up to a multiple of ``multiple``.
    """
    if multiple < 1:
        raise ValueError(f"pad_to_multiple must be at least 1, got {multiple}")
    lengths = torch.tensor([len(sequence) for sequence in sequences])
    flat = torch.as_tensor(list(chain.from_iterable(
        sequence.tolist() if isinstance(sequence, torch.Tensor) else sequence
        for sequence in sequences
    )), dtype=torch.long)
    width = int(lengths.max()) if len(lengths) else 0
    width = -(-width // multiple) * multiple
    mask = torch.arange(width)[None, :] < lengths[:, None]  # [B, width]
    padded = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    padded[mask] = flat
    return padded, mask.long()
