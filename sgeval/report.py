"""Reports over metric JSONL files: pandas tables, Markdown/CSV/HTML output, metric-vs-kimg plots, `sgeval report`.

`load_results` gives the long table (one row per result line and value key); `pivot` turns it into one row per
snapshot and one column per metric value, named as in the official `results` dicts (`fid50k_full`,
`pr50k3_full_precision`, `fid50k_full@gen1k`). Repeated evaluations of a snapshot are aggregated (mean by default,
as the StyleGAN2 paper averages repeated metric runs).

Readable by default. Each value is one of three kinds (`value_kind`): a *headline* value (the metric's `primary`
value key in `sgeval.metrics.registry`, or all its `value_keys` when it has no primary: `fid`, `kd`, `ppl`, P&R's
`precision`/`recall`, separability's `z`/`w`; for a metric the registry does not know, the key named like the
metric), a *per-name* value (`<stat>.<name>`, e.g. `z_h.Smiling`, `pos.Smiling`, and the older `<space>_hNN`, e.g.
`z_h03`, read as stat `z_h` of attribute `attr03`), or a *detail* (everything else: `ci_low`, `ci_high`,
`num_kept`, `kid_std`, ...). `sgeval report` prints the headline columns as one table (`headline_table`); `--details`
adds the details (`details_table`, official column names) and the per-name values with one row per name and one
column per `<protocol> <stat>` (`per_name_details`); `--all-columns` prints the old full-width pivot. CSV, being
for scripts, always holds the full pivot. `--plot PATH` draws the headline values against kimg in a grid of
panels, 3 per row, at most 12 (the rest is named on standard error); `--plot-metrics` chooses columns by official
name or glob pattern (`ls*`, `*precision`), all of them (no cap). Each panel is 420 x 300 px.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import click
import pandas as pd

from sgeval.atomic import atomic_open, atomic_write_text
from sgeval.results import CorruptResultLineWarning, iter_results, kimg_from_snapshot_name

__all__ = [
    "LONG_COLUMNS",
    "PLOT_PANEL_CAP",
    "ColumnSplit",
    "details_table",
    "headline_columns",
    "headline_table",
    "load_results",
    "per_name_details",
    "per_name_key",
    "pivot",
    "plot_columns",
    "plot_metric_vs_kimg",
    "result_caveats",
    "report_command",
    "select_columns",
    "split_columns",
    "to_csv",
    "to_html",
    "to_markdown",
    "value_kind",
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

PLOT_PANEL_CAP = 12  # panels of the default plot; more headline columns are left out (and named)
PLOT_GRID_COLUMNS = 3  # panels per row
PLOT_PANEL_INCHES = (4.2, 3.0)  # width, height of one panel; at 100 dpi 12 panels make 1260 x 1200 px
PLOT_DPI = 100

ValueKind = Literal["headline", "detail", "per_name"]
_LEGACY_PER_NAME = re.compile(r"^(?P<space>[a-z]+)_h(?P<index>\d+)$")  # z_h03: LS entropy of attribute 3 in z


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


# ------------------------------------------------------------------------------------------------- column kinds


def per_name_key(key: str) -> tuple[str, str] | None:
    """(stat, name) of a per-name value key, or None for any other key.

    `<stat>.<name>` is the convention (`z_h.Smiling` -> ("z_h", "Smiling"), `pos.Smiling` -> ("pos", "Smiling");
    the name may itself contain dots). The older separability keys `<space>_hNN` read as the stat `<space>_h` of
    the attribute `attrNN`, the name `sgeval classifiers train` gives an unnamed attribute (`z_h03` -> ("z_h",
    "attr03")).
    """
    stat, dot, name = key.partition(".")
    if dot and stat and name:
        return stat, name
    match = _LEGACY_PER_NAME.match(key)
    if match:
        return f"{match['space']}_h", f"attr{match['index']}"
    return None


def _metric_keys(metric: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(value keys, headline value keys) of `metric`: the headline is its registered primary key, or all its value
    keys when it has no primary; for a metric the registry does not know, the key named like the metric."""
    from sgeval.metrics.registry import get_metric  # imports the metric modules (and torch) only when needed

    try:
        spec = get_metric(metric)
    except ValueError:
        return (metric,), (metric,)
    return spec.value_keys, spec.value_keys if spec.primary is None else (spec.primary,)


def value_kind(metric: str, key: str) -> ValueKind:
    """"per_name" (`per_name_key` parses it), "headline" (the metric's registered primary value, or all its values
    when it has none; the key named like the metric when it is not registered) or "detail" (any other key)."""
    if per_name_key(key) is not None:
        return "per_name"
    return "headline" if key in _metric_keys(metric)[1] else "detail"


@dataclasses.dataclass(frozen=True)
class ColumnSplit:
    """The official columns of a long table by kind, each list in report order (`split_columns`)."""

    headline: list[str]  # each metric's headline values: the default table and plot
    details: list[str]  # other values with one number per snapshot (intervals, counts, standard deviations)
    per_name: list[str]  # per-name values (`per_name_key`), shown as rows by `per_name_details`

    @property
    def hidden(self) -> list[str]:
        """The columns the default table leaves out."""
        return self.details + self.per_name


def _protocol_rank(df: pd.DataFrame, order: Sequence[str] | None) -> dict[str, tuple[int, str]]:
    """Sort key of each protocol: its place in `order`, others after them by name."""
    places = {protocol: index for index, protocol in enumerate(order or [])}
    return {protocol: (places.get(protocol, len(places)), protocol) for protocol in df["protocol"].unique()}


def split_columns(df: pd.DataFrame, order: Sequence[str] | None = None) -> ColumnSplit:
    """Official columns of the long table `df` (`load_results`) split into headline, detail and per-name columns.

    Args:
        df: the long table.
        order: protocols to list first, in this order (e.g. the order they were measured); the others follow
            sorted by name.

    Returns:
        A `ColumnSplit`; within one protocol columns follow the metric's registered `value_keys`, unregistered
        keys last in order of appearance.
    """
    kinds: dict[str, ValueKind] = {}
    ranks: dict[str, tuple[tuple[int, str], int, int]] = {}
    protocol_rank = _protocol_rank(df, order)
    keys_of: dict[str, tuple[str, ...]] = {}
    for appearance, (metric, protocol, key, column) in enumerate(
        df[["metric", "protocol", "key", "column"]].drop_duplicates("column").itertuples(index=False)
    ):
        if metric not in keys_of:
            keys_of[metric] = _metric_keys(metric)[0]
        kinds[column] = value_kind(metric, key)
        registered = keys_of[metric]
        key_rank = registered.index(key) if key in registered else len(registered)
        ranks[column] = (protocol_rank[protocol], key_rank, appearance)
    ordered = sorted(kinds, key=ranks.__getitem__)
    return ColumnSplit(*([column for column in ordered if kinds[column] == kind]
                         for kind in ("headline", "detail", "per_name")))


def headline_columns(df: pd.DataFrame, order: Sequence[str] | None = None) -> list[str]:
    """The headline columns of the long table `df`: each metric's headline value(s) (see `split_columns`)."""
    return split_columns(df, order).headline


def headline_table(df: pd.DataFrame, agg: str = "mean", order: Sequence[str] | None = None) -> pd.DataFrame:
    """`pivot` of the headline columns only: one row per snapshot, one column per headline value."""
    return pivot(df, agg=agg)[headline_columns(df, order)]


def details_table(df: pd.DataFrame, agg: str = "mean", order: Sequence[str] | None = None) -> pd.DataFrame:
    """`pivot` of the detail columns (official names), only the snapshots that have any; no column when none."""
    return pivot(df, agg=agg)[split_columns(df, order).details].dropna(how="all")


def per_name_details(df: pd.DataFrame, agg: str = "mean", order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-name values as rows: one row per (run, snapshot, kimg, name), one column per `<protocol> <stat>`.

    For separability records with keys `z_h.Smiling`, `w_h.Smiling`, `pos.Smiling`, ... (or the older `z_h03`)
    the columns are `ls z_h`, `ls w_h`, `ls pos`, ... and the attribute names label the rows.

    Args:
        df: the long table of `load_results`.
        agg: how repeated evaluations combine, as in `pivot`.
        order: protocols to put first (see `split_columns`).

    Returns:
        DataFrame indexed by (run, snapshot, kimg, name), rows sorted by run, kimg and the order in which the
        names first appear; empty (with that index) when no value is per-name.
    """
    if agg not in _AGGREGATIONS:
        raise ValueError(f"agg must be one of {', '.join(_AGGREGATIONS)}, got {agg!r}")
    index = ["run", "snapshot", "kimg", "name"]
    parsed = df["key"].map(per_name_key)
    rows = df[parsed.notna()]
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=index))
    parts = parsed[parsed.notna()]
    rows = rows.assign(name=[name for _stat, name in parts],
                       stat_column=[f"{protocol} {stat}" for protocol, (stat, _name) in zip(rows["protocol"], parts,
                                                                                            strict=True)])
    ordered = rows.sort_values("timestamp", kind="stable")  # so that "last" means the latest evaluation
    grouped = ordered.groupby([*index, "stat_column"], dropna=False, sort=False)["value"].agg(agg)
    table = grouped.unstack("stat_column")
    table.columns.name = None
    protocol_rank = _protocol_rank(rows, order)
    first = rows.drop_duplicates("stat_column")
    column_rank = {column: (protocol_rank[protocol], appearance)
                   for appearance, (column, protocol) in enumerate(zip(first["stat_column"], first["protocol"],
                                                                       strict=True))}
    name_rank = {name: appearance for appearance, name in enumerate(dict.fromkeys(rows["name"]))}
    table = table[sorted(table.columns, key=column_rank.__getitem__)]
    flat = table.reset_index()
    flat = flat.assign(_rank=flat["name"].map(name_rank)).sort_values(["run", "kimg", "_rank"], kind="stable")
    return flat.drop(columns="_rank").set_index(index)


# ------------------------------------------------------------------------------------------------- plots


def select_columns(df: pd.DataFrame, patterns: Iterable[str]) -> list[str]:
    """Official columns of `df` named by `patterns`: exact names or fnmatch globs (`ls*`, `*_precision`).

    Columns come in the order of the patterns (a glob's matches in report order: headline, details, per-name),
    each once. A pattern matching nothing raises ValueError naming the available columns.
    """
    split = split_columns(df)
    available = split.headline + split.details + split.per_name
    chosen: dict[str, None] = {}
    for pattern in patterns:
        matches = [pattern] if pattern in available else fnmatch.filter(available, pattern)
        if not matches:
            raise ValueError(f"no column matches {pattern!r}; available (headline first): {', '.join(available)}")
        chosen.update(dict.fromkeys(matches))
    return list(chosen)


def plot_columns(
    df: pd.DataFrame, patterns: Iterable[str] | None = None, cap: int = PLOT_PANEL_CAP
) -> tuple[list[str], list[str]]:
    """The columns a plot of `df` draws, and the headline columns left out beyond `cap`.

    Only rows with a kimg count. Without `patterns`: the headline columns (`headline_columns`; every column when
    no value is a headline), the first `cap` of them. With `patterns`: `select_columns`, all of them, none left
    out.
    """
    rows = df.dropna(subset=["kimg"])
    if rows.empty:
        raise ValueError("nothing to plot: no result carries a kimg (snapshot names like network-snapshot-000123.*)")
    if patterns is not None:
        return select_columns(rows, patterns), []
    split = split_columns(rows)
    default = split.headline or split.details + split.per_name
    return default[:cap], default[cap:]


def plot_metric_vs_kimg(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    agg: str = "mean",
) -> Path:
    """PNG of values against kimg: one panel per column, one line per run, panels in a grid 3 wide.

    Args:
        df: the long table of `load_results` (rows without kimg are left out).
        path: PNG file to write (atomically; parent directories are created).
        columns: official column names or fnmatch globs to plot (see `select_columns`). Default: the headline
            columns, at most `PLOT_PANEL_CAP` panels; a UserWarning names the ones left out.
        agg: how repeated evaluations of a snapshot combine, as in `pivot`.

    Returns:
        The written path. Each panel is 420 x 300 px, so the default plot is at most 1260 x 1200 px.
    """
    # A bare Figure renders PNG through the Agg canvas without pyplot: no global backend switch, no display
    # needed, and nothing left open in a user's interactive session.
    from matplotlib.figure import Figure

    if agg not in _AGGREGATIONS:
        raise ValueError(f"agg must be one of {', '.join(_AGGREGATIONS)}, got {agg!r}")
    chosen, left_out = plot_columns(df, columns)
    if left_out:
        warnings.warn(f"plotting the first {len(chosen)} of {len(chosen) + len(left_out)} headline columns; left "
                      f"out: {', '.join(left_out)} (choose with columns=, `sgeval report --plot-metrics`)",
                      UserWarning, stacklevel=2)
    rows = df.dropna(subset=["kimg"]).sort_values("timestamp", kind="stable")
    grid_columns = min(PLOT_GRID_COLUMNS, len(chosen))
    grid_rows = math.ceil(len(chosen) / grid_columns)
    width, height = PLOT_PANEL_INCHES
    figure = Figure(figsize=(width * grid_columns, height * grid_rows))
    axes = figure.subplots(grid_rows, grid_columns, squeeze=False).ravel()
    for axis, column in zip(axes, chosen, strict=False):
        selected = rows[rows["column"] == column]
        for run, group in selected.groupby("run", sort=True):
            curve = group.groupby("kimg")["value"].agg(agg)  # repeated evaluations combined
            axis.plot(curve.index, curve.to_numpy(), marker="o", markersize=3, label=str(run))
        axis.set_title(column, fontsize="medium")
        axis.set_xlabel("kimg", fontsize="small")
        axis.tick_params(labelsize="small")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="x-small")
    for axis in axes[len(chosen):]:
        axis.set_visible(False)
    figure.tight_layout()
    target = Path(path)
    with atomic_open(target, "wb") as handle:
        figure.savefig(handle, format="png", dpi=PLOT_DPI)
    return target


# ------------------------------------------------------------------------------------------------- command


def result_caveats(paths_or_dirs: Iterable[str | os.PathLike[str]]) -> dict[str, list[str]]:
    """{caveat: protocols it concerns} over the results of the given runs or files: warnings a result carries in
    `extra["caveats"]` (e.g. measured with a domain detector that failed its self-check)."""
    found: dict[str, list[str]] = {}
    with warnings.catch_warnings():  # a corrupt line was reported by load_results already
        warnings.simplefilter("ignore", CorruptResultLineWarning)
        results = list(iter_results(paths_or_dirs))
    for _path, result in results:
        for caveat in (result.extra or {}).get("caveats", []):
            protocols = found.setdefault(str(caveat), [])
            if result.protocol not in protocols:
                protocols.append(result.protocol)
    return found


_FORMATTERS = {"md": to_markdown, "csv": to_csv, "html": to_html}
_DETAIL_TITLES = ("Details", "Per-name values")


def _render(tables: list[tuple[str | None, pd.DataFrame]], fmt: str) -> str:
    """Tables one after the other, each but the first under its title (a Markdown or HTML heading)."""
    parts = []
    for title, table in tables:
        heading = "" if title is None else f"### {title}\n\n" if fmt == "md" else f"<h3>{title}</h3>\n"
        parts.append(heading + _FORMATTERS[fmt](table))
    return "\n".join(parts)


def _split_patterns(values: tuple[str, ...]) -> list[str] | None:
    patterns = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return patterns or None


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path), metavar="RUN_DIR...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(_FORMATTERS)),
    default="md",
    show_default=True,
    help="Table format. md and html show the headline value of each metric (see --details, --all-columns); csv, "
    "for scripts, always holds every column.",
)
@click.option("--long", "long_table", is_flag=True, help="One row per value instead of snapshot x metric.")
@click.option(
    "--details",
    is_flag=True,
    help="md/html: after the headline table, a table of the other values (intervals, counts, standard deviations) "
    "and one of the per-name values (per-attribute separability), one row per name.",
)
@click.option("--all-columns", is_flag=True, help="md/html: one table with every value as its own column.")
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
    help=f"Also write a metric-vs-kimg PNG to PATH: the headline values, {PLOT_GRID_COLUMNS} panels a row, at most "
    f"{PLOT_PANEL_CAP}.",
)
@click.option(
    "--plot-metrics",
    multiple=True,
    metavar="COL[,COL...]",
    help="Columns for --plot instead: official names (as in --all-columns) or globs such as 'ls*' or "
    "'*_precision'; repeatable.",
)
def report_command(
    paths: tuple[Path, ...],
    fmt: str,
    long_table: bool,
    details: bool,
    all_columns: bool,
    agg: str,
    output: Path | None,
    plot: Path | None,
    plot_metrics: tuple[str, ...],
) -> None:
    """Tabulate metric-*.jsonl results of run directories (or JSONL files).

    \b
    Examples:
      sgeval report runs/00001-ffhq
      sgeval report runs/00001-ffhq --details --plot metrics.png
      sgeval report runs/* --format csv -o metrics.csv --plot fid.png --plot-metrics 'fid*'
    """
    patterns = _split_patterns(plot_metrics)
    if patterns is not None and plot is None:
        raise click.UsageError("--plot-metrics chooses the columns of --plot PATH; give --plot too")
    if details and fmt == "csv" and not long_table:
        raise click.UsageError("a CSV file holds one table, which already has every column; use --long for one row "
                               "per value")
    df = load_results(paths)
    if df.empty:
        raise click.ClickException(f"no metric results (metric-*.jsonl lines) found in {', '.join(map(str, paths))}")
    if plot is not None:  # before any output, so that a bad --plot-metrics leaves no table behind
        try:
            chosen, left_out = plot_columns(df, patterns)
        except ValueError as exc:
            if patterns is None:
                raise click.ClickException(str(exc)) from None
            raise click.BadParameter(str(exc), param_hint="'--plot-metrics'") from None
    tables: list[tuple[str | None, pd.DataFrame]]
    if long_table:
        tables = [(None, df.drop(columns=["path"]))]
    elif fmt == "csv" or all_columns:
        tables = [(None, pivot(df, agg=agg))]
    else:
        split = split_columns(df)
        tables = [(None, headline_table(df, agg=agg))]
        if details:
            extra = [details_table(df, agg=agg), per_name_details(df, agg=agg)]
            tables += [(title, table) for title, table in zip(_DETAIL_TITLES, extra, strict=True) if table.size]
            if len(tables) == 1:
                click.echo("no detail or per-name values: the headline table is all there is", err=True)
        elif split.hidden:
            click.echo(f"{len(split.hidden)} more columns (details, per-name values) not shown: --details adds them as "
                       "their own tables, --all-columns gives one table with every column", err=True)
    for caveat, protocols in result_caveats(paths).items():
        click.echo(f"warning ({', '.join(protocols)}): {caveat}", err=True)
    text = _render(tables, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    if plot is not None:
        if left_out:
            click.echo(f"plotted the first {len(chosen)} of {len(chosen) + len(left_out)} headline columns; left out: "
                       f"{', '.join(left_out)} (choose with --plot-metrics)", err=True)
        plot_metric_vs_kimg(df, plot, columns=chosen, agg=agg)
        click.echo(f"wrote {plot}", err=True)
