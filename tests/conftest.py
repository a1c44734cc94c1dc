"""Shared test settings: one torch thread per worker and deterministic algorithms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("SGEVAL_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _isolate_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write a user's real caches or weights from a test, nor another test's."""
    root = tmp_path / "caches"
    monkeypatch.setenv("SGEVAL_CACHE_DIR", str(root / "sgeval"))
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(root / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(root / "dnnlib"))
    monkeypatch.setenv("SGEVAL_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
