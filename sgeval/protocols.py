"""Named, frozen metric protocols: the official names of the NVIDIA metric code and their exact settings.

A protocol fixes everything that changes a published number apart from the networks and the data: the metric
function and its settings, the generated and real sample counts, whether reals are mirrored, and the feature
detector. Result rows always name their protocol, so numbers are only ever compared under the same settings.

Quick variants (`Protocol.with_counts`): overriding the sample counts yields a protocol with a DERIVED name,
`<official>@gen<G>-real<R>` (e.g. `fid50k_full@gen1k-real2k`, only the overridden counts appear), whose `base` is the
official name and whose `counts_overridden` is True. The derived name keeps quick numbers out of the official
`metric-fid50k_full.jsonl` file and out of the official column of a report, while `base` still groups them.

Mixing variants (`Protocol.with_mixing`, feature protocols only): every generated image mixes K latents at random
crossover layers (StyleGAN Table 2's stress test; sampling defined in `sgeval.sources.mixing`). The name gets a
`mix<K>` part after any count parts (`fid50k_full@mix2`, `fid50k_full@gen1k-mix3`), `mix_latents` records K, and
`counts_overridden` stays False unless the counts differ too. K = 1 is plain sampling and keeps the plain name.

Options (`+<option>`, generator-space protocols): `+eps0.001` (PPL epsilon), `+crop` / `+nocrop` (PPL face crop),
`+<distance name>` change one setting and are recorded in the name, e.g. `ppl_wend+nocrop+lpips-domain`.
`resolve_protocol` is the one reader of this grammar (the CLI, the API and the runner all go through it).

Generator-space protocols (ppl_zfull, ppl_wend, ls, projection, ...) register here with kind "generator"; their
settings dataclasses live beside their metric functions.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from sgeval.metrics.fid import FIDSettings
from sgeval.metrics.kid import KIDSettings
from sgeval.metrics.registry import MetricKind, get_metric

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "list_protocols", "parse_count", "register_protocol",
           "resolve_protocol", "with_option"]

RealFlip = Literal["off", "dataset"]
# The most samples a protocol may ask for: a billion images is about a day of Inception features on a fast GPU and
# weeks on a CPU, so a larger count is a typo, not an evaluation (it would only ever end when it ran out of time).
MAX_SAMPLE_COUNT = 10**9


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
    detector: str | None  # the helper network, as results record it: the feature extractor of a feature protocol, the
    # image distance of PPL, "classifiers" for linear separability (read it as `extractor` / `distance` /
    # `uses_classifiers`)
    kind: MetricKind  # "feature" or "generator", as the metric
    official: bool  # True when name and settings are those of NVIDIA's metric code
    reference: str  # where the settings come from, and deliberate choices
    base: str | None = None  # official protocol this one was derived from (with_counts / with_mixing); None if not
    mix_latents: int = 1  # latents mixed per generated image at random crossovers (StyleGAN Table 2); 1 = plain

    def __post_init__(self) -> None:
        if not 1 <= self.num_gen <= MAX_SAMPLE_COUNT:
            raise ValueError(f"protocol {self.name!r}: num_gen must be between 1 and {MAX_SAMPLE_COUNT:,} (a larger "
                             f"run could never finish), got {self.num_gen:,}")
        if self.num_real is not None and not 1 <= self.num_real <= MAX_SAMPLE_COUNT:
            raise ValueError(f"protocol {self.name!r}: num_real must be between 1 and {MAX_SAMPLE_COUNT:,}, or None "
                             f"(all), got {self.num_real:,}")
        if self.real_xflip not in ("off", "dataset"):
            raise ValueError(f"protocol {self.name!r}: real_xflip must be 'off' or 'dataset', got {self.real_xflip!r}")
        if self.mix_latents < 1:
            raise ValueError(f"protocol {self.name!r}: mix_latents must be >= 1, got {self.mix_latents}")
        if self.mix_latents > 1 and self.kind != "feature":
            raise ValueError(f"protocol {self.name!r}: mixing latents applies to the generated images of feature "
                             f"metrics (FID, KID, precision/recall, IS), not to {self.kind} metrics")

    @property
    def counts_overridden(self) -> bool:
        """True for a quick variant whose sample counts differ from its official protocol."""
        if self.base is None:
            return False
        if self.base not in PROTOCOLS:  # derived outside the registry: counts cannot be compared
            return True
        official = PROTOCOLS[self.base]
        return (self.num_gen, self.num_real) != (official.num_gen, official.num_real)

    @property
    def base_name(self) -> str:
        """The official protocol name (this protocol's own name unless derived)."""
        return self.base or self.name

    def settings_dict(self) -> dict[str, Any]:
        """The metric settings as a JSON-ready dict ({} when the metric has none)."""
        return dataclasses.asdict(self.settings) if self.settings is not None else {}

    @property
    def extractor(self) -> str | None:
        """The feature extractor (sgeval.features) a feature protocol reads; None for generator-space protocols."""
        return self.detector if self.kind == "feature" else None

    @property
    def distance(self) -> str | None:
        """The image distance (sgeval.distances) a generator-space protocol's sampler uses (PPL), else None."""
        if self.kind != "generator" or self.detector is None or "distance" not in self._sampler_networks():
            return None
        return self.detector

    @property
    def uses_classifiers(self) -> bool:
        """Whether the protocol's sampler labels images with attribute classifiers (linear separability)."""
        return self.kind == "generator" and "classifiers" in self._sampler_networks()

    def _sampler_networks(self) -> tuple[str, ...]:
        from sgeval.samplers import get_sampler

        networks: tuple[str, ...] = get_sampler(self.metric).networks
        return networks

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
            "mix_latents": self.mix_latents,
        }

    def with_counts(self, num_gen: int | None = None, num_real: int | None = None) -> Protocol:
        """Quick variant with other sample counts (None keeps a count); see the module docstring for the name.

        Returns `self` when nothing changes. Deriving from a derived protocol starts again from its base counts,
        so names never stack (`fid50k_full@gen1k@gen2k` cannot happen).
        """
        official = get_protocol(self.base_name) if self.base is not None else self
        new_gen = official.num_gen if num_gen is None else int(num_gen)
        new_real = official.num_real if num_real is None else int(num_real)
        return official._derive(new_gen, new_real, self.mix_latents)

    def with_mixing(self, mix_latents: int) -> Protocol:
        """Variant whose generated images each mix `mix_latents` latents (module docstring); keeps the counts.

        K = 1 gives the plain protocol (plain name). Raises ValueError for K < 1 or a generator-space protocol.
        """
        official = get_protocol(self.base_name) if self.base is not None else self
        return official._derive(self.num_gen, self.num_real, int(mix_latents))

    def _derive(self, num_gen: int, num_real: int | None, mix_latents: int) -> Protocol:
        """This (official) protocol with other counts and mixing, named `<name>@gen..-real..-mix..`; `self` if equal."""
        parts = []
        if num_gen != self.num_gen:
            parts.append(f"gen{_count_label(num_gen)}")
        if num_real != self.num_real:
            parts.append(f"real{_count_label(num_real)}")
        if mix_latents != self.mix_latents:
            parts.append(f"mix{mix_latents}")
        if not parts:
            return self
        return dataclasses.replace(
            self,
            name=f"{self.name}@{'-'.join(parts)}",
            num_gen=num_gen,
            num_real=num_real,
            base=self.name,
            mix_latents=mix_latents,
        )


def _count_label(count: int | None) -> str:
    """Compact count for derived names: 1000 -> "1k", 1500 -> "1500", None -> "all"."""
    if count is None:
        return "all"
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


# ---------------------------------------------------------------------------------------------------------------
# The name grammar: `<official>[@gen<N>-real<N>-mix<K>][+<option>...]` (see the module docstring)

_DERIVED_PART = r"(?:gen|real|mix)[0-9a-z]+"  # gen<count>, real<count>, mix<K>; see Protocol.with_counts / with_mixing
_DERIVED = re.compile(rf"^(?P<base>[A-Za-z0-9_]+)@(?P<parts>{_DERIVED_PART}(?:-{_DERIVED_PART}){{0,2}})$")


def parse_count(label: str) -> int | None:
    """A count as written in derived protocol names and on the command line: "2k" -> 2000, "500" -> 500, "all" -> None.

    Raises ValueError for anything else (or a count below 1).
    """
    text = str(label).strip().lower()
    if text == "all":
        return None
    scale = 1000 if text.endswith("k") else 1
    digits = text[:-1] if scale == 1000 else text
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"not a sample count: {label!r} (expected e.g. 500, 2k or all)")
    return int(digits) * scale


def resolve_protocol(protocol: str | Protocol, num_gen: int | None = None, num_real: int | None = None,
                     mix_latents: int | None = None) -> Protocol:
    """The Protocol for a name (official, or derived like "fid50k_full@gen1k-real2k" or "fid50k_full@gen1k-mix2")
    with optional count and mixing overrides.

    Overrides give the variants of `Protocol.with_counts` / `Protocol.with_mixing` (their names record them; a
    mixing of 1 is plain sampling). Unknown names raise ValueError listing the valid protocols.
    """
    options: list[str] = []
    if isinstance(protocol, Protocol):
        resolved = protocol
    else:
        protocol, *options = protocol.split("+")
        match = _DERIVED.match(protocol)
        if match is None:
            resolved = get_protocol(protocol)
        else:
            counts: dict[str, int | None] = {}
            mix = 1
            for part in match.group("parts").split("-"):
                if part.startswith("mix"):
                    mix = _parse_mix(part)
                    continue
                side = "gen" if part.startswith("gen") else "real"
                counts[f"num_{side}"] = parse_count(part[len(side):])
            resolved = get_protocol(match.group("base")).with_counts(**counts).with_mixing(mix)
    if num_gen is not None or num_real is not None:
        resolved = resolved.with_counts(num_gen=num_gen, num_real=num_real)
    if mix_latents is not None:
        resolved = resolved.with_mixing(mix_latents)
    if resolved.kind == "feature" and resolved.detector is None:
        raise ValueError(f"protocol {resolved.name!r} names no feature detector")
    for option in options:
        resolved = with_option(resolved, option)
    return resolved


def _parse_mix(part: str) -> int:
    """The K of a `mix<K>` name part (latents mixed per generated image, K >= 1)."""
    if not part[3:].isdigit() or int(part[3:]) < 1:
        raise ValueError(f"not a number of mixed latents: {part!r} (expected mix<K> with K >= 1, e.g. mix2)")
    return int(part[3:])


def _replace_setting(protocol: Protocol, **changes: Any) -> Any:
    try:
        return dataclasses.replace(protocol.settings, **changes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"protocol {protocol.name!r}: cannot set {changes}: {error}") from None


def with_option(protocol: Protocol, option: str) -> Protocol:
    """A generator protocol with one setting changed, named `<protocol>+<option>`: `+eps0.001` (PPL epsilon),
    `+crop` / `+nocrop` (PPL face crop), `+<distance name>` (e.g. `ppl_wend+lpips-vgg`). The name keeps such
    numbers apart from the official ones; `base` still groups them."""
    if protocol.kind != "generator":
        raise ValueError(f"protocol {protocol.name!r}: '+{option}' options apply to generator-space protocols only")
    if option in ("crop", "nocrop"):
        changed = dataclasses.replace(protocol, settings=_replace_setting(protocol, crop=option == "crop"))
    elif option.startswith("eps"):
        try:
            epsilon = float(option[3:])
        except ValueError:
            raise ValueError(f"protocol option '+{option}': expected eps<number>, e.g. eps0.001") from None
        changed = dataclasses.replace(protocol, settings=_replace_setting(protocol, epsilon=epsilon))
    else:
        from sgeval.distances import list_distances

        known = [spec.name for spec in list_distances()]
        if option not in known:
            raise ValueError(f"protocol option '+{option}' is neither eps<number> nor an image distance "
                             f"({', '.join(known)})")
        changed = dataclasses.replace(protocol, detector=option)
    return dataclasses.replace(changed, name=f"{protocol.name}+{option}", official=False,
                               base=protocol.base_name)


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
    """The official feature protocols (docs/metrics.md sections 3-7), plus one documented extension."""
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


# PPL distance of the reference code: NVIDIA's LPIPS VGG16 (vgg16_zhang_perceptual.pkl; vgg16.pt in ADA)
PPL_DISTANCE = "lpips-vgg16-nvidia"


def _ppl_protocols() -> list[Protocol]:
    """PPL (docs/metrics.md section 9.4): the official TF-v2 names, and the TF-v1 and ADA settings under suffixes.

    The official names keep StyleGAN2's settings (50k pairs, 4 per noise realisation, box factor of the cropped
    size): they are what StyleGAN2 and most later papers report. StyleGAN (v1) drew 100k pairs, 16 per noise
    realisation (`_v1`); stylegan2-ada-pytorch and stylegan3 use 2 per realisation and take the box factor from the
    uncropped resolution, so their cropped numbers are not comparable with TF ones (`_ada`).
    """
    from sgeval.metrics.ppl import Downsample, PPLSettings

    variants: list[tuple[str, int, int, Downsample, bool, str]] = [  # suffix, num_gen, pairs/noise, box, official
        ("", 50_000, 4, "tf", True, "StyleGAN2 TF metrics/perceptual_path_length.py (minibatch 4 per GPU)"),
        ("_v1", 100_000, 16, "tf", False, "StyleGAN TF (v1): 100k pairs, minibatch 16 per GPU, crop always"),
        ("_ada", 50_000, 2, "ada", False, "stylegan2-ada-pytorch / stylegan3: batch 2, box factor from the uncropped "
                                          "resolution (cropped 1024^2 images end at 128^2, not 256^2)"),
    ]  # fmt: skip
    protocols = []
    for suffix, num_gen, pairs, downsample, official, where in variants:
        for space in ("z", "w"):
            for sampling in ("full", "end"):
                settings = PPLSettings(space=space, sampling=sampling, crop=True, downsample=downsample,
                                       pairs_per_noise=pairs, interpolation=_interpolation(downsample))
                protocols.append(_ppl_protocol(f"ppl_{space}{sampling}{suffix}", settings, num_gen, official,
                                               f"{where}; face crop"))
        if suffix != "_v1":  # ppl2: StyleGAN2's un-cropped W end-point PPL (LSUN; StyleGAN2 Table 1)
            settings = PPLSettings(space="w", sampling="end", crop=False, downsample=downsample, pairs_per_noise=pairs,
                                   interpolation=_interpolation(downsample))
            protocols.append(_ppl_protocol(f"ppl2_wend{suffix}", settings, num_gen, official, f"{where}; no crop"))
    return protocols


def _interpolation(downsample: str) -> Literal["tf", "torch"]:
    """The W interpolation of the code a PPL variant follows: torch.lerp in stylegan2-ada-pytorch, TF's elsewhere."""
    return "torch" if downsample == "ada" else "tf"


def _ppl_protocol(name: str, settings: Any, num_gen: int, official: bool, reference: str) -> Protocol:
    return Protocol(name=name, metric="ppl", settings=settings, num_gen=num_gen, num_real=None, real_xflip="off",
                    detector=PPL_DISTANCE, kind="generator", official=official,
                    reference=f"{reference}; epsilon 1e-4, 1st/99th percentile filter, float images, no truncation")


# the helper network of the LS sampler: attribute classifiers given per run (`classifiers=`, `sgeval ls --classifiers`)
LS_CLASSIFIERS = "classifiers"


def _ls_protocols() -> list[Protocol]:
    """Linear separability (docs/metrics.md section 10): StyleGAN TF's `ls`, 200k samples, the most confident half."""
    from sgeval.metrics.separability import LSSettings

    return [Protocol(name="ls", metric="ls", settings=LSSettings(), num_gen=200_000, num_real=None, real_xflip="off",
                     detector=LS_CLASSIFIERS, kind="generator", official=True,
                     reference="StyleGAN / StyleGAN2 TF metrics/linear_separability.py: 200k samples, top 100k by "
                               "classifier confidence per attribute, LinearSVC (dual=True) on z and last-layer w, "
                               "2^(sum of H(Y|X) in bits); float images, random noise, no truncation")]


# the feature extractor of a detector trained by `sgeval detector train` (its file is given per run)
DOMAIN_DETECTOR = "domain"


def _domain_protocols() -> list[Protocol]:
    """Domain FD / KD / precision-recall: the `*_full` settings of FID, KID and P&R on the project's own detector.

    Named fd_/kd_/pr_domain, never fid or kid: the numbers are in that detector's feature units, comparable only
    between results recording the same detector sha256 (every result does).
    """
    from sgeval.metrics.precision_recall import PrecisionRecallSettings

    # name, metric, settings, num_real (None = all), reference
    table: list[tuple[str, str, Any, int | None, str]] = [
        ("fd_domain", "fd", FIDSettings(cov_ddof=0), None, "fid50k_full's settings: all reals, no flips, cov / N"),
        ("kd_domain", "kd", KIDSettings(num_subsets=100, max_subset_size=1000), 1_000_000,
         "kid50k_full's settings: up to 1M reals, no flips, 100 subsets of 1000"),
        ("pr_domain", "pr", PrecisionRecallSettings(k=3, distance_dtype="float32"), 200_000,
         "pr50k3_full's settings: up to 200k reals, no flips, k=3, float32 distances"),
    ]  # fmt: skip
    return [Protocol(name=name, metric=metric, settings=settings, num_gen=50_000, num_real=num_real,
                     real_xflip="off", detector=DOMAIN_DETECTOR, kind="feature", official=False,
                     reference=f"sgeval extension: {where}, on a domain detector (`sgeval detector train`)")
            for name, metric, settings, num_real, where in table]


for _protocol in [*_builtin_protocols(), *_ppl_protocols(), *_ls_protocols(), *_domain_protocols()]:
    register_protocol(_protocol)
