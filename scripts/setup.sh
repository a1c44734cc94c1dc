#!/usr/bin/env bash
# Create .venv at the repository root and install sgeval + sgmodels with everything the tests,
# benchmarks and lint need. Safe to re-run: an existing .venv is reused and brought up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python -c "import torch, sgmodels, sgeval; print('ready: torch', torch.__version__)"
