"""`python -m benchmarks.demo` (what `nox -s demo` runs): the whole offline pipeline in one resumable command.

    python -m benchmarks.demo                    # StyleGAN2 cpu32, 40 kimg: 10-15 minutes on 2 CPU cores
    python -m benchmarks.demo --long             # the README's quality run: 120 kimg
    python -m benchmarks.demo --arch stylegan    # StyleGAN v1
    python -m benchmarks.demo --kimg 8           # a quicker look (snapshots up to 8 kimg)

Steps (each skipped when an earlier invocation finished it; run the same command again after an interruption):
data (Fashion-MNIST 32x32, or scikit-learn's digits when it cannot be had) -> measuring stick (domain detector and
separability classifiers, trained once) -> training (resumes) -> metrics of every snapshot -> class coverage ->
report (`out/demo/report/report.md` and the self-contained `report.html`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.ablations.stick import MeasuringStick
from benchmarks.demo.budget import BUDGETS, Budget, domain_protocols, official_fid
from benchmarks.demo.data import FASHION_MNIST, prepare_data
from benchmarks.demo.report import DemoResult, metric_table, write_report
from benchmarks.demo.run import (
    Timings,
    coverage_of,
    log,
    measure_snapshots,
    snapshots_of,
    train_command,
    train_demo,
    train_options,
)

__all__ = ["DemoSettings", "main", "run_demo"]

DEFAULT_OUT = Path("out") / "demo"
ARCHS = ("stylegan2", "stylegan")


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What one demo invocation does (the command line, parsed)."""

    arch: str = "stylegan2"  # sgmodels preset family of the cpu32 run
    budget: Budget = BUDGETS["default"]
    seed: int = 0  # training seed (the measuring stick always uses seed 0, so runs share it)
    out: Path = DEFAULT_OUT  # data, stick, runs and reports
    data: Path | None = None  # a labelled dataset zip instead of Fashion-MNIST
    fashion_mnist: Path = FASHION_MNIST  # the IDX folder of Debian's dataset-fashion-mnist
    install: bool = True  # try `apt-get install dataset-fashion-mnist` when the folder is missing
    command: str = "python -m benchmarks.demo"  # recorded in the report

    @property
    def report_dir(self) -> Path:
        """`<out>/report` for the default run; other architectures and budgets get their own folder."""
        default = (self.arch, self.budget.name) == ("stylegan2", "default")
        return self.out / ("report" if default else f"report-{self.arch}-{self.budget.name}")


def _stick_is_trained(work: Path) -> bool:
    return (work / "stick" / "detector" / "detector.json").is_file() and \
        (work / "stick" / "classifiers" / "classifiers.json").is_file()


def _prepare_stick(budget: Budget, data: Path, work: Path, timings: Timings) -> MeasuringStick:
    """The domain detector and classifiers of `data` in `<work>/stick` (benchmarks/ablations/stick.py)."""
    from benchmarks.ablations.config import SCALES
    from benchmarks.ablations.stick import prepare_stick

    if _stick_is_trained(work):
        timings.mark_done_earlier("measuring stick")
    scale = SCALES["quick"].with_changes(detector_options=budget.detector_options,
                                         classifier_options=budget.classifier_options)
    return prepare_stick(scale, data, work, seed=0)


def _until_budget(snapshots: list[Path], kimg: float) -> list[Path]:
    """The snapshots a budget of `kimg` covers (a run trained further by a longer invocation has later ones)."""
    from sgmodels.training.options import snapshot_kimg

    return [path for path in snapshots if (snapshot_kimg(path) or 0.0) <= kimg + 1e-9]


def run_demo(settings: DemoSettings) -> tuple[DemoResult, Path, Path]:
    """Every step of the demo (see the module docstring); returns (what was found, report.md, report.html)."""
    timings, budget = Timings(), settings.budget
    with timings.step("data"):
        data = prepare_data(settings.out, settings.fashion_mnist, settings.install, settings.data)
    work = settings.out / data.path.stem  # stick and runs belong to the data they were trained on
    with timings.step("measuring stick"):
        stick = _prepare_stick(budget, data.path, work, timings)
    options = train_options(data.path, work / "runs" / budget.name, settings.arch, budget, settings.seed)
    with timings.step("training"):
        run_dir, trained = train_demo(options, budget.kimg)
    if not trained:
        timings.mark_done_earlier("training")
    snapshots = _until_budget(snapshots_of(run_dir), budget.kimg)
    protocols = domain_protocols(budget, stick.ppl_options)
    fid, official_note = official_fid(budget)
    log(official_note)
    with timings.step("metrics"):
        if measure_snapshots(snapshots, protocols, [fid] if fid else [], stick, data.path, settings.arch) == 0:
            timings.mark_done_earlier("metrics")
    with timings.step("class coverage"):
        coverage = coverage_of(data.path, snapshots, budget.num_coverage, classifiers=stick.classifiers)
    result = DemoResult(settings.command, settings.arch, budget, data, train_command(options), run_dir, snapshots,
                        stick, protocols, official_note, coverage, timings)
    with timings.step("report"):
        markdown, page = write_report(result, settings.report_dir)
    return result, markdown, page


def _summary(result: DemoResult, markdown: Path, page: Path) -> str:
    """The closing lines: data, the final snapshot's numbers, time, where the report is."""
    from sgeval.report import load_results

    final = metric_table(load_results(result.run_dir), result.coverage, result.protocols).iloc[-1]
    numbers = "\n".join(f"  {name:<40} {value:.4g}" for name, value in final.items()
                        if name not in ("snapshot", "kimg") and value == value)
    lines = ["", "=" * 100]
    if result.data.warning:
        lines.append(result.data.warning)
    lines += [f"data: {result.data.path} ({result.data.source})", f"final snapshot: {result.snapshots[-1]}",
              numbers, f"this invocation: {result.timings.total / 60:.1f} min", f"report: {markdown}",
              f"        {page} (self-contained)", "=" * 100]
    return "\n".join(lines)


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, default="stylegan2", help="generator family [stylegan2]")
    parser.add_argument("--long", action="store_true", help="the quality run: 120 kimg (about 25 minutes of "
                                                            "training on 2 cores)")
    parser.add_argument("--kimg", type=float, default=None, help="training length [40; --long 120]")
    parser.add_argument("--tick-kimg", type=float, default=None, help="kimg per progress line [4]")
    parser.add_argument("--snap", type=int, default=None, help="ticks between measured snapshots [2]")
    parser.add_argument("--num-gen", type=int, default=None, help="generated images per metric [2000]")
    parser.add_argument("--seed", type=int, default=0, help="training seed [0]")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder [{DEFAULT_OUT}]")
    parser.add_argument("--data", type=Path, default=None, help="a labelled dataset zip instead of Fashion-MNIST")
    parser.add_argument("--fashion-mnist", type=Path, default=FASHION_MNIST,
                        help=f"Fashion-MNIST IDX folder [{FASHION_MNIST}]")
    parser.add_argument("--no-install", action="store_true",
                        help="never try `apt-get install dataset-fashion-mnist` (fall back to the digits at once)")
    return parser.parse_args(list(argv))


def settings_from(argv: Sequence[str]) -> DemoSettings:
    """DemoSettings of a command line."""
    args = _arguments(argv)
    budget = BUDGETS["long" if args.long else "default"]
    changes = {"kimg": args.kimg, "tick_kimg": args.tick_kimg, "snap": args.snap, "num_gen": args.num_gen}
    budget = dataclasses.replace(budget, **{key: value for key, value in changes.items() if value is not None})
    command = " ".join(["python -m benchmarks.demo", shlex.join(argv)]).strip()
    return DemoSettings(args.arch, budget, args.seed, args.out, args.data, args.fashion_mnist, not args.no_install,
                        command)


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from(sys.argv[1:] if argv is None else argv)
    result, markdown, page = run_demo(settings)
    print(_summary(result, markdown, page), flush=True)
