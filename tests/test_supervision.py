"""Supervision: an untyped exception in any of the unit's threads never ends a run as success.

Each case injects a bug (an exception the code does not expect) into one thread of the
real unit run by `appliance run` (in process, so the injection reaches it): capture,
analyse, finish, the alert-sinks thread and the MQTT outbox pump. Each must give a
``fault`` audit entry, a unit status that says which stage failed, and a non-zero exit.
"""
from __future__ import annotations

import json
import uuid

import cv2
import numpy as np
import pytest

from appliance import sinks as sinks_module
from appliance.audit.log import connect, iter_entries
from appliance.capture.replay import ReplaySource
from appliance.cli import main
from appliance.errors import StageFailed
from appliance.mqtt import publisher as publisher_module
from appliance.mqtt.outbox import Outbox
from appliance.pipeline.alert import Alert
from appliance.pipeline.frame import FrameProcessor
from appliance.unit import Unit
from conftest import provision
from mqtt_helpers import van_certs  # noqa: F401 (fixture)


class Bug(Exception):
    """What an unexpected bug raises."""


def _boom(*_args, **_kwargs):
    raise Bug("injected")


def _clip(folder, n=12):
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((120, 160, 3), 20 * (i % 10), np.uint8))


def _config(tmp_path, extra: str = "", fps: float = 0.0, loop: bool = False) -> str:
    _clip(tmp_path / "clip")
    provision(tmp_path / "data")
    path = tmp_path / "unit.toml"
    path.write_text(f'[unit]\ndata_dir = "{tmp_path / "data"}"\n[capture]\nsource = "{tmp_path / "clip"}"\n'
                    f'fps = {fps}\nloop = {"true" if loop else "false"}\n{extra}')
    return str(path)


def _alert_each_frame(self, analysed):
    """Stands in for FrameProcessor.finish: one alert per frame (the durable path is real)."""
    frame = analysed.frame
    return [Alert(unit="van-dev-01", camera="cam0", deployment_id="dep-1", subject_ref="S-0001",
                  category="test", score=0.8, threshold=0.65, model_id="mobilefacenet@test",
                  track_id=frame.seq, frame_seq=frame.seq, quality={}, capture_t_mono=frame.t_mono,
                  face_jpeg=cv2.imencode(".jpg", frame.image[:32, :32])[1].tobytes(),
                  alert_id=str(uuid.uuid4()))]


def _captured_run(monkeypatch) -> list[dict]:
    """Keep the unit's status at the end of its run (the CLI closes the unit afterwards)."""
    statuses: list[dict] = []
    real_run = Unit.run

    def run(self, *args, **kwargs):
        try:
            return real_run(self, *args, **kwargs)
        finally:
            statuses.append(self.status())

    monkeypatch.setattr(Unit, "run", run)
    return statuses


def _faults(data_dir) -> list[dict]:
    db = connect(data_dir / "audit.db", readonly=True)
    return [e["payload"] for e in (json.loads(body) for _, body, _ in iter_entries(db)) if e["type"] == "fault"]


def _inject_capture(monkeypatch, tmp_path):
    real = ReplaySource.frames

    def frames(self):
        for n, frame in enumerate(real(self)):
            if n == 3:
                raise OSError(5, "Input/output error")  # e.g. a USB camera read failing oddly
            yield frame

    monkeypatch.setattr(ReplaySource, "frames", frames)
    return _config(tmp_path)


def _inject_analyse(monkeypatch, tmp_path):
    monkeypatch.setattr(FrameProcessor, "analyse", _boom)
    return _config(tmp_path)


def _inject_finish(monkeypatch, tmp_path):
    monkeypatch.setattr(FrameProcessor, "finish", _boom)
    return _config(tmp_path)


def _inject_sink(monkeypatch, tmp_path):
    monkeypatch.setattr(FrameProcessor, "finish", _alert_each_frame)
    monkeypatch.setattr(sinks_module, "stdout_sink", _boom)  # `appliance run` registers it as "stdout"
    return _config(tmp_path)


def _inject_mqtt_pump(monkeypatch, tmp_path, certs):
    monkeypatch.setattr(Outbox, "expire", _boom)  # the pump calls it every tick, broker or not
    monkeypatch.setattr(publisher_module, "PUMP_BACKOFF_S", 0.01)
    mqtt = (f'[mqtt]\nenabled = true\nport = 1\nca_file = "{certs / "ca.crt"}"\n'
            f'cert_file = "{certs / "van-dev-01.crt"}"\nkey_file = "{certs / "van-dev-01.key"}"\n')
    return _config(tmp_path, mqtt, fps=20.0, loop=True)


CASES = {"capture": _inject_capture, "analyse": _inject_analyse, "finish": _inject_finish,
         "sinks": _inject_sink, "mqtt": _inject_mqtt_pump}


@pytest.mark.parametrize("stage", CASES)
def test_an_untyped_exception_in_any_thread_is_a_fault_and_a_non_zero_exit(stage, monkeypatch, tmp_path,
                                                                          van_certs, capsys):
    inject = CASES[stage]
    config = inject(monkeypatch, tmp_path, van_certs) if stage == "mqtt" else inject(monkeypatch, tmp_path)
    statuses = _captured_run(monkeypatch)
    code = main(["run", "--config", config])
    err = capsys.readouterr().err
    assert code == StageFailed.exit_code != 0, err
    raised = "OSError" if stage == "capture" else "Bug"
    assert f"the {stage} stage crashed: {raised} at " in err and "fix:" in err and "Traceback" not in err
    faults = _faults(tmp_path / "data")
    assert any(f["kind"] == "stage_failed" and f["detail"].startswith(f"{stage}: ") for f in faults), faults
    status = statuses[-1]
    assert status["state"] == "faulted" and f"the {stage} stage crashed" in status["reason"], status
    assert status["last_fault"]["stage"] == stage


def test_a_typed_capture_error_keeps_its_exit_code_and_is_audited_as_camera_lost(monkeypatch, tmp_path, capsys):
    config = _config(tmp_path)
    (tmp_path / "clip").rename(tmp_path / "gone")  # the source vanished before the run
    code = main(["run", "--config", config])
    assert code == 7, capsys.readouterr().err
    assert [f["kind"] for f in _faults(tmp_path / "data")] == ["camera_lost"]


def test_a_slow_sink_never_stalls_matching_and_is_counted(monkeypatch, tmp_path):
    """A sink stuck for the whole run: every frame is still processed and every alert committed."""
    import threading

    monkeypatch.setattr(FrameProcessor, "finish", _alert_each_frame)
    monkeypatch.setattr(sinks_module, "QUEUE_SIZE", 2)
    release = threading.Event()
    from appliance.config import load_config

    with Unit.open(load_config(_config(tmp_path))) as unit:
        unit.sinks.register("stuck", lambda alert: release.wait(30))
        result = unit.run(install_signals=False)
        status = unit.status()
        release.set()
    assert result.error is None and result.counters["frames"] == 12 and len(result.alerts) == 12
    assert status["sinks"]["alerts_sink_dropped"] >= 9, status["sinks"]  # queue of 2 + the one in hand
    db = connect(tmp_path / "data" / "audit.db", readonly=True)
    audited = [json.loads(b) for _, b, _ in iter_entries(db)]
    assert sum(e["type"] == "alert" for e in audited) == 12, "every alert was committed in line"
