"""The demo's report: `report.md` (PNG files beside it) and `report.html`, one self-contained page (every image a
base64 data URI, tables as HTML, no external resource), built from the same list of blocks.

Contents: the data used (a loud note when it is the digits fallback), the final snapshot's sample grid, a
style-mixing grid and a stochastic-variation figure (benchmarks/ablations/figures.py), metric-vs-kimg plots and the
metric table per snapshot (sgeval.report from the run directory's JSONL), the metrics skipped and why, the
class-coverage check (benchmarks/class_coverage.py), the measuring stick's held-out accuracy, timings and the exact
command.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.ablations.stick import MeasuringStick
from benchmarks.demo.budget import Budget
from benchmarks.demo.data import DemoData
from benchmarks.demo.run import CONFIG, Coverage, Timings, training_speed

__all__ = ["DemoResult", "Document", "metric_table", "write_report"]

# Debian's IDX files carry no class names; these are Fashion-MNIST's, in label order.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """Everything a demo invocation produced or found, as the report needs it."""

    command: str  # the exact command line of this invocation
    arch: str  # sgmodels preset family
    budget: Budget
    data: DemoData
    train_command: str  # the equivalent `sgmodels train` command
    run_dir: Path  # the sgmodels run directory
    snapshots: list[Path]  # in kimg order, the last one is the final snapshot
    stick: MeasuringStick  # the domain detector and the separability classifiers
    protocols: list[str]  # measured on every snapshot
    official_note: str  # which official metric was measured or skipped, and why
    coverage: Coverage
    timings: Timings


# ------------------------------------------------------------------------------------------------- documents


@dataclasses.dataclass
class Document:
    """A report as blocks, rendered to Markdown (images stay files beside it) or to a self-contained HTML page."""

    title: str
    blocks: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, kind: str, content: Any) -> None:
        """kind: "h2", "p", "warning", "code", "image" ((path, caption)) or "table" (a DataFrame)."""
        self.blocks.append((kind, content))

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for kind, content in self.blocks:
            if kind == "h2":
                lines += [f"## {content}", ""]
            elif kind in ("p", "warning"):
                lines += [f"> **{content}**" if kind == "warning" else content, ""]
            elif kind == "code":
                lines += ["```", content, "```", ""]
            elif kind == "image":
                lines += [f"![{content[1]}]({content[0].name})", "", f"*{content[1]}*", ""]
            elif kind == "table":
                from sgeval.report import to_markdown

                lines += [to_markdown(content), ""]
        return "\n".join(lines)

    def html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, content in self.blocks:
            if kind == "h2":
                body.append(f"<h2>{_inline(content)}</h2>")
            elif kind == "p":
                body.append(f"<p>{_inline(content)}</p>")
            elif kind == "warning":
                body.append(f'<p class="warning">{_inline(content)}</p>')
            elif kind == "code":
                body.append(f"<pre><code>{html.escape(content)}</code></pre>")
            elif kind == "image":
                body.append(_figure(*content))
            elif kind == "table":
                from sgeval.report import to_html

                body.append(to_html(content))
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(self.title)}'
                f"</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
          "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}td,th{border:1px solid #bbb;padding:3px 7px}"
          "img{max-width:100%;image-rendering:pixelated}figure{margin:1em 0}figcaption{color:#444;font-size:0.9em}"
          "code{background:#f2f2f2;padding:0 3px}pre{background:#f2f2f2;padding:0.6em;overflow-x:auto}"
          ".warning{background:#ffe5e5;border:2px solid #c00;padding:0.6em;font-weight:bold}")


def _inline(text: str) -> str:
    """Escaped HTML of a sentence whose `backticked` parts are code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def _figure(path: Path, caption: str) -> str:
    """An <img> holding the PNG itself (a data URI), so the page needs no other file."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
            f"<figcaption>{_inline(caption)}</figcaption></figure>")


# ------------------------------------------------------------------------------------------------- content


def metric_table(results: pd.DataFrame, coverage: Coverage, order: list[str] | None = None) -> pd.DataFrame:
    """One row per snapshot: kimg, every headline metric (`sgeval.report.headline_columns`: each metric's own
    value, precision / recall, the separability of Z and W) and the class coverage of its fakes."""
    from sgeval.report import headline_table

    table = headline_table(results, order=order).reset_index().drop(columns=["run"])
    table["class_coverage"] = table["snapshot"].map(coverage.entropy)
    return table


def _class_names(result: DemoResult, count: int) -> list[str]:
    recorded = result.coverage.names  # the dataset's names (dataset.json), or the classifiers'
    if recorded and len(recorded) == count:
        return list(recorded)
    if result.data.source == "fashion-mnist" and count == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    from sgeval.classifiers import read_description

    names = read_description(_classifiers_dir(result)).get("attributes", [])
    return list(names) if len(names) == count else [f"class {index}" for index in range(count)]


def _classifiers_dir(result: DemoResult) -> Path:
    if result.stick.classifiers is None:
        raise ValueError("the demo's measuring stick has classifiers")
    return result.stick.classifiers


def coverage_table(result: DemoResult) -> pd.DataFrame:
    """Class fractions of the reals and of the final snapshot's fakes; for attribute labels the frequency of each
    attribute among the fakes beside the reals' (classifier decisions) and its base rate (the labels)."""
    final = result.snapshots[-1].name
    fakes = result.coverage.histograms[final]
    if result.coverage.kind == "attributes":
        return pd.DataFrame({"attribute": _class_names(result, len(fakes)), "base rate": result.coverage.base_rate,
                             "reals (classifiers)": result.coverage.data_histogram, f"fakes of {final}": fakes})
    return pd.DataFrame({"class": _class_names(result, len(fakes)),
                         "reals": result.coverage.data_histogram, f"fakes of {final}": fakes})


def stick_table(result: DemoResult) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(held-out accuracy of the detector and of the classifiers per class, the detector's description)."""
    from benchmarks.ablations.stick import DOMAIN_DETECTOR
    from sgeval.classifiers import accuracy_rows, read_description
    from sgeval.detector import accuracy_table, read_detector_description

    detector = read_detector_description(result.stick.network_weights[DOMAIN_DETECTOR])
    rows = accuracy_table(detector)  # overall first, then one per class
    classifiers = {row["name"]: row for row in accuracy_rows(read_description(_classifiers_dir(result)))[1:]}
    names = ["overall", *_class_names(result, len(rows) - 1)]
    frame = pd.DataFrame({"held out": names, "detector accuracy": [row["accuracy"] for row in rows],
                          "base rate": [row["base_rate"] for row in rows],
                          "detector balanced accuracy": [row["balanced_accuracy"] for row in rows],
                          "flag": [row["flag"] or "" for row in rows],
                          "classifier balanced accuracy (one vs rest)": [None] + [
                              classifiers.get(row["name"], {}).get("balanced_accuracy") for row in rows[1:]]})
    return frame, detector


def _self_check_text(detector: dict[str, Any]) -> str:
    """One sentence on the detector's recorded self-check (`sgeval.stick_checks`)."""
    from sgeval.detector import sanity_status

    state, failed = sanity_status(detector)
    if state == "unchecked":
        return "Self-check: not recorded (the detector was trained before the check existed)."
    rows = {f"{row['condition']} {row['degree'] or ''}".strip(): row["fd"]
            for row in detector["sanity"]["degradations"]}
    numbers = ", ".join(f"{name} {value:.3g}" for name, value in rows.items())
    verdict = "passed" if state == "passed" else f"FAILED ({'; '.join(failed)}): read its numbers with care"
    return f"Self-check on {detector['sanity']['num_images']} held-out images (FD of halves and degraded halves: " \
           f"{numbers}): {verdict}."


def timings_table(result: DemoResult) -> pd.DataFrame:
    """Seconds per step of this invocation; steps whose work was done earlier say so."""
    steps = [[name, "done earlier" if name in result.timings.skipped else f"{seconds:.0f}"]
             for name, seconds in result.timings.seconds.items()]
    steps.append(["total (this invocation)", f"{result.timings.total:.0f}"])
    return pd.DataFrame(steps, columns=["step", "seconds"])


# ------------------------------------------------------------------------------------------------- writing


def write_figures(snapshot: Path, folder: Path) -> list[tuple[Path, str]]:
    """Sample grid, style mixing and stochastic variation of `snapshot` into `folder`: [(PNG, caption)]."""
    from benchmarks.ablations.figures import mixing_grid, sample_grid, stochastic_variation

    figures = [(sample_grid(snapshot, folder / "samples.png", count=64),
                f"Samples of the final snapshot ({snapshot.name}, G_ema, seeds 0-63, constant noise)")]
    mixing = mixing_grid(snapshot, folder / "style-mixing.png")
    if mixing is not None:
        figures.append((mixing, "Style mixing (StyleGAN Fig. 3): rows take their coarse styles (the first half of "
                                "the layers) from the column images"))
    figures.append((stochastic_variation(snapshot, folder / "stochastic-variation.png"),
                    "Stochastic variation (StyleGAN Fig. 4): one latent with 8 noise draws, then the per-pixel "
                    "standard deviation (brighter = more variation)"))
    return figures


def _metrics_section(doc: Document, result: DemoResult, results: pd.DataFrame, folder: Path) -> None:
    from sgeval.report import headline_columns, plot_metric_vs_kimg

    doc.add("h2", "Metrics per snapshot")
    doc.add("p", "Measured with the project's own domain detector, trained on the dataset's labels: `fd_domain` "
                 "(the FID formula on its features), `kd_domain` (KID's), `pr_domain` (precision/recall, k=3), PPL "
                 "with its LPIPS-style distance `lpips-domain` and no face crop, separability `ls` with classifiers "
                 "trained on the same labels. These are not FID or LPIPS and compare only with numbers of the same "
                 "detector (sha256 below). Every protocol is a quick variant, named with its counts "
                 f"(`{result.protocols[0]}`). Lower is better except precision and recall.")
    doc.add("p", result.official_note + ".")
    columns = headline_columns(results, result.protocols)
    plot = plot_metric_vs_kimg(results, folder / "metrics-vs-kimg.png", columns=columns)
    doc.add("image", (plot, "Metric against training progress, one panel per metric"))
    doc.add("table", metric_table(results, result.coverage, result.protocols))
    doc.add("p", f"Every result line (with counts, seeds, fingerprints and timing) is in `{result.run_dir}/metric-"
                 "*.jsonl`; `sgeval report " + str(result.run_dir) + "` tabulates them.")


def _document(result: DemoResult, folder: Path) -> Document:
    from sgeval.report import load_results

    final = result.snapshots[-1]
    doc = Document(f"Demo: {result.arch} {CONFIG} on {result.data.path.name}, {result.budget.name} budget")
    if result.data.warning:
        doc.add("warning", result.data.warning)
    doc.add("p", f"Data: {result.data.note}")
    doc.add("p", f"Budget `{result.budget.name}`: {result.budget.describe()}. Run directory `{result.run_dir}`, "
                 f"final snapshot `{final.name}`.")
    doc.add("h2", "Samples")
    for path, caption in write_figures(final, folder):
        doc.add("image", (path, caption))
    _metrics_section(doc, result, load_results(result.run_dir), folder)
    doc.add("h2", "Class coverage" if result.coverage.kind == "classes" else "Attribute coverage")
    if result.coverage.kind == "classes":
        doc.add("p", "Every fake gets the class of its nearest real image on 8x8 pixels; `class_coverage` above is "
                     "the normalised entropy of that class histogram (1 = all classes equally often; the reals score "
                     f"{result.coverage.entropy['data']:.3f}). It tells coverage, not quality.")
    else:
        summary = result.coverage.summaries.get(final.name, {})
        doc.add("p", "How often the trained classifiers find each attribute on the fakes, beside the reals; mean "
                     f"absolute difference {summary.get('mean_abs_difference', float('nan')):.3f}; never produced: "
                     f"{', '.join(summary.get('never', [])) or 'none'}. It tells coverage, not quality.")
    doc.add("table", coverage_table(result))
    accuracy, detector = stick_table(result)
    doc.add("h2", "Measuring stick")
    doc.add("p", f"Domain detector `{result.stick.network_weights['domain']}` (sha256 `{detector['weights_sha256']}`, "
                 f"{detector.get('num_train')} images trained, {detector.get('num_held_out')} held out) and "
                 f"separability classifiers `{result.stick.classifiers}`: held-out accuracy.")
    doc.add("table", accuracy)
    doc.add("p", _self_check_text(detector))
    _timings_section(doc, result)
    return doc


def _timings_section(doc: Document, result: DemoResult) -> None:
    speed, trained = training_speed(result.run_dir)
    doc.add("h2", "Timings and command")
    doc.add("table", timings_table(result))
    if speed is not None and trained is not None:
        doc.add("p", f"Training, over every session of the run: {trained / 60:.1f} min, median {speed:.1f} s/kimg.")
    doc.add("p", "This report was written by:")
    doc.add("code", result.command)
    doc.add("p", "which trained with the equivalent of:")
    doc.add("code", result.train_command)


def write_report(result: DemoResult, folder: Path) -> tuple[Path, Path]:
    """Write the figures, `report.md` and `report.html` into `folder` (atomically); returns (md, html)."""
    from sgeval.atomic import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    doc = _document(result, folder)
    markdown, page = folder / "report.md", folder / "report.html"
    atomic_write_text(markdown, doc.markdown())
    atomic_write_text(page, doc.html())
    return markdown, page
