"""The self-test, and the commissioning record: signed JSON, its hash in the audit log.

The record says which unit this is (id, key fingerprints, certificate), what it runs
(software, model hashes, config hash, trusted authorities) and what the self-test found.
It is signed with the unit's Ed25519 key over its RFC 8785 canonical form, written to
/var/lib/appliance/commissioning/, and its SHA-256 goes into the audit log as a
``commissioned`` entry. A later run with the same inputs finds the record and changes nothing.
"""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from .. import __version__
from ..audit.log import AuditLog, connect, iter_entries
from ..authority import PREFIX, key_fingerprint, parse_public
from ..config import Config, load_config
from ..errors import InputError, SelfTestFailed
from ..keystore.file import FileKeyStore, fingerprint
from ..modelstore import load_manifest
from ..selftest import Outcome, SelfTestContext, overall, run_selftest
from ..selftest.probes import BUILD_INFO
from .layout import CONFIG, DATA_DIR, MQTT_DIR, UNIT_USER, Root, chown_tree, ensure_dir, put
from .plan import ProvisionPlan
from .steps import StepResult

RECORD_DIR = f"{DATA_DIR}/commissioning"
FORMAT = "lfr-commissioning"


def rebased(root: Root, cfg: Config) -> Config:
    """The unit's config with its paths moved into ``root`` where they exist there (tests, chroots)."""
    def moved(path: str) -> str:
        return str(root(path)) if Path(path).is_absolute() and root(path).exists() else path

    if root.is_live:
        return cfg
    source = getattr(cfg.capture, "source", None)
    return cfg.model_copy(update={
        "unit": cfg.unit.model_copy(update={"data_dir": moved(cfg.unit.data_dir)}),
        "inference": cfg.inference.model_copy(update={"models_dir": moved(cfg.inference.models_dir)}),
        "capture": cfg.capture.model_copy(update={"source": moved(source)}) if source else cfg.capture,
        "mqtt": cfg.mqtt.model_copy(update={k: moved(getattr(cfg.mqtt, k)) for k in ("ca_file", "cert_file", "key_file")})})


def software() -> dict:
    """Version and build of the running software (build-info.json from `make deb` when present)."""
    try:
        build = json.loads(BUILD_INFO.read_text())
    except (OSError, ValueError):
        build = {}
    return {"version": __version__, "commit": build.get("commit", "checkout"), "build_time": build.get("build_time")}


def inputs(root: Root, plan: ProvisionPlan, cfg: Config) -> dict:
    """What the unit is: everything but the self-test results and the time."""
    store = FileKeyStore(root(DATA_DIR) / "keys")
    cert = x509.load_pem_x509_certificate(root(f"{MQTT_DIR}/unit.crt").read_bytes())
    names = [cfg.detect.model, "mobilefacenet"] + (["blazeface-short"] if cfg.detect.focus_tracks else [])
    specs = load_manifest()
    return {"unit": plan.unit.id, "profile": plan.unit.profile, "software": software(),
            "config_sha256": hashlib.sha256(root(CONFIG).read_bytes()).hexdigest(),
            "model_hashes": {n: specs[n].sha256 for n in dict.fromkeys(names) if n in specs},
            "signing_key": PREFIX + base64.b64encode(store.signing_public_raw()).decode(),
            "signing_fingerprint": fingerprint(store.signing_public_raw()),
            "age_recipient": store.age_recipient(),
            "mqtt_certificate_sha256": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
            "trusted_authorities": sorted(key_fingerprint(parse_public(a)) for a in plan.authorities)}


def digest(obj: dict) -> str:
    """SHA-256 of the RFC 8785 canonical JSON of ``obj``."""
    return hashlib.sha256(rfc8785.dumps(obj)).hexdigest()


def existing_record(root: Root, want: str) -> Path | None:
    """The newest record whose inputs digest is ``want``."""
    folder = root(RECORD_DIR)
    for path in sorted(folder.glob("commissioning-*.json"), reverse=True) if folder.is_dir() else []:
        if json.loads(path.read_text())["record"].get("inputs_digest") == want:
            return path
    return None


def selftest(root: Root, cfg: Config) -> list:
    """Run the self-test on the unit as provisioned (paths inside ``root``)."""
    return run_selftest(SelfTestContext(rebased(root, cfg), service_uid=root.uid(UNIT_USER)))


def _sign(store: FileKeyStore, record: dict) -> dict:
    signature = store.signing_key().sign(rfc8785.dumps(record))
    return {"record": record, "signature": base64.b64encode(signature).decode(),
            "public_key": PREFIX + base64.b64encode(store.signing_public_raw()).decode()}


def _audit(root: Root, cfg: Config, store: FileKeyStore, record: dict, record_hash: str, counts: dict) -> None:
    from ..audit.sink import audit_db_path  # noqa: PLC0415

    log = AuditLog.open(audit_db_path(rebased(root, cfg)), store.signing_key(), cfg.unit.id)
    try:
        log.append("commissioned", {"record_hash": record_hash, "software_version": record["inputs"]["software"]["version"],
                                    "model_hashes": record["inputs"]["model_hashes"],
                                    "key_fingerprint": record["inputs"]["signing_fingerprint"], "selftest": counts})
    finally:
        log.close()


def _ensure_audit_log(root: Root, cfg: Config) -> None:
    """Create the unit's audit log (its first entry names the unit key) if it does not exist yet,
    so that the self-test verifies it; an existing log is not touched."""
    from ..audit.sink import audit_db_path  # noqa: PLC0415

    db = audit_db_path(rebased(root, cfg))
    if not db.exists():
        AuditLog.open(db, FileKeyStore(root(DATA_DIR) / "keys").signing_key(), cfg.unit.id).close()
        chown_tree(root(DATA_DIR), root.uid(UNIT_USER), root.gid(UNIT_USER))


def commission(root: Root, plan: ProvisionPlan) -> tuple[StepResult, list]:
    """Self-test; unless an identical record exists, sign and write a new one and audit its hash."""
    cfg = load_config(root(CONFIG))
    _ensure_audit_log(root, cfg)
    results = selftest(root, cfg)
    unit_inputs = inputs(root, plan, cfg)
    want = digest(unit_inputs)
    found = existing_record(root, want)
    if found is not None:
        return StepResult("commissioning", False, f"already commissioned: {found.name}"), results
    if overall(results) is Outcome.FAIL and plan.selftest_must_pass:
        failing = ", ".join(r.name for r in results if r.outcome is Outcome.FAIL)
        raise SelfTestFailed(f"self-test failed ({failing}): the unit is not commissioned",
                             fix="apply the fix shown for each FAIL row, then run `appliance provision` again")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = {o.name: sum(r.outcome is o for r in results) for o in Outcome}
    record = {"format": FORMAT, "version": 1, "time": now, "inputs": unit_inputs, "inputs_digest": want,
              "selftest": {"verdict": overall(results).name, "checks": [r.as_json() for r in results]}}
    store = FileKeyStore(root(DATA_DIR) / "keys")
    signed = _sign(store, record)
    uid, gid = root.uid(UNIT_USER), root.gid(UNIT_USER)
    ensure_dir(root(RECORD_DIR), 0o700, uid, gid)
    path = root(RECORD_DIR) / f"commissioning-{now.replace(':', '')}.json"
    put(path, (json.dumps(signed, indent=1, sort_keys=True) + "\n").encode(), 0o600, uid, gid)
    _audit(root, cfg, store, record, digest(record), counts)
    chown_tree(root(DATA_DIR), uid, gid)
    return StepResult("commissioning", True, f"record {path.name} signed; its hash is in the audit log"), results


def verify_record(path: Path, audit_db: Path | None = None) -> dict:
    """Check a commissioning record's signature (and, given the audit DB, its ``commissioned`` entry).

    Returns the record; raises InputError naming what does not verify.
    """
    signed = json.loads(Path(path).read_text())
    record = signed["record"]
    key = parse_public(signed["public_key"])
    if record.get("inputs", {}).get("signing_key") != signed["public_key"]:
        raise InputError(f"{path}: signed by a key the record does not name", fix="this record is not genuine")
    try:
        key.verify(base64.b64decode(signed["signature"]), rfc8785.dumps(record))
    except (InvalidSignature, ValueError):
        raise InputError(f"{path}: the signature does not verify", fix="this record was altered") from None
    if audit_db is not None:
        db = connect(audit_db, readonly=True)
        try:
            hashes = {json.loads(body)["payload"].get("record_hash") for _s, body, _l in iter_entries(db)
                      if json.loads(body)["type"] == "commissioned"}
        finally:
            db.conn.close()
        if digest(record) not in hashes:
            raise InputError(f"{path}: no commissioned entry in {audit_db} carries this record's hash",
                             fix="the record is not the one this unit audited")
    return record
