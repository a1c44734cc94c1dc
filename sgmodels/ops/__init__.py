"""Pure-PyTorch versions of the StyleGAN2 custom ops (run on CPU and GPU without compiling anything).

* `upfirdn2d`: upsample, pad, FIR-filter and downsample images; filter helpers.
* `bias_act`: bias + activation + gain + clamp.
* `conv2d_resample`: 2D convolution with FIR up/downsampling fused in, grouped convs supported.
"""

from sgmodels.ops import bias_act, conv2d_resample, upfirdn2d

__all__ = ["bias_act", "conv2d_resample", "upfirdn2d"]
