"""Timing of constrained against plain beam search on the same model and inputs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from graphix.decoding.logits import SchemaConstrainedLogitsProcessor
from graphix.decoding.prefix_checker import PrefixChecker
from graphix.schema import Schema


@dataclass(frozen=True)
class GenerationTiming:
    """Median seconds per `generate` call, plain and constrained, over `repeats` runs each.

    The two modes may stop after different numbers of decoding steps (constraints end
    garbage early, or keep a string open), so the time per step is reported as well.
    """

    plain_s: float
    constrained_s: float
    plain_steps: int
    constrained_steps: int
    repeats: int
    dead_ends: int
    """Sequences the constraints ended by force in the last constrained run."""
    processor_s: float
    """Seconds the logits processor took in the last constrained run."""

    @property
    def ratio(self) -> float:
        """Constrained over plain time per `generate` call."""
        return self.constrained_s / self.plain_s

    @property
    def step_ratio(self) -> float:
        """Constrained over plain time per decoding step."""
        return (self.constrained_s / self.constrained_steps) / (self.plain_s / self.plain_steps)


def time_constrained_generation(model, tokenizer, inputs: Mapping, schemas: Sequence[Schema],
                                *, num_beams: int = 4, max_new_tokens: int = 64, top_k: int = 8,
                                repeats: int = 5) -> GenerationTiming:
    """Time ``model.generate`` with and without schema constraints, runs interleaved.

    `inputs` contains the encoder inputs (``input_ids``, ``attention_mask``) of one batch
    and `schemas` one schema per example. Runs alternate between the two modes so that
    load from other processes affects both alike; each mode also runs once untimed first.
    """
    import torch
    from transformers import LogitsProcessorList

    checkers = [PrefixChecker(schema) for schema in schemas]
    settings = dict(num_beams=num_beams, max_new_tokens=max_new_tokens, do_sample=False)
    plain, constrained = [], []
    processor = None
    with torch.inference_mode():
        for run in range(repeats + 1):
            start = time.perf_counter()
            output = model.generate(**inputs, **settings)
            plain_s = time.perf_counter() - start
            plain_steps = output.shape[1] - 1

            # Checkers are reused across runs, as a server reuses them across questions.
            processor = SchemaConstrainedLogitsProcessor(tokenizer, checkers, top_k=top_k)
            start = time.perf_counter()
            model.generate(**inputs, **settings, logits_processor=LogitsProcessorList([processor]))
            constrained_s = time.perf_counter() - start
            if run:
                plain.append(plain_s)
                constrained.append(constrained_s)
    return GenerationTiming(statistics.median(plain), statistics.median(constrained),
                            plain_steps, processor.calls, repeats, len(processor.dead_ends),
                            processor.elapsed_s)
