"""click commands of the `sgmodels` CLI and the options they share.

Preset options (`--arch`, `--config` and one option per override) are generated from `sgmodels.presets`, so the
CLI, its `--help` and its error messages follow the preset registry. Commands that take a NETWORK accept either a
network file (an sgmodels snapshot, or an official NVIDIA / rosinality checkpoint read by `sgmodels.importers`
without executing it) or, with `--random-init`, a preset (`stylegan2-cpu32` as NETWORK, or `--arch/--config`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch

from sgmodels.clierrors import cli_errors
from sgmodels.interfaces import GeneratorModule, as_generator
from sgmodels.presets import ARCHS, NETWORK_OVERRIDES, PRESETS, TRAINING_OVERRIDES, Override, build_networks
from sgmodels.ranges import IntRanges, parse_ranges

F = Callable[..., Any]


def user_errors() -> contextlib.AbstractContextManager[None]:
    """Show ValueError and OSError (bad input, a bad snapshot, a failed write naming its path and what was kept) as
    a one-line CLI error, not a traceback: `sgmodels.clierrors.cli_errors`, which the sgeval CLI uses too."""
    return cli_errors()


def range_option(*names: str, max_count: int | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A click option parsed with `parse_ranges` ("0-15,42" -> 0, ..., 15, 42 as a lazy `IntRanges`); more than
    `max_count` values (when given) are refused before anything is expanded."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> IntRanges | None:
        if value is None:
            return None
        try:
            ranges = parse_ranges(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if max_count is not None and ranges.size > max_count:
            raise click.BadParameter(f"{ranges.size} values; at most {max_count} can be used here")
        return ranges

    return click.option(*names, callback=parse, metavar="RANGE", **kwargs)


def _override_option(name: str, spec: Override) -> Callable[[F], F]:
    flag = "--" + name.replace("_", "-")
    if spec.type is bool:
        return click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None, help=spec.help)
    click_type: Any = click.Choice(spec.choices) if spec.choices else spec.type
    return click.option(flag, name, type=click_type, default=None, help=f"{spec.help} [preset value]")


def preset_options(training: bool = False) -> Callable[[F], F]:
    """Decorator adding --arch, --config and the override options (network ones; also training ones if asked).

    The wrapped command receives `arch`, `config` and one keyword per override (None = preset value); pass them
    to `pop_preset_options`.
    """
    overrides = {**NETWORK_OVERRIDES, **(TRAINING_OVERRIDES if training else {})}
    configs = list(dict.fromkeys(preset.config for preset in PRESETS.values()))

    def decorate(func: F) -> F:
        for name, spec in reversed(list(overrides.items())):
            func = _override_option(name, spec)(func)
        func = click.option("--config", type=str, default=None,
                            help=f"preset config: {', '.join(configs)} (see `sgmodels describe --list`)")(func)
        return click.option("--arch", type=click.Choice(ARCHS), default=None,
                            help="preset family [default: stylegan2, or from NETWORK]")(func)

    return decorate


def pop_preset_options(kwargs: dict[str, Any], training: bool = False) -> tuple[str | None, str | None, dict]:
    """Remove --arch, --config and the overrides from a command's kwargs -> (arch, config, non-None overrides)."""
    names = list(NETWORK_OVERRIDES) + (list(TRAINING_OVERRIDES) if training else [])
    overrides = {name: kwargs.pop(name) for name in names if name in kwargs}
    return kwargs.pop("arch"), kwargs.pop("config"), {k: v for k, v in overrides.items() if v is not None}


def resolve_preset(network: str | None, arch: str | None, config: str | None) -> tuple[str, str]:
    """(arch, config) from a preset NETWORK name such as "stylegan2-cpu32" or from --arch / --config."""
    if network is not None:
        if network not in PRESETS:
            raise ValueError(f"with --random-init, NETWORK must be a preset name ({', '.join(PRESETS)}), "
                             f"got {network!r}")
        preset = PRESETS[network]
        if (arch is not None and arch != preset.arch) or (config is not None and config != preset.config):
            raise ValueError(f"NETWORK {network!r} conflicts with --arch {arch} --config {config}")
        return preset.arch, preset.config
    if config is None:
        raise ValueError("give a snapshot file as NETWORK, or a preset: --random-init with NETWORK=<arch>-<config> "
                         "or --arch/--config")
    return arch or "stylegan2", config


NETWORK_KEYS = ("G_ema", "G")  # generators of a network file; --network-key chooses one


def network_key_option(func: F) -> F:
    """--network-key: which generator of a NETWORK file (G_ema by default, as the official tools use)."""
    return click.option("--network-key", type=click.Choice(NETWORK_KEYS), default=None,
                        help="generator of the NETWORK file [default: G_ema when present, else G]")(func)


def network_source_options(func: F) -> F:
    """NETWORK argument, --network-key, --random-init, --seed, --device and the preset options (generate, mix)."""
    func = preset_options()(func)
    func = network_key_option(func)
    func = click.option("--device", default="auto", show_default=True,
                        help="torch device (auto = cuda if available, else cpu)")(func)
    func = click.option("--seed", "init_seed", type=int, default=0, show_default=True,
                        help="torch seed of the --random-init weights")(func)
    func = click.option("--random-init", is_flag=True,
                        help="NETWORK is a preset with fresh random weights (works before any training)")(func)
    return click.argument("network", required=False)(func)


def pick_device(device: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"bad --device {device!r}: {exc}") from None


def load_cli_generator(network: str | None, random_init: bool, init_seed: int, device: str,
                       arch: str | None, config: str | None, overrides: dict[str, Any],
                       network_key: str | None = None) -> GeneratorModule:
    """The generator named on the command line, in eval mode on the chosen device.

    A network file (an sgmodels snapshot, or an official / rosinality checkpoint imported safely by
    `sgmodels.importers`) gives its generator `network_key` (None: G_ema, else G); `--random-init` builds a preset
    with weights drawn under `torch.manual_seed(init_seed)` (the caller's RNG state is restored afterwards).
    """
    target = pick_device(device)
    if not random_init:
        if network is None:
            raise ValueError("missing NETWORK: a snapshot or checkpoint file, or a preset with --random-init")
        if arch is not None or config is not None or overrides:
            raise ValueError("--arch, --config and preset overrides apply only with --random-init")
        from sgmodels.importers import load_network_file

        generator, _ = load_network_file(Path(network), key=network_key, device=target)
        return as_generator(generator).eval()
    if network_key is not None:
        raise ValueError("--network-key chooses a network of a NETWORK file; it does not apply with --random-init")
    arch, config = resolve_preset(network, arch, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        G, _, _ = build_networks(arch, config, **overrides)
    return G.to(target).eval()
