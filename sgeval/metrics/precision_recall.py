"""k-NN manifold metrics: improved precision & recall, and density & coverage.

Improved precision and recall: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models"; reference kynkaat/improved-precision-and-recall-metric, and `pr50k3` in stylegan2 (TF) and
stylegan2-ada-pytorch. Each sample's manifold ball has radius NND_k = distance to its k-th nearest neighbour in its
own set EXCLUDING itself (the (k+1)-th smallest entry of a distance row that contains the 0 self-distance).
precision = fraction of generated samples inside at least one real ball (`<=`), recall = fraction of real samples
inside at least one generated ball (`<=`); k = 3.

Density and coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models";
reference clovaai/generative-evaluation-prdc. Real balls only (k = 5 recommended), strict `<` as in prdc:
density = (1 / (k M)) sum_j #{i : d(real_i, gen_j) < r_i}, coverage = fraction of real balls containing at least one
generated sample. The prdc precision/recall (k = 5, strict) are returned too.

Implementation: the pairwise distances are computed in square blocks of `block_size` rows and columns (torch
matmul via |u|^2 - 2 u.v + |v|^2, clamped at 0), so memory is O(block_size^2 + (N + M) D) and a 50k x 50k x 4096
evaluation never materialises an N x N matrix. Squared distances are compared with squared radii (same ordering,
no square roots). Distances between bit-identical rows (self pairs, exact duplicates, a generated row equal to a
real one) are set to exactly 0, as a direct computation gives (rows are matched by hash and verified exactly, about
a second per 100k rows of 4096 floats). Features are translated so that the real row nearest to the real
mean becomes the origin, which shrinks the norms, and so the cancellation error of the expansion, while keeping
grid-valued (e.g. integer) features exact.

Precision of the distance arithmetic (a protocol setting, default float32): the TF-v2 and ADA `pr50k3` code uses
float16 features and distances; float16 keeps about 3 significant digits, so many distances round onto the radius
and the `<=` test admits them. We use float32 (about 7 digits; TF32/bf16 matmul shortcuts are switched off while
we compute, since TF32 keeps no more mantissa bits than float16), so results are stable and agree with a float64
brute force except for distances within ~1e-6 relative of a radius; "float64" is available for exact comparisons.
Values may therefore differ from ADA's float16 numbers in the third decimal.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch

from sgeval.metrics.registry import ComputeOptions, check_same_dim, feature_matrix, register_metric

__all__ = [
    "DensityCoverage",
    "DensityCoverageSettings",
    "PrecisionRecall",
    "PrecisionRecallSettings",
    "density_coverage",
    "knn_radii",
    "pr",
    "prdc",
    "precision_recall",
]

DistanceDtype = Literal["float32", "float64"]
_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class PrecisionRecallSettings:
    """Protocol settings of improved precision & recall."""

    k: int = 3  # neighbourhood size: radius = distance to the k-th nearest neighbour, self excluded
    distance_dtype: DistanceDtype = "float32"  # arithmetic of the pairwise distances (see module docstring)

    def __post_init__(self) -> None:
        _check_settings(self.k, self.distance_dtype)


@dataclasses.dataclass(frozen=True)
class DensityCoverageSettings:
    """Protocol settings of density & coverage (and prdc's precision/recall)."""

    k: int = 5  # neighbourhood size of the real balls
    distance_dtype: DistanceDtype = "float32"  # arithmetic of the pairwise distances

    def __post_init__(self) -> None:
        _check_settings(self.k, self.distance_dtype)


def _check_settings(k: int, distance_dtype: str) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1 nearest neighbours, got {k}")
    if distance_dtype not in _TORCH_DTYPES:
        raise ValueError(f"distance_dtype must be one of {sorted(_TORCH_DTYPES)}, got {distance_dtype!r}")


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall, fractions in [0, 1]."""

    precision: float  # fraction of generated samples inside the real manifold
    recall: float  # fraction of real samples inside the generated manifold
    k: int  # neighbourhood size used
    num_gen: int  # generated samples
    num_real: int  # real samples


@dataclasses.dataclass(frozen=True)
class DensityCoverage:
    """prdc metrics: precision, recall and coverage in [0, 1]; density >= 0 (1 on matching distributions)."""

    precision: float  # prdc precision: generated samples inside some real ball (strict <)
    recall: float  # prdc recall: real samples inside some generated ball (strict <)
    density: float  # mean number of real balls containing a generated sample, divided by k
    coverage: float  # fraction of real balls that contain at least one generated sample
    k: int  # neighbourhood size used
    num_gen: int  # generated samples
    num_real: int  # real samples


@dataclasses.dataclass
class _Blocks:
    """Features prepared for blocked distance computations on one device."""

    rows: torch.Tensor  # [N, D] features translated to a common origin, in the distance dtype
    sq_norms: torch.Tensor  # [N] squared row norms
    content_ids: torch.Tensor  # [N] int64: equal ids <=> bit-identical input rows (shared by gen and real)
    block_size: int  # rows per block

    def spans(self) -> list[tuple[int, int]]:
        size = self.rows.shape[0]
        return [(start, min(start + self.block_size, size)) for start in range(0, size, self.block_size)]


@contextlib.contextmanager
def _full_float32_matmul() -> Iterator[None]:
    """Force true float32 matmuls (no TF32 / bf16 passes) and restore the caller's setting afterwards."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _origin(real: np.ndarray, chunk_rows: int = 8192) -> np.ndarray:
    """The real row nearest to the real mean, float64 [D]: all features are translated so that it becomes 0.

    Distances are translation invariant; moving the origin into the data shrinks the norms in the expansion
    |u|^2 - 2 u.v + |v|^2 and so its cancellation error. A data row (rather than the mean itself) keeps features
    that live on a grid (e.g. integers) on that grid, so exactly representable distances and ties stay exact.
    """
    mean = real.mean(axis=0, dtype=np.float64)  # [D]
    best_index, best_distance = 0, np.inf
    for start in range(0, real.shape[0], chunk_rows):
        distances = np.square(real[start : start + chunk_rows].astype(np.float64) - mean).sum(axis=1)  # [n]
        index = int(distances.argmin())
        if distances[index] < best_distance:
            best_index, best_distance = start + index, float(distances[index])
    medoid: np.ndarray = real[best_index].astype(np.float64)  # [D]
    return medoid


def _content_ids(arrays: list[np.ndarray], chunk_rows: int = 4096) -> list[np.ndarray]:
    """Row ids [N_s] int64 for each array; two rows (of any of the arrays) share an id iff their values are equal.

    Rows are bucketed by Python's 64-bit hash of their bytes and verified element by element within a bucket, so
    hash collisions cannot merge different rows. -0.0 and 0.0 count as equal. About 1 s per 100k rows of 4096
    float32 values, a small fraction of the distance computation at that size.
    """
    common = np.result_type(*arrays)

    def canonical(rows: np.ndarray) -> np.ndarray:
        canon: np.ndarray = np.ascontiguousarray(rows, dtype=common) + common.type(0)  # +0 turns -0.0 into 0.0
        return canon

    buckets: dict[int, list[tuple[int, int, int]]] = {}  # hash -> [(id, array index, row index)]
    all_ids, next_id = [], 0
    for array_index, array in enumerate(arrays):
        ids = np.empty(array.shape[0], dtype=np.int64)  # [N_s]
        for start in range(0, array.shape[0], chunk_rows):
            for offset, row in enumerate(canonical(array[start : start + chunk_rows])):
                bucket = buckets.setdefault(hash(row.tobytes()), [])
                for known_id, other_array, other_row in bucket:
                    if np.array_equal(canonical(arrays[other_array][other_row]), row):
                        ids[start + offset] = known_id
                        break
                else:  # no equal row seen before: a new id
                    ids[start + offset] = next_id
                    bucket.append((next_id, array_index, start + offset))
                    next_id += 1
        all_ids.append(ids)
    return all_ids


def _prepare(
    features: np.ndarray,
    content_ids: np.ndarray,
    origin: np.ndarray,
    distance_dtype: str,
    options: ComputeOptions,
) -> _Blocks:
    """Copy features [N, D] to the device in the distance dtype, translated by `origin`, chunk by chunk."""
    rows = torch.empty(features.shape, dtype=_TORCH_DTYPES[distance_dtype], device=options.device)  # [N, D]
    sq_norms = torch.empty(features.shape[0], dtype=rows.dtype, device=options.device)  # [N]
    for start in range(0, features.shape[0], options.block_size):
        translated = features[start : start + options.block_size].astype(np.float64) - origin  # [n, D]
        chunk = torch.from_numpy(translated.astype(np.dtype(distance_dtype))).to(options.device)  # [n, D]
        rows[start : start + chunk.shape[0]] = chunk
        sq_norms[start : start + chunk.shape[0]] = chunk.square().sum(dim=1)  # per chunk: no [N, D] temporary
    return _Blocks(
        rows=rows,
        sq_norms=sq_norms,
        content_ids=torch.from_numpy(content_ids).to(options.device),
        block_size=options.block_size,
    )


def _sq_distances(a: _Blocks, a_span: tuple[int, int], b: _Blocks, b_span: tuple[int, int]) -> torch.Tensor:
    """Squared Euclidean distances between rows a[a_span] and b[b_span]: [r, c], clamped at 0.

    Pairs of identical rows (self pairs and exact duplicates) are set to exactly 0: the expansion leaves
    round-off there, and duplicates decide radii (k duplicates give a radius of 0).
    """
    x = a.rows[a_span[0] : a_span[1]]  # [r, D]
    y = b.rows[b_span[0] : b_span[1]]  # [c, D]
    dist = (x @ y.T).mul_(-2.0)  # [r, c]; in place from here on: one r x c buffer per block
    dist.add_(a.sq_norms[a_span[0] : a_span[1], None]).add_(b.sq_norms[None, b_span[0] : b_span[1]])
    same = a.content_ids[a_span[0] : a_span[1], None] == b.content_ids[None, b_span[0] : b_span[1]]  # [r, c]
    return dist.clamp_(min=0.0).masked_fill_(same, 0.0)  # [r, c]


def _kth_sq_radii(blocks: _Blocks, k: int) -> torch.Tensor:
    """Squared distance of each row to its k-th nearest other row of the same set: [N]."""
    num = blocks.rows.shape[0]
    keep = k + 1  # the self-distance 0 occupies one of the smallest entries
    if num < keep:
        raise ValueError(f"k={k} nearest neighbours need at least {keep} samples per set, got {num}")
    radii = torch.empty(num, dtype=blocks.rows.dtype, device=blocks.rows.device)  # [N]
    for row_span in blocks.spans():
        best = None  # [r, <= keep] running smallest squared distances, ascending
        for col_span in blocks.spans():
            dist = _sq_distances(blocks, row_span, blocks, col_span)  # [r, c], self-distances exactly 0
            candidates = dist if best is None else torch.cat([best, dist], dim=1)  # [r, keep + c]
            best = torch.topk(candidates, min(keep, candidates.shape[1]), dim=1, largest=False).values
        assert best is not None and best.shape[1] == keep  # internal invariant: num >= keep checked above
        radii[row_span[0] : row_span[1]] = best[:, k]  # ascending: index k is the (k+1)-th smallest
    return radii


@dataclasses.dataclass
class _BallCounts:
    """Outcome of testing every (real, generated) pair against the balls around real and generated samples."""

    gen_in_real_balls: torch.Tensor  # [M] int64: number of real balls containing each generated sample
    real_ball_nonempty: torch.Tensor  # [N] bool: real ball contains at least one generated sample
    real_in_gen_balls: torch.Tensor  # [N] bool: real sample lies in at least one generated ball


def _ball_counts(
    real: _Blocks, gen: _Blocks, real_sq_radii: torch.Tensor, gen_sq_radii: torch.Tensor, strict: bool
) -> _BallCounts:
    """One blocked pass over the real x generated distances; `strict` selects `<` (prdc) instead of `<=`."""
    inside = torch.lt if strict else torch.le
    device = real.rows.device
    counts = _BallCounts(
        gen_in_real_balls=torch.zeros(gen.rows.shape[0], dtype=torch.int64, device=device),
        real_ball_nonempty=torch.zeros(real.rows.shape[0], dtype=torch.bool, device=device),
        real_in_gen_balls=torch.zeros(real.rows.shape[0], dtype=torch.bool, device=device),
    )
    for r0, r1 in real.spans():
        for g0, g1 in gen.spans():
            dist = _sq_distances(real, (r0, r1), gen, (g0, g1))  # [r, c]: rows real, columns generated
            in_real = inside(dist, real_sq_radii[r0:r1, None])  # [r, c]: gen j inside real ball i
            counts.gen_in_real_balls[g0:g1] += in_real.sum(dim=0)
            counts.real_ball_nonempty[r0:r1] |= in_real.any(dim=1)
            counts.real_in_gen_balls[r0:r1] |= inside(dist, gen_sq_radii[None, g0:g1]).any(dim=1)
    return counts


def _manifold_counts(
    gen: Any, real: Any, k: int, distance_dtype: str, options: ComputeOptions | None, strict: bool
) -> tuple[_BallCounts, int, int]:
    """Validate inputs, build k-NN radii of both sets and run the ball pass; returns (counts, M, N)."""
    options = options or ComputeOptions()
    _check_settings(k, distance_dtype)
    gen_a, real_a = feature_matrix(gen, "generated features"), feature_matrix(real, "real features")
    check_same_dim(gen_a, real_a)
    origin = _origin(real_a)
    gen_ids, real_ids = _content_ids([gen_a, real_a])
    with _full_float32_matmul():
        gen_b = _prepare(gen_a, gen_ids, origin, distance_dtype, options)
        real_b = _prepare(real_a, real_ids, origin, distance_dtype, options)
        counts = _ball_counts(real_b, gen_b, _kth_sq_radii(real_b, k), _kth_sq_radii(gen_b, k), strict)
    return counts, gen_a.shape[0], real_a.shape[0]


def knn_radii(
    features: np.ndarray,
    k: int,
    distance_dtype: DistanceDtype = "float32",
    options: ComputeOptions | None = None,
) -> np.ndarray:
    """Euclidean distance of every row of features [N, D] to its k-th nearest other row (self excluded).

    Returns [N] float64, in feature units. Exact duplicates count as neighbours at distance 0.
    """
    options = options or ComputeOptions()
    _check_settings(k, distance_dtype)
    array = feature_matrix(features)
    with _full_float32_matmul():
        blocks = _prepare(array, _content_ids([array])[0], _origin(array), distance_dtype, options)
        return _kth_sq_radii(blocks, k).sqrt().cpu().numpy().astype(np.float64)


def precision_recall(
    gen: Any,
    real: Any,
    k: int = 3,
    distance_dtype: DistanceDtype = "float32",
    options: ComputeOptions | None = None,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of generated vs real features.

    Args:
        gen: generated features [M, D] (array or object with `.features`).
        real: real features [N, D].
        k: neighbourhood size (3 in pr50k3).
        distance_dtype: "float32" or "float64" distance arithmetic.
        options: device and block size (never change the result).
    """
    counts, num_gen, num_real = _manifold_counts(gen, real, k, distance_dtype, options, strict=False)
    return PrecisionRecall(
        precision=float((counts.gen_in_real_balls > 0).double().mean()),
        recall=float(counts.real_in_gen_balls.double().mean()),
        k=k,
        num_gen=num_gen,
        num_real=num_real,
    )


def density_coverage(
    gen: Any,
    real: Any,
    k: int = 5,
    distance_dtype: DistanceDtype = "float32",
    options: ComputeOptions | None = None,
) -> DensityCoverage:
    """prdc precision, recall, density and coverage (Naeem et al. 2020) of generated vs real features.

    Arguments as `precision_recall`; k = 5 is the prdc recommendation. Comparisons are strict (`<`) as in prdc.
    """
    counts, num_gen, num_real = _manifold_counts(gen, real, k, distance_dtype, options, strict=True)
    return DensityCoverage(
        precision=float((counts.gen_in_real_balls > 0).double().mean()),
        recall=float(counts.real_in_gen_balls.double().mean()),
        density=float(counts.gen_in_real_balls.double().sum() / (k * num_gen)),
        coverage=float(counts.real_ball_nonempty.double().mean()),
        k=k,
        num_gen=num_gen,
        num_real=num_real,
    )


@register_metric(
    "pr",
    kind="feature",
    higher_is_better=True,
    needs="features",
    value_keys=("precision", "recall"),
    primary=None,
    settings_type=PrecisionRecallSettings,
    description="Improved precision & recall: k-NN manifolds, radius excludes self, <= (Kynkäänniemi et al. 2019)",
)
def pr(
    gen: Any, real: Any, settings: PrecisionRecallSettings, options: ComputeOptions | None = None
) -> dict[str, float]:
    """Registered form of `precision_recall`: returns {"precision": p, "recall": r}."""
    result = precision_recall(gen, real, settings.k, settings.distance_dtype, options)
    return {"precision": result.precision, "recall": result.recall}


@register_metric(
    "prdc",
    kind="feature",
    higher_is_better=True,
    needs="features",
    value_keys=("precision", "recall", "density", "coverage"),
    primary=None,
    settings_type=DensityCoverageSettings,
    description="Density & coverage with prdc precision/recall: real k-NN balls, strict < (Naeem et al. 2020)",
)
def prdc(
    gen: Any, real: Any, settings: DensityCoverageSettings, options: ComputeOptions | None = None
) -> dict[str, float]:
    """Registered form of `density_coverage`: returns precision, recall, density and coverage."""
    result = density_coverage(gen, real, settings.k, settings.distance_dtype, options)
    return {
        "precision": result.precision,
        "recall": result.recall,
        "density": result.density,
        "coverage": result.coverage,
    }
