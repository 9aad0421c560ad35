"""Provisioning fetch of Hailo HEFs: a pinned file is checked, an unpinned one is kept but reported,
and the runtime still refuses it until its hash is committed. Served from file:// URLs (no network)."""
from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from appliance.errors import ModelError
from appliance.modelstore import load_manifest, model_path
from lfr_tools import modelfetch


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """The manifest's hailo8l HEFs, served from a local folder instead of the zoo's bucket."""
    real, served, specs = load_manifest(), tmp_path / "zoo", {}
    served.mkdir()
    for name, spec in real.items():
        if spec.chip == "hailo8l":
            blob = served / name
            blob.write_bytes(f"HEF {name}".encode())
            specs[name] = replace(spec, url=blob.as_uri())
    merged = {**real, **specs}
    monkeypatch.setattr(modelfetch, "load_manifest", lambda path=None: merged)
    monkeypatch.setattr("appliance.modelstore.load_manifest", lambda path=None: merged)
    return merged, tmp_path / "models"


def test_unpinned_hefs_are_fetched_reported_and_still_refused_at_run_time(zoo):
    specs, models = zoo
    fetched = modelfetch.fetch_hefs("hailo8l", models)
    assert {f.name for f in fetched} == {n for n, s in specs.items() if s.chip == "hailo8l"}
    first = next(f for f in fetched if f.name == "scrfd_2.5g-hailo8l")
    assert not first.pinned and first.sha256 == hashlib.sha256(b"HEF scrfd_2.5g-hailo8l").hexdigest()
    assert first.path == models / "hailo8l" / "scrfd_2.5g.hef" and first.path.exists()
    assert f'[models."scrfd_2.5g-hailo8l"]  sha256 = "{first.sha256}"' in modelfetch.pin_lines(fetched)
    with pytest.raises(ModelError, match="no pinned SHA-256"):
        model_path("scrfd_2.5g-hailo8l", models)


def test_a_pinned_hef_is_checked_and_a_changed_one_refused(zoo):
    specs, models = zoo
    good = hashlib.sha256(b"HEF arcface_r50-hailo8l").hexdigest()
    specs["arcface_r50-hailo8l"] = replace(specs["arcface_r50-hailo8l"], sha256=good)
    fetched = modelfetch.fetch_hef(specs["arcface_r50-hailo8l"], models)
    assert fetched.pinned and model_path("arcface_r50-hailo8l", models) == fetched.path
    bad = replace(specs["scrfd_10g-hailo8l"], sha256="0" * 64)
    with pytest.raises(ModelError, match="refusing it"):
        modelfetch.fetch_hef(bad, models)
    assert not (models / bad.file).exists() and not list(models.rglob("*.part"))


def test_an_unknown_chip_and_an_unreachable_url_name_the_fix(zoo, tmp_path):
    specs, models = zoo
    with pytest.raises(ModelError, match="no HEFs for chip"):
        modelfetch.fetch_hefs("hailo15h", models)
    gone = replace(specs["scrfd_10g-hailo8l"], url=(tmp_path / "nowhere.hef").as_uri())
    with pytest.raises(ModelError, match="cannot download") as err:
        modelfetch.fetch_hef(gone, models)
    assert "internet" in err.value.fix
