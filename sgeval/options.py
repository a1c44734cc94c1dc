"""`EvaluationOptions`: everything about one evaluation call except what is measured (protocols, network, data).

`sgeval.evaluate_many(protocols, network, data, options)` takes one of these; keyword overrides
(`evaluate_many(..., num_gen=1000, device="cuda")`) replace its fields, so scripts can keep writing keywords and the
CLI builds the object once from its flags. None of the fields changes a value beyond float round-off except the
count overrides (which rename the protocol: `fid50k_full@gen1k`), `mix_latents`, `seed`, `data_xflip`, `network_key`
and a reduced `precision` (which renames it too: `fid50k_full+bf16`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from sgeval.metrics.registry import DEFAULT_MEMORY_MIB

__all__ = ["EvaluationOptions"]

PathLike = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
    """How to evaluate: counts, sampling, devices, caching, weights, classifiers, results; see the module docstring.

    Values are checked where they are used, with the messages of those layers (counts by the protocol grammar,
    precision by the feature extractors, weights by their lookup), when `evaluate_many` runs.
    """

    num_gen: int | None = None  # override of every protocol's generated count (quick variants)
    num_real: int | None = None  # override of every protocol's real count
    mix_latents: int | None = None  # override: latents mixed per generated image (mixing-FID); 1 = plain
    seed: int = 0  # latent sampling and metric sampling seed
    device: str = "cpu"  # torch device of generator, extractor and distance blocks
    batch_size: int = 64  # images per extractor call (does not change results)
    cache: Any = True  # True: the project cache; False/None: none; a folder or a sgeval.cache.FeatureCache
    weights_dir: PathLike | None = None  # extra folder searched for detector weights
    detector_weights: PathLike | Mapping[str, PathLike] | None = None  # explicit file (or {detector: file})
    allow_download: bool = False  # download missing detector weights (never when SGEVAL_OFFLINE=1)
    classifiers: PathLike | None = None  # attribute classifier folder of linear separability (`ls`)
    run_dir: PathLike | bool | None = None  # where to append JSONL; None: the snapshot's run dir; False: nowhere
    data_xflip: bool | None = None  # mirror reals for protocols that follow the dataset; None: snapshot's setting
    progress: bool = True  # progress bars on stderr
    network_key: str | None = None  # generator of a network file: "G_ema" or "G"; None = G_ema, else G
    precision: str = "fp32"  # feature networks' arithmetic: "fp32" (exact), opt-in "bf16" / "fp16" (GPU)
    memory_mib: float = DEFAULT_MEMORY_MIB  # working-memory budget of the distance blocks; never changes a value

    def replaced(self, **overrides: Any) -> EvaluationOptions:
        """A copy with the given fields replaced; a TypeError names an unknown one and lists the valid names.

        `memory_mib=None` means the default budget (as the CLI's unset option)."""
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown evaluation option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        if "memory_mib" in overrides and overrides["memory_mib"] is None:
            overrides["memory_mib"] = DEFAULT_MEMORY_MIB
        return dataclasses.replace(self, **overrides) if overrides else self
