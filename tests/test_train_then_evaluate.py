"""End to end across both packages, as a user runs them: `sgmodels train --metrics ...` discovers sgeval through
the `sgmodels.metric_hooks` entry point, every snapshot gets a metric line, and `sgeval report` tabulates them.

The FID Inception has random weights here (no real weights offline); the path through the weights lookup, the
extractor, the cache and the metric is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from sgeval.report import report_command
from sgmodels.commands.train import train as train_command
from tests.sgeval.conftest import he_random_state

QUICK_FID = "fid50k_full@gen8-real8"


@pytest.fixture(scope="module")
def random_inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sgeval.features.inception import InceptionV3TF

    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(he_random_state(InceptionV3TF()), path)
    return path


def _image_folder(root: Path, count: int = 16, resolution: int = 16) -> Path:
    rng = np.random.RandomState(1)
    root.mkdir(parents=True)
    for idx in range(count):
        PIL.Image.fromarray(rng.randint(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(root / f"{idx}.png")
    return root


def test_training_evaluates_each_snapshot_through_the_entry_point(
    tmp_path: Path, random_inception_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SGEVAL_DETECTOR_WEIGHTS", str(random_inception_file))
    data = _image_folder(tmp_path / "images")
    args = ["--arch", "stylegan2", "--config", "cpu16", "--data", str(data), "--outdir", str(tmp_path / "runs"),
            "--kimg", "0.016", "--tick-kimg", "0.008", "--snap", "1", "--batch", "8", "--channel-base", "256",
            "--channel-max", "32", "--z-dim", "32", "--w-dim", "32", "--metrics", QUICK_FID, "--quiet"]
    result = CliRunner().invoke(train_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    lines = [json.loads(line) for line in (run_dir / f"metric-{QUICK_FID}.jsonl").read_text().splitlines()]
    assert [Path(line["snapshot_pkl"]).name for line in lines] == [
        "network-snapshot-000000.008.safetensors", "network-snapshot-000000.016.safetensors"]
    fids = [line["values"]["fid"] for line in lines]
    assert all(np.isfinite(fids)) and all(value >= 0 for value in fids)
    assert fids[0] != fids[1]  # two different snapshots
    assert lines[0]["data_fingerprint"] == lines[1]["data_fingerprint"]  # the training set recorded in the run

    report = CliRunner().invoke(report_command, [str(run_dir), "--format", "csv"])
    assert report.exit_code == 0, report.output
    rows = [row for row in report.output.splitlines() if "network-snapshot-000000.0" in row]
    assert len(rows) == 2, report.output


def test_missing_detector_weights_stop_training_before_it_starts(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the Inception file, `train --metrics fid50k_full` fails at once with the weights message (exit 1),
    instead of training and printing a traceback at every snapshot."""
    import sgmodels.training.loop as loop

    monkeypatch.delenv("SGEVAL_DETECTOR_WEIGHTS", raising=False)
    monkeypatch.setattr(loop, "build_training", lambda *a, **k: pytest.fail("networks built before the check"))
    data = _image_folder(tmp_path / "images")
    args = ["--arch", "stylegan2", "--config", "cpu16", "--data", str(data), "--outdir", str(tmp_path / "runs"),
            "--kimg", "0.016", "--metrics", "fid50k_full", "--quiet"]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 1, result.output
    assert "feature-network weights not found for 'inception-v3-tf'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_wrong_detector_weights_stop_training_before_it_starts(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    monkeypatch.setenv("SGEVAL_DETECTOR_WEIGHTS", str(wrong))
    data = _image_folder(tmp_path / "images")
    args = ["--arch", "stylegan2", "--config", "cpu16", "--data", str(data), "--outdir", str(tmp_path / "runs"),
            "--kimg", "0.016", "--metrics", "kid50k_full", "--quiet"]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 1 and "wrong.pth: not the Inception port's state dict" in result.output, result.output
