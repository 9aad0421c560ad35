"""The runtime works installed as a wheel, outside the checkout: no repository-relative paths.

Builds the `lfr-appliance` wheel, installs it into a fresh virtualenv (dependencies from the
package index, as a unit image would be built), and from a directory outside the checkout runs
the field sequence with that install only: keys init, deployment start of a signed bundle,
`appliance run` on a replay. The tools package is not installed there, so its commands are absent.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lfr_tools.scenes import Actor, background, write_clip
from deployment_helpers import authority_line, signed_bundle
from scene_helpers import lfw_people, sprite_from

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _sh(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the built wheel (and its dependencies), nothing from the checkout."""
    root = tmp_path_factory.mktemp("wheel")
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", root / "dist", REPO)
    wheel, = (root / "dist").glob("lfr_appliance-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "appliance/data/manifest.toml" in names and any(n.startswith("appliance/data/accuracy/") for n in names)
    assert not any(n.startswith(("lfr_tools/", "tests/")) for n in names), "tooling must not ship to a unit"
    _sh(sys.executable, "-m", "venv", root / "venv")
    _sh(root / "venv" / "bin" / "pip", "install", "--quiet", wheel)
    return root / "venv" / "bin"


def test_the_installed_wheel_runs_a_signed_deployment_outside_the_checkout(installed, engine, lfw, tmp_path):
    work = tmp_path / "unit"  # not under the checkout
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _sh(installed / "python", "-c", "import appliance; print(appliance.__file__)", cwd=work, env=env)
    assert where.stdout.startswith(str(installed.parent)), where.stdout
    assert "bench" not in _sh(installed / "appliance", "--help", cwd=work, env=env).stdout

    wanted = lfw_people(lfw, min_images=2)[0]
    sprite = sprite_from(engine, sorted(wanted.glob("*.jpg"))[1], wanted.name)
    write_clip(work / "clip", background((960, 540), seed=4), [Actor(sprite, 0, 19, (150.0, 200.0), (600.0, 220.0), 100)], 20)
    config = work / "appliance.toml"
    config.write_text(f'[unit]\ndata_dir = "{work / "data"}"\n[capture]\nsource = "{work / "clip"}"\n'
                      f'[inference]\nbackend = "litert"\nmodels_dir = "{(REPO / "models" / "cache").resolve()}"\n'
                      f'[watchlist]\ntrusted_authorities = ["{authority_line(tmp_path / "office")}"]\n')
    appliance = installed / "appliance"
    _sh(appliance, "keys", "init", "--config", config, cwd=work, env=env)
    recipient = [line.split()[-1] for line in _sh(appliance, "keys", "show", "--config", config, cwd=work,
                                                    env=env).stdout.splitlines() if line.startswith("age recipient")][0]
    bundle = signed_bundle(tmp_path / "office", {"WANTED-1": sorted(wanted.glob("*.jpg"))[0]}, engine, recipient)
    _sh(appliance, "deployment", "start", "--bundle", bundle, "--location", "wheel test", "--config", config,
        cwd=work, env=env)
    run = _sh(appliance, "run", "--config", config, cwd=work, env=env)
    alerts = [json.loads(line) for line in run.stdout.splitlines()]
    assert [a["subject_ref"] for a in alerts] == ["WANTED-1"], run.stderr[-2000:]
