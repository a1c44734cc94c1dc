"""Named, frozen metric protocols: the official names of the NVIDIA metric code and their exact settings.

A protocol fixes everything that changes a published number apart from the networks and the data: the metric
function and its settings, the generated and real sample counts, whether reals are mirrored, and the feature
detector. Result rows always name their protocol, so numbers are only ever compared under the same settings.

Quick variants (`Protocol.with_counts`): overriding the sample counts yields a protocol with a DERIVED name,
`<official>@gen<G>-real<R>` (e.g. `fid50k_full@gen1k-real2k`, only the overridden counts appear), whose `base` is the
official name and whose `counts_overridden` is True. The derived name keeps quick numbers out of the official
`metric-fid50k_full.jsonl` file and out of the official column of a report, while `base` still groups them.

Generator-space protocols (ppl_zfull, ppl_wend, ls, projection, ...) register here later with kind "generator";
their settings dataclasses live beside their metric functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from sgeval.metrics.fid import FIDSettings
from sgeval.metrics.kid import KIDSettings
from sgeval.metrics.registry import MetricKind, get_metric

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "list_protocols", "register_protocol"]

RealFlip = Literal["off", "dataset"]


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One named metric protocol (frozen; derive variants with `with_counts`)."""

    name: str  # name written into results and file names, e.g. "fid50k_full"
    metric: str  # registered metric function (sgeval.metrics.registry), e.g. "fid"
    settings: Any  # the metric's frozen settings dataclass instance (None if the metric has none)
    num_gen: int  # generated samples
    num_real: int | None  # at most this many reals, first items in dataset order; None = the whole dataset (or none,
    # for a metric of the generated side only, e.g. is50k)
    real_xflip: RealFlip  # "off": reals never mirrored; "dataset": mirrored as the dataset / training run says
    detector: str | None  # sgeval.features registry name; None for generator metrics with their own networks
    kind: MetricKind  # "feature" or "generator", as the metric
    official: bool  # True when name and settings are those of NVIDIA's metric code
    reference: str  # where the settings come from, and deliberate choices
    base: str | None = None  # official protocol this one was derived from by with_counts; None if not derived

    def __post_init__(self) -> None:
        if self.num_gen < 1:
            raise ValueError(f"protocol {self.name!r}: num_gen must be >= 1, got {self.num_gen}")
        if self.num_real is not None and self.num_real < 1:
            raise ValueError(f"protocol {self.name!r}: num_real must be >= 1 or None (all), got {self.num_real}")
        if self.real_xflip not in ("off", "dataset"):
            raise ValueError(f"protocol {self.name!r}: real_xflip must be 'off' or 'dataset', got {self.real_xflip!r}")

    @property
    def counts_overridden(self) -> bool:
        """True for a quick variant whose sample counts differ from its official protocol."""
        return self.base is not None

    @property
    def base_name(self) -> str:
        """The official protocol name (this protocol's own name unless derived)."""
        return self.base or self.name

    def settings_dict(self) -> dict[str, Any]:
        """The metric settings as a JSON-ready dict ({} when the metric has none)."""
        return dataclasses.asdict(self.settings) if self.settings is not None else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, recorded in every result."""
        return {
            "name": self.name,
            "base": self.base_name,
            "metric": self.metric,
            "settings": self.settings_dict(),
            "num_gen": self.num_gen,
            "num_real": self.num_real,
            "real_xflip": self.real_xflip,
            "detector": self.detector,
            "kind": self.kind,
            "official": self.official,
            "counts_overridden": self.counts_overridden,
        }

    def with_counts(self, num_gen: int | None = None, num_real: int | None = None) -> Protocol:
        """Quick variant with other sample counts (None keeps a count); see the module docstring for the name.

        Returns `self` when nothing changes. Deriving from a derived protocol starts again from its base counts,
        so names never stack (`fid50k_full@gen1k@gen2k` cannot happen).
        """
        official = get_protocol(self.base_name) if self.counts_overridden else self
        new_gen = official.num_gen if num_gen is None else int(num_gen)
        new_real = official.num_real if num_real is None else int(num_real)
        if new_gen == official.num_gen and new_real == official.num_real:
            return official
        parts = []
        if new_gen != official.num_gen:
            parts.append(f"gen{_count_label(new_gen)}")
        if new_real != official.num_real:
            parts.append(f"real{_count_label(new_real)}")
        return dataclasses.replace(
            official,
            name=f"{official.name}@{'-'.join(parts)}",
            num_gen=new_gen,
            num_real=new_real,
            base=official.name,
        )


def _count_label(count: int | None) -> str:
    """Compact count for derived names: 1000 -> "1k", 1500 -> "1500", None -> "all"."""
    if count is None:
        return "all"
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol under its name; the name must be new and its metric registered with the same kind."""
    if protocol.name in PROTOCOLS and PROTOCOLS[protocol.name] != protocol:
        raise ValueError(f"protocol {protocol.name!r} registered twice with different settings")
    spec = get_metric(protocol.metric)
    if spec.kind != protocol.kind:
        raise ValueError(f"protocol {protocol.name!r} is {protocol.kind!r} but metric {spec.name!r} is {spec.kind!r}")
    if spec.settings_type is not None and not isinstance(protocol.settings, spec.settings_type):
        raise TypeError(
            f"protocol {protocol.name!r}: settings must be {spec.settings_type.__name__}, "
            f"got {type(protocol.settings).__name__}"
        )
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`; an unknown name raises ValueError listing the valid ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid protocols: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]


def list_protocols() -> list[Protocol]:
    """All registered protocols, sorted by name."""
    return [PROTOCOLS[name] for name in sorted(PROTOCOLS)]


def _builtin_protocols() -> list[Protocol]:
    """The official feature protocols (metrics_spec.md sections 1 and 2), plus one documented extension."""
    from sgeval.metrics.inception_score import ISSettings
    from sgeval.metrics.precision_recall import DensityCoverageSettings, PrecisionRecallSettings

    inception, vgg = "inception-v3-tf", "vgg16-fc2"  # sgeval.features extractors: pool3 2048-d, fc2+ReLU 4096-d
    kid = KIDSettings(num_subsets=100, max_subset_size=1000)
    pr = PrecisionRecallSettings(k=3, distance_dtype="float32")
    # name, metric, settings, num_real (None = all), real_xflip, detector, official, reference
    table: list[tuple[str, str, Any, int | None, RealFlip, str, bool, str]] = [
        ("fid50k_full", "fid", FIDSettings(cov_ddof=0), None, "off", inception, True,
         "stylegan2-ada-pytorch: all reals, no flips; covariance divided by N (raw float64 moments)"),
        ("fid50k", "fid", FIDSettings(cov_ddof=1), 50_000, "dataset", inception, True,
         "StyleGAN/StyleGAN2 TF (the papers' fid50k): first 50k reals, mirrored iff the run mirrored; covariance "
         "divided by N-1 (np.cov). ADA's legacy fid50k divides by N: an O(1/N) difference"),
        ("kid50k_full", "kid", kid, 1_000_000, "off", inception, True,
         "stylegan2-ada-pytorch: up to 1M reals, no flips; 100 subsets of 1000 without replacement"),
        ("kid50k", "kid", kid, 50_000, "dataset", inception, True,
         "stylegan2-ada-pytorch legacy kid50k: first 50k reals, dataset's own xflip"),
        ("pr50k3_full", "pr", pr, 200_000, "off", vgg, True,
         "stylegan2-ada-pytorch: up to 200k reals, no flips, k=3, <=; float32 distances (ADA: float16)"),
        ("pr50k3", "pr", pr, 50_000, "dataset", vgg, True,
         "StyleGAN2 TF / ADA legacy pr50k3: first 50k reals, k=3, <=; float32 distances (NVIDIA: float16)"),
        ("is50k", "is", ISSettings(num_splits=10), None, "off", "inception-v3-tf-logits", True,
         "stylegan2-ada-pytorch is50k: 50k generated, no reals; softmax of the logits without output bias, 10 "
         "consecutive splits, mean and std of exp(mean KL); torch-fidelity isc with samples_shuffle=False"),
        ("prdc50k5", "prdc", DensityCoverageSettings(k=5), 50_000, "off", vgg, False,
         "sgeval extension (not NVIDIA): Naeem et al. 2020 density/coverage, k=5, strict <, on the pr50k3 VGG16 "
         "fc2 features, equal real and generated counts"),
    ]  # fmt: skip
    return [
        Protocol(
            name=name,
            metric=metric,
            settings=settings,
            num_gen=50_000,
            num_real=num_real,
            real_xflip=flip,
            detector=detector,
            kind="feature",
            official=official,
            reference=reference,
        )
        for name, metric, settings, num_real, flip, detector, official, reference in table
    ]


for _protocol in _builtin_protocols():
    register_protocol(_protocol)
