"""The demo's training data: Debian's Fashion-MNIST at 32x32, or scikit-learn's bundled digits when it is missing.

Order of preference, each step said out loud:
1. a dataset zip given with `--data` (used as it is);
2. `<out>/fmnist32.zip` built once from `/usr/share/datasets/fashion-mnist` (Debian `dataset-fashion-mnist`, 70,000
   images) with `sgmodels dataset create`;
3. when that folder is missing, running as root with apt-get available: `apt-get update` and
   `apt-get install -y dataset-fashion-mnist`, then step 2;
4. otherwise `<out>/digits32.zip`: the 1,797 8x8 handwritten digits that ship inside scikit-learn
   (`sklearn.datasets.load_digits`, no download), upscaled to 32x32 with LANCZOS, one class per digit. Much less
   data than Fashion-MNIST: the run still shows the whole pipeline, but its numbers are not the README's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["FASHION_MNIST", "DemoData", "install_fashion_mnist", "prepare_data", "write_digits_zip"]

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # where Debian's package puts the IDX files
DEBIAN_PACKAGE = "dataset-fashion-mnist"
RESOLUTION = 32  # the cpu32 presets' resolution
APT_TIMEOUT_S = 600  # an offline `apt-get update` gives up on its own; this only guards against a hang


@dataclasses.dataclass(frozen=True)
class DemoData:
    """The dataset zip a demo run trains on, and where it came from."""

    path: Path  # labelled dataset zip (StyleGAN2-ADA layout)
    source: str  # "fashion-mnist", "digits" (the fallback) or "given" (--data)
    note: str  # what the data is, one sentence for the report
    warning: str | None = None  # the fallback's loud note (console and report), None for the intended data

    @property
    def fallback(self) -> bool:
        """True when the demo had to fall back to scikit-learn's digits."""
        return self.source == "digits"


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def install_fashion_mnist(folder: Path = FASHION_MNIST) -> bool:
    """Try `apt-get install -y dataset-fashion-mnist` (root and apt-get only); True when `folder` exists after it."""
    if folder != FASHION_MNIST:  # apt installs into the Debian path only: another folder cannot be fixed by apt
        return False
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        _say(f"{folder} is missing and apt-get cannot install it here (needs root and apt-get): "
             f"`sudo apt-get install {DEBIAN_PACKAGE}` would")
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", DEBIAN_PACKAGE]):
        _say("$ " + " ".join(command))
        try:
            result = subprocess.run(command, check=False, env=env, timeout=APT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as error:
            _say(f"`{' '.join(command)}` failed: {error}")
            return False
        if result.returncode != 0:  # a failed update may still leave usable package lists: go on to install
            _say(f"`{' '.join(command)}` exited with status {result.returncode}")
    return folder.is_dir()


def write_digits_zip(path: Path) -> Path:
    """scikit-learn's 1,797 8x8 digits (shipped with the package) as a labelled 32x32 dataset zip at `path`."""
    import numpy as np
    import PIL.Image
    from sklearn.datasets import load_digits

    from sgmodels.data.dataset_tool import create_dataset

    digits = load_digits()  # images float [1797, 8, 8] with values 0..16, target int [1797]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
            class_folder = Path(folder) / f"digit{int(label)}"  # class sub-folders become the dataset's labels
            class_folder.mkdir(exist_ok=True)
            pixels = np.round(image * (255 / 16)).astype(np.uint8)  # [8, 8] uint8
            PIL.Image.fromarray(pixels).save(class_folder / f"{index:04d}.png")
        create_dataset(folder, path, resolution=RESOLUTION, channels=1, progress=False)
    return path


# The class names of Fashion-MNIST's label indices (Xiao et al. 2017); the IDX files hold only the indices.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def _fashion_mnist_zip(folder: Path, path: Path) -> Path:
    from sgmodels.data.dataset_tool import create_dataset

    _say(f"$ sgmodels dataset create {folder} {path} --resolution {RESOLUTION}")
    create_dataset(folder, path, resolution=RESOLUTION, label_names=FASHION_MNIST_CLASSES, progress=False)
    return path


FALLBACK_NOTE = ("FALLBACK DATA: Fashion-MNIST ({folder}) is not installed, so this run trains on scikit-learn's "
                 "bundled 8x8 digits (1,797 images, 10 classes) upscaled to 32x32. Its samples and numbers are not "
                 f"the README's; install Debian's `{DEBIAN_PACKAGE}` and run the demo again for those.")


def prepare_data(out: Path, fashion_mnist: Path = FASHION_MNIST, install: bool = True,
                 given: Path | None = None) -> DemoData:
    """The demo's dataset zip (see the module docstring for the order); built zips are reused on a rerun."""
    if given is not None:
        if not given.exists():
            raise SystemExit(f"--data {given}: no such file or folder")
        return DemoData(given, "given", f"the labelled dataset given with --data: {given}")
    fmnist = out / f"fmnist{RESOLUTION}.zip"
    if not fmnist.is_file() and not fashion_mnist.is_dir() and install:
        install_fashion_mnist(fashion_mnist)
    if fmnist.is_file() or fashion_mnist.is_dir():
        if not fmnist.is_file():
            _fashion_mnist_zip(fashion_mnist, fmnist)
        return DemoData(fmnist, "fashion-mnist", f"Fashion-MNIST from Debian's `{DEBIAN_PACKAGE}` ({fashion_mnist}, "
                                                 f"70,000 images) at {RESOLUTION}x{RESOLUTION}: {fmnist}")
    digits = out / f"digits{RESOLUTION}.zip"
    if not digits.is_file():
        write_digits_zip(digits)
    warning = FALLBACK_NOTE.format(folder=fashion_mnist)
    banner = "!" * 100
    _say(f"\n{banner}\n{warning}\n{banner}")
    note = f"scikit-learn's bundled digits (1,797 8x8 images, 10 classes) upscaled to {RESOLUTION}x{RESOLUTION}: " \
           f"{digits}"
    return DemoData(digits, "digits", note, warning)
