"""Batched SQL generation from preprocessed records.

Training (dev evaluation), ``graphix predict`` and the Python API all decode through
`generate_sql`, so they produce the same SQL for the same model and input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from graphix.graph import collate
from graphix.serialization import postprocess_sql

logger = logging.getLogger(__name__)

MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "graph_edge_index", "graph_edge_type",
                    "graph_node_batch", "graph_node_spans")


@dataclass(frozen=True)
class Beam:
    """One finished hypothesis: its SQL, the decoded text and its log-probability score."""

    sql: str
    text: str
    score: float


def model_inputs(records: Sequence[dict], use_graph: bool = True) -> dict[str, torch.Tensor]:
    """Collate records into the tensors the model takes (labels left out)."""
    features = [
        {"input_ids": r["input_ids"], "node_spans": r["node_spans"], "edge_index": r["edge_index"],
         "edge_type": r["edge_type"]}
        for r in records
    ]
    batch = collate(features)
    keys = MODEL_INPUT_KEYS if use_graph else MODEL_INPUT_KEYS[:2]
    return {key: batch[key] for key in keys}


@torch.no_grad()
def generate_sql(model, tokenizer, records: Sequence[dict], *, num_beams: int = 1,
                 max_new_tokens: int = 256, batch_size: int = 16,
                 logits_processor_factory: Callable | None = None) -> list[list[Beam]]:
    """Decode every record; return its beams, best first (one beam for greedy search).

    `logits_processor_factory(positions)` may return a list of logits processors for the
    batch of ``records[positions]`` (a slice), for example schema-constrained decoding.
    """
    model.eval()
    use_graph = bool(getattr(model.config, "use_graph", False))
    device = next(model.parameters()).device
    results: list[list[Beam]] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        inputs = {k: v.to(device) for k, v in model_inputs(chunk, use_graph).items()}
        extra = {}
        if logits_processor_factory is not None:
            positions = slice(start, start + len(chunk))
            extra["logits_processor"] = logits_processor_factory(positions)
        output = model.generate(
            **inputs,
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            return_dict_in_generate=True,
            output_scores=True,
            **extra,
        )
        texts = tokenizer.batch_decode(output.sequences, skip_special_tokens=True)
        scores = _sequence_scores(model, output, num_beams)
        for i in range(len(chunk)):
            beams = []
            for j in range(num_beams):
                text = texts[i * num_beams + j]
                beams.append(Beam(postprocess_sql(text), text, scores[i * num_beams + j]))
            results.append(beams)
    return results


def _sequence_scores(model, output, num_beams: int) -> list[float]:
    """Return one total log-probability per returned sequence."""
    if num_beams > 1 and getattr(output, "sequences_scores", None) is not None:
        return output.sequences_scores.float().tolist()
    transition = model.compute_transition_scores(output.sequences, output.scores,
                                                 normalize_logits=True)
    transition = torch.where(torch.isfinite(transition), transition, torch.zeros_like(transition))
    return transition.sum(dim=1).float().tolist()
