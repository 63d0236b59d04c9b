"""Names of a Graphix model's sublayers, and the rebuild of a compressed model from its config.

A sublayer is named ``stack.kind.index``: stack ``encoder`` or ``decoder``, index the block,
and kind one of

- ``block``: the whole block, with its graph sublayer (``{stack}.block[i]``);
- ``self_attention``: ``block.layer[0]``;
- ``cross_attention``: ``block.layer[1]`` (decoder only);
- ``mlp``: ``block.layer[-1]``;
- ``graph``: ``block.graph_layer`` (encoder only).

:func:`apply_compression` turns a model built with every sublayer into the structure its
config describes (``dropped_sublayers``, ``graph_layer_indices``, ``shared_attention``). The
model calls it while it is built, so ``from_pretrained`` rebuilds a compressed checkpoint; the
drop and share functions call it again after they change the config.

T5 keeps the relative position bias table in the self-attention of block 0 of each stack, and
later blocks reuse the bias it computes. After a change, the table moves to the first
self-attention sublayer left in the stack, so the bias stays the same. Decoder attention
sublayers that remain are numbered again from 0, because the generation cache counts the
tokens seen from its layer 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from graphix.errors import ConfigError, InputError

STACKS = ("encoder", "decoder")
SUBLAYER_KINDS = ("block", "self_attention", "cross_attention", "mlp", "graph")
ATTENTION_KINDS = ("self_attention", "cross_attention")
# Command-line kinds and the sublayer kinds each covers.
KIND_GROUPS = {
    "attention": ATTENTION_KINDS,
    "mlp": ("mlp",),
    "block": ("block",),
    "graph": ("graph",),
}
_ATTENTION_ATTRIBUTE = {"self_attention": "SelfAttention", "cross_attention": "EncDecAttention"}


@dataclass(frozen=True, order=True)
class Sublayer:
    """One sublayer of one stack, for example ``Sublayer("decoder", "mlp", 2)``."""

    stack: str
    kind: str
    index: int

    @classmethod
    def parse(cls, name: str) -> Sublayer:
        parts = name.split(".")
        if (len(parts) != 3 or parts[0] not in STACKS or parts[1] not in SUBLAYER_KINDS
                or not parts[2].isdigit()):
            raise InputError(f"sublayer name {name!r} is not stack.kind.index, with stack "
                             f"encoder or decoder and kind one of {', '.join(SUBLAYER_KINDS)}")
        return cls(parts[0], parts[1], int(parts[2]))

    def __str__(self) -> str:
        return f"{self.stack}.{self.kind}.{self.index}"


@dataclass(frozen=True)
class SharedGroup:
    """Consecutive attention sublayers ``first..last`` of one kind that share probabilities."""

    stack: str
    kind: str
    first: int
    last: int

    @classmethod
    def parse(cls, name: str) -> SharedGroup:
        parts = name.split(".")
        bounds = parts[2].split("-") if len(parts) == 3 else []
        if (len(parts) != 3 or parts[0] not in STACKS or parts[1] not in ATTENTION_KINDS
                or len(bounds) != 2 or not all(b.isdigit() for b in bounds)
                or int(bounds[0]) >= int(bounds[1])):
            raise InputError(f"shared group {name!r} is not stack.kind.first-last with first < "
                             "last and kind self_attention or cross_attention")
        return cls(parts[0], parts[1], int(bounds[0]), int(bounds[1]))

    @property
    def indices(self) -> range:
        return range(self.first, self.last + 1)

    def __str__(self) -> str:
        return f"{self.stack}.{self.kind}.{self.first}-{self.last}"


def sublayer_module(model, sublayer: Sublayer) -> nn.Module | None:
    """Return the module of `sublayer`, or None when the model does not have it (any more)."""
    from graphix.compression.layer_drop import SkippedAttention, SkippedBlock, SkippedFeedForward

    stack = getattr(model, sublayer.stack)
    if sublayer.index >= len(stack.block):
        return None
    block = stack.block[sublayer.index]
    if isinstance(block, SkippedBlock):
        return None
    if sublayer.kind == "block":
        return block
    if sublayer.kind == "graph":
        return getattr(block, "graph_layer", None) if model.config.use_graph else None
    if sublayer.kind == "cross_attention" and sublayer.stack == "encoder":
        return None
    position = {"self_attention": 0, "cross_attention": 1, "mlp": -1}[sublayer.kind]
    module = block.layer[position]
    if isinstance(module, (SkippedAttention, SkippedFeedForward)):
        return None
    return module


def attention_module(model, stack: str, kind: str, index: int) -> nn.Module | None:
    """Return the attention module (``T5Attention`` or a shared one) of a sublayer, if present."""
    layer = sublayer_module(model, Sublayer(stack, kind, index))
    return None if layer is None else getattr(layer, _ATTENTION_ATTRIBUTE[kind])


def present_sublayers(model, kinds: tuple[str, ...] = SUBLAYER_KINDS,
                      stacks: tuple[str, ...] = STACKS) -> list[Sublayer]:
    """List the sublayers of the given kinds that the model has, in forward order per stack."""
    found = []
    for stack in stacks:
        for index in range(len(getattr(model, stack).block)):
            for kind in SUBLAYER_KINDS:
                sublayer = Sublayer(stack, kind, index)
                if kind in kinds and sublayer_module(model, sublayer) is not None:
                    found.append(sublayer)
    return found


def apply_compression(model) -> None:
    """Bring the model's modules in line with its config's compression fields, in place.

    Sublayers already removed or shared are left as they are, so the function can run again
    after each change.
    """
    config = model.config
    dropped = [Sublayer.parse(name) for name in config.dropped_sublayers or []]
    groups = [SharedGroup.parse(name) for name in config.shared_attention or []]
    graph_blocks = set(config.graph_sublayer_indices())
    for stack_name in STACKS:
        stack = getattr(model, stack_name)
        bias_table = _take_relative_bias(stack)
        for sublayer in dropped:
            if sublayer.stack == stack_name:
                _remove(stack, sublayer)
        if stack_name == "encoder":
            for index, block in enumerate(stack.block):
                if index not in graph_blocks and getattr(block, "graph_layer", None) is not None:
                    block.graph_layer = None
        for group in groups:
            if group.stack == stack_name:
                _share(model, group)
        _place_relative_bias(stack_name, stack, bias_table)
        _number_cache_layers(stack)


def _remove(stack, sublayer: Sublayer) -> None:
    from graphix.compression.layer_drop import SkippedAttention, SkippedBlock, SkippedFeedForward

    block = stack.block[sublayer.index]
    if isinstance(block, SkippedBlock):
        return
    if sublayer.kind == "block":
        stack.block[sublayer.index] = SkippedBlock()
    elif sublayer.kind == "mlp":
        block.layer[-1] = SkippedFeedForward()
    else:
        block.layer[0 if sublayer.kind == "self_attention" else 1] = SkippedAttention()


def _share(model, group: SharedGroup) -> None:
    from graphix.compression.attention_sharing import (
        LeadingAttention,
        ProbabilitySlot,
        ReusingAttention,
    )

    layers = [sublayer_module(model, Sublayer(group.stack, group.kind, i)) for i in group.indices]
    if any(layer is None for layer in layers):
        raise ConfigError(f"shared group {group} names a dropped sublayer")
    attribute = _ATTENTION_ATTRIBUTE[group.kind]
    if isinstance(getattr(layers[0], attribute), LeadingAttention):
        return
    slot = ProbabilitySlot()
    setattr(layers[0], attribute, LeadingAttention.from_attention(getattr(layers[0], attribute),
                                                                  slot))
    for position, layer in enumerate(layers[1:], start=2):
        follower = ReusingAttention.from_attention(getattr(layer, attribute), slot,
                                                   clears_slot=position == len(layers))
        setattr(layer, attribute, follower)


def _self_attentions(stack) -> list[nn.Module]:
    """The self-attention modules left in a stack, in block order."""
    from graphix.compression.layer_drop import SkippedAttention, SkippedBlock

    modules = []
    for block in stack.block:
        if isinstance(block, SkippedBlock) or isinstance(block.layer[0], SkippedAttention):
            continue
        modules.append(block.layer[0].SelfAttention)
    return modules


def _take_relative_bias(stack) -> nn.Embedding | None:
    """Detach the relative position bias table from whichever attention holds it."""
    for module in stack.modules():
        if getattr(module, "has_relative_attention_bias", False):
            table = module.relative_attention_bias
            del module.relative_attention_bias
            module.has_relative_attention_bias = False
            return table
    return None


def _place_relative_bias(stack_name: str, stack, table: nn.Embedding | None) -> None:
    if table is None:
        return
    attentions = _self_attentions(stack)
    if not attentions:
        raise ConfigError(f"the {stack_name} has no self-attention left to hold T5's relative "
                          "position bias; keep at least one self-attention sublayer")
    attentions[0].relative_attention_bias = table
    attentions[0].has_relative_attention_bias = True


def _number_cache_layers(stack) -> None:
    from graphix.compression.layer_drop import SkippedAttention, SkippedBlock

    counters = {0: 0, 1: 0}
    for block in stack.block:
        if isinstance(block, SkippedBlock):
            continue
        for position, attribute in ((0, "SelfAttention"), (1, "EncDecAttention")):
            if position >= len(block.layer) - 1 or isinstance(block.layer[position],
                                                              SkippedAttention):
                continue
            getattr(block.layer[position], attribute).layer_idx = counters[position]
            counters[position] += 1
