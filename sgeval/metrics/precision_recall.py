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

Implementation: the pairwise distances are computed in square blocks of B rows and columns (torch matmul via
|u|^2 - 2 u.v + |v|^2, clamped at 0), B = `ComputeOptions.block_size` capped by a working-memory budget
(`ComputeOptions.memory_mib`, default 1 GiB; `plan_blocks`). Squared distances are compared with squared radii (same
ordering, no square roots). Distances between bit-identical rows (self pairs, exact duplicates, a generated row
equal to a real one) are set to exactly 0, as a direct computation gives (rows are matched by hash and verified
exactly, about a second per 100k rows of 4096 floats). Features are translated so that the real row nearest to the
real mean becomes the origin, which shrinks the norms, and so the cancellation error of the expansion, while keeping
grid-valued (e.g. integer) features exact.

Memory: the inputs are read in place; each block of rows is translated into a reused [B, D] buffer when it is needed
(float32 inputs in one float32 subtraction, bit-identical to the float64 route), distances go to one reused [B, B]
buffer, radii come from a running top-(k+1) per row, and balls are tested a chunk of rows at a time keeping only the
hits. Beyond the inputs a call needs about B^2 s + 2 B D s bytes (s = 4 for float32) plus small temporaries: 841
MiB for 50k x 50k x 4096 in float32 (B = 10,000): 2.35 GiB together with the two 0.8 GB inputs. The cost is
one float32 subtraction per feature block used (about 1 % of the matmuls). On GPUs both sets are kept
translated on the device instead (moving blocks again would cost more than their matmul).

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
import math
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch

from sgeval.metrics.registry import (
    DEFAULT_MEMORY_MIB,
    ComputeOptions,
    check_same_dim,
    feature_matrix,
    register_metric,
)

__all__ = [
    "DEFAULT_BLOCK_MEMORY_MIB",
    "BlockPlan",
    "DensityCoverage",
    "DensityCoverageSettings",
    "PrecisionRecall",
    "PrecisionRecallSettings",
    "density_coverage",
    "knn_radii",
    "plan_blocks",
    "pr",
    "prdc",
    "precision_recall",
]

DistanceDtype = Literal["float32", "float64"]
_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_ITEMSIZE = {"float32": 4, "float64": 8}

DEFAULT_BLOCK_MEMORY_MIB = DEFAULT_MEMORY_MIB  # working-memory budget of the blocked passes (`plan_blocks`)


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


_PAIR_TEMP_BYTES = 17  # per (row, column) pair of a compared chunk: a bool mask (1) + worst-case hit indices (2 x 8)
_TRANSLATE_ROWS = 256  # rows translated at once through float64 on the general (non-float32-exact) path
_SETUP_ROWS = 256  # rows per chunk when finding the origin and the content ids
_ROW_VECTOR_BYTES = 64  # per input row: norms, radii, content ids, counts, flags, shared-row indices (upper bound)
_ROW_SETUP_BYTES = 512  # per input row while content ids are assigned (hash buckets; ~330 measured)
_VALIDATE_ROWS = 8192  # rows per chunk of the finiteness check (registry.feature_matrix)
_MIN_BLOCK_ROWS, _MIN_CHUNK_ROWS = 32, 16  # floors that keep a budget too small to meet from crawling


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """Tiling of the blocked distance passes and the largest working memory it needs, in bytes (`plan_blocks`).

    The input features are read in place and never copied whole, so they are not counted. During a pass the
    device holds one distance block [B, B], a translated row block and column block [B, D] (on non-CPU devices
    both sets are also kept translated whole, [N + M, D], as moving blocks to the device again would cost more
    than the matmul), the temporaries of comparing `chunk_rows` rows of a distance block with the radii (a boolean
    mask and, at worst, the int64 index pairs of all its hits), a float64 translation chunk, and O(N + M) vectors.
    Before the passes, validation and set-up (the origin, the content ids) work in chunks of rows, and the largest
    of the two phases is the bound (`working_bytes`).
    """

    block_rows: int  # B: rows and columns per distance block
    chunk_rows: int  # rows of a distance block compared with the radii at once
    dim: int  # D
    itemsize: int  # bytes per distance and per translated feature value (4 float32, 8 float64)
    total_rows: int  # N + M rows of both sets
    held_rows: int  # rows kept translated whole on the device (N + M on non-CPU devices, else 0)

    @property
    def distance_bytes(self) -> int:
        return self.block_rows * self.block_rows * self.itemsize

    @property
    def feature_bytes(self) -> int:
        return (self.held_rows + 2 * self.block_rows) * self.dim * self.itemsize

    @property
    def temporary_bytes(self) -> int:
        return self.chunk_rows * self.block_rows * _PAIR_TEMP_BYTES + 2 * _TRANSLATE_ROWS * self.dim * 8

    @property
    def vector_bytes(self) -> int:
        return self.total_rows * _ROW_VECTOR_BYTES

    @property
    def pass_bytes(self) -> int:
        """Peak of the distance passes: distance block, feature blocks and comparison temporaries."""
        return self.distance_bytes + self.feature_bytes + self.temporary_bytes

    @property
    def setup_bytes(self) -> int:
        """Peak before the passes: validation chunk, float64 origin chunks, content-id buckets."""
        return self.dim * max(_VALIDATE_ROWS, 2 * _SETUP_ROWS * 8) + self.total_rows * _ROW_SETUP_BYTES

    @property
    def working_bytes(self) -> int:
        """Upper bound of the memory the computation allocates beyond its inputs."""
        return max(self.pass_bytes, self.setup_bytes) + self.vector_bytes


def plan_blocks(
    num_gen: int,
    num_real: int,
    dim: int,
    distance_dtype: str = "float32",
    options: ComputeOptions | None = None,
    memory_mib: float | None = None,
) -> BlockPlan:
    """Block size for two sets of num_gen and num_real rows of dim features within a working-memory budget.

    Of `memory_mib` (None: `options.memory_mib`, 1 GiB by default), less the small fixed costs, 7/8 go to the
    distance block and the two feature blocks: B is the largest size <= `options.block_size` (and <= the larger
    set) that fits there; the last eighth bounds the comparison temporaries, which sets `chunk_rows`. Budgets
    below the fixed costs and the set-up (about 0.6 KB per row plus 8192 D bytes) cannot be met: `working_bytes`
    then exceeds them (blocks keep at least 32 rows and chunks 16, unless `options.block_size` is smaller).
    At the default 1 GiB, float32 and D = 4096 that is B = 10,000 (the default block size; 841 MiB planned for
    50k + 50k rows); float64 gives B = 7,379. The plan changes the tiling only, never a result beyond float round-off
    (tests check block-size independence).
    """
    options = options or ComputeOptions()
    _check_settings(1, distance_dtype)
    memory_mib = options.memory_mib if memory_mib is None else memory_mib
    if not memory_mib > 0:
        raise ValueError(f"memory_mib must be a positive number of MiB, got {memory_mib}")
    itemsize = _ITEMSIZE[distance_dtype]
    total = num_gen + num_real
    # Fixed costs first (translation chunk, per-row vectors); of the rest, 7/8 for the blocks, 1/8 for comparisons.
    rest = max(memory_mib * 2**20 - 2 * _TRANSLATE_ROWS * dim * 8 - total * _ROW_VECTOR_BYTES, 0.0)
    # B^2 s + 2 B D s <= 7/8 rest  <=>  B <= sqrt(D^2 + 7/8 rest / s) - D
    fit = math.floor(math.sqrt(dim * dim + rest * 7 / 8 / itemsize) - dim)
    largest = min(options.block_size, max(num_gen, num_real, 1))
    block = min(largest, max(fit, _MIN_BLOCK_ROWS))
    chunk = min(block, max(math.floor(rest / 8 / (block * _PAIR_TEMP_BYTES)), _MIN_CHUNK_ROWS))
    held = num_gen + num_real if torch.device(options.device).type != "cpu" else 0
    return BlockPlan(block_rows=block, chunk_rows=chunk, dim=dim, itemsize=itemsize, total_rows=total,
                     held_rows=held)


def _spans(num: int, block: int) -> list[tuple[int, int]]:
    return [(start, min(start + block, num)) for start in range(0, num, block)]


@contextlib.contextmanager
def _full_float32_matmul() -> Iterator[None]:
    """Force true float32 matmuls (no TF32 / bf16 passes) and restore the caller's setting afterwards."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _origin(real: np.ndarray, chunk_rows: int = _SETUP_ROWS) -> np.ndarray:
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


def _content_ids(arrays: list[np.ndarray], chunk_rows: int = _SETUP_ROWS) -> list[np.ndarray]:
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


def _shared_rows(ids: list[np.ndarray]) -> list[np.ndarray]:
    """For each id array: sorted indices of the rows whose id also belongs to some other row (of any array)."""
    counts = np.bincount(np.concatenate(ids))
    return [np.flatnonzero(counts[array] > 1) for array in ids]


@dataclasses.dataclass(frozen=True)
class _Origin:
    """The translation applied to every row before its distances are computed."""

    values: np.ndarray  # [D] float64 (a real row, see `_origin`)
    np_dtype: np.dtype  # distance dtype
    exact: torch.Tensor | None  # [D] the origin in the distance dtype on the device, when representable exactly


def _make_origin(values: np.ndarray, distance_dtype: str, device: torch.device) -> _Origin:
    np_dtype = np.dtype(distance_dtype)
    rounded = values.astype(np_dtype)
    exact = torch.from_numpy(rounded).to(device) if np.array_equal(rounded.astype(np.float64), values) else None
    return _Origin(values=values, np_dtype=np_dtype, exact=exact)


def _translate_into(out: torch.Tensor, rows: np.ndarray, origin: _Origin) -> torch.Tensor:
    """out [n, D] = rows [n, D] - origin in the distance dtype, bit-identical to float(float64(rows) - origin).

    When rows and origin are already exact in the distance dtype, one subtraction in that dtype gives the same
    correctly rounded result (float32: the float64 difference of two float32 values is exact, or so lopsided that
    both roundings return the larger one), without a float64 copy; float32 rows widen exactly for float64
    distances. Otherwise (float64 rows, float32 distances) float64 chunks of 256 rows.
    """
    same = rows.dtype == origin.np_dtype
    if origin.exact is not None and (same or (rows.dtype == np.float32 and origin.np_dtype == np.float64)):
        with warnings.catch_warnings():  # read-only inputs (memory-mapped caches) are only read here
            warnings.simplefilter("ignore", UserWarning)
            source = torch.from_numpy(np.ascontiguousarray(rows))
        if same:
            torch.sub(source.to(out.device), origin.exact, out=out)
        else:
            out.copy_(source).sub_(origin.exact)
        return out
    for start in range(0, rows.shape[0], _TRANSLATE_ROWS):
        chunk = (rows[start : start + _TRANSLATE_ROWS].astype(np.float64) - origin.values).astype(origin.np_dtype)
        out[start : start + chunk.shape[0]].copy_(torch.from_numpy(chunk))
    return out


@dataclasses.dataclass
class _Side:
    """One feature set prepared for the blocked passes; rows are translated block by block (or held, off CPU)."""

    features: np.ndarray  # [N, D] input rows, read in place
    origin: _Origin
    sq_norms: torch.Tensor  # [N] squared norms of the translated rows, distance dtype
    content_ids: torch.Tensor  # [N] int64: equal ids <=> bit-identical input rows (shared by gen and real)
    shared_rows: np.ndarray  # sorted indices of rows whose id also belongs to another row (duplicates)
    held: torch.Tensor | None  # [N, D] translated rows kept on a non-CPU device, else None

    @property
    def num(self) -> int:
        return int(self.features.shape[0])


class _Workspace:
    """The buffers every block reuses (allocated on first use, once per call): feature blocks and a distance block.

    Reusing them keeps the memory at the plan's bound and avoids faulting in fresh pages for every block.
    """

    def __init__(self, plan: BlockPlan, dtype: torch.dtype, device: torch.device) -> None:
        self.plan, self.dtype, self.device = plan, dtype, device
        self._buffers: dict[str, torch.Tensor] = {}
        self._contents: dict[str, tuple[int, tuple[int, int]]] = {}  # buffer -> (id of the side, span) it holds

    def buffer(self, name: str, rows: int, cols: int) -> torch.Tensor:
        """A contiguous [rows, cols] view of the named flat buffer (sized for a full block)."""
        if name not in self._buffers:
            size = self.plan.block_rows * (self.plan.block_rows if name == "distances" else self.plan.dim)
            self._buffers[name] = torch.empty(size, dtype=self.dtype, device=self.device)
        return self._buffers[name][: rows * cols].view(rows, cols)

    def features(self, side: _Side, span: tuple[int, int], name: str) -> torch.Tensor:
        """Translated rows side[span] [n, D]: a view of the held rows, or translated into buffer `name`."""
        if side.held is not None:
            return side.held[span[0] : span[1]]
        out = self.buffer(name, span[1] - span[0], self.plan.dim)
        if self._contents.get(name) != (id(side), span):  # not already there (e.g. the only column block)
            self._contents[name] = (id(side), span)
            _translate_into(out, side.features[span[0] : span[1]], side.origin)
        return out

    def forget(self, name: str) -> None:
        """Mark buffer `name` as overwritten by something other than `features`."""
        self._contents.pop(name, None)


def _prepare(
    features: np.ndarray, content_ids: np.ndarray, shared_rows: np.ndarray, origin: _Origin, work: _Workspace
) -> _Side:
    """Squared norms of the translated rows (block by block), and on non-CPU devices the translated rows."""
    num = features.shape[0]
    held = None
    if work.plan.held_rows:
        held = torch.empty((num, work.plan.dim), dtype=work.dtype, device=work.device)  # [N, D]
    sq_norms = torch.empty(num, dtype=work.dtype, device=work.device)  # [N]
    for start, stop in _spans(num, work.plan.block_rows):
        rows = held[start:stop] if held is not None else work.buffer("rows", stop - start, work.plan.dim)
        _translate_into(rows, features[start:stop], origin)
        squares = torch.square(rows, out=work.buffer("columns", stop - start, work.plan.dim))  # [n, D]
        sq_norms[start:stop] = squares.sum(dim=1)  # per block: no [N, D] temporary
    work.forget("rows")
    work.forget("columns")
    return _Side(features=features, origin=origin, sq_norms=sq_norms, held=held, shared_rows=shared_rows,
                 content_ids=torch.from_numpy(content_ids).to(work.device))


def _local_rows(shared_rows: np.ndarray, span: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Indices of the shared rows inside span, relative to its start: int64 [n] on the device."""
    lo, hi = np.searchsorted(shared_rows, span)
    return torch.from_numpy(shared_rows[lo:hi] - span[0]).to(device)


def _sq_distances(
    work: _Workspace, x: torch.Tensor, a: _Side, a_span: tuple[int, int], y: torch.Tensor, b: _Side,
    b_span: tuple[int, int],
) -> torch.Tensor:
    """Squared Euclidean distances between translated rows x = a[a_span] and y = b[b_span]: [r, c], clamped at 0.

    Written into the workspace's distance buffer (valid until the next call). Pairs of identical rows (self pairs
    and exact duplicates) are set to exactly 0: the expansion leaves round-off there, and duplicates decide radii
    (k duplicates give a radius of 0).
    """
    dist = work.buffer("distances", x.shape[0], y.shape[0])  # [r, c]
    torch.matmul(x, y.T, out=dist)
    dist.mul_(-2.0).add_(a.sq_norms[a_span[0] : a_span[1], None]).add_(b.sq_norms[None, b_span[0] : b_span[1]])
    dist.clamp_(min=0.0)
    if a is b and a_span == b_span:
        dist.diagonal().zero_()  # self pairs
    a_rows, b_rows = _local_rows(a.shared_rows, a_span, dist.device), _local_rows(b.shared_rows, b_span, dist.device)
    if len(a_rows) and len(b_rows):  # duplicates (usually none): compare ids of shared rows only, chunk by chunk
        b_ids = b.content_ids[b_rows + b_span[0]]  # [c']
        for start in range(0, len(a_rows), work.plan.chunk_rows):
            rows = a_rows[start : start + work.plan.chunk_rows]  # [q]
            hit_rows, hit_cols = torch.nonzero(a.content_ids[rows + a_span[0], None] == b_ids, as_tuple=True)
            dist[rows[hit_rows], b_rows[hit_cols]] = 0.0
    return dist


def _kth_sq_radii(side: _Side, k: int, work: _Workspace) -> torch.Tensor:
    """Squared distance of each row to its k-th nearest other row of the same set: [N]."""
    keep = k + 1  # the self-distance 0 occupies one of the smallest entries
    if side.num < keep:
        raise ValueError(f"k={k} nearest neighbours need at least {keep} samples per set, got {side.num}")
    radii = torch.empty(side.num, dtype=work.dtype, device=work.device)  # [N]
    spans = _spans(side.num, work.plan.block_rows)
    for row_span in spans:
        x = work.features(side, row_span, "rows")  # [r, D]
        best = None  # [r, <= keep] running smallest squared distances, ascending
        for col_span in spans:
            y = x if col_span == row_span else work.features(side, col_span, "columns")  # [c, D]
            dist = _sq_distances(work, x, side, row_span, y, side, col_span)  # [r, c], self-distances exactly 0
            smallest = torch.topk(dist, min(keep, dist.shape[1]), dim=1, largest=False).values  # [r, <= keep]
            if best is not None:  # merge: the k+1 smallest of the union are among the two lists
                merged = torch.cat([best, smallest], dim=1)  # [r, <= 2 keep]
                smallest = torch.topk(merged, min(keep, merged.shape[1]), dim=1, largest=False).values
            best = smallest
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
    real: _Side, gen: _Side, real_sq_radii: torch.Tensor, gen_sq_radii: torch.Tensor, strict: bool, work: _Workspace
) -> _BallCounts:
    """One blocked pass over the real x generated distances; `strict` selects `<` (prdc) instead of `<=`.

    Balls hold few points, so each chunk of rows is tested once per radius set and only its hits are kept
    (nonzero): no int64 copy of a block, as a column sum of a boolean block would make.
    """
    inside = torch.lt if strict else torch.le
    device, chunk = work.device, work.plan.chunk_rows
    counts = _BallCounts(
        gen_in_real_balls=torch.zeros(gen.num, dtype=torch.int64, device=device),
        real_ball_nonempty=torch.zeros(real.num, dtype=torch.bool, device=device),
        real_in_gen_balls=torch.zeros(real.num, dtype=torch.bool, device=device),
    )
    for r0, r1 in _spans(real.num, work.plan.block_rows):
        x = work.features(real, (r0, r1), "rows")  # [r, D]
        for g0, g1 in _spans(gen.num, work.plan.block_rows):
            y = work.features(gen, (g0, g1), "columns")  # [c, D]
            dist = _sq_distances(work, x, real, (r0, r1), y, gen, (g0, g1))  # [r, c]: rows real, columns generated
            for q0 in range(0, r1 - r0, chunk):
                part = dist[q0 : q0 + chunk]  # [q, c]
                start = r0 + q0
                rows, cols = torch.nonzero(inside(part, real_sq_radii[start : start + part.shape[0], None]),
                                           as_tuple=True)  # gen cols[i] inside real ball start + rows[i]
                counts.gen_in_real_balls[g0:g1] += torch.bincount(cols, minlength=g1 - g0)
                counts.real_ball_nonempty[start + rows] = True
                rows = torch.nonzero(inside(part, gen_sq_radii[None, g0:g1]), as_tuple=True)[0]
                counts.real_in_gen_balls[start + rows] = True
    return counts


def _manifold_counts(
    gen: Any, real: Any, k: int, distance_dtype: str, options: ComputeOptions | None, strict: bool,
    memory_mib: float | None,
) -> tuple[_BallCounts, int, int]:
    """Validate inputs, build k-NN radii of both sets and run the ball pass; returns (counts, M, N)."""
    options = options or ComputeOptions()
    _check_settings(k, distance_dtype)
    gen_a, real_a = feature_matrix(gen, "generated features"), feature_matrix(real, "real features")
    check_same_dim(gen_a, real_a)
    plan = plan_blocks(gen_a.shape[0], real_a.shape[0], gen_a.shape[1], distance_dtype, options, memory_mib)
    device = torch.device(options.device)
    origin = _make_origin(_origin(real_a), distance_dtype, device)
    ids = _content_ids([gen_a, real_a])
    shared = _shared_rows(ids)
    with _full_float32_matmul():
        work = _Workspace(plan, _TORCH_DTYPES[distance_dtype], device)
        gen_s = _prepare(gen_a, ids[0], shared[0], origin, work)
        real_s = _prepare(real_a, ids[1], shared[1], origin, work)
        real_radii = _kth_sq_radii(real_s, k, work)
        gen_radii = _kth_sq_radii(gen_s, k, work)
        counts = _ball_counts(real_s, gen_s, real_radii, gen_radii, strict, work)
    return counts, gen_a.shape[0], real_a.shape[0]


def knn_radii(
    features: np.ndarray,
    k: int,
    distance_dtype: DistanceDtype = "float32",
    options: ComputeOptions | None = None,
    memory_mib: float | None = None,
) -> np.ndarray:
    """Euclidean distance of every row of features [N, D] to its k-th nearest other row (self excluded).

    Returns [N] float64, in feature units. Exact duplicates count as neighbours at distance 0. `memory_mib` bounds
    the working memory (None: `options.memory_mib`; see `plan_blocks`).
    """
    options = options or ComputeOptions()
    _check_settings(k, distance_dtype)
    array = feature_matrix(features)
    plan = plan_blocks(array.shape[0], 0, array.shape[1], distance_dtype, options, memory_mib)
    device = torch.device(options.device)
    ids = _content_ids([array])
    with _full_float32_matmul():
        work = _Workspace(plan, _TORCH_DTYPES[distance_dtype], device)
        side = _prepare(array, ids[0], _shared_rows(ids)[0], _make_origin(_origin(array), distance_dtype, device),
                        work)
        return _kth_sq_radii(side, k, work).sqrt().cpu().numpy().astype(np.float64)


def precision_recall(
    gen: Any,
    real: Any,
    k: int = 3,
    distance_dtype: DistanceDtype = "float32",
    options: ComputeOptions | None = None,
    memory_mib: float | None = None,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of generated vs real features.

    Args:
        gen: generated features [M, D] (array or object with `.features`).
        real: real features [N, D].
        k: neighbourhood size (3 in pr50k3).
        distance_dtype: "float32" or "float64" distance arithmetic.
        options: device, block size and memory budget (never change the result).
        memory_mib: working-memory budget beyond the inputs, caps the block size (`plan_blocks`; never changes
            the result); None takes `options.memory_mib`, whose default 1 GiB keeps 10,000-row blocks at D = 4096.
    """
    counts, num_gen, num_real = _manifold_counts(gen, real, k, distance_dtype, options, False, memory_mib)
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
    memory_mib: float | None = None,
) -> DensityCoverage:
    """prdc precision, recall, density and coverage (Naeem et al. 2020) of generated vs real features.

    Arguments as `precision_recall`; k = 5 is the prdc recommendation. Comparisons are strict (`<`) as in prdc.
    """
    counts, num_gen, num_real = _manifold_counts(gen, real, k, distance_dtype, options, True, memory_mib)
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
