"""Developer sessions. They run inside the repository's .venv (created by ./scripts/setup.sh), so a session
never downloads torch again; CI (.ci/run) runs `lint`, `typecheck` and `tests`, as does a bare `nox`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nox

ROOT = Path(__file__).parent
VENV_BIN = ROOT / ".venv" / "bin"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "none"


def _py(session: nox.Session, *args: str) -> None:
    session.run(str(VENV_BIN / "python"), *args, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Fast CPU test suite (two workers, one torch thread each)."""
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    workers = os.environ.get("SGEVAL_TEST_WORKERS", "2")
    python = str(VENV_BIN / "python")
    session.run(python, "-m", "pytest", "-n", workers, *session.posargs, env=env, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the packages, tests, benchmarks and this file."""
    _py(session, "-m", "ruff", "check", "sgmodels", "sgeval", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over both packages with the repository's mypy.ini (strict for the metrics, protocols and results)."""
    _py(session, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"), *(session.posargs or ["sgeval", "sgmodels"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks vs torch-fidelity, clean-fid, the scipy sqrtm route and a brute-force P&R (benchmarks/README.md).

    `nox -s bench` takes a few minutes on 2 cores; `nox -s bench -- --quick` well under a minute; `-- --full` long.
    Arguments after `--` go to every script; JSON results land in out/bench/.
    """
    for script in ("bench_extract", "bench_fid", "bench_pr"):
        _py(session, "-m", f"benchmarks.{script}", *session.posargs)


@nox.session
def ablations(session: nox.Session) -> None:
    """StyleGAN Tables 2 and 3 and Fig. 5 as resumable suites (benchmarks/ablations; reports in benchmarks/results).

    `nox -s ablations` runs every suite at the CPU scale (Fashion-MNIST, the project's domain detector; about two
    hours on 2 cores: run it in the background, and run it again after an interruption to continue);
    `nox -s ablations -- --scale quick` is a smoke run; arguments after `--` go to `python -m benchmarks.ablations`
    (`--suite mixing`, `--seeds 5`, `--scale paper --data ffhq.zip --dry-run`, ...).
    """
    _py(session, "-m", "benchmarks.ablations", *session.posargs)


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEMO_ARCH = "stylegan2"


def demo_arguments(posargs: Sequence[str]) -> tuple[str, list[str]]:
    """Split the demo's arguments into (architecture, arguments for `sgmodels train`).

    The architecture is `--arch NAME` (or `--arch=NAME`) anywhere, or a first argument that is not an option
    (`-- stylegan --kimg 60`); default DEMO_ARCH. Everything else goes to `sgmodels train`, so `-- --kimg 8` trains
    the default architecture for 8 kimg. ValueError for an `--arch` without a name.
    """
    args = list(posargs)
    arch = args.pop(0) if args and not args[0].startswith("-") else DEMO_ARCH
    train_args: list[str] = []
    while args:
        arg = args.pop(0)
        if arg == "--arch":
            if not args or args[0].startswith("-"):
                raise ValueError("--arch needs a name, e.g. --arch stylegan")
            arch = args.pop(0)
        elif arg.startswith("--arch="):
            arch = arg.removeprefix("--arch=")
        else:
            train_args.append(arg)
    return arch, train_args


@nox.session
def demo(session: nox.Session) -> None:
    """Offline demo: Fashion-MNIST at 32x32 -> StyleGAN2 cpu32 on the CPU -> sample grids in out/demo/.

    Needs Debian's `dataset-fashion-mnist` package. `nox -s demo -- stylegan` (or `-- --arch stylegan`) trains the v1
    variant (progressive growing from 8x8) instead; all other arguments go to `sgmodels train`, e.g.
    `nox -s demo -- --kimg 8` (see `demo_arguments`). Ends with a class-coverage check of the final snapshot
    (benchmarks/class_coverage.py).
    """
    if not FASHION_MNIST.is_dir():
        session.error(f"{FASHION_MNIST} is missing: install it with `apt-get install dataset-fashion-mnist`")
    try:
        arch, train_args = demo_arguments(session.posargs)
    except ValueError as exc:
        session.error(str(exc))
    sgmodels = str(VENV_BIN / "sgmodels")
    data = ROOT / "out" / "demo" / "fmnist32.zip"
    if not data.exists():
        session.run(sgmodels, "dataset", "create", str(FASHION_MNIST), str(data), "--resolution", "32", external=True)
    session.run(sgmodels, "train", "--arch", arch, "--config", "cpu32", "--data", str(data),
                "--outdir", str(ROOT / "out" / "demo" / "runs"), "--kimg", "120", "--tick-kimg", "4", "--snap", "2",
                "--seed", "0", *train_args, external=True)
    runs = sorted((ROOT / "out" / "demo" / "runs").glob(f"*-{data.stem}-{arch}-cpu32*"))
    snapshots = sorted(runs[-1].glob("network-snapshot-*.safetensors")) if runs else []
    if snapshots:  # do the samples cover the ten classes? (seconds; FID needs the Inception weights)
        _py(session, "-m", "benchmarks.class_coverage", str(data), str(snapshots[-1]))
