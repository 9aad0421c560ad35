"""A signed deployment for tests that run the unit end to end, as the field does it.

The back office enrols photos into a bundle signed by a test authority (the real
`watchlist build` code), and the unit verifies it and starts the deployment (the real
`deployment start` code). The config trusts the authority; nothing else can give the
unit a watchlist.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from appliance.audit.sink import open_audit_log
from appliance.config import load_config
from appliance.keystore import unit_keystore
from appliance.watchlist.deployment import open_deployment
from lfr_tools.backoffice.authority import PUBLIC_FILE, init_authority, load_authority
from lfr_tools.backoffice.build import build_bundle
from lfr_tools.backoffice.seal import Operation

COLUMNS = "subject_ref,image,category,image_source,capture_date,review_by\n"


def authority_line(root: Path) -> str:
    """A test back-office authority under ``root`` (created once); its public key line."""
    if not (root / PUBLIC_FILE).exists():
        init_authority(root)
    return (root / PUBLIC_FILE).read_text().strip()


def signed_bundle(root: Path, enrol: dict[str, Path], engine, recipient: str, deployment_id: str = "OP-E2E-1",
                  hours: float = 2.0) -> Path:
    """Enrol ``enrol`` (subject ref -> photo) into a bundle for ``recipient``, signed by the test authority."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    today = datetime.now(timezone.utc)
    rows = []
    for ref, photo in enrol.items():
        shutil.copy(photo, images / f"{ref}{Path(photo).suffix}")
        rows.append(f"{ref},{ref}{Path(photo).suffix},wanted: test,lfw-dev,{today:%Y-%m-%d},"
                    f"{today + timedelta(days=30):%Y-%m-%d}\n")
    (root / "entries.csv").write_text(COLUMNS + "".join(rows))
    start, end = today - timedelta(minutes=5), today + timedelta(hours=hours)
    operation = Operation(deployment_id, "Supt-0001", f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{end:%Y-%m-%dT%H:%M:%SZ}",
                          recipient, 1)
    out = root / f"{deployment_id}.lfrwl"
    build_bundle(root / "entries.csv", images, operation, engine, load_authority(root), out, show_progress=False)
    return out


def start_deployment(config: Path, enrol: dict[str, Path], engine, location: str = "test street") -> None:
    """Sign a bundle for the unit of ``config`` and start its deployment (audited)."""
    cfg = load_config(config)
    store = unit_keystore(cfg)
    bundle = signed_bundle(config.parent / "back-office", enrol, engine, store.age_recipient())
    log = open_audit_log(cfg, store)
    try:
        deployment = open_deployment(cfg, store, engine.model_id, audit=log.append)
        deployment.start(bundle, location)
        deployment.close()
    finally:
        log.close()


def trusting(config_text: str, root: Path) -> str:
    """``config_text`` with a [watchlist] section trusting the test authority under ``root``."""
    return config_text + f'[watchlist]\ntrusted_authorities = ["{authority_line(root)}"]\n'
