"""Metrics for StyleGAN-family generators: FID, KID, precision/recall, PPL, separability, projection."""

__version__ = "0.1.0"
