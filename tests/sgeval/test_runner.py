"""The evaluation runner with a tiny deterministic extractor: values vs independent math, feature sharing, prefixes,
cache hits, data resolution, run-directory records and the training hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch

from sgeval.cache import FeatureCache
from sgeval.protocols import parse_count, resolve_protocol
from sgeval.results import read_results
from sgeval.runner import DataNotGivenError, evaluate, evaluate_many
from sgeval.training_hook import metric_hook

from .conftest import CountingExtractor, FakeExtractor, TinyGenerator, random_images, write_folder, write_zip


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    gen = write_folder(tmp_path / "gen", random_images(14, 8, seed=1))
    real = write_folder(tmp_path / "real", random_images(16, 8, seed=2))
    return gen, real


def _fake_features(folder: Path) -> np.ndarray:
    """Independent path: PIL-decoded files in sorted order through the fake extractor."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    images = np.stack([np.asarray(PIL.Image.open(folder / name)).transpose(2, 0, 1) for name in files])
    return FakeExtractor()(torch.from_numpy(images)).double().numpy()  # [N, 9]


def _scipy_fid(a: np.ndarray, b: np.ndarray, ddof: int) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)
    root = scipy.linalg.sqrtm(sa @ sb)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(root).real)


def test_fid_values_match_scipy_for_both_normalisations(folders: tuple[Path, Path], extractor: FakeExtractor) -> None:
    gen, real = _fake_features(folders[0]), _fake_features(folders[1])
    full, tf_style = evaluate_many(["fid50k_full", "fid50k"], folders[0], folders[1], cache=False, progress=False)
    assert full.values["fid"] == pytest.approx(_scipy_fid(gen, real, ddof=0), rel=1e-7)
    assert tf_style.values["fid"] == pytest.approx(_scipy_fid(gen, real, ddof=1), rel=1e-7)
    assert full.values["fid"] != pytest.approx(tf_style.values["fid"], rel=1e-6)  # the normalisation matters
    assert (full.num_gen, full.num_real) == (14, 16)


def test_fid_and_kid_share_one_extraction_per_side(folders: tuple[Path, Path], extractor: CountingExtractor,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sgeval.extract

    calls = []
    original = sgeval.extract.extract_features
    monkeypatch.setattr(sgeval.extract, "extract_features", lambda *a, **k: calls.append(k) or original(*a, **k))
    fid, kid = evaluate_many(["fid50k_full", "kid50k_full"], folders[0], folders[1], cache=False, progress=False)
    assert len(calls) == 2 and all(call["capture_all"] for call in calls)  # KID needs the rows
    assert extractor.images_seen == 14 + 16
    alone = evaluate("kid50k_full", folders[0], folders[1], cache=False, progress=False)
    assert kid.values == alone.values and fid.values["fid"] > 0


def test_smaller_counts_are_prefixes_of_one_extraction(tmp_path: Path, folders: tuple[Path, Path],
                                                       extractor: CountingExtractor) -> None:
    G = TinyGenerator(seed=3)
    both = evaluate_many(["fid50k_full@gen12", "kid50k_full@gen10-real12"], G, folders[1], cache=False,
                         progress=False)
    assert extractor.images_seen == 12 + 16  # largest generated count once, all reals once
    kid_alone = evaluate("kid50k_full", G, folders[1], num_gen=10, num_real=12, cache=False, progress=False)
    assert kid_alone.protocol == both[1].protocol == "kid50k_full@gen10-real12"
    assert kid_alone.values == both[1].values
    assert (both[1].num_gen, both[1].num_real) == (10, 12)


def test_cache_hit_gives_identical_numbers(tmp_path: Path, folders: tuple[Path, Path],
                                           extractor: CountingExtractor) -> None:
    cache = FeatureCache(tmp_path / "cache")
    G = TinyGenerator(seed=4)
    first = evaluate("fid50k_full", G, folders[1], num_gen=12, cache=cache, progress=False)
    seen = extractor.images_seen
    second = evaluate("fid50k_full", G, folders[1], num_gen=12, cache=cache, progress=False)
    assert extractor.images_seen == seen  # nothing extracted again
    assert second.values == first.values
    assert first.extra["cache_hit"] == {"generated": False, "real": False}
    assert second.extra["cache_hit"] == {"generated": True, "real": True}
    other_seed = evaluate("fid50k_full", G, folders[1], num_gen=12, seed=1, cache=cache, progress=False)
    assert other_seed.extra["cache_hit"] == {"generated": False, "real": True}
    assert other_seed.values != first.values


class _OffsetExtractor(FakeExtractor):
    """Features far from zero (as Inception's are, relative to their spread): raw moments and the two-pass
    covariance then round visibly differently."""

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return super().extract(images) + 3e4


def test_fid_takes_one_route_whatever_the_cache_and_the_other_metrics(tmp_path: Path, folders: tuple[Path, Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """FID comes from the float64 raw moments in every combination (before, FID beside KID without a cache used the
    two-pass covariance of the rows, 2e-8 relative apart on Inception features); a prefix count goes the same way."""
    from sgeval import helper_networks

    monkeypatch.setattr(helper_networks, "build_feature_extractor", lambda *args, **kwargs: _OffsetExtractor())
    G = TinyGenerator(seed=4)
    runs = [evaluate("fid50k_full", G, folders[1], num_gen=12, cache=False, progress=False),
            evaluate_many(["fid50k_full", "kid50k_full"], G, folders[1], num_gen=12, cache=False, progress=False)[0],
            evaluate("fid50k_full", G, folders[1], num_gen=12, cache=FeatureCache(tmp_path / "c"), progress=False),
            evaluate_many(["fid50k_full@gen12", "kid50k_full@gen12-real10"], G, folders[1], cache=False,
                          progress=False)[0]]
    for run in runs[1:]:
        assert run.values["fid"] == pytest.approx(runs[0].values["fid"], rel=1e-12, abs=0)


def test_statistics_reference_equals_folder_reference(tmp_path: Path, folders: tuple[Path, Path],
                                                      extractor: FakeExtractor) -> None:
    real = _fake_features(folders[1])
    stats = tmp_path / "stats.npz"
    np.savez(stats, mu=real.mean(0), sigma=np.cov(real, rowvar=False))  # pytorch-fid layout, N - 1
    from_stats = evaluate("fid50k", folders[0], stats, cache=False, progress=False)
    from_folder = evaluate("fid50k", folders[0], folders[1], cache=False, progress=False)
    assert from_stats.values["fid"] == pytest.approx(from_folder.values["fid"], rel=1e-6)
    with pytest.raises(ValueError, match="reference"):
        evaluate("fid50k", stats, folders[1], cache=False, progress=False)


def test_protocol_names_and_counts() -> None:
    assert parse_count("2k") == 2000 and parse_count("500") == 500 and parse_count("all") is None
    with pytest.raises(ValueError, match="sample count"):
        parse_count("2m")
    derived = resolve_protocol("fid50k_full@gen1k-real2k")
    assert (derived.num_gen, derived.num_real, derived.base_name) == (1000, 2000, "fid50k_full")
    assert resolve_protocol("fid50k_full", num_gen=1000).name == "fid50k_full@gen1k"
    with pytest.raises(ValueError, match="valid protocols: .*fid50k_full"):
        resolve_protocol("fid10k")


def test_missing_data_is_a_clear_error(tmp_path: Path, folders: tuple[Path, Path], extractor: FakeExtractor) -> None:
    with pytest.raises(DataNotGivenError, match="--data"):
        evaluate("fid50k_full", folders[0], progress=False)
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    snapshot = save_snapshot(tmp_path / "bare.safetensors", {"G_ema": G})
    with pytest.raises(DataNotGivenError, match="records no training set"):
        evaluate("fid50k_full", snapshot, progress=False)


def test_run_dir_records_and_training_hook(tmp_path: Path, extractor: FakeExtractor) -> None:
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    data = write_zip(tmp_path / "train.zip", random_images(10, 16, seed=5))
    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    run_dir = tmp_path / "run"
    snapshot = save_snapshot(run_dir / "network-snapshot-000004.safetensors", {"G_ema": G},
                             metadata={"kimg": 4.0, "training_set": {"path": str(data), "xflip": True}})
    results = metric_hook(run_dir=run_dir, snapshot_path=snapshot, metrics=["fid50k@gen12", "kid50k_full@gen12"],
                          training_set={"path": str(data), "xflip": True}, device=torch.device("cpu"))
    assert [r.num_real for r in results] == [20, 10]  # fid50k follows the dataset's x-flip; *_full never flips
    lines = [json.loads(line) for line in (run_dir / "metric-fid50k@gen12.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["snapshot_pkl"] == snapshot.name and lines[0]["results"]["fid50k@gen12"] > 0
    stored = read_results(run_dir)
    assert sorted(r.protocol for r in stored) == ["fid50k@gen12", "kid50k_full@gen12"]
    assert all(r.kimg == 4.0 and r.snapshot == snapshot.name for r in stored)
    again = evaluate("fid50k@gen12", snapshot, progress=False)  # no data: the recorded training set, same run dir
    assert again.values == results[0].values
    assert len(read_results(run_dir / "metric-fid50k@gen12.jsonl")) == 2
    with pytest.raises(ValueError, match="valid protocols"):
        metric_hook.validate_metrics(["fid50k_ful"])


def test_precision_recall_protocols_run_on_rows(folders: tuple[Path, Path], extractor: FakeExtractor) -> None:
    from sgeval.metrics.precision_recall import density_coverage, precision_recall

    gen, real = _fake_features(folders[0]), _fake_features(folders[1])
    pr, prdc = evaluate_many(["pr50k3_full", "prdc50k5"], folders[0], folders[1], cache=False, progress=False)
    expected = precision_recall(gen, real, k=3)
    assert pr.values == {"precision": expected.precision, "recall": expected.recall}
    assert prdc.values["coverage"] == density_coverage(gen, real, k=5).coverage


def test_memory_budget_reaches_the_metric_and_changes_no_value(folders: tuple[Path, Path], extractor: FakeExtractor,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from sgeval.metrics import precision_recall as module

    budgets = []
    original = module.plan_blocks

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        plan = original(*args, **kwargs)
        budgets.append(args[4].memory_mib)  # the options the runner passed
        return plan

    monkeypatch.setattr(module, "plan_blocks", spy)
    default, = evaluate_many(["pr50k3_full"], folders[0], folders[1], cache=False, progress=False)
    tiny, = evaluate_many(["pr50k3_full"], folders[0], folders[1], cache=False, progress=False, memory_mib=0.01)
    assert budgets == [1024.0, 0.01]
    assert tiny.values == default.values


# ---------------------------------------------------------------------------------------------------------------
# Conditional generators: labels of random reference items (docs/metrics.md section 1.2)


def _conditional_snapshot(tmp_path: Path) -> Path:
    """A tiny class-conditional sgmodels generator (c_dim = 3, 16x16, 8 channels) saved as a snapshot."""
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", resolution=16, c_dim=3, channel_base=64, channel_max=8,
                              z_dim=8, w_dim=8, map_layers=1)
    return save_snapshot(tmp_path / "cond.safetensors", {"G_ema": G.eval()})


class LabelSpy(TinyGenerator):
    """TinyGenerator (c_dim = 3) recording every label batch it is called with."""

    def __init__(self) -> None:
        super().__init__(c_dim=3)
        self.seen: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor, c: torch.Tensor, **kwargs: object) -> torch.Tensor:
        self.seen.append(c.clone())
        return super().forward(z, c, **kwargs)


def test_conditional_snapshot_gets_reference_labels(tmp_path: Path, extractor: FakeExtractor) -> None:
    snapshot = _conditional_snapshot(tmp_path)
    real = write_zip(tmp_path / "real.zip", random_images(12, 16, seed=3), labels=[0, 1, 2, 2] * 3)
    results = [evaluate("fid50k_full@gen10", snapshot, real, batch_size=batch, cache=False, progress=False)
               for batch in (3, 10)]
    assert results[0].values["fid"] == results[1].values["fid"]  # labels and z depend on (seed, item) only
    labels = results[0].extra["labels"]
    assert labels == {"sampled_from": "reference", "reference": str(real), "num_labels": 12, "c_dim": 3}
    assert results[0].extra["source"]["label_pool_sha256"] is not None
    other_pool = write_zip(tmp_path / "other.zip", random_images(12, 16, seed=3), labels=[1] * 12)
    changed = evaluate("fid50k_full@gen10", snapshot, other_pool, cache=False, progress=False)
    assert changed.values["fid"] != results[0].values["fid"]  # same reals, other labels -> other images
    assert changed.network_fingerprint != results[0].network_fingerprint


def test_conditional_generator_object_draws_labels_from_the_reference(tmp_path: Path,
                                                                       extractor: FakeExtractor) -> None:
    real = write_zip(tmp_path / "real.zip", random_images(12, 8, seed=3), labels=[0, 2, 2, 2] * 3)
    spy = LabelSpy()
    result = evaluate("fid50k_full@gen400", spy, real, batch_size=64, cache=False, progress=False)
    labels = torch.cat(spy.seen)  # [>= 400, 3]
    assert torch.equal(labels.sum(1), torch.ones(labels.shape[0]))  # one-hot rows
    classes = labels.argmax(1).bincount(minlength=3).double() / labels.shape[0]
    assert classes[1] == 0  # class 1 is absent from the dataset, so never sampled
    assert classes[0] == pytest.approx(0.25, abs=0.07) and classes[2] == pytest.approx(0.75, abs=0.07)
    assert result.extra["labels"]["sampled_from"] == "reference"


def test_conditional_generator_without_reference_labels_fails_clearly(tmp_path: Path, extractor: FakeExtractor,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = _conditional_snapshot(tmp_path)
    import sgmodels.snapshot

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the generator must not be loaded before the labels are known to exist")

    monkeypatch.setattr(sgmodels.snapshot, "load_snapshot", no_loading)
    unlabelled = write_zip(tmp_path / "plain.zip", random_images(6, 16, seed=3))
    with pytest.raises(ValueError, match=r"conditional \(c_dim = 3\).*no labels.*dataset.json"):
        evaluate("fid50k_full@gen10", snapshot, unlabelled, cache=False, progress=False)
    stats = tmp_path / "stats.npz"
    np.savez(stats, mu=np.zeros(9), sigma=np.eye(9))
    with pytest.raises(ValueError, match="statistics file, which holds no labels"):
        evaluate("fid50k_full@gen10", snapshot, stats, cache=False, progress=False)
    with pytest.raises(ValueError, match="no labels"):
        evaluate("fid50k_full@gen10", LabelSpy(), unlabelled, cache=False, progress=False)


def test_unconditional_results_record_no_labels(folders: tuple[Path, Path], extractor: FakeExtractor) -> None:
    result = evaluate("fid50k_full@gen10", TinyGenerator(), folders[1], cache=False, progress=False)
    assert result.extra["labels"] is None
