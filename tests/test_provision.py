"""`appliance provision` end to end into a throwaway root: the first run stops at a failing self-test
(the broker is down) and resumes once it is up; the next run changes nothing; the commissioning
record verifies, and its hash is in the audit log.

The root looks like a unit after `apt install lfr-appliance` (the package's users, state folder
and units); the broker is a real mosquitto running the config, ACL and certificates that
provisioning wrote into the root.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import ConfigError, InputError, SelfTestFailed
from appliance.provision import parse_plan, provision, verify_record
from appliance.provision.commission import RECORD_DIR
from appliance.provision.guided import PLAN_FILE, guided_plan
from appliance.provision.layout import Root
from appliance.selftest.reference import REFERENCE_IMAGE
from conftest import REPO, run_cli
from mqtt_helpers import require_mosquitto

pytestmark = pytest.mark.slow

def _host_ids(name: str, default: int) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return default, default
    return entry.pw_uid, entry.pw_gid


# mosquitto starts as root and drops to the host's `mosquitto` user: the root's must have its ids
IDS = {"appliance": (990, 990), "appliance-console": (991, 991), "mosquitto": _host_ids("mosquitto", 992)}
UIDS = {name: ids[0] for name, ids in IDS.items()}
UNIT_FILES = Path("/lib/systemd/system")


def packaged_root(root: Path) -> Path:
    """What the lfr-appliance package leaves behind: users, /var/lib/appliance, the units."""
    (root / "etc").mkdir(parents=True)
    users = "".join(f"{n}:x:{u}:{g}::/var/lib/{n}:/usr/sbin/nologin\n" for n, (u, g) in IDS.items())
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n" + users)
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:appliance\n" + "".join(f"{n}:x:{g}:\n" for n, (u, g) in IDS.items()))
    data = root / "var/lib/appliance"
    data.mkdir(parents=True, mode=0o700)
    os.chown(data, UIDS["appliance"], UIDS["appliance"])
    units = root / "lib/systemd/system"
    units.mkdir(parents=True)
    for unit in (REPO / "systemd").glob("*.service"):
        shutil.copy(unit, units)
    if (UNIT_FILES / "mosquitto.service").exists():
        shutil.copy(UNIT_FILES / "mosquitto.service", units)
    (root / "etc/systemd/system").mkdir(parents=True)
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: type, mode, owner, and content hash or link target (no times)."""
    state = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        state[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
    return state


def free_port() -> int:
    from lfr_tools.broker import free_port as port

    return port()


class ProvisionedBroker:
    """mosquitto on the config, ACL and certificates provisioning wrote (ports and data moved out)."""

    def __init__(self, root: Path, work: Path, unit_port: int) -> None:
        lfr = root / "etc/mosquitto/lfr"
        text = (lfr / "mosquitto.conf").read_text()
        swaps = {"listener 8884 127.0.0.1": f"listener {unit_port} 127.0.0.1",
                 "listener 8883\n": f"listener {free_port()} 127.0.0.1\n",
                 "/etc/mosquitto/lfr/": f"{lfr}/", "/var/lib/mosquitto/": f"{work}/data/",
                 "log_dest stderr": f"log_dest file {work}/mosquitto.log"}
        for old, new in swaps.items():
            assert old in text, old
            text = text.replace(old, new)
        (work / "data").mkdir(parents=True)
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(text)
        for path in (work, work / "data"):
            os.chown(path, *IDS["mosquitto"])
        self.port = unit_port
        self.proc = None

    def start(self) -> None:
        from lfr_tools.broker import _accepts, mosquitto_binary

        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import time

        deadline = time.monotonic() + 10
        while not _accepts(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def frames(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    face = cv2.imread(str(REFERENCE_IMAGE))
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[90:266, 200:376] = face
    cv2.imwrite(str(folder / "000.png"), frame)
    return folder


def authority_key(folder: Path) -> str:
    from appliance.authority import public_string
    from lfr_tools.backoffice.authority import init_authority, load_authority

    init_authority(folder)
    return public_string(load_authority(folder).public_key())


def make_plan(tmp_path: Path, frames: Path, port: int) -> dict:
    return {"unit": {"id": "van-07", "profile": "rpi5-cpu"},
            "authorities": [authority_key(tmp_path / "authority")],
            "certificates": {"tablets": ["tablet-01", "tablet-02"], "consoles": ["console-01"],
                             "broker_san": "DNS:van-broker,DNS:localhost,IP:127.0.0.1"},
            "officers": [{"id": "PC-4521", "name": "A. Officer"}],
            "config": {"capture": {"backend": "replay", "source": str(frames), "fps": 0.0},
                       "inference": {"backend": "litert", "models_dir": str(REPO / "models" / "cache")},
                       "mqtt": {"port": port}}}


@pytest.fixture
def root(tmp_path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("provisioning sets owners: needs root (CI runs as root)")
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed here (Debian package systemd)")
    require_mosquitto()
    # pytest's own folders are 0700 root: the broker, once it drops to user mosquitto, could not
    # reach its files there, so this root lives in a folder others may traverse
    base = Path(tempfile.mkdtemp(prefix="provision-", dir="/tmp"))
    base.chmod(0o755)
    yield packaged_root(base / "root")
    shutil.rmtree(base)


def test_provision_end_to_end_resumes_then_changes_nothing(root, tmp_path, frames):
    port = free_port()
    plan = parse_plan(make_plan(tmp_path, frames, port), Path("plan.toml"))
    with pytest.raises(SelfTestFailed, match="broker"):  # the broker is not running yet
        provision(plan, root)
    assert not (root / RECORD_DIR.lstrip("/")).exists()
    broker = ProvisionedBroker(root, root.parent / "broker", port)  # the files the first run wrote
    broker.start()
    try:
        steps, results = provision(plan, root)  # resumed: everything before commissioning is in place
        assert {s.step: s.changed for s in steps} == {"config": False, "keys": False, "certificates": False,
                                                      "officers": False, "services": False, "commissioning": True}
        outcomes = {r.name: r.outcome.name for r in results}
        assert outcomes["broker"] == "PASS" and outcomes["camera"] == "PASS" and outcomes["keys"] == "PASS"
        assert outcomes["audit"] == "PASS" and outcomes["deployment"] == "PASS"
        assert "FAIL" not in outcomes.values(), results
        before = snapshot(root)
        again, _ = provision(plan, root)
        assert not any(s.changed for s in again), again
        assert snapshot(root) == before
    finally:
        broker.stop()
    check_layout(root)
    check_record(root)


def check_layout(root: Path) -> None:
    def owner_mode(path: str) -> tuple[int, int]:
        st = (root / path.lstrip("/")).stat()
        return st.st_uid, stat.S_IMODE(st.st_mode)

    assert owner_mode("/etc/appliance/mqtt/unit.key") == (UIDS["appliance"], 0o600)
    assert owner_mode("/etc/appliance-console/mqtt/console.key") == (UIDS["appliance-console"], 0o600)
    assert owner_mode("/etc/mosquitto/lfr/broker.key") == (UIDS["mosquitto"], 0o600)
    assert owner_mode("/var/lib/appliance/keys/unit-ed25519.pem") == (UIDS["appliance"], 0o600)
    assert owner_mode("/var/lib/lfr-provision/tablets/tablet-02/tablet-02.key") == (0, 0o600)
    cfg = tomllib.loads((root / "etc/appliance/appliance.toml").read_text())
    assert cfg["unit"] == {"id": "van-07", "data_dir": "/var/lib/appliance"}
    assert cfg["mqtt"]["enabled"] is True and cfg["capture"]["backend"] == "replay"
    assert "# Board profile: Raspberry Pi 5" in (root / "etc/appliance/appliance.toml").read_text()  # comments kept
    acl = (root / "etc/mosquitto/lfr/acl").read_text()
    assert "user van-07\ntopic write lfr/v1/van-07/alert" in acl and "user tablet-02" in acl
    assert "van-dev-01" not in acl
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert {"appliance.service", "appliance-console.service"} <= {p.name for p in wants.iterdir()}


def check_record(root: Path) -> None:
    (record_path,) = (root / RECORD_DIR.lstrip("/")).glob("commissioning-*.json")
    audit_db = root / "var/lib/appliance/audit.db"
    record = verify_record(record_path, audit_db)
    assert record["inputs"]["unit"] == "van-07" and record["selftest"]["verdict"] in ("PASS", "WARN")
    assert record["inputs"]["model_hashes"]["mobilefacenet"].startswith("d8ba40c0")
    cli = run_cli("provision-verify", str(record_path), "--audit-db", str(audit_db))
    assert cli.returncode == 0 and "signature OK" in cli.stdout and "hash found in the audit log" in cli.stdout
    signed = json.loads(record_path.read_text())
    signed["record"]["selftest"]["verdict"] = "PASS" if signed["record"]["selftest"]["verdict"] == "WARN" else "WARN"
    forged = record_path.with_name("forged.json")
    forged.write_text(json.dumps(signed))
    with pytest.raises(InputError, match="signature does not verify"):
        verify_record(forged)


def test_a_new_tablet_is_issued_from_the_existing_ca_and_nothing_else_changes(root, tmp_path, frames):
    from appliance.provision.certs import certificates

    data = make_plan(tmp_path, frames, free_port())
    where = Root(root)
    assert certificates(where, parse_plan(data, Path("p"))).changed
    ca = root / "var/lib/lfr-provision/van-ca"
    unit_cert = (ca / "van-07.crt").read_bytes()
    data["certificates"]["tablets"].append("tablet-03")
    result = certificates(where, parse_plan(data, Path("p")))
    assert result.changed and (root / "var/lib/lfr-provision/tablets/tablet-03/tablet-03.crt").exists()
    assert (ca / "van-07.crt").read_bytes() == unit_cert
    assert "user tablet-03" in (root / "etc/mosquitto/lfr/acl").read_text()
    (ca / "ca.key").unlink()  # moved off the van, as the guide says
    data["certificates"]["tablets"].append("tablet-04")
    from appliance.errors import KeyStoreError

    with pytest.raises(KeyStoreError, match="needs the van CA") as refused:
        certificates(where, parse_plan(data, Path("p")))
    assert "put the van CA (ca.crt, ca.key) back" in refused.value.fix


def test_guided_mode_asks_what_is_missing_and_resumes_from_saved_answers(tmp_path):
    root = Root(tmp_path)
    key = authority_key(tmp_path / "authority")
    answers = iter(["van-09", "rpi5-cpu", key, "tablet-01 tablet-02", "PC-1 PC-2"])
    asked = []

    def ask(question, **kwargs):
        asked.append(question)
        return next(answers)

    plan = guided_plan(root, {}, ["rpi5-cpu", "rpi5-hailo8l"], ask)
    assert plan.unit.id == "van-09" and plan.certificates.tablets == ["tablet-01", "tablet-02"]
    assert [o.id for o in plan.officers] == ["PC-1", "PC-2"] and len(asked) == 5
    saved = root(PLAN_FILE)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    again = guided_plan(root, {}, ["rpi5-cpu"], lambda *a, **k: pytest.fail("asked again"))
    assert again == plan


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d["unit"].update(id="Van 7"), "unit.id"),
    (lambda d: d.update(authorities=["ed25519:not-a-key"]), "authorit"),
    (lambda d: d["certificates"].update(tablets=["van-07"]), "differ"),
    (lambda d: d.update(colour="blue"), "unknown key"),
])
def test_a_bad_provisioning_file_is_refused_naming_the_key(tmp_path, frames, edit, reason):
    data = make_plan(tmp_path, frames, 8884)
    edit(data)
    with pytest.raises(ConfigError, match=reason):
        parse_plan(data, Path("plan.toml"))


def test_a_profile_override_that_breaks_the_config_writes_nothing(tmp_path, frames):
    from appliance.provision.steps import write_config

    data = make_plan(tmp_path, frames, 8884)
    data["config"]["match"] = {"threshold": 0.1}  # below the model's floor (G7)
    with pytest.raises(ConfigError, match="threshold"):
        write_config(Root(tmp_path / "r"), parse_plan(data, Path("p")))
    assert not (tmp_path / "r/etc/appliance/appliance.toml").exists()
