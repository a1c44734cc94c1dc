"""`python -m benchmarks.ablations` (what `nox -s ablations` runs): train, evaluate and report the StyleGAN
ablation suites. Interrupt it at any point and run the same command again: finished runs and evaluations are
skipped, an interrupted training resumes (see benchmarks/ablations/run.py).

    python -m benchmarks.ablations                          # all suites, --scale cpu (about 2 hours on 2 cores)
    python -m benchmarks.ablations --scale quick            # smoke run (minutes)
    python -m benchmarks.ablations --suite mixing --seeds 5
    python -m benchmarks.ablations --scale paper --data ffhq.zip --dry-run     # the plan and the weights it needs
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.ablations.config import FASHION_MNIST, SCALES, SUITES, Row, Scale, run_key, suite_rows, training_preset

if TYPE_CHECKING:
    from benchmarks.ablations.run import RunRecord

DEFAULT_OUT = Path("benchmarks") / "results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=[*SUITES, "all"], help="suite(s) to run [all]")
    parser.add_argument("--scale", choices=list(SCALES), default="cpu", help="cpu (default), quick or paper")
    parser.add_argument("--data", type=Path, default=None,
                        help="labelled dataset zip [cpu/quick: built from Debian's dataset-fashion-mnist]")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder [{DEFAULT_OUT}]")
    parser.add_argument("--seeds", type=int, default=None, help="runs per row [the scale's]")
    parser.add_argument("--kimg", type=float, default=None, help="training length of every run [the scale's]")
    parser.add_argument("--num-gen", type=int, default=None, help="generated images / PPL pairs [the scale's]")
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                        help="paper scale: a detector or distance weights file (inception-v3-tf=..., "
                             "lpips-vgg16-nvidia=vgg16.pt)")
    parser.add_argument("--classifiers", type=Path, default=None,
                        help="paper scale: attribute classifier folder for separability")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--report-only", action="store_true",
                        help="write the reports of the runs finished so far; train and evaluate nothing")
    parser.add_argument("--no-figures", action="store_true", help="skip sample, mixing and variation figures")
    parser.add_argument("--progress", action="store_true", help="progress bars of the evaluations")
    return parser.parse_args(argv)


def _scale(args: argparse.Namespace) -> Scale:
    scale = SCALES[args.scale]
    changes = {"seeds": args.seeds, "kimg": args.kimg, "num_gen": args.num_gen}
    return dataclasses.replace(scale, **{key: value for key, value in changes.items() if value is not None})


def _dataset(args: argparse.Namespace, scale: Scale) -> Path:
    """The dataset zip; at the CPU scales built once from Debian's Fashion-MNIST package."""
    if args.data is not None:
        if not args.data.exists():
            raise SystemExit(f"--data {args.data}: no such file or folder")
        return args.data
    if scale.stick != "domain":
        raise SystemExit("--scale paper needs --data (e.g. an FFHQ zip made with `sgmodels dataset create`)")
    target = args.out / "data" / f"fashion-mnist{scale.resolution}.zip"
    if target.is_file():
        return target
    if not FASHION_MNIST.is_dir():
        raise SystemExit(f"{FASHION_MNIST} is missing: install Debian's package (`apt-get install "
                         "dataset-fashion-mnist`) or give a labelled dataset zip with --data")
    subprocess.run([sys.executable, "-m", "sgmodels", "dataset", "create", str(FASHION_MNIST), str(target),
                    "--resolution", str(scale.resolution)], check=True)
    return target


def _plan(suites: list[str], scale: Scale, data: Path | None) -> str:
    rows = suite_rows(suites)
    described = [f"  {row.key:<16} {row.label:<40} {_trained_as(row, scale)}" for row in rows]  # checks every row
    configurations = len({run_key(row, scale) for row in rows})
    lines = [f"scale {scale.name}: {scale.notes}",
             f"data: {data or '(to be built)'}; {len(rows)} rows, {configurations} configurations to train x "
             f"{scale.seeds} seeds = {scale.seeds * configurations} runs of {scale.kimg:g} kimg at "
             f"{scale.resolution}x{scale.resolution}",
             f"measuring stick: {scale.stick}; {scale.num_gen} generated images / PPL pairs, {scale.num_ls} "
             "separability samples"]
    lines += described
    if scale.stick == "official":
        lines.append("weights: inception-v3-tf (FID), lpips-vgg16-nvidia = vgg16.pt (PPL), CelebA-HQ attribute "
                     "classifiers (separability); `sgeval weights list` shows where they are looked for")
    return "\n".join(lines)


def _trained_as(row: Row, scale: Scale) -> str:
    """The preset a row trains with at this scale, or the row whose runs it shares; checks the configuration."""
    try:
        key = run_key(row, scale)
    except ValueError as error:
        raise SystemExit(f"{row.key} cannot be trained at the {scale.name} scale: {error}") from None
    arch, config = training_preset(row, scale)
    described = row.describe().replace(row.arch, f"{arch}-{config}", 1)
    return described if key == row.key else f"{described}: the runs of {key}"


def _figures(records: Sequence[RunRecord], out: Path) -> None:
    from benchmarks.ablations.figures import mixing_grid, sample_grid, stochastic_variation

    first = {record.row.key: record for record in records if record.seed == 0}
    for key in ("F-mix90", "F-noise-none", "F-noise-coarse", "F-noise-fine"):
        if key in first:
            sample_grid(first[key].snapshot, out / "placement" / f"samples-{key}.png")
    if "F-mix90" in first:
        stochastic_variation(first["F-mix90"].snapshot, out / "placement" / "stochastic-variation.png")
        mixing_grid(first["F-mix90"].snapshot, out / "mixing" / "style-mixing.png")


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    suites = list(SUITES) if not args.suite or "all" in args.suite else list(dict.fromkeys(args.suite))
    scale = _scale(args)
    if args.dry_run:
        print(_plan(suites, scale, args.data))
        return
    from benchmarks.ablations.report import write_suite_report
    from benchmarks.ablations.run import finished_records, run_suites
    from benchmarks.ablations.stick import prepare_stick
    from sgmodels.fileio import check_writable_folder

    try:  # hours of runs must not start on an output folder that cannot take them
        check_writable_folder(args.out)
    except OSError as error:
        raise SystemExit(str(error)) from None
    started = time.perf_counter()
    data = _dataset(args, scale)
    weights = dict(item.split("=", 1) for item in args.weights)
    stick = prepare_stick(scale, data, args.out, official_weights={k: Path(v) for k, v in weights.items()},
                          official_classifiers=args.classifiers)
    print(_plan(suites, scale, data), file=sys.stderr)
    if args.report_only:
        records = finished_records(suites, scale, args.out)
    else:
        records = run_suites(suites, scale, data, args.out, stick, progress=args.progress)
    if not args.no_figures:
        _figures(records, args.out)
    minutes = (time.perf_counter() - started) / 60
    command = "python -m benchmarks.ablations " + shlex.join(argv if argv is not None else sys.argv[1:])
    expected = len(suite_rows(suites)) * scale.seeds
    header = (f"Command: `{command.strip()}`; this invocation took {minutes:.1f} min (runs trained and evaluated "
              f"by earlier invocations of a resumed suite are not counted). Finished runs: {len(records)} of "
              f"{expected}" + ("" if len(records) == expected else " (a partial report: the suite is not done)") + ".")
    for name in suites:
        folder = write_suite_report(name, records, stick, scale, args.out, header)
        print(f"{name}: {folder / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
