"""Adjudication intake: valid decisions are accepted; 10,000 malformed ones are each rejected."""
from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.errors import AuditError
from appliance.mqtt.adjudication import AdjudicationIntake

UNIT = "van-dev-01"
KNOWN = "5a6c8d07-dad6-4704-a856-4a81086fd6cd"


def valid(**overrides) -> dict:
    msg = {"schema": "lfr/v1/adjudication", "adjudication_id": str(uuid.UUID(int=7)), "alert_id": KNOWN,
           "unit": UNIT, "decision": "confirm", "officer_ids": ["PC-4411", "PS-0912"],
           "time": "2026-11-28T08:03:14.123Z", "note": "same person, checked ID"}
    msg.update(overrides)
    return msg


def intake(accepted: list | None = None, **kwargs) -> AdjudicationIntake:
    sink = accepted.append if accepted is not None else (lambda m: None)
    return AdjudicationIntake(UNIT, lambda aid: aid == KNOWN, sink, **kwargs)


def test_valid_adjudication_is_accepted_and_passed_on():
    got: list = []
    box = intake(got)
    verdict = box.handle(json.dumps(valid()).encode())
    assert verdict.accepted and got == [valid()]
    single = valid(officer_ids=["PC-1"], decision="unable")
    del single["note"]
    assert box.handle(json.dumps(single).encode()).accepted
    assert box.counters["accepted"] == 2


@pytest.mark.parametrize("data,reason", [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe\x00", "malformed_json"),
    (b"[" * 3000 + b"]" * 3000, "oversized"),
    (json.dumps(valid(note="x" * 5000)).encode(), "oversized"),
    (b"[" * 2000 + b"]" * 2000, "malformed_json"),  # nesting deeper than the JSON parser allows
    (b"null", "bad_fields"),
    (json.dumps(valid(decision="maybe")).encode(), "bad_fields"),
    (json.dumps(valid(officer_ids=[])).encode(), "bad_fields"),
    (json.dumps(valid(officer_ids=["a", "b", "c"])).encode(), "bad_fields"),
    (json.dumps(valid(officer_ids=["PC-1", "PC-1"])).encode(), "bad_fields"),
    (json.dumps(valid(alert_id="not-a-uuid")).encode(), "bad_fields"),
    (json.dumps(valid(extra=1)).encode(), "bad_fields"),
    (json.dumps(valid(schema="lfr/v2/adjudication")).encode(), "bad_fields"),
    (json.dumps(valid(unit="van-dev-02")).encode(), "wrong_unit"),
    (json.dumps(valid(alert_id=str(uuid.uuid4()))).encode(), "unknown_alert"),
])
def test_each_kind_of_bad_message_is_rejected_and_counted(data, reason):
    got: list = []
    box = intake(got)
    verdict = box.handle(data)
    assert not verdict.accepted and verdict.reason == reason
    assert box.counters[reason] == 1 and got == []


def test_audit_failure_is_counted_not_raised():
    def audit_down(msg):
        raise AuditError("audit log unwritable")

    box = AdjudicationIntake(UNIT, lambda aid: True, audit_down)
    verdict = box.handle(json.dumps(valid()).encode())
    assert verdict.reason == "sink_error" and box.counters["sink_error"] == 1


def test_rejections_reach_the_rejected_callback():
    seen: list = []
    box = AdjudicationIntake(UNIT, lambda aid: False, lambda m: None, on_rejected=seen.append)
    box.handle(b"{}")
    assert [v.reason for v in seen] == ["bad_fields"]


# --- fuzz: 10,000 malformed messages, each rejected, none crashes the intake ---

REQUIRED = ["schema", "adjudication_id", "alert_id", "unit", "decision", "officer_ids", "time"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=8), scalars, max_size=3)


@st.composite
def mutated(draw) -> bytes:
    """A valid adjudication with one thing wrong (a field dropped, retyped, renamed or off-domain)."""
    msg = valid()
    kind = draw(st.sampled_from(["drop", "retype", "extra", "unit", "unknown", "pad", "truncate"]))
    key = draw(st.sampled_from(REQUIRED))
    if kind == "drop":
        del msg[key]
    elif kind == "retype":
        new = draw(json_values)
        if new == msg[key] or (key == "decision" and new in ("confirm", "reject", "unable")):
            new = [new]
        msg[key] = new
    elif kind == "extra":
        msg["x-" + draw(st.text(max_size=8))] = draw(json_values)
    elif kind == "unit":
        msg["unit"] = "van-" + draw(st.text("abcdef0123456789-", min_size=1, max_size=12))
    elif kind == "unknown":
        msg["alert_id"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))
    elif kind == "pad":
        msg["note"] = "x" * draw(st.integers(5000, 20000))
    data = json.dumps(msg).encode()
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    return data


malformed = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated(),
)


def test_fuzz_10000_malformed_adjudications_all_rejected():
    got: list = []
    box = intake(got)
    calls = {"n": 0}

    @settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(malformed)
    def one(data: bytes) -> None:
        calls["n"] += 1
        verdict = box.handle(data)
        assert not verdict.accepted, data[:200]

    one()
    rejected = sum(v for k, v in box.counters.items() if k != "accepted")
    assert calls["n"] >= 10_000
    assert box.counters["accepted"] == 0 and got == [] and rejected == calls["n"]
    assert all(box.counters[r] > 0 for r in ("malformed_json", "bad_fields", "wrong_unit",
                                             "unknown_alert", "oversized"))
