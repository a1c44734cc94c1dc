"""Datasets for training: the dataset tool (folder / zip / IDX -> StyleGAN2-ADA zip), the image loader and the
resumable infinite sampler."""

from sgmodels.data.dataset import ImageDataset
from sgmodels.data.dataset_tool import DatasetSummary, create_dataset
from sgmodels.data.idx import read_idx
from sgmodels.data.sampler import InfiniteSampler

__all__ = ["DatasetSummary", "ImageDataset", "InfiniteSampler", "create_dataset", "read_idx"]
