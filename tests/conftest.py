"""Shared fixtures: the Spider folder, and small databases made per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def spider_dir() -> Path | None:
    """Return the Spider folder from GRAPHIX_SPIDER_DIR or ../shared/spider, if present."""
    candidates = [os.environ.get("GRAPHIX_SPIDER_DIR"), REPO_ROOT.parent / "shared" / "spider"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "tables.json").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def spider() -> Path:
    path = spider_dir()
    if path is None:
        pytest.skip("Spider not found: set GRAPHIX_SPIDER_DIR to a folder with tables.json")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tests run beside other processes on 2 cores; one thread per process avoids
    # oversubscription, which slows torch 5 to 10 times.
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
