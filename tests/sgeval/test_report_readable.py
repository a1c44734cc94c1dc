"""`sgeval report` stays readable: headline columns by default, details and per-name values in their own tables, a
bounded plot in a grid of panels, `--plot-metrics` by name or glob."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from sgeval.protocols import resolve_protocol
from sgeval.report import (
    PLOT_PANEL_CAP,
    details_table,
    headline_columns,
    headline_table,
    load_results,
    per_name_details,
    per_name_key,
    pivot,
    plot_columns,
    plot_metric_vs_kimg,
    report_command,
    select_columns,
    split_columns,
    value_kind,
)
from sgeval.results import MetricResult, append_result

NAMES = ("Smiling", "Male", "Young", "Eyeglasses", "Bald", "Mustache", "Beard", "Hat", "Blond", "Bangs", "Wavy",
         "Pale", "Chubby")  # 13 attributes, as in the dataset of issue 22
LS = "ls@gen10k"
PR = "pr50k3_full@gen1k"
KID = "kid50k_full@gen1k"


def _result(run_dir: Path, protocol: str, kimg: int, values: dict[str, float], timestamp: float = 1000.0) -> None:
    snapshot = str(run_dir / f"network-snapshot-{kimg:06d}.safetensors")
    append_result(run_dir, MetricResult.from_protocol(resolve_protocol(protocol), values, snapshot=snapshot, seed=0,
                                                      timestamp=timestamp))


def _ls_values(kimg: int, legacy: bool) -> dict[str, float]:
    """LS values of 13 attributes: entropies z_h = kimg/1000 + a/100, w_h = z_h / 2, counts pos = 100 + a, neg."""
    values = {"z": 5.0 + kimg / 100, "w": 3.0 + kimg / 100}
    for a, name in enumerate(NAMES):
        h = kimg / 1000 + a / 100
        if legacy:
            values |= {f"z_h{a:02d}": h, f"w_h{a:02d}": h / 2}
        else:
            values |= {f"z_h.{name}": h, f"w_h.{name}": h / 2, f"pos.{name}": 100.0 + a, f"neg.{name}": 900.0 - a}
    return values


def _write_run(root: Path) -> Path:
    """One run: FID at 40/80 kimg (80 twice), P&R, KID with kid_std, PPL with its interval, LS at 40 kimg in the
    legacy keys and at 80 kimg in the `<stat>.<name>` keys."""
    run = root / "00000-faces"
    _result(run, "fid50k_full", 40, {"fid": 30.0})
    _result(run, "fid50k_full", 80, {"fid": 20.0}, timestamp=1001.0)
    _result(run, "fid50k_full", 80, {"fid": 22.0}, timestamp=1002.0)
    for kimg in (40, 80):
        _result(run, PR, kimg, {"precision": kimg / 100, "recall": kimg / 200})
        _result(run, KID, kimg, {"kid": kimg / 1000, "kid_std": kimg / 10000})
        _result(run, "ppl2_wend", kimg, {"ppl": 100.0 + kimg, "ci_low": 90.0 + kimg, "ci_high": 110.0 + kimg,
                                         "num_kept": 98.0})
        _result(run, LS, kimg, _ls_values(kimg, legacy=kimg == 40))
    return run


HEADLINE = ["fid50k_full", KID, "ls@gen10k_z", "ls@gen10k_w", "ppl2_wend", f"{PR}_precision", f"{PR}_recall"]


def test_value_kinds_and_per_name_keys() -> None:
    assert per_name_key("z_h.Smiling") == ("z_h", "Smiling") and per_name_key("pos.Mr. T") == ("pos", "Mr. T")
    assert per_name_key("z_h03") == ("z_h", "attr03") and per_name_key("w_h12") == ("w_h", "attr12")
    assert per_name_key("kid_std") is None and per_name_key("z") is None and per_name_key("ci_low") is None
    assert [value_kind("ls", key) for key in ("z", "w", "z_h03", "neg.Bald")] == ["headline"] * 2 + ["per_name"] * 2
    assert [value_kind("kid", key) for key in ("kid", "kid_std")] == ["headline", "detail"]
    assert [value_kind("pr", key) for key in ("precision", "recall")] == ["headline", "headline"]  # no primary
    assert [value_kind("ppl", key) for key in ("ppl", "ci_low", "num_kept")] == ["headline", "detail", "detail"]
    assert [value_kind("somemetric", key) for key in ("somemetric", "x")] == ["headline", "detail"]  # unregistered


def test_default_table_has_only_headline_columns(tmp_path: Path) -> None:
    df = load_results(_write_run(tmp_path))
    assert df["column"].nunique() == 7 + 1 + 3 + 26 + 52  # headline, kid_std, ppl's 3, legacy, new per-name
    split = split_columns(df)
    assert split.headline == HEADLINE  # by protocol name, then the metric's value_keys order
    assert split.details == [f"{KID}_kid_std", "ppl2_wend_ci_low", "ppl2_wend_ci_high", "ppl2_wend_num_kept"]
    assert len(split.per_name) == 26 + 52 and "ls@gen10k_z_h.Smiling" in split.per_name
    assert headline_columns(df, order=["ppl2_wend", PR]) == ["ppl2_wend", f"{PR}_precision", f"{PR}_recall",
                                                             "fid50k_full", KID, "ls@gen10k_z", "ls@gen10k_w"]
    table = headline_table(df)
    assert list(table.columns) == HEADLINE and len(table) == 2
    row = table.loc[("00000-faces", "network-snapshot-000080.safetensors", 80.0)]
    assert row["fid50k_full"] == 21.0 and row[f"{PR}_recall"] == 0.4 and row["ls@gen10k_z"] == 5.8
    assert headline_table(df, agg="last").loc[("00000-faces", "network-snapshot-000080.safetensors", 80.0),
                                              "fid50k_full"] == 22.0
    details = details_table(df)
    assert list(details.columns) == split.details
    assert details.loc[("00000-faces", "network-snapshot-000040.safetensors", 40.0), "ppl2_wend_ci_high"] == 150.0
    assert pivot(df).shape == (2, 89)  # the full pivot is still there


def test_per_name_details_have_names_as_rows(tmp_path: Path) -> None:
    table = per_name_details(load_results(_write_run(tmp_path)))
    assert table.index.names == ["run", "snapshot", "kimg", "name"]
    assert list(table.columns) == [f"{LS} z_h", f"{LS} w_h", f"{LS} pos", f"{LS} neg"]
    assert len(table) == 2 * 13
    legacy = table.xs(40.0, level="kimg")
    assert list(legacy.index.get_level_values("name")) == [f"attr{a:02d}" for a in range(13)]
    assert legacy[f"{LS} pos"].isna().all()  # the legacy records had no counts
    named = table.xs(80.0, level="kimg").droplevel(["run", "snapshot"])
    assert list(named.index) == list(NAMES)  # in the record's order, not alphabetical
    assert named.loc["Young", f"{LS} z_h"] == pytest.approx(0.1) and named.loc["Young", f"{LS} w_h"] == 0.05
    assert (named.loc["Chubby", f"{LS} pos"], named.loc["Chubby", f"{LS} neg"]) == (112.0, 888.0)
    assert table.loc[("00000-faces", "network-snapshot-000040.safetensors", 40.0, "attr12"), f"{LS} z_h"] == 0.16
    assert per_name_details(load_results(tmp_path / "00000-faces" / "metric-fid50k_full.jsonl")).empty


def test_default_plot_of_89_values_is_a_bounded_grid(tmp_path: Path) -> None:
    df = load_results(_write_run(tmp_path))
    png = plot_metric_vs_kimg(df, tmp_path / "all.png")
    with Image.open(png) as image:
        assert image.size == (1260, 900)  # 7 headline panels of 420 x 300 in 3 columns
    assert plot_columns(df) == (HEADLINE, [])


def test_plot_caps_the_panels_and_names_the_rest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for count in range(1, 16):  # 15 FID variants: 15 headline columns
        _result(run, f"fid50k_full@gen{count}k", 40, {"fid": float(count)})
    df = load_results(run)
    chosen, left_out = plot_columns(df)
    assert len(chosen) == PLOT_PANEL_CAP == 12 and len(left_out) == 3
    with pytest.warns(UserWarning, match="first 12 of 15 headline columns; left out: .*--plot-metrics"):
        png = plot_metric_vs_kimg(df, tmp_path / "capped.png")
    with Image.open(png) as image:
        assert image.size == (1260, 1200) and max(image.size) <= 2000


def test_plot_metrics_by_name_and_glob(tmp_path: Path) -> None:
    df = load_results(_write_run(tmp_path))
    assert select_columns(df, ["ppl2_wend", "fid*"]) == ["ppl2_wend", "fid50k_full"]
    assert select_columns(df, ["ls*"])[:2] == ["ls@gen10k_z", "ls@gen10k_w"]  # headline first, then per-name
    assert len(select_columns(df, ["ls*"])) == 2 + 78
    assert select_columns(df, ["*_precision", "*_recall", "fid50k_full", "*_precision"]) == [
        f"{PR}_precision", f"{PR}_recall", "fid50k_full"]
    with pytest.raises(ValueError, match=r"no column matches 'nope\*'; available \(headline first\): fid50k_full, "):
        select_columns(df, ["nope*"])
    png = plot_metric_vs_kimg(df, tmp_path / "two.png", columns=["*_precision", "*_recall"])
    with Image.open(png) as image:
        assert image.size == (840, 300)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(report_command, list(args))
    return result.exit_code, result.stdout, result.stderr


def _markdown_tables(text: str) -> list[list[str]]:
    """Header cells of each Markdown table in `text`."""
    headers, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            headers.append([cell.strip() for cell in line.strip("|").split("|")])
        previous = line
    return headers


def test_report_command_tables(tmp_path: Path) -> None:
    run = str(_write_run(tmp_path))
    code, out, err = _invoke(run)
    assert code == 0, err
    assert _markdown_tables(out) == [["run", "snapshot", "kimg", *HEADLINE]]
    assert "82 more columns (details, per-name values) not shown: --details" in err

    code, out, err = _invoke(run, "--details")
    assert code == 0, err
    main, details, per_name = _markdown_tables(out)
    assert main[3:] == HEADLINE and details[3:] == split_columns(load_results(run)).details
    assert per_name == ["run", "snapshot", "kimg", "name", f"{LS} z_h", f"{LS} w_h", f"{LS} pos", f"{LS} neg"]
    assert "### Details" in out and "### Per-name values" in out
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines()
            if "| Smiling " in line or "| attr05 " in line]
    assert [row[2:] for row in rows] == [["40", "attr05", "0.09", "0.045", "", ""],  # legacy keys: no counts
                                         ["80", "Smiling", "0.08", "0.04", "100", "900"]]

    code, out, err = _invoke(run, "--all-columns")
    assert code == 0 and len(_markdown_tables(out)) == 1 and len(_markdown_tables(out)[0]) == 3 + 89

    code, out, err = _invoke(run, "--format", "html", "--details", "-o", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and page.count("<table") == 3 and "<h3>Per-name values</h3>" in page and "<td>Bald</td>" in page

    code, out, err = _invoke(run, "--format", "csv")  # scripts get every column
    parsed = pd.read_csv(io.StringIO(out))
    assert code == 0 and parsed.shape == (2, 3 + 89) and parsed["fid50k_full"].tolist() == [30.0, 21.0]
    code, out, err = _invoke(run, "--format", "csv", "--details")
    assert code == 2 and "holds one table" in err

    code, out, err = _invoke(run, "--long", "--agg", "last")
    assert code == 0 and len(out.splitlines()) == 2 + len(load_results(run))  # header, separator, 1 row per value


def test_report_command_plots(tmp_path: Path) -> None:
    run = str(_write_run(tmp_path))
    code, out, err = _invoke(run, "--plot", str(tmp_path / "p.png"))
    assert code == 0, err
    with Image.open(tmp_path / "p.png") as image:
        assert image.size == (1260, 900)
    code, out, err = _invoke(run, "--format", "csv", "--plot", str(tmp_path / "q.png"), "--plot-metrics",
                             "fid*,ppl2_wend", "--plot-metrics", "ls@gen10k_z_h.*")
    assert code == 0, err
    with Image.open(tmp_path / "q.png") as image:
        assert image.size == (1260, 300 * 5)  # 2 + 13 panels, 3 a row
    code, out, err = _invoke(run, "--plot", str(tmp_path / "r.png"), "--plot-metrics", "fid50k_full,nope")
    assert code == 2 and "Invalid value for '--plot-metrics': no column matches 'nope'" in err
    assert "available (headline first): fid50k_full, kid50k_full@gen1k, " in err
    assert not (tmp_path / "r.png").exists() and out == ""  # nothing written before the error
    code, out, err = _invoke(run, "--plot-metrics", "fid*")
    assert code == 2 and "give --plot too" in err


def test_report_command_names_the_panels_left_out(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for count in range(1, 16):
        _result(run, f"fid50k_full@gen{count}k", 40, {"fid": float(count)})
    code, out, err = _invoke(str(run), "--plot", str(tmp_path / "p.png"))
    assert code == 0, err
    assert "plotted the first 12 of 15 headline columns; left out: " in err and "(choose with --plot-metrics)" in err
    with Image.open(tmp_path / "p.png") as image:
        assert image.size == (1260, 1200)


def test_details_of_a_run_without_any(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _result(run, "fid50k_full", 40, {"fid": 7.5})
    code, out, err = _invoke(str(run), "--details")
    assert code == 0 and _markdown_tables(out) == [["run", "snapshot", "kimg", "fid50k_full"]]
    assert out.endswith(" 40 |           7.5 |\n")
    assert "no detail or per-name values" in err
    assert details_table(load_results(run)).shape == (0, 0)
