"""Every bundle the unit must refuse: a clear message, and nothing loaded, recorded or kept."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lfr_tools.backoffice.authority import init_authority
from appliance.errors import WatchlistError
from appliance.watchlist import container

from watchlist_helpers import make_unit, seal, synthetic_entries, window, write_bundle


@pytest.fixture()
def unit(tmp_path):
    return make_unit(tmp_path)


@pytest.fixture(scope="module")
def entries():
    return synthetic_entries(5)


def refused(unit, path: Path, match: str, **deployment_kwargs) -> WatchlistError:
    """Start must raise WatchlistError matching ``match``, and leave nothing loaded or stored."""
    dep = unit.deployment(**deployment_kwargs)
    with pytest.raises(WatchlistError, match=match) as info:
        dep.start(path, "Test Street")
    assert info.value.fix, "every refusal names a fix"
    assert dep.records.active() is None
    assert dep.current_watchlist() is None
    assert dep._loaded is None
    assert unit.keys.deployment_names() == []
    assert not dep.bundle_dir.exists() or list(dep.bundle_dir.iterdir()) == []
    assert "watchlist_load" not in unit.event_types() and "deployment_start" not in unit.event_types()
    assert unit.event_types()[-1] == "watchlist_refused"
    return info.value


def test_accepts_a_good_bundle_first(unit, entries, tmp_path):
    """The control case: the same helpers make a bundle that loads, so each refusal below is real."""
    dep = unit.deployment()
    record = dep.start(write_bundle(tmp_path, seal(unit, unit.authority_dir, entries)), "Test Street")
    assert record.entry_count == 5
    watchlist = dep.current_watchlist()
    assert watchlist is not None and watchlist.subject_refs == [e.subject_ref for e in entries]
    assert bytes(watchlist.entries[2]["thumbnail"]) == entries[2].thumbnail


def test_altered_manifest(unit, entries, tmp_path):
    data = seal(unit, unit.authority_dir, entries)
    assert data.count(b"PS-4521") == 1
    path = write_bundle(tmp_path, data.replace(b"PS-4521", b"PS-4522"))
    refused(unit, path, "manifest signature does not verify")


def test_altered_payload(unit, entries, tmp_path):
    data = bytearray(seal(unit, unit.authority_dir, entries))
    data[-100] ^= 0x01
    refused(unit, write_bundle(tmp_path, bytes(data)), "payload was altered")


@pytest.mark.parametrize("keep", [20, 300, -50])
def test_truncated_file(unit, entries, tmp_path, keep):
    data = seal(unit, unit.authority_dir, entries)
    refused(unit, write_bundle(tmp_path, data[:keep]), "truncated")


def test_garbage_bytes(unit, tmp_path):
    refused(unit, write_bundle(tmp_path, os.urandom(5000)), "not a watchlist bundle")


def test_garbage_after_magic(unit, tmp_path):
    refused(unit, write_bundle(tmp_path, container.MAGIC + b"\x00\x00\x00\x10" + os.urandom(200)),
            "manifest refused: manifest is not UTF-8 JSON|manifest refused")


def test_untrusted_signer(unit, entries, tmp_path):
    rogue = tmp_path / "rogue-authority"
    init_authority(rogue)
    path = write_bundle(tmp_path, seal(unit, rogue, entries))
    refused(unit, path, "does not trust")


def test_bundle_for_another_unit(unit, entries, tmp_path):
    other = make_unit(tmp_path, "other")
    path = write_bundle(tmp_path, seal(other.recipient, unit.authority_dir, entries))
    refused(unit, path, "built for another unit")


def test_expired(unit, entries, tmp_path):
    path = write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, win=window(-7200, -60)))
    refused(unit, path, "expired")


def test_not_yet_valid(unit, entries, tmp_path):
    path = write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, win=window(3600, 7200)))
    refused(unit, path, "not yet valid")


def test_wrong_model_id(unit, entries, tmp_path):
    path = write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, model_id="dlib-resnet@0123456789ab"))
    refused(unit, path, r"enrolled with model\(s\) dlib-resnet@0123456789ab; this unit runs mobilefacenet")


def test_older_version_of_same_deployment(unit, entries, tmp_path):
    dep = unit.deployment()
    dep.start(write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, version=3), "v3.lfrwl"), "A")
    dep.end()
    unit.events.clear()
    old = write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, version=2), "v2.lfrwl")
    refused(unit, old, "rollback refused")


def test_same_version_again_after_end(unit, entries, tmp_path):
    """A purged deployment cannot be brought back with the very same bundle."""
    path = write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, version=1))
    dep = unit.deployment()
    dep.start(path, "A")
    dep.end()
    unit.events.clear()
    refused(unit, path, "rollback refused")


def test_duplicate_subject_refs(unit, tmp_path):
    twins = synthetic_entries(4, refs=["WL-1", "WL-2", "WL-1", "WL-3"])
    refused(unit, write_bundle(tmp_path, seal(unit, unit.authority_dir, twins, checked=False)),
            "duplicate subject refs")


def test_over_the_size_bound(unit, entries, tmp_path):
    data = seal(unit, unit.authority_dir, entries)
    error = refused(unit, write_bundle(tmp_path, data), "over the bound", max_bundle_bytes=len(data) - 1)
    assert str(len(data)) in error.message


def test_missing_file(unit, tmp_path):
    dep = unit.deployment()
    with pytest.raises(WatchlistError, match="no bundle at"):
        dep.start(tmp_path / "nope.lfrwl", "A")
    assert dep.records.active() is None
