"""Adjudication intake: an officer's decision on an alert, tablet or console -> unit.

Every message is bounded in size, parsed, validated against the adjudication schema,
checked to be addressed to this unit and to name an alert this unit issued. Anything
else is rejected and counted (and passed to an optional callback for audit); nothing
a tablet sends can crash the unit. Accepted adjudications go to ``on_accepted``
(the lead wires it to the audit log, G5/G6).
"""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ..errors import ApplianceError
from .payload import schema_errors

log = logging.getLogger(__name__)

REASONS = ("oversized", "malformed_json", "bad_fields", "wrong_unit", "unknown_alert", "sink_error")


@dataclass(frozen=True)
class Verdict:
    """Outcome of one message: accepted, or the rejection reason and a short detail."""

    accepted: bool
    reason: str = "accepted"
    detail: str = ""


class AdjudicationIntake:
    """Validates incoming adjudications and hands accepted ones to ``on_accepted``."""

    def __init__(self, unit: str, is_known_alert: Callable[[str], bool],
                 on_accepted: Callable[[dict], None],
                 on_rejected: Callable[[Verdict], None] | None = None, max_bytes: int = 4096) -> None:
        self.unit = unit
        self.max_bytes = max_bytes
        self._is_known_alert = is_known_alert
        self._on_accepted = on_accepted
        self._on_rejected = on_rejected
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter({r: 0 for r in ("accepted", *REASONS)})

    def check(self, data: bytes) -> Verdict | dict:
        """Return the parsed adjudication if valid, else the rejection Verdict. Never raises."""
        if not isinstance(data, (bytes, bytearray)):
            return Verdict(False, "malformed_json", "payload is not bytes")
        if len(data) > self.max_bytes:
            return Verdict(False, "oversized", f"{len(data)} bytes > {self.max_bytes}")
        try:
            msg = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return Verdict(False, "malformed_json", str(exc)[:120])
        errors = schema_errors("adjudication", msg)
        if errors:
            return Verdict(False, "bad_fields", "; ".join(errors[:3]))
        if msg["unit"] != self.unit:
            return Verdict(False, "wrong_unit", f"addressed to {msg['unit']}")
        if not self._is_known_alert(msg["alert_id"]):
            return Verdict(False, "unknown_alert", msg["alert_id"])
        return msg

    def handle(self, data: bytes) -> Verdict:
        """Check one message, pass it on, count the outcome. Never raises for bad input."""
        result = self.check(data)
        if isinstance(result, dict):
            try:
                self._on_accepted(result)
                result = Verdict(True)
            except ApplianceError as exc:
                # e.g. the audit log cannot be written: the decision is not recorded, say so loudly
                log.error("adjudication %s not recorded: %s", result["adjudication_id"], exc)
                result = Verdict(False, "sink_error", str(exc)[:200])
        with self._lock:
            self.counters[result.reason] += 1
        if not result.accepted:
            log.debug("adjudication rejected: %s (%s)", result.reason, result.detail)  # counted; no log flood
            if self._on_rejected is not None:
                try:
                    self._on_rejected(result)
                except ApplianceError as exc:  # the rejection is counted; its audit entry failed
                    log.error("could not record a rejected adjudication: %s", exc)
        return result
