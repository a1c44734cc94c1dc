"""A procedurally rendered image dataset with known, independent binary factors (`sgmodels dataset factors`).

Each image is one shape on a background, drawn with numpy from a seed (no download, no font, bit-identical on every
machine). Every binary factor is drawn independently with its own base rate, so the set has both balanced and rare
attributes, and the labels are the ground truth (not a classifier's guess):

| name | present (1) | absent (0) | base rate |
|------|-------------|------------|-----------|
| square | a square | a disc | 0.5 |
| red | a reddish shape | a bluish one | 0.4 |
| left | centre in the left half | in the right half | 0.5 |
| large | radius 0.26-0.34 of the side | 0.14-0.22 | 0.3 |
| light_background | light grey background | dark grey | 0.15 |
| striped | horizontal stripes across the shape | plain | 0.08 |
| dot | a small second dot in a corner | none | 0.04 |

Continuous nuisances (the exact position, size, hue and brightness, and pixel noise of sigma 4 grey levels) vary
within each factor value, so a factor is a property of the image, not a lookup. Labels are 0/1 vectors with
`attribute_names` in dataset.json; the images are RGB.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL.Image

__all__ = ["FACTORS", "Factor", "factor_labels", "render_factor_image", "write_factor_dataset"]


@dataclasses.dataclass(frozen=True)
class Factor:
    """One binary factor: its name and the probability that it is present."""

    name: str
    base_rate: float


FACTORS = (Factor("square", 0.5), Factor("red", 0.4), Factor("left", 0.5), Factor("large", 0.3),
           Factor("light_background", 0.15), Factor("striped", 0.08), Factor("dot", 0.04))


def _draw_factors(rng: np.random.Generator, factors: Sequence[Factor]) -> dict[str, bool]:
    return {factor.name: bool(rng.random() < factor.base_rate) for factor in factors}


def render_factor_image(seed: int, index: int, resolution: int = 32,
                        factors: Sequence[Factor] = FACTORS) -> tuple[np.ndarray, list[int]]:
    """(uint8 image [resolution, resolution, 3], 0/1 label per factor) of item `index` of the set of `seed`."""
    rng = np.random.default_rng([seed, index])
    present = _draw_factors(rng, factors)  # first from the item's stream: `factor_labels` draws only these
    side = resolution
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5  # pixel centres
    background = rng.uniform(170, 210) if present.get("light_background") else rng.uniform(30, 70)
    image = np.full((side, side, 3), background)
    radius = side * (rng.uniform(0.26, 0.34) if present.get("large") else rng.uniform(0.14, 0.22))
    left, right = radius + 1, side - radius - 1  # the shape stays inside the image
    cx = rng.uniform(left, side / 2) if present.get("left") else rng.uniform(side / 2, right)
    cy = rng.uniform(left, right)
    if present.get("square"):
        mask = (np.abs(x - cx) <= radius * 0.85) & (np.abs(y - cy) <= radius * 0.85)
    else:
        mask = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    if present.get("striped"):
        mask &= (np.floor(y / max(2.0, side / 16)) % 2) == 0
    colour = (np.array([rng.uniform(170, 230), rng.uniform(30, 90), rng.uniform(20, 70)]) if present.get("red")
              else np.array([rng.uniform(20, 70), rng.uniform(60, 120), rng.uniform(170, 230)]))
    image[mask] = colour
    if present.get("dot"):
        corner = rng.integers(4)
        dx, dy = (side * 0.12 if corner % 2 == 0 else side * 0.88), (side * 0.12 if corner < 2 else side * 0.88)
        image[(x - dx) ** 2 + (y - dy) ** 2 <= (side * 0.07) ** 2] = (235.0, 235.0, 60.0)
    image += rng.normal(0.0, 4.0, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), [int(present[factor.name]) for factor in factors]


def factor_labels(seed: int, index: int, factors: Sequence[Factor] = FACTORS) -> list[int]:
    """The 0/1 label of item `index` of the set of `seed` without rendering it (same draws as the renderer)."""
    present = _draw_factors(np.random.default_rng([seed, index]), factors)
    return [int(present[factor.name]) for factor in factors]


def _image(seed: int, index: int, resolution: int) -> PIL.Image.Image:
    return PIL.Image.fromarray(render_factor_image(seed, index, resolution)[0], mode="RGB")


def write_factor_dataset(out: str | Path, count: int, resolution: int = 32, seed: int = 0,
                         progress: bool = True) -> Path:
    """Write `count` factor images (`render_factor_image`) as a dataset zip at `out` (atomically); returns `out`."""
    from sgmodels.data.dataset_tool import SourceRecord, create_records_dataset

    if count < 1 or resolution < 8:
        raise ValueError(f"need count >= 1 and resolution >= 8, got {count} and {resolution}")
    records = [SourceRecord(name=f"factors[{index}]", load=functools.partial(_image, seed, index, resolution),
                            label=[float(v) for v in factor_labels(seed, index)])
               for index in range(count)]
    create_records_dataset(records, Path(out), attribute_names=[factor.name for factor in FACTORS],
                           progress=progress)
    return Path(out)
