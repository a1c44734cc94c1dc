"""Which rare-label loss weighting should the measuring stick train with? Measured on an imbalanced dataset.

    python -m benchmarks.label_balance [--count 5000] [--seeds 0 1] [--out benchmarks/results/label-balance.md]

Renders the factor dataset (`sgmodels dataset factors`: seven independent binary factors, base rates 50 % down to
4 %), then trains the domain detector (its defaults) and the attribute classifiers (their defaults, fewer epochs
with --classifier-epochs) once per `--balance` mode (none, sqrt, full) and seed, and reports per attribute the
held-out balanced accuracy, the flags, and the detector's self-check, with the training time. The default of
`sgeval.classifiers.TrainOptions.balance` is the mode this table supports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tabulate

MODES = ("none", "sqrt", "full")


def _train(kind: str, data: Path, folder: Path, balance: str, seed: int,
           classifier_epochs: int | None) -> dict[str, Any]:
    from sgeval.classifiers import TrainOptions, train_classifiers
    from sgeval.detector import DEFAULT_OPTIONS, train_detector

    started = time.perf_counter()
    if kind == "detector":
        description = train_detector(data, folder, dataclasses.replace(DEFAULT_OPTIONS, balance=balance, seed=seed),
                                     progress=False)
    else:
        options = TrainOptions(balance=balance, seed=seed)
        if classifier_epochs:
            options = dataclasses.replace(options, epochs=classifier_epochs)
        description = train_classifiers(data, folder, options, progress=False)
    quality = description["held_out_accuracy"]
    return {"kind": kind, "balance": balance, "seed": seed, "seconds": time.perf_counter() - started,
            "balanced": {name: row["balanced_accuracy"] for name, row in quality["per_name"].items()},
            "overall_balanced": quality["overall"]["balanced_accuracy"],
            "overall_accuracy": quality["overall"]["accuracy"], "flagged": quality["flagged"],
            "sanity": (description.get("sanity") or {}).get("passed"),
            "epochs": description["training"]["epochs"], "num_train": description["num_train"]}


def _markdown(rows: Sequence[dict[str, Any]], count: int) -> str:
    names = list(rows[0]["balanced"])
    lines = [f"# Rare-label weighting of the measuring stick ({count} factor images, 32x32)", "",
             "Held-out balanced accuracy per attribute (0.5 = a constant guess), flags and the detector's self-check; "
             "`python -m benchmarks.label_balance` reproduces it.", ""]
    table = [[row["kind"], row["balance"], row["seed"], *(f"{row['balanced'][name]:.3f}" if row["balanced"][name]
                                                         is not None else "-" for name in names),
              f"{row['overall_balanced']:.3f}", f"{row['overall_accuracy']:.3f}", len(row["flagged"]),
              {True: "passed", False: "FAILED", None: ""}[row["sanity"]], f"{row['seconds']:.0f}"] for row in rows]
    headers = ["network", "balance", "seed", *names, "mean balanced", "accuracy", "flagged", "self-check", "s"]
    lines.append(tabulate.tabulate(table, headers=headers, tablefmt="github"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="factor images to render [5000]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds [0]")
    parser.add_argument("--networks", nargs="+", default=["detector", "classifiers"],
                        choices=["detector", "classifiers"])
    parser.add_argument("--classifier-epochs", type=int, default=None, help="classifier epochs [their default]")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table (and a .json beside it)")
    args = parser.parse_args(argv)
    from sgmodels.data.factors import write_factor_dataset

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data = write_factor_dataset(Path(scratch) / "factors.zip", args.count, progress=False)
        for kind in args.networks:
            for seed in args.seeds:
                for balance in MODES:
                    rows.append(_train(kind, data, Path(scratch) / f"{kind}-{balance}-{seed}", balance, seed,
                                       args.classifier_epochs))
                    print(json.dumps(rows[-1]), flush=True)
    text = _markdown(rows, args.count)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
