"""Training on shared cores: how the OpenMP wait policy and the thread count behave when another process competes.

    python -m benchmarks.bench_threads [--steps 6] [--batch 16] [--out FILE]

Each measurement is a fresh worker process (the OpenMP runtime reads its environment once, when torch loads it)
that times training-like steps of the StyleGAN2 `cpu32` networks: G forward on a batch of z, D on the fakes and on
as many reals, a non-saturating loss, backward through both. Variants: `OMP_WAIT_POLICY` unset (libgomp spins
before it sleeps) or PASSIVE (sleeps at once), and the torch thread count (every core, or one fewer). Each runs on
idle cores and beside one competing CPU-bound process (a one-thread float loop, like a second job on the machine).
Printed: median seconds per step and the ratio to the idle default (1.0 = as fast as on idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tabulate


def _worker(steps: int, batch: int, threads: int) -> list[float]:
    import torch

    from sgmodels.presets import build_networks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G, D, _training = build_networks("stylegan2", "cpu32")
    reals = torch.randn(batch, G.img_channels, G.img_resolution, G.img_resolution)
    times = []
    for _step in range(steps + 1):  # the first step warms the allocator and oneDNN's kernels up
        started = time.perf_counter()
        fakes = G(torch.randn(batch, G.z_dim), torch.zeros(batch, G.c_dim))
        softplus = torch.nn.functional.softplus
        loss = softplus(D(fakes, None)).mean() + softplus(-D(reals, None)).mean()
        loss.backward()
        times.append(time.perf_counter() - started)
    return times[1:]


def _competitor() -> subprocess.Popen[bytes]:
    """One CPU-bound process (a single-threaded float loop) until it is killed."""
    code = "x = 1.0\nwhile True:\n    x = x * 1.0000001 + 1e-9\n"
    return subprocess.Popen([sys.executable, "-c", code])


def _measure(policy: str | None, threads: int, steps: int, batch: int) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    output = subprocess.run([sys.executable, "-m", "benchmarks.bench_threads", "--worker", "--steps", str(steps),
                             "--batch", str(batch), "--threads", str(threads)], env=env, check=True,
                            capture_output=True, text=True).stdout
    return float(statistics.median(json.loads(output.strip().splitlines()[-1])))


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="write the table (Markdown) here")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.steps, args.batch, args.threads)))
        return []
    cores = len(os.sched_getaffinity(0))
    variants = [(None, cores), ("PASSIVE", cores), (None, max(1, cores - 1)), ("PASSIVE", max(1, cores - 1))]
    rows: list[dict[str, Any]] = []
    for competing in (False, True):
        rival = _competitor() if competing else None
        try:
            for policy, threads in variants:
                seconds = _measure(policy, threads, args.steps, args.batch)
                rows.append({"competing": competing, "policy": policy or "(unset)", "threads": threads,
                             "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            if rival is not None:
                rival.kill()
                rival.wait()
    base = float(rows[0]["seconds"])
    table = [["one other process" if row["competing"] else "idle", row["policy"], row["threads"],
              f"{row['seconds']:.3f}", f"{row['seconds'] / base:.2f}"] for row in rows]
    text = tabulate.tabulate(table, headers=["cores", "OMP_WAIT_POLICY", "torch threads", "s/step", "vs idle default"],
                             tablefmt="github")
    print(f"StyleGAN2 cpu32 training steps, batch {args.batch}, {cores} cores\n{text}")
    if args.out:
        args.out.write_text(text + "\n")
    return rows


if __name__ == "__main__":
    main()
