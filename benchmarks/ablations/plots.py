"""Plots of the ablation reports (matplotlib, Agg backend): ours beside the paper's, one PNG per suite.

* mixing: domain FD (or FID) against the number of mixed latents, one line per mixing ratio with the seeds'
  standard deviation as error bars; the paper's FID in a second panel;
* noise and placement: one panel per metric (PPL full, PPL end, separability, FD), bars per configuration with
  error bars, the paper's values as markers on a twin axis where the paper has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.ablations.config import ROWS, Suite

__all__ = ["plot_suite"]


def _pyplot() -> Any:  # matplotlib.pyplot, imported on first use with the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mixing(summary: pd.DataFrame, suite: Suite, path: Path) -> None:
    plt = _pyplot()
    figure, (ours, paper) = plt.subplots(1, 2, figsize=(9, 3.6))
    for row in suite.rows:
        cells = summary[(summary["row"] == row) & summary["column"].str.startswith("fd_")]
        if cells.empty:
            continue
        latents = cells["column"].str[3:].astype(int)
        ours.errorbar(latents, cells["mean"], yerr=cells["std"].fillna(0), marker="o", capsize=3,
                      label=ROWS[row].label)
        if cells["paper"].notna().any():
            paper.plot(latents, cells["paper"], marker="s", label=ROWS[row].label)
    ours.set(title="ours", xlabel="mixed latents per image", ylabel="Fréchet distance")
    paper.set(title="paper (FID, FFHQ 1024²)", xlabel="mixed latents per image", ylabel="FID")
    for axis in (ours, paper):
        axis.legend(fontsize="small")
        axis.set_xticks(sorted(set(range(1, 5))))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(summary: pd.DataFrame, suite: Suite, path: Path) -> None:
    plt = _pyplot()
    columns = [column for column in ("fd", "ppl_full", "ppl_end", "ls") if column in set(summary["column"])]
    if not columns:
        return
    figure, axes = plt.subplots(1, len(columns), figsize=(3.4 * len(columns), 3.6), squeeze=False)
    for axis, column in zip(axes[0], columns, strict=True):
        cells = summary[summary["column"] == column].set_index("row").reindex(list(suite.rows)).dropna(how="all")
        positions = range(len(cells))
        axis.bar(positions, cells["mean"], yerr=cells["std"].fillna(0), capsize=3, color="tab:blue", label="ours")
        axis.set_xticks(list(positions), list(cells.index), fontsize="x-small", rotation=30, ha="right")
        axis.set_title(column)
        if cells["paper"].notna().any():
            twin = axis.twinx()
            twin.plot(list(positions), cells["paper"], "s", color="tab:orange", label="paper")
            twin.set_ylabel("paper", color="tab:orange")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_suite(suite: Suite, summary: pd.DataFrame, folder: Path) -> None:
    """Write `<folder>/<suite>.png` (nothing when the summary is empty)."""
    if summary.empty:
        return
    if suite.name == "mixing":
        _mixing(summary, suite, folder / f"{suite.name}.png")
    else:
        _bars(summary, suite, folder / f"{suite.name}.png")
