"""How long the demo trains and how much it measures: the default (10-15 minutes on 2 cores) and `--long` budgets,
and the protocol names they evaluate.

The default budget was sized on the measured costs of its parts on 2 cores (StyleGAN2 cpu32 trains at about
11 s/kimg; detector and classifiers together take about 3 minutes; one snapshot's metrics about 45 s, half of it
separability on 10,000 samples, plus about 12 s once for the real images' features): 40 kimg with a snapshot every
8 kimg, so five snapshots are measured. `--long` is the README's quality run (120 kimg, a snapshot every 8 kimg).

Every metric is a quick variant of its protocol and named as one (`fd_domain@gen2k-real10k`), measured with the
project's own domain detector (benchmarks/ablations/stick.py): not FID, not LPIPS. When the official Inception
weights are present offline, FID (`fid50k_full@gen2k-real2k`) is added for the final snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["BUDGETS", "Budget", "domain_protocols", "official_fid"]

OFFICIAL_FID = "fid50k_full"
INCEPTION = "inception-v3-tf"  # the feature extractor whose weights FID needs


@dataclasses.dataclass(frozen=True)
class Budget:
    """Training length and metric sample counts of one demo run."""

    name: str  # "default" or "long" (the folder of its runs)
    kimg: float  # training length in thousands of real images
    tick_kimg: float  # kimg per progress line
    snap: int  # ticks between snapshots; every snapshot is measured
    detector_options: tuple[str, ...]  # extra options of `sgeval detector train`
    classifier_options: tuple[str, ...]  # extra options of `sgeval classifiers train`
    num_gen: int  # generated images of the domain FD / KD / P&R
    num_real: int  # at most this many real images for the domain FD / KD (P&R uses num_gen of each side)
    num_pairs: int  # PPL pairs
    num_ls: int  # separability samples (the most confident half of them is fitted per class)
    num_coverage: int  # fakes of the class-coverage check
    train_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # preset overrides (tests: batch)

    @property
    def snapshot_kimg(self) -> float:
        """kimg between snapshots."""
        return self.tick_kimg * self.snap

    def describe(self) -> str:
        return (f"{self.kimg:g} kimg, a snapshot every {self.snapshot_kimg:g} kimg; metrics on {self.num_gen} "
                f"generated images ({self.num_real} reals at most), PPL on {self.num_pairs} pairs, separability on "
                f"{self.num_ls} samples")


# The measuring stick is the same for both budgets, so the numbers of a default and a long run are comparable
# (same detector sha256). The classifiers train at 16x16 (box-downsampled): at 32x32 two epochs on 10k images left
# them at the base rate of one-vs-rest (0.9), at 16x16 three epochs reach 0.89-0.99 in the same time.
_DETECTOR = ("--max-items", "10000", "--epochs", "2")
_CLASSIFIERS = ("--max-items", "10000", "--epochs", "3", "--resolution", "16")
# Separability needs more samples than the other metrics: with 2,000 (1,000 kept per class against z_dim 128) every
# class of every snapshot was linearly separable (ls = 1.00 throughout); 10,000 tell snapshots and Z from W apart.
_NUM_LS = 10_000

BUDGETS: dict[str, Budget] = {budget.name: budget for budget in [
    Budget("default", 40.0, 4.0, 2, _DETECTOR, _CLASSIFIERS, 2000, 10_000, 1000, _NUM_LS, 1000),
    Budget("long", 120.0, 4.0, 2, _DETECTOR, _CLASSIFIERS, 2000, 10_000, 1000, _NUM_LS, 1000),
]}


def domain_protocols(budget: Budget, ppl_options: str) -> list[str]:
    """The domain stick's protocols measured on every snapshot, named with their counts.

    `ppl_options` is the stick's PPL suffix ("+nocrop+lpips-domain"): Fashion-MNIST has no face to crop.
    """
    from benchmarks.ablations.stick import DOMAIN_FD
    from sgeval.protocols import resolve_protocol

    def name(base: str, num_gen: int, num_real: int | None = None) -> str:
        return resolve_protocol(base, num_gen=num_gen, num_real=num_real).name

    return [name(DOMAIN_FD, budget.num_gen, budget.num_real), name("kd_domain", budget.num_gen, budget.num_real),
            name("pr_domain", budget.num_gen, budget.num_gen),
            *(name(f"ppl_{space}end{ppl_options}", budget.num_pairs) for space in ("w", "z")),
            name("ls", budget.num_ls)]


def official_fid(budget: Budget) -> tuple[str | None, str]:
    """(the FID protocol to add on the final snapshot, or None; one sentence saying which and why).

    Looks the Inception weights up offline (never downloads): an explicit weights folder, $SGEVAL_WEIGHTS_DIR, the
    project cache, the torch and dnnlib caches.
    """
    from sgeval.features.registry import get_extractor_spec
    from sgeval.protocols import resolve_protocol
    from sgeval.weights import WeightsError, find_weights, known_weights

    files = get_extractor_spec(INCEPTION).weights
    for weights_name in files:
        try:
            found = find_weights(known_weights()[weights_name])
        except WeightsError as error:  # a corrupt copy: say so rather than stop the demo
            return None, f"FID skipped: {error}"
        if found is not None:
            protocol = resolve_protocol(OFFICIAL_FID, num_gen=budget.num_gen, num_real=budget.num_gen).name
            return protocol, (f"FID ({protocol}) measured on the final snapshot with the Inception weights found at "
                              f"{found.path}")
    names = " or ".join(known_weights()[name].filename for name in files)
    return None, (f"FID ({OFFICIAL_FID}) skipped: the Inception weights ({names}) are not on this machine and the demo "
                  "never downloads; `sgeval weights import FILE` puts a copy where it is found")
