"""`nox -s gpu-check` (benchmarks/gpu_check.py): the CPU quick path gives every row, and the comparisons fail on
mismatches (the GPU itself is not needed for either)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import Context, Row, judge, relative_difference, relative_l2, window_mean_difference

ROOT = Path(__file__).resolve().parents[1]
ROWS = [  # in the order the checks run (shortest first)
    "extract: FID fp16 vs fp32 (rel.)", "extract: FID TF32 vs fp32 (rel.)", "extract: sgeval under global TF32 = exact",
    "extract: CUDA vs CPU exact features",
    "dist: 2 ranks identical (max abs diff)", "dist: Adam moments, 2 procs vs 1 (rel. L2)",
    "dist: weights, 2 procs vs 1 (rel. to update)",
    "throughput: extraction fp32 img/s", "throughput: extraction TF32 img/s", "throughput: extraction fp16 img/s",
    "train: final-window loss diff fp16 vs fp32", "train: FD fp16 / FD fp32",
    "train: FD trained / FD untrained (worse run)",
    "throughput: training fp32 img/s", "throughput: training fp16 img/s",
]
CUDA_ONLY = {"extract: FID fp16 vs fp32 (rel.)", "extract: sgeval under global TF32 = exact",
             "extract: CUDA vs CPU exact features", "throughput: extraction TF32 img/s",
             "throughput: extraction fp16 img/s"}


def test_judge_passes_within_the_limit_and_fails_beyond_it_or_on_nan() -> None:
    assert judge("x", relative_difference(1.01, 1.0), 0.02).status == "PASS"
    assert judge("x", relative_difference(1.05, 1.0), 0.02).status == "FAIL"  # a deliberate 5 % mismatch
    assert judge("x", relative_difference(math.nan, 1.0), 0.02).status == "FAIL"
    assert judge("x", relative_difference(1.0, 0.0), 0.02).status == "FAIL"
    assert judge("x", None, 0.02).status == "FAIL"
    skipped = judge("x", 5.0, 0.02, "numbers", skip="no CUDA")
    assert (skipped.status, skipped.value, skipped.detail) == ("SKIP", 5.0, "no CUDA; numbers")


def test_loss_windows_compare_the_last_third_only() -> None:
    early_divergence = window_mean_difference([0.0, 5.0, 1.0, 1.0, 1.0, 1.1], [0.0, 0.0, 1.0, 1.0, 1.0, 0.9])
    assert early_divergence == pytest.approx(0.1)
    drift = window_mean_difference([1.0] * 6, [1.0] * 4 + [1.5, 1.5])  # the fp16 run ends 0.5 higher
    assert judge("loss", drift, gpu_check.LOSS_TOLERANCE).status == "FAIL"
    assert judge("loss", window_mean_difference([1.0, math.nan], [1.0, 1.0]), 1.0).status == "FAIL"
    with pytest.raises(ValueError, match="cannot be compared"):
        window_mean_difference([1.0, 2.0], [1.0])


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    initial = torch.randn(100, generator=generator)
    return {"initial": initial, "weights": initial + 0.01 * torch.randn(100, generator=generator),
            "exp_avg": torch.randn(100, generator=generator), "exp_avg_sq": torch.rand(100, generator=generator)}


def _statuses(results: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    return [row.status for row in gpu_check.distributed_rows(results, "test")]


def test_distributed_comparison_catches_diverging_ranks_and_unaveraged_gradients() -> None:
    one = _state()
    assert _statuses({"world1-rank0": one, "world2-rank0": dict(one), "world2-rank1": dict(one)}) == ["PASS"] * 3
    other_rank = {**one, "weights": one["weights"] + 1e-6}  # rank 1 stepped with its own gradients
    assert _statuses({"world1-rank0": one, "world2-rank0": one, "world2-rank1": other_rank})[0] == "FAIL"
    summed = {**one, "exp_avg": 2 * one["exp_avg"], "exp_avg_sq": 4 * one["exp_avg_sq"]}  # sum, not mean
    assert _statuses({"world1-rank0": one, "world2-rank0": summed, "world2-rank1": summed})[1] == "FAIL"
    moved = {**one, "weights": one["initial"] + 1.1 * (one["weights"] - one["initial"])}  # 10 % of the update
    assert _statuses({"world1-rank0": one, "world2-rank0": moved, "world2-rank1": moved})[2] == "FAIL"
    assert relative_l2(torch.ones(4), torch.ones(4)) == 0.0


def test_a_crashing_check_is_a_fail_row_and_exit_status_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(ctx: Context) -> list[Row]:
        raise RuntimeError("deliberate")

    def fine(ctx: Context) -> list[Row]:
        return [judge("fine", 0.0, 1.0)]

    def no_files(root: Path, device: torch.device, sizes: gpu_check.Sizes) -> Context:
        return Context(device, sizes, root, root / "a.zip", root / "b.zip", root / "w.pth", cache=None)

    monkeypatch.setattr(gpu_check, "CHECKS", {"boom": crash, "after": fine})
    monkeypatch.setattr(gpu_check, "prepare", no_files)
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 1
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert [(row["check"], row["status"]) for row in rows] == [("boom: crashed", "FAIL"), ("fine", "PASS")]
    assert "deliberate" in rows[0]["detail"]


def test_cpu_quick_run_gives_every_row(tmp_path: Path) -> None:
    """The command the nox session runs, on the CPU at the quick sizes: exit 0, every row in the table and JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {row["check"]: row for row in document["rows"]}
    assert list(rows) == ROWS
    table = done.stdout.split("## gpu-check on")[-1]
    assert all(name in table for name in ROWS)
    assert all(rows[name]["status"] == "SKIP" for name in CUDA_ONLY)
    for name in ("dist: 2 ranks identical (max abs diff)", "dist: Adam moments, 2 procs vs 1 (rel. L2)",
                 "dist: weights, 2 procs vs 1 (rel. to update)"):
        assert rows[name]["status"] == "PASS" and "gloo" in rows[name]["detail"]
    # on a CPU the fp16-block run computes in float32: the same losses and FD as the fp32 run, bit for bit
    assert rows["train: final-window loss diff fp16 vs fp32"]["value"] == 0.0
    assert rows["train: FD fp16 / FD fp32"]["value"] == 1.0
    assert rows["throughput: training fp32 img/s"]["value"] > 0
    curves = document["settings"]["details"]["loss_curves"]
    assert len(curves["fp32"]["G"]) == len(curves["fp16"]["D"]) == 2  # 4 steps, a tick every 2
