"""The golden-set comparison (benchmarks/golden.py): what counts as a difference, and what is left out."""

from __future__ import annotations

import math

from benchmarks.golden import _normalised, compare


def test_equal_sets_have_no_difference_and_every_change_is_named() -> None:
    golden = {"fid": [{"value": 1.25, "name": "fid50k_full", "counts": [10, 12], "flag": True, "none": None}]}
    assert compare(golden, golden) == []
    changed = {"fid": [{"value": 1.25 + 1e-12, "name": "fid50k", "counts": [10], "flag": False, "extra": 1}]}
    differences = compare(golden, changed)
    assert any(".fid[0].value" in line for line in differences)
    assert any(".fid[0].name" in line for line in differences)
    assert any(".fid[0].counts: 2 items, now 1" in line for line in differences)
    assert any(".fid[0].flag" in line for line in differences)
    assert any(".fid[0].none: missing" in line for line in differences)
    assert any(".fid[0].extra: unexpected" in line for line in differences)


def test_a_float_tolerance_applies_to_floats_only() -> None:
    assert compare({"v": 1.0}, {"v": 1.0 + 1e-9}) != []  # exact by default: the same machine gives the same bits
    assert compare({"v": 1.0}, {"v": 1.0 + 1e-9}, rel=1e-6) == []
    assert compare({"v": 1.0}, {"v": 1.1}, rel=1e-6) != []
    assert compare({"n": 3}, {"n": 4}, rel=0.5) != []  # counts are never approximate
    assert compare({"v": math.nan}, {"v": math.nan}) == []


def test_timings_versions_and_the_fixture_folder_are_left_out() -> None:
    record = {"total_time": 3.2, "timestamp": 1.0, "versions": {"torch": "x"}, "extra": {"timing_s": {"a": 1}},
              "snapshot": "/tmp/work-1/run/network-snapshot-000002.safetensors", "value": 2.0}
    assert _normalised(record, "/tmp/work-1") == {"extra": {}, "snapshot": "<work>/run/network-snapshot-000002"
                                                  ".safetensors", "value": 2.0}
