"""Adjudication intake: the officers' decision on an alert, console -> unit, signed by the console.

Every message is rate-limited per sending certificate, refused when it arrives retained,
bounded in size, parsed, validated against the adjudication schema, checked to be
addressed to this unit, signed by a console key pinned in ``[mqtt] console_keys``, to
name an alert this unit issued, and not to repeat an adjudication id already recorded.
Anything else is refused, counted and passed to ``on_rejected`` (the unit audits it as
``adjudication_refused``); nothing a client sends can crash the unit. Accepted ones go
to ``on_accepted`` (the unit audits them as ``adjudication``, G5/G6) and their id is then
remembered, so a re-delivery or a replay is never recorded twice.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import ApplianceError, InputError
from .payload import schema_errors, verify

log = logging.getLogger(__name__)

REASONS = ("rate_limited", "retained", "oversized", "malformed_json", "bad_fields", "wrong_unit",
           "unknown_key", "bad_signature", "unknown_alert", "duplicate", "sink_error")
MAX_SENDERS = 64  # rate buckets kept; senders are certificate CNs the ACL lets write
BURST_QUIET_S = 10.0  # at least this long without an over-budget message ends a sender's burst


@dataclass(frozen=True)
class Verdict:
    """Outcome of one message: accepted, or the refusal reason, a short detail and what is known.

    ``adjudication_id``, ``alert_id`` and ``console_key`` are set only once the message passed
    its schema check; ``sender`` is the certificate CN from the topic (broker ACL); ``deployment_id``
    is the unit's own record of the alert's deployment.
    """

    accepted: bool
    reason: str = "accepted"
    detail: str = ""
    sender: str = ""
    adjudication_id: str = ""
    alert_id: str = ""
    console_key: str = ""
    deployment_id: str = ""


class RateLimit:
    """Token bucket per sender: ``rate`` messages a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def now(self) -> float:
        """The bucket's clock (monotonic seconds)."""
        return self._clock()

    @property
    def quiet_s(self) -> float:
        """The quiet that ends a burst: the time an empty bucket takes to fill, and at least 10 s."""
        return max(self.burst / self.rate, BURST_QUIET_S)

    def allow(self, sender: str) -> bool:
        """Take one token for ``sender``; False when its bucket is empty."""
        now = self._clock()
        tokens, last = self._buckets.get(sender, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if len(self._buckets) >= MAX_SENDERS and sender not in self._buckets:
            self._buckets.pop(next(iter(self._buckets)))
        allowed = tokens >= 1.0
        self._buckets[sender] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


class AlertLedger:
    """What the intake asks the unit's outbox: the alerts it issued and the adjudications recorded."""

    def alert_deployment(self, alert_id: str) -> str | None:
        """The deployment id of an alert this unit issued ('' when it had none); None if unknown."""
        raise NotImplementedError

    def adjudication_recorded(self, adjudication_id: str) -> bool:
        """True when this adjudication id was already recorded."""
        raise NotImplementedError

    def record_adjudication(self, adjudication_id: str, alert_id: str, sender: str) -> None:
        """Remember an adjudication id once its audit entry is committed."""
        raise NotImplementedError


class AdjudicationIntake:
    """Validates incoming adjudications and hands accepted ones to ``on_accepted``.

    ``on_accepted`` gets the verified message as a dict plus two members the unit adds:
    ``sender`` (certificate CN of the publisher, from the topic) and ``deployment_id``
    (the unit's record of the alert's deployment).
    """

    def __init__(self, unit: str, ledger: AlertLedger, console_keys: dict[str, Ed25519PublicKey],
                 on_accepted: Callable[[dict], None], on_rejected: Callable[[Verdict], None] | None = None,
                 max_bytes: int = 4096, rate: RateLimit | None = None) -> None:
        self.unit, self.max_bytes = unit, max_bytes
        self.ledger, self.console_keys = ledger, dict(console_keys)
        self._on_accepted, self._on_rejected = on_accepted, on_rejected
        self.rate = rate or RateLimit(5.0, 50)
        self._lock = threading.Lock()
        self._limited: dict[str, float] = {}  # sender -> when its last over-budget message came
        self.counters: Counter[str] = Counter({r: 0 for r in ("accepted", *REASONS)})

    def _parse(self, data: bytes, sender: str) -> Verdict | dict:
        if not isinstance(data, (bytes, bytearray)):
            return Verdict(False, "malformed_json", "payload is not bytes", sender)
        if len(data) > self.max_bytes:
            return Verdict(False, "oversized", f"{len(data)} bytes > {self.max_bytes}", sender)
        try:
            msg = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return Verdict(False, "malformed_json", str(exc)[:120], sender)
        errors = schema_errors("adjudication", msg)
        if errors:
            return Verdict(False, "bad_fields", "; ".join(errors[:3])[:200], sender)
        return msg

    def check(self, data: bytes, sender: str = "") -> Verdict | dict:
        """Return the verified adjudication (with sender and deployment_id), else the refusal. Never raises."""
        msg = self._parse(data, sender)
        if isinstance(msg, Verdict):
            return msg
        known = Verdict(False, "", "", sender, msg["adjudication_id"], msg["alert_id"], msg["key_id"])
        refusal = self._refusal(msg, known)
        if refusal is not None:
            return refusal
        deployment = self.ledger.alert_deployment(msg["alert_id"])
        if deployment is None:
            return _with(known, "unknown_alert", msg["alert_id"])
        if self.ledger.adjudication_recorded(msg["adjudication_id"]):
            return _with(known, "duplicate", "adjudication id already recorded", deployment)
        return {**msg, "sender": sender, "deployment_id": deployment}

    def _refusal(self, msg: dict, known: Verdict) -> Verdict | None:
        """Unit, pinned console key and signature; None when all hold."""
        if msg["unit"] != self.unit:
            return _with(known, "wrong_unit", f"addressed to {msg['unit']}")
        key = self.console_keys.get(msg["key_id"])
        if key is None:
            return _with(known, "unknown_key", f"key {msg['key_id']} is not in [mqtt] console_keys")
        try:
            verify("adjudication", msg, key)
        except InputError as exc:
            return _with(known, "bad_signature", exc.message[:200])
        return None

    def handle(self, data: bytes, sender: str = "", retained: bool = False) -> Verdict:
        """Check one message, pass it on, count the outcome. Never raises for bad input."""
        if not self.rate.allow(sender):
            result: Verdict | dict = Verdict(False, "rate_limited", "more than the sender's budget", sender)
        else:
            result = (Verdict(False, "retained", "a retained adjudication is never acted on", sender)
                      if retained else self.check(data, sender))
        if isinstance(result, dict):
            result = self._accept(result)
        with self._lock:
            self.counters[result.reason] += 1
        if not result.accepted:
            self._refused(result)
        return result

    def _accept(self, adj: dict) -> Verdict:
        try:
            self._on_accepted(adj)
            self.ledger.record_adjudication(adj["adjudication_id"], adj["alert_id"], adj["sender"])
        except ApplianceError as exc:
            # e.g. the audit log cannot be written: the decision is not recorded, say so loudly
            log.error("adjudication %s not recorded: %s", adj["adjudication_id"], exc)
            return Verdict(False, "sink_error", str(exc)[:200], adj["sender"], adj["adjudication_id"],
                           adj["alert_id"], adj["key_id"], adj["deployment_id"])
        return Verdict(True, sender=adj["sender"], adjudication_id=adj["adjudication_id"],
                       alert_id=adj["alert_id"], console_key=adj["key_id"], deployment_id=adj["deployment_id"])

    def _refused(self, verdict: Verdict) -> None:
        """Log at debug level (no flood), pass to on_rejected; a rate-limited burst is reported once.

        A burst ends when the sender has sent nothing over budget for as long as its bucket takes to
        fill (at least 10 s): a sender hovering at the limit (one message allowed, the next refused) is one burst,
        so it cannot flood the audit log with refusals.
        """
        log.debug("adjudication refused: %s (%s)", verdict.reason, verdict.detail)
        if verdict.reason == "rate_limited":
            now, last = self.rate.now(), self._limited.get(verdict.sender)
            self._limited[verdict.sender] = now
            if last is not None and now - last < self.rate.quiet_s:
                return
            if len(self._limited) > MAX_SENDERS:
                self._limited.pop(next(iter(self._limited)))
        if self._on_rejected is not None and verdict.reason != "sink_error":
            try:
                self._on_rejected(verdict)
            except ApplianceError as exc:  # the refusal is counted; its audit entry failed
                log.error("could not record a refused adjudication: %s", exc)


def _with(known: Verdict, reason: str, detail: str, deployment: str = "") -> Verdict:
    return Verdict(False, reason, detail[:200], known.sender, known.adjudication_id, known.alert_id,
                   known.console_key, deployment)


MESSAGE_DECISIONS = {"confirmed": "confirm", "rejected": "reject", "unable": "unable"}


def message_from_entry(payload: dict, unit: str) -> dict:
    """The signed adjudication message behind an ``adjudication`` audit entry (v2), to check its
    console signature again with ``verify("adjudication", message, console_public_key)``."""
    message = {"schema": "lfr/v1/adjudication", "unit": unit, "key_id": payload["console_key"],
               "time": payload["time"], "adjudication_id": payload["adjudication_id"],
               "alert_id": payload["alert_id"], "decision": MESSAGE_DECISIONS[payload["decision"]],
               "officer_ids": list(payload["officer_ids"]), "sig": payload["console_sig"]}
    if payload.get("note"):
        message["note"] = payload["note"]
    return message
