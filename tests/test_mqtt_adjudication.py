"""Adjudication intake: only console-signed decisions on known alerts are accepted, once each;
everything else is refused, counted and reported for audit; 10,000 malformed ones never crash it."""
from __future__ import annotations

import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.audit import events
from appliance.audit.log import AuditLog
from appliance.audit.sink import adjudication_payload, refusal_payload
from appliance.console.keys import sign_adjudication
from appliance.errors import AuditError
from appliance.keyid import key_id
from appliance.mqtt.adjudication import REASONS, AdjudicationIntake, RateLimit, message_from_entry
from appliance.mqtt.outbox import Outbox
from appliance.mqtt.payload import verify

UNIT = "van-dev-01"
KNOWN = "5a6c8d07-dad6-4704-a856-4a81086fd6cd"
DEPLOYMENT = "op-kestrel-1"
CONSOLE = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()


def signed(key=CONSOLE, **overrides) -> dict:
    msg = sign_adjudication(key, overrides.pop("unit", UNIT), overrides.pop("alert_id", KNOWN),
                            overrides.pop("decision", "confirm"), overrides.pop("officer_ids", ["PC-4411", "PS-0912"]),
                            overrides.pop("note", "same person, checked ID"))
    msg.update(overrides)  # after signing: an altered member breaks the signature
    return msg


def data(msg: dict) -> bytes:
    return json.dumps(msg).encode()


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    box.add(KNOWN, "lfr/v1/van-dev-01/alert", b"{}", 0.0, DEPLOYMENT)
    yield box
    box.close()


def intake(outbox, accepted=None, rejected=None, **kwargs) -> AdjudicationIntake:
    kwargs.setdefault("rate", RateLimit(1e9, 10**9))
    return AdjudicationIntake(UNIT, outbox, {key_id(CONSOLE.public_key()): CONSOLE.public_key()},
                              accepted.append if accepted is not None else (lambda m: None),
                              rejected.append if rejected is not None else None, **kwargs)


def test_signed_adjudication_is_accepted_once_with_sender_and_deployment(outbox):
    got, refused = [], []
    box = intake(outbox, got, refused)
    msg = signed()
    assert box.handle(data(msg), "console-01").accepted
    assert got == [{**msg, "sender": "console-01", "deployment_id": DEPLOYMENT}]
    again = box.handle(data(msg), "console-01")  # a re-delivery or a replay of the same decision
    assert not again.accepted and again.reason == "duplicate" and len(got) == 1
    assert [v.reason for v in refused] == ["duplicate"] and refused[0].adjudication_id == msg["adjudication_id"]
    fresh = Outbox(outbox.db_path)  # the memory of recorded ids is on disk: it survives a unit restart
    try:
        assert intake(fresh).handle(data(msg), "console-01").reason == "duplicate"
    finally:
        fresh.close()


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe\x00", "malformed_json"),
    (b"[" * 3000 + b"]" * 3000, "oversized"),
    (b"[" * 2000 + b"]" * 2000, "malformed_json"),  # nesting deeper than the JSON parser allows
    (b"null", "bad_fields"),
    (data({k: v for k, v in signed().items() if k != "sig"}), "bad_fields"),  # unsigned, as tablets sent them
    (data(signed() | {"decision": "maybe"}), "bad_fields"),
    (data(signed() | {"officer_ids": []}), "bad_fields"),
    (data(signed() | {"officer_ids": ["a", "b", "c"]}), "bad_fields"),
    (data(signed() | {"officer_ids": ["PC-1", "PC-1"]}), "bad_fields"),
    (data(signed() | {"note": "x" * 201}), "bad_fields"),
    (data(signed(extra=1)), "bad_fields"),
    (data(signed(unit="van-dev-02")), "wrong_unit"),
    (data(signed(STRANGER)), "unknown_key"),
    (data(signed(decision="reject") | {"decision": "confirm"}), "bad_signature"),
    (data(signed(officer_ids=["PC-1"]) | {"officer_ids": ["PC-2"]}), "bad_signature"),
    (data(signed(alert_id=str(uuid.uuid4()))), "unknown_alert"),
])
def test_each_kind_of_bad_message_is_refused_counted_and_reported(outbox, raw, reason):
    got, refused = [], []
    box = intake(outbox, got, refused)
    verdict = box.handle(raw, "console-01")
    assert not verdict.accepted and verdict.reason == reason
    assert box.counters[reason] == 1 and got == [] and refused == [verdict]


def test_retained_adjudication_is_refused(outbox):
    got, refused = [], []
    verdict = intake(outbox, got, refused).handle(data(signed(decision="reject")), "console-01", retained=True)
    assert verdict.reason == "retained" and got == [] and [v.reason for v in refused] == ["retained"]


def test_rate_limit_per_sender_reports_each_burst_once(outbox):
    now = [0.0]
    got, refused = [], []
    box = intake(outbox, got, refused, rate=RateLimit(2.0, 3, clock=lambda: now[0]))
    verdicts = [box.handle(data(signed()), "console-01").reason for _ in range(10)]
    assert verdicts[:3] == ["accepted"] * 3 and verdicts[3:] == ["rate_limited"] * 7
    assert [v.reason for v in refused] == ["rate_limited"]  # one audit entry for the whole burst
    assert box.handle(data(signed()), "console-02").accepted  # another sender has its own budget
    now[0] += 1.0  # two tokens back, but the burst is not over (10 s of quiet end it)
    assert [box.handle(data(signed()), "console-01").reason for _ in range(3)] == \
        ["accepted", "accepted", "rate_limited"]
    assert [v.reason for v in refused] == ["rate_limited"] and len(got) == 6
    now[0] += 10.0  # quiet long enough: a new burst is reported anew
    assert [box.handle(data(signed()), "console-01").reason for _ in range(4)] == \
        ["accepted"] * 3 + ["rate_limited"]
    assert [v.reason for v in refused] == ["rate_limited", "rate_limited"] and len(got) == 9


def test_a_sender_hovering_at_the_rate_limit_gives_one_audit_entry_not_one_per_refusal(outbox):
    now = [0.0]
    got, refused = [], []
    box = intake(outbox, got, refused, rate=RateLimit(2.0, 1, clock=lambda: now[0]))
    verdicts = []
    for _ in range(40):  # 4 messages a second against a budget of 2: every other one refused, for 10 s
        verdicts.append(box.handle(data(signed()), "console-01").reason)
        now[0] += 0.25
    assert verdicts.count("accepted") == 20 and verdicts.count("rate_limited") == 20
    assert [v.reason for v in refused] == ["rate_limited"]


def test_audit_failure_is_counted_and_the_adjudication_can_come_again(outbox):
    def audit_down(msg):
        raise AuditError("audit log unwritable")

    msg = signed()
    box = intake(outbox)
    box._on_accepted = audit_down
    assert box.handle(data(msg), "console-01").reason == "sink_error"
    got: list = []
    box._on_accepted = got.append  # the log is back: a re-delivery is recorded, not refused as a duplicate
    assert box.handle(data(msg), "console-01").accepted and len(got) == 1


def test_audit_entries_carry_officer_deployment_sender_and_a_console_signature_that_verifies(outbox, tmp_path):
    log = AuditLog.open(tmp_path / "audit.db", Ed25519PrivateKey.generate(), UNIT, head_every_n=100,
                        head_every_s=3600)
    box = intake(outbox, rejected=None)
    box._on_accepted = lambda adj: log.append("adjudication", adjudication_payload(adj))
    box._on_rejected = lambda verdict: log.append("adjudication_refused", refusal_payload(verdict))
    msg = signed(note="tattoo on the left hand matches")
    box.handle(data(msg), "console-01")
    box.handle(data(signed(STRANGER)), "console-01")
    box.handle(b"\x00garbage", "console-01")
    log.close()
    from appliance.audit.report import entries_from_db  # noqa: PLC0415

    entries, _head = entries_from_db(tmp_path / "audit.db")
    kinds = [(e["type"], e["payload"].get("reason")) for e in entries[1:]]
    assert kinds == [("adjudication", None), ("adjudication_refused", "unknown_key"),
                     ("adjudication_refused", "malformed_json")]
    entry = entries[1]["payload"]
    assert entry["officer_ids"] == ["PC-4411", "PS-0912"] and entry["decision"] == "confirmed"
    assert entry["deployment_id"] == DEPLOYMENT and entry["sender"] == "console-01"
    assert verify("adjudication", message_from_entry(entry, UNIT), CONSOLE.public_key())
    forged = dict(entry, officer_ids=["PC-9999"])
    with pytest.raises(Exception, match="signature"):
        verify("adjudication", message_from_entry(forged, UNIT), CONSOLE.public_key())
    assert entries[2]["payload"]["console_key"] == key_id(STRANGER.public_key())


def test_refusal_reasons_match_the_audit_schema():
    assert REASONS == events.ADJUDICATION_REFUSALS


# --- fuzz: 10,000 malformed messages, each refused, none crashes the intake ---

REQUIRED = ["schema", "adjudication_id", "alert_id", "unit", "decision", "officer_ids", "time", "key_id", "sig"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=8), scalars, max_size=3)
VALID = signed()


@st.composite
def mutated(draw) -> bytes:
    """A signed adjudication with one thing wrong (a member dropped, retyped, renamed or off-domain)."""
    msg = dict(VALID)
    kind = draw(st.sampled_from(["drop", "retype", "extra", "unit", "unknown", "pad", "truncate"]))
    key = draw(st.sampled_from(REQUIRED))
    if kind == "drop":
        del msg[key]
    elif kind == "retype":
        new = draw(json_values)
        msg[key] = [new] if new == msg[key] else new
    elif kind == "extra":
        msg["x-" + draw(st.text(max_size=8))] = draw(json_values)
    elif kind == "unit":
        msg["unit"] = "van-" + draw(st.text("abcdef0123456789-", min_size=1, max_size=12))
    elif kind == "unknown":
        msg["alert_id"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))
    elif kind == "pad":
        msg["note"] = "x" * draw(st.integers(5000, 20000))
    raw = json.dumps(msg).encode()
    if kind == "truncate":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    return raw


malformed = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()), mutated())


def test_fuzz_10000_malformed_adjudications_all_refused(outbox):
    got: list = []
    box = intake(outbox, got)
    calls = {"n": 0}

    @settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(malformed)
    def one(raw: bytes) -> None:
        calls["n"] += 1
        assert not box.handle(raw, "console-01").accepted, raw[:200]

    one()
    refused = sum(v for k, v in box.counters.items() if k != "accepted")
    assert calls["n"] >= 10_000
    assert box.counters["accepted"] == 0 and got == [] and refused == calls["n"]
    assert all(box.counters[r] > 0 for r in ("malformed_json", "bad_fields", "wrong_unit", "bad_signature",
                                             "oversized"))
