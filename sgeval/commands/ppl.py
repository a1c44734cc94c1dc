"""`sgeval ppl`: perceptual path length of a snapshot or a training run (thin layer over sgeval.runner).

The flags name an official protocol: `--space w --sampling end` is `ppl_wend` (cropped), `--no-crop` makes it
`ppl2_wend`; `--variant v1|ada` picks StyleGAN's or stylegan2-ada-pytorch's settings (`ppl_wend_v1`,
`ppl_wend_ada`). Anything else that changes the number (another epsilon, another distance, a crop the official
protocol does not have) is applied to the official protocol object and recorded in its name (`ppl_wend+eps0.001`,
`ppl_zfull+nocrop`), so such numbers never land in an official column.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sgeval.commands.metrics import _count, _run, evaluation_options_except

if TYPE_CHECKING:  # annotations only: the CLI imports its commands without the metric machinery
    from sgeval.protocols import Protocol

__all__ = ["ppl_command", "ppl_protocol"]

_VARIANT_SUFFIX = {"v2": "", "v1": "_v1", "ada": "_ada"}


def ppl_protocol(space: str, sampling: str, crop: bool | None, variant: str, epsilon: float | None,
                 distance: str | None) -> Protocol:
    """The protocol the `sgeval ppl` flags describe: official when nothing beyond the official settings is asked,
    else the official one with each changed setting applied (and named: `ppl_zfull+nocrop+eps0.001`)."""
    from sgeval.protocols import PPL_DISTANCE, get_protocol, with_option

    suffix = _VARIANT_SUFFIX[variant]
    options = []
    if crop is False and (space, sampling) == ("w", "end") and variant != "v1":
        protocol = get_protocol(f"ppl2_wend{suffix}")
    else:
        protocol = get_protocol(f"ppl_{space}{sampling}{suffix}")
        if crop is False:
            options.append("nocrop")
    if epsilon is not None and epsilon != protocol.settings.epsilon:
        options.append(f"eps{epsilon:g}")
    if distance is not None and distance != PPL_DISTANCE:
        options.append(distance)
    for option in options:
        protocol = with_option(protocol, option)
    return protocol


def _distance_names() -> list[str]:
    from sgeval.distances import list_distances

    return [spec.name for spec in list_distances()]


@click.command("ppl")
@click.argument("source", type=click.Path(exists=True))
@click.option("--space", type=click.Choice(["z", "w"]), default="w", show_default=True,
              help="Interpolate in Z (slerp of unit-normalised latents) or W (lerp of mapped latents).")
@click.option("--sampling", type=click.Choice(["full", "end"]), default="end", show_default=True,
              help="t ~ U(0, 1) (full) or t = 0 exactly (end, as the official code).")
@click.option("--crop/--no-crop", default=None,
              help="Face crop before the distance [default: on; --no-crop with W/end is StyleGAN2's ppl2_wend].")
@click.option("--variant", type=click.Choice(sorted(_VARIANT_SUFFIX)), default="v2", show_default=True,
              help="v2: StyleGAN2 TF (50k pairs, 4 per noise draw); v1: StyleGAN (100k, 16); ada: "
                   "stylegan2-ada-pytorch (50k, 2; box factor from the uncropped size).")
@click.option("--protocol", default=None, metavar="NAME",
              help="A PPL protocol by name (e.g. ppl2_wend, ppl_zfull_v1); replaces the flags above.")
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True, max=1, max_open=True), default=None,
              help="Interpolation step [default: 1e-4]; another value is recorded in the protocol name.")
@click.option("--distance", type=click.Choice(_distance_names()), default=None,
              help="Image distance [default: lpips-vgg16-nvidia, NVIDIA's vgg16.pt as the official code].")
@click.option("--num-samples", callback=_count, default=None, metavar="N",
              help="Pairs instead of the protocol's (50k or 100k); recorded as a quick variant (@genN).")
@evaluation_options_except("num_gen", "num_real", "mix_latents")
def ppl_command(source: str, space: str, sampling: str, crop: bool | None, variant: str, protocol: str | None,
                epsilon: float | None, distance: str | None, num_samples: int | None, data: Path | None,
                **options: Any) -> None:
    """Perceptual path length of SOURCE (a snapshot or a training run directory).

    Pairs of images an epsilon apart on a path in Z or W, their LPIPS distance divided by epsilon^2, the mean
    between the 1st and 99th percentile, and a 95% bootstrap interval. Images stay float (no quantisation).

    \b
    Examples:
      sgeval ppl runs/00000-.../network-snapshot-000500.safetensors --space w          # ppl_wend
      sgeval ppl G.safetensors --space z --sampling full --num-samples 5k              # ppl_zfull@gen5k
      sgeval ppl G.safetensors --no-crop --detector-weights vgg16.pt                   # ppl2_wend
    """
    chosen: str | Protocol
    if protocol is None:
        try:
            chosen = ppl_protocol(space, sampling, crop, variant, epsilon, distance)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    elif any(value is not None for value in (crop, epsilon, distance)):
        raise click.BadParameter("--protocol names every setting; drop --crop/--epsilon/--distance, or write them "
                                 "into the name (e.g. ppl_wend+eps0.001)")
    else:
        chosen = protocol  # a name typed by the user: read by the one name grammar
    _run([chosen], source, data, num_gen=num_samples, num_real=None, **options)
