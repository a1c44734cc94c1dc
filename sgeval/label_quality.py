"""How well a trained labeller (the domain detector, the attribute classifiers) knows its labels, measured honestly.

Plain accuracy hides a network that learned "never": on an attribute present on 3 % of the images, predicting
"absent" everywhere scores 0.97. So every accuracy is given beside

* the **base rate**: the accuracy of the best constant prediction on the same held-out images (for a binary
  attribute max(p, 1 - p) with p its positive share; for classes the share of the most common class), and
* the **balanced accuracy**: the mean of the per-class recalls ((TPR + TNR) / 2 for a binary attribute), which is
  0.5 for every constant prediction and 1 for a perfect one, whatever the imbalance.

A label is **flagged** when the held-out data cannot show that the network learned it:
* "chance": balanced accuracy below `CHANCE_MARGIN` (0.55): its decisions carry (almost) no information;
* "below base rate": informative decisions, but less accurate than the constant prediction (it over-predicts a
  rare attribute; its logits still rank, its decisions mislabel);
* "untested": the held-out images hold only one value of it, so nothing about it can be measured.

The summary ("overall") is the plain accuracy over all decisions, the mean base rate and the mean balanced
accuracy over the tested labels (for classes: top-1 accuracy, the majority-class share and the mean recall).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["CHANCE_MARGIN", "accuracy_rows", "attribute_quality", "class_quality", "flagged_names", "quality_table"]

CHANCE_MARGIN = 0.55  # balanced accuracy below this: the labeller's decisions are near chance


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _binary_row(decided: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Accuracy, base rate, balanced accuracy, counts and flag of one binary label: decisions and truths bool [M]."""
    positives, count = int(truth.sum()), int(truth.size)
    accuracy = float((decided == truth).mean()) if count else math.nan
    share = positives / count if count else math.nan
    base_rate = max(share, 1 - share) if count else math.nan
    tested = 0 < positives < count
    balanced = (float(decided[truth].mean()) + float((~decided[~truth]).mean())) / 2 if tested else math.nan
    if not tested:
        flag = "untested"
    elif balanced < CHANCE_MARGIN:
        flag = "chance"
    elif accuracy <= base_rate:
        flag = "below base rate"
    else:
        flag = None
    return {"accuracy": _none_if_nan(accuracy), "base_rate": _none_if_nan(base_rate),
            "balanced_accuracy": _none_if_nan(balanced), "positives": positives, "count": count,
            "predicted_positives": int(decided.sum()), "flag": flag}


def attribute_quality(logits: np.ndarray, targets: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Held-out quality of binary attributes: logits float [M, A] (decision: >= 0) against targets bool [M, A].

    Returns {"overall": {accuracy, base_rate, balanced_accuracy, count}, "per_name": {name: row}, "flagged":
    {name: reason}} with the rows and flags of the module docstring (JSON-ready; None where undefined).
    """
    decided, truth = np.asarray(logits) >= 0, np.asarray(targets).astype(bool)
    per_name = {name: _binary_row(decided[:, k], truth[:, k]) for k, name in enumerate(names)}
    tested = [row for row in per_name.values() if row["balanced_accuracy"] is not None]
    overall = {"accuracy": _none_if_nan(float((decided == truth).mean()) if truth.size else math.nan),
               "base_rate": _mean([row["base_rate"] for row in per_name.values()]),
               "balanced_accuracy": _mean([row["balanced_accuracy"] for row in tested]),
               "count": int(truth.shape[0])}
    return {"overall": overall, "per_name": per_name, "flagged": flagged_names(per_name)}


def class_quality(logits: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Held-out quality of a K-class labeller: logits float [M, K] (decision: argmax) against class indices [M].

    Per class the one-vs-rest row of the module docstring ("is class k": predicted k against label k) plus its
    recall; overall top-1 accuracy, the majority-class share as base rate and the mean recall over the classes
    present as balanced accuracy.
    """
    predicted, labels = np.asarray(logits).argmax(axis=1), np.asarray(labels)
    per_name = {}
    for k, name in enumerate(names):
        row = _binary_row(predicted == k, labels == k)
        row["recall"] = float((predicted[labels == k] == k).mean()) if (labels == k).any() else None
        per_name[name] = row
    counts = np.bincount(labels, minlength=len(names)) if labels.size else np.zeros(len(names), dtype=np.int64)
    recalls = [row["recall"] for row in per_name.values() if row["recall"] is not None]
    overall = {"accuracy": float((predicted == labels).mean()) if labels.size else None,
               "base_rate": float(counts.max() / labels.size) if labels.size else None,
               "balanced_accuracy": _mean(recalls), "count": int(labels.size)}
    # A class-level flag reads the one-vs-rest row; the overall one compares top-1 with chance among K classes.
    return {"overall": overall, "per_name": per_name, "flagged": flagged_names(per_name)}


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None


def flagged_names(per_name: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """{name: reason} of the flagged labels of a per-name table, in its order."""
    return {name: str(row["flag"]) for name, row in per_name.items() if row.get("flag")}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def accuracy_rows(quality: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """Printable rows {name, accuracy, base_rate, balanced_accuracy, positives, count, flag} of a recorded quality
    (from an untrusted description: anything that is not a number reads as NaN), the overall row first.

    Descriptions written before base rates were recorded hold a bare accuracy per name; those rows have NaN base
    rates and no flag."""
    record = quality if isinstance(quality, dict) else {}
    overall = record.get("overall")
    recorded = record.get("per_name")
    per_name: dict[str, Any] = recorded if isinstance(recorded, dict) else {}

    def row(name: str, value: Any) -> dict[str, Any]:
        entry = value if isinstance(value, dict) else {"accuracy": value}
        flag = entry.get("flag")
        return {"name": name, "accuracy": _number(entry.get("accuracy")), "base_rate": _number(entry.get("base_rate")),
                "balanced_accuracy": _number(entry.get("balanced_accuracy")),
                "positives": entry.get("positives") if isinstance(entry.get("positives"), int) else None,
                "count": entry.get("count") if isinstance(entry.get("count"), int) else None,
                "flag": flag if isinstance(flag, str) else None}

    return [row("overall", overall)] + [row(name, per_name.get(name)) for name in names]


def quality_table(rows: Sequence[Mapping[str, Any]], first_column: str = "held out") -> str:
    """Plain-text table of `accuracy_rows` output: name, accuracy, base rate, balanced accuracy, positives of the
    held-out images, flag; then a line naming the flagged labels (or saying there are none)."""
    from tabulate import tabulate

    def shown(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.3f}"

    body = [[row["name"], shown(row["accuracy"]), shown(row["base_rate"]), shown(row["balanced_accuracy"]),
             "" if row["positives"] is None else f"{row['positives']}/{row['count']}", row["flag"] or ""]
            for row in rows]
    text = tabulate(body, headers=[first_column, "accuracy", "base rate", "balanced", "positives", "flag"],
                    tablefmt="simple")
    flagged = [row["name"] for row in rows[1:] if row["flag"]]
    if flagged:
        text += (f"\n{len(flagged)} of {len(rows) - 1} flagged (balanced accuracy near 0.5 = no better than a "
                 f"constant guess, or below the base rate): {', '.join(flagged)}")
    elif any(row["base_rate"] == row["base_rate"] for row in rows[1:]):
        text += "\nno label flagged: every one is learned better than its base rate"
    return text
