"""Atomic training checkpoints: a folder per step and pointer files that move last.

Layout under a run's output folder::

    checkpoints/step-00001000/     model (save_pretrained), tokenizer, trainer_state.pt
    checkpoints/latest.json        {"step": 1000, "path": "step-00001000"}
    checkpoints/best.json          the step with the best dev score so far

A checkpoint is written into ``step-N.tmp-<pid>``, flushed to disk, and renamed to
``step-N`` in one step. Only then does ``latest.json`` move, itself through a temporary
file and ``os.replace``. A process killed at any moment therefore leaves ``latest.json``
naming a complete checkpoint; leftover ``*.tmp-*`` folders are removed on the next start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from graphix.errors import CheckpointError

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
MODEL_TYPE = "graphix_t5"
_SHOWN_KEYS = 3


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to `path` so that readers see the old file or the new one, never a part."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_directory(path)


class CheckpointManager:
    """Write, find and prune step checkpoints in ``<output_dir>/checkpoints``."""

    def __init__(self, output_dir: str | Path, keep: int = 2):
        if keep < 1:
            raise CheckpointError(f"keep must be at least 1, got {keep}")
        self.root = Path(output_dir) / "checkpoints"
        self.keep = keep

    def remove_partial(self) -> int:
        """Delete the folders and pointer files of interrupted writes; return how many."""
        if not self.root.exists():
            return 0
        # Checkpoint folders and pointer files (".latest.json.tmp-<pid>") both get the tag.
        partial = [p for p in self.root.iterdir() if ".tmp-" in p.name]
        for path in partial:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if partial:
            logger.warning("removed %d partial checkpoint folder(s) or pointer file(s) in %s",
                           len(partial), self.root)
        return len(partial)

    def save(self, step: int, write: callable, *, best: bool = False) -> Path:
        """Create checkpoint `step`: `write(folder)` fills a temporary folder that is then renamed."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:08d}"
        final = self.root / name
        temporary = self.root / f"{name}.tmp-{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        write(temporary)
        _fsync_tree(temporary)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        _fsync_directory(self.root)

        write_json_atomic(self.root / "latest.json", {"step": step, "path": name})
        if best:
            write_json_atomic(self.root / "best.json", {"step": step, "path": name})
        self._prune()
        return final

    def _pointer(self, name: str) -> Path | None:
        pointer = self.root / name
        if not pointer.exists():
            return None
        try:
            target = self.root / json.loads(pointer.read_text(encoding="utf-8"))["path"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise CheckpointError(f"checkpoint pointer {pointer} is corrupt: {error}") from None
        if not target.is_dir():
            raise CheckpointError(f"{pointer} names {target}, which does not exist")
        return target

    def latest(self) -> Path | None:
        return self._pointer("latest.json")

    def best(self) -> Path | None:
        return self._pointer("best.json")

    def _prune(self) -> None:
        protected = {p for p in (self.latest(), self.best()) if p is not None}
        steps = sorted(p for p in self.root.glob("step-*") if p.is_dir() and ".tmp-" not in p.name)
        removable = [p for p in steps if p not in protected]
        excess = len(steps) - self.keep
        for path in removable[: max(0, excess)]:
            shutil.rmtree(path, ignore_errors=True)


def load_model(folder: str | Path, **kwargs):
    """Load the Graphix-T5 model saved in `folder` (``save_pretrained`` layout).

    Raises CheckpointError when config.json is missing, not a JSON object or names another
    model type, when the weights file is missing, truncated or corrupt, and when the weights
    do not fit the configuration (a folder from an incompatible version). `kwargs` go to
    ``from_pretrained``.
    """
    from safetensors import SafetensorError

    from graphix.model import GraphixT5ForConditionalGeneration

    folder = Path(folder)
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"model folder {folder} has no config.json; pass a folder "
                              "written by `graphix train` or save_pretrained") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path} is not valid JSON ({_one_line(error)}); the "
                              "checkpoint is corrupt, so save it again") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} is not a JSON object; the checkpoint is corrupt, "
                              "so save it again")
    if config.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            f"{config_path} describes a model of type {config.get('model_type')!r}, not "
            f"{MODEL_TYPE!r}; pass a folder written by `graphix train`"
        )
    try:
        model, info = GraphixT5ForConditionalGeneration.from_pretrained(
            folder, output_loading_info=True, **kwargs)
    except SafetensorError as error:
        raise CheckpointError(f"the weights file in {folder} is truncated or corrupt "
                              f"({_one_line(error)}); save the checkpoint again") from None
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        message = _one_line(error)
        if "ignore_mismatched_sizes" in message:
            message = "some weights have other shapes than config.json describes"
        raise CheckpointError(f"cannot load the model in {folder}: {message}") from None
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(info.get("unexpected_keys") or ())
    if missing or unexpected:
        raise CheckpointError(
            f"the weights in {folder} do not fit its config.json ({len(missing)} missing, "
            f"e.g. {missing[:_SHOWN_KEYS]}; {len(unexpected)} unexpected, e.g. "
            f"{unexpected[:_SHOWN_KEYS]}); the folder is from an incompatible version"
        )
    return model


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
