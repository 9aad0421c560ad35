"""Every backend name is written once, in its registry (and as its module's KEY), and every list
of names (config, CLI choices, `appliance backends`, the auto order) derives from the registries."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from appliance import capture, inference
from appliance.cli import main
from appliance.config import Config, parse_config
from appliance.errors import ConfigError
from appliance.keystore import KEYSTORES

REPO = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((REPO / "appliance").rglob("*.py")), *sorted((REPO / "tools" / "lfr_tools").rglob("*.py"))]
REGISTRIES = {"appliance/inference/__init__.py": inference.BACKENDS, "appliance/capture/__init__.py": capture.CAPTURES}


def _backend_names() -> dict[str, str]:
    """Backend name -> the module allowed to spell it (its own file)."""
    names = {}
    for registry in REGISTRIES.values():
        for key, module in registry.items():
            names[key] = module.replace(".", "/") + ".py"
    return names


def _string_constants(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_no_backend_name_is_written_outside_its_registry():
    names = _backend_names()
    found = []
    for path in SOURCES:
        rel = path.relative_to(REPO).as_posix()
        for line, value in _string_constants(path):
            if value in names and rel not in (names[value], *REGISTRIES):
                found.append(f"{rel}:{line}: {value!r}")
    assert found == [], "backend names written outside their registry:\n" + "\n".join(found)


def test_the_scan_would_catch_a_hard_coded_name(tmp_path):
    """Guard against a vacuous scan: a module naming a backend is found."""
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('BACKEND = "litert"\nCHOICES = ["auto", "onnx"]\n')
    assert {v for _, v in _string_constants(sneaky)} & set(_backend_names()) == {"litert", "onnx"}


def test_key_stores_are_opened_by_registry_name_only():
    """open_keystore(...) never with a literal name: the unit's config names its one key store."""
    calls = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "open_keystore":
                if node.args and isinstance(node.args[0], ast.Constant):
                    calls.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls == []


@pytest.mark.parametrize("registry", [inference.BACKENDS, capture.CAPTURES, KEYSTORES])
def test_each_module_declares_the_key_it_is_registered_under(registry):
    for key, module in registry.items():
        assert importlib.import_module(module).KEY == key


def test_config_accepts_exactly_the_registered_backends(tmp_path):
    for key in inference.BACKENDS:
        assert parse_config({"inference": {"backend": key}}, tmp_path / "c.toml").inference.backend == key
    for key in capture.CAPTURES:
        assert parse_config({"capture": {"backend": key}}, tmp_path / "c.toml").capture.backend == key
    with pytest.raises(ConfigError) as err:
        parse_config({"inference": {"backend": "tpu"}}, tmp_path / "c.toml")
    assert all(f"'{k}'" in err.value.message for k in inference.names())
    assert Config().keystore.backend == next(iter(KEYSTORES))


def test_a_backend_added_to_the_registry_reaches_config_cli_and_auto(monkeypatch, capsys):
    """A new backend module registered once shows up everywhere names are listed."""
    monkeypatch.setitem(inference.BACKENDS, "fake", "inference_fake_backend")
    inference.settings_classes.cache_clear()
    try:
        assert "fake" in inference.names()
        assert inference.auto_order()[0] == "fake"  # it declares AUTO_PRIORITY -1
        chosen, settings = inference.choose(inference.AutoSettings(threads=3))
        assert chosen.KEY == "fake" and settings.backend == "fake" and settings.threads == 3
        assert main(["backends"]) == 0
        assert "inference fake       available" in capsys.readouterr().out
    finally:
        inference.settings_classes.cache_clear()


def test_every_settings_class_is_tagged_with_its_key():
    for key in inference.BACKENDS:
        assert inference.backend_module(key).Settings().backend == key
    for key in capture.CAPTURES:
        assert capture.capture_module(key).Settings().backend == key
