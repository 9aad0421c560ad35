"""The deployment lifecycle on the unit: start, the active watchlist, end, expiry and purge.

How the running pipeline learns of a deployment (``deployment start`` and
``appliance run`` are separate processes): the SQLite table
``watchlist_deployments`` in <data_dir>/appliance.db holds at most one active
record (ids, window, hashes, the path of the unit's encrypted copy and the name
of its per-deployment key; never plaintext). The runner's watchlist provider,
:meth:`Deployment.current_watchlist`, re-reads that record at most every
``poll_seconds`` and loads, swaps or purges its in-memory watchlist to match.
A timer purges at ``not_after`` by itself, and every call checks the window too,
so the pipeline stops matching at expiry even if no other process is running.

At start the bundle is verified and decrypted in memory, then re-encrypted to a
fresh per-deployment age key kept in the key store; the unit stores only that
copy. Purge wipes the matrix and thumbnails in memory, destroys the key and
deletes the copy, so a stray copy on flash stays unreadable (crypto-shredding).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..clock import utc_now
from ..errors import ApplianceError, ConfigError, WatchlistError
from ..pipeline.match import Watchlist
from ..thresholds import ThresholdChoice, choose, status
from . import container
from .manifest import format_time, parse_time
from .records import DeploymentRecord, DeploymentRecords
from .unitstate import DeploymentKeyStore, unit_lock, write_atomic
from .verify import UnitTrust, open_payload, verify_manifest

log = logging.getLogger(__name__)

Audit = Callable[[str, dict], None]
Clock = Callable[[], datetime]
BUNDLE_DIR = "watchlists"
IN_USE_GRACE_S = 1.0


class Deployment:
    """One unit's deployments: at most one active, its watchlist only in this process's memory."""

    def __init__(self, data_dir: Path, keystore: DeploymentKeyStore, trust: UnitTrust, *, max_bundle_bytes: int,
                 audit: Audit | None = None, clock: Clock = utc_now, poll_seconds: float = 1.0,
                 configured_threshold: float | None = None, on_end: Callable[[str], None] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.configured_threshold = configured_threshold  # [match] threshold: None = the card's for the list
        self.on_end = on_end  # deployment id -> None, after its end is recorded (here or by another process)
        self.keystore = keystore
        self.trust = trust
        self.max_bundle_bytes = max_bundle_bytes
        self.audit = audit
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.records = DeploymentRecords(self.data_dir)
        self.bundle_dir = self.data_dir / BUNDLE_DIR
        self._lock = threading.RLock()
        self._loaded: tuple[DeploymentRecord, Watchlist] | None = None
        self.threshold: ThresholdChoice | None = None  # the loaded list's threshold and expected FPIR
        self._timer: threading.Timer | None = None
        self._next_poll = 0.0
        self._failed_record: int | None = None
        self._last_call = 0.0
        self.sweep()

    # -- audit -------------------------------------------------------------------------------
    def _emit(self, event: str, fields: dict) -> None:
        if self.audit is not None:
            self.audit(event, fields)

    # -- start ---------------------------------------------------------------------------------
    def start(self, bundle_path: Path, location: str) -> DeploymentRecord:
        """Verify a bundle, record the deployment as active and hold its watchlist in memory."""
        with self._lock, unit_lock(self.data_dir):
            self._expire_if_due()
            active = self.records.active()
            if active is not None:
                raise WatchlistError(f"deployment {active.deployment_id} is already active (until "
                                     f"{active.not_after})", fix="end it first: `appliance deployment end`")
            try:
                bundle, watchlist, resealed, key_name = self._verify_new(Path(bundle_path))
            except WatchlistError as exc:
                self._refused(Path(bundle_path), exc)
                raise
            try:
                choice = self._choose_threshold(watchlist.model_id, watchlist)
                record = self._install(bundle, watchlist, resealed, key_name, location, choice)
            except ApplianceError as exc:  # a threshold too low for the list, or an AuditError (fail closed)
                if isinstance(exc, ConfigError):
                    self._emit("watchlist_refused", {"bundle_hash": bundle.sha256, "reason": exc.message[:200],
                                                     "deployment_id": bundle.manifest.deployment_id})
                watchlist.purge()
                self.keystore.destroy_deployment_identity(key_name)
                (self.bundle_dir / f"{key_name}{container.SUFFIX}").unlink(missing_ok=True)
                raise
            self._adopt(record, watchlist)
            return record

    def _verify_new(self, path: Path) -> tuple[container.Bundle, Watchlist, bytes, str]:
        if not self.trust.authorities:
            raise WatchlistError("no trusted authority keys are configured, so no bundle can be accepted",
                                 fix="add the authority's key to [watchlist] trusted_authorities")
        bundle = container.read_bundle(path, self.max_bundle_bytes)
        verify_manifest(bundle, self.trust, self.clock())
        manifest = bundle.manifest
        highest = self.records.highest_version(manifest.deployment_id)
        if manifest.bundle_version <= highest:
            raise WatchlistError(
                f"bundle version {manifest.bundle_version} of deployment {manifest.deployment_id} is not "
                f"newer than version {highest} already used on this unit (rollback refused)",
                fix="ask the back office for a bundle with a higher bundle version")
        key_name = f"{manifest.deployment_id}-v{manifest.bundle_version}"
        self.keystore.destroy_deployment_identity(key_name)  # a crashed start's leftover (we hold the lock)
        recipient = self.keystore.create_deployment_identity(key_name)
        try:
            watchlist, resealed = open_payload(bundle, [self.keystore.age_identity()], self.trust.model_id,
                                               reseal=recipient)
        except ApplianceError:
            self.keystore.destroy_deployment_identity(key_name)
            raise
        return bundle, watchlist, resealed, key_name

    def _refused(self, path: Path, exc: WatchlistError) -> None:
        if not path.is_file():
            return
        from ..modelstore import sha256_file  # noqa: PLC0415 (only needed on refusal)

        self._emit("watchlist_refused", {"bundle_hash": sha256_file(path), "reason": exc.message[:200]})

    def _choose_threshold(self, model_id: str, watchlist: Watchlist) -> ThresholdChoice:
        """The threshold for this list from the model's accuracy card (ConfigError if the configured
        one is too low for its size), set on the watchlist the pipeline matches against."""
        choice = choose(model_id, len(watchlist), self.configured_threshold)
        watchlist.threshold = choice.threshold
        return choice

    def _install(self, bundle: container.Bundle, watchlist: Watchlist, resealed: bytes, key_name: str,
                 location: str, choice: ThresholdChoice) -> DeploymentRecord:
        manifest = bundle.manifest
        self._emit("deployment_start", {
            "deployment_id": manifest.deployment_id, "authorising_officer": manifest.authorising_officer,
            "location_label": location[:200], "not_before": manifest.not_before, "not_after": manifest.not_after})
        self._emit("watchlist_load", {"deployment_id": manifest.deployment_id, "bundle_hash": bundle.sha256,
                                      "entry_count": manifest.entry_count, "model_id": watchlist.model_id,
                                      **choice.audit_fields()})
        self.bundle_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        copy = self.bundle_dir / f"{key_name}{container.SUFFIX}"
        write_atomic(copy, container.pack_head(bundle.manifest_bytes, bundle.signature), resealed)
        return self.records.insert_active({
            "deployment_id": manifest.deployment_id, "bundle_version": manifest.bundle_version,
            "bundle_sha256": bundle.sha256, "copy_path": str(copy), "key_name": key_name,
            "location": location, "authorising_officer": manifest.authorising_officer,
            "model_id": watchlist.model_id, "entry_count": manifest.entry_count,
            "not_before": manifest.not_before, "not_after": manifest.not_after,
            "started_at": format_time(self.clock())})

    # -- the model the unit runs ------------------------------------------------------------------
    def carries(self, model_id: str) -> bool | None:
        """Whether the active deployment's bundle holds embeddings of ``model_id`` (from its signed
        manifest, nothing decrypted); None when no deployment is active."""
        with self._lock:
            record = self.records.active()
            if record is None:
                return None
            bundle = container.read_bundle(Path(record.copy_path), self.max_bundle_bytes)
            return model_id in bundle.manifest.model_ids

    def use_model(self, model_id: str) -> None:
        """The unit now embeds with ``model_id`` (its inference backend failed over): drop the loaded
        matrix and load that model's from the unit's copy at the next call (refused, and audited,
        if the bundle does not carry it: embeddings of different models are not comparable)."""
        with self._lock:
            self.trust = dataclasses.replace(self.trust, model_id=model_id)
            self._drop_memory(f"the unit now runs {model_id}")
            self._failed_record, self._next_poll = None, 0.0

    # -- the runner's provider ----------------------------------------------------------------
    def current_watchlist(self) -> Watchlist | None:
        """The active deployment's watchlist, or None (no matching). Safe to call every frame."""
        with self._lock:
            self._last_call = time.monotonic()
            if self._loaded and self.clock() >= window_end(self._loaded[0]):
                self._finish(self._loaded[0], "expired")
                return None
            now = self.clock().timestamp()
            if now >= self._next_poll:
                self._next_poll = now + self.poll_seconds
                self._sync()
            return self._loaded[1] if self._loaded else None

    def _sync(self) -> None:
        record = self.records.active()
        if record is not None and self.clock() >= window_end(record):
            self._finish(record, "expired")
            return
        if self._loaded and (record is None or record.id != self._loaded[0].id):
            ended = self._loaded[0].deployment_id
            self._drop_memory("ended by another process")
            self._ended(ended)
        if record is None or self._loaded or record.id == self._failed_record:
            return
        try:
            self._adopt(record, self._resume(record))
        except ApplianceError as exc:
            self._failed_record = record.id
            log.error("deployment %s cannot be loaded: %s", record.deployment_id, exc.message)
            self._emit("watchlist_refused", {"bundle_hash": record.bundle_sha256, "reason": exc.message[:200],
                                             "deployment_id": record.deployment_id})

    def _resume(self, record: DeploymentRecord) -> Watchlist:
        """Load the unit's encrypted copy of the active deployment into memory."""
        bundle = container.read_bundle(Path(record.copy_path), self.max_bundle_bytes)
        verify_manifest(bundle, self.trust, self.clock())
        manifest = bundle.manifest
        if (manifest.deployment_id, manifest.bundle_version) != (record.deployment_id, record.bundle_version):
            raise WatchlistError("the unit's bundle copy does not match its deployment record",
                                 fix="end the deployment and start it again with a new bundle")
        identity = self.keystore.deployment_identity(record.key_name)
        watchlist, _ = open_payload(bundle, [identity], self.trust.model_id, check_ciphertext=False)
        try:
            choice = self._choose_threshold(record.model_id, watchlist)
        except ApplianceError:
            watchlist.purge()
            raise
        self._emit("watchlist_load", {"deployment_id": record.deployment_id, "bundle_hash": record.bundle_sha256,
                                      "entry_count": record.entry_count, "model_id": record.model_id,
                                      **choice.audit_fields()})
        return watchlist

    def _adopt(self, record: DeploymentRecord, watchlist: Watchlist) -> None:
        self._loaded = (record, watchlist)
        self.threshold = choose(record.model_id, len(watchlist), self.configured_threshold)
        self._arm((window_end(record) - self.clock()).total_seconds())

    def _arm(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = threading.Timer(max(0.0, delay), self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        """At not_after: purge, unless the pipeline is mid-frame right now.

        A pipeline that called the provider within IN_USE_GRACE_S purges it itself
        at its next call, between frames (the per-call window check), so a frame
        never sees its watchlist emptied under it; the timer retries after the
        grace and purges anyway if no call came (an idle or stalled pipeline).
        """
        with self._lock:
            if not self._loaded:
                return
            left = (window_end(self._loaded[0]) - self.clock()).total_seconds()
            in_use = time.monotonic() - self._last_call < IN_USE_GRACE_S
            if left > 0 or in_use:
                self._arm(left if left > 0 else IN_USE_GRACE_S)
                return
            self._finish(self._loaded[0], "expired")

    # -- end, expiry, purge ---------------------------------------------------------------------
    def _expire_if_due(self) -> bool:
        """Purge the active deployment if its window is over; True when it did."""
        record = self._loaded[0] if self._loaded else self.records.active()
        if record is None or self.clock() < window_end(record):
            return False
        self._finish(record, "expired")
        return True

    def end(self, reason: str = "ended by operator") -> DeploymentRecord:
        """End the active deployment now and purge its watchlist everywhere on this unit."""
        with self._lock, unit_lock(self.data_dir):
            record = self.records.active()
            if record is None:
                raise WatchlistError("no deployment is active", fix="check `appliance deployment status`")
            self._finish(record, reason)
            return self.records.get(record.id) or record

    def _finish(self, record: DeploymentRecord, reason: str) -> None:
        first = self.records.mark_ended(record.id, format_time(self.clock()), reason)
        self._drop_memory(reason)
        self._delete_files(record)
        if first:
            if reason == "expired":
                self._emit("watchlist_expired", {"deployment_id": record.deployment_id,
                                                 "bundle_hash": record.bundle_sha256})
            self._emit("deployment_end", {"deployment_id": record.deployment_id, "reason": reason[:200]})
            self._emit("watchlist_purge", {"deployment_id": record.deployment_id,
                                           "bundle_hash": record.bundle_sha256,
                                           "reason": f"{reason}; {record.entry_count} entries"[:200]})
            self._ended(record.deployment_id)

    def _ended(self, deployment_id: str) -> None:
        if self.on_end is not None:
            self.on_end(deployment_id)

    def _drop_memory(self, reason: str) -> None:
        self._cancel_timer()
        if self._loaded is None:
            return
        record, watchlist = self._loaded
        self._loaded = None
        self.threshold = None
        watchlist.purge()
        log.info("watchlist of deployment %s purged from memory (%s)", record.deployment_id, reason)

    def _delete_files(self, record: DeploymentRecord) -> None:
        self.keystore.destroy_deployment_identity(record.key_name)
        Path(record.copy_path).unlink(missing_ok=True)
        Path(record.copy_path + ".part").unlink(missing_ok=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None

    def sweep(self) -> list[str]:
        """Delete copies and keys no active deployment needs (after a crash mid-purge); return them."""
        with self._lock, unit_lock(self.data_dir):
            active = self.records.active()
            keep = {active.key_name} if active else set()
            removed = [n for n in self.keystore.deployment_names()
                       if n not in keep and self.keystore.destroy_deployment_identity(n)]
            for path in self.bundle_dir.glob("*") if self.bundle_dir.is_dir() else []:
                if path.name.removesuffix(".part").removesuffix(container.SUFFIX) not in keep:
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
            return removed

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict:
        """The active deployment (purging it first if expired), or the last ended one."""
        with self._lock:
            self._expire_if_due()
            record = self.records.active()
            if record is None:
                ended = self.records.ended()
                return {"active": False, "last": ended[-1].public() if ended else None}
            left = (window_end(record) - self.clock()).total_seconds()
            return {"active": True, "deployment": record.public(), "seconds_left": round(left, 1),
                    "loaded_in_this_process": bool(self._loaded),
                    "bundle_copy_present": Path(record.copy_path).is_file(),
                    "threshold": self.threshold_status(record)}

    def threshold_status(self, record: DeploymentRecord | None = None) -> dict | None:
        """The active list's threshold, its expected FPIR and the target (for status and the console).

        From the loaded watchlist in this process; else computed from the record's entry count
        and the card (what the running unit uses). None without an active deployment.
        """
        with self._lock:
            if self.threshold is not None:
                return self.threshold.to_dict()
            record = record or self.records.active()
            return None if record is None else status(record.model_id, record.entry_count, self.configured_threshold)

    def close(self) -> None:
        """Drop the in-memory watchlist (process exit); the deployment stays active."""
        with self._lock:
            self._drop_memory("process closing")


def window_end(record: DeploymentRecord) -> datetime:
    """The record's not_after as an aware datetime."""
    return parse_time(record.not_after, "not_after")


def open_deployment(cfg, store: DeploymentKeyStore, model_id: str, audit: Audit | None = None,
                    clock: Clock = utc_now, on_end: Callable[[str], None] | None = None) -> Deployment:
    """The unit's Deployment from its config (data dir, trusted authorities, bounds) and its key store.

    ``model_id`` is the id of the embedder the unit runs (``FaceEngine.model_id``).
    """
    from ..authority import parse_public  # noqa: PLC0415
    from ..paths import resolve  # noqa: PLC0415

    data_dir = resolve(cfg.unit.data_dir)
    authorities = tuple(parse_public(text) for text in cfg.watchlist.trusted_authorities)
    trust = UnitTrust(authorities, store.age_recipient(), model_id)
    return Deployment(data_dir, store, trust, max_bundle_bytes=cfg.watchlist.max_bundle_bytes, audit=audit,
                      clock=clock, poll_seconds=cfg.watchlist.poll_seconds,
                      configured_threshold=cfg.match.threshold, on_end=on_end)

