"""The configuration of a training run, kept apart from the training code.

It imports nothing heavy, so ``graphix train --help`` can list every key quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphix.errors import ConfigError


@dataclass
class TrainConfig:
    """Everything a training run needs; every field can be overridden as ``key=value``."""

    # Data
    spider_dir: str | None = field(
        default=None, metadata={"help": "Spider folder; defaults to $GRAPHIX_SPIDER_DIR."})
    output_dir: str = field(default="runs/graphix", metadata={"help": "Run folder."})
    max_input_tokens: int = field(
        default=512, metadata={"help": "Encoder input length in subword tokens; longer "
                                       "schemas are truncated, linked items kept first."})
    max_target_tokens: int = field(
        default=256, metadata={"help": "Decoder target length in subword tokens."})
    train_limit: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (debugging)."})
    eval_examples: int = field(
        default=200, metadata={"help": "Size of the fixed dev subset evaluated during training."})

    # Model
    pretrained: str | None = field(
        default=None, metadata={"help": "T5 checkpoint (hub id or folder) to start from; "
                                        "None trains from scratch with the sizes below."})
    vocab_size: int = field(
        default=8000, metadata={"help": "SentencePiece vocabulary size (from scratch only)."})
    d_model: int = field(default=256, metadata={"help": "Hidden width (from scratch only)."})
    d_ff: int = field(default=1024, metadata={"help": "Feed-forward width (from scratch only)."})
    d_kv: int = field(default=64, metadata={"help": "Width per attention head (from scratch only)."})
    num_layers: int = field(default=4, metadata={"help": "Encoder blocks (from scratch only)."})
    num_decoder_layers: int = field(
        default=4, metadata={"help": "Decoder blocks (from scratch only)."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads (from scratch only)."})
    dropout_rate: float = field(default=0.1, metadata={"help": "Dropout probability."})
    use_graph: bool = field(
        default=True, metadata={"help": "Add the relational graph attention sublayers; "
                                        "false trains plain T5 for the ablation."})
    graph_heads: int = field(default=4, metadata={"help": "Heads of each graph sublayer."})

    # Optimization
    optimizer: str = field(default="adamw", metadata={"help": "adamw or adafactor."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_steps: int = field(default=500, metadata={"help": "Linear warmup steps."})
    max_steps: int = field(
        default=20000, metadata={"help": "Optimizer steps; the learning rate decays linearly "
                                         "to zero at this step."})
    max_wall_minutes: float | None = field(
        default=None, metadata={"help": "Stop after this much training time in minutes, "
                                        "summed over resumed runs; None for no limit."})
    batch_size: int = field(default=16, metadata={"help": "Examples per device and micro-batch."})
    gradient_accumulation: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step."})
    pad_to_multiple: int = field(
        default=16, metadata={"help": "Round padded batch lengths up to a multiple of N, so "
                                      "that CPU kernels see few distinct shapes."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    mixed_precision: str = field(
        default="auto", metadata={"help": "bf16, no, or auto (bf16 where the hardware has it)."})

    # Seeds
    data_seed: int = field(default=1, metadata={"help": "Seed of the batch order."})
    init_seed: int = field(default=2, metadata={"help": "Seed of the initial weights."})
    dropout_seed: int = field(default=3, metadata={"help": "Seed of dropout masks."})

    # Logging, evaluation and checkpoints
    log_every: int = field(default=20, metadata={"help": "Log the loss every N steps."})
    eval_every: int = field(
        default=1000, metadata={"help": "Evaluate on the dev subset every N steps (0: never)."})
    checkpoint_every: int = field(default=250, metadata={"help": "Checkpoint every N steps."})
    keep_checkpoints: int = field(
        default=2, metadata={"help": "Step checkpoints to keep besides the best one."})
    eval_beams: int = field(default=1, metadata={"help": "Beams when decoding the dev subset."})
    eval_timeout_s: float = field(
        default=5.0, metadata={"help": "Time limit per query when scoring execution accuracy."})

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "adafactor"):
            raise ConfigError(f"optimizer must be 'adamw' or 'adafactor', got {self.optimizer!r}")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise ConfigError(
                f"mixed_precision must be 'auto', 'bf16' or 'no', got {self.mixed_precision!r}"
            )
        for name in ("batch_size", "gradient_accumulation", "max_steps", "log_every",
                     "checkpoint_every", "max_input_tokens", "max_target_tokens",
                     "pad_to_multiple"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
