"""Short training of a compressed model: distillation from its teacher, or plain fine-tuning.

The student's loss on a batch is

    kl_weight * T^2 * KL(teacher_T || student_T) + (1 - kl_weight) * cross_entropy
    + hidden_weight * (MSE(encoder states) + MSE(last decoder states))

where ``_T`` are the output distributions at temperature ``T`` over the target tokens (label
positions that are not -100), and the KL term is averaged over those tokens. Without a teacher
the loss is the cross-entropy alone, which fine-tunes a dropped model briefly.

Shapes: B batch, T target tokens, V vocabulary, D model width.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional

from graphix.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class DistillationConfig:
    """Settings of :func:`train_student`."""

    steps: int = 100
    """Optimizer steps; 0 leaves the student as it is."""
    batch_size: int = 8
    learning_rate: float = 1e-4
    temperature: float = 2.0
    """Softens both output distributions in the KL term."""
    kl_weight: float = 0.5
    """Weight of the KL term; the cross-entropy gets 1 - kl_weight."""
    hidden_weight: float = 0.0
    """Weight of the mean squared error between student and teacher hidden states."""
    max_grad_norm: float = 1.0
    seed: int = 0
    """Seeds the batch order and the dropout masks."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise InputError(f"distillation needs steps >= 0 and batch_size >= 1, got "
                             f"{self.steps} and {self.batch_size}")
        if self.temperature <= 0 or not 0.0 <= self.kl_weight <= 1.0 or self.hidden_weight < 0:
            raise InputError("distillation needs temperature > 0, kl_weight in [0, 1] and "
                             "hidden_weight >= 0")


def distillation_loss(student_output, teacher_output, labels: Tensor,
                      config: DistillationConfig) -> tuple[Tensor, dict[str, float]]:
    """Combine KL to the teacher, cross-entropy and the optional hidden-state loss.

    Both outputs are ``Seq2SeqLMOutput`` of the same batch; the student's ``loss`` is its
    cross-entropy. Returns the loss and its parts as floats.
    """
    target = labels != -100  # [B, T]
    temperature = config.temperature
    student_log_probs = functional.log_softmax(student_output.logits / temperature, dim=-1)
    teacher_log_probs = functional.log_softmax(teacher_output.logits / temperature, dim=-1)
    kl_per_token = functional.kl_div(student_log_probs, teacher_log_probs, log_target=True,
                                     reduction="none").sum(-1)  # [B, T]
    kl = (kl_per_token * target).sum() / target.sum().clamp(min=1) * temperature ** 2
    cross_entropy = student_output.loss
    loss = config.kl_weight * kl + (1.0 - config.kl_weight) * cross_entropy
    parts = {"kl": kl.item(), "cross_entropy": cross_entropy.item()}

    if config.hidden_weight > 0:
        if student_output.decoder_hidden_states is None:
            raise InputError("the hidden-state loss needs outputs run with "
                             "output_hidden_states=True")
        hidden = functional.mse_loss(student_output.encoder_last_hidden_state,
                                     teacher_output.encoder_last_hidden_state)
        hidden = hidden + functional.mse_loss(student_output.decoder_hidden_states[-1],
                                              teacher_output.decoder_hidden_states[-1])
        loss = loss + config.hidden_weight * hidden
        parts["hidden"] = hidden.item()
    return loss, parts


def model_batch(records: Sequence[dict], use_graph: bool, device=None) -> dict[str, Tensor]:
    """Collate preprocessed records into model inputs with labels."""
    from graphix.graph import collate

    batch = collate([{"input_ids": r["input_ids"], "labels": r["labels"],
                      "node_spans": r["node_spans"], "edge_index": r["edge_index"],
                      "edge_type": r["edge_type"]} for r in records])
    if not use_graph:
        batch = {key: value for key, value in batch.items() if not key.startswith("graph_")}
    return {key: value.to(device) if device is not None else value
            for key, value in batch.items()}


def train_student(student, records: Sequence[dict], config: DistillationConfig,
                  teacher=None) -> list[dict]:
    """Train `student` in place for ``config.steps`` steps; return per-step losses.

    With a `teacher`, the loss is :func:`distillation_loss`; without, the cross-entropy.
    Records are preprocessed examples with labels. The student ends in eval mode.
    """
    if config.steps and not records:
        raise InputError("training the compressed model needs examples; none were given")
    use_graph = bool(getattr(student.config, "use_graph", False))
    device = next(student.parameters()).device
    generator = random.Random(config.seed)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate)
    want_hidden = teacher is not None and config.hidden_weight > 0
    if teacher is not None:
        teacher.eval()
    student.train()

    history = []
    order: list[int] = []
    for step in range(config.steps):
        if len(order) < config.batch_size:
            order += generator.sample(range(len(records)), len(records))
        chosen, order = order[:config.batch_size], order[config.batch_size:]
        batch = model_batch([records[i] for i in chosen], use_graph, device)
        start = time.perf_counter()
        output = student(**batch, output_hidden_states=want_hidden)
        if teacher is None:
            loss, parts = output.loss, {"cross_entropy": output.loss.item()}
        else:
            with torch.no_grad():
                teacher_output = teacher(**batch, output_hidden_states=want_hidden)
            loss, parts = distillation_loss(output, teacher_output, batch["labels"], config)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        history.append({"step": step + 1, "loss": loss.item(), **parts,
                        "seconds": time.perf_counter() - start})
        if (step + 1) % 20 == 0 or step + 1 == config.steps:
            logger.info("student step %d/%d: loss %.4f", step + 1, config.steps, loss.item())
    student.eval()
    return history
