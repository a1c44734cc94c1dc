"""What the ablation suites train and measure: rows of the StyleGAN paper's Tables 2-4 and Fig. 5, and scales.

A *row* is one generator configuration (a preset plus overrides); a *suite* is a list of rows and the metrics the
paper reports for them; a *scale* says on which data, at which resolution, for how long and with which measuring
stick (official detectors on GPU, or the project's own domain detector offline on a CPU) they are run.

Rows shared by several suites (config E is the 0 % row of Table 2 and a row of Table 3) are trained once: a run is
identified by its configuration, not by the suite that asked for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ROWS", "SCALES", "SUITES", "Row", "Scale", "Suite", "run_key", "suite_rows", "training_preset"]


@dataclasses.dataclass(frozen=True)
class Row:
    """One generator configuration of the paper."""

    key: str  # run identity (folder name), e.g. "E-mix0"
    label: str  # the paper's row label (paper_tables.csv `row`)
    arch: str  # sgmodels preset family: "stylegan" or "traditional"
    overrides: Mapping[str, Any]  # preset overrides (sgmodels.presets OVERRIDES names)
    space: str  # latent space of its PPL and separability: "w", or "z" for a generator without mapping

    def describe(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.overrides.items())
        return f"{self.arch} ({settings})" if settings else self.arch


def _v1(key: str, label: str, noise: str, mixing: float) -> Row:
    return Row(key, label, "stylegan", {"noise": noise, "mixing": mixing}, "w")


def _depth(layers: int) -> Row:
    """Table 4's style-based rows: config F (noise, mixing 90 %) with a mapping network of `layers` layers; with none,
    the styles come from the normalised z, so paths and separability are measured in Z (as the paper does)."""
    return Row(f"F-map{layers}", f"style-based, {layers} mapping layers", "stylegan",
               {"noise": "all", "mixing": 0.9, "map_layers": layers}, "w" if layers else "z")


ROWS: dict[str, Row] = {row.key: row for row in [
    Row("B-traditional", "B Traditional generator", "traditional", {}, "z"),
    _v1("D-nonoise", "D Style-based generator", "none", 0.0),
    _v1("E-mix0", "E + Add noise inputs", "all", 0.0),
    _v1("E-mix50", "+ Mixing 50%", "all", 0.5),
    _v1("F-mix90", "F + Mixing 90%", "all", 0.9),
    _v1("E-mix100", "mixing 100%", "all", 1.0),
    _v1("F-noise-none", "no noise", "none", 0.9),
    _v1("F-noise-coarse", "noise in coarse layers", "coarse", 0.9),
    _v1("F-noise-fine", "noise in fine layers", "fine", 0.9),
    Row("B-map8", "traditional generator, 8 mapping layers", "traditional", {"map_layers": 8}, "w"),
    *[_depth(layers) for layers in (0, 1, 2, 8)],
]}


@dataclasses.dataclass(frozen=True)
class Suite:
    """One table (or figure) of the paper: its rows and what is measured on them."""

    name: str  # "mixing", "noise", "placement", "mapping"
    title: str  # for reports
    rows: tuple[str, ...]  # ROWS keys
    paper_rows: Mapping[str, str]  # ROWS key -> the paper's row label in paper_tables.csv (table given below)
    paper_table: str | None  # paper_tables.csv `table` ("table2", "table3", "table4") or None (a figure)
    metrics: tuple[str, ...]  # "fd", "fd_mix" (1-4 mixed latents), "ppl_full", "ppl_end", "ls"


SUITES: dict[str, Suite] = {suite.name: suite for suite in [
    Suite("mixing", "StyleGAN Table 2: mixing regularisation vs FID with 1-4 mixed latents",
          ("E-mix0", "E-mix50", "F-mix90", "E-mix100"),
          {"E-mix0": "E mixing 0%", "E-mix50": "mixing 50%", "F-mix90": "F mixing 90%", "E-mix100": "mixing 100%"},
          "table2", ("fd_mix",)),
    Suite("noise", "StyleGAN Table 3: perceptual path length and separability",
          ("B-traditional", "D-nonoise", "E-mix0", "E-mix50", "F-mix90"),
          {"B-traditional": "B Traditional generator", "D-nonoise": "D Style-based generator",
           "E-mix0": "E + Add noise inputs", "E-mix50": "+ Mixing 50%", "F-mix90": "F + Mixing 90%"},
          "table3", ("fd", "ppl_full", "ppl_end", "ls")),
    Suite("placement", "StyleGAN Fig. 5: noise in all, no, coarse or fine layers",
          ("F-mix90", "F-noise-none", "F-noise-coarse", "F-noise-fine"), {}, None, ("fd", "ppl_full", "ppl_end")),
    # The traditional rows are measured in the space the paper gives both values for where it has one: Z without a
    # mapping network, W with one (the paper also lists Traditional 8 in Z). The depths are explicit: at the CPU
    # scale the presets' own depth is 2, so config F of the other suites is this table's 2-layer row, not its
    # 8-layer one (F-map2 repeats F-mix90's configuration under its own name).
    Suite("mapping", "StyleGAN Table 4: mapping network depth",
          ("B-traditional", "B-map8", "F-map0", "F-map1", "F-map2", "F-map8"),
          {"B-traditional": "B Traditional 0", "B-map8": "Traditional 8", "F-map0": "Style-based 0",
           "F-map1": "Style-based 1", "F-map2": "Style-based 2", "F-map8": "F Style-based 8"},
          "table4", ("fd", "ppl_full", "ppl_end", "ls")),
]}


def suite_rows(names: list[str]) -> list[Row]:
    """The distinct rows the given suites need, in first-use order."""
    keys = dict.fromkeys(key for name in names for key in SUITES[name].rows)
    return [ROWS[key] for key in keys]


@dataclasses.dataclass(frozen=True)
class Scale:
    """Where and how long the suites run, and what measures them."""

    name: str  # "cpu", "quick", "paper"
    resolution: int  # training resolution (a preset `cpu<R>` or the paper's)
    preset_config: str  # sgmodels preset config of every row ("cpu32", "f"; see `training_preset`)
    kimg: float  # training length of every run
    seeds: int  # runs per row
    batch: int | None  # training batch (None: the preset's)
    num_gen: int  # generated images (FD) / pairs (PPL)
    num_ls: int  # separability samples
    mixed_latents: tuple[int, ...]  # Table 2 columns
    stick: str  # "domain": the project's own detector and distance; "official": Inception, vgg16.pt, CelebA-HQ
    tick_kimg: float  # progress and snapshot granularity
    notes: str  # shown in the report
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # preset overrides of every row
    detector_options: tuple[str, ...] = ()  # extra options of `sgeval detector train`
    classifier_options: tuple[str, ...] = ()  # extra options of `sgeval classifiers train`
    traditional_preset: tuple[str, str] | None = None  # (arch, config) of the traditional rows when sgmodels has no
    # `traditional` preset at this scale (the paper's: StyleGAN's config B, `stylegan-b`)

    def with_changes(self, **changes: Any) -> Scale:
        return dataclasses.replace(self, **changes)


def training_preset(row: Row, scale: Scale) -> tuple[str, str]:
    """(sgmodels arch, preset config) a row trains with at a scale."""
    if row.arch == "traditional" and scale.traditional_preset is not None:
        return scale.traditional_preset
    return row.arch, scale.preset_config


def _effective_configuration(row: Row, scale: Scale) -> tuple[Any, ...]:
    """What a run of this row at this scale trains: the preset after every override (ValueError when invalid)."""
    from sgmodels.presets import apply_overrides, get_preset

    arch, config = training_preset(row, scale)
    overrides = {**scale.overrides, **row.overrides}
    if scale.batch is not None:
        overrides["batch"] = scale.batch
    network, training = apply_overrides(get_preset(arch, config), overrides)
    return arch, network, sorted(training.items(), key=lambda item: item[0])


def run_key(row: Row, scale: Scale) -> str:
    """The row whose run folders hold this row's runs at this scale: the first row of ROWS that trains exactly the
    same configuration. Rows that name a setting the scale's preset already has share runs: at the CPU scale the
    presets map with 2 layers, so Table 4's `F-map2` is `F-mix90`; at the paper's, `F-map8` is. Nothing is trained
    twice (at the paper's scale a run is a week on 8 GPUs)."""
    configuration = _effective_configuration(row, scale)
    return next(other.key for other in ROWS.values() if _effective_configuration(other, scale) == configuration)


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Short CPU runs train at full resolution from the start: the presets' progressive schedule (20 kimg per phase)
# would not reach the output resolution within the budget, and every row gets the same treatment.
_FLAT = {"progressive": False}

SCALES: dict[str, Scale] = {scale.name: scale for scale in [
    Scale("cpu", 16, "cpu16", 40.0, 3, None, 5000, 10_000, (1, 2, 3, 4), "domain", 10.0,
          "Fashion-MNIST 16x16 on 2 CPU cores (no progressive growing; about 2.3 s/kimg), 40 kimg per run, 3 seeds, "
          "measured with the project's own domain detector", _FLAT, ("--max-items", "20000", "--epochs", "3"),
          ("--max-items", "20000", "--epochs", "3")),
    Scale("quick", 16, "cpu16", 2.0, 1, None, 300, 600, (1, 2, 4), "domain", 1.0,
          "smoke run: 16x16, 2 kimg, one seed; the numbers say nothing, the pipeline is exercised", _FLAT,
          ("--max-items", "3000", "--epochs", "1"), ("--max-items", "3000", "--epochs", "1")),
    Scale("paper", 1024, "f", 25_000.0, 1, None, 50_000, 200_000, (1, 2, 3, 4), "official", 100.0,
          "the paper's setting (FFHQ 1024x1024, 8 GPUs, official Inception, vgg16.pt and CelebA-HQ classifiers)",
          traditional_preset=("stylegan", "b")),
]}
