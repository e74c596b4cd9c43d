"""One command that starts the processes of a multi-process tradehall and keeps them running.

The supervisor binds the listening socket once and passes it to every child (`TRADEHALL_LISTEN_FD`):
gateways accept on the same socket, so a restarted gateway serves again without a new bind, and the
kernel spreads connections over the ones alive. A child that exits is started again (after a short,
growing pause) while the others keep serving. The supervisor writes each child's state to a status
file (`supervisor.json` in the data directory) that a gateway's `/ready` reads to say which part is
down.

Children die with their supervisor, even under `kill -9`: each one holds the read end of a lifeline
pipe (`TRADEHALL_LIFELINE_FD`) whose write end only the supervisor holds, and watches it for EOF;
on Linux it also asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`). So nothing
is left holding the port, the journal or the database, and the next start is clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

LISTEN_FD_ENV = "TRADEHALL_LISTEN_FD"
LIFELINE_FD_ENV = "TRADEHALL_LIFELINE_FD"
PARENT_PID_ENV = "TRADEHALL_SUPERVISOR_PID"
STATUS_FILE = "supervisor.json"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A process to keep running: its role name and command line."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_path: Path | None = None
    """A file the child creates once it serves (the engine's socket): at start, the children after
    this one wait for it; the child counts as up only once it exists (a stale one is removed before
    each start)."""


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 0.25
    ready: bool = False

    def serving(self) -> bool:
        """Running, and past its start when it has a ready file."""
        if self.process is None or self.process.poll() is not None:
            return False
        path = self.spec.ready_path
        return path is None or path.exists()


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket every gateway accepts on (inheritable: children get it by fd)."""
    listener = socket.create_server((host, port), backlog=backlog, reuse_port=False)
    listener.set_inheritable(True)
    return listener


class Supervisor:
    """Starts `children`, restarts any that exits, stops them all on SIGTERM/SIGINT."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        status_path: Path,
        listener: socket.socket | None = None,
        poll_seconds: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self._children = [_Child(spec) for spec in children]
        self.status_path = status_path
        self._listener = listener
        self._poll = poll_seconds
        self._max_backoff = max_backoff
        self._stopping = False
        self._lifeline_read, self._lifeline_write = os.pipe()  # both non-inheritable by default

    def _start(self, child: _Child) -> None:
        env = dict(os.environ)
        env.update(child.spec.env)
        env[LIFELINE_FD_ENV] = str(self._lifeline_read)
        env[PARENT_PID_ENV] = str(os.getpid())
        if child.spec.ready_path is not None:
            with contextlib.suppress(FileNotFoundError):
                child.spec.ready_path.unlink()
        pass_fds = [self._lifeline_read]
        if self._listener is not None:
            env[LISTEN_FD_ENV] = str(self._listener.fileno())
            pass_fds.append(self._listener.fileno())
        child.process = subprocess.Popen(list(child.spec.argv), env=env, pass_fds=pass_fds)

    def status(self) -> dict[str, object]:
        """Each child's pid, whether it runs, how often it was restarted."""
        return {
            "supervisor_pid": os.getpid(),
            "children": {
                child.spec.name: {
                    "pid": child.process.pid if child.process is not None else None,
                    "up": child.serving(),
                    "restarts": child.restarts,
                }
                for child in self._children
            },
        }

    def _write_status(self) -> None:
        write_status_file(self.status_path, self.status())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Runs until SIGTERM or SIGINT; returns the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            for child in self._children:
                if self._stopping:
                    return 0
                self._start(child)
                self._write_status()
                if child.spec.ready_path is not None and not self._await_ready(child, child.spec.ready_path):
                    return 1
            while not self._stopping:
                changed = False
                now = time.monotonic()
                for child in self._children:
                    process = child.process
                    if process is not None and process.poll() is not None:
                        sys.stderr.write(
                            f"tradehall supervisor: {child.spec.name} exited ({process.returncode}); "
                            f"restarting in {child.backoff:.2f}s\n"
                        )
                        child.process = None
                        child.next_start = now + child.backoff
                        child.backoff = min(child.backoff * 2, self._max_backoff)
                        changed = True
                    elif process is None and now >= child.next_start:
                        child.restarts += 1
                        self._start(child)
                        changed = True
                    elif process is not None and child.backoff > 0.25 and now - child.next_start > 30:
                        child.backoff = 0.25  # up for 30 s: the next crash restarts quickly again
                    serving = child.serving()
                    if serving != child.ready:  # a restarted engine is up once it serves again
                        child.ready = serving
                        changed = True
                if changed:
                    self._write_status()
                time.sleep(self._poll)
        finally:
            self.stop_children()
        return 0

    def _await_ready(self, child: _Child, path: Path, timeout: float = 300.0) -> bool:
        deadline = time.monotonic() + timeout
        while not path.exists():
            process = child.process
            if self._stopping:
                return True
            if process is None or process.poll() is not None or time.monotonic() > deadline:
                sys.stderr.write(f"tradehall supervisor: {child.spec.name} did not start; stopping\n")
                return False
            time.sleep(self._poll / 2)
        return True

    def stop_children(self, grace: float = 10.0) -> None:
        for child in reversed(self._children):  # the gateways first, the engine (first started) last
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + grace
        for child in self._children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        with contextlib.suppress(OSError):
            os.close(self._lifeline_write)
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()


def write_status_file(path: Path, status: Mapping[str, object]) -> None:
    """Replaces `path` with `status` as JSON at once (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(status, default=str))
    os.replace(temporary, path)


def read_status_file(path: Path) -> dict[str, object] | None:
    """What `write_status_file` wrote, when this process is a supervised child (None otherwise: a
    file left by a supervisor killed earlier says nothing of this run)."""
    if PARENT_PID_ENV not in os.environ:
        return None
    try:
        loaded = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def stop_on_signals() -> asyncio.Event:
    """In a supervised child's event loop: an event set by SIGTERM or SIGINT (a clean stop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def arm_lifeline() -> None:
    """In a supervised child: die when the supervisor dies (lifeline EOF, and PR_SET_PDEATHSIG).

    Does nothing in a process the supervisor did not start."""
    fd_text = os.environ.get(LIFELINE_FD_ENV)
    if fd_text is None:
        return
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent is not None and os.getppid() != int(parent):
        os._exit(1)  # the supervisor died before the kernel could be asked to tell us
    fd = int(fd_text)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os._exit(1)  # EOF: the supervisor is gone; exit at once, holding nothing

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def inherited_listener() -> socket.socket | None:
    """The listening socket the supervisor passed down, if any."""
    fd_text = os.environ.get(LISTEN_FD_ENV)
    if fd_text is None:
        return None
    return socket.socket(fileno=int(fd_text))


def read_status(data_dir: Path) -> dict[str, object] | None:
    """The supervisor's last written status for this data directory, when this process is one of its
    children (None otherwise)."""
    return read_status_file(data_dir / STATUS_FILE)
