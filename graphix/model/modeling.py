"""GraphixT5ForConditionalGeneration: Hugging Face T5 with a graph sublayer after encoder blocks.

The model subclasses ``transformers.T5ForConditionalGeneration`` and swaps each encoder block
for a :class:`GraphixT5Block`, a ``T5Block`` subclass that runs the stock block and then, when
the block has one, its :class:`~graphix.model.rgat.RelationalGraphAttention` sublayer. T5's
parameters keep their names (``encoder.block.0.layer.0.SelfAttention.q.weight``, ...), so any
T5 checkpoint loads and only the graph parameters are new: ``encoder.block.{i}.graph_layer.*``
and the shared ``relation_embedding.{key,value}``.

The graph reaches the blocks as keyword arguments of the encoder call, which ``T5Stack``
passes on to every block. Without graph tensors, or with ``config.use_graph = False``, the
model computes exactly what ``T5ForConditionalGeneration`` computes with the same weights.

Graph inputs describe one disjoint graph over the batch (node ids index it):

- ``graph_edge_index`` ``[2, E]``: row 0 source node, row 1 target node.
- ``graph_edge_type`` ``[E]``: relation ids ``0..num_relations-1``.
- ``graph_node_batch`` ``[N]``: example index of each node, ascending.
- ``graph_node_spans`` ``[N, 2]``: start and end (exclusive) token positions of each node in
  its example's ``input_ids``.

Shapes: B batch, T tokens, N nodes, E edges, D model width.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from transformers import T5ForConditionalGeneration
from transformers.initialization import guard_torch_init_functions
from transformers.models.t5.modeling_t5 import T5Block

from graphix.errors import InputError
from graphix.model.config import GraphixT5Config
from graphix.model.rgat import BatchedGraph, RelationalGraphAttention, RelationEmbedding

logger = logging.getLogger(__name__)

GRAPH_INPUT_NAMES = ("graph_edge_index", "graph_edge_type", "graph_node_batch", "graph_node_spans")


class GraphixT5Block(T5Block):
    """A T5 encoder block, optionally followed by a relational graph attention sublayer."""

    def __init__(
        self,
        config: GraphixT5Config,
        has_relative_attention_bias: bool = False,
        layer_idx: int | None = None,
        with_graph_layer: bool = True,
    ) -> None:
        super().__init__(
            config, has_relative_attention_bias=has_relative_attention_bias, layer_idx=layer_idx
        )
        self.graph_layer = None
        if with_graph_layer:
            self.graph_layer = RelationalGraphAttention(
                d_model=config.d_model,
                num_heads=config.graph_num_heads,
                head_dim=config.graph_head_dim,
                dropout_rate=config.effective_graph_dropout_rate,
                layer_norm_epsilon=config.layer_norm_epsilon,
            )

    def forward(
        self,
        hidden_states: Tensor,
        *args,
        graph: BatchedGraph | None = None,
        relations: RelationEmbedding | None = None,
        **kwargs,
    ):
        hidden_states, self_attention_bias, cross_attention_bias = super().forward(
            hidden_states, *args, **kwargs
        )
        if self.graph_layer is not None and graph is not None:
            hidden_states = self.graph_layer(hidden_states, graph, relations)
        return hidden_states, self_attention_bias, cross_attention_bias


class GraphixT5ForConditionalGeneration(T5ForConditionalGeneration):
    """T5 for conditional generation with relational graph attention in the encoder.

    Example::

        config = GraphixT5Config(vocab_size=len(tokenizer), d_model=256, num_layers=4)
        model = GraphixT5ForConditionalGeneration(config)
        model = GraphixT5ForConditionalGeneration.from_pretrained("t5-small")  # new graph layers
        out = model(input_ids, attention_mask, labels=labels, graph_edge_index=..., ...)
        ids = model.generate(input_ids, attention_mask=mask, num_beams=4, graph_edge_index=...)
    """

    config_class = GraphixT5Config

    def __init__(self, config: GraphixT5Config) -> None:
        super().__init__(config)

        # Swap the stock encoder blocks for ones that can run a graph sublayer. The parent's
        # post_init has marked its modules initialized, so the second post_init below
        # initializes only the new blocks and the relation embeddings.
        graph_blocks = set(config.graph_sublayer_indices())
        encoder_config = self.encoder.config
        for index in range(config.num_layers):
            self.encoder.block[index] = GraphixT5Block(
                encoder_config,
                has_relative_attention_bias=index == 0,
                layer_idx=index,
                with_graph_layer=index in graph_blocks,
            )
        self.relation_embedding = RelationEmbedding(config.num_relations, config.graph_head_dim)

        # A compressed checkpoint records what layer drop and attention sharing changed; the
        # same structure is rebuilt here so that its weights load under their own names.
        if config.dropped_sublayers or config.shared_attention:
            from graphix.compression.structure import apply_compression

            apply_compression(self)
        self.post_init()

    @classmethod
    def is_custom_code(cls) -> bool:
        # transformers skips the init of parameter-free modules (such as T5Attention, which
        # scales q, k, v and o) in classes defined outside the library, unless they report
        # False here. Every init of this model goes through the guarded init functions that
        # leave loaded tensors alone, so T5's own rules apply unchanged.
        return False

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """Initialize T5's weights by T5's rules and the graph parameters by their own.

        ``T5Stack`` initializes the encoder with T5's ``_init_weights``, which does not know
        the graph sublayers, so they are reset here. Inside ``guard_torch_init_functions``
        tensors loaded from a checkpoint keep their values.
        """
        super().initialize_weights()
        with guard_torch_init_functions():
            for module in self.modules():
                if isinstance(module, (RelationalGraphAttention, RelationEmbedding)):
                    module.reset_parameters()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        encoder_outputs=None,
        cache=None,
        inputs_embeds: Tensor | None = None,
        decoder_inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        graph_edge_index: Tensor | None = None,
        graph_edge_type: Tensor | None = None,
        graph_node_batch: Tensor | None = None,
        graph_node_spans: Tensor | None = None,
        **kwargs,
    ):
        """Run T5's forward pass, with the graph sublayers when the graph tensors are given.

        Arguments are those of ``T5ForConditionalGeneration.forward`` plus the four graph
        tensors of the module docstring. The graph is used only when the encoder runs here,
        that is when ``encoder_outputs`` is None.
        """
        if encoder_outputs is None:
            encoder_outputs = self.encode(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                graph_edge_index=graph_edge_index,
                graph_edge_type=graph_edge_type,
                graph_node_batch=graph_node_batch,
                graph_node_spans=graph_node_spans,
                **kwargs,
            )
        return super().forward(
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            decoder_inputs_embeds=decoder_inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )

    def encode(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        graph_edge_index: Tensor | None = None,
        graph_edge_type: Tensor | None = None,
        graph_node_batch: Tensor | None = None,
        graph_node_spans: Tensor | None = None,
        **kwargs,
    ):
        """Run the encoder with its graph sublayers; returns T5's encoder output."""
        graph = self._build_graph(
            input_ids if input_ids is not None else inputs_embeds,
            graph_edge_index,
            graph_edge_type,
            graph_node_batch,
            graph_node_spans,
        )
        if graph is not None:
            kwargs = {**kwargs, "graph": graph, "relations": self.relation_embedding}
        return self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )

    def _build_graph(
        self,
        inputs: Tensor | None,
        edge_index: Tensor | None,
        edge_type: Tensor | None,
        node_batch: Tensor | None,
        node_spans: Tensor | None,
    ) -> BatchedGraph | None:
        graph_inputs = (edge_index, edge_type, node_batch, node_spans)
        provided = [
            name for name, tensor in zip(GRAPH_INPUT_NAMES, graph_inputs) if tensor is not None
        ]
        if not provided:
            return None
        if len(provided) != len(GRAPH_INPUT_NAMES):
            missing = sorted(set(GRAPH_INPUT_NAMES) - set(provided))
            raise InputError(f"graph inputs are incomplete: {', '.join(missing)} missing")
        if not self.config.use_graph or not self.config.graph_sublayer_indices():
            return None
        if inputs is None:
            raise InputError("graph inputs need input_ids or inputs_embeds to size the batch")
        return BatchedGraph.from_edges(
            edge_index,
            edge_type,
            node_batch,
            node_spans,
            batch_size=inputs.shape[0],
            num_tokens=inputs.shape[1],
            num_relations=self.config.num_relations,
        )

    @torch.no_grad()
    def generate(
        self,
        inputs: Tensor | None = None,
        graph_edge_index: Tensor | None = None,
        graph_edge_type: Tensor | None = None,
        graph_node_batch: Tensor | None = None,
        graph_node_spans: Tensor | None = None,
        **kwargs,
    ):
        """Generate as ``T5ForConditionalGeneration.generate`` does, with the graph in the encoder.

        The encoder runs here, once, before beam search expands the batch, so the graph tensors
        never go through the expansion. Other arguments pass through unchanged.
        """
        graph_inputs = (graph_edge_index, graph_edge_type, graph_node_batch, graph_node_spans)
        if any(tensor is not None for tensor in graph_inputs) and "encoder_outputs" not in kwargs:
            input_ids = inputs if inputs is not None else kwargs.get("input_ids")
            kwargs["encoder_outputs"] = self.encode(
                input_ids=input_ids,
                attention_mask=kwargs.get("attention_mask"),
                inputs_embeds=kwargs.get("inputs_embeds"),
                graph_edge_index=graph_edge_index,
                graph_edge_type=graph_edge_type,
                graph_node_batch=graph_node_batch,
                graph_node_spans=graph_node_spans,
            )
        return super().generate(inputs, **kwargs)
