"""Core dumps off inside the process; logs to journald under systemd and to stderr elsewhere."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from appliance.logs import configure_logging, journal_handler, stderr_is_journal

CHILD = """
import json, resource
from appliance.hardening import disable_core_dumps
before = resource.getrlimit(resource.RLIMIT_CORE)
state = disable_core_dumps()
try:
    resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
    raised = True
except (ValueError, OSError):
    raised = False
print(json.dumps({"before": before, "after": state.rlimit_core, "dumpable": state.dumpable,
                  "could_raise_again": raised}))
"""


def test_core_dumps_are_off_and_cannot_be_turned_back_on():
    # a child process: the hard limit cannot be raised again, so the test runner stays untouched
    # (an in-process `appliance run` earlier in the session may already have lowered it to 0)
    import resource

    start = min(1 << 20, resource.getrlimit(resource.RLIMIT_CORE)[1])  # a hard limit is not raised again
    if start == 0:
        pytest.skip("this test process already runs with a hard core limit of 0 (an in-process run "
                    "hardened it); the syscall-filter test checks the same in a fresh process")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (start, start)))
    state = json.loads(out.stdout)
    assert state["before"] == [start, start]
    assert state["after"] == [0, 0]
    assert state["dumpable"] == 0
    assert state["could_raise_again"] is False or os.geteuid() == 0  # root may raise a hard limit


def test_journal_handler_sends_structured_fields():
    sent = []

    def sender(message, /, **fields):  # journal.send's shape: MESSAGE first, then fields
        sent.append((message, fields))

    handler = journal_handler("van-07", sender=sender)
    logger = logging.getLogger("appliance.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("camera lost: %s", "frontend timeout")
    finally:
        logger.removeHandler(handler)
    (msg, fields), = sent
    assert msg == "camera lost: frontend timeout"
    assert fields["PRIORITY"] == "3" and fields["LOGGER"] == "appliance.test.journal"
    assert fields["SYSLOG_IDENTIFIER"] == "appliance" and fields["APPLIANCE_UNIT"] == "van-07"
    assert fields["CODE_FUNC"] == "test_journal_handler_sends_structured_fields"


def test_journald_only_when_stderr_is_the_journal_stream(tmp_path, monkeypatch):
    stream = open(tmp_path / "stderr", "w")
    st = os.fstat(stream.fileno())
    root_handlers = list(logging.getLogger().handlers)
    try:
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal(stream)
        assert type(configure_logging(logging.INFO, "van-07", stream, force=True)).__name__ == "JournalHandler"
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")  # stderr redirected elsewhere
        assert type(configure_logging(logging.INFO, "van-07", stream, force=True)) is logging.StreamHandler
        monkeypatch.delenv("JOURNAL_STREAM")
        handler = configure_logging(logging.INFO, "van-07", stream, force=True)
        logging.getLogger("appliance.x").info("plain line")
        handler.flush()
        assert "INFO appliance.x: plain line" in (tmp_path / "stderr").read_text()
    finally:
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in root_handlers:
            root.addHandler(h)
        stream.close()


def test_stderr_when_systemd_python_is_absent(tmp_path, monkeypatch):
    stream = open(tmp_path / "stderr", "w")
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setitem(sys.modules, "systemd.journal", None)
    monkeypatch.setitem(sys.modules, "systemd", None)
    root_handlers = list(logging.getLogger().handlers)
    try:
        assert type(configure_logging(logging.INFO, "", stream, force=True)) is logging.StreamHandler
    finally:
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in root_handlers:
            root.addHandler(h)
        stream.close()


@pytest.mark.parametrize("value", ["", "abc", "1:", ":2", "1:2:3"])
def test_malformed_journal_stream_means_stderr(value, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", value)
    assert not stderr_is_journal(sys.stderr)
