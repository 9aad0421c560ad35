"""Retention on the unit: alert images go once delivered, after the window at the latest, and at
deployment end; the audit log keeps their hashes only.

An alert's face crop and reference thumbnail live in one place on the unit: the signed
payload in the MQTT outbox (``outbox.db``). :class:`AlertImageRetention` deletes them

- once delivered: rows the broker acknowledged more than the publisher's re-send window ago
  (reason ``delivered``; the broker holds them for the tablets from then on),
- after ``[retention] alert_images_hours`` (default 24) at the latest, delivered or not
  (reason ``retention``; an undelivered alert becomes ``expired`` in the alert log),
- when a deployment ends: every row of that deployment (reason ``deployment_end``),

each time writing an ``alert_images_deleted`` audit entry with the SHA-256 of each image
first. The deletion does not wait for the audit log: an image the unit should no longer hold
is deleted even when the log cannot be written (the failure is logged and counted, and
matching has stopped anyway, since the log is first in the alert path).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .errors import ApplianceError
from .mqtt.outbox import HeldImages, Outbox

log = logging.getLogger(__name__)

AuditAppend = Callable[[str, dict], object]
HOUR_S = 3600.0


class AlertImageRetention:
    """Deletes alert images from the outbox by the rules above, auditing each deletion."""

    def __init__(self, outbox: Outbox, audit: AuditAppend | None, *, alert_images_hours: float,
                 resend_window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.audit = audit
        self.window_s = alert_images_hours * HOUR_S
        self.resend_window_s = resend_window_s
        self.clock = clock
        self.unaudited = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """Delete what is due now (delivered past the re-send window, or older than the window)."""
        now = self.clock()
        due = self.outbox.images_due(created_before=now - self.window_s, acked_before=now - self.resend_window_s)
        return self._delete(due, now, lambda held: "retention" if held.created < now - self.window_s else "delivered")

    def deployment_ended(self, deployment_id: str) -> int:
        """Delete every image of a deployment that ended (call after its ``deployment_end`` entry)."""
        return self._delete(self.outbox.images_due(deployment_id=deployment_id), self.clock(),
                            lambda held: "deployment_end")

    def shutdown(self) -> int:
        """At a clean stop: delete the delivered rows the re-send window still kept."""
        now = self.clock()
        return self._delete(self.outbox.images_due(acked_before=now + 1), now, lambda held: "shutdown")

    def _delete(self, due: list[HeldImages], now: float, reason: Callable[[HeldImages], str]) -> int:
        for held in due:
            self._audit(held, reason(held))
        return self.outbox.delete_images([held.alert_id for held in due], now)

    def _audit(self, held: HeldImages, reason: str) -> None:
        if self.audit is None:
            return
        payload = {"alert_id": held.alert_id, "reason": reason, "delivered": held.delivered,
                   "image_hashes": held.image_hashes}
        if held.deployment_id:
            payload["deployment_id"] = held.deployment_id
        try:
            self.audit("alert_images_deleted", payload)
        except ApplianceError as exc:
            self.unaudited += 1
            log.error("alert %s: images deleted (%s) but not audited: %s", held.alert_id, reason, exc.message)

    def start(self, every_s: float) -> "AlertImageRetention":
        """Sweep every ``every_s`` seconds in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, args=(every_s,), name="retention", daemon=True)
        self._thread.start()
        return self

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.sweep()
            except ApplianceError as exc:  # the outbox failed (disk): try again next round
                log.error("retention sweep failed: %s", exc.message)

    def stop(self) -> None:
        """Stop the sweeping thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
