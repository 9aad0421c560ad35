"""sd_notify and the frame watchdog, seen from a NOTIFY_SOCKET of the test's own (as systemd sees it).

Frames come from the real replay capture backend; the capture "stalls" the way a Pi camera
does after hours (capture_array blocks): the consuming thread stops receiving frames.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance import capture
from appliance.notify import FrameWatchdog, Notifier, start_watchdog, status_line, watchdog_interval_s


class SystemdSide:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def drain(self, for_s: float = 0.0) -> list[str]:
        """Messages received from now for ``for_s`` seconds (at least whatever is queued)."""
        got, end = [], time.monotonic() + for_s
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                if time.monotonic() >= end:
                    break
        self.messages += got
        return got


@pytest.fixture
def systemd_side(monkeypatch):
    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")  # AF_UNIX paths are limited to 107 bytes
    address = str(Path(folder) / "notify.sock")
    side = SystemdSide(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    yield side
    side.sock.close()
    Path(address).unlink(missing_ok=True)
    Path(folder).rmdir()


class CameraFeed:
    """A live-paced replay source consumed in a thread, which can be made to stall."""

    def __init__(self, folder: Path) -> None:
        settings = capture.capture_module("replay").Settings(source=str(folder), fps=50.0, loop=True)
        self.source = capture.open_source(settings)
        self.last_frame_at: float | None = None
        self.frames = 0
        self.stalled = threading.Event()
        self.thread = threading.Thread(target=self._consume, daemon=True)

    def _consume(self) -> None:
        with self.source:
            for frame in self.source.frames():
                if self.stalled.is_set():
                    break  # capture_array blocks: no frame arrives any more
                self.last_frame_at, self.frames = frame.t_mono, self.frames + 1

    def status(self) -> dict:
        flowing = self.last_frame_at is not None and time.monotonic() - self.last_frame_at < 0.3
        return {"state": "running" if flowing else "camera stalled", "frames_per_s": 50.0 if flowing else 0.0}


@pytest.fixture
def frames_folder(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    return folder


def _watchdog_messages(messages: list[str]) -> int:
    return sum("WATCHDOG=1" in m.split("\n") for m in messages)


def _statuses(messages: list[str]) -> list[str]:
    return [f[len("STATUS="):] for m in messages for f in m.split("\n") if f.startswith("STATUS=")]


def test_ready_then_watchdog_only_while_frames_flow_and_status_follows_the_state(systemd_side, frames_folder):
    feed = CameraFeed(frames_folder)
    notifier = Notifier()
    assert notifier.transport == "systemd-python"  # the real sd_notify(3) wrapper is what runs here
    feed.thread.start()
    dog = FrameWatchdog(notifier, lambda: feed.last_frame_at, feed.status,
                        interval_s=0.05, stall_after_s=0.3).start()
    try:
        flowing = systemd_side.drain(1.0)
        feed.stalled.set()
        time.sleep(0.5)  # the last frame ages past stall_after_s
        systemd_side.drain()
        stalled = systemd_side.drain(1.0)
    finally:
        dog.stop()
    first = systemd_side.messages[0].split("\n")
    assert first[0] == "READY=1" and first[1].startswith("STATUS=running")
    assert feed.frames > 10
    assert _watchdog_messages(flowing) >= 10, flowing
    assert _watchdog_messages(stalled) == 0, stalled
    statuses = _statuses(systemd_side.messages)
    assert statuses[0].startswith("running, 50.0 frames/s")
    assert statuses[-1].startswith("no frame for ") and statuses[-1].endswith("; camera stalled, 0.0 frames/s")
    assert sum(m.startswith("READY=1") for m in systemd_side.messages) == 1


def test_plain_socket_fallback_when_systemd_python_is_absent(systemd_side, monkeypatch):
    monkeypatch.setitem(sys.modules, "systemd", None)  # import systemd -> ImportError
    notifier = Notifier()
    assert notifier.transport == "socket"
    assert notifier.ready("starting") and notifier.watchdog() and notifier.stopping("stopped")
    assert systemd_side.drain(0.2) == ["READY=1\nSTATUS=starting", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopped"]


def test_plain_socket_reaches_an_abstract_address(monkeypatch):
    name = f"@lfr-notify-test-{time.monotonic_ns()}"
    side = SystemdSide(name)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setitem(sys.modules, "systemd", None)
    try:
        assert Notifier().watchdog()
        assert side.drain(0.2) == ["WATCHDOG=1"]
    finally:
        side.sock.close()


def test_nothing_is_sent_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sent = []
    notifier = Notifier(send=lambda m: sent.append(m) or True)
    assert not notifier.active and not notifier.ready("x") and not notifier.watchdog()
    assert sent == []
    assert start_watchdog(notifier, lambda: 0.0, dict) is None


def test_watchdog_interval_is_half_of_watchdog_sec_for_this_process(monkeypatch):
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({}) is None


def test_a_unit_that_never_saw_a_frame_is_not_kept_alive(monkeypatch):
    sent = []
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent")
    dog = FrameWatchdog(Notifier(send=lambda m: sent.append(m) or True), lambda: None,
                        lambda: {"state": "starting"}, interval_s=1, stall_after_s=1)
    assert dog.beat() is False
    assert sent == ["STATUS=starting"]
    dog.beat()
    assert sent == ["STATUS=starting"]  # an unchanged status is not repeated


def test_status_line_names_state_reason_rate_and_deployment():
    line = status_line({"state": "degraded", "reason": "audit log full", "frames_per_s": 14.84,
                        "deployment": {"active": True, "deployment": {"deployment_id": "OP-7"}},
                        "watchlist_entries": 120, "mqtt": {"outbox_pending": 3}})
    assert line == "degraded (audit log full), 14.8 frames/s, deployment OP-7, watchlist 120, outbox 3 pending"


class StallingSource:
    """A live-paced replay that delivers ``frames`` frames, then hangs as a stalled Pi camera does."""

    live = True

    def __init__(self, folder: Path, frames: int) -> None:
        settings = capture.capture_module("replay").Settings(source=str(folder), fps=30.0, loop=True)
        self.inner = capture.open_source(settings)
        self.limit = frames
        self.stalled = threading.Event()
        self.release = threading.Event()

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)

    def frames(self):
        for n, frame in enumerate(self.inner.frames()):
            if n >= self.limit:
                self.stalled.set()
                self.release.wait()  # capture_array() that never returns, until the test lets go
                return
            yield frame

    def stop(self):
        self.release.set()
        self.inner.stop()


def test_the_running_unit_notifies_ready_pings_while_frames_flow_and_stops_pinging_on_a_stall(
        systemd_side, frames_folder, tmp_path, monkeypatch):
    """appliance.daemon.serve around the real Unit: READY, WATCHDOG, STATUS as systemd sees them."""
    from appliance.config import Config
    from appliance.daemon import serve
    from conftest import REPO, provision

    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    cfg = Config.model_validate({"unit": {"data_dir": str(provision(tmp_path / "data"))},
                                 "inference": {"backend": "litert", "models_dir": str(REPO / "models" / "cache")}})
    source = StallingSource(frames_folder, frames=60)
    done = {}
    runner = threading.Thread(target=lambda: done.update(result=serve(cfg, source=source, stall_after_s=0.6,
                                                                      harden=False)), daemon=True)
    runner.start()
    assert source.stalled.wait(60), "the source never reached its stall"
    systemd_side.drain(0.05)
    while_flowing = list(systemd_side.messages)
    time.sleep(0.9)  # the newest frame ages past stall_after_s
    systemd_side.drain()
    stalled = systemd_side.drain(1.2)
    source.stop()
    runner.join(30)
    systemd_side.drain(0.2)
    messages = systemd_side.messages
    ready = [m for m in messages if m.startswith("READY=1")]
    assert len(ready) == 1 and "frames/s" in ready[0]
    first_ready = messages.index(ready[0])
    assert _watchdog_messages(messages[:first_ready]) == 0  # nothing before the first frame
    assert _watchdog_messages(while_flowing[first_ready:]) >= 3, while_flowing  # 60 frames at 30/s, beats every 0.3 s
    assert _watchdog_messages(stalled) == 0, stalled
    assert any(s.startswith("no frame for") for s in _statuses(stalled)), stalled
    assert messages[-1].startswith("STOPPING=1")
    assert done["result"].counters["frames"] >= 1
