"""Shared test settings: one torch and one BLAS thread per worker, and test-local caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import threadpoolctl
import torch

_THREADS = int(os.environ.get("SGEVAL_TEST_THREADS", "1"))
torch.set_num_threads(_THREADS)
os.environ.setdefault("SGMODELS_NUM_THREADS", str(_THREADS))  # training's "auto" threads keep this fixed count
# numpy/scipy's BLAS too: with the xdist workers already using every core, small LAPACK calls with 2 BLAS threads ran
# 10-25x slower than with one on a loaded machine.
threadpoolctl.threadpool_limits(_THREADS)


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
