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
    """mypy over both packages and the benchmarks with the repository's mypy.ini (strict for the metrics, protocols
    and results)."""
    targets = session.posargs or ["sgeval", "sgmodels", "benchmarks"]
    _py(session, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"), *targets)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks vs torch-fidelity, clean-fid, the scipy sqrtm route and a brute-force P&R (benchmarks/README.md).

    `nox -s bench` takes a few minutes on 2 cores; `nox -s bench -- --quick` well under a minute; `-- --full` long.
    Arguments after `--` go to every script; JSON results land in out/bench/.
    """
    for script in ("bench_extract", "bench_fid", "bench_pr", "bench_e2e", "bench_ppl"):
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


@nox.session(name="gpu-check")
def gpu_check(session: nox.Session) -> None:
    """Everything GPU-specific in one run, offline with random weights (benchmarks/gpu_check.py, under 4 minutes on
    one H200): fp16-block training against fp32 (loss curves, FD), fp16 / TF32 extraction FID deviation and CUDA
    against CPU features, a two-process torch.distributed.run training step against one process, training and
    extraction img/s. Prints one table, writes out/gpu-check/gpu_check.json, fails on any FAIL row.

    `nox -s gpu-check -- --device cpu --quick` runs the same code paths on a CPU (CUDA-only rows SKIP).
    """
    _py(session, "-m", "benchmarks.gpu_check", *session.posargs)


@nox.session
def golden(session: nox.Session) -> None:
    """Record or check sgeval's golden set (benchmarks/golden.py): every protocol family on tiny seeded fixtures.

    `nox -s golden -- record out/golden.json` before a restructuring, `nox -s golden -- check out/golden.json` after
    it (every field but timings identical; `--rel 1e-6` to compare floats across CPU kinds). About 25 s on 2 cores.
    """
    _py(session, "-m", "benchmarks.golden", *(session.posargs or ["check", "out/golden.json"]))


DEMO_ARCH = "stylegan2"


def demo_arguments(posargs: Sequence[str]) -> tuple[str, list[str]]:
    """Split the demo's arguments into (architecture, the other arguments of `python -m benchmarks.demo`).

    The architecture is `--arch NAME` (or `--arch=NAME`) anywhere, or a first argument that is not an option
    (`-- stylegan --kimg 60`); default DEMO_ARCH. Everything else goes to the demo as it is, so `-- --kimg 8` runs
    the default architecture for 8 kimg. ValueError for an `--arch` without a name.
    """
    args = list(posargs)
    arch = args.pop(0) if args and not args[0].startswith("-") else DEMO_ARCH
    demo_args: list[str] = []
    while args:
        arg = args.pop(0)
        if arg == "--arch":
            if not args or args[0].startswith("-"):
                raise ValueError("--arch needs a name, e.g. --arch stylegan")
            arch = args.pop(0)
        elif arg.startswith("--arch="):
            arch = arg.removeprefix("--arch=")
        else:
            demo_args.append(arg)
    return arch, demo_args


@nox.session
def demo(session: nox.Session) -> None:
    """The main job, offline: data -> StyleGAN2 cpu32 on the CPU -> measuring stick -> metrics -> report.

    Runs `python -m benchmarks.demo` (benchmarks/demo): Fashion-MNIST at 32x32 (Debian's `dataset-fashion-mnist`,
    installed with apt-get when possible, else scikit-learn's bundled digits, said loudly), 40 kimg of StyleGAN2
    cpu32, the project's domain detector and separability classifiers, domain FD / KD / precision-recall, PPL in W
    and Z and separability of every snapshot, and out/demo/report/ (report.md and a self-contained report.html).
    Resumable: run it again after an interruption. `nox -s demo -- stylegan` (or `-- --arch stylegan`) trains
    StyleGAN v1; `-- --long` is the 120-kimg quality run; other arguments go to the demo (`-- --kimg 8`, `-- --help`).
    """
    try:
        arch, demo_args = demo_arguments(session.posargs)
    except ValueError as exc:
        session.error(str(exc))
    _py(session, "-m", "benchmarks.demo", "--arch", arch, *demo_args)
