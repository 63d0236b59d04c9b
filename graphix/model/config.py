"""GraphixT5Config: a T5 configuration plus the settings of the graph sublayers."""

from __future__ import annotations

import re
from dataclasses import field

from transformers import T5Config

from graphix.errors import ConfigError

# The Graphix relation vocabulary has 25 directed relation types.
DEFAULT_NUM_RELATIONS = 25

# "encoder.block.3", "decoder.cross_attention.0": one sublayer of one stack.
DROPPED_SUBLAYER = re.compile(r"(encoder|decoder)\.(block|self_attention|cross_attention|mlp)\.(\d+)")
# "encoder.self_attention.1-3": a run of consecutive attention sublayers of one stack.
SHARED_ATTENTION_GROUP = re.compile(r"(encoder|decoder)\.(self_attention|cross_attention)\.(\d+)-(\d+)")


class GraphixT5Config(T5Config):
    """T5's configuration plus the graph sublayer settings.

    Every field of ``transformers.T5Config`` keeps its meaning. A plain T5 ``config.json``
    loads into this class and gets the graph defaults below.
    """

    model_type = "graphix_t5"

    use_graph: bool = field(
        default=True,
        metadata={
            "help": "Run the graph sublayers. False skips them, so the model computes exactly "
            "what plain T5 computes with the same weights; their parameters stay in the model."
        },
    )
    graph_layer_indices: list[int] | None = field(
        default=None,
        metadata={
            "help": "Encoder blocks (0-based) followed by a graph sublayer. None puts one after "
            "every encoder block; an empty list builds none."
        },
    )
    graph_num_heads: int = field(
        default=4,
        metadata={"help": "Attention heads of each graph sublayer."},
    )
    graph_head_dim: int = field(
        default=32,
        metadata={
            "help": "Width of each graph attention head and of the relation embeddings. The "
            "sublayer projects node states from d_model to graph_num_heads * graph_head_dim."
        },
    )
    num_relations: int = field(
        default=DEFAULT_NUM_RELATIONS,
        metadata={"help": "Number of relation types; edge types are ids 0..num_relations-1."},
    )
    decoder_start_token_id: int | None = field(
        default=0,
        metadata={"help": "First decoder input id; T5 starts decoding from the pad token, id 0."},
    )
    graph_dropout_rate: float | None = field(
        default=None,
        metadata={
            "help": "Dropout on the output of each graph sublayer. "
            "None uses dropout_rate."
        },
    )

    dropped_sublayers: list[str] | None = field(
        default=None,
        metadata={
            "help": "Sublayers removed by layer drop, named stack.kind.index with stack encoder "
            "or decoder and kind block, self_attention, cross_attention (decoder) or mlp, for "
            "example encoder.block.3. A removed sublayer passes its input through unchanged. "
            "None or an empty list removes nothing. Graph sublayers are removed through "
            "graph_layer_indices."
        },
    )
    shared_attention: list[str] | None = field(
        default=None,
        metadata={
            "help": "Groups of consecutive attention sublayers that share attention "
            "probabilities, named stack.kind.first-last, for example encoder.self_attention.1-3. "
            "Every sublayer of a group after the first reuses the first one's probabilities and "
            "has no query or key projection. None or an empty list shares nothing."
        },
    )

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.graph_num_heads < 1:
            raise ConfigError(f"graph_num_heads must be at least 1, got {self.graph_num_heads}")
        if self.graph_head_dim < 1:
            raise ConfigError(f"graph_head_dim must be at least 1, got {self.graph_head_dim}")
        if self.num_relations < 1:
            raise ConfigError(f"num_relations must be at least 1, got {self.num_relations}")
        if self.graph_dropout_rate is not None and not 0.0 <= self.graph_dropout_rate < 1.0:
            raise ConfigError(
                f"graph_dropout_rate must be in [0, 1) or None, got {self.graph_dropout_rate}"
            )
        invalid = [i for i in self.graph_sublayer_indices() if not 0 <= i < self.num_layers]
        if invalid:
            raise ConfigError(
                f"graph_layer_indices {invalid} are outside the {self.num_layers} encoder blocks; "
                f"use indices 0..{self.num_layers - 1}"
            )

        self._validate_compression()

    def _validate_compression(self) -> None:
        layers = {"encoder": self.num_layers, "decoder": self.num_decoder_layers}
        for name in self.dropped_sublayers or []:
            match = DROPPED_SUBLAYER.fullmatch(name)
            if match is None or (match[1] == "encoder" and match[2] == "cross_attention"):
                raise ConfigError(
                    f"dropped_sublayers entry {name!r} is not stack.kind.index, with stack encoder "
                    "or decoder and kind block, self_attention, cross_attention (decoder) or mlp"
                )
            if int(match[3]) >= layers[match[1]]:
                raise ConfigError(f"dropped_sublayers entry {name!r}: the {match[1]} has "
                                  f"{layers[match[1]]} blocks")
        for name in self.shared_attention or []:
            match = SHARED_ATTENTION_GROUP.fullmatch(name)
            if match is None or (match[1] == "encoder" and match[2] == "cross_attention"):
                raise ConfigError(
                    f"shared_attention entry {name!r} is not stack.kind.first-last, with stack "
                    "encoder or decoder and kind self_attention or cross_attention (decoder)"
                )
            first, last = int(match[3]), int(match[4])
            if not first < last < layers[match[1]]:
                raise ConfigError(f"shared_attention entry {name!r} needs first < last < "
                                  f"{layers[match[1]]}")

    def graph_sublayer_indices(self) -> list[int]:
        """Return the sorted encoder block indices that get a graph sublayer."""
        if self.graph_layer_indices is None:
            return list(range(self.num_layers))
        return sorted(set(self.graph_layer_indices))

    @property
    def effective_graph_dropout_rate(self) -> float:
        """Dropout rate of the graph sublayers."""
        if self.graph_dropout_rate is None:
            return self.dropout_rate
        return self.graph_dropout_rate
