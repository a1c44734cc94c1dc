"""The demo (`nox -s demo`, benchmarks/demo) on a micro budget: data fallback, report files, resume, options.

The run trains StyleGAN2 cpu32 for four minibatches of 8 on scikit-learn's bundled digits (the fallback when
Fashion-MNIST is missing), trains a tiny measuring stick and measures two snapshots with a few generated images:
the numbers mean nothing, the pipeline is the real one.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.demo import budget as budget_module
from benchmarks.demo import data as data_module
from benchmarks.demo.budget import BUDGETS, domain_protocols, official_fid
from benchmarks.demo.cli import DemoSettings, run_demo, settings_from
from benchmarks.demo.report import DemoResult

MICRO = dataclasses.replace(
    BUDGETS["default"], name="micro", kimg=0.032, tick_kimg=0.016, snap=1,
    detector_options=("--max-items", "64", "--epochs", "1", "--no-progress"),
    classifier_options=("--max-items", "64", "--epochs", "1", "--resolution", "16", "--no-progress"),
    num_gen=16, num_real=32, num_pairs=8, num_ls=32, num_coverage=16, train_overrides={"batch": 8})


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


def _settings(out: Path) -> DemoSettings:
    """Fashion-MNIST pointed at a missing folder and apt disabled: the digits fallback."""
    return DemoSettings(budget=MICRO, out=out, fashion_mnist=out / "no-fashion-mnist", install=False,
                        command="python -m benchmarks.demo (test)")


@pytest.fixture(scope="module")
def first_run(demo_out: Path) -> tuple[DemoResult, Path, Path]:
    with pytest.MonkeyPatch.context() as patch:  # the module-scoped run must not see a user's caches either
        patch.setenv("SGEVAL_CACHE_DIR", str(demo_out / "caches" / "sgeval"))
        patch.setenv("SGEVAL_WEIGHTS_DIR", str(demo_out / "caches" / "weights"))
        patch.setenv("TORCH_HOME", str(demo_out / "caches" / "torch"))
        patch.setenv("SGEVAL_OFFLINE", "1")
        return run_demo(_settings(demo_out))


def _jsonl_lines(run_dir: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in run_dir.glob("metric-*.jsonl"))


def test_micro_demo_writes_a_self_contained_report(first_run: tuple[DemoResult, Path, Path]) -> None:
    result, markdown, page = first_run
    assert result.data.fallback and result.data.path.name == "digits32.zip"
    assert [path.name for path in result.snapshots] == ["network-snapshot-000000.016.safetensors",
                                                        "network-snapshot-000000.032.safetensors"]
    recorded = {json.loads(line)["metric"] for path in result.run_dir.glob("metric-*.jsonl")
                for line in path.read_text().splitlines()}
    assert recorded == set(result.protocols)  # every protocol, FID skipped (no Inception weights offline)
    assert "skipped" in result.official_note
    assert _jsonl_lines(result.run_dir) == len(result.protocols) * len(result.snapshots)

    text = markdown.read_text()
    assert "FALLBACK DATA" in text and "![" in text and "| kimg" in text.replace("|   kimg", "| kimg")
    for figure in ("samples.png", "style-mixing.png", "stochastic-variation.png", "metrics-vs-kimg.png"):
        assert (markdown.parent / figure).is_file() and f"({figure})" in text
    page_text = page.read_text()
    assert page_text.count('src="data:image/png;base64,') == 4
    for external in ('src="http', "href=", "<link", "<script", "url("):
        assert external not in page_text
    assert "<table" in page_text and 'class="warning"' in page_text and "held out" in page_text


def test_rerun_resumes_without_redoing_work(first_run: tuple[DemoResult, Path, Path], demo_out: Path) -> None:
    result, _markdown, _page = first_run
    before = {path: path.stat().st_mtime_ns for path in result.snapshots}
    lines = _jsonl_lines(result.run_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SGEVAL_CACHE_DIR", str(demo_out / "caches" / "sgeval"))
        again, markdown, _page = run_demo(_settings(demo_out))
    assert {"measuring stick", "training", "metrics"} <= again.timings.skipped
    assert again.run_dir == result.run_dir
    assert {path: path.stat().st_mtime_ns for path in again.snapshots} == before
    assert _jsonl_lines(result.run_dir) == lines
    assert "done earlier" in markdown.read_text()


def test_digits_fallback_is_a_labelled_32x32_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_apt(*args: object, **kwargs: object) -> None:
        raise AssertionError("apt-get must not run for a folder other than Debian's")

    monkeypatch.setattr(data_module.subprocess, "run", no_apt)
    data = data_module.prepare_data(tmp_path, fashion_mnist=tmp_path / "missing", install=True)
    assert data.fallback and data.warning is not None and "FALLBACK DATA" in data.warning
    with zipfile.ZipFile(data.path) as archive:
        labels = json.loads(archive.read("dataset.json"))
        names = [name for name in archive.namelist() if name.endswith(".png")]
    assert len(names) == 1797 and len(labels["labels"]) == 1797
    assert sorted({label for _name, label in labels["labels"]}) == list(range(10))
    assert labels["class_names"] == [f"digit{digit}" for digit in range(10)]
    from sgmodels.data.dataset import ImageDataset

    with ImageDataset(data.path) as dataset:
        assert dataset[0][0].shape == (1, 32, 32)


def _write_idx(folder: Path, count: int) -> None:
    """A tiny Fashion-MNIST look-alike: IDX image and label files as Debian installs them (gzipped)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    header = np.array([0x803, count, 28, 28], dtype=">i4").tobytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    labels = (np.arange(count) % 10).astype(np.uint8)
    header = np.array([0x801, count], dtype=">i4").tobytes()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))


def test_fashion_mnist_folder_becomes_fmnist32_zip_once(tmp_path: Path) -> None:
    source = tmp_path / "fashion-mnist"
    source.mkdir()
    _write_idx(source, 20)
    data = data_module.prepare_data(tmp_path / "out", fashion_mnist=source, install=False)
    assert data.source == "fashion-mnist" and data.path.name == "fmnist32.zip" and data.warning is None
    built = data.path.stat().st_mtime_ns
    assert data_module.prepare_data(tmp_path / "out", fashion_mnist=source).path.stat().st_mtime_ns == built
    given = data_module.prepare_data(tmp_path / "elsewhere", given=data.path)
    assert given.source == "given" and given.path == data.path


def test_official_fid_only_with_weights_found_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    protocol, note = official_fid(BUDGETS["default"])
    assert protocol is None and "skipped" in note and "never downloads" in note
    import sgeval.weights

    def found(spec: sgeval.weights.WeightsSpec, weights_dir: object = None) -> sgeval.weights.ResolvedWeights:
        return sgeval.weights.ResolvedWeights(path=Path("/weights") / spec.filename, sha256=str(spec.sha256),
                                              spec=spec, verified=True, origin="test", format=spec.format)

    monkeypatch.setattr(sgeval.weights, "find_weights", found)
    protocol, note = official_fid(BUDGETS["default"])
    assert protocol == "fid50k_full@gen2k-real2k" and "/weights/" in note
    assert budget_module.OFFICIAL_FID in protocol


def test_budgets_and_options() -> None:
    assert domain_protocols(BUDGETS["default"], "+nocrop+lpips-domain") == [
        "fd_domain@gen2k-real10k", "kd_domain@gen2k-real10k", "pr_domain@gen2k-real2k",
        "ppl_wend@gen1k+nocrop+lpips-domain", "ppl_zend@gen1k+nocrop+lpips-domain", "ls@gen10k"]
    default, long = settings_from([]), settings_from(["--long", "--arch", "stylegan"])
    assert default.budget == BUDGETS["default"] and default.report_dir == Path("out/demo/report")
    assert (long.budget.kimg, long.budget.tick_kimg, long.budget.snap) == (120, 4, 2)
    assert long.report_dir == Path("out/demo/report-stylegan-long")
    quick = settings_from(["--kimg", "8", "--no-install"])
    assert quick.budget.kimg == 8 and quick.budget.name == "default" and not quick.install
    assert quick.command == "python -m benchmarks.demo --kimg 8 --no-install"
