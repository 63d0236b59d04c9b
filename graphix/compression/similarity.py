"""How much each sublayer changes its input, and how alike the attention maps of layers are.

:func:`measure_similarity` runs the model (teacher-forced, no gradients) over calibration
batches with forward hooks on every sublayer present:

- sublayer similarity: the cosine similarity between the hidden states a sublayer receives and
  those it returns (residual included), averaged over the real tokens of its stack (encoder
  tokens by ``attention_mask``, decoder tokens by ``labels != -100``). Near 1, the sublayer
  changes little and is a candidate to drop.
- attention similarity: for each kind of attention (encoder self, decoder self, decoder
  cross) and each pair of layers ``(i, j)``, the cosine similarity between their attention
  distributions of the same head and query, averaged over heads and real query tokens.

Attention probabilities exist only in the explicit ("eager") attention, so the model runs with
it during the measurement and returns to its own implementation afterwards.

Shapes: B batch, T query tokens, S key tokens, H heads, D model width, L layers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional

from graphix.compression.structure import (
    ATTENTION_KINDS,
    STACKS,
    SUBLAYER_KINDS,
    Sublayer,
    attention_module,
    present_sublayers,
    sublayer_module,
)

logger = logging.getLogger(__name__)


@dataclass
class SimilarityReport:
    """Input-output similarity per sublayer and attention-map similarity per pair of layers."""

    sublayer_similarity: dict[str, float]
    """Sublayer name (``encoder.mlp.2``) to its mean input-output cosine similarity."""
    attention_similarity: dict[str, list[list[float]]] = field(default_factory=dict)
    """``stack.kind`` (``decoder.cross_attention``) to an ``[L, L]`` matrix; NaN where a layer
    has no attention of that kind."""
    examples: int = 0

    def most_redundant(self, kinds: Sequence[str], stacks: Sequence[str]) -> list[str]:
        """Names of the sublayers of `kinds` in `stacks`, highest similarity first."""
        chosen = [(score, name) for name, score in self.sublayer_similarity.items()
                  if Sublayer.parse(name).kind in kinds and Sublayer.parse(name).stack in stacks]
        return [name for _, name in sorted(chosen, key=lambda pair: (-pair[0], pair[1]))]

    def to_dict(self) -> dict:
        return {"examples": self.examples, "sublayer_similarity": self.sublayer_similarity,
                "attention_similarity": {key: [[_json_float(v) for v in row] for row in matrix]
                                         for key, matrix in self.attention_similarity.items()}}

    def table(self) -> str:
        """A plain-text table: one row per block, one column per sublayer kind."""
        lines = []
        for stack in STACKS:
            kinds = [k for k in SUBLAYER_KINDS
                     if any(n.startswith(f"{stack}.{k}.") for n in self.sublayer_similarity)]
            if not kinds:
                continue
            blocks = sorted({Sublayer.parse(n).index for n in self.sublayer_similarity
                             if n.startswith(f"{stack}.")})
            lines.append(f"{stack:<8}" + "".join(f"{kind:>17}" for kind in kinds))
            for index in blocks:
                cells = [self.sublayer_similarity.get(f"{stack}.{kind}.{index}") for kind in kinds]
                lines.append(f"  {index:<6}" + "".join(
                    f"{'-' if c is None else f'{c:.4f}':>17}" for c in cells))
        return "\n".join(lines)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


class _Recorder:
    """Forward hooks that accumulate the similarities of one measurement."""

    def __init__(self, model) -> None:
        self.model = model
        self.token_masks: dict[str, Tensor] = {}
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        self.maps: dict[str, dict[int, Tensor]] = {}
        self.layers = {stack: len(getattr(model, stack).block) for stack in STACKS}
        self.pair_sums = {}
        self.pair_counts = {}
        self.handles = []

    def attach(self) -> None:
        for sublayer in present_sublayers(self.model):
            module = sublayer_module(self.model, sublayer)
            self.handles.append(module.register_forward_hook(
                self._sublayer_hook(sublayer), with_kwargs=True))
            if sublayer.kind in ATTENTION_KINDS:
                attention = attention_module(self.model, sublayer.stack, sublayer.kind,
                                             sublayer.index)
                self.handles.append(attention.register_forward_hook(self._attention_hook(sublayer)))
        for stack in STACKS:
            for kind in ATTENTION_KINDS:
                if stack == "encoder" and kind == "cross_attention":
                    continue
                size = self.layers[stack]
                self.pair_sums[f"{stack}.{kind}"] = torch.zeros(size, size, dtype=torch.float64)
                self.pair_counts[f"{stack}.{kind}"] = torch.zeros(size, size, dtype=torch.float64)

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _sublayer_hook(self, sublayer: Sublayer):
        name = str(sublayer)

        def hook(module, args, kwargs, output):
            inputs = args[0] if args else kwargs["hidden_states"]
            outputs = output[0] if isinstance(output, tuple) else output
            mask = self.token_masks[sublayer.stack].to(torch.float64)  # [B, T]
            cosine = functional.cosine_similarity(inputs.double(), outputs.double(), dim=-1)
            self.sums[name] = self.sums.get(name, 0.0) + float((cosine * mask).sum())
            self.counts[name] = self.counts.get(name, 0.0) + float(mask.sum())

        return hook

    def _attention_hook(self, sublayer: Sublayer):
        key = f"{sublayer.stack}.{sublayer.kind}"

        def hook(module, args, output):
            probabilities = output[2]
            if probabilities is not None:
                self.maps.setdefault(key, {})[sublayer.index] = probabilities.detach()

        return hook

    def finish_batch(self) -> None:
        """Compare the attention maps of this batch pairwise, then forget them."""
        for key, maps in self.maps.items():
            stack = key.split(".")[0]
            mask = self.token_masks[stack].to(torch.float64)  # [B, T]
            for i, first in maps.items():
                unit_first = functional.normalize(first.double(), dim=-1)  # [B, H, T, S]
                for j, second in maps.items():
                    if j < i:
                        continue
                    unit_second = functional.normalize(second.double(), dim=-1)
                    cosine = (unit_first * unit_second).sum(-1).mean(1)  # [B, T]
                    total = float((cosine * mask).sum())
                    for a, b in ((i, j), (j, i)):
                        self.pair_sums[key][a, b] += total
                        self.pair_counts[key][a, b] += float(mask.sum())
        self.maps.clear()

    def report(self, examples: int) -> SimilarityReport:
        scores = {name: self.sums[name] / max(self.counts[name], 1.0) for name in self.sums}
        ordered = {str(s): scores[str(s)] for s in sorted(map(Sublayer.parse, scores),
                                                           key=_forward_order)}
        attention = {}
        for key, sums in self.pair_sums.items():
            counts = self.pair_counts[key]
            matrix = torch.where(counts > 0, sums / counts.clamp(min=1), torch.nan)
            if bool(torch.isfinite(matrix).any()):
                attention[key] = matrix.tolist()
        return SimilarityReport(ordered, attention, examples)


def _forward_order(sublayer: Sublayer) -> tuple:
    return (STACKS.index(sublayer.stack), sublayer.index, SUBLAYER_KINDS.index(sublayer.kind))


@torch.no_grad()
def measure_similarity(model, batches: Sequence[dict]) -> SimilarityReport:
    """Measure sublayer and attention-map similarities of `model` on calibration batches.

    Each batch is a dict of model inputs with ``labels`` (as built for training). The model
    runs in eval mode; its training mode and attention implementation are restored after.
    """
    was_training = model.training
    implementation = model.config._attn_implementation
    model.eval()
    model.set_attn_implementation("eager")
    recorder = _Recorder(model)
    recorder.attach()
    examples = 0
    try:
        for batch in batches:
            recorder.token_masks = {
                "encoder": batch["attention_mask"].bool(),
                "decoder": batch.get("decoder_attention_mask", batch["labels"] != -100).bool(),
            }
            model(**batch)
            recorder.finish_batch()
            examples += batch["input_ids"].shape[0]
    finally:
        recorder.detach()
        model.set_attn_implementation(implementation)
        model.train(was_training)
    logger.info("measured similarities on %d examples", examples)
    return recorder.report(examples)


def save_heatmaps(report: SimilarityReport, folder) -> list:
    """Plot the sublayer similarities and every attention-similarity matrix as PNG files.

    Returns the paths written: ``sublayers.png`` and ``attention_<stack>_<kind>.png``.
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    # Sublayers: one panel per stack, blocks down, sublayer kinds across.
    figure, axes = plt.subplots(1, len(STACKS), figsize=(10, 4), squeeze=False)
    for axis, stack in zip(axes[0], STACKS):
        names = [Sublayer.parse(n) for n in report.sublayer_similarity if n.startswith(stack)]
        kinds = [k for k in SUBLAYER_KINDS if any(s.kind == k for s in names)]
        blocks = sorted({s.index for s in names})
        grid = [[report.sublayer_similarity.get(f"{stack}.{k}.{b}", math.nan) for k in kinds]
                for b in blocks]
        if grid:
            image = axis.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            figure.colorbar(image, ax=axis)
        axis.set(title=f"{stack}: input-output cosine", xticks=range(len(kinds)),
                 yticks=range(len(blocks)), ylabel="block")
        axis.set_xticklabels(kinds, rotation=30, ha="right")
        axis.set_yticklabels(blocks)
    figure.tight_layout()
    written.append(folder / "sublayers.png")
    figure.savefig(written[-1], dpi=100)
    plt.close(figure)

    for key, matrix in report.attention_similarity.items():
        figure, axis = plt.subplots(figsize=(5, 4))
        image = axis.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        figure.colorbar(image, ax=axis)
        axis.set(title=f"{key}: attention-map cosine", xlabel="layer", ylabel="layer",
                 xticks=range(len(matrix)), yticks=range(len(matrix)))
        figure.tight_layout()
        written.append(folder / f"attention_{key.replace('.', '_')}.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    return written
