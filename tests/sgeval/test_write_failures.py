"""Writes that fail in the sgeval commands (issue 17): output folders are checked before long work, a trained network
whose final write fails is kept elsewhere (and the message says where), full-disk errors name the path, the same
`could not write PATH (reason); what was kept` line as sgmodels, and piped progress is plain lines.

Unwritable folders are a regular file where a parent folder should be (root ignores chmod, see test_hardening.py).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import sgeval.classifiers as classifiers
import sgeval.features.registry as registry
from sgeval.cli import main
from sgeval.detector import load_detector
from sgmodels import fileio

from .conftest import FakeExtractor, random_images, write_folder, write_zip


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _blocked(tmp_path: Path) -> Path:
    (tmp_path / "not-a-folder").write_text("x")
    return tmp_path / "not-a-folder" / "out"


def _assert_clear_error(result: Result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for part in parts:
        assert part in result.output, result.output


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "labelled.zip", random_images(12, 16, channels=1, seed=3), labels=[0, 1] * 6)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the training loop (a preflight failure must come before it)."""
    calls: list[int] = []
    original = classifiers.fit_logits

    def fit(*args: object, **kwargs: object) -> None:
        calls.append(1)
        original(*args, **kwargs)

    monkeypatch.setattr(classifiers, "fit_logits", fit)
    import sgeval.detector as detector

    monkeypatch.setattr(detector, "fit_logits", fit)
    return calls


TINY_DETECTOR = ["--epochs", "1", "--batch", "4", "--channel-base", "32", "--channel-max", "8"]


def test_detector_and_classifier_training_check_the_folder_before_training(
        tmp_path: Path, labelled: Path, no_training: list[int]) -> None:
    blocked = _blocked(tmp_path)
    _assert_clear_error(_invoke("detector", "train", "--data", labelled, "--outdir", blocked, *TINY_DETECTOR),
                        f"could not write {blocked} (", "nothing was started")
    _assert_clear_error(_invoke("classifiers", "train", "--data", labelled, "--outdir", blocked, "--epochs", "1"),
                        f"could not write {blocked} (", "nothing was started")
    assert no_training == []


def test_a_detector_whose_folder_fills_up_is_kept_elsewhere(tmp_path: Path, labelled: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    outdir = tmp_path / "det"
    original = classifiers.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if path.parent == outdir:  # the disk of OUTDIR filled up during training
            raise fileio.WriteError(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        original(path, data)

    monkeypatch.setattr(classifiers, "atomic_write_bytes", write)
    result = _invoke("detector", "train", "--data", labelled, "--outdir", outdir, *TINY_DETECTOR, "--no-progress")
    kept = list((tmp_path / "tmp").glob("kept-the-trained-detector-*"))
    assert len(kept) == 1
    _assert_clear_error(result, f"could not write {outdir / 'detector.safetensors'} (No space left on device); "
                                f"the trained detector was kept in {kept[0]}: move its files to {outdir}")
    assert load_detector(kept[0]).names  # the whole detector, verified by its description's sha256


def test_projection_checks_its_folders_before_loading_the_network(tmp_path: Path) -> None:
    network = tmp_path / "G.safetensors"
    network.write_bytes(b"never read")
    targets = write_folder(tmp_path / "targets", random_images(2, 16, seed=1))
    blocked = _blocked(tmp_path)
    _assert_clear_error(_invoke("project", network, "--targets", targets, "--outdir", blocked),
                        f"could not write {blocked} (", "nothing was started")
    _assert_clear_error(_invoke("project", network, "--targets", targets, "--outdir", tmp_path / "ok",
                                "--run-dir", blocked), f"could not write {blocked} (")


@pytest.fixture
def fake_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "build_extractor", lambda *args, **kwargs: FakeExtractor())


def test_stats_on_a_blocked_folder_or_a_full_disk_names_the_path(tmp_path: Path, fake_detector: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = write_folder(tmp_path / "real", random_images(6, 8, seed=2))
    blocked = _blocked(tmp_path)
    _assert_clear_error(_invoke("stats", real, blocked / "ref.npz", "--no-cache", "--no-progress"),
                        f"could not write {blocked} (", "nothing was started")

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() reports a full disk: no file name

    monkeypatch.setattr(fileio, "_fsync_file", full)
    out = tmp_path / "ref.npz"
    _assert_clear_error(_invoke("stats", real, out, "--no-cache", "--no-progress"),
                        f"could not write {out} (No space left on device)")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_cache_warning_names_only_options_that_exist(tmp_path: Path) -> None:
    from sgeval.cache import CacheWriteWarning, FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    with pytest.warns(CacheWriteWarning) as caught:
        cache._warn_unwritable(OSError(errno.EROFS, os.strerror(errno.EROFS)))
    message = str(caught[0].message)
    assert "SGEVAL_CACHE_DIR" in message and "--no-cache" in message and "--cache-dir" not in message
    assert "--cache-dir" not in _invoke("fid", "--help").output  # so the warning must not suggest it


def test_piped_classifier_training_prints_plain_progress_lines(tmp_path: Path, labelled: Path) -> None:
    result = _invoke("classifiers", "train", "--data", labelled, "--outdir", tmp_path / "cls", "--epochs", "2",
                     "--batch", "4", "--channel-base", "32", "--channel-max", "8")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("classifiers:")]
    assert lines and "\r" not in result.stderr
    assert lines[-1].startswith("classifiers: 6/6 step (100%)") and "elapsed" in lines[-1] and "loss=" in lines[-1]
    assert np.isfinite(float(lines[-1].rsplit("loss=", 1)[1]))
