"""Broker: the van broker accepts the unit's certificate over TLS (an MQTT CONNECT, CONNACK 0).

The test connects with its own client id (``<client id>-selftest``) so that it never takes
over the running service's session; the certificate's CN must be the unit id (the broker
uses it as the identity for the ACL).
"""
from __future__ import annotations

import ssl
import threading
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.x509.oid import NameOID

from ..config import resolve
from .base import CheckResult, SelfTestContext, failed, passed, warned

NAME = "broker"
CERT_FIX = ("issue the unit certificate from the van CA again: appliance provision "
            "(deploy/make-van-certs.sh), then restart the unit")


def _certificate_problem(ctx: SelfTestContext, path: Path) -> CheckResult | None:
    """FAIL for a wrong CN or an expired certificate, WARN when it expires soon; None when fine."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return failed(NAME, f"unit certificate {path} cannot be read: {exc}", CERT_FIX)
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [ctx.cfg.unit.id]:
        return failed(NAME, f"unit certificate CN {names} is not the unit id {ctx.cfg.unit.id!r}", CERT_FIX)
    days = (cert.not_valid_after_utc - datetime.fromtimestamp(ctx.now(), timezone.utc)).days
    if days < 0:
        return failed(NAME, f"unit certificate expired {-days} days ago", CERT_FIX)
    if days < ctx.cert_warn_days:
        return warned(NAME, f"unit certificate expires in {days} days", CERT_FIX)
    return None


def connect_once(ctx: SelfTestContext) -> str | None:
    """One MQTT v5 CONNECT over mutual TLS; None on CONNACK success, else the reason."""
    m = ctx.cfg.mqtt
    client_id = (m.client_id or f"lfr-{ctx.cfg.unit.id}") + "-selftest"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(resolve(m.ca_file)), certfile=str(resolve(m.cert_file)),
                   keyfile=str(resolve(m.key_file)), cert_reqs=ssl.CERT_REQUIRED,
                   tls_version=ssl.PROTOCOL_TLS_CLIENT)
    done, outcome = threading.Event(), {"reason": "no answer from the broker"}

    def on_connect(_c, _u, _flags, reason_code, _props) -> None:
        outcome["reason"] = None if not reason_code.is_failure else f"refused: {reason_code}"
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(m.host, m.port, keepalive=max(5, int(ctx.broker_timeout_s)))
    except (OSError, ssl.SSLError) as exc:
        return f"cannot connect to {m.host}:{m.port}: {exc}"
    client.loop_start()
    try:
        done.wait(ctx.broker_timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome["reason"]


def check(ctx: SelfTestContext) -> CheckResult:
    """Certificate CN and dates, then a real CONNECT to the configured broker."""
    m = ctx.cfg.mqtt
    if not m.enabled:
        return warned(NAME, "[mqtt] enabled = false: alerts go to stdout only, never to the tablets",
                      "set [mqtt] enabled = true on every unit in a van")
    for path in (resolve(m.ca_file), resolve(m.cert_file), resolve(m.key_file)):
        if not path.is_file():
            return failed(NAME, f"MQTT TLS file missing: {path}", CERT_FIX)
    problem = _certificate_problem(ctx, resolve(m.cert_file))
    if problem is not None and problem.outcome.name == "FAIL":
        return problem
    reason = connect_once(ctx)
    if reason is not None:
        return failed(NAME, f"broker {m.host}:{m.port} over TLS: {reason}",
                      "systemctl status mosquitto; check /etc/mosquitto/lfr/ (ca.crt, broker.crt, acl) "
                      "and that the unit certificate comes from the same van CA")
    seen = f"{m.host}:{m.port} accepted the unit certificate (CN {ctx.cfg.unit.id}) over TLS"
    return problem if problem is not None else passed(NAME, seen)
