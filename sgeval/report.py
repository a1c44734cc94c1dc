"""Reports over metric JSONL files: pandas tables, Markdown/CSV/HTML output, metric-vs-kimg plots, `sgeval report`.

`load_results` gives the long table (one row per result line and value key); `pivot` turns it into one row per
snapshot and one column per metric value, named as in the official `results` dicts (`fid50k_full`,
`pr50k3_full_precision`, `fid50k_full@gen1k`). Repeated evaluations of a snapshot are aggregated (mean by default,
as the StyleGAN2 paper averages repeated metric runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import click
import pandas as pd

from sgeval.atomic import atomic_open, atomic_write_text
from sgeval.results import iter_results, kimg_from_snapshot_name

__all__ = [
    "LONG_COLUMNS",
    "load_results",
    "pivot",
    "plot_metric_vs_kimg",
    "report_command",
    "to_csv",
    "to_html",
    "to_markdown",
]

LONG_COLUMNS = (
    "run",  # name of the directory holding the JSONL file
    "snapshot",  # snapshot file name ("" when the result names none)
    "kimg",  # training progress, recorded or parsed from the snapshot name; NaN when unknown
    "protocol",  # protocol name, e.g. "fid50k_full" or "fid50k_full@gen1k"
    "base_protocol",  # official protocol name
    "metric",  # metric function, e.g. "fid"
    "key",  # value key within the result, e.g. "fid", "precision"
    "column",  # official results key, e.g. "fid50k_full", "pr50k3_full_precision"
    "value",  # the number
    "num_gen",  # generated samples
    "num_real",  # real samples
    "counts_overridden",  # quick variant
    "seed",  # evaluation seed
    "total_time",  # seconds
    "timestamp",  # seconds since the epoch
    "path",  # JSONL file
)
_AGGREGATIONS = ("mean", "median", "min", "max", "last")


def load_results(paths_or_dirs: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> pd.DataFrame:
    """Long table of all results in the given run directories and/or JSONL files.

    Returns a DataFrame with the columns `LONG_COLUMNS`, one row per (result line, value key), sorted by run,
    kimg and time. Corrupt lines are skipped with a warning (see `sgeval.results.iter_results`).
    """
    if isinstance(paths_or_dirs, (str, os.PathLike)):
        paths_or_dirs = [paths_or_dirs]
    rows = []
    for path, result in iter_results(paths_or_dirs):
        kimg = result.kimg if result.kimg is not None else kimg_from_snapshot_name(result.snapshot)
        for key, value in result.values.items():
            rows.append(
                {
                    "run": path.resolve().parent.name,
                    "snapshot": Path(result.snapshot).name if result.snapshot else "",
                    "kimg": float("nan") if kimg is None else kimg,
                    "protocol": result.protocol,
                    "base_protocol": result.base_protocol,
                    "metric": result.metric,
                    "key": key,
                    "column": result.official_key(key),
                    "value": value,
                    "num_gen": result.num_gen,
                    "num_real": result.num_real,
                    "counts_overridden": result.counts_overridden,
                    "seed": result.seed,
                    "total_time": result.total_time,
                    "timestamp": result.timestamp,
                    "path": str(path),
                }
            )
    frame = pd.DataFrame(rows, columns=list(LONG_COLUMNS))
    frame = frame.astype({"num_gen": "Int64", "num_real": "Int64", "seed": "Int64"})  # counts stay integers
    return frame.sort_values(["run", "kimg", "timestamp"], kind="stable", ignore_index=True)


def pivot(df: pd.DataFrame, agg: str = "mean") -> pd.DataFrame:
    """Snapshot x metric table from `load_results` output.

    Args:
        df: the long table.
        agg: how repeated evaluations of one snapshot and column combine: "mean", "median", "min", "max" or
            "last" (latest timestamp).

    Returns:
        DataFrame indexed by (run, snapshot, kimg) with one float column per official results key, sorted by
        run and kimg; snapshots lacking a metric hold NaN.
    """
    if agg not in _AGGREGATIONS:
        raise ValueError(f"agg must be one of {', '.join(_AGGREGATIONS)}, got {agg!r}")
    missing = {"run", "snapshot", "kimg", "column", "value", "timestamp"} - set(df.columns)
    if missing:
        raise ValueError(f"pivot() needs the long table of load_results(); missing columns: {sorted(missing)}")
    ordered = df.sort_values("timestamp", kind="stable")  # so that "last" means the latest evaluation
    grouped = ordered.groupby(["run", "snapshot", "kimg", "column"], dropna=False, sort=False)["value"].agg(agg)
    table = grouped.unstack("column")
    table.columns.name = None
    return table.sort_index(level=["run", "kimg"], sort_remaining=False)


def _index_as_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Index levels (run, snapshot, kimg) as ordinary columns; a default RangeIndex is dropped."""
    return df if isinstance(df.index, pd.RangeIndex) else df.reset_index()


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """GitHub-flavoured Markdown table of `df`, index levels as columns, missing values blank."""
    frame = _index_as_columns(df)
    frame = frame.astype(object).where(frame.notna(), None)  # tabulate renders None, unlike NaN, as a blank cell
    return frame.to_markdown(index=False, floatfmt=floatfmt, missingval="") + "\n"


def to_csv(df: pd.DataFrame) -> str:
    """CSV text of `df`, index levels as columns, full float precision, missing values empty."""
    return _index_as_columns(df).to_csv(index=False)


def to_html(df: pd.DataFrame) -> str:
    """HTML table of `df`, index levels as columns, missing values blank."""
    return _index_as_columns(df).to_html(index=False, float_format=lambda value: f"{value:.4g}", na_rep="")


def plot_metric_vs_kimg(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
) -> Path:
    """PNG with one panel per metric value (official column name), value against kimg, one line per run.

    Args:
        df: the long table of `load_results` (rows without kimg are left out).
        path: PNG file to write (atomically; parent directories are created).
        columns: official column names to plot (default: all present).

    Returns:
        The written path.
    """
    # A bare Figure renders PNG through the Agg canvas without pyplot: no global backend switch, no display
    # needed, and nothing left open in a user's interactive session.
    from matplotlib.figure import Figure

    rows = df.dropna(subset=["kimg"])
    chosen = list(columns) if columns is not None else sorted(rows["column"].unique())
    if rows.empty or not chosen:
        raise ValueError("nothing to plot: no result carries a kimg (snapshot names like network-snapshot-000123.*)")
    unknown = sorted(set(chosen) - set(rows["column"]))
    if unknown:
        raise ValueError(f"no values with kimg for {unknown}; available: {sorted(rows['column'].unique())}")
    figure = Figure(figsize=(7, 2.8 * len(chosen)))
    axes = figure.subplots(len(chosen), 1, squeeze=False, sharex=True)
    for axis, column in zip(axes[:, 0], chosen, strict=True):
        selected = rows[rows["column"] == column]
        for run, group in selected.groupby("run", sort=True):
            curve = group.groupby("kimg")["value"].mean()  # repeated evaluations -> their mean
            axis.plot(curve.index, curve.to_numpy(), marker="o", markersize=3, label=str(run))
        axis.set_ylabel(column)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    axes[-1, 0].set_xlabel("kimg")
    figure.tight_layout()
    target = Path(path)
    with atomic_open(target, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    return target


_FORMATTERS = {"md": to_markdown, "csv": to_csv, "html": to_html}


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path), metavar="RUN_DIR...")
@click.option(
    "--format", "fmt", type=click.Choice(sorted(_FORMATTERS)), default="md", show_default=True, help="Table format."
)
@click.option("--long", "long_table", is_flag=True, help="One row per value instead of snapshot x metric.")
@click.option(
    "--agg",
    type=click.Choice(_AGGREGATIONS),
    default="mean",
    show_default=True,
    help="How repeated evaluations of a snapshot combine.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the table to PATH instead of standard output.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Also write a metric-vs-kimg PNG to PATH.",
)
def report_command(
    paths: tuple[Path, ...], fmt: str, long_table: bool, agg: str, output: Path | None, plot: Path | None
) -> None:
    """Tabulate metric-*.jsonl results of run directories (or JSONL files).

    \b
    Examples:
      sgeval report runs/00001-ffhq
      sgeval report runs/* --format csv -o metrics.csv --plot fid.png
    """
    df = load_results(paths)
    if df.empty:
        raise click.ClickException(f"no metric results (metric-*.jsonl lines) found in {', '.join(map(str, paths))}")
    table = df.drop(columns=["path"]) if long_table else pivot(df, agg=agg)
    text = _FORMATTERS[fmt](table)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    if plot is not None:
        try:
            plot_metric_vs_kimg(df, plot)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {plot}", err=True)
