"""The reader fuzz suite (issue 17): every reader of untrusted bytes, fed generated malformed inputs, must end each one
in a clear error (a ValueError naming the file) while staying under a memory bound.

One test per reader family. Each starts `python -m tests.reader_fuzz_cases FAMILY OUTDIR` (see that module for the
mutation classes), which limits its own data size (`RLIMIT_DATA`) to its footprint after the imports plus 1 GiB, so
a reader that allocates for a forged size fails with a MemoryError inside the child (recorded as "bad") instead of
eating the machine. The test fails listing every "bad" case with its traceback, and a child that crashes or hangs
names the case it was running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reader_fuzz_cases import FAMILIES, KNOWN_GAPS

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # a family takes seconds; this only bounds a hang


def _known(family: str, case: str) -> str | None:
    return next((why for pattern, why in KNOWN_GAPS.get(family, {}).items() if re.search(pattern, case)), None)


def _run(family: str, outdir: Path, only: str | None = None) -> tuple[list[dict], str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "tests.reader_fuzz_cases", family, str(outdir), *([only] if only else [])]
    try:
        completed = subprocess.run(command, cwd=ROOT,
                                   env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        tail = f"exit status {completed.returncode}; stderr:\n{completed.stderr[-4000:]}"
    except subprocess.TimeoutExpired:
        tail = f"the child ran past {TIMEOUT_S} s (a hang)"
    log = outdir / "results.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return records, tail


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_malformed_inputs_give_clear_errors_under_a_memory_bound(family: str, tmp_path: Path) -> None:
    records, tail = _run(family, tmp_path)
    cases = [record for record in records if record["event"] == "case"]
    finished = any(record["event"] == "done" for record in records)
    bad = [record for record in cases if record["outcome"] == "bad" and not _known(family, record["case"])]
    report = [f"[{record['index']}] {record['case']}: {record['detail']}\n{record.get('traceback', '')}"
              for record in bad]
    if not finished:
        started = [record for record in records if record["event"] == "start"]
        last = started[-1]["case"] if started and (not cases or started[-1]["index"] != cases[-1]["index"]) else None
        report.append(f"the child did not finish (while running case {last!r}): {tail}")
    assert not report, f"{family}: {len(bad)} of {len(cases)} cases bad\n\n" + "\n\n".join(report)
    assert len(cases) >= 40, f"{family}: only {len(cases)} cases generated"
    outcomes = {outcome: sum(record["outcome"] == outcome for record in cases) for outcome in ("clear", "ok")}
    assert outcomes["clear"] >= len(cases) // 2, outcomes


@pytest.mark.xfail(strict=True, reason="known gaps: tests/reader_fuzz_cases.KNOWN_GAPS says why each is not fixed yet")
@pytest.mark.parametrize("family", sorted(KNOWN_GAPS))
def test_known_gaps(family: str, tmp_path: Path) -> None:
    records, tail = _run(family, tmp_path, "|".join(f"(?:{pattern})" for pattern in KNOWN_GAPS[family]))
    cases = [record for record in records if record["event"] == "case"]
    bad = [f"{record['case']}: {record['detail']}" for record in cases if record["outcome"] == "bad"]
    assert cases and not bad, "\n".join(bad) or tail
