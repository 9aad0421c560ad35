"""The runner: latest-frame-wins under overload, dropped frames counted, clean shutdown on signals."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from types import SimpleNamespace

import cv2
import numpy as np

from appliance.capture.replay import ReplaySource
from appliance.pipeline.runner import LatestFrameQueue, Runner
from conftest import APPLIANCE, REPO, provision


class SlowProcessor:
    """Stands in for the FrameProcessor: takes 50 ms per frame, records what it saw."""

    def __init__(self) -> None:
        self.counters: Counter = Counter()
        self.seen: list[int] = []

    def analyse(self, frame):
        time.sleep(0.05)
        self.seen.append(frame.seq)
        self.counters["frames"] += 1
        return SimpleNamespace(frame=frame)

    def finish(self, analysed):
        return []


def _clip(folder, n=40):
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:06d}.png"), np.full((48, 64, 3), i, np.uint8))


def test_queue_drops_the_oldest_and_counts_it():
    q = LatestFrameQueue(2)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3
    assert [q.get(0.1), q.get(0.1)] == [3, 4]


def test_paced_replay_under_overload_keeps_the_newest_frames(tmp_path):
    _clip(tmp_path / "clip")
    processor = SlowProcessor()
    source = ReplaySource(tmp_path / "clip", fps=100.0, loop=False, camera_id="cam0")
    result = Runner(processor, source, queue_size=1).run(install_signals=False)
    assert result.counters["frames_dropped"] > 10
    assert result.counters["frames_dropped"] + len(processor.seen) == 40
    assert processor.seen == sorted(processor.seen) and processor.seen[-1] == 39


def test_unpaced_replay_processes_every_frame(tmp_path):
    _clip(tmp_path / "clip", 15)
    processor = SlowProcessor()
    source = ReplaySource(tmp_path / "clip", fps=0.0, loop=False, camera_id="cam0")
    result = Runner(processor, source, queue_size=1).run(install_signals=False)
    assert processor.seen == list(range(15)) and result.counters["frames_dropped"] == 0
    assert 12 < result.frames_per_s() <= 20.5, "50 ms a frame, timed from the first capture, not from start-up"


def test_sigterm_and_sigint_stop_a_looping_run_cleanly(tmp_path):
    _clip(tmp_path / "clip", 10)
    provision(tmp_path / "data")
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[unit]\ndata_dir = "{tmp_path}/data"\n[capture]\nsource = "{tmp_path}/clip"\n'
                   'fps = 20.0\nloop = true\n')
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([*APPLIANCE, "run", "--config", str(cfg)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(6)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        counters = json.loads(err.strip().splitlines()[-1])["counters"]
        assert counters["frames"] > 10, counters
        assert "Traceback" not in err
