"""The pipeline works under appliance.service's system call filter, reproduced with libseccomp.

appliance.service allows @system-service and then denies @privileged and @resources with
EPERM. systemd is not PID 1 on a build machine, so the same allow and deny lists (expanded
by `systemd-analyze syscall-filter`) are loaded with libseccomp into a child process, which
replays a clip through `appliance run` with the core-dump hardening applied first: the run
must give its alert, and a call the filter denies must fail in that process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.selftest.reference import REFERENCE_IMAGE
from conftest import REPO

UNIT = REPO / "systemd" / "appliance.service"
SCMP_ACT_ALLOW = 0x7FFF0000
NAME = re.compile(r"^[a-z0-9_]+$|^@[a-z-]+$")


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def expand(tool: str, group: str, seen: set[str] | None = None) -> set[str]:
    """Every system call in a systemd syscall group, nested groups expanded."""
    seen = seen if seen is not None else set()
    out = subprocess.run([tool, "syscall-filter", "--no-pager", group], capture_output=True, text=True,
                         check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#") or not NAME.match(word):
            continue
        if word.startswith("@"):
            if word not in seen:
                seen.add(word)
                calls |= expand(tool, word, seen)
        else:
            calls.add(word)
    return calls


def unit_filter() -> tuple[str, list[str]]:
    """(allow group, deny groups) as appliance.service states them."""
    lines = [l.split("=", 1)[1].strip() for l in UNIT.read_text().splitlines() if l.startswith("SystemCallFilter=")]
    allow = [l for l in lines if not l.startswith("~")]
    deny = [g for l in lines if l.startswith("~") for g in l[1:].split()]
    assert allow == ["@system-service"], lines
    return allow[0], deny


class Seccomp:
    """An allow-list filter built in the parent and loaded in the child (preexec_fn)."""

    def __init__(self, allowed: set[str]) -> None:
        name = ctypes.util.find_library("seccomp")
        if name is None:
            pytest.skip("libseccomp is not installed (Debian libseccomp2, a dependency of systemd)")
        self.lib = ctypes.CDLL(name, use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.ctx = self.lib.seccomp_init(scmp_act_errno(errno.EPERM))
        self.allowed = 0
        for call in sorted(allowed):
            number = self.lib.seccomp_syscall_resolve_name(call.encode())
            if number >= 0 and self.lib.seccomp_rule_add(self.ctx, SCMP_ACT_ALLOW, number, 0) == 0:
                self.allowed += 1

    def load(self) -> None:
        """preexec_fn: sets no_new_privs and loads the filter into the child."""
        if self.lib.seccomp_load(self.ctx) != 0:
            raise OSError(ctypes.get_errno(), "seccomp_load failed")


@pytest.fixture(scope="module")
def unit_seccomp() -> Seccomp:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here: the unit's syscall groups cannot be expanded")
    allow, deny = unit_filter()
    allowed = expand(tool, allow)
    denied = set().union(*(expand(tool, group) for group in deny))
    assert {"setpriority", "sched_setaffinity", "setuid", "chown"} <= denied
    return Seccomp(allowed - denied)


def test_denied_calls_fail_with_eperm_in_the_filtered_process(unit_seccomp):
    probe = "import os\ntry:\n    os.setpriority(os.PRIO_PROCESS, 0, 5)\nexcept PermissionError:\n    print('EPERM')\n"
    out = subprocess.run([sys.executable, "-c", probe], preexec_fn=unit_seccomp.load, capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.strip() == "EPERM", out.stderr


def deployed_reference_face(tmp_path: Path) -> tuple[Path, str]:
    """A unit whose active, signed deployment enrols the reference face as REF-1; (data dir, authority key)."""
    from appliance.authority import public_string
    from appliance.config import Config
    from appliance.vision.engine import FaceEngine, decode_image
    from appliance.watchlist.payload import Entry
    from lfr_tools.backoffice.authority import load_authority
    from watchlist_helpers import make_unit, seal, write_bundle

    with FaceEngine.from_config(Config.model_validate(
            {"inference": {"backend": "litert", "models_dir": str(REPO / "models" / "cache")}})) as engine:
        enrolment = engine.enrol_image(decode_image(REFERENCE_IMAGE))
    unit = make_unit(tmp_path)
    entry = Entry(subject_ref="REF-1", category="test", image_source="face_recognition 1.3.0 obama.jpg",
                  capture_date="2026-01-15", review_by="2027-01-15",
                  embeddings={enrolment.model_id: enrolment.embedding},
                  thumbnail=enrolment.thumbnail_jpeg)
    deployment = unit.deployment()
    deployment.start(write_bundle(tmp_path / "in", seal(unit, unit.authority_dir, [entry])), "syscall test")
    deployment.close()
    return unit.data_dir, public_string(load_authority(unit.authority_dir).public_key())


RUN = """
import json, sys
from appliance.hardening import disable_core_dumps
state = disable_core_dumps()
print(json.dumps({"rlimit_core": state.rlimit_core, "dumpable": state.dumpable}), file=sys.stderr)
from appliance.cli import main
raise SystemExit(main(["run", "--config", sys.argv[1]]))
"""


@pytest.mark.parametrize("backend", ["litert", "onnx"])
def test_the_pipeline_replays_a_clip_under_the_unit_filter(unit_seccomp, tmp_path, backend):
    frames = tmp_path / "frames"
    frames.mkdir()
    face = cv2.imread(str(REFERENCE_IMAGE))
    for i in range(6):
        frame = np.full((360, 640, 3), 90, np.uint8)
        frame[90:266, 150 + 15 * i:326 + 15 * i] = face
        cv2.imwrite(str(frames / f"{i:03d}.png"), frame)
    data, authority = deployed_reference_face(tmp_path)
    config = tmp_path / "unit.toml"
    config.write_text(f'[unit]\nid = "van-dev-01"\ndata_dir = "{data}"\n'
                      f'[capture]\nbackend = "replay"\nsource = "{frames}"\nfps = 0.0\n'
                      f'[inference]\nbackend = "{backend}"\nmodels_dir = "{REPO / "models" / "cache"}"\nthreads = 2\n'
                      f'[watchlist]\ntrusted_authorities = ["{authority}"]\n')
    proc = subprocess.run([sys.executable, "-c", RUN, str(config)], preexec_fn=unit_seccomp.load,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hardening = json.loads(proc.stderr.splitlines()[0])
    assert hardening == {"rlimit_core": [0, 0], "dumpable": 0}
    alerts = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [a["subject_ref"] for a in alerts] == ["REF-1"]
    counters = json.loads(next(l for l in proc.stderr.splitlines() if l.startswith('{"counters"')))["counters"]
    assert counters["frames"] == 6
    print(proc.stderr[-1500:])  # what the runtimes said about the denied calls (pytest -s)
