"""sgmodels.fileio: umask permissions, atomic replacement, clean failure; and its users (snapshots, sgeval)."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sgmodels.fileio import atomic_temp_path, atomic_write_bytes, write_json_atomic, write_text_atomic

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test and restore it afterwards."""
    original = os.umask(0o022)
    os.umask(original)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(original)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@posix_only
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_0666_minus_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    with atomic_write_bytes(tmp_path / "a.bin") as stream:
        stream.write(b"x")
    with atomic_temp_path(tmp_path / "b.bin") as temp:
        temp.write_bytes(b"y")
    write_json_atomic(tmp_path / "c.json", {"k": 1})
    for name in ("a.bin", "b.bin", "c.json"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name


@posix_only
def test_snapshot_and_sgeval_files_follow_the_umask(tmp_path: Path, umask) -> None:
    """Both packages' writers go through the same helper, so neither leaves mkstemp's private 0600."""
    import torch

    from sgeval.atomic import atomic_write_text
    from sgmodels.snapshot import read_snapshot_info, save_snapshot

    umask(0o002)
    path = save_snapshot(tmp_path / "snap.safetensors", {"G": _tiny_generator(torch)}, metadata={"kimg": 1})
    atomic_write_text(tmp_path / "report.txt", "hello")
    assert _mode(path) == 0o664
    assert _mode(tmp_path / "report.txt") == 0o664
    assert read_snapshot_info(path).metadata["kimg"] == 1
    assert _leftovers(tmp_path) == []


def _tiny_generator(torch):  # a registered network, as save_snapshot requires
    from sgmodels.presets import build_networks

    G, _, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    return G


def test_success_replaces_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with atomic_write_bytes(target) as stream:
        stream.write(b"new ")
        assert target.read_text() == "old", "the target must not change before the block ends"
        assert Path(stream.name).parent == tmp_path, "the temp file must be in the target's directory"
        stream.write(b"content")
    assert target.read_text() == "new content"
    assert _leftovers(tmp_path) == []


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"), atomic_write_bytes(target) as stream:
        seen.append(Path(stream.name))
        stream.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert not seen[0].exists()
    assert _leftovers(tmp_path) == []

    with pytest.raises(KeyboardInterrupt), atomic_temp_path(target) as temp:  # BaseException too
        temp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_failure_without_an_old_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "sub" / "bad.json", {"x": object()})  # not serialisable
    assert not (tmp_path / "sub" / "bad.json").exists()
    assert not (tmp_path / "sub").exists() or _leftovers(tmp_path / "sub") == []
    with pytest.raises(OSError), atomic_write_bytes(tmp_path / "new.bin") as stream:
        stream.write(b"partial")
        raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_temp_names_are_unique_and_hidden(tmp_path: Path) -> None:
    target = tmp_path / "same.bin"
    with atomic_temp_path(target) as first, atomic_temp_path(target) as second:
        assert first != second
        assert first.name.startswith(".same.bin.") and second.name.startswith(".same.bin.")
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() == b"1"  # the outer block finished last: its content wins
    assert _leftovers(tmp_path) == []


def test_json_and_text_round_trip(tmp_path: Path) -> None:
    data = {"b": [1, 2.5, None], "a": "é"}
    write_json_atomic(tmp_path / "d" / "x.json", data)
    text = (tmp_path / "d" / "x.json").read_text(encoding="utf-8")
    assert json.loads(text) == data and text.endswith("\n")
    write_text_atomic(tmp_path / "t.txt", "ä\nb")
    assert (tmp_path / "t.txt").read_bytes() == "ä\nb".encode()


def test_sgmodels_never_imports_sgeval() -> None:
    """The dependency goes one way only: sgeval may use sgmodels.fileio, not the reverse."""
    root = Path(__file__).resolve().parents[2] / "sgmodels"
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.py")
                 if any(line.lstrip().startswith(("import sgeval", "from sgeval"))
                        for line in path.read_text(encoding="utf-8").splitlines())]
    assert offenders == []
