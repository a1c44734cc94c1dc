"""`sgeval stats DATA OUT.npz`: mu/sigma plus provenance in one file, checked when the file is the reference; a
foreign pytorch-fid / clean-fid file is accepted with a warning that it has no provenance."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import sgeval.features.registry as registry
from sgeval.cli import main
from sgeval.runner import evaluate
from sgeval.sources.stats import NoProvenanceWarning

from .conftest import FakeExtractor, random_images, write_folder


class OtherResize(FakeExtractor):
    """The fake detector with another resize policy: its features are not comparable."""

    def __init__(self) -> None:
        super().__init__()
        self.resize_policy = "other/v1"


@pytest.fixture
def detector(monkeypatch: pytest.MonkeyPatch) -> dict[str, type[FakeExtractor]]:
    """Every detector built anywhere (stats command and runner) is `detector["class"]()`."""
    chosen: dict[str, type[FakeExtractor]] = {"class": FakeExtractor}
    monkeypatch.setattr(registry, "build_extractor", lambda *args, **kwargs: chosen["class"]())
    return chosen


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return (write_folder(tmp_path / "gen", random_images(12, 8, seed=5)),
            write_folder(tmp_path / "real", random_images(15, 8, seed=6)))


def _features(folder: Path) -> np.ndarray:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    images = np.stack([np.asarray(PIL.Image.open(folder / name)).transpose(2, 0, 1) for name in files])
    return FakeExtractor()(torch.from_numpy(images)).double().numpy()  # [N, 9]


def test_stats_file_holds_statistics_and_provenance(tmp_path: Path, folders: tuple[Path, Path],
                                                    detector: dict[str, type[FakeExtractor]]) -> None:
    out = tmp_path / "ref.npz"
    result = CliRunner().invoke(main, ["stats", str(folders[1]), str(out), "--protocol", "fid50k", "--no-progress",
                                       "--json"])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as stored:  # the layout pytorch-fid and clean-fid read
        real = _features(folders[1])
        np.testing.assert_allclose(stored["mu"], real.mean(0), rtol=1e-10)
        np.testing.assert_allclose(stored["sigma"], np.cov(real, rowvar=False), rtol=1e-8, atol=1e-8)
        provenance = json.loads(str(stored["sgeval_provenance"]))
    assert provenance == json.loads(result.stdout) | {"format": provenance["format"], "cov_ddof": 1}
    assert provenance["detector"]["name"] == "fake-stats" and provenance["detector"]["resize_policy"] == "none/v1"
    assert (provenance["num_items"], provenance["protocol"], provenance["real_xflip"]) == (15, "fid50k", False)
    assert len(provenance["data_fingerprint"]) == 64
    assert list(tmp_path.glob("*.tmp")) == []

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from_stats = evaluate("fid50k", folders[0], out, cache=False, progress=False)
    assert not [w for w in caught if issubclass(w.category, NoProvenanceWarning)]
    from_folder = evaluate("fid50k", folders[0], folders[1], cache=False, progress=False)
    assert from_stats.values["fid"] == pytest.approx(from_folder.values["fid"], rel=1e-6)
    full = evaluate("fid50k_full", folders[0], out, cache=False, progress=False)  # N known: / N exactly
    assert full.values["fid"] == pytest.approx(evaluate("fid50k_full", *folders, cache=False,
                                                        progress=False).values["fid"], rel=1e-6)
    assert from_stats.extra["data"]["provenance"]["protocol"] == "fid50k"


def test_stats_made_with_another_detector_are_refused(tmp_path: Path, folders: tuple[Path, Path],
                                                      detector: dict[str, type[FakeExtractor]]) -> None:
    out = tmp_path / "ref.npz"
    assert CliRunner().invoke(main, ["stats", str(folders[1]), str(out), "--no-progress"]).exit_code == 0
    detector["class"] = OtherResize
    with pytest.raises(ValueError, match="another detector .*resize_policy 'none/v1' \\(now 'other/v1'\\)"):
        evaluate("fid50k_full", folders[0], out, cache=False, progress=False)
    refused = CliRunner().invoke(main, ["fid", str(folders[0]), "--data", str(out), "--no-progress"])
    assert refused.exit_code == 1 and "sgeval stats" in refused.output


def test_foreign_statistics_warn_that_they_have_no_provenance(tmp_path: Path, folders: tuple[Path, Path],
                                                              detector: dict[str, type[FakeExtractor]]) -> None:
    real = _features(folders[1])
    foreign = tmp_path / "pytorch-fid.npz"
    np.savez(foreign, mu=real.mean(0), sigma=np.cov(real, rowvar=False))
    with pytest.warns(NoProvenanceWarning, match="no provenance"):
        evaluate("fid50k", folders[0], foreign, cache=False, progress=False)


def test_stats_command_errors(tmp_path: Path, folders: tuple[Path, Path],
                              detector: dict[str, type[FakeExtractor]]) -> None:
    out = str(tmp_path / "ref.npz")
    unknown = CliRunner().invoke(main, ["stats", str(folders[1]), out, "--detector", "inception"])
    assert unknown.exit_code == 2 and "inception-v3-tf" in unknown.output
    no_flip = CliRunner().invoke(main, ["stats", str(folders[1]), out, "--xflip", "--no-progress"])
    assert no_flip.exit_code == 1 and "never mirrors" in no_flip.output
    flipped = CliRunner().invoke(main, ["stats", str(folders[1]), out, "--protocol", "fid50k", "--xflip", "--json",
                                        "--no-progress"])
    assert flipped.exit_code == 0 and json.loads(flipped.stdout)["num_items"] == 30
