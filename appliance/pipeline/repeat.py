"""Repeat suppression: a subject alerted on a camera within ``[match] repeat_window_s``
of capture time gives a repeat sighting, not a new alarm.

Time is the frame's capture time (``Frame.t_mono``), so a replay with gaps behaves as the
camera did, and a person who really passes twice further apart than the window gives two
alerts. The window runs from the subject's last alert (a repeat sighting does not extend
it). Only subject references of alerts are kept, in memory: nothing about anyone else.
"""
from __future__ import annotations

RepeatKey = tuple[str, str, str]  # (deployment id, camera, subject ref)


class RepeatMemory:
    """The last alert of each subject on each camera: its id and capture time."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[RepeatKey, tuple[str, float]] = {}

    def original(self, key: RepeatKey, t_mono: float) -> str | None:
        """The id of the subject's alert within the window before ``t_mono``, else None."""
        self._forget(t_mono)
        last = self._last.get(key)
        return last[0] if last and 0.0 <= t_mono - last[1] <= self.window_s else None

    def remember(self, key: RepeatKey, alert_id: str, t_mono: float) -> None:
        """Record an alert (not a repeat sighting) of the subject on the camera."""
        if self.window_s > 0:
            self._last[key] = (alert_id, t_mono)

    def _forget(self, t_mono: float) -> None:
        for key in [k for k, (_, t) in self._last.items() if t_mono - t > self.window_s]:
            del self._last[key]
