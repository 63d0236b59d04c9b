"""Training loop for Graphix-T5 on Spider, on Hugging Face Accelerate.

One process or many: ``graphix train --config run.json`` trains on this machine, and
``accelerate launch -m graphix train --config run.json`` shards the same loop across
devices. A run folder contains everything needed to resume::

    <output_dir>/config.json       the resolved configuration
    <output_dir>/tokenizer/        SentencePiece vocabulary (from-scratch models)
    <output_dir>/metrics.jsonl     one JSON object per logged step and per evaluation
    <output_dir>/checkpoints/      step checkpoints (see graphix.checkpoints)
    <output_dir>/model/            the best model by dev execution accuracy, exported last
    <output_dir>/curves.png        training loss and dev EM/EX

Three seeds are kept apart and stored in the checkpoint: `data_seed` fixes the batch
order, `init_seed` the initial weights, `dropout_seed` the dropout masks.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from graphix.checkpoints import STATE_FILE, CheckpointManager, load_model
from graphix.config import apply_overrides, from_dict, to_dict
from graphix.errors import CheckpointError
from graphix.training_config import TrainConfig

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- batch order


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Group example indices into batches of similar length, in a seeded random order.

    Sorting by length inside windows of 50 batches cuts padding, which dominates the
    cost of short examples on a CPU, while the window shuffle keeps batches varied.
    """
    generator = random.Random(seed * 1_000_003 + epoch)
    indices = list(range(len(lengths)))
    generator.shuffle(indices)
    window = batch_size * 50
    batches = []
    for start in range(0, len(indices), window):
        chunk = sorted(indices[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    generator.shuffle(batches)
    return batches


def linear_schedule(warmup_steps: int, max_steps: int):
    """Return the multiplier of the peak learning rate at each step."""
    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        remaining = max_steps - step
        return max(0.0, remaining / max(1, max_steps - warmup_steps))
    return multiplier


# ---------------------------------------------------------------------- run state


@dataclass
class RunState:
    """Progress that a checkpoint stores besides the weights and the optimizer."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    train_seconds: float = 0.0
    best_score: float = -math.inf
    best_step: int = -1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def resolve_precision(requested: str) -> str:
    """Map ``auto`` to bf16 when the CPU or GPU supports it, else to full precision."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    cpu_flags = ""
    try:
        cpu_flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    return "bf16" if ("avx512_bf16" in cpu_flags or "amx_bf16" in cpu_flags) else "no"


def save_run_config(config: TrainConfig, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(json.dumps(to_dict(config), indent=2) + "\n")


def load_run_config(output_dir: Path, overrides: list[str]) -> TrainConfig:
    """Read a run's stored configuration for ``--resume`` and apply new overrides."""
    path = output_dir / "config.json"
    if not path.exists():
        raise CheckpointError(
            f"cannot resume: {path} not found; start the run without --resume first"
        )
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot resume: {path} is not valid JSON ({error}); restore it "
                              "or start a new run in another output_dir") from None
    if not isinstance(stored, dict):
        raise CheckpointError(f"cannot resume: {path} is not a JSON object; restore it or "
                              "start a new run in another output_dir")
    stored = from_dict(TrainConfig, stored, source=str(path))
    return apply_overrides(stored, overrides)


def log_metrics(output_dir: Path, record: dict) -> None:
    with (output_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def capture_rng() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


# ---------------------------------------------------------------------- the trainer


class Trainer:
    """Trains one run folder; `run()` starts fresh or resumes from its latest checkpoint."""

    def __init__(self, config: TrainConfig):
        from accelerate import Accelerator

        self.config = config
        self.output_dir = Path(config.output_dir)
        self.precision = resolve_precision(config.mixed_precision)
        self.accelerator = Accelerator(
            mixed_precision=self.precision,
            gradient_accumulation_steps=config.gradient_accumulation,
        )
        self.checkpoints = CheckpointManager(self.output_dir, keep=config.keep_checkpoints)

    # ------------------------------------------------------------------ setup

    def _tokenizer(self, train_records_without_tokens):
        from graphix.tokenizer import TokenizerTrainingConfig, load_tokenizer, train_tokenizer

        if self.config.pretrained is not None:
            return load_tokenizer(self.config.pretrained)
        folder = self.output_dir / "tokenizer"
        if (folder / "tokenizer.json").exists():
            return load_tokenizer(folder)
        texts = []
        for record in train_records_without_tokens():
            texts.append(record["input_text"])
            texts.append(record["target"])
        return train_tokenizer(texts, folder, TokenizerTrainingConfig(vocab_size=self.config.vocab_size))

    def _preprocess_config(self):
        from graphix.preprocess import PreprocessConfig
        from graphix.serialization import SerializationConfig

        return PreprocessConfig(serialization=SerializationConfig(
            max_input_tokens=self.config.max_input_tokens,
            max_target_tokens=self.config.max_target_tokens,
        ))

    def prepare_data(self):
        """Return (tokenizer, train records, dev subset records), preprocessing once per run."""
        from datasets import load_from_disk

        from graphix.data import load_spider_split
        from graphix.preprocess import Preprocessor, preprocess_examples

        config = self.config
        preprocess_config = self._preprocess_config()
        train_split = load_spider_split(config.spider_dir, "train")
        dev_split = load_spider_split(config.spider_dir, "dev")

        def untokenized_train():
            return preprocess_examples(train_split, None, preprocess_config,
                                       limit=config.train_limit)

        tokenizer = self._tokenizer(untokenized_train)
        dev_split.examples = _fixed_subset(dev_split.examples, config.eval_examples,
                                           config.data_seed)
        cache = self.output_dir / "data"
        splits = {}
        for name, split, limit in (("train", train_split, config.train_limit),
                                   ("dev", dev_split, None)):
            folder = cache / name
            if (folder / "dataset_info.json").exists():
                splits[name] = load_from_disk(str(folder)).to_list()
                continue
            preprocessor = Preprocessor(tokenizer, preprocess_config)
            records = preprocess_examples(split, tokenizer, preprocess_config, limit=limit,
                                          preprocessor=preprocessor)
            from graphix.preprocess import record_features
            from datasets import Dataset

            Dataset.from_list(records, features=record_features(True)).save_to_disk(str(folder))
            splits[name] = records
        return tokenizer, splits["train"], splits["dev"]

    def build_model(self, tokenizer):
        from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration

        config = self.config
        torch.manual_seed(config.init_seed)
        graph_settings = dict(use_graph=config.use_graph, graph_num_heads=config.graph_heads)
        if config.pretrained is not None:
            return GraphixT5ForConditionalGeneration.from_pretrained(
                config.pretrained, **graph_settings)
        model_config = GraphixT5Config(
            vocab_size=len(tokenizer),
            d_model=config.d_model,
            d_ff=config.d_ff,
            d_kv=config.d_kv,
            num_layers=config.num_layers,
            num_decoder_layers=config.num_decoder_layers,
            num_heads=config.num_heads,
            dropout_rate=config.dropout_rate,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
            **graph_settings,
        )
        return GraphixT5ForConditionalGeneration(model_config)

    def build_optimizer(self, model):
        config = self.config
        if config.optimizer == "adafactor":
            from transformers.optimization import Adafactor

            return Adafactor(model.parameters(), lr=config.learning_rate, scale_parameter=False,
                             relative_step=False, warmup_init=False,
                             weight_decay=config.weight_decay)
        decay, no_decay = [], []
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            (no_decay if parameter.ndim < 2 or "layer_norm" in name else decay).append(parameter)
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate,
        )

    # ------------------------------------------------------------------ checkpoints

    def _write_checkpoint(self, model, tokenizer, optimizer, scheduler, state: RunState):
        unwrapped = self.accelerator.unwrap_model(model)

        def write(folder: Path) -> None:
            unwrapped.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            torch.save({
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "run_state": state.to_dict(),
                "rng": capture_rng(),
                "seeds": {"data": self.config.data_seed, "init": self.config.init_seed,
                          "dropout": self.config.dropout_seed},
            }, folder / STATE_FILE)

        return write

    def _load_latest(self):
        """Return (model, trainer payload) of the latest checkpoint for ``--resume``."""
        latest = self.checkpoints.latest()
        if latest is None:
            raise CheckpointError(
                f"cannot resume: no checkpoint in {self.checkpoints.root}; start without --resume"
            )
        model = load_model(latest)
        try:
            payload = torch.load(latest / STATE_FILE, weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
            raise CheckpointError(f"checkpoint {latest} cannot be read: {error}") from None
        logger.info("resuming from %s", latest)
        return model, payload

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, model, tokenizer, dev_records: list[dict]) -> dict:
        """Decode the dev subset and score exact match and execution accuracy."""
        from graphix.data import resolve_spider_dir
        from graphix.inference import generate_sql
        from graphix.metrics import Evaluator

        spider = resolve_spider_dir(self.config.spider_dir)
        start = time.monotonic()
        beams = generate_sql(self.accelerator.unwrap_model(model), tokenizer, dev_records,
                             num_beams=self.config.eval_beams,
                             max_new_tokens=self.config.max_target_tokens)
        em = ex = 0
        with Evaluator(spider / "database", spider / "tables.json",
                       timeout_s=self.config.eval_timeout_s) as evaluator:
            for record, candidates in zip(dev_records, beams):
                result = evaluator.evaluate(record["query"], candidates[0].sql, record["db_id"])
                em += bool(result.em)
                ex += bool(result.ex)
        model.train()
        count = max(1, len(dev_records))
        return {"dev_em": em / count, "dev_ex": ex / count, "dev_examples": len(dev_records),
                "eval_seconds": round(time.monotonic() - start, 1)}

    # ------------------------------------------------------------------ the loop

    def run(self, resume: bool = False, segment_steps: int | None = None) -> Path | None:
        """Train until `max_steps` or the time budget; return the exported model folder.

        With ``segment_steps``, stop after that many steps of this process, write a
        checkpoint and return None. A later ``run(resume=True)`` continues exactly.
        """
        if segment_steps is not None and segment_steps < 1:
            raise ValueError(f"segment_steps must be at least 1, got {segment_steps}")
        # Adam's second-moment estimates and small gradients drift into subnormal floats
        # (below about 1e-38) as training goes on, and CPU arithmetic on them is slow.
        # NOTE: the cause is inferred: CPU runs halved in speed and recovered with this.
        torch.set_flush_denormal(True)
        from tqdm.auto import tqdm

        config = self.config
        if not resume:
            if self.checkpoints.latest() is not None:
                raise CheckpointError(
                    f"{self.output_dir} already has checkpoints; pass --resume to continue "
                    "it or choose another output_dir"
                )
            save_run_config(config, self.output_dir)
        self.checkpoints.remove_partial()

        tokenizer, train_records, dev_subset = self.prepare_data()
        lengths = [len(r["input_ids"]) + len(r["labels"]) for r in train_records]

        payload = None
        if resume:
            model, payload = self._load_latest()
        else:
            model = self.build_model(tokenizer)
        optimizer = self.build_optimizer(model)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, linear_schedule(config.warmup_steps, config.max_steps))
        state = RunState()
        if payload is not None:
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            restore_rng(payload["rng"])
            state = RunState(**payload["run_state"])
        else:
            torch.manual_seed(config.dropout_seed)
        model, optimizer, scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        model.train()
        use_graph = config.use_graph

        progress = tqdm(total=config.max_steps, initial=state.step, desc="train", unit="step",
                        disable=not self.accelerator.is_local_main_process)
        window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
        session_start, session_base = time.monotonic(), state.train_seconds
        segment_end = state.step + segment_steps if segment_steps else None
        stop = paused = False
        while not stop:
            batches = batch_order(lengths, config.batch_size, config.data_seed, state.epoch)
            batches = batches[state.batch_in_epoch:]
            for batch_indices in batches:
                batch = _model_batch([train_records[i] for i in batch_indices], use_graph,
                                     self.accelerator.device, config.pad_to_multiple)
                with self.accelerator.accumulate(model):
                    loss = model(**batch).loss
                    self.accelerator.backward(loss)
                    if self.accelerator.sync_gradients:
                        self.accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                state.batch_in_epoch += 1
                window_loss += loss.item()
                window_tokens += int(batch["attention_mask"].sum())
                if not self.accelerator.sync_gradients:
                    continue

                state.step += 1
                state.train_seconds = session_base + elapsed_since(session_start)
                progress.update(1)
                if state.step % config.log_every == 0:
                    seconds = elapsed_since(window_start)
                    record = {"step": state.step, "epoch": state.epoch,
                              "loss": window_loss / (config.log_every * config.gradient_accumulation),
                              "lr": scheduler.get_last_lr()[0],
                              "input_tokens_per_s": window_tokens / max(seconds, 1e-9),
                              "train_minutes": state.train_seconds / 60}
                    log_metrics(self.output_dir, record)
                    progress.set_postfix(loss=f"{record['loss']:.3f}")
                    window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()

                out_of_time = (config.max_wall_minutes is not None
                               and state.train_seconds >= config.max_wall_minutes * 60)
                stop = state.step >= config.max_steps or out_of_time
                paused = not stop and segment_end is not None and state.step >= segment_end
                evaluate_now = config.eval_every and (state.step % config.eval_every == 0 or stop)
                is_best = False
                if evaluate_now:
                    scores = self.evaluate(model, tokenizer, dev_subset)
                    log_metrics(self.output_dir, {"step": state.step, **scores})
                    logger.info("step %d: dev EM %.3f EX %.3f", state.step, scores["dev_em"],
                                scores["dev_ex"])
                    score = scores["dev_ex"] + 1e-3 * scores["dev_em"]
                    # On a tie the later checkpoint wins: it has seen more data. Early
                    # from-scratch runs score 0 for many evaluations in a row.
                    if score >= state.best_score:
                        state.best_score, state.best_step, is_best = score, state.step, True
                if stop or paused or is_best or state.step % config.checkpoint_every == 0:
                    self.checkpoints.save(
                        state.step,
                        self._write_checkpoint(model, tokenizer, optimizer, scheduler, state),
                        best=is_best or (stop and not config.eval_every),
                    )
                if stop:
                    if out_of_time:
                        logger.info("stopping at step %d: %.1f minutes of training reached",
                                    state.step, state.train_seconds / 60)
                    break
                if paused:
                    stop = True
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
        progress.close()
        if paused:
            logger.info("segment ends at step %d; continue with --resume", state.step)
            return None
        return self.export()

    def export(self) -> Path:
        """Copy the best checkpoint (or the latest) to ``<output_dir>/model`` and plot curves."""
        import shutil

        source = self.checkpoints.best() or self.checkpoints.latest()
        target = self.output_dir / "model"
        temporary = self.output_dir / "model.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.copytree(source, temporary, ignore=shutil.ignore_patterns(STATE_FILE))
        (temporary / "training.json").write_text(json.dumps(
            {"config": to_dict(self.config), "checkpoint": source.name}, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        temporary.rename(target)
        plot_curves(self.output_dir / "metrics.jsonl", self.output_dir / "curves.png")
        logger.info("exported %s to %s", source.name, target)
        return target


def _fixed_subset(records: list, count: int, seed: int) -> list:
    """Return the same `count` items, in their original order, for every run with `seed`."""
    if count >= len(records):
        return records
    generator = random.Random(seed)
    chosen = sorted(generator.sample(range(len(records)), count))
    return [records[i] for i in chosen]


def _model_batch(records: list[dict], use_graph: bool, device,
                 pad_to_multiple: int = 1) -> dict[str, torch.Tensor]:
    from graphix.graph import collate

    batch = collate([{"input_ids": r["input_ids"], "labels": r["labels"],
                      "node_spans": r["node_spans"], "edge_index": r["edge_index"],
                      "edge_type": r["edge_type"]} for r in records], pad_to_multiple)
    if not use_graph:
        batch = {k: v for k, v in batch.items() if not k.startswith("graph_")}
    return {k: v.to(device) for k, v in batch.items()}


def plot_curves(metrics_path: Path, output: Path) -> None:
    """Plot the training loss and dev EM/EX against steps into a PNG file."""
    if not metrics_path.exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["dev_em"], r["dev_ex"]) for r in records if "dev_em" in r]
    figure, (loss_axis, dev_axis) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        loss_axis.plot(*zip(*losses))
    loss_axis.set(xlabel="step", ylabel="training loss", yscale="log", title="Loss")
    if evals:
        steps, em, ex = zip(*evals)
        dev_axis.plot(steps, em, marker="o", label="EM")
        dev_axis.plot(steps, ex, marker="o", label="EX")
        dev_axis.legend()
    dev_axis.set(xlabel="step", ylabel="fraction correct", title="Dev subset")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
