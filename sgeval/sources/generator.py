"""Generator sources: an object with the official generator interface, or a plain callable z -> images.

Sampling is a function of (seed, item index) only, never of the batch size or the process count:

* the latent of item i is `np.random.default_rng([seed, i]).standard_normal(z_dim)` (float64 drawn, cast to
  float32; independent streams for different seeds, unlike consecutive per-image seeds whose sample sets would
  overlap between runs), and for a conditional generator the same stream then draws the item's label from the
  label pool (the real dataset's labels, as the official metrics do) unless a fixed class is given;
* the generator always runs on aligned chunks of `gen_batch` items (items k*gen_batch .. (k+1)*gen_batch - 1,
  like the official `batch_gen`), with torch's RNG seeded from (seed, k) for the chunk, so even
  `noise_mode="random"` gives the same image for item i whatever the extraction batch size or sharding.

With `mix_latents = K >= 2` every item mixes K latents of its own stream at random crossover layers (mixing-FID,
StyleGAN Table 2; the exact recipe is in `sgeval.sources.mixing`); K = 1 is the plain sampling above.

Output conversion is the official one: float images in about [-1, 1] become
`(x * 127.5 + 128).clamp(0, 255).to(uint8)` (truncation toward zero, docs/metrics.md section 1.1); uint8 output is
passed through unchanged. NaN or infinite output is an error naming the items, not silently clamped.

Fingerprint: sha256 of the network weights (every state-dict tensor's name, dtype, shape and bytes) plus the
sampling arguments (truncation, noise mode, labels, gen_batch, latent recipe version, and the mixing recipe when
K >= 2). A bare callable has no weights to hash: pass `fingerprint=` to make it cacheable; without one its features
are never cached.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

if TYPE_CHECKING:
    from sgeval.sources.interfaces import LatentGenerator, StyleGenerator

__all__ = ["CallableSource", "GeneratorSource", "float_to_uint8", "item_streams", "latents_for_items",
           "module_fingerprint"]

LATENT_RECIPE = "default_rng([seed, index]).standard_normal/v1"  # changes the images: part of the fingerprint
NOISE_MODES = ("random", "const", "none")


def float_to_uint8(images: torch.Tensor, where: str = "generator", first_item: int = 0) -> torch.Tensor:
    """Official float -> uint8 conversion: float [N, C, H, W] in ~[-1, 1] -> uint8 (x * 127.5 + 128 clamped, truncated).

    Raises:
        ValueError (NonFiniteError): the images contain NaN or infinite values (named as `where`, items from
            `first_item` on), the one finiteness check shared with sgmodels.
    """
    from sgeval.sources.sgmodels_adapter import check_finite_images

    if not images.is_floating_point():
        raise TypeError(f"expected floating-point images, got {images.dtype}")
    check_finite_images(images, where, first_item)
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # [N, C, H, W]


def item_streams(seed: int, indices: Sequence[int], z_dim: int, label_pool: np.ndarray | None = None
                 ) -> Iterator[tuple[np.random.Generator, np.ndarray, np.ndarray | None]]:
    """Per item: (its stream after the plain draws, latent float64 [z_dim], pool label [c_dim] or None).

    Further draws of an item (the extra latents of mixing) continue its stream, so the plain ones never change.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for index in indices:
        rng = np.random.default_rng([seed, int(index)])
        z = rng.standard_normal(z_dim)
        label = None if label_pool is None else label_pool[rng.integers(label_pool.shape[0])]
        yield rng, z, label


def latents_for_items(seed: int, indices: Sequence[int], z_dim: int,
                      label_pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Latents (and pool labels) of the given items: float32 [B, z_dim], float32 [B, c_dim] or None."""
    z = np.empty((len(indices), z_dim), dtype=np.float32)
    labels = None if label_pool is None else np.empty((len(indices), label_pool.shape[1]), dtype=np.float32)
    for row, (_rng, z_row, label) in enumerate(item_streams(seed, indices, z_dim, label_pool)):
        z[row] = z_row
        if labels is not None and label is not None:  # labels exist exactly when label_pool does
            labels[row] = label
    return z, labels


def module_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over the class name and every state-dict entry (name, dtype, shape, bytes) of a network."""
    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, tensor in module.state_dict().items():
        data = tensor.detach().to("cpu").contiguous().reshape(-1)  # 1-D: 0-d tensors cannot be viewed as bytes
        digest.update(f"\0{name}\0{data.dtype}\0{tuple(data.shape)}\0".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


class _LatentSource:
    """Chunked, seeded generation shared by `GeneratorSource` and `CallableSource` (see the module docstring)."""

    kind = "generator"
    uses_seed = True
    num_items = None  # unbounded
    name = "generator"  # how messages and results name it (subclasses set the snapshot path or callable name)

    def __init__(
        self,
        z_dim: int,  # latent size
        c_dim: int,  # label size (0 = unconditional)
        gen_batch: int,  # items per generator call, aligned to multiples of gen_batch
        class_idx: int | None,  # fixed class for every item (one-hot), or None
        label_pool: np.ndarray | None,  # labels to draw from, float [M, c_dim] (or int classes [M])
    ) -> None:
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        if gen_batch < 1:
            raise ValueError(f"gen_batch must be >= 1, got {gen_batch}")
        self.z_dim, self.c_dim, self.gen_batch = int(z_dim), int(c_dim), int(gen_batch)
        self.class_idx = class_idx
        self.label_pool = self._check_labels(class_idx, label_pool)
        self._memo: tuple[tuple[int, int], torch.Tensor] | None = None  # ((seed, chunk), images) of the last chunk

    def _check_labels(self, class_idx: int | None, pool: np.ndarray | None) -> np.ndarray | None:
        if self.c_dim == 0:
            if class_idx is not None or pool is not None:
                raise ValueError("this generator is unconditional (c_dim = 0): drop class_idx / labels")
            return None
        if class_idx is not None:
            if not 0 <= class_idx < self.c_dim:
                raise ValueError(f"class_idx {class_idx} out of range [0, {self.c_dim})")
            return None
        if pool is None:
            raise ValueError(f"this generator is conditional (c_dim = {self.c_dim}): give labels to sample from "
                             "(the real dataset's dataset.json labels, as the official metrics do) or a class_idx")
        pool = np.asarray(pool)
        if pool.ndim == 1:  # integer classes -> one-hot
            in_range = pool.size > 0 and pool.min() >= 0 and pool.max() < self.c_dim
            if not np.issubdtype(pool.dtype, np.integer) or not in_range:
                raise ValueError(f"class labels must be integers in [0, {self.c_dim}) for this generator (c_dim = "
                                 f"{self.c_dim}), got {pool.dtype} values"
                                 + (f" in [{pool.min()}, {pool.max()}]" if pool.size else " (none)"))
            pool = np.eye(self.c_dim, dtype=np.float32)[pool.astype(np.int64)]
        if pool.ndim != 2 or pool.shape[1] != self.c_dim or pool.shape[0] < 1:
            raise ValueError(f"labels must be [M, {self.c_dim}] vectors or [M] classes, got shape {pool.shape}")
        return pool.astype(np.float32)

    def sampling_args(self) -> dict[str, Any]:
        """JSON-able sampling arguments that determine the images (besides the weights and the seed)."""
        pool_digest = None if self.label_pool is None else hashlib.sha256(self.label_pool.tobytes()).hexdigest()
        return {"latent_recipe": LATENT_RECIPE, "gen_batch": self.gen_batch, "class_idx": self.class_idx,
                "label_pool_sha256": pool_digest}

    def _labels(self, count: int, pool_labels: np.ndarray | None, device: torch.device) -> torch.Tensor:
        if self.class_idx is not None:
            c = torch.zeros(count, self.c_dim, device=device)  # [B, c_dim]
            c[:, self.class_idx] = 1
            return c
        if pool_labels is not None:
            return torch.from_numpy(pool_labels).to(device)  # [B, c_dim]
        return torch.zeros(count, 0, device=device)  # [B, 0], as the official code passes for c_dim = 0

    def _generate(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _images(self, seed: int, indices: range, device: torch.device) -> Any:
        """Raw output for the given items (torch's RNG already seeded for their chunk): plain latents -> _generate."""
        z_np, pool_labels = latents_for_items(seed, indices, self.z_dim, self.label_pool)
        z = torch.from_numpy(z_np).to(device)  # [gen_batch, z_dim]
        c = self._labels(len(indices), pool_labels, device)  # [gen_batch, c_dim]
        return self._generate(z, c)  # [gen_batch, C, H, W]

    def _chunk(self, seed: int, chunk: int, device: torch.device) -> torch.Tensor:
        """uint8 images [gen_batch, C, H, W] of items chunk*gen_batch ... (memoised: the last chunk only)."""
        if self._memo is not None and self._memo[0] == (seed, chunk) and self._memo[1].device == device:
            return self._memo[1]
        indices = range(chunk * self.gen_batch, (chunk + 1) * self.gen_batch)
        noise_seed = int(np.random.SeedSequence([seed, chunk, 1]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(noise_seed)  # per-image noise of this chunk, independent of batching
            images = self._images(seed, indices, device)  # [gen_batch, C, H, W]
        images = self._to_uint8(images, indices)
        self._memo = ((seed, chunk), images)
        return images

    def _to_uint8(self, images: Any, indices: range) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] != len(indices):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"the generator must return images [{len(indices)}, C, H, W], got {shape}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"generated images must have 1 or 3 channels (NCHW), got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            return images
        return float_to_uint8(images, self.name, first_item=indices.start)

    def prepare(self, device: torch.device) -> None:
        """Nothing by default (GeneratorSource moves its network)."""

    def read(self, indices: Sequence[int], *, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 images [len(indices), C, H, W] of the given items on `device`."""
        device = torch.device(device)
        if any(int(index) < 0 for index in indices):
            raise IndexError("item indices must be >= 0")
        rows = []
        for index in indices:
            chunk, offset = divmod(int(index), self.gen_batch)
            rows.append(self._chunk(seed, chunk, device)[offset])
        return torch.stack(rows)  # [B, C, H, W]


class GeneratorSource(_LatentSource):
    """A generator with the official interface: `G(z, c, truncation_psi=..., noise_mode=...)`, attributes z_dim, c_dim,
    img_resolution, img_channels (official `G_ema`, sgmodels generators, any compatible object)."""

    def __init__(
        self,
        G: LatentGenerator,  # the generator (usually a torch.nn.Module; checked at run time)
        truncation_psi: float = 1.0,  # 1 = no truncation (the official metrics' setting)
        noise_mode: str = "random",  # official metrics use "random" per-image noise
        class_idx: int | None = None,  # fixed class for a conditional generator
        labels: np.ndarray | None = None,  # label pool [M, c_dim] or classes [M] for a conditional generator
        gen_batch: int = 4,  # items per generator call (official batch_gen = 4)
        fingerprint: str | None = None,  # override; default: hash of G's state dict
        name: str | None = None,  # how results name it (e.g. the snapshot path)
        mix_latents: int = 1,  # latents mixed per image at random crossovers (mixing-FID); 1 = plain sampling
    ) -> None:
        missing = [attr for attr in ("z_dim", "c_dim", "img_resolution", "img_channels") if not hasattr(G, attr)]
        if missing or not callable(G):
            raise TypeError(f"{type(G).__name__} is not a generator: missing {missing or ['__call__']} (expected the "
                            "official interface: z_dim, c_dim, img_resolution, img_channels, G(z, c, ...))")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        super().__init__(int(G.z_dim), int(G.c_dim), gen_batch, class_idx, labels)
        self.G = G
        self.truncation_psi = float(truncation_psi)
        self.noise_mode = noise_mode
        self.name = name or type(G).__name__
        self._fingerprint = fingerprint
        self._num_ws = self._check_mixing(mix_latents)  # 0 for plain sampling
        self.mix_latents = int(mix_latents)

    def _check_mixing(self, mix_latents: int) -> int:
        from sgeval.sources.mixing import check_mixing

        return check_mixing(self.G, mix_latents, self.name)

    def with_mixing(self, mix_latents: int) -> GeneratorSource:
        """This source with `mix_latents` latents mixed per image (sgeval.sources.mixing); K = 1 is plain sampling.

        Returns `self` when K is unchanged; the copy shares the network and its weights hash.

        Raises:
            ValueError: K < 1, a generator without a mapping network asked for K >= 2, or K > num_ws.
        """
        if mix_latents == self.mix_latents:
            return self
        num_ws = self._check_mixing(mix_latents)
        mixed = copy.copy(self)
        mixed.mix_latents, mixed._num_ws, mixed._memo = int(mix_latents), num_ws, None
        return mixed

    def sampling_args(self) -> dict[str, Any]:
        """As `_LatentSource.sampling_args`, plus the number of mixed latents and their recipe when K >= 2 (so
        plain sources keep their fingerprints and cache entries)."""
        from sgeval.sources.mixing import MIX_RECIPE

        args = super().sampling_args()
        if self.mix_latents > 1:
            args |= {"mix_latents": self.mix_latents, "mix_recipe": MIX_RECIPE}
        return args

    def fingerprint(self) -> str | None:
        """sha256 of the weights (or the given fingerprint) and the sampling arguments; None if not hashable."""
        if self._fingerprint is None:
            if not isinstance(self.G, torch.nn.Module):
                return None  # nothing to hash: not cacheable
            self._fingerprint = module_fingerprint(self.G)
        args = self.sampling_args() | {"truncation_psi": self.truncation_psi, "noise_mode": self.noise_mode}
        return hashlib.sha256(f"{self._fingerprint}\0{json.dumps(args, sort_keys=True)}".encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Name, latent and image sizes, and sampling arguments (JSON-able)."""
        return {"kind": "generator", "name": self.name, "z_dim": self.z_dim, "c_dim": self.c_dim,
                "img_resolution": int(self.G.img_resolution), "img_channels": int(self.G.img_channels),
                "truncation_psi": self.truncation_psi, "noise_mode": self.noise_mode, **self.sampling_args()}

    def prepare(self, device: torch.device) -> None:
        """Refuse NaN/infinite weights (naming the network), then move it to `device` in place (as the official
        metric code does with its copy)."""
        from sgeval.sources.sgmodels_adapter import check_finite_weights

        if isinstance(self.G, torch.nn.Module):
            check_finite_weights(self.G, self.name)
            self.G.to(device)

    def _images(self, seed: int, indices: range, device: torch.device) -> Any:
        """Plain sampling, or K latents of each item's stream mixed at its crossovers (sgeval.sources.mixing)."""
        if self.mix_latents == 1:
            return super()._images(seed, indices, device)
        from sgeval.sources.mixing import mixed_images, mixing_draws

        draws = mixing_draws(seed, indices, self.z_dim, self.mix_latents, self._num_ws, self.label_pool)
        c = self._labels(len(indices), draws.labels, device)  # [gen_batch, c_dim]
        G = cast("StyleGenerator", self.G)  # check_mixing accepted it for K >= 2 (is_style_generator)
        images = mixed_images(G, draws, c, self.truncation_psi, self.noise_mode)  # [gen_batch, C, H, W]
        return self._checked_shape(images)

    def _generate(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        images = self.G(z, c, truncation_psi=self.truncation_psi, noise_mode=self.noise_mode)
        return self._checked_shape(images)

    def _checked_shape(self, images: Any) -> Any:
        expected = (int(self.G.img_channels), int(self.G.img_resolution), int(self.G.img_resolution))
        if isinstance(images, torch.Tensor) and tuple(images.shape[1:]) != expected:
            raise ValueError(f"{self.name}: generated images have shape {tuple(images.shape)}, but the generator "
                             f"declares img_channels x img_resolution^2 = {expected}")
        return images


class CallableSource(_LatentSource):
    """A plain callable `fn(z float32 [B, z_dim] on the device) -> images [B, C, H, W]` (float ~[-1, 1] or uint8)."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],  # the image function
        z_dim: int,  # latent size
        gen_batch: int = 4,  # items per call
        fingerprint: str | None = None,  # content identity; None = never cached
        name: str | None = None,  # how results name it
    ) -> None:
        if not callable(fn):
            raise TypeError(f"expected a callable z -> images, got {type(fn).__name__}")
        super().__init__(z_dim, 0, gen_batch, None, None)
        self.fn = fn
        self.name = name or str(getattr(fn, "__qualname__", type(fn).__name__))
        self._fingerprint = fingerprint

    def fingerprint(self) -> str | None:
        """sha256 of the user-given fingerprint and the sampling arguments; None without a given fingerprint."""
        if self._fingerprint is None:
            return None
        args = json.dumps(self.sampling_args() | {"z_dim": self.z_dim}, sort_keys=True)
        return hashlib.sha256(f"{self._fingerprint}\0{args}".encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Name, latent size and sampling arguments (JSON-able)."""
        return {"kind": "generator", "name": self.name, "z_dim": self.z_dim, **self.sampling_args()}

    def _generate(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.fn(z)
