"""The ablation suites on a micro budget: every report file with the paper column, resume, tables as DataFrames.

One seed, one minibatch per run, a few generated images: the numbers mean nothing; the pipeline (training through
sgmodels, the domain detector and classifiers trained by sgeval's commands, every protocol through the runner,
reports, plots, figures) is the real one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.ablations.config import ROWS, SCALES, SUITES, suite_rows
from benchmarks.ablations.report import paper_values, trend_verdict, write_suite_report
from benchmarks.ablations.run import run_suites
from benchmarks.ablations.stick import SUITE_METRICS, MeasuringStick, prepare_stick
from tests.sgeval.conftest import write_zip

SUITE_NAMES = ["mixing", "noise"]


@pytest.fixture(scope="module")
def labelled_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 grey 16x16 images in two visible classes (dark, bright)."""
    rng = np.random.default_rng(0)
    images = [np.clip(base + rng.normal(0, 20, (16, 16)), 0, 255).astype(np.uint8)
              for base in [50] * 20 + [200] * 20]
    return write_zip(tmp_path_factory.mktemp("data") / "tiny.zip", images, labels=[0] * 20 + [1] * 20)


def test_micro_suites_write_reports_and_resume(tmp_path: Path, labelled_zip: Path) -> None:
    scale = dataclasses.replace(SCALES["quick"], kimg=0.016, tick_kimg=0.016, num_gen=16, num_ls=32, batch=8,
                                mixed_latents=(1, 2))
    stick = prepare_stick(scale, labelled_zip, tmp_path)
    assert (tmp_path / "stick" / "detector" / "detector.json").is_file()
    records = run_suites(SUITE_NAMES, scale, labelled_zip, tmp_path, stick)
    assert {record.row.key for record in records} == {row.key for row in suite_rows(SUITE_NAMES)}
    again = run_suites(SUITE_NAMES, scale, labelled_zip, tmp_path, stick)  # resumed: nothing is redone
    assert all(record.train_seconds == 0 and record.eval_seconds == 0 for record in again)

    for name in SUITE_NAMES:
        folder = write_suite_report(name, records, stick, scale, tmp_path, header="test")
        for file in ("results.jsonl", "results.csv", "summary.csv", "trends.csv", "report.md", f"{name}.png"):
            assert (folder / file).is_file(), file
        summary = pd.read_csv(folder / "summary.csv")
        assert list(summary.columns) == ["row", "label", "column", "mean", "std", "n", "paper"]
        assert set(summary["row"]) == set(SUITES[name].rows)
        measured = summary[summary["column"] != "fd"]  # Table 3 has no FID column: our FD has no paper value
        assert measured["paper"].notna().all()  # every other cell has the paper's number beside it
        assert "(paper)" in (folder / "report.md").read_text()
        trends = pd.read_csv(folder / "trends.csv")
        assert set(trends["verdict"]) == {"inconclusive"}  # one seed decides nothing
    (tmp_path / "mixing" / "discussion.md").write_text("Seeds disagree at this budget.\n")
    report = write_suite_report("mixing", records, stick, scale, tmp_path, header="again") / "report.md"
    assert report.read_text().rstrip().endswith("## Discussion\n\n(Written by hand after the run, from "
                                                "`discussion.md` beside this report.)\n\nSeeds disagree at this "
                                                "budget.")
    mixing = pd.read_csv(tmp_path / "mixing" / "summary.csv")
    assert set(mixing["column"]) == {"fd_1", "fd_2"}
    noise = pd.read_csv(tmp_path / "noise" / "summary.csv")
    assert set(noise["column"]) == {"fd", "ppl_full", "ppl_end", "ls"}


def test_trend_verdicts_from_seed_values() -> None:
    from benchmarks.ablations.report import TRENDS

    trend = TRENDS["noise"][0]  # E < D on ppl_full
    lines = [{"row": row, "column": "ppl_full", "seed": seed, "value": value}
             for row, values in (("E-mix0", [1.0, 1.1, 0.9]), ("D-nonoise", [2.0, 2.1, 1.9])) for seed, value in
             enumerate(values)]
    assert trend_verdict(pd.DataFrame(lines), trend)["verdict"] == "reproduced"
    swapped = [{**line, "row": {"E-mix0": "D-nonoise", "D-nonoise": "E-mix0"}[line["row"]]} for line in lines]
    assert trend_verdict(pd.DataFrame(swapped), trend)["verdict"] == "reversed"
    noisy = [{**line, "value": line["value"] + (3 if line["seed"] == 0 else 0)} for line in lines]
    assert trend_verdict(pd.DataFrame(noisy), trend)["verdict"] == "inconclusive"


def test_paper_values_cover_tables_2_to_4() -> None:
    table2, table3 = paper_values(SUITES["mixing"]), paper_values(SUITES["noise"])
    table4 = paper_values(SUITES["mapping"])
    assert table2[("E-mix0", "fd_4")] == 17.41 and table2[("F-mix90", "fd_1")] == 4.40
    assert table3[("B-traditional", "ls")] == 10.78 and table3[("E-mix0", "ppl_full")] == 200.5
    assert len(table2) == 16 and len(table3) == 15
    # every row has FD, both path lengths and separability; Traditional 8 in W (its row's space), not in Z
    assert len(table4) == 6 * 4 and table4[("B-map8", "ppl_full")] == 324.5 and table4[("F-map0", "fd")] == 5.06
    assert table4[("F-map8", "ls")] == 3.79 and table4[("B-traditional", "fd")] == 5.25


def test_mapping_rows_build_the_depths_they_name() -> None:
    from sgmodels.presets import build_networks

    for key in SUITES["mapping"].rows:
        row = ROWS[key]
        network_overrides = {name: value for name, value in row.overrides.items() if name != "mixing"}
        G, _D, _ = build_networks(row.arch, "cpu16", **network_overrides)
        layers = row.overrides.get("map_layers", 0)
        mapping = getattr(G, "mapping", None)
        assert (mapping is not None) == (row.arch == "stylegan" or layers > 0), key
        assert mapping is None or mapping.num_layers == layers, key
        assert row.space == ("w" if layers else "z"), key


def test_rows_that_train_the_same_configuration_share_their_runs() -> None:
    from benchmarks.ablations.config import run_key, training_preset

    cpu, paper = SCALES["cpu"], SCALES["paper"]
    # the CPU presets map with 2 layers, the paper's config F with 8: Table 4's row of that depth is config F
    assert run_key(ROWS["F-map2"], cpu) == "F-mix90" and run_key(ROWS["F-map8"], cpu) == "F-map8"
    assert run_key(ROWS["F-map8"], paper) == "F-mix90" and run_key(ROWS["F-map2"], paper) == "F-map2"
    assert run_key(ROWS["E-mix0"], cpu) == "E-mix0"  # other settings differ: a run of its own
    # sgmodels has no paper-size `traditional` preset: the paper's traditional rows train StyleGAN's config B
    assert training_preset(ROWS["B-traditional"], paper) == ("stylegan", "b")
    assert training_preset(ROWS["B-traditional"], cpu) == ("traditional", "cpu16")
    for scale in SCALES.values():  # every row is a valid configuration at every scale
        assert {run_key(row, scale) for row in ROWS.values()} <= set(ROWS)


def test_paper_dry_run_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.ablations.__main__ import main

    main(["--scale", "paper", "--dry-run", "--data", str(tmp_path / "ffhq.zip")])
    plan = capsys.readouterr().out
    assert "14 rows, 13 configurations to train x 1 seeds = 13 runs of 25000 kimg at 1024x1024" in plan
    assert "stylegan-b (map_layers=8)" in plan and "map_layers=8): the runs of F-mix90" in plan
    assert "vgg16.pt" in plan


def test_finished_records_lists_only_runs_that_reached_the_budget(tmp_path: Path) -> None:
    from benchmarks.ablations.run import finished_records

    scale = dataclasses.replace(SCALES["quick"], kimg=1.0, seeds=2)
    done = tmp_path / "runs" / "E-mix0-seed1" / "00000-x"
    done.mkdir(parents=True)
    (done / "network-snapshot-000001.000.safetensors").write_bytes(b"")  # names are enough to find it
    early = tmp_path / "runs" / "E-mix0-seed0" / "00000-x"
    early.mkdir(parents=True)
    (early / "network-snapshot-000000.500.safetensors").write_bytes(b"")
    records = finished_records(["mixing"], scale, tmp_path)
    assert [(record.row.key, record.seed) for record in records] == [("E-mix0", 1)]


def test_every_suite_metric_has_protocols_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    """Suite metrics go through one table: every metric of every suite maps to protocols, a typo is an error."""
    stick = MeasuringStick("domain", "fd_domain", "+nocrop+lpips-domain", {}, tmp_path / "classifiers")
    scale = SCALES["cpu"]
    for suite in SUITES.values():
        for metric in suite.metrics:
            assert metric in SUITE_METRICS and SUITE_METRICS[metric](stick, ROWS[suite.rows[0]], scale)
    typo = dataclasses.replace(SUITES["noise"], metrics=("fd", "ppl_ful"))
    with pytest.raises(ValueError, match="unknown metric 'ppl_ful'"):
        stick.protocols_for(ROWS[typo.rows[0]], [typo], scale)
    no_classifiers = dataclasses.replace(stick, classifiers=None)
    assert SUITE_METRICS["ls"](no_classifiers, ROWS["B-traditional"], scale) == []
