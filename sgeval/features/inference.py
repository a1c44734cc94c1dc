"""How the feature networks run: inference-only rewrites that keep the float32 result, and the precision modes.

Exact mode ("fp32", the default) computes the same network in float32 as the reference code, with two rewrites
that change only the rounding, not the function:

* BatchNorm folded into the preceding convolution (`fold_batchnorm`, computed in float64 then stored in float32):
  one pass over each activation map instead of two, and a convolution with bias that oneDNN fuses;
* channels-last (NHWC) weights and activations: oneDNN's direct convolutions and the pooling kernels are
  vectorised over channels in this layout (in NCHW the 3x3 pools of Inception alone took 22 % of the time).

Features then differ from the literal NCHW BatchNorm code by float32 rounding (about 1e-5 of the mean feature): the
folded weights are rounded once more, and the kernels that oneDNN picks for this layout and the fused bias sum in
another order, which depends on the CPU kind and the thread count. On the harsh fixtures (random weights, random-noise
images, N < D) that moves FID by at most 5e-6 relative, the bound tests/sgeval/test_vs_torch_fidelity.py asserts
(measured 0.3e-6 to 1.4e-6 on AMD EPYC, 1.0e-6 on Intel; `nox -s bench` prints it; docs/metrics.md section 2.5).
The fold itself runs in float64 (`fold_batchnorm`); a float32 fold was not consistently closer. The identity of an fp32
extractor is unchanged, so features cached by the literal code stay valid.

Reduced precision is opt-in and named in the extractor identity (cache keys, result provenance), so its features
never mix with exact ones: "bf16" runs the convolutions and matmuls in bfloat16 under autocast (CPUs with
AVX512-BF16 or AMX, and GPUs), "fp16" in float16 under CUDA autocast (GPUs only). `nox -s bench` prints each mode's
FID deviation from exact mode beside its speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["EXACT", "PRECISIONS", "autocast", "check_precision", "cpu_supports_bf16", "fold_batchnorm"]

EXACT = "fp32"
PRECISIONS: dict[str, str] = {
    EXACT: "float32 throughout (exact mode: FID equal to the reference code within 5e-6 relative)",
    "bf16": "bfloat16 convolutions and matmuls under autocast (CPU with AVX512-BF16/AMX, or GPU); opt-in",
    "fp16": "float16 convolutions and matmuls under CUDA autocast (GPU only); opt-in",
}
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str) -> None:
    """ValueError unless `precision` is a known mode that `device` can run."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if precision == "fp16" and device_type != "cuda":
        raise ValueError("precision 'fp16' runs on CUDA only; on a CPU use 'bf16' (AVX512-BF16/AMX) or 'fp32'")
    if precision == "bf16" and device_type == "cpu" and not cpu_supports_bf16():
        raise ValueError("precision 'bf16' needs a CPU with AVX512-BF16 or AMX (oneDNN reports none here); use 'fp32'")


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs oneDNN bfloat16 kernels (AVX512-BF16 or AMX), which "bf16" needs on a CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an old or oneDNN-less torch build
        return False


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Autocast to the mode's dtype on `device`; nothing for exact mode."""
    if precision == EXACT:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision]):
        yield


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution with bias equal to `norm(conv(x))` in eval mode (running statistics).

    w' = w * gamma / sqrt(var + eps), b' = beta + (b - mean) * gamma / sqrt(var + eps); computed in float64 and
    rounded once to the convolution's dtype, so the folded layer is as close to the pair as float32 allows.
    """
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("fold_batchnorm needs a BatchNorm with running statistics (track_running_stats=True)")
    scale = norm.running_var.double().add(norm.eps).rsqrt()  # [C_out]
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    shift = (bias - norm.running_mean.double()) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.double()
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,  # type: ignore[arg-type]
                       padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,  # type: ignore[arg-type]
                       device=conv.weight.device, dtype=conv.weight.dtype)
    folded.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    assert folded.bias is not None  # built with bias=True
    folded.bias.copy_(shift)
    return folded.requires_grad_(False)
