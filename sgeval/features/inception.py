"""Inception-v3 of the FID reference (TF `inception-2015-12-05`, pool3 2048-d features) for FID and KID.

Two ways to run it, registered together as "inception-v3-tf" and told apart by the weights file:

* `InceptionV3TF`, this module's re-implementation of the TF graph, loading torch-fidelity's converted state dict
  `weights-inception-2015-12-05-6726825d.pth` (module and parameter names follow that file's keys, e.g.
  `Mixed_5b.branch5x5_1.conv.weight`, so it loads strictly). Preprocessing as the TF graph: TF1 bilinear resize to
  299x299 (`sgeval.imageops.tf1_bilinear_resize`), then (x - 128) / 128. Two TF details differ from the
  torchvision Inception: average pools exclude the padding from the count, and the last block (Mixed_7c) pools
  with max instead of average. BatchNorm epsilon is 1e-3.
* NVIDIA's TorchScript archive `inception-2015-12-05.pt`, called as stylegan2-ada-pytorch calls it:
  `module(uint8 images, return_features=True)`; the archive resizes internally.

The two are independent translations of the same TF graph; they agree closely but are not bit-identical (their
resize code differs), so the weights sha256 in the cache key keeps their features apart.

"inception-v3-tf-logits" is the same network's classifier head for the Inception Score: the 1008 logits WITHOUT the
output bias (`pool3 @ fc.weight.T`, torch-fidelity's "logits_unbiased"; ADA's `no_output_bias=True`). The
TorchScript archive returns softmax probabilities instead; their logarithm differs from the logits by a per-row
constant, which the softmax of the Inception Score cancels.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from sgeval.features.base import FeatureExtractor, TorchScriptExtractor, load_state_dict_file
from sgeval.features.inference import fold_batchnorm
from sgeval.imageops import TF1_BILINEAR, tf1_bilinear_resize
from sgeval.weights import ResolvedWeights

__all__ = ["FEATURE_DIM", "INPUT_SIZE", "NUM_LOGITS", "InceptionLogitsExtractor", "InceptionPortExtractor",
           "InceptionV3TF", "TorchScriptLogitsExtractor", "build_inception_extractor",
           "build_inception_logits_extractor", "load_inception_state_dict"]

FEATURE_DIM = 2048  # pool3
NUM_LOGITS = 1008  # the TF graph's softmax has 1008 outputs (1000 ImageNet classes + unused)
INPUT_SIZE = 299


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3, as the TF graph), ReLU. Submodule names: `conv`, `bn`."""

    def __init__(
        self,
        in_channels: int,  # input feature maps
        out_channels: int,  # output feature maps
        kernel: int | tuple[int, int],  # kernel size (square or (height, width))
        stride: int = 1,  # stride in pixels
        padding: int | tuple[int, int] = 0,  # zero padding in pixels
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place: the BatchNorm output is a temporary, and a fresh ReLU output would cost one more large
        # allocation and memory pass per layer (measured ~6-8% of the network's CPU time at 299x299).
        return F.relu(self.bn(self.conv(x)), inplace=True)

    def folded(self) -> FoldedConvReLU:
        """This layer for inference, with the BatchNorm folded into the convolution (see sgeval.features.inference)."""
        return FoldedConvReLU(fold_batchnorm(self.conv, self.bn))


class FoldedConvReLU(nn.Module):
    """Inference form of `ConvBN`: convolution with the folded BatchNorm as its bias, then ReLU."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


# A branch of an Inception block: an optional pooling of the block input, a chain of ConvBN layers
# (name, out_channels, kernel, stride), and optionally a final fork of two parallel ConvBN layers whose outputs are
# concatenated. Stride-1 layers are zero-padded to keep the size ("same"); stride-2 layers are unpadded ("valid").
Layer = tuple[str, int, int | tuple[int, int], int]


@dataclasses.dataclass(frozen=True)
class Branch:
    """One parallel path of an Inception block (see the comment above)."""

    layers: tuple[Layer, ...] = ()  # chain of (attribute name, out channels, kernel, stride)
    pool: str | None = None  # None | "avg" (3x3/1, padding excluded) | "max" (3x3/1) | "max_s2" (3x3/2, valid)
    fork: tuple[Layer, Layer] | None = None  # two parallel final layers, outputs concatenated


def _same_padding(kernel: int | tuple[int, int], stride: int) -> tuple[int, int]:
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return (kh // 2, kw // 2) if stride == 1 else (0, 0)


def _pool(x: torch.Tensor, kind: str | None) -> torch.Tensor:
    if kind is None:
        return x
    if kind == "avg":  # TF's average pool does not count the zero padding
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    if kind == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.max_pool2d(x, kernel_size=3, stride=2)


class InceptionBlock(nn.Module):
    """Parallel branches over the same input, concatenated along channels in declaration order."""

    def __init__(
        self,
        in_channels: int,  # channels of the block input
        branches: tuple[Branch, ...],  # the paths (see Branch)
    ) -> None:
        super().__init__()
        self.branches = branches
        self.out_channels = 0
        for branch in branches:
            channels = in_channels
            for name, out_ch, kernel, stride in branch.layers:
                setattr(self, name, ConvBN(channels, out_ch, kernel, stride, _same_padding(kernel, stride)))
                channels = out_ch
            if branch.fork is not None:
                for name, out_ch, kernel, stride in branch.fork:
                    setattr(self, name, ConvBN(channels, out_ch, kernel, stride, _same_padding(kernel, stride)))
                channels = branch.fork[0][1] + branch.fork[1][1]
            self.out_channels += channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for branch in self.branches:
            y = _pool(x, branch.pool)
            for layer in branch.layers:
                y = getattr(self, layer[0])(y)
            if branch.fork is not None:
                y = torch.cat([getattr(self, branch.fork[0][0])(y), getattr(self, branch.fork[1][0])(y)], dim=1)
            outputs.append(y)
        return torch.cat(outputs, dim=1)  # [N, out_channels, H', W']


def _block_5(pool_channels: int) -> tuple[Branch, ...]:  # 35x35 grid (torchvision "InceptionA")
    return (
        Branch((("branch1x1", 64, 1, 1),)),
        Branch((("branch5x5_1", 48, 1, 1), ("branch5x5_2", 64, 5, 1))),
        Branch((("branch3x3dbl_1", 64, 1, 1), ("branch3x3dbl_2", 96, 3, 1), ("branch3x3dbl_3", 96, 3, 1))),
        Branch((("branch_pool", pool_channels, 1, 1),), pool="avg"),
    )


def _block_6a() -> tuple[Branch, ...]:  # 35 -> 17 reduction ("InceptionB")
    return (
        Branch((("branch3x3", 384, 3, 2),)),
        Branch((("branch3x3dbl_1", 64, 1, 1), ("branch3x3dbl_2", 96, 3, 1), ("branch3x3dbl_3", 96, 3, 2))),
        Branch(pool="max_s2"),
    )


def _block_6(c7: int) -> tuple[Branch, ...]:  # 17x17 grid with factorised 7x7 convolutions ("InceptionC")
    return (
        Branch((("branch1x1", 192, 1, 1),)),
        Branch((("branch7x7_1", c7, 1, 1), ("branch7x7_2", c7, (1, 7), 1), ("branch7x7_3", 192, (7, 1), 1))),
        Branch((("branch7x7dbl_1", c7, 1, 1), ("branch7x7dbl_2", c7, (7, 1), 1), ("branch7x7dbl_3", c7, (1, 7), 1),
                ("branch7x7dbl_4", c7, (7, 1), 1), ("branch7x7dbl_5", 192, (1, 7), 1))),
        Branch((("branch_pool", 192, 1, 1),), pool="avg"),
    )


def _block_7a() -> tuple[Branch, ...]:  # 17 -> 8 reduction ("InceptionD")
    return (
        Branch((("branch3x3_1", 192, 1, 1), ("branch3x3_2", 320, 3, 2))),
        Branch((("branch7x7x3_1", 192, 1, 1), ("branch7x7x3_2", 192, (1, 7), 1), ("branch7x7x3_3", 192, (7, 1), 1),
                ("branch7x7x3_4", 192, 3, 2))),
        Branch(pool="max_s2"),
    )


def _block_7(pool: str) -> tuple[Branch, ...]:  # 8x8 grid with forked 1x3 / 3x1 outputs ("InceptionE")
    return (
        Branch((("branch1x1", 320, 1, 1),)),
        Branch((("branch3x3_1", 384, 1, 1),),
               fork=(("branch3x3_2a", 384, (1, 3), 1), ("branch3x3_2b", 384, (3, 1), 1))),
        Branch((("branch3x3dbl_1", 448, 1, 1), ("branch3x3dbl_2", 384, 3, 1)),
               fork=(("branch3x3dbl_3a", 384, (1, 3), 1), ("branch3x3dbl_3b", 384, (3, 1), 1))),
        Branch((("branch_pool", 192, 1, 1),), pool=pool),
    )


class InceptionV3TF(nn.Module):
    """The FID Inception network on preprocessed input: float [N, 3, 299, 299] in [-1, 1] -> pool3 [N, 2048].

    Parameter names match torch-fidelity's converted state dict, which loads with `strict=True`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)  # 299 -> 149
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)  # -> 147
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)  # -> 147, then max pool -> 73
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)  # -> 71, then max pool -> 35
        self.Mixed_5b = InceptionBlock(192, _block_5(32))  # -> 256
        self.Mixed_5c = InceptionBlock(256, _block_5(64))  # -> 288
        self.Mixed_5d = InceptionBlock(288, _block_5(64))  # -> 288
        self.Mixed_6a = InceptionBlock(288, _block_6a())  # -> 768 @ 17x17
        self.Mixed_6b = InceptionBlock(768, _block_6(128))
        self.Mixed_6c = InceptionBlock(768, _block_6(160))
        self.Mixed_6d = InceptionBlock(768, _block_6(160))
        self.Mixed_6e = InceptionBlock(768, _block_6(192))
        self.Mixed_7a = InceptionBlock(768, _block_7a())  # -> 1280 @ 8x8
        self.Mixed_7b = InceptionBlock(1280, _block_7("avg"))  # -> 2048
        self.Mixed_7c = InceptionBlock(2048, _block_7("max"))  # -> 2048; TF graph quirk: max pool branch
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)  # softmax logits (Inception Score); unused for pool3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images [N, 3, 299, 299] -> pool3 features [N, 2048]."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # [N, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 64, 73, 73]
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # [N, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 192, 35, 35]
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)  # ends at [N, 2048, 8, 8]
        return torch.flatten(F.adaptive_avg_pool2d(x, output_size=1), 1)  # [N, 2048]

    def fold_batchnorms(self) -> InceptionV3TF:
        """Fold every BatchNorm into its convolution and use channels-last memory (exact-mode inference form).

        In place; returns self. The state dict no longer has the converted file's layout afterwards, so load the
        weights first. The features change by float32 rounding only (sgeval.features.inference).
        """
        for module in list(self.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, ConvBN):
                    setattr(module, name, child.folded())
        return self.to(memory_format=torch.channels_last).requires_grad_(False)

    def logits(self, pool3: torch.Tensor) -> torch.Tensor:
        """pool3 [N, 2048] -> softmax logits [N, 1008] (with the output bias)."""
        return self.fc(pool3)

    def unbiased_logits(self, pool3: torch.Tensor) -> torch.Tensor:
        """pool3 [N, 2048] -> logits without the output bias [N, 1008], as the Inception Score uses them."""
        return pool3 @ self.fc.weight.T


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float32 [N, 3, 299, 299] in [-1, 1]: TF1 bilinear resize, then (x - 128) / 128.

    The result is in channels-last memory format (values as in NCHW).
    """
    x = tf1_bilinear_resize(images, (INPUT_SIZE, INPUT_SIZE))  # [N, 3, 299, 299] float32, a fresh tensor
    return x.sub_(128).div_(128)


def load_inception_state_dict(weights: ResolvedWeights) -> InceptionV3TF:
    """`InceptionV3TF` with the weights of a state dict file (torch-fidelity's layout), loaded strictly."""
    return load_state_dict_file(InceptionV3TF(), weights, "the Inception port's state dict")


class InceptionPortExtractor(FeatureExtractor):
    """"inception-v3-tf" with this module's network: uint8 [N, 3, H, W] -> pool3 float32 [N, 2048]."""

    def __init__(
        self,
        network: InceptionV3TF,  # loaded network
        weights: ResolvedWeights | None,  # the file it was loaded from
    ) -> None:
        super().__init__("inception-v3-tf", FEATURE_DIM, weights, resize_policy=TF1_BILINEAR, backend="sgeval-port")
        self.network = network

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(preprocess(images))  # [N, 2048]


def build_inception_extractor(weights: ResolvedWeights) -> FeatureExtractor:
    """The "inception-v3-tf" extractor for a resolved weights file (state dict port or official TorchScript)."""
    if weights.format == "torchscript":
        return TorchScriptExtractor("inception-v3-tf", FEATURE_DIM, weights)
    return InceptionPortExtractor(load_inception_state_dict(weights).fold_batchnorms(), weights)


LOGITS_NAME = "inception-v3-tf-logits"


class InceptionLogitsExtractor(FeatureExtractor):
    """"inception-v3-tf-logits" with this module's network: uint8 [N, 3, H, W] -> unbiased logits float32 [N, 1008]."""

    def __init__(
        self,
        network: InceptionV3TF,  # loaded network
        weights: ResolvedWeights | None,  # the file it was loaded from
    ) -> None:
        super().__init__(LOGITS_NAME, NUM_LOGITS, weights, resize_policy=TF1_BILINEAR, backend="sgeval-port")
        self.network = network

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.unbiased_logits(self.network(preprocess(images)))  # [N, 1008]


class TorchScriptLogitsExtractor(TorchScriptExtractor):
    """"inception-v3-tf-logits" on NVIDIA's archive: log of its softmax without output bias, float32 [N, 1008]."""

    def __init__(self, weights: ResolvedWeights) -> None:
        super().__init__(LOGITS_NAME, NUM_LOGITS, weights)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        probs = self.module(images, no_output_bias=True).double()  # [N, 1008], as ADA's inception_score.py
        return probs.clamp_min(torch.finfo(torch.float64).tiny).log()  # log-probabilities: logits + row constant


def build_inception_logits_extractor(weights: ResolvedWeights) -> FeatureExtractor:
    """The "inception-v3-tf-logits" extractor (Inception Score) for the same weights files as "inception-v3-tf"."""
    if weights.format == "torchscript":
        return TorchScriptLogitsExtractor(weights)
    return InceptionLogitsExtractor(load_inception_state_dict(weights).fold_batchnorms(), weights)
