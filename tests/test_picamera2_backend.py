"""Contract tests of the Pi camera backend against a double of exactly the picamera2 surface it uses.

The double (tests/fakes/picamera2.py) raises ContractViolation when a request is released
twice, used after release, still held when the camera closes, or when a timed-out capture job
is left queued; so these tests fail if the backend leaks a request on any path. The real
camera is exercised by `make hw-test` and hw/tests/test_on_device.py on a Pi 5.
"""
from __future__ import annotations

import sys
import threading
import time

import pytest

from fakes import picamera2 as fake
from appliance import capture
from appliance.capture import picamera2 as pi
from appliance.errors import CaptureError


@pytest.fixture
def camera(monkeypatch):
    state = fake.reset()
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    monkeypatch.setattr(fake.Picamera2, "__init__", _recent_clock(fake.Picamera2.__init__))
    yield state
    assert state.violations == [], state.violations
    assert state.held() == [], f"requests never released: {state.held()}"


def _recent_clock(init):
    def wrapped(self, camera_num=0):
        init(self, camera_num)
        self.t0 = time.monotonic_ns() - 400_000_000  # the sensor clock is CLOCK_MONOTONIC
    return wrapped


def take(source, n: int) -> list:
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == n:
            source.stop()
    return frames


def ops(state) -> list[str]:
    return [c[0] for c in state.calls]


def test_available_when_picamera2_imports(camera):
    assert pi.probe() is None and capture.availability()["picamera2"] is None
    assert isinstance(capture.open_source(pi.Settings()), pi.PiCamera)


def test_one_configuration_with_main_and_rgb888_lores_at_the_frame_rate(camera):
    with pi.PiCamera(pi.Settings(fps=25.0)) as cam:
        take(cam, 1)
    config = camera.cameras_made[0].config
    assert config["main"] == {"size": (1920, 1080), "format": "RGB888"}
    assert config["lores"] == {"size": (640, 360), "format": "RGB888"}
    assert config["controls"] == {"FrameDurationLimits": (40000, 40000)}  # 25 fps, in microseconds
    assert ops(camera)[:5] == ["Picamera2", "create_video_configuration", "configure", "start", "capture_request"]


def test_both_arrays_and_the_sensor_timestamp_come_from_the_same_request(camera):
    with pi.PiCamera(pi.Settings(camera_id="cam7")) as cam:
        frames = take(cam, 6)
    assert [f.seq for f in frames] == list(range(6)) and all(f.camera_id == "cam7" for f in frames)
    for number, f in enumerate(frames):
        assert f.image.shape == (1080, 1920, 3) and f.lores.shape == (360, 640, 3) and f.lores_scale == 3.0
        assert int(f.image[0, 0, 0]) == int(f.lores[0, 0, 0]) == number  # the request's number, in both
        assert tuple(f.image[0, 0]) == (number, 0, 255)  # RGB888 passed through: OpenCV's BGR
        request = camera.requests[number]
        assert f.sensor_ts_ns == request.sensor_ts and f.t_mono == pytest.approx(request.sensor_ts / 1e9)
    per_request = [c for c in camera.calls if c[0] in ("make_array", "get_metadata", "release")]
    assert [c[0] for c in per_request[:4]] == ["make_array", "make_array", "get_metadata", "release"]
    assert all(r.released for r in camera.requests)


def test_without_lores_the_frame_has_main_only_and_the_detector_uses_it(camera):
    with pi.PiCamera(pi.Settings(lores=False)) as cam:
        frame = take(cam, 1)[0]
    assert camera.cameras_made[0].config["lores"] is None
    assert frame.lores is None and frame.lores_scale == 1.0 and frame.image.shape == (1080, 1920, 3)


def test_waits_are_bounded_first_frame_allowance_then_stall_frames_intervals(camera):
    with pi.PiCamera(pi.Settings(fps=30.0, stall_frames=15, first_frame_s=4.0)) as cam:
        take(cam, 3)
    waits = [c[1] for c in camera.calls if c[0] == "capture_request"]
    assert waits == [4.0, 0.5, 0.5]


def test_a_stalled_camera_is_a_capture_error_and_the_queued_job_is_cancelled_before_close(camera):
    camera.stall_after = 3
    with pytest.raises(CaptureError) as err:
        with pi.PiCamera(pi.Settings()) as cam:
            take(cam, 10)
    assert "stalled: no frame within 0.50 s (15 frame intervals)" in err.value.message
    assert "ribbon cable" in err.value.fix and err.value.exit_code == 7
    tail = ops(camera)[-3:]
    assert tail == ["cancel_all_and_flush", "stop", "close"]


def test_a_failing_request_is_released_on_the_error_path(camera):
    camera.fail_array_at = 2
    with pytest.raises(CaptureError, match="unusable frame"):
        with pi.PiCamera(pi.Settings()) as cam:
            take(cam, 10)
    assert [r.released for r in camera.requests] == [True, True, True]
    assert ("release", 2) in camera.calls and ops(camera)[-1] == "close"


def test_a_consumer_that_stops_iterating_holds_no_request(camera):
    with pi.PiCamera(pi.Settings()) as cam:
        for frame in cam.frames():
            if frame.seq == 2:
                break
    assert camera.held() == [] and camera.cameras_made[0].closed


def test_an_error_in_the_caller_still_releases_the_camera(camera):
    with pytest.raises(ZeroDivisionError):
        with pi.PiCamera(pi.Settings()) as cam:
            take(cam, 2)
            1 / 0
    assert camera.cameras_made[0].closed and not camera.cameras_made[0].started


def test_stop_from_another_thread_ends_the_stream(camera):
    with pi.PiCamera(pi.Settings()) as cam:
        threading.Timer(0.05, cam.stop).start()
        count = sum(1 for _ in cam.frames())
    assert count >= 1 and camera.cameras_made[0].closed


def test_rgb_lores_on_a_pi4_names_the_fix_and_yuv420_lores_works_there(camera):
    camera.platform = "VC4"
    with pytest.raises(CaptureError) as err:
        with pi.PiCamera(pi.Settings()):
            pass
    assert "lores stream must be YUV" in err.value.message and 'lores_format = "YUV420"' in err.value.fix
    assert camera.cameras_made[0].closed
    with pi.PiCamera(pi.Settings(lores_format="YUV420")) as cam:
        frame = take(cam, 1)[0]
    assert frame.lores.shape == (360, 640, 3) and abs(int(frame.lores[5, 5, 1]) - 100) <= 2  # grey from luma


def test_a_camera_that_will_not_start_or_is_absent_is_a_capture_error(camera):
    camera.fail_start = "Failed to start camera: Device or resource busy"
    with pytest.raises(CaptureError, match="busy") as err:
        with pi.PiCamera(pi.Settings()):
            pass
    assert "rpicam-hello" in err.value.fix and camera.cameras_made[0].closed
    with pytest.raises(CaptureError, match="cannot open Pi camera 3"):
        with pi.PiCamera(pi.Settings(camera_num=3)):
            pass


def test_stall_detector_reports_a_stall_to_the_watchdog():
    from appliance.capture.stall import StallDetector

    stall = StallDetector(fps=30.0, frames=15, first_frame_s=5.0)
    stall.reset(now=100.0)
    assert not stall.snapshot(now=104.0).stalled and stall.snapshot(now=105.5).stalled  # first frame: 5 s
    stall.beat(now=106.0)
    assert stall.timeout_s() == 0.5
    state = stall.snapshot(now=106.6)
    assert state.stalled and state.last_frame_age_s == pytest.approx(0.6) and state.frames == 1


def test_the_double_catches_a_request_held_at_close_and_an_unbounded_wait(camera):
    """The double must be able to fail: misuse it the way a broken backend would."""
    cam = fake.Picamera2()
    cam.configure(cam.create_video_configuration(main={"size": (64, 48), "format": "RGB888"}))
    cam.start()
    with pytest.raises(fake.ContractViolation, match="block forever"):
        cam.capture_request()
    cam.capture_request(wait=1.0)
    with pytest.raises(fake.ContractViolation, match="held"):
        cam.close()
    camera.violations.clear()
    camera.requests[-1].released = True
