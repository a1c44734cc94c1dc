"""Result records, crash-safe JSONL appends, and the pandas report with its CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from sgeval.atomic import append_line, atomic_open, atomic_write_text
from sgeval.protocols import get_protocol
from sgeval.report import LONG_COLUMNS, load_results, pivot, plot_metric_vs_kimg, report_command, to_csv, to_markdown
from sgeval.results import (
    CorruptResultLineWarning,
    MetricResult,
    append_result,
    format_duration,
    kimg_from_snapshot_name,
    read_results,
)

OFFICIAL_FIELDS = ("results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl", "timestamp")


def _fid_result(run_dir: Path, kimg: int, value: float, **fields) -> MetricResult:
    return MetricResult.from_protocol(
        get_protocol("fid50k_full"),
        {"fid": value},
        snapshot=str(run_dir / f"network-snapshot-{kimg:06d}.safetensors"),
        seed=0,
        total_time=75.2,
        network_fingerprint="net-" + str(kimg),
        data_fingerprint="data",
        detector_sha256="ab" * 32,
        **fields,
    )


def _pr_result(run_dir: Path, kimg: int, precision: float, recall: float) -> MetricResult:
    return MetricResult.from_protocol(
        get_protocol("pr50k3_full").with_counts(num_gen=1000),
        {"precision": precision, "recall": recall},
        snapshot=str(run_dir / f"network-snapshot-{kimg:06d}.safetensors"),
        seed=1,
    )


def test_round_trip_through_jsonl(tmp_path: Path) -> None:
    written = [_fid_result(tmp_path, 40, 12.5), _fid_result(tmp_path, 80, 8.25, extra={"truncation_psi": 1.0})]
    for result in written:
        path = append_result(tmp_path, result)
    assert path == tmp_path / "metric-fid50k_full.jsonl"
    read = read_results([tmp_path])
    assert [r.values for r in read] == [{"fid": 12.5}, {"fid": 8.25}]
    # The snapshot is stored relative to the run directory, as the official code writes it.
    assert read[0].snapshot == "network-snapshot-000040.safetensors"
    assert read[1] == MetricResult(**{**written[1].__dict__, "snapshot": "network-snapshot-000080.safetensors"})
    assert read_results(path) == read


def test_official_fields_and_ours(tmp_path: Path) -> None:
    result = _pr_result(tmp_path, 120, 0.7, 0.4)
    line = json.loads((append_result(tmp_path, result)).read_text())
    assert tuple(line)[: len(OFFICIAL_FIELDS)] == OFFICIAL_FIELDS
    assert line["metric"] == "pr50k3_full@gen1k"
    assert line["results"] == {"pr50k3_full@gen1k_precision": 0.7, "pr50k3_full@gen1k_recall": 0.4}
    assert line["snapshot_pkl"] == "network-snapshot-000120.safetensors" and line["num_gpus"] == 1
    assert line["counts_overridden"] is True and line["base_protocol"] == "pr50k3_full"
    assert (line["num_gen"], line["num_real"], line["kimg"], line["seed"]) == (1000, 200_000, 120.0, 1)
    assert line["settings"]["settings"] == {"k": 3, "distance_dtype": "float32"}
    assert set(line["versions"]) == {"sgeval", "torch", "numpy", "python"} and line["versions"]["numpy"]
    fid_line = MetricResult.from_protocol(get_protocol("fid50k_full"), {"fid": 3.0}, total_time=3725.0)
    assert fid_line.official_results() == {"fid50k_full": 3.0}
    assert fid_line.to_official_dict()["total_time_str"] == "1h 02m 05s"


def test_reads_lines_written_by_the_official_code(tmp_path: Path) -> None:
    lines = [
        {"results": {"fid50k_full": 5.5}, "metric": "fid50k_full", "total_time": 100.0, "total_time_str": "1m 40s",
         "num_gpus": 8, "snapshot_pkl": "network-snapshot-000200.pkl", "timestamp": 1600000000.0},
        {"results": {"pr50k3_full_precision": 0.6, "pr50k3_full_recall": 0.3}, "metric": "pr50k3_full",
         "total_time": 10.0, "total_time_str": "10s", "num_gpus": 8, "snapshot_pkl": "network-snapshot-000200.pkl",
         "timestamp": 1600000001.0},
    ]  # fmt: skip
    (tmp_path / "metric-mixed.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    fid, pr = read_results([tmp_path])
    assert (fid.metric, fid.values, fid.kimg, fid.num_gpus) == ("fid", {"fid": 5.5}, 200.0, 8)
    assert (pr.metric, pr.values) == ("pr", {"precision": 0.6, "recall": 0.3})
    assert pr.official_results() == lines[1]["results"]


def test_corrupt_trailing_line_is_skipped_with_a_warning_and_later_appends_survive(tmp_path: Path) -> None:
    path = append_result(tmp_path, _fid_result(tmp_path, 40, 12.5))
    with path.open("a") as handle:  # another tool crashed half-way through a line
        handle.write('{"results": {"fid50k_full": 9.')
    with pytest.warns(CorruptResultLineWarning, match="last line"):
        assert [r.values["fid"] for r in read_results(path)] == [12.5]
    append_result(tmp_path, _fid_result(tmp_path, 80, 8.0))
    with pytest.warns(CorruptResultLineWarning, match="line 2 of"):
        assert [r.values["fid"] for r in read_results(path)] == [12.5, 8.0]


def test_a_failed_append_leaves_the_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = append_result(tmp_path, _fid_result(tmp_path, 40, 12.5))
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        append_result(tmp_path, _fid_result(tmp_path, 80, 8.0))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # temporary file removed


def test_a_killed_writer_never_leaves_half_a_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    writer = (
        "import sys; from sgeval.atomic import append_line\n"
        "for i in range(100000):\n"
        '    append_line(sys.argv[1], \'{"i": %d, "pad": "%s"}\' % (i, \'x\' * 2000))\n'
    )
    process = subprocess.Popen([sys.executable, "-c", writer, str(path)])
    deadline = time.monotonic() + 20
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a complete line
    assert [json.loads(line)["i"] for line in lines[:-1]] == list(range(len(lines) - 1))
    assert len(lines) > 50


def test_atomic_helpers(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("new, never committed")
        raise RuntimeError("failure inside the with block")
    assert target.read_text() == "old" and os.listdir(target.parent) == ["file.txt"]
    with pytest.raises(ValueError, match="exactly one line"):
        append_line(target, "two\nlines")
    with pytest.raises(ValueError, match="append_line"), atomic_open(target, "a"):
        pass


def test_helpers() -> None:
    assert kimg_from_snapshot_name("runs/x/network-snapshot-001234.pkl") == 1234.0
    assert kimg_from_snapshot_name("G_ema.safetensors") is None and kimg_from_snapshot_name(None) is None
    assert [format_duration(s) for s in (5, 65, 3600, 90061)] == ["5s", "1m 05s", "1h 00m 00s", "1d 01h 01m"]
    with pytest.raises(ValueError, match="no values"):
        MetricResult(metric="fid", protocol="fid50k_full", values={})
    with pytest.raises(ValueError, match="path separator"):
        MetricResult(metric="fid", protocol="../fid", values={"fid": 1.0})


def _write_runs(root: Path) -> list[Path]:
    """Two runs: FID at 3 snapshots (one evaluated twice) and quick P&R at 2 snapshots."""
    run_a, run_b = root / "00000-a", root / "00001-b"
    for kimg, value in ((0, 100.0), (40, 20.0), (80, 10.0), (80, 12.0)):
        append_result(run_a, _fid_result(run_a, kimg, value, timestamp=1000.0 + len(str(value)) + value))
    for kimg, precision in ((40, 0.5), (80, 0.6)):
        append_result(run_a, _pr_result(run_a, kimg, precision, precision / 2))
    append_result(run_b, _fid_result(run_b, 40, 30.0))
    return [run_a, run_b]


def test_load_results_long_table(tmp_path: Path) -> None:
    df = load_results(_write_runs(tmp_path))
    assert tuple(df.columns) == LONG_COLUMNS
    assert len(df) == 4 + 2 * 2 + 1  # one row per value
    assert set(df["run"]) == {"00000-a", "00001-b"}
    assert sorted(df.loc[df["column"] == "fid50k_full", "kimg"].unique()) == [0.0, 40.0, 80.0]
    assert set(df["column"]) == {"fid50k_full", "pr50k3_full@gen1k_precision", "pr50k3_full@gen1k_recall"}
    assert df["counts_overridden"].sum() == 4


def test_pivot_snapshot_by_metric(tmp_path: Path) -> None:
    df = load_results(_write_runs(tmp_path))
    table = pivot(df)
    assert table.shape == (4, 3)  # run a: kimg 0, 40, 80; run b: kimg 40
    assert table.loc[("00000-a", "network-snapshot-000080.safetensors", 80.0), "fid50k_full"] == 11.0  # mean
    assert pd.isna(table.loc[("00000-a", "network-snapshot-000000.safetensors", 0.0), "pr50k3_full@gen1k_recall"])
    latest = pivot(df, agg="last").loc[("00000-a", "network-snapshot-000080.safetensors", 80.0), "fid50k_full"]
    assert latest == 12.0
    with pytest.raises(ValueError, match="agg must be"):
        pivot(df, agg="sum")


def test_text_outputs_and_plot(tmp_path: Path) -> None:
    table = pivot(load_results(_write_runs(tmp_path)))
    markdown = to_markdown(table)
    assert "fid50k_full" in markdown and "| 00000-a" in markdown and markdown.count("\n") == 6
    parsed = pd.read_csv(pd.io.common.StringIO(to_csv(table)))
    assert list(parsed.columns[:3]) == ["run", "snapshot", "kimg"] and len(parsed) == 4
    png = plot_metric_vs_kimg(load_results(tmp_path / "00000-a"), tmp_path / "plots" / "fid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command(tmp_path: Path) -> None:
    runs = _write_runs(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        report_command, [str(run) for run in runs] + ["--format", "csv", "--plot", str(tmp_path / "p.png")]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("run,snapshot,kimg,fid50k_full")
    assert (tmp_path / "p.png").stat().st_size > 1000
    out = tmp_path / "table.html"
    result = runner.invoke(report_command, [str(runs[1]), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0 and "<table" in out.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(report_command, [str(empty)])
    assert result.exit_code != 0 and "no metric results" in result.output


def test_plot_without_kimg_is_a_clear_error(tmp_path: Path) -> None:
    result = MetricResult.from_protocol(get_protocol("fid50k"), {"fid": 4.0}, snapshot="G_ema.safetensors")
    append_result(tmp_path, result)
    with pytest.raises(ValueError, match="no result carries a kimg"):
        plot_metric_vs_kimg(load_results(tmp_path), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
