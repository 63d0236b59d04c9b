"""Layer drop: remove the sublayers whose output is most similar to their input.

A removed sublayer is replaced by a parameter-free stand-in that passes its input through, so
the remaining parameters keep their names (``encoder.block.2.layer.1.DenseReluDense.wi.weight``)
and the config field ``dropped_sublayers`` is enough to rebuild the structure on load. Graph
sublayers are removed through ``graph_layer_indices``, which the model already reads.

Scores come from :func:`graphix.compression.similarity.measure_similarity`: the cosine
similarity between a sublayer's input and output, averaged over tokens. One shot drops the
``count`` highest-scoring sublayers at once; iterative drops one, measures again, and repeats.

Shapes: B batch, T tokens, D model width.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

from graphix.compression.structure import (
    KIND_GROUPS,
    STACKS,
    Sublayer,
    apply_compression,
    present_sublayers,
)
from graphix.errors import ConfigError, InputError

logger = logging.getLogger(__name__)


class SkippedBlock(nn.Module):
    """Stands in for a removed T5 block: hidden states and position biases pass through."""

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        position_bias: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        encoder_decoder_position_bias: Tensor | None = None,
        **kwargs,
    ):
        return hidden_states, position_bias, encoder_decoder_position_bias


class SkippedAttention(nn.Module):
    """Stands in for a removed self- or cross-attention sublayer of a T5 block."""

    def forward(self, hidden_states: Tensor, *args, position_bias: Tensor | None = None, **kwargs):
        # The incoming bias goes on to the next block unchanged: it is None before the first
        # attention sublayer of the stack, which then computes it.
        return hidden_states, position_bias, None


class SkippedFeedForward(nn.Module):
    """Stands in for a removed MLP sublayer of a T5 block."""

    def forward(self, hidden_states: Tensor) -> Tensor:
        return hidden_states


@dataclass
class DropResult:
    """Result of :func:`drop_by_similarity`: the removed sublayers and their scores."""

    dropped: list[str]
    scores: list[float]
    reports: list = field(default_factory=list)
    """One :class:`~graphix.compression.similarity.SimilarityReport` per measurement."""


def expand_kind(kind: str) -> tuple[str, ...]:
    """Map a command-line kind (attention, mlp, block, graph) to sublayer kinds."""
    if kind not in KIND_GROUPS:
        raise InputError(f"unknown sublayer kind {kind!r}; choose one of {', '.join(KIND_GROUPS)}")
    return KIND_GROUPS[kind]


def expand_stack(stack: str) -> tuple[str, ...]:
    """Map encoder, decoder or both to stack names."""
    if stack == "both":
        return STACKS
    if stack not in STACKS:
        raise InputError(f"unknown stack {stack!r}; choose encoder, decoder or both")
    return (stack,)


def drop_sublayers(model, names: Sequence[str]):
    """Remove the named sublayers from `model` in place and record them in its config.

    Raises :class:`InputError` for a name that is not a present sublayer and
    :class:`ConfigError` when the drop would leave a stack without self-attention, which
    T5 needs to hold its relative position bias.
    """
    sublayers = [Sublayer.parse(name) for name in names]
    present = set(present_sublayers(model, ("block", "self_attention", "cross_attention",
                                            "mlp", "graph")))
    missing = [str(s) for s in sublayers if s not in present]
    if missing:
        raise InputError(f"cannot drop {', '.join(missing)}: not present in the model "
                         "(already dropped, shared, or out of range)")
    shared = _shared_members(model.config)
    clash = [str(s) for s in sublayers if _attention_slot(s) & shared]
    if clash:
        raise InputError(f"cannot drop {', '.join(clash)}: they share attention probabilities; "
                         "drop before sharing")

    config = model.config
    dropped = list(config.dropped_sublayers or [])
    graph_indices = config.graph_sublayer_indices()
    for sublayer in sublayers:
        if sublayer.kind == "graph":
            graph_indices.remove(sublayer.index)
        else:
            dropped.append(str(sublayer))
    _check_self_attention_left(config, dropped)

    config.dropped_sublayers = dropped
    if any(sublayer.kind == "graph" for sublayer in sublayers):
        config.graph_layer_indices = graph_indices
    apply_compression(model)
    logger.info("dropped %s", ", ".join(names) or "nothing")
    return model


def drop_by_similarity(model, batches: Sequence[dict], kind: str, stack: str, count: int,
                       iterative: bool = False) -> DropResult:
    """Drop the `count` sublayers of `kind` in `stack` whose output is closest to their input.

    `batches` are model inputs with labels (calibration examples). With `iterative`, the
    scores are measured again after every single drop.
    """
    from graphix.compression.similarity import measure_similarity

    kinds, stacks = expand_kind(kind), expand_stack(stack)
    if count < 0:
        raise InputError(f"count must be at least 0, got {count}")
    result = DropResult(dropped=[], scores=[])
    while len(result.dropped) < count:
        report = measure_similarity(model, batches)
        result.reports.append(report)
        ranked = report.most_redundant(kinds, stacks)
        ranked = [name for name in ranked if not _would_empty_stack(model.config, name)]
        take = 1 if iterative else count - len(result.dropped)
        if len(ranked) < take:
            raise InputError(
                f"only {len(result.dropped) + len(ranked)} {kind} sublayers of the {stack} "
                f"stack can be dropped, asked for {count}"
            )
        chosen = ranked[:take]
        drop_sublayers(model, chosen)
        result.dropped.extend(chosen)
        result.scores.extend(report.sublayer_similarity[name] for name in chosen)
    return result


def _check_self_attention_left(config, dropped: list[str]) -> None:
    layers = {"encoder": config.num_layers, "decoder": config.num_decoder_layers}
    removed = set(dropped)
    for stack, count in layers.items():
        if all(f"{stack}.block.{i}" in removed or f"{stack}.self_attention.{i}" in removed
               for i in range(count)):
            raise ConfigError(
                f"dropping these sublayers leaves the {stack} without self-attention, which "
                "holds T5's relative position bias; keep at least one"
            )


def _would_empty_stack(config, name: str) -> bool:
    if Sublayer.parse(name).kind == "graph":
        return False
    try:
        _check_self_attention_left(config, [*(config.dropped_sublayers or []), name])
    except ConfigError:
        return True
    return False


def _shared_members(config) -> set[tuple[str, str, int]]:
    from graphix.compression.structure import SharedGroup

    members = set()
    for name in config.shared_attention or []:
        group = SharedGroup.parse(name)
        members.update((group.stack, group.kind, i) for i in group.indices)
    return members


def _attention_slot(sublayer: Sublayer) -> set[tuple[str, str, int]]:
    """Attention sublayers that dropping `sublayer` removes."""
    if sublayer.kind in ("self_attention", "cross_attention"):
        return {(sublayer.stack, sublayer.kind, sublayer.index)}
    if sublayer.kind == "block":
        return {(sublayer.stack, kind, sublayer.index)
                for kind in ("self_attention", "cross_attention")}
    return set()
