"""`sgmodels dataset create`: folder / zip / IDX sources -> StyleGAN2-ADA zip -> ImageDataset round trips, the
resize / channel / crop policies, ordering options, and bad-data errors that name the file and write nothing.

The helpers here (image folders, IDX files) are shared with test_dataset.py."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from sgmodels.data.cli import dataset as dataset_cli
from sgmodels.data.dataset import ImageDataset
from sgmodels.data.dataset_tool import create_dataset
from sgmodels.data.idx import read_idx

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------------------------------------------------------
# Helpers (also used by test_dataset.py).


def random_images(count: int, size: int, channels: int, seed: int) -> list[np.ndarray]:
    """`count` random uint8 images [H, W, C] (C = channels) of size x size."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8) for _ in range(count)]


def save_image(path: Path, image: np.ndarray) -> None:
    """Write a uint8 [H, W, C] array as PNG (grayscale when C = 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(path)


def write_folder(root: Path, images: dict[str, np.ndarray]) -> Path:
    """Save each [H, W, C] array under root/relative path; returns root."""
    for name, image in images.items():
        save_image(root / name, image)
    return root


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    """Write a uint8 array in IDX format (built byte by byte, independently of sgmodels.data.idx)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def load_all(data: ImageDataset) -> tuple[np.ndarray, np.ndarray]:
    """All items of a dataset: images uint8 [N, C, H, W] and labels float32 [N, label_dim]."""
    items = [data[i] for i in range(len(data))]
    return np.stack([image for image, _ in items]), np.stack([label for _, label in items])


def chw(images: list[np.ndarray]) -> np.ndarray:
    """[H, W, C] arrays -> uint8 [N, C, H, W]."""
    return np.stack(images).transpose(0, 3, 1, 2)


def assert_nothing_written(directory: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")], "temporary file left behind"


# ---------------------------------------------------------------------------------------------------------------
# Round trips.


def test_subfolder_labels_round_trip(tmp_path: Path) -> None:
    images = random_images(5, 8, 3, seed=0)
    names = ["cat/a.png", "cat/b.png", "dog/a.png", "dog/c.png", "emu/z.png"]  # sorted order
    src = write_folder(tmp_path / "src", dict(zip(names, images, strict=True)))
    summary = create_dataset(src, tmp_path / "out.zip", progress=False)
    assert (summary.num_images, summary.resolution, summary.channels, summary.label_dim) == (5, 8, 3, 3)
    with ImageDataset(tmp_path / "out.zip") as data:
        got_images, got_labels = load_all(data)
        assert data.class_names == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(got_images, chw(images))
    np.testing.assert_array_equal(got_labels, np.eye(3, dtype=np.float32)[[0, 0, 1, 1, 2]])
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:  # the official layout, stored without compression
        assert archive.namelist()[:2] == ["00000/img00000000.png", "00000/img00000001.png"]
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        meta = json.loads(archive.read("dataset.json"))
    assert meta["labels"][4] == ["00000/img00000004.png", 2]


@pytest.mark.parametrize("labels", [[3, 0, 1], [[1.0, 0.0], [0.5, 1.0], [0.0, 0.25]]], ids=["class", "attributes"])
def test_dataset_json_labels_round_trip(tmp_path: Path, labels: list) -> None:
    images = random_images(3, 8, 1, seed=1)
    names = ["b.png", "a.png", "sub/c.png"]
    src = write_folder(tmp_path / "src", dict(zip(names, images, strict=True)))
    (src / "dataset.json").write_text(json.dumps({"labels": [[n, lab] for n, lab in zip(names, labels, strict=True)]}))
    create_dataset(src, tmp_path / "out.zip", progress=False)
    order = [1, 0, 2]  # sorted names: a.png, b.png, sub/c.png
    expected = np.eye(4, dtype=np.float32)[labels] if isinstance(labels[0], int) else np.float32(labels)
    for path in (src, tmp_path / "out.zip"):  # the loader reads the source folder and the zip alike
        got_images, got_labels = load_all(ImageDataset(path))
        np.testing.assert_array_equal(got_images, chw([images[i] for i in order]))
        np.testing.assert_array_equal(got_labels, expected[order])


def test_zip_sources_folder_inside_and_official(tmp_path: Path) -> None:
    images = random_images(4, 8, 3, seed=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(tmp_path / "src.zip", "w") as archive:  # a zip of a folder: everything under "photos/"
        for i, name in enumerate(["photos/x/1.png", "photos/x/2.png", "photos/y/1.png", "photos/y/2.png"]):
            buffer.seek(0), buffer.truncate()
            PIL.Image.fromarray(images[i]).save(buffer, format="png")
            archive.writestr(name, buffer.getvalue())
    create_dataset(tmp_path / "src.zip", tmp_path / "a.zip", progress=False)
    got_images, got_labels = load_all(ImageDataset(tmp_path / "a.zip"))
    np.testing.assert_array_equal(got_images, chw(images))
    np.testing.assert_array_equal(got_labels.argmax(1), [0, 0, 1, 1])
    # An official dataset zip as the source converts to the very same bytes.
    create_dataset(tmp_path / "a.zip", tmp_path / "b.zip", progress=False)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(3)
    train, test = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8), rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)
    train_labels, test_labels = np.uint8([9, 0, 3, 3, 1]), np.uint8([2, 2, 7])
    ext = ".gz" if compress else ""
    src = tmp_path / "idx"
    src.mkdir()
    write_idx(src / f"t10k-images-idx3-ubyte{ext}", test, compress)
    write_idx(src / f"t10k-labels-idx1-ubyte{ext}", test_labels, compress)
    images_file = write_idx(src / f"train-images-idx3-ubyte{ext}", train, compress)
    write_idx(src / f"train-labels-idx1-ubyte{ext}", train_labels, compress)
    np.testing.assert_array_equal(read_idx(images_file), train)

    create_dataset(src, tmp_path / "all.zip", progress=False)  # a folder: train images first, then t10k
    got_images, got_labels = load_all(ImageDataset(tmp_path / "all.zip"))
    np.testing.assert_array_equal(got_images[:, 0], np.concatenate([train, test]))
    np.testing.assert_array_equal(got_labels.argmax(1), np.concatenate([train_labels, test_labels]))
    assert got_labels.shape == (8, 10)

    create_dataset(images_file, tmp_path / "train.zip", progress=False)  # one images file
    got_images, got_labels = load_all(ImageDataset(tmp_path / "train.zip"))
    np.testing.assert_array_equal(got_images[:, 0], train)
    np.testing.assert_array_equal(got_labels.argmax(1), train_labels)


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_first_images(tmp_path: Path) -> None:
    summary = create_dataset(FASHION_MNIST, tmp_path / "fm.zip", max_images=50, progress=False)
    assert (summary.num_images, summary.resolution, summary.channels, summary.label_dim) == (50, 28, 1, 10)
    got_images, got_labels = load_all(ImageDataset(tmp_path / "fm.zip"))
    np.testing.assert_array_equal(got_images[:, 0], read_idx(FASHION_MNIST / "train-images-idx3-ubyte.gz")[:50])
    np.testing.assert_array_equal(got_labels.argmax(1), read_idx(FASHION_MNIST / "train-labels-idx1-ubyte.gz")[:50])


# ---------------------------------------------------------------------------------------------------------------
# Resize, channels, crop / pad.


def test_resize_uses_pil_lanczos_and_channels(tmp_path: Path) -> None:
    images = random_images(2, 16, 3, seed=4)
    src = write_folder(tmp_path / "src", {"a.png": images[0], "b.png": images[1]})
    create_dataset(src, tmp_path / "rgb8.zip", resolution=8, progress=False)
    expected = [np.asarray(PIL.Image.fromarray(im).resize((8, 8), PIL.Image.Resampling.LANCZOS)) for im in images]
    np.testing.assert_array_equal(load_all(ImageDataset(tmp_path / "rgb8.zip"))[0], chw(expected))

    solid = np.zeros((16, 16, 3), np.uint8) + np.uint8([200, 100, 50])
    write_folder(tmp_path / "solid", {"s.png": solid})
    create_dataset(tmp_path / "solid", tmp_path / "gray.zip", resolution=4, channels=1, progress=False)
    gray = load_all(ImageDataset(tmp_path / "gray.zip"))[0]
    assert gray.shape == (1, 1, 4, 4)
    luma = (200 * 299 + 100 * 587 + 50 * 114) / 1000  # ITU-R 601-2, the grayscale conversion of PIL
    assert np.abs(gray.astype(float) - luma).max() <= 1.0

    create_dataset(tmp_path / "gray.zip", tmp_path / "rgb.zip", channels=3, progress=False)
    rgb = load_all(ImageDataset(tmp_path / "rgb.zip"))[0]
    np.testing.assert_array_equal(rgb, np.repeat(gray, 3, axis=1))


def test_crop_center_pad_and_none(tmp_path: Path) -> None:
    wide = np.zeros((8, 12, 1), np.uint8)
    wide[:, 2:10] = 255  # the central 8 columns are white, 2 black columns on either side
    write_folder(tmp_path / "wide", {"w.png": wide})
    create_dataset(tmp_path / "wide", tmp_path / "center.zip", crop="center", progress=False)
    assert (load_all(ImageDataset(tmp_path / "center.zip"))[0] == 255).all()

    create_dataset(tmp_path / "wide", tmp_path / "pad.zip", crop="pad", progress=False)
    padded = load_all(ImageDataset(tmp_path / "pad.zip"))[0][0, 0]  # [12, 12]
    expected = np.zeros((12, 12), np.uint8)
    expected[2:10, 2:10] = 255  # 2 black rows above and below, original columns kept
    np.testing.assert_array_equal(padded, expected)

    with pytest.raises(ValueError, match=r"w\.png.*not square"):
        create_dataset(tmp_path / "wide", tmp_path / "none.zip", crop="none", progress=False)
    assert_nothing_written(tmp_path, tmp_path / "none.zip")


# ---------------------------------------------------------------------------------------------------------------
# Order: --max-images and --shuffle-seed.


def test_max_images_and_shuffle_seed_are_deterministic(tmp_path: Path) -> None:
    # Image i is a solid image of value 10 * i, so the written order can be read back from the pixels.
    solids = {f"{i:02d}.png": np.full((4, 4, 1), 10 * i, np.uint8) for i in range(12)}
    src = write_folder(tmp_path / "src", solids)

    def written_order(name: str, **options) -> list[int]:
        create_dataset(src, tmp_path / name, progress=False, **options)
        return [int(v) // 10 for v in load_all(ImageDataset(tmp_path / name))[0][:, 0, 0, 0]]

    assert written_order("plain.zip", max_images=5) == [0, 1, 2, 3, 4]
    first = written_order("s1.zip", shuffle_seed=7, max_images=5)
    assert first == list(np.random.RandomState(7).permutation(12)[:5])
    assert written_order("s1again.zip", shuffle_seed=7, max_images=5) == first
    assert (tmp_path / "s1.zip").read_bytes() == (tmp_path / "s1again.zip").read_bytes()
    assert written_order("s2.zip", shuffle_seed=8, max_images=5) != first


# ---------------------------------------------------------------------------------------------------------------
# Bad data: an error naming the file, and no output.


def _bad_folder(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A source folder with one kind of bad data, and a regex the error must match (the offending name)."""
    good = random_images(3, 8, 3, seed=5)
    src = write_folder(tmp_path / "src", {"a.png": good[0], "b.png": good[1]})
    if case == "corrupt":
        (src / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
        return src, r"c\.png.*corrupt"
    if case == "truncated":
        save_image(src / "c.png", good[2])
        (src / "c.png").write_bytes((src / "c.png").read_bytes()[:-30])
        return src, r"c\.png"
    if case == "mixed_sizes":
        save_image(src / "c.png", random_images(1, 6, 3, seed=6)[0])
        return src, r"c\.png.*6x6.*a\.png.*8x8"
    if case == "mixed_channels":
        save_image(src / "c.png", random_images(1, 8, 1, seed=6)[0])
        return src, r"c\.png.*1 channel.*a\.png"
    if case == "label_missing":
        (src / "dataset.json").write_text(json.dumps({"labels": [["a.png", 0]]}))
        return src, r"dataset\.json.*b\.png"
    if case == "label_extra":
        (src / "dataset.json").write_text(json.dumps({"labels": [["a.png", 0], ["b.png", 1], ["zz.png", 1]]}))
        return src, r"dataset\.json.*zz\.png"
    if case == "empty":
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "notes.txt").write_text("no images here")
        return empty, r"empty.*no image files"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["corrupt", "truncated", "mixed_sizes", "mixed_channels", "label_missing", "label_extra", "empty"]
)
def test_bad_folder_names_the_file_and_writes_nothing(tmp_path: Path, case: str) -> None:
    src, pattern = _bad_folder(tmp_path, case)
    out = tmp_path / "out" / "bad.zip"
    out.parent.mkdir()
    with pytest.raises(ValueError, match=pattern):
        create_dataset(src, out, progress=False)
    assert_nothing_written(out.parent, out)


def test_mixed_inputs_accepted_when_resolution_and_channels_are_given(tmp_path: Path) -> None:
    src = write_folder(tmp_path / "src", {"a.png": random_images(1, 8, 3, 0)[0], "b.png": random_images(1, 6, 1, 0)[0]})
    summary = create_dataset(src, tmp_path / "out.zip", resolution=4, channels=3, progress=False)
    assert (summary.num_images, summary.resolution, summary.channels) == (2, 4, 3)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_bad_idx_files(tmp_path: Path, compress: bool) -> None:
    images = np.zeros((4, 5, 5), np.uint8)
    truncated = tmp_path / "train-images-idx3-ubyte"
    data = write_idx(truncated, images, compress=False).read_bytes()[:-7]
    truncated.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        create_dataset(truncated, tmp_path / "out.zip", progress=False)

    ok = write_idx(tmp_path / "x-images-idx3-ubyte", images, compress)
    write_idx(tmp_path / "x-labels-idx1-ubyte", np.uint8([1, 2, 3]), compress)  # 3 labels for 4 images
    with pytest.raises(ValueError, match=r"x-labels-idx1-ubyte.*4 labels"):
        create_dataset(ok, tmp_path / "out.zip", progress=False)
    assert_nothing_written(tmp_path, tmp_path / "out.zip")


@pytest.mark.parametrize("content", ["zeros", "idx"])
@pytest.mark.parametrize("cut", [4, 12, 40])
def test_damaged_gzip_names_the_file(tmp_path: Path, content: str, cut: int) -> None:
    """A gzip stream cut inside its trailer or its data: an error naming the file (gzip or the IDX content)."""
    damaged = tmp_path / "train-images-idx3-ubyte.gz"
    array = np.arange(2 * 10 * 10, dtype=np.uint8).reshape(2, 10, 10)
    source = write_idx(tmp_path / "whole-images-idx3-ubyte", array, compress=False).read_bytes()
    damaged.write_bytes(gzip.compress(bytes(200) if content == "zeros" else source)[:-cut])
    expected = "IDX" if content == "zeros" else "gzip|truncated"  # zeros are no IDX header either
    with pytest.raises(ValueError, match=rf"train-images-idx3-ubyte\.gz.*({expected})"):
        read_idx(damaged)


@pytest.mark.parametrize("shape", [(10**6, 10**3, 10**3), (2**32 - 1, 2**32 - 1, 2**32 - 1)])
def test_idx_header_declaring_more_than_the_file_holds_is_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """A few bytes whose header declares a huge array: refused before anything that size is inflated."""
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    for compress in (False, True):
        path = tmp_path / f"bomb{int(compress)}-images-idx3-ubyte"
        path.write_bytes(gzip.compress(header + bytes(1000)) if compress else header + bytes(1000))
        with pytest.raises(ValueError, match=r"bomb.*more than the file's .* bytes can hold"):
            read_idx(path)


def test_failure_keeps_existing_output_and_interrupt_leaves_none(tmp_path: Path, monkeypatch) -> None:
    src, _ = _bad_folder(tmp_path, "corrupt")
    out = tmp_path / "out.zip"
    out.write_bytes(b"previous dataset")
    with pytest.raises(ValueError):
        create_dataset(src, out, progress=False)
    assert out.read_bytes() == b"previous dataset"

    (src / "c.png").unlink()
    calls = []

    def interrupt_on_second(image: PIL.Image.Image) -> bytes:
        calls.append(image)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return b"png"

    monkeypatch.setattr("sgmodels.data.dataset_tool._png_bytes", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        create_dataset(src, tmp_path / "new.zip", progress=False)
    assert_nothing_written(tmp_path, tmp_path / "new.zip")


# ---------------------------------------------------------------------------------------------------------------
# CLI.


def test_cli_create_and_info(tmp_path: Path) -> None:
    images = random_images(4, 8, 3, seed=9)
    src = write_folder(tmp_path / "src", dict(zip(["a/1.png", "a/2.png", "a/3.png", "b/1.png"], images, strict=True)))
    runner = CliRunner()
    result = runner.invoke(dataset_cli, ["create", str(src), str(tmp_path / "d.zip"), "--resolution", "4",
                                         "--channels", "1"])
    assert result.exit_code == 0, result.output
    assert "4 images, 4x4, 1 channel(s), 2-dim labels" in result.output
    result = runner.invoke(dataset_cli, ["info", str(tmp_path / "d.zip"), "--verify"])
    assert result.exit_code == 0, result.output
    assert "images:      4" in result.output
    assert "0 a: 3" in result.output and "1 b: 1" in result.output

    (src / "a" / "2.png").write_bytes(b"garbage")
    result = runner.invoke(dataset_cli, ["create", str(src), str(tmp_path / "e.zip")])
    assert result.exit_code == 1
    assert "2.png" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "e.zip").exists()
