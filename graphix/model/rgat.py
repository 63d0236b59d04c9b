"""Relational graph attention (RGAT) over the question-schema graph of a batch.

The sublayer that follows a T5 encoder block:

1. Pool: each node's state is the mean of the token states in its subword span.
2. Attend: every node attends to the sources of its incoming edges. The relation embedding of
   each edge is added to the key and to the value of that source (relation-aware attention as
   in RAT-SQL), with several heads. A node without incoming edges gets a zero update.
3. Write back: the node's update goes through dropout and is added to every token of its span,
   a residual as in T5's sublayers. Tokens outside every span are unchanged.

Node states are normalized first (T5's RMS layer norm), as T5's sublayers normalize their input.
One :class:`RelationEmbedding` (a key table and a value table) is shared by every graph sublayer
of the encoder.

Implementation: plain torch over a dense padded node layout. Each example's nodes fill the
first slots of an ``[N]`` axis, the relation of edge ``j -> i`` sits at ``relation[b, i, j]``,
and attention is a masked ``[B, H, N, N]`` matmul. Spider graphs are small (about 50 nodes and
350 edges per example after preprocessing), so the dense score matrix is cheap. At 300 nodes
and 6,000 edges per example the dense layer still ran faster than an edge-list formulation
built on torch-geometric's ``utils.softmax``, because the edge list gathers a key and a value
vector per edge. ``evaluation/bench_train_step.py --layer`` times both, and
``evaluation/train_step.md`` has the numbers. :meth:`RelationalGraphAttention.attend_edges`
keeps the edge-list formulation as a cross-check for the dense one.

The dense layout holds one relation per ordered node pair. Where the input has several edges
for one ``(source, target)`` pair, :meth:`BatchedGraph.from_edges` keeps the highest relation
id. With the Graphix vocabulary that is the foreign key over same-table for a self-referencing
key.

Shapes: B batch, T tokens, N nodes (padded per example), E edges, R relations, H heads,
Dh head width, D model width, M (node, token) span memberships.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers.models.t5.modeling_t5 import T5LayerNorm

from graphix.errors import InputError

# Added to the scores of non-edges. It is finite, so a row without edges gives a uniform softmax
# (zeroed afterwards) instead of NaN. It is finite in float32 and bfloat16 but not in float16.
MASKED_SCORE = -1e9


@dataclass
class BatchedGraph:
    """Dense per-example layout of a batch's disjoint graph, built once per forward pass."""

    relation_index: Tensor  # [B, N, N] relation id of edge j -> i at [b, i, j], 0 where no edge
    edge_mask: Tensor  # [B, N, N] True where edge j -> i exists
    score_bias: Tensor  # [B, 1, N, N] float32, 0 where edge j -> i exists, MASKED_SCORE elsewhere
    has_incoming: Tensor  # [B, 1, N, 1] float32, 1 for nodes with at least one incoming edge
    member_token: Tensor  # [M] flat token index b * T + t of each span membership
    member_node: Tensor  # [M] flat node slot b * N + n of each span membership
    inverse_span_length: Tensor  # [B * N] 1 / span length, 0 for padding slots
    max_nodes: int

    @classmethod
    def from_edges(
        cls,
        edge_index: Tensor,
        edge_type: Tensor,
        node_batch: Tensor,
        node_spans: Tensor,
        batch_size: int,
        num_tokens: int,
        num_relations: int,
    ) -> BatchedGraph:
        """Build the dense layout from one disjoint graph over the batch.

        Args:
            edge_index: ``[2, E]`` node ids, row 0 the source and row 1 the target.
            edge_type: ``[E]`` relation ids in ``0..num_relations-1``.
            node_batch: ``[N_total]`` example index of each node, ascending.
            node_spans: ``[N_total, 2]`` start and end (exclusive) token positions of each node
                inside its example's input, with ``end > start``.
            batch_size: number of examples B (examples may have no nodes).
            num_tokens: padded input length T.
            num_relations: number of relation types R.

        Raises :class:`InputError` when the tensors break this contract.
        """
        _validate_graph(
            edge_index, edge_type, node_batch, node_spans, batch_size, num_tokens, num_relations
        )
        device = node_batch.device
        num_nodes = node_batch.numel()

        # Slot of each node: its rank inside its example.
        nodes_per_example = torch.bincount(node_batch, minlength=batch_size)  # [B]
        max_nodes = int(nodes_per_example.max()) if num_nodes else 0
        first_node = torch.cumsum(nodes_per_example, 0) - nodes_per_example  # [B]
        local = torch.arange(num_nodes, device=device) - first_node[node_batch]  # [N_total]
        slot = node_batch * max_nodes + local  # [N_total]

        # Span memberships: one (token, node) pair per token of each span.
        span_length = node_spans[:, 1] - node_spans[:, 0]  # [N_total]
        member_of = torch.repeat_interleave(torch.arange(num_nodes, device=device), span_length)
        span_offset = torch.cumsum(span_length, 0) - span_length  # [N_total]
        position_in_span = (
            torch.arange(member_of.numel(), device=device) - span_offset[member_of]
        )  # [M]
        member_token = (
            node_batch[member_of] * num_tokens + node_spans[member_of, 0] + position_in_span
        )  # [M]
        inverse_span_length = torch.zeros(batch_size * max_nodes, device=device)
        inverse_span_length[slot] = 1.0 / span_length.to(inverse_span_length.dtype)

        # Relation matrix: the edge source -> target lands at [example, target slot, source slot].
        # A pair with several edges keeps the highest relation id.
        source, target = edge_index[0], edge_index[1]
        flat_pair = (node_batch[target] * max_nodes + local[target]) * max_nodes + local[source]
        relation = torch.full(
            (batch_size * max_nodes * max_nodes,), -1, dtype=torch.long, device=device
        )
        relation.scatter_reduce_(0, flat_pair, edge_type, reduce="amax")
        relation = relation.view(batch_size, max_nodes, max_nodes)  # [B, N, N]
        edge_mask = relation >= 0

        return cls(
            relation_index=relation.clamp(min=0),
            edge_mask=edge_mask,
            score_bias=torch.where(edge_mask, 0.0, MASKED_SCORE).unsqueeze(1),  # [B, 1, N, N]
            has_incoming=edge_mask.any(-1).float()[:, None, :, None],  # [B, 1, N, 1]
            member_token=member_token,
            member_node=slot[member_of],
            inverse_span_length=inverse_span_length,
            max_nodes=max_nodes,
        )

    def pool(self, token_states: Tensor) -> Tensor:
        """Average token states ``[B, T, D]`` over each node's span into ``[B, N, D]``."""
        batch_size, _, width = token_states.shape
        flat_tokens = token_states.reshape(-1, width)  # [B * T, D]
        sums = token_states.new_zeros(batch_size * self.max_nodes, width).index_add(
            0, self.member_node, flat_tokens.index_select(0, self.member_token)
        )  # [B * N, D]
        means = sums * self.inverse_span_length.to(sums.dtype).unsqueeze(-1)
        return means.view(batch_size, self.max_nodes, width)  # [B, N, D]

    def add_to_tokens(self, token_states: Tensor, node_update: Tensor) -> Tensor:
        """Add each node's update ``[B, N, D]`` to every token of its span in ``[B, T, D]``."""
        width = token_states.shape[-1]
        flat_update = node_update.reshape(-1, width).to(token_states.dtype)  # [B * N, D]
        flat_tokens = token_states.reshape(-1, width).index_add(
            0, self.member_token, flat_update.index_select(0, self.member_node)
        )  # [B * T, D]
        return flat_tokens.view_as(token_states)  # [B, T, D]


def _validate_graph(
    edge_index: Tensor,
    edge_type: Tensor,
    node_batch: Tensor,
    node_spans: Tensor,
    batch_size: int,
    num_tokens: int,
    num_relations: int,
) -> None:
    num_nodes = node_batch.numel()
    if node_batch.dim() != 1:
        raise InputError(f"graph_node_batch must be [N], got shape {tuple(node_batch.shape)}")
    if node_spans.shape != (num_nodes, 2):
        raise InputError(
            f"graph_node_spans must be [{num_nodes}, 2] to match graph_node_batch, "
            f"got shape {tuple(node_spans.shape)}"
        )
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise InputError(f"graph_edge_index must be [2, E], got shape {tuple(edge_index.shape)}")
    if edge_type.shape != (edge_index.shape[1],):
        raise InputError(
            f"graph_edge_type must be [{edge_index.shape[1]}] to match graph_edge_index, "
            f"got shape {tuple(edge_type.shape)}"
        )
    for name, tensor in [
        ("graph_edge_index", edge_index),
        ("graph_edge_type", edge_type),
        ("graph_node_batch", node_batch),
        ("graph_node_spans", node_spans),
    ]:
        if tensor.dtype != torch.long:
            raise InputError(f"{name} must be a torch.long tensor, got {tensor.dtype}")

    if num_nodes:
        if node_batch.min() < 0 or node_batch.max() >= batch_size:
            raise InputError(f"graph_node_batch has example ids outside 0..{batch_size - 1}")
        if (node_batch[1:] < node_batch[:-1]).any():
            raise InputError("graph_node_batch must be ascending: group nodes by example")
        starts, ends = node_spans[:, 0], node_spans[:, 1]
        if starts.min() < 0 or ends.max() > num_tokens or (ends <= starts).any():
            raise InputError(
                f"graph_node_spans must satisfy 0 <= start < end <= {num_tokens} (the input length)"
            )
    if edge_index.numel():
        if edge_index.min() < 0 or edge_index.max() >= num_nodes:
            raise InputError(f"graph_edge_index has node ids outside 0..{num_nodes - 1}")
        if edge_type.min() < 0 or edge_type.max() >= num_relations:
            raise InputError(
                f"graph_edge_type has relation ids outside 0..{num_relations - 1}; "
                f"raise num_relations in the model config or fix the relation ids"
            )
        if (node_batch[edge_index[0]] != node_batch[edge_index[1]]).any():
            raise InputError("graph_edge_index has edges between nodes of different examples")


class RelationEmbedding(nn.Module):
    """Relation embeddings for keys and values, shared by every graph sublayer of a model."""

    def __init__(self, num_relations: int, head_dim: int) -> None:
        super().__init__()
        if num_relations < 1 or head_dim < 1:
            raise ValueError(
                f"num_relations and head_dim must be positive, got {num_relations}, {head_dim}"
            )
        self.key = nn.Parameter(torch.empty(num_relations, head_dim))  # [R, Dh]
        self.value = nn.Parameter(torch.empty(num_relations, head_dim))  # [R, Dh]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Unit scale, like the keys and values of layer-normed node states.
        nn.init.normal_(self.key, std=1.0)
        nn.init.normal_(self.value, std=1.0)


class RelationalGraphAttention(nn.Module):
    """Relation-aware multi-head attention over graph neighbours, as a T5-style sublayer.

    Args:
        d_model: width D of the token states.
        num_heads: attention heads H.
        head_dim: width Dh of each head; must equal the relation embedding width.
        dropout_rate: dropout on the sublayer output. Attention weights get none, because a
            dropout mask over the ``[B, H, N, N]`` weights cost more than the attention itself.
        layer_norm_epsilon: epsilon of the RMS layer norm on node states.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        dropout_rate: float = 0.1,
        layer_norm_epsilon: float = 1e-6,
    ) -> None:
        super().__init__()
        if d_model < 1 or num_heads < 1 or head_dim < 1:
            raise ValueError(
                f"d_model, num_heads and head_dim must be positive, "
                f"got {d_model}, {num_heads}, {head_dim}"
            )
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim

        self.layer_norm = T5LayerNorm(d_model, eps=layer_norm_epsilon)
        self.query = nn.Parameter(torch.empty(inner, d_model))
        self.key = nn.Parameter(torch.empty(inner, d_model))
        self.value = nn.Parameter(torch.empty(inner, d_model))
        self.output = nn.Parameter(torch.empty(d_model, inner))
        self.dropout = nn.Dropout(dropout_rate)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # T5's attention init: projections from D with std D^-1/2, the output with (H*Dh)^-1/2.
        nn.init.ones_(self.layer_norm.weight)
        for weight in (self.query, self.key, self.value):
            nn.init.normal_(weight, std=self.d_model**-0.5)
        nn.init.normal_(self.output, std=(self.num_heads * self.head_dim) ** -0.5)

    def forward(
        self, token_states: Tensor, graph: BatchedGraph, relations: RelationEmbedding
    ) -> Tensor:
        """Return token states ``[B, T, D]`` with the graph update added to node spans."""
        if graph.max_nodes == 0:
            return token_states

        node_states = self.layer_norm(graph.pool(token_states))  # [B, N, D]
        update = self.attend(node_states, graph, relations)
        return graph.add_to_tokens(token_states, self.dropout(update))

    def _split_heads(self, states: Tensor, weight: Tensor) -> Tensor:
        batch_size, num_nodes, _ = states.shape
        projected = nn.functional.linear(states, weight)  # [B, N, H * Dh]
        return projected.view(batch_size, num_nodes, self.num_heads, self.head_dim).transpose(
            1, 2
        )  # [B, H, N, Dh]

    def attend(self, node_states: Tensor, graph: BatchedGraph, relations: RelationEmbedding) -> Tensor:
        """Attend from each node over its incoming edges in the dense layout.

        Args:
            node_states: ``[B, N, D]`` normalized node states, in ``graph``'s node slots.
            graph: the batch's relation matrix and masks.
            relations: the shared relation embeddings.

        Returns the update ``[B, N, D]`` before dropout, zero for nodes without incoming edges.
        """
        batch_size, num_nodes, _ = node_states.shape
        query = self._split_heads(node_states, self.query) / math.sqrt(self.head_dim)
        key = self._split_heads(node_states, self.key)  # [B, H, N, Dh]
        value = self._split_heads(node_states, self.value)  # [B, H, N, Dh]
        head_index = graph.relation_index.unsqueeze(1).expand(
            batch_size, self.num_heads, num_nodes, num_nodes
        )  # [B, H, N, N]

        # Scores q_i . (k_j + r_ij) / sqrt(Dh): the relation term is q_i . r for every
        # relation, then picked per pair. Non-edges get a large negative bias.
        query_relation = torch.matmul(query, relations.key.t().to(query.dtype))  # [B, H, N, R]
        scores = torch.matmul(query, key.transpose(-1, -2))  # [B, H, N, N]
        scores = scores + torch.gather(query_relation, -1, head_index) + graph.score_bias
        weights = torch.softmax(scores, dim=-1)

        # Values v_j + r_ij: the relation term sums each row's weights per relation first.
        # Rows without edges had a uniform softmax; has_incoming zeroes their result.
        weight_per_relation = torch.zeros_like(query_relation, dtype=weights.dtype).scatter_add(
            -1, head_index, weights
        )  # [B, H, N, R]
        mixed = torch.matmul(weights, value.to(weights.dtype)) + torch.matmul(
            weight_per_relation, relations.value.to(weights.dtype)
        )  # [B, H, N, Dh]
        mixed = mixed * graph.has_incoming

        mixed = mixed.transpose(1, 2).reshape(
            batch_size, num_nodes, self.num_heads * self.head_dim
        )  # [B, N, H * Dh]
        return nn.functional.linear(mixed, self.output.to(mixed.dtype))  # [B, N, D]

    def attend_edges(
        self,
        node_states: Tensor,
        edge_index: Tensor,
        edge_type: Tensor,
        relations: RelationEmbedding,
    ) -> Tensor:
        """Compute :meth:`attend` from an edge list, with torch-geometric's segment softmax.

        Args:
            node_states: ``[N_total, D]`` normalized node states of the whole batch.
            edge_index: ``[2, E]`` source and target node ids.
            edge_type: ``[E]`` relation ids.
            relations: the shared relation embeddings.

        Returns the update ``[N_total, D]`` before dropout.
        """
        from torch_geometric.utils import softmax as segment_softmax

        num_nodes = node_states.shape[0]
        source, target = edge_index[0], edge_index[1]
        query = nn.functional.linear(node_states, self.query).view(
            num_nodes, self.num_heads, self.head_dim
        )  # [N_total, H, Dh]
        key = nn.functional.linear(node_states, self.key).view(
            num_nodes, self.num_heads, self.head_dim
        )  # [N_total, H, Dh]
        value = nn.functional.linear(node_states, self.value).view(
            num_nodes, self.num_heads, self.head_dim
        )  # [N_total, H, Dh]

        edge_key = key[source] + relations.key[edge_type].unsqueeze(1)  # [E, H, Dh]
        edge_value = value[source] + relations.value[edge_type].unsqueeze(1)  # [E, H, Dh]
        scores = (query[target] * edge_key).sum(-1) / math.sqrt(self.head_dim)  # [E, H]
        weights = segment_softmax(scores, target, num_nodes=num_nodes)  # [E, H]

        mixed = torch.zeros_like(query).index_add(
            0, target, weights.unsqueeze(-1) * edge_value
        )  # [N_total, H, Dh]
        return nn.functional.linear(mixed.reshape(num_nodes, -1), self.output)  # [N_total, D]
