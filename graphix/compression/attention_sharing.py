"""Attention sharing: later layers of a group reuse the first layer's attention probabilities.

A group is a run of consecutive attention sublayers of one kind (encoder self-attention,
decoder self-attention or decoder cross-attention) whose attention maps are similar. The
group's first sublayer (:class:`LeadingAttention`) computes its probabilities as T5 does and
leaves them in a :class:`ProbabilitySlot`. Every later sublayer (:class:`ReusingAttention`)
has only its value and output projections and applies the leader's probabilities to its own
values. The query
and key projections of the later sublayers are removed, which saves their parameters and their
``Q K^T`` products.

Groups are chosen from the attention-map similarity of
:func:`graphix.compression.similarity.measure_similarity`, and the shared model is trained by
distillation from the unshared one (:mod:`graphix.compression.distillation`).

Shapes: B batch, T query tokens, S key tokens, H heads, Dh head width, D model width.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers.cache_utils import EncoderDecoderCache
from transformers.integrations.sdpa_attention import create_position_bias_mask
from transformers.models.t5.modeling_t5 import T5Attention

from graphix.compression.structure import SharedGroup, apply_compression, present_sublayers
from graphix.errors import InputError

logger = logging.getLogger(__name__)


class ProbabilitySlot:
    """Carries one group's attention probabilities from its leader to the later layers.

    The slot is thread-local, so threads that run the same model at once do not see each
    other's probabilities. A copy of the model gets a fresh slot, shared again by the copied
    leader and its followers.

    NOTE: gradient checkpointing breaks the hand-over, because it recomputes each block on
    its own during the backward pass. Train shared models without it.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def put(self, probabilities: Tensor | None) -> None:
        self._local.probabilities = probabilities

    def get(self) -> Tensor:
        probabilities = getattr(self._local, "probabilities", None)
        if probabilities is None:
            raise RuntimeError("a shared attention layer ran before the first layer of its group")
        return probabilities

    def __deepcopy__(self, memo) -> ProbabilitySlot:
        return ProbabilitySlot()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._local = threading.local()


class LeadingAttention(T5Attention):
    """T5 attention that also hands its probabilities to the later layers of its group.

    Its parameters are those of ``T5Attention``, under the same names. It computes attention
    explicitly (not through a fused kernel), because the probabilities have to exist.
    """

    def __init__(self, config, has_relative_attention_bias: bool = False,
                 layer_idx: int | None = None, is_causal: bool = False,
                 slot: ProbabilitySlot | None = None) -> None:
        super().__init__(config, has_relative_attention_bias=has_relative_attention_bias,
                         layer_idx=layer_idx, is_causal=is_causal)
        self.slot = slot if slot is not None else ProbabilitySlot()

    @classmethod
    def from_attention(cls, attention: T5Attention, slot: ProbabilitySlot) -> LeadingAttention:
        """Wrap the projections (and position bias) of `attention`, sharing its tensors."""
        leader = cls(attention.config, layer_idx=attention.layer_idx,
                     is_causal=attention.is_causal, slot=slot)
        leader.q, leader.k, leader.v, leader.o = attention.q, attention.k, attention.v, attention.o
        if attention.has_relative_attention_bias:
            leader.has_relative_attention_bias = True
            leader.relative_attention_bias = attention.relative_attention_bias
        return leader.train(attention.training)

    def forward(self, hidden_states: Tensor, mask: Tensor | None = None,
                key_value_states: Tensor | None = None, position_bias: Tensor | None = None,
                cache=None, **kwargs):
        batch_size, length = hidden_states.shape[:2]
        query = self.q(hidden_states).view(batch_size, length, -1, self.key_value_proj_dim)
        query = query.transpose(1, 2)  # [B, H, T, Dh]
        key, value, past = project_keys_values(self, hidden_states, key_value_states, cache,
                                               with_keys=True, **kwargs)

        # The first attention sublayer of a stack computes the position bias; later ones
        # reuse it, as in T5.
        if position_bias is None:
            if self.has_relative_attention_bias:
                position_bias = self.compute_bias(length, key.shape[-2], device=query.device,
                                                  past_seen_tokens=past)
            else:
                position_bias = query.new_zeros(1, self.n_heads, length, key.shape[-2])

        scores = torch.matmul(query, key.transpose(2, 3)) * self.scaling  # [B, H, T, S]
        is_causal = self.is_causal and key_value_states is None and length > 1
        scores = scores + create_position_bias_mask(position_bias, mask, is_causal, query, key)
        probabilities = torch.softmax(scores.float(), dim=-1).to(value.dtype)
        self.slot.put(probabilities)

        weights = nn.functional.dropout(probabilities, p=self.dropout, training=self.training)
        output = torch.matmul(weights, value).transpose(1, 2)  # [B, T, H, Dh]
        output = self.o(output.reshape(batch_size, length, -1))  # [B, T, D]
        return output, position_bias, probabilities


class ReusingAttention(nn.Module):
    """An attention sublayer without query or key: it applies its group leader's probabilities.

    Its value and output projections keep T5's names (``v`` and ``o``). In decoder
    self-attention the cache stores its values twice, because a cache layer needs keys too.
    """

    def __init__(self, config, layer_idx: int | None = None, is_causal: bool = False,
                 slot: ProbabilitySlot | None = None, clears_slot: bool = False) -> None:
        super().__init__()
        self.is_decoder = config.is_decoder
        self.is_causal = is_causal
        self.layer_idx = layer_idx
        self.n_heads = config.num_heads
        self.key_value_proj_dim = config.d_kv
        self.dropout = config.dropout_rate
        inner_dim = self.n_heads * self.key_value_proj_dim
        self.has_relative_attention_bias = False
        self.v = nn.Linear(config.d_model, inner_dim, bias=False)
        self.o = nn.Linear(inner_dim, config.d_model, bias=False)
        self.slot = slot if slot is not None else ProbabilitySlot()
        self.clears_slot = clears_slot
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # T5's initialization of the value and output projections.
        nn.init.normal_(self.v.weight, std=self.v.in_features ** -0.5)
        nn.init.normal_(self.o.weight, std=self.o.in_features ** -0.5)

    @classmethod
    def from_attention(cls, attention: T5Attention, slot: ProbabilitySlot,
                       clears_slot: bool) -> ReusingAttention:
        """Keep the value and output projections of `attention`, sharing its tensors."""
        follower = cls(attention.config, layer_idx=attention.layer_idx,
                       is_causal=attention.is_causal, slot=slot, clears_slot=clears_slot)
        follower.v, follower.o = attention.v, attention.o
        return follower.train(attention.training)

    def forward(self, hidden_states: Tensor, mask: Tensor | None = None,
                key_value_states: Tensor | None = None, position_bias: Tensor | None = None,
                cache=None, **kwargs):
        batch_size, length = hidden_states.shape[:2]
        _, value, _ = project_keys_values(self, hidden_states, key_value_states, cache,
                                          with_keys=False, **kwargs)
        probabilities = self.slot.get()  # [B, H, T, S]
        if self.clears_slot:
            self.slot.put(None)

        weights = nn.functional.dropout(probabilities, p=self.dropout, training=self.training)
        output = torch.matmul(weights, value).transpose(1, 2)  # [B, T, H, Dh]
        output = self.o(output.reshape(batch_size, length, -1))  # [B, T, D]
        return output, position_bias, probabilities


def project_keys_values(attention: nn.Module, hidden_states: Tensor,
                        key_value_states: Tensor | None, cache, with_keys: bool, **kwargs):
    """Return ``(keys, values, past_length)`` of an attention sublayer, through the cache.

    Keys and values are ``[B, H, S, Dh]``. Without `with_keys` the values stand in for the
    keys, which a cache layer needs to count the tokens seen.
    """
    layer_idx = attention.layer_idx
    past = cache.get_seq_length(layer_idx) if cache is not None else 0
    is_cross = key_value_states is not None
    layer_cache, filled = cache, False
    if isinstance(cache, EncoderDecoderCache):
        filled = is_cross and bool(cache.is_updated.get(layer_idx))
        layer_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
    if filled:
        layer = layer_cache.layers[layer_idx]
        return layer.keys, layer.values, past

    source = key_value_states if is_cross else hidden_states
    shape = (*source.shape[:-1], -1, attention.key_value_proj_dim)
    values = attention.v(source).view(shape).transpose(1, 2)  # [B, H, S, Dh]
    keys = attention.k(source).view(shape).transpose(1, 2) if with_keys else values
    if cache is not None:
        keys, values = layer_cache.update(keys, values, layer_idx, kwargs=kwargs)
        if is_cross and isinstance(cache, EncoderDecoderCache):
            cache.is_updated[layer_idx] = True
    return keys, values, past


def group_similar_layers(report, threshold: float,
                         kinds: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """Group consecutive attention layers whose maps match the group's first above `threshold`.

    `report` is a :class:`~graphix.compression.similarity.SimilarityReport`; `kinds` are the
    ``(stack, kind)`` pairs to group (default: every attention map in the report). Returns
    group names such as ``decoder.self_attention.1-3``; a threshold above 1 returns none.
    """
    groups = []
    for key, matrix in report.attention_similarity.items():
        stack, kind = key.split(".")
        if kinds is not None and (stack, kind) not in kinds:
            continue
        size = len(matrix)
        first = 0
        while first < size:
            last = first
            while (last + 1 < size and not math.isnan(matrix[first][last + 1])
                   and matrix[first][last + 1] >= threshold):
                last += 1
            if last > first and not math.isnan(matrix[first][first]):
                groups.append(f"{stack}.{kind}.{first}-{last}")
            first = last + 1
    return groups


def share_attention(model, groups: Sequence[str]):
    """Make each group's later layers reuse its first layer's probabilities, in place.

    Raises :class:`InputError` when a group overlaps another one or names a dropped sublayer.
    """
    parsed = [SharedGroup.parse(name) for name in groups]
    present = {(s.stack, s.kind, s.index)
               for s in present_sublayers(model, ("self_attention", "cross_attention"))}
    taken = set()
    for name in model.config.shared_attention or []:
        group = SharedGroup.parse(name)
        taken.update((group.stack, group.kind, i) for i in group.indices)
    for group in parsed:
        members = {(group.stack, group.kind, i) for i in group.indices}
        if not members <= present:
            raise InputError(f"cannot share {group}: some of its sublayers are dropped")
        if members & taken:
            raise InputError(f"cannot share {group}: it overlaps another shared group")
        taken |= members
    model.config.shared_attention = [*(model.config.shared_attention or []), *map(str, parsed)]
    apply_compression(model)
    logger.info("sharing attention in %s", ", ".join(map(str, parsed)) or "no group")
    return model
