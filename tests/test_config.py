"""Configuration files and key=value overrides."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from graphix.config import apply_overrides, load_config
from graphix.errors import ConfigError


@dataclass
class Settings:
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    steps: int = field(default=10, metadata={"help": "optimizer steps"})
    bf16: bool = field(default=False, metadata={"help": "use bfloat16"})
    pretrained: str | None = field(default=None, metadata={"help": "checkpoint"})
    blocks: list[int] = field(default_factory=list, metadata={"help": "block indices"})


def test_file_then_overrides(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"learning_rate": 0.01, "steps": 5, "blocks": [0, 2]}))
    config = load_config(Settings, path, ["steps=7", "bf16=true", "pretrained=t5-small"])
    assert config.learning_rate == 0.01
    assert config.steps == 7
    assert config.bf16 is True
    assert config.pretrained == "t5-small"
    assert config.blocks == [0, 2]


def test_override_types_converted():
    config = apply_overrides(Settings(), ["blocks=1,3", "pretrained=none", "learning_rate=2e-4"])
    assert config.blocks == [1, 3]
    assert config.pretrained is None
    assert config.learning_rate == pytest.approx(2e-4)


@pytest.mark.parametrize("override, message", [
    ("stpes=3", "unknown key 'stpes'"),
    ("steps", "key=value"),
    ("steps=three", "expects int"),
    ("steps=2.5", "expects int"),
    ("bf16=maybe", "true or false"),
])
def test_bad_override_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Settings(), [override])


def test_unknown_key_in_file_rejected(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"learning_rat": 0.1}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(Settings, path)


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Settings, tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(Settings, broken)
