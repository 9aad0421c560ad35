"""Connection settings every van MQTT client shares (unit publisher, console): paho only.

Kept apart from the publisher so that the officers' console can use them without importing
the unit's configuration (tests/test_console_imports.py).
"""
from __future__ import annotations

import socket

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def no_delay(client, userdata, sock) -> None:
    """Disable Nagle on the client socket: a 60 kB alert otherwise waits ~40 ms for a delayed ACK."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def session_properties(expiry_s: int) -> Properties:
    """CONNECT properties of a persistent session: the broker keeps it ``expiry_s`` after a disconnect."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    return props
