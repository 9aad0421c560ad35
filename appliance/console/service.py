"""The console's composition root: config, state, officers, sessions, key, MQTT link, live push.

``Console.build(cfg)`` opens everything; the web app (app.py) calls its methods, which are
plain library functions the tests call too.
"""
from __future__ import annotations

import csv
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import ConsoleConfig
from .hub import Hub
from .keys import describe, load_or_create, sign_adjudication
from .link import VanLink
from .officers import OfficerStore, SignIn
from .sessions import Session, Sessions
from .store import ConsoleStore, DecisionRefused

PIN_CHECKS = threading.BoundedSemaphore(2)  # Argon2id takes 64 MiB each: at most two at once
# a spreadsheet runs a cell starting with one of these as a formula (CSV injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Console:
    """Everything the running console holds."""

    cfg: ConsoleConfig
    store: ConsoleStore
    officers: OfficerStore
    sessions: Sessions
    link: VanLink
    hub: Hub
    key: object

    @classmethod
    def build(cls, cfg: ConsoleConfig) -> "Console":
        """Open the state directory (creating the console key on first start) and the MQTT link."""
        state = Path(cfg.console.state_dir)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        store, hub = ConsoleStore(state), Hub()
        key = load_or_create(state)
        c = cfg.console
        return cls(cfg, store, OfficerStore(state / "officers.db"), Sessions(c.idle_timeout_s, c.session_max_s),
                   VanLink(cfg, store, hub.publish), hub, key)

    def start(self) -> None:
        """Connect to the broker (in the background)."""
        self.link.start()

    def close(self) -> None:
        """Disconnect and close the databases."""
        self.link.close()
        self.store.close()
        self.officers.close()

    # --- officers ---

    def check_pin(self, officer_id: str, pin: str) -> SignIn:
        """Check one officer's PIN; wrong ones count towards the lockout."""
        c = self.cfg.console
        with PIN_CHECKS:
            return self.officers.sign_in(officer_id, pin, c.max_failed_pins, c.lockout_s)

    def sign_in(self, officer_id: str, pin: str) -> tuple[SignIn, Session | None]:
        """Check the PIN; a new session when it is right."""
        result = self.check_pin(officer_id, pin)
        return result, (self.sessions.create(officer_id) if result.outcome == "ok" else None)

    # --- what the page shows ---

    def state(self, session: Session) -> dict:
        """Everything the page shows, without images (they have their own no-store URLs)."""
        return {"officer": session.officer, "csrf": session.csrf, "two_officer": self.cfg.console.two_officer,
                "console": self.cfg.console.id, "link": self.link.connected.is_set(),
                "units": self.link.unit_views(), "queue": self.store.cards(decided=False),
                "history": self.store.cards(decided=True), "flagged": list(self.link.flagged),
                "records": self.store.records(), "server_time": time.time(),
                "key": describe(self.key)["key_id"]}

    # --- decisions ---

    def decide(self, officer: str, card_id: str, decision: str, note: str) -> dict:
        """One officer's decision on a card; signed adjudications go out once it is final."""
        card = self.store.decide(card_id, officer, decision, note.strip(), self.cfg.console.two_officer,
                                 self._sign)
        self.link.publish_pending()
        self.hub.publish({"kind": "card", "card": card})
        return card

    def countersign(self, card_id: str, officer_id: str, pin: str, note: str) -> tuple[SignIn, dict | None]:
        """The second officer confirms on the same tablet with their own id and PIN."""
        result = self.check_pin(officer_id, pin)
        if result.outcome != "ok":
            return result, None
        card = self.store.card(card_id)
        if card is None or card["state"] != "awaiting_second":
            raise DecisionRefused("this alert is not waiting for a second officer")
        return result, self.decide(officer_id, card_id, "confirm", note)

    def _sign(self, unit: str, alert_id: str, decision: str, officers: list, note: str) -> dict:
        return sign_adjudication(self.key, unit, alert_id, decision, officers, note)

    # --- housekeeping ---

    def housekeeping(self, now: float | None = None) -> int:
        """Forget images past retention, re-send unacknowledged decisions, drop expired sessions."""
        forgotten = self.store.forget_older(self.cfg.console.retention_hours * 3600, now)
        self.link.recover()
        self.link.publish_pending()
        self.sessions.sweep(now)
        self.hub.publish({"kind": "units", "units": self.link.unit_views()})
        return forgotten


def record_csv(record: dict) -> str:
    """A deployment record as CSV (header line, value line); formula-like cells are quoted with '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = sorted(record)
    writer.writerow(names)
    writer.writerow(["" if record[k] is None else _cell(record[k]) for k in names])
    return out.getvalue()


def _cell(value) -> str:
    text = str(value)
    return f"'{text}" if isinstance(value, str) and text.startswith(FORMULA_START) else text
