"""The supervisor's status file: a child with a ready file (the engine's socket) counts as up only once
the file exists again after each start, so `/ready` does not call a restarting engine up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tradehall.service.supervisor import ChildSpec, Supervisor, read_status_file, write_status_file


def test_a_child_with_a_ready_file_is_up_only_once_the_file_exists(tmp_path: Path) -> None:
    ready = tmp_path / "engine.sock"
    ready.write_text("stale")  # left by a killed run: removed before the start
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor([ChildSpec("engine", sleeper, ready_path=ready), ChildSpec("projector", sleeper)],
                            status_path=tmp_path / "supervisor.json")
    try:
        for child in supervisor._children:
            supervisor._start(child)
        assert not ready.exists()
        children = supervisor.status()["children"]
        assert isinstance(children, dict)
        assert (children["engine"]["up"], children["projector"]["up"]) == (False, True)
        ready.write_text("")
        children = supervisor.status()["children"]
        assert isinstance(children, dict)
        assert children["engine"]["up"] is True
    finally:
        supervisor.stop_children(grace=5)


def test_status_files_are_read_only_by_supervised_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "feeds.json"
    write_status_file(path, {"ok": True, "feeds": [{"feed": "simulated"}]})
    monkeypatch.delenv("TRADEHALL_SUPERVISOR_PID", raising=False)
    assert read_status_file(path) is None  # a file left by an earlier run says nothing of this one
    monkeypatch.setenv("TRADEHALL_SUPERVISOR_PID", "1")
    assert read_status_file(path) == {"ok": True, "feeds": [{"feed": "simulated"}]}
    path.write_text("{half")
    assert read_status_file(path) is None
