"""End to end through the real pipeline: a replayed clip -> runner -> outbox -> broker -> TLS tablet.

Composed from lfw-dev people (as the golden replay tests): two are enrolled, a third is not.
The tablet must receive exactly the alerts the runner produced, each signed and schema-valid,
carrying the matched face crop and the reference thumbnail, and nothing about the third person.
"""
from __future__ import annotations

import base64

import numpy as np

from appliance.config import parse_config
from appliance.mqtt import verify
from appliance.pipeline.match import Watchlist
from lfr_tools.scenes import Actor, background, write_clip
from appliance.keystore import unit_keystore
from appliance.unit import Unit
from lfr_tools.replay import with_keys

try:
    from tests import mqtt_helpers as mh
    from tests.mqtt_helpers import van_broker, van_certs  # noqa: F401  (fixtures)
    from tests.scene_helpers import two_photo_cast
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh
    from mqtt_helpers import van_broker, van_certs  # noqa: F401
    from scene_helpers import two_photo_cast

UNIT = "van-dev-01"


def _cast(engine, lfw, n=3):
    return two_photo_cast(engine, lfw, n)


def test_replay_alerts_reach_the_tablet_signed(engine, lfw, van_broker, van_certs, tmp_path):
    cast = _cast(engine, lfw)
    actors = [Actor(cast[0][2], 0, 30, (100.0, 250.0), (1180.0, 270.0), 90),
              Actor(cast[1][2], 5, 35, (100.0, 480.0), (1180.0, 500.0), 70),
              Actor(cast[2][2], 0, 39, (100.0, 150.0), (1180.0, 170.0), 80)]
    write_clip(tmp_path / "clip", background((1280, 720), seed=7), actors, 40)
    enrolled = [engine.enrol_image(cast[i][1]) for i in (0, 1)]
    watchlist = Watchlist([cast[0][0], cast[1][0]], np.stack([e.embedding for e in enrolled]), engine.model_id,
                          [{"subject_ref": cast[i][0], "category": "wanted: test", "thumbnail": enrolled[i].thumbnail_jpeg}
                           for i in (0, 1)], "dep-replay")
    mqtt = mh.unit_config(van_certs, van_broker.unit_port, UNIT).mqtt.model_dump()
    cfg = with_keys(parse_config({"unit": {"id": UNIT, "data_dir": str(tmp_path / "data")},
                                  "capture": {"backend": "replay", "source": str(tmp_path / "clip"), "fps": 0.0},
                                  "mqtt": {**mqtt, "enabled": True}}, tmp_path / "replay.toml"))
    keys = unit_keystore(cfg)
    tablet = mh.Subscriber(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="tablet-replay")
    tablet.wait_connected()
    with Unit.open(cfg, engine=engine, watchlist=lambda: watchlist) as unit:
        publisher = unit.publisher
        topics: list[str] = []
        real_publish = publisher.client.publish
        publisher.client.publish = lambda t, *a, **k: (topics.append(t), real_publish(t, *a, **k))[1]
        result = unit.run(install_signals=False)
        assert result.error is None
        assert publisher.flush(10)
    assert set(topics) <= {f"lfr/v1/{UNIT}/{k}" for k in ("alert", "status", "heartbeat")}  # nothing else leaves
    assert topics.count(f"lfr/v1/{UNIT}/alert") >= len(result.alerts)
    sent = {a.alert_id: a for a in result.alerts}
    assert {a.subject_ref for a in sent.values()} == {cast[0][0], cast[1][0]}
    assert tablet.wait_for(lambda s: {p["alert_id"] for p in s.payloads("alert")} >= set(sent), 10)
    tablet.close()
    for payload in tablet.payloads("alert"):
        verify("alert", payload, keys.verify_key())
        alert = sent[payload["alert_id"]]
        assert payload["subject_ref"] == alert.subject_ref and payload["track_id"] == alert.track_id
        assert base64.b64decode(payload["face_jpeg"]) == alert.face_jpeg
        assert base64.b64decode(payload["reference_jpeg"]) == alert.reference_jpeg != b""
        assert payload["deployment_id"] == "dep-replay" and payload["model_id"] == engine.model_id
    assert cast[2][0] not in str(tablet.payloads("alert"))
