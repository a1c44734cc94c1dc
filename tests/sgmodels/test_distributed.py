"""Two CPU processes (gloo) train together: identical weights on both ranks, statistics reduced over both, and
only rank 0 writes a run directory; the process-group backend follows the device or $SGMODELS_DIST_BACKEND."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sgmodels.training.distributed import (
    BACKEND_VARIABLE,
    init_distributed,
    process_group_backend,
    shutdown_distributed,
    sum_across_processes,
)
from tests.sgmodels.test_training import make_image_folder, tiny_options

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, data: str, outdir: str, results: str) -> None:
    """One training process, set up as torchrun would; saves its final networks for the parent to compare."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from sgmodels.training import loop

    sessions = []
    original = loop.run_session

    def run_and_keep(session: loop.Session) -> None:
        original(session)
        sessions.append(session)

    loop.run_session = run_and_keep
    run_dir = loop.train(tiny_options(Path(data), Path(outdir), kimg=0.032, tick_kimg=0.016, snap=2))
    session = sessions[0]
    networks = {f"{name}.{key}": value for name in ("G", "D", "G_ema")
                for key, value in getattr(session, name).state_dict().items()}
    torch.save({"networks": networks, "run_dir": str(run_dir), "pl_mean": session.loss.pl_mean.clone()},
               Path(results) / f"rank{rank}.pt")


def test_two_processes_train_identically_and_rank0_writes(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "images")
    results = tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(_free_port(), str(data), str(tmp_path / "runs"), str(results)), nprocs=WORLD_SIZE)
    ranks = [torch.load(results / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    first, second = ranks[0]["networks"], ranks[1]["networks"]
    differing = [key for key, value in first.items() if not torch.equal(value, second[key])]
    assert not differing, f"ranks disagree on {differing[:5]}"
    assert torch.equal(ranks[0]["pl_mean"], ranks[1]["pl_mean"])
    assert ranks[0]["run_dir"] == ranks[1]["run_dir"]
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    snapshots = sorted(path.name for path in run_dirs[0].glob("network-snapshot-*"))
    assert snapshots == ["network-snapshot-000000.032.safetensors"]
    records = [json.loads(line) for line in (run_dirs[0] / "stats.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in records] == [1, 2]  # one writer
    # 16 images per tick in total (8 per minibatch over both processes, 2 minibatches): every one counted once.
    assert records[0]["Loss/G/loss"]["num"] == 16
    assert json.loads((run_dirs[0] / "training_options.json").read_text())["world_size"] == WORLD_SIZE


@pytest.mark.parametrize(("variable", "device", "expected"), [
    (None, "cpu", "gloo"), (None, "cuda", "nccl"), ("gloo", "cuda", "gloo"), (" GLOO ", "cpu", "gloo"),
    ("nccl", "cuda", "nccl"), ("", "cuda", "nccl"),
])
def test_backend_follows_the_device_unless_the_environment_names_one(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, device: str, expected: str
) -> None:
    if variable is None:
        monkeypatch.delenv(BACKEND_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(BACKEND_VARIABLE, variable)
    assert process_group_backend(torch.device(device)) == expected


@pytest.mark.parametrize(("variable", "device", "message"), [("mpi", "cuda", "expected one of"),
                                                             ("nccl", "cpu", "needs CUDA")])
def test_backend_refuses_unknown_names_and_nccl_on_the_cpu(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                            device: str, message: str) -> None:
    monkeypatch.setenv(BACKEND_VARIABLE, variable)
    with pytest.raises(ValueError, match=message):
        process_group_backend(torch.device(device))


def test_two_processes_join_with_the_backend_from_the_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_VARIABLE, "gloo")  # inherited by the spawned processes
    mp.spawn(_backend_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE)
    assert sorted(path.read_text() for path in tmp_path.iterdir()) == ["gloo 2.0", "gloo 2.0"]


def _backend_worker(rank: int, port: int, results: str) -> None:
    """Join through init_distributed, report the backend and the sum of one all-reduce over both ranks."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    ctx = init_distributed("cpu")
    try:
        total = sum_across_processes(torch.ones([]))
        (Path(results) / f"rank{ctx.rank}").write_text(f"{torch.distributed.get_backend()} {float(total)}")
    finally:
        shutdown_distributed()
