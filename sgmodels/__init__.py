"""StyleGAN (v1), StyleGAN2 and traditional-baseline networks, training and generation in PyTorch."""

__version__ = "0.1.0"
