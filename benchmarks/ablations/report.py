"""Reports of the ablation suites: pandas tables beside the paper's numbers, trend verdicts, plots.

For every suite `<out>/<suite>/` receives:

* `results.jsonl`: the sgeval result lines of the final snapshot of every run of the suite (a copy; the run
  directories keep their own);
* `results.csv`: one line per (row, seed, column) value;
* `summary.csv` and `report.md`: mean, standard deviation and count over seeds for every cell, the paper's value
  beside it, and the verdict on each trend of the paper; a hand-written `discussion.md` in the folder (why a trend
  did or did not reproduce at this scale) is appended to `report.md` every time the report is regenerated;
* PNG plots (FD vs number of mixed latents per mixing ratio; PPL and separability per configuration).

Verdicts compare seed means with a 95 % Welch interval of the difference (a paired interval when both cells come from
the same runs): "reproduced" when the interval excludes 0 on the paper's side, "reversed" when it excludes 0 on the
other side, "inconclusive" otherwise (always so with one seed).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.ablations.config import ROWS, SUITES, Scale, Suite
from benchmarks.ablations.run import RunRecord
from benchmarks.ablations.stick import MeasuringStick

__all__ = ["Trend", "collect_values", "paper_values", "trend_verdict", "write_suite_report"]

PAPER_TABLES = Path(__file__).with_name("paper_tables.csv")
COLUMN_ORDER = ("fd", "fd_1", "fd_2", "fd_3", "fd_4", "ppl_full", "ppl_end", "ls")  # as the paper's tables


@dataclasses.dataclass(frozen=True)
class Trend:
    """A claim of the paper: `better` is expected to have the lower value of `column` than `worse`."""

    claim: str  # in words
    column: str  # summary column
    lower: tuple[str, str]  # (row key, column) expected lower
    higher: tuple[str, str]  # (row key, column) expected higher


TRENDS: dict[str, list[Trend]] = {
    "mixing": [
        Trend("without mixing regularisation, FD grows with the number of mixed latents (4 vs 1)", "fd_mix",
              ("E-mix0", "fd_1"), ("E-mix0", "fd_4")),
        Trend("mixing regularisation (90 %) makes 4 mixed latents cheaper than without it", "fd_mix",
              ("F-mix90", "fd_4"), ("E-mix0", "fd_4")),
        Trend("mixing 50 % already helps at 2 mixed latents", "fd_mix", ("E-mix50", "fd_2"), ("E-mix0", "fd_2")),
    ],
    "noise": [
        Trend("noise inputs shorten the W paths (full): E < D", "ppl_full", ("E-mix0", "ppl_full"),
              ("D-nonoise", "ppl_full")),
        Trend("style-based W paths are shorter than the traditional generator's Z paths (full): E < B", "ppl_full",
              ("E-mix0", "ppl_full"), ("B-traditional", "ppl_full")),
        Trend("W is more linearly separable than the traditional Z: LS(E) < LS(B)", "ls", ("E-mix0", "ls"),
              ("B-traditional", "ls")),
        Trend("mixing regularisation lengthens the W paths slightly (full): E < F", "ppl_full", ("E-mix0", "ppl_full"),
              ("F-mix90", "ppl_full")),
    ],
    "placement": [],
    "mapping": [
        Trend("a deeper mapping network gives a better FD: 8 layers < none", "fd", ("F-map8", "fd"), ("F-map0", "fd")),
        Trend("a deeper mapping network gives shorter paths at the end points: 8 layers < 1", "ppl_end",
              ("F-map8", "ppl_end"), ("F-map1", "ppl_end")),
        Trend("a deeper mapping network makes W more separable: LS(8 layers) < LS(1)", "ls", ("F-map8", "ls"),
              ("F-map1", "ls")),
        Trend("a mapping network helps the traditional generator too: FD(traditional 8) < FD(traditional 0)", "fd",
              ("B-map8", "fd"), ("B-traditional", "fd")),
        Trend("with 8 mapping layers the traditional generator's W paths are shorter than its Z paths without them "
              "(full; paper 324.5 vs 412.0)", "ppl_full", ("B-map8", "ppl_full"), ("B-traditional", "ppl_full")),
        Trend("with 8 mapping layers the traditional generator's W is more separable than its Z without them "
              "(paper 6.52 vs 10.78)", "ls", ("B-map8", "ls"), ("B-traditional", "ls")),
    ],
}


# ------------------------------------------------------------------------------------------------- values


def _results_of(snapshot: Path) -> list[dict[str, Any]]:
    """The sgeval result lines of `snapshot` in its run directory (newest line per protocol wins)."""
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(snapshot.parent.glob("metric-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if Path(str(record.get("snapshot_pkl", ""))).name == snapshot.name:
                latest[record["metric"]] = record
    return list(latest.values())


def _columns(suite: Suite, record: RunRecord, stick: MeasuringStick, scale: Scale) -> dict[str, str]:
    """Report column -> protocol name, for the suite's metrics on this run's row."""
    row = record.row
    columns: dict[str, str] = {}
    for metric in suite.metrics:
        if metric == "fd":
            columns["fd"] = stick.fd(scale)
        elif metric == "fd_mix":
            columns.update({f"fd_{k}": stick.fd(scale, k if k > 1 else None) for k in scale.mixed_latents})
        elif metric in ("ppl_full", "ppl_end"):
            columns[metric] = stick.ppl(row, metric[4:], scale)
        elif metric == "ls" and stick.classifiers is not None:
            columns["ls"] = stick.ls(scale)
    return columns


def collect_values(suite: Suite, records: Sequence[RunRecord], stick: MeasuringStick,
                   scale: Scale) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(one line per row, seed, column and value; the raw result lines) of the suite's runs."""
    lines, raw = [], []
    for record in records:
        if record.row.key not in suite.rows:
            continue
        results = {result["metric"]: result for result in _results_of(record.snapshot)}
        for column, protocol in _columns(suite, record, stick, scale).items():
            result = results.get(protocol)
            if result is None:
                continue
            key = protocol if column != "ls" else f"{protocol}_{record.row.space}"
            value = result["results"].get(key)
            if value is None or not math.isfinite(value):
                continue
            raw.append(result)
            lines.append({"suite": suite.name, "row": record.row.key, "label": record.row.label,
                          "seed": record.seed, "column": column, "protocol": protocol, "value": float(value),
                          "kimg": result.get("kimg")})
    return pd.DataFrame(lines, columns=["suite", "row", "label", "seed", "column", "protocol", "value", "kimg"]), raw


def paper_values(suite: Suite) -> dict[tuple[str, str], float]:
    """{(row key, column): the paper's value} from the copied paper tables (Table 2, 3 or 4), in the row's latent
    space where the paper gives several (Table 4 lists Traditional 8 in Z and W)."""
    if suite.paper_table is None:
        return {}
    column_names = {"fid_1_latent": "fd_1", "fid_2_latents": "fd_2", "fid_3_latents": "fd_3",
                    "fid_4_latents": "fd_4", "fid": "fd", "ppl_full": "ppl_full", "ppl_end": "ppl_end",
                    "separability": "ls"}
    by_label = {label: key for key, label in suite.paper_rows.items()}
    values = {}
    with open(PAPER_TABLES, newline="", encoding="utf-8") as handle:
        for line in csv.DictReader(handle):
            if line["table"] != suite.paper_table or line["row"] not in by_label or line["column"] not in column_names:
                continue
            key = by_label[line["row"]]
            if line["space"] and line["space"] != ROWS[key].space:
                continue
            values[(key, column_names[line["column"]])] = float(line["value"])
    return values


# ------------------------------------------------------------------------------------------------- trends


def _interval(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[float, float, float] | None:
    """(mean difference b - a, low, high) of a 95 % t interval; None when there are too few seeds."""
    from scipy import stats

    if paired:
        diff = b - a
        if diff.size < 2:
            return None
        half = stats.t.ppf(0.975, diff.size - 1) * diff.std(ddof=1) / math.sqrt(diff.size)
        return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)
    if a.size < 2 or b.size < 2:
        return None
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else a.size + b.size - 2
    half = stats.t.ppf(0.975, dof) * se
    diff = float(b.mean() - a.mean())
    return diff, diff - half, diff + half


def trend_verdict(values: pd.DataFrame, trend: Trend) -> dict[str, Any]:
    """The verdict on one trend from the per-seed values (see the module docstring)."""

    def cell(row: str, column: str) -> pd.Series:
        picked = values[(values["row"] == row) & (values["column"] == column)]
        return picked.set_index("seed")["value"]

    lower, higher = cell(*trend.lower), cell(*trend.higher)
    paired = trend.lower[0] == trend.higher[0]
    if paired:
        seeds = lower.index.intersection(higher.index)
        lower, higher = lower.loc[seeds], higher.loc[seeds]
    interval = _interval(lower.to_numpy(), higher.to_numpy(), paired)
    verdict = "inconclusive"
    if interval is not None and interval[1] > 0:
        verdict = "reproduced"
    elif interval is not None and interval[2] < 0:
        verdict = "reversed"
    return {"trend": trend.claim, "expected lower": f"{trend.lower[0]} {trend.lower[1]}",
            "expected higher": f"{trend.higher[0]} {trend.higher[1]}", "n": int(min(lower.size, higher.size)),
            "difference": None if interval is None else interval[0],
            "95% interval": None if interval is None else f"[{interval[1]:.4g}, {interval[2]:.4g}]",
            "paired": paired, "verdict": verdict}


# -------------------------------------------------------------------------------------------------- report


def summarise(values: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Mean, std and count over seeds per (row, column), with the paper's value beside each cell."""
    if values.empty:
        return pd.DataFrame(columns=["row", "label", "column", "mean", "std", "n", "paper"])
    grouped = values.groupby(["row", "column"])["value"]
    table = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    paper = paper_values(suite)
    table["paper"] = [paper.get((row, column)) for row, column in zip(table["row"], table["column"], strict=True)]
    table["label"] = [suite.paper_rows.get(row, ROWS[row].label) for row in table["row"]]
    rank = {key: index for index, key in enumerate([*suite.rows, *COLUMN_ORDER])}
    table = table.sort_values(by=["row", "column"], key=lambda col: col.map(lambda value: rank.get(value, 99)))
    return table[["row", "label", "column", "mean", "std", "n", "paper"]]


def _cell_text(mean: float, std: float, n: int) -> str:
    return f"{mean:.4g}" if n < 2 or not math.isfinite(std) else f"{mean:.4g} ± {std:.2g}"


def _markdown(suite: Suite, summary: pd.DataFrame, trends: list[dict[str, Any]], scale: Scale,
              stick: MeasuringStick, header: str, discussion: str = "") -> str:
    ours = summary.pivot_table(index=["row", "label"], columns="column", values="mean", sort=False)
    lines = [f"# {suite.title}", "", header, "", f"Scale: {scale.name} ({scale.notes}).", ""]
    if stick.kind == "domain":
        lines += ["Our columns are the project's domain detector (`fd_*`: a domain Fréchet distance, not FID) and its "
                  "LPIPS-style distance (PPL); the paper's are FID on FFHQ and LPIPS VGG16 at 1024². Absolute values "
                  "are not comparable; compare the trends.", ""]
    columns = list(ours.columns)
    head = ["row", *[f"{c} (ours)" for c in columns], *[f"{c} (paper)" for c in columns]]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    paper = paper_values(suite)
    for (row, label), _ in ours.iterrows():
        cells = []
        for column in columns:
            match = summary[(summary["row"] == row) & (summary["column"] == column)]
            cells.append("" if match.empty else _cell_text(*match[["mean", "std", "n"]].iloc[0]))
        papers = ["" if (row, c) not in paper else f"{paper[(row, c)]:g}" for c in columns]
        lines.append(f"| {label} ({row}) | " + " | ".join(cells + papers) + " |")
    if trends:
        lines += ["", "## Trends of the paper", "", "| trend | n | difference | 95% interval | verdict |",
                  "|---|---|---|---|---|"]
        for trend in trends:
            difference = "" if trend["difference"] is None else f"{trend['difference']:.4g}"
            lines.append(f"| {trend['trend']} | {trend['n']} | {difference} | {trend['95% interval'] or ''} | "
                         f"{trend['verdict']} |")
    if discussion.strip():
        lines += ["", "## Discussion", "", "(Written by hand after the run, from `discussion.md` beside this report.)",
                  "", discussion.strip()]
    return "\n".join(lines) + "\n"


DISCUSSION_FILE = "discussion.md"


def write_suite_report(suite_name: str, records: Sequence[RunRecord], stick: MeasuringStick, scale: Scale,
                       out: Path, header: str = "") -> Path:
    """Write every report file of one suite into `<out>/<suite>/`; returns that folder."""
    from benchmarks.ablations.plots import plot_suite
    from sgeval.atomic import atomic_write_text

    suite = SUITES[suite_name]
    folder = out / suite.name
    folder.mkdir(parents=True, exist_ok=True)
    values, raw = collect_values(suite, records, stick, scale)
    summary = summarise(values, suite)
    trends = [trend_verdict(values, trend) for trend in TRENDS[suite.name]] if not values.empty else []
    atomic_write_text(folder / "results.jsonl", "".join(json.dumps(line) + "\n" for line in raw))
    atomic_write_text(folder / "results.csv", values.to_csv(index=False))
    atomic_write_text(folder / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(folder / "trends.csv", pd.DataFrame(trends).to_csv(index=False))
    discussion_file = folder / DISCUSSION_FILE  # the human reading of a real run, kept across regenerations
    discussion = discussion_file.read_text(encoding="utf-8") if discussion_file.is_file() else ""
    atomic_write_text(folder / "report.md", _markdown(suite, summary, trends, scale, stick, header, discussion))
    plot_suite(suite, summary, folder)
    return folder
