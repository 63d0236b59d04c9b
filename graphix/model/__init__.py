"""Graphix-T5: T5 with relational graph attention sublayers in the encoder."""

from graphix.model.config import GraphixT5Config
from graphix.model.modeling import GraphixT5Block, GraphixT5ForConditionalGeneration
from graphix.model.rgat import BatchedGraph, RelationalGraphAttention, RelationEmbedding

__all__ = [
    "BatchedGraph",
    "GraphixT5Block",
    "GraphixT5Config",
    "GraphixT5ForConditionalGeneration",
    "RelationEmbedding",
    "RelationalGraphAttention",
]
