"""Training progress output: a line right after the first step and at least every minute on a pipe, the tick lines,
and the `train` options that set the training length (--kimg; --total-kimg is a hidden deprecated alias)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sgmodels.commands.train import train as train_command
from sgmodels.training import loop
from sgmodels.training.distributed import init_distributed
from sgmodels.training.stats import ProgressPrinter
from tests.sgmodels.test_training import make_image_folder, tiny_options


class FakeClock:
    """Monotonic seconds that the test sets by hand (or that advance by `step` on every reading)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_piped_progress_comes_after_the_first_step_then_at_least_every_minute() -> None:
    clock, stream = FakeClock(), io.StringIO()  # StringIO is no terminal, like a pipe or a log file
    printer = ProgressPrinter(stream=stream, clock=clock)
    printer.print("new run: runs/00000")
    clock.now = 1.0
    printer.update("step 1")  # the first update always shows, however recent the last line
    for clock.now, line in [(30.0, "step 2"), (60.5, "step 3"), (61.0, "step 4")]:
        printer.update(line)  # step 4 is the first update a minute after the last line
    clock.now = 70.0
    printer.print("tick 1")
    for clock.now, line in [(100.0, "step 5"), (129.0, "step 6"), (130.0, "step 7")]:
        printer.update(line)  # the minute counts from the tick line
    assert lines(stream) == ["new run: runs/00000", "step 1", "step 4", "tick 1", "step 7"]


def test_terminal_gets_a_rate_limited_live_line_and_quiet_prints_nothing() -> None:
    clock, terminal = FakeClock(), Terminal()
    printer = ProgressPrinter(stream=terminal, interval=1.0, clock=clock)
    for clock.now, line in [(0.0, "a"), (0.5, "b"), (1.0, "c")]:
        printer.update(line)
    printer.print("tick 1")
    assert terminal.getvalue() == "\r\033[Ka\r\033[Kc\r\033[Ktick 1\n"
    quiet = io.StringIO()
    silent = ProgressPrinter(stream=quiet, enabled=False, clock=clock)
    silent.update("step")
    silent.print("tick")
    assert not silent.due() and quiet.getvalue() == ""


def test_piped_training_run_prints_progress_between_ticks(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "images", per_class=4)
    opts = tiny_options(data, tmp_path / "runs", kimg=0.032, tick_kimg=0.032, progress=True)  # 4 steps, 1 tick
    session = loop.setup_session(opts, init_distributed("cpu"))
    stream = io.StringIO()
    session.printer = ProgressPrinter(stream=stream, clock=FakeClock(step=61.0))  # a minute passes per reading
    loop.run_session(session)
    out = lines(stream)
    assert [line.split()[:2] for line in out[:3]] == [["kimg", "0.008/0.032"], ["kimg", "0.016/0.032"],
                                                      ["kimg", "0.024/0.032"]]
    assert all("sec/kimg" in line and "ETA" in line for line in out[:3])
    assert out[3].startswith("tick 1") and "0.032/0.032" in out[3]


def test_kimg_help_is_the_one_training_length_and_total_kimg_a_deprecated_alias(
        monkeypatch: pytest.MonkeyPatch) -> None:
    help_text = " ".join(CliRunner().invoke(train_command, ["--help"]).output.split())
    assert "--kimg FLOAT" in help_text and "--total-kimg" not in help_text
    assert "a resumed run keeps its own unless given" in help_text
    received: list[Any] = []
    monkeypatch.setattr(loop, "train", lambda options: received.append(options) or Path("run"))
    result = CliRunner().invoke(train_command, ["--data", "d.zip", "--config", "cpu16", "--total-kimg", "0.5"])
    assert result.exit_code == 0, result.output
    assert received[0].kimg == 0.5 and "total_kimg" not in received[0].overrides
    assert "--total-kimg is a deprecated alias of --kimg" in result.output
    clash = CliRunner().invoke(train_command, ["--data", "d.zip", "--config", "cpu16", "--kimg", "1",
                                               "--total-kimg", "2"])
    assert clash.exit_code == 1 and "disagree" in clash.output
