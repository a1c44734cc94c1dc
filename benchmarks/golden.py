"""A golden set of sgeval's results: every protocol family on tiny fixtures, recorded before a restructuring and
checked after it (`nox -s golden -- record FILE`, then `nox -s golden -- check FILE`).

The fixtures are built from seeds alone (random images, random-weight networks; nothing is trained or downloaded):
a labelled 16x16 dataset zip, a run folder with two StyleGAN2 snapshots, a random Inception file in torch-fidelity's
layout, and a random domain detector and classifier set written through the project's own writers. The families,
each through the `sgeval` CLI with `--json`, as a user runs them:

* Inception: fid50k_full, fid50k (x-flip rule, N-1 covariance), kid50k_full, is50k over both snapshots of the run
  folder (`--all-snapshots`), one weights file named once;
* domain detector: fd_domain, kd_domain, pr_domain; mixing FD (`--mix-latents 2`);
* PPL on the domain distance: W end-point, Z full, and an `_ada` variant (torch.lerp);
* linear separability (`sgeval ls`) and LPIPS projection (`sgeval project`).

Every record is kept whole except what legitimately changes between runs: timings, timestamps, package versions and
the folder the fixtures were built in. `check` compares every other field exactly (`--rel 0`, the default: the
same machine must give the same bits) or floats within a relative tolerance (another CPU kind rounds differently).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["compare", "main", "record"]

_VOLATILE_KEYS = {"timestamp", "total_time", "total_time_str", "timing_s", "versions", "seconds", "elapsed_s"}


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


def _write_data(path: Path, count: int = 24, size: int = 16) -> Path:
    """A dataset zip of `count` random RGB images with two classes (dataset.json), from seed 0."""
    import io
    import zipfile

    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(0)
    labels = []
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count):
            buffer = io.BytesIO()
            PIL.Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
            archive.writestr(f"img{index:03d}.png", buffer.getvalue())
            labels.append([f"img{index:03d}.png", index % 2])
        archive.writestr("dataset.json", json.dumps({"labels": labels, "class_names": ["even", "odd"]}))
    return path


def _write_run(folder: Path, data: Path) -> Path:
    """Two random StyleGAN2 snapshots (seeds 0 and 1) whose metadata records `data` as the training set."""
    import torch

    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    for kimg, seed in ((1, 0), (2, 1)):
        torch.manual_seed(seed)
        G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8,
                                  map_layers=2)
        save_snapshot(folder / f"network-snapshot-{kimg:06d}.safetensors", {"G_ema": G},
                      metadata={"kimg": float(kimg), "training_set": {"path": str(data), "resolution": 16,
                                                                      "xflip": False}})
    return folder


def _write_inception(path: Path) -> Path:
    import torch

    from benchmarks.common import he_random_state
    from sgeval.features.inception import InceptionV3TF

    torch.manual_seed(0)
    torch.save(he_random_state(InceptionV3TF()), path)
    return path


def _write_described(folder: Path, kind: str) -> Path:
    """A random-weight domain detector or classifier set for the dataset (2 classes, 16x16 RGB)."""
    import torch

    from sgeval import detector
    from sgeval.classifiers import AttributeClassifier, save_described_tensors

    torch.manual_seed(1 if kind == "detector" else 2)
    architecture = {"resolution": 16, "channels": 3, "num_attributes": 2, "channel_base": 128, "channel_max": 16}
    model = AttributeClassifier(**architecture)
    if kind == "detector":
        description = {"format": detector.FORMAT, "architecture": architecture, "names": ["even", "odd"],
                       "label_kind": "classes", "feature_dim": 16, "held_out_accuracy": {"overall": 0.5},
                       "input": {"resolution": 16, "channels": 3}, "dataset": {"fingerprint": "golden"}}
        save_described_tensors(model, description, folder / detector.WEIGHTS_FILE, folder / detector.DESCRIPTION_FILE)
    else:
        description = {"format": "sgeval-classifiers/v1", "architecture": architecture,
                       "attributes": ["even", "odd"], "label_kind": "classes",
                       "held_out_accuracy": {"even": 0.5, "odd": 0.5}}
        save_described_tensors(model, description, folder / "classifiers.safetensors", folder / "classifiers.json")
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Families


def _commands(work: Path) -> Iterator[tuple[str, list[str]]]:
    data, run = work / "data.zip", work / "run"
    snapshot = run / "network-snapshot-000002.safetensors"
    inception, det, classifiers = work / "inception.pth", work / "detector", work / "classifiers"
    common = ["--json", "--no-progress", "--no-cache"]
    yield "inception", ["calc", "--network", str(run), "--all-snapshots", "--metrics",
                        "fid50k_full,fid50k,kid50k_full,is50k", "--num-gen", "10", "--num-real", "12",
                        "--detector-weights", f"inception-v3-tf={inception}", *common]
    domain = ["--detector-weights", f"domain={det}"]
    yield "domain", ["calc", "--network", str(snapshot), "--metrics", "fd_domain,kd_domain,pr_domain",
                     "--num-gen", "12", *domain, *common]
    yield "mixing", ["calc", "--network", str(snapshot), "--metrics", "fd_domain", "--num-gen", "12",
                     "--mix-latents", "2", *domain, *common]
    yield "ppl", ["calc", "--network", str(snapshot), "--metrics",
                  "ppl_wend+nocrop+lpips-domain,ppl_zfull+nocrop+lpips-domain,ppl_wfull_ada+nocrop+lpips-domain",
                  "--num-gen", "16", "--detector-weights", f"lpips-domain={det}", *common]
    yield "ls", ["ls", str(snapshot), "--classifiers", str(classifiers), "--num-samples", "40", *common]
    yield "projection", ["project", str(snapshot), "--targets", str(data), "--outdir", str(work / "projected"),
                         "--steps", "3", "--max-targets", "2", "--distance", "lpips-domain", "--distance-weights",
                         str(det / "detector.safetensors"), "--json", "--no-progress"]


def _records(output: str) -> list[Any]:
    """The JSON records a command printed (a list, one object, or one object per line)."""
    text = output.strip()
    try:
        parsed = json.loads(text)
        return parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.startswith(("{", "["))]


def _normalised(value: Any, work: str) -> Any:
    """The record without what changes between identical runs (timings, versions, the fixture folder)."""
    if isinstance(value, dict):
        return {key: _normalised(item, work) for key, item in sorted(value.items()) if key not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalised(item, work) for item in value]
    if isinstance(value, str):
        return value.replace(work, "<work>")
    return value


def record(out: Path | None = None, work: Path | None = None) -> dict[str, list[Any]]:
    """Build the fixtures (in `work`, or a temporary folder), run every family, and return (and write to `out`)
    {family: [normalised records]}. Raises RuntimeError naming the family whose command failed."""
    from click.testing import CliRunner

    from sgeval.cli import main as sgeval_main

    with tempfile.TemporaryDirectory(prefix="sgeval-golden-") as scratch:
        folder = Path(work or scratch).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        data = _write_data(folder / "data.zip")
        _write_run(folder / "run", data)
        _write_inception(folder / "inception.pth")
        _write_described(folder / "detector", "detector")
        _write_described(folder / "classifiers", "classifiers")
        golden: dict[str, list[Any]] = {}
        for family, args in _commands(folder):
            result = CliRunner().invoke(sgeval_main, args, catch_exceptions=False)
            if result.exit_code != 0:
                raise RuntimeError(f"golden family {family!r}: `sgeval {' '.join(args)}` failed:\n{result.output}")
            golden[family] = _normalised(_records(result.stdout), str(folder))
            print(f"golden: {family}: {len(golden[family])} record(s)", file=sys.stderr, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return golden


def compare(expected: Any, actual: Any, rel: float = 0.0, where: str = "") -> list[str]:
    """Differences between two golden sets: every field equal, floats within `rel` (0: bit for bit)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        differences = [f"{where}.{key}: missing" for key in sorted(set(expected) - set(actual))]
        differences += [f"{where}.{key}: unexpected" for key in sorted(set(actual) - set(expected))]
        for key in sorted(set(expected) & set(actual)):
            differences += compare(expected[key], actual[key], rel, f"{where}.{key}")
        return differences
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(expected)} items, now {len(actual)}"]
        pairs = enumerate(zip(expected, actual, strict=True))
        return [line for i, (a, b) in pairs for line in compare(a, b, rel, f"{where}[{i}]")]
    both_numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (expected, actual))
    if both_numbers and isinstance(expected, float) and rel > 0:
        if math.isclose(expected, actual, rel_tol=rel, abs_tol=0.0) or (math.isnan(expected) and math.isnan(actual)):
            return []
    elif expected == actual or (isinstance(expected, float) and isinstance(actual, float)
                                and math.isnan(expected) and math.isnan(actual)):
        return []
    return [f"{where}: {expected!r}, now {actual!r}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.golden", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("file", type=Path, help="the golden set (JSON) to write or to check against")
    parser.add_argument("--rel", type=float, default=0.0, help="relative tolerance of floats in check [0: exact]")
    parser.add_argument("--work", type=Path, default=None, help="build the fixtures here [a temporary folder]")
    args = parser.parse_args(argv)
    if args.action == "record":
        record(args.file, args.work)
        print(f"golden set written to {args.file}")
        return 0
    expected = json.loads(args.file.read_text(encoding="utf-8"))
    differences = compare(expected, record(None, args.work), args.rel)
    for line in differences[:50]:
        print(line)
    print(f"{len(differences)} difference(s) from {args.file}" if differences else f"identical to {args.file}")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
