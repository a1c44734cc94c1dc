"""Multi-process training helpers for `torchrun` (one process per GPU, or several CPU processes).

Gradients are averaged with one all-reduce of a flat buffer per optimizer step (as the stylegan3 training loop does
instead of wrapping the networks in DistributedDataParallel, whose hooks do not mix well with the double-backward
of R1 and path-length regularisation and with phases that train only part of a network). Statistics and the
path-length mean are averaged the same way. Only rank 0 writes files. Backend: NCCL on CUDA, gloo on CPU, unless
the environment variable SGMODELS_DIST_BACKEND says otherwise (`process_group_backend`).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
BACKEND_VARIABLE = "SGMODELS_DIST_BACKEND"  # "nccl" or "gloo"; unset = the device's default
_BACKENDS = ("nccl", "gloo")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job."""

    rank: int  # global rank, 0 = the process that writes files
    world_size: int  # number of processes
    local_rank: int  # rank on this machine (picks the GPU)
    device: torch.device  # this process's device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """'cpu', 'cuda', 'cuda:1' or None (CUDA when available); under torchrun 'cuda' means cuda:LOCAL_RANK."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    return resolved


def process_group_backend(device: torch.device) -> str:
    """The torch.distributed backend for processes on `device`: $SGMODELS_DIST_BACKEND when set, else NCCL for CUDA
    and gloo for the CPU.

    gloo also reduces CUDA tensors, and unlike NCCL it accepts several ranks on one GPU, so
    `SGMODELS_DIST_BACKEND=gloo torchrun --nproc_per_node=2 -m sgmodels train --device cuda:0 ...` runs (and tests)
    multi-process training on a one-GPU machine. ValueError for an unknown name or NCCL on a CPU device.
    """
    chosen = os.environ.get(BACKEND_VARIABLE, "").strip().lower()
    if not chosen:
        return "nccl" if device.type == "cuda" else "gloo"
    if chosen not in _BACKENDS:
        raise ValueError(f"{BACKEND_VARIABLE}={chosen!r}: expected one of {', '.join(_BACKENDS)}")
    if chosen == "nccl" and device.type != "cuda":
        raise ValueError(f"{BACKEND_VARIABLE}=nccl needs CUDA devices, but this process trains on {device}; use gloo")
    return chosen


def init_distributed(device: str | None = None, timeout_minutes: float = 60.0) -> DistributedContext:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, ...), or run alone.

    The process group uses NCCL for CUDA devices and gloo for the CPU (or $SGMODELS_DIST_BACKEND, see
    `process_group_backend`); MASTER_ADDR / MASTER_PORT come from the environment (torchrun sets them). A long
    timeout lets rank 0 evaluate metrics while the others wait.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        missing = [name for name in (*_TORCHRUN_VARIABLES, "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise ValueError(f"WORLD_SIZE={world_size} but {missing} are not set: start multi-process training "
                             "with `torchrun --nproc_per_node=N -m sgmodels train ...`")
        dist.init_process_group(backend=process_group_backend(resolved), rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean_across_processes(value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over all processes (a copy; the input itself when running alone)."""
    if not _active():
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / dist.get_world_size()


def sum_across_processes(value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (a copy; the input itself when running alone)."""
    if not _active():
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def average_gradients(module: torch.nn.Module) -> None:
    """Average the .grad of every parameter that has one across processes and sanitise non-finite values.

    One flat all-reduce per call. NaN becomes 0 and +-inf becomes +-1e5, as in the official loop, so one bad
    minibatch cannot poison the Adam moments.
    """
    grads = [param.grad for param in module.parameters() if param.grad is not None]
    if not grads:
        return
    flat = torch.cat([grad.flatten() for grad in grads])  # [P]
    if _active():
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= dist.get_world_size()
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    for grad, averaged in zip(grads, flat.split([grad.numel() for grad in grads]), strict=True):
        grad.copy_(averaged.reshape(grad.shape))


def average_running_buffers(module: torch.nn.Module, suffix: str = "_avg") -> None:
    """Average the floating-point buffers named `*<suffix>` (running averages such as the mapping network's
    `w_avg`, updated from each process's own samples) across processes, so every process keeps the same values.

    The update w_avg <- lerp(mean(w), w_avg, beta) is linear, so the average of the per-process results equals the
    update with the mean over the whole minibatch, as in a single process.
    """
    if not _active():
        return
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name.endswith(suffix) and buffer.is_floating_point():
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer /= dist.get_world_size()


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank `src` into every process, so all start from identical weights."""
    if not _active():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=src)


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank `src`'s (picklable, small) Python value on every process, e.g. the resolved run directory."""
    if not _active():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def gather_objects(value: Any) -> list[Any]:
    """Every process's (small) Python value, in rank order, on every process ([value] when alone)."""
    if not _active():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    """Wait until every process reaches this point (no-op when alone)."""
    if _active():
        dist.barrier()
