"""Topic names: everything lives under lfr/v1/<unit>/ (docs/mqtt.md)."""
from __future__ import annotations

import re

KINDS = ("alert", "status", "heartbeat", "record", "adjudication")
IDENTITY = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # a van certificate CN (deploy/make-van-certs.sh)


def topic(unit: str, kind: str) -> str:
    """The topic of one payload kind for one unit, e.g. lfr/v1/van-dev-01/alert."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"lfr/v1/{unit}/{kind}"


def adjudication_topic(unit: str, sender: str) -> str:
    """Where ``sender`` (its certificate CN) publishes adjudications for ``unit``.

    The broker ACL lets only the certificate with that CN write there, so the last
    level tells the unit which certificate sent the message (docs/mqtt.md).
    """
    if not IDENTITY.match(sender):
        raise ValueError(f"sender {sender!r} is not a certificate CN")
    return f"{topic(unit, 'adjudication')}/{sender}"


def adjudication_sender(unit: str, name: str) -> str | None:
    """The sender CN from an adjudication topic of ``unit``; None when the topic is not one."""
    prefix = topic(unit, "adjudication") + "/"
    sender = name[len(prefix):] if name.startswith(prefix) else ""
    return sender if IDENTITY.match(sender) else None
