"""Writes that fail (issue 17): every sgmodels output is atomic, an unwritable folder is found before the work, a
failure mid-way keeps the finished files and says so, a long run's result is kept elsewhere, and no traceback.

Unwritable folders are a regular file where a parent folder should be (root ignores chmod; see
tests/sgeval/test_hardening.py); a full disk is an OSError(ENOSPC) raised by the writer after some files.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from sgmodels import fileio
from sgmodels.cli import main
from sgmodels.fileio import WriteError, atomic_write_bytes, check_writable_folder, write_or_keep
from sgmodels.generate import iter_image_batches
from sgmodels.progress import PlainProgress, progress_bar
from sgmodels.ranges import parse_ranges
from sgmodels.training import loop
from tests.sgmodels.test_training import make_image_folder, tiny_options

DEAD_PID = 2**22 + 12345  # above the kernel's pid_max ceiling: never a running process
GENERATE = ["generate", "stylegan2-cpu16", "--random-init", "--channel-base", "64", "--channel-max", "8",
            "--z-dim", "8", "--w-dim", "8", "--map-layers", "1"]


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _blocked(tmp_path: Path) -> Path:
    """A folder that cannot be created, even by root: its parent is a regular file."""
    (tmp_path / "not-a-folder").write_text("x")
    return tmp_path / "not-a-folder" / "out"


def _temp_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, good: int) -> None:
    """The atomic writer's fsync fails with ENOSPC from the (good + 1)-th file on: its data was written (the folder
    check's probe syncs by itself and is not counted)."""
    calls = {"n": 0}
    original = fileio._fsync_file

    def fsync(path: Path) -> None:
        calls["n"] += 1
        if calls["n"] > good:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(path)

    monkeypatch.setattr(fileio, "_fsync_file", fsync)


def _assert_clear_error(result: Result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for part in parts:
        assert part in result.output, result.output


# ----------------------------------------------------------------------------------------------- the primitives


def test_a_failed_atomic_write_names_the_target_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(WriteError) as caught, atomic_write_bytes(target) as stream:
        stream.write(b"new, half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() fails on a full disk: no file name
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert str(caught.value) == f"could not write {target} (No space left on device)"
    assert target.read_bytes() == b"old" and _temp_files(tmp_path) == []


def test_an_os_error_about_another_file_is_not_called_a_write_failure(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_write_bytes(tmp_path / "out.bin"):
        (tmp_path / "missing-source").read_bytes()
    assert _temp_files(tmp_path) == []


def test_writable_folder_check_leaves_no_trace_and_refuses_a_blocked_one(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    assert check_writable_folder(tmp_path / "kept") == tmp_path / "kept"
    check_writable_folder(tmp_path / "a" / "b")
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["kept"]  # no probe, no folder created for it
    with pytest.raises(WriteError, match=r"could not write .*not-a-folder/out \(.*\); nothing was started"):
        check_writable_folder(_blocked(tmp_path))


def test_write_or_keep_keeps_the_result_in_a_temporary_folder(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def write(folder: Path) -> Path:
        fileio.write_text_atomic(folder / "result.txt", "precious")
        return folder / "result.txt"

    with pytest.raises(WriteError) as caught:
        write_or_keep(_blocked(tmp_path), write, "the result")
    kept = [path for path in (tmp_path / "tmp").glob("kept-the-result-*/result.txt")]
    assert len(kept) == 1 and kept[0].read_text() == "precious"
    assert f"the result was kept in {kept[0].parent}: move its files to" in str(caught.value)


# ------------------------------------------------------------------------------------------------ generate


def test_generate_onto_a_blocked_folder_fails_before_loading_anything(tmp_path: Path) -> None:
    blocked = _blocked(tmp_path)
    _assert_clear_error(_invoke(*GENERATE, "--seeds", "0-3", "--outdir", blocked),
                        f"could not write {blocked}", "nothing was started")


def test_generate_on_a_disk_that_fills_keeps_the_good_files_and_no_partial_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "reference"
    assert _invoke(*GENERATE, "--seeds", "0-5", "--batch", "2", "--outdir", reference).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    _disk_full_after(monkeypatch, good=3)  # three PNGs
    result = _invoke(*GENERATE, "--seeds", "0-5", "--batch", "2", "--outdir", out)
    _assert_clear_error(result, f"could not write {out / 'seed0003.png'} (No space left on device)",
                        f"the 3 images written before it are complete in {out} (seed0000.png ... seed0002.png)")
    assert sorted(path.name for path in out.iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png"]
    for name in ("seed0000.png", "seed0001.png", "seed0002.png"):
        assert (out / name).read_bytes() == (reference / name).read_bytes()


def test_a_grid_that_cannot_be_written_leaves_no_partial_grid(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _disk_full_after(monkeypatch, good=0)  # the folder check passes, the grid fails
    result = _invoke(*GENERATE, "--seeds", "0-3", "--grid", "--outdir", tmp_path / "out")
    _assert_clear_error(result, f"could not write {tmp_path / 'out' / 'grid.png'} (No space left on device)")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_seed_ranges_stay_lazy_and_impossible_seeds_are_refused_at_once(tmp_path: Path) -> None:
    seeds = parse_ranges("0-100000000000,7")
    assert seeds.size == 100000000002 and seeds[-1] == 7 and seeds[100000000000] == 100000000000
    started = time.monotonic()
    result = _invoke(*GENERATE, "--seeds", "0-100000000000", "--outdir", tmp_path / "out")
    _assert_clear_error(result, "seeds must lie in [0, 2**32)", "up to 100000000000")
    assert time.monotonic() - started < 5 and not (tmp_path / "out").exists()


def test_generation_takes_seeds_batch_by_batch() -> None:
    from sgmodels.commands import load_cli_generator

    G = load_cli_generator("stylegan2-cpu16", True, 0, "cpu", None, None,
                           {"channel_base": 64, "channel_max": 8, "z_dim": 8, "w_dim": 8, "map_layers": 1})
    batches = iter_image_batches(G, parse_ranges("0-4000000000"), batch_size=2)  # 4e9 seeds: only 2 are drawn
    seeds, images = next(batches)
    assert seeds == [0, 1] and images.shape[0] == 2 and images.dtype == torch.uint8


def test_counts_that_cannot_fit_on_the_disk_are_refused_before_writing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    usage = type("usage", (), {"free": 10_000, "total": 10**9, "used": 0})
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda path: usage)
    result = _invoke(*GENERATE, "--seeds", "0-99999", "--outdir", tmp_path / "out")
    _assert_clear_error(result, f"could not write {tmp_path / 'out'} (No space left on device); 100000 PNG images "
                                "need about", "are free: nothing was written")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ------------------------------------------------------------------------------------------------ convert, mix


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    return save_snapshot(tmp_path / "in.safetensors", {"G_ema": G})


def test_convert_onto_a_blocked_folder_or_a_full_disk_is_one_line(tmp_path: Path, snapshot: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = _blocked(tmp_path)
    _assert_clear_error(_invoke("convert", snapshot, blocked / "out.safetensors"), f"could not write {blocked} (",
                        "nothing was started")
    _disk_full_after(monkeypatch, good=0)
    out = tmp_path / "out.safetensors"
    _assert_clear_error(_invoke("convert", snapshot, out),
                        f"could not write {out} (No space left on device); {out} is unchanged (nothing was written)")
    assert not out.exists() and _temp_files(tmp_path) == []


def test_mix_onto_a_blocked_folder_is_one_line(tmp_path: Path) -> None:
    blocked = _blocked(tmp_path)
    args = ["mix", *GENERATE[1:], "--rows", "0-1", "--cols", "2-3", "--styles", "0", "--outdir", blocked]
    _assert_clear_error(_invoke(*args), f"could not write {blocked}", "nothing was started")


# ------------------------------------------------------------------------------------------------ dataset, train


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "images", per_class=4)


def test_dataset_create_names_the_path_on_a_blocked_folder_or_a_full_disk(tmp_path: Path, images: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = _blocked(tmp_path)
    _assert_clear_error(_invoke("dataset", "create", images, blocked / "data.zip"), f"could not write {blocked} (",
                        "nothing was started")
    old = tmp_path / "data.zip"
    old.write_bytes(b"the previous dataset")
    _disk_full_after(monkeypatch, good=0)
    _assert_clear_error(_invoke("dataset", "create", images, old),
                        f"could not write {old} (No space left on device); {old} is unchanged (nothing was written)")
    assert old.read_bytes() == b"the previous dataset" and _temp_files(tmp_path) == []


def test_train_onto_a_blocked_folder_fails_before_training(tmp_path: Path, images: Path) -> None:
    blocked = _blocked(tmp_path)
    result = _invoke("train", "--data", images, "--outdir", blocked, "--arch", "stylegan2", "--config", "cpu16",
                     "--kimg", "0.016", "--quiet", "--device", "cpu")
    _assert_clear_error(result, f"could not write {blocked}", "nothing was started")


def test_a_snapshot_the_run_folder_cannot_take_is_kept_elsewhere(tmp_path: Path, images: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    original = loop.save_snapshot

    def save(path: Path, *args: object, **kwargs: object) -> Path:
        if path.parent.parent == tmp_path / "runs":  # the run folder is full; the temporary folder is not
            raise WriteError(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(loop, "save_snapshot", save)
    with pytest.raises(WriteError) as caught:
        loop.train(tiny_options(images, tmp_path / "runs", kimg=0.016, tick_kimg=0.016))
    kept = list((tmp_path / "tmp").glob("kept-the-snapshot-*/network-snapshot-*.safetensors"))
    assert len(kept) == 1
    assert f"the snapshot was kept in {kept[0].parent}" in str(caught.value)
    from sgmodels.snapshot import load_snapshot

    assert set(load_snapshot(kept[0]).networks) == {"G", "D", "G_ema"}


def test_resume_sweeps_the_temp_files_of_a_killed_snapshot_writer(tmp_path: Path, images: Path) -> None:
    run_dir = loop.train(tiny_options(images, tmp_path / "runs", kimg=0.016, tick_kimg=0.016))
    past = time.time() - 3600
    ours = run_dir / f".network-snapshot-000000.032.safetensors.{DEAD_PID}.0123456789abcdef.tmp"
    theirs = run_dir / ".tmpAb12Cd"  # what safetensors' own save_file left beside a snapshot when killed
    for leftover in (ours, theirs):
        leftover.write_bytes(b"half a snapshot")
        os.utime(leftover, (past, past))
    loop.train(tiny_options(images, tmp_path / "runs", kimg=0.032, tick_kimg=0.016, resume="latest"))
    assert not ours.exists() and not theirs.exists()
    assert [path.name for path in run_dir.iterdir() if path.name.startswith(".")] == []


# ------------------------------------------------------------------------------------------------ progress


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_progress_is_plain_lines_at_intervals_with_rate_and_eta() -> None:
    clock, stream = _Clock(), io.StringIO()
    bar = PlainProgress(total=100, desc="features", unit="img", stream=stream, interval=60, clock=clock)
    steps: list[tuple[float, int]] = [(2.0, 10), (30.0, 10), (62.0, 20), (100.0, 60)]
    for clock.now, n in steps:
        bar.update(n)
    bar.set_postfix(loss="0.125")
    bar.close()
    assert stream.getvalue().splitlines() == [
        "features: 10/100 img (10%), 5 img/s, elapsed 2s, ETA 18s",
        "features: 40/100 img (40%), 0.645 img/s, elapsed 1m 02s, ETA 1m 33s",
        "features: 100/100 img (100%), 1 img/s, elapsed 1m 40s, loss=0.125",
    ]
    assert "\r" not in stream.getvalue()


def test_progress_bar_is_tqdm_only_on_a_terminal_and_silent_when_disabled() -> None:
    from tqdm import tqdm

    assert isinstance(progress_bar(total=3, stream=io.StringIO()), PlainProgress)
    terminal_bar = progress_bar(total=3, stream=_Terminal())
    assert isinstance(terminal_bar, tqdm)
    terminal_bar.close()
    quiet = io.StringIO()
    assert list(progress_bar(range(3), enabled=False, stream=quiet)) == [0, 1, 2] and quiet.getvalue() == ""


def test_piped_generate_prints_a_plain_progress_line(tmp_path: Path) -> None:
    result = _invoke(*GENERATE, "--seeds", "0-2", "--outdir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "generate: 3/3 img (100%)" in result.stderr and "\r" not in result.stderr



def test_zip_members_that_climb_out_of_the_archive_are_named_when_skipped(tmp_path: Path) -> None:
    import zipfile

    from sgmodels.data.reader import FileTree, SkippedMembersWarning
    from sgmodels.images import png_bytes

    image = png_bytes(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as archive:
        for name in ("a.png", "../x.png", "sub/../../y.png"):
            archive.writestr(name, image)
    named = r"skipped 2 zip member\(s\) .*\(\.\./x\.png, sub/\.\./\.\./y\.png\)"
    with pytest.warns(SkippedMembersWarning, match=named):
        tree = FileTree(tmp_path / "data.zip")
    assert tree.names == ["a.png"]


def test_the_ablation_suites_check_their_output_folder_before_any_run(tmp_path: Path) -> None:
    from benchmarks.ablations.__main__ import main as ablations

    blocked = _blocked(tmp_path)
    with pytest.raises(SystemExit, match=f"could not write {blocked} .*nothing was started"):
        ablations(["--out", str(blocked), "--data", str(tmp_path / "missing.zip")])
