"""The relational graph attention sublayer and the batched graph layout."""

from __future__ import annotations

import math

import pytest
import torch

from graphix.errors import InputError
from graphix.model.rgat import BatchedGraph, RelationalGraphAttention, RelationEmbedding


def _example_graph(num_nodes: int, num_edges: int, num_relations: int, generator):
    """Random edges without duplicate (source, target) pairs; returns edge_index, edge_type."""
    pairs = torch.cartesian_prod(torch.arange(num_nodes), torch.arange(num_nodes))  # [N*N, 2]
    chosen = pairs[torch.randperm(pairs.shape[0], generator=generator)[:num_edges]]
    edge_type = torch.randint(0, num_relations, (chosen.shape[0],), generator=generator)
    return chosen.t().contiguous(), edge_type


def _batch_of_graphs(node_counts, edge_counts, num_relations, seed=0):
    """One disjoint graph over examples with the given node and edge counts, spans of 1 token."""
    generator = torch.Generator().manual_seed(seed)
    edge_indices, edge_types, node_batch = [], [], []
    offset = 0
    for example, (num_nodes, num_edges) in enumerate(zip(node_counts, edge_counts)):
        edge_index, edge_type = _example_graph(num_nodes, num_edges, num_relations, generator)
        edge_indices.append(edge_index + offset)
        edge_types.append(edge_type)
        node_batch.append(torch.full((num_nodes,), example))
        offset += num_nodes
    node_batch = torch.cat(node_batch)
    local = torch.arange(offset) - torch.cat(
        [torch.full((n,), sum(node_counts[:i])) for i, n in enumerate(node_counts)]
    )
    node_spans = torch.stack([local, local + 1], dim=1)
    return torch.cat(edge_indices, dim=1), torch.cat(edge_types), node_batch, node_spans


def _layer(d_model=16, num_heads=2, head_dim=4, num_relations=3, seed=0):
    torch.manual_seed(seed)
    layer = RelationalGraphAttention(d_model, num_heads, head_dim, dropout_rate=0.0).eval()
    relations = RelationEmbedding(num_relations, head_dim)
    return layer, relations


def test_attend_matches_hand_computation():
    layer, relations = _layer(d_model=2, num_heads=1, head_dim=2, num_relations=2)
    with torch.no_grad():
        for weight in (layer.query, layer.key, layer.value, layer.output):
            weight.copy_(torch.eye(2))
        relations.key.copy_(torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
        relations.value.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    nodes = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [1, 3, 2]
    # Edges 1 -> 0 (relation 0), 2 -> 0 (relation 1), 0 -> 1 (relation 1); node 2 has none in.
    graph = BatchedGraph.from_edges(
        edge_index=torch.tensor([[1, 2, 0], [0, 0, 1]]),
        edge_type=torch.tensor([0, 1, 1]),
        node_batch=torch.tensor([0, 0, 0]),
        node_spans=torch.tensor([[0, 1], [1, 2], [2, 3]]),
        batch_size=1,
        num_tokens=3,
        num_relations=2,
    )

    update = layer.attend(nodes, graph, relations)[0]

    # Node 0: q = (1, 0); keys k1 + r0 = (1, 1) and k2 + r1 = (3, 1); scores 1/sqrt2, 3/sqrt2.
    weight_1 = 1.0 / (1.0 + math.exp(2.0 / math.sqrt(2.0)))
    weight_2 = 1.0 - weight_1
    # Values v1 + r0 = (0, 2) and v2 + r1 = (2, 1).
    expected_0 = [weight_2 * 2.0, weight_1 * 2.0 + weight_2 * 1.0]
    # Node 1: one edge, weight 1, value v0 + r1 = (2, 0).
    expected_1 = [2.0, 0.0]
    assert update[0].tolist() == pytest.approx(expected_0, abs=1e-6)
    assert update[1].tolist() == pytest.approx(expected_1, abs=1e-6)
    assert update[2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("num_heads,head_dim", [(1, 8), (2, 4), (4, 3)])
def test_dense_matches_edge_list(num_heads, head_dim):
    layer, relations = _layer(num_heads=num_heads, head_dim=head_dim, num_relations=5)
    node_counts, edge_counts = [7, 0, 4, 9], [20, 0, 5, 40]
    edge_index, edge_type, node_batch, node_spans = _batch_of_graphs(node_counts, edge_counts, 5)
    graph = BatchedGraph.from_edges(
        edge_index, edge_type, node_batch, node_spans, batch_size=4, num_tokens=9, num_relations=5
    )
    flat_nodes = torch.randn(node_batch.numel(), 16)

    # Scatter the flat node states into the padded layout used by the dense path.
    padded = torch.zeros(4 * graph.max_nodes, 16)
    padded[graph.member_node] = flat_nodes
    dense = layer.attend(padded.view(4, graph.max_nodes, 16), graph, relations)
    edges = layer.attend_edges(flat_nodes, edge_index, edge_type, relations)

    torch.testing.assert_close(dense.view(-1, 16)[graph.member_node], edges, atol=1e-5, rtol=1e-5)


def test_padding_slots_get_no_update():
    layer, relations = _layer()
    edge_index, edge_type, node_batch, node_spans = _batch_of_graphs([2, 5], [3, 10], 3)
    graph = BatchedGraph.from_edges(
        edge_index, edge_type, node_batch, node_spans, batch_size=2, num_tokens=5, num_relations=3
    )
    nodes = torch.randn(2, graph.max_nodes, 16)
    update = layer.attend(nodes, graph, relations)
    assert graph.max_nodes == 5
    assert torch.equal(update[0, 2:], torch.zeros(3, 16))


def test_forward_writes_update_to_spans():
    layer, relations = _layer(num_relations=2)
    # One example, 6 tokens: node 0 spans tokens 0-1, node 1 token 3, node 2 tokens 4-5.
    # Edges 1 -> 0 and 0 -> 1; node 2 has no incoming edge; token 2 is in no span.
    graph = BatchedGraph.from_edges(
        edge_index=torch.tensor([[1, 0], [0, 1]]),
        edge_type=torch.tensor([0, 1]),
        node_batch=torch.tensor([0, 0, 0]),
        node_spans=torch.tensor([[0, 2], [3, 4], [4, 6]]),
        batch_size=1,
        num_tokens=6,
        num_relations=2,
    )
    tokens = torch.randn(1, 6, 16)

    output = layer(tokens, graph, relations)
    change = output - tokens

    assert torch.equal(change[0, 2], torch.zeros(16))
    assert torch.equal(change[0, 4:], torch.zeros(2, 16))
    assert change[0, 0].abs().sum() > 0
    torch.testing.assert_close(change[0, 0], change[0, 1])
    assert change[0, 3].abs().sum() > 0


def test_duplicate_pair_keeps_highest_relation():
    graph = BatchedGraph.from_edges(
        edge_index=torch.tensor([[0, 0, 0, 1], [1, 1, 1, 0]]),
        edge_type=torch.tensor([2, 4, 3, 1]),
        node_batch=torch.tensor([0, 0]),
        node_spans=torch.tensor([[0, 1], [1, 2]]),
        batch_size=1,
        num_tokens=2,
        num_relations=5,
    )
    assert graph.relation_index[0].tolist() == [[0, 1], [4, 0]]
    assert graph.edge_mask[0].tolist() == [[False, True], [True, False]]


def test_pool_averages_spans():
    graph = BatchedGraph.from_edges(
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        edge_type=torch.zeros(0, dtype=torch.long),
        node_batch=torch.tensor([0, 1, 1]),
        node_spans=torch.tensor([[1, 4], [0, 2], [1, 3]]),
        batch_size=2,
        num_tokens=4,
        num_relations=1,
    )
    tokens = torch.arange(8, dtype=torch.float).view(2, 4, 1)  # example 0: 0..3, example 1: 4..7

    pooled = graph.pool(tokens)

    assert pooled.shape == (2, 2, 1)
    assert pooled[0, 0, 0].item() == pytest.approx(2.0)  # mean of 1, 2, 3
    assert pooled[0, 1, 0].item() == 0.0  # padding slot
    assert pooled[1, 0, 0].item() == pytest.approx(4.5)  # mean of 4, 5 (overlaps next span)
    assert pooled[1, 1, 0].item() == pytest.approx(5.5)  # mean of 5, 6


def test_batch_without_nodes_is_unchanged():
    layer, relations = _layer()
    graph = BatchedGraph.from_edges(
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        edge_type=torch.zeros(0, dtype=torch.long),
        node_batch=torch.zeros(0, dtype=torch.long),
        node_spans=torch.zeros(0, 2, dtype=torch.long),
        batch_size=3,
        num_tokens=5,
        num_relations=3,
    )
    tokens = torch.randn(3, 5, 16)
    assert torch.equal(layer(tokens, graph, relations), tokens)


def test_parameters_finite_after_init():
    layer, relations = _layer()
    for name, parameter in [*layer.named_parameters(), *relations.named_parameters()]:
        assert torch.isfinite(parameter).all(), name
    assert torch.equal(layer.layer_norm.weight, torch.ones(16))
    assert layer.query.std().item() == pytest.approx(16**-0.5, rel=0.3)


def test_gradients_reach_every_parameter():
    layer, relations = _layer(num_relations=3)
    edge_index, edge_type, node_batch, node_spans = _batch_of_graphs([6, 6], [20, 20], 3)
    graph = BatchedGraph.from_edges(
        edge_index, edge_type, node_batch, node_spans, batch_size=2, num_tokens=6, num_relations=3
    )
    tokens = torch.randn(2, 6, 16, requires_grad=True)
    layer(tokens, graph, relations).square().sum().backward()
    for name, parameter in [*layer.named_parameters(), *relations.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


VALID = dict(
    edge_index=torch.tensor([[0, 1], [1, 0]]),
    edge_type=torch.tensor([0, 1]),
    node_batch=torch.tensor([0, 0]),
    node_spans=torch.tensor([[0, 1], [1, 3]]),
)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"edge_type": torch.tensor([0, 2])}, "relation ids outside"),
        ({"edge_index": torch.tensor([[0, 2], [1, 0]])}, "node ids outside"),
        ({"node_spans": torch.tensor([[0, 1], [2, 2]])}, "start < end"),
        ({"node_spans": torch.tensor([[0, 1], [1, 9]])}, "start < end"),
        ({"node_batch": torch.tensor([1, 0])}, "ascending"),
        ({"node_batch": torch.tensor([0, 1])}, "different examples"),
        ({"node_batch": torch.tensor([0, 5])}, "example ids outside"),
        ({"edge_type": torch.tensor([0.0, 1.0])}, "torch.long"),
        ({"edge_index": torch.tensor([0, 1])}, r"\[2, E\]"),
    ],
)
def test_invalid_graph_rejected(change, message):
    arguments = {**VALID, **change}
    with pytest.raises(InputError, match=message):
        BatchedGraph.from_edges(**arguments, batch_size=2, num_tokens=4, num_relations=2)
