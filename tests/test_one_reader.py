"""One reader per dataset layout: sgmodels' `ImageDataset` (training) and sgeval's image sources (evaluation) read
the same folder or zip into the same images, labels and errors, so a run is evaluated on the data it trained on."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from sgeval.sources.images import open_image_source
from sgmodels.data.dataset import ImageDataset


def _encode(image: PIL.Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _rgb(seed: int, size: int = 8) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _zip_tree(files: dict[str, bytes], path: Path, prefix: str = "") -> Path:
    """A zip of `files`; `prefix` wraps them in one top folder, as zipping a folder does."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(prefix + name, data)
    return path


def _class_tree() -> dict[str, bytes]:
    """Two class sub-folders holding plain, palette and CMYK images, plus a file that is not an image."""
    return {
        "cat/a.png": _encode(_rgb(0), "PNG"),
        "cat/b.jpg": _encode(_rgb(1).convert("CMYK"), "JPEG"),
        "dog/c.png": _encode(_rgb(2).convert("P"), "PNG"),
        "dog/d.png": _encode(_rgb(3), "PNG"),
        "dog/e.png": _encode(_rgb(4), "PNG"),
        "notes.txt": b"not an image",
    }


@pytest.fixture(params=["folder", "zip", "zip-of-folder"])
def class_dataset(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    files = _class_tree()
    if request.param == "folder":
        return _write_tree(tmp_path / "classes", files)
    return _zip_tree(files, tmp_path / "classes.zip", prefix="classes/" if request.param == "zip-of-folder" else "")


def _dataset_items(data: ImageDataset) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, C, H, W] images and float32 [N, label_dim] labels of every item."""
    items = [data[i] for i in range(len(data))]
    return np.stack([image for image, _ in items]), np.stack([label for _, label in items])


@pytest.mark.parametrize("xflip", [False, True])
def test_same_images_names_and_class_labels(class_dataset: Path, xflip: bool) -> None:
    training = ImageDataset(class_dataset, xflip=xflip)
    evaluation = open_image_source(class_dataset, xflip=xflip)
    assert len(training) == evaluation.num_items == (10 if xflip else 5)
    assert evaluation.names == [training.image_name(i) for i in range(5)] == ["cat/a.png", "cat/b.jpg", "dog/c.png",
                                                                              "dog/d.png", "dog/e.png"]
    images, label_vectors = _dataset_items(training)
    np.testing.assert_array_equal(evaluation.read(range(len(training))).numpy(), images)
    assert training.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(evaluation.labels, training.raw_class_indices())
    np.testing.assert_array_equal(evaluation.labels[:5], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(evaluation.label_vectors(), label_vectors)


def test_max_items_keeps_the_labels_of_the_whole_dataset(class_dataset: Path) -> None:
    first_two = open_image_source(class_dataset, max_items=2)
    np.testing.assert_array_equal(first_two.labels, [0, 0])
    assert first_two.label_vectors().shape == (2, ImageDataset(class_dataset).label_dim)  # c_dim of all classes


def test_cmyk_jpeg_decodes_to_the_same_rgb_pixels(tmp_path: Path) -> None:
    data = _encode(_rgb(7).convert("CMYK"), "JPEG")
    folder = _write_tree(tmp_path / "cmyk", {"x.jpg": data})
    expected = np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)  # [3, H, W]
    np.testing.assert_array_equal(ImageDataset(folder)[0][0], expected)
    np.testing.assert_array_equal(open_image_source(folder).read([0])[0].numpy(), expected)


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_labels_naming_a_missing_file_are_refused_by_both(tmp_path: Path, kind: str) -> None:
    files = {"a.png": _encode(_rgb(0), "PNG"), "b.png": _encode(_rgb(1), "PNG")}
    labels = {"labels": [["a.png", 0], ["b.png", 1], ["ghost.png", 1]]}
    files["dataset.json"] = json.dumps(labels).encode()
    path = _write_tree(tmp_path / "d", files) if kind == "folder" else _zip_tree(files, tmp_path / "d.zip")
    with pytest.raises(ValueError, match="ghost.png") as training:
        ImageDataset(path)
    with pytest.raises(ValueError, match="ghost.png") as evaluation:
        open_image_source(path)
    assert str(evaluation.value) == str(training.value)


def _bad_first_image(kind: str) -> bytes:
    if kind == "truncated":
        return _encode(_rgb(0), "PNG")[:-40]
    if kind == "not-an-image":
        return b"\x89PNG\r\n\x1a\n not really a png"
    if kind == "rgba":
        return _encode(_rgb(0).convert("RGBA"), "PNG")
    if kind == "gray-alpha":
        return _encode(_rgb(0).convert("LA"), "PNG")
    if kind == "16-bit":
        return _encode(PIL.Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)), "PNG")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "not-an-image", "rgba", "gray-alpha", "16-bit"])
def test_bad_images_are_the_same_error_in_both(tmp_path: Path, kind: str) -> None:
    folder = _write_tree(tmp_path / kind, {"a.png": _bad_first_image(kind), "b.png": _encode(_rgb(1), "PNG")})
    with pytest.raises(ValueError, match=r"a\.png") as training:
        ImageDataset(folder)
    with pytest.raises(ValueError, match=r"a\.png") as evaluation:
        open_image_source(folder)
    assert str(evaluation.value) == str(training.value)


@pytest.mark.parametrize("odd", ["size", "channels"])
def test_mixed_shapes_are_the_same_error_in_both(tmp_path: Path, odd: str) -> None:
    other = _rgb(1, size=4) if odd == "size" else _rgb(1).convert("L")
    folder = _write_tree(tmp_path / odd, {"a.png": _encode(_rgb(0), "PNG"), "b.png": _encode(other, "PNG")})
    with pytest.raises(ValueError, match=r"b\.png.*a\.png") as training:
        ImageDataset(folder)[1]
    with pytest.raises(ValueError, match=r"b\.png.*a\.png") as evaluation:
        open_image_source(folder).read([0, 1])
    assert str(evaluation.value) == str(training.value)



def test_conditional_run_is_evaluated_against_its_class_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: a snapshot trained on class sub-folders records them as its training set; sgeval finds the
    same labels there and conditions the generator on them (it used to find none and refuse)."""
    import torch

    import sgeval.helper_networks as helper_networks
    import sgeval.runner as runner
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot
    from tests.sgeval.conftest import FakeExtractor

    monkeypatch.setattr(helper_networks, "build_feature_extractor", lambda *args, **kwargs: FakeExtractor())
    names = [f"{cls}/{i}.png" for i, cls in enumerate(["ant", "bee", "cow"] * 4)]
    folder = _write_tree(tmp_path / "train", {name: _encode(_rgb(i, size=16), "PNG") for i, name in enumerate(names)})
    assert ImageDataset(folder).label_dim == 3
    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", resolution=16, c_dim=3, channel_base=64, channel_max=8,
                              z_dim=8, w_dim=8, map_layers=1)
    snapshot = save_snapshot(tmp_path / "cond.safetensors", {"G_ema": G.eval()},
                             metadata={"training_set": {"path": str(folder)}})
    result = runner.evaluate("fid50k_full@gen10", snapshot, None, cache=False, progress=False)
    assert result.extra["labels"]["sampled_from"] == "reference"
    assert (result.extra["labels"]["num_labels"], result.extra["labels"]["c_dim"]) == (12, 3)
