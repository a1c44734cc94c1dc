"""ImageDataset: properties, labels, x-flip, max_size subsets, lazy shape checks, pickling and DataLoader workers."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sgmodels.data.dataset import ImageDataset
from sgmodels.data.dataset_tool import create_dataset
from tests.sgmodels.test_dataset_tool import chw, load_all, random_images, save_image, write_folder


@pytest.fixture()
def labelled_zip(tmp_path: Path) -> tuple[Path, list[np.ndarray], list[int]]:
    """A 10-image RGB 8x8 zip with classes 0..2 (sub-folders), its source images and class indices in order."""
    images = random_images(10, 8, 3, seed=11)
    classes = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    names = [f"c{cls}/{i:02d}.png" for i, cls in enumerate(classes)]
    src = write_folder(tmp_path / "src", dict(zip(names, images, strict=True)))
    create_dataset(src, tmp_path / "things.zip", progress=False)
    return tmp_path / "things.zip", images, classes


def test_properties(labelled_zip) -> None:
    path, _images, _classes = labelled_zip
    data = ImageDataset(path, resolution=8)
    assert (data.name, len(data), data.resolution, data.num_channels) == ("things", 10, 8, 3)
    assert (data.image_shape, data.label_shape, data.label_dim) == ([3, 8, 8], [3], 3)
    assert data.has_labels and data.has_onehot_labels and data.class_names == ["c0", "c1", "c2"]
    image, label = data[0]
    assert (image.dtype, image.shape, label.dtype, label.shape) == (np.uint8, (3, 8, 8), np.float32, (3,))

    plain = ImageDataset(path, use_labels=False)
    assert (plain.label_dim, plain.has_labels, plain[0][1].shape) == (0, False, (0,))


def test_xflip_appends_mirrored_copies(labelled_zip) -> None:
    path, images, classes = labelled_zip
    flipped = ImageDataset(path, xflip=True)
    assert len(flipped) == 20
    got_images, got_labels = load_all(flipped)
    np.testing.assert_array_equal(got_images[:10], chw(images))
    np.testing.assert_array_equal(got_images[10:], chw(images)[:, :, :, ::-1])
    np.testing.assert_array_equal(got_labels.argmax(1), classes + classes)


def test_max_size_is_a_seeded_sorted_subset(labelled_zip) -> None:
    path, images, classes = labelled_zip
    full = chw(images)

    def subset(seed: int) -> list[int]:
        data = ImageDataset(path, max_size=4, seed=seed)
        got = load_all(data)[0]
        # Identify each item by its pixels among the full set.
        return [int(np.flatnonzero((full == image).all(axis=(1, 2, 3)))[0]) for image in got]

    first = subset(seed=0)
    assert len(first) == 4 and first == sorted(first) and len(set(first)) == 4
    assert subset(seed=0) == first
    assert any(subset(seed=s) != first for s in (1, 2, 3))
    assert len(ImageDataset(path, max_size=50)) == 10  # larger than the dataset: everything
    with_flip = ImageDataset(path, max_size=4, seed=0, xflip=True)
    assert [with_flip.image_name(i) for i in range(8)] == [f"00000/img{i:08d}.png" for i in first * 2]


def test_class_names_extend_label_dim(tmp_path: Path) -> None:
    images = random_images(2, 4, 1, seed=12)
    src = write_folder(tmp_path / "src", {"a.png": images[0], "b.png": images[1]})
    labels = {"labels": [["a.png", 0], ["b.png", 1]], "class_names": ["x", "y", "z", "w"]}
    (src / "dataset.json").write_text(json.dumps(labels))
    data = ImageDataset(src)
    assert data.label_dim == 4 and data.class_names == ["x", "y", "z", "w"]
    np.testing.assert_array_equal(data[1][1], [0, 1, 0, 0])


def test_image_shapes_checked_lazily_with_the_file_name(tmp_path: Path) -> None:
    src = write_folder(tmp_path / "src", {"a.png": random_images(1, 8, 3, 0)[0], "b.png": random_images(1, 4, 3, 0)[0]})
    data = ImageDataset(src)  # construction reads only the first image
    assert data[0][0].shape == (3, 8, 8)
    with pytest.raises(ValueError, match=r"b\.png.*\[3, 4, 4\].*\[3, 8, 8\]"):
        data[1]
    with pytest.raises(ValueError, match=r"a\.png.*resolution=16"):
        ImageDataset(src, resolution=16)
    save_image(tmp_path / "wide" / "w.png", np.zeros((4, 6, 1), np.uint8))
    with pytest.raises(ValueError, match=r"w\.png.*not square"):
        ImageDataset(tmp_path / "wide")


def test_corrupt_zip_member_named(labelled_zip, tmp_path: Path) -> None:
    path, _images, _classes = labelled_zip
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bad, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:40] if info.filename.endswith("00000005.png") else data)
    data = ImageDataset(bad)
    with pytest.raises(ValueError, match=r"bad\.zip:00000/img00000005\.png.*corrupt"):
        data[5]


def test_pickle_and_dataloader_with_two_workers(labelled_zip) -> None:
    path, images, classes = labelled_zip
    data = ImageDataset(path, xflip=True)
    data[0]  # opens the zip handle in this process; pickling must drop it
    clone = pickle.loads(pickle.dumps(data))
    np.testing.assert_array_equal(clone[13][0], data[13][0])

    loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    got_images = torch.cat([images for images, _ in batches])  # [20, 3, 8, 8]
    got_labels = torch.cat([labels for _, labels in batches])  # [20, 3]
    assert got_images.dtype == torch.uint8 and got_labels.dtype == torch.float32
    expected = chw(images)
    np.testing.assert_array_equal(got_images.numpy(), np.concatenate([expected, expected[:, :, :, ::-1]]))
    np.testing.assert_array_equal(got_labels.argmax(1).numpy(), classes + classes)


def test_bad_arguments(labelled_zip, tmp_path: Path) -> None:
    path, _images, _classes = labelled_zip
    with pytest.raises(ValueError, match="max_size"):
        ImageDataset(path, max_size=0)
    with pytest.raises(ValueError, match="no such file"):
        ImageDataset(tmp_path / "missing.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        ImageDataset(tmp_path / "empty")
