"""Errors before work: every weights file resolved before the first metric, one file naming every detector that
loads it, counts that no run could finish or store refused at once, and batches computed lazily."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sgeval.cli import main
from sgeval.extract import _RankBatches
from sgeval.protocols import MAX_SAMPLE_COUNT, get_protocol


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _assert_clean_failure(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_one_inception_file_named_once_serves_fid_and_is(snapshot: Path, inception_weights_file: Path) -> None:
    """NVIDIA's Inception archive is both the FID detector and the IS logits: `inception-v3-tf=FILE` names both."""
    for weights in (f"inception-v3-tf={inception_weights_file}", str(inception_weights_file)):
        result = _invoke("calc", "--network", snapshot, "--metrics", "fid50k_full,is50k", "--num-gen", "10",
                         "--num-real", "8", "--detector-weights", weights, "--no-progress", "--json")
        assert result.exit_code == 0, result.output
        assert "fid50k_full@gen10-real8" in result.stdout and "is50k@gen10" in result.stdout, result.stdout


def test_results_finished_before_a_failing_metric_are_kept(snapshot: Path, inception_weights_file: Path) -> None:
    """IS cannot split 8 images 10 ways: it fails after FID is computed, and FID's record is still written."""
    result = _invoke("calc", "--network", snapshot, "--metrics", "fid50k_full,is50k", "--num-gen", "8",
                     "--num-real", "8", "--detector-weights", inception_weights_file, "--no-progress")
    _assert_clean_failure(result, "splits")
    record = json.loads((snapshot.parent / "metric-fid50k_full@gen8-real8.jsonl").read_text())
    assert record["results"]["fid50k_full@gen8-real8"] > 0


def test_a_missing_weights_file_stops_the_call_before_the_first_metric(snapshot: Path,
                                                                      inception_weights_file: Path) -> None:
    """pr50k3_full needs VGG16, which is nowhere: the error comes before FID's extraction, and nothing is written."""
    started = time.perf_counter()
    result = _invoke("calc", "--network", snapshot, "--metrics", "fid50k_full,pr50k3_full", "--num-gen", "8",
                     "--num-real", "8", "--detector-weights", f"inception-v3-tf={inception_weights_file}",
                     "--no-progress")
    _assert_clean_failure(result, "vgg16")
    assert "fid50k_full@gen8-real8" not in result.stdout
    assert not list(snapshot.parent.glob("metric-*.jsonl"))
    assert time.perf_counter() - started < 60  # no Inception pass over the images happened first


def test_a_weights_folder_without_the_file_says_so(snapshot: Path, tmp_path: Path) -> None:
    empty = tmp_path / "weights-folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("not weights")
    result = _invoke("fid", snapshot, "--num-gen", "8", "--num-real", "8", "--detector-weights", empty,
                     "--no-progress")
    _assert_clean_failure(result, str(empty), "holds no weights file")
    assert "does not exist" not in result.output


@pytest.mark.parametrize("count", [MAX_SAMPLE_COUNT + 1, 10**12, 10**30])
def test_counts_no_run_could_finish_are_refused_at_once(snapshot: Path, count: int) -> None:
    started = time.perf_counter()
    for option in ("--num-gen", "--num-real"):
        result = _invoke("fid", snapshot, option, count, "--no-progress")
        _assert_clean_failure(result, "could never finish" if option == "--num-gen" else "between 1 and")
    assert time.perf_counter() - started < 30


def test_rows_that_cannot_fit_in_memory_are_refused_before_extraction(snapshot: Path,
                                                                       inception_weights_file: Path) -> None:
    """KID keeps every feature row: 10^9 x 2048 float32 is 7.5 TiB, refused before a single image is generated."""
    started = time.perf_counter()
    result = _invoke("kid", snapshot, "--num-gen", MAX_SAMPLE_COUNT, "--num-real", "8", "--detector-weights",
                     inception_weights_file, "--no-progress", "--no-cache")
    _assert_clean_failure(result, "GiB of rows", "more than this machine's")
    assert time.perf_counter() - started < 60


def test_protocol_counts_are_bounded() -> None:
    protocol = get_protocol("fid50k_full")
    assert protocol.with_counts(num_gen=MAX_SAMPLE_COUNT).num_gen == MAX_SAMPLE_COUNT
    for count in (0, MAX_SAMPLE_COUNT + 1):
        with pytest.raises(ValueError, match="num_gen must be between 1 and"):
            protocol.with_counts(num_gen=count)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize(("num_items", "batch_size"), [(0, 4), (1, 4), (10, 4), (12, 4), (13, 1), (100, 64)])
def test_rank_batches_equal_the_eager_list(num_items: int, batch_size: int, world: int) -> None:
    total = 0
    for rank in range(world):
        batches = _RankBatches(num_items, batch_size, rank, world)
        eager = [(start, min(start + batch_size, num_items))
                 for k, start in enumerate(range(0, num_items, batch_size)) if k % world == rank]
        assert list(batches) == eager and len(batches) == len(eager)
        assert batches.num_rank_items() == sum(stop - start for start, stop in eager)
        total += batches.num_rank_items()
    assert total == num_items


def test_rank_batches_of_a_huge_count_cost_nothing() -> None:
    batches = _RankBatches(10**15, 64, rank=1, world=3)  # an eager list would be petabytes of tuples
    assert batches[0] == (64, 128) and batches[-1][1] <= 10**15
    assert sum(_RankBatches(10**15, 64, r, 3).num_rank_items() for r in range(3)) == 10**15
