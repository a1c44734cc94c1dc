"""Developer sessions. They run inside the repository's .venv (created by ./scripts/setup.sh), so a session
never downloads torch again; `nox -s tests` is what CI runs."""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
VENV_BIN = ROOT / ".venv" / "bin"
nox.options.sessions = ["lint", "tests"]
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
