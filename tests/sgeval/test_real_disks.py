"""Full and read-only disks for real (issue 17): small tmpfs mounts instead of simulated errors.

Where the test process may mount (root on Linux, as in CI here), each case mounts a tmpfs of a few KiB (full once
the first files are written) or a read-only one (root cannot write there either: EROFS, unlike chmod), runs a
command onto it, and checks one clear error, no traceback, no partial or temporary file, and the finished files
intact. Elsewhere the cases are skipped; tests/sgmodels/test_write_failures.py and tests/sgeval/test_write_failures.py
cover the same paths with simulated errors.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from sgeval.cli import main as sgeval_main
from sgmodels.cli import main as sgmodels_main

from .conftest import random_images, write_zip

GENERATE = ["generate", "stylegan2-cpu16", "--random-init", "--channel-base", "64", "--channel-max", "8",
            "--z-dim", "8", "--w-dim", "8", "--map-layers", "1"]


def _can_mount() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="sgeval-mount-probe-"))
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                                 capture_output=True).returncode == 0
        if mounted:
            subprocess.run(["umount", str(probe)], capture_output=True, check=True)
        return mounted
    except (OSError, subprocess.CalledProcessError):
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


pytestmark = pytest.mark.skipif(not _can_mount(), reason="needs permission to mount a tmpfs (root on Linux)")


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[object]:
    """mount(name, size_kib, read_only=False) -> a fresh tmpfs folder; every mount is undone after the test."""
    mounted: list[Path] = []

    def make(name: str, size_kib: int = 16, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size_kib}k" + (",ro" if read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _invoke(main: object, *args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])  # type: ignore[arg-type]


def _assert_one_clear_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.count("Error:") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def _leftovers(folder: Path) -> list[str]:
    """Temporary or empty files: what a write that failed halfway would leave."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".tmp" in p.name
                  or (p.is_file() and p.stat().st_size == 0))


@pytest.mark.parametrize("size_kib", [4, 8, 24])
def test_generate_onto_a_disk_that_fills_keeps_the_finished_images(tmp_path: Path, mount: object,
                                                                    size_kib: int) -> None:
    reference = tmp_path / "reference"
    assert _invoke(sgmodels_main, *GENERATE, "--seeds", "0-39", "--outdir", reference).exit_code == 0
    disk = mount("disk", size_kib)  # type: ignore[operator]
    result = _invoke(sgmodels_main, *GENERATE, "--seeds", "0-39", "--outdir", disk)
    _assert_one_clear_error(result, "could not write", "No space left on device")
    written = sorted(p.name for p in disk.iterdir())
    assert len(written) < 40 and _leftovers(disk) == []
    for name in written:  # every image that is there is whole
        assert (disk / name).read_bytes() == (reference / name).read_bytes()


@pytest.mark.parametrize("command", ["generate", "convert", "dataset", "stats"])
def test_a_read_only_disk_is_one_clear_error_before_any_work(tmp_path: Path, mount: object, command: str,
                                                              inception_weights_file: Path) -> None:
    read_only = mount("ro", read_only=True)  # type: ignore[operator]
    data = write_zip(tmp_path / "data.zip", random_images(6, 16, seed=3))
    if command == "generate":
        result = _invoke(sgmodels_main, *GENERATE, "--seeds", "0-3", "--outdir", read_only / "out")
    elif command == "convert":
        from sgmodels.presets import build_networks
        from sgmodels.snapshot import save_snapshot

        torch.manual_seed(0)
        G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8,
                                  map_layers=1)
        source = save_snapshot(tmp_path / "in.safetensors", {"G_ema": G})
        result = _invoke(sgmodels_main, "convert", source, read_only / "out.safetensors")
    elif command == "dataset":
        result = _invoke(sgmodels_main, "dataset", "create", data, read_only / "data.zip")
    else:
        result = _invoke(sgeval_main, "stats", data, read_only / "ref.npz", "--detector-weights",
                         inception_weights_file, "--no-progress", "--no-cache")
    _assert_one_clear_error(result, "could not write", "Read-only file system")
    assert list(read_only.iterdir()) == []


def test_statistics_onto_a_full_disk_keep_the_previous_file(tmp_path: Path, mount: object,
                                                            inception_weights_file: Path) -> None:
    """A 2048-d statistics file is 32 MiB: it cannot land on 1 MiB, and the file that was there survives."""
    disk = mount("disk", 1024)  # type: ignore[operator]
    (disk / "ref.npz").write_bytes(b"the previous statistics")
    data = write_zip(tmp_path / "data.zip", random_images(6, 16, seed=3))
    result = _invoke(sgeval_main, "stats", data, disk / "ref.npz", "--detector-weights", inception_weights_file,
                     "--no-progress", "--no-cache")
    _assert_one_clear_error(result, "could not write", "No space left on device")
    assert (disk / "ref.npz").read_bytes() == b"the previous statistics" and _leftovers(disk) == []
