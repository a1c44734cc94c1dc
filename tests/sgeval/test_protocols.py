"""Protocols and the metric registry: official settings, quick variants, error messages, dispatch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sgeval.metrics.fid import FIDSettings
from sgeval.metrics.kid import KIDSettings
from sgeval.metrics.precision_recall import PrecisionRecallSettings
from sgeval.metrics.registry import ComputeOptions, get_metric, list_metrics, register_metric
from sgeval.protocols import Protocol, get_protocol, list_protocols, register_protocol, resolve_protocol

OFFICIAL = ("fid50k_full", "fid50k", "kid50k_full", "kid50k", "pr50k3_full", "pr50k3")


def test_official_protocols_carry_the_official_settings() -> None:
    expected = {
        # name: (metric, num_gen, num_real, real_xflip, detector, settings)
        "fid50k_full": ("fid", 50_000, None, "off", "inception-v3-tf", FIDSettings(cov_ddof=0)),
        "fid50k": ("fid", 50_000, 50_000, "dataset", "inception-v3-tf", FIDSettings(cov_ddof=1)),
        "kid50k_full": ("kid", 50_000, 1_000_000, "off", "inception-v3-tf", KIDSettings(100, 1000)),
        "kid50k": ("kid", 50_000, 50_000, "dataset", "inception-v3-tf", KIDSettings(100, 1000)),
        "pr50k3_full": ("pr", 50_000, 200_000, "off", "vgg16-fc2", PrecisionRecallSettings(k=3)),
        "pr50k3": ("pr", 50_000, 50_000, "dataset", "vgg16-fc2", PrecisionRecallSettings(k=3)),
    }
    for name, (metric, num_gen, num_real, flip, detector, settings) in expected.items():
        protocol = get_protocol(name)
        observed = (protocol.metric, protocol.num_gen, protocol.num_real, protocol.real_xflip, protocol.detector)
        assert observed == (metric, num_gen, num_real, flip, detector), name
        assert protocol.settings == settings and protocol.official and not protocol.counts_overridden
        assert protocol.kind == "feature" and protocol.reference


def test_listing_is_sorted_and_complete() -> None:
    names = [protocol.name for protocol in list_protocols()]
    assert names == sorted(names) and set(OFFICIAL) <= set(names)
    assert not get_protocol("prdc50k5").official  # our extension is marked as such
    assert {"fid", "is", "kid", "pr", "prdc", "ppl"} <= {spec.name for spec in list_metrics()}
    assert [spec.name for spec in list_metrics()] == sorted(spec.name for spec in list_metrics())


def test_with_counts_derives_a_recorded_quick_variant() -> None:
    official = get_protocol("fid50k_full")
    quick = official.with_counts(num_gen=1000, num_real=2500)
    assert quick.name == "fid50k_full@gen1k-real2500"
    assert (quick.num_gen, quick.num_real, quick.base_name) == (1000, 2500, "fid50k_full")
    assert quick.counts_overridden
    assert quick.settings == official.settings and quick.detector == official.detector
    assert quick.to_dict()["counts_overridden"] is True and quick.to_dict()["base"] == "fid50k_full"
    assert official.with_counts(num_real=5000).name == "fid50k_full@real5k"
    assert get_protocol("pr50k3").with_counts(num_gen=2000).name == "pr50k3@gen2k"


def test_with_counts_never_stacks_and_returns_the_official_protocol_when_unchanged() -> None:
    official = get_protocol("kid50k_full")
    assert official.with_counts() is official
    assert official.with_counts(num_gen=50_000) is official
    quick = official.with_counts(num_gen=1000)
    again = quick.with_counts(num_real=3000)
    assert again.name == "kid50k_full@real3k" and again.num_gen == 50_000
    assert quick.with_counts(num_gen=50_000) is official


def test_protocols_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_protocol("fid50k").num_gen = 10  # type: ignore[misc]


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown protocol 'fid10k'.*fid50k_full.*pr50k3"):
        get_protocol("fid10k")
    with pytest.raises(ValueError, match=r"unknown metric 'ppl3'.*fid, is, kd, kid.*ppl, pr, prdc"):
        get_metric("ppl3")


def test_registration_errors() -> None:
    fid_spec = get_metric("fid")
    metadata = {field.name: getattr(fid_spec, field.name) for field in dataclasses.fields(fid_spec)}
    del metadata["name"], metadata["fn"]
    with pytest.raises(ValueError, match="registered twice"):
        register_metric("fid", **metadata)(lambda gen, real, settings, options: {"fid": 0.0})
    assert get_metric("fid") is fid_spec
    with pytest.raises(ValueError, match="primary value"):
        register_metric("other", **{**metadata, "primary": "b"})
    with pytest.raises(TypeError, match="must be a dataclass"):
        register_metric("other", **{**metadata, "settings_type": dict})
    official = get_protocol("fid50k_full")
    with pytest.raises(TypeError, match="settings must be FIDSettings"):
        register_protocol(dataclasses.replace(official, name="fid_bad", settings=KIDSettings()))
    with pytest.raises(ValueError, match="is 'generator' but metric 'fid' is 'feature'"):
        register_protocol(dataclasses.replace(official, name="fid_bad", kind="generator"))
    with pytest.raises(ValueError, match="registered twice"):
        register_protocol(dataclasses.replace(official, num_gen=7))
    with pytest.raises(ValueError, match="real_xflip"):
        dataclasses.replace(official, real_xflip="random")


@pytest.mark.parametrize("name", ["fid50k_full", "fid50k", "kid50k", "pr50k3_full", "prdc50k5"])
def test_every_protocol_dispatches_through_the_registry(name: str) -> None:
    protocol: Protocol = get_protocol(name).with_counts(num_gen=40, num_real=50)
    rng = np.random.default_rng(0)
    gen, real = rng.standard_normal((protocol.num_gen, 6)), rng.standard_normal((protocol.num_real, 6))
    spec = get_metric(protocol.metric)
    values = spec.fn(gen, real, protocol.settings, ComputeOptions(seed=3, block_size=16))
    assert tuple(values) == spec.value_keys
    assert all(np.isfinite(value) for value in values.values())


def test_detectors_are_registered_feature_extractors() -> None:
    import sgeval.features.registry as extractors  # an import error of our own is a failure, never a skip
    for protocol in list_protocols():
        if protocol.kind != "feature":
            continue
        spec = extractors.get_extractor_spec(protocol.detector)
        assert protocol.metric in spec.metrics, (protocol.name, spec.name)


def test_ppl_protocols_name_registered_distances() -> None:
    from sgeval.distances import get_distance_spec

    ppl = [protocol for protocol in list_protocols() if protocol.metric == "ppl"]
    assert {"ppl_zfull", "ppl_wfull", "ppl_zend", "ppl_wend", "ppl2_wend"} <= {protocol.name for protocol in ppl}
    for protocol in ppl:
        assert protocol.kind == "generator" and get_distance_spec(protocol.detector).name == protocol.detector


def test_a_protocol_says_which_helper_network_it_needs() -> None:
    """`detector` (as results record it) is read as one of three things, never guessed from its value."""
    fid, ppl, ls = resolve_protocol("fid50k_full"), resolve_protocol("ppl_wend"), resolve_protocol("ls")
    assert (fid.extractor, fid.distance, fid.uses_classifiers) == ("inception-v3-tf", None, False)
    assert (ppl.extractor, ppl.distance, ppl.uses_classifiers) == (None, "lpips-vgg16-nvidia", False)
    assert (ls.extractor, ls.distance, ls.uses_classifiers) == (None, None, True)
    assert resolve_protocol("ppl_wend+lpips-domain").distance == "lpips-domain"
