"""Everything a training run needs to continue bit-exactly after a restart, as tensors plus JSON.

A snapshot (sgmodels.snapshot) holds the networks G, D and G_ema; this module adds, as extra tensors and metadata:
- the Adam states of both optimizers (moments and step counts as tensors, hyper-parameters as JSON);
- the random number generator states of every process (torch CPU and CUDA, numpy's global RNG, Python's `random`);
- the counters: images seen, tick, minibatch index, level of detail, items each process took from its sampler;
- loss state (the running mean path length).
Nothing is pickled: a snapshot stays loadable without executing code.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

STATE_FORMAT_VERSION = 1


@dataclass
class TrainingCounters:
    """Progress counters of a run (JSON in the snapshot metadata)."""

    cur_nimg: int = 0  # real images shown to D so far (all processes)
    cur_tick: int = 0  # ticks completed
    batch_idx: int = 0  # minibatches completed (drives the lazy-regularisation intervals)
    tick_start_nimg: int = 0  # cur_nimg when the current tick started
    sampler_position: int = 0  # items each process has taken from its data sampler
    prev_lod: float | None = None  # level of detail of the last minibatch (None before the first one)
    world_size: int = 1  # number of processes that wrote this state
    extra: dict[str, Any] = field(default_factory=dict)  # room for later additions (augmentation state, ...)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingCounters:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


# ----------------------------------------------------------------------------------------------------------------
# Optimizers.


def optimizer_to_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten `optimizer.state_dict()` into tensors named `<prefix>.state.<param index>.<key>` plus JSON.

    Returns (tensors, json) where json = {"param_groups": [...], "state_keys": {index: {key: "tensor" | value}}}.
    Non-tensor per-parameter values (rare) are kept in the JSON.
    """
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state_keys: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        keys: dict[str, Any] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{index}.{key}"] = value.detach().clone()
                keys[key] = "tensor"
            else:
                keys[key] = value
        state_keys[str(index)] = keys
    groups = [_json_value(group) for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "state_keys": state_keys}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    prefix: str,
) -> None:
    """Inverse of `optimizer_to_tensors`: load the flattened state into `optimizer` (same parameter order)."""
    state: dict[int, dict[str, Any]] = {}
    for index, keys in meta["state_keys"].items():
        entries = {}
        for key, value in keys.items():
            if value == "tensor":
                name = f"{prefix}.state.{index}.{key}"
                if name not in tensors:
                    raise ValueError(f"snapshot lacks optimizer tensor {name!r}; it cannot resume this run")
                entries[key] = tensors[name]
            else:
                entries[key] = value
        state[int(index)] = entries
    groups = [dict(group) for group in meta["param_groups"]]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in current] != [len(g["params"]) for g in groups]:
        raise ValueError(f"optimizer {prefix!r}: the snapshot's parameter groups do not match this network")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _json_value(value: Any) -> Any:
    """Tuples -> lists, tensors -> floats, recursively (Adam param groups hold tuples and may hold tensors)."""
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


# ----------------------------------------------------------------------------------------------------------------
# Random number generators.


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """States of the torch (CPU, every CUDA device), numpy-global and Python RNGs of this process.

    Returns (tensors, json): tensors "torch" uint8, "cuda.<i>" uint8, "numpy_keys" int64 [624],
    "python_state" int64 [625]; json holds the remaining scalars.
    """
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = cuda_state
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    tensors["python_state"] = torch.tensor(internal, dtype=torch.int64)
    meta = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "gauss_next": gauss_next},
    }
    return tensors, meta


def restore_rng(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng` for this process (CUDA states only when the devices exist)."""
    torch.set_rng_state(tensors["torch"].cpu().to(torch.uint8))
    cuda_states = [tensors[key].cpu() for key in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    numpy_meta = meta["numpy"]
    keys = tensors["numpy_keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((numpy_meta["kind"], keys, numpy_meta["pos"], numpy_meta["has_gauss"],
                         numpy_meta["cached_gaussian"]))
    python_meta = meta["python"]
    internal = tuple(int(v) for v in tensors["python_state"].cpu().tolist())
    random.setstate((python_meta["version"], internal, python_meta["gauss_next"]))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's `random` from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# The whole state in snapshot form.


def pack_training_state(
    counters: TrainingCounters,
    optimizers: Mapping[str, torch.optim.Optimizer],
    rng_per_rank: list[tuple[dict[str, torch.Tensor], dict[str, Any]]],
    pl_mean: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Extra tensors and metadata (under key "training_state") that `unpack_training_state` restores.

    rng_per_rank: `capture_rng()` of every process, in rank order.
    """
    tensors: dict[str, torch.Tensor] = {"loss.pl_mean": pl_mean.detach().float().cpu().reshape([])}
    meta: dict[str, Any] = {"format_version": STATE_FORMAT_VERSION, "counters": counters.to_json(),
                            "optimizers": {}, "rng": []}
    for name, optimizer in optimizers.items():
        opt_tensors, opt_meta = optimizer_to_tensors(optimizer, f"optimizer.{name}")
        tensors.update(opt_tensors)
        meta["optimizers"][name] = opt_meta
    for rank, (rng_tensors, rng_meta) in enumerate(rng_per_rank):
        tensors.update({f"rng.{rank}.{key}": value for key, value in rng_tensors.items()})
        meta["rng"].append(rng_meta)
    return tensors, meta


@dataclass
class RestoredState:
    """What `unpack_training_state` read back; the optimizers are restored in place."""

    counters: TrainingCounters
    pl_mean: torch.Tensor  # float32 scalar
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None  # this rank's RNG state; None if world size changed


def unpack_training_state(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any] | None,
    optimizers: Mapping[str, torch.optim.Optimizer],
    rank: int,
    world_size: int,
) -> RestoredState:
    """Restore optimizer states in place and return counters, pl_mean and this rank's RNG state.

    Raises ValueError when the snapshot has no training state (an exported or imported network, not a run).
    """
    if not meta or meta.get("format_version") != STATE_FORMAT_VERSION:
        raise ValueError("this snapshot has no training state (format 1) to resume from; start a new run and "
                         "initialise it from the snapshot's networks instead")
    counters = TrainingCounters.from_json(meta["counters"])
    for name, optimizer in optimizers.items():
        optimizer_from_tensors(optimizer, tensors, meta["optimizers"][name], f"optimizer.{name}")
    rng = None
    if counters.world_size == world_size and rank < len(meta["rng"]):
        prefix = f"rng.{rank}."
        rng = ({key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)},
               meta["rng"][rank])
    return RestoredState(counters=counters, pl_mean=tensors["loss.pl_mean"].float(), rng=rng)
