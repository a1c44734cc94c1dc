"""Bounded readers of untrusted bytes (sgmodels.untrusted) and the limits the dataset reader applies with them."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from sgmodels.data.reader import MAX_LABEL_DIM, DatasetReader, max_labels_file_bytes
from sgmodels.training.options import OPTIONS_FILE, read_options
from sgmodels.untrusted import (
    MAX_JSON_DEPTH,
    check_count,
    check_zip_inflation,
    load_json,
    read_json_file,
    read_zip_member,
)


def _nested(depth: int, opener: str = "[", closer: str = "]", inside: str = "1") -> str:
    return opener * depth + inside + closer * depth


# ---------------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000, 1_000_000])
@pytest.mark.parametrize("brackets", ["[]", "{}"])
def test_deep_json_is_a_clear_error_at_every_depth(depth: int, brackets: str) -> None:
    text = _nested(depth) if brackets == "[]" else _nested(depth, '{"a": ', "}")
    with pytest.raises(ValueError, match=r"meta\.json: malformed JSON: nested \d+ levels deep"):
        load_json(text, "meta.json")


@pytest.mark.parametrize("place", ["labels", "class_names", "value"])
def test_deep_nesting_anywhere_in_a_document_is_found(place: str) -> None:
    document = json.dumps({"labels": [], "class_names": [], "value": 0})
    deep = json.dumps({place: "X"}).replace('"X"', _nested(5000))
    with pytest.raises(ValueError, match="nested"):
        load_json(document[:-1] + ", " + deep[1:], "dataset.json")


def test_brackets_inside_strings_are_not_nesting() -> None:
    names = ["[[[[" * 40 + "name.png", 'q\\"' + "{" * 100]
    assert load_json(json.dumps({"labels": [[names[0], 1]], "x": names[1]}), "d.json")["labels"][0][0] == names[0]
    assert load_json(_nested(MAX_JSON_DEPTH), "d.json") is not None


@pytest.mark.parametrize("data", [b"\xff\xfe{", b"{", b'{"a": }', b"", "\ud800"])
def test_invalid_json_names_the_file(data: bytes | str) -> None:
    with pytest.raises(ValueError, match=r"^x\.json: "):
        load_json(data, "x.json")


def test_json_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"pad": "x" * 5000}))
    assert read_json_file(path, max_bytes=10_000)["pad"] == "x" * 5000
    with pytest.raises(ValueError, match=r"big\.json: .* more than the 1,000 this file may have"):
        read_json_file(path, max_bytes=1000)


# ---------------------------------------------------------------------------------------------------- zip members


def _zip_with(tmp_path: Path, name: str, data: bytes, method: int = zipfile.ZIP_DEFLATED) -> Path:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr(name, data)
    return path


def _forge_declared_size(path: Path, size: int) -> None:
    """Patch the member's uncompressed size in the central directory (and the local header), as a bomb would."""
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        start = raw.index(signature)
        raw[start + offset:start + offset + 4] = struct.pack("<I", size)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("size", [2_000, 50_000, 1 << 20])
def test_members_above_their_limit_are_refused_before_inflating(tmp_path: Path, size: int) -> None:
    path = _zip_with(tmp_path, "x.png", bytes(size))
    with zipfile.ZipFile(path) as archive:
        assert read_zip_member(archive, "x.png", "archive.zip:x.png", size) == bytes(size)
        with pytest.raises(ValueError, match=r"archive\.zip:x\.png: inflates to .* more than the"):
            read_zip_member(archive, "x.png", "archive.zip:x.png", size - 1)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("forged", [10**6, 4 * 2**30 - 1])
def test_a_directory_that_lies_about_the_size_is_refused(tmp_path: Path, method: int, forged: int) -> None:
    path = _zip_with(tmp_path, "m.json", b'{"labels": null}' * 10, method)
    _forge_declared_size(path, forged)
    with zipfile.ZipFile(path) as archive:
        with pytest.raises(ValueError, match="more than they can hold"):
            check_zip_inflation(archive.getinfo("m.json"), "m.json")
        with pytest.raises(ValueError, match="m.json"):
            read_zip_member(archive, "m.json", "m.json", 2**33)


def test_a_member_smaller_than_declared_is_a_clear_error(tmp_path: Path) -> None:
    path = _zip_with(tmp_path, "m.bin", bytes(range(256)) * 8, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"PK\x03\x04") + 40] ^= 0xFF  # one data byte flipped: the CRC no longer matches
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as archive, pytest.raises(ValueError, match=r"m\.bin: cannot read"):
        read_zip_member(archive, "m.bin", "m.bin", 1 << 20)


def test_check_count() -> None:
    assert check_count(5, 5, "n", "why") == 5
    with pytest.raises(ValueError, match=r"n is 6, more than the 5 accepted \(why\)"):
        check_count(6, 5, "n", "why")
    with pytest.raises(ValueError, match="n must be >= 0"):
        check_count(-1, 5, "n", "why")


# ---------------------------------------------------------------------------------------------------- datasets


def _png(value: int = 0) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _dataset_zip(tmp_path: Path, labels: object, count: int = 3) -> Path:
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(count):
            archive.writestr(f"img{index}.png", _png(index))
        archive.writestr("dataset.json", labels if isinstance(labels, (str, bytes)) else json.dumps(labels))
    return path


@pytest.mark.parametrize("index", [MAX_LABEL_DIM, 10**9, 10**30])
def test_a_huge_class_index_is_refused_without_allocating(tmp_path: Path, index: int) -> None:
    labels = {"labels": [["img0.png", 0], ["img1.png", 1], ["img2.png", index]]}
    with pytest.raises(ValueError, match=r"dataset\.json: the number of classes .* more than the 32,768"):
        DatasetReader(_dataset_zip(tmp_path, labels))
    ok = DatasetReader(_dataset_zip(tmp_path, {"labels": [["img0.png", 0], ["img1.png", 1],
                                                           ["img2.png", MAX_LABEL_DIM - 1]]}))
    assert ok.label_dim == MAX_LABEL_DIM


@pytest.mark.parametrize("index", [-1, -(10**30)])
def test_a_negative_class_index_is_refused_at_any_size(tmp_path: Path, index: int) -> None:
    labels = {"labels": [["img0.png", 0], ["img1.png", 1], ["img2.png", index]]}
    with pytest.raises(ValueError, match=r"dataset\.json: class indices must be >= 0"):
        DatasetReader(_dataset_zip(tmp_path, labels))


@pytest.mark.parametrize("what", ["attributes", "class_names"])
def test_label_vectors_and_class_names_are_bounded(tmp_path: Path, what: str) -> None:
    width = MAX_LABEL_DIM + 1
    if what == "attributes":
        labels: dict[str, object] = {"labels": [[f"img{i}.png", [0] * width] for i in range(3)]}
    else:
        labels = {"labels": [[f"img{i}.png", i] for i in range(3)], "class_names": ["c"] * width}
    with pytest.raises(ValueError, match=r"dataset\.json: the number of .* more than the 32,768"):
        DatasetReader(_dataset_zip(tmp_path, labels))


@pytest.mark.parametrize("padding", [1, 1 << 20])
def test_a_dataset_json_beyond_its_size_limit_is_refused(tmp_path: Path, padding: int) -> None:
    limit = max_labels_file_bytes(3)
    text = json.dumps({"labels": None, "pad": " " * (limit + padding)})
    with pytest.raises(ValueError, match=r"dataset\.json: inflates to .* more than the"):
        DatasetReader(_dataset_zip(tmp_path, text))


def test_deep_dataset_json_in_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png())
    (folder / "dataset.json").write_text('{"labels": ' + _nested(50_000) + "}")
    with pytest.raises(ValueError, match=r"dataset\.json: malformed JSON: nested"):
        DatasetReader(folder)


# ---------------------------------------------------------------------------------------------------- run folders


@pytest.mark.parametrize("content", ["[]", '{"options": 3}', '{"options": {"kimg": 1, "unknown": 2}}',
                                     '{"options": {"kimg": 1}', _nested(10_000)])
def test_damaged_training_options_are_one_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / OPTIONS_FILE).write_text(content)
    try:
        options = read_options(tmp_path)
    except ValueError as error:
        assert OPTIONS_FILE in str(error)
    else:  # unknown keys are ignored, as files of a newer sgmodels may add some
        assert options.kimg == 1


@pytest.mark.parametrize("entry", [0, 1, 2])
def test_a_forged_directory_name_length_is_refused(tmp_path: Path, entry: int) -> None:
    """A forged name length swallows the entries after it (or the end record): the directory walk tells."""
    from sgmodels.untrusted import check_zip_directory

    path = tmp_path / "three.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(3):
            archive.writestr(f"img{index}.png", _png(index))
    with zipfile.ZipFile(path) as archive:
        check_zip_directory(archive, path)  # intact
    raw = bytearray(path.read_bytes())
    position = -1
    for _ in range(entry + 1):
        position = raw.index(b"PK\x01\x02", position + 1)
    raw[position + 28:position + 30] = struct.pack("<H", 65535)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="central directory is damaged or forged"), zipfile.ZipFile(path) as archive:
        check_zip_directory(archive, path)


@pytest.mark.parametrize("opcode", [b"B", b"X", b"\x8e"])  # BINBYTES, BINUNICODE, BINBYTES8
def test_pickle_lengths_beyond_the_file_are_refused_before_unpickling(tmp_path: Path, opcode: bytes) -> None:
    from sgmodels.importers.unpickle import check_declared_lengths, restricted_load

    width = 8 if opcode == b"\x8e" else 4
    forged = b"\x80\x04" + opcode + (2**31 - 1).to_bytes(width, "little") + b"abc."
    with pytest.raises(ValueError, match=r"forged\.pkl: not a readable pickle"):
        check_declared_lengths(forged, "forged.pkl")
    path = tmp_path / "forged.pkl"
    path.write_bytes(forged)
    with pytest.raises(ValueError, match=r"forged\.pkl"):
        restricted_load(path, {})
